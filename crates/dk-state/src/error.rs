//! Typed errors of the state crate. Every message says what failed, where, and how to fix it.

use std::path::PathBuf;

use crate::lock::LockInfo;

/// Result alias of this crate.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, writing or locking state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another process holds the environment's lock (exit code 5 at the CLI).
    #[error(
        "state of environment {environment} is locked by {who}@{host} (pid {pid}, {operation}, since {since}, lock ID {id}); wait for it to finish, or run `dk state unlock {id}` if that process is gone",
        who = holder.who,
        host = holder.host,
        pid = holder.pid,
        operation = holder.operation_label(),
        since = holder.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        id = holder.id
    )]
    Locked {
        /// The locked environment.
        environment: String,
        /// Who holds the lock.
        holder: Box<LockInfo>,
    },

    /// Compare-and-swap failed: somebody wrote the state since the caller read it.
    #[error(
        "state of environment {environment} changed while this command ran: expected serial {expected}, found {found}; re-run `dk plan` to work from the current state"
    )]
    Stale {
        /// Environment whose state moved.
        environment: String,
        /// The serial the caller based its write on.
        expected: u64,
        /// The serial actually stored.
        found: u64,
    },

    /// The stored state belongs to another lineage than the document being written.
    #[error(
        "state of environment {environment} has lineage {found}, but the document being written has lineage {expected}; it was created for another state (a copied or re-initialised .dk/state?). Refusing to overwrite it: move the stored state away or write a document read from this backend"
    )]
    LineageMismatch {
        /// Environment concerned.
        environment: String,
        /// Lineage of the document the caller tried to write.
        expected: String,
        /// Lineage stored in the backend.
        found: String,
    },

    /// The requested serial is not in the history.
    #[error(
        "state of environment {environment} has no serial {serial} ({available}); run `dk state history -e {environment}` to see the kept serials"
    )]
    SerialNotFound {
        /// Environment concerned.
        environment: String,
        /// Requested serial.
        serial: u64,
        /// Human description of what exists, e.g. "latest is 4" or "no state yet".
        available: String,
    },

    /// `force_unlock` was given an ID that no lock has.
    #[error(
        "no lock with ID {id} in project {project}; run `dk state lock list` to see the current locks"
    )]
    LockNotFound {
        /// Project searched.
        project: String,
        /// The ID given.
        id: String,
    },

    /// The lock of a running operation was lost (force-unlocked, or the connection holding it died).
    #[error(
        "lost the state lock of environment {environment}: {reason}; stop and re-run the command (another process may now hold the lock)"
    )]
    LockLost {
        /// Environment concerned.
        environment: String,
        /// Why it is considered lost.
        reason: String,
    },

    /// A resource attribute looks like a plain secret value.
    #[error(
        "resource {address} would store a secret value in state at {path}; state keeps only secret references (`SecretRef {{name, sha256}}`): replace the value with `SecretRef::new(name, value)`"
    )]
    SecretInState {
        /// Resource address.
        address: String,
        /// JSON path of the attribute, e.g. `attributes.secrets.password`.
        path: String,
    },

    /// A resource with this address is not in the state.
    #[error(
        "resource {address} is not in the state of environment {environment}; run `dk state list -e {environment}` to see the tracked addresses"
    )]
    ResourceNotFound {
        /// Environment concerned.
        environment: String,
        /// The missing address.
        address: String,
    },

    /// A resource with this address already exists (target of `mv`).
    #[error(
        "resource {address} already exists in the state of environment {environment}; remove it first (`dk state rm {address}`) or pick another address"
    )]
    ResourceExists {
        /// Environment concerned.
        environment: String,
        /// The existing address.
        address: String,
    },

    /// `dk state push` refused a document (another lineage, or a serial not newer than the
    /// stored one) without `--force`.
    #[error(
        "refusing to push to the state of environment {environment}: {reason}; pull the current state (`dk state pull -e {environment}`) and edit that, or pass --force to replace it anyway (the current serial stays in the history)"
    )]
    PushRefused {
        /// Environment concerned.
        environment: String,
        /// Why (lineage or serial).
        reason: String,
    },

    /// A name (environment, project, schema) cannot be used.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// What kind of name (environment, project, schema).
        what: &'static str,
        /// The offending value.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },

    /// The `stateBackend` configuration is not usable.
    #[error("invalid stateBackend in project.yaml: {0}")]
    InvalidConfig(String),

    /// The document handed to `write` does not fit the backend.
    #[error("cannot write state: {0}")]
    InvalidDocument(String),

    /// The stored document was written by a newer dk.
    #[error(
        "state at {location} has format_version {found}, this dk understands up to {supported}; upgrade dk"
    )]
    UnsupportedFormat {
        /// Where the document is.
        location: String,
        /// Its format version.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },

    /// A stored document is not valid JSON / not a state document.
    #[error(
        "state at {location} is unreadable: {source}; restore it from the history (`dk state history`) or from a backup"
    )]
    Corrupt {
        /// Where the document is (path or backend row).
        location: String,
        /// The parse error.
        source: serde_json::Error,
    },

    /// A line of an append-only JSON-lines file (audit log, run journal) is not a valid record.
    #[error(
        "the record at {location} is unreadable: {source}; fix or delete that line (the lines around it are intact)"
    )]
    CorruptLine {
        /// `file:line`.
        location: String,
        /// The parse error.
        source: serde_json::Error,
    },

    /// A file-system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was attempted ("write", "read", "fsync", ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// A PostgreSQL operation failed.
    #[error("PostgreSQL state backend ({target}): cannot {action}: {source}{cause}{hint}", cause = pg_cause(source), hint = pg_hint(source))]
    Postgres {
        /// Host/port/database/schema (never the password).
        target: String,
        /// What was attempted.
        action: &'static str,
        /// The driver error.
        source: tokio_postgres::Error,
    },

    /// A background task panicked or was cancelled.
    #[error("internal error in the state backend: {0}")]
    Internal(String),
}

impl StateError {
    /// The process exit code the CLI should use for this error (DESIGN §7): 5 when the state is
    /// locked, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            StateError::Locked { .. } => 5,
            _ => 1,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        StateError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The driver's Display leaves out the cause of a non-database error (e.g. why a TLS handshake
/// failed): `: cause` when there is one.
fn pg_cause(err: &tokio_postgres::Error) -> String {
    if err.as_db_error().is_some() {
        return String::new();
    }
    std::error::Error::source(err).map_or(String::new(), |c| format!(": {c}"))
}

fn pg_hint(err: &tokio_postgres::Error) -> String {
    if err.as_db_error().is_some() {
        return String::new();
    }
    if err.is_closed() || std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>()) {
        return "; check that the server is running and that stateBackend.url in project.yaml points at it".to_string();
    }
    String::new()
}
