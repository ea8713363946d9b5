//! The executor of `dk run`: runs a selection of transforms in graph order with bounded
//! parallelism, each with its timeout and retries, writes one run record per transform, calls the
//! [`AfterTransform`] hook (the data checks) after a transform's outputs are written, and skips
//! everything downstream of a failure while independent branches go on.
//!
//! Runtime dispatch is one `match` on `spec.runtime` in [`run_transform`]: `sync`/`cloudquery`
//! ([`crate::sync`]), `sql` ([`crate::sql`]), `dbt`, `python` and the container runtimes
//! ([`crate::external`]); any other runtime is
//! [`RuntimeError::UnsupportedRuntime`] naming the transform and the runtime.
//!
//! ```text
//! plan(selection) ─▶ for each ready transform (≤ parallelism at once):
//!     record `running` ─▶ runtime (timeout, retries) ─▶ hook(outputs) ─▶ record final
//!     failed ─▶ every transform downstream is `skipped` (reason names the failed one)
//! ```

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};

use chrono::Utc;
use dk_env::{ResolvedProject, ResolvedStore};
use dk_manifest::loader::ProjectModel;
use dk_manifest::model::{Kind, Manifest, Transform};
use dk_state::{RunOutput, RunRecord, RunStatus, RunStore};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;

use crate::dataplane::DataPlane;
use crate::error::{Result, RuntimeError};

/// What a runtime did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub rows_read: u64,
    pub rows_written: u64,
    pub outputs: Vec<RunOutput>,
    /// What the runtime reports beyond counts, kept in the run record's `details` (dbt's
    /// per-node results, the end of a program's output); null when nothing.
    pub details: serde_json::Value,
}

/// What runtimes see: the project, the environment, the connected data planes.
pub struct Context<'a> {
    pub model: &'a ProjectModel,
    pub env: &'a ResolvedProject,
    pub root: &'a Path,
    /// Connected planes by store name (see [`connect_planes`]).
    pub planes: &'a HashMap<String, DataPlane>,
    /// Stores that could not be connected, with the error.
    pub plane_errors: &'a HashMap<String, String>,
    /// `--full-refresh`: ignore cursors, rebuild incremental tables.
    pub full_refresh: bool,
    /// Transforms run in another process (dbt, python) hold it exclusively, in-process runtimes
    /// shared: DuckDB lets one process at a time open a file, so this process releases its
    /// DuckDB files while an external transform runs (see [`run_transform`]).
    pub exclusive: tokio::sync::RwLock<()>,
}

impl<'a> Context<'a> {
    /// The plane of a store.
    pub async fn plane(&self, store: &str) -> Result<&'a DataPlane> {
        if let Some(p) = self.planes.get(store) {
            return Ok(p);
        }
        Err(match self.plane_errors.get(store) {
            Some(e) => RuntimeError::Config(e.clone()),
            None => RuntimeError::Config(format!(
                "store {store} is not defined in environment {}",
                self.env.environment
            )),
        })
    }

    /// The resolved store.
    pub fn store(&self, store: &str) -> Result<&'a ResolvedStore> {
        self.env.stores.get(store).ok_or_else(|| {
            RuntimeError::Config(format!(
                "store {store} is not defined in environment {}",
                self.env.environment
            ))
        })
    }
}

/// Connects one data plane per store in `stores`; failures are kept per store (a transform that
/// needs a failed store fails with that message, the others run).
pub async fn connect_planes(
    env: &ResolvedProject,
    root: &Path,
    stores: &HashSet<String>,
) -> (HashMap<String, DataPlane>, HashMap<String, String>) {
    let mut planes = HashMap::new();
    let mut errors = HashMap::new();
    let mut names: Vec<&String> = stores.iter().collect();
    names.sort();
    for s in names {
        match env.stores.get(s) {
            None => {
                errors.insert(
                    s.clone(),
                    format!(
                        "store {s} is not defined in environment {}",
                        env.environment
                    ),
                );
            }
            Some(rs) => match DataPlane::connect(rs, root).await {
                Ok(p) => {
                    planes.insert(s.clone(), p);
                }
                Err(e) => {
                    errors.insert(s.clone(), e.to_string());
                }
            },
        }
    }
    (planes, errors)
}

/// What the hook gets after a transform's outputs are written.
pub struct HookContext<'a> {
    pub model: &'a ProjectModel,
    pub env: &'a ResolvedProject,
    pub transform: &'a str,
    /// The transform's output datasets.
    pub outputs: &'a [String],
    pub planes: &'a HashMap<String, DataPlane>,
}

/// What the hook reports back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookResult {
    /// Stored in the run record's `checks` field.
    pub checks: serde_json::Value,
    /// `Some(message)` when a blocking (error-severity) check failed: the transform then counts as
    /// failed and everything downstream is skipped.
    pub blocking: Option<String>,
}

/// A boxed future, for the hook.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Called by the executor after each transform whose runtime succeeded, once its outputs are
/// written and before its run record is final. The data checks implement it; `dk run` passes one
/// in. Without a hook, nothing runs after a transform.
pub trait AfterTransform: Send + Sync {
    fn after_transform<'a>(&'a self, cx: HookContext<'a>) -> BoxFuture<'a, HookResult>;
}

/// How `dk run` runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Transforms at once (≥ 1).
    pub parallelism: usize,
    pub full_refresh: bool,
    /// Digest of the manifests, recorded in run records.
    pub manifests_digest: Option<String>,
}

/// One transform's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct TransformReport {
    pub transform: String,
    pub runtime: String,
    pub status: RunStatus,
    /// The run record id (`None` for transforms skipped before starting).
    pub run_id: Option<String>,
    pub duration_ms: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub checks: serde_json::Value,
}

/// The report of one `dk run`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub invocation: String,
    pub environment: String,
    pub transforms: Vec<TransformReport>,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub duration_ms: u64,
}

/// Progress events (the CLI prints them).
#[derive(Debug, Clone)]
pub enum Event {
    Started { transform: String, attempt: u32 },
    Finished(TransformReport),
}

/// Parses a manifest duration (`30m`, `1h 30m`, `90s`).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 30s, 10m, 1h"))
}

/// Runs one transform once with its runtime (no timeout or retries: see [`execute`]).
pub async fn run_transform(
    cx: &Context<'_>,
    t: &Transform,
    previous: Option<&RunRecord>,
) -> Result<Outcome> {
    match t.spec.runtime.as_str() {
        "sync" | "cloudquery" => {
            let _shared = cx.exclusive.read().await;
            crate::sync::run(cx, t, previous).await
        }
        "sql" => {
            let _shared = cx.exclusive.read().await;
            crate::sql::run(cx, t).await
        }
        "dbt" | "python" | "generic-go" | "generic-python" => {
            let _exclusive = cx.exclusive.write().await;
            for p in cx.planes.values() {
                p.release();
            }
            crate::external::run_in(cx, t).await
        }
        other => Err(RuntimeError::UnsupportedRuntime {
            transform: t.metadata.name.clone(),
            runtime: other.to_string(),
        }),
    }
}

fn transform_of<'m>(model: &'m ProjectModel, name: &str) -> Option<&'m Transform> {
    match &model.get(Kind::Transform, name)?.manifest {
        Some(Manifest::Transform(t)) => Some(t),
        _ => None,
    }
}

/// Names of the datasets a transform reads / writes.
pub fn io_names(model: &ProjectModel, t: &Transform) -> (Vec<String>, Vec<String>) {
    let names = |refs: &[dk_manifest::model::DataSetRef]| -> Vec<String> {
        refs.iter()
            .flat_map(|r| dk_manifest::refs::names(model, r))
            .collect()
    };
    (names(&t.spec.inputs), names(&t.spec.outputs))
}

/// Runs `order` (transform names in graph order): each transform waits for the transforms of
/// `order` that produce its inputs.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    model: &ProjectModel,
    env: &ResolvedProject,
    root: &Path,
    order: &[String],
    runs: &RunStore,
    options: &RunOptions,
    hook: Option<&dyn AfterTransform>,
    on_event: &(dyn Fn(&Event) + Send + Sync),
) -> Result<RunReport> {
    let started = Instant::now();
    let invocation = dk_state::new_id(Utc::now());
    // Producers within the selection.
    let mut producer: HashMap<String, String> = HashMap::new();
    let mut stores: HashSet<String> = HashSet::new();
    for name in order {
        if let Some(t) = transform_of(model, name) {
            let (ins, outs) = io_names(model, t);
            for o in &outs {
                producer.insert(o.clone(), name.clone());
            }
            for d in ins.iter().chain(&outs) {
                if let Some((_, ds)) = model.datasets().find(|(_, ds)| &ds.metadata.name == d) {
                    stores.insert(ds.spec.store.clone());
                }
            }
        }
    }
    let mut upstream: HashMap<&str, Vec<String>> = HashMap::new();
    for name in order {
        let mut ups = Vec::new();
        if let Some(t) = transform_of(model, name) {
            for i in io_names(model, t).0 {
                if let Some(p) = producer.get(&i) {
                    if p != name && !ups.contains(p) {
                        ups.push(p.clone());
                    }
                }
            }
        }
        upstream.insert(name.as_str(), ups);
    }
    // The last successful record of every sync (its cursor), read once for the whole run.
    let syncs: Vec<String> = order
        .iter()
        .filter(|n| {
            transform_of(model, n)
                .is_some_and(|t| matches!(t.spec.runtime.as_str(), "sync" | "cloudquery"))
        })
        .cloned()
        .collect();
    let summary = runs.summary().await?;
    let previous: HashMap<String, RunRecord> = syncs
        .iter()
        .filter_map(|n| {
            summary
                .latest(n, |s| s == RunStatus::Succeeded)
                .map(|r| (n.clone(), r.clone()))
        })
        .collect();
    drop(summary);
    let (planes, plane_errors) = connect_planes(env, root, &stores).await;
    let cx = Context {
        model,
        env,
        root,
        planes: &planes,
        plane_errors: &plane_errors,
        full_refresh: options.full_refresh,
        exclusive: tokio::sync::RwLock::new(()),
    };
    let mut done: HashMap<String, RunStatus> = HashMap::new();
    let mut reports: HashMap<String, TransformReport> = HashMap::new();
    let mut pending: Vec<&String> = order.iter().collect();
    let mut running = FuturesUnordered::new();
    let parallelism = options.parallelism.max(1);
    let prev = &previous;
    let cxr = &cx;
    let inv = invocation.as_str();
    loop {
        // Start what is ready, in order, up to the parallelism.
        let mut i = 0;
        while i < pending.len() && running.len() < parallelism {
            let name = pending[i];
            let ups = &upstream[name.as_str()];
            if let Some(bad) = ups
                .iter()
                .find(|u| matches!(done.get(*u), Some(s) if *s != RunStatus::Succeeded))
            {
                let t = transform_of(model, name);
                let r = TransformReport {
                    transform: name.clone(),
                    runtime: t.map(|t| t.spec.runtime.clone()).unwrap_or_default(),
                    status: RunStatus::Skipped,
                    run_id: None,
                    duration_ms: 0,
                    rows_read: 0,
                    rows_written: 0,
                    attempts: 0,
                    error: None,
                    reason: Some(format!(
                        "upstream transform {bad} {}",
                        match done.get(bad) {
                            Some(RunStatus::Skipped) => "was skipped",
                            _ => "failed",
                        }
                    )),
                    checks: serde_json::Value::Null,
                };
                on_event(&Event::Finished(r.clone()));
                done.insert(name.clone(), RunStatus::Skipped);
                reports.insert(name.clone(), r);
                pending.remove(i);
                continue;
            }
            if ups.iter().all(|u| done.contains_key(u)) {
                pending.remove(i);
                let name = name.clone();
                running.push(async move {
                    let r = one(cxr, inv, &name, runs, prev, options, hook, on_event).await;
                    (name, r)
                });
                continue;
            }
            i += 1;
        }
        match running.next().await {
            Some((name, r)) => {
                let r = r?;
                on_event(&Event::Finished(r.clone()));
                done.insert(name.clone(), r.status);
                reports.insert(name, r);
            }
            None if pending.is_empty() => break,
            None => {
                return Err(RuntimeError::Internal(
                    "run scheduler stalled: a transform waits for one that never ran".into(),
                ))
            }
        }
    }
    let transforms: Vec<TransformReport> = order.iter().filter_map(|n| reports.remove(n)).collect();
    let count = |s: RunStatus| transforms.iter().filter(|r| r.status == s).count();
    drop(running);
    runs.seal(&invocation).await?;
    Ok(RunReport {
        invocation: invocation.clone(),
        environment: env.environment.clone(),
        succeeded: count(RunStatus::Succeeded),
        failed: count(RunStatus::Failed),
        skipped: count(RunStatus::Skipped),
        transforms,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Runs one transform with timeout, retries, the hook and its run record. Errors only when the
/// run record cannot be written (the state backend is gone).
#[allow(clippy::too_many_arguments)]
async fn one(
    cx: &Context<'_>,
    invocation: &str,
    name: &str,
    runs: &RunStore,
    previous: &HashMap<String, RunRecord>,
    options: &RunOptions,
    hook: Option<&dyn AfterTransform>,
    on_event: &(dyn Fn(&Event) + Send + Sync),
) -> Result<TransformReport> {
    let started = Instant::now();
    let mut record = RunRecord::start(
        invocation,
        name,
        &cx.env.environment,
        options.manifests_digest.as_deref(),
    );
    runs.put(&record).await?;
    let t = transform_of(cx.model, name);
    let result: Result<Outcome> = async {
        let t =
            t.ok_or_else(|| RuntimeError::Config(format!("transform {name} is not defined")))?;
        let timeout = t
            .spec
            .timeout
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|m| RuntimeError::Transform {
                transform: name.to_string(),
                message: format!("timeout: {m}"),
            })?;
        let previous = previous.get(name);
        let attempts = t.spec.retries.unwrap_or(0) + 1;
        let mut last_err = None;
        for attempt in 1..=attempts {
            record.attempts = attempt;
            on_event(&Event::Started {
                transform: name.to_string(),
                attempt,
            });
            let fut = run_transform(cx, t, previous);
            let r = match timeout {
                Some(d) => match tokio::time::timeout(d, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(RuntimeError::Timeout {
                        transform: name.to_string(),
                        timeout: t.spec.timeout.clone().unwrap_or_default(),
                    }),
                },
                None => fut.await,
            };
            match r {
                Ok(o) => return Ok(o),
                Err(e) => {
                    // Configuration problems do not get better by retrying.
                    let permanent = matches!(
                        e,
                        RuntimeError::UnsupportedRuntime { .. }
                            | RuntimeError::Config(_)
                            | RuntimeError::UnsupportedStore { .. }
                    );
                    last_err = Some(e);
                    if permanent {
                        break;
                    }
                }
            }
        }
        Err(last_err.unwrap_or_else(|| RuntimeError::Internal("no attempt ran".into())))
    }
    .await;
    let mut checks = serde_json::Value::Null;
    let mut status = RunStatus::Succeeded;
    let mut error = None;
    match result {
        Ok(o) => {
            record.rows_read = o.rows_read;
            record.rows_written = o.rows_written;
            record.outputs = o.outputs;
            record.details = o.details;
            if let (Some(h), Some(t)) = (hook, t) {
                let outputs = io_names(cx.model, t).1;
                let _shared = cx.exclusive.read().await;
                let hr = h
                    .after_transform(HookContext {
                        model: cx.model,
                        env: cx.env,
                        transform: name,
                        outputs: &outputs,
                        planes: cx.planes,
                    })
                    .await;
                checks = hr.checks;
                if let Some(m) = hr.blocking {
                    status = RunStatus::Failed;
                    error = Some(m);
                }
            }
        }
        Err(e) => {
            status = RunStatus::Failed;
            if let RuntimeError::External { details, .. } = &e {
                record.details = (**details).clone();
            }
            error = Some(e.to_string());
        }
    }
    record.status = status;
    record.error = error.clone();
    record.checks = checks.clone();
    record.ended = Some(Utc::now());
    runs.put(&record).await?;
    Ok(TransformReport {
        transform: name.to_string(),
        runtime: t.map(|t| t.spec.runtime.clone()).unwrap_or_default(),
        status,
        run_id: Some(record.id.clone()),
        duration_ms: started.elapsed().as_millis() as u64,
        rows_read: record.rows_read,
        rows_written: record.rows_written,
        attempts: record.attempts,
        error,
        reason: None,
        checks,
    })
}
