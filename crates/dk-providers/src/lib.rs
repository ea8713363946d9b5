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

/// The DuckDB settings of a store's connection, as `(option, value)`: `threads` and
/// `memory_limit` (shorthands) and every entry of `settings` (any DuckDB configuration option:
/// `memory_limit`, `temp_directory`, `preserve_insertion_order`, …). The one reading of these
/// fields: the provider, the data plane and dbt's profile use it.
pub fn duckdb_settings(store: &ResolvedStore) -> Result<Vec<(String, String)>> {
    let config_err = |message: String| ProviderError::Config {
        store: store.name.clone(),
        message,
    };
    let scalar = |key: &str, v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Ok(s.trim().to_string()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        other => Err(config_err(format!(
            "connection.{key} must be a string, number or boolean, got {other}"
        ))),
    };
    let mut out: Vec<(String, String)> = Vec::new();
    if let Some(v) = store.connection.get("threads").filter(|v| !v.is_null()) {
        let n = scalar("threads", v)?;
        if !n.parse::<u64>().is_ok_and(|n| n > 0) {
            return Err(config_err(format!(
                "connection.threads must be a positive integer, got {v}"
            )));
        }
        out.push(("threads".into(), n));
    }
    if let Some(v) = store
        .connection
        .get("memory_limit")
        .filter(|v| !v.is_null())
    {
        out.push(("memory_limit".into(), scalar("memory_limit", v)?));
    }
    match store.connection.get("settings") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(map)) => {
            for (k, v) in map {
                let value = scalar(&format!("settings.{k}"), v)?;
                out.retain(|(o, _)| o != k);
                out.push((k.clone(), value));
            }
        }
        Some(other) => {
            return Err(config_err(format!(
                "connection.settings must be a map of DuckDB options (e.g. {{memory_limit: 1GB}}), got {other}"
            )))
        }
    }
    Ok(out)
}
