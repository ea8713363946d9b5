//! `dk-state` owns what `dk` remembers about each environment (DESIGN §6):
//!
//! * the [`StateDocument`] — lineage, serial, git provenance, manifests digest, resources with
//!   their journal status, outputs — and its canonical [`digest`](StateDocument::digest);
//! * its full history (every serial is kept) and compare-and-swap writes;
//! * the backends that store it: [`LocalBackend`] (files under `.dk/state/<env>/`, written with
//!   temp file + fsync + rename) and [`PgBackend`] (tables in a PostgreSQL schema), behind the
//!   [`Backend`] enum chosen from [`BackendConfig`] (`project.yaml` `stateBackend`);
//! * environment locks with holder info ([`LockInfo`]): `flock` + `lock.json` locally, a session
//!   advisory lock on one pinned connection plus a leased holder row in PostgreSQL;
//! * [`GitInfo`] detection through the `git` CLI;
//! * [`TestRecord`]s: every `dk test` outcome, for `requireTests` ([`Backend::passing_test`]).
//! * run records of `dk run` ([`RunStore`], [`RunRecord`], [`RunSummary`]): journals under
//!   `.dk/state/<env>/runs/` or a `runs` table next to the state tables.
//! * governance records beside the state ([`audit`]): the audit log, plan approvals and the
//!   manifests snapshots promotion and rollback plan from.
//!
//! Secrets are never stored: attributes hold [`SecretRef`]s (name + SHA-256 of the value), and
//! every write refuses plain values under secret-looking keys.
//!
//! The crate never prints; it returns values and typed [`StateError`]s whose messages say what
//! failed, where, and how to fix it. `StateError::exit_code` maps a held lock to exit code 5.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dk_state::StateError> {
//! use dk_state::{Backend, BackendConfig};
//! let backend = Backend::open(&BackendConfig::local("."), "shop", "dev").await?;
//! let lock = backend.lock("apply").await?; // Err(StateError::Locked{..}) names the holder
//! let mut doc = backend.read_or_new().await?;
//! let expected = doc.serial;
//! doc.git = dk_state::GitInfo::detect(std::path::Path::new("."));
//! let written = backend.write(&doc, expected, "apply").await?; // serial = expected + 1
//! lock.release().await?;
//! # let _ = written; Ok(()) }
//! ```

pub mod audit;
mod backend;
mod document;
mod error;
pub mod git;
mod jsonl;
mod local;
mod lock;
mod postgres;
mod runs;
mod runs_local;
mod test_results;

pub use audit::AuditEntry;
pub use backend::{Backend, BackendConfig, HistoryEntry, LockGuard, DEFAULT_PG_SCHEMA};
pub use document::{
    canonical_json, sha256_hex, ResourceState, ResourceStatus, SecretRef, StateDocument,
    DK_VERSION, FORMAT_VERSION,
};
pub use error::{Result, StateError};
pub use git::GitInfo;
pub use local::{LocalBackend, LocalLockGuard};
pub use lock::{current_host, current_user, pid_alive, LockInfo};
pub use postgres::{PgBackend, PgLockGuard, HEARTBEAT, LEASE};
pub use runs::{
    new_id, DatasetChange, PgRuns, PruneReport, RunOutput, RunQuery, RunRecord, RunStatus,
    RunStore, RunSummary, ID_TIME_FORMAT,
};
pub use test_results::TestRecord;
