//! The backend facade: one enum over the local and PostgreSQL backends, with async methods that
//! are easy to call from a tokio `main`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::document::{StateDocument, FORMAT_VERSION};
use crate::error::{Result, StateError};
use crate::git::GitInfo;
use crate::local::{LocalBackend, LocalLockGuard};
use crate::lock::LockInfo;
use crate::postgres::{PgBackend, PgLockGuard};

/// Default PostgreSQL schema of the state tables.
pub const DEFAULT_PG_SCHEMA: &str = "dk_state";

/// Where state lives, from `project.yaml` `spec.stateBackend`. Its `Debug` output hides the
/// PostgreSQL URL, which may carry a password.
#[derive(Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// `{type: local}`: files under `<root>/.dk/state/<env>/`.
    Local {
        /// Project root (the directory of `project.yaml`).
        root: PathBuf,
    },
    /// `{type: postgres, url, schema}`.
    Postgres {
        /// libpq-style connection string or `postgresql://` URL, `${VAR}`s already resolved.
        url: String,
        /// Schema of the state tables (default `dk_state`).
        schema: String,
    },
}

impl std::fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendConfig::Local { root } => f.debug_struct("Local").field("root", root).finish(),
            BackendConfig::Postgres { schema, .. } => f
                .debug_struct("Postgres")
                .field("url", &"<redacted>")
                .field("schema", schema)
                .finish(),
        }
    }
}

impl BackendConfig {
    /// The local backend rooted at `root`.
    pub fn local(root: impl Into<PathBuf>) -> Self {
        BackendConfig::Local { root: root.into() }
    }

    /// The PostgreSQL backend; `schema` defaults to `dk_state`.
    pub fn postgres(url: impl Into<String>, schema: Option<&str>) -> Self {
        BackendConfig::Postgres {
            url: url.into(),
            schema: schema.unwrap_or(DEFAULT_PG_SCHEMA).to_string(),
        }
    }

    /// From the `stateBackend` value of `project.yaml` (`None` or `{type: local}` = local).
    /// Variables in `url` must already be resolved.
    pub fn from_spec(spec: Option<&serde_json::Value>, root: &Path) -> Result<Self> {
        let Some(spec) = spec.filter(|v| !v.is_null()) else {
            return Ok(Self::local(root));
        };
        let obj = spec.as_object().ok_or_else(|| {
            StateError::InvalidConfig(
                "expected a mapping like `{type: local}` or `{type: postgres, url: ..., schema: dk_state}`"
                    .to_string(),
            )
        })?;
        let ty = obj.get("type").and_then(|v| v.as_str()).unwrap_or("local");
        match ty {
            "local" => Ok(Self::local(root)),
            "postgres" | "postgresql" => {
                let url = obj.get("url").and_then(|v| v.as_str()).ok_or_else(|| {
                    StateError::InvalidConfig(
                        "type postgres needs `url` (e.g. url: \"${DK_STATE_URL}\")".to_string(),
                    )
                })?;
                if url.contains("${") {
                    return Err(StateError::InvalidConfig(
                        "`url` still contains an unresolved ${VAR}; set the variable".to_string(),
                    ));
                }
                let schema = match obj.get("schema") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(v) => Some(v.as_str().ok_or_else(|| {
                        StateError::InvalidConfig("`schema` must be a string".to_string())
                    })?),
                };
                Ok(Self::postgres(url, schema))
            }
            other => Err(StateError::InvalidConfig(format!(
                "unknown type {other:?}; use `local` or `postgres`"
            ))),
        }
    }
}

/// One row of `dk state history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The serial.
    pub serial: u64,
    /// Lineage of the state.
    pub lineage: Uuid,
    /// When the serial was written.
    pub created: DateTime<Utc>,
    /// Repository state recorded with it.
    pub git: Option<GitInfo>,
    /// Digest of the manifests it was produced from.
    pub manifests_digest: Option<String>,
    /// Operation that wrote it.
    pub operation: String,
    /// Number of resources.
    pub resources: usize,
}

impl HistoryEntry {
    /// The summary of one document.
    pub fn of(doc: &StateDocument) -> Self {
        HistoryEntry {
            serial: doc.serial,
            lineage: doc.lineage,
            created: doc.updated_at,
            git: doc.git.clone(),
            manifests_digest: doc.manifests_digest.clone(),
            operation: doc.operation.clone(),
            resources: doc.resources.len(),
        }
    }
}

/// A state backend opened for one (project, environment).
#[derive(Debug)]
pub enum Backend {
    /// Files under `.dk/state/<env>/`.
    Local(LocalBackend),
    /// Tables in a PostgreSQL schema.
    Postgres(Box<PgBackend>),
}

/// An environment lock; dropping it releases the lock (prefer [`LockGuard::release`] in async
/// code, which waits for the release to finish).
#[derive(Debug)]
pub enum LockGuard {
    /// A local flock.
    Local(LocalLockGuard),
    /// A PostgreSQL advisory lock on a pinned connection.
    Postgres(PgLockGuard),
}

impl LockGuard {
    /// Holder info of this lock.
    pub fn info(&self) -> &LockInfo {
        match self {
            LockGuard::Local(g) => g.info(),
            LockGuard::Postgres(g) => g.info(),
        }
    }

    /// Fails with [`StateError::LockLost`] if the lock is known to be lost (force-unlocked, or
    /// the connection holding it died). Call before writing state.
    pub fn ensure_held(&self) -> Result<()> {
        match self {
            LockGuard::Local(g) => g.ensure_held(),
            LockGuard::Postgres(g) => g.ensure_held(),
        }
    }

    /// Releases the lock and deletes its holder info.
    pub async fn release(self) -> Result<()> {
        match self {
            LockGuard::Local(g) => blocking(move || g.release()).await,
            LockGuard::Postgres(g) => g.release().await,
        }
    }
}

impl Backend {
    /// Opens the backend for (project, environment). For PostgreSQL this connects and creates
    /// the schema and tables when missing.
    pub async fn open(config: &BackendConfig, project: &str, environment: &str) -> Result<Self> {
        match config {
            BackendConfig::Local { root } => Ok(Backend::Local(LocalBackend::new(
                root.clone(),
                project,
                environment,
            )?)),
            BackendConfig::Postgres { url, schema } => Ok(Backend::Postgres(Box::new(
                PgBackend::open(url, schema, project, environment).await?,
            ))),
        }
    }

    /// Project name.
    pub fn project(&self) -> &str {
        match self {
            Backend::Local(b) => b.project(),
            Backend::Postgres(b) => b.project(),
        }
    }

    /// Environment name.
    pub fn environment(&self) -> &str {
        match self {
            Backend::Local(b) => b.environment(),
            Backend::Postgres(b) => b.environment(),
        }
    }

    /// Where the state lives, for messages (never contains a password).
    pub fn describe(&self) -> String {
        match self {
            Backend::Local(b) => format!("local {}", b.dir().display()),
            Backend::Postgres(b) => format!("postgres {}", b.target()),
        }
    }

    /// The latest document, `None` when the environment has no state yet.
    pub async fn read_latest(&self) -> Result<Option<StateDocument>> {
        match self {
            Backend::Local(b) => {
                let b = b.clone();
                blocking(move || b.read_latest()).await
            }
            Backend::Postgres(b) => b.read_latest().await,
        }
    }

    /// The latest document, or a new one (serial 0, fresh lineage) when there is none.
    pub async fn read_or_new(&self) -> Result<StateDocument> {
        Ok(self
            .read_latest()
            .await?
            .unwrap_or_else(|| StateDocument::new(self.project(), self.environment())))
    }

    /// The document of one kept serial ([`StateError::SerialNotFound`] otherwise).
    pub async fn read_serial(&self, serial: u64) -> Result<StateDocument> {
        match self {
            Backend::Local(b) => {
                let b = b.clone();
                blocking(move || b.read_serial(serial)).await
            }
            Backend::Postgres(b) => b.read_serial(serial).await,
        }
    }

    /// Every kept serial, oldest first.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>> {
        match self {
            Backend::Local(b) => {
                let b = b.clone();
                blocking(move || b.history()).await
            }
            Backend::Postgres(b) => b.history().await,
        }
    }

    /// Compare-and-swap write. Stores `doc` as serial `expected_serial + 1` if the stored serial
    /// is still `expected_serial` (0 = no state yet), else fails with [`StateError::Stale`].
    /// Sets `serial`, `updated_at`, `operation` and `dk_version`; refuses plain secrets, another
    /// lineage, or a document of another project/environment. Returns the document as stored.
    pub async fn write(
        &self,
        doc: &StateDocument,
        expected_serial: u64,
        operation: &str,
    ) -> Result<StateDocument> {
        match self {
            Backend::Local(b) => {
                let b = b.clone();
                let doc = doc.clone();
                let operation = operation.to_string();
                blocking(move || b.write(&doc, expected_serial, &operation)).await
            }
            Backend::Postgres(b) => b.write(doc, expected_serial, operation).await,
        }
    }

    /// `dk state push`: replaces the state with `doc` (call with the environment locked). The
    /// document must be of a known format and of this project and environment; without `force`
    /// it must have the stored lineage and a serial greater than the stored one (as Terraform).
    /// It is written as the next serial, so the history keeps the replaced one. Returns the
    /// document as stored and the serial it replaced (0 when there was no state).
    pub async fn push(&self, doc: &StateDocument, force: bool) -> Result<(StateDocument, u64)> {
        if doc.format_version == 0 || doc.format_version > FORMAT_VERSION {
            return Err(StateError::UnsupportedFormat {
                location: "the pushed document".to_string(),
                found: doc.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let current = self.read_latest().await?;
        let found = current.as_ref().map_or(0, |d| d.serial);
        if let Some(cur) = current.as_ref().filter(|_| !force) {
            if cur.lineage != doc.lineage {
                return Err(StateError::PushRefused {
                    environment: self.environment().to_string(),
                    reason: format!(
                        "the document has lineage {}, the stored state has lineage {} (it belongs to another state)",
                        doc.lineage, cur.lineage
                    ),
                });
            }
            if doc.serial <= cur.serial {
                return Err(StateError::PushRefused {
                    environment: self.environment().to_string(),
                    reason: format!(
                        "the document has serial {}, not newer than the stored serial {} (it would undo later changes)",
                        doc.serial, cur.serial
                    ),
                });
            }
        }
        let written = match self {
            Backend::Local(b) => {
                let b = b.clone();
                let doc = doc.clone();
                blocking(move || b.write_with(&doc, found, "state push", force)).await?
            }
            Backend::Postgres(b) => b.write_with(doc, found, "state push", force).await?,
        };
        Ok((written, found))
    }

    /// Locks the environment for `operation` (e.g. `apply`), failing at once with
    /// [`StateError::Locked`] naming the holder when somebody else holds it.
    pub async fn lock(&self, operation: &str) -> Result<LockGuard> {
        match self {
            Backend::Local(b) => {
                let b = b.clone();
                let operation = operation.to_string();
                blocking(move || b.lock(&operation))
                    .await
                    .map(LockGuard::Local)
            }
            Backend::Postgres(b) => b.lock(operation).await.map(LockGuard::Postgres),
        }
    }

    /// Current locks of all environments of the project; stale ones are removed on the way.
    pub async fn list_locks(&self) -> Result<Vec<LockInfo>> {
        match self {
            Backend::Local(b) => {
                let b = b.clone();
                blocking(move || b.list_locks()).await
            }
            Backend::Postgres(b) => b.list_locks().await,
        }
    }

    /// `dk state unlock ID`: removes the lock with this ID even if its holder still runs.
    /// Returns the removed holder info.
    pub async fn force_unlock(&self, id: &str) -> Result<LockInfo> {
        match self {
            Backend::Local(b) => {
                let b = b.clone();
                let id = id.to_string();
                blocking(move || b.force_unlock(&id)).await
            }
            Backend::Postgres(b) => b.force_unlock(id).await,
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StateError::Internal(format!("state task failed: {e}")))?
}

/// Validates `doc` for a write and returns the document to store (serial, time, operation set).
pub(crate) fn prepare_write(
    doc: &StateDocument,
    expected_serial: u64,
    operation: &str,
    project: &str,
    environment: &str,
) -> Result<StateDocument> {
    if doc.project != project || doc.environment != environment {
        return Err(StateError::InvalidDocument(format!(
            "the document is for project {:?} environment {:?}, but this backend holds project {project:?} environment {environment:?}",
            doc.project, doc.environment
        )));
    }
    doc.check_no_secrets()?;
    let serial = expected_serial
        .checked_add(1)
        .ok_or_else(|| StateError::InvalidDocument("serial overflow".to_string()))?;
    let mut new = doc.clone();
    new.serial = serial;
    new.format_version = FORMAT_VERSION;
    new.dk_version = crate::document::DK_VERSION.to_string();
    new.updated_at = Utc::now();
    new.operation = operation.to_string();
    Ok(new)
}

/// Environment names become directory names: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128 bytes.
pub(crate) fn validate_environment(environment: &str) -> Result<()> {
    let ok = !environment.is_empty()
        && environment.len() <= 128
        && environment
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && environment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidName {
            what: "environment name",
            value: environment.to_string(),
            reason: "use letters, digits, '_', '.', '-', starting with a letter or digit",
        })
    }
}

pub(crate) fn validate_project(project: &str) -> Result<()> {
    if project.is_empty() || project.len() > 256 || project.chars().any(char::is_control) {
        return Err(StateError::InvalidName {
            what: "project name",
            value: project.to_string(),
            reason: "must be non-empty, at most 256 bytes, without control characters",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_from_project_spec() {
        let root = Path::new("/p");
        assert_eq!(
            BackendConfig::from_spec(None, root).expect("none"),
            BackendConfig::local("/p")
        );
        assert_eq!(
            BackendConfig::from_spec(Some(&json!({"type": "local"})), root).expect("local"),
            BackendConfig::local("/p")
        );
        assert_eq!(
            BackendConfig::from_spec(
                Some(&json!({"type": "postgres", "url": "host=h dbname=d"})),
                root
            )
            .expect("pg"),
            BackendConfig::Postgres {
                url: "host=h dbname=d".into(),
                schema: "dk_state".into()
            }
        );
        assert_eq!(
            BackendConfig::from_spec(
                Some(&json!({"type": "postgres", "url": "postgresql://h/d", "schema": "st"})),
                root
            )
            .expect("pg"),
            BackendConfig::postgres("postgresql://h/d", Some("st"))
        );
        let pg = BackendConfig::postgres("postgresql://u:hunter2@h/d", None);
        assert!(!format!("{pg:?}").contains("hunter2"));
        for bad in [
            json!({"type": "s3"}),
            json!({"type": "postgres"}),
            json!({"type": "postgres", "url": "${DK_STATE_URL}"}),
            json!("local"),
        ] {
            let err = BackendConfig::from_spec(Some(&bad), root).unwrap_err();
            assert!(matches!(err, StateError::InvalidConfig(_)), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn push_checks_lineage_and_serial_unless_forced() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = Backend::open(&BackendConfig::local(tmp.path()), "shop", "dev")
            .await
            .expect("open");
        // No state yet: any lineage is accepted and becomes serial 1.
        let mut first = StateDocument::new("shop", "dev");
        first.serial = 7;
        let (w, replaced) = b.push(&first, false).await.expect("first push");
        assert_eq!((w.serial, replaced, w.lineage), (1, 0, first.lineage));
        assert_eq!(w.operation, "state push");
        // Same lineage, serial not newer: refused.
        let mut older = w.clone();
        older.serial = 1;
        let err = b.push(&older, false).await.unwrap_err();
        assert!(err.to_string().contains("not newer"), "{err}");
        // Same lineage, newer serial: written as the next serial.
        older.serial = 5;
        let (w2, replaced) = b.push(&older, false).await.expect("newer");
        assert_eq!((w2.serial, replaced), (2, 1));
        // Another lineage: refused, then forced.
        let other = StateDocument::new("shop", "dev");
        let err = b.push(&other, false).await.unwrap_err();
        assert!(matches!(err, StateError::PushRefused { .. }), "{err}");
        let (w3, _) = b.push(&other, true).await.expect("forced");
        assert_eq!((w3.serial, w3.lineage), (3, other.lineage));
        assert_eq!(b.history().await.expect("history").len(), 3);
        // Unknown format and another environment are refused even when forced.
        let mut future = other.clone();
        future.format_version = FORMAT_VERSION + 1;
        assert!(b.push(&future, true).await.is_err());
        let wrong_env = StateDocument::new("shop", "prod");
        assert!(b.push(&wrong_env, true).await.is_err());
    }

    #[tokio::test]
    async fn facade_over_local_backend() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = Backend::open(&BackendConfig::local(tmp.path()), "shop", "dev")
            .await
            .expect("open");
        assert!(b.describe().starts_with("local "));
        let doc = b.read_or_new().await.expect("new");
        assert_eq!(doc.serial, 0);
        let guard = b.lock("apply").await.expect("lock");
        let err = b.lock("apply").await.unwrap_err();
        assert_eq!(err.exit_code(), 5);
        let w = b.write(&doc, 0, "apply").await.expect("write");
        assert_eq!(b.read_serial(1).await.expect("serial"), w);
        assert_eq!(b.history().await.expect("history").len(), 1);
        assert_eq!(b.list_locks().await.expect("locks").len(), 1);
        guard.release().await.expect("release");
        assert!(b.list_locks().await.expect("locks").is_empty());
        let g = b.lock("plan").await.expect("lock");
        let id = g.info().id.clone();
        assert_eq!(b.force_unlock(&id).await.expect("unlock").id, id);
        assert!(g.ensure_held().is_err());
    }
}
