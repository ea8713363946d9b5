//! The `python` runtime: runs a Transform's script (`spec.script`, relative to the manifest) with
//! the Python found through `DK_PYTHON`, else `python3` on `PATH`.
//!
//! The script runs in its manifest's directory with:
//!
//! * `DK_STORE_DSN_<NAME>` / `DK_STORE_TYPE_<NAME>` for every store its inputs and outputs use
//!   (see [`crate::process`]; a DuckDB DSN is the database file, a file store's is its directory);
//! * `DK_ENV` (the environment), `DK_TRANSFORM`, `DK_RUN_ID`;
//! * `DK_RUN_CONTEXT`: the path of a JSON file ([`RunContext`]) describing the transform's inputs
//!   and outputs (dataset, store, store type, table or prefix, the resolved path of file
//!   datasets, format, declared schema, and which variable holds the store's DSN), the
//!   environment and its variables. The file holds no secret; it is removed after the run;
//! * the transform's `spec.env` entries with a `value`;
//! * `spec.command` as arguments after the script.
//!
//! A non-zero exit is a failure; stdout and stderr are captured (their last 64 KiB) for the run
//! record; `spec.timeout` stops the script.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dk_env::ResolvedProject;
use dk_manifest::ProjectModel;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Result, RuntimeError};
use crate::process::{self, Exit};

/// How to get Python (part of the "not found" error).
pub const INSTALL_HINT: &str =
    "Install Python 3 (e.g. `apt-get install python3`) or set DK_PYTHON to a Python executable (a virtualenv's bin/python to use its packages).";

/// The Python executable: `DK_PYTHON`, else `python3` on `PATH`.
pub fn find_python() -> Result<PathBuf> {
    process::find_program("DK_PYTHON", "python3", INSTALL_HINT)
}

fn terr(transform: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Transform {
        transform: transform.to_string(),
        message: message.into(),
    }
}

/// A column of a dataset in the run context.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContextColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub nullable: bool,
}

/// An input or output dataset in the run context.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContextDataset {
    pub dataset: String,
    pub store: String,
    /// The store's technology (`duckdb`, `postgres`, `file`, …).
    pub store_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// For datasets in a file store: the absolute directory (store path + prefix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    pub schema: Vec<ContextColumn>,
    /// The environment variable holding the store's DSN.
    pub dsn_env: String,
}

/// The JSON document `DK_RUN_CONTEXT` points at.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunContext {
    pub transform: String,
    pub run_id: String,
    pub environment: String,
    pub tier: String,
    pub project_root: String,
    pub inputs: Vec<ContextDataset>,
    pub outputs: Vec<ContextDataset>,
    /// The environment's variables overlaid by the transform's `vars`.
    pub variables: serde_json::Map<String, Value>,
    pub full_refresh: bool,
}

/// Builds the run context of transform `name`.
pub fn run_context(
    model: &ProjectModel,
    env: &ResolvedProject,
    name: &str,
    run_id: &str,
    full_refresh: bool,
) -> Result<RunContext> {
    let (_, t) = model
        .transforms()
        .find(|(d, _)| d.name == name)
        .ok_or_else(|| RuntimeError::Config(format!("no transform named {name}")))?;
    let side = |refs: &[dk_manifest::model::DataSetRef]| -> Result<Vec<ContextDataset>> {
        let mut out = Vec::new();
        for r in refs {
            for n in dk_manifest::refs::names(model, r) {
                let (_, ds) = model
                    .datasets()
                    .find(|(d, _)| d.name == n)
                    .ok_or_else(|| terr(name, format!("dataset {n} is not defined")))?;
                let store = env.stores.get(&ds.spec.store).ok_or_else(|| {
                    terr(
                        name,
                        format!(
                            "dataset {n}: store {} is not defined in environment {}",
                            ds.spec.store, env.environment
                        ),
                    )
                })?;
                let path = if store.connector_type == "file" {
                    process::store_path(store, &model.root).map(|p| {
                        match ds.spec.prefix.as_deref().filter(|p| !p.is_empty()) {
                            Some(prefix) => p.join(prefix),
                            None => p,
                        }
                        .display()
                        .to_string()
                    })
                } else {
                    None
                };
                out.push(ContextDataset {
                    dataset: n.clone(),
                    store: ds.spec.store.clone(),
                    store_type: store.connector_type.clone(),
                    table: ds.spec.table.clone(),
                    prefix: ds.spec.prefix.clone(),
                    path,
                    format: ds.spec.format.clone(),
                    schema: ds
                        .spec
                        .schema
                        .iter()
                        .map(|c| ContextColumn {
                            name: c.name.clone(),
                            type_: c.type_.clone(),
                            nullable: c.nullable.unwrap_or(true),
                        })
                        .collect(),
                    dsn_env: format!("DK_STORE_DSN_{}", process::store_env_name(&ds.spec.store)),
                });
            }
        }
        Ok(out)
    };
    Ok(RunContext {
        transform: name.to_string(),
        run_id: run_id.to_string(),
        environment: env.environment.clone(),
        tier: env.tier.clone(),
        project_root: model.root.display().to_string(),
        inputs: side(&t.spec.inputs)?,
        outputs: side(&t.spec.outputs)?,
        variables: dk_engine::template::vars(&env.variables, &t.spec.vars),
        full_refresh,
    })
}

/// The outcome of a python transform.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptRun {
    /// The command line (interpreter, script, arguments).
    pub command: Vec<String>,
    /// The exit code; none when killed.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// The end of the script's stdout and stderr.
    pub stdout: String,
    pub stderr: String,
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ScriptRun {
    pub fn success(&self) -> bool {
        self.error.is_none()
    }
}

/// Runs python transform `name`. `run_id` is recorded in the context (and `DK_RUN_ID`).
pub async fn run(
    model: &ProjectModel,
    env: &ResolvedProject,
    name: &str,
    run_id: &str,
    full_refresh: bool,
) -> Result<ScriptRun> {
    let (doc, t) = model
        .transforms()
        .find(|(d, _)| d.name == name)
        .ok_or_else(|| RuntimeError::Config(format!("no transform named {name}")))?;
    if t.spec.runtime != "python" {
        return Err(terr(
            name,
            format!("runtime is {}, not python", t.spec.runtime),
        ));
    }
    let script_rel = t
        .spec
        .script
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            terr(
                name,
                format!(
                    "spec.script is missing: set it to the Python file to run, relative to {}",
                    doc.file
                ),
            )
        })?;
    let dir = doc.dir().to_path_buf();
    let script = dir.join(script_rel);
    if !script.is_file() {
        return Err(terr(
            name,
            format!(
                "spec.script {script_rel}: {} does not exist (the path is relative to {})",
                script.display(),
                doc.file
            ),
        ));
    }
    let timeout: Option<Duration> = process::parse_timeout(name, t.spec.timeout.as_deref())?;
    let python = find_python()?;
    let context = run_context(model, env, name, run_id, full_refresh)?;

    let mut child_env = process::store_env(
        env,
        crate::dbt::transform_stores(model, t)
            .iter()
            .map(String::as_str),
        &model.root,
    )?;
    for (i, e) in t.spec.env.iter().enumerate() {
        match (&e.value, &e.value_from) {
            (Some(v), _) => child_env.set(e.name.clone(), v.clone()),
            (None, Some(_)) => {
                return Err(terr(
                    name,
                    format!(
                        "spec.env[{i}] ({}): valueFrom is for container runtimes; the python runtime needs a `value` (use ${{VAR}} for secrets)",
                        e.name
                    ),
                ))
            }
            (None, None) => child_env.set(e.name.clone(), String::new()),
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix("dk-run-context-")
        .tempdir()
        .map_err(|e| RuntimeError::Internal(format!("cannot create a temporary directory: {e}")))?;
    let ctx_file = tmp.path().join("context.json");
    let text = serde_json::to_vec_pretty(&context)
        .map_err(|e| RuntimeError::Internal(format!("run context: {e}")))?;
    std::fs::write(&ctx_file, text)
        .map_err(|e| RuntimeError::file("cannot write", &ctx_file, e))?;
    child_env.set("DK_RUN_CONTEXT", ctx_file.display().to_string());
    child_env.set("DK_TRANSFORM", name.to_string());
    child_env.set("DK_RUN_ID", run_id.to_string());

    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(&script).args(&t.spec.command).current_dir(&dir);
    child_env.apply(&mut cmd);
    let captured = process::run_captured(cmd, &python.display().to_string(), timeout).await?;
    let error = match &captured.exit {
        Exit::Code(0) => None,
        Exit::Code(c) => Some(format!(
            "{} exited with status {c}{}",
            script_rel,
            last_line(&captured.stderr)
                .map(|l| format!(": {l}"))
                .unwrap_or_default()
        )),
        Exit::Signal => Some(format!("{script_rel} was killed by a signal")),
        Exit::TimedOut => Some(format!(
            "{script_rel} did not finish within the transform's timeout ({}) and was stopped",
            humantime::format_duration(timeout.unwrap_or_default())
        )),
    };
    let mut command = vec![python.display().to_string(), script.display().to_string()];
    command.extend(t.spec.command.iter().cloned());
    Ok(ScriptRun {
        command,
        exit_code: match captured.exit {
            Exit::Code(c) => Some(c),
            _ => None,
        },
        timed_out: captured.exit == Exit::TimedOut,
        stdout: captured.stdout,
        stderr: captured.stderr,
        elapsed_ms: u64::try_from(captured.elapsed.as_millis()).unwrap_or(u64::MAX),
        error,
    })
}

fn last_line(s: &str) -> Option<&str> {
    s.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

/// The error for the container runtimes (`generic-go`, `generic-python`): dk runs no container
/// images in this version. `docker_on_path` says whether a container engine was found.
pub fn container_runtime_error(
    transform: &str,
    runtime: &str,
    docker_on_path: Option<&Path>,
) -> RuntimeError {
    let why = match docker_on_path {
        Some(p) => format!(
            "a container engine is installed ({}), but `dk run` does not run container images yet",
            p.display()
        ),
        None => "no container engine (docker) was found on PATH, and `dk run` does not run container images in this version".to_string(),
    };
    terr(
        transform,
        format!(
            "runtime {runtime} runs a container image; {why}. Run the image with your own tooling, or port the transform to runtime python (a script run with DK_STORE_* variables) or sql"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_errors_say_what_is_missing() {
        let e = container_runtime_error("enrich", "generic-python", None).to_string();
        assert!(
            e.starts_with("transform enrich: runtime generic-python"),
            "{e}"
        );
        assert!(e.contains("no container engine (docker) was found"), "{e}");
        let e = container_runtime_error("enrich", "generic-go", Some(Path::new("/usr/bin/docker")))
            .to_string();
        assert!(
            e.contains("a container engine is installed (/usr/bin/docker)"),
            "{e}"
        );
        assert!(e.contains("does not run container images yet"), "{e}");
    }

    #[test]
    fn last_line_skips_blanks() {
        assert_eq!(last_line("a\nValueError: x\n\n"), Some("ValueError: x"));
        assert_eq!(last_line(""), None);
    }
}
