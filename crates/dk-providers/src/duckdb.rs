//! DuckDB provider (embedded, the `duckdb` crate).
//!
//! One [`DuckProvider`] owns one connection to one database file (`connection.path`, relative to
//! the project root unless absolute; `:memory:` for a private in-memory database). Its methods are
//! synchronous; [`crate::Provider`] calls them inside `tokio::task::block_in_place`. Extension
//! auto-install/auto-load is switched off (DuckDB cannot download extensions here); the JSON
//! extension is compiled in (crate feature `json`), so `json` is a native type.
//!
//! # Type mapping
//!
//! | logical       | DuckDB (created)  | DuckDB (introspected, `duckdb_columns().data_type`) |
//! |---------------|-------------------|------------------------------------------------------|
//! | smallint      | `SMALLINT`        | `SMALLINT`                                           |
//! | integer       | `INTEGER`         | `INTEGER`                                            |
//! | bigint        | `BIGINT`          | `BIGINT`                                             |
//! | float         | `FLOAT`           | `FLOAT` (`REAL`, `FLOAT4`)                           |
//! | double        | `DOUBLE`          | `DOUBLE`                                             |
//! | decimal(p,s)  | `DECIMAL(p,s)`    | `DECIMAL(p,s)`                                       |
//! | boolean       | `BOOLEAN`         | `BOOLEAN`                                            |
//! | string        | `VARCHAR`         | `VARCHAR`                                            |
//! | date          | `DATE`            | `DATE`                                               |
//! | time          | `TIME`            | `TIME`                                               |
//! | timestamp     | `TIMESTAMP`       | `TIMESTAMP`                                          |
//! | timestamptz   | `TIMESTAMPTZ`     | `TIMESTAMP WITH TIME ZONE`                           |
//! | json          | `JSON`            | `JSON`                                               |
//! | binary        | `BLOB`            | `BLOB`                                               |
//! | uuid          | `UUID`            | `UUID`                                               |
//!
//! Native types with no logical counterpart (`TINYINT`, unsigned and 128-bit integers,
//! `INTERVAL`, `TIME WITH TIME ZONE`, `TIMESTAMP_S/MS/NS`, `BIT`, `ENUM`, lists, structs, maps,
//! unions, …) are never coerced to a nearby type: refreshing a schema holding a table with such a
//! column fails with [`ProviderError::Unrepresentable`] naming the table, the column and the
//! native type (change the column or keep the table out of the managed schemas).
//!
//! # Views
//!
//! DuckDB does not keep the text of `CREATE VIEW`: `duckdb_views().sql` holds a statement it
//! regenerates from the parsed query (comments dropped, expressions parenthesised, the schema
//! left out of the name), so the query read back from the catalog would rarely equal the desired
//! one. dk therefore records the query it created the view with in the view's comment, after the
//! marker [`VIEW_SQL_MARKER`] (`<comment>\n-- dk:view-sql --\n<query>`; with no comment the text
//! starts at `-- dk:view-sql --`). Refresh returns the recorded query and the comment without the
//! marker. Every way of redefining a view (`CREATE OR REPLACE VIEW`, `DROP` + `CREATE`) resets its
//! comment, so a recorded copy always belongs to the query the view runs; a view with no
//! recorded copy (made, redefined or re-commented outside dk) is read from the catalog text: the
//! text after its first top-level `AS`, which then shows as a query change until dk recreates it.
//! Views are created with the query as desired (a trailing `;` removed) and the recorded copy is the
//! desired text verbatim. View columns are
//! not introspected: a view's declared columns are a declaration the diff ignores, and refresh
//! returns views without columns (no comments are set on view columns either).
//!
//! # Impact
//!
//! `plan` measures destructive operations with one query per table: `count(*)` of a table that is
//! dropped (or replaced by a view); `count(col)` of every dropped or narrowed column; the rows
//! whose value is NULL for every column that becomes NOT NULL (every row, for a NOT NULL column
//! added without a default). A change is destructive when the diff gave a reason or when any
//! NOT NULL would be violated (a reason line is added for each; DuckDB refuses such a change, and
//! the whole transaction rolls back).
//!
//! # In-place changes
//!
//! DuckDB runs every operation the diff produces in place, so no table is ever rebuilt: `ADD
//! COLUMN … [NOT NULL]` (emitted before any `DROP COLUMN`, since DuckDB refuses to drop a table's
//! last column), `DROP COLUMN`, `ALTER COLUMN … SET DATA TYPE … USING CAST(…)` (values that do
//! not convert make the change fail rather than lose data), `SET/DROP NOT NULL`, `COMMENT ON
//! TABLE/COLUMN/VIEW … IS …|NULL`, `CREATE OR REPLACE VIEW` (its comment re-set after). Objects
//! are dropped without `CASCADE`; a schema is dropped only when empty, and the default schema
//! `main` (an internal DuckDB entry) is never dropped: its deletion plans no statement. A
//! change's statements run in one transaction. Table and column comments distinguish `''` from
//! no comment.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use dk_env::ResolvedStore;
use duckdb::{Config, Connection};

use crate::diff::diff;
use crate::model::{
    address, Action, Change, ColumnOp, ColumnSpec, Impact, LogicalType, Resource, ResourceKind,
    ResourceSpec,
};
use crate::{quote_ident, quote_literal, ProviderError, Result};

/// Separates a view's own comment from the copy of its query that dk records in the comment.
pub const VIEW_SQL_MARKER: &str = "\n-- dk:view-sql --\n";

/// Schemas that are DuckDB's own and never refreshed.
const SYSTEM_SCHEMAS: [&str; 2] = ["information_schema", "pg_catalog"];

/// The DuckDB type dk creates for a logical type.
pub fn native_type(t: LogicalType) -> String {
    use LogicalType::*;
    match t {
        SmallInt => "SMALLINT".into(),
        Integer => "INTEGER".into(),
        BigInt => "BIGINT".into(),
        Float => "FLOAT".into(),
        Double => "DOUBLE".into(),
        Decimal(p, s) => format!("DECIMAL({p},{s})"),
        Boolean => "BOOLEAN".into(),
        String => "VARCHAR".into(),
        Date => "DATE".into(),
        Time => "TIME".into(),
        Timestamp => "TIMESTAMP".into(),
        TimestampTz => "TIMESTAMPTZ".into(),
        Json => "JSON".into(),
        Binary => "BLOB".into(),
        Uuid => "UUID".into(),
    }
}

/// The logical type of an introspected DuckDB type (`duckdb_columns().data_type`); `None` when
/// it has no logical counterpart.
pub fn logical_type(native: &str) -> Option<LogicalType> {
    use LogicalType::*;
    let t = native.trim().to_ascii_uppercase();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(match t.as_str() {
        "SMALLINT" | "INT2" | "SHORT" => SmallInt,
        "INTEGER" | "INT" | "INT4" | "SIGNED" => Integer,
        "BIGINT" | "INT8" | "LONG" => BigInt,
        "FLOAT" | "REAL" | "FLOAT4" => Float,
        "DOUBLE" | "FLOAT8" => Double,
        "BOOLEAN" | "BOOL" | "LOGICAL" => Boolean,
        "VARCHAR" | "TEXT" | "STRING" | "CHAR" | "BPCHAR" => String,
        "DATE" => Date,
        "TIME" => Time,
        "TIMESTAMP" | "DATETIME" => Timestamp,
        "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => TimestampTz,
        "JSON" => Json,
        "BLOB" | "BYTEA" | "BINARY" | "VARBINARY" => Binary,
        "UUID" => Uuid,
        other => {
            let args = other
                .strip_prefix("DECIMAL(")
                .or_else(|| other.strip_prefix("NUMERIC("))?
                .strip_suffix(')')?;
            let (p, s) = args.split_once(',')?;
            let (p, s): (u8, u8) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
            if p == 0 || p > 38 || s > p {
                return None;
            }
            Decimal(p, s)
        }
    })
}

/// A connected DuckDB store.
pub struct DuckProvider {
    store: String,
    /// The database as the user should read it in messages (absolute path or `:memory:`).
    location: String,
    conn: Mutex<Connection>,
    queries: AtomicU64,
}

impl std::fmt::Debug for DuckProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckProvider")
            .field("store", &self.store)
            .field("location", &self.location)
            .finish()
    }
}

impl DuckProvider {
    /// Opens (creating it and its parent directories when missing) the database file of `store`.
    pub fn open(store: &ResolvedStore, project_root: &Path) -> Result<DuckProvider> {
        let config_err = |message: String| ProviderError::Config {
            store: store.name.clone(),
            message,
        };
        let raw = match store.connection.get("path") {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(other) => {
                return Err(config_err(format!(
                    "connection.path must be the DuckDB file (relative to the project root) or \":memory:\", got {other}"
                )))
            }
            None => {
                return Err(config_err(
                    "connection.path is missing: set it to the DuckDB file (relative to the project root) or \":memory:\"".into(),
                ))
            }
        };
        let config = config_for(store)?;
        let connect_err = |location: &str, message: String| ProviderError::Connect {
            store: store.name.clone(),
            message: format!("DuckDB database {location}: {message}"),
        };
        let (conn, location) = if raw == ":memory:" {
            let conn = Connection::open_in_memory_with_flags(config)
                .map_err(|e| connect_err(":memory:", e.to_string()))?;
            (conn, ":memory:".to_string())
        } else {
            let path = resolve_path(project_root, &raw);
            let location = path.display().to_string();
            if path.is_dir() {
                return Err(config_err(format!(
                    "connection.path {location} is a directory, not a DuckDB file"
                )));
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    connect_err(
                        &location,
                        format!("cannot create directory {}: {e}", parent.display()),
                    )
                })?;
            }
            let conn = Connection::open_with_flags(&path, config)
                .map_err(|e| connect_err(&location, e.to_string()))?;
            (conn, location)
        };
        Ok(DuckProvider {
            store: store.name.clone(),
            location,
            conn: Mutex::new(conn),
            queries: AtomicU64::new(0),
        })
    }

    /// The database file (absolute) or `:memory:`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// A second connection to the same database (for a data plane in the same process: DuckDB
    /// must not open one file twice).
    pub fn try_clone_connection(&self) -> Result<Connection> {
        self.conn()
            .try_clone()
            .map_err(|e| self.db_err("clone connection", e))
    }

    /// How many queries `refresh` and `plan` have sent to DuckDB so far (catalog and impact
    /// queries; `apply` statements are not counted). Exposed so tests can check that refresh is
    /// bulk.
    pub fn queries_run(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied change behind (changes run
        // in a transaction that rolls back when dropped), so a poisoned lock is still usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn db_err(&self, context: impl Into<String>, e: duckdb::Error) -> ProviderError {
        ProviderError::Database {
            store: self.store.clone(),
            context: context.into(),
            message: e.to_string(),
        }
    }

    /// Runs one query and maps its rows.
    fn query<T>(
        &self,
        conn: &Connection,
        context: &str,
        sql: &str,
        map: impl FnMut(&duckdb::Row<'_>) -> duckdb::Result<T>,
    ) -> Result<Vec<T>> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let mut stmt = conn.prepare(sql).map_err(|e| self.db_err(context, e))?;
        let rows = stmt
            .query_map([], map)
            .map_err(|e| self.db_err(context, e))?;
        rows.collect::<duckdb::Result<Vec<T>>>()
            .map_err(|e| self.db_err(context, e))
    }

    /// The columns a query returns (name and logical type when it has one), without running it
    /// (`DESCRIBE`). Fails when the query does not compile (e.g. a relation does not exist yet).
    pub fn describe_query(&self, sql: &str) -> Result<Vec<(String, Option<LogicalType>)>> {
        let conn = self.conn();
        let body = sql.trim().trim_end_matches(';');
        self.query(
            &conn,
            "describe the view's query",
            &format!("DESCRIBE {body}"),
            |r| {
                let name: String = r.get(0)?;
                let ty: String = r.get(1)?;
                Ok((name, logical_type(&ty)))
            },
        )
    }

    /// Every schema, table and view in `schemas` as it is now: one catalog query per object type
    /// (schemas; tables with their columns; views), whatever the number of objects.
    pub fn refresh(&self, schemas: &[String]) -> Result<Vec<Resource>> {
        let wanted: Vec<&String> = schemas
            .iter()
            .filter(|s| !SYSTEM_SCHEMAS.contains(&s.as_str()))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let list = wanted
            .iter()
            .map(|s| quote_literal(s))
            .collect::<Vec<_>>()
            .join(", ");
        let conn = self.conn();
        let mut out = Vec::new();

        let found = self.query(
            &conn,
            "refresh: list schemas",
            &format!(
                "SELECT schema_name FROM duckdb_schemas() \
                 WHERE database_name = current_database() AND schema_name IN ({list}) \
                 ORDER BY schema_name"
            ),
            |r| r.get::<_, String>(0),
        )?;
        for name in found {
            out.push(Resource::new(
                &self.store,
                ResourceSpec::Schema { name },
                Vec::new(),
            ));
        }

        struct Row {
            schema: String,
            table: String,
            comment: Option<String>,
            column: String,
            data_type: String,
            nullable: bool,
            column_comment: Option<String>,
        }
        let rows = self.query(
            &conn,
            "refresh: list tables and columns",
            &format!(
                "SELECT t.schema_name, t.table_name, t.comment, c.column_name, c.data_type, c.is_nullable, c.comment \
                 FROM duckdb_tables() t JOIN duckdb_columns() c ON c.table_oid = t.table_oid \
                 WHERE t.database_name = current_database() AND NOT t.temporary AND NOT t.internal \
                   AND t.schema_name IN ({list}) \
                 ORDER BY t.schema_name, t.table_name, c.column_index"
            ),
            |r| {
                Ok(Row {
                    schema: r.get(0)?,
                    table: r.get(1)?,
                    comment: r.get(2)?,
                    column: r.get(3)?,
                    data_type: r.get(4)?,
                    nullable: r.get(5)?,
                    column_comment: r.get(6)?,
                })
            },
        )?;
        let mut current: Option<(String, String, Option<String>, Vec<ColumnSpec>)> = None;
        let mut tables = Vec::new();
        for row in rows {
            let ty = logical_type(&row.data_type).ok_or_else(|| ProviderError::Unrepresentable {
                store: self.store.clone(),
                message: format!(
                    "column {} of table {}.{} has DuckDB type {}, which no dk logical type represents \
                     (smallint, integer, bigint, float, double, decimal(p,s), boolean, string, date, time, \
                     timestamp, timestamptz, json, binary, uuid); change the column's type or keep the table \
                     out of the managed schemas",
                    row.column, row.schema, row.table, row.data_type
                ),
            })?;
            let column = ColumnSpec {
                name: row.column,
                ty,
                nullable: row.nullable,
                comment: row.column_comment,
            };
            match &mut current {
                Some((s, t, _, cols)) if *s == row.schema && *t == row.table => cols.push(column),
                _ => {
                    tables.extend(current.take());
                    current = Some((row.schema, row.table, row.comment, vec![column]));
                }
            }
        }
        tables.extend(current);
        for (schema, name, comment, columns) in tables {
            let dep = address(ResourceKind::Schema, &self.store, &schema, "");
            out.push(Resource::new(
                &self.store,
                ResourceSpec::Table {
                    schema,
                    name,
                    columns,
                    comment,
                },
                vec![dep],
            ));
        }

        let views = self.query(
            &conn,
            "refresh: list views",
            &format!(
                "SELECT schema_name, view_name, sql, comment FROM duckdb_views() \
                 WHERE database_name = current_database() AND NOT temporary AND NOT internal \
                   AND schema_name IN ({list}) \
                 ORDER BY schema_name, view_name"
            ),
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            },
        )?;
        for (schema, name, text, comment) in views {
            let text = text.unwrap_or_default();
            let (sql, comment) = view_from_catalog(&text, comment);
            let dep = address(ResourceKind::Schema, &self.store, &schema, "");
            out.push(Resource::new(
                &self.store,
                ResourceSpec::View {
                    schema,
                    name,
                    sql,
                    columns: Vec::new(),
                    comment,
                },
                vec![dep],
            ));
        }
        Ok(out)
    }

    /// The change that turns `actual` into `desired`, with DuckDB statements and the measured
    /// impact of its destructive parts; `None` when they match.
    pub fn plan(
        &self,
        desired: Option<&Resource>,
        actual: Option<&Resource>,
    ) -> Result<Option<Change>> {
        let Some(d) = diff(desired, actual) else {
            return Ok(None);
        };
        let Some(subject) = desired.or(actual) else {
            return Ok(None);
        };
        let mut change = Change {
            address: subject.address.clone(),
            store: subject.store.clone(),
            action: d.action,
            before: actual.cloned(),
            after: desired.cloned(),
            ops: d.ops,
            destructive: false,
            reasons: d.reasons,
            impact: Impact::default(),
            statements: Vec::new(),
        };
        match (d.action, desired, actual) {
            (Action::Create, Some(want), _) => change.statements = create_statements(&want.spec),
            (Action::Delete, _, Some(have)) => {
                change.statements = drop_statements(&have.spec);
                if let ResourceSpec::Table { schema, name, .. } = &have.spec {
                    change.impact.rows = Some(self.count_rows(schema, name)?);
                }
            }
            (Action::Replace, Some(want), Some(have)) => {
                change.statements = drop_statements(&have.spec);
                change.statements.extend(create_statements(&want.spec));
                if let ResourceSpec::Table { schema, name, .. } = &have.spec {
                    change.impact.rows = Some(self.count_rows(schema, name)?);
                }
            }
            (Action::Update, Some(want), Some(have)) => {
                change.statements = update_statements(&want.spec, &have.spec, &change.ops);
                if let ResourceSpec::Table { schema, name, .. } = &have.spec {
                    self.measure_update(schema, name, &mut change)?;
                }
            }
            _ => {}
        }
        change.destructive =
            !change.reasons.is_empty() || change.impact.violations.iter().any(|(_, n)| *n > 0);
        Ok(Some(change))
    }

    fn count_rows(&self, schema: &str, name: &str) -> Result<u64> {
        let conn = self.conn();
        let counts = self.query(
            &conn,
            &format!("impact: count rows of {schema}.{name}"),
            &format!("SELECT count(*) FROM {}", qualified(schema, name)),
            |r| r.get::<_, i64>(0),
        )?;
        Ok(counts.first().copied().unwrap_or(0).max(0) as u64)
    }

    /// Measures, in one query, the values an update loses and the rows violating its new NOT
    /// NULL constraints.
    fn measure_update(&self, schema: &str, name: &str, change: &mut Change) -> Result<()> {
        enum Measure {
            Values(String),
            Violations(String),
        }
        let mut measures = Vec::new();
        let mut exprs = vec!["count(*)".to_string()];
        for op in &change.ops {
            match op {
                ColumnOp::DropColumn { column } => {
                    exprs.push(format!("count({})", quote_ident(column)));
                    measures.push(Measure::Values(column.clone()));
                }
                ColumnOp::ChangeType { column, from, to } if !from.widens_to(*to) => {
                    exprs.push(format!("count({})", quote_ident(column)));
                    measures.push(Measure::Values(column.clone()));
                }
                ColumnOp::SetNotNull { column } => {
                    exprs.push(format!("count(*) - count({})", quote_ident(column)));
                    measures.push(Measure::Violations(column.clone()));
                }
                ColumnOp::AddColumn { column } if !column.nullable => {
                    // A new column is NULL in every existing row.
                    exprs.push("count(*)".into());
                    measures.push(Measure::Violations(column.name.clone()));
                }
                _ => {}
            }
        }
        if measures.is_empty() {
            return Ok(());
        }
        let width = exprs.len();
        let sql = format!(
            "SELECT {} FROM {}",
            exprs.join(", "),
            qualified(schema, name)
        );
        let conn = self.conn();
        let rows = self.query(
            &conn,
            &format!("impact: measure {schema}.{name}"),
            &sql,
            |r| {
                (0..width)
                    .map(|i| r.get::<_, i64>(i))
                    .collect::<duckdb::Result<Vec<i64>>>()
            },
        )?;
        drop(conn);
        let counts = rows.into_iter().next().unwrap_or_else(|| vec![0; width]);
        let total = counts.first().copied().unwrap_or(0).max(0) as u64;
        for (measure, n) in measures.into_iter().zip(counts.into_iter().skip(1)) {
            let n = n.max(0) as u64;
            match measure {
                Measure::Values(column) => change.impact.values.push((column, n)),
                Measure::Violations(column) => {
                    if n > 0 {
                        let adding = change
                            .ops
                            .iter()
                            .any(|op| matches!(op, ColumnOp::AddColumn { column: c } if c.name == column));
                        change.reasons.push(if adding {
                            format!(
                                "adds NOT NULL column {column} without a default to a table with {total} row(s); the change fails until they hold a value"
                            )
                        } else {
                            format!("{n} row(s) have NULL in column {column}, which becomes NOT NULL; the change fails until they hold a value")
                        });
                    }
                    change.impact.violations.push((column, n));
                }
            }
        }
        Ok(())
    }

    /// Runs a change's statements in one transaction; the first failing statement rolls
    /// everything back and is named in the error.
    pub fn apply(&self, change: &Change) -> Result<()> {
        if change.statements.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(|e| self.db_err(format!("{}: begin transaction", change.address), e))?;
        for stmt in &change.statements {
            tx.execute_batch(stmt)
                .map_err(|e| self.db_err(format!("{}: {stmt}", change.address), e))?;
        }
        tx.commit()
            .map_err(|e| self.db_err(format!("{}: commit", change.address), e))
    }
}

/// The DuckDB configuration of a store: extension autoloading off, then
/// [`crate::duckdb_settings`]. An
/// option DuckDB does not know is an error naming it.
pub fn config_for(store: &ResolvedStore) -> Result<Config> {
    let config_err = |message: String| ProviderError::Config {
        store: store.name.clone(),
        message,
    };
    let mut config = Config::default()
        .enable_autoload_extension(false)
        .map_err(|e| config_err(format!("cannot configure DuckDB: {e}")))?;
    for (k, v) in crate::duckdb_settings(store)? {
        config = config.with(&k, &v).map_err(|e| {
            config_err(format!(
                "DuckDB option {k} = {v:?} in connection: {e} (see https://duckdb.org/docs/configuration/overview)"
            ))
        })?;
    }
    Ok(config)
}

/// `raw` relative to the project root unless absolute.
pub fn resolve_path(project_root: &Path, raw: &str) -> PathBuf {
    let p = Path::new(raw);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        project_root.join(p)
    }
}

fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// The query text as dk writes it into `CREATE VIEW` (trailing `;` and whitespace removed).
fn view_body(sql: &str) -> &str {
    let mut s = sql.trim_end();
    while let Some(rest) = s.strip_suffix(';') {
        s = rest.trim_end();
    }
    s.trim_start()
}

fn comment_literal(comment: Option<&str>) -> String {
    comment.map(quote_literal).unwrap_or_else(|| "NULL".into())
}

fn column_def(c: &ColumnSpec) -> String {
    format!(
        "{} {}{}",
        quote_ident(&c.name),
        native_type(c.ty),
        if c.nullable { "" } else { " NOT NULL" }
    )
}

fn comment_on_column(schema: &str, table: &str, column: &str, comment: Option<&str>) -> String {
    format!(
        "COMMENT ON COLUMN {}.{}.{} IS {}",
        quote_ident(schema),
        quote_ident(table),
        quote_ident(column),
        comment_literal(comment)
    )
}

/// The statements creating a resource.
pub fn create_statements(spec: &ResourceSpec) -> Vec<String> {
    match spec {
        ResourceSpec::Schema { name } => {
            vec![format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(name))]
        }
        ResourceSpec::Table {
            schema,
            name,
            columns,
            comment,
        } => {
            let defs = columns
                .iter()
                .map(column_def)
                .collect::<Vec<_>>()
                .join(", ");
            let mut out = vec![format!("CREATE TABLE {} ({defs})", qualified(schema, name))];
            if let Some(c) = comment {
                out.push(format!(
                    "COMMENT ON TABLE {} IS {}",
                    qualified(schema, name),
                    quote_literal(c)
                ));
            }
            for col in columns {
                if let Some(c) = &col.comment {
                    out.push(comment_on_column(schema, name, &col.name, Some(c)));
                }
            }
            out
        }
        ResourceSpec::View {
            schema,
            name,
            sql,
            comment,
            ..
        } => view_statements(schema, name, sql, comment.as_deref(), false),
    }
}

/// `CREATE [OR REPLACE] VIEW` and the comment that goes with it.
fn view_statements(
    schema: &str,
    name: &str,
    sql: &str,
    comment: Option<&str>,
    replace: bool,
) -> Vec<String> {
    let body = view_body(sql);
    vec![
        format!(
            "CREATE {}VIEW {} AS\n{body}",
            if replace { "OR REPLACE " } else { "" },
            qualified(schema, name)
        ),
        format!(
            "COMMENT ON VIEW {} IS {}",
            qualified(schema, name),
            quote_literal(&view_comment(comment, sql))
        ),
    ]
}

/// The comment stored on a view: the user's comment, then the marker and the desired query
/// verbatim (without a comment, the marker's leading newline is left out, so `None` and
/// `Some("")` stay apart).
fn view_comment(comment: Option<&str>, sql: &str) -> String {
    match comment {
        Some(c) => format!("{c}{VIEW_SQL_MARKER}{sql}"),
        None => format!("{}{sql}", &VIEW_SQL_MARKER[1..]),
    }
}

/// The statements dropping a resource (never `CASCADE`).
pub fn drop_statements(spec: &ResourceSpec) -> Vec<String> {
    match spec {
        ResourceSpec::Schema { name } if name == "main" => Vec::new(),
        ResourceSpec::Schema { name } => vec![format!("DROP SCHEMA {}", quote_ident(name))],
        ResourceSpec::Table { schema, name, .. } => {
            vec![format!("DROP TABLE {}", qualified(schema, name))]
        }
        ResourceSpec::View { schema, name, .. } => {
            vec![format!("DROP VIEW {}", qualified(schema, name))]
        }
    }
}

/// The statements of an in-place update.
pub fn update_statements(
    desired: &ResourceSpec,
    actual: &ResourceSpec,
    ops: &[ColumnOp],
) -> Vec<String> {
    let mut out = Vec::new();
    match (desired, actual) {
        (ResourceSpec::Table { schema, name, .. }, ResourceSpec::Table { .. }) => {
            let table = qualified(schema, name);
            // New columns first: DuckDB refuses to drop a table's last column, so replacing the
            // only column must add before it drops.
            for op in ops {
                if let ColumnOp::AddColumn { column } = op {
                    out.push(format!(
                        "ALTER TABLE {table} ADD COLUMN {}",
                        column_def(column)
                    ));
                    if let Some(c) = &column.comment {
                        out.push(comment_on_column(schema, name, &column.name, Some(c)));
                    }
                }
            }
            for op in ops {
                match op {
                    ColumnOp::AddColumn { .. } => {}
                    ColumnOp::DropColumn { column } => {
                        out.push(format!(
                            "ALTER TABLE {table} DROP COLUMN {}",
                            quote_ident(column)
                        ));
                    }
                    ColumnOp::ChangeType { column, to, .. } => {
                        let native = native_type(*to);
                        out.push(format!(
                            "ALTER TABLE {table} ALTER COLUMN {c} SET DATA TYPE {native} USING CAST({c} AS {native})",
                            c = quote_ident(column)
                        ));
                    }
                    ColumnOp::SetNotNull { column } => {
                        out.push(format!(
                            "ALTER TABLE {table} ALTER COLUMN {} SET NOT NULL",
                            quote_ident(column)
                        ));
                    }
                    ColumnOp::DropNotNull { column } => {
                        out.push(format!(
                            "ALTER TABLE {table} ALTER COLUMN {} DROP NOT NULL",
                            quote_ident(column)
                        ));
                    }
                    ColumnOp::SetColumnComment { column, to, .. } => {
                        out.push(comment_on_column(schema, name, column, to.as_deref()));
                    }
                    ColumnOp::SetComment { to, .. } => {
                        out.push(format!(
                            "COMMENT ON TABLE {table} IS {}",
                            comment_literal(to.as_deref())
                        ));
                    }
                    ColumnOp::ReplaceQuery { .. } => {}
                }
            }
        }
        (
            ResourceSpec::View {
                schema,
                name,
                sql,
                comment,
                ..
            },
            ResourceSpec::View { .. },
        ) => {
            let replace = ops
                .iter()
                .any(|op| matches!(op, ColumnOp::ReplaceQuery { .. }));
            if replace {
                out.extend(view_statements(schema, name, sql, comment.as_deref(), true));
            } else if ops
                .iter()
                .any(|op| matches!(op, ColumnOp::SetComment { .. }))
            {
                out.push(format!(
                    "COMMENT ON VIEW {} IS {}",
                    qualified(schema, name),
                    quote_literal(&view_comment(comment.as_deref(), sql))
                ));
            }
        }
        _ => {}
    }
    out
}

/// The query and the user's comment of a view, from its catalog text and stored comment.
///
/// A copy recorded by dk after [`VIEW_SQL_MARKER`] wins over the catalog text: every way of
/// redefining a view (`CREATE OR REPLACE`, `DROP` + `CREATE`) resets its comment, so a recorded
/// copy always belongs to the query the view runs.
fn view_from_catalog(text: &str, stored_comment: Option<String>) -> (String, Option<String>) {
    if let Some(stored) = stored_comment.as_deref() {
        if let Some(recorded) = stored.strip_prefix(&VIEW_SQL_MARKER[1..]) {
            return (recorded.to_string(), None);
        }
        if let Some((own, recorded)) = stored.split_once(VIEW_SQL_MARKER) {
            return (recorded.to_string(), Some(own.to_string()));
        }
    }
    let sql = view_query(text)
        .map(|q| view_body(q).to_string())
        .unwrap_or_else(|| text.to_string());
    (sql, stored_comment)
}

/// The query of a `CREATE VIEW … AS query` statement: the text after the first `AS` outside
/// parentheses, quotes and comments; `None` when there is none.
pub fn view_query(create_sql: &str) -> Option<&str> {
    let b = create_sql.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'"' | b'\'' => {
                i += 1;
                while i < b.len() {
                    if b[i] == c {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'(' => {
                depth += 1;
                i += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                if depth == 0 && create_sql[start..i].eq_ignore_ascii_case("as") {
                    return create_sql.get(i..).map(str::trim);
                }
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_logical_type_maps_back() {
        use LogicalType::*;
        for t in [
            SmallInt,
            Integer,
            BigInt,
            Float,
            Double,
            Decimal(10, 2),
            Decimal(38, 0),
            Decimal(1, 1),
            Boolean,
            String,
            Date,
            Time,
            Timestamp,
            TimestampTz,
            Json,
            Binary,
            Uuid,
        ] {
            assert_eq!(logical_type(&native_type(t)), Some(t), "{t}");
        }
        assert_eq!(logical_type("TIMESTAMP WITH TIME ZONE"), Some(TimestampTz));
        assert_eq!(logical_type("REAL"), Some(Float));
        assert_eq!(logical_type("DECIMAL(18,3)"), Some(Decimal(18, 3)));
    }

    #[test]
    fn unmappable_types_are_not_coerced() {
        for t in [
            "TINYINT",
            "HUGEINT",
            "UBIGINT",
            "INTERVAL",
            "TIME WITH TIME ZONE",
            "TIMESTAMP_NS",
            "INTEGER[]",
            "STRUCT(a INTEGER)",
            "MAP(VARCHAR, INTEGER)",
            "BIT",
            "DECIMAL(40,2)",
            "ENUM('a', 'b')",
        ] {
            assert_eq!(logical_type(t), None, "{t}");
        }
    }

    #[test]
    fn view_query_is_the_text_after_as() {
        assert_eq!(
            view_query("CREATE VIEW \"m\".\"v\" AS\nSELECT 1 AS x;"),
            Some("SELECT 1 AS x;")
        );
        assert_eq!(
            view_query("create view \"a as b\".v(x, y) as select 1, 2"),
            Some("select 1, 2")
        );
        assert_eq!(
            view_query("CREATE VIEW v /* as */ -- as\n AS SELECT 'as'"),
            Some("SELECT 'as'")
        );
        assert_eq!(view_query("CREATE VIEW v"), None);
        assert_eq!(view_body("  SELECT 1 ;\n; "), "SELECT 1");
    }

    #[test]
    fn view_comment_round_trips() {
        let stmts = create_statements(&ResourceSpec::View {
            schema: "m".into(),
            name: "v".into(),
            sql: "select 1;".into(),
            columns: Vec::new(),
            comment: Some("it's mine".into()),
        });
        assert_eq!(stmts[0], "CREATE VIEW \"m\".\"v\" AS\nselect 1");
        assert_eq!(
            stmts[1],
            format!("COMMENT ON VIEW \"m\".\"v\" IS 'it''s mine{VIEW_SQL_MARKER}select 1;'")
        );
        let rewritten = "CREATE VIEW m.v AS SELECT 1;\n";
        for comment in [Some("it's mine"), Some(""), None] {
            let stored = view_comment(comment, "select 1");
            assert_eq!(
                view_from_catalog(rewritten, Some(stored)),
                ("select 1".to_string(), comment.map(str::to_string))
            );
        }
        // Without a recorded copy (a view made or redefined outside dk), the catalog text.
        assert_eq!(
            view_from_catalog(rewritten, Some("plain".into())),
            ("SELECT 1".to_string(), Some("plain".into()))
        );
        assert_eq!(
            view_from_catalog(rewritten, None),
            ("SELECT 1".to_string(), None)
        );
    }

    #[test]
    fn table_statements_quote_and_comment() {
        let spec = ResourceSpec::Table {
            schema: "s".into(),
            name: "t\"x".into(),
            columns: vec![
                ColumnSpec {
                    name: "id".into(),
                    ty: LogicalType::BigInt,
                    nullable: false,
                    comment: Some("key".into()),
                },
                ColumnSpec {
                    name: "amount".into(),
                    ty: LogicalType::Decimal(12, 2),
                    nullable: true,
                    comment: None,
                },
            ],
            comment: Some("o'clock".into()),
        };
        assert_eq!(
            create_statements(&spec),
            vec![
                "CREATE TABLE \"s\".\"t\"\"x\" (\"id\" BIGINT NOT NULL, \"amount\" DECIMAL(12,2))"
                    .to_string(),
                "COMMENT ON TABLE \"s\".\"t\"\"x\" IS 'o''clock'".to_string(),
                "COMMENT ON COLUMN \"s\".\"t\"\"x\".\"id\" IS 'key'".to_string(),
            ]
        );
        assert_eq!(
            drop_statements(&spec),
            vec!["DROP TABLE \"s\".\"t\"\"x\"".to_string()]
        );
        assert!(drop_statements(&ResourceSpec::Schema {
            name: "main".into()
        })
        .is_empty());
    }

    #[test]
    fn update_statements_follow_the_ops() {
        let t = |cols: Vec<ColumnSpec>| ResourceSpec::Table {
            schema: "s".into(),
            name: "t".into(),
            columns: cols,
            comment: None,
        };
        let ops = vec![
            ColumnOp::DropColumn {
                column: "old".into(),
            },
            ColumnOp::AddColumn {
                column: ColumnSpec {
                    name: "n".into(),
                    ty: LogicalType::Integer,
                    nullable: false,
                    comment: Some("c".into()),
                },
            },
            ColumnOp::ChangeType {
                column: "a".into(),
                from: LogicalType::Integer,
                to: LogicalType::BigInt,
            },
            ColumnOp::DropNotNull { column: "b".into() },
            ColumnOp::SetComment {
                from: Some("x".into()),
                to: None,
            },
        ];
        assert_eq!(
            update_statements(&t(vec![]), &t(vec![]), &ops),
            vec![
                "ALTER TABLE \"s\".\"t\" ADD COLUMN \"n\" INTEGER NOT NULL",
                "COMMENT ON COLUMN \"s\".\"t\".\"n\" IS 'c'",
                "ALTER TABLE \"s\".\"t\" DROP COLUMN \"old\"",
                "ALTER TABLE \"s\".\"t\" ALTER COLUMN \"a\" SET DATA TYPE BIGINT USING CAST(\"a\" AS BIGINT)",
                "ALTER TABLE \"s\".\"t\" ALTER COLUMN \"b\" DROP NOT NULL",
                "COMMENT ON TABLE \"s\".\"t\" IS NULL",
            ]
        );
    }
}
