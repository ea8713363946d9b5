//! `dk run` and `dk runs` end to end: the quickstart on DuckDB and local files (no service), the
//! same project on the real PostgreSQL (files → PostgreSQL), PostgreSQL → DuckDB syncs (full and
//! incremental by cursor), SQL view / table / incremental in both engines, a failing transform that
//! skips its downstream while an independent branch runs, and `--due`.

mod common;
mod pgproject;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use pgproject::{pg, TestDb};

fn dk_in(p: &Path, args: &[&str]) -> (i32, String, String) {
    let out = dk().args(args).current_dir(p).output().expect("run dk");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn quickstart() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path().join("shop");
    let (code, out, err) = run(
        &["init", p.to_str().expect("utf8"), "--name", "shop"],
        None,
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    (tmp, p)
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn duck(p: &Path, sql: &str) -> Vec<Vec<String>> {
    let conn = duckdb::Connection::open(p.join(".dk/warehouse.duckdb")).expect("open duckdb");
    let mut stmt = conn
        .prepare(&format!("select columns(*)::varchar from ({sql})"))
        .expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    let mut out = Vec::new();
    while let Some(r) = rows.next().expect("row") {
        let n = r.as_ref().column_count();
        out.push(
            (0..n)
                .map(|i| match r.get_ref(i).expect("value") {
                    duckdb::types::ValueRef::Null => "NULL".to_string(),
                    _ => r.get::<_, String>(i).expect("text"),
                })
                .collect(),
        );
    }
    out
}

fn write(p: &Path, rel: &str, text: &str) {
    let f = p.join(rel);
    fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
    fs::write(f, text).expect("write");
}

const API: &str = "apiVersion: datakit.infoblox.dev/v1alpha1";

#[test]
fn quickstart_runs_on_duckdb_and_files_and_records_runs() {
    let (_tmp, p) = quickstart();
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("load-orders"), "{out}");
    assert!(out.contains("10 rows read, 10 written"), "{out}");
    assert!(out.contains("2 succeeded, 0 failed, 0 skipped"), "{out}");
    assert_eq!(
        duck(&p, "select count(*) from main.orders"),
        vec![vec!["10"]]
    );
    assert_eq!(
        duck(&p, "select cast(order_date as varchar), orders, cast(revenue as varchar) from main.daily_revenue order by 1 limit 1"),
        vec![vec!["2026-01-05", "2", "62.49"]]
    );
    // Run records, with the checks the hook ran.
    let (code, out, err) = dk_in(&p, &["runs", "list", "-e", "dev", "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let runs = json(&out);
    let runs = runs.as_array().expect("array");
    assert_eq!(runs.len(), 2, "{out}");
    assert_eq!(runs[0]["transform"], "load-orders");
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["rows_written"], 10);
    assert!(runs[0]["checks"].is_array(), "{}", runs[0]);
    let id = runs[1]["id"].as_str().expect("id");
    let (code, out, err) = dk_in(&p, &["runs", "show", id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("transform:  daily-revenue") && out.contains("status:     succeeded"),
        "{out}"
    );
    // The human list.
    let (code, out, _) = dk_in(&p, &["runs", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("TRANSFORM") && out.contains("daily-revenue"),
        "{out}"
    );
    // A second run overwrites (no cursor): still 10 rows.
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev", "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["succeeded"], 2);
    assert_eq!(
        duck(&p, "select count(*) from main.orders"),
        vec![vec!["10"]]
    );
}

#[test]
fn failing_transform_skips_downstream_and_independent_branch_runs() {
    let (_tmp, p) = quickstart();
    write(
        &p,
        "dataset/broken.yaml",
        &format!("{API}\nkind: DataSet\nmetadata: {{name: broken}}\nspec:\n  store: warehouse\n  table: main.broken\n  schema: [{{name: x, type: integer}}]\n---\n{API}\nkind: DataSet\nmetadata: {{name: after-broken}}\nspec:\n  store: warehouse\n  table: main.after_broken\n  schema: [{{name: x, type: integer}}]\n"),
    );
    write(
        &p,
        "transforms/broken/dk.yaml",
        &format!("{API}\nkind: Transform\nmetadata: {{name: broken}}\nspec:\n  runtime: sql\n  sql: q.sql\n  materialized: table\n  inputs: [{{dataset: orders}}]\n  outputs: [{{dataset: broken}}]\n  retries: 1\n"),
    );
    write(
        &p,
        "transforms/broken/q.sql",
        "select x from no_such_table, {{ ref('orders') }}\n",
    );
    write(
        &p,
        "transforms/after-broken/dk.yaml",
        &format!("{API}\nkind: Transform\nmetadata: {{name: after-broken}}\nspec:\n  runtime: sql\n  sql: q.sql\n  inputs: [{{dataset: broken}}]\n  outputs: [{{dataset: after-broken}}]\n"),
    );
    write(
        &p,
        "transforms/after-broken/q.sql",
        "select x from {{ ref('broken') }}\n",
    );
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev", "--parallelism", "2"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAILED  broken"), "{out}");
    assert!(out.contains("no_such_table"), "{out}");
    assert!(out.contains("(2 attempts)"), "{out}");
    assert!(
        out.contains("skipped after-broken") && out.contains("upstream transform broken failed"),
        "{out}"
    );
    assert!(out.contains("2 succeeded, 1 failed, 1 skipped"), "{out}");
    assert_eq!(
        duck(&p, "select count(*) from main.daily_revenue"),
        vec![vec!["4"]]
    );
    let (_, out, _) = dk_in(&p, &["run", "-e", "dev", "-o", "json", "broken+"]);
    let r = json(&out);
    assert_eq!(
        (r["failed"].as_u64(), r["skipped"].as_u64()),
        (Some(1), Some(1)),
        "{out}"
    );
    assert_eq!(r["transforms"][1]["status"], "skipped");
}

#[test]
fn container_runtime_is_a_clear_error_naming_the_transform() {
    let (_tmp, p) = quickstart();
    write(
        &p,
        "transforms/container/dk.yaml",
        &format!("{API}\nkind: Transform\nmetadata: {{name: container}}\nspec:\n  runtime: generic-go\n  image: example/x:1\n  inputs: [{{dataset: orders}}]\n  outputs: [{{dataset: container-out}}]\n---\n{API}\nkind: DataSet\nmetadata: {{name: container-out}}\nspec:\n  store: warehouse\n  table: main.container_out\n"),
    );
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev", "container"]);
    assert_eq!(code, 1, "{out}{err}");
    // Whether or not a container engine is installed, the message names the transform, the
    // runtime and what to do instead.
    assert!(
        out.contains("transform container: runtime generic-go runs a container image"),
        "{out}"
    );
    assert!(out.contains("does not run container images"), "{out}");
}

/// The quickstart with load-orders on a yearly schedule: after one run, the next occurrence is
/// far away.
fn yearly_quickstart() -> (tempfile::TempDir, PathBuf) {
    let (tmp, p) = quickstart();
    let f = p.join("transforms/load-orders/dk.yaml");
    let text = fs::read_to_string(&f).expect("read");
    fs::write(&f, text.replace("0 * * * *", "0 0 1 1 *")).expect("write");
    (tmp, p)
}

#[test]
fn due_runs_what_never_ran_then_nothing_until_inputs_change() {
    let (_tmp, p) = yearly_quickstart();
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev", "--due"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("load-orders: due (scheduled and never ran)"),
        "{err}"
    );
    assert!(
        err.contains("daily-revenue: due (never succeeded)"),
        "{err}"
    );
    assert!(out.contains("2 succeeded"), "{out}");
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev", "--due"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Nothing to run."), "{out}{err}");
    assert!(err.contains("load-orders: not due (next at"), "{err}");
    assert!(
        err.contains("daily-revenue: not due (no input changed"),
        "{err}"
    );
    // Running load-orders by hand writes orders: daily-revenue becomes due by on-change.
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev", "load-orders"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev", "--due"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("daily-revenue: due (input orders written by load-orders"),
        "{err}"
    );
    assert!(out.contains("1 succeeded"), "{out}");
    // Manual transforms never run without a selector.
    let f = p.join("transforms/daily-revenue/dk.yaml");
    let text = fs::read_to_string(&f).expect("read");
    fs::write(&f, text.replace("policy: on-change", "policy: manual")).expect("write");
    let (_, out, err) = dk_in(&p, &["run", "-e", "dev"]);
    assert!(
        err.contains("daily-revenue: manual trigger, not selected"),
        "{err}"
    );
    assert!(out.contains("1 succeeded"), "{out}");
}

#[test]
fn pruned_run_records_are_gone_but_due_still_knows_what_ran() {
    let (_tmp, p) = yearly_quickstart();
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev", "--due"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 succeeded"), "{out}");
    let (code, out, err) = dk_in(
        &p,
        &[
            "runs",
            "prune",
            "-e",
            "dev",
            "--older-than",
            "0s",
            "--dry-run",
            "-o",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(
        (v["removed"].as_u64(), v["dry_run"].as_bool()),
        (Some(2), Some(true)),
        "{v}"
    );
    let (_, out, _) = dk_in(&p, &["runs", "list", "-e", "dev", "-o", "json"]);
    assert_eq!(json(&out).as_array().map(Vec::len), Some(2), "{out}");
    let (code, out, err) = dk_in(&p, &["runs", "prune", "-e", "dev", "--older-than", "0s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Deleted 2 run record(s) of environment dev older than 0s"),
        "{out}"
    );
    let (_, out, _) = dk_in(&p, &["runs", "list", "-e", "dev", "-o", "json"]);
    assert_eq!(json(&out).as_array().map(Vec::len), Some(0), "{out}");
    assert!(p.join(".dk/state/dev/runs/pruned.json").exists());
    // What `--due` reads survived: nothing is due, for the same reasons as before the prune.
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev", "--due"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Nothing to run."), "{out}{err}");
    assert!(err.contains("load-orders: not due (next at"), "{err}");
    let (code, _, err) = dk_in(&p, &["runs", "prune", "-e", "dev", "--older-than", "soon"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--older-than soon: \"soon\" is not a duration"),
        "{err}"
    );
}

fn prod(p: &Path, db: &TestDb) {
    write(
        p,
        "connector/postgres.yaml",
        &format!("{API}\nkind: Connector\nmetadata: {{name: postgres}}\nspec: {{type: postgres, capabilities: [source, destination]}}\n"),
    );
    write(
        p,
        "environments/prod.yaml",
        &format!(
            "{API}\nkind: Environment\nmetadata: {{name: prod}}\nspec:\n  tier: prod\n  order: 3\n  bindings:\n    warehouse:\n      connector: postgres\n      connection: {{host: 127.0.0.1, port: 5432, database: {}, user: postgres, sslmode: disable}}\n",
            db.0
        ),
    );
}

#[test]
fn quickstart_runs_files_into_postgres() {
    let db = TestDb::new("run");
    let (_tmp, p) = quickstart();
    prod(&p, &db);
    let (code, out, err) = dk_in(&p, &["run", "-e", "prod"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 succeeded"), "{out}");
    assert_eq!(
        pg(
            &db.0,
            "select count(*), sum(amount)::text, min(ordered_at)::text from main.orders"
        ),
        vec![vec![
            Some("10".into()),
            Some("656.14".into()),
            Some("2026-01-05 09:12:00".into())
        ]]
    );
    assert_eq!(
        pg(&db.0, "select order_date::text, orders, revenue::text from main.daily_revenue order by 1 limit 1"),
        vec![vec![Some("2026-01-05".into()), Some("2".into()), Some("62.49".into())]]
    );
}

/// A project with a PostgreSQL source store, a DuckDB warehouse, a sync PG → DuckDB with a
/// cursor and a key, and SQL transforms materialized as view, table and incremental — in the
/// warehouse of `env` (dev: DuckDB, prod: PostgreSQL).
fn pg_project(db: &TestDb) -> (tempfile::TempDir, PathBuf) {
    let (tmp, p) = quickstart();
    prod(&p, db);
    write(
        &p,
        "store/source.yaml",
        &format!(
            "{API}\nkind: Store\nmetadata: {{name: source}}\nspec:\n  connector: postgres\n  connection: {{host: 127.0.0.1, port: 5432, database: {}, user: postgres, sslmode: disable}}\n",
            db.0
        ),
    );
    let cols = "  schema:\n    - {name: id, type: bigint, nullable: false}\n    - {name: name, type: string}\n    - {name: price, type: \"decimal(10,2)\"}\n    - {name: updated_at, type: timestamp, nullable: false}\n    - {name: attrs, type: json}\n    - {name: ref, type: uuid}\n";
    write(
        &p,
        "dataset/items.yaml",
        &format!(
            "{API}\nkind: DataSet\nmetadata: {{name: src-items}}\nspec:\n  store: source\n  table: shop.items\n  external: true\n{cols}---\n{API}\nkind: DataSet\nmetadata: {{name: items}}\nspec:\n  store: warehouse\n  table: main.items\n{cols}---\n{API}\nkind: DataSet\nmetadata: {{name: items-view}}\nspec:\n  store: warehouse\n  table: main.items_view\n---\n{API}\nkind: DataSet\nmetadata: {{name: items-table}}\nspec:\n  store: warehouse\n  table: main.items_table\n  schema: [{{name: id, type: bigint}}, {{name: price, type: \"decimal(10,2)\"}}]\n---\n{API}\nkind: DataSet\nmetadata: {{name: items-incr}}\nspec:\n  store: warehouse\n  table: main.items_incr\n  schema: [{{name: id, type: bigint}}, {{name: name, type: string}}, {{name: updated_at, type: timestamp}}]\n"
        ),
    );
    write(
        &p,
        "transforms/sync-items/dk.yaml",
        &format!("{API}\nkind: Transform\nmetadata: {{name: sync-items}}\nspec:\n  runtime: cloudquery\n  inputs: [{{dataset: src-items}}]\n  outputs: [{{dataset: items}}]\n  cursor: updated_at\n  uniqueKey: [id]\n"),
    );
    for (name, mat, out, sql, extra) in [
        (
            "items-view",
            "view",
            "items-view",
            "select id, upper(name) as name from {{ ref('items') }}",
            "",
        ),
        (
            "items-table",
            "table",
            "items-table",
            "select id, price * {{ var('factor', 2) }} as price from {{ ref('items') }}",
            "",
        ),
        (
            "items-incr",
            "incremental",
            "items-incr",
            "select id, name, updated_at from {{ ref('items') }}",
            "  cursor: updated_at\n  uniqueKey: [id]\n",
        ),
    ] {
        write(
            &p,
            &format!("transforms/{name}/dk.yaml"),
            &format!("{API}\nkind: Transform\nmetadata: {{name: {name}}}\nspec:\n  runtime: sql\n  sql: q.sql\n  materialized: {mat}\n  inputs: [{{dataset: items}}]\n  outputs: [{{dataset: {out}}}]\n{extra}"),
        );
        write(&p, &format!("transforms/{name}/q.sql"), sql);
    }
    pg(
        &db.0,
        "create schema shop; create table shop.items (id bigint primary key, name text, price numeric(10,2), updated_at timestamp not null, attrs jsonb, ref uuid);
         insert into shop.items values
           (1, 'apple', 1.50, '2026-01-01 10:00:00', '{\"c\": \"red\"}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
           (2, 'pear', 2.25, '2026-01-02 10:00:00', null, null),
           (3, null, -0.01, '2026-01-03 10:00:00', '[1, 2]', null)",
    );
    (tmp, p)
}

fn items_checks(p: &Path, db: &TestDb, env: &str) -> Vec<Vec<String>> {
    let q = "select cast(id as varchar), coalesce(name, 'NULL'), cast(price as varchar), cast(updated_at as varchar) from main.items order by id";
    if env == "dev" {
        duck(p, q)
    } else {
        pg(&db.0, q)
            .into_iter()
            .map(|r| r.into_iter().map(|v| v.unwrap_or_default()).collect())
            .collect()
    }
}

fn sync_and_sql_in(env: &str) {
    let db = TestDb::new("runpg");
    let (_tmp, p) = pg_project(&db);
    let sel = ["sync-items+"];
    let mut args = vec!["run", "-e", env];
    args.extend(sel);
    let (code, out, err) = dk_in(&p, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("4 succeeded"), "{out}");
    assert!(
        out.contains("sync-items") && out.contains("3 rows read, 3 written"),
        "{out}"
    );
    let rows = items_checks(&p, &db, env);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0][1], "apple");
    assert_eq!(rows[2][2], "-0.01");
    assert!(rows[0][3].starts_with("2026-01-01 10:00:00"), "{rows:?}");
    let (_, runs, _) = dk_in(
        &p,
        &[
            "runs",
            "list",
            "-e",
            env,
            "--transform",
            "sync-items",
            "-o",
            "json",
        ],
    );
    let runs = json(&runs);
    assert_eq!(
        runs[0]["outputs"][0]["cursor"], "2026-01-03T10:00:00",
        "{runs}"
    );
    // Incremental: one row changed, one new; only those are read.
    pg(
        &db.0,
        "update shop.items set name = 'PEAR', updated_at = '2026-01-04 10:00:00' where id = 2;
         insert into shop.items values (4, 'fig', 9.99, '2026-01-05 10:00:00', null, null)",
    );
    let (code, out, err) = dk_in(&p, &args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 rows read, 2 written"), "{out}");
    let rows = items_checks(&p, &db, env);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[1][1], "PEAR");
    let q = |sql: &str| -> String {
        if env == "dev" {
            duck(&p, sql)[0][0].clone()
        } else {
            pg(&db.0, sql)[0][0].clone().unwrap_or_default()
        }
    };
    assert_eq!(q("select name from main.items_view where id = 2"), "PEAR");
    assert_eq!(
        q("select cast(price as varchar) from main.items_table where id = 4"),
        "19.98"
    );
    assert_eq!(q("select count(*) from main.items_incr"), "4");
    assert_eq!(q("select name from main.items_incr where id = 2"), "PEAR");
    // --full-refresh copies everything again.
    let mut full = args.clone();
    full.push("--full-refresh");
    let (code, out, err) = dk_in(&p, &full);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("4 rows read, 4 written"), "{out}");
    assert_eq!(items_checks(&p, &db, env).len(), 4);
}

#[test]
fn postgres_to_duckdb_sync_full_and_incremental_and_sql_materializations_in_duckdb() {
    sync_and_sql_in("dev");
}

#[test]
fn postgres_to_postgres_sync_and_sql_materializations_in_postgres() {
    sync_and_sql_in("prod");
}

#[test]
fn declared_schema_is_enforced() {
    let db = TestDb::new("runschema");
    let (_tmp, p) = pg_project(&db);
    pg(&db.0, "insert into shop.items values (5, 'x', 1, '2026-01-06 00:00:00', null, null); alter table shop.items alter column updated_at drop not null; insert into shop.items values (6, 'y', 1, null, null, null)");
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev", "sync-items"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(
            "column updated_at is declared `nullable: false` but 1 row(s) of this batch are NULL"
        ),
        "{out}"
    );
}

#[test]
fn a_run_killed_mid_transform_reads_as_interrupted_and_the_next_run_archives_it() {
    let (_tmp, p) = quickstart();
    let pid_file = p.join("slow.pid");
    write(
        &p,
        "transforms/slow/dk.yaml",
        &format!(
            "{API}\nkind: Transform\nmetadata: {{name: slow}}\nspec:\n  runtime: python\n  script: slow.py\n  inputs: [{{dataset: orders}}]\n  outputs: [{{dataset: slow-out}}]\n  trigger: {{policy: manual}}\n---\n{API}\nkind: DataSet\nmetadata: {{name: slow-out}}\nspec:\n  store: warehouse\n  table: main.slow_out\n  classification: confidential\n"
        ),
    );
    write(
        &p,
        "transforms/slow/slow.py",
        &format!(
            "import os, time\nopen({:?}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n",
            pid_file.to_str().expect("utf8")
        ),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dk"))
        .args(["run", "-e", "dev", "slow"])
        .current_dir(&p)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn dk run");
    // The journal says `running` before the script starts; the script says it started.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pid_file.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("dk run ended ({status}) before the script started: {err}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the script never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().expect("kill -9 dk run");
    child.wait().expect("reap");
    if let Ok(pid) = fs::read_to_string(&pid_file) {
        let _ = std::process::Command::new("kill")
            .args(["-9", pid.trim()])
            .status();
    }
    let runs_dir = p.join(".dk/state/dev/runs");
    let journals = |dir: &Path| -> usize {
        fs::read_dir(dir)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
                })
                .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(journals(&runs_dir), 1, "the killed run's journal stays");
    let (code, out, err) = dk_in(&p, &["runs", "list", "-e", "dev", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    assert_eq!(v[0]["transform"], "slow", "{v}");
    assert_eq!(v[0]["status"], "interrupted", "{v}");
    // The next run succeeds and folds both journals into the summary.
    let (code, out, err) = dk_in(&p, &["run", "-e", "dev", "load-orders"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(journals(&runs_dir), 0);
    assert_eq!(journals(&runs_dir.join("archive")), 2);
    assert!(runs_dir.join("summary.json").is_file());
    let (code, out, err) = dk_in(&p, &["runs", "list", "-e", "dev", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    let statuses: Vec<(&str, &str)> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["transform"].as_str().unwrap_or(""),
                r["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [("slow", "interrupted"), ("load-orders", "succeeded")]
    );
}
