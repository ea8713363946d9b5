//! `dk test`: data checks of every kind passing and failing on DuckDB and on the real PostgreSQL
//! (one fused scan per table, samples, warn vs error severity, exit 8), JUnit XML read back by a
//! real parser, transform unit tests passing and failing with a readable diff, test records.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use dk_test_support::{pg_db, pg_url, TestSchema};

const HEAD: &str = "apiVersion: datakit.infoblox.dev/v1alpha1\n";

/// Runs SQL on the test database of the test PostgreSQL.
fn pg(sql: &str) -> Vec<Vec<Option<String>>> {
    dk_test_support::pg(&pg_db(), sql)
}

/// The checks every table of the fixture project declares (all error severity).
fn dataset(name: &str, schema: &str, extra: &str) -> String {
    format!(
        "{HEAD}kind: DataSet\nmetadata: {{name: {name}}}\nspec:\n  store: warehouse\n  table: {schema}.{name}\n  schema:\n\
    \x20   - {{name: id, type: bigint, checks: [not_null, unique]}}\n\
    \x20   - {{name: status, type: string, checks: [{{accepted_values: {{values: [a, b]}}}}]}}\n\
    \x20   - {{name: amount, type: double, checks: [{{range: {{min: 0, max: 100}}}}]}}\n\
    \x20   - {{name: email, type: string, checks: [{{regex: {{pattern: '^[a-z]+@[a-z]+[.]com$'}}}}]}}\n\
    \x20   - {{name: customer_id, type: bigint, checks: [{{relationships: {{to: customers.id}}}}]}}\n\
    \x20   - {{name: ts, type: timestamp}}\n\
    \x20 checks:\n\
    \x20   - {{row_count: {{min: 1, max: 4}}}}\n\
    \x20   - {{freshness: {{column: ts, maxAge: 1h}}}}\n\
    \x20   - {{expression: {{sql: amount < 1000}}}}\n{extra}"
    )
}

/// A project whose `warehouse` is DuckDB in `dev` and the test PostgreSQL in `prod`; tables live
/// in `schema` (`main` for DuckDB, the test's own schema for PostgreSQL).
fn project(schema: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("shop");
    let w = |rel: &str, text: &str| {
        let f = p.join(rel);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, text).unwrap();
    };
    w(
        "project.yaml",
        &format!("{HEAD}kind: Project\nmetadata: {{name: shop}}\nspec: {{defaultEnvironment: dev, stateBackend: {{type: local}}}}\n"),
    );
    w(
        "connector/duckdb.yaml",
        &format!("{HEAD}kind: Connector\nmetadata: {{name: duckdb}}\nspec: {{type: duckdb, capabilities: [source, destination]}}\n---\n{HEAD}kind: Connector\nmetadata: {{name: postgres}}\nspec: {{type: postgres, capabilities: [source, destination]}}\n"),
    );
    w(
        "store/warehouse.yaml",
        &format!("{HEAD}kind: Store\nmetadata: {{name: warehouse}}\nspec: {{connector: duckdb, connection: {{path: .dk/wh.duckdb}}}}\n"),
    );
    w(
        "environments/dev.yaml",
        &format!("{HEAD}kind: Environment\nmetadata: {{name: dev}}\nspec: {{tier: dev}}\n"),
    );
    let (host, port, user, db) = pg_parts();
    w(
        "environments/prod.yaml",
        &format!("{HEAD}kind: Environment\nmetadata: {{name: prod}}\nspec:\n  tier: prod\n  bindings:\n    warehouse:\n      connector: postgres\n      connection: {{host: {host}, port: {port}, database: {db}, user: {user}, sslmode: disable}}\n"),
    );
    w(
        "dataset/customers.yaml",
        &format!("{HEAD}kind: DataSet\nmetadata: {{name: customers}}\nspec:\n  store: warehouse\n  table: {schema}.customers\n  schema:\n    - {{name: id, type: bigint}}\n"),
    );
    w("dataset/good.yaml", &dataset("good", schema, ""));
    w("dataset/bad.yaml", &dataset("bad", schema, ""));
    w(
        "dataset/warned.yaml",
        &format!("{HEAD}kind: DataSet\nmetadata: {{name: warned}}\nspec:\n  store: warehouse\n  table: {schema}.warned\n  schema:\n    - {{name: email, type: string, checks: [{{regex: {{pattern: '^[a-z]+@', severity: warn}}}}]}}\n"),
    );
    (tmp, p)
}

/// host, port, user, database of the test PostgreSQL.
fn pg_parts() -> (String, String, String, String) {
    let info = pg_url();
    let get = |k: &str, d: &str| {
        info.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")).map(str::to_string))
            .unwrap_or_else(|| d.to_string())
    };
    (
        get("host", "127.0.0.1"),
        get("port", "5432"),
        get("user", "postgres"),
        get("dbname", "test"),
    )
}

/// The rows of the fixture tables: `good` passes every check, `bad` fails every one.
fn data_sql(schema: &str, ts_now: &str) -> String {
    format!(
        "CREATE TABLE {schema}.customers (id BIGINT);
         INSERT INTO {schema}.customers VALUES (1), (2);
         CREATE TABLE {schema}.good (id BIGINT, status VARCHAR, amount DOUBLE PRECISION, email VARCHAR, customer_id BIGINT, ts TIMESTAMP);
         INSERT INTO {schema}.good VALUES
           (1, 'a', 10, 'ann@x.com', 1, {ts_now}),
           (2, 'b', 20, 'bob@y.com', 2, {ts_now}),
           (3, 'a', NULL, NULL, NULL, {ts_now});
         CREATE TABLE {schema}.bad (id BIGINT, status VARCHAR, amount DOUBLE PRECISION, email VARCHAR, customer_id BIGINT, ts TIMESTAMP);
         INSERT INTO {schema}.bad VALUES
           (1, 'a', 10, 'ann@x.com', 1, TIMESTAMP '2020-01-01 00:00:00'),
           (1, 'zzz', -5, 'bad-email', 99, TIMESTAMP '2020-01-01 00:00:00'),
           (NULL, 'b', 5000, 'c@d.com', 2, TIMESTAMP '2020-01-01 00:00:00'),
           (4, 'a', 1, 'e@f.com', 1, TIMESTAMP '2020-01-01 00:00:00'),
           (5, 'b', 2, 'g@h.com', 2, TIMESTAMP '2020-01-01 00:00:00');
         CREATE TABLE {schema}.warned (email VARCHAR);
         INSERT INTO {schema}.warned VALUES ('ok@x.com'), ('NOPE');"
    )
}

fn duck_project() -> (tempfile::TempDir, PathBuf) {
    let (tmp, p) = project("main");
    fs::create_dir_all(p.join(".dk")).unwrap();
    let conn = duckdb::Connection::open(p.join(".dk/wh.duckdb")).expect("open duckdb");
    conn.execute_batch(&data_sql("main", "CAST(now() AS TIMESTAMP)"))
        .expect("load duckdb fixture");
    drop(conn);
    (tmp, p)
}

fn dk_in(p: &Path, args: &[&str]) -> (i32, String, String) {
    let out = dk().args(args).current_dir(p).output().expect("run dk");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// (name, status, failing) of every check of one dataset in a `dk test -o json` document.
fn results(doc: &serde_json::Value, dataset: &str) -> Vec<(String, String, u64)> {
    results_with(doc, dataset, |r| r["failing"].as_u64().unwrap_or_default())
}

/// (name, status, `third(result)`) of every check of one dataset.
fn results_with<T>(
    doc: &serde_json::Value,
    dataset: &str,
    third: impl Fn(&serde_json::Value) -> T,
) -> Vec<(String, String, T)> {
    report(doc, dataset)["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
                third(r),
            )
        })
        .collect()
}

fn report<'a>(doc: &'a serde_json::Value, dataset: &str) -> &'a serde_json::Value {
    doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|d| d["dataset"] == dataset)
        .unwrap_or_else(|| panic!("no report for {dataset}: {doc}"))
}

fn s(v: &[(&str, &str, u64)]) -> Vec<(String, String, u64)> {
    v.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
        .collect()
}

/// Both engines must agree on every check.
fn assert_every_kind(doc: &serde_json::Value) {
    assert_eq!(
        results(doc, "good"),
        s(&[
            ("not_null(id)", "pass", 0),
            ("unique(id)", "pass", 0),
            ("accepted_values(status)", "pass", 0),
            ("range(amount)", "pass", 0),
            ("regex(email)", "pass", 0),
            ("relationships(customer_id)", "pass", 0),
            ("row_count", "pass", 0),
            ("freshness(ts)", "pass", 0),
            ("expression", "pass", 0),
        ]),
        "{doc:#}"
    );
    assert_eq!(
        results(doc, "bad"),
        s(&[
            ("not_null(id)", "fail", 1),
            ("unique(id)", "fail", 1),
            ("accepted_values(status)", "fail", 1),
            ("range(amount)", "fail", 2),
            ("regex(email)", "fail", 1),
            ("relationships(customer_id)", "fail", 1),
            ("row_count", "fail", 1),
            ("freshness(ts)", "fail", 1),
            ("expression", "fail", 1),
        ]),
        "{doc:#}"
    );
    // Fused: a passing table is one query; a failing one adds one query for all samples.
    assert_eq!(report(doc, "good")["queries"], 1, "{doc:#}");
    assert_eq!(report(doc, "bad")["queries"], 2, "{doc:#}");
    assert_eq!(report(doc, "good")["rows"], 3);
    assert_eq!(report(doc, "bad")["rows"], 5);
    // Samples: the failing rows themselves, as objects.
    let bad = &report(doc, "bad")["results"];
    assert_eq!(
        bad[0]["samples"][0]["id"],
        serde_json::Value::Null,
        "{bad:#}"
    );
    assert_eq!(
        bad[1]["samples"].as_array().map(Vec::len),
        Some(2),
        "both duplicates: {bad:#}"
    );
    assert_eq!(bad[2]["samples"][0]["status"], "zzz");
    assert_eq!(bad[3]["samples"].as_array().map(Vec::len), Some(2));
    assert_eq!(bad[4]["samples"][0]["email"], "bad-email");
    assert_eq!(bad[5]["samples"][0]["customer_id"], 99);
    assert!(bad[6]["samples"].is_null(), "row_count has no samples");
    assert_eq!(bad[6]["observed"], "rows: 5");
    assert_eq!(bad[8]["samples"][0]["amount"], 5000.0);
    assert_eq!(doc["passed"], false);
}

#[test]
fn duckdb_checks_of_every_kind_pass_and_fail() {
    let (_tmp, p) = duck_project();
    let (code, out, err) = dk_in(&p, &["test", "-e", "dev", "good", "bad", "-o", "json"]);
    assert_eq!(code, 8, "{out}{err}");
    assert_every_kind(&json(&out));

    // Only the passing table: exit 0.
    let (code, out, err) = dk_in(&p, &["test", "-e", "dev", "good"]);
    assert_eq!(code, 0, "{out}{err}");

    // Human output: one line per check, failing counts, samples, locations.
    let (code, out, err) = dk_in(&p, &["test", "-e", "dev", "bad", "--samples", "1"]);
    assert_eq!(code, 8, "{err}");
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"in \d+\.\d+s", "in [TIME]");
    settings.add_filter(r"\(\d+[a-z]+( \d+[a-z]+)* old", "([AGE] old");
    settings.add_filter(
        r"newest: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?",
        "newest: [TS]",
    );
    settings.add_filter(
        r"value \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? is [0-9a-z ]+ old",
        "value [TS] is [AGE] old",
    );
    settings.bind(|| insta::assert_snapshot!("duckdb_bad_human", out));
}

#[test]
fn warn_severity_failures_print_but_exit_zero() {
    let (_tmp, p) = duck_project();
    let (code, out, err) = dk_in(&p, &["test", "-e", "dev", "warned"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("WARN  regex(email)  1 failing row"), "{out}");
    assert!(out.contains("sample: email=NOPE"), "{out}");
    assert!(out.contains("0 failed, 1 warned"), "{out}");
}

#[test]
fn postgres_checks_of_every_kind_pass_and_fail_in_one_scan() {
    let schema = TestSchema::create("dk_test");
    let (_tmp, p) = project(&schema.name);
    pg(&data_sql(&schema.name, "CAST(now() AS TIMESTAMP)"));
    let (code, out, err) = dk_in(&p, &["test", "-e", "prod", "good", "bad", "-o", "json"]);
    assert_eq!(code, 8, "{out}{err}");
    assert_every_kind(&json(&out));

    // One scan: the table's sequential-scan counter moves by exactly one for all nine checks.
    let scans = || -> i64 {
        pg(&format!(
            "SELECT seq_scan FROM pg_stat_user_tables WHERE schemaname = '{}' AND relname = 'good'",
            schema.name
        ))[0][0]
            .as_deref()
            .unwrap_or("0")
            .parse()
            .unwrap()
    };
    let before = scans();
    let (code, out, err) = dk_in(&p, &["test", "-e", "prod", "good", "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let mut after = scans();
    for _ in 0..50 {
        if after > before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        after = scans();
    }
    assert_eq!(
        after - before,
        1,
        "the checks of `good` scanned it {} times",
        after - before
    );
}

/// A table that is missing because its DataSet was never applied is skipped ("not created yet");
/// one the state records (applied, then dropped behind dk's back) is an error naming it.
#[test]
fn postgres_missing_table_is_skipped_until_applied_then_an_error_naming_it() {
    let schema = TestSchema::create("dk_test");
    let (_tmp, p) = project(&schema.name);
    let (code, out, err) = dk_in(&p, &["test", "-e", "prod", "good"]);
    assert_eq!(code, 0, "never applied: skipped, not failed: {out}{err}");
    assert!(
        out.contains(&format!(
            "not created yet: {}.good does not exist in store warehouse",
            schema.name
        )),
        "{out}"
    );
    assert!(out.contains("SKIP"), "{out}");
    let (code, out, err) = dk_in(&p, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    pg(&format!(
        "DROP TABLE {}.good, {}.warned",
        schema.name, schema.name
    ));
    let (code, out, err) = dk_in(&p, &["test", "-e", "prod", "warned"]);
    assert_eq!(code, 0, "warn severity errors do not fail: {out}{err}");
    assert!(
        out.contains(&format!(
            "{}.warned does not exist in store warehouse",
            schema.name
        )),
        "{out}"
    );
    let (code, out, _) = dk_in(&p, &["test", "-e", "prod", "good"]);
    assert_eq!(code, 8, "{out}");
    assert!(out.contains("ERROR not_null(id)"), "{out}");
}

#[test]
fn junit_is_accepted_by_a_junit_parser_and_runs_are_recorded() {
    let (_tmp, p) = duck_project();
    let (code, _, err) = dk_in(
        &p,
        &[
            "test",
            "-e",
            "dev",
            "--junit",
            "out/junit.xml",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 8, "{err}");
    let xml = p.join("out/junit.xml");
    // Python's JUnit reading (xml.etree, as CI report plugins use) must accept it and agree on
    // the counts on every level.
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
total = 0
for suite in root.findall("testsuite"):
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases), suite.get("name")
    assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
    assert int(suite.get("errors")) == sum(1 for c in cases if c.find("error") is not None)
    for c in cases:
        assert c.get("name") and c.get("classname")
    total += len(cases)
assert int(root.get("tests")) == total
print(root.get("tests"), root.get("failures"), root.get("errors"))
for s in root.findall("testsuite"):
    print(s.get("name"), s.get("tests"), s.get("failures"))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&xml)
        .output()
        .expect("python3 (needed to read JUnit XML back) is not installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    insta::assert_snapshot!("junit_counts", String::from_utf8_lossy(&out.stdout));
    let xml_text = fs::read_to_string(&xml).unwrap();
    let doc = roxmltree::Document::parse(&xml_text).unwrap();
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .expect("a failure");
    assert!(failure
        .text()
        .unwrap_or_default()
        .contains("dataset/bad.yaml:"));

    // The outcome is recorded for requireTests: environment, digest, pass/fail, results.
    let dir = p.join(".dk/state/dev/tests");
    let files: Vec<_> = fs::read_dir(&dir)
        .expect("test records")
        .flatten()
        .collect();
    assert_eq!(files.len(), 1);
    let rec = json(&fs::read_to_string(files[0].path()).unwrap());
    assert_eq!(rec["kind"], "test");
    assert_eq!(rec["environment"], "dev");
    assert_eq!(rec["passed"], false);
    assert_eq!(rec["checks_ran"], true);
    assert_eq!(rec["manifests_digest"].as_str().map(str::len), Some(64));
    assert_eq!(rec["results"]["summary"]["warn"], 1);
}

fn quickstart() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("qs");
    let (code, out, err) = run(&["init", p.to_str().unwrap()], None, None);
    assert_eq!(code, 0, "{out}{err}");
    (tmp, p)
}

/// The output with the run time of the summary line replaced.
fn timeless(out: &str) -> String {
    out.lines()
        .map(|l| match l.rfind(" in ") {
            Some(i) if l.ends_with('s') && l.starts_with(['✓', '✗']) => {
                format!("{} in [TIME]", &l[..i])
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn unit_tests_pass_and_fail_with_a_readable_diff() {
    let (_tmp, p) = quickstart();
    let (code, out, err) = dk_in(&p, &["test", "--unit"]);
    assert_eq!(code, 0, "{out}{err}");
    insta::assert_snapshot!("unit_quickstart_pass", timeless(&out));

    // Break the expectation: the cancelled order now counts.
    let f = p.join("transforms/daily-revenue/dk.yaml");
    let text = fs::read_to_string(&f).unwrap();
    fs::write(&f, text.replace("status: cancelled", "status: placed")).unwrap();
    let (code, out, err) = dk_in(&p, &["test", "--unit"]);
    assert_eq!(code, 8, "{out}{err}");
    insta::assert_snapshot!("unit_quickstart_fail", timeless(&out));
    let (_, out, _) = dk_in(&p, &["test", "--unit", "-o", "json"]);
    let doc = json(&out);
    let u = &doc["unit_tests"][0];
    assert_eq!(u["status"], "fail");
    assert_eq!(
        u["diff"]["missing"][0]["cells"],
        serde_json::json!(["2026-01-01", "2", "15.5"])
    );
    assert_eq!(
        u["diff"]["unexpected"][0]["cells"],
        serde_json::json!(["2026-01-01", "3", "114.50"])
    );
}

#[test]
fn unit_tests_from_csv_files_ordered_and_erroring() {
    let (_tmp, p) = quickstart();
    let dir = p.join("transforms/top");
    fs::create_dir_all(dir.join("fixtures")).unwrap();
    fs::write(
        dir.join("dk.yaml"),
        format!(
            "{HEAD}kind: Transform\nmetadata: {{name: top}}\nspec:\n  runtime: sql\n  sql: query.sql\n  materialized: view\n  inputs: [{{dataset: orders}}]\n  outputs: [{{dataset: top-orders}}]\n  vars: {{limit: 2}}\n  tests:\n\
    \x20   - name: csv-ordered\n      given: {{orders: fixtures/orders.csv}}\n      expect: fixtures/expected.csv\n      ordered: true\n\
    \x20   - name: csv-wrong-order\n      given: {{orders: fixtures/orders.csv}}\n      expect: fixtures/reversed.csv\n      ordered: true\n\
    \x20   - name: same-rows-any-order\n      given: {{orders: fixtures/orders.csv}}\n      expect: fixtures/reversed.csv\n\
    \x20   - name: empty-input\n      given: {{orders: []}}\n      expect: []\n"
        ),
    )
    .unwrap();
    fs::write(
        dir.join("query.sql"),
        "select order_id, amount from {{ ref('orders') }}\nwhere status <> 'cancelled'\norder by amount desc\nlimit {{ var('limit') }}\n",
    )
    .unwrap();
    fs::write(
        dir.join("fixtures/orders.csv"),
        "order_id,amount,status,ordered_at\n1,10.00,placed,2026-01-01 09:00:00\n2,99.50,shipped,2026-01-01 10:00:00\n3,500,cancelled,2026-01-01 11:00:00\n4,20,placed,\n",
    )
    .unwrap();
    fs::write(
        dir.join("fixtures/expected.csv"),
        "order_id,amount\n2,99.5\n4,20\n",
    )
    .unwrap();
    fs::write(
        dir.join("fixtures/reversed.csv"),
        "order_id,amount\n4,20\n2,99.5\n",
    )
    .unwrap();
    fs::write(
        p.join("dataset/top-orders.yaml"),
        format!("{HEAD}kind: DataSet\nmetadata: {{name: top-orders}}\nspec:\n  store: warehouse\n  table: main.top_orders\n  schema:\n    - {{name: order_id, type: bigint}}\n    - {{name: amount, type: decimal(10,2)}}\n"),
    )
    .unwrap();
    let (code, out, err) = dk_in(&p, &["test", "--unit", "top"]);
    assert_eq!(code, 8, "{out}{err}");
    insta::assert_snapshot!("unit_csv_ordered", timeless(&out));

    // A SQL error is an ERROR with the engine's message.
    fs::write(
        dir.join("query.sql"),
        "select nope from {{ ref('orders') }}\n",
    )
    .unwrap();
    let (code, out, _) = dk_in(&p, &["test", "--unit", "top", "-o", "json"]);
    assert_eq!(code, 8);
    let doc = json(&out);
    assert_eq!(doc["unit_tests"][0]["status"], "error");
    assert!(
        doc["unit_tests"][0]["message"].as_str().is_some_and(|m| m
            .contains("the transform's SQL failed on the fixtures")
            && m.contains("nope")),
        "{doc:#}"
    );
}

/// `dk run` runs the data checks of each transform's outputs: an error-severity failure marks
/// the transform failed and skips its downstream, while an independent branch still runs.
#[test]
fn failing_check_in_run_stops_downstream_and_independent_branch_runs() {
    let (_tmp, p) = quickstart();
    let w = |rel: &str, text: String| {
        let f = p.join(rel);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, text).unwrap();
    };
    w(
        "dataset/checked.yaml",
        format!("{HEAD}kind: DataSet\nmetadata: {{name: checked}}\nspec:\n  store: warehouse\n  table: main.checked\n  schema: [{{name: x, type: integer, checks: [not_null]}}]\n  checks: [{{row_count: {{max: 0}}}}]\n---\n{HEAD}kind: DataSet\nmetadata: {{name: after-checked}}\nspec:\n  store: warehouse\n  table: main.after_checked\n  schema: [{{name: x, type: integer}}]\n"),
    );
    w(
        "transforms/checked/dk.yaml",
        format!("{HEAD}kind: Transform\nmetadata: {{name: checked}}\nspec:\n  runtime: sql\n  sql: q.sql\n  materialized: table\n  inputs: [{{dataset: orders}}]\n  outputs: [{{dataset: checked}}]\n"),
    );
    w(
        "transforms/checked/q.sql",
        "select 1 as x from {{ ref('orders') }}\n".to_string(),
    );
    w(
        "transforms/after-checked/dk.yaml",
        format!("{HEAD}kind: Transform\nmetadata: {{name: after-checked}}\nspec:\n  runtime: sql\n  sql: q.sql\n  materialized: table\n  inputs: [{{dataset: checked}}]\n  outputs: [{{dataset: after-checked}}]\n"),
    );
    w(
        "transforms/after-checked/q.sql",
        "select x from {{ ref('checked') }}\n".to_string(),
    );
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev", "-o", "json"]);
    // A blocking data check makes the run exit 8, as `dk test` does.
    assert_eq!(code, 8, "exit {code}: {err}");
    let r = json(&out);
    let status = |name: &str| {
        r["transforms"]
            .as_array()
            .expect("transforms")
            .iter()
            .find(|t| t["transform"] == name)
            .unwrap_or_else(|| panic!("no {name} in {out}"))["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(status("checked"), "failed", "{out}");
    assert!(
        out.contains("row_count"),
        "the failing check is named: {out}"
    );
    assert_eq!(status("after-checked"), "skipped", "{out}");
    // The quickstart's own branch does not read `checked` and still runs.
    assert_eq!(status("daily-revenue"), "succeeded", "{out}");
    // The not_null check passed and did not block; the table was written before its checks ran.
    let conn = duckdb::Connection::open(p.join(".dk/warehouse.duckdb")).expect("open duckdb");
    let n: i64 = conn
        .query_row("select count(*) from main.checked", [], |r| r.get(0))
        .expect("checked table");
    assert!(n > 0);
    let missing = conn.query_row("select count(*) from main.after_checked", [], |r| {
        r.get::<_, i64>(0)
    });
    assert!(missing.is_err(), "after-checked must not have run");
}

/// An environment with `requireTests: true` refuses `dk apply` (exit 4) until a passing `dk test`
/// that ran the data checks is recorded for the same manifests digest.
#[test]
fn require_tests_refuses_apply_until_dk_test_passes_on_the_digest() {
    let (_tmp, p) = quickstart();
    // The tables exist and hold data, so the quickstart's checks can run.
    let (code, out, err) = dk_in(&p, &["apply", "-e", "dev", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev"]);
    assert_eq!(code, 0, "{out}{err}");

    let env_file = p.join("environments/dev.yaml");
    let text = fs::read_to_string(&env_file).unwrap();
    fs::write(&env_file, format!("{text}  requireTests: true\n")).unwrap();
    // A change to apply: a new table without checks.
    fs::write(
        p.join("dataset/extra.yaml"),
        format!("{HEAD}kind: DataSet\nmetadata: {{name: extra}}\nspec:\n  store: warehouse\n  table: main.extra\n  schema: [{{name: x, type: integer}}]\n"),
    )
    .unwrap();

    let (code, out, err) = dk_in(&p, &["apply", "-e", "dev", "--auto-approve"]);
    assert_eq!(code, 4, "{out}{err}");
    let both = format!("{out}{err}");
    assert!(
        both.contains("requires a passing `dk test`") && both.contains("run `dk test -e dev`"),
        "{both}"
    );

    // Unit tests alone do not count: they do not run the data checks.
    let (code, out, err) = dk_in(&p, &["test", "-e", "dev", "--unit"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = dk_in(&p, &["apply", "-e", "dev", "--auto-approve"]);
    assert_eq!(code, 4, "{out}{err}");

    let (code, out, err) = dk_in(&p, &["test", "-e", "dev"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = dk_in(&p, &["apply", "-e", "dev", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");

    // Another change makes a new digest: refused again.
    fs::write(
        p.join("dataset/extra2.yaml"),
        format!("{HEAD}kind: DataSet\nmetadata: {{name: extra2}}\nspec:\n  store: warehouse\n  table: main.extra2\n  schema: [{{name: x, type: integer}}]\n"),
    )
    .unwrap();
    let (code, out, err) = dk_in(&p, &["apply", "-e", "dev", "--auto-approve"]);
    assert_eq!(code, 4, "{out}{err}");
}

/// A brand-new DataSet with checks: `dk test` skips its checks (its table does not exist and no
/// apply has created it) and still passes; requireTests accepts that run for a plan that creates
/// the table, and refuses it for a plan that does not (here: a plan targeted elsewhere). Once
/// applied, a missing table is an error again, not a skip.
#[test]
fn require_tests_accepts_skipped_checks_of_new_datasets_the_plan_creates() {
    let (tmp, p) = quickstart();
    let (code, out, err) = dk_in(&p, &["apply", "-e", "dev", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev"]);
    assert_eq!(code, 0, "{out}{err}");
    let env_file = p.join("environments/dev.yaml");
    let text = fs::read_to_string(&env_file).unwrap();
    fs::write(&env_file, format!("{text}  requireTests: true\n")).unwrap();
    for name in ["fresh", "other"] {
        fs::write(
            p.join(format!("dataset/{name}.yaml")),
            format!("{HEAD}kind: DataSet\nmetadata: {{name: {name}}}\nspec:\n  store: warehouse\n  table: main.{name}\n  schema: [{{name: x, type: integer, checks: [not_null]}}]\n  checks: [{{row_count: {{min: 1}}}}]\n"),
        )
        .unwrap();
    }

    let (code, out, err) = dk_in(&p, &["test", "-e", "dev"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("SKIP"), "{out}");
    assert!(out.contains("4 skipped"), "{out}");
    assert!(out.contains("not created yet: fresh, other"), "{out}");
    let junit = tmp.path().join("junit.xml");
    let (code, out, err) = dk_in(
        &p,
        &[
            "test",
            "-e",
            "dev",
            "-o",
            "json",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let doc = json(&out);
    assert_eq!(
        doc["pending"],
        serde_json::json!(["fresh", "other"]),
        "{out}"
    );
    assert_eq!(doc["summary"]["skipped"], 4, "{out}");
    assert_eq!(
        results(&doc, "fresh"),
        s(&[("not_null(x)", "skipped", 0), ("row_count", "skipped", 0)])
    );
    let xml = fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<skipped"), "{xml}");

    // A plan that creates only `other` does not cover `fresh`, whose checks were skipped.
    let plan = tmp.path().join("plan.json");
    let (code, out, err) = dk_in(
        &p,
        &[
            "plan",
            "-e",
            "dev",
            "--target",
            "table.warehouse.main.other",
            "--out",
            plan.to_str().unwrap(),
        ],
    );
    assert!(code == 0 || code == 2, "{out}{err}");
    let (code, out, err) = dk_in(&p, &["apply", plan.to_str().unwrap()]);
    assert_eq!(code, 4, "{out}{err}");
    let both = format!("{out}{err}");
    assert!(
        both.contains("skipped the checks of fresh") && both.contains("does not create them"),
        "{both}"
    );
    // The full plan creates both: accepted.
    let (code, out, err) = dk_in(&p, &["apply", "-e", "dev", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");

    // Applied now: a table that went missing is an error, not a skip.
    let conn = duckdb::Connection::open(p.join(".dk/warehouse.duckdb")).expect("open duckdb");
    conn.execute_batch("drop table main.fresh").expect("drop");
    drop(conn);
    let (code, out, err) = dk_in(&p, &["test", "-e", "dev", "fresh"]);
    assert_eq!(code, 8, "{out}{err}");
    assert!(out.contains("does not exist"), "{out}");
    assert!(!out.contains("SKIP"), "{out}");
}

/// Tables whose definitions guarantee some checks: `keyed` has a primary key, a NOT NULL column, a
/// partial unique index (which guarantees nothing: `ref` has duplicates outside it) and a plain
/// column; `all_keyed` declares only checks its definition guarantees.
fn keyed_sql(schema: &str) -> String {
    format!(
        "CREATE TABLE {schema}.keyed (id BIGINT PRIMARY KEY, code VARCHAR NOT NULL, ref BIGINT, part BIGINT);
         CREATE UNIQUE INDEX keyed_ref_positive ON {schema}.keyed (ref) WHERE ref > 0;
         INSERT INTO {schema}.keyed VALUES (1, 'a', 1, 1), (2, 'b', -1, 2), (3, 'c', -1, NULL);
         CREATE TABLE {schema}.all_keyed (id BIGINT PRIMARY KEY, code VARCHAR NOT NULL UNIQUE);
         INSERT INTO {schema}.all_keyed VALUES (1, 'a'), (2, 'b');"
    )
}

fn keyed_project(schema: &str) -> (tempfile::TempDir, PathBuf) {
    let (tmp, p) = project(schema);
    fs::write(
        p.join("dataset/keyed.yaml"),
        format!(
            "{HEAD}kind: DataSet\nmetadata: {{name: keyed}}\nspec:\n  store: warehouse\n  table: {schema}.keyed\n  external: true\n  schema:\n\
    \x20   - {{name: id, type: bigint, checks: [not_null, unique, {{unique: {{where: \"code <> 'z'\"}}}}]}}\n\
    \x20   - {{name: code, type: string, checks: [not_null, {{not_null: {{where: \"id > 1\"}}}}]}}\n\
    \x20   - {{name: ref, type: bigint, checks: [unique]}}\n\
    \x20   - {{name: part, type: bigint, checks: [{{not_null: {{severity: warn}}}}]}}\n\
    ---\n{HEAD}kind: DataSet\nmetadata: {{name: all-keyed}}\nspec:\n  store: warehouse\n  table: {schema}.all_keyed\n  external: true\n  schema:\n\
    \x20   - {{name: id, type: bigint, checks: [not_null, unique]}}\n\
    \x20   - {{name: code, type: string, checks: [not_null, unique]}}\n"
        ),
    )
    .unwrap();
    (tmp, p)
}

/// (name, status, guaranteed_by) of every check of one dataset.
fn guaranteed(doc: &serde_json::Value, dataset: &str) -> Vec<(String, String, Option<String>)> {
    results_with(doc, dataset, |r| {
        r["guaranteed_by"].as_str().map(str::to_string)
    })
}

fn assert_guarantees(doc: &serde_json::Value, pk: &str, code_unique: &str) {
    let g = |s: &str| Some(s.to_string());
    let row = |n: &str, st: &str, by: Option<String>| (n.to_string(), st.to_string(), by);
    assert_eq!(
        guaranteed(doc, "keyed"),
        vec![
            row("not_null(id)", "pass", g("NOT NULL")),
            row("unique(id)", "pass", g(pk)),
            row("unique(id)#2", "pass", g(pk)),
            row("not_null(code)", "pass", g("NOT NULL")),
            row("not_null(code)#2", "pass", g("NOT NULL")),
            // A partial unique index proves nothing about the rows outside it.
            row("unique(ref)", "fail", None),
            row("not_null(part)", "fail", None),
        ],
        "{doc:#}"
    );
    // The scanned checks still run as one statement (+ one for the samples of the failures).
    assert_eq!(report(doc, "keyed")["queries"], 2, "{doc:#}");
    assert_eq!(report(doc, "keyed")["rows"], 3, "{doc:#}");
    assert_eq!(
        guaranteed(doc, "all-keyed"),
        vec![
            row("not_null(id)", "pass", g("NOT NULL")),
            row(
                "unique(id)",
                "pass",
                g(pk.replace("keyed", "all_keyed").as_str())
            ),
            row("not_null(code)", "pass", g("NOT NULL")),
            row("unique(code)", "pass", g(code_unique)),
        ],
        "{doc:#}"
    );
    // Everything guaranteed: the table is not read at all.
    assert_eq!(report(doc, "all-keyed")["queries"], 0, "{doc:#}");
}

#[test]
fn duckdb_checks_guaranteed_by_keys_and_not_null_are_not_scanned() {
    let (_tmp, p) = keyed_project("main");
    fs::create_dir_all(p.join(".dk")).unwrap();
    let conn = duckdb::Connection::open(p.join(".dk/wh.duckdb")).expect("open duckdb");
    // DuckDB has no partial indexes: `ref` gets no index at all.
    conn.execute_batch(&keyed_sql("main").replace(
        "CREATE UNIQUE INDEX keyed_ref_positive ON main.keyed (ref) WHERE ref > 0;",
        "",
    ))
    .expect("load duckdb fixture");
    drop(conn);
    let (code, out, err) = dk_in(
        &p,
        &["test", "-e", "dev", "keyed", "all-keyed", "-o", "json"],
    );
    assert_eq!(code, 8, "unique(ref) fails: {out}{err}");
    assert_guarantees(&json(&out), "PRIMARY KEY (id)", "UNIQUE (code)");
    let (_, out, _) = dk_in(&p, &["test", "-e", "dev", "all-keyed"]);
    assert!(
        out.contains("unique(id)      guaranteed by PRIMARY KEY (id)"),
        "{out}"
    );
}

#[test]
fn postgres_checks_guaranteed_by_keys_and_not_null_are_not_scanned() {
    let schema = TestSchema::create("dk_test");
    let (_tmp, p) = keyed_project(&schema.name);
    pg(&keyed_sql(&schema.name));
    // Building the indexes scanned the table; count from here (the fixture's session has ended,
    // so its statistics are flushed).
    let seq_scans = || {
        pg(&format!(
            "SELECT seq_scan FROM pg_stat_user_tables WHERE schemaname = '{}' AND relname = 'all_keyed'",
            schema.name
        ))[0][0]
            .clone()
    };
    let before = seq_scans();
    let (code, out, err) = dk_in(
        &p,
        &["test", "-e", "prod", "keyed", "all-keyed", "-o", "json"],
    );
    assert_eq!(code, 8, "unique(ref) fails: {out}{err}");
    assert_guarantees(
        &json(&out),
        "primary key keyed_pkey",
        "unique index all_keyed_code_key",
    );
    // The fully guaranteed table is never scanned (dk's sessions have ended: flushed).
    std::thread::sleep(std::time::Duration::from_millis(1000));
    assert_eq!(seq_scans(), before, "all_keyed was scanned");
}
