//! `dk-providers` owns the provider contract and one module per technology.
//!
//! * [`model`]: resources (schemas, tables, views) with stable addresses and logical column types,
//!   and the [`Change`](model::Change)s between desired and actual;
//! * [`diff`]: the provider-independent comparison;
//! * [`Provider`]: the control-plane API every technology implements — `refresh` (bulk: one catalog
//!   query per object type for all managed schemas), `plan` (diff + the dialect's statements + the
//!   impact of destructive operations, measured on the data), `apply` (runs a change's statements in
//!   one transaction). `postgres` and (feature `duckdb`, on by default) `duckdb` implement it.
//!
//! Identifiers are always quoted. Secrets reach drivers through `dk_env::SecretRef::expose` only.

pub mod diff;
#[cfg(feature = "duckdb")]
pub mod duckdb;
pub mod model;
pub mod postgres;

use std::path::Path;

use dk_env::ResolvedStore;
use model::{Change, Resource};

/// Errors of providers.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no provider for connector type \"{connector_type}\" (store {store}); dk can plan and apply stores of type postgres and duckdb")]
    Unsupported {
        store: String,
        connector_type: String,
    },
    #[error("store {store}: {message}")]
    Config { store: String, message: String },
    #[error("store {store}: cannot connect: {message}")]
    Connect { store: String, message: String },
    #[error("store {store}: {context}: {message}")]
    Database {
        store: String,
        context: String,
        message: String,
    },
    #[error("store {store}: {message}")]
    Unrepresentable { store: String, message: String },
}

pub type Result<T> = std::result::Result<T, ProviderError>;

/// Quotes an identifier for PostgreSQL and DuckDB (`"a""b"`).
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes a string literal (`'it''s'`).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A connected provider for one store.
pub enum Provider {
    Postgres(postgres::PgProvider),
    #[cfg(feature = "duckdb")]
    DuckDb(duckdb::DuckProvider),
}

impl Provider {
    /// Connects to a resolved store. `project_root` anchors relative paths (DuckDB files).
    pub async fn connect(store: &ResolvedStore, project_root: &Path) -> Result<Provider> {
        match store.connector_type.as_str() {
            "postgres" | "postgresql" => Ok(Provider::Postgres(
                postgres::PgProvider::connect(store).await?,
            )),
            #[cfg(feature = "duckdb")]
            "duckdb" => Ok(Provider::DuckDb(duckdb::DuckProvider::open(
                store,
                project_root,
            )?)),
            other => {
                let _ = project_root;
                Err(ProviderError::Unsupported {
                    store: store.name.clone(),
                    connector_type: other.to_string(),
                })
            }
        }
    }

    /// The store's default schema (`public` for PostgreSQL, `main` for DuckDB).
    pub fn default_schema(&self) -> &'static str {
        match self {
            Provider::Postgres(_) => "public",
            #[cfg(feature = "duckdb")]
            Provider::DuckDb(_) => "main",
        }
    }

    /// Every schema, table and view in `schemas` as it is now (bulk catalog queries).
    pub async fn refresh(&self, schemas: &[String]) -> Result<Vec<Resource>> {
        match self {
            Provider::Postgres(p) => p.refresh(schemas).await,
            #[cfg(feature = "duckdb")]
            Provider::DuckDb(p) => tokio::task::block_in_place(|| p.refresh(schemas)),
        }
    }

    /// The columns a query returns, without running it; fails when it does not compile.
    pub async fn describe_query(
        &self,
        sql: &str,
    ) -> Result<Vec<(String, Option<model::LogicalType>)>> {
        match self {
            Provider::Postgres(p) => p.describe_query(sql).await,
            #[cfg(feature = "duckdb")]
            Provider::DuckDb(p) => tokio::task::block_in_place(|| p.describe_query(sql)),
        }
    }

    /// The change that turns `actual` into `desired` (`None` when they match), with statements
    /// and measured impact.
    pub async fn plan(
        &self,
        desired: Option<&Resource>,
        actual: Option<&Resource>,
    ) -> Result<Option<Change>> {
        match self {
            Provider::Postgres(p) => p.plan(desired, actual).await,
            #[cfg(feature = "duckdb")]
            Provider::DuckDb(p) => tokio::task::block_in_place(|| p.plan(desired, actual)),
        }
    }

    /// Runs a change's statements in one transaction.
    pub async fn apply(&self, change: &Change) -> Result<()> {
        match self {
            Provider::Postgres(p) => p.apply(change).await,
            #[cfg(feature = "duckdb")]
            Provider::DuckDb(p) => tokio::task::block_in_place(|| p.apply(change)),
        }
    }
}
