//! `dk-runtime` owns everything that moves or tests data (DESIGN §9): `dk run` and `dk test`.
//!
//! Modules (one concern each):
//!
//! * [`dataplane`] — read, write and query data in DuckDB, PostgreSQL and local files as streams
//!   of Arrow record batches (append / overwrite / merge-on-key writes, schema enforcement);
//! * [`runner`] — the executor of `dk run`: graph order, parallelism, timeouts, retries, run
//!   records, skipping downstream of failures, the [`runner::AfterTransform`] hook;
//! * [`sync`] — the `sync` (and `cloudquery`) runtime: dataset → dataset across stores;
//! * [`sql`] — the `sql` runtime: a templated SELECT materialized as view, table or incremental;
//! * [`triggers`] — what `dk run --due` runs: schedules (cron + timezone), on-change, manual;
//! * [`error`] — the crate's typed errors.

pub mod dataplane;
pub mod error;
pub mod runner;
pub mod sql;
pub mod sync;
pub mod triggers;

pub use dataplane::{BatchStream, DataPlane, Target, WriteMode};
pub use error::{Result, RuntimeError};
