use super::*;
use dk_manifest::loader::load_str;

const H: &str = "apiVersion: datakit.infoblox.dev/v1alpha1\n";

fn model(docs: &[&str]) -> ProjectModel {
    let text: Vec<String> = docs.iter().map(|d| format!("{H}{d}")).collect();
    load_str("p.yaml", &text.join("---\n"))
}

fn env_of(m: &ProjectModel, name: &str) -> (Document, Environment) {
    let (d, e) = m
        .environments()
        .find(|(_, e)| e.metadata.name == name)
        .expect("environment");
    (d.clone(), e.clone())
}

fn lint(m: &ProjectModel, env: &str) -> Vec<Diagnostic> {
    let (d, e) = env_of(m, env);
    lint_environment(m, &d, &e)
}

const ENVS: &str = "kind: Environment\nmetadata: {name: dev}\nspec: {tier: dev}\n---\napiVersion: datakit.infoblox.dev/v1alpha1\nkind: Environment\nmetadata: {name: prod}\nspec: {tier: prod}\n";

#[test]
fn versions_pack_requires_pins_in_prod_only() {
    let m = model(&[
        ENVS,
        "kind: Policy\nmetadata: {name: p}\nspec: {packs: [versions]}\n",
        "kind: Store\nmetadata: {name: wh}\nspec: {connector: duckdb, connectorVersion: \"^1.2\", connection: {path: x}}\n",
        "kind: Transform\nmetadata: {name: t}\nspec:\n  runtime: generic-go\n  image: tool:latest\n  inputs: [{tags: {a: b}, version: \">=1.0.0\"}]\n  outputs: [{dataset: o}]\n",
    ]);
    assert!(lint(&m, "dev").is_empty(), "{:?}", lint(&m, "dev"));
    let d = lint(&m, "prod");
    let rules: Vec<&str> = d.iter().filter_map(|d| d.label.as_deref()).collect();
    assert_eq!(
        rules,
        vec![
            "violates versions/connector-version-pinned",
            "violates versions/dataset-version-refs-pinned",
            "violates versions/transform-image-pinned"
        ],
        "{d:#?}"
    );
    assert!(d
        .iter()
        .all(|d| d.code == Code::PolicyViolation && d.location.is_some()));
}

#[test]
fn quality_and_security_packs() {
    let m = model(&[
        ENVS,
        "kind: Policy\nmetadata: {name: p}\nspec: {packs: [quality, security]}\n",
        "kind: DataSet\nmetadata: {name: raw}\nspec:\n  store: wh\n  table: raw\n  classification: internal\n  schema: [{name: email, type: string, pii: true}]\n",
        "kind: DataSet\nmetadata: {name: gold, labels: {tier: gold}}\nspec:\n  store: wh\n  table: gold\n  schema: [{name: n, type: bigint}]\n",
        "kind: Transform\nmetadata: {name: t}\nspec: {runtime: sql, inputs: [{dataset: raw}], outputs: [{dataset: gold}]}\n",
    ]);
    let d = lint(&m, "dev");
    let mut got: Vec<String> = d
        .iter()
        .map(|d| format!("{} {}", d.code, d.label.clone().unwrap_or_default()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            "E600 violates quality/gold-outputs-have-checks",
            "E600 violates quality/gold-outputs-have-descriptions",
            "E600 violates security/outputs-classified",
            "E600 violates security/pii-columns-protected",
            "E620 lower than its inputs",
        ],
        "{d:#?}"
    );
    let lineage = d
        .iter()
        .find(|d| d.code == Code::ClassificationDowngrade)
        .expect("E620");
    assert!(
        lineage
            .message
            .contains("raw (internal) → transform t → gold (unclassified)"),
        "{}",
        lineage.message
    );
}

#[test]
fn custom_rule_invalid_and_failing_conditions() {
    let m = model(&[
        ENVS,
        "kind: Policy\nmetadata: {name: custom}\nspec:\n  rules:\n    - {name: owner, appliesTo: {kinds: [DataSet], environments: [prod]}, condition: \"has(object.spec.owner)\", message: every DataSet needs an owner, severity: warning}\n    - {name: broken, condition: \"object.name ==\", message: m}\n    - {name: typo, appliesTo: {kinds: [Store]}, condition: \"object.nosuch == 1\", message: m}\n",
        "kind: DataSet\nmetadata: {name: a}\nspec: {store: wh, table: a}\n",
        "kind: Store\nmetadata: {name: wh}\nspec: {connector: duckdb, connection: {path: x}}\n",
    ]);
    let d = lint(&m, "prod");
    let codes: Vec<(String, Severity)> =
        d.iter().map(|d| (d.code.to_string(), d.severity)).collect();
    assert!(codes.contains(&("E601".into(), Severity::Error)), "{d:#?}");
    assert!(
        codes.contains(&("E600".into(), Severity::Warning)),
        "{d:#?}"
    );
    assert!(codes.contains(&("E602".into(), Severity::Error)), "{d:#?}");
    // The owner rule is for prod only.
    assert!(!lint(&m, "dev")
        .iter()
        .any(|d| d.code == Code::PolicyViolation));
}

#[test]
fn guardrails_connectors_and_quotas() {
    let m = model(&[
        "kind: Environment\nmetadata: {name: prod}\nspec:\n  tier: prod\n  allowedConnectors: [postgres]\n  quotas: {datasets: 1, tablesPerStore: 1}\n",
        "kind: Store\nmetadata: {name: wh}\nspec: {connector: duckdb, connection: {path: x}}\n",
        "kind: DataSet\nmetadata: {name: a}\nspec: {store: wh, table: a}\n",
        "kind: DataSet\nmetadata: {name: b}\nspec: {store: wh, table: b}\n",
    ]);
    let d = lint(&m, "prod");
    let codes: Vec<String> = d.iter().map(|d| d.code.to_string()).collect();
    assert_eq!(codes.iter().filter(|c| *c == "E610").count(), 1, "{d:#?}");
    assert_eq!(codes.iter().filter(|c| *c == "E611").count(), 2, "{d:#?}");
}

#[test]
fn masking_waives_lineage_and_columns_are_checked() {
    let base = [
        ENVS,
        "kind: Policy\nmetadata: {name: p}\nspec: {packs: [security]}\n",
        "kind: DataSet\nmetadata: {name: users}\nspec:\n  store: wh\n  table: users\n  classification: internal\n  schema:\n    - {name: email, type: string, pii: true, classification: restricted}\n",
    ];
    let out = "kind: DataSet\nmetadata: {name: stats}\nspec:\n  store: wh\n  table: stats\n  classification: internal\n  schema:\n    - {name: email, type: string, from: users.email}\n";
    let plain = "kind: Transform\nmetadata: {name: t}\nspec: {runtime: sql, inputs: [{dataset: users}], outputs: [{dataset: stats}]}\n";
    let masked = "kind: Transform\nmetadata: {name: t}\nspec:\n  runtime: sql\n  inputs: [{dataset: users}]\n  outputs: [{dataset: stats}]\n  masking: [{dataset: stats, columns: [email], method: hash}]\n";
    let mut docs = base.to_vec();
    docs.extend([out, plain]);
    let d: Vec<Diagnostic> = lint(&model(&docs), "prod")
        .into_iter()
        .filter(|d| d.code == Code::ClassificationDowngrade)
        .collect();
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(
        d[0].message
            .contains("users.email (restricted) → transform t → stats.email (internal)"),
        "{}",
        d[0].message
    );
    let mut docs = base.to_vec();
    docs.extend([out, masked]);
    assert!(!lint(&model(&docs), "prod")
        .iter()
        .any(|d| d.code == Code::ClassificationDowngrade));
}

#[test]
fn plan_rules_see_change_plan_and_env() {
    let m = model(&[
        ENVS,
        "kind: Policy\nmetadata: {name: p}\nspec: {packs: [security, changes]}\n",
    ]);
    let (rules, diags) = RuleSet::load(&m);
    assert!(diags.is_empty(), "{diags:?}");
    let (_, dev) = env_of(&m, "dev");
    let (_, prod) = env_of(&m, "prod");
    let change = serde_json::json!({"address": "table.wh.main.users", "action": "create", "destructive": false, "breaking": false, "classification": "restricted"});
    let v = rules.check_changes(&dev, &serde_json::json!({}), std::slice::from_ref(&change));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].rule, "security/restricted-not-in-dev");
    assert!(v[0].is_error());
    assert!(rules
        .check_changes(&prod, &serde_json::json!({}), &[change])
        .is_empty());
    let drop = serde_json::json!({"address": "table.wh.main.users", "action": "delete", "destructive": true, "breaking": false, "classification": ""});
    let v = rules.check_changes(&prod, &serde_json::json!({}), &[drop]);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].rule, "changes/destructive-needs-two-approvals");
}
