//! `dk env list|show`: the same manifests resolve to DuckDB in dev and PostgreSQL in prod.

mod common;

use std::fs;

use common::*;

const PROD: &str = "apiVersion: datakit.infoblox.dev/v1alpha1
kind: Connector
metadata: {name: postgres}
spec: {type: postgres, capabilities: [source, destination]}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Environment
metadata: {name: prod}
spec:
  tier: prod
  order: 3
  bindings:
    warehouse:
      connector: postgres
      connection: {host: 127.0.0.1, port: 5432, database: shop, user: loader, sslmode: disable}
      secrets: {password: \"${SHOP_PG_PASSWORD}\"}
";

#[test]
fn dev_and_prod_resolve_from_one_definition_without_leaking_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    run(
        &["init", "--name", "shop", tmp.path().to_str().unwrap()],
        None,
        None,
    );
    fs::write(tmp.path().join("environments/prod.yaml"), PROD).unwrap();
    let (code, out, _) = run(
        &["lint", "--strict", tmp.path().to_str().unwrap()],
        None,
        None,
    );
    assert_eq!(code, 0, "{out}");

    let (code, list, _) = run(&["env", "list"], Some(tmp.path()), None);
    assert_eq!(code, 0);
    assert_eq!(
        list,
        "dev (default)  tier dev, order 1, 0 binding(s)\nprod  tier prod, order 3, 1 binding(s)\n"
    );

    let (code, dev, _) = run(&["env", "show", "-o", "json"], Some(tmp.path()), None);
    assert_eq!(code, 0);
    let dev: serde_json::Value = serde_json::from_str(&dev).unwrap();
    assert_eq!(dev["stores"]["warehouse"]["connector_type"], "duckdb");

    let secret = "pa55-known-secret-value";
    let mut c = dk();
    let out = c
        .args(["env", "show", "-e", "prod"])
        .current_dir(tmp.path())
        .env("SHOP_PG_PASSWORD", secret)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    insta::assert_snapshot!("env_show_prod", text);
    assert!(!text.contains(secret));
    let out = dk()
        .args(["env", "show", "-e", "prod", "-o", "json"])
        .current_dir(tmp.path())
        .env("SHOP_PG_PASSWORD", secret)
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(!json.contains(secret), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["stores"]["warehouse"]["connector_type"], "postgres");
    assert_eq!(v["stores"]["warehouse"]["connection"]["host"], "127.0.0.1");
    assert_eq!(
        v["stores"]["warehouse"]["secrets"]["password"]["reference"],
        "${SHOP_PG_PASSWORD}"
    );

    // Without the variable: a located error, exit 3.
    let out = dk()
        .args(["env", "show", "-e", "prod"])
        .current_dir(tmp.path())
        .env_remove("SHOP_PG_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("E409") && err.contains("environments/prod.yaml:16"),
        "{err}"
    );
}
