//! `dk-engine` owns the core loop between manifests and real systems (DESIGN §5–7):
//!
//! * [`compile`]: a project resolved for one environment → desired resources (tables, views,
//!   schemas) with stable addresses;
//! * [`plan`]: desired vs state vs a bulk refresh of the real systems → ordered changes with
//!   measured impact, records of what is in sync, and the plan file with its digest;
//! * [`apply`]: journaled, dependency-ordered, bounded-parallel execution of a plan;
//! * [`template`]: the one SQL template renderer (`ref()`, `var()`) of compile, the `sql` runtime
//!   and transform unit tests;
//! * [`governance`]: policy violations, breaking changes and approval requirements recorded in
//!   plans, the apply gate, and the manifests snapshots promotion and rollback plan from;
//! * [`drift`]: state vs a bulk refresh → changed, deleted and unmanaged objects, with the
//!   environment's ignore rules;
//! * [`import`]: adopting existing objects into state, and writing DataSet manifests for the
//!   unmanaged tables of a schema.

pub mod apply;
pub mod compile;
pub mod drift;
pub mod governance;
pub mod import;
pub mod plan;
pub mod template;

pub use apply::{apply, ApplyOptions, ApplyReport, Event};
pub use compile::{compile, Compiled};
pub use plan::{plan, Plan, PlanInput, PlanOptions, Providers};

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Provider(#[from] dk_providers::ProviderError),
    #[error(transparent)]
    State(#[from] dk_state::StateError),
    #[error("store {0} is not defined in this environment")]
    UnknownStore(String),
    #[error("{0}")]
    PlanFile(String),
    #[error("the plan in {path} was modified after it was made (digest {expected}, content {actual}); make a new plan with `dk plan --out`")]
    TamperedPlan {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("stale plan: it was made against state serial {plan_serial}, but the state is now at serial {state_serial}; run `dk plan` again")]
    StalePlan { plan_serial: u64, state_serial: u64 },
    #[error("the plan has destructive changes ({}); review their impact and pass --allow-destructive to apply them", .0.join(", "))]
    DestructiveRefused(Vec<String>),
    #[error("{0}")]
    Import(String),
    #[error("views do not match their DataSets (fix the transform's SQL or the DataSet's schema):\n  {}", .0.join("\n  "))]
    ViewColumns(Vec<String>),
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The process exit code (DESIGN §7).
    pub fn exit_code(&self) -> u8 {
        match self {
            EngineError::State(e) => e.exit_code() as u8,
            EngineError::DestructiveRefused(_) => 4,
            EngineError::ViewColumns(_) => 3,
            _ => 1,
        }
    }
}
