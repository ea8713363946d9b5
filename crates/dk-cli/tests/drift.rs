//! `dk drift` (one check, ignore rules, `--watch` on PostgreSQL and DuckDB) and `dk import`
//! (one address, `--discover … --write`), against the real PostgreSQL and DuckDB files.

mod common;
mod pgproject;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use pgproject::{pg, TestDb};

/// A quickstart project whose `prod` environment is bound to the test database.
fn project(db: &TestDb) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path().join("shop");
    let (code, out, err) = run(
        &["init", p.to_str().expect("utf-8"), "--name", "shop"],
        None,
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    fs::write(
        p.join("connector/postgres.yaml"),
        "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Connector\nmetadata: {name: postgres}\nspec: {type: postgres, capabilities: [source, destination]}\n",
    )
    .expect("write");
    write_prod(&p, db, "");
    (tmp, p)
}

fn write_prod(p: &Path, db: &TestDb, extra: &str) {
    fs::write(
        p.join("environments/prod.yaml"),
        format!(
            "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Environment\nmetadata: {{name: prod}}\nspec:\n  tier: prod\n  order: 3\n  bindings:\n    warehouse:\n      connector: postgres\n      connection: {{host: 127.0.0.1, port: 5432, database: {}, user: postgres, sslmode: disable}}\n{extra}",
            db.0
        ),
    )
    .expect("write prod");
}

fn dk_in(p: &Path, args: &[&str]) -> (i32, String, String) {
    let out = dk().args(args).current_dir(p).output().expect("run dk");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `dk` as a `std::process::Command`, for children that run in the background.
fn dk_child() -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("dk"));
    c.env("NO_COLOR", "1").env_remove("DK_PROJECT_DIR");
    c
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn drift_reports_changes_deletions_and_unmanaged_objects_and_honours_ignore_rules() {
    let db = TestDb::new("drift");
    let (_tmp, p) = project(&db);
    let (code, out, err) = dk_in(&p, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = dk_in(&p, &["drift", "-e", "prod"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No drift in prod"), "{out}");

    // Changes made with SQL, outside dk.
    pg(
        &db.0,
        "ALTER TABLE main.orders ADD COLUMN note text;
         ALTER TABLE main.orders ALTER COLUMN status DROP NOT NULL;
         CREATE TABLE main.stray (x int);
         DROP TABLE main.daily_revenue;",
    );
    let (code, out, err) = dk_in(&p, &["drift", "-e", "prod"]);
    assert_eq!(code, 6, "{out}{err}");
    insta::assert_snapshot!("drift_human", out);
    let (code, out, _) = dk_in(&p, &["drift", "-e", "prod", "-o", "json"]);
    assert_eq!(code, 6);
    let v = json(&out);
    let entries: Vec<(String, String)> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["address"].as_str().unwrap_or("").to_string(),
                e["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (
                "table.warehouse.main.daily_revenue".into(),
                "deleted".into()
            ),
            ("table.warehouse.main.orders".into(), "changed".into()),
            ("table.warehouse.main.stray".into(), "unmanaged".into()),
        ]
    );

    // Ignore rules: the stray table for good, the orders' note column until a future date.
    write_prod(
        &p,
        &db,
        "  drift:\n    ignore:\n      - {resource: table.warehouse.main.stray, reason: owned by the BI team}\n      - {resource: table.warehouse.*.orders, fields: [columns.note, columns.*.nullable], reason: migration in progress, expires: 2999-12-31}\n",
    );
    let (code, out, err) = dk_in(&p, &["drift", "-e", "prod", "-o", "json"]);
    assert_eq!(code, 6, "{out}{err}");
    let v = json(&out);
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(v["entries"][0]["kind"], "deleted");
    assert_eq!(v["ignored"].as_array().map(Vec::len), Some(2), "{out}");

    // Once the table is back (dk apply of that table only) only ignored drift remains: exit 0.
    let (code, out, err) = dk_in(
        &p,
        &[
            "apply",
            "-e",
            "prod",
            "--auto-approve",
            "--target",
            "table.warehouse.main.daily_revenue",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = dk_in(&p, &["drift", "-e", "prod"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("migration in progress"), "{out}");

    // An expired rule hides nothing and is reported.
    write_prod(
        &p,
        &db,
        "  drift:\n    ignore:\n      - {resource: table.warehouse.main.stray, reason: owned by the BI team}\n      - {resource: table.warehouse.*.orders, fields: [columns.note], reason: migration in progress, expires: 2020-01-31}\n",
    );
    let (code, out, err) = dk_in(&p, &["drift", "-e", "prod"]);
    assert_eq!(code, 6, "{out}{err}");
    assert!(out.contains("columns.note"), "{out}");
    assert!(out.contains("Expired drift.ignore rules"), "{out}");
    assert!(out.contains("expired 2020-01-31"), "{out}");
}

/// Reads a child's stdout lines on a thread.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the watcher's "Watching …" line on stderr; returns the rest of stderr as a channel.
fn wait_until_watching(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with("Watching") => return rx,
            Ok(_) => continue,
            Err(e) => panic!("dk drift --watch did not start: {e}"),
        }
    }
}

/// The first stdout line containing `needle` within `limit`.
fn expect_line(rx: &mpsc::Receiver<String>, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(_) => continue,
            Err(_) => panic!("no line with {needle:?} within {limit:?}"),
        }
    }
}

fn interrupt(child: &mut Child) -> i32 {
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s.code().unwrap_or(-1);
        }
        assert!(
            Instant::now() < deadline,
            "dk drift --watch did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn watch_on_postgres_reports_ddl_within_seconds_through_event_triggers() {
    let db = TestDb::new("watch");
    let (_tmp, p) = project(&db);
    let (code, out, err) = dk_in(&p, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    // A 60 s polling interval: only the event trigger can report within 5 s.
    let mut child = dk_child()
        .args([
            "drift",
            "-e",
            "prod",
            "--watch",
            "--interval",
            "60",
            "-o",
            "json",
        ])
        .current_dir(&p)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dk drift --watch");
    let _stderr = wait_until_watching(&mut child);
    let lines = lines_of(&mut child);
    assert_eq!(
        pg(
            &db.0,
            "select count(*) from pg_event_trigger where evtname like 'dk_watch_%'"
        )[0][0]
            .as_deref(),
        Some("2")
    );
    let started = Instant::now();
    pg(
        &db.0,
        "ALTER TABLE main.orders ADD COLUMN watched_note text",
    );
    let line = expect_line(&lines, "watched_note", Duration::from_secs(5));
    let elapsed = started.elapsed();
    let v = json(&line);
    assert_eq!(v["event"], "drift");
    assert_eq!(v["entry"]["address"], "table.warehouse.main.orders");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // Undoing it is reported as resolved.
    pg(&db.0, "ALTER TABLE main.orders DROP COLUMN watched_note");
    expect_line(&lines, "resolved", Duration::from_secs(5));
    assert_eq!(interrupt(&mut child), 6);
    // dk removed what it installed.
    assert_eq!(
        pg(
            &db.0,
            "select count(*) from pg_event_trigger where evtname like 'dk_watch_%'"
        )[0][0]
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        pg(
            &db.0,
            "select count(*) from pg_namespace where nspname = 'dk_watch'"
        )[0][0]
            .as_deref(),
        Some("0")
    );
}

#[test]
fn watch_on_duckdb_polls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path().join("shop");
    let (code, out, err) = run(
        &["init", p.to_str().expect("utf-8"), "--name", "shop"],
        None,
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = dk_in(&p, &["apply", "-e", "dev", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    let mut child = dk_child()
        .args(["drift", "-e", "dev", "--watch", "--interval", "0.3"])
        .current_dir(&p)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dk drift --watch");
    let _stderr = wait_until_watching(&mut child);
    let lines = lines_of(&mut child);
    expect_line(&lines, "no drift", Duration::from_secs(10));
    // The watcher opens the file only while it checks: retry while it holds it.
    let file = p.join(".dk/warehouse.duckdb");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match duckdb::Connection::open(&file)
            .and_then(|c| c.execute_batch("CREATE TABLE main.stray (x INTEGER)"))
        {
            Ok(()) => break,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot write the DuckDB file: {e}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let line = expect_line(
        &lines,
        "table.warehouse.main.stray",
        Duration::from_secs(10),
    );
    assert!(line.contains("unmanaged"), "{line}");
    assert_eq!(interrupt(&mut child), 6);
}

#[test]
fn import_discover_writes_manifests_that_adopt_existing_tables_unchanged() {
    let db = TestDb::new("import");
    let (_tmp, p) = project(&db);
    let (code, out, err) = dk_in(&p, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    pg(
        &db.0,
        "CREATE TABLE main.legacy_customers (
             id bigint NOT NULL,
             email varchar(320),
             balance numeric(12,2),
             tags jsonb,
             created timestamptz NOT NULL
         );
         COMMENT ON TABLE main.legacy_customers IS 'Customers of the old shop';
         COMMENT ON COLUMN main.legacy_customers.email IS 'Login e-mail';
         CREATE VIEW main.legacy_view AS SELECT id FROM main.legacy_customers;",
    );
    // Without --write: the manifests are printed, nothing is written.
    let (code, out, err) = dk_in(&p, &["import", "-e", "prod", "--discover", "main"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("name: legacy-customers"), "{out}");
    assert!(err.contains("legacy_view is a view"), "{err}");
    assert!(!p.join("dataset/imported").exists());
    let (code, out, err) = dk_in(
        &p,
        &[
            "import",
            "-e",
            "prod",
            "--discover",
            "main",
            "--write",
            "dataset/imported",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let written = fs::read_to_string(p.join("dataset/imported/legacy-customers.yaml"))
        .expect("manifest written");
    insta::assert_snapshot!("discovered_manifest", written);
    let (code, out, err) = dk_in(&p, &["lint", "--strict"]);
    assert_eq!(code, 0, "{out}{err}");
    // The plan changes nothing in the database: it records the existing table.
    let (code, out, err) = dk_in(&p, &["plan", "-e", "prod", "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let plan = json(&out);
    assert_eq!(plan["changes"].as_array().map(Vec::len), Some(0), "{out}");
    assert_eq!(
        plan["record"][0]["address"], "table.warehouse.main.legacy_customers",
        "{out}"
    );
    let (code, out, err) = dk_in(&p, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = dk_in(&p, &["plan", "-e", "prod", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}{err}");
    // Writing again refuses to overwrite.
    pg(&db.0, "CREATE TABLE main.another (id int)");
    let (code, out, err) = dk_in(
        &p,
        &[
            "import",
            "-e",
            "prod",
            "--discover",
            "main",
            "--write",
            "dataset/x",
            "--store",
            "nope",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no store named nope"), "{err}");
    let (code, out, err) = dk_in(&p, &["import", "-e", "prod", "--discover", "nosuchschema"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("schema nosuchschema does not exist"), "{err}");
}

#[test]
fn import_adopts_a_declared_existing_object_and_refuses_the_rest() {
    let db = TestDb::new("import1");
    let (_tmp, p) = project(&db);
    let (code, out, err) = dk_in(&p, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    // Declared, and created by someone else before dk could.
    fs::write(
        p.join("dataset/accounts.yaml"),
        "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: DataSet\nmetadata: {name: accounts}\nspec:\n  store: warehouse\n  table: main.accounts\n  classification: internal\n  schema:\n    - {name: id, type: bigint, nullable: false}\n    - {name: name, type: string}\n",
    )
    .expect("write");
    pg(
        &db.0,
        "CREATE TABLE main.accounts (id bigint NOT NULL, name text, extra int)",
    );
    let (code, out, err) = dk_in(
        &p,
        &["import", "-e", "prod", "table.warehouse.main.accounts"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Imported table.warehouse.main.accounts"),
        "{out}"
    );
    let (_, list, _) = dk_in(&p, &["state", "list", "-e", "prod"]);
    assert!(list.contains("table.warehouse.main.accounts"), "{list}");
    // The plan now shows the difference between the object and its manifest.
    let (code, out, err) = dk_in(&p, &["plan", "-e", "prod"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("- column extra"), "{out}");
    // Errors: already managed, not declared, not existing, not an address.
    let (code, _, err) = dk_in(
        &p,
        &["import", "-e", "prod", "table.warehouse.main.accounts"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("already managed"), "{err}");
    let (code, _, err) = dk_in(
        &p,
        &["import", "-e", "prod", "table.warehouse.main.nothing"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("no manifest declares table.warehouse.main.nothing"),
        "{err}"
    );
    fs::write(
        p.join("dataset/later.yaml"),
        "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: DataSet\nmetadata: {name: later}\nspec:\n  store: warehouse\n  table: main.later\n  classification: internal\n  schema:\n    - {name: id, type: bigint}\n",
    )
    .expect("write");
    let (code, _, err) = dk_in(&p, &["import", "-e", "prod", "table.warehouse.main.later"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist in store warehouse"), "{err}");
    let (code, _, err) = dk_in(&p, &["import", "-e", "prod", "orders"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a resource address"), "{err}");
    // A failed import changed nothing.
    let (_, list2, _) = dk_in(&p, &["state", "list", "-e", "prod"]);
    assert_eq!(list, list2);
}
