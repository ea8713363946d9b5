//! The DuckDB data plane: one database instance per file and process (DuckDB must not open a
//! file twice), every operation on its own cloned connection on a blocking thread. Reads stream
//! with `stream_arrow`; writes go through the Arrow appender (which casts to the table's types)
//! inside one transaction; merge stages the batches in a temporary table, then deletes the
//! matching keys and inserts, in the same transaction.

#![cfg(feature = "duckdb")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use arrow::array::RecordBatch;
use dk_env::ResolvedStore;
use duckdb::{Config, Connection};

use super::schema::{conform, DeclaredColumn};
use super::{blocking, quote_ident, quote_literal, BatchStream, WriteMode, WriteReport};
use crate::error::{Result, RuntimeError};

/// Process-wide DuckDB instances by file (`:memory:` databases are private to one plane).
fn instances() -> &'static Mutex<HashMap<PathBuf, Connection>> {
    static INSTANCES: OnceLock<Mutex<HashMap<PathBuf, Connection>>> = OnceLock::new();
    INSTANCES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A DuckDB store.
pub struct DuckPlane {
    /// The store as resolved: its name, and its settings, which configure the instance (also
    /// when it is reopened after [`DuckPlane::release`]).
    pub(crate) resolved: Box<ResolvedStore>,
    /// The connection operations clone; `None` after [`DuckPlane::release`] until the next use.
    root: Mutex<Option<Connection>>,
    /// The database file (`None` for `:memory:`) and its registry key.
    file: Option<(PathBuf, PathBuf)>,
}

/// The store's DuckDB configuration (the provider's: `threads`, `memory_limit`, `settings`).
fn duck_config(store: &ResolvedStore) -> Result<Config> {
    dk_providers::duckdb::config_for(store).map_err(|e| RuntimeError::Config(e.to_string()))
}

/// A connection to the process-wide instance of `path` (opened when there is none).
fn shared_connection(rs: &ResolvedStore, path: &Path, key: &Path) -> Result<Connection> {
    let store = rs.name.as_str();
    let mut map = instances().lock().unwrap_or_else(|p| p.into_inner());
    match map.get(key) {
        Some(c) => c
            .try_clone()
            .map_err(|e| RuntimeError::db(store, "clone connection", e)),
        None => {
            let c = Connection::open_with_flags(path, duck_config(rs)?).map_err(|e| {
                RuntimeError::db(store, format!("open DuckDB database {}", path.display()), e)
            })?;
            let clone = c
                .try_clone()
                .map_err(|e| RuntimeError::db(store, "clone connection", e))?;
            map.insert(key.to_path_buf(), c);
            Ok(clone)
        }
    }
}

impl DuckPlane {
    pub fn open(store: &ResolvedStore, project_root: &Path) -> Result<DuckPlane> {
        let raw = match store.connection.get("path") {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                return Err(RuntimeError::Config(format!(
                    "store {}: connection.path must be the DuckDB file (relative to the project root) or \":memory:\"",
                    store.name
                )))
            }
        };
        if raw == ":memory:" {
            let conn = Connection::open_in_memory_with_flags(duck_config(store)?)
                .map_err(|e| RuntimeError::db(&store.name, "open :memory:", e))?;
            return Ok(DuckPlane {
                resolved: Box::new(store.clone()),
                root: Mutex::new(Some(conn)),
                file: None,
            });
        }
        let path = dk_providers::duckdb::resolve_path(project_root, &raw);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| RuntimeError::file("create directory", parent, e))?;
        }
        let key = path
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .and_then(|p| path.file_name().map(|n| p.join(n)))
            .unwrap_or_else(|| path.clone());
        let conn = shared_connection(store, &path, &key)?;
        Ok(DuckPlane {
            resolved: Box::new(store.clone()),
            root: Mutex::new(Some(conn)),
            file: Some((path, key)),
        })
    }

    fn conn(&self) -> Result<Connection> {
        let mut root = self.root.lock().unwrap_or_else(|p| p.into_inner());
        if root.is_none() {
            if let Some((path, key)) = &self.file {
                *root = Some(shared_connection(&self.resolved, path, key)?);
            }
        }
        match root.as_ref() {
            Some(c) => c
                .try_clone()
                .map_err(|e| RuntimeError::db(&self.resolved.name, "clone connection", e)),
            None => Err(RuntimeError::Internal(format!(
                "store {}: the in-memory database was released",
                self.resolved.name
            ))),
        }
    }

    /// Closes this process's handle on the database file (another process — dbt, a Python
    /// script — may then open it); the next operation reopens it. No-op for `:memory:`.
    pub fn release(&self) {
        let Some((_, key)) = &self.file else {
            return;
        };
        let mut root = self.root.lock().unwrap_or_else(|p| p.into_inner());
        *root = None;
        instances()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    pub async fn query(&self, sql: String) -> Result<BatchStream> {
        let conn = self.conn()?;
        let store = self.resolved.name.clone();
        let (schema_tx, schema_rx) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let mut stmt = match conn.prepare(&sql) {
                Ok(s) => s,
                Err(e) => {
                    let _ = schema_tx.send(Err(RuntimeError::db(&store, "query", e)));
                    return;
                }
            };
            let mut stream = match stmt.stream_arrow([]) {
                Ok(s) => s,
                Err(e) => {
                    let _ = schema_tx.send(Err(RuntimeError::db(&store, "query", e)));
                    return;
                }
            };
            let (tx, out) = BatchStream::channel(stream.get_schema());
            if schema_tx.send(Ok(out)).is_err() {
                return;
            }
            for item in stream.by_ref() {
                let item = item.map_err(|e| RuntimeError::db(&store, "query", e));
                let stop = item.is_err();
                if tx.blocking_send(item).is_err() || stop {
                    return;
                }
            }
        });
        schema_rx
            .await
            .map_err(|_| RuntimeError::Internal("DuckDB query thread ended early".into()))?
    }

    pub async fn execute(&self, sql: String) -> Result<u64> {
        let conn = self.conn()?;
        let store = self.resolved.name.clone();
        blocking(move || {
            // A single statement reports its row count; a batch does not.
            match conn.execute(&sql, []) {
                Ok(n) => Ok(n as u64),
                Err(duckdb::Error::MultipleStatement) => conn
                    .execute_batch(&sql)
                    .map(|_| 0)
                    .map_err(|e| RuntimeError::db(&store, "execute", e)),
                Err(e) => Err(RuntimeError::db(&store, "execute", e)),
            }
        })
        .await
    }

    pub async fn transaction(&self, statements: Vec<String>) -> Result<Vec<u64>> {
        let conn = self.conn()?;
        let store = self.resolved.name.clone();
        blocking(move || {
            conn.execute_batch("BEGIN TRANSACTION")
                .map_err(|e| RuntimeError::db(&store, "begin", e))?;
            let mut counts = Vec::with_capacity(statements.len());
            for s in &statements {
                match conn.execute(s, []) {
                    Ok(n) => counts.push(n as u64),
                    Err(e) => {
                        let _ = conn.execute_batch("ROLLBACK");
                        return Err(RuntimeError::db(&store, first_line(s), e));
                    }
                }
            }
            conn.execute_batch("COMMIT")
                .map_err(|e| RuntimeError::db(&store, "commit", e))?;
            Ok(counts)
        })
        .await
    }

    pub async fn columns(
        &self,
        schema: String,
        name: String,
    ) -> Result<Option<Vec<DeclaredColumn>>> {
        let conn = self.conn()?;
        let store = self.resolved.name.clone();
        blocking(move || {
            let sql = format!(
                "SELECT column_name, data_type, is_nullable FROM duckdb_columns() \
                 WHERE database_name = current_database() AND schema_name = {} AND table_name = {} \
                 ORDER BY column_index",
                quote_literal(&schema),
                quote_literal(&name)
            );
            let mut stmt = conn
                .prepare(&sql)
                .map_err(|e| RuntimeError::db(&store, "read columns", e))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, bool>(2)?,
                    ))
                })
                .map_err(|e| RuntimeError::db(&store, "read columns", e))?
                .collect::<duckdb::Result<Vec<_>>>()
                .map_err(|e| RuntimeError::db(&store, "read columns", e))?;
            if rows.is_empty() {
                return Ok(None);
            }
            rows.into_iter()
                .map(|(n, t, nullable)| {
                    let ty = dk_providers::duckdb::logical_type(&t).ok_or_else(|| {
                        RuntimeError::Schema(format!(
                            "store {store}: column {schema}.{name}.{n} has type {t}, which dk cannot read or write (no logical type)"
                        ))
                    })?;
                    Ok(DeclaredColumn {
                        name: n,
                        ty,
                        nullable,
                    })
                })
                .collect::<Result<Vec<_>>>()
                .map(Some)
        })
        .await
    }

    pub async fn write(
        &self,
        schema: String,
        name: String,
        columns: Vec<DeclaredColumn>,
        mut stream: BatchStream,
        mode: WriteMode,
    ) -> Result<WriteReport> {
        let conn = self.conn()?;
        let store = self.resolved.name.clone();
        blocking(move || {
            let context = format!("store {store}: table {schema}.{name}");
            let err = |what: &str, e: duckdb::Error| {
                RuntimeError::db(&store, format!("{schema}.{name}: {what}"), e)
            };
            let target = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
            conn.execute_batch("BEGIN TRANSACTION")
                .map_err(|e| err("begin", e))?;
            let result = (|| -> Result<u64> {
                let stage = match &mode {
                    WriteMode::Merge { .. } => {
                        let s = format!("dk_stage_{}", uuid::Uuid::new_v4().simple());
                        conn.execute_batch(&format!(
                            "CREATE TEMP TABLE {} AS SELECT * FROM {target} LIMIT 0",
                            quote_ident(&s)
                        ))
                        .map_err(|e| err("create staging table", e))?;
                        Some(s)
                    }
                    WriteMode::Overwrite => {
                        conn.execute_batch(&format!("DELETE FROM {target}"))
                            .map_err(|e| err("delete old rows", e))?;
                        None
                    }
                    WriteMode::Append => None,
                };
                let mut rows = 0u64;
                {
                    let mut app = match &stage {
                        Some(s) => conn.appender_to_catalog_and_db(s, "temp", "main"),
                        None => conn.appender_to_db(&name, &schema),
                    }
                    .map_err(|e| err("open appender", e))?;
                    while let Some(batch) = stream.blocking_next() {
                        let batch: RecordBatch = conform(&batch?, &columns, &context)?;
                        rows += batch.num_rows() as u64;
                        app.append_record_batch(batch)
                            .map_err(|e| err("append rows", e))?;
                    }
                    app.flush().map_err(|e| err("flush rows", e))?;
                }
                if let (Some(s), WriteMode::Merge { keys }) = (&stage, &mode) {
                    let s = format!("temp.main.{}", quote_ident(s));
                    let on = keys
                        .iter()
                        .map(|k| format!("{target}.{q} = {s}.{q}", q = quote_ident(k)))
                        .collect::<Vec<_>>()
                        .join(" AND ");
                    conn.execute_batch(&format!(
                        "DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {s} WHERE {on}); \
                         INSERT INTO {target} SELECT * FROM {s}; DROP TABLE {s}"
                    ))
                    .map_err(|e| err("merge staged rows", e))?;
                }
                Ok(rows)
            })();
            match result {
                Ok(rows) => {
                    conn.execute_batch("COMMIT").map_err(|e| err("commit", e))?;
                    Ok(WriteReport { rows })
                }
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(e)
                }
            }
        })
        .await
    }
}

/// The first line of a statement, for error contexts.
pub(crate) fn first_line(sql: &str) -> String {
    let l = sql.trim().lines().next().unwrap_or("");
    if l.len() > 80 {
        format!(
            "{}…",
            &l[..l.char_indices().nth(80).map_or(l.len(), |(i, _)| i)]
        )
    } else {
        l.to_string()
    }
}
