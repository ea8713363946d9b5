//! `dk dbt`: the DataKit Go tool's `examples/dbt-reporting` (read from `../shared/fixtures`,
//! copied, with our own model SQL added) built with the real dbt against the real PostgreSQL in a
//! database of its own; and the errors for a missing dbt and a project without dbt transforms.
//!
//! dbt: `DK_DBT`, else `/var/tmp/dk-dbt-venv/bin/dbt` (`scripts/dbt-venv.sh` installs it).

mod common;
mod pgproject;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use dk_test_support::dbt_path;
use pgproject::{pg, pg_conninfo, TestDb};

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A copy of examples/dbt-reporting with model SQL and a `test` environment bound to `db`.
fn reporting_project(db: &TestDb) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("dbt-reporting");
    copy_dir(&fixture("datakit/examples/dbt-reporting"), &p);
    fs::write(
        p.join("models/example_summary.sql"),
        "select name, min(created_at) as first_seen, count(*) as row_count\nfrom {{ source('public', 'example_table') }}\ngroup by name\n",
    )
    .unwrap();
    fs::create_dir_all(p.join("environments")).unwrap();
    fs::write(
        p.join("environments/test.yaml"),
        format!(
            "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Environment\nmetadata: {{name: test}}\nspec:\n  tier: dev\n  bindings:\n    warehouse:\n      connection: {{connection_string: \"{}\"}}\n",
            pg_conninfo(&db.0)
        ),
    )
    .unwrap();
    (tmp, p)
}

fn dk_dbt(p: &Path, args: &[&str]) -> (i32, String, String) {
    let mut c = dk();
    c.current_dir(p)
        .env("DK_DBT", dbt_path())
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .args(args);
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn dbt_reporting_example_builds_on_postgres() {
    let db = TestDb::new("dbtrep");
    pg(
        &db.0,
        "create table public.example_table (id serial primary key, name text not null, created_at timestamptz not null);
         insert into public.example_table (name, created_at) values
           ('ann', '2024-01-02'), ('ann', '2024-01-01'), ('bob', '2024-03-01');",
    );
    let (_tmp, p) = reporting_project(&db);
    let (code, out, err) = dk_dbt(
        &p,
        &[
            "dbt",
            "-e",
            "test",
            "--",
            "build",
            "--select",
            "example_summary",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains(
            "dk: dbt build --select example_summary (transform dbt-reporting, environment test"
        ),
        "{err}"
    );
    assert!(
        err.contains("target schema public in store warehouse"),
        "{err}"
    );
    assert!(out.contains("Completed successfully"), "{out}");
    assert!(
        out.contains("PASS=5"),
        "the model and the four schema.yml tests: {out}"
    );
    assert_eq!(
        pg(
            &db.0,
            "select name, first_seen::date::text, row_count from public.example_summary order by 1"
        ),
        vec![
            vec![
                Some("ann".into()),
                Some("2024-01-01".into()),
                Some("2".into())
            ],
            vec![
                Some("bob".into()),
                Some("2024-03-01".into()),
                Some("1".into())
            ],
        ]
    );
    // dbt's own exit status: a failing model → exit 1 with dbt's status printed.
    fs::write(
        p.join("models/example_summary.sql"),
        "select missing_column from {{ source('public', 'example_table') }}\n",
    )
    .unwrap();
    let (code, out, err) = dk_dbt(&p, &["dbt", "-e", "test", "--", "run"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("missing_column"), "{out}");
    assert!(err.contains("dk: dbt exited with status 1"), "{err}");
    // The generated profile never lands in the project.
    assert!(!p.join("profiles.yml").exists());
}

#[test]
fn dbt_errors_are_clear() {
    let db = TestDb::new("dbterr");
    let (_tmp, p) = reporting_project(&db);
    let mut c = dk();
    c.current_dir(&p)
        .env("DK_DBT", p.join("no-such-dbt"))
        .args(["dbt", "-e", "test", "--", "debug"]);
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("DK_DBT="), "{err}");
    assert!(err.contains("scripts/dbt-venv.sh"), "{err}");

    let (code, _, err) = dk_dbt(
        &p,
        &["dbt", "-e", "test", "--transform", "nope", "--", "debug"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("no transform named nope (dbt transforms: dbt-reporting)"),
        "{err}"
    );

    let (code, _, err) = dk_dbt(&p, &["dbt", "-e", "test"]);
    assert_eq!(code, 2, "clap requires the dbt arguments: {err}");
}

/// `dk run` with the dbt runtime on PostgreSQL (the runtime fixture project `dbt-shop`, its `pg`
/// environment bound to a database of the test's own): per-model results in the run record,
/// a failing model failing its transform, and OpenLineage events in a file.
#[test]
fn dk_run_dbt_on_postgres_with_lineage_file() {
    let db = TestDb::new("dbtrun");
    pg(
        &db.0,
        "create schema raw; create table raw.orders (id integer, customer text, amount double precision);
         insert into raw.orders values (1, 'Ann', 10), (2, 'ann', 5.5), (3, 'Bob', 7);",
    );
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("shop");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../dk-runtime/tests/fixtures/dbt-shop"),
        &p,
    );
    let cfg: tokio_postgres::Config = pg_conninfo(&db.0).parse().unwrap();
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let lineage = tmp.path().join("lineage.jsonl");
    let dk_pg = |args: &[&str]| {
        let mut c = dk();
        c.current_dir(&p)
            .env("DK_DBT", dbt_path())
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .env("SHOP_PG_HOST", &host)
            .env(
                "SHOP_PG_PORT",
                cfg.get_ports().first().copied().unwrap_or(5432).to_string(),
            )
            .env("SHOP_PG_DB", &db.0)
            .env("SHOP_PG_USER", cfg.get_user().unwrap_or("postgres"))
            .env("SHOP_PG_PASSWORD", "")
            .args(args);
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = dk_pg(&[
        "run",
        "-e",
        "pg",
        "revenue",
        "broken",
        "--no-checks",
        "--lineage-file",
        lineage.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let t = |name: &str| {
        report["transforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["transform"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(t("revenue")["status"], "succeeded", "{report}");
    assert_eq!(t("revenue")["rows_written"], 2);
    assert_eq!(t("broken")["status"], "failed");
    let e = t("broken")["error"].as_str().unwrap().to_string();
    assert!(e.contains("model broken_model error"), "{e}");
    assert!(e.contains("no_such_column"), "{e}");

    // Run records keep dbt's per-node results and the end of its output.
    let (code, out, err) = dk_pg(&["runs", "list", "-e", "pg", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rec = |name: &str| {
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["transform"] == name)
            .cloned()
            .unwrap()
    };
    let nodes = rec("revenue")["details"]["nodes"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        nodes
            .iter()
            .any(|n| n["name"] == "customer_revenue" && n["status"] == "success" && n["rows"] == 2),
        "{nodes:?}"
    );
    assert!(rec("broken")["details"]["stdout"]
        .as_str()
        .unwrap()
        .contains("no_such_column"));

    // OpenLineage: START then COMPLETE / FAIL per transform, one runId each.
    let events: Vec<serde_json::Value> = fs::read_to_string(&lineage)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{events:?}");
    for name in ["revenue", "broken"] {
        let mine: Vec<&serde_json::Value> =
            events.iter().filter(|e| e["job"]["name"] == name).collect();
        assert_eq!(mine.len(), 2);
        assert_eq!(mine[0]["eventType"], "START");
        assert_eq!(mine[0]["run"]["runId"], mine[1]["run"]["runId"]);
        assert_eq!(
            mine[1]["eventType"],
            if name == "revenue" {
                "COMPLETE"
            } else {
                "FAIL"
            }
        );
    }
    let out = events
        .iter()
        .find(|e| e["eventType"] == "COMPLETE")
        .unwrap();
    assert_eq!(
        out["outputs"][0]["name"],
        format!("{}.public.customer_revenue", db.0)
    );
    assert_eq!(
        out["outputs"][0]["namespace"],
        format!(
            "postgres://{host}:{}",
            cfg.get_ports().first().copied().unwrap_or(5432)
        )
    );
}

/// dbt on DuckDB through `dk run`, in the same run as an in-process `sql` transform on the same
/// file and a python script: dk releases its DuckDB handle while dbt or python (another process)
/// has the file, then reopens it. dbt-duckdb and python report no row counts, so dk counts each
/// output after the run and marks it rebuilt: `on-change` transforms downstream of them are due
/// after they ran (they were not when the count was 0).
#[test]
fn dk_run_dbt_and_python_on_duckdb_count_outputs_and_trigger_on_change() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("shop");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../dk-runtime/tests/fixtures/dbt-shop"),
        &p,
    );
    std::fs::create_dir_all(p.join(".dk")).unwrap();
    {
        let c = duckdb::Connection::open(p.join(".dk/warehouse.duckdb")).unwrap();
        c.execute_batch(
            "create schema raw; create table raw.orders (id integer, customer varchar, amount double);
             insert into raw.orders values (1, 'Ann', 10), (2, 'ann', 5.5), (3, 'Bob', 7);",
        )
        .unwrap();
    }
    std::fs::create_dir_all(p.join("lake/orders")).unwrap();
    std::fs::write(
        p.join("lake/orders/part-1.csv"),
        "id,customer,amount\n1,ann,10\n2,bob,2.5\n3,ann,1\n",
    )
    .unwrap();
    // Two on-change transforms downstream of the dbt model and of the python output.
    for (name, input) in [
        ("top-revenue", "customer-revenue"),
        ("top-scores", "customer-scores"),
    ] {
        let table = name.replace('-', "_");
        let dir = p.join("transforms").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("dk.yaml"),
            format!(
                "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Transform\nmetadata: {{name: {name}}}\nspec:\n  runtime: sql\n  sql: query.sql\n  materialized: table\n  inputs: [{{dataset: {input}}}]\n  outputs: [{{dataset: {name}-out}}]\n  trigger: {{policy: on-change}}\n---\napiVersion: datakit.infoblox.dev/v1alpha1\nkind: DataSet\nmetadata: {{name: {name}-out}}\nspec:\n  store: warehouse\n  table: marts.{table}\n  classification: internal\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("query.sql"),
            format!("select * from {{{{ ref('{input}') }}}} limit 1\n"),
        )
        .unwrap();
    }
    let dbt = dbt_path();
    let run = |args: &[&str]| {
        let out = dk()
            .current_dir(&p)
            .env("DK_DBT", &dbt)
            .env("DK_PYTHON", dbt.with_file_name("python"))
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let transform = |report: &serde_json::Value, name: &str| {
        report["transforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["transform"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {report}"))
    };
    let (code, stdout, stderr) = run(&[
        "run",
        "-e",
        "dev",
        "summary",
        "revenue",
        "score",
        "--no-checks",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for name in ["summary", "revenue", "score"] {
        assert_eq!(transform(&report, name)["status"], "succeeded", "{name}");
    }
    // customer_revenue groups by lower(customer): 2 rows; 2 customers scored.
    assert_eq!(transform(&report, "revenue")["rows_written"], 2, "{report}");
    assert_eq!(transform(&report, "score")["rows_written"], 2, "{report}");
    // Both outputs are in the file once dk has let go of it.
    {
        let c = duckdb::Connection::open(p.join(".dk/warehouse.duckdb")).unwrap();
        let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        for table in ["customer_revenue", "customer_summary", "customer_scores"] {
            assert_eq!(
                count(&format!(
                    "select count(*) from information_schema.tables where table_name = '{table}'"
                )),
                1,
                "{table}"
            );
        }
    }
    // The run records keep the counted rows and the rebuilt mark.
    let (code, out, err) = run(&["runs", "list", "-e", "dev", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let score = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["transform"] == "score")
        .unwrap();
    assert_eq!(score["outputs"][0]["rows_written"], 2, "{score}");
    assert_eq!(score["outputs"][0]["rebuilt"], true, "{score}");

    // The on-change transforms run once, then are not due until dbt or python writes again.
    let (code, out, err) = run(&[
        "run",
        "-e",
        "dev",
        "top-revenue",
        "top-scores",
        "--no-checks",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["run", "-e", "dev", "--due", "--no-checks"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("top-revenue: not due (no input changed"),
        "{err}"
    );
    assert!(
        err.contains("top-scores: not due (no input changed"),
        "{err}"
    );
    let (code, out, err) = run(&["run", "-e", "dev", "revenue", "score", "--no-checks"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["run", "-e", "dev", "--due", "--no-checks"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("top-revenue: due (input customer-revenue written by revenue"),
        "{err}"
    );
    assert!(
        err.contains("top-scores: due (input customer-scores written by score"),
        "{err}"
    );
    assert!(out.contains("2 succeeded"), "{out}");
}
