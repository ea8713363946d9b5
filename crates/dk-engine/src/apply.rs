//! Apply: runs a plan's changes in dependency waves with bounded parallelism, journaling each wave
//! in state before (`pending`) and after (`ok` / `tainted`) it runs, so a crash at any instant
//! leaves a state the next plan refreshes and completes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dk_providers::model::{Action, Change, Resource};
use dk_state::{Backend, ResourceStatus, StateDocument};
use tokio::sync::Semaphore;

use crate::import::resource_state;
use crate::plan::{Plan, Providers};
use crate::EngineError;

/// Options of `dk apply`.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Changes run at the same time at most.
    pub parallelism: usize,
    /// Destructive changes may run.
    pub allow_destructive: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 4,
            allow_destructive: false,
        }
    }
}

/// What happened to one change.
#[derive(Debug, Clone)]
pub struct ActionResult {
    pub address: String,
    pub action: Action,
    pub duration: Duration,
    pub error: Option<String>,
}

/// Progress events for the CLI.
#[derive(Debug, Clone)]
pub enum Event {
    Started { address: String, action: Action },
    Finished(ActionResult),
}

/// The outcome of an apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    pub results: Vec<ActionResult>,
    /// Changes not started because an earlier one failed.
    pub skipped: Vec<String>,
    /// Serial of the state written last.
    pub serial: u64,
}

impl ApplyReport {
    pub fn failed(&self) -> bool {
        self.results.iter().any(|r| r.error.is_some())
    }
}

/// Environment variable naming a failpoint for crash tests: `DK_FAILPOINT_APPLY_ABORT_AFTER=k`
/// aborts the process right after the k-th change ran and before its result is journaled.
pub const FAILPOINT_ENV: &str = "DK_FAILPOINT_APPLY_ABORT_AFTER";

/// Environment variable slowing apply down for crash and lock tests:
/// `DK_FAILPOINT_APPLY_DELAY_MS=n` sleeps n milliseconds before each change runs (after its
/// `pending` journal entry is written), so a test can kill `dk apply` between any two changes.
pub const DELAY_ENV: &str = "DK_FAILPOINT_APPLY_DELAY_MS";

/// Splits changes (already ordered) into waves: a change joins the first wave after every change it
/// depends on; deletes run after creates and updates, each in its own later waves.
fn waves(changes: &[Change]) -> Vec<Vec<usize>> {
    // Wave of each create/update/replace, by address.
    let mut wave_of: HashMap<&str, usize> = HashMap::new();
    // For deletes (which run in reverse dependency order): the latest wave of a delete that
    // depends on an address, by that address.
    let mut latest_dependent_delete: HashMap<&str, usize> = HashMap::new();
    let mut waves: Vec<Vec<usize>> = Vec::new();
    let mut floor = 0;
    let mut seen_delete = false;
    for (i, c) in changes.iter().enumerate() {
        let w = if c.action == Action::Delete {
            if !seen_delete {
                seen_delete = true;
                floor = waves.len();
            }
            // A delete waits for the deletes of what depends on it, which came earlier.
            let w = latest_dependent_delete
                .get(c.address.as_str())
                .map_or(floor, |&wv| floor.max(wv + 1));
            for d in c.before.iter().flat_map(|r| &r.depends_on) {
                let e = latest_dependent_delete.entry(d.as_str()).or_insert(w);
                *e = (*e).max(w);
            }
            w
        } else {
            let mut w = floor;
            for d in c.after.iter().flat_map(|r| &r.depends_on) {
                if let Some(&wv) = wave_of.get(d.as_str()) {
                    w = w.max(wv + 1);
                }
            }
            wave_of.insert(&c.address, w);
            w
        };
        while waves.len() <= w {
            waves.push(Vec::new());
        }
        waves[w].push(i);
    }
    waves.into_iter().filter(|w| !w.is_empty()).collect()
}

/// Applies `plan` with the environment locked by the caller.
pub async fn apply(
    plan: &Plan,
    backend: &Backend,
    providers: &Providers,
    opts: &ApplyOptions,
    on_event: &(dyn Fn(Event) + Sync),
) -> Result<ApplyReport, EngineError> {
    let mut doc = backend.read_or_new().await?;
    let stale =
        doc.serial != plan.serial || (plan.lineage.is_some() && plan.lineage != Some(doc.lineage));
    if stale {
        return Err(EngineError::StalePlan {
            plan_serial: plan.serial,
            state_serial: doc.serial,
        });
    }
    if plan.compute_digest() != plan.digest {
        return Err(EngineError::TamperedPlan {
            path: "(plan)".into(),
            expected: plan.digest.clone(),
            actual: plan.compute_digest(),
        });
    }
    let destructive: Vec<&Change> = plan.destructive().collect();
    if !destructive.is_empty() && !opts.allow_destructive {
        return Err(EngineError::DestructiveRefused(
            destructive.iter().map(|c| c.address.clone()).collect(),
        ));
    }
    doc.git = plan.git.clone();
    doc.manifests_digest = Some(plan.manifests_digest.clone());
    // Record what is already in sync, forget what is gone.
    for r in &plan.record {
        doc.put(resource_state(r, ResourceStatus::Ok));
    }
    for a in &plan.forget {
        doc.remove(a);
    }
    let mut report = ApplyReport {
        serial: doc.serial,
        ..ApplyReport::default()
    };
    let op = if plan.destroy { "destroy" } else { "apply" };
    if !plan.record.is_empty() || !plan.forget.is_empty() || plan.changes.is_empty() {
        doc = write(backend, &doc, op).await?;
    }
    let failpoint: Option<usize> = std::env::var(FAILPOINT_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let delay: Option<Duration> = std::env::var(DELAY_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sem = Arc::new(Semaphore::new(opts.parallelism.max(1)));
    let all_waves = waves(&plan.changes);
    for (wi, wave) in all_waves.iter().enumerate() {
        // Journal: pending before acting.
        for &i in wave {
            let c = &plan.changes[i];
            let r = c.after.as_ref().or(c.before.as_ref());
            if let Some(r) = r {
                let mut s = resource_state(r, ResourceStatus::Pending);
                if let Some(prev) = doc.get(&c.address) {
                    // Keep the last known attributes; only the status says an action is under way.
                    s.attributes = prev.attributes.clone();
                }
                doc.put(s);
            }
        }
        doc = write(backend, &doc, op).await?;
        let mut set = tokio::task::JoinSet::new();
        for &i in wave {
            let c = plan.changes[i].clone();
            let Some(p) = providers.get(&c.store).cloned() else {
                return Err(EngineError::UnknownStore(c.store.clone()));
            };
            let sem = sem.clone();
            let ran = ran.clone();
            on_event(Event::Started {
                address: c.address.clone(),
                action: c.action,
            });
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
                let t0 = Instant::now();
                let res = match crate::plan::check_view_before_apply(&p, &c).await {
                    Ok(()) => p.apply(&c).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                let n = ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if failpoint == Some(n) {
                    std::process::abort();
                }
                (i, t0.elapsed(), res.err())
            });
        }
        let mut outcomes = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(o) => {
                    // Reported as each change ends; journaled when the whole wave has ended.
                    let c = &plan.changes[o.0];
                    on_event(Event::Finished(ActionResult {
                        address: c.address.clone(),
                        action: c.action,
                        duration: o.1,
                        error: o.2.clone(),
                    }));
                    outcomes.push(o);
                }
                Err(e) => return Err(EngineError::Internal(format!("an apply task failed: {e}"))),
            }
        }
        outcomes.sort_by_key(|o| o.0);
        // Journal: results after acting (refreshed attributes for what succeeded).
        let stores: BTreeSet<&str> = outcomes
            .iter()
            .map(|(i, _, _)| plan.changes[*i].store.as_str())
            .collect();
        let mut refreshed: HashMap<String, Resource> = HashMap::new();
        for s in stores {
            let schemas: BTreeSet<String> = outcomes
                .iter()
                .filter(|(i, _, _)| plan.changes[*i].store == s)
                .filter_map(|(i, _, _)| {
                    let c = &plan.changes[*i];
                    c.after
                        .as_ref()
                        .or(c.before.as_ref())
                        .map(|r| r.spec.qualified().0.to_string())
                })
                .collect();
            if let Some(p) = providers.get(s) {
                let list: Vec<String> = schemas.into_iter().collect();
                for r in p.refresh(&list).await? {
                    refreshed.insert(r.address.clone(), r);
                }
            }
        }
        let mut failed = false;
        for (i, dur, err) in outcomes {
            let c = &plan.changes[i];
            match &err {
                None => match (c.action, refreshed.get(&c.address)) {
                    (Action::Delete, _) => {
                        doc.remove(&c.address);
                    }
                    (_, Some(r)) => {
                        let mut r = r.clone();
                        if let Some(after) = &c.after {
                            r.depends_on = after.depends_on.clone();
                        }
                        doc.put(resource_state(&r, ResourceStatus::Ok));
                    }
                    (_, None) => {
                        if let Some(s) = doc.get_mut(&c.address) {
                            s.status = ResourceStatus::Tainted;
                        }
                    }
                },
                Some(_) => {
                    failed = true;
                    if let Some(s) = doc.get_mut(&c.address) {
                        s.status = ResourceStatus::Tainted;
                    }
                }
            }
            report.results.push(ActionResult {
                address: c.address.clone(),
                action: c.action,
                duration: dur,
                error: err,
            });
        }
        doc = write(backend, &doc, op).await?;
        report.serial = doc.serial;
        if failed {
            for w in &all_waves[wi + 1..] {
                report
                    .skipped
                    .extend(w.iter().map(|&i| plan.changes[i].address.clone()));
            }
            break;
        }
    }
    report.serial = doc.serial;
    Ok(report)
}

async fn write(
    backend: &Backend,
    doc: &StateDocument,
    op: &str,
) -> Result<StateDocument, EngineError> {
    Ok(backend.write(doc, doc.serial, op).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dk_providers::model::ResourceSpec;

    fn change(addr_schema: &str, name: &str, action: Action, deps: &[&str]) -> Change {
        let spec = if name.is_empty() {
            ResourceSpec::Schema {
                name: addr_schema.into(),
            }
        } else {
            ResourceSpec::Table {
                schema: addr_schema.into(),
                name: name.into(),
                columns: vec![],
                comment: None,
            }
        };
        let r = Resource::new("wh", spec, deps.iter().map(|s| s.to_string()).collect());
        Change {
            address: r.address.clone(),
            store: "wh".into(),
            action,
            before: (action == Action::Delete).then(|| r.clone()),
            after: (action != Action::Delete).then(|| r.clone()),
            ops: vec![],
            destructive: false,
            reasons: vec![],
            impact: Default::default(),
            statements: vec![],
        }
    }

    #[test]
    fn waves_follow_dependencies() {
        let cs = vec![
            change("s", "", Action::Create, &[]),
            change("s", "a", Action::Create, &["schema.wh.s"]),
            change("s", "b", Action::Create, &["schema.wh.s"]),
            change("t", "old", Action::Delete, &["schema.wh.t"]),
            change("t", "", Action::Delete, &[]),
        ];
        assert_eq!(waves(&cs), vec![vec![0], vec![1, 2], vec![3], vec![4]]);
    }

    #[test]
    fn deletes_wait_for_the_deletes_of_their_dependents() {
        // Ordered as plan orders them: dependents first.
        let cs = vec![
            change("t", "v", Action::Delete, &["table.wh.t.a", "schema.wh.t"]),
            change("t", "a", Action::Delete, &["schema.wh.t"]),
            change("t", "b", Action::Delete, &["schema.wh.t"]),
            change("t", "", Action::Delete, &[]),
        ];
        assert_eq!(waves(&cs), vec![vec![0, 2], vec![1], vec![3]]);
    }
}
