//! The DuckDB provider against real database files: round trips of every logical type, every
//! change kind applied then refreshed to no diff, measured impact, bulk refresh and drift.
#![cfg(feature = "duckdb")]

use std::path::Path;
use std::sync::Arc;

use dk_env::ResolvedStore;
use dk_providers::diff::diff;
use dk_providers::duckdb::DuckProvider;
use dk_providers::model::{
    Action, Change, ColumnOp, ColumnSpec, LogicalType, Resource, ResourceSpec,
};
use dk_providers::{Provider, ProviderError};
use indexmap::IndexMap;

const STORE: &str = "wh";

fn store(path: serde_json::Value) -> ResolvedStore {
    let mut connection = IndexMap::new();
    connection.insert("path".to_string(), path);
    ResolvedStore {
        name: STORE.into(),
        connector: Some("duckdb".into()),
        connector_type: "duckdb".into(),
        connection,
        secrets: IndexMap::new(),
        bound: false,
        file: Arc::from("stores.yaml"),
    }
}

fn open(dir: &Path) -> DuckProvider {
    DuckProvider::open(&store("wh.duckdb".into()), dir).expect("open")
}

fn col(name: &str, ty: LogicalType, nullable: bool, comment: Option<&str>) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        ty,
        nullable,
        comment: comment.map(str::to_string),
    }
}

fn schema(name: &str) -> Resource {
    Resource::new(STORE, ResourceSpec::Schema { name: name.into() }, vec![])
}

fn table(schema: &str, name: &str, columns: Vec<ColumnSpec>, comment: Option<&str>) -> Resource {
    Resource::new(
        STORE,
        ResourceSpec::Table {
            schema: schema.into(),
            name: name.into(),
            columns,
            comment: comment.map(str::to_string),
        },
        vec![format!("schema.{STORE}.{schema}")],
    )
}

fn view(schema: &str, name: &str, sql: &str, comment: Option<&str>) -> Resource {
    Resource::new(
        STORE,
        ResourceSpec::View {
            schema: schema.into(),
            name: name.into(),
            sql: sql.into(),
            columns: vec![],
            comment: comment.map(str::to_string),
        },
        vec![format!("schema.{STORE}.{schema}")],
    )
}

fn schemas_of(r: &Resource) -> Vec<String> {
    vec![r.spec.qualified().0.to_string()]
}

/// The resource at `address` as it is now.
fn actual(p: &DuckProvider, schemas: &[String], address: &str) -> Option<Resource> {
    p.refresh(schemas)
        .expect("refresh")
        .into_iter()
        .find(|r| r.address == address)
}

/// Plans `desired` against what is there, applies it, and checks that a refresh shows no diff.
fn converge(
    p: &DuckProvider,
    desired: Option<&Resource>,
    address: &str,
    schemas: &[String],
) -> Change {
    let before = actual(p, schemas, address);
    let change = p
        .plan(desired, before.as_ref())
        .expect("plan")
        .expect("a change");
    p.apply(&change)
        .unwrap_or_else(|e| panic!("apply {:?}: {e}", change.statements));
    let after = actual(p, schemas, address);
    assert_eq!(
        diff(desired, after.as_ref()),
        None,
        "after {:?}\nrefreshed {after:#?}",
        change.statements
    );
    assert_eq!(p.plan(desired, after.as_ref()).expect("plan"), None);
    change
}

fn exec(p: &DuckProvider, sql: &str) {
    let change = Change {
        address: "test".into(),
        store: STORE.into(),
        action: Action::Update,
        before: None,
        after: None,
        ops: vec![],
        destructive: false,
        reasons: vec![],
        impact: Default::default(),
        statements: vec![sql.to_string()],
    };
    p.apply(&change).expect(sql);
}

#[test]
fn provider_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<DuckProvider>();
    check::<Provider>();
}

#[test]
fn every_logical_type_round_trips_with_nullability_and_comments() {
    use LogicalType::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path());
    let types = [
        SmallInt,
        Integer,
        BigInt,
        Float,
        Double,
        Decimal(18, 3),
        Decimal(38, 10),
        Decimal(1, 0),
        Boolean,
        String,
        Date,
        Time,
        Timestamp,
        TimestampTz,
        Json,
        Binary,
        Uuid,
    ];
    let mut columns = Vec::new();
    for (i, t) in types.iter().enumerate() {
        columns.push(col(&format!("c{i}_null"), *t, true, None));
        columns.push(col(
            &format!("c{i}_not_null"),
            *t,
            false,
            Some(&format!("{t} it's \"described\"")),
        ));
    }
    let s = schema("lake");
    converge(&p, Some(&s), &s.address, &schemas_of(&s));
    let t = table("lake", "all types", columns, Some("every type\nline two"));
    let change = converge(&p, Some(&t), &t.address, &schemas_of(&t));
    assert_eq!(change.action, Action::Create);
    assert!(!change.destructive);
    let got = actual(&p, &schemas_of(&t), &t.address).expect("table");
    assert_eq!(got, t, "exact round trip");

    // Each type alone, too (a table per type, both nullabilities).
    for (i, ty) in types.iter().enumerate() {
        let t = table(
            "main",
            &format!("t{i}"),
            vec![col("a", *ty, false, Some("a")), col("b", *ty, true, None)],
            None,
        );
        converge(&p, Some(&t), &t.address, &schemas_of(&t));
        assert_eq!(actual(&p, &schemas_of(&t), &t.address), Some(t));
    }
}

#[test]
fn schemas_are_created_refreshed_and_dropped_only_when_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path());
    let s = schema("sales");
    let wanted = vec![
        "sales".to_string(),
        "main".to_string(),
        "information_schema".to_string(),
    ];
    assert_eq!(p.refresh(&wanted).expect("refresh"), vec![schema("main")]);
    converge(&p, Some(&s), &s.address, &wanted);
    assert_eq!(
        p.refresh(&wanted).expect("refresh"),
        vec![schema("main"), schema("sales")]
    );

    let t = table(
        "sales",
        "t",
        vec![col("a", LogicalType::Integer, true, None)],
        None,
    );
    converge(&p, Some(&t), &t.address, &wanted);
    // Not empty: DROP SCHEMA without CASCADE fails and nothing is dropped.
    let drop = p.plan(None, Some(&s)).expect("plan").expect("change");
    assert_eq!(drop.statements, vec!["DROP SCHEMA \"sales\"".to_string()]);
    let err = p.apply(&drop).expect_err("non-empty schema");
    assert!(
        matches!(&err, ProviderError::Database { context, .. } if context.contains("DROP SCHEMA \"sales\"")),
        "{err}"
    );
    assert!(actual(&p, &wanted, &t.address).is_some());

    converge(&p, None, &t.address, &wanted);
    converge(&p, None, &s.address, &wanted);
    // The default schema is never dropped.
    let main = p
        .plan(None, Some(&schema("main")))
        .expect("plan")
        .expect("change");
    assert!(main.statements.is_empty());
}

#[test]
fn every_change_kind_applies_and_converges() {
    use LogicalType::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path());
    let schemas = vec!["main".to_string()];
    let base = vec![
        col("id", Integer, false, Some("key")),
        col("name", String, true, None),
        col("amount", Double, true, None),
        col("old", String, true, None),
    ];
    let t = table("main", "orders", base.clone(), None);
    converge(&p, Some(&t), &t.address, &schemas);
    exec(
        &p,
        "INSERT INTO main.orders VALUES (1, 'a', 1.5, 'x'), (2, 'b', 2.5, NULL)",
    );

    let mut cols = base.clone();
    let step = |cols: &[ColumnSpec], comment: Option<&str>, expect: &dyn Fn(&Change)| {
        let desired = table("main", "orders", cols.to_vec(), comment);
        let change = converge(&p, Some(&desired), &desired.address, &schemas);
        assert_eq!(change.action, Action::Update);
        assert_eq!(
            change.before.as_ref().map(|r| r.address.as_str()),
            Some(desired.address.as_str())
        );
        assert_eq!(change.after.as_ref(), Some(&desired));
        expect(&change);
    };

    // Add columns: nullable with a comment; NOT NULL on a table with rows is measured (below).
    cols.push(col("note", String, true, Some("free text")));
    step(&cols, None, &|c| assert!(!c.destructive, "{c:?}"));
    // Drop a column (destructive, measured).
    cols.retain(|c| c.name != "old");
    step(&cols, None, &|c| {
        assert!(c.destructive);
        assert_eq!(c.impact.values, vec![("old".to_string(), 1)]);
    });
    // Widen integer → bigint (safe).
    cols[0].ty = BigInt;
    step(&cols, None, &|c| {
        assert!(!c.destructive, "{c:?}");
        assert!(c.impact.is_empty());
    });
    // Narrow double → float (destructive, values at risk measured).
    cols[2].ty = Float;
    step(&cols, None, &|c| {
        assert!(c.destructive);
        assert_eq!(c.impact.values, vec![("amount".to_string(), 2)]);
    });
    // Widen to decimal and to string.
    cols[2].ty = Decimal(12, 2);
    step(&cols, None, &|_| {});
    cols[0].ty = String;
    step(&cols, None, &|_| {});
    // Set NOT NULL where no row is NULL: safe, 0 violations.
    cols[1].nullable = false;
    step(&cols, None, &|c| {
        assert!(!c.destructive, "{c:?}");
        assert_eq!(c.impact.violations, vec![("name".to_string(), 0)]);
    });
    // Drop NOT NULL.
    cols[0].nullable = true;
    step(&cols, None, &|c| {
        assert_eq!(
            c.ops,
            vec![ColumnOp::DropNotNull {
                column: "id".into()
            }]
        )
    });
    // Comments: set, change, remove; table comment set, change, remove.
    cols[1].comment = Some("customer's name".into());
    step(&cols, None, &|_| {});
    cols[1].comment = Some("changed".into());
    step(&cols, Some("orders table"), &|_| {});
    cols[0].comment = None;
    step(&cols, Some("renamed 'orders'"), &|_| {});
    step(&cols, None, &|c| assert_eq!(c.ops.len(), 1));
    // Several ops at once on one column.
    cols[3].ty = Integer;
    cols[3].nullable = true;
    cols[3].comment = None;
    cols.push(col("extra", Boolean, true, Some("flag")));
    step(&cols, Some("many"), &|_| {});
    // Add a NOT NULL column to an empty table.
    exec(&p, "DELETE FROM main.orders");
    cols.push(col("required", Date, false, Some("must")));
    step(&cols, Some("many"), &|c| assert!(!c.destructive, "{c:?}"));

    // Views: create, change query, change comment, remove comment, delete.
    let v = view(
        "main",
        "daily",
        "SELECT id, name\nFROM main.orders   WHERE id IS NOT NULL;",
        Some("daily orders"),
    );
    converge(&p, Some(&v), &v.address, &schemas);
    let got = actual(&p, &schemas, &v.address).expect("view");
    assert_eq!(got, v, "exact view round trip");
    let v2 = view(
        "main",
        "daily",
        "select count(*) as n from main.orders -- trailing comment",
        Some("daily orders"),
    );
    let change = converge(&p, Some(&v2), &v2.address, &schemas);
    assert!(matches!(
        change.ops.as_slice(),
        [ColumnOp::ReplaceQuery { .. }]
    ));
    let v3 = view(
        "main",
        "daily",
        "select count(*) as n from main.orders -- trailing comment",
        Some("now it's counted"),
    );
    converge(&p, Some(&v3), &v3.address, &schemas);
    let v4 = view(
        "main",
        "daily",
        "select count(*) as n from main.orders -- trailing comment",
        None,
    );
    converge(&p, Some(&v4), &v4.address, &schemas);
    assert_eq!(actual(&p, &schemas, &v4.address), Some(v4.clone()));
    let change = converge(&p, None, &v4.address, &schemas);
    assert_eq!(change.action, Action::Delete);
    assert!(!change.destructive);

    // Table ↔ view under the same name: replace in one transaction.
    let as_view = view("main", "orders", "SELECT 1 AS id", Some("now a view"));
    let before = actual(&p, &schemas, &t.address).expect("table");
    let change = p
        .plan(Some(&as_view), Some(&before))
        .expect("plan")
        .expect("change");
    assert_eq!(change.action, Action::Replace);
    assert!(change.destructive);
    assert_eq!(change.impact.rows, Some(0));
    p.apply(&change).expect("apply");
    assert_eq!(
        diff(
            Some(&as_view),
            actual(&p, &schemas, &as_view.address).as_ref()
        ),
        None
    );
    assert_eq!(actual(&p, &schemas, &t.address), None);
    let back = table(
        "main",
        "orders",
        vec![col("id", BigInt, false, None)],
        Some("a table again"),
    );
    let change = p
        .plan(Some(&back), actual(&p, &schemas, &as_view.address).as_ref())
        .expect("plan")
        .expect("change");
    assert_eq!(change.action, Action::Replace);
    assert!(!change.destructive);
    p.apply(&change).expect("apply");
    assert_eq!(actual(&p, &schemas, &back.address), Some(back.clone()));
    assert_eq!(actual(&p, &schemas, &as_view.address), None);

    // Delete the table.
    let change = converge(&p, None, &back.address, &schemas);
    assert_eq!(change.action, Action::Delete);
    assert_eq!(
        change.statements,
        vec!["DROP TABLE \"main\".\"orders\"".to_string()]
    );
}

#[test]
fn destructive_changes_are_measured() {
    use LogicalType::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path());
    let schemas = vec!["main".to_string()];
    let t = table(
        "main",
        "t",
        vec![col("id", Integer, true, None), col("c", String, true, None)],
        None,
    );
    converge(&p, Some(&t), &t.address, &schemas);
    exec(
        &p,
        "INSERT INTO main.t VALUES (1, 'a'), (2, 'b'), (NULL, NULL)",
    );
    let have = actual(&p, &schemas, &t.address).expect("table");

    // Drop the table: 3 rows.
    let change = p.plan(None, Some(&have)).expect("plan").expect("change");
    assert_eq!(change.action, Action::Delete);
    assert!(change.destructive);
    assert_eq!(change.impact.rows, Some(3));
    assert!(!change.reasons.is_empty());
    assert_eq!(change.after, None);
    assert_eq!(change.before.as_ref(), Some(&have));

    // Drop a column holding 2 non-null values.
    let without_c = table("main", "t", vec![col("id", Integer, true, None)], None);
    let change = p
        .plan(Some(&without_c), Some(&have))
        .expect("plan")
        .expect("change");
    assert!(change.destructive);
    assert_eq!(change.impact.values, vec![("c".to_string(), 2)]);

    // SET NOT NULL on a column with one NULL: 1 violation, destructive, and applying it fails
    // atomically with the failing statement named.
    let not_null = table(
        "main",
        "t",
        vec![
            col("id", Integer, false, None),
            col("c", String, true, Some("kept?")),
        ],
        None,
    );
    let queries = p.queries_run();
    let change = p
        .plan(Some(&not_null), Some(&have))
        .expect("plan")
        .expect("change");
    assert_eq!(p.queries_run() - queries, 1, "one impact query per table");
    assert!(change.destructive);
    assert_eq!(change.impact.violations, vec![("id".to_string(), 1)]);
    assert!(
        change
            .reasons
            .iter()
            .any(|r| r.contains("NULL") && r.contains("id")),
        "{:?}",
        change.reasons
    );
    let err = p.apply(&change).expect_err("violates NOT NULL");
    match &err {
        ProviderError::Database { store, context, .. } => {
            assert_eq!(store, STORE);
            assert!(context.contains("SET NOT NULL"), "{context}");
        }
        other => panic!("{other}"),
    }
    // Rolled back: the column comment of the same change was not kept either.
    assert_eq!(actual(&p, &schemas, &t.address), Some(have.clone()));

    // Adding a NOT NULL column to a table with rows: every row violates it.
    let mut cols = vec![
        col("id", Integer, true, None),
        col("c", String, true, None),
        col("d", Date, false, None),
    ];
    let change = p
        .plan(Some(&table("main", "t", cols.clone(), None)), Some(&have))
        .expect("plan")
        .expect("change");
    assert!(change.destructive);
    assert_eq!(change.impact.violations, vec![("d".to_string(), 3)]);
    // Widening is not destructive and measures nothing.
    cols.pop();
    cols[0].ty = BigInt;
    let queries = p.queries_run();
    let change = p
        .plan(Some(&table("main", "t", cols, None)), Some(&have))
        .expect("plan")
        .expect("change");
    assert!(!change.destructive);
    assert!(change.impact.is_empty());
    assert_eq!(p.queries_run(), queries, "nothing to measure, no query");
}

#[test]
fn refresh_is_bulk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path());
    let schemas = vec!["main".to_string(), "a".to_string(), "b".to_string()];
    let mut statements = vec!["CREATE SCHEMA a".to_string(), "CREATE SCHEMA b".to_string()];
    for i in 0..200 {
        let s = ["main", "a", "b"][i % 3];
        statements.push(format!(
            "CREATE TABLE {s}.t{i} (id INTEGER NOT NULL, v VARCHAR, d DECIMAL(10,2))"
        ));
        statements.push(format!("COMMENT ON TABLE {s}.t{i} IS 'table {i}'"));
        if i % 10 == 0 {
            statements.push(format!("CREATE VIEW {s}.v{i} AS SELECT * FROM {s}.t{i}"));
        }
    }
    let change = Change {
        address: "bulk".into(),
        store: STORE.into(),
        action: Action::Create,
        before: None,
        after: None,
        ops: vec![],
        destructive: false,
        reasons: vec![],
        impact: Default::default(),
        statements,
    };
    p.apply(&change).expect("create 200 tables");
    let before = p.queries_run();
    let all = p.refresh(&schemas).expect("refresh");
    let per_refresh = p.queries_run() - before;
    assert_eq!(
        all.iter()
            .filter(|r| matches!(r.spec, ResourceSpec::Table { .. }))
            .count(),
        200
    );
    assert_eq!(
        all.iter()
            .filter(|r| matches!(r.spec, ResourceSpec::View { .. }))
            .count(),
        20
    );
    assert_eq!(
        all.iter()
            .filter(|r| matches!(r.spec, ResourceSpec::Schema { .. }))
            .count(),
        3
    );
    assert_eq!(per_refresh, 3, "one query per object type");
    let t7 = all
        .iter()
        .find(|r| r.address == "table.wh.a.t7")
        .expect("t7");
    assert_eq!(
        t7,
        &table(
            "a",
            "t7",
            vec![
                col("id", LogicalType::Integer, false, None),
                col("v", LogicalType::String, true, None),
                col("d", LogicalType::Decimal(10, 2), true, None)
            ],
            Some("table 7")
        )
    );
    // The same number of queries for one schema with fewer objects.
    let before = p.queries_run();
    p.refresh(&["b".to_string()]).expect("refresh");
    assert_eq!(p.queries_run() - before, per_refresh);
    // No schemas, no queries.
    let before = p.queries_run();
    assert!(p.refresh(&[]).expect("refresh").is_empty());
    assert_eq!(p.queries_run(), before);
}

#[test]
fn changes_made_outside_dk_show_up_as_a_diff() {
    use LogicalType::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let schemas = vec!["main".to_string()];
    let t = table(
        "main",
        "users",
        vec![
            col("id", BigInt, false, Some("key")),
            col("email", String, true, None),
        ],
        Some("users"),
    );
    let v = view(
        "main",
        "emails",
        "SELECT email FROM main.users",
        Some("emails"),
    );
    {
        let p = open(dir.path());
        converge(&p, Some(&t), &t.address, &schemas);
        converge(&p, Some(&v), &v.address, &schemas);
    }
    {
        let conn = duckdb::Connection::open(dir.path().join("wh.duckdb")).expect("open directly");
        conn.execute_batch(
            "ALTER TABLE main.users ADD COLUMN age INTEGER; \
             COMMENT ON COLUMN main.users.email IS 'pii'; \
             ALTER TABLE main.users ALTER COLUMN id DROP NOT NULL; \
             CREATE OR REPLACE VIEW main.emails AS SELECT lower(email) AS email FROM main.users;",
        )
        .expect("drift");
    }
    let p = open(dir.path());
    let got = actual(&p, &schemas, &t.address).expect("table");
    let d = diff(Some(&t), Some(&got)).expect("drift shows");
    assert!(
        d.ops.contains(&ColumnOp::DropColumn {
            column: "age".into()
        }),
        "{:?}",
        d.ops
    );
    assert!(d.ops.contains(&ColumnOp::SetNotNull {
        column: "id".into()
    }));
    assert!(d.ops.contains(&ColumnOp::SetColumnComment {
        column: "email".into(),
        from: Some("pii".into()),
        to: None
    }));
    let gotv = actual(&p, &schemas, &v.address).expect("view");
    let d = diff(Some(&v), Some(&gotv)).expect("view drift shows");
    assert!(
        matches!(d.ops.as_slice(), [ColumnOp::ReplaceQuery { .. }, ..]),
        "{:?} {gotv:?}",
        d.ops
    );
    // And planning puts it back.
    converge(&p, Some(&t), &t.address, &schemas);
    converge(&p, Some(&v), &v.address, &schemas);
}

#[test]
fn views_written_outside_dk_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path());
    exec(
        &p,
        "create view \"main\".\"My View\" (a, b) as\n  select 1, 'as' -- done",
    );
    let got = actual(&p, &["main".to_string()], "view.wh.main.My View").expect("view");
    match &got.spec {
        ResourceSpec::View {
            sql,
            comment,
            columns,
            ..
        } => {
            assert_eq!(dk_providers::diff::normalize_sql(sql), "SELECT 1, 'as'");
            assert_eq!(comment, &None);
            assert!(columns.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unmappable_types_are_reported_not_coerced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path());
    exec(&p, "CREATE TABLE main.odd (id INTEGER, tags VARCHAR[])");
    let err = p
        .refresh(&["main".to_string()])
        .expect_err("unrepresentable");
    match &err {
        ProviderError::Unrepresentable { message, .. } => {
            assert!(
                message.contains("tags")
                    && message.contains("main.odd")
                    && message.contains("VARCHAR[]"),
                "{message}"
            )
        }
        other => panic!("{other}"),
    }
}

#[test]
fn open_resolves_paths_and_reports_bad_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = DuckProvider::open(&store("nested/deeper/db.duckdb".into()), dir.path())
        .expect("open nested");
    assert!(dir.path().join("nested/deeper/db.duckdb").exists());
    assert!(p.location().ends_with("db.duckdb"));
    drop(p);

    let abs = dir.path().join("abs.duckdb");
    let p = DuckProvider::open(
        &store(abs.display().to_string().into()),
        Path::new("/nonexistent"),
    )
    .expect("absolute");
    assert_eq!(p.location(), abs.display().to_string());

    let mem = DuckProvider::open(&store(":memory:".into()), dir.path()).expect("memory");
    assert_eq!(
        mem.refresh(&["main".to_string()]).expect("refresh"),
        vec![schema("main")]
    );

    let mut missing = store("x".into());
    missing.connection.clear();
    let err = DuckProvider::open(&missing, dir.path()).expect_err("no path");
    assert!(
        matches!(&err, ProviderError::Config { message, .. } if message.contains("connection.path")),
        "{err}"
    );
    let err = DuckProvider::open(&store(serde_json::json!(5)), dir.path()).expect_err("bad path");
    assert!(matches!(err, ProviderError::Config { .. }), "{err}");
    let err = DuckProvider::open(&store("nested".into()), dir.path()).expect_err("a directory");
    assert!(err.to_string().contains("nested"), "{err}");
    std::fs::write(dir.path().join("file"), b"x").expect("write");
    let err = DuckProvider::open(&store("file/sub/db.duckdb".into()), dir.path())
        .expect_err("parent is a file");
    assert!(
        matches!(&err, ProviderError::Connect { message, .. } if message.contains("file/sub")),
        "{err}"
    );
    std::fs::write(
        dir.path().join("garbage.duckdb"),
        b"not a database at all, really not",
    )
    .expect("write");
    let err = DuckProvider::open(&store("garbage.duckdb".into()), dir.path())
        .expect_err("not a database");
    assert!(
        matches!(&err, ProviderError::Connect { message, .. } if message.contains("garbage.duckdb")),
        "{err}"
    );
    let mut threads = store(":memory:".into());
    threads
        .connection
        .insert("threads".into(), serde_json::json!("many"));
    assert!(matches!(
        DuckProvider::open(&threads, dir.path()),
        Err(ProviderError::Config { .. })
    ));
    threads
        .connection
        .insert("threads".into(), serde_json::json!(2));
    assert!(DuckProvider::open(&threads, dir.path()).is_ok());
}

#[test]
fn a_project_store_connects_through_the_provider_enum() {
    let text = r#"
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Project
metadata: {name: shop}
spec: {defaultEnvironment: dev}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Connector
metadata: {name: duckdb}
spec: {type: duckdb, capabilities: [source, destination]}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Store
metadata: {name: wh}
spec:
  connector: duckdb
  connection: {path: .dk/warehouse.duckdb, threads: 2}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Environment
metadata: {name: dev}
spec: {tier: dev}
"#;
    let m = dk_manifest::loader::load_str("p.yaml", text);
    let resolved = dk_env::resolve(&m, None, &IndexMap::new()).expect("resolve");
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let p = Provider::connect(&resolved.stores["wh"], dir.path())
            .await
            .expect("connect");
        assert_eq!(p.default_schema(), "main");
        let t = table(
            "main",
            "t",
            vec![col("id", LogicalType::Uuid, false, None)],
            None,
        );
        let change = p.plan(Some(&t), None).await.expect("plan").expect("change");
        p.apply(&change).await.expect("apply");
        let all = p.refresh(&["main".to_string()]).await.expect("refresh");
        assert!(all.contains(&t));
    });
    assert!(dir.path().join(".dk/warehouse.duckdb").exists());
}

/// Refresh of 10,000 tables (run by hand: `cargo test -p dk-providers --test duckdb -- --ignored
/// --nocapture`); prints the time, asserts only the query count.
#[test]
#[ignore]
fn refresh_of_ten_thousand_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path());
    let statements = (0..10_000)
        .map(|i| format!("CREATE TABLE main.t{i} (id BIGINT NOT NULL, name VARCHAR, amount DECIMAL(12,2), created TIMESTAMP)"))
        .collect();
    let change = Change {
        address: "bulk".into(),
        store: STORE.into(),
        action: Action::Create,
        before: None,
        after: None,
        ops: vec![],
        destructive: false,
        reasons: vec![],
        impact: Default::default(),
        statements,
    };
    let started = std::time::Instant::now();
    p.apply(&change).expect("create");
    eprintln!("created 10,000 tables in {:?}", started.elapsed());
    let before = p.queries_run();
    let started = std::time::Instant::now();
    let all = p.refresh(&["main".to_string()]).expect("refresh");
    eprintln!(
        "refreshed {} resources in {:?}",
        all.len(),
        started.elapsed()
    );
    assert_eq!(all.len(), 10_001);
    assert_eq!(p.queries_run() - before, 3);
}

#[test]
fn empty_comments_are_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = open(dir.path());
    let schemas = vec!["main".to_string()];
    let t = table(
        "main",
        "t",
        vec![col("a", LogicalType::Integer, true, Some(""))],
        Some(""),
    );
    converge(&p, Some(&t), &t.address, &schemas);
    assert_eq!(actual(&p, &schemas, &t.address), Some(t.clone()));
    let v = view("main", "v", "SELECT a FROM main.t", Some(""));
    converge(&p, Some(&v), &v.address, &schemas);
    assert_eq!(actual(&p, &schemas, &v.address), Some(v.clone()));
    // From "" to none is a change, and converges too.
    let t2 = table(
        "main",
        "t",
        vec![col("a", LogicalType::Integer, true, None)],
        None,
    );
    let change = converge(&p, Some(&t2), &t2.address, &schemas);
    assert_eq!(change.ops.len(), 2);
    let v2 = view("main", "v", "SELECT a FROM main.t", None);
    converge(&p, Some(&v2), &v2.address, &schemas);
    assert_eq!(actual(&p, &schemas, &v2.address), Some(v2));
}
