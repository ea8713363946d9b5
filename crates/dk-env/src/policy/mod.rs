//! Policy evaluation (DESIGN §8, docs/policies.md).
//!
//! A [`RuleSet`] holds every rule of the project's `kind: Policy` manifests plus the rules of the
//! built-in packs they enable (`spec.packs`: `versions`, `quality`, `security`, `changes`; the
//! packs are Policy manifests themselves, in `policy/packs/`). Conditions are CEL expressions
//! (the `cel` crate) that must evaluate to `true`; a rule whose condition is `false` is violated.
//!
//! * **manifest rules** (`appliesTo.kinds` names manifest kinds, or is empty) see `object` — the
//!   JSON view of one manifest, [`manifest_view`] — and `env` — the environment, [`env_view`];
//!   `dk lint -e ENV` and `dk plan` evaluate them ([`RuleSet::check_manifests`]);
//! * **plan rules** (`appliesTo.kinds: [Change]`) see `change` — one planned action, built by
//!   dk-engine — `plan` and `env`; `dk plan` evaluates them ([`RuleSet::check_changes`]).
//!
//! Besides CEL rules this module owns the native checks: the environment guardrails
//! ([`guardrails`]: allowed connectors, quotas) and classification along lineage ([`lineage`],
//! part of the `security` pack). Functions available to conditions: `isExactVersion(s)`,
//! `isPinnedImage(s)`, `classRank(s)`.

pub mod guardrails;
pub mod lineage;
mod view;

use std::collections::BTreeSet;
use std::sync::Arc;

use dk_diagnostics::{Code, Diagnostic, Location, Severity};
use dk_manifest::loader::{Document, ProjectModel};
use dk_manifest::model::{Environment, Kind, Manifest};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use view::{classification_rank, env_view, is_exact_version, is_pinned_image, manifest_view};

/// The built-in packs: name and the Policy manifest that defines them.
pub const PACKS: &[(&str, &str)] = &[
    ("versions", include_str!("packs/versions.yaml")),
    ("quality", include_str!("packs/quality.yaml")),
    ("security", include_str!("packs/security.yaml")),
    ("changes", include_str!("packs/changes.yaml")),
];

/// The pseudo-kind of plan rules.
pub const CHANGE_KIND: &str = "Change";

/// One compiled rule.
pub struct Rule {
    /// `policy/rule`, e.g. `security/outputs-classified`.
    pub id: String,
    pub severity: Severity,
    pub kinds: Vec<String>,
    pub environments: Vec<String>,
    pub labels: IndexMap<String, String>,
    pub condition: String,
    pub message: String,
    /// Where the rule is written (`None` for built-in packs).
    pub location: Option<Location>,
    program: cel::Program,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("id", &self.id)
            .field("condition", &self.condition)
            .finish()
    }
}

impl Rule {
    fn is_plan_rule(&self) -> bool {
        self.kinds.iter().any(|k| k == CHANGE_KIND)
    }

    fn applies_to_kind(&self, kind: Kind) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind.as_str())
    }

    /// `environments` lists environment names or tiers.
    fn applies_to_env(&self, name: &str, tier: &str) -> bool {
        self.environments.is_empty() || self.environments.iter().any(|e| e == name || e == tier)
    }

    fn applies_to_labels(&self, labels: &IndexMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    fn origin(&self) -> String {
        match &self.location {
            Some(l) => format!("rule {} ({l})", self.id),
            None => format!("rule {} (built-in pack)", self.id),
        }
    }
}

/// A policy finding recorded in a plan file (diagnostics are not deserializable, plans are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Diagnostic code (`E600`, `E620`, …).
    pub code: String,
    /// error, warning or info.
    pub severity: String,
    /// What is violated: the rule id (`security/outputs-classified`) or the guardrail.
    pub rule: String,
    /// The manifest (`dataset/orders`) or resource address the finding is about.
    pub subject: String,
    pub message: String,
    /// `file:line:col` of the offending manifest, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Violation {
    pub fn is_error(&self) -> bool {
        self.severity == "error"
    }

    /// The plan-file form of a diagnostic about `subject`.
    pub fn from_diagnostic(d: &Diagnostic, rule: &str, subject: &str) -> Self {
        Violation {
            code: d.code.id().to_string(),
            severity: d.severity.to_string(),
            rule: rule.to_string(),
            subject: subject.to_string(),
            message: d.message.clone(),
            location: d.location.as_ref().map(|l| l.to_string()),
            help: d.help.clone(),
        }
    }
}

/// Every rule in force for a project.
#[derive(Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Enabled built-in packs.
    pub packs: BTreeSet<String>,
}

fn severity_of(s: Option<&str>) -> Severity {
    match s {
        Some("warning") | Some("warn") => Severity::Warning,
        Some("info") => Severity::Info,
        _ => Severity::Error,
    }
}

fn compile_rules(
    doc: Option<&Document>,
    policy: &dk_manifest::model::Policy,
    out: &mut RuleSet,
    diags: &mut Vec<Diagnostic>,
) {
    for (i, r) in policy.spec.rules.iter().enumerate() {
        if r.condition.trim().is_empty() {
            continue; // E270, reported by the validator
        }
        let id = format!("{}/{}", policy.metadata.name, r.name);
        match cel::Program::compile(&r.condition) {
            Ok(program) => {
                let a = r.applies_to.clone().unwrap_or_default();
                out.rules.push(Rule {
                    id,
                    severity: severity_of(r.severity.as_deref()),
                    kinds: a.kinds,
                    environments: a.environments,
                    labels: a.labels,
                    condition: r.condition.clone(),
                    message: r.message.clone(),
                    location: doc.map(|d| d.loc(&format!("/spec/rules/{i}"))),
                    program,
                });
            }
            Err(e) => {
                let msg = e.to_string();
                let d = Diagnostic::new(
                    Code::PolicyConditionInvalid,
                    format!(
                        "rule {id}: the condition is not valid CEL: {}",
                        msg.lines().next().unwrap_or("")
                    ),
                )
                .help("conditions are CEL expressions that must be true for a compliant manifest, e.g. `object.classification != ''`; see docs/policies.md");
                diags.push(match doc {
                    Some(doc) => d.at(doc.loc(&format!("/spec/rules/{i}/condition"))),
                    None => d,
                });
            }
        }
    }
}

impl RuleSet {
    /// Collects and compiles the rules of the project's Policy manifests and of the packs they
    /// enable. Conditions that do not parse are E601 diagnostics (the rule is left out).
    pub fn load(model: &ProjectModel) -> (RuleSet, Vec<Diagnostic>) {
        let mut set = RuleSet::default();
        let mut diags = Vec::new();
        for doc in model.of_kind(Kind::Policy) {
            let Some(Manifest::Policy(p)) = &doc.manifest else {
                continue;
            };
            set.packs.extend(p.spec.packs.iter().cloned());
            compile_rules(Some(doc), p, &mut set, &mut diags);
        }
        for (name, text) in PACKS {
            if !set.packs.contains(*name) {
                continue;
            }
            let m = dk_manifest::loader::load_str(&format!("pack:{name}.yaml"), text);
            for (_, p) in m.policies() {
                compile_rules(None, p, &mut set, &mut diags);
            }
        }
        (set, diags)
    }

    pub fn has_pack(&self, name: &str) -> bool {
        self.packs.contains(name)
    }

    /// Evaluates the manifest rules (and the `security` pack's lineage rule) for one environment.
    pub fn check_manifests(
        &self,
        model: &ProjectModel,
        env: &Environment,
        store_types: &IndexMap<String, String>,
    ) -> Vec<Diagnostic> {
        let env_v = env_view(env);
        let tier = env.spec.tier.as_str();
        let name = env.metadata.name.as_str();
        let index = view::Index::build(model);
        let mut out = Vec::new();
        let rules: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| !r.is_plan_rule() && r.applies_to_env(name, tier))
            .collect();
        if !rules.is_empty() {
            let mut root = base_context();
            root.add_variable_from_value("env", to_cel(&env_v));
            for doc in &model.docs {
                let Some(m) = &doc.manifest else { continue };
                let applicable: Vec<&&Rule> = rules
                    .iter()
                    .filter(|r| {
                        r.applies_to_kind(doc.kind) && r.applies_to_labels(&m.metadata().labels)
                    })
                    .collect();
                if applicable.is_empty() {
                    continue;
                }
                let obj = manifest_view(doc, m, &index, store_types);
                let mut cx = root.new_inner_scope();
                cx.add_variable_from_value("object", to_cel(&obj));
                for r in applicable {
                    let at = doc.loc("/metadata/name");
                    if let Some(d) = eval(r, &cx, &doc.address(), Some(at)) {
                        out.push(d);
                    }
                }
            }
        }
        if self.has_pack("security") {
            out.extend(lineage::check(model, &index));
        }
        out.sort_by_key(|d| d.sort_key());
        out
    }

    /// Evaluates the plan rules over each planned change (`changes`: the views dk-engine builds,
    /// each with an `address`). Returns violations in plan-file form.
    pub fn check_changes(
        &self,
        env: &Environment,
        plan: &Value,
        changes: &[Value],
    ) -> Vec<Violation> {
        let tier = env.spec.tier.as_str();
        let name = env.metadata.name.as_str();
        let rules: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.is_plan_rule() && r.applies_to_env(name, tier))
            .collect();
        let mut out = Vec::new();
        if rules.is_empty() {
            return out;
        }
        let mut root = base_context();
        root.add_variable_from_value("env", to_cel(&env_view(env)));
        root.add_variable_from_value("plan", to_cel(plan));
        for c in changes {
            let address = c.get("address").and_then(Value::as_str).unwrap_or("");
            let mut cx = root.new_inner_scope();
            cx.add_variable_from_value("change", to_cel(c));
            for r in &rules {
                if let Some(d) = eval(r, &cx, address, None) {
                    out.push(Violation::from_diagnostic(&d, &r.id, address));
                }
            }
        }
        out
    }
}

/// Evaluates one rule; `Some(diagnostic)` when it is violated or fails.
fn eval(
    rule: &Rule,
    cx: &cel::Context<'_, '_>,
    subject: &str,
    at: Option<Location>,
) -> Option<Diagnostic> {
    match rule.program.execute(cx) {
        Ok(cel::Value::Bool(true)) => None,
        Ok(cel::Value::Bool(false)) => Some(
            Diagnostic::new(
                Code::PolicyViolation,
                format!("{subject}: {}", rule.message),
            )
            .with_severity(rule.severity)
            .at_opt(at)
            .label(format!("violates {}", rule.id))
            .help(format!(
                "{}: `{}` is false",
                rule.origin(),
                rule.condition.trim()
            )),
        ),
        Ok(other) => Some(
            Diagnostic::new(
                Code::PolicyEvaluationFailed,
                format!(
                    "{subject}: rule {} returned {other:?}, not a boolean",
                    rule.id
                ),
            )
            .at_opt(at)
            .help(format!(
                "{}: make the condition a boolean expression",
                rule.origin()
            )),
        ),
        Err(e) => Some(
            Diagnostic::new(
                Code::PolicyEvaluationFailed,
                format!("{subject}: rule {} failed: {e}", rule.id),
            )
            .at_opt(at)
            .help(format!(
                "{}: guard optional fields with has(...); the views are in docs/policies.md",
                rule.origin()
            )),
        ),
    }
}

/// The standard CEL library plus dk's functions.
fn base_context() -> cel::Context<'static, 'static> {
    let mut cx = cel::Context::default();
    // Names are ours and do not collide with the standard library's.
    let _ = cx.add_function("isExactVersion", |s: Arc<String>| is_exact_version(&s));
    let _ = cx.add_function("isPinnedImage", |s: Arc<String>| is_pinned_image(&s));
    let _ = cx.add_function("classRank", |s: Arc<String>| classification_rank(&s));
    cx
}

/// JSON → CEL, with every integer as a CEL `int` (so `size(x) > 0` and `n >= 2` compare).
pub fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(a) => cel::Value::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(o) => {
            let map: std::collections::HashMap<cel::objects::Key, cel::Value> = o
                .iter()
                .map(|(k, v)| (cel::objects::Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
    }
}

/// Every policy diagnostic `dk lint` reports without an environment: conditions that do not parse.
pub fn check_conditions(model: &ProjectModel) -> Vec<Diagnostic> {
    RuleSet::load(model).1
}

/// Everything `dk lint -e ENV` adds to the validator for one environment: E601 (conditions), the
/// manifest rules (E600/E602), guardrails (E610/E611) and lineage (E620).
pub fn lint_environment(
    model: &ProjectModel,
    env_doc: &Document,
    env: &Environment,
) -> Vec<Diagnostic> {
    let store_types = store_types(model, env);
    let (rules, mut diags) = RuleSet::load(model);
    diags.extend(rules.check_manifests(model, env, &store_types));
    diags.extend(guardrails::check(model, env_doc, env, &store_types));
    diags.sort_by_key(|d| d.sort_key());
    diags
}

/// Store name → connector type in `env` (bindings applied), without resolving any `${VAR}`:
/// lint never needs variable values.
pub fn store_types(model: &ProjectModel, env: &Environment) -> IndexMap<String, String> {
    let type_of = |connector: &str| {
        model
            .connectors()
            .find(|(_, c)| {
                c.metadata.name == connector || c.spec.provider.as_deref() == Some(connector)
            })
            .and_then(|(_, c)| c.spec.type_.clone())
            .unwrap_or_else(|| connector.to_string())
    };
    model
        .stores()
        .map(|(_, s)| {
            let b = env.spec.bindings.get(&s.metadata.name);
            let t = match (
                b.and_then(|b| b.connector.as_deref()),
                b.and_then(|b| b.type_.as_deref()),
            ) {
                (Some(c), _) => type_of(c),
                (None, Some(t)) => t.to_string(),
                (None, None) => type_of(&s.spec.connector),
            };
            (s.metadata.name.clone(), t)
        })
        .collect()
}

#[cfg(test)]
mod tests;
