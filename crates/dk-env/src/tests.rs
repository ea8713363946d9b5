use super::*;
use dk_manifest::loader::load_str;

const PROJECT: &str = r#"
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Project
metadata: {name: shop}
spec: {defaultEnvironment: dev}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Connector
metadata: {name: duckdb}
spec: {type: duckdb, capabilities: [source, destination]}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Connector
metadata: {name: postgres}
spec: {type: postgres, capabilities: [source, destination]}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Store
metadata: {name: warehouse}
spec:
  connector: duckdb
  connection: {path: .dk/warehouse.duckdb}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Store
metadata: {name: lake}
spec:
  connector: duckdb
  connection: {path: "${LAKE_DIR:-data}/lake.duckdb", threads: 2}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Environment
metadata: {name: dev}
spec: {tier: dev}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Environment
metadata: {name: prod}
spec:
  tier: prod
  variables: {PG_HOST: db.internal, PG_DB: "shop_${REGION}"}
  bindings:
    warehouse:
      connector: postgres
      connection: {host: "${PG_HOST}", port: 5432, database: "${PG_DB}", user: loader}
      secrets: {password: "${SHOP_PG_PASSWORD}"}
    lake:
      type: snowflake
      account: acme.us-east-1
      database: RAW
"#;

fn vars(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn same_definition_dev_duckdb_prod_postgres() {
    let m = load_str("p.yaml", PROJECT);
    assert!(m.diagnostics.is_empty(), "{:?}", m.diagnostics);
    let dev = resolve(&m, None, &vars(&[])).unwrap();
    assert_eq!(dev.environment, "dev");
    let wh = &dev.stores["warehouse"];
    assert_eq!(wh.connector_type, "duckdb");
    assert_eq!(wh.connection["path"], ".dk/warehouse.duckdb");
    assert!(!wh.bound);
    assert_eq!(dev.stores["lake"].connection["path"], "data/lake.duckdb");

    let src = vars(&[("REGION", "eu"), ("SHOP_PG_PASSWORD", "s3cr3t-value")]);
    let prod = resolve(&m, Some("prod"), &src).unwrap();
    let wh = &prod.stores["warehouse"];
    assert_eq!(wh.connector_type, "postgres");
    assert_eq!(wh.connector.as_deref(), Some("postgres"));
    assert!(
        wh.connection.get("path").is_none(),
        "a swapped technology does not inherit the dev connection"
    );
    assert_eq!(wh.connection["host"], "db.internal");
    assert_eq!(wh.connection["database"], "shop_eu");
    assert_eq!(wh.secrets["password"].expose(), "s3cr3t-value");
    assert_eq!(wh.secrets["password"].vars, vec!["SHOP_PG_PASSWORD"]);
    // Flat binding form: `type` names the technology, other keys are connection keys.
    let lake = &prod.stores["lake"];
    assert_eq!(lake.connector_type, "snowflake");
    assert_eq!(lake.connection["account"], "acme.us-east-1");
    // Nothing printable carries the secret.
    let json = serde_json::to_string(&prod).unwrap();
    assert!(!json.contains("s3cr3t-value"), "{json}");
    assert!(json.contains("${SHOP_PG_PASSWORD}"));
    assert!(!format!("{prod:?}").contains("s3cr3t-value"));
}

#[test]
fn unresolved_variables_are_located() {
    let m = load_str("p.yaml", PROJECT);
    let err = resolve(&m, Some("prod"), &vars(&[("REGION", "eu")])).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert_eq!(err[0].code, Code::UnresolvedVariable);
    assert!(err[0].message.contains("SHOP_PG_PASSWORD"));
    let loc = err[0].location.as_ref().unwrap();
    assert_eq!((loc.file.as_ref(), loc.span.line), ("p.yaml", 46));
}

#[test]
fn unknown_and_missing_environment() {
    let m = load_str("p.yaml", PROJECT);
    let err = resolve(&m, Some("prd"), &vars(&[])).unwrap_err();
    assert_eq!(err[0].code, Code::UnknownEnvironment);
    assert!(err[0].help.as_deref().unwrap().contains("prod"));
}

#[test]
fn environments_sort_by_order() {
    let text = PROJECT
        .replace("spec: {tier: dev}", "spec: {tier: dev, order: 1}")
        .replace("  tier: prod\n", "  tier: prod\n  order: 3\n");
    let m = load_str("p.yaml", &text);
    let names: Vec<&str> = environments(&m)
        .iter()
        .map(|(_, e)| e.metadata.name.as_str())
        .collect();
    assert_eq!(names, vec!["dev", "prod"]);
}
