//! Governance of plans and applies (docs/policies.md, docs/approvals.md):
//!
//! * [`evaluate`] adds to a plan what the gates need — policy violations (manifest rules, plan
//!   rules over each change, guardrails, `protected`), the breaking changes with everything
//!   downstream of them, and the approval requirement — then re-digests it, so approvals sign
//!   the verdict too;
//! * [`gate_apply`] decides whether a plan may be applied: no error-severity violation, enough
//!   valid approvals for the current Environment, a clean Git tree in prod, passing tests where
//!   the environment requires them;
//! * [`snapshot`] / [`materialize`]: the manifests snapshot stored with every plan (files by path),
//!   from which promotion and rollback plan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use dk_env::approval::{self, Approval, Requirement, Triggers, Verdict};
use dk_env::policy::{RuleSet, Violation};
use dk_env::ResolvedProject;
use dk_manifest::loader::{Document, ProjectModel};
use dk_manifest::model::Environment;
use dk_providers::model::{Action, Change, ColumnSpec, LogicalType, ResourceSpec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::compile::split_table;
use crate::plan::Plan;

/// What the gates need, recorded in the plan file (covered by its digest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Governance {
    /// Policy and guardrail findings; error-severity ones block plan and apply (exit 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
    /// Columns or DataSets the plan drops or narrows that others read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaking: Vec<BreakingChange>,
    /// Approvals this plan needs in its environment (as configured when it was made; apply
    /// re-derives it from the current Environment).
    #[serde(default, skip_serializing_if = "is_default")]
    pub approval: Requirement,
    /// The environment requires a passing `dk test` for the manifests digest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_tests: bool,
    /// What the plan was made from when not the working tree: `promote` (from an environment)
    /// or `rollback` (to a serial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PlanSource>,
}

/// Where a promote or rollback plan's manifests came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSource {
    /// promote or rollback.
    pub kind: String,
    /// The environment whose state named the snapshot.
    pub environment: String,
    /// The serial of that state.
    pub serial: u64,
    pub manifests_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

fn is_default(r: &Requirement) -> bool {
    *r == Requirement::default()
}

impl Governance {
    /// Nothing to record (the plan file then has no `governance` key).
    pub fn is_empty(&self) -> bool {
        *self == Governance::default()
    }

    pub fn has_errors(&self) -> bool {
        self.violations.iter().any(Violation::is_error)
    }
}

/// A drop, rename or narrowing that downstream readers see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakingChange {
    pub address: String,
    pub dataset: String,
    /// `drop-dataset`, or per column `drop` / `narrow`.
    pub kind: String,
    /// The columns concerned (empty for `drop-dataset`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// One line per column: `email dropped`, `amount double → integer`.
    pub details: Vec<String>,
    /// Transforms that read the dataset, directly or further downstream.
    pub transforms: Vec<String>,
    /// DataSets downstream of it.
    pub datasets: Vec<String>,
    /// `dataset.column`s whose `from:` names a concerned column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage_columns: Vec<String>,
}

/// Resource address → the DataSet it realizes, for one resolved environment.
/// The DataSets whose table or view `plan` creates.
pub fn created_datasets(
    plan: &Plan,
    model: &ProjectModel,
    env: &ResolvedProject,
) -> BTreeSet<String> {
    let by_address = dataset_addresses(model, env);
    plan.changes
        .iter()
        .filter(|c| c.action == Action::Create)
        .filter_map(|c| by_address.get(&c.address).cloned())
        .collect()
}

pub fn dataset_addresses(model: &ProjectModel, env: &ResolvedProject) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (_, ds) in model.datasets() {
        let Some(table) = &ds.spec.table else {
            continue;
        };
        let Some(store) = env.stores.get(&ds.spec.store) else {
            continue;
        };
        let (schema, name) = split_table(table, &store.connector_type);
        for kind in ["table", "view"] {
            out.insert(
                format!("{kind}.{}.{schema}.{name}", store.name),
                ds.metadata.name.clone(),
            );
        }
    }
    out
}

fn columns_of(spec: &ResourceSpec) -> &[ColumnSpec] {
    match spec {
        ResourceSpec::Table { columns, .. } | ResourceSpec::View { columns, .. } => columns,
        ResourceSpec::Schema { .. } => &[],
    }
}

fn width(t: LogicalType) -> Option<(u8, u32)> {
    use LogicalType::*;
    Some(match t {
        SmallInt => (0, 1),
        Integer => (0, 2),
        BigInt => (0, 3),
        Float => (1, 1),
        Double => (1, 2),
        String => (2, 1),
        Timestamp => (3, 1),
        TimestampTz => (3, 2),
        _ => return None,
    })
}

/// A type change that readers may not survive: a narrower width, or another family.
pub fn is_narrowing(from: LogicalType, to: LogicalType) -> bool {
    if from == to {
        return false;
    }
    match (width(from), width(to)) {
        (Some((fa, wa)), Some((fb, wb))) if fa == fb => wb < wa,
        // Integers into doubles are safe; anything else across families is not.
        (Some((0, _)), Some((1, 2))) => false,
        _ => true,
    }
}

struct Downstream {
    transforms: BTreeSet<String>,
    datasets: BTreeSet<String>,
}

fn downstream(model: &ProjectModel, dataset: &str) -> Downstream {
    let mut d = Downstream {
        transforms: BTreeSet::new(),
        datasets: BTreeSet::new(),
    };
    let mut queue = vec![dataset.to_string()];
    let mut seen = BTreeSet::from([dataset.to_string()]);
    while let Some(ds) = queue.pop() {
        for (_, t) in model.transforms() {
            let reads = t
                .spec
                .inputs
                .iter()
                .any(|r| dk_manifest::refs::names(model, r).contains(&ds));
            if !reads {
                continue;
            }
            d.transforms.insert(t.metadata.name.clone());
            for r in &t.spec.outputs {
                for o in dk_manifest::refs::names(model, r) {
                    if seen.insert(o.clone()) {
                        d.datasets.insert(o.clone());
                        queue.push(o);
                    }
                }
            }
        }
    }
    d
}

/// The breaking changes of a plan (only those somebody downstream reads).
pub fn breaking_changes(
    model: &ProjectModel,
    changes: &[Change],
    by_address: &BTreeMap<String, String>,
) -> Vec<BreakingChange> {
    let mut out = Vec::new();
    for c in changes {
        let Some(ds) = by_address.get(&c.address) else {
            continue;
        };
        let before = c
            .before
            .as_ref()
            .map(|r| columns_of(&r.spec))
            .unwrap_or(&[]);
        let after = c.after.as_ref().map(|r| columns_of(&r.spec));
        let (kind, columns, details) = match (c.action, after) {
            (Action::Delete, _) => (
                "drop-dataset".to_string(),
                vec![],
                vec!["dropped".to_string()],
            ),
            (_, Some(after)) => {
                let mut cols = Vec::new();
                let mut details = Vec::new();
                let mut narrowed = false;
                for b in before {
                    match after.iter().find(|a| a.name == b.name) {
                        None => {
                            cols.push(b.name.clone());
                            details.push(format!("{} dropped (or renamed)", b.name));
                        }
                        Some(a) if is_narrowing(b.ty, a.ty) => {
                            narrowed = true;
                            cols.push(b.name.clone());
                            details.push(format!("{} {} → {}", b.name, b.ty, a.ty));
                        }
                        Some(_) => {}
                    }
                }
                if cols.is_empty() {
                    continue;
                }
                let kind = if narrowed && details.iter().all(|d| d.contains('→')) {
                    "narrow"
                } else {
                    "drop"
                };
                (kind.to_string(), cols, details)
            }
            _ => continue,
        };
        let d = downstream(model, ds);
        let mut lineage_columns = Vec::new();
        for (_, other) in model.datasets() {
            for col in &other.spec.schema {
                if let Some((fd, fc)) = col.from.as_deref().and_then(|f| f.split_once('.')) {
                    if fd == ds && (columns.is_empty() || columns.iter().any(|x| x == fc)) {
                        lineage_columns.push(format!("{}.{}", other.metadata.name, col.name));
                    }
                }
            }
        }
        if d.transforms.is_empty() && lineage_columns.is_empty() {
            continue;
        }
        out.push(BreakingChange {
            address: c.address.clone(),
            dataset: ds.clone(),
            kind,
            columns,
            details,
            transforms: d.transforms.into_iter().collect(),
            datasets: d.datasets.into_iter().collect(),
            lineage_columns,
        });
    }
    out
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
        Action::Replace => "replace",
    }
}

/// The `change` views plan rules see (docs/policies.md).
pub fn change_views(
    model: &ProjectModel,
    env: &ResolvedProject,
    plan: &Plan,
    by_address: &BTreeMap<String, String>,
    breaking: &[BreakingChange],
) -> Vec<Value> {
    let datasets: BTreeMap<&str, &dk_manifest::model::DataSet> = model
        .datasets()
        .map(|(_, d)| (d.metadata.name.as_str(), d))
        .collect();
    plan.changes
        .iter()
        .map(|c| {
            let ds_name = by_address.get(&c.address).cloned().unwrap_or_default();
            let ds = datasets.get(ds_name.as_str());
            let classification = ds
                .and_then(|d| d.spec.classification.clone())
                .unwrap_or_default();
            let pii = ds.is_some_and(|d| d.spec.schema.iter().any(|c| c.pii));
            let r = c.after.as_ref().or(c.before.as_ref());
            let columns: Vec<String> = r
                .map(|r| columns_of(&r.spec).iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default();
            let b = breaking.iter().find(|b| b.address == c.address);
            json!({
                "address": c.address,
                "type": c.address.split('.').next().unwrap_or(""),
                "store": c.store,
                "storeType": env.stores.get(&c.store).map(|s| s.connector_type.clone()).unwrap_or_default(),
                "action": action_name(c.action),
                "destructive": c.destructive,
                "reasons": c.reasons,
                "impactRows": c.impact.rows.map(|n| n as i64).unwrap_or(0),
                "dataset": ds_name,
                "classification": classification,
                "pii": pii,
                "columns": columns,
                "breaking": b.is_some(),
                "downstream": b.map(|b| b.transforms.clone()).unwrap_or_default(),
            })
        })
        .collect()
}

/// What the plan does that approval rules look at.
pub fn triggers(
    plan: &Plan,
    model: Option<&ProjectModel>,
    by_address: &BTreeMap<String, String>,
) -> Triggers {
    let pii = model.is_some_and(|m| {
        plan.changes.iter().any(|c| {
            by_address.get(&c.address).is_some_and(|ds| {
                m.get(dk_manifest::Kind::DataSet, ds)
                    .and_then(|d| match &d.manifest {
                        Some(dk_manifest::model::Manifest::DataSet(x)) => {
                            Some(x.spec.schema.iter().any(|c| c.pii))
                        }
                        _ => None,
                    })
                    .unwrap_or(false)
            })
        })
    });
    Triggers {
        destructive: plan.changes.iter().any(|c| c.destructive),
        breaking: !plan.governance.breaking.is_empty(),
        pii,
        changes: !plan.is_empty(),
    }
}

/// Evaluates every gate input for `plan` (made from `model` for environment `env_doc`/`env`) and
/// re-digests the plan.
pub fn evaluate(
    model: &ProjectModel,
    resolved: &ResolvedProject,
    env_doc: &Document,
    env: &Environment,
    plan: &mut Plan,
) {
    let (rules, rule_diags) = RuleSet::load(model);
    let store_types: indexmap::IndexMap<String, String> = resolved
        .stores
        .iter()
        .map(|(k, s)| (k.clone(), s.connector_type.clone()))
        .collect();
    let mut violations: Vec<Violation> = Vec::new();
    let subject = |d: &dk_diagnostics::Diagnostic| {
        d.location
            .as_ref()
            .and_then(|l| {
                model
                    .docs
                    .iter()
                    .find(|doc| doc.file == l.file && doc.spans.text().len() >= l.span.offset)
                    .map(|doc| doc.address())
            })
            .unwrap_or_default()
    };
    let mut diags = rule_diags;
    diags.extend(rules.check_manifests(model, env, &store_types));
    diags.extend(dk_env::policy::guardrails::check(
        model,
        env_doc,
        env,
        &store_types,
    ));
    for d in &diags {
        let rule = d
            .label
            .as_deref()
            .and_then(|l| l.strip_prefix("violates "))
            .unwrap_or(d.code.id())
            .to_string();
        violations.push(Violation::from_diagnostic(d, &rule, &subject(d)));
    }
    let by_address = dataset_addresses(model, resolved);
    let breaking = breaking_changes(model, &plan.changes, &by_address);
    let views = change_views(model, resolved, plan, &by_address, &breaking);
    let plan_view = json!({
        "project": plan.project,
        "environment": plan.environment,
        "destroy": plan.destroy,
        "summary": {"add": plan.summary.add, "change": plan.summary.change, "destroy": plan.summary.destroy},
        "destructive": plan.destructive().count(),
        "breaking": breaking.len(),
    });
    violations.extend(rules.check_changes(env, &plan_view, &views));
    if env.spec.protected && plan.destroy {
        violations.push(Violation {
            code: dk_diagnostics::Code::ProtectedEnvironment.id().to_string(),
            severity: "error".into(),
            rule: "environment/protected".into(),
            subject: format!("environment/{}", env.metadata.name),
            message: format!(
                "environment {} is protected: destroying it is refused",
                env.metadata.name
            ),
            location: Some(env_doc.loc("/spec/protected").to_string()),
            help: Some(
                "remove `protected: true` from the Environment in a reviewed change first".into(),
            ),
        });
    }
    for b in &breaking {
        violations.push(Violation {
            code: dk_diagnostics::Code::BreakingChange.id().to_string(),
            severity: "warning".into(),
            rule: "breaking-change".into(),
            subject: b.address.clone(),
            message: format!(
                "{} ({}) breaks downstream readers: transforms {}{}",
                b.dataset,
                b.details.join(", "),
                if b.transforms.is_empty() { "none".to_string() } else { b.transforms.join(", ") },
                if b.datasets.is_empty() { String::new() } else { format!("; datasets {}", b.datasets.join(", ")) }
            ),
            location: None,
            help: Some("update the readers in the same change, or keep the column (add a new one and deprecate the old)".into()),
        });
    }
    plan.governance.violations = violations;
    plan.governance.breaking = breaking;
    let t = triggers(plan, Some(model), &by_address);
    plan.governance.approval = approval::requirement(env, t);
    plan.governance.require_tests = env.spec.require_tests;
    plan.digest = plan.compute_digest();
}

/// Why an apply is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    /// The approval verdict when approvals were the reason.
    pub verdict: Option<Verdict>,
}

/// Options of the apply gate.
#[derive(Debug, Clone, Default)]
pub struct GateOptions {
    /// `--allow-dirty`: apply a plan made from a dirty Git tree in prod.
    pub allow_dirty: bool,
    /// The manifests digest has a passing `dk test` recorded (`None`: unknown, no test records).
    pub tests_passed: Option<bool>,
    /// DataSets whose checks that passing test skipped (tables not created yet) and that this
    /// plan does not create: the test then does not count (see [`created_datasets`]).
    pub untested: Vec<String>,
}

/// What the gate let through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateReport {
    pub requirement: Requirement,
    pub verdict: Verdict,
}

/// Decides whether `plan` may be applied in environment `env` (the current manifest) with
/// `approvals` (from beside the plan file and the state backend).
pub fn gate_apply(
    env: &Environment,
    model: Option<&ProjectModel>,
    resolved: Option<&ResolvedProject>,
    plan: &Plan,
    approvals: &[Approval],
    opts: &GateOptions,
) -> Result<GateReport, Refusal> {
    let errors: Vec<&Violation> = plan
        .governance
        .violations
        .iter()
        .filter(|v| v.is_error())
        .collect();
    if !errors.is_empty() {
        let mut m = format!(
            "the plan violates {} policy rule(s) with severity error:",
            errors.len()
        );
        for v in errors {
            m.push_str(&format!("\n  [{}] {}: {}", v.code, v.rule, v.message));
        }
        return Err(Refusal {
            message: m,
            verdict: None,
        });
    }
    let require_clean = env
        .spec
        .require_clean_git
        .unwrap_or(env.spec.tier == "prod");
    if plan.git.as_ref().is_some_and(|g| g.dirty) && require_clean && !opts.allow_dirty {
        return Err(Refusal {
            message: format!(
                "the plan was made from a Git working tree with uncommitted changes; environment {} (tier {}, requireCleanGit) only applies committed manifests. Commit and re-plan, or pass --allow-dirty",
                env.metadata.name, env.spec.tier
            ),
            verdict: None,
        });
    }
    if env.spec.require_tests && opts.tests_passed != Some(true) && !opts.untested.is_empty() {
        return Err(Refusal {
            message: format!(
                "environment {} requires a passing `dk test` for manifests digest {}; the recorded one skipped the checks of {} (their tables did not exist) and this plan does not create them. Create them (apply) and run `dk test -e {}` again, then apply",
                env.metadata.name,
                &plan.manifests_digest[..plan.manifests_digest.len().min(12)],
                opts.untested.join(", "),
                env.metadata.name,
            ),
            verdict: None,
        });
    }
    if env.spec.require_tests && opts.tests_passed != Some(true) {
        return Err(Refusal {
            message: format!(
                "environment {} requires a passing `dk test` for manifests digest {}, and none is recorded; run `dk test -e {}` on these manifests (it must run the data checks and pass), then apply again",
                env.metadata.name,
                &plan.manifests_digest[..plan.manifests_digest.len().min(12)],
                env.metadata.name,
            ),
            verdict: None,
        });
    }
    let by_address = match (model, resolved) {
        (Some(m), Some(r)) => dataset_addresses(m, r),
        _ => BTreeMap::new(),
    };
    let mut t = triggers(plan, model, &by_address);
    // The plan recorded pii when it was made; the current model may have moved on.
    t.pii |= plan.governance.approval.reasons.iter().any(|r| r == "pii");
    let requirement = approval::requirement(env, t);
    let verdict = approval::verify(env, &requirement, &plan.project, &plan.digest, approvals);
    if !verdict.ok() {
        return Err(Refusal {
            message: format!(
                "approval gate ({}): {}",
                requirement.reasons.join(", "),
                verdict.explain(&env.metadata.name)
            ),
            verdict: Some(verdict),
        });
    }
    Ok(GateReport {
        requirement,
        verdict,
    })
}

// --- snapshots ---------------------------------------------------------------------------------

/// Files a transform names beside its manifest (SQL, scripts), relative to the project root.
fn referenced_files(model: &ProjectModel) -> Vec<(String, std::path::PathBuf)> {
    let mut out = Vec::new();
    for (doc, t) in model.transforms() {
        for rel in [&t.spec.sql, &t.spec.script].into_iter().flatten() {
            let path = doc.dir().join(rel);
            if let Ok(p) = path.strip_prefix(&model.root) {
                out.push((p.to_string_lossy().replace('\\', "/"), path.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every file a plan depends on: the manifests and the files transforms name, by path.
pub fn snapshot_files(model: &ProjectModel) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for p in model.sources.paths() {
        if let Some(t) = model.sources.get(p) {
            files.insert(p.to_string(), t.to_string());
        }
    }
    for (rel, path) in referenced_files(model) {
        if let Ok(t) = std::fs::read_to_string(&path) {
            files.insert(rel, t);
        }
    }
    files
}

/// The digest of a set of snapshot files (sorted paths and texts).
pub fn files_digest(files: &BTreeMap<String, String>) -> String {
    let mut bytes = Vec::new();
    for (p, t) in files {
        bytes.extend_from_slice(p.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(t.as_bytes());
        bytes.push(0);
    }
    dk_state::sha256_hex(&bytes)
}

/// The snapshot document stored in the state backend under the manifests digest.
pub fn snapshot(model: &ProjectModel, git: Option<&dk_state::GitInfo>) -> (String, Value) {
    let files = snapshot_files(model);
    let digest = files_digest(&files);
    (
        digest.clone(),
        json!({"format": 1, "digest": digest, "git": git, "files": files}),
    )
}

/// Writes a stored snapshot's files under `dir` (which must be empty) and returns the git info it
/// recorded. Paths that would leave `dir` are refused.
pub fn materialize(snapshot: &Value, dir: &Path) -> Result<Option<dk_state::GitInfo>, String> {
    let files = snapshot
        .get("files")
        .and_then(Value::as_object)
        .ok_or("the stored snapshot has no files")?;
    for (rel, text) in files {
        let p = Path::new(rel);
        if p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!("the stored snapshot has an unsafe path {rel}"));
        }
        let target = dir.join(p);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&target, text.as_str().unwrap_or_default())
            .map_err(|e| format!("{}: {e}", target.display()))?;
    }
    Ok(snapshot
        .get("git")
        .cloned()
        .and_then(|g| serde_json::from_value(g).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(tier: &str, require_clean_git: Option<bool>) -> Environment {
        dk_manifest::model::Resource::new(
            dk_manifest::model::Kind::Environment,
            "prod",
            dk_manifest::model::EnvironmentSpec {
                tier: tier.into(),
                require_clean_git,
                ..Default::default()
            },
        )
    }

    fn dirty_plan() -> Plan {
        let mut p = Plan {
            format_version: crate::plan::PLAN_FORMAT_VERSION,
            dk_version: "0".into(),
            project: "p".into(),
            environment: "prod".into(),
            lineage: None,
            serial: 0,
            manifests_digest: "d".into(),
            git: Some(dk_state::GitInfo {
                commit: Some("abc".into()),
                branch: Some("main".into()),
                dirty: true,
            }),
            variables: Default::default(),
            changes: vec![],
            record: vec![],
            forget: vec![],
            summary: Default::default(),
            destroy: false,
            created_at: chrono::Utc::now(),
            digest: String::new(),
            governance: Default::default(),
        };
        p.digest = p.compute_digest();
        p
    }

    #[test]
    fn dirty_trees_follow_require_clean_git() {
        let plan = dirty_plan();
        let gate = |e: &Environment, allow_dirty: bool| {
            gate_apply(
                e,
                None,
                None,
                &plan,
                &[],
                &GateOptions {
                    allow_dirty,
                    tests_passed: None,
                    untested: Vec::new(),
                },
            )
        };
        // prod refuses by default, --allow-dirty lets it through.
        let refused = gate(&env("prod", None), false).expect_err("refused");
        assert!(
            refused.message.contains("--allow-dirty"),
            "{}",
            refused.message
        );
        assert!(gate(&env("prod", None), true).is_ok());
        // The environment decides: off in prod, on in stage.
        assert!(gate(&env("prod", Some(false)), false).is_ok());
        assert!(gate(&env("stage", None), false).is_ok());
        assert!(gate(&env("stage", Some(true)), false).is_err());
    }

    #[test]
    fn narrowing() {
        use LogicalType::*;
        assert!(is_narrowing(BigInt, Integer));
        assert!(is_narrowing(Double, Integer));
        assert!(is_narrowing(String, Integer));
        assert!(!is_narrowing(Integer, BigInt));
        assert!(!is_narrowing(Integer, Double));
        assert!(!is_narrowing(String, String));
    }
}
