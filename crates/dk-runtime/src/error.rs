//! The typed errors of the runtime crate. Every message says what failed, where (store, dataset,
//! transform), and how to fix it.

/// Result alias of this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Everything that can go wrong while moving or transforming data.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A store's technology has no data plane.
    #[error("store {store}: dk cannot read or write data in stores of type \"{connector_type}\" yet (supported: duckdb, postgres, file)")]
    UnsupportedStore {
        store: String,
        connector_type: String,
    },
    /// A store or dataset is configured in a way the data plane cannot use.
    #[error("{0}")]
    Config(String),
    /// A provider-level failure (connecting, configuration).
    #[error(transparent)]
    Provider(#[from] dk_providers::ProviderError),
    /// A database statement failed.
    #[error("store {store}: {context}: {message}")]
    Database {
        store: String,
        context: String,
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{context} {path}: {message}")]
    File {
        context: String,
        path: String,
        message: String,
    },
    /// Data does not fit the declared schema of a dataset.
    #[error("{0}")]
    Schema(String),
    /// An Arrow conversion failed.
    #[error("{context}: {message}")]
    Arrow { context: String, message: String },
    /// A state backend failure (run records, cursors).
    #[error(transparent)]
    State(#[from] dk_state::StateError),
    /// A transform cannot run as declared.
    #[error("transform {transform}: {message}")]
    Transform { transform: String, message: String },
    /// The transform's runtime is not one dk can run.
    #[error("transform {transform}: runtime \"{runtime}\" is not supported by `dk run` yet (supported: sync, cloudquery, sql); run it with its own tool or change spec.runtime")]
    UnsupportedRuntime { transform: String, runtime: String },
    /// An external program (dbt, a python script) ran and failed; `details` (its per-node
    /// results, the end of its output) go into the run record.
    #[error("transform {transform}: {message}")]
    External {
        transform: String,
        message: String,
        details: Box<serde_json::Value>,
    },
    /// A transform ran longer than its `timeout`.
    #[error("transform {transform}: timed out after {timeout}")]
    Timeout { transform: String, timeout: String },
    /// A background task ended abnormally.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RuntimeError {
    pub(crate) fn arrow(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        RuntimeError::Arrow {
            context: context.into(),
            message: e.to_string(),
        }
    }

    pub(crate) fn file(
        context: impl Into<String>,
        path: &std::path::Path,
        e: impl std::fmt::Display,
    ) -> Self {
        RuntimeError::File {
            context: context.into(),
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }

    pub(crate) fn db(
        store: &str,
        context: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> Self {
        RuntimeError::Database {
            store: store.to_string(),
            context: context.into(),
            message: message.to_string(),
        }
    }
}
