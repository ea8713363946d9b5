//! One entry point for the runtimes that run an external program — `dbt`, `python` — and the
//! container runtimes dk does not run (`generic-go`, `generic-python`), for `dk run`'s
//! per-runtime dispatch: [`run`] returns one [`Outcome`] whatever the runtime, ready for a run
//! record (status, error, rows written, per-node results, the end of the program's output).

use dk_env::ResolvedProject;
use dk_manifest::ProjectModel;
use serde::Serialize;

use crate::dbt::{self, NodeResult};
use crate::error::{Result, RuntimeError};
use crate::process;
use crate::python;

/// The runtimes [`run`] handles.
pub const RUNTIMES: &[&str] = &["dbt", "python", "generic-go", "generic-python"];

/// What an external transform did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub runtime: String,
    /// The command line (no secrets).
    pub command: Vec<String>,
    /// The program's exit code (none when it was killed or timed out).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Why the transform failed; `None` on success.
    pub error: Option<String>,
    /// Rows written, when the program reports them (dbt on PostgreSQL does).
    pub rows_written: Option<u64>,
    /// dbt's models, tests, seeds and snapshots with their results (empty for python).
    pub nodes: Vec<NodeResult>,
    /// The end of the program's stdout and stderr.
    pub stdout: String,
    pub stderr: String,
    pub elapsed_ms: u64,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.error.is_none()
    }
}

/// Runs transform `name` if its runtime is one of [`RUNTIMES`]. `run_id` identifies the run
/// (python scripts get it); `full_refresh` rebuilds incremental dbt models and tells scripts.
/// An `Err` is a set-up problem (missing program, bad manifest); a program that ran and failed
/// is an `Ok` outcome with `error` set.
pub async fn run(
    model: &ProjectModel,
    env: &ResolvedProject,
    name: &str,
    run_id: &str,
    full_refresh: bool,
) -> Result<Outcome> {
    let (_, t) = model
        .transforms()
        .find(|(d, _)| d.name == name)
        .ok_or_else(|| RuntimeError::Config(format!("no transform named {name}")))?;
    let runtime = t.spec.runtime.clone();
    match runtime.as_str() {
        "dbt" => {
            let timeout = process::parse_timeout(name, t.spec.timeout.as_deref())?;
            let setup = dbt::prepare(model, env, name)?;
            let r = dbt::build(&setup, timeout, full_refresh).await?;
            Ok(Outcome {
                runtime,
                rows_written: r.rows_written(),
                command: r.command,
                exit_code: r.exit_code,
                timed_out: r.timed_out,
                error: r.error,
                nodes: r.nodes,
                stdout: r.stdout,
                stderr: r.stderr,
                elapsed_ms: r.elapsed_ms,
            })
        }
        "python" => {
            let r = python::run(model, env, name, run_id, full_refresh).await?;
            Ok(Outcome {
                runtime,
                command: r.command,
                exit_code: r.exit_code,
                timed_out: r.timed_out,
                error: r.error,
                rows_written: None,
                nodes: Vec::new(),
                stdout: r.stdout,
                stderr: r.stderr,
                elapsed_ms: r.elapsed_ms,
            })
        }
        "generic-go" | "generic-python" => Err(python::container_runtime_error(
            name,
            &runtime,
            process::on_path("docker").as_deref(),
        )),
        other => Err(RuntimeError::UnsupportedRuntime {
            transform: name.to_string(),
            runtime: other.to_string(),
        }),
    }
}

/// [`run`] for `dk run`'s executor: a failed program becomes [`RuntimeError::External`] (its
/// outcome kept as the run record's details); a successful one reports per output the rows dbt
/// counted, or else the rows the output holds after the run (see [`output_record`]).
pub async fn run_in(
    cx: &crate::runner::Context<'_>,
    t: &dk_manifest::model::Transform,
) -> Result<crate::runner::Outcome> {
    let name = t.metadata.name.as_str();
    let run_id = uuid::Uuid::new_v4().to_string();
    let o = run(cx.model, cx.env, name, &run_id, cx.full_refresh).await?;
    let details = serde_json::to_value(&o).unwrap_or(serde_json::Value::Null);
    if let Some(message) = o.error {
        return Err(RuntimeError::External {
            transform: name.to_string(),
            message,
            details: Box::new(details),
        });
    }
    let (_, outputs) = crate::runner::io_names(cx.model, t);
    let mut records = Vec::with_capacity(outputs.len());
    for dataset in outputs {
        records.push(output_record(cx, &o, dataset).await?);
    }
    let rows_written = o
        .rows_written
        .unwrap_or_else(|| records.iter().map(|r| r.rows_written).sum());
    Ok(crate::runner::Outcome {
        rows_read: 0,
        rows_written,
        outputs: records,
        details,
    })
}

/// What an external transform wrote into `dataset`: the rows dbt reports for the model of that
/// table where the adapter counts them (dbt-postgres); otherwise (dbt-duckdb, python scripts) the
/// rows the output holds after the run, counted in its store, and the output marked rebuilt so
/// that `on-change` triggers downstream fire. A dbt model dbt skipped wrote nothing.
async fn output_record(
    cx: &crate::runner::Context<'_>,
    o: &Outcome,
    dataset: String,
) -> Result<dk_state::RunOutput> {
    let ds = cx
        .model
        .datasets()
        .find(|(d, _)| d.name == dataset)
        .map(|(_, ds)| ds)
        .ok_or_else(|| RuntimeError::Config(format!("no dataset named {dataset}")))?;
    let table = ds
        .spec
        .table
        .as_deref()
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_string());
    let nodes: Vec<&NodeResult> = o
        .nodes
        .iter()
        .filter(|n| n.resource_type == "model" && Some(&n.name) == table.as_ref())
        .collect();
    if !nodes.is_empty()
        && nodes
            .iter()
            .all(|n| n.rows.is_some() || n.status == "skipped")
    {
        return Ok(dk_state::RunOutput {
            dataset,
            rows_written: nodes.iter().filter_map(|n| n.rows).sum(),
            cursor: None,
            rebuilt: false,
        });
    }
    let store = cx.store(&ds.spec.store)?;
    let target = crate::dataplane::Target::of_dataset(ds, store)?;
    let plane = cx.plane(&ds.spec.store).await?;
    let counted = plane.count_rows(&target).await.map_err(|e| {
        RuntimeError::Config(format!(
            "counting the rows of output {dataset} ({}) after the run: {e}",
            target.describe()
        ))
    })?;
    Ok(dk_state::RunOutput {
        dataset,
        rows_written: counted.unwrap_or(0),
        cursor: None,
        // An output the program did not create is unchanged.
        rebuilt: counted.is_some(),
    })
}
