//! Governance end to end: policies in lint and plan (built-in packs, a custom CEL rule, lineage,
//! guardrails), breaking changes, the approval matrix, promotion dev → stage → prod (DuckDB,
//! DuckDB, the real PostgreSQL), rollback, and the audit log.

mod common;
mod pgproject;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use pgproject::TestDb;

const H: &str = "apiVersion: datakit.infoblox.dev/v1alpha1\n";

/// A quickstart project named shop.
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

fn write(p: &Path, rel: &str, text: &str) {
    let path = p.join(rel);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, format!("{H}{text}")).expect("write");
}

/// An environment of the quickstart whose warehouse is another DuckDB file.
fn duckdb_env(p: &Path, name: &str, tier: &str, order: u32, extra: &str) {
    write(
        p,
        &format!("environments/{name}.yaml"),
        &format!("kind: Environment\nmetadata: {{name: {name}}}\nspec:\n  tier: {tier}\n  order: {order}\n  bindings:\n    warehouse: {{connection: {{path: .dk/{name}.duckdb}}}}\n{extra}"),
    );
}

fn dk_in(p: &Path, args: &[&str]) -> (i32, String, String) {
    let out = dk().args(args).current_dir(p).output().expect("run dk");
    let root = p.display().to_string();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace(&root, "[ROOT]"),
        String::from_utf8_lossy(&out.stderr).replace(&root, "[ROOT]"),
    )
}

fn ok(p: &Path, args: &[&str]) -> String {
    let (code, out, err) = dk_in(p, args);
    assert_eq!(code, 0, "dk {args:?}\n{out}\n{err}");
    out
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

const POLICY: &str = "kind: Policy\nmetadata: {name: platform}\nspec:\n  packs: [versions, quality, security, changes]\n  rules:\n    - name: team-owners\n      severity: warning\n      appliesTo: {kinds: [DataSet], environments: [prod]}\n      condition: \"has(object.spec.owner) && object.spec.owner.startsWith('team-')\"\n      message: every DataSet in prod is owned by a team (owner team-…)\n";

#[test]
fn policies_in_lint_per_environment() {
    let (_t, p) = quickstart();
    write(&p, "policies/platform.yaml", POLICY);
    duckdb_env(&p, "prod", "prod", 3, "");
    // Plain lint: the policies parse; nothing environment-specific is evaluated.
    let (code, out, _) = dk_in(&p, &["lint", "-o", "short"]);
    assert_eq!(code, 0, "{out}");
    let (code, dev, _) = dk_in(&p, &["lint", "-e", "dev", "-o", "short"]);
    assert_eq!(code, 3, "{dev}");
    insta::assert_snapshot!("lint_dev", dev);
    let (code, prod, _) = dk_in(&p, &["lint", "-e", "prod", "-o", "short"]);
    assert_eq!(code, 3, "{prod}");
    insta::assert_snapshot!("lint_prod", prod);
    // A broken condition is E601 at plain lint, with its location.
    write(
        &p,
        "policies/broken.yaml",
        "kind: Policy\nmetadata: {name: broken}\nspec:\n  rules:\n    - {name: r, condition: \"object.name ==\", message: m}\n",
    );
    let (code, out, _) = dk_in(&p, &["lint", "-o", "short"]);
    assert_eq!(code, 3);
    assert!(
        out.contains("policies/broken.yaml:6:28") && out.contains("E601"),
        "{out}"
    );
}

#[test]
fn masking_waives_lineage_and_guardrails_fire() {
    let (_t, p) = quickstart();
    write(
        &p,
        "policies/platform.yaml",
        "kind: Policy\nmetadata: {name: platform}\nspec: {packs: [security]}\n",
    );
    let (code, out, _) = dk_in(&p, &["lint", "-e", "dev", "-o", "json"]);
    assert_eq!(code, 3, "{out}");
    assert!(codes(&out).iter().any(|(c, _)| c == "E620"), "{out}");
    // The transform aggregates: declaring it waives the rule.
    let path = p.join("transforms/daily-revenue/dk.yaml");
    let text = fs::read_to_string(&path).expect("transform");
    fs::write(
        &path,
        format!("{text}  masking:\n    - {{dataset: daily-revenue, method: aggregate}}\n"),
    )
    .expect("write");
    let (code, out, _) = dk_in(&p, &["lint", "-e", "dev", "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    // Guardrails.
    duckdb_env(
        &p,
        "prod",
        "prod",
        3,
        "  allowedConnectors: [postgres]\n  quotas: {datasets: 2}\n",
    );
    let (code, out, _) = dk_in(&p, &["lint", "-e", "prod", "-o", "short"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("E610") && out.contains("store warehouse uses connector duckdb"),
        "{out}"
    );
    assert!(
        out.contains("E611") && out.contains("allows 2 DataSets, the project has 3"),
        "{out}"
    );
}

#[test]
fn plan_rules_block_plan_and_apply() {
    let (_t, p) = quickstart();
    write(&p, "policies/platform.yaml", "kind: Policy\nmetadata: {name: platform}\nspec:\n  packs: [security]\n  rules:\n    - name: no-wide-drops\n      appliesTo: {kinds: [Change]}\n      condition: \"change.action != 'delete' || change.impactRows < 1000\"\n      message: never drop a table with 1000 rows or more\n    - name: pii-tables-announced\n      severity: info\n      appliesTo: {kinds: [Change]}\n      condition: \"!change.pii || change.action != 'create'\"\n      message: a new table with PII columns; tell the privacy team\n");
    // Mask the aggregate so that only the plan rule fires.
    let path = p.join("transforms/daily-revenue/dk.yaml");
    let text = fs::read_to_string(&path).expect("transform");
    fs::write(
        &path,
        format!("{text}  masking:\n    - {{dataset: daily-revenue, method: aggregate}}\n"),
    )
    .expect("write");
    // orders becomes restricted: the security pack keeps it out of dev.
    let path = p.join("dataset/orders.yaml");
    let text = fs::read_to_string(&path).expect("orders");
    fs::write(
        &path,
        text.replacen(
            "classification: confidential",
            "classification: restricted",
            1,
        ),
    )
    .expect("write");
    let (code, out, err) = dk_in(&p, &["plan", "-e", "dev", "--out", "plan.json"]);
    assert_eq!(code, 4, "{out}{err}");
    insta::assert_snapshot!("plan_restricted_in_dev", out);
    let plan = json(&fs::read_to_string(p.join("plan.json")).expect("plan"));
    let v = &plan["governance"]["violations"];
    assert_eq!(v[0]["rule"], "platform/pii-tables-announced", "{v}");
    assert_eq!(v[0]["severity"], "info");
    assert_eq!(v[1]["rule"], "security/restricted-not-in-dev", "{v}");
    assert_eq!(v[1]["severity"], "error");
    assert_eq!(v[1]["subject"], "table.warehouse.main.orders");
    let (code, _, err) = dk_in(&p, &["apply", "-e", "dev", "plan.json"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("violates 1 policy rule(s)") && err.contains("restricted-not-in-dev"),
        "{err}"
    );
}

fn keygen(p: &Path, name: &str) -> String {
    ok(p, &["keygen", "--out", &format!("keys/{name}.key")]);
    fs::read_to_string(p.join(format!("keys/{name}.key.pub")))
        .expect("pub")
        .trim()
        .to_string()
}

fn approvers(p: &Path, names: &[&str]) -> String {
    let mut s = String::from("  approval:\n    required: 2\n    approvers:\n");
    for n in names {
        s.push_str(&format!(
            "      - {{name: {n}, publicKey: \"{}\"}}\n",
            keygen(p, n)
        ));
    }
    s
}

#[test]
fn approval_matrix_two_of_three() {
    let (_t, p) = quickstart();
    let appr = approvers(&p, &["alice", "bob", "carol"]);
    keygen(&p, "mallory");
    duckdb_env(&p, "prod", "prod", 3, &appr);
    let (code, out, err) = dk_in(&p, &["plan", "-e", "prod", "--out", "plan.json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Approval: 2 approval(s) from alice, bob, carol needed (always)"),
        "{out}"
    );
    let apply = |p: &Path| dk_in(p, &["apply", "-e", "prod", "plan.json"]);
    // No approval.
    let (code, _, err) = apply(&p);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("still needed: 2 more from alice, bob, carol"),
        "{err}"
    );
    // One approval: refused, naming who is still needed.
    ok(
        &p,
        &[
            "approve",
            "plan.json",
            "--key",
            "keys/alice.key",
            "--comment",
            "lgtm",
        ],
    );
    let (code, _, err) = apply(&p);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("1 valid (alice); still needed: 1 more from bob, carol"),
        "{err}"
    );
    // The same approver twice (a second signature with another comment).
    let first: Vec<serde_json::Value> =
        serde_json::from_str(&fs::read_to_string(p.join("plan.approvals.json")).expect("side"))
            .expect("json");
    ok(
        &p,
        &[
            "approve",
            "plan.json",
            "--key",
            "keys/alice.key",
            "--comment",
            "again",
        ],
    );
    let mut side: Vec<serde_json::Value> =
        serde_json::from_str(&fs::read_to_string(p.join("plan.approvals.json")).expect("side"))
            .expect("json");
    side.extend(first);
    fs::write(
        p.join("plan.approvals.json"),
        serde_json::to_string(&side).expect("json"),
    )
    .expect("write");
    let (code, _, err) = apply(&p);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("alice: approved this plan more than once"),
        "{err}"
    );
    // An unlisted key.
    let (code, _, err) = dk_in(&p, &["approve", "plan.json", "--key", "keys/mallory.key"]);
    assert_eq!(code, 0);
    assert!(err.contains("not an approver"), "{err}");
    let (code, _, err) = apply(&p);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("is not an approver of environment prod"),
        "{err}"
    );
    // A signature made for another plan: bob signs a second plan of the same changes.
    let (code, _, _) = dk_in(&p, &["plan", "-e", "prod", "--out", "other.json"]);
    assert_eq!(code, 0);
    ok(&p, &["approve", "other.json", "--key", "keys/bob.key"]);
    let bob: serde_json::Value =
        json(&fs::read_to_string(p.join("other.approvals.json")).expect("side"));
    let mut side: Vec<serde_json::Value> =
        serde_json::from_str(&fs::read_to_string(p.join("plan.approvals.json")).expect("side"))
            .expect("json");
    side.push(bob[0].clone());
    fs::write(
        p.join("plan.approvals.json"),
        serde_json::to_string(&side).expect("json"),
    )
    .expect("write");
    let (code, _, err) = apply(&p);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("bob: signed another plan"), "{err}");
    // A forged signature: carol's key on alice's signature.
    let carol_pub = fs::read_to_string(p.join("keys/carol.key.pub")).expect("pub");
    let mut forged = side[0].clone();
    forged["public_key"] = serde_json::Value::String(carol_pub.trim().to_string());
    side.push(forged);
    fs::write(
        p.join("plan.approvals.json"),
        serde_json::to_string(&side).expect("json"),
    )
    .expect("write");
    let (code, _, err) = apply(&p);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("carol: the signature does not verify"),
        "{err}"
    );
    // A tampered plan re-digested and re-signed by one approver: the others' approvals are for
    // the original digest.
    let mut plan = json(&fs::read_to_string(p.join("plan.json")).expect("plan"));
    plan["variables"]["injected"] = serde_json::Value::String("x".into());
    plan["digest"] = serde_json::Value::String(String::new());
    let mut copy = plan.clone();
    if let Some(o) = copy.as_object_mut() {
        o.insert("digest".into(), serde_json::Value::String(String::new()));
    }
    let digest = dk_state::sha256_hex(dk_state::canonical_json(&copy).as_bytes());
    plan["digest"] = serde_json::Value::String(digest);
    fs::write(
        p.join("tampered.json"),
        serde_json::to_string_pretty(&plan).expect("json"),
    )
    .expect("write");
    fs::copy(
        p.join("plan.approvals.json"),
        p.join("tampered.approvals.json"),
    )
    .expect("copy");
    ok(&p, &["approve", "tampered.json", "--key", "keys/bob.key"]);
    let (code, _, err) = dk_in(&p, &["apply", "-e", "prod", "tampered.json"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("1 valid (bob)") && err.contains("alice: signed another plan"),
        "{err}"
    );
    // Two valid approvals: applies.
    ok(&p, &["approve", "plan.json", "--key", "keys/carol.key"]);
    let out = ok(&p, &["apply", "-e", "prod", "plan.json"]);
    assert!(out.contains("Apply complete!"), "{out}");
    // Listing and the audit log.
    let list = json(&ok(&p, &["approvals", "list", "-e", "prod", "-o", "json"]));
    let statuses: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["status"].as_str().unwrap_or(""))
        .collect();
    assert!(
        statuses.contains(&"valid") && statuses.contains(&"not an approver"),
        "{list}"
    );
    let audit = json(&ok(&p, &["audit", "-e", "prod", "-o", "json"]));
    let ops: Vec<(String, String)> = audit
        .as_array()
        .expect("audit")
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap_or("").to_string(),
                e["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for want in [
        ("plan", "ok"),
        ("approve", "ok"),
        ("apply", "refused"),
        ("apply", "ok"),
    ] {
        assert!(
            ops.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {ops:?}"
        );
    }
}

#[test]
fn auto_approve_in_dev_and_protected_destroy() {
    let (_t, p) = quickstart();
    let key = keygen(&p, "alice");
    let path = p.join("environments/dev.yaml");
    let text = fs::read_to_string(&path).expect("dev");
    fs::write(
        &path,
        format!("{text}  protected: true\n  approval:\n    required: 1\n    autoApprove: true\n    approvers: [{{name: alice, publicKey: \"{key}\"}}]\n"),
    )
    .expect("write");
    let (code, out, err) = dk_in(&p, &["apply", "-e", "dev", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("auto-approved by environment dev"), "{err}");
    let (code, out, err) = dk_in(&p, &["destroy", "-e", "dev", "--auto-approve"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("environment dev is protected"), "{out}");
}

#[test]
fn breaking_change_lists_downstream_readers() {
    let (_t, p) = quickstart();
    ok(&p, &["apply", "-e", "dev", "--auto-approve"]);
    // Narrow orders.amount, which daily-revenue reads (and derives a column from).
    let path = p.join("dataset/orders.yaml");
    let text = fs::read_to_string(&path).expect("orders");
    assert!(text.contains("type: \"decimal(10,2)\""), "{text}");
    fs::write(
        &path,
        text.replacen("type: \"decimal(10,2)\"", "type: integer", 1),
    )
    .expect("write");
    let (code, out, err) = dk_in(&p, &["plan", "-e", "dev", "--out", "plan.json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Breaking changes (readers downstream):"),
        "{out}"
    );
    assert!(
        out.contains("orders (table.warehouse.main.orders): amount decimal(10,2) → integer"),
        "{out}"
    );
    assert!(out.contains("read by transforms: daily-revenue"), "{out}");
    assert!(
        out.contains("columns derived from it: daily-revenue.revenue"),
        "{out}"
    );
    let plan = json(&fs::read_to_string(p.join("plan.json")).expect("plan"));
    let b = &plan["governance"]["breaking"][0];
    assert_eq!(b["dataset"], "orders");
    assert_eq!(b["kind"], "narrow");
    assert_eq!(b["columns"], serde_json::json!(["amount"]));
    assert_eq!(b["transforms"], serde_json::json!(["daily-revenue"]));
}

fn columns(p: &Path, env: &str, address: &str) -> Vec<String> {
    let v = json(&ok(p, &["state", "show", "-e", env, address]));
    v["attributes"]["spec"]["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("no columns in {v}"))
        .iter()
        .map(|c| c["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn promote_dev_stage_prod_then_rollback() {
    let db = TestDb::new("gov");
    let (_t, p) = quickstart();
    write(
        &p,
        "connector/postgres.yaml",
        "kind: Connector\nmetadata: {name: postgres}\nspec: {type: postgres, capabilities: [source, destination]}\n",
    );
    duckdb_env(&p, "stage", "stage", 2, "");
    write(
        &p,
        "environments/prod.yaml",
        &format!("kind: Environment\nmetadata: {{name: prod}}\nspec:\n  tier: prod\n  order: 3\n  bindings:\n    warehouse:\n      connector: postgres\n      connection: {{host: 127.0.0.1, port: 5432, database: {}, user: postgres, sslmode: disable}}\n", db.0),
    );
    ok(&p, &["apply", "-e", "dev", "--auto-approve"]);
    // Skipping stage is refused.
    let (code, _, err) = dk_in(&p, &["promote", "--from", "dev", "--to", "prod"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the environment after dev is stage, not prod"),
        "{err}"
    );
    // The working tree moves on after dev was applied: promotion ships what dev applied.
    let path = p.join("dataset/orders.yaml");
    let v1 = fs::read_to_string(&path).expect("orders");
    let v2 = v1.replacen(
        "    - name: status\n",
        "    - name: channel\n      type: string\n      description: Sales channel\n    - name: status\n",
        1,
    );
    assert_ne!(v1, v2, "the quickstart's orders has a status column");
    fs::write(&path, &v2).expect("write");
    let out = ok(
        &p,
        &[
            "promote",
            "--from",
            "dev",
            "--to",
            "stage",
            "--out",
            "stage.json",
        ],
    );
    assert!(
        out.contains("Planned from the manifests dev applied at serial"),
        "{out}"
    );
    ok(&p, &["apply", "-e", "stage", "stage.json"]);
    assert!(!columns(&p, "stage", "table.warehouse.main.orders").contains(&"channel".to_string()));
    let out = ok(
        &p,
        &[
            "promote",
            "--from",
            "stage",
            "--to",
            "prod",
            "--out",
            "prod.json",
        ],
    );
    assert!(out.contains("Plan: "), "{out}");
    ok(&p, &["apply", "-e", "prod", "prod.json"]);
    let prod_v1 = columns(&p, "prod", "table.warehouse.main.orders");
    assert!(!prod_v1.contains(&"channel".to_string()), "{prod_v1:?}");
    let serial_v1: u64 = json(&ok(&p, &["state", "history", "-e", "prod", "-o", "json"]))
        .as_array()
        .and_then(|h| h.last())
        .and_then(|e| e["serial"].as_u64())
        .expect("serial");
    // Apply the working tree (v2) to prod, then roll back to v1.
    ok(&p, &["apply", "-e", "prod", "--auto-approve"]);
    assert!(columns(&p, "prod", "table.warehouse.main.orders").contains(&"channel".to_string()));
    let serial = serial_v1.to_string();
    let out = ok(
        &p,
        &[
            "rollback",
            "-e",
            "prod",
            "--to-serial",
            &serial,
            "--out",
            "rb.json",
        ],
    );
    assert!(out.contains("- column channel"), "{out}");
    let (code, _, err) = dk_in(&p, &["apply", "-e", "prod", "rb.json"]);
    assert_ne!(
        code, 0,
        "a rollback that drops a column is destructive: {err}"
    );
    ok(
        &p,
        &["apply", "-e", "prod", "--allow-destructive", "rb.json"],
    );
    assert_eq!(columns(&p, "prod", "table.warehouse.main.orders"), prod_v1);
    // Every step is in the audit logs.
    let ops = |env: &str| -> Vec<String> {
        json(&ok(&p, &["audit", "-e", env, "-o", "json"]))
            .as_array()
            .expect("audit")
            .iter()
            .map(|e| e["operation"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let prod = ops("prod");
    for want in [
        "promote",
        "apply (promote)",
        "plan",
        "apply",
        "rollback",
        "apply (rollback)",
    ] {
        assert!(prod.iter().any(|o| o == want), "{want} not in {prod:?}");
    }
    assert!(ops("stage").iter().any(|o| o == "apply (promote)"));
}
