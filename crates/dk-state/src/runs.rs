//! Run records: what `dk run` did, one record per transform run, kept in the state backend next
//! to the state documents (DESIGN §9).
//!
//! * **local** ([`crate::runs_local`]): one append-only journal per `dk run` invocation,
//!   `.dk/state/<env>/runs/<invocation>.jsonl`, each line `fdatasync`ed before the transform
//!   goes on; finished journals are folded into `summary.json` and moved to `archive/`.
//! * **postgres**: table `<schema>.runs (project, environment, id, transform, started, status,
//!   record jsonb)` with indexes by transform and by start, created when missing, one row per
//!   run, upserted at the start and at the end of the run (TLS as for the state tables: the
//!   url's `sslmode` / `sslrootcert`).
//!
//! A record is written when the run starts (status `running`) and once more in its final form;
//! finished records are never changed again. Ids start with the UTC start time, so id order is
//! start order. A record left `running` by a process that died (kill -9, power loss) reads back
//! as [`RunStatus::Interrupted`] when its pid is gone on this host (local), so it is never
//! mistaken for a run in progress. The `cursors` of a successful run are where the next
//! incremental run of the same transform starts; `checks` is free-form JSON filled by the data
//! checks that run after the transform.
//!
//! What `dk run` and `dk run --due` need from the history — the latest record of each transform
//! per status, and when each dataset last changed — is a [`RunSummary`], read in a bounded number
//! of steps on both backends (one file plus unfinished journals; two queries), never by listing
//! every record ever written.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio_postgres::{Client, Config};

use crate::backend::{validate_environment, validate_project, BackendConfig};
use crate::error::{Result, StateError};
use crate::lock::{current_host, pid_alive};
use crate::runs_local::LocalRuns;

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    pub(crate) fn settle(mut self) -> Self {
        if self.status == RunStatus::Running && self.host == current_host() && !pid_alive(self.pid)
        {
            self.status = RunStatus::Interrupted;
        }
        self
    }
}

/// How a run id begins: its UTC start time (fixed width, so id order is start order).
pub const ID_TIME_FORMAT: &str = "%Y%m%dT%H%M%S%3fZ";

/// A new run (or invocation) id starting with `at`.
pub fn new_id(at: DateTime<Utc>) -> String {
    format!(
        "{}-{}",
        at.format(ID_TIME_FORMAT),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// What the history of run records says now: the latest record of each transform per status
/// (without `details` and `checks`, which can be large) and the latest change of each dataset.
/// Folding a record is idempotent and order-free, so a summary can be built from any mix of
/// stored summary and records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// transform → status → latest record (by start).
    #[serde(default)]
    last: BTreeMap<String, BTreeMap<RunStatus, RunRecord>>,
    /// dataset → the latest succeeded run that changed it (by end).
    #[serde(default)]
    changed: BTreeMap<String, DatasetChange>,
}

/// The latest succeeded run that changed a dataset (rows written or rebuilt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetChange {
    /// When that run ended.
    pub ended: DateTime<Utc>,
    pub transform: String,
    /// Its run record id.
    pub run: String,
}

impl RunSummary {
    /// A summary of `records`.
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a RunRecord>) -> Self {
        let mut s = RunSummary::default();
        for r in records {
            s.fold(r);
        }
        s
    }

    /// Takes `r` into account.
    pub fn fold(&mut self, r: &RunRecord) {
        let slot = self.last.entry(r.transform.clone()).or_default();
        let newer = slot
            .get(&r.status)
            .is_none_or(|old| (old.started, &old.id) <= (r.started, &r.id));
        if newer {
            let mut copy = r.clone();
            copy.details = serde_json::Value::Null;
            copy.checks = serde_json::Value::Null;
            slot.insert(r.status, copy);
        }
        if r.status != RunStatus::Succeeded {
            return;
        }
        let Some(ended) = r.ended else { return };
        for o in r.outputs.iter().filter(|o| o.changed()) {
            self.note_change(
                &o.dataset,
                DatasetChange {
                    ended,
                    transform: r.transform.clone(),
                    run: r.id.clone(),
                },
            );
        }
    }

    fn note_change(&mut self, dataset: &str, c: DatasetChange) {
        let newer = self
            .changed
            .get(dataset)
            .is_none_or(|old| (old.ended, &old.run) <= (c.ended, &c.run));
        if newer {
            self.changed.insert(dataset.to_string(), c);
        }
    }

    /// The latest record (by start) of `transform` whose status passes `status`.
    pub fn latest(
        &self,
        transform: &str,
        status: impl Fn(RunStatus) -> bool,
    ) -> Option<&RunRecord> {
        self.last
            .get(transform)?
            .iter()
            .filter(|(s, _)| status(**s))
            .map(|(_, r)| r)
            .max_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)))
    }

    /// The latest change of `dataset` by a succeeded run.
    pub fn last_change(&self, dataset: &str) -> Option<&DatasetChange> {
        self.changed.get(dataset)
    }
}

/// Which run records to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// Only runs of this transform.
    pub transform: Option<String>,
    /// Only the newest this many (all when `None`).
    pub limit: Option<usize>,
}

/// What `dk runs prune` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Records deleted (or that would be, on a dry run).
    pub removed: u64,
    /// Records older than the cut-off kept because they are the latest of their transform and
    /// status or the latest change of a dataset (PostgreSQL; the local backend keeps that in
    /// its summary instead).
    pub kept: u64,
}

/// Where run records live: the project's state backend.
#[derive(Debug)]
pub enum RunStore {
    Local(LocalRuns),
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

/// The latest run of each transform per status (by the `runs_by_transform` index), one row each
/// with `columns`.
fn latest_per_status(table: &str, columns: &str) -> String {
    format!(
        "SELECT DISTINCT ON (transform, status) {columns} FROM {table} \
         WHERE project = $1 AND environment = $2 \
         ORDER BY transform, status, started DESC, id DESC"
    )
}

/// The latest succeeded run that changed each output dataset (rows written or rebuilt, as
/// [`RunOutput::changed`] says), one row per dataset with `columns` (`o` is the output).
fn latest_changes(table: &str, columns: &str) -> String {
    format!(
        "SELECT DISTINCT ON (o->>'dataset') {columns} \
         FROM {table}, jsonb_array_elements(record->'outputs') o \
         WHERE project = $1 AND environment = $2 AND status = 'succeeded' \
           AND record->>'ended' IS NOT NULL \
           AND (COALESCE((o->>'rows_written')::numeric, 0) > 0 \
                OR COALESCE((o->>'rebuilt')::boolean, false)) \
         ORDER BY o->>'dataset', (record->>'ended')::timestamptz DESC, id DESC"
    )
}

/// A record as stored in the `record` column.
fn parse_stored(text: String) -> Result<RunRecord> {
    serde_json::from_str(&text)
        .map_err(|e| StateError::Internal(format!("a stored run record is not valid: {e}")))
}

impl PgRuns {
    /// The records of this project and environment that `rest` selects (SQL after the
    /// `WHERE project = $1 AND environment = $2`; its parameters are `$3`…).
    async fn records(
        &self,
        rest: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<RunRecord>> {
        let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            vec![&self.project, &self.environment];
        all.extend_from_slice(params);
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT record::text FROM {} WHERE project = $1 AND environment = $2 {rest}",
                    self.table
                ),
                &all,
            )
            .await
            .map_err(pg_err(&self.target, "read run records"))?;
        rows.iter().map(|r| parse_stored(r.get(0))).collect()
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
            BackendConfig::Local { root } => Ok(RunStore::Local(LocalRuns::new(
                root.join(".dk")
                    .join("state")
                    .join(environment)
                    .join("runs"),
            ))),
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
                         CREATE INDEX IF NOT EXISTS runs_by_start
                             ON {table} (project, environment, started, id);
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

    /// Writes (inserts or replaces) a record, durably (the local journal append is a short
    /// blocking write + `fdatasync`, done in place).
    pub async fn put(&self, record: &RunRecord) -> Result<()> {
        match self {
            RunStore::Local(l) => l.append(record),
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

    /// The records `q` asks for, oldest first: with a limit, the newest `limit` (by start), read
    /// without going through the whole history (a `LIMIT` on the index; locally, journals newest
    /// first until no older one can hold a newer record).
    pub async fn list(&self, q: &RunQuery) -> Result<Vec<RunRecord>> {
        let mut out = match self {
            RunStore::Local(l) => l.list(q)?,
            RunStore::Postgres(p) => {
                // By the `runs_by_transform` or `runs_by_start` index, newest first.
                let limit = q.limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
                match &q.transform {
                    Some(t) => {
                        p.records(
                            "AND transform = $3 ORDER BY started DESC, id DESC LIMIT $4",
                            &[t, &limit],
                        )
                        .await?
                    }
                    None => {
                        p.records("ORDER BY started DESC, id DESC LIMIT $3", &[&limit])
                            .await?
                    }
                }
            }
        };
        out.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
        Ok(out.into_iter().map(RunRecord::settle).collect())
    }

    /// One record by id or unique id prefix (an exact id wins over longer ids it prefixes).
    /// Bounded: the id's leading start time limits what is read.
    pub async fn get(&self, id: &str) -> Result<Option<RunRecord>> {
        let mut matches = match self {
            RunStore::Local(l) => l.find(id)?,
            RunStore::Postgres(p) => {
                p.records(
                    "AND id >= $3 AND starts_with(id, $3) ORDER BY id LIMIT 2",
                    &[&id],
                )
                .await?
            }
        };
        if let Some(i) = matches.iter().position(|r| r.id == id) {
            return Ok(Some(matches.swap_remove(i).settle()));
        }
        match matches.len() {
            0 => Ok(None),
            1 => Ok(matches.pop().map(RunRecord::settle)),
            _ => Err(StateError::InvalidConfig(format!(
                "run id prefix {id} matches more than one run; give more characters"
            ))),
        }
    }

    /// Deletes the run records that started before `before` and that nothing needs any more:
    /// what `dk run` and `--due` read (the latest record of each transform per status, the
    /// latest change of each dataset) survives — in `pruned.json` locally, as kept rows on
    /// PostgreSQL. With `dry_run`, only counts.
    pub async fn prune(&self, before: DateTime<Utc>, dry_run: bool) -> Result<PruneReport> {
        match self {
            RunStore::Local(l) => l.prune(before, dry_run),
            RunStore::Postgres(p) => {
                let t = &p.table;
                let keep = format!(
                    "({}) UNION ({})",
                    latest_per_status(t, "id"),
                    latest_changes(t, "id")
                );
                let old = "project = $1 AND environment = $2 AND started < $3";
                let sql = if dry_run {
                    format!(
                        "WITH keep AS ({keep}) \
                         SELECT count(*) FILTER (WHERE id NOT IN (SELECT id FROM keep)), \
                                count(*) FILTER (WHERE id IN (SELECT id FROM keep)) \
                         FROM {t} WHERE {old}"
                    )
                } else {
                    format!(
                        "WITH keep AS ({keep}), \
                              gone AS (DELETE FROM {t} WHERE {old} \
                                       AND id NOT IN (SELECT id FROM keep) RETURNING 1) \
                         SELECT (SELECT count(*) FROM gone), \
                                (SELECT count(*) FROM {t} WHERE {old} \
                                   AND id IN (SELECT id FROM keep))"
                    )
                };
                let row = p
                    .client
                    .query_one(&sql, &[&p.project, &p.environment, &before])
                    .await
                    .map_err(pg_err(&p.target, "prune run records"))?;
                let removed: i64 = row.get(0);
                let kept: i64 = row.get(1);
                Ok(PruneReport {
                    removed: removed.max(0) as u64,
                    kept: kept.max(0) as u64,
                })
            }
        }
    }

    /// The [`RunSummary`] of every record so far: one file plus the journals of unfinished runs
    /// locally, two queries on PostgreSQL (by the `runs_by_transform` index and one pass over
    /// the succeeded runs' outputs). `dk run` reads it once per run, `--due` once per call.
    pub async fn summary(&self) -> Result<RunSummary> {
        match self {
            RunStore::Local(l) => l.summary(),
            RunStore::Postgres(p) => {
                let rows = p
                    .client
                    .query(
                        &latest_per_status(&p.table, "(record - 'details' - 'checks')::text"),
                        &[&p.project, &p.environment],
                    )
                    .await
                    .map_err(pg_err(&p.target, "read run records"))?;
                let mut s = RunSummary::default();
                for row in &rows {
                    let r = parse_stored(row.get(0))?.settle();
                    // Changes come from the query below, over every succeeded run.
                    let slot = s.last.entry(r.transform.clone()).or_default();
                    slot.insert(r.status, r);
                }
                let rows = p
                    .client
                    .query(
                        &latest_changes(&p.table, "o->>'dataset', record->>'ended', transform, id"),
                        &[&p.project, &p.environment],
                    )
                    .await
                    .map_err(pg_err(&p.target, "read dataset changes"))?;
                for row in &rows {
                    let dataset: String = row.get(0);
                    let ended: String = row.get(1);
                    let ended: DateTime<Utc> = ended.parse().map_err(|e| {
                        StateError::Internal(format!(
                            "a stored run record has an invalid end time {ended:?}: {e}"
                        ))
                    })?;
                    s.note_change(
                        &dataset,
                        DatasetChange {
                            ended,
                            transform: row.get(2),
                            run: row.get(3),
                        },
                    );
                }
                Ok(s)
            }
        }
    }

    /// Ends the invocation `invocation`: locally its journal (and those of processes that died)
    /// is folded into the summary and archived; nothing to do on PostgreSQL.
    pub async fn seal(&self, invocation: &str) -> Result<()> {
        match self {
            RunStore::Local(l) => l.seal(invocation),
            RunStore::Postgres(_) => Ok(()),
        }
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
        assert!(store
            .list(&RunQuery::default())
            .await
            .expect("empty")
            .is_empty());
        let mut a = RunRecord::start("inv", "load", "dev", Some("abc"));
        store.put(&a).await.expect("put running");
        assert_eq!(
            store.list(&RunQuery::default()).await.expect("list")[0].status,
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
        let all = store.list(&RunQuery::default()).await.expect("list");
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].status, RunStatus::Interrupted);
        let summary = store.summary().await.expect("summary");
        let last = summary
            .latest("load", |s| s == RunStatus::Succeeded)
            .expect("some");
        assert_eq!(
            last.outputs[0].cursor.as_deref(),
            Some("2026-01-01T00:00:00")
        );
        assert_eq!(
            summary.latest("load", |_| true).map(|r| &r.id),
            Some(&dead.id)
        );
        assert_eq!(summary.last_change("orders").map(|c| &c.run), Some(&a.id));
        assert_eq!(
            store
                .get(&a.id[..a.id.len() - 2])
                .await
                .expect("get")
                .map(|r| r.id),
            Some(a.id.clone())
        );
        // One journal per invocation, nothing else (no temp files).
        let names = |dir: &str| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(tmp.path().join(dir))
                .expect("dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            names(".dk/state/dev/runs"),
            [".fold.lock", "inv.jsonl", "inv2.jsonl"]
        );
        // Sealing the first invocation archives its journal; the dead one's goes with it.
        store.seal("inv").await.expect("seal");
        assert_eq!(
            names(".dk/state/dev/runs"),
            [".fold.lock", "archive", "summary.json"]
        );
        assert_eq!(store.summary().await.expect("summary"), summary);
        assert_eq!(
            store.list(&RunQuery::default()).await.expect("list").len(),
            2
        );
    }
}
