//! `dk init`, scaffolding, listing and showing.

mod common;

use std::fs;
use std::path::Path;

use common::*;

fn lint_strict(dir: &Path) -> (i32, String) {
    let (code, out, _) = run(
        &["lint", "--strict", "-o", "short", dir.to_str().unwrap()],
        None,
        None,
    );
    (code, out)
}

#[test]
fn quickstart_lints_clean_and_stays_clean_after_each_scaffold() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("shop");
    let (code, out, err) = run(
        &["init", p.to_str().unwrap(), "--template", "quickstart"],
        None,
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    for f in [
        "project.yaml",
        "environments/dev.yaml",
        "connector/duckdb.yaml",
        "store/warehouse.yaml",
        "dataset/orders.yaml",
        "transforms/daily-revenue/dk.yaml",
        "transforms/daily-revenue/query.sql",
        "data/raw/orders/orders.csv",
        ".gitignore",
    ] {
        assert!(p.join(f).is_file(), "{f} missing");
    }
    assert!(fs::read_to_string(p.join(".gitignore"))
        .unwrap()
        .contains(".dk/"));
    let (code, out) = lint_strict(&p);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("0 errors, 0 warnings, 0 notes"), "{out}");

    let steps: &[&[&str]] = &[
        &["connector", "create", "postgres", "--type", "postgres"],
        &[
            "store",
            "create",
            "analytics",
            "--connector",
            "postgres",
            "--set",
            "host=127.0.0.1",
            "--set",
            "port=5432",
            "--set",
            "database=shop",
            "--secret",
            "password=SHOP_PG_PASSWORD",
        ],
        &[
            "dataset",
            "create",
            "customers",
            "--store",
            "analytics",
            "--table",
            "public.customers",
            "--classification",
            "confidential",
            "--column",
            "id:bigint",
            "--column",
            "email:string",
        ],
        &[
            "dataset",
            "create",
            "events",
            "--store",
            "lake",
            "--prefix",
            "raw/events/",
            "--format",
            "parquet",
        ],
        &[
            "transform",
            "create",
            "customer-orders",
            "--runtime",
            "sql",
            "--input",
            "orders",
            "--input",
            "customers",
            "--output",
            "events",
            "--trigger",
            "schedule",
            "--cron",
            "0 3 * * *",
            "--timezone",
            "Europe/Berlin",
        ],
        &[
            "dataset", "create", "exports", "--store", "lake", "--prefix", "exports/", "--format",
            "parquet",
        ],
        &[
            "transform",
            "create",
            "export",
            "--runtime",
            "python",
            "--input",
            "events",
            "--output",
            "exports",
        ],
    ];
    for args in steps {
        let (code, out, err) = run(args, Some(&p), None);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        let (code, out) = lint_strict(&p);
        assert_eq!(code, 0, "after {args:?}: {out}");
        assert!(
            out.starts_with("0 errors, 0 warnings, 0 notes"),
            "after {args:?}: {out}"
        );
    }
    let store = fs::read_to_string(p.join("store/analytics.yaml")).unwrap();
    insta::assert_snapshot!("scaffolded_store", store);
    let t = fs::read_to_string(p.join("transforms/customer-orders/dk.yaml")).unwrap();
    insta::assert_snapshot!("scaffolded_transform", t);
    assert!(p.join("transforms/customer-orders/query.sql").is_file());
    assert!(p.join("transforms/export/main.py").is_file());
    // A transform that would close a cycle is refused, and nothing is written.
    let (code, _, err) = run(
        &[
            "transform",
            "create",
            "loop",
            "--runtime",
            "sync",
            "--input",
            "exports",
            "--output",
            "raw-orders",
        ],
        Some(&p),
        None,
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("E407") && err.contains("cycle"), "{err}");
    assert!(!p.join("transforms/loop/dk.yaml").exists());
}

#[test]
fn quickstart_manifests_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, _) = run(&["init", "--name", "shop"], Some(tmp.path()), None);
    assert_eq!(code, 0);
    for f in [
        "project.yaml",
        "dataset/orders.yaml",
        "transforms/daily-revenue/dk.yaml",
    ] {
        let text = fs::read_to_string(tmp.path().join(f)).unwrap();
        insta::assert_snapshot!(format!("quickstart_{}", f.replace('/', "_")), text);
    }
}

#[test]
fn init_refuses_a_non_empty_directory_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
    let (code, _, err) = run(&["init", tmp.path().to_str().unwrap()], None, None);
    assert_eq!(code, 1);
    assert!(
        err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );
    assert!(!tmp.path().join("project.yaml").exists());
    let (code, _, _) = run(
        &[
            "init",
            tmp.path().to_str().unwrap(),
            "--force",
            "--template",
            "empty",
        ],
        None,
        None,
    );
    assert_eq!(code, 0);
    assert_eq!(
        fs::read_to_string(tmp.path().join("keep.txt")).unwrap(),
        "mine"
    );
    assert!(tmp.path().join("transforms/.gitkeep").exists());
    let (code, out) = lint_strict(tmp.path());
    assert_eq!(code, 0, "{out}");
}

#[test]
fn scaffolding_refuses_invalid_manifests_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    run(&["init", tmp.path().to_str().unwrap()], None, None);
    let (code, _, err) = run(
        &[
            "dataset", "create", "ghost", "--store", "nowhere", "--table", "t",
        ],
        Some(tmp.path()),
        None,
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("E401") && err.contains("nowhere"), "{err}");
    assert!(!tmp.path().join("dataset/ghost.yaml").exists());
    // An existing file is not replaced without --force.
    let (code, _, err) = run(
        &[
            "dataset",
            "create",
            "orders",
            "--store",
            "warehouse",
            "--table",
            "x",
        ],
        Some(tmp.path()),
        None,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    // A transform whose output does not exist: refused, and its starter SQL is not left behind.
    let (code, _, _) = run(
        &[
            "transform",
            "create",
            "t2",
            "--runtime",
            "sql",
            "--input",
            "orders",
            "--output",
            "nope",
        ],
        Some(tmp.path()),
        None,
    );
    assert_eq!(code, 3);
    assert!(!tmp.path().join("transforms/t2").join("query.sql").exists());
    let (code, _, err) = run(
        &["connector", "create", "Bad_Name", "--type", "postgres"],
        Some(tmp.path()),
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("bad-name"), "{err}");
}

#[test]
fn list_and_show() {
    let tmp = tempfile::tempdir().unwrap();
    run(
        &["init", "--name", "shop", tmp.path().to_str().unwrap()],
        None,
        None,
    );
    let (code, table, _) = run(&["dataset", "list"], Some(tmp.path()), None);
    assert_eq!(code, 0);
    insta::assert_snapshot!("dataset_list", table);
    let (_, json, _) = run(&["dataset", "list", "-o", "json"], Some(tmp.path()), None);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    let (code, yaml, _) = run(
        &["dataset", "show", "daily-revenue"],
        Some(tmp.path()),
        None,
    );
    assert_eq!(code, 0);
    assert!(yaml.contains("table: main.daily_revenue"), "{yaml}");
    let (code, json, _) = run(
        &["show", "transform/daily-revenue", "-o", "json"],
        Some(tmp.path()),
        None,
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["spec"]["runtime"], "sql");
    let (code, _, err) = run(&["show", "dataset/order"], Some(tmp.path()), None);
    assert_eq!(code, 1);
    assert!(err.contains("did you mean `orders`?"), "{err}");
}

#[test]
fn completions_and_man_pages() {
    let (code, out, _) = run(&["completions", "bash"], None, None);
    assert_eq!(code, 0);
    assert!(out.contains("_dk()"), "bash completion function");
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, _) = run(&["man", "--out", tmp.path().to_str().unwrap()], None, None);
    assert_eq!(code, 0);
    assert!(tmp.path().join("dk.1").is_file());
    assert!(tmp.path().join("dk-lint.1").is_file());
}
