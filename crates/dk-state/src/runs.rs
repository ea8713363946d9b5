//! Run records: what `dk run` did, one record per transform run, kept in the state backend next
//! to the state documents (DESIGN §9).
//!
//! * **local**: `.dk/state/<env>/runs/<id>.json`, one file per run, written atomically (temp file,
//!   fsync, rename, directory fsync). A record is written when the run starts (status `running`)
//!   and replaced once by its final form; finished records are never changed again. Ids start
//!   with the UTC start time, so file-name order is start order.
//! * **postgres**: table `<schema>.runs (project, environment, id, transform, started, status,
//!   record jsonb)`, created when missing, one row per run, upserted the same two times (TLS as
//!   for the state tables: the url's `sslmode` / `sslrootcert`).
//!
//! A record left `running` by a process that died (kill -9, power loss) reads back as
//! [`RunStatus::Interrupted`] when its pid is gone on this host (local), so it is never mistaken
//! for a run in progress. The `cursors` of a successful run are where the next incremental run
//! of the same transform starts; `checks` is free-form JSON filled by the data checks that run
//! after the transform.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, Config};

use crate::backend::{validate_environment, validate_project, BackendConfig};
use crate::error::{Result, StateError};
use crate::local::atomic_write;
use crate::lock::{current_host, pid_alive};

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started and not finished yet.
    Running,
    /// Finished without error.
    Succeeded,
    /// Failed (after its retries), or a blocking check failed.
    Failed,
    /// Not run because something upstream failed.
    Skipped,
    /// Left `running` by a process that is gone.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

/// What a run wrote into one output dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutput {
    pub dataset: String,
    pub rows_written: u64,
    /// The highest cursor value written (text form), for the next incremental run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The run replaced or redefined the whole dataset (a view recreated, a table rebuilt, a dbt
    /// model or python output that reports no row count): it changed even when `rows_written`
    /// is 0. For runtimes that do not report writes, `rows_written` is the rows the output holds
    /// after the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebuilt: bool,
}

impl RunOutput {
    /// Whether the run changed this dataset (rows written, or rebuilt wholesale): what
    /// `on-change` triggers look for.
    pub fn changed(&self) -> bool {
        self.rows_written > 0 || self.rebuilt
    }
}

/// One transform run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// `<UTC start, %Y%m%dT%H%M%S%3fZ>-<8 hex>`: unique, sorts by start time.
    pub id: String,
    /// The `dk run` invocation this run belongs to (shared by its transforms).
    #[serde(default)]
    pub invocation: String,
    pub transform: String,
    pub environment: String,
    /// Digest of the manifests the run used.
    #[serde(default)]
    pub manifests_digest: Option<String>,
    pub started: DateTime<Utc>,
    #[serde(default)]
    pub ended: Option<DateTime<Utc>>,
    pub status: RunStatus,
    #[serde(default)]
    pub rows_read: u64,
    #[serde(default)]
    pub rows_written: u64,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub outputs: Vec<RunOutput>,
    /// Data check results (filled by the checks that run after the transform).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub checks: serde_json::Value,
    /// What the runtime reported beyond counts: dbt's per-node results, the command line and the
    /// end of an external program's stdout/stderr.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
    /// Who ran it.
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub pid: u32,
}

impl RunRecord {
    /// A new `running` record for `transform`, started now.
    pub fn start(
        invocation: &str,
        transform: &str,
        environment: &str,
        digest: Option<&str>,
    ) -> Self {
        let started = Utc::now();
        RunRecord {
            id: new_id(started),
            invocation: invocation.to_string(),
            transform: transform.to_string(),
            environment: environment.to_string(),
            manifests_digest: digest.map(str::to_string),
            started,
            ended: None,
            status: RunStatus::Running,
            rows_read: 0,
            rows_written: 0,
            attempts: 0,
            error: None,
            outputs: Vec::new(),
            checks: serde_json::Value::Null,
            details: serde_json::Value::Null,
            host: current_host(),
            pid: std::process::id(),
        }
    }

    /// Wall-clock duration (until now while running).
    pub fn duration(&self) -> chrono::Duration {
        self.ended.unwrap_or_else(Utc::now) - self.started
    }

    /// A `running` record whose process is gone (on this host) reads as interrupted.
    fn settle(mut self) -> Self {
        if self.status == RunStatus::Running && self.host == current_host() && !pid_alive(self.pid)
        {
            self.status = RunStatus::Interrupted;
        }
        self
    }
}

/// A new run (or invocation) id starting with `at`.
pub fn new_id(at: DateTime<Utc>) -> String {
    format!(
        "{}-{}",
        at.format("%Y%m%dT%H%M%S%3fZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Where run records live: the project's state backend.
#[derive(Debug)]
pub enum RunStore {
    Local { dir: PathBuf },
    Postgres(Box<PgRuns>),
}

/// Run records in PostgreSQL.
pub struct PgRuns {
    client: Client,
    table: String,
    project: String,
    environment: String,
    target: String,
}

impl std::fmt::Debug for PgRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRuns")
            .field("target", &self.target)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

fn pg_err(target: &str, action: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StateError {
    let target = target.to_string();
    move |source| StateError::Postgres {
        target,
        action,
        source,
    }
}

impl RunStore {
    /// Opens the run records of (project, environment) in the configured backend; for
    /// PostgreSQL this connects and creates the `runs` table when missing.
    pub async fn open(config: &BackendConfig, project: &str, environment: &str) -> Result<Self> {
        validate_project(project)?;
        validate_environment(environment)?;
        match config {
            BackendConfig::Local { root } => Ok(RunStore::Local {
                dir: root
                    .join(".dk")
                    .join("state")
                    .join(environment)
                    .join("runs"),
            }),
            BackendConfig::Postgres { url, schema } => {
                let (rest, sslmode, rootcert) = dk_pgtls::split_conn_string(url);
                let config: Config = rest.parse().map_err(|e: tokio_postgres::Error| {
                    StateError::InvalidConfig(format!("cannot parse the PostgreSQL url: {e}"))
                })?;
                let connector = dk_pgtls::TlsOptions::new(sslmode.as_deref(), rootcert.as_deref())
                    .and_then(|t| t.connector())
                    .map_err(|e| StateError::InvalidConfig(format!("url: {e}")))?;
                let target = format!(
                    "{}/{} schema {schema}",
                    config
                        .get_hosts()
                        .first()
                        .map(|h| format!("{h:?}"))
                        .unwrap_or_default(),
                    config.get_dbname().unwrap_or("")
                );
                let client = connector
                    .connect(&config)
                    .await
                    .map_err(pg_err(&target, "connect"))?;
                let s = schema.replace('"', "\"\"");
                let table = format!("\"{s}\".runs");
                client
                    .batch_execute(&format!(
                        "BEGIN;
                         SELECT pg_advisory_xact_lock(hashtext('dk_state.runs.ddl'));
                         CREATE SCHEMA IF NOT EXISTS \"{s}\";
                         CREATE TABLE IF NOT EXISTS {table} (
                             project     text        NOT NULL,
                             environment text        NOT NULL,
                             id          text        NOT NULL,
                             transform   text        NOT NULL,
                             started     timestamptz NOT NULL,
                             status      text        NOT NULL,
                             record      jsonb       NOT NULL,
                             PRIMARY KEY (project, environment, id)
                         );
                         CREATE INDEX IF NOT EXISTS runs_by_transform
                             ON {table} (project, environment, transform, started);
                         COMMIT;"
                    ))
                    .await
                    .map_err(pg_err(&target, "create the runs table"))?;
                Ok(RunStore::Postgres(Box::new(PgRuns {
                    client,
                    table,
                    project: project.to_string(),
                    environment: environment.to_string(),
                    target,
                })))
            }
        }
    }

    /// Writes (inserts or replaces) a record.
    pub async fn put(&self, record: &RunRecord) -> Result<()> {
        match self {
            RunStore::Local { dir } => {
                let dir = dir.clone();
                let name = format!("{}.json", record.id);
                let bytes = serde_json::to_vec_pretty(record)
                    .map_err(|e| StateError::Internal(format!("serialize run record: {e}")))?;
                tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| StateError::io("create directory", &dir, e))?;
                    atomic_write(&dir, &name, &bytes)
                })
                .await
                .map_err(|e| StateError::Internal(format!("run record task failed: {e}")))?
            }
            RunStore::Postgres(p) => {
                let json = serde_json::to_string(record)
                    .map_err(|e| StateError::Internal(format!("serialize run record: {e}")))?;
                p.client
                    .execute(
                        &format!(
                            "INSERT INTO {} (project, environment, id, transform, started, status, record) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb) \
                             ON CONFLICT (project, environment, id) DO UPDATE \
                             SET status = EXCLUDED.status, record = EXCLUDED.record",
                            p.table
                        ),
                        &[
                            &p.project,
                            &p.environment,
                            &record.id,
                            &record.transform,
                            &record.started,
                            &record.status.as_str(),
                            &json,
                        ],
                    )
                    .await
                    .map_err(pg_err(&p.target, "write a run record"))?;
                Ok(())
            }
        }
    }

    /// Every record, oldest first.
    pub async fn list(&self) -> Result<Vec<RunRecord>> {
        let mut out = match self {
            RunStore::Local { dir } => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || -> Result<Vec<RunRecord>> {
                    let entries = match std::fs::read_dir(&dir) {
                        Ok(e) => e,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                        Err(e) => return Err(StateError::io("list", &dir, e)),
                    };
                    let mut out = Vec::new();
                    for e in entries {
                        let e = e.map_err(|e| StateError::io("list", &dir, e))?;
                        let name = e.file_name().to_string_lossy().to_string();
                        if name.starts_with('.') || !name.ends_with(".json") {
                            continue;
                        }
                        let path = e.path();
                        let bytes =
                            std::fs::read(&path).map_err(|e| StateError::io("read", &path, e))?;
                        let rec: RunRecord = serde_json::from_slice(&bytes).map_err(|e| {
                            StateError::InvalidConfig(format!(
                                "run record {} is not valid: {e}; move the file away",
                                path.display()
                            ))
                        })?;
                        out.push(rec);
                    }
                    Ok(out)
                })
                .await
                .map_err(|e| StateError::Internal(format!("run record task failed: {e}")))??
            }
            RunStore::Postgres(p) => {
                let rows = p
                    .client
                    .query(
                        &format!(
                            "SELECT record::text FROM {} WHERE project = $1 AND environment = $2 ORDER BY started, id",
                            p.table
                        ),
                        &[&p.project, &p.environment],
                    )
                    .await
                    .map_err(pg_err(&p.target, "read run records"))?;
                rows.iter()
                    .map(|r| {
                        let v: String = r.get(0);
                        serde_json::from_str(&v).map_err(|e| {
                            StateError::Internal(format!("a stored run record is not valid: {e}"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?
            }
        };
        out.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
        Ok(out.into_iter().map(RunRecord::settle).collect())
    }

    /// One record by id (or unique id prefix).
    pub async fn get(&self, id: &str) -> Result<Option<RunRecord>> {
        let all = self.list().await?;
        if let Some(r) = all.iter().find(|r| r.id == id) {
            return Ok(Some(r.clone()));
        }
        let matches: Vec<&RunRecord> = all.iter().filter(|r| r.id.starts_with(id)).collect();
        match matches.len() {
            0 => Ok(None),
            1 => Ok(Some(matches[0].clone())),
            n => Err(StateError::InvalidConfig(format!(
                "run id prefix {id} matches {n} runs; give more characters"
            ))),
        }
    }

    /// The latest record with one of `statuses` of each of `transforms`, in one read: one query
    /// on PostgreSQL (by the `runs_by_transform` index), one listing of the folder locally. A run
    /// calls it once, not once per transform, so its cost does not grow with transforms × history.
    pub async fn last_of(
        &self,
        transforms: &[String],
        statuses: &[RunStatus],
    ) -> Result<std::collections::HashMap<String, RunRecord>> {
        let mut out = std::collections::HashMap::new();
        if transforms.is_empty() {
            return Ok(out);
        }
        let records = match self {
            RunStore::Local { .. } => self.list().await?,
            RunStore::Postgres(p) => {
                let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
                let rows = p
                    .client
                    .query(
                        &format!(
                            "SELECT DISTINCT ON (transform) record::text FROM {} \
                             WHERE project = $1 AND environment = $2 AND transform = ANY($3) AND status = ANY($4) \
                             ORDER BY transform, started DESC, id DESC",
                            p.table
                        ),
                        &[&p.project, &p.environment, &transforms, &statuses],
                    )
                    .await
                    .map_err(pg_err(&p.target, "read run records"))?;
                let mut v = rows
                    .iter()
                    .map(|r| {
                        let text: String = r.get(0);
                        serde_json::from_str::<RunRecord>(&text)
                            .map(RunRecord::settle)
                            .map_err(|e| {
                                StateError::Internal(format!(
                                    "a stored run record is not valid: {e}"
                                ))
                            })
                    })
                    .collect::<Result<Vec<_>>>()?;
                v.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
                v
            }
        };
        // Oldest first: later records replace earlier ones.
        for r in records {
            if transforms.contains(&r.transform) && statuses.contains(&r.status) {
                out.insert(r.transform.clone(), r);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_records_round_trip_and_dead_runs_read_as_interrupted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = RunStore::open(&BackendConfig::local(tmp.path()), "shop", "dev")
            .await
            .expect("open");
        assert!(store.list().await.expect("empty").is_empty());
        let mut a = RunRecord::start("inv", "load", "dev", Some("abc"));
        store.put(&a).await.expect("put running");
        assert_eq!(
            store.list().await.expect("list")[0].status,
            RunStatus::Running
        );
        a.status = RunStatus::Succeeded;
        a.rows_written = 10;
        a.ended = Some(Utc::now());
        a.outputs.push(RunOutput {
            dataset: "orders".into(),
            rows_written: 10,
            cursor: Some("2026-01-01T00:00:00".into()),
            rebuilt: false,
        });
        store.put(&a).await.expect("put final");
        let mut dead = RunRecord::start("inv2", "load", "dev", None);
        dead.pid = 0; // no such process
        store.put(&dead).await.expect("put dead");
        let all = store.list().await.expect("list");
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].status, RunStatus::Interrupted);
        let last = store
            .last_of(&["load".to_string()], &[RunStatus::Succeeded])
            .await
            .expect("last")
            .remove("load")
            .expect("some");
        assert_eq!(
            last.outputs[0].cursor.as_deref(),
            Some("2026-01-01T00:00:00")
        );
        assert_eq!(
            store
                .get(&a.id[..a.id.len() - 2])
                .await
                .expect("get")
                .map(|r| r.id),
            Some(a.id.clone())
        );
        // No temp files are left behind.
        let names: Vec<String> = std::fs::read_dir(tmp.path().join(".dk/state/dev/runs"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| n.ends_with(".json") && !n.starts_with('.')),
            "{names:?}"
        );
    }
}
