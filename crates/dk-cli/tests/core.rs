//! The core loop end to end: plan → apply → plan shows no changes, on DuckDB (dev) and the real
//! PostgreSQL (prod), destructive changes, stale and tampered plans, secrets, locks, crash safety.

mod common;
mod pgproject;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use pgproject::{pg, TestDb};

const SECRET: &str = "k3y-0f-the-pr0d-db-not-to-leak";

/// A quickstart project with a prod environment bound to the test database.
fn project(db: &TestDb) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("shop");
    let (code, out, err) = run(&["init", p.to_str().unwrap(), "--name", "shop"], None, None);
    assert_eq!(code, 0, "{out}{err}");
    fs::write(
        p.join("connector/postgres.yaml"),
        "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Connector\nmetadata: {name: postgres}\nspec: {type: postgres, capabilities: [source, destination]}\n",
    )
    .unwrap();
    fs::write(
        p.join("environments/prod.yaml"),
        format!(
            "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Environment\nmetadata: {{name: prod}}\nspec:\n  tier: prod\n  order: 3\n  bindings:\n    warehouse:\n      connector: postgres\n      connection: {{host: 127.0.0.1, port: 5432, database: {}, user: postgres, sslmode: disable}}\n      secrets: {{password: \"${{SHOP_PG_PASSWORD}}\"}}\n",
            db.0
        ),
    )
    .unwrap();
    (tmp, p)
}

fn dk_in(p: &Path, args: &[&str]) -> (i32, String, String) {
    let out = dk()
        .args(args)
        .current_dir(p)
        .env("SHOP_PG_PASSWORD", SECRET)
        .output()
        .expect("run dk");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn all_text_under(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = fs::read_to_string(&p) {
                out.push_str(&t);
            }
        }
    }
    out
}

#[test]
fn postgres_apply_then_plan_shows_no_changes_and_no_secret_leaks() {
    let db = TestDb::new("core");
    let (_tmp, p) = project(&db);
    let (code, out, err) = dk_in(
        &p,
        &[
            "plan",
            "-e",
            "prod",
            "--detailed-exitcode",
            "--out",
            "plan.json",
        ],
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("+ table.warehouse.main.orders"), "{out}");
    assert!(
        out.contains("Plan: 3 to add, 0 to change, 0 to destroy."),
        "{out}"
    );
    let (code, out, err) = dk_in(&p, &["apply", "-e", "prod", "plan.json"]);
    assert_eq!(code, 0, "{out}{err}");
    let rows = pg(&db.0, "select table_schema, table_name from information_schema.tables where table_schema = 'main' order by 2");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (code, out, err) = dk_in(&p, &["plan", "-e", "prod", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No changes."), "{out}");
    // The secret is in no file dk wrote and in no output.
    let (_, list, _) = dk_in(&p, &["state", "list", "-e", "prod"]);
    assert!(
        list.contains("table.warehouse.main.daily_revenue"),
        "{list}"
    );
    let everything = all_text_under(&p) + &out + &list;
    assert!(!everything.contains(SECRET));
}

#[test]
fn destructive_change_is_refused_and_shows_measured_impact() {
    let db = TestDb::new("core");
    let (_tmp, p) = project(&db);
    let (code, out, err) = dk_in(&p, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    pg(&db.0, "insert into main.orders values (1, 'a@x', 1.00, 'placed', now()), (2, null, 2.00, 'placed', now()), (3, 'c@x', 3.00, 'shipped', now())");
    // Drop the customer_email column from the contract.
    let f = p.join("dataset/orders.yaml");
    let text = fs::read_to_string(&f).unwrap();
    let start = text.find("    - name: customer_email").unwrap();
    let end = text[start + 1..].find("    - name:").unwrap() + start + 1;
    fs::write(&f, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let (code, out, err) = dk_in(&p, &["plan", "-e", "prod"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("- column customer_email"), "{out}");
    assert!(
        out.contains("impact: 2 non-null values in customer_email"),
        "{out}"
    );
    let (code, out, err) = dk_in(&p, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(err.contains("--allow-destructive"), "{err}");
    assert_eq!(
        pg(&db.0, "select count(customer_email) from main.orders")[0][0].as_deref(),
        Some("2")
    );
    let (code, out, err) = dk_in(
        &p,
        &[
            "apply",
            "-e",
            "prod",
            "--auto-approve",
            "--allow-destructive",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = dk_in(&p, &["plan", "-e", "prod", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn stale_and_tampered_plans_are_refused() {
    let db = TestDb::new("core");
    let (_tmp, p) = project(&db);
    let (code, _, _) = dk_in(&p, &["plan", "-e", "prod", "--out", "a.json"]);
    assert_eq!(code, 0);
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(p.join("a.json")).unwrap()).unwrap();
    v["changes"][0]["statements"][0] = serde_json::json!("DROP SCHEMA public CASCADE");
    fs::write(
        p.join("tampered.json"),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
    let (code, _, err) = dk_in(&p, &["apply", "-e", "prod", "tampered.json"]);
    assert_eq!(code, 1);
    assert!(err.contains("modified after it was made"), "{err}");
    let (code, out, err) = dk_in(&p, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = dk_in(&p, &["apply", "-e", "prod", "a.json"]);
    assert_eq!(code, 1);
    assert!(err.contains("stale plan"), "{err}");
}

#[test]
fn a_held_lock_fails_fast_naming_the_holder() {
    let db = TestDb::new("core");
    let (_tmp, p) = project(&db);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let backend = rt
        .block_on(dk_state::Backend::open(
            &dk_state::BackendConfig::local(&p),
            "shop",
            "prod",
        ))
        .unwrap();
    let lock = rt.block_on(backend.lock("apply")).unwrap();
    let (code, _, err) = dk_in(&p, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("locked") && err.contains(&std::process::id().to_string()),
        "{err}"
    );
    rt.block_on(lock.release()).unwrap();
    let (code, out, err) = dk_in(&p, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
}

fn twenty_tables(p: &Path) {
    for i in 0..19 {
        let (code, out, err) = run(
            &[
                "dataset",
                "create",
                &format!("t{i:02}"),
                "--store",
                "warehouse",
                "--table",
                &format!("crash.t{i:02}"),
                "--column",
                "id:bigint",
                "--column",
                "v:string",
            ],
            Some(p),
            None,
        );
        assert_eq!(code, 0, "{out}{err}");
    }
}

#[test]
fn crash_after_any_action_converges_to_a_clean_apply() {
    let db = TestDb::new("core");
    let (_tmp, p) = project(&db);
    twenty_tables(&p);
    // Reference: a clean apply in another database.
    let clean_db = TestDb::new("core");
    let (_tmp2, clean) = project(&clean_db);
    twenty_tables(&clean);
    let (code, out, err) = dk_in(&clean, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, reference, _) = dk_in(&clean, &["state", "list", "-e", "prod"]);
    let total = reference.lines().count();
    assert!(total >= 20, "{reference}");
    for k in 1..=total {
        let out = dk()
            .args([
                "apply",
                "-e",
                "prod",
                "--auto-approve",
                "--parallelism",
                "1",
            ])
            .current_dir(&p)
            .env("SHOP_PG_PASSWORD", SECRET)
            .env("DK_FAILPOINT_APPLY_ABORT_AFTER", k.to_string())
            .output()
            .unwrap();
        assert!(!out.status.success(), "k={k}: the failpoint did not fire");
        let (code, out, err) = dk_in(&p, &["apply", "-e", "prod", "--auto-approve"]);
        assert_eq!(code, 0, "k={k}: {out}{err}");
        let (_, state, _) = dk_in(&p, &["state", "list", "-e", "prod"]);
        assert_eq!(state, reference, "k={k}");
        let (code, out, _) = dk_in(&p, &["plan", "-e", "prod", "--detailed-exitcode"]);
        assert_eq!(code, 0, "k={k}: {out}");
        // Start over for the next k.
        let (code, out, err) = dk_in(&p, &["destroy", "-e", "prod", "--auto-approve"]);
        assert_eq!(code, 0, "k={k}: {out}{err}");
    }
}

#[cfg(feature = "duckdb")]
#[test]
fn duckdb_dev_apply_then_plan_shows_no_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("shop");
    run(&["init", p.to_str().unwrap()], None, None);
    let (code, out, err) = dk_in(&p, &["apply", "-e", "dev", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(p.join(".dk/warehouse.duckdb").is_file());
    let (code, out, err) = dk_in(&p, &["plan", "-e", "dev", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No changes."), "{out}");
}
