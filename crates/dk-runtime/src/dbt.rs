//! The `dbt` runtime: runs the real dbt for a Transform with `runtime: dbt`, against the
//! environment's bindings.
//!
//! * The dbt project is `spec.project` (relative to the Transform manifest; default: the
//!   manifest's directory) and must contain `dbt_project.yml`.
//! * The models are `spec.model` (a dbt selection, several words allowed), else the table names of
//!   the transform's outputs (`table: marts.daily_revenue` → model `daily_revenue`).
//! * `profiles.yml` is generated in a fresh private temporary directory (0700, the file 0600) from
//!   the resolved store of the transform's outputs — DuckDB → dbt-duckdb (`path`), PostgreSQL →
//!   dbt-postgres (`host`, `port`, `user`, `password`, `dbname`, `sslmode`) — with the output
//!   table's schema as the target schema, the environment's name as the target name, and the dbt
//!   project's `profile` name (default `dk`). The directory is removed when the run ends. It is
//!   the only place a secret is written.
//! * The child gets `DK_STORE_DSN_<NAME>` / `DK_STORE_TYPE_<NAME>` for every store of its inputs
//!   and outputs (see [`crate::process`]) and `DBT_PROFILES_DIR`, `DBT_PROJECT_DIR`,
//!   `DBT_PROFILE`, `DBT_TARGET`.
//! * [`build`] runs `dbt build --select <models> --profiles-dir <tmp> --project-dir <dir>
//!   --profile <p> --target <env>` and maps the exit status and `target/run_results.json` to one
//!   [`NodeResult`] per model, test, seed or snapshot (status, rows, message); the environment's
//!   variables and the transform's `vars` go to dbt as `--vars`. [`Setup::command`] is the same
//!   set-up for any dbt command line (`dk dbt -- ARGS`).
//!
//! dbt is found through `DK_DBT`, else `dbt` on `PATH`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use dk_env::{ResolvedProject, ResolvedStore};
use dk_manifest::model::Transform;
use dk_manifest::ProjectModel;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Result, RuntimeError};
use crate::process::{self, Captured, ChildEnv, Exit};

/// How to get dbt (part of the "not found" error).
pub const INSTALL_HINT: &str = "Install dbt with the adapters for your stores (`pip install dbt-core dbt-duckdb dbt-postgres`), or run `scripts/dbt-venv.sh` from the dk repository, which installs them into /var/tmp/dk-dbt-venv and prints the path to put in DK_DBT.";

/// The dbt executable: `DK_DBT`, else `dbt` on `PATH`.
pub fn find_dbt() -> Result<PathBuf> {
    process::find_program("DK_DBT", "dbt", INSTALL_HINT)
}

fn terr(transform: &str, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Transform {
        transform: transform.to_string(),
        message: message.into(),
    }
}

/// The dbt transform to use for `dk dbt`: the one named, else the project's only dbt transform.
pub fn pick_transform(model: &ProjectModel, name: Option<&str>) -> Result<String> {
    let dbt: Vec<&str> = model
        .transforms()
        .filter(|(_, t)| t.spec.runtime == "dbt")
        .map(|(d, _)| d.name.as_str())
        .collect();
    match name {
        Some(n) => {
            match model.transforms().find(|(d, _)| d.name == n) {
                Some((_, t)) if t.spec.runtime == "dbt" => Ok(n.to_string()),
                Some((_, t)) => Err(terr(
                    n,
                    format!(
                        "runtime is {}, not dbt: `dk dbt` runs dbt transforms only{}",
                        t.spec.runtime,
                        if dbt.is_empty() {
                            String::new()
                        } else {
                            format!(" (dbt transforms: {})", dbt.join(", "))
                        }
                    ),
                )),
                None => Err(RuntimeError::Config(format!(
                    "no transform named {n}{}",
                    if dbt.is_empty() {
                        String::new()
                    } else {
                        format!(" (dbt transforms: {})", dbt.join(", "))
                    }
                ))),
            }
        }
        None => match dbt.as_slice() {
            [one] => Ok(one.to_string()),
            [] => Err(RuntimeError::Config(
                "the project has no transform with `runtime: dbt`: add one (spec.runtime: dbt, spec.project: the dbt project directory) first".into(),
            )),
            many => Err(RuntimeError::Config(format!(
                "the project has several dbt transforms ({}): choose one with --transform NAME",
                many.join(", ")
            ))),
        },
    }
}

/// Everything a dbt invocation for one transform needs. Dropping it removes the generated
/// profile.
pub struct Setup {
    pub transform: String,
    pub dbt: PathBuf,
    pub project_dir: PathBuf,
    pub profile: String,
    pub target: String,
    /// The dbt selection (`--select`).
    pub select: Vec<String>,
    /// The store the models are built in.
    pub output_store: String,
    /// The target schema.
    pub schema: String,
    /// dbt `--vars`: the environment's variables overlaid by the transform's `vars`.
    pub vars: serde_json::Map<String, Value>,
    pub env: ChildEnv,
    profiles: tempfile::TempDir,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("transform", &self.transform)
            .field("dbt", &self.dbt)
            .field("project_dir", &self.project_dir)
            .field("profile", &self.profile)
            .field("target", &self.target)
            .field("select", &self.select)
            .field("output_store", &self.output_store)
            .field("schema", &self.schema)
            .field("vars", &self.vars)
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

impl Setup {
    /// The directory holding the generated `profiles.yml`.
    pub fn profiles_dir(&self) -> &Path {
        self.profiles.path()
    }

    /// A std command running dbt with `args` in the project directory, with the profile and the
    /// store variables set (for `dk dbt -- ARGS`, attached to the terminal).
    pub fn command(&self, args: &[String]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.dbt);
        cmd.args(args).current_dir(&self.project_dir);
        self.env.apply_std(&mut cmd);
        cmd
    }

    /// The `dbt build` arguments of this transform.
    pub fn build_args(&self, full_refresh: bool) -> Vec<String> {
        let mut a = vec!["build".to_string(), "--select".to_string()];
        a.extend(self.select.iter().cloned());
        for (flag, v) in [
            ("--profiles-dir", self.profiles_dir().display().to_string()),
            ("--project-dir", self.project_dir.display().to_string()),
            ("--profile", self.profile.clone()),
            ("--target", self.target.clone()),
        ] {
            a.push(flag.to_string());
            a.push(v);
        }
        if !self.vars.is_empty() {
            a.push("--vars".into());
            a.push(Value::Object(self.vars.clone()).to_string());
        }
        if full_refresh {
            a.push("--full-refresh".into());
        }
        a
    }
}

fn dataset<'m>(model: &'m ProjectModel, name: &str) -> Option<&'m dk_manifest::model::DataSet> {
    model
        .datasets()
        .find(|(d, _)| d.name == name)
        .map(|(_, ds)| ds)
}

/// The stores a transform reads and writes, in first-use order.
pub fn transform_stores(model: &ProjectModel, t: &Transform) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in t.spec.inputs.iter().chain(&t.spec.outputs) {
        for n in dk_manifest::refs::names(model, r) {
            if let Some(ds) = dataset(model, &n) {
                if !ds.spec.store.is_empty() && !out.contains(&ds.spec.store) {
                    out.push(ds.spec.store.clone());
                }
            }
        }
    }
    out
}

/// The dbt profile `outputs.<target>` entry for a store. Secrets are in the returned value: write
/// it only to the private profile file.
pub fn profile_output(store: &ResolvedStore, schema: &str, project_root: &Path) -> Result<Value> {
    let cfg_err =
        |message: String| RuntimeError::Config(format!("store {}: {message}", store.name));
    match store.connector_type.as_str() {
        "duckdb" => {
            let path = process::store_path(store, project_root).ok_or_else(|| {
                cfg_err("connection.path is missing: set it to the DuckDB file".into())
            })?;
            let mut out = json!({
                "type": "duckdb",
                "path": path.display().to_string(),
                "schema": schema,
                "threads": 4,
            });
            // The store's DuckDB options (`threads`, `memory_limit`, `settings`) as dbt-duckdb's.
            let mut settings = serde_json::Map::new();
            for (k, v) in dk_providers::duckdb_settings(store)
                .map_err(|e| RuntimeError::Config(e.to_string()))?
            {
                if k == "threads" {
                    if let Ok(n) = v.parse::<u64>() {
                        out["threads"] = json!(n);
                    }
                } else {
                    settings.insert(k, json!(v));
                }
            }
            if !settings.is_empty() {
                out["settings"] = Value::Object(settings);
            }
            Ok(out)
        }
        "postgres" | "postgresql" => {
            let cfg = dk_providers::postgres::config_for(store)?;
            let host = cfg
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(s) => s.clone(),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = cfg.get_ports().first().copied().unwrap_or(5432);
            let password = cfg
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            let dbname = cfg
                .get_dbname()
                .map(str::to_string)
                .or_else(|| cfg.get_user().map(str::to_string))
                .unwrap_or_default();
            let mut out = json!({
                "type": "postgres",
                "host": host,
                "port": port,
                "user": cfg.get_user().unwrap_or_default(),
                "password": password,
                "dbname": dbname,
                "schema": schema,
                "threads": 4,
            });
            if let Some(mode) = store.connection.get("sslmode").and_then(Value::as_str) {
                out["sslmode"] = json!(mode);
            }
            Ok(out)
        }
        other => Err(cfg_err(format!(
            "dk can generate dbt profiles for duckdb and postgres stores, not \"{other}\": bind the store to one of those in this environment, or run dbt yourself with your own profiles.yml"
        ))),
    }
}

/// The `profile` name in `dbt_project.yml`, when it has one.
fn project_profile(project_dir: &Path, transform: &str) -> Result<Option<String>> {
    let file = project_dir.join("dbt_project.yml");
    let text = std::fs::read_to_string(&file).map_err(|e| {
        terr(
            transform,
            format!(
                "cannot read {} ({e}): spec.project must be the directory of a dbt project (the one with dbt_project.yml)",
                file.display()
            ),
        )
    })?;
    let docs = dk_manifest::yaml::parse(&text)
        .map_err(|e| terr(transform, format!("{}: {}", file.display(), e.message)))?;
    Ok(docs
        .first()
        .and_then(|d| d.value.get("profile"))
        .and_then(Value::as_str)
        .map(str::to_string))
}

/// Prepares a dbt invocation for transform `name` in environment `env`: finds dbt, checks the
/// project, writes the private `profiles.yml` and computes the child's environment.
pub fn prepare(model: &ProjectModel, env: &ResolvedProject, name: &str) -> Result<Setup> {
    let (doc, t) = model
        .transforms()
        .find(|(d, _)| d.name == name)
        .ok_or_else(|| RuntimeError::Config(format!("no transform named {name}")))?;
    if t.spec.runtime != "dbt" {
        return Err(terr(
            name,
            format!("runtime is {}, not dbt", t.spec.runtime),
        ));
    }
    let project_dir = match t.spec.project.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => doc.dir().join(p),
        None => doc.dir().to_path_buf(),
    };
    let project_dir = std::fs::canonicalize(&project_dir).map_err(|e| {
        terr(
            name,
            format!(
                "dbt project directory {} is not readable ({e}): set spec.project to the directory holding dbt_project.yml, relative to {}",
                project_dir.display(),
                doc.file
            ),
        )
    })?;
    let profile = project_profile(&project_dir, name)?.unwrap_or_else(|| "dk".to_string());

    // The store and schema the models are built in: the outputs'.
    let mut output_store: Option<String> = None;
    let mut schema: Option<String> = None;
    let mut models: Vec<String> = Vec::new();
    for r in &t.spec.outputs {
        for n in dk_manifest::refs::names(model, r) {
            let ds = dataset(model, &n)
                .ok_or_else(|| terr(name, format!("output {n} is not a defined DataSet")))?;
            match &output_store {
                Some(s) if *s != ds.spec.store => {
                    return Err(terr(
                        name,
                        format!(
                            "outputs are in two stores ({s} and {}): a dbt transform builds into one store (one dbt target); split it into one transform per store",
                            ds.spec.store
                        ),
                    ))
                }
                _ => output_store = Some(ds.spec.store.clone()),
            }
            if let Some(table) = &ds.spec.table {
                let ctype = env
                    .stores
                    .get(&ds.spec.store)
                    .map(|s| s.connector_type.as_str())
                    .unwrap_or("");
                let (s, tname) = dk_engine::compile::split_table(table, ctype);
                schema.get_or_insert(s);
                models.push(tname);
            }
        }
    }
    let Some(output_store) = output_store else {
        return Err(terr(
            name,
            "has no outputs: list the DataSets the dbt models build in spec.outputs",
        ));
    };
    let store = env.stores.get(&output_store).ok_or_else(|| {
        terr(
            name,
            format!(
                "output store {output_store} is not defined in environment {}",
                env.environment
            ),
        )
    })?;
    let schema =
        schema.unwrap_or_else(|| dk_engine::compile::split_table("x", &store.connector_type).0);
    let select: Vec<String> = match t.spec.model.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.split_whitespace().map(str::to_string).collect(),
        _ => models,
    };
    if select.is_empty() {
        return Err(terr(
            name,
            "nothing to select: set spec.model to the dbt models to build, or give the outputs a `table`",
        ));
    }
    let output = profile_output(store, &schema, &model.root)?;
    let dbt = find_dbt()?;

    let profiles = tempfile::Builder::new()
        .prefix("dk-dbt-profile-")
        .tempdir()
        .map_err(|e| RuntimeError::Internal(format!("cannot create a temporary directory: {e}")))?;
    let target = env.environment.clone();
    let doc = json!({
        profile.clone(): {"target": target, "outputs": {target.clone(): output}},
    });
    write_private(&profiles.path().join("profiles.yml"), &doc)?;

    let mut child_env = process::store_env(
        env,
        transform_stores(model, t).iter().map(String::as_str),
        &model.root,
    )?;
    child_env.set("DBT_PROFILES_DIR", profiles.path().display().to_string());
    child_env.set("DBT_PROJECT_DIR", project_dir.display().to_string());
    child_env.set("DBT_PROFILE", profile.clone());
    child_env.set("DBT_TARGET", target.clone());
    Ok(Setup {
        transform: name.to_string(),
        dbt,
        project_dir,
        profile,
        target,
        select,
        output_store,
        schema,
        vars: dk_engine::template::vars(&env.variables, &t.spec.vars),
        env: child_env,
        profiles,
    })
}

/// Writes `value` (JSON, which YAML readers accept) to a new file only its owner can read.
fn write_private(path: &Path, value: &Value) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| RuntimeError::Internal(format!("profiles.yml: {e}")))?;
    let mut f = o
        .open(path)
        .map_err(|e| RuntimeError::file("cannot write", path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| RuntimeError::file("cannot write", path, e))
}

/// One dbt node's result from `run_results.json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeResult {
    /// `model.shop.daily_revenue`, `test.shop.not_null_…`.
    pub unique_id: String,
    /// model, test, seed, snapshot, …
    pub resource_type: String,
    /// The node's name (the unique id's third part).
    pub name: String,
    /// dbt's status: success, error, skipped (models, seeds); pass, fail, warn, error (tests).
    pub status: String,
    /// Rows affected, when the adapter reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Failing rows of a test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Seconds.
    pub execution_time: f64,
    /// The relation built (`"db"."schema"."name"`), for models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
}

impl NodeResult {
    /// A node that failed (an error, a failing test).
    pub fn failed(&self) -> bool {
        matches!(self.status.as_str(), "error" | "fail" | "runtime error")
    }
}

/// Reads dbt's `run_results.json` into node results.
pub fn parse_run_results(text: &str) -> std::result::Result<Vec<NodeResult>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let results = v
        .get("results")
        .and_then(Value::as_array)
        .ok_or("no `results` array")?;
    Ok(results
        .iter()
        .map(|r| {
            let unique_id = r
                .get("unique_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let resource_type = unique_id.split('.').next().unwrap_or("").to_string();
            // `model.<project>.<name>`, `test.<project>.<name>.<hash>`.
            let name = unique_id.split('.').nth(2).unwrap_or("").to_string();
            // A test's `rows_affected` counts its own query's rows, not data written.
            let rows = r
                .pointer("/adapter_response/rows_affected")
                .and_then(Value::as_i64)
                .and_then(|n| u64::try_from(n).ok())
                .filter(|_| resource_type != "test");
            NodeResult {
                resource_type,
                name,
                status: r
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                rows,
                failures: r.get("failures").and_then(Value::as_u64),
                message: r
                    .get("message")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string),
                execution_time: r
                    .get("execution_time")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
                relation: r
                    .get("relation_name")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                unique_id,
            }
        })
        .collect())
}

/// The outcome of `dbt build` for one transform.
#[derive(Debug, Clone, Serialize)]
pub struct DbtRun {
    /// The command line (no secrets: the profile is a file).
    pub command: Vec<String>,
    /// dbt's exit code (0 success, 1 a node failed, 2 dbt itself failed); none when killed.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub nodes: Vec<NodeResult>,
    /// The end of dbt's stdout and stderr.
    pub stdout: String,
    pub stderr: String,
    pub elapsed_ms: u64,
    /// What went wrong, when something did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DbtRun {
    pub fn success(&self) -> bool {
        self.error.is_none()
    }

    /// Rows written by the models (those whose adapter reports rows).
    pub fn rows_written(&self) -> Option<u64> {
        let rows: Vec<u64> = self
            .nodes
            .iter()
            .filter(|n| n.resource_type == "model")
            .filter_map(|n| n.rows)
            .collect();
        (!rows.is_empty()).then(|| rows.iter().sum())
    }
}

/// A multi-line message on one line (whitespace runs collapsed), at most `max` characters.
fn one_line(m: &str, max: usize) -> String {
    let s = m.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One lock per dbt project directory: dbt is not safe to run twice at once in one project
/// (both write `target/`, including `run_results.json`), so runs of one project take turns.
fn project_lock(dir: &Path) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::OnceLock<
        std::sync::Mutex<
            std::collections::HashMap<PathBuf, std::sync::Arc<tokio::sync::Mutex<()>>>,
        >,
    > = std::sync::OnceLock::new();
    let map = LOCKS.get_or_init(Default::default);
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    m.entry(dir.to_path_buf()).or_default().clone()
}

/// Runs `dbt build` for the transform set up in `setup`, within `timeout`. Builds of one dbt
/// project take turns (see [`project_lock`]).
pub async fn build(setup: &Setup, timeout: Option<Duration>, full_refresh: bool) -> Result<DbtRun> {
    let lock = project_lock(&setup.project_dir);
    let _turn = lock.lock().await;
    let args = setup.build_args(full_refresh);
    let results_file = setup.project_dir.join("target").join("run_results.json");
    let started = SystemTime::now();
    let mut cmd = tokio::process::Command::new(&setup.dbt);
    cmd.args(&args).current_dir(&setup.project_dir);
    setup.env.apply(&mut cmd);
    let captured: Captured = process::run_captured(cmd, "dbt", timeout).await?;
    let fresh = std::fs::metadata(&results_file)
        .and_then(|m| m.modified())
        .map(|m| m >= started)
        .unwrap_or(false);
    let (nodes, results_problem) = if fresh {
        match std::fs::read_to_string(&results_file)
            .map_err(|e| e.to_string())
            .and_then(|t| parse_run_results(&t))
        {
            Ok(n) => (n, None),
            Err(e) => (
                Vec::new(),
                Some(format!("cannot read {}: {e}", results_file.display())),
            ),
        }
    } else {
        (Vec::new(), None)
    };
    let failed: Vec<String> = nodes
        .iter()
        .filter(|n| n.failed())
        .map(|n| {
            format!(
                "{} {} {}{}",
                n.resource_type,
                n.name,
                n.status,
                n.message
                    .as_deref()
                    .map(|m| format!(": {}", one_line(m, 400)))
                    .unwrap_or_default()
            )
        })
        .collect();
    let error = match &captured.exit {
        Exit::Code(0) if failed.is_empty() => None,
        Exit::Code(0) => Some(failed.join("; ")),
        Exit::TimedOut => Some(format!(
            "dbt did not finish within the transform's timeout ({}) and was stopped",
            humantime::format_duration(timeout.unwrap_or_default())
        )),
        Exit::Signal => Some("dbt was killed by a signal".to_string()),
        Exit::Code(c) => Some(if !failed.is_empty() {
            format!("dbt build failed (exit {c}): {}", failed.join("; "))
        } else {
            let tail = last_lines(&captured.stdout, 8);
            let err = last_lines(&captured.stderr, 8);
            format!(
                "dbt build failed (exit {c}){}{}{}",
                results_problem
                    .as_deref()
                    .map(|p| format!("; {p}"))
                    .unwrap_or_default(),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(":\n{tail}")
                },
                if err.is_empty() {
                    String::new()
                } else {
                    format!("\n{err}")
                }
            )
        }),
    };
    let mut command = vec![setup.dbt.display().to_string()];
    command.extend(args);
    Ok(DbtRun {
        command,
        exit_code: match captured.exit {
            Exit::Code(c) => Some(c),
            _ => None,
        },
        timed_out: captured.exit == Exit::TimedOut,
        nodes,
        stdout: captured.stdout,
        stderr: captured.stderr,
        elapsed_ms: u64::try_from(captured.elapsed.as_millis()).unwrap_or(u64::MAX),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_results_map_to_nodes() {
        let text = r#"{"metadata": {"dbt_version": "1.12.6"}, "results": [
          {"status": "success", "execution_time": 0.12, "message": "SELECT 3", "failures": null,
           "adapter_response": {"_message": "SELECT 3", "code": "SELECT", "rows_affected": 3},
           "unique_id": "model.shop.daily_revenue", "relation_name": "\"db\".\"public\".\"daily_revenue\""},
          {"status": "fail", "execution_time": 0.01, "message": "Got 2 results, configured to fail if != 0",
           "failures": 2, "adapter_response": {}, "unique_id": "test.shop.unique_daily_revenue_day.1a2b"},
          {"status": "skipped", "execution_time": 0, "message": null, "failures": null,
           "adapter_response": {}, "unique_id": "model.shop.after"}
        ]}"#;
        let nodes = parse_run_results(text).unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].name, "daily_revenue");
        assert_eq!(nodes[0].resource_type, "model");
        assert_eq!(nodes[0].rows, Some(3));
        assert!(!nodes[0].failed());
        assert_eq!(nodes[1].resource_type, "test");
        assert_eq!(nodes[1].failures, Some(2));
        assert!(nodes[1].failed());
        assert_eq!(nodes[2].status, "skipped");
        assert!(parse_run_results("{}").is_err());
    }

    #[test]
    fn duckdb_profile_carries_the_store_settings() {
        let connection: indexmap::IndexMap<String, Value> = serde_json::from_value(json!({
            "path": "wh.duckdb", "threads": 2, "memory_limit": "1GB",
            "settings": {"preserve_insertion_order": false}
        }))
        .unwrap();
        let store = ResolvedStore {
            name: "wh".into(),
            connector: None,
            connector_type: "duckdb".into(),
            connection,
            secrets: indexmap::IndexMap::new(),
            bound: false,
            file: std::sync::Arc::from("store/wh.yaml"),
        };
        let out = profile_output(&store, "main", Path::new("/p")).unwrap();
        assert_eq!(out["threads"], 2);
        assert_eq!(
            out["settings"],
            json!({"memory_limit": "1GB", "preserve_insertion_order": "false"})
        );
        assert_eq!(out["path"], "/p/wh.duckdb");
    }
}
