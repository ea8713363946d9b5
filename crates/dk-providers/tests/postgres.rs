//! Integration tests of the PostgreSQL provider against a real server: `DK_TEST_PG_URL`
//! (default `host=127.0.0.1 port=5432 user=postgres dbname=test`, trust auth). An unreachable
//! server fails the tests, saying how to start it. Each test works in its own schema
//! (`dk_pg_<pid>_<n>`), dropped at the end even when the test fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dk_env::ResolvedStore;
use dk_providers::diff::diff;
use dk_providers::model::{
    Action, Change, ColumnOp, ColumnSpec, LogicalType, Resource, ResourceSpec,
};
use dk_providers::postgres::PgProvider;
use dk_providers::ProviderError;
use dk_test_support::{pg_url, TestSchema};
use indexmap::IndexMap;
use serde_json::Value;

const STORE: &str = "wh";

fn store_with(connection: &[(&str, Value)]) -> ResolvedStore {
    ResolvedStore {
        name: STORE.to_string(),
        connector: Some("postgres".into()),
        connector_type: "postgres".into(),
        connection: connection
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<IndexMap<_, _>>(),
        secrets: IndexMap::new(),
        bound: false,
        file: Arc::from("stores/wh.yaml"),
    }
}

fn store() -> ResolvedStore {
    store_with(&[("connection_string", Value::from(pg_url()))])
}

/// A plain client for setting up data and changing things behind dk's back. Fails (never skips)
/// when the server is unreachable.
async fn admin() -> tokio_postgres::Client {
    dk_test_support::connect(&pg_url()).await
}

async fn provider() -> PgProvider {
    admin().await; // the helpful message when the server is down
    match PgProvider::connect(&store()).await {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn col(name: &str, ty: LogicalType, nullable: bool, comment: Option<&str>) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        ty,
        nullable,
        comment: comment.map(str::to_string),
    }
}

fn schema_res(schema: &str) -> Resource {
    Resource::new(
        STORE,
        ResourceSpec::Schema {
            name: schema.into(),
        },
        vec![],
    )
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

fn view(
    schema: &str,
    name: &str,
    sql: &str,
    columns: Vec<ColumnSpec>,
    comment: Option<&str>,
) -> Resource {
    Resource::new(
        STORE,
        ResourceSpec::View {
            schema: schema.into(),
            name: name.into(),
            sql: sql.into(),
            columns,
            comment: comment.map(str::to_string),
        },
        vec![format!("schema.{STORE}.{schema}")],
    )
}

async fn refreshed(p: &PgProvider, schema: &str, address: &str) -> Option<Resource> {
    match p.refresh(&[schema.to_string()]).await {
        Ok(all) => all.into_iter().find(|r| r.address == address),
        Err(e) => panic!("refresh: {e}"),
    }
}

async fn plan(
    p: &PgProvider,
    desired: Option<&Resource>,
    actual: Option<&Resource>,
) -> Option<Change> {
    match p.plan(desired, actual).await {
        Ok(c) => c,
        Err(e) => panic!("plan: {e}"),
    }
}

async fn apply(p: &PgProvider, change: &Change) {
    if let Err(e) = p.apply(change).await {
        panic!(
            "apply {:?} {}: {e}\nstatements: {:#?}",
            change.action, change.address, change.statements
        );
    }
}

/// Plans `desired` against what the store has now, applies it, and checks that a fresh refresh
/// matches (`diff` is None, and a second plan finds nothing). Returns the applied change.
async fn converge(
    p: &PgProvider,
    schema: &str,
    desired: Option<&Resource>,
    address: &str,
) -> Change {
    let actual = refreshed(p, schema, address).await;
    let Some(change) = plan(p, desired, actual.as_ref()).await else {
        panic!("expected a change for {address}");
    };
    assert_eq!(change.address, address);
    assert_eq!(change.store, STORE);
    assert_eq!(change.before, actual);
    assert_eq!(change.after.as_ref(), desired);
    apply(p, &change).await;
    let after = refreshed(p, schema, address).await;
    assert_eq!(
        diff(desired, after.as_ref()),
        None,
        "after {:?}:\nwanted {desired:#?}\ngot {after:#?}",
        change.statements
    );
    assert_eq!(plan(p, desired, after.as_ref()).await, None);
    change
}

async fn ensure_schema(p: &PgProvider, schema: &str) {
    converge(
        p,
        schema,
        Some(&schema_res(schema)),
        &format!("schema.{STORE}.{schema}"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_logical_type_round_trips() {
    let s = TestSchema::named("dk_pg");
    let p = provider().await;
    ensure_schema(&p, &s.name).await;
    let types = [
        LogicalType::SmallInt,
        LogicalType::Integer,
        LogicalType::BigInt,
        LogicalType::Float,
        LogicalType::Double,
        LogicalType::Decimal(10, 2),
        LogicalType::Decimal(18, 3),
        LogicalType::Decimal(38, 0),
        LogicalType::Decimal(1, 1),
        LogicalType::Boolean,
        LogicalType::String,
        LogicalType::Date,
        LogicalType::Time,
        LogicalType::Timestamp,
        LogicalType::TimestampTz,
        LogicalType::Json,
        LogicalType::Binary,
        LogicalType::Uuid,
    ];
    let mut columns = Vec::new();
    for (i, ty) in types.iter().enumerate() {
        for nullable in [true, false] {
            let comment = match i % 3 {
                0 => None,
                1 => Some(format!("{ty} column, it's \"quoted\"")),
                _ => Some(format!("PII: email\nclassification: confidential ü {i}")),
            };
            columns.push(ColumnSpec {
                name: format!("c_{i}_{}", if nullable { "null" } else { "notnull" }),
                ty: *ty,
                nullable,
                comment,
            });
        }
    }
    // Bare `decimal` is decimal(18,3).
    columns.push(col(
        "Mixed Case \"col\"",
        LogicalType::parse("decimal").unwrap_or(LogicalType::Boolean),
        false,
        None,
    ));
    let t = table(
        &s.name,
        "all types",
        columns,
        Some("Every type.\nOwner: data-team; it's fine"),
    );
    let change = converge(&p, &s.name, Some(&t), &t.address).await;
    assert_eq!(change.action, Action::Create);
    assert!(!change.destructive);
    assert!(change.impact.is_empty());
    // Full equality, not only "no diff".
    assert_eq!(refreshed(&p, &s.name, &t.address).await, Some(t.clone()));

    let v = view(
        &s.name,
        "v all",
        &format!("select \"c_0_null\" as small,\n       c_9_notnull as flag -- a comment\n  from \"{}\".\"all types\"\n where c_2_null > 0;\n", s.name),
        vec![col("small", LogicalType::SmallInt, true, Some("the small one")), col("flag", LogicalType::Boolean, true, None)],
        Some("A view; with 'quotes'"),
    );
    converge(&p, &s.name, Some(&v), &v.address).await;
    assert_eq!(refreshed(&p, &s.name, &v.address).await, Some(v.clone()));

    // A view without comment keeps none.
    let v2 = view(&s.name, "v2", "SELECT 1 AS one", vec![], None);
    converge(&p, &s.name, Some(&v2), &v2.address).await;
    let Some(Resource {
        spec:
            ResourceSpec::View {
                comment,
                sql,
                columns,
                ..
            },
        ..
    }) = refreshed(&p, &s.name, &v2.address).await
    else {
        panic!("view v2 missing");
    };
    assert_eq!((comment, sql.as_str()), (None, "SELECT 1 AS one"));
    assert_eq!(columns, vec![col("one", LogicalType::Integer, true, None)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_change_kind_applies() {
    let s = TestSchema::named("dk_pg");
    let p = provider().await;
    ensure_schema(&p, &s.name).await;
    let name = "orders";
    let v1 = table(
        &s.name,
        name,
        vec![
            col("id", LogicalType::Integer, false, Some("key")),
            col("amount", LogicalType::Double, true, None),
            col("note", LogicalType::String, true, None),
        ],
        None,
    );
    converge(&p, &s.name, Some(&v1), &v1.address).await;

    let steps: Vec<(&str, Resource)> = vec![
        (
            "add column",
            table(
                &s.name,
                name,
                vec![
                    col("id", LogicalType::Integer, false, Some("key")),
                    col("amount", LogicalType::Double, true, None),
                    col("note", LogicalType::String, true, None),
                    col("created", LogicalType::TimestampTz, false, Some("when")),
                ],
                None,
            ),
        ),
        (
            "drop column",
            table(
                &s.name,
                name,
                vec![
                    col("id", LogicalType::Integer, false, Some("key")),
                    col("amount", LogicalType::Double, true, None),
                    col("created", LogicalType::TimestampTz, false, Some("when")),
                ],
                None,
            ),
        ),
        (
            "widen type",
            table(
                &s.name,
                name,
                vec![
                    col("id", LogicalType::BigInt, false, Some("key")),
                    col("amount", LogicalType::Double, true, None),
                    col("created", LogicalType::TimestampTz, false, Some("when")),
                ],
                None,
            ),
        ),
        (
            "narrow type",
            table(
                &s.name,
                name,
                vec![
                    col("id", LogicalType::BigInt, false, Some("key")),
                    col("amount", LogicalType::Decimal(12, 2), true, None),
                    col("created", LogicalType::TimestampTz, false, Some("when")),
                ],
                None,
            ),
        ),
        (
            "set not null",
            table(
                &s.name,
                name,
                vec![
                    col("id", LogicalType::BigInt, false, Some("key")),
                    col("amount", LogicalType::Decimal(12, 2), false, None),
                    col("created", LogicalType::TimestampTz, false, Some("when")),
                ],
                None,
            ),
        ),
        (
            "drop not null",
            table(
                &s.name,
                name,
                vec![
                    col("id", LogicalType::BigInt, true, Some("key")),
                    col("amount", LogicalType::Decimal(12, 2), false, None),
                    col("created", LogicalType::TimestampTz, false, Some("when")),
                ],
                None,
            ),
        ),
        (
            "comment change",
            table(
                &s.name,
                name,
                vec![
                    col("id", LogicalType::BigInt, true, None),
                    col("amount", LogicalType::Decimal(12, 2), false, Some("in EUR")),
                    col(
                        "created",
                        LogicalType::TimestampTz,
                        false,
                        Some("when it happened"),
                    ),
                ],
                Some("Orders"),
            ),
        ),
        (
            "everything at once",
            table(
                &s.name,
                name,
                vec![
                    col("id", LogicalType::Integer, false, Some("key again")),
                    col("amount", LogicalType::String, true, None),
                    col("status", LogicalType::String, true, Some("new")),
                ],
                Some("Orders v2"),
            ),
        ),
    ];
    for (what, desired) in &steps {
        let change = converge(&p, &s.name, Some(desired), &desired.address).await;
        assert_eq!(change.action, Action::Update, "{what}");
        let expect_op = |f: &dyn Fn(&ColumnOp) -> bool| {
            assert!(change.ops.iter().any(f), "{what}: {:?}", change.ops)
        };
        match *what {
            "add column" => expect_op(
                &|o| matches!(o, ColumnOp::AddColumn { column } if column.name == "created"),
            ),
            "drop column" => {
                expect_op(&|o| matches!(o, ColumnOp::DropColumn { column } if column == "note"));
                assert!(change.destructive);
                assert_eq!(change.impact.values, vec![("note".to_string(), 0)]);
            }
            "widen type" => {
                expect_op(&|o| matches!(o, ColumnOp::ChangeType { column, .. } if column == "id"));
                assert!(!change.destructive, "{:?}", change.reasons);
            }
            "narrow type" => {
                expect_op(
                    &|o| matches!(o, ColumnOp::ChangeType { column, .. } if column == "amount"),
                );
                assert!(change.destructive);
            }
            "set not null" => {
                expect_op(&|o| matches!(o, ColumnOp::SetNotNull { column } if column == "amount"));
                // The table is empty: nothing violates it.
                assert!(!change.destructive, "{:?}", change.reasons);
            }
            "drop not null" => {
                expect_op(&|o| matches!(o, ColumnOp::DropNotNull { column } if column == "id"))
            }
            "comment change" => {
                expect_op(&|o| matches!(o, ColumnOp::SetComment { .. }));
                expect_op(&|o| matches!(o, ColumnOp::SetColumnComment { .. }));
            }
            _ => {}
        }
        assert_eq!(
            refreshed(&p, &s.name, &desired.address).await.as_ref(),
            Some(desired),
            "{what}"
        );
    }

    // Delete the table, then the schema.
    let last = &steps[steps.len() - 1].1;
    let change = converge(&p, &s.name, None, &last.address).await;
    assert_eq!(change.action, Action::Delete);
    assert_eq!(
        change.statements,
        vec![format!("DROP TABLE \"{}\".\"orders\"", s.name)]
    );
    assert_eq!(change.impact.rows, Some(0));
    let change = converge(&p, &s.name, None, &format!("schema.{STORE}.{}", s.name)).await;
    assert_eq!(
        change.statements,
        vec![format!("DROP SCHEMA \"{}\"", s.name)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_view_change_kind_applies() {
    let s = TestSchema::named("dk_pg");
    let p = provider().await;
    ensure_schema(&p, &s.name).await;
    let src = table(
        &s.name,
        "src",
        vec![
            col("id", LogicalType::BigInt, false, None),
            col("v", LogicalType::Double, true, None),
        ],
        None,
    );
    converge(&p, &s.name, Some(&src), &src.address).await;
    let q = format!("\"{}\".src", s.name);

    // Create.
    let v1 = view(
        &s.name,
        "daily",
        &format!("select id, v from {q} where v > 0"),
        vec![],
        Some("daily numbers"),
    );
    let c = converge(&p, &s.name, Some(&v1), &v1.address).await;
    assert_eq!(c.action, Action::Create);

    // Whitespace-only changes are no change.
    let same = view(
        &s.name,
        "daily",
        &format!("select id,   v\nfrom {q}\nwhere v > 0;"),
        vec![],
        Some("daily numbers"),
    );
    assert_eq!(
        plan(
            &p,
            Some(&same),
            refreshed(&p, &s.name, &v1.address).await.as_ref()
        )
        .await,
        None
    );

    // Update in place: same columns, another filter, one more column at the end.
    let v2 = view(
        &s.name,
        "daily",
        &format!("select id, v, v * 2 as double_v from {q} where v > 1"),
        vec![],
        Some("daily numbers"),
    );
    let c = converge(&p, &s.name, Some(&v2), &v2.address).await;
    assert_eq!(c.action, Action::Update);
    assert!(
        c.statements[0].starts_with("CREATE OR REPLACE VIEW"),
        "{:?}",
        c.statements
    );

    // Comment only.
    let v3 = view(
        &s.name,
        "daily",
        &format!("select id, v, v * 2 as double_v from {q} where v > 1"),
        vec![],
        None,
    );
    let c = converge(&p, &s.name, Some(&v3), &v3.address).await;
    assert_eq!(c.action, Action::Update);
    assert_eq!(c.ops.len(), 1, "{:?}", c.ops);

    // Columns change incompatibly: replace (DROP VIEW + CREATE VIEW, no CASCADE).
    let v4 = view(
        &s.name,
        "daily",
        &format!("select v::text as v_text, id from {q}"),
        vec![],
        Some("replaced"),
    );
    let c = converge(&p, &s.name, Some(&v4), &v4.address).await;
    assert_eq!(c.action, Action::Replace);
    assert!(
        c.statements[0].starts_with("DROP VIEW"),
        "{:?}",
        c.statements
    );
    assert!(c
        .statements
        .iter()
        .all(|s| !s.to_uppercase().contains("CASCADE")));
    assert!(!c.destructive);

    // A dependent view makes a replace fail at apply, clearly, and nothing changes.
    let dep = view(
        &s.name,
        "dep",
        &format!("select v_text from \"{}\".daily", s.name),
        vec![],
        None,
    );
    converge(&p, &s.name, Some(&dep), &dep.address).await;
    let v5 = view(
        &s.name,
        "daily",
        &format!("select id from {q}"),
        vec![],
        None,
    );
    let actual = refreshed(&p, &s.name, &v5.address).await;
    let Some(c) = plan(&p, Some(&v5), actual.as_ref()).await else {
        panic!("expected a change");
    };
    assert_eq!(c.action, Action::Replace);
    match p.apply(&c).await {
        Err(ProviderError::Database {
            context, message, ..
        }) => {
            assert!(context.starts_with("DROP VIEW"), "{context}");
            assert!(
                message.contains("depend") && message.contains("no CASCADE"),
                "{message}"
            );
        }
        other => panic!("expected a dependent-object error, got {other:?}"),
    }
    assert_eq!(refreshed(&p, &s.name, &v5.address).await, actual);
    converge(&p, &s.name, None, &dep.address).await;

    // View → table and table → view.
    let as_table = table(
        &s.name,
        "daily",
        vec![col("x", LogicalType::Integer, true, None)],
        None,
    );
    let view_addr = v4.address.clone();
    let actual = refreshed(&p, &s.name, &view_addr).await;
    let Some(c) = plan(&p, Some(&as_table), actual.as_ref()).await else {
        panic!("expected a replace");
    };
    assert_eq!(c.action, Action::Replace);
    assert!(!c.destructive);
    apply(&p, &c).await;
    assert_eq!(refreshed(&p, &s.name, &view_addr).await, None);
    assert_eq!(
        refreshed(&p, &s.name, &as_table.address).await,
        Some(as_table.clone())
    );
    admin()
        .await
        .batch_execute(&format!("INSERT INTO \"{}\".daily VALUES (1), (2)", s.name))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let actual = refreshed(&p, &s.name, &as_table.address).await;
    let Some(c) = plan(&p, Some(&v4), actual.as_ref()).await else {
        panic!("expected a replace");
    };
    assert_eq!(c.action, Action::Replace);
    assert!(c.destructive);
    assert_eq!(c.impact.rows, Some(2));
    apply(&p, &c).await;
    assert_eq!(
        diff(Some(&v4), refreshed(&p, &s.name, &view_addr).await.as_ref()),
        None
    );

    // Delete.
    let c = converge(&p, &s.name, None, &view_addr).await;
    assert_eq!(
        c.statements,
        vec![format!("DROP VIEW \"{}\".\"daily\"", s.name)]
    );
    assert!(!c.destructive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destructive_changes_are_measured() {
    let s = TestSchema::named("dk_pg");
    let p = provider().await;
    let db = admin().await;
    ensure_schema(&p, &s.name).await;
    let t = table(
        &s.name,
        "t",
        vec![
            col("id", LogicalType::BigInt, false, None),
            col("c", LogicalType::String, true, None),
            col("n", LogicalType::Double, true, None),
        ],
        None,
    );
    converge(&p, &s.name, Some(&t), &t.address).await;
    db.batch_execute(&format!(
        "INSERT INTO \"{}\".t VALUES (1, 'a', 1.5), (2, 'b', NULL), (3, NULL, 2.5)",
        s.name
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let actual = refreshed(&p, &s.name, &t.address).await;

    // Drop the table: 3 rows.
    let Some(c) = plan(&p, None, actual.as_ref()).await else {
        panic!("expected a delete")
    };
    assert_eq!(
        (c.action, c.destructive, c.impact.rows),
        (Action::Delete, true, Some(3))
    );
    assert!(!c.reasons.is_empty());

    // Drop a column with 2 non-null values.
    let no_c = table(
        &s.name,
        "t",
        vec![
            col("id", LogicalType::BigInt, false, None),
            col("n", LogicalType::Double, true, None),
        ],
        None,
    );
    let Some(c) = plan(&p, Some(&no_c), actual.as_ref()).await else {
        panic!("expected an update")
    };
    assert!(c.destructive);
    assert_eq!(c.impact.values, vec![("c".to_string(), 2)]);

    // Narrow a column with 2 non-null values.
    let narrow = table(
        &s.name,
        "t",
        vec![
            col("id", LogicalType::BigInt, false, None),
            col("c", LogicalType::String, true, None),
            col("n", LogicalType::Float, true, None),
        ],
        None,
    );
    let Some(c) = plan(&p, Some(&narrow), actual.as_ref()).await else {
        panic!("expected an update")
    };
    assert!(c.destructive);
    assert_eq!(c.impact.values, vec![("n".to_string(), 2)]);

    // SET NOT NULL on a column with 1 null: 1 violation, destructive, apply fails and rolls back.
    let not_null = table(
        &s.name,
        "t",
        vec![
            col("id", LogicalType::BigInt, false, None),
            col("c", LogicalType::String, false, Some("now required")),
            col("n", LogicalType::Double, true, None),
        ],
        None,
    );
    let Some(c) = plan(&p, Some(&not_null), actual.as_ref()).await else {
        panic!("expected an update")
    };
    assert!(c.destructive, "{c:?}");
    assert_eq!(c.impact.violations, vec![("c".to_string(), 1)]);
    assert!(
        c.reasons
            .iter()
            .any(|r| r.contains("NOT NULL") && r.contains('1')),
        "{:?}",
        c.reasons
    );
    match p.apply(&c).await {
        Err(ProviderError::Database {
            context, message, ..
        }) => {
            assert_eq!(
                context,
                format!(
                    "ALTER TABLE \"{}\".\"t\" ALTER COLUMN \"c\" SET NOT NULL",
                    s.name
                )
            );
            assert!(message.contains("null"), "{message}");
        }
        other => panic!("expected the NOT NULL to fail, got {other:?}"),
    }
    // The comment was in the same transaction: rolled back too.
    assert_eq!(refreshed(&p, &s.name, &t.address).await, actual);

    // A NOT NULL column added to a non-empty table: added nullable, then SET NOT NULL, 3 violations.
    let add = table(
        &s.name,
        "t",
        vec![
            col("id", LogicalType::BigInt, false, None),
            col("c", LogicalType::String, true, None),
            col("n", LogicalType::Double, true, None),
            col("d", LogicalType::Date, false, None),
        ],
        None,
    );
    let Some(c) = plan(&p, Some(&add), actual.as_ref()).await else {
        panic!("expected an update")
    };
    assert!(c.destructive);
    assert_eq!(c.impact.violations, vec![("d".to_string(), 3)]);
    assert_eq!(
        c.statements,
        vec![
            format!("ALTER TABLE \"{}\".\"t\" ADD COLUMN \"d\" date", s.name),
            format!(
                "ALTER TABLE \"{}\".\"t\" ALTER COLUMN \"d\" SET NOT NULL",
                s.name
            ),
        ]
    );

    // Safe changes measure nothing destructive.
    let widen = table(
        &s.name,
        "t",
        vec![
            col("id", LogicalType::BigInt, true, None),
            col("c", LogicalType::String, true, None),
            col("n", LogicalType::Double, true, Some("x")),
        ],
        None,
    );
    let Some(c) = plan(&p, Some(&widen), actual.as_ref()).await else {
        panic!("expected an update")
    };
    assert!(
        !c.destructive && c.reasons.is_empty() && c.impact.is_empty(),
        "{c:?}"
    );

    // A desired resource that does not exist yet is not measured.
    let fresh = table(
        &s.name,
        "fresh",
        vec![col("id", LogicalType::BigInt, false, None)],
        None,
    );
    let before = p.query_count();
    let Some(c) = plan(&p, Some(&fresh), None).await else {
        panic!("expected a create")
    };
    assert_eq!(p.query_count(), before);
    assert!(!c.destructive && c.impact.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_is_bulk() {
    let s = TestSchema::named("dk_pg");
    let p = provider().await;
    let db = admin().await;
    db.batch_execute(&format!(
        "CREATE SCHEMA \"{0}\";
         DO $$ BEGIN
           FOR i IN 1..200 LOOP
             EXECUTE format('CREATE TABLE %I.%I (id bigint NOT NULL, name text, amount numeric(10,2), at timestamptz)', '{0}', 't' || i);
             EXECUTE format('COMMENT ON COLUMN %I.%I.name IS %L', '{0}', 't' || i, 'name ' || i);
           END LOOP;
           FOR i IN 1..20 LOOP
             EXECUTE format('CREATE VIEW %I.%I AS SELECT id FROM %I.%I', '{0}', 'v' || i, '{0}', 't' || i);
           END LOOP;
         END $$;",
        s.name
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let before = p.query_count();
    let all = p
        .refresh(std::slice::from_ref(&s.name))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let used = p.query_count() - before;
    assert_eq!(all.len(), 1 + 200 + 20);
    assert_eq!(used, 3, "refresh must use a constant number of queries");
    let tables = all
        .iter()
        .filter(|r| matches!(r.spec, ResourceSpec::Table { .. }))
        .count();
    assert_eq!(tables, 200);
    let Some(Resource {
        spec: ResourceSpec::Table { columns, .. },
        depends_on,
        ..
    }) = all
        .iter()
        .find(|r| r.address == format!("table.{STORE}.{}.t17", s.name))
        .cloned()
    else {
        panic!("t17 missing");
    };
    assert_eq!(depends_on, vec![format!("schema.{STORE}.{}", s.name)]);
    assert_eq!(
        columns,
        vec![
            col("id", LogicalType::BigInt, false, None),
            col("name", LogicalType::String, true, Some("name 17")),
            col("amount", LogicalType::Decimal(10, 2), true, None),
            col("at", LogicalType::TimestampTz, true, None),
        ]
    );

    // Same count for one schema with one table, several schemas, or a missing schema.
    let before = p.query_count();
    let all = p
        .refresh(&[
            s.name.clone(),
            "dk_pg_no_such_schema".to_string(),
            "pg_catalog_nope".to_string(),
        ])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.query_count() - before, 3);
    assert_eq!(all.len(), 221);
    assert_eq!(p.refresh(&[]).await.map(|r| r.len()).ok(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_outside_dk_show_as_drift() {
    let s = TestSchema::named("dk_pg");
    let p = provider().await;
    let db = admin().await;
    ensure_schema(&p, &s.name).await;
    let t = table(
        &s.name,
        "t",
        vec![
            col("id", LogicalType::Integer, false, Some("key")),
            col("name", LogicalType::String, true, None),
        ],
        Some("T"),
    );
    converge(&p, &s.name, Some(&t), &t.address).await;
    let sql = |stmt: String| {
        let db = &db;
        async move {
            db.batch_execute(&stmt)
                .await
                .unwrap_or_else(|e| panic!("{stmt}: {e}"))
        }
    };
    let q = format!("\"{}\"", s.name);
    sql(format!("ALTER TABLE {q}.t ADD COLUMN extra integer")).await;
    sql(format!(
        "ALTER TABLE {q}.t ALTER COLUMN name TYPE varchar(10)"
    ))
    .await; // varchar(n) is still a string
    sql(format!("ALTER TABLE {q}.t ALTER COLUMN id DROP NOT NULL")).await;
    sql(format!("COMMENT ON COLUMN {q}.t.id IS 'changed'")).await;
    let actual = refreshed(&p, &s.name, &t.address).await;
    let Some(d) = diff(Some(&t), actual.as_ref()) else {
        panic!("drift must show")
    };
    assert!(
        d.ops.contains(&ColumnOp::DropColumn {
            column: "extra".into()
        }),
        "{:?}",
        d.ops
    );
    assert!(
        d.ops.contains(&ColumnOp::SetNotNull {
            column: "id".into()
        }),
        "{:?}",
        d.ops
    );
    assert!(
        d.ops
            .iter()
            .any(|o| matches!(o, ColumnOp::SetColumnComment { column, .. } if column == "id")),
        "{:?}",
        d.ops
    );
    assert!(
        !d.ops
            .iter()
            .any(|o| matches!(o, ColumnOp::ChangeType { .. })),
        "{:?}",
        d.ops
    );
    converge(&p, &s.name, Some(&t), &t.address).await;

    sql(format!("ALTER TABLE {q}.t ALTER COLUMN id TYPE bigint")).await;
    let actual = refreshed(&p, &s.name, &t.address).await;
    assert_eq!(
        diff(Some(&t), actual.as_ref()).map(|d| d.ops),
        Some(vec![ColumnOp::ChangeType {
            column: "id".into(),
            from: LogicalType::BigInt,
            to: LogicalType::Integer
        }])
    );
    converge(&p, &s.name, Some(&t), &t.address).await;

    // A view created by dk, then changed behind dk's back: its catalog definition comes back.
    let v = view(
        &s.name,
        "v",
        &format!("select id from \"{}\".t", s.name),
        vec![],
        Some("V"),
    );
    converge(&p, &s.name, Some(&v), &v.address).await;
    sql(format!(
        "CREATE OR REPLACE VIEW {q}.v AS SELECT id FROM {q}.t WHERE id > 5"
    ))
    .await;
    let actual = refreshed(&p, &s.name, &v.address).await;
    let Some(Resource {
        spec: ResourceSpec::View {
            sql: got, comment, ..
        },
        ..
    }) = actual.clone()
    else {
        panic!("view missing")
    };
    assert!(got.contains("id > 5"), "{got}");
    assert_eq!(comment.as_deref(), Some("V"));
    assert!(
        matches!(diff(Some(&v), actual.as_ref()).map(|d| d.ops), Some(ops) if matches!(ops.as_slice(), [ColumnOp::ReplaceQuery { .. }]))
    );
    converge(&p, &s.name, Some(&v), &v.address).await;

    // Comment replaced outside dk (marker lost): the catalog definition and the new comment.
    sql(format!("COMMENT ON VIEW {q}.v IS 'hand-written'")).await;
    let actual = refreshed(&p, &s.name, &v.address).await;
    let Some(d) = diff(Some(&v), actual.as_ref()) else {
        panic!("drift must show")
    };
    assert!(
        d.ops
            .iter()
            .any(|o| matches!(o, ColumnOp::SetComment { .. })),
        "{:?}",
        d.ops
    );
    converge(&p, &s.name, Some(&v), &v.address).await;

    // Dropped outside dk: refresh no longer has it, plan creates it again.
    sql(format!("DROP VIEW {q}.v")).await;
    assert_eq!(refreshed(&p, &s.name, &v.address).await, None);
    let c = converge(&p, &s.name, Some(&v), &v.address).await;
    assert_eq!(c.action, Action::Create);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_types_without_logical_type_are_never_hidden() {
    let s = TestSchema::named("dk_pg");
    let p = provider().await;
    let db = admin().await;
    ensure_schema(&p, &s.name).await;
    db.batch_execute(&format!(
        "CREATE TABLE \"{0}\".odd (id bigint NOT NULL, span interval, total numeric, code character(3) NOT NULL, tags text[], at timestamp(3));
         COMMENT ON COLUMN \"{0}\".odd.span IS 'how long';
         INSERT INTO \"{0}\".odd VALUES (1, '1 day', 1.5, 'abc', '{{a}}', now()), (2, NULL, NULL, 'xy', NULL, NULL);",
        s.name
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let addr = format!("table.{STORE}.{}.odd", s.name);
    let actual = refreshed(&p, &s.name, &addr).await;
    let Some(Resource {
        spec: ResourceSpec::Table { columns, .. },
        ..
    }) = actual.clone()
    else {
        panic!("odd missing")
    };
    let natives: Vec<Option<String>> = columns
        .iter()
        .map(dk_providers::postgres::native_type_of)
        .collect();
    assert_eq!(
        natives,
        vec![
            None,
            Some("interval".into()),
            Some("numeric".into()),
            Some("character(3)".into()),
            Some("text[]".into()),
            None
        ]
    );
    assert_eq!(columns[5].ty, LogicalType::Timestamp);
    assert_eq!(
        columns[1].comment.as_deref(),
        Some("how long\n-- dk:native {\"type\":\"interval\"}")
    );

    // Declared with logical types, including `string` for the character(3): never "no change".
    let desired = table(
        &s.name,
        "odd",
        vec![
            col("id", LogicalType::BigInt, false, None),
            col("span", LogicalType::String, true, Some("how long")),
            col("total", LogicalType::Decimal(18, 3), true, None),
            col("code", LogicalType::String, false, None),
            col("at", LogicalType::Timestamp, true, None),
        ],
        None,
    );
    let Some(c) = plan(&p, Some(&desired), actual.as_ref()).await else {
        panic!("unmappable columns must show as a change")
    };
    assert_eq!(c.action, Action::Update);
    assert!(c.destructive);
    for column in ["span", "total", "code"] {
        assert!(
            c.ops
                .iter()
                .any(|o| matches!(o, ColumnOp::ChangeType { column: x, .. } if x == column)),
            "{column}: {:?}",
            c.ops
        );
        assert!(
            c.reasons.iter().any(|r| r.contains(column)),
            "{column}: {:?}",
            c.reasons
        );
    }
    assert!(c.ops.contains(&ColumnOp::DropColumn {
        column: "tags".into()
    }));
    assert!(
        !c.ops
            .iter()
            .any(|o| matches!(o, ColumnOp::SetColumnComment { .. })),
        "{:?}",
        c.ops
    );
    let mut values = c.impact.values.clone();
    values.sort();
    assert_eq!(
        values,
        vec![
            ("code".to_string(), 2),
            ("span".to_string(), 1),
            ("tags".to_string(), 1),
            ("total".to_string(), 1)
        ]
    );
    apply(&p, &c).await;
    let after = refreshed(&p, &s.name, &addr).await;
    assert_eq!(diff(Some(&desired), after.as_ref()), None);
    assert_eq!(after, Some(desired));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_settings_and_errors() {
    admin().await;
    // Keys instead of a connection string, and a password resolved as a secret (trust auth
    // ignores it).
    let project = r#"
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Project
metadata: {name: shop}
spec: {defaultEnvironment: dev}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Connector
metadata: {name: postgres}
spec: {type: postgres, capabilities: [source, destination]}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Store
metadata: {name: wh}
spec:
  connector: postgres
  connection: {host: "${PGHOST_T}", port: "${PGPORT_T}", database: test, user: postgres, sslmode: prefer}
  secrets: {password: "${PG_PASSWORD_T}"}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Environment
metadata: {name: dev}
spec: {tier: dev}
"#;
    let model = dk_manifest::loader::load_str("p.yaml", project);
    assert!(model.diagnostics.is_empty(), "{:?}", model.diagnostics);
    let vars = |port: &str| -> IndexMap<String, String> {
        [
            ("PGHOST_T", "127.0.0.1"),
            ("PGPORT_T", port),
            ("PG_PASSWORD_T", "s3cr3t-pass"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let resolved = dk_env::resolve(&model, None, &vars("5432")).unwrap_or_else(|d| panic!("{d:?}"));
    let p = PgProvider::connect(&resolved.stores["wh"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.target(), "127.0.0.1:5432/test as postgres");
    assert!(!format!("{p:?}").contains("s3cr3t"));

    // Nothing listens on port 1: a Connect error naming the target and how to fix it, never the password.
    let resolved = dk_env::resolve(&model, None, &vars("1")).unwrap_or_else(|d| panic!("{d:?}"));
    match PgProvider::connect(&resolved.stores["wh"]).await {
        Err(e @ ProviderError::Connect { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("127.0.0.1:1/test"), "{msg}");
            assert!(msg.contains("server is running"), "{msg}");
            assert!(msg.contains("refused"), "{msg}");
            assert!(!msg.contains("s3cr3t"), "{msg}");
        }
        Err(e) => panic!("expected a Connect error, got {e}"),
        Ok(_) => panic!("port 1 must not connect"),
    }

    // A database that does not exist.
    let s = store_with(&[
        ("host", "127.0.0.1".into()),
        ("port", 5432.into()),
        ("dbname", "dk_no_such_db".into()),
        ("user", "postgres".into()),
    ]);
    match PgProvider::connect(&s).await {
        Err(ProviderError::Connect { message, .. }) => assert!(
            message.contains("does not exist") && message.contains("dk_no_such_db"),
            "{message}"
        ),
        Err(e) => panic!("expected a Connect error, got {e}"),
        Ok(_) => panic!("the database does not exist"),
    }

    // An unknown sslmode is refused up front; `require` uses TLS when the server offers it and
    // otherwise fails naming TLS (every mode is tested in dk-pgtls).
    let s = store_with(&[(
        "connection_string",
        Value::from(format!("{} sslmode=always", pg_url())),
    )]);
    match PgProvider::connect(&s).await {
        Err(ProviderError::Config { message, .. }) => {
            assert!(message.contains("verify-full"), "{message}")
        }
        Err(e) => panic!("expected a Config error, got {e}"),
        Ok(_) => panic!("sslmode=always must be refused"),
    }
    let s = store_with(&[(
        "connection_string",
        Value::from(format!("{} sslmode=require", pg_url())),
    )]);
    let tls_on = admin()
        .await
        .query_one("SHOW ssl", &[])
        .await
        .map(|r| r.get::<_, String>(0) == "on")
        .unwrap_or(false);
    match PgProvider::connect(&s).await {
        Ok(p) => assert!(
            tls_on,
            "require connected to a server without TLS ({})",
            p.target()
        ),
        Err(ProviderError::Connect { message, .. }) => {
            assert!(!tls_on && message.contains("TLS"), "{message}")
        }
        Err(e) => panic!("expected a Connect error, got {e}"),
    }
}

/// 10,000 tables refreshed in well under 2 s. Slow to set up (creates 10,000 tables), so run on
/// demand: `cargo test -p dk-providers --no-default-features --test postgres -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "creates 10,000 tables; run with --ignored"]
async fn refresh_ten_thousand_tables() {
    let s = TestSchema::named("dk_pg");
    let p = provider().await;
    let db = admin().await;
    let t0 = Instant::now();
    db.batch_execute(&format!("CREATE SCHEMA \"{}\"", s.name))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    // Batches of 500 tables: one transaction holds a lock per table created.
    for batch in 0..20 {
        db.batch_execute(&format!(
            "DO $$ BEGIN
               FOR i IN {from}..{to} LOOP
                 EXECUTE format('CREATE TABLE %I.%I (id bigint NOT NULL, name text, amount numeric(10,2), at timestamptz, ok boolean, doc jsonb, ref uuid, day date)', '{0}', 't' || i);
                 IF i % 10 = 0 THEN
                   EXECUTE format('COMMENT ON TABLE %I.%I IS %L', '{0}', 't' || i, 'table ' || i);
                   EXECUTE format('COMMENT ON COLUMN %I.%I.name IS %L', '{0}', 't' || i, 'name ' || i);
                 END IF;
               END LOOP;
             END $$;",
            s.name,
            from = batch * 500 + 1,
            to = batch * 500 + 500,
        ))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    }
    eprintln!("setup: {:?}", t0.elapsed());
    for round in 0..3 {
        let t = Instant::now();
        let all = p
            .refresh(std::slice::from_ref(&s.name))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let took = t.elapsed();
        eprintln!("refresh {round}: {} resources in {took:?}", all.len());
        assert_eq!(all.len(), 10_001);
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    // Drop in batches: one DROP SCHEMA … CASCADE of 10,000 tables exceeds the lock table.
    drop_tables_in_batches(&db, &s.name).await;
}

async fn drop_tables_in_batches(db: &tokio_postgres::Client, schema: &str) {
    loop {
        let left: i64 = match db
            .query_one(
                "SELECT count(*) FROM pg_class WHERE relnamespace = to_regnamespace($1) AND relkind = 'r'",
                &[&schema],
            )
            .await
            .and_then(|r| r.try_get(0))
        {
            Ok(n) => n,
            Err(e) => panic!("{e:?}"),
        };
        if left == 0 {
            break;
        }
        db.batch_execute(&format!(
            "DO $$ DECLARE r record; BEGIN
               FOR r IN SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace('{schema}') AND relkind = 'r' LIMIT 500 LOOP
                 EXECUTE format('DROP TABLE %I.%I', '{schema}', r.relname);
               END LOOP;
             END $$;"
        ))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    }
}
