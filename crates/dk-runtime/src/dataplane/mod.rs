//! The data plane (DESIGN §5 `DataPlane`): read, write and query data in a store as streams of
//! Arrow [`RecordBatch`]es.
//!
//! One [`DataPlane`] per store, from [`DataPlane::connect`] with the store as resolved for the
//! environment and the project root (relative paths are anchored there):
//!
//! | connector type          | engine                                         |
//! |-------------------------|------------------------------------------------|
//! | `duckdb`                | embedded DuckDB (one database instance per file and process, calls on blocking threads) |
//! | `postgres`/`postgresql` | tokio-postgres; reads and writes with binary `COPY` |
//! | `file`                  | CSV, Parquet and JSON-lines files under `connection.path` + the DataSet's `prefix` |
//!
//! The API (what `dk run`, the runtimes and the data checks call):
//!
//! * [`DataPlane::query`]`(sql)` → a [`BatchStream`]: the rows of one SELECT, streamed (DuckDB
//!   and PostgreSQL; files have no SQL). Quote names with [`quote_ident`] / [`quote_literal`] and
//!   refer to a dataset with [`DataPlane::relation`].
//! * [`DataPlane::execute`]`(sql)` → rows affected; several `;`-separated statements are allowed
//!   (then the count is 0).
//! * [`DataPlane::scan`]`(target, options)` → a [`BatchStream`] of a table or of the files under
//!   a prefix, optionally only the rows whose cursor column is greater than a value.
//! * [`DataPlane::guarantees`]`(tables)` → what the tables' definitions enforce (NOT NULL
//!   columns, single-column unique indexes and keys), one catalog query for all of them; the data
//!   checks use it to pass `not_null`/`unique` without scanning.
//! * [`DataPlane::write`]`(target, stream, mode)` → rows written, with [`WriteMode`] append,
//!   overwrite (atomic: readers see the old or the new content) or merge on key columns (rows with
//!   a key already present replace the old ones). Batches are conformed to the target's columns
//!   (declared, or the table's own): see [`schema::conform`].
//!
//! Streaming end to end: a producer (a blocking thread for DuckDB and files, a task for
//! PostgreSQL) sends batches through a bounded channel of [`CHANNEL_BATCHES`] batches to the
//! consumer, so memory stays flat however many rows flow.

mod duck;
mod files;
mod pg;
pub mod pgcopy;
pub mod schema;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use dk_env::ResolvedStore;
use dk_manifest::model::DataSet;
use tokio::sync::mpsc;

pub use dk_providers::{quote_ident, quote_literal};
pub use schema::DeclaredColumn;

use crate::error::{Result, RuntimeError};

/// How many batches may wait between a producer and its consumer.
pub const CHANNEL_BATCHES: usize = 2;

/// Rows per batch that producers aim for (DuckDB yields its own vector-sized chunks).
pub const BATCH_ROWS: usize = 32_768;

/// A stream of record batches with a known schema. Dropping it stops the producer.
pub struct BatchStream {
    schema: SchemaRef,
    rx: mpsc::Receiver<Result<RecordBatch>>,
}

impl std::fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchStream")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl BatchStream {
    /// A stream and the sender its producer feeds.
    pub fn channel(schema: SchemaRef) -> (mpsc::Sender<Result<RecordBatch>>, BatchStream) {
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        (tx, BatchStream { schema, rx })
    }

    /// A stream over batches already in memory (tests, fixtures).
    pub fn from_batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> BatchStream {
        let (tx, rx) = mpsc::channel(batches.len().max(1));
        for b in batches {
            // Capacity is the number of batches: never full.
            let _ = tx.try_send(Ok(b));
        }
        BatchStream { schema, rx }
    }

    /// The schema of every batch.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The next batch; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<RecordBatch>> {
        self.rx.recv().await
    }

    /// The next batch, from a blocking thread.
    pub fn blocking_next(&mut self) -> Option<Result<RecordBatch>> {
        self.rx.blocking_recv()
    }

    /// Every batch (for small results: check queries, tests).
    pub async fn collect(mut self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        while let Some(b) = self.next().await {
            out.push(b?);
        }
        Ok(out)
    }

    /// Applies `f` to every batch as it passes (used to count rows and track cursors).
    pub fn map<F>(mut self, schema: SchemaRef, mut f: F) -> BatchStream
    where
        F: FnMut(RecordBatch) -> Result<RecordBatch> + Send + 'static,
    {
        let (tx, out) = BatchStream::channel(schema);
        tokio::spawn(async move {
            while let Some(item) = self.next().await {
                let mapped = item.and_then(&mut f);
                let stop = mapped.is_err();
                if tx.send(mapped).await.is_err() || stop {
                    break;
                }
            }
        });
        out
    }
}

/// Where a dataset's data lives in its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A table (or view, for reads) in a database store.
    Table { schema: String, name: String },
    /// Files of one format under a prefix of a file store.
    Files { prefix: String, format: FileFormat },
}

/// File formats of the `file` store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Parquet,
    JsonLines,
}

impl FileFormat {
    /// From a DataSet's `format` (`csv`, `parquet`, `json`/`jsonl`/`ndjson`).
    pub fn parse(s: &str) -> Option<FileFormat> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Some(FileFormat::Csv),
            "parquet" => Some(FileFormat::Parquet),
            "json" | "jsonl" | "ndjson" | "jsonlines" => Some(FileFormat::JsonLines),
            _ => None,
        }
    }

    /// The file extensions read for this format; the first is the one written.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            FileFormat::Csv => &["csv"],
            FileFormat::Parquet => &["parquet"],
            FileFormat::JsonLines => &["jsonl", "ndjson", "json"],
        }
    }
}

impl Target {
    /// Where `ds` lives in `store` (its resolved store).
    pub fn of_dataset(ds: &DataSet, store: &ResolvedStore) -> Result<Target> {
        let name = &ds.metadata.name;
        if store.connector_type == "file" {
            let prefix = ds.spec.prefix.clone().ok_or_else(|| {
                RuntimeError::Config(format!(
                    "dataset {name} is in file store {} but has no `prefix` (the folder of its files under the store's path)",
                    store.name
                ))
            })?;
            let fmt = ds.spec.format.as_deref().ok_or_else(|| {
                RuntimeError::Config(format!(
                    "dataset {name} is in file store {} but has no `format`: set csv, parquet or jsonl",
                    store.name
                ))
            })?;
            let format = FileFormat::parse(fmt).ok_or_else(|| {
                RuntimeError::Config(format!(
                    "dataset {name}: format \"{fmt}\" cannot be read or written by dk; use csv, parquet or jsonl"
                ))
            })?;
            return Ok(Target::Files { prefix, format });
        }
        let table = ds.spec.table.as_deref().ok_or_else(|| {
            RuntimeError::Config(format!(
                "dataset {name} is in store {} (type {}) but has no `table`",
                store.name, store.connector_type
            ))
        })?;
        let (schema, name) = dk_engine::compile::split_table(table, &store.connector_type);
        Ok(Target::Table { schema, name })
    }

    /// How it reads in messages (`main.orders`, `raw/orders/*.csv`).
    pub fn describe(&self) -> String {
        match self {
            Target::Table { schema, name } => format!("{schema}.{name}"),
            Target::Files { prefix, format } => {
                format!("{}*.{}", prefix, format.extensions()[0])
            }
        }
    }
}

/// How [`DataPlane::write`] combines new rows with what is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// Add the rows.
    Append,
    /// Replace the whole content, atomically.
    Overwrite,
    /// Rows whose key columns match an existing row replace it; others are added.
    Merge { keys: Vec<String> },
}

/// What to read in [`DataPlane::scan`].
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Only these columns (all when empty).
    pub columns: Vec<String>,
    /// Only rows whose `column` is greater than `value` (text form of the cursor value).
    pub after: Option<(String, String)>,
    /// Declared columns of the dataset read, used to type file columns (files carry text).
    pub declared: Vec<DeclaredColumn>,
}

/// The result of a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Rows written.
    pub rows: u64,
}

/// What a table's definition enforces about its columns: checks these imply pass without a
/// scan (see `checks`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guarantees {
    /// Columns declared `NOT NULL`.
    pub not_null: HashSet<String>,
    /// Columns covered on their own by a valid unique index, unique constraint or primary key
    /// (not partial, not on an expression) → what enforces it (`unique index events_id_key`).
    pub unique: HashMap<String, String>,
}

/// Every value of a result column as text (`None` for NULL), whatever its Arrow type.
pub fn text_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let idx = batch
        .schema()
        .index_of(name)
        .map_err(|e| RuntimeError::Internal(format!("query result has no column {name}: {e}")))?;
    let arr = arrow::compute::cast(batch.column(idx), &DataType::Utf8)
        .map_err(|e| RuntimeError::Internal(format!("result column {name}: {e}")))?;
    let s = arr
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| RuntimeError::Internal(format!("result column {name} is not text")))?;
    Ok((0..s.len())
        .map(|r| (!s.is_null(r)).then(|| s.value(r).to_string()))
        .collect())
}

/// SQL dialect of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    DuckDb,
    Postgres,
    /// Files: no SQL.
    Files,
}

/// A connected data plane for one store.
pub enum DataPlane {
    #[cfg(feature = "duckdb")]
    DuckDb(duck::DuckPlane),
    Postgres(Box<pg::PgPlane>),
    Files(files::FilePlane),
}

impl std::fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataPlane({}, {:?})", self.store(), self.dialect())
    }
}

impl DataPlane {
    /// Connects to a store resolved for an environment. `project_root` anchors relative paths
    /// (DuckDB files, file stores).
    pub async fn connect(store: &ResolvedStore, project_root: &Path) -> Result<DataPlane> {
        match store.connector_type.as_str() {
            #[cfg(feature = "duckdb")]
            "duckdb" => Ok(DataPlane::DuckDb(duck::DuckPlane::open(
                store,
                project_root,
            )?)),
            "postgres" | "postgresql" => Ok(DataPlane::Postgres(Box::new(
                pg::PgPlane::connect(store).await?,
            ))),
            "file" | "files" | "local" => Ok(DataPlane::Files(files::FilePlane::open(
                store,
                project_root,
            )?)),
            other => Err(RuntimeError::UnsupportedStore {
                store: store.name.clone(),
                connector_type: other.to_string(),
            }),
        }
    }

    /// The store's name.
    pub fn store(&self) -> &str {
        match self {
            #[cfg(feature = "duckdb")]
            DataPlane::DuckDb(p) => &p.resolved.name,
            DataPlane::Postgres(p) => &p.resolved.name,
            DataPlane::Files(p) => &p.store,
        }
    }

    /// The SQL dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            #[cfg(feature = "duckdb")]
            DataPlane::DuckDb(_) => Dialect::DuckDb,
            DataPlane::Postgres(_) => Dialect::Postgres,
            DataPlane::Files(_) => Dialect::Files,
        }
    }

    /// The quoted relation of a table target (`"main"."orders"`); files have none.
    pub fn relation(&self, target: &Target) -> Result<String> {
        match target {
            Target::Table { schema, name } => {
                Ok(format!("{}.{}", quote_ident(schema), quote_ident(name)))
            }
            Target::Files { .. } => Err(RuntimeError::Config(format!(
                "store {}: {} is files, which have no SQL relation",
                self.store(),
                target.describe()
            ))),
        }
    }

    fn no_sql(&self) -> RuntimeError {
        RuntimeError::Config(format!(
            "store {} holds files: it runs no SQL (sync its data into a database store first)",
            self.store()
        ))
    }

    /// The rows of one query, streamed.
    pub async fn query(&self, sql: &str) -> Result<BatchStream> {
        match self {
            #[cfg(feature = "duckdb")]
            DataPlane::DuckDb(p) => p.query(sql.to_string()).await,
            DataPlane::Postgres(p) => p.query(sql).await,
            DataPlane::Files(_) => Err(self.no_sql()),
        }
    }

    /// Runs statements; returns the rows affected by a single statement (0 for several).
    /// Lets another process open the store's files: closes this process's handle on a DuckDB
    /// file until the next operation (no-op for other stores).
    pub fn release(&self) {
        match self {
            #[cfg(feature = "duckdb")]
            DataPlane::DuckDb(p) => p.release(),
            _ => {}
        }
    }

    pub async fn execute(&self, sql: &str) -> Result<u64> {
        match self {
            #[cfg(feature = "duckdb")]
            DataPlane::DuckDb(p) => p.execute(sql.to_string()).await,
            DataPlane::Postgres(p) => p.execute(sql).await,
            DataPlane::Files(_) => Err(self.no_sql()),
        }
    }

    /// Runs statements in one transaction on a connection of their own (PostgreSQL: an idle
    /// pooled one, all statements in one round trip); returns each statement's row count. Any
    /// failure rolls the whole transaction back and names the statement.
    pub async fn transaction(&self, statements: &[String]) -> Result<Vec<u64>> {
        let statements: Vec<String> = statements
            .iter()
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .collect();
        match self {
            #[cfg(feature = "duckdb")]
            DataPlane::DuckDb(p) => p.transaction(statements).await,
            DataPlane::Postgres(p) => p.transaction(&statements).await,
            DataPlane::Files(_) => Err(self.no_sql()),
        }
    }

    /// What the definitions of these tables (`(schema, name)`) enforce, in one catalog query.
    /// Tables that are missing, views and file stores have no entry.
    pub async fn guarantees(
        &self,
        tables: &[(String, String)],
    ) -> Result<HashMap<(String, String), Guarantees>> {
        let mut out: HashMap<(String, String), Guarantees> = HashMap::new();
        if tables.is_empty() {
            return Ok(out);
        }
        let pairs = |s: &str, t: &str| {
            tables
                .iter()
                .map(|(a, b)| {
                    format!(
                        "({s} = {} AND {t} = {})",
                        quote_literal(a),
                        quote_literal(b)
                    )
                })
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        let sql = match self.dialect() {
            // A NOT NULL column, or the first (oldest-named, primary key first) valid unique
            // index whose only key column it is, with no predicate and no expression.
            Dialect::Postgres => format!(
                "SELECT n.nspname::text AS s, c.relname::text AS t, a.attname::text AS col, \
                   CASE WHEN a.attnotnull THEN 'NOT NULL' END AS nn, \
                   (SELECT CASE WHEN x.indisprimary THEN 'primary key ' ELSE 'unique index ' END || i.relname::text \
                      FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid \
                     WHERE x.indrelid = c.oid AND x.indisunique AND x.indisvalid AND x.indnkeyatts = 1 \
                       AND x.indkey[0] = a.attnum AND x.indpred IS NULL AND x.indexprs IS NULL \
                     ORDER BY x.indisprimary DESC, i.relname LIMIT 1) AS uq \
                 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 WHERE c.relkind IN ('r', 'p') AND ({})",
                pairs("n.nspname", "c.relname")
            ),
            Dialect::DuckDb => format!(
                "SELECT schema_name AS s, table_name AS t, constraint_column_names[1] AS col, \
                   CASE WHEN constraint_type = 'NOT NULL' THEN 'NOT NULL' END AS nn, \
                   CASE WHEN constraint_type <> 'NOT NULL' THEN constraint_type || ' (' || constraint_column_names[1] || ')' END AS uq \
                 FROM duckdb_constraints() \
                 WHERE database_name = current_database() \
                   AND constraint_type IN ('NOT NULL', 'UNIQUE', 'PRIMARY KEY') \
                   AND len(constraint_column_names) = 1 AND ({})",
                pairs("schema_name", "table_name")
            ),
            Dialect::Files => return Ok(out),
        };
        for b in self.query(&sql).await?.collect().await? {
            let col = |c: &str| text_column(&b, c);
            let (ss, ts, cs, nns, uqs) =
                (col("s")?, col("t")?, col("col")?, col("nn")?, col("uq")?);
            for ((((s, t), c), nn), uq) in ss.into_iter().zip(ts).zip(cs).zip(nns).zip(uqs) {
                let (Some(s), Some(t), Some(c)) = (s, t, c) else {
                    continue;
                };
                let g = out.entry((s, t)).or_default();
                if nn.is_some() {
                    g.not_null.insert(c.clone());
                }
                if let Some(u) = uq {
                    g.unique.entry(c).or_insert(u);
                }
            }
        }
        Ok(out)
    }

    /// Whether a table (or view) exists.
    pub async fn exists(&self, target: &Target) -> Result<bool> {
        Ok(self.columns(target).await?.is_some())
    }

    /// The columns of a table as logical types, `None` when it does not exist. For files: the
    /// declared columns are authoritative, so this returns `Some(empty)` when files exist.
    pub async fn columns(&self, target: &Target) -> Result<Option<Vec<DeclaredColumn>>> {
        match (self, target) {
            #[cfg(feature = "duckdb")]
            (DataPlane::DuckDb(p), Target::Table { schema, name }) => {
                p.columns(schema.clone(), name.clone()).await
            }
            (DataPlane::Postgres(p), Target::Table { schema, name }) => {
                p.columns(schema, name).await
            }
            (DataPlane::Files(p), Target::Files { prefix, format }) => {
                Ok((!p.list(prefix, *format)?.is_empty()).then(Vec::new))
            }
            _ => Err(self.mismatch(target)),
        }
    }

    fn mismatch(&self, target: &Target) -> RuntimeError {
        RuntimeError::Config(format!(
            "store {} cannot hold {} (a {} needs a {} store)",
            self.store(),
            target.describe(),
            match target {
                Target::Table { .. } => "table",
                Target::Files { .. } => "file prefix",
            },
            match target {
                Target::Table { .. } => "database",
                Target::Files { .. } => "file",
            }
        ))
    }

    /// Creates a table with these columns when it does not exist (and its schema).
    pub async fn ensure_table(&self, target: &Target, columns: &[DeclaredColumn]) -> Result<()> {
        let Target::Table { schema, name } = target else {
            return match self {
                DataPlane::Files(_) => Ok(()),
                _ => Err(self.mismatch(target)),
            };
        };
        let native = |c: &DeclaredColumn| match self.dialect() {
            #[cfg(feature = "duckdb")]
            Dialect::DuckDb => dk_providers::duckdb::native_type(c.ty),
            _ => dk_providers::postgres::native_type(c.ty),
        };
        let cols = columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    quote_ident(&c.name),
                    native(c),
                    if c.nullable { "" } else { " NOT NULL" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE IF NOT EXISTS {}.{} ({cols})",
            quote_ident(schema),
            quote_ident(schema),
            quote_ident(name)
        );
        self.execute(&sql).await.map(|_| ())
    }

    /// The rows a table (or view) holds, or the files under a prefix hold; `None` when it does
    /// not exist. One `count(*)` for tables; files are streamed and counted (memory stays flat).
    pub async fn count_rows(&self, target: &Target) -> Result<Option<u64>> {
        if !self.exists(target).await? {
            return Ok(None);
        }
        let mut stream = match target {
            Target::Table { .. } => {
                self.query(&format!(
                    "SELECT count(*) AS n FROM {}",
                    self.relation(target)?
                ))
                .await?
            }
            Target::Files { .. } => self.scan(target, &ScanOptions::default()).await?,
        };
        let mut n = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            match target {
                Target::Table { .. } => {
                    if batch.num_rows() > 0 {
                        let col = arrow::compute::cast(
                            batch.column(0),
                            &arrow::datatypes::DataType::UInt64,
                        )
                        .map_err(|e| RuntimeError::Internal(format!("count(*): {e}")))?;
                        let v = col
                            .as_any()
                            .downcast_ref::<arrow::array::UInt64Array>()
                            .filter(|a| !arrow::array::Array::is_null(*a, 0))
                            .map(|a| a.value(0));
                        n += v.unwrap_or(0);
                    }
                }
                Target::Files { .. } => n += batch.num_rows() as u64,
            }
        }
        Ok(Some(n))
    }

    /// Reads a table or the files under a prefix.
    pub async fn scan(&self, target: &Target, options: &ScanOptions) -> Result<BatchStream> {
        match (self, target) {
            (DataPlane::Files(p), Target::Files { prefix, format }) => {
                p.scan(prefix, *format, options)
            }
            (DataPlane::Files(_), _) => Err(self.mismatch(target)),
            (_, Target::Table { schema, name }) => {
                let cols = if options.columns.is_empty() {
                    "*".to_string()
                } else {
                    options
                        .columns
                        .iter()
                        .map(|c| quote_ident(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let mut sql = format!(
                    "SELECT {cols} FROM {}.{}",
                    quote_ident(schema),
                    quote_ident(name)
                );
                if let Some((col, value)) = &options.after {
                    sql.push_str(&format!(
                        " WHERE {} > {}",
                        quote_ident(col),
                        quote_literal(value)
                    ));
                }
                match self {
                    DataPlane::Postgres(p) => {
                        p.scan_table(schema, name, &sql, &options.declared).await
                    }
                    _ => self.query(&sql).await,
                }
            }
            _ => Err(self.mismatch(target)),
        }
    }

    /// Writes a stream into a table or under a prefix. `declared` are the target dataset's
    /// declared columns (empty: the table's own columns, or the stream's for new files/tables).
    pub async fn write(
        &self,
        target: &Target,
        stream: BatchStream,
        mode: &WriteMode,
        declared: &[DeclaredColumn],
    ) -> Result<WriteReport> {
        if let WriteMode::Merge { keys } = mode {
            if keys.is_empty() {
                return Err(RuntimeError::Config(format!(
                    "store {}: merge into {} needs key columns (uniqueKey)",
                    self.store(),
                    target.describe()
                )));
            }
        }
        match (self, target) {
            (DataPlane::Files(p), Target::Files { prefix, format }) => {
                p.write(prefix, *format, stream, mode, declared).await
            }
            (DataPlane::Files(_), _) | (_, Target::Files { .. }) => Err(self.mismatch(target)),
            (_, Target::Table { schema, name }) => {
                let columns = match self.columns(target).await? {
                    Some(c) => c,
                    None => {
                        let cols = if declared.is_empty() {
                            schema::columns_of_schema(
                                &stream.schema(),
                                &format!("store {}: {}", self.store(), target.describe()),
                            )?
                        } else {
                            declared.to_vec()
                        };
                        self.ensure_table(target, &cols).await?;
                        cols
                    }
                };
                match self {
                    #[cfg(feature = "duckdb")]
                    DataPlane::DuckDb(p) => {
                        p.write(schema.clone(), name.clone(), columns, stream, mode.clone())
                            .await
                    }
                    DataPlane::Postgres(p) => p.write(schema, name, &columns, stream, mode).await,
                    DataPlane::Files(_) => Err(self.mismatch(target)),
                }
            }
        }
    }
}

/// Runs a blocking closure on the blocking pool and flattens its result.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Internal(format!("blocking task failed: {e}")))?
}
