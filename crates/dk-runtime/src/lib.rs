//! `dk-runtime` owns everything that moves or tests data (DESIGN §9): `dk run` and `dk test`.
//!
//! Modules (one concern each):
//!
//! * [`dataplane`] — read, write and query data in DuckDB, PostgreSQL and local files as streams
//!   of Arrow record batches (append / overwrite / merge-on-key writes, schema enforcement);
//! * [`checks`] — data checks on DataSets, fused into one scan per table, with sample failing rows
//!   (`dk test`, and after each transform of `dk run`);
//! * [`unit`] — transform unit tests on an in-memory DuckDB from fixtures, with row diffs;
//! * [`dbt`] — the `dbt` runtime: the real dbt with a generated, private `profiles.yml`;
//! * [`python`] — the `python` runtime (a script with `DK_STORE_*` variables and a run context),
//!   and the error for container runtimes;
//! * [`external`] — one dispatch entry for `dbt`, `python` and the container runtimes, with one
//!   outcome type for run records;
//! * [`process`] — what external runtimes share: `DK_STORE_*` variables, finding programs,
//!   running a child with a timeout and captured output;
//! * [`lineage`] — OpenLineage run events (schema and column-lineage facets) to a file or an
//!   HTTP endpoint, and column lineage of `sql` transforms;
//! * [`runner`] — the executor of `dk run`: graph order, parallelism, timeouts, retries, run
//!   records, skipping downstream of failures, the [`runner::AfterTransform`] hook;
//! * [`sync`] — the `sync` (and `cloudquery`) runtime: dataset → dataset across stores;
//! * [`sql`] — the `sql` runtime: a templated SELECT materialized as view, table or incremental;
//! * [`triggers`] — what `dk run --due` runs: schedules (cron + timezone), on-change, manual;
//! * [`error`] — the crate's typed errors.

pub mod checks;
pub mod dataplane;
pub mod dbt;
pub mod error;
pub mod external;
pub mod lineage;
pub mod process;
pub mod python;
pub mod runner;
pub mod sql;
pub mod sync;
pub mod triggers;
pub mod unit;

pub use dataplane::{BatchStream, DataPlane, Target, WriteMode};
pub use error::{Result, RuntimeError};
