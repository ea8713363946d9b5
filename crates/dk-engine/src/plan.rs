//! Plan: desired resources vs state vs the real systems → ordered changes, with a digest.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dk_env::ResolvedProject;
use dk_manifest::ProjectModel;
use dk_providers::model::{Action, Change, Resource, ResourceKind};
use dk_providers::Provider;
use dk_state::{GitInfo, ResourceStatus, StateDocument};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::compile::{self, default_schema};
use crate::EngineError;

pub const PLAN_FORMAT_VERSION: u32 = 1;

/// Counts shown in the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

/// A saved plan (`dk plan --out plan.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub dk_version: String,
    pub project: String,
    pub environment: String,
    /// The state this plan was made against: refused by apply when it moved.
    pub lineage: Option<uuid::Uuid>,
    pub serial: u64,
    pub manifests_digest: String,
    pub git: Option<GitInfo>,
    /// The environment's resolved variables (never secrets).
    pub variables: IndexMap<String, String>,
    /// Planned changes, in the order apply runs them.
    pub changes: Vec<Change>,
    /// Objects that exist and match the configuration but are not (or not correctly) recorded in
    /// state: apply records them (this is how an interrupted apply converges).
    pub record: Vec<Resource>,
    /// Addresses in state whose objects no longer exist and are not wanted: apply forgets them.
    pub forget: Vec<String>,
    pub summary: Summary,
    pub destroy: bool,
    /// Policy violations, breaking changes and the approval requirement (governance.rs).
    #[serde(
        default,
        skip_serializing_if = "crate::governance::Governance::is_empty"
    )]
    pub governance: crate::governance::Governance,
    pub created_at: DateTime<Utc>,
    /// sha256 of the canonical JSON of this plan with `digest` empty.
    pub digest: String,
}

impl Plan {
    /// The digest of the plan's content.
    pub fn compute_digest(&self) -> String {
        let mut copy = self.clone();
        copy.digest = String::new();
        let v = serde_json::to_value(&copy).unwrap_or_default();
        dk_state::sha256_hex(dk_state::canonical_json(&v).as_bytes())
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.record.is_empty() && self.forget.is_empty()
    }

    pub fn destructive(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.destructive)
    }

    /// Reads a plan file and checks its digest.
    pub fn read(path: &Path) -> Result<Plan, EngineError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EngineError::PlanFile(format!("cannot read {}: {e}", path.display())))?;
        let plan: Plan = serde_json::from_str(&text).map_err(|e| {
            EngineError::PlanFile(format!("{} is not a dk plan file: {e}", path.display()))
        })?;
        if plan.format_version != PLAN_FORMAT_VERSION {
            return Err(EngineError::PlanFile(format!(
                "{} has plan format {} but this dk reads format {PLAN_FORMAT_VERSION}; make a new plan",
                path.display(),
                plan.format_version
            )));
        }
        let actual = plan.compute_digest();
        if actual != plan.digest {
            return Err(EngineError::TamperedPlan {
                path: path.display().to_string(),
                expected: plan.digest.clone(),
                actual,
            });
        }
        Ok(plan)
    }
}

/// Options of `dk plan`.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Only these addresses (exact, or a prefix ending in `.`, or with `*` wildcards), plus what
    /// they depend on.
    pub targets: Vec<String>,
    /// Plan the destruction of everything in state.
    pub destroy: bool,
    /// Only update state from the real systems; no changes.
    pub refresh_only: bool,
}

/// Digest of the project's manifest files and the files transforms name (SQL, scripts): sorted
/// paths and texts. It keys the manifests snapshot promotion and rollback plan from.
pub fn manifests_digest(model: &ProjectModel) -> String {
    crate::governance::files_digest(&crate::governance::snapshot_files(model))
}

fn target_matches(targets: &[String], address: &str) -> bool {
    targets.iter().any(|t| {
        if t == address {
            return true;
        }
        if t.contains(['*', '?', '[']) {
            return globset::Glob::new(t).is_ok_and(|g| g.compile_matcher().is_match(address));
        }
        address.starts_with(&format!("{t}."))
    })
}

/// The resource recorded in a state entry.
pub fn state_resource(doc: &StateDocument, address: &str) -> Option<Resource> {
    doc.get(address)
        .and_then(|r| serde_json::from_value(r.attributes.clone()).ok())
}

/// Connected providers, one per store.
pub type Providers = BTreeMap<String, Arc<Provider>>;

/// Connects a provider for every store that has desired or recorded resources.
pub async fn connect(
    env: &ResolvedProject,
    stores: &BTreeSet<String>,
    root: &Path,
) -> Result<Providers, EngineError> {
    let mut out = Providers::new();
    for s in stores {
        let Some(store) = env.stores.get(s) else {
            return Err(EngineError::UnknownStore(s.clone()));
        };
        out.insert(s.clone(), Arc::new(Provider::connect(store, root).await?));
    }
    Ok(out)
}

/// Refreshes every managed schema of every store (one bulk refresh per store).
pub async fn refresh(
    providers: &Providers,
    env: &ResolvedProject,
    wanted: &BTreeMap<String, Resource>,
    state: &StateDocument,
) -> Result<HashMap<String, Resource>, EngineError> {
    let mut schemas: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |r: &Resource| {
        schemas
            .entry(r.store.clone())
            .or_default()
            .insert(r.spec.qualified().0.to_string());
    };
    wanted.values().for_each(&mut add);
    for rs in &state.resources {
        if let Ok(r) = serde_json::from_value::<Resource>(rs.attributes.clone()) {
            add(&r);
        }
    }
    let mut actual = HashMap::new();
    for (store, set) in schemas {
        let Some(p) = providers.get(&store) else {
            continue;
        };
        let ctype = env
            .stores
            .get(&store)
            .map(|s| s.connector_type.as_str())
            .unwrap_or("");
        let mut list: Vec<String> = set.into_iter().collect();
        if !list.iter().any(|s| s == default_schema(ctype)) {
            list.push(default_schema(ctype).to_string());
        }
        for r in p.refresh(&list).await? {
            actual.insert(r.address.clone(), r);
        }
    }
    Ok(actual)
}

/// Orders changes: creates and updates in dependency order, then deletes in reverse dependency
/// order (views before the tables they read, tables before their schema).
fn order(
    changes: Vec<Change>,
    desired: &BTreeMap<String, Resource>,
    state: &StateDocument,
) -> Vec<Change> {
    let (deletes, rest): (Vec<Change>, Vec<Change>) = changes
        .into_iter()
        .partition(|c| c.action == Action::Delete);
    let deps_of = |c: &Change| -> Vec<String> {
        desired
            .get(&c.address)
            .map(|r| r.depends_on.clone())
            .or_else(|| state.get(&c.address).map(|r| r.depends_on.clone()))
            .unwrap_or_default()
    };
    let topo = |mut items: Vec<Change>| -> Vec<Change> {
        items.sort_by(|a, b| a.address.cmp(&b.address));
        let names: BTreeSet<String> = items.iter().map(|c| c.address.clone()).collect();
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut out = Vec::with_capacity(items.len());
        let mut pending = items;
        while !pending.is_empty() {
            let (ready, wait): (Vec<Change>, Vec<Change>) = pending.into_iter().partition(|c| {
                deps_of(c)
                    .iter()
                    .all(|d| !names.contains(d) || done.contains(d))
            });
            if ready.is_empty() {
                // A dependency cycle cannot come from valid manifests; keep a stable order.
                out.extend(wait);
                break;
            }
            for c in &ready {
                done.insert(c.address.clone());
            }
            out.extend(ready);
            pending = wait;
        }
        out
    };
    let mut out = topo(rest);
    let mut del = topo(deletes);
    del.reverse();
    out.extend(del);
    out
}

/// Everything `plan` needs.
pub struct PlanInput<'a> {
    pub model: &'a ProjectModel,
    pub env: &'a ResolvedProject,
    pub state: &'a StateDocument,
    pub project: &'a str,
    pub options: &'a PlanOptions,
}

/// Makes a plan (providers must be connected for every store with desired or recorded resources).
pub async fn plan(
    input: PlanInput<'_>,
    providers: &Providers,
    desired: &compile::Compiled,
) -> Result<Plan, EngineError> {
    let state = input.state;
    let opts = input.options;
    for t in &opts.targets {
        if let Err(e) = globset::Glob::new(t) {
            return Err(EngineError::PlanFile(format!(
                "--target {t}: not a valid address pattern: {e}"
            )));
        }
    }
    let mut wanted: BTreeMap<String, Resource> = if opts.destroy {
        BTreeMap::new()
    } else {
        desired.resources.clone()
    };
    let actual = refresh(providers, input.env, &wanted, state).await?;
    // Targets select addresses and, for creates and updates, what they depend on.
    let mut managed: BTreeSet<String> = wanted.keys().cloned().collect();
    managed.extend(state.resources.iter().map(|r| r.address.clone()));
    if !opts.targets.is_empty() {
        let mut selected: BTreeSet<String> = managed
            .iter()
            .filter(|a| target_matches(&opts.targets, a))
            .cloned()
            .collect();
        let mut stack: Vec<String> = selected.iter().cloned().collect();
        while let Some(a) = stack.pop() {
            if let Some(r) = wanted.get(&a) {
                for d in &r.depends_on {
                    if selected.insert(d.clone()) {
                        stack.push(d.clone());
                    }
                }
            }
        }
        managed = selected;
        wanted.retain(|a, _| managed.contains(a));
    }
    let mut changes = Vec::new();
    let mut record = Vec::new();
    let mut forget = Vec::new();
    for addr in &managed {
        let d = wanted.get(addr);
        let a = actual.get(addr);
        let in_state = state.get(addr);
        if d.is_none() && a.is_none() {
            if in_state.is_some() {
                forget.push(addr.clone());
            }
            continue;
        }
        let store = d.or(a).map(|r| r.store.clone()).unwrap_or_default();
        let Some(p) = providers.get(&store) else {
            continue;
        };
        if opts.refresh_only {
            if let (Some(a), Some(_)) = (a, in_state) {
                if state_resource(state, addr).as_ref() != Some(a) {
                    record.push(a.clone());
                }
            }
            continue;
        }
        match p.plan(d, a).await? {
            Some(c) => changes.push(c),
            None => {
                // In sync with the real object: make sure state says so.
                if let Some(a) = a {
                    let ok = in_state.is_some_and(|s| s.status == ResourceStatus::Ok)
                        && state_resource(state, addr).as_ref().map(|r| &r.spec) == Some(&a.spec);
                    if !ok {
                        let mut r = a.clone();
                        if let Some(d) = d {
                            r.depends_on = d.depends_on.clone();
                        }
                        record.push(r);
                    }
                }
            }
        }
    }
    let changes = order(changes, &wanted, state);
    check_view_columns(providers, &changes, desired).await?;
    let mut summary = Summary::default();
    for c in &changes {
        match c.action {
            Action::Create => summary.add += 1,
            Action::Update => summary.change += 1,
            Action::Delete => summary.destroy += 1,
            Action::Replace => {
                summary.add += 1;
                summary.destroy += 1;
            }
        }
    }
    let mut plan = Plan {
        format_version: PLAN_FORMAT_VERSION,
        dk_version: env!("CARGO_PKG_VERSION").to_string(),
        project: input.project.to_string(),
        environment: input.env.environment.clone(),
        lineage: (state.serial > 0).then_some(state.lineage),
        serial: state.serial,
        manifests_digest: manifests_digest(input.model),
        git: GitInfo::detect(&input.model.root),
        variables: input.env.variables.clone(),
        changes,
        record,
        forget,
        summary,
        destroy: opts.destroy,
        governance: Default::default(),
        created_at: Utc::now(),
        digest: String::new(),
    };
    plan.digest = plan.compute_digest();
    Ok(plan)
}

/// Broad families of logical types: a view's column may differ in width from its declaration
/// (`count(*)` is a bigint in a column declared integer) but not in family.
fn family(t: dk_providers::model::LogicalType) -> &'static str {
    use dk_providers::model::LogicalType::*;
    match t {
        SmallInt | Integer | BigInt | Float | Double | Decimal(..) => "number",
        String => "string",
        Boolean => "boolean",
        Date => "date",
        Time => "time",
        Timestamp | TimestampTz => "timestamp",
        Json => "json",
        Binary => "binary",
        Uuid => "uuid",
    }
}

/// How the columns a view's query returns differ from the declared ones (empty when they match).
pub fn view_column_issues(
    declared: &[dk_providers::model::ColumnSpec],
    actual: &[(String, Option<dk_providers::model::LogicalType>)],
) -> Vec<String> {
    let mut issues = Vec::new();
    for d in declared {
        match actual.iter().find(|(n, _)| n == &d.name) {
            None => issues.push(format!(
                "declared column {} ({}) is not returned",
                d.name, d.ty
            )),
            Some((_, Some(t))) if family(*t) != family(d.ty) => issues.push(format!(
                "column {} is declared {} but the query returns {t}",
                d.name, d.ty
            )),
            Some(_) => {}
        }
    }
    for (n, t) in actual {
        if !declared.iter().any(|d| &d.name == n) {
            let ty = t.map(|t| t.to_string()).unwrap_or_else(|| "?".into());
            issues.push(format!(
                "the query returns column {n} ({ty}), which is not declared"
            ));
        }
    }
    issues
}

/// At apply, right before a view is created or replaced: its query's columns against the
/// declaration (for views whose inputs did not exist when the plan was made).
pub async fn check_view_before_apply(
    provider: &dk_providers::Provider,
    change: &Change,
) -> Result<(), String> {
    if change.action == Action::Delete {
        return Ok(());
    }
    let Some(dk_providers::model::ResourceSpec::View { sql, columns, .. }) =
        change.after.as_ref().map(|r| &r.spec)
    else {
        return Ok(());
    };
    if columns.is_empty() {
        return Ok(());
    }
    let actual = provider
        .describe_query(sql)
        .await
        .map_err(|e| e.to_string())?;
    let issues = view_column_issues(columns, &actual);
    if issues.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the view's query columns differ from its DataSet's schema: {}",
            issues.join("; ")
        ))
    }
}

/// Compares what each planned view's query returns (asked from the store without running it)
/// with the columns its DataSet declares: missing and unexpected columns, and type families that
/// differ, are errors. A query that reads objects this plan creates first is checked at apply.
async fn check_view_columns(
    providers: &Providers,
    changes: &[Change],
    desired: &compile::Compiled,
) -> Result<(), EngineError> {
    let created: BTreeSet<&str> = changes
        .iter()
        .filter(|c| matches!(c.action, Action::Create | Action::Replace))
        .map(|c| c.address.as_str())
        .collect();
    let mut problems = Vec::new();
    for c in changes {
        if c.action == Action::Delete {
            continue;
        }
        let Some(after) = &c.after else { continue };
        let dk_providers::model::ResourceSpec::View { sql, columns, .. } = &after.spec else {
            continue;
        };
        if columns.is_empty() {
            continue;
        }
        let Some(p) = providers.get(&c.store) else {
            continue;
        };
        let waits_for_new = after
            .depends_on
            .iter()
            .any(|d| created.contains(d.as_str()));
        let origin = desired
            .origins
            .get(&c.address)
            .cloned()
            .unwrap_or_else(|| c.address.clone());
        let actual = match p.describe_query(sql).await {
            Ok(a) => a,
            Err(_) if waits_for_new => continue,
            Err(e) => {
                problems.push(format!(
                    "{}: {origin}: the query does not compile against the store: {e}",
                    c.address
                ));
                continue;
            }
        };
        let issues = view_column_issues(columns, &actual);
        if !issues.is_empty() {
            problems.push(format!(
                "{}: {origin}: the query's columns differ from the declared schema: {}",
                c.address,
                issues.join("; ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::ViewColumns(problems))
    }
}

/// Kind of a resource address (`table.x.y.z` → Table).
pub fn kind_of(address: &str) -> Option<ResourceKind> {
    match address.split('.').next()? {
        "schema" => Some(ResourceKind::Schema),
        "table" => Some(ResourceKind::Table),
        "view" => Some(ResourceKind::View),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_match_exact_prefix_and_globs() {
        let t = vec![
            "table.wh.main.orders".to_string(),
            "view.wh".to_string(),
            "table.*.daily_*".to_string(),
        ];
        assert!(target_matches(&t, "table.wh.main.orders"));
        assert!(target_matches(&t, "view.wh.main.v"));
        assert!(target_matches(&t, "table.wh.marts.daily_revenue"));
        assert!(!target_matches(&t, "table.wh.main.users"));
    }
}
