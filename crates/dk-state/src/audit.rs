//! Governance records kept by the state backend beside the state documents (docs/approvals.md,
//! docs/promotion.md):
//!
//! * the **audit log** of an environment: one [`AuditEntry`] per plan, approval, apply, promote,
//!   rollback and state edit, append-only;
//! * **approvals**: signed approvals of plan digests (opaque JSON here; dk-env makes and verifies
//!   them), one per (digest, key);
//! * **manifest snapshots**: the manifests a plan was made from (opaque JSON, keyed by the
//!   manifests digest), so promotion and rollback can plan from exactly what was applied.
//!
//! Local backend: `.dk/state/<env>/audit.jsonl` (one JSON line per entry, appended durably by
//! [`crate::jsonl`]: a torn last line from a crash is ignored on read and cut before the next
//! append), `approvals/<digest>/<key>.json` and `snapshots/<digest>.json` (written with temp
//! file + fsync + rename). PostgreSQL backend: tables `audit`, `approvals` and `snapshots` in the
//! state schema, created on first use.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::Backend;
use crate::error::{Result, StateError};
use crate::jsonl;
use crate::local::{atomic_write, LocalBackend};
use crate::postgres::PgBackend;

const AUDIT_FILE: &str = "audit.jsonl";
const APPROVALS_DIR: &str = "approvals";
const SNAPSHOTS_DIR: &str = "snapshots";

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `user@host` of the process that did it.
    pub who: String,
    /// plan, approve, apply, destroy, promote, rollback, state rm, state mv, …
    pub operation: String,
    /// Environment concerned.
    pub environment: String,
    /// ok, refused or failed.
    pub outcome: String,
    /// Digest of the plan concerned, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Digest of the manifests concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests_digest: Option<String>,
    /// State serial written (or read), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u64>,
    /// One line saying what happened.
    pub summary: String,
    /// Operation-specific details.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

impl AuditEntry {
    /// An entry made now by the current user.
    pub fn now(
        operation: &str,
        environment: &str,
        outcome: &str,
        summary: impl Into<String>,
    ) -> Self {
        AuditEntry {
            at: Utc::now(),
            who: format!(
                "{}@{}",
                crate::lock::current_user(),
                crate::lock::current_host()
            ),
            operation: operation.to_string(),
            environment: environment.to_string(),
            outcome: outcome.to_string(),
            digest: None,
            manifests_digest: None,
            serial: None,
            summary: summary.into(),
            details: Value::Null,
        }
    }
}

fn valid_key(what: &'static str, key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidName {
            what,
            value: key.to_string(),
            reason: "use letters, digits, '-' and '_' only",
        })
    }
}

fn corrupt(location: &Path) -> impl FnOnce(serde_json::Error) -> StateError + '_ {
    move |source| StateError::Corrupt {
        location: location.display().to_string(),
        source,
    }
}

// --- local -----------------------------------------------------------------------------------

fn local_append(b: &LocalBackend, entry: &AuditEntry) -> Result<()> {
    jsonl::append(&b.dir(), AUDIT_FILE, entry)
}

fn local_audit(b: &LocalBackend) -> Result<Vec<AuditEntry>> {
    Ok(jsonl::read(&b.dir().join(AUDIT_FILE))?.unwrap_or_default())
}

fn local_put(b: &LocalBackend, sub: &[&str], name: &str, value: &Value) -> Result<()> {
    let mut dir = b.dir();
    for s in sub {
        dir = dir.join(s);
    }
    fs::create_dir_all(&dir).map_err(|e| StateError::io("create directory", &dir, e))?;
    let bytes =
        serde_json::to_vec_pretty(value).map_err(|e| StateError::Internal(e.to_string()))?;
    atomic_write(&dir, &format!("{name}.json"), &bytes)
}

fn local_get(path: &Path) -> Result<Option<Value>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(corrupt(path)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io("read", path, e)),
    }
}

fn local_list(dir: &Path) -> Result<Vec<Value>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::io("list", dir, e)),
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        if let Some(v) = local_get(&p)? {
            out.push(v);
        }
    }
    Ok(out)
}

fn local_approvals(b: &LocalBackend, digest: Option<&str>) -> Result<Vec<Value>> {
    let root = b.dir().join(APPROVALS_DIR);
    match digest {
        Some(d) => local_list(&root.join(d)),
        None => {
            let entries = match fs::read_dir(&root) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(StateError::io("list", &root, e)),
            };
            let mut dirs: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            dirs.sort();
            let mut out = Vec::new();
            for d in dirs {
                out.extend(local_list(&d)?);
            }
            Ok(out)
        }
    }
}

// --- postgres --------------------------------------------------------------------------------

async fn pg_ensure(b: &PgBackend) -> Result<()> {
    let s = b.schema();
    let ddl = format!(
        "BEGIN;
         SELECT pg_advisory_xact_lock(hashtext('dk-governance-ddl'));
         CREATE TABLE IF NOT EXISTS \"{s}\".audit (
             id          bigserial   PRIMARY KEY,
             project     text        NOT NULL,
             environment text        NOT NULL,
             at          timestamptz NOT NULL,
             entry       jsonb       NOT NULL
         );
         CREATE TABLE IF NOT EXISTS \"{s}\".approvals (
             project     text        NOT NULL,
             environment text        NOT NULL,
             digest      text        NOT NULL,
             key_id      text        NOT NULL,
             entry       jsonb       NOT NULL,
             PRIMARY KEY (project, environment, digest, key_id)
         );
         CREATE TABLE IF NOT EXISTS \"{s}\".snapshots (
             project     text        NOT NULL,
             environment text        NOT NULL,
             digest      text        NOT NULL,
             content     jsonb       NOT NULL,
             PRIMARY KEY (project, environment, digest)
         );
         COMMIT;"
    );
    let client = b.client().lock().await;
    if let Err(e) = client.batch_execute(&ddl).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(b.pg_err("create the governance tables")(e));
    }
    Ok(())
}

impl Backend {
    /// Appends an entry to the environment's audit log.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        match self {
            Backend::Local(b) => {
                let b = b.clone();
                let entry = entry.clone();
                blocking(move || local_append(&b, &entry)).await
            }
            Backend::Postgres(b) => {
                pg_ensure(b).await?;
                let v = serde_json::to_string(entry)
                    .map_err(|e| StateError::Internal(e.to_string()))?;
                let client = b.client().lock().await;
                client
                    .execute(
                        &format!(
                            "INSERT INTO \"{}\".audit (project, environment, at, entry) VALUES ($1, $2, $3, $4::text::jsonb)",
                            b.schema()
                        ),
                        &[&b.project(), &b.environment(), &entry.at, &v],
                    )
                    .await
                    .map_err(b.pg_err("append to the audit log"))?;
                Ok(())
            }
        }
    }

    /// The environment's audit log, oldest first.
    pub async fn audit(&self) -> Result<Vec<AuditEntry>> {
        match self {
            Backend::Local(b) => {
                let b = b.clone();
                blocking(move || local_audit(&b)).await
            }
            Backend::Postgres(b) => {
                pg_ensure(b).await?;
                let client = b.client().lock().await;
                let rows = client
                    .query(
                        &format!(
                            "SELECT entry::text FROM \"{}\".audit WHERE project = $1 AND environment = $2 ORDER BY id",
                            b.schema()
                        ),
                        &[&b.project(), &b.environment()],
                    )
                    .await
                    .map_err(b.pg_err("read the audit log"))?;
                Ok(rows
                    .iter()
                    .filter_map(|r| serde_json::from_str(r.get::<_, &str>(0)).ok())
                    .collect())
            }
        }
    }

    /// Stores an approval of plan `digest` made with key `key_id` (replacing an earlier one by
    /// the same key).
    pub async fn put_approval(&self, digest: &str, key_id: &str, approval: &Value) -> Result<()> {
        valid_key("plan digest", digest)?;
        valid_key("approval key id", key_id)?;
        match self {
            Backend::Local(b) => {
                let b = b.clone();
                let (digest, key_id, approval) =
                    (digest.to_string(), key_id.to_string(), approval.clone());
                blocking(move || local_put(&b, &[APPROVALS_DIR, &digest], &key_id, &approval)).await
            }
            Backend::Postgres(b) => {
                pg_ensure(b).await?;
                let client = b.client().lock().await;
                client
                    .execute(
                        &format!(
                            "INSERT INTO \"{}\".approvals (project, environment, digest, key_id, entry) VALUES ($1, $2, $3, $4, $5::text::jsonb)
                             ON CONFLICT (project, environment, digest, key_id) DO UPDATE SET entry = EXCLUDED.entry",
                            b.schema()
                        ),
                        &[&b.project(), &b.environment(), &digest, &key_id, &approval.to_string()],
                    )
                    .await
                    .map_err(b.pg_err("store an approval"))?;
                Ok(())
            }
        }
    }

    /// Approvals stored for plan `digest`, or for every plan when `None`.
    pub async fn approvals(&self, digest: Option<&str>) -> Result<Vec<Value>> {
        if let Some(d) = digest {
            valid_key("plan digest", d)?;
        }
        match self {
            Backend::Local(b) => {
                let b = b.clone();
                let digest = digest.map(str::to_string);
                blocking(move || local_approvals(&b, digest.as_deref())).await
            }
            Backend::Postgres(b) => {
                pg_ensure(b).await?;
                let client = b.client().lock().await;
                let rows = client
                    .query(
                        &format!(
                            "SELECT entry::text FROM \"{}\".approvals WHERE project = $1 AND environment = $2 AND ($3::text IS NULL OR digest = $3) ORDER BY digest, key_id",
                            b.schema()
                        ),
                        &[&b.project(), &b.environment(), &digest],
                    )
                    .await
                    .map_err(b.pg_err("read approvals"))?;
                Ok(rows
                    .iter()
                    .filter_map(|r| serde_json::from_str(r.get::<_, &str>(0)).ok())
                    .collect())
            }
        }
    }

    /// Stores the manifests snapshot with this digest (idempotent).
    pub async fn put_snapshot(&self, digest: &str, snapshot: &Value) -> Result<()> {
        valid_key("manifests digest", digest)?;
        match self {
            Backend::Local(b) => {
                let path = b.dir().join(SNAPSHOTS_DIR).join(format!("{digest}.json"));
                if path.exists() {
                    return Ok(());
                }
                let b = b.clone();
                let (digest, snapshot) = (digest.to_string(), snapshot.clone());
                blocking(move || local_put(&b, &[SNAPSHOTS_DIR], &digest, &snapshot)).await
            }
            Backend::Postgres(b) => {
                pg_ensure(b).await?;
                let client = b.client().lock().await;
                client
                    .execute(
                        &format!(
                            "INSERT INTO \"{}\".snapshots (project, environment, digest, content) VALUES ($1, $2, $3, $4::text::jsonb)
                             ON CONFLICT (project, environment, digest) DO NOTHING",
                            b.schema()
                        ),
                        &[&b.project(), &b.environment(), &digest, &snapshot.to_string()],
                    )
                    .await
                    .map_err(b.pg_err("store a manifests snapshot"))?;
                Ok(())
            }
        }
    }

    /// The manifests snapshot with this digest, if this environment stored it.
    pub async fn snapshot(&self, digest: &str) -> Result<Option<Value>> {
        valid_key("manifests digest", digest)?;
        match self {
            Backend::Local(b) => {
                let path = b.dir().join(SNAPSHOTS_DIR).join(format!("{digest}.json"));
                blocking(move || local_get(&path)).await
            }
            Backend::Postgres(b) => {
                pg_ensure(b).await?;
                let client = b.client().lock().await;
                let row = client
                    .query_opt(
                        &format!(
                            "SELECT content::text FROM \"{}\".snapshots WHERE project = $1 AND environment = $2 AND digest = $3",
                            b.schema()
                        ),
                        &[&b.project(), &b.environment(), &digest],
                    )
                    .await
                    .map_err(b.pg_err("read a manifests snapshot"))?;
                match row {
                    None => Ok(None),
                    Some(r) => {
                        serde_json::from_str(r.get::<_, &str>(0))
                            .map(Some)
                            .map_err(|source| StateError::Corrupt {
                                location: format!("{} snapshots/{digest}", b.target()),
                                source,
                            })
                    }
                }
            }
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StateError::Internal(format!("state task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendConfig;
    use std::fs::OpenOptions;
    use std::io::Write;

    #[tokio::test]
    async fn local_records_round_trip_and_survive_a_torn_line() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = Backend::open(&BackendConfig::local(tmp.path()), "shop", "prod")
            .await
            .expect("open");
        assert!(b.audit().await.expect("empty").is_empty());
        b.append_audit(&AuditEntry::now("plan", "prod", "ok", "planned"))
            .await
            .expect("append");
        // A crash mid-append leaves a torn line.
        let path = tmp.path().join(".dk/state/prod/audit.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"at\": \"20").expect("torn");
        drop(f);
        b.append_audit(&AuditEntry::now("apply", "prod", "ok", "applied"))
            .await
            .expect("append");
        let ops: Vec<String> = b
            .audit()
            .await
            .expect("audit")
            .into_iter()
            .map(|e| e.operation)
            .collect();
        assert_eq!(ops, vec!["plan", "apply"]);

        let d = "a".repeat(64);
        b.put_approval(&d, "k1", &serde_json::json!({"n": 1}))
            .await
            .expect("put");
        b.put_approval(&d, "k1", &serde_json::json!({"n": 2}))
            .await
            .expect("replace");
        b.put_approval("b", "k2", &serde_json::json!({"n": 3}))
            .await
            .expect("put");
        assert_eq!(
            b.approvals(Some(&d)).await.expect("list"),
            vec![serde_json::json!({"n": 2})]
        );
        assert_eq!(b.approvals(None).await.expect("all").len(), 2);
        assert!(b.put_approval("../x", "k", &Value::Null).await.is_err());

        assert_eq!(b.snapshot(&d).await.expect("none"), None);
        b.put_snapshot(&d, &serde_json::json!({"files": {}}))
            .await
            .expect("snap");
        assert_eq!(
            b.snapshot(&d).await.expect("some"),
            Some(serde_json::json!({"files": {}}))
        );
    }
}
