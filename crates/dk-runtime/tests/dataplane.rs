//! The data plane against real engines: every logical type through PostgreSQL binary COPY and the
//! DuckDB appender and back, the three write modes, cursor scans, and files (CSV, Parquet, JSON
//! lines) — on the real PostgreSQL (`DK_TEST_PG_URL`, default 127.0.0.1:5432 user postgres) and
//! temporary DuckDB files.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, RecordBatch, StringArray, Time64MicrosecondArray,
    TimestampMicrosecondArray,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use dk_env::ResolvedStore;
use dk_providers::model::LogicalType;
use dk_runtime::dataplane::schema::{arrow_schema, DeclaredColumn};
use dk_runtime::dataplane::{BatchStream, DataPlane, FileFormat, ScanOptions, Target, WriteMode};
use dk_test_support::{pg_unreachable, pg_url, unique_name};
use indexmap::IndexMap;
use serde_json::json;

fn store(name: &str, ty: &str, connection: serde_json::Value) -> ResolvedStore {
    let connection: IndexMap<String, serde_json::Value> =
        serde_json::from_value(connection).expect("connection");
    ResolvedStore {
        name: name.into(),
        connector: None,
        connector_type: ty.into(),
        connection,
        secrets: IndexMap::new(),
        bound: false,
        file: Arc::from("test"),
    }
}

/// A PostgreSQL store on a schema of its own (dropped by the returned guard).
struct PgSchema {
    plane: DataPlane,
    schema: String,
}

impl PgSchema {
    async fn new() -> PgSchema {
        let s = store("pg", "postgres", json!({ "connection_string": pg_url() }));
        let plane = DataPlane::connect(&s, std::path::Path::new("."))
            .await
            .unwrap_or_else(|e| pg_unreachable(e));
        let schema = unique_name("dk_dp");
        plane
            .execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .await
            .expect("schema");
        PgSchema { plane, schema }
    }

    async fn drop_schema(self) {
        self.plane
            .execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await
            .expect("drop schema");
    }
}

fn all_types() -> Vec<DeclaredColumn> {
    [
        ("id", "bigint", false),
        ("s", "smallint", true),
        ("i", "integer", true),
        ("f", "float", true),
        ("d", "double", true),
        ("amount", "decimal(12,3)", true),
        ("b", "boolean", true),
        ("name", "string", true),
        ("day", "date", true),
        ("t", "time", true),
        ("ts", "timestamp", true),
        ("tz", "timestamptz", true),
        ("doc", "json", true),
        ("blob", "binary", true),
        ("u", "uuid", true),
    ]
    .into_iter()
    .map(|(n, t, nullable)| DeclaredColumn {
        name: n.into(),
        ty: LogicalType::parse(t).expect(t),
        nullable,
    })
    .collect()
}

fn sample_batch() -> RecordBatch {
    let cols = all_types();
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3])),
        Arc::new(Int16Array::from(vec![Some(-7), None, Some(32000)])),
        Arc::new(Int32Array::from(vec![Some(1 << 30), None, Some(-5)])),
        Arc::new(Float32Array::from(vec![Some(1.5), None, Some(-0.25)])),
        Arc::new(Float64Array::from(vec![Some(1e100), None, Some(-2.5)])),
        Arc::new(
            Decimal128Array::from(vec![Some(123_456_789_012), None, Some(-1)])
                .with_precision_and_scale(12, 3)
                .expect("decimal"),
        ),
        Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        Arc::new(StringArray::from(vec![
            Some("zoë \"q\" 'x'"),
            None,
            Some(""),
        ])),
        Arc::new(Date32Array::from(vec![Some(20_454), None, Some(-1)])),
        Arc::new(Time64MicrosecondArray::from(vec![
            Some(3_600_000_001),
            None,
            Some(0),
        ])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            Some(1_767_225_600_123_456),
            None,
            Some(-1),
        ])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![Some(1_767_225_600_000_000), None, Some(0)])
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(vec![
            Some("{\"a\": [1, 2]}"),
            None,
            Some("null"),
        ])),
        Arc::new(BinaryArray::from(vec![
            Some(&b"\x00\xffab"[..]),
            None,
            Some(&b""[..]),
        ])),
        Arc::new(StringArray::from(vec![
            Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            None,
            Some("00000000-0000-0000-0000-000000000000"),
        ])),
    ];
    RecordBatch::try_new(arrow_schema(&cols), arrays).expect("batch")
}

fn text(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<ArrayFormatter<'_>> = b
            .columns()
            .iter()
            .map(|c| {
                ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default().with_null("∅"))
                    .expect("formatter")
            })
            .collect();
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out.sort();
    out
}

async fn count(p: &DataPlane, sql: String) -> String {
    let b = p
        .query(&sql)
        .await
        .expect("query")
        .collect()
        .await
        .expect("rows");
    text(&b)[0][0].clone()
}

/// Every batch of a scan; panics naming `what` when it fails.
async fn scan_all(
    plane: &DataPlane,
    target: &Target,
    options: ScanOptions,
    what: &str,
) -> Vec<RecordBatch> {
    let stream = plane
        .scan(target, &options)
        .await
        .unwrap_or_else(|e| panic!("scan {what}: {e}"));
    stream
        .collect()
        .await
        .unwrap_or_else(|e| panic!("rows of {what}: {e}"))
}

fn stream(batches: Vec<RecordBatch>) -> BatchStream {
    let schema = batches[0].schema();
    BatchStream::from_batches(schema, batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_round_trips_every_logical_type_and_write_mode() {
    let pg = PgSchema::new().await;
    let target = Target::Table {
        schema: pg.schema.clone(),
        name: "all_types".into(),
    };
    let cols = all_types();
    let written = pg
        .plane
        .write(
            &target,
            stream(vec![sample_batch()]),
            &WriteMode::Overwrite,
            &cols,
        )
        .await
        .expect("write");
    assert_eq!(written.rows, 3);
    let back = scan_all(&pg.plane, &target, ScanOptions::default(), "all_types").await;
    let expected = text(&[sample_batch()]);
    let got = text(&back);
    assert_eq!(got, expected);
    // Append doubles, merge on id replaces, overwrite resets.
    pg.plane
        .write(
            &target,
            stream(vec![sample_batch()]),
            &WriteMode::Append,
            &cols,
        )
        .await
        .expect("append");
    let rel = format!("{}.all_types", pg.schema);
    assert_eq!(
        count(&pg.plane, format!("select count(*) from {rel}")).await,
        "6"
    );
    pg.plane
        .write(
            &target,
            stream(vec![sample_batch()]),
            &WriteMode::Merge {
                keys: vec!["id".into()],
            },
            &cols,
        )
        .await
        .expect("merge");
    assert_eq!(
        count(&pg.plane, format!("select count(*) from {rel}")).await,
        "3"
    );
    // Cursor scans read only newer rows.
    let newer = scan_all(
        &pg.plane,
        &target,
        ScanOptions {
            after: Some(("id".into(), "1".into())),
            ..ScanOptions::default()
        },
        "newer rows",
    )
    .await;
    assert_eq!(newer.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    // A failing batch rolls the whole write back.
    let mut bad = sample_batch();
    bad = bad.slice(1, 1); // id 2 only
    let nulls = RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, true),
        ])),
        vec![Arc::new(Int64Array::from(vec![None::<i64>]))],
    )
    .expect("nulls");
    let err = pg
        .plane
        .write(
            &target,
            BatchStream::from_batches(bad.schema(), vec![bad]).map(nulls.schema(), {
                let nulls = nulls.clone();
                move |_| Ok(nulls.clone())
            }),
            &WriteMode::Overwrite,
            &cols,
        )
        .await
        .expect_err("null id");
    assert!(
        err.to_string()
            .contains("column id is declared `nullable: false`"),
        "{err}"
    );
    assert_eq!(
        count(&pg.plane, format!("select count(*) from {rel}")).await,
        "3"
    );
    pg.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_round_trips_every_logical_type_and_merges() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = store("wh", "duckdb", json!({"path": "w.duckdb"}));
    let plane = DataPlane::connect(&s, tmp.path()).await.expect("duckdb");
    let target = Target::Table {
        schema: "main".into(),
        name: "all_types".into(),
    };
    let cols = all_types();
    plane
        .write(
            &target,
            stream(vec![sample_batch()]),
            &WriteMode::Overwrite,
            &cols,
        )
        .await
        .expect("write");
    let back = plane
        .query("select * from main.all_types")
        .await
        .expect("query")
        .collect()
        .await
        .expect("rows");
    let got = text(&back);
    assert_eq!(got.len(), 3);
    let first = &got[0];
    assert_eq!(first[0], "1");
    assert_eq!(first[5], "123456789.012");
    assert_eq!(first[7], "zoë \"q\" 'x'");
    plane
        .write(
            &target,
            stream(vec![sample_batch()]),
            &WriteMode::Merge {
                keys: vec!["id".into()],
            },
            &cols,
        )
        .await
        .expect("merge");
    let n = plane
        .query("select count(*) from main.all_types")
        .await
        .expect("q")
        .collect()
        .await
        .expect("rows");
    assert_eq!(text(&n)[0][0], "3");
    // A second plane on the same file shares the database (no second open).
    let again = DataPlane::connect(&s, tmp.path()).await.expect("again");
    assert!(again.exists(&target).await.expect("exists"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_write_and_read_csv_parquet_and_json_lines() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = store("lake", "file", json!({"path": "lake"}));
    let plane = DataPlane::connect(&s, tmp.path()).await.expect("files");
    let cols: Vec<DeclaredColumn> = all_types()
        .into_iter()
        .filter(|c| c.name != "blob") // CSV and JSON have no binary form
        .collect();
    let batch =
        dk_runtime::dataplane::schema::conform(&sample_batch(), &cols, "t").expect("conform");
    for (format, prefix) in [
        (FileFormat::Parquet, "p/"),
        (FileFormat::Csv, "c/"),
        (FileFormat::JsonLines, "j/"),
    ] {
        let target = Target::Files {
            prefix: prefix.into(),
            format,
        };
        for mode in [WriteMode::Overwrite, WriteMode::Append] {
            plane
                .write(&target, stream(vec![batch.clone()]), &mode, &cols)
                .await
                .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        }
        let back = scan_all(
            &plane,
            &target,
            ScanOptions {
                declared: cols.clone(),
                ..ScanOptions::default()
            },
            &format!("{format:?}"),
        )
        .await;
        let mut expected = text(&[batch.clone(), batch.clone()]);
        let mut got = text(&back);
        if format == FileFormat::Csv {
            // CSV cannot tell an empty string from NULL: it reads back as NULL.
            for r in expected.iter_mut() {
                if r[7].is_empty() {
                    r[7] = "∅".into();
                }
            }
            expected.sort();
        }
        if format == FileFormat::JsonLines {
            // JSON documents come back as re-serialised text.
            for r in got.iter_mut().chain(expected.iter_mut()) {
                r[12] = r[12].replace(' ', "");
            }
        }
        assert_eq!(got, expected, "{format:?}");
        plane
            .write(
                &target,
                stream(vec![batch.clone()]),
                &WriteMode::Overwrite,
                &cols,
            )
            .await
            .expect("overwrite");
        let n: usize = scan_all(
            &plane,
            &target,
            ScanOptions {
                declared: cols.clone(),
                ..ScanOptions::default()
            },
            &format!("{format:?} after overwrite"),
        )
        .await
        .iter()
        .map(|b| b.num_rows())
        .sum();
        assert_eq!(n, 3, "{format:?}: overwrite leaves one file");
        let err = plane
            .write(
                &target,
                stream(vec![batch.clone()]),
                &WriteMode::Merge {
                    keys: vec!["id".into()],
                },
                &cols,
            )
            .await
            .expect_err("merge");
        assert!(err.to_string().contains("cannot be merged"), "{err}");
    }
}

/// A `numeric` column without precision moves as its exact text both ways (read and COPY back),
/// and converts to a declared decimal; transactions run on pooled connections, return each
/// statement's count and name the statement that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unconstrained_numeric_and_pooled_transactions() {
    let pg = PgSchema::new().await;
    let s = &pg.schema;
    pg.plane
        .execute(&format!(
            "CREATE TABLE {s}.nums (id integer, v numeric);
             INSERT INTO {s}.nums VALUES (1, 12345678901234567890.123456789), (2, -0.5), (3, NULL), (4, 100);
             CREATE TABLE {s}.nums_copy (id integer, v numeric)"
        ))
        .await
        .expect("fixture");
    let src = Target::Table {
        schema: s.clone(),
        name: "nums".into(),
    };
    let rows = scan_all(&pg.plane, &src, ScanOptions::default(), "nums").await;
    assert_eq!(
        text(&rows),
        vec![
            vec!["1", "12345678901234567890.123456789"],
            vec!["2", "-0.5"],
            vec!["3", "∅"],
            vec!["4", "100"],
        ]
    );
    let col = |name: &str, ty: LogicalType| DeclaredColumn {
        name: name.into(),
        ty,
        nullable: true,
    };
    let cols = vec![
        col("id", LogicalType::Integer),
        col("v", LogicalType::String),
    ];
    let as_decimal = vec![
        col("id", LogicalType::Integer),
        col("v", LogicalType::Decimal(30, 9)),
    ];
    let dst = Target::Table {
        schema: s.clone(),
        name: "nums_copy".into(),
    };
    let stream_again = pg
        .plane
        .scan(&src, &ScanOptions::default())
        .await
        .expect("scan");
    let w = pg
        .plane
        .write(&dst, stream_again, &WriteMode::Overwrite, &cols)
        .await
        .expect("COPY into numeric");
    assert_eq!(w.rows, 4);
    assert_eq!(
        count(
            &pg.plane,
            format!(
                "SELECT count(*) FROM {s}.nums a JOIN {s}.nums_copy b ON a.id = b.id AND a.v IS NOT DISTINCT FROM b.v"
            )
        )
        .await,
        "4"
    );
    // Declared as decimal(30, 9): converted exactly.
    let declared = scan_all(
        &pg.plane,
        &src,
        ScanOptions {
            declared: as_decimal.clone(),
            ..ScanOptions::default()
        },
        "nums as decimal",
    )
    .await;
    let conformed: Vec<RecordBatch> = declared
        .iter()
        .map(|b| dk_runtime::dataplane::schema::conform(b, &as_decimal, "nums").expect("conform"))
        .collect();
    assert_eq!(text(&conformed)[0][1], "12345678901234567890.123456789");
    // ... decoded straight into the declared decimal, not through text.
    assert_eq!(
        declared[0].schema().field(1).data_type(),
        &arrow::datatypes::DataType::Decimal128(30, 9)
    );
    // Extra decimals round half away from zero (as `::numeric(10,2)` does); a value beyond the
    // declared precision fails the scan, naming the column and the value.
    pg.plane
        .execute(&format!(
            "CREATE TABLE {s}.amounts (id integer, v numeric);
             INSERT INTO {s}.amounts VALUES (1, 1.005), (2, -2.5), (3, 99999999.994), (4, -0.004)"
        ))
        .await
        .expect("amounts");
    let amounts = Target::Table {
        schema: s.clone(),
        name: "amounts".into(),
    };
    let as_money = ScanOptions {
        declared: vec![
            col("id", LogicalType::Integer),
            col("v", LogicalType::Decimal(10, 2)),
        ],
        ..ScanOptions::default()
    };
    let rows = scan_all(&pg.plane, &amounts, as_money.clone(), "amounts").await;
    let expected: Vec<String> = count(
        &pg.plane,
        format!("SELECT string_agg(v::numeric(10,2)::text, ',' ORDER BY id) FROM {s}.amounts"),
    )
    .await
    .split(',')
    .map(str::to_string)
    .collect();
    let got: Vec<String> = text(&rows).into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(got, expected);
    assert_eq!(got, ["1.01", "-2.50", "99999999.99", "0.00"]);
    pg.plane
        .execute(&format!("INSERT INTO {s}.amounts VALUES (5, 99999999.995)"))
        .await
        .expect("too large");
    let err = match pg.plane.scan(&amounts, &as_money).await {
        Ok(stream) => stream.collect().await.expect_err("does not fit"),
        Err(e) => e,
    };
    assert!(
        err.to_string()
            .contains("column v: 99999999.995 does not fit in decimal(10,2)"),
        "{err}"
    );
    // A value that is not a number is refused with the column named, and nothing is written.
    let bad = RecordBatch::try_new(
        arrow_schema(&cols),
        vec![
            Arc::new(Int32Array::from(vec![Some(9)])) as ArrayRef,
            Arc::new(StringArray::from(vec![Some("1e5")])) as ArrayRef,
        ],
    )
    .expect("batch");
    let err = pg
        .plane
        .write(&dst, stream(vec![bad]), &WriteMode::Overwrite, &cols)
        .await
        .expect_err("not a decimal");
    assert!(
        err.to_string()
            .contains("column v value \"1e5\" is not a decimal number"),
        "{err}"
    );
    assert_eq!(
        count(&pg.plane, format!("SELECT count(*) FROM {s}.nums_copy")).await,
        "4"
    );

    // Transactions: counts per statement, one pooled connection reused (a plane of its own,
    // named, so that its connections can be counted).
    let app = unique_name("dk_pool");
    let plane = DataPlane::connect(
        &store(
            "pg",
            "postgres",
            json!({ "connection_string": format!("{} application_name={app}", pg_url()) }),
        ),
        std::path::Path::new("."),
    )
    .await
    .unwrap_or_else(|e| pg_unreachable(e));
    for i in 0..20 {
        let n = plane
            .transaction(&[
                format!("CREATE TABLE IF NOT EXISTS {s}.t (i int)"),
                format!(
                    "INSERT INTO {s}.t SELECT g FROM generate_series(1, {}) g -- trailing comment",
                    i + 1
                ),
                format!("DELETE FROM {s}.t WHERE i > 1;"),
            ])
            .await
            .expect("transaction");
        assert_eq!(n, vec![0, i as u64 + 1, i as u64], "counts of round {i}");
    }
    let backends = count(
        &pg.plane,
        format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'"),
    )
    .await;
    assert_eq!(
        backends, "2",
        "the plane's own connection and one pooled one"
    );
    let err = plane
        .transaction(&[
            format!("INSERT INTO {s}.t VALUES (100)"),
            format!("INSERT INTO {s}.missing VALUES (1)"),
        ])
        .await
        .expect_err("missing table");
    let msg = err.to_string();
    assert!(msg.contains(&format!("INSERT INTO {s}.missing")), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert_eq!(
        count(
            &pg.plane,
            format!("SELECT count(*) FROM {s}.t WHERE i = 100")
        )
        .await,
        "0",
        "the failed transaction was rolled back"
    );
    // The pool still works after a failed transaction (its connection was dropped).
    plane
        .transaction(&[format!("INSERT INTO {s}.t VALUES (7)")])
        .await
        .expect("after failure");
    pg.drop_schema().await;
}

/// DuckDB options of the store's connection (`threads`, `memory_limit`, `settings`) configure the
/// database the data plane opens; an option DuckDB does not know is an error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_store_settings_configure_the_database() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = store(
        "wh",
        "duckdb",
        json!({"path": "s.duckdb", "threads": 1, "settings": {"memory_limit": "300MB", "preserve_insertion_order": false}}),
    );
    let plane = DataPlane::connect(&s, tmp.path()).await.expect("duckdb");
    let got = plane
        .query("SELECT current_setting('threads') AS t, current_setting('memory_limit') AS m, current_setting('preserve_insertion_order') AS p")
        .await
        .expect("query")
        .collect()
        .await
        .expect("rows");
    let row = &text(&got)[0];
    assert_eq!(row[0], "1");
    assert!(
        row[1].starts_with("286") || row[1].starts_with("300"),
        "{row:?}"
    );
    assert_eq!(row[2], "false");
    let bad = store(
        "wh2",
        "duckdb",
        json!({"path": "t.duckdb", "settings": {"no_such_option": 1}}),
    );
    let err = DataPlane::connect(&bad, tmp.path())
        .await
        .expect_err("unknown option");
    assert!(err.to_string().contains("no_such_option"), "{err}");
    let bad = store(
        "wh3",
        "duckdb",
        json!({"path": "u.duckdb", "settings": [1]}),
    );
    let err = DataPlane::connect(&bad, tmp.path())
        .await
        .expect_err("not a map");
    assert!(
        err.to_string()
            .contains("connection.settings must be a map"),
        "{err}"
    );
}
