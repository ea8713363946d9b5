//! `dk pipeline show --columns` with column lineage derived from the SQL of `sql` transforms,
//! next to declared `from:` lineage, on the runtime fixture project
//! `crates/dk-runtime/tests/fixtures/dbt-shop`.

mod common;

use std::path::PathBuf;

use common::*;

fn shop() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../dk-runtime/tests/fixtures/dbt-shop")
        .canonicalize()
        .expect("fixture")
}

#[test]
fn columns_include_sql_lineage() {
    let p = shop();
    let (code, out, err) = run(
        &["pipeline", "show", "--columns", "--source", "raw-orders"],
        Some(&p),
        Some(&p),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err, "",
        "the default environment resolves, so the template renders"
    );
    insta::assert_snapshot!("shop__columns_text", out);

    let (code, out, _) = run(
        &["pipeline", "show", "--columns", "-o", "json"],
        Some(&p),
        Some(&p),
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let cols = v["columns"].as_array().expect("columns");
    assert!(cols.contains(&serde_json::json!({
        "from": "raw-orders.amount", "to": "customer-summary.total", "via": "summary", "origin": "sql"
    })), "{cols:?}");
    assert!(
        cols.contains(&serde_json::json!({
            "from": "order-csv.customer", "to": "customer-scores.customer", "via": "score"
        })),
        "{cols:?}"
    );
}

#[test]
fn unrenderable_templates_are_notes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path().join("shop");
    let status = std::process::Command::new("cp")
        .args([
            "-r",
            shop().to_str().expect("utf-8"),
            p.to_str().expect("utf-8"),
        ])
        .status()
        .expect("cp");
    assert!(status.success());
    // No environment provides min_amount any more.
    std::fs::remove_file(p.join("environments/dev.yaml")).expect("rm");
    let (code, out, err) = run(&["pipeline", "show", "--columns"], Some(&p), Some(&p));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "note: column lineage: transform summary: [ROOT]/transforms/summary/query.sql: "
        ),
        "{err}"
    );
    assert!(err.contains("var('min_amount') is not set"), "{err}");
    assert!(out.contains("customer-scores (via score)"), "{out}");
    assert!(!out.contains("(sql)"), "{out}");
}
