//! The PostgreSQL backend: two tables in one schema (default `dk_state`), created when missing.
//!
//! * `states (project, environment, serial, lineage, operation, document jsonb, created)`,
//!   primary key `(project, environment, serial)`: one row per serial, never updated. A write is
//!   one transaction that checks the current maximum serial (compare-and-swap) and inserts the
//!   next row; two racing writers collide on the primary key and the loser gets
//!   [`StateError::Stale`].
//! * `locks (project, environment, id, operation, who, host, pid, backend_pid, lock_key,
//!   created, expires)`, primary key `(project, environment)`: the holder row.
//!
//! The lock itself is a session advisory lock (`pg_try_advisory_lock`) taken on one dedicated
//! connection that the [`PgLockGuard`] owns for the whole operation; a heartbeat task on that
//! connection renews the row's lease (`expires`). When the holder dies its connection closes and
//! the server releases the advisory lock; the stale holder row is then overwritten by the next
//! locker (or removed by `list_locks`).
//!
//! TLS follows the URL's `sslmode` (and `sslrootcert`) with libpq's meaning, through `dk-pgtls`:
//! `disable`, `allow`, `prefer` (the default), `require`, `verify-ca`, `verify-full`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use dk_pgtls::PgConnector;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, Row};

use crate::backend::{prepare_write, validate_environment, validate_project, HistoryEntry};
use crate::document::StateDocument;
use crate::error::{Result, StateError};
use crate::git::GitInfo;
use crate::lock::LockInfo;

/// Lease of a holder row; renewed every [`HEARTBEAT`].
pub const LEASE: Duration = Duration::from_secs(30);
/// How often a lock holder renews its lease.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// State kept in PostgreSQL. Holds one connection for reads and writes; each lock opens its own.
#[derive(Debug)]
pub struct PgBackend {
    config: Config,
    connector: PgConnector,
    target: String,
    schema: String,
    project: String,
    environment: String,
    client: tokio::sync::Mutex<Client>,
    lease: Duration,
    heartbeat: Duration,
}

impl PgBackend {
    /// Connects and creates the schema and tables when missing. `url` is a libpq connection
    /// string (`host=… dbname=…`) or a `postgresql://` URL.
    pub async fn open(url: &str, schema: &str, project: &str, environment: &str) -> Result<Self> {
        validate_project(project)?;
        validate_environment(environment)?;
        validate_schema(schema)?;
        let (rest, sslmode, rootcert) = dk_pgtls::split_conn_string(url);
        let mut config: Config = rest.parse().map_err(|e: tokio_postgres::Error| {
            StateError::InvalidConfig(format!("cannot parse the PostgreSQL url: {e}"))
        })?;
        let connector = dk_pgtls::TlsOptions::new(sslmode.as_deref(), rootcert.as_deref())
            .and_then(|t| t.connector())
            .map_err(|e| StateError::InvalidConfig(format!("url: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("dk-state");
        }
        let target = describe(&config, schema);
        let client = connect(&connector, &config, &target).await?;
        let backend = PgBackend {
            config,
            connector,
            target,
            schema: schema.to_string(),
            project: project.to_string(),
            environment: environment.to_string(),
            client: tokio::sync::Mutex::new(client),
            lease: LEASE,
            heartbeat: HEARTBEAT,
        };
        backend.ensure_schema().await?;
        Ok(backend)
    }

    /// Changes the lease of holder rows written by later [`lock`](Self::lock) calls and how
    /// often it is renewed (defaults [`LEASE`] and [`HEARTBEAT`]). The heartbeat is clamped to
    /// at most a third of the lease.
    pub fn set_lease(&mut self, lease: Duration, heartbeat: Duration) {
        self.lease = lease.max(Duration::from_secs(1));
        self.heartbeat = heartbeat.clamp(Duration::from_millis(100), self.lease / 3);
    }

    /// Project name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Environment name.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// `user@host:port/dbname schema S` (never the password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Schema of the state tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn states(&self) -> String {
        format!("\"{}\".states", self.schema)
    }

    fn locks(&self) -> String {
        format!("\"{}\".locks", self.schema)
    }

    /// The connection, the schema and an error mapper, for the record tables kept beside the
    /// states (`test_results.rs`).
    #[allow(clippy::type_complexity)]
    pub(crate) fn record_parts(
        &self,
    ) -> (
        &tokio::sync::Mutex<Client>,
        &str,
        impl Fn(&'static str) -> Box<dyn FnOnce(tokio_postgres::Error) -> StateError + Send>,
    ) {
        let target = self.target.clone();
        (&self.client, &self.schema, move |action: &'static str| -> Box<dyn FnOnce(tokio_postgres::Error) -> StateError + Send> {
            let target = target.clone();
            Box::new(move |source| StateError::Postgres {
                target,
                action,
                source,
            })
        })
    }

    /// The shared connection (the governance records of `audit.rs` use it too).
    pub(crate) fn client(&self) -> &tokio::sync::Mutex<Client> {
        &self.client
    }

    pub(crate) fn pg_err(
        &self,
        action: &'static str,
    ) -> impl FnOnce(tokio_postgres::Error) -> StateError {
        let target = self.target.clone();
        move |source| StateError::Postgres {
            target,
            action,
            source,
        }
    }

    async fn ensure_schema(&self) -> Result<()> {
        let client = self.client.lock().await;
        let exists: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
                &[&self.states(), &self.locks()],
            )
            .await
            .map_err(self.pg_err("look up the state tables"))?
            .get(0);
        if exists {
            return Ok(());
        }
        let s = &self.schema;
        // Serialise concurrent creators: CREATE ... IF NOT EXISTS races on the catalog.
        let ddl = format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock({ddl_key});
             CREATE SCHEMA IF NOT EXISTS \"{s}\";
             CREATE TABLE IF NOT EXISTS \"{s}\".states (
                 project     text        NOT NULL,
                 environment text        NOT NULL,
                 serial      bigint      NOT NULL CHECK (serial > 0),
                 lineage     text        NOT NULL,
                 operation   text        NOT NULL DEFAULT '',
                 document    jsonb       NOT NULL,
                 created     timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (project, environment, serial)
             );
             CREATE TABLE IF NOT EXISTS \"{s}\".locks (
                 project     text        NOT NULL,
                 environment text        NOT NULL,
                 id          text        NOT NULL UNIQUE,
                 operation   text        NOT NULL,
                 who         text        NOT NULL,
                 host        text        NOT NULL,
                 pid         bigint      NOT NULL,
                 backend_pid integer     NOT NULL,
                 lock_key    bigint      NOT NULL,
                 created     timestamptz NOT NULL,
                 expires     timestamptz NOT NULL,
                 PRIMARY KEY (project, environment)
             );
             COMMIT;",
            ddl_key = key_of(&["ddl", s])
        );
        if let Err(e) = client.batch_execute(&ddl).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(self.pg_err("create the state schema and tables")(e));
        }
        Ok(())
    }

    /// The latest document, `None` when the environment has no state yet.
    pub async fn read_latest(&self) -> Result<Option<StateDocument>> {
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                &format!(
                    "SELECT serial, document::text FROM {} WHERE project = $1 AND environment = $2 ORDER BY serial DESC LIMIT 1",
                    self.states()
                ),
                &[&self.project, &self.environment],
            )
            .await
            .map_err(self.pg_err("read the latest state"))?;
        row.map(|r| self.parse_row(&r)).transpose()
    }

    fn parse_row(&self, row: &Row) -> Result<StateDocument> {
        let serial: i64 = row.get(0);
        let text: String = row.get(1);
        StateDocument::from_json(
            &text,
            &format!(
                "{} ({} project {} environment {} serial {serial})",
                self.target,
                self.states(),
                self.project,
                self.environment
            ),
        )
    }

    async fn latest_serial(&self, client: &Client) -> Result<u64> {
        let max: Option<i64> = client
            .query_one(
                &format!(
                    "SELECT max(serial) FROM {} WHERE project = $1 AND environment = $2",
                    self.states()
                ),
                &[&self.project, &self.environment],
            )
            .await
            .map_err(self.pg_err("read the latest serial"))?
            .get(0);
        Ok(max.map_or(0, |m| u64::try_from(m).unwrap_or(0)))
    }

    /// The document of one kept serial.
    pub async fn read_serial(&self, serial: u64) -> Result<StateDocument> {
        let client = self.client.lock().await;
        let row = match i64::try_from(serial) {
            Ok(s) => client
                .query_opt(
                    &format!(
                        "SELECT serial, document::text FROM {} WHERE project = $1 AND environment = $2 AND serial = $3",
                        self.states()
                    ),
                    &[&self.project, &self.environment, &s],
                )
                .await
                .map_err(self.pg_err("read a state serial"))?,
            Err(_) => None,
        };
        match row {
            Some(r) => self.parse_row(&r),
            None => {
                let latest = self.latest_serial(&client).await?;
                Err(StateError::SerialNotFound {
                    environment: self.environment.clone(),
                    serial,
                    available: if latest == 0 {
                        "no state yet".to_string()
                    } else {
                        format!("latest is {latest}")
                    },
                })
            }
        }
    }

    /// Every kept serial, oldest first.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>> {
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "SELECT serial, lineage, created, (document->'git')::text, document->>'manifests_digest', operation,
                            COALESCE(jsonb_array_length(document->'resources'), 0)
                     FROM {} WHERE project = $1 AND environment = $2 ORDER BY serial",
                    self.states()
                ),
                &[&self.project, &self.environment],
            )
            .await
            .map_err(self.pg_err("read the state history"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let serial: i64 = row.get(0);
            let location = || {
                format!(
                    "{} ({} project {} environment {} serial {serial})",
                    self.target,
                    self.states(),
                    self.project,
                    self.environment
                )
            };
            let lineage: String = row.get(1);
            let git: Option<String> = row.get(3);
            let git: Option<GitInfo> = match git {
                Some(g) => serde_json::from_str(&g).map_err(|source| StateError::Corrupt {
                    location: location(),
                    source,
                })?,
                None => None,
            };
            let resources: i32 = row.get(6);
            out.push(HistoryEntry {
                serial: u64::try_from(serial).unwrap_or(0),
                lineage: lineage.parse().map_err(|e| {
                    StateError::Internal(format!("bad lineage {lineage:?} at {}: {e}", location()))
                })?,
                created: row.get(2),
                git,
                manifests_digest: row.get(4),
                operation: row.get(5),
                resources: usize::try_from(resources).unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Compare-and-swap write in one transaction (see the module doc).
    pub async fn write(
        &self,
        doc: &StateDocument,
        expected_serial: u64,
        operation: &str,
    ) -> Result<StateDocument> {
        self.write_with(doc, expected_serial, operation, false)
            .await
    }

    /// [`write`](Self::write), optionally accepting a document of another lineage than the stored
    /// one (`dk state push --force`).
    pub(crate) async fn write_with(
        &self,
        doc: &StateDocument,
        expected_serial: u64,
        operation: &str,
        allow_new_lineage: bool,
    ) -> Result<StateDocument> {
        let new = prepare_write(
            doc,
            expected_serial,
            operation,
            &self.project,
            &self.environment,
        )?;
        let serial = i64::try_from(new.serial)
            .map_err(|_| StateError::InvalidDocument("serial out of range".to_string()))?;
        let text = serde_json::to_string(&new).map_err(|e| StateError::Internal(e.to_string()))?;
        let lineage = new.lineage.to_string();

        let mut client = self.client.lock().await;
        let tx = client
            .transaction()
            .await
            .map_err(self.pg_err("begin a state write"))?;
        let current = tx
            .query_opt(
                &format!(
                    "SELECT serial, lineage FROM {} WHERE project = $1 AND environment = $2 ORDER BY serial DESC LIMIT 1",
                    self.states()
                ),
                &[&self.project, &self.environment],
            )
            .await
            .map_err(self.pg_err("read the latest serial"))?;
        let found = current
            .as_ref()
            .map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0));
        if found != expected_serial {
            return Err(StateError::Stale {
                environment: self.environment.clone(),
                expected: expected_serial,
                found,
            });
        }
        if let Some(r) = current.as_ref().filter(|_| !allow_new_lineage) {
            let stored: String = r.get(1);
            if stored != lineage {
                return Err(StateError::LineageMismatch {
                    environment: self.environment.clone(),
                    expected: lineage,
                    found: stored,
                });
            }
        }
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO {} (project, environment, serial, lineage, operation, document, created)
                     VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7)",
                    self.states()
                ),
                &[
                    &self.project,
                    &self.environment,
                    &serial,
                    &lineage,
                    &new.operation,
                    &text,
                    &new.updated_at,
                ],
            )
            .await;
        let result = match inserted {
            Ok(_) => tx.commit().await,
            Err(e) => {
                drop(tx); // rolls back
                Err(e)
            }
        };
        match result {
            Ok(()) => Ok(new),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                // Another writer committed serial `expected + 1` first.
                let found = self
                    .latest_serial(&client)
                    .await
                    .unwrap_or(expected_serial + 1);
                Err(StateError::Stale {
                    environment: self.environment.clone(),
                    expected: expected_serial,
                    found,
                })
            }
            Err(e) => Err(self.pg_err("write the state")(e)),
        }
    }

    fn lock_key(&self) -> i64 {
        key_of(&["lock", &self.schema, &self.project, &self.environment])
    }

    /// Takes the environment's advisory lock on a new dedicated connection, or fails at once with
    /// [`StateError::Locked`] naming the holder.
    pub async fn lock(&self, operation: &str) -> Result<PgLockGuard> {
        let mut info = LockInfo::for_current_process(&self.project, &self.environment, operation);
        let key = self.lock_key();
        let client = connect(&self.connector, &self.config, &self.target).await?;
        let started = Instant::now();
        loop {
            let got: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await
                .map_err(self.pg_err("take the state lock"))?
                .get(0);
            if got {
                break;
            }
            let holder = self.read_busy_holder(&client).await?;
            // A holder on this host whose process is gone: its session is being torn down by
            // the server right now. Give that a moment instead of failing.
            if holder.holder_is_dead_local_process() && started.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            return Err(StateError::Locked {
                environment: self.environment.clone(),
                holder: Box::new(holder),
            });
        }

        let pid = i64::from(info.pid);
        let lease = self.lease.as_secs_f64();
        let row = client
            .query_one(
                &format!(
                    "INSERT INTO {} (project, environment, id, operation, who, host, pid, backend_pid, lock_key, created, expires)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, pg_backend_pid(), $8, now(), now() + make_interval(secs => $9))
                     ON CONFLICT (project, environment) DO UPDATE SET
                         id = EXCLUDED.id, operation = EXCLUDED.operation, who = EXCLUDED.who,
                         host = EXCLUDED.host, pid = EXCLUDED.pid, backend_pid = EXCLUDED.backend_pid,
                         lock_key = EXCLUDED.lock_key, created = EXCLUDED.created, expires = EXCLUDED.expires
                     RETURNING created, expires",
                    self.locks()
                ),
                &[
                    &self.project,
                    &self.environment,
                    &info.id,
                    &info.operation,
                    &info.who,
                    &info.host,
                    &pid,
                    &key,
                    &lease,
                ],
            )
            .await;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                // Dropping the connection releases the advisory lock.
                drop(client);
                return Err(self.pg_err("record the lock holder")(e));
            }
        };
        info.created = row.get(0);
        info.expires = Some(row.get(1));

        let client = Arc::new(client);
        let lost = Arc::new(LostFlag::default());
        let heartbeat = tokio::spawn(heartbeat(
            Arc::clone(&client),
            format!(
                "UPDATE {} SET expires = now() + make_interval(secs => $1) WHERE project = $2 AND environment = $3 AND id = $4 RETURNING expires",
                self.locks()
            ),
            [
                self.project.clone(),
                self.environment.clone(),
                info.id.clone(),
            ],
            Arc::clone(&lost),
            lease,
            self.heartbeat,
        ));
        Ok(PgLockGuard {
            client: Some(client),
            heartbeat: Some(heartbeat),
            lost,
            info,
            key,
            target: self.target.clone(),
            delete_sql: format!(
                "DELETE FROM {} WHERE project = $1 AND environment = $2 AND id = $3",
                self.locks()
            ),
        })
    }

    fn holder_select(&self) -> String {
        format!(
            "SELECT l.id, l.operation, l.who, l.host, l.pid, l.created, l.expires, l.project, l.environment,
                    EXISTS (SELECT 1 FROM pg_locks k
                            WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.backend_pid
                              AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                              AND k.classid::bigint = ((l.lock_key >> 32) & 4294967295)
                              AND k.objid::bigint = (l.lock_key & 4294967295)
                              AND k.objsubid = 1) AS alive,
                    l.backend_pid
             FROM {} l",
            self.locks()
        )
    }

    /// The holder of a lock we just failed to take. Its row is written right after it took the
    /// advisory lock, so a missing or dead row is re-read briefly.
    async fn read_busy_holder(&self, client: &Client) -> Result<LockInfo> {
        let sql = format!(
            "{} WHERE l.project = $1 AND l.environment = $2",
            self.holder_select()
        );
        let mut last = None;
        for _ in 0..20 {
            let row = client
                .query_opt(&sql, &[&self.project, &self.environment])
                .await
                .map_err(self.pg_err("read the lock holder"))?;
            if let Some(row) = row {
                let alive: bool = row.get(9);
                let info = holder_from_row(&row);
                if alive {
                    return Ok(info);
                }
                last = Some(info);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(last.unwrap_or_else(|| LockInfo::unknown(&self.project, &self.environment)))
    }

    /// Current locks of all environments of the project. Rows whose session no longer holds the
    /// advisory lock (the holder died) are deleted on the way.
    pub async fn list_locks(&self) -> Result<Vec<LockInfo>> {
        let client = self.client.lock().await;
        let rows = client
            .query(
                &format!(
                    "{} WHERE l.project = $1 ORDER BY l.environment",
                    self.holder_select()
                ),
                &[&self.project],
            )
            .await
            .map_err(self.pg_err("list the locks"))?;
        let mut out = Vec::new();
        for row in rows {
            let info = holder_from_row(&row);
            let alive: bool = row.get(9);
            if alive {
                out.push(info);
            } else {
                client
                    .execute(
                        &format!("DELETE FROM {} WHERE id = $1", self.locks()),
                        &[&info.id],
                    )
                    .await
                    .map_err(self.pg_err("remove a stale lock"))?;
            }
        }
        Ok(out)
    }

    /// Removes the lock with this ID: terminates the holder's session (which releases its
    /// advisory lock) and deletes the holder row. Returns the removed holder.
    pub async fn force_unlock(&self, id: &str) -> Result<LockInfo> {
        let client = self.client.lock().await;
        let row = client
            .query_opt(
                &format!(
                    "{} WHERE l.project = $1 AND l.id = $2",
                    self.holder_select()
                ),
                &[&self.project, &id],
            )
            .await
            .map_err(self.pg_err("look up the lock"))?;
        let Some(row) = row else {
            return Err(StateError::LockNotFound {
                project: self.project.clone(),
                id: id.to_string(),
            });
        };
        let info = holder_from_row(&row);
        let alive: bool = row.get(9);
        if alive {
            let backend_pid: i32 = row.get(10);
            client
                .query_one("SELECT pg_terminate_backend($1)", &[&backend_pid])
                .await
                .map_err(self.pg_err("terminate the session holding the lock"))?;
        }
        client
            .execute(
                &format!("DELETE FROM {} WHERE id = $1", self.locks()),
                &[&id],
            )
            .await
            .map_err(self.pg_err("delete the lock row"))?;
        Ok(info)
    }
}

fn holder_from_row(row: &Row) -> LockInfo {
    let pid: i64 = row.get(4);
    LockInfo {
        id: row.get(0),
        operation: row.get(1),
        who: row.get(2),
        host: row.get(3),
        pid: u32::try_from(pid).unwrap_or(0),
        created: row.get(5),
        expires: Some(row.get(6)),
        project: row.get(7),
        environment: row.get(8),
    }
}

#[derive(Debug, Default)]
struct LostFlag {
    lost: AtomicBool,
    reason: StdMutex<String>,
}

impl LostFlag {
    fn set(&self, reason: String) {
        if let Ok(mut r) = self.reason.lock() {
            *r = reason;
        }
        self.lost.store(true, Ordering::SeqCst);
    }

    fn reason(&self) -> Option<String> {
        if !self.lost.load(Ordering::SeqCst) {
            return None;
        }
        Some(
            self.reason
                .lock()
                .map(|r| r.clone())
                .unwrap_or_else(|_| "unknown".to_string()),
        )
    }
}

async fn heartbeat(
    client: Arc<Client>,
    sql: String,
    keys: [String; 3],
    lost: Arc<LostFlag>,
    lease: f64,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match client
            .query_opt(&sql, &[&lease, &keys[0], &keys[1], &keys[2]])
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => {
                lost.set("the lock row was removed (`dk state unlock`)".to_string());
                return;
            }
            Err(e) => {
                lost.set(format!("renewing the lease failed: {e}"));
                return;
            }
        }
    }
}

/// Holds a PostgreSQL advisory lock on a pinned connection plus the holder row, renewed by a
/// heartbeat. Release with [`PgLockGuard::release`]; dropping it inside a tokio runtime releases
/// in the background, and in any case closing the connection frees the advisory lock.
#[derive(Debug)]
pub struct PgLockGuard {
    client: Option<Arc<Client>>,
    heartbeat: Option<JoinHandle<()>>,
    lost: Arc<LostFlag>,
    info: LockInfo,
    key: i64,
    target: String,
    delete_sql: String,
}

impl PgLockGuard {
    /// Holder info of this lock (`expires` is the lease end at acquisition).
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// Fails with [`StateError::LockLost`] when the connection died or the lease could not be
    /// renewed (force-unlocked).
    pub fn ensure_held(&self) -> Result<()> {
        let reason = match &self.client {
            None => Some("the lock was released".to_string()),
            Some(c) if c.is_closed() => {
                Some("the connection holding the advisory lock closed".to_string())
            }
            Some(_) => self.lost.reason(),
        };
        match reason {
            None => Ok(()),
            Some(reason) => Err(StateError::LockLost {
                environment: self.info.environment.clone(),
                reason,
            }),
        }
    }

    /// Deletes the holder row, unlocks and closes the connection.
    pub async fn release(mut self) -> Result<()> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let Some(client) = self.client.take() else {
            return Ok(());
        };
        if client.is_closed() {
            return Ok(());
        }
        let result = release_on(&client, &self.delete_sql, &self.info, self.key).await;
        drop(client);
        result.map_err(|source| StateError::Postgres {
            target: self.target.clone(),
            action: "release the state lock",
            source,
        })
    }
}

async fn release_on(
    client: &Client,
    delete_sql: &str,
    info: &LockInfo,
    key: i64,
) -> std::result::Result<(), tokio_postgres::Error> {
    client
        .execute(delete_sql, &[&info.project, &info.environment, &info.id])
        .await?;
    client
        .query_one("SELECT pg_advisory_unlock($1)", &[&key])
        .await?;
    Ok(())
}

impl Drop for PgLockGuard {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let Some(client) = self.client.take() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let delete_sql = std::mem::take(&mut self.delete_sql);
            let info = self.info.clone();
            let key = self.key;
            handle.spawn(async move {
                let _ = release_on(&client, &delete_sql, &info, key).await;
                drop(client);
            });
        }
        // Otherwise the client is dropped here: the connection closes and the server releases
        // the advisory lock; the stale row is overwritten by the next locker.
    }
}

async fn connect(connector: &PgConnector, config: &Config, target: &str) -> Result<Client> {
    connector
        .connect(config)
        .await
        .map_err(|source| StateError::Postgres {
            target: format!("{target}, sslmode={}", connector.mode()),
            action: "connect",
            source,
        })
}

fn describe(config: &Config, schema: &str) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            Host::Tcp(s) => s.clone(),
            #[cfg(unix)]
            Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_string());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("?");
    let db = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{db} schema {schema}")
}

/// Schema names are quoted into SQL: `[a-z_][a-z0-9_]*`, at most 63 bytes.
fn validate_schema(schema: &str) -> Result<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidName {
            what: "PostgreSQL schema",
            value: schema.to_string(),
            reason:
                "use lowercase letters, digits and '_', starting with a letter or '_' (at most 63)",
        })
    }
}

/// A stable 64-bit advisory-lock key from the SHA-256 of the parts.
fn key_of(parts: &[&str]) -> i64 {
    let mut h = Sha256::new();
    h.update(b"dk-state");
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(
            key_of(&["lock", "s", "p", "dev"]),
            key_of(&["lock", "s", "p", "dev"])
        );
        assert_ne!(
            key_of(&["lock", "s", "p", "dev"]),
            key_of(&["lock", "s", "p", "prod"])
        );
        assert_ne!(
            key_of(&["lock", "s", "pd", "ev"]),
            key_of(&["lock", "s", "p", "dev"])
        );
    }

    #[test]
    fn schema_names() {
        for ok in ["dk_state", "_x", "a1"] {
            validate_schema(ok).expect(ok);
        }
        for bad in ["", "1a", "Dk", "a-b", "a\"b", &"a".repeat(64)] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn target_never_shows_the_password() {
        let c: Config = "host=db port=5433 user=u password=hunter2 dbname=d"
            .parse()
            .expect("config");
        let t = describe(&c, "dk_state");
        assert_eq!(t, "u@db:5433/d schema dk_state");
        let c: Config = "postgresql://u:hunter2@db/d".parse().expect("url");
        assert!(!describe(&c, "s").contains("hunter2"));
    }

    #[tokio::test]
    async fn unreachable_server_is_an_actionable_error() {
        // Port 1 on loopback: nothing listens there.
        let err = PgBackend::open(
            "host=127.0.0.1 port=1 user=postgres dbname=test connect_timeout=2",
            "dk_state",
            "shop",
            "dev",
        )
        .await
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("postgres@127.0.0.1:1/test"), "{msg}");
        assert!(msg.contains("stateBackend.url"), "{msg}");
    }
}
