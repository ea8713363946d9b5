//! PostgreSQL provider (tokio-postgres, one connection per store; TLS per the store's `sslmode`
//! and `sslrootcert` through `dk-pgtls`).
//!
//! # Type mapping
//!
//! | logical       | created as         | read back from (`format_type`)                          |
//! |---------------|--------------------|---------------------------------------------------------|
//! | smallint      | `smallint`         | `smallint`                                              |
//! | integer       | `integer`          | `integer`                                               |
//! | bigint        | `bigint`           | `bigint`                                                |
//! | float         | `real`             | `real`                                                  |
//! | double        | `double precision` | `double precision`                                      |
//! | decimal(p,s)  | `numeric(p,s)`     | `numeric(p,s)` with 1 ≤ p ≤ 38, 0 ≤ s ≤ p               |
//! | boolean       | `boolean`          | `boolean`                                               |
//! | string        | `text`             | `text`, `character varying`, `character varying(n)`     |
//! | date          | `date`             | `date`                                                  |
//! | time          | `time`             | `time[(n)] without time zone`                           |
//! | timestamp     | `timestamp`        | `timestamp[(n)] without time zone`                      |
//! | timestamptz   | `timestamptz`      | `timestamp[(n)] with time zone`                         |
//! | json          | `jsonb`            | `jsonb`, `json`                                         |
//! | binary        | `bytea`            | `bytea`                                                 |
//! | uuid          | `uuid`             | `uuid`                                                  |
//!
//! A bare `decimal` is `decimal(18,3)` (see [`LogicalType::parse`]) and is created as
//! `numeric(18,3)`; a bare native `numeric` (unbounded) has no logical type.
//!
//! **Native types without a logical type** (`interval`, `numeric` without a typmod, `character(n)`,
//! `time with time zone`, arrays, enums, domains, extension types, …) are never coerced silently.
//! [`PgProvider::refresh`] returns such a column as `string` (every PostgreSQL value has a text
//! form) and appends a marker line to its comment: `-- dk:native {"type":"interval"}`. The marker
//! exists only in the refreshed resource, never in the database. Because no desired column carries
//! it, [`diff`] always reports that column (a `set_column_comment` at least), so the difference
//! shows in every plan instead of being lost. [`PgProvider::plan`] then turns it into what it is:
//! a `change_type` to the declared type (`ALTER COLUMN … TYPE … USING col::type`), flagged
//! destructive with a reason naming the native type and the measured non-null values, or a
//! `drop_column` when the column is not declared. After that apply, refresh round-trips.
//!
//! # Views
//!
//! PostgreSQL stores a view as a parse tree and prints it back differently (`pg_get_viewdef`). On
//! create or change, [`PgProvider::apply`] (after the planned statements, in the same transaction)
//! reads `pg_get_viewdef` and writes the view comment as the user's comment followed by a marker line
//! `\n-- dk:view {"sql":"<the SQL as given>","def_sha256":"<sha256 of pg_get_viewdef>"}`.
//! [`PgProvider::refresh`] strips the marker from the returned comment; when the current
//! definition still hashes to `def_sha256` it returns `sql` as given, otherwise the catalog
//! definition, so a view changed outside dk shows as drift. A changed query is applied with
//! `CREATE OR REPLACE VIEW` when PostgreSQL accepts it (the existing columns keep their names,
//! order and types: plan checks this by creating the new query as a temporary view in a
//! rolled-back transaction); otherwise the change is a replace (`DROP VIEW` + `CREATE VIEW`, never
//! `CASCADE`, so dependent views make apply fail with a clear error). Refreshed views list the
//! catalog's columns (always nullable: PostgreSQL does not track nullability of view columns);
//! `depends_on` holds the schema only.
//!
//! # Impact
//!
//! Plan measures what a destructive change would lose with one aggregate query per table: rows of
//! a dropped (or replaced) table (`count(*)`), non-null values of a dropped, narrowed or
//! natively-unrepresentable column (`count(col)`), and rows violating a new `NOT NULL`
//! (`count(*) FILTER (WHERE col IS NULL)`; every row for a new `NOT NULL` column, which is added
//! nullable and then set `NOT NULL` so the violation is reported by name). A change is destructive
//! when it has reasons or violations. Resources that do not exist yet are not measured.
//!
//! # Refresh
//!
//! Three catalog queries for any number of schemas and objects, pipelined on the connection:
//! schemas (`pg_namespace`), relations (`pg_class` tables `r`/`p` without partitions, and views
//! `v` with `pg_get_viewdef` and their comments) and all their columns (`pg_attribute`,
//! `format_type`, `attnotnull`, comments joined from `pg_description`).

pub mod watch;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dk_env::ResolvedStore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Row};

use crate::diff::diff;
use crate::model::{
    address, Action, Change, ColumnOp, ColumnSpec, Impact, LogicalType, Resource, ResourceKind,
    ResourceSpec,
};
use crate::{quote_ident, quote_literal, ProviderError, Result};

/// Prefix of the marker line dk keeps in a view's comment.
pub const VIEW_MARKER: &str = "-- dk:view ";
/// Prefix of the marker line refresh appends to the comment of a column whose native type has no
/// logical type.
pub const NATIVE_MARKER: &str = "-- dk:native ";

/// A connected PostgreSQL store.
pub struct PgProvider {
    store: String,
    target: String,
    client: Mutex<Client>,
    queries: AtomicU64,
}

impl fmt::Debug for PgProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgProvider")
            .field("store", &self.store)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The JSON of the view marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ViewMarker {
    sql: String,
    def_sha256: String,
}

/// The JSON of the native-type marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct NativeMarker {
    #[serde(rename = "type")]
    ty: String,
}

const SQL_SCHEMAS: &str = "SELECT n.nspname::text FROM pg_catalog.pg_namespace n \
     WHERE n.nspname = ANY($1::text[]::name[]) ORDER BY 1";

const SQL_RELATIONS: &str = "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind = 'v', d.description, \
            CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END \
     FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_catalog.pg_description d \
            ON d.objoid = c.oid AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0 \
     WHERE n.nspname = ANY($1::text[]::name[]) \
       AND c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition \
     ORDER BY n.nspname, c.relname";

const SQL_COLUMNS: &str = "SELECT a.attrelid, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), \
            a.attnotnull, d.description \
     FROM pg_catalog.pg_attribute a \
     JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_catalog.pg_description d \
            ON d.objoid = a.attrelid AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = a.attnum \
     WHERE n.nspname = ANY($1::text[]::name[]) \
       AND c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition \
       AND a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY a.attrelid, a.attnum";

impl PgProvider {
    /// Connects to the store. Connection keys: `connection_string` (or `url`; libpq key=value or
    /// `postgresql://` URL, also accepted as a secret), then `host`, `port`, `database`|`dbname`,
    /// `user`|`username`, `sslmode`, `application_name`, `connect_timeout` (seconds), `options`
    /// overlaying it; the password comes from the `password` secret only.
    pub async fn connect(store: &ResolvedStore) -> Result<PgProvider> {
        let (config, connector) = settings_for(store)?;
        let target = describe(&config);
        let client = connector
            .connect(&config)
            .await
            .map_err(|e| ProviderError::Connect {
                store: store.name.clone(),
                message: connect_message(&format!("{target}, sslmode={}", connector.mode()), &e),
            })?;
        Ok(PgProvider {
            store: store.name.clone(),
            target,
            client: Mutex::new(client),
            queries: AtomicU64::new(0),
        })
    }

    /// `host:port/database as user` (never the password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// How many queries this provider has sent (catalog reads, impact measurements, statements).
    /// Tests use it to check that refresh is bulk.
    pub fn query_count(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    fn count(&self, n: u64) {
        self.queries.fetch_add(n, Ordering::Relaxed);
    }

    fn db_err(&self, context: impl Into<String>, e: &tokio_postgres::Error) -> ProviderError {
        ProviderError::Database {
            store: self.store.clone(),
            context: context.into(),
            message: error_text(e),
        }
    }

    /// The columns a query returns (name and logical type when the wire type has one), without
    /// running it (the statement is only prepared). Fails when the query does not compile.
    pub async fn describe_query(&self, sql: &str) -> Result<Vec<(String, Option<LogicalType>)>> {
        let client = self.client.lock().await;
        self.count(1);
        let stmt = client
            .prepare(sql.trim().trim_end_matches(';'))
            .await
            .map_err(|e| self.db_err("describe the view's query", &e))?;
        Ok(stmt
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), wire_logical_type(c.type_())))
            .collect())
    }

    /// Every schema, table and view in `schemas` as it is now: three catalog queries whatever the
    /// number of objects. Schemas that do not exist are simply absent.
    pub async fn refresh(&self, schemas: &[String]) -> Result<Vec<Resource>> {
        if schemas.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client.lock().await;
        self.count(3);
        let params: [&(dyn ToSql + Sync); 1] = [&schemas];
        let (schema_rows, relation_rows, column_rows) = tokio::try_join!(
            client.query(SQL_SCHEMAS, &params),
            client.query(SQL_RELATIONS, &params),
            client.query(SQL_COLUMNS, &params),
        )
        .map_err(|e| self.db_err("read the catalog (schemas, tables, views, columns)", &e))?;
        drop(client);
        build_resources(&self.store, &schema_rows, &relation_rows, &column_rows)
            .map_err(|e| self.db_err("decode the catalog", &e))
    }

    /// The change that turns `actual` into `desired` (`None` when they match), with PostgreSQL
    /// statements and the measured impact of destructive operations.
    pub async fn plan(
        &self,
        desired: Option<&Resource>,
        actual: Option<&Resource>,
    ) -> Result<Option<Change>> {
        let Some(d) = diff(desired, actual) else {
            return Ok(None);
        };
        let (mut action, mut ops, mut reasons) = (d.action, d.ops, d.reasons);
        if let (Action::Update, Some(des), Some(act)) = (action, desired, actual) {
            normalize_update(des, act, &mut ops, &mut reasons);
            if ops.is_empty() {
                return Ok(None);
            }
            if let (
                ResourceSpec::View {
                    schema, name, sql, ..
                },
                ResourceSpec::View { .. },
            ) = (&des.spec, &act.spec)
            {
                if ops
                    .iter()
                    .any(|o| matches!(o, ColumnOp::ReplaceQuery { .. }))
                    && !self.view_replaceable_in_place(schema, name, sql).await?
                {
                    action = Action::Replace;
                }
            }
        }
        let statements = statements(action, desired, actual, &ops);
        let impact = match actual {
            Some(a) => self.measure(action, a, &ops).await?,
            None => Impact::default(),
        };
        for (column, n) in &impact.violations {
            let table = actual.map(|a| a.address.as_str()).unwrap_or_default();
            reasons.push(format!(
                "{n} row(s) of {table} have no value for column {column}, which becomes NOT NULL: apply fails until they are filled"
            ));
        }
        let destructive = !reasons.is_empty() || impact.violations.iter().any(|(_, n)| *n > 0);
        let Some(subject) = desired.or(actual) else {
            return Ok(None);
        };
        Ok(Some(Change {
            address: subject.address.clone(),
            store: subject.store.clone(),
            action,
            before: actual.cloned(),
            after: desired.cloned(),
            ops,
            destructive,
            reasons,
            impact,
            statements,
        }))
    }

    /// Runs `change.statements` in one transaction; for a created or changed view, also records
    /// the view marker (original SQL + hash of `pg_get_viewdef`) in its comment before COMMIT.
    pub async fn apply(&self, change: &Change) -> Result<()> {
        let mut client = self.client.lock().await;
        self.count(1);
        let tx = client
            .transaction()
            .await
            .map_err(|e| self.db_err("BEGIN", &e))?;
        for stmt in &change.statements {
            self.count(1);
            if let Err(e) = tx.execute(stmt.as_str(), &[]).await {
                let err = self.db_err(stmt.clone(), &e);
                let _ = tx.rollback().await;
                return Err(err);
            }
        }
        if change.action != Action::Delete {
            if let Some(Resource {
                spec:
                    ResourceSpec::View {
                        schema,
                        name,
                        sql,
                        comment,
                        ..
                    },
                ..
            }) = &change.after
            {
                let qualified = qualify(schema, name);
                self.count(2);
                let def: Option<String> = match tx
                    .query_one(
                        "SELECT pg_catalog.pg_get_viewdef(pg_catalog.to_regclass($1))",
                        &[&qualified],
                    )
                    .await
                    .and_then(|row| row.try_get(0))
                {
                    Ok(def) => def,
                    Err(e) => {
                        let err =
                            self.db_err(format!("read the definition of view {qualified}"), &e);
                        let _ = tx.rollback().await;
                        return Err(err);
                    }
                };
                let Some(def) = def else {
                    let _ = tx.rollback().await;
                    return Err(ProviderError::Database {
                        store: self.store.clone(),
                        context: format!("record the definition of view {qualified}"),
                        message: "the view does not exist after the planned statements ran"
                            .to_string(),
                    });
                };
                let stmt = format!(
                    "COMMENT ON VIEW {qualified} IS {}",
                    quote_literal(&view_comment(comment.as_deref(), sql, &def))
                );
                if let Err(e) = tx.execute(stmt.as_str(), &[]).await {
                    let err = self.db_err(stmt, &e);
                    let _ = tx.rollback().await;
                    return Err(err);
                }
            }
        }
        self.count(1);
        tx.commit().await.map_err(|e| self.db_err("COMMIT", &e))
    }

    /// Would `CREATE OR REPLACE VIEW` accept `sql` for the existing view? Creates the query as a
    /// temporary view in a transaction that is rolled back and compares the columns. When the
    /// query cannot be compiled now (e.g. it reads a table the same apply creates), assumes yes and
    /// lets apply report the outcome.
    async fn view_replaceable_in_place(&self, schema: &str, name: &str, sql: &str) -> Result<bool> {
        let mut client = self.client.lock().await;
        self.count(1);
        let tx = client
            .transaction()
            .await
            .map_err(|e| self.db_err("BEGIN", &e))?;
        self.count(1);
        let probe = format!("CREATE TEMPORARY VIEW dk_view_probe AS {}", view_body(sql));
        if tx.execute(probe.as_str(), &[]).await.is_err() {
            let _ = tx.rollback().await;
            return Ok(true);
        }
        self.count(1);
        let rows = tx
            .query(
                "SELECT a.attrelid = 'pg_temp.dk_view_probe'::regclass, a.attname::text, a.atttypid, a.atttypmod, a.attcollation \
                 FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid IN ('pg_temp.dk_view_probe'::regclass, pg_catalog.to_regclass($1)) \
                   AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                &[&qualify(schema, name)],
            )
            .await;
        let _ = tx.rollback().await;
        let rows = rows
            .map_err(|e| self.db_err(format!("compare the columns of view {schema}.{name}"), &e))?;
        type Col = (String, u32, i32, u32);
        let mut old: Vec<Col> = Vec::new();
        let mut new: Vec<Col> = Vec::new();
        let decode = |r: &Row| -> std::result::Result<(bool, Col), tokio_postgres::Error> {
            Ok((
                r.try_get(0)?,
                (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?),
            ))
        };
        for r in &rows {
            let (is_new, col) = decode(r).map_err(|e| {
                self.db_err(format!("compare the columns of view {schema}.{name}"), &e)
            })?;
            if is_new {
                new.push(col);
            } else {
                old.push(col);
            }
        }
        Ok(new.len() >= old.len() && old.iter().zip(&new).all(|(o, n)| o == n))
    }

    /// Measures, with one query, what a change of an existing table would lose.
    async fn measure(&self, action: Action, actual: &Resource, ops: &[ColumnOp]) -> Result<Impact> {
        let ResourceSpec::Table {
            schema,
            name,
            columns,
            ..
        } = &actual.spec
        else {
            return Ok(Impact::default());
        };
        enum Item {
            Rows,
            Values(String),
            Violations(String),
        }
        let mut items = Vec::new();
        match action {
            Action::Delete | Action::Replace => items.push(Item::Rows),
            Action::Update => {
                for op in ops {
                    match op {
                        ColumnOp::DropColumn { column } => items.push(Item::Values(column.clone())),
                        ColumnOp::ChangeType { column, from, to } => {
                            let native = columns
                                .iter()
                                .any(|c| &c.name == column && native_type_of(c).is_some());
                            if native || !from.widens_to(*to) {
                                items.push(Item::Values(column.clone()));
                            }
                        }
                        ColumnOp::SetNotNull { column } => {
                            items.push(Item::Violations(column.clone()))
                        }
                        ColumnOp::AddColumn { column } if !column.nullable => {
                            items.push(Item::Violations(column.name.clone()))
                        }
                        _ => {}
                    }
                }
            }
            Action::Create => {}
        }
        if items.is_empty() {
            return Ok(Impact::default());
        }
        let existing = |c: &str| columns.iter().any(|x| x.name == c);
        let select: Vec<String> = items
            .iter()
            .map(|it| match it {
                Item::Rows => "count(*)".to_string(),
                Item::Values(c) => format!("count({})", quote_ident(c)),
                // A new column is NULL in every existing row.
                Item::Violations(c) if !existing(c) => "count(*)".to_string(),
                Item::Violations(c) => {
                    format!("count(*) FILTER (WHERE {} IS NULL)", quote_ident(c))
                }
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {}",
            select.join(", "),
            qualify(schema, name)
        );
        let client = self.client.lock().await;
        self.count(1);
        let row = client.query_one(sql.as_str(), &[]).await.map_err(|e| {
            self.db_err(format!("measure the impact on {schema}.{name} ({sql})"), &e)
        })?;
        drop(client);
        let mut impact = Impact::default();
        for (i, it) in items.iter().enumerate() {
            let n: i64 = row
                .try_get(i)
                .map_err(|e| self.db_err(format!("measure the impact on {schema}.{name}"), &e))?;
            let n = u64::try_from(n).unwrap_or(0);
            match it {
                Item::Rows => impact.rows = Some(n),
                Item::Values(c) => impact.values.push((c.clone(), n)),
                Item::Violations(c) if n > 0 => impact.violations.push((c.clone(), n)),
                Item::Violations(_) => {}
            }
        }
        Ok(impact)
    }
}

// ---------------------------------------------------------------------------------------------
// Connection settings

/// The driver configuration of a store (also used by the data plane in `dk-runtime`). Its
/// `ssl_mode` is the driver's nearest mode: connect through [`connector_for`] to get the
/// store's exact `sslmode` (verify-ca, verify-full, allow) and `sslrootcert`.
pub fn config_for(store: &ResolvedStore) -> Result<Config> {
    settings_for(store).map(|(config, _)| config)
}

/// The TLS connector of a store (`sslmode`, `sslrootcert`); `connector.connect(&config_for(..)?)`
/// opens a connection.
pub fn connector_for(store: &ResolvedStore) -> Result<dk_pgtls::PgConnector> {
    settings_for(store).map(|(_, connector)| connector)
}

fn settings_for(store: &ResolvedStore) -> Result<(Config, dk_pgtls::PgConnector)> {
    let err = |message: String| ProviderError::Config {
        store: store.name.clone(),
        message,
    };
    let conn_string = match (
        store
            .connection
            .get("connection_string")
            .or_else(|| store.connection.get("url")),
        store
            .secrets
            .get("connection_string")
            .or_else(|| store.secrets.get("url")),
    ) {
        (_, Some(secret)) => Some(secret.expose().to_string()),
        (Some(v), None) => Some(
            value_string(v)
                .ok_or_else(|| err("connection.connection_string must be a string".into()))?,
        ),
        (None, None) => None,
    };
    let mut sslmode = None;
    let mut sslrootcert = None;
    let mut config = match conn_string {
        Some(s) => {
            let (rest, mode, rootcert) = dk_pgtls::split_conn_string(&s);
            sslmode = mode;
            sslrootcert = rootcert;
            rest.parse::<Config>().map_err(|e| {
                err(format!(
                    "cannot parse the connection string ({e}); write libpq `key=value` pairs (`host=db port=5432 dbname=app user=loader`) or a postgresql:// URL"
                ))
            })?
        }
        None => Config::new(),
    };
    for (key, value) in &store.connection {
        let text = || {
            value_string(value)
                .ok_or_else(|| err(format!("connection.{key} must be a string or a number")))
        };
        match key.as_str() {
            "host" | "hostname" => {
                config.host(text()?);
            }
            "port" => {
                let port = text()?;
                let port: u16 = port.trim().parse().map_err(|_| {
                    err(format!(
                        "connection.port must be a port number (1-65535), not {port:?}"
                    ))
                })?;
                config.port(port);
            }
            "database" | "dbname" => {
                config.dbname(text()?);
            }
            "user" | "username" => {
                config.user(text()?);
            }
            "sslmode" => sslmode = Some(text()?),
            "sslrootcert" => sslrootcert = Some(text()?),
            "application_name" => {
                config.application_name(text()?);
            }
            "options" => {
                config.options(text()?);
            }
            "connect_timeout" => {
                let t = text()?;
                let secs: u64 = t.trim().parse().map_err(|_| {
                    err(format!(
                        "connection.connect_timeout must be a number of seconds, not {t:?}"
                    ))
                })?;
                config.connect_timeout(Duration::from_secs(secs));
            }
            // Other keys (schema, pool sizes, …) belong to other parts of dk.
            _ => {}
        }
    }
    if let Some(p) = store.secrets.get("password") {
        config.password(p.expose());
    }
    let connector = dk_pgtls::TlsOptions::new(sslmode.as_deref(), sslrootcert.as_deref())
        .and_then(|t| t.connector())
        .map_err(|e| err(e.to_string()))?;
    config.ssl_mode(connector.mode().driver_mode());
    if config.get_hosts().is_empty() {
        config.host("localhost");
    }
    if config.get_user().is_none() {
        return Err(err(
            "no user to connect as: set connection.user (or user= in connection_string) in the store or its environment binding".into(),
        ));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("dk");
    }
    Ok((config, connector))
}

fn value_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `host:port/database as user` (never the password).
pub fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            Host::Tcp(s) => s.clone(),
            #[cfg(unix)]
            Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_string());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("?");
    let db = config.get_dbname().unwrap_or(user);
    format!("{host}:{port}/{db} as {user}")
}

/// A connection error with a hint on what to fix.
pub fn connect_message(target: &str, e: &tokio_postgres::Error) -> String {
    let text = error_text(e);
    let code = e.code();
    let help = if code == Some(&SqlState::INVALID_PASSWORD)
        || code == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    {
        "check the user and the store's `password` secret (secrets.password in the store or its environment binding)"
    } else if code == Some(&SqlState::INVALID_CATALOG_NAME) {
        "the database does not exist: create it (`createdb`) or fix connection.database"
    } else {
        "check that the server is running and accepts TCP connections there, and the store's connection settings (host, port, database, user, sslmode) in the store or its environment binding"
    };
    format!("PostgreSQL at {target}: {text}; {help}")
}

/// A readable error: severity, message, SQLSTATE, detail and hint for database errors.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        // `error connecting to server: Connection refused (os error 111)`.
        return match std::error::Error::source(e) {
            Some(src) => format!("{e}: {src}"),
            None => e.to_string(),
        };
    };
    let mut s = format!(
        "{}: {} (SQLSTATE {})",
        db.severity(),
        db.message(),
        db.code().code()
    );
    if let Some(d) = db.detail() {
        s.push_str("\n  detail: ");
        s.push_str(d);
    }
    if *db.code() == SqlState::DEPENDENT_OBJECTS_STILL_EXIST {
        s.push_str("\n  hint: dk never drops dependent objects (no CASCADE): drop or change the objects listed above first");
    } else if *db.code() == SqlState::INVALID_TABLE_DEFINITION && db.message().contains("view") {
        s.push_str("\n  hint: the view's columns changed in a way CREATE OR REPLACE VIEW cannot do; run plan again (it plans DROP VIEW + CREATE VIEW once the query compiles)");
    } else if let Some(h) = db.hint() {
        s.push_str("\n  hint: ");
        s.push_str(h);
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Types

/// The PostgreSQL type dk creates for a logical type.
pub fn native_type(t: LogicalType) -> String {
    use LogicalType::*;
    match t {
        SmallInt => "smallint".into(),
        Integer => "integer".into(),
        BigInt => "bigint".into(),
        Float => "real".into(),
        Double => "double precision".into(),
        Decimal(p, s) => format!("numeric({p},{s})"),
        Boolean => "boolean".into(),
        String => "text".into(),
        Date => "date".into(),
        Time => "time".into(),
        Timestamp => "timestamp".into(),
        TimestampTz => "timestamptz".into(),
        Json => "jsonb".into(),
        Binary => "bytea".into(),
        Uuid => "uuid".into(),
    }
}

/// The logical type of a native type as printed by `format_type`; `None` when it has none.
pub fn logical_type(native: &str) -> Option<LogicalType> {
    use LogicalType::*;
    Some(match native {
        "smallint" => SmallInt,
        "integer" => Integer,
        "bigint" => BigInt,
        "real" => Float,
        "double precision" => Double,
        "boolean" => Boolean,
        "text" | "character varying" => String,
        "date" => Date,
        "json" | "jsonb" => Json,
        "bytea" => Binary,
        "uuid" => Uuid,
        other => {
            if let Some(rest) = other.strip_prefix("character varying") {
                return (typmod(rest)?.1.is_empty()).then_some(String);
            }
            if let Some(args) = other
                .strip_prefix("numeric(")
                .and_then(|a| a.strip_suffix(')'))
            {
                let (p, s) = args.split_once(',')?;
                let (p, s): (u8, u8) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
                return ((1..=38).contains(&p) && s <= p).then_some(Decimal(p, s));
            }
            if let Some(rest) = other.strip_prefix("timestamp") {
                return match typmod(rest)?.1 {
                    " without time zone" => Some(Timestamp),
                    " with time zone" => Some(TimestampTz),
                    _ => None,
                };
            }
            if let Some(rest) = other.strip_prefix("time") {
                return (typmod(rest)?.1 == " without time zone").then_some(Time);
            }
            return None;
        }
    })
}

/// The logical type of a result column's wire type (no typmod there: `numeric` has none).
fn wire_logical_type(t: &tokio_postgres::types::Type) -> Option<LogicalType> {
    use tokio_postgres::types::Type;
    use LogicalType::*;
    Some(match *t {
        Type::INT2 => SmallInt,
        Type::INT4 => Integer,
        Type::INT8 => BigInt,
        Type::FLOAT4 => Float,
        Type::FLOAT8 => Double,
        Type::BOOL => Boolean,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => String,
        Type::DATE => Date,
        Type::TIME => Time,
        Type::TIMESTAMP => Timestamp,
        Type::TIMESTAMPTZ => TimestampTz,
        Type::JSON | Type::JSONB => Json,
        Type::BYTEA => Binary,
        Type::UUID => Uuid,
        _ => return None,
    })
}

/// Splits an optional `(digits)` typmod off the front of `s`.
fn typmod(s: &str) -> Option<(Option<&str>, &str)> {
    match s.strip_prefix('(') {
        None => Some((None, s)),
        Some(inner) => {
            let end = inner.find(')')?;
            let digits = &inner[..end];
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then_some((Some(digits), &inner[end + 1..]))
        }
    }
}

/// The native type recorded by refresh for a column without a logical type.
pub fn native_type_of(column: &ColumnSpec) -> Option<String> {
    let comment = column.comment.as_deref()?;
    let (_, marker) = split_marker(comment, NATIVE_MARKER);
    serde_json::from_str::<NativeMarker>(marker?)
        .ok()
        .map(|m| m.ty)
}

/// `(user comment, marker JSON)` of a comment that may end with a `prefix` marker line.
fn split_marker<'a>(comment: &'a str, prefix: &str) -> (Option<&'a str>, Option<&'a str>) {
    if let Some(json) = comment.strip_prefix(prefix) {
        return (None, Some(json));
    }
    match comment.rfind(&format!("\n{prefix}")) {
        Some(i) => (Some(&comment[..i]), Some(&comment[i + 1 + prefix.len()..])),
        None => (Some(comment), None),
    }
}

fn join_marker(user: Option<&str>, marker_line: &str) -> String {
    match user {
        Some(u) if !u.is_empty() => format!("{u}\n{marker_line}"),
        _ => marker_line.to_string(),
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The stored comment of a view: the user's comment and the marker line.
fn view_comment(user: Option<&str>, sql: &str, def: &str) -> String {
    let marker = ViewMarker {
        sql: sql.to_string(),
        def_sha256: sha256_hex(def),
    };
    let json = serde_json::to_string(&marker).unwrap_or_default();
    join_marker(user, &format!("{VIEW_MARKER}{json}"))
}

/// `(sql, comment)` of a refreshed view from its stored comment and current definition.
fn view_from_catalog(description: Option<&str>, def: &str) -> (String, Option<String>) {
    let catalog_sql = || def.trim().trim_end_matches(';').trim_end().to_string();
    let Some(desc) = description else {
        return (catalog_sql(), None);
    };
    let (user, marker) = split_marker(desc, VIEW_MARKER);
    let user = user.map(str::to_string);
    match marker.and_then(|m| serde_json::from_str::<ViewMarker>(m).ok()) {
        Some(m) if m.def_sha256 == sha256_hex(def) => (m.sql, user),
        _ => (catalog_sql(), user),
    }
}

fn column_from_catalog(
    name: String,
    native: &str,
    not_null: bool,
    comment: Option<String>,
) -> ColumnSpec {
    match logical_type(native) {
        Some(ty) => ColumnSpec {
            name,
            ty,
            nullable: !not_null,
            comment,
        },
        None => {
            let marker = serde_json::to_string(&NativeMarker {
                ty: native.to_string(),
            })
            .unwrap_or_default();
            ColumnSpec {
                name,
                ty: LogicalType::String,
                nullable: !not_null,
                comment: Some(join_marker(
                    comment.as_deref(),
                    &format!("{NATIVE_MARKER}{marker}"),
                )),
            }
        }
    }
}

fn build_resources(
    store: &str,
    schema_rows: &[Row],
    relation_rows: &[Row],
    column_rows: &[Row],
) -> std::result::Result<Vec<Resource>, tokio_postgres::Error> {
    let mut columns: HashMap<u32, Vec<ColumnSpec>> = HashMap::with_capacity(relation_rows.len());
    for r in column_rows {
        let oid: u32 = r.try_get(0)?;
        let native: &str = r.try_get(2)?;
        let col = column_from_catalog(r.try_get(1)?, native, r.try_get(3)?, r.try_get(4)?);
        columns.entry(oid).or_default().push(col);
    }
    let mut out = Vec::with_capacity(schema_rows.len() + relation_rows.len());
    for r in schema_rows {
        out.push(Resource::new(
            store,
            ResourceSpec::Schema {
                name: r.try_get(0)?,
            },
            Vec::new(),
        ));
    }
    for r in relation_rows {
        let oid: u32 = r.try_get(0)?;
        let schema: String = r.try_get(1)?;
        let name: String = r.try_get(2)?;
        let is_view: bool = r.try_get(3)?;
        let description: Option<String> = r.try_get(4)?;
        let cols = columns.remove(&oid).unwrap_or_default();
        let depends_on = vec![address(ResourceKind::Schema, store, &schema, "")];
        let spec = if is_view {
            let def: Option<String> = r.try_get(5)?;
            let (sql, comment) =
                view_from_catalog(description.as_deref(), def.as_deref().unwrap_or_default());
            ResourceSpec::View {
                schema,
                name,
                sql,
                columns: cols,
                comment,
            }
        } else {
            ResourceSpec::Table {
                schema,
                name,
                columns: cols,
                comment: description,
            }
        };
        out.push(Resource::new(store, spec, depends_on));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Plans and statements

fn norm(c: &Option<String>) -> Option<&str> {
    c.as_deref().filter(|s| !s.is_empty())
}

/// Provider-specific corrections of an update's diff: an empty comment is no comment in
/// PostgreSQL; native-type markers are not comments but a type conversion to plan.
fn normalize_update(
    desired: &Resource,
    actual: &Resource,
    ops: &mut Vec<ColumnOp>,
    reasons: &mut Vec<String>,
) {
    ops.retain_mut(|op| match op {
        ColumnOp::SetColumnComment { from, to, .. } => {
            if let Some(f) = from.as_deref() {
                *from = split_marker(f, NATIVE_MARKER).0.map(str::to_string);
            }
            norm(from) != norm(to)
        }
        ColumnOp::SetComment { from, to } => norm(from) != norm(to),
        _ => true,
    });
    let (ResourceSpec::Table { columns: dc, .. }, ResourceSpec::Table { columns: ac, .. }) =
        (&desired.spec, &actual.spec)
    else {
        return;
    };
    for a_col in ac {
        let Some(native) = native_type_of(a_col) else {
            continue;
        };
        let Some(d_col) = dc.iter().find(|c| c.name == a_col.name) else {
            continue;
        };
        // diff's narrowing line speaks of the stand-in type, not the real one.
        let stand_in = format!(
            "narrows column {} from {} to {}",
            d_col.name, a_col.ty, d_col.ty
        );
        reasons.retain(|r| *r != stand_in);
        if !ops
            .iter()
            .any(|o| matches!(o, ColumnOp::ChangeType { column, .. } if *column == a_col.name))
        {
            ops.push(ColumnOp::ChangeType {
                column: a_col.name.clone(),
                from: a_col.ty,
                to: d_col.ty,
            });
        }
        reasons.push(format!(
            "converts column {} from PostgreSQL type {native} (which has no dk logical type) to {} ({})",
            a_col.name,
            d_col.ty,
            native_type(d_col.ty)
        ));
    }
}

fn qualify(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

fn comment_literal(c: &Option<String>) -> String {
    norm(c).map_or_else(|| "NULL".to_string(), quote_literal)
}

/// A view's query without a trailing `;`.
fn view_body(sql: &str) -> &str {
    sql.trim().trim_end_matches(';').trim_end()
}

fn column_definition(c: &ColumnSpec) -> String {
    format!(
        "{} {}{}",
        quote_ident(&c.name),
        native_type(c.ty),
        if c.nullable { "" } else { " NOT NULL" }
    )
}

/// The statements of a change, in order.
pub fn statements(
    action: Action,
    desired: Option<&Resource>,
    actual: Option<&Resource>,
    ops: &[ColumnOp],
) -> Vec<String> {
    let mut out = Vec::new();
    match action {
        Action::Create => {
            if let Some(d) = desired {
                create_statements(d, &mut out);
            }
        }
        Action::Delete => {
            if let Some(a) = actual {
                out.push(drop_statement(a));
            }
        }
        Action::Replace => {
            if let Some(a) = actual {
                out.push(drop_statement(a));
            }
            if let Some(d) = desired {
                create_statements(d, &mut out);
            }
        }
        Action::Update => {
            if let Some(d) = desired {
                update_statements(d, ops, &mut out);
            }
        }
    }
    out
}

fn create_statements(r: &Resource, out: &mut Vec<String>) {
    match &r.spec {
        ResourceSpec::Schema { name } => {
            out.push(format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(name)))
        }
        ResourceSpec::Table {
            schema,
            name,
            columns,
            comment,
        } => {
            let t = qualify(schema, name);
            if columns.is_empty() {
                out.push(format!("CREATE TABLE {t} ()"));
            } else {
                let cols: Vec<String> = columns
                    .iter()
                    .map(|c| format!("    {}", column_definition(c)))
                    .collect();
                out.push(format!("CREATE TABLE {t} (\n{}\n)", cols.join(",\n")));
            }
            if norm(comment).is_some() {
                out.push(format!(
                    "COMMENT ON TABLE {t} IS {}",
                    comment_literal(comment)
                ));
            }
            for c in columns {
                if norm(&c.comment).is_some() {
                    out.push(format!(
                        "COMMENT ON COLUMN {t}.{} IS {}",
                        quote_ident(&c.name),
                        comment_literal(&c.comment)
                    ));
                }
            }
        }
        ResourceSpec::View {
            schema,
            name,
            sql,
            columns,
            comment,
        } => {
            let v = qualify(schema, name);
            out.push(format!("CREATE VIEW {v} AS {}", view_body(sql)));
            if norm(comment).is_some() {
                out.push(format!(
                    "COMMENT ON VIEW {v} IS {}",
                    comment_literal(comment)
                ));
            }
            for c in columns {
                if norm(&c.comment).is_some() {
                    out.push(format!(
                        "COMMENT ON COLUMN {v}.{} IS {}",
                        quote_ident(&c.name),
                        comment_literal(&c.comment)
                    ));
                }
            }
        }
    }
}

fn drop_statement(r: &Resource) -> String {
    match &r.spec {
        ResourceSpec::Schema { name } => format!("DROP SCHEMA {}", quote_ident(name)),
        ResourceSpec::Table { schema, name, .. } => format!("DROP TABLE {}", qualify(schema, name)),
        ResourceSpec::View { schema, name, .. } => format!("DROP VIEW {}", qualify(schema, name)),
    }
}

fn update_statements(desired: &Resource, ops: &[ColumnOp], out: &mut Vec<String>) {
    match &desired.spec {
        ResourceSpec::Table { schema, name, .. } => {
            let t = qualify(schema, name);
            let alter = |what: String| format!("ALTER TABLE {t} {what}");
            // Drops, adds, type changes, nullability, comments.
            for op in ops {
                if let ColumnOp::DropColumn { column } = op {
                    out.push(alter(format!("DROP COLUMN {}", quote_ident(column))));
                }
            }
            for op in ops {
                if let ColumnOp::AddColumn { column } = op {
                    let c = quote_ident(&column.name);
                    out.push(alter(format!("ADD COLUMN {c} {}", native_type(column.ty))));
                    if !column.nullable {
                        out.push(alter(format!("ALTER COLUMN {c} SET NOT NULL")));
                    }
                    if norm(&column.comment).is_some() {
                        out.push(format!(
                            "COMMENT ON COLUMN {t}.{c} IS {}",
                            comment_literal(&column.comment)
                        ));
                    }
                }
            }
            for op in ops {
                if let ColumnOp::ChangeType { column, to, .. } = op {
                    let c = quote_ident(column);
                    let ty = native_type(*to);
                    out.push(alter(format!("ALTER COLUMN {c} TYPE {ty} USING {c}::{ty}")));
                }
            }
            for op in ops {
                match op {
                    ColumnOp::DropNotNull { column } => out.push(alter(format!(
                        "ALTER COLUMN {} DROP NOT NULL",
                        quote_ident(column)
                    ))),
                    ColumnOp::SetNotNull { column } => out.push(alter(format!(
                        "ALTER COLUMN {} SET NOT NULL",
                        quote_ident(column)
                    ))),
                    _ => {}
                }
            }
            for op in ops {
                match op {
                    ColumnOp::SetComment { to, .. } => {
                        out.push(format!("COMMENT ON TABLE {t} IS {}", comment_literal(to)))
                    }
                    ColumnOp::SetColumnComment { column, to, .. } => out.push(format!(
                        "COMMENT ON COLUMN {t}.{} IS {}",
                        quote_ident(column),
                        comment_literal(to)
                    )),
                    _ => {}
                }
            }
        }
        ResourceSpec::View {
            schema, name, sql, ..
        } => {
            let v = qualify(schema, name);
            for op in ops {
                match op {
                    ColumnOp::ReplaceQuery { .. } => {
                        out.push(format!("CREATE OR REPLACE VIEW {v} AS {}", view_body(sql)))
                    }
                    ColumnOp::SetComment { to, .. } => {
                        out.push(format!("COMMENT ON VIEW {v} IS {}", comment_literal(to)))
                    }
                    _ => {}
                }
            }
        }
        ResourceSpec::Schema { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;
    use std::sync::Arc;
    use tokio_postgres::config::SslMode;

    const ALL: [LogicalType; 15] = [
        LogicalType::SmallInt,
        LogicalType::Integer,
        LogicalType::BigInt,
        LogicalType::Float,
        LogicalType::Double,
        LogicalType::Decimal(10, 2),
        LogicalType::Boolean,
        LogicalType::String,
        LogicalType::Date,
        LogicalType::Time,
        LogicalType::Timestamp,
        LogicalType::TimestampTz,
        LogicalType::Json,
        LogicalType::Binary,
        LogicalType::Uuid,
    ];

    /// What `format_type` prints for the types dk creates.
    fn printed(t: LogicalType) -> String {
        match t {
            LogicalType::Time => "time without time zone".into(),
            LogicalType::Timestamp => "timestamp without time zone".into(),
            LogicalType::TimestampTz => "timestamp with time zone".into(),
            other => native_type(other),
        }
    }

    #[test]
    fn every_logical_type_round_trips() {
        for t in ALL {
            assert_eq!(logical_type(&printed(t)), Some(t), "{t}");
        }
        assert_eq!(
            native_type(LogicalType::parse("decimal").unwrap_or(LogicalType::Boolean)),
            "numeric(18,3)"
        );
        assert_eq!(
            logical_type("numeric(18,3)"),
            Some(LogicalType::Decimal(18, 3))
        );
    }

    #[test]
    fn accepted_native_variants() {
        assert_eq!(
            logical_type("character varying(20)"),
            Some(LogicalType::String)
        );
        assert_eq!(logical_type("character varying"), Some(LogicalType::String));
        assert_eq!(logical_type("json"), Some(LogicalType::Json));
        assert_eq!(
            logical_type("timestamp(3) without time zone"),
            Some(LogicalType::Timestamp)
        );
        assert_eq!(
            logical_type("timestamp(0) with time zone"),
            Some(LogicalType::TimestampTz)
        );
        assert_eq!(
            logical_type("time(2) without time zone"),
            Some(LogicalType::Time)
        );
    }

    #[test]
    fn unmappable_native_types() {
        for n in [
            "numeric",
            "numeric(39,2)",
            "numeric(5,-2)",
            "numeric(2,5)",
            "interval",
            "character(3)",
            "time with time zone",
            "integer[]",
            "character varying(20)[]",
            "timestamp(3) without time zone[]",
            "money",
            "inet",
            "public.mood",
            "xml",
            "oid",
        ] {
            assert_eq!(logical_type(n), None, "{n}");
        }
    }

    #[test]
    fn native_marker_keeps_the_type_and_the_comment() {
        let c = column_from_catalog("d".into(), "interval", true, Some("how long".into()));
        assert_eq!(c.ty, LogicalType::String);
        assert!(!c.nullable);
        assert_eq!(
            c.comment.as_deref(),
            Some("how long\n-- dk:native {\"type\":\"interval\"}")
        );
        assert_eq!(native_type_of(&c).as_deref(), Some("interval"));
        let c = column_from_catalog("d".into(), "character(3)", false, None);
        assert_eq!(native_type_of(&c).as_deref(), Some("character(3)"));
        let plain = column_from_catalog("d".into(), "bigint", false, Some("x".into()));
        assert_eq!(
            plain,
            ColumnSpec {
                name: "d".into(),
                ty: LogicalType::BigInt,
                nullable: true,
                comment: Some("x".into())
            }
        );
        assert_eq!(native_type_of(&plain), None);
    }

    #[test]
    fn view_marker_round_trip_and_drift() {
        let def = " SELECT 1 AS one;";
        let sql = "select 1 as one -- it's \"one\"\n";
        let stored = view_comment(Some("Daily\nnumbers"), sql, def);
        assert_eq!(
            view_from_catalog(Some(&stored), def),
            (sql.to_string(), Some("Daily\nnumbers".to_string()))
        );
        // Changed outside dk: the catalog definition wins.
        assert_eq!(
            view_from_catalog(Some(&stored), " SELECT 2 AS one;"),
            (
                "SELECT 2 AS one".to_string(),
                Some("Daily\nnumbers".to_string())
            )
        );
        let stored = view_comment(None, sql, def);
        assert!(stored.starts_with(VIEW_MARKER));
        assert_eq!(
            view_from_catalog(Some(&stored), def),
            (sql.to_string(), None)
        );
        // Created outside dk.
        assert_eq!(
            view_from_catalog(Some("hello"), def),
            ("SELECT 1 AS one".to_string(), Some("hello".to_string()))
        );
        assert_eq!(
            view_from_catalog(None, def),
            ("SELECT 1 AS one".to_string(), None)
        );
    }

    fn table(cols: Vec<ColumnSpec>, comment: Option<&str>) -> Resource {
        Resource::new(
            "wh",
            ResourceSpec::Table {
                schema: "my schema".into(),
                name: "t\"1".into(),
                columns: cols,
                comment: comment.map(str::to_string),
            },
            vec!["schema.wh.my schema".into()],
        )
    }

    fn col(name: &str, ty: LogicalType, nullable: bool, comment: Option<&str>) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            ty,
            nullable,
            comment: comment.map(str::to_string),
        }
    }

    fn view(sql: &str, comment: Option<&str>) -> Resource {
        Resource::new(
            "wh",
            ResourceSpec::View {
                schema: "s".into(),
                name: "v".into(),
                sql: sql.into(),
                columns: vec![],
                comment: comment.map(str::to_string),
            },
            vec![],
        )
    }

    #[test]
    fn create_table_statements() {
        let t = table(
            vec![
                col("id", LogicalType::BigInt, false, Some("the id")),
                col("amount", LogicalType::Decimal(18, 3), true, None),
            ],
            Some("it's a table"),
        );
        assert_eq!(
            statements(Action::Create, Some(&t), None, &[]),
            vec![
                "CREATE TABLE \"my schema\".\"t\"\"1\" (\n    \"id\" bigint NOT NULL,\n    \"amount\" numeric(18,3)\n)".to_string(),
                "COMMENT ON TABLE \"my schema\".\"t\"\"1\" IS 'it''s a table'".to_string(),
                "COMMENT ON COLUMN \"my schema\".\"t\"\"1\".\"id\" IS 'the id'".to_string(),
            ]
        );
        let s = Resource::new(
            "wh",
            ResourceSpec::Schema {
                name: "marts".into(),
            },
            vec![],
        );
        assert_eq!(
            statements(Action::Create, Some(&s), None, &[]),
            vec!["CREATE SCHEMA IF NOT EXISTS \"marts\"".to_string()]
        );
        assert_eq!(
            statements(Action::Delete, None, Some(&s), &[]),
            vec!["DROP SCHEMA \"marts\"".to_string()]
        );
        assert_eq!(
            statements(Action::Delete, None, Some(&t), &[]),
            vec!["DROP TABLE \"my schema\".\"t\"\"1\"".to_string()]
        );
    }

    #[test]
    fn update_table_statements_in_order() {
        let actual = table(
            vec![
                col("id", LogicalType::Integer, true, None),
                col("old", LogicalType::String, true, None),
                col("c", LogicalType::Double, false, Some("x")),
            ],
            None,
        );
        let desired = table(
            vec![
                col("id", LogicalType::BigInt, false, None),
                col("c", LogicalType::Double, true, None),
                col("new", LogicalType::Date, false, Some("n")),
            ],
            Some("t"),
        );
        let Some(d) = diff(Some(&desired), Some(&actual)) else {
            panic!("expected a diff");
        };
        let (mut ops, mut reasons) = (d.ops, d.reasons);
        normalize_update(&desired, &actual, &mut ops, &mut reasons);
        let t = "ALTER TABLE \"my schema\".\"t\"\"1\"";
        assert_eq!(
            statements(Action::Update, Some(&desired), Some(&actual), &ops),
            vec![
                format!("{t} DROP COLUMN \"old\""),
                format!("{t} ADD COLUMN \"new\" date"),
                format!("{t} ALTER COLUMN \"new\" SET NOT NULL"),
                "COMMENT ON COLUMN \"my schema\".\"t\"\"1\".\"new\" IS 'n'".to_string(),
                format!("{t} ALTER COLUMN \"id\" TYPE bigint USING \"id\"::bigint"),
                format!("{t} ALTER COLUMN \"id\" SET NOT NULL"),
                format!("{t} ALTER COLUMN \"c\" DROP NOT NULL"),
                "COMMENT ON COLUMN \"my schema\".\"t\"\"1\".\"c\" IS NULL".to_string(),
                "COMMENT ON TABLE \"my schema\".\"t\"\"1\" IS 't'".to_string(),
            ]
        );
    }

    #[test]
    fn empty_comment_is_no_comment() {
        let actual = table(vec![col("a", LogicalType::Integer, true, None)], None);
        let desired = table(
            vec![col("a", LogicalType::Integer, true, Some(""))],
            Some(""),
        );
        let Some(d) = diff(Some(&desired), Some(&actual)) else {
            panic!("expected a diff");
        };
        let (mut ops, mut reasons) = (d.ops, d.reasons);
        normalize_update(&desired, &actual, &mut ops, &mut reasons);
        assert!(ops.is_empty(), "{ops:?}");
    }

    #[test]
    fn unmappable_column_plans_a_conversion() {
        let mut native = column_from_catalog("d".into(), "interval", true, Some("dur".into()));
        native.nullable = true;
        let actual = table(
            vec![col("id", LogicalType::BigInt, false, None), native],
            None,
        );
        for ty in [LogicalType::String, LogicalType::BigInt] {
            let desired = table(
                vec![
                    col("id", LogicalType::BigInt, false, None),
                    col("d", ty, true, Some("dur")),
                ],
                None,
            );
            let Some(d) = diff(Some(&desired), Some(&actual)) else {
                panic!("an unmappable column must never match");
            };
            let (mut ops, mut reasons) = (d.ops, d.reasons);
            normalize_update(&desired, &actual, &mut ops, &mut reasons);
            assert_eq!(
                ops,
                vec![ColumnOp::ChangeType {
                    column: "d".into(),
                    from: LogicalType::String,
                    to: ty
                }]
            );
            assert_eq!(reasons.len(), 1, "{reasons:?}");
            assert!(reasons[0].contains("interval"), "{reasons:?}");
            let nt = native_type(ty);
            assert_eq!(
                statements(Action::Update, Some(&desired), Some(&actual), &ops),
                vec![format!("ALTER TABLE \"my schema\".\"t\"\"1\" ALTER COLUMN \"d\" TYPE {nt} USING \"d\"::{nt}")]
            );
        }
    }

    #[test]
    fn view_statements() {
        let v = view("select 1 as a;", Some("v"));
        assert_eq!(
            statements(Action::Create, Some(&v), None, &[]),
            vec![
                "CREATE VIEW \"s\".\"v\" AS select 1 as a".to_string(),
                "COMMENT ON VIEW \"s\".\"v\" IS 'v'".to_string()
            ]
        );
        let old = view("select 2 as a", None);
        let Some(d) = diff(Some(&v), Some(&old)) else {
            panic!("expected a diff");
        };
        assert_eq!(
            statements(Action::Update, Some(&v), Some(&old), &d.ops),
            vec![
                "CREATE OR REPLACE VIEW \"s\".\"v\" AS select 1 as a".to_string(),
                "COMMENT ON VIEW \"s\".\"v\" IS 'v'".to_string()
            ]
        );
        assert_eq!(
            statements(Action::Replace, Some(&v), Some(&old), &d.ops),
            vec![
                "DROP VIEW \"s\".\"v\"".to_string(),
                "CREATE VIEW \"s\".\"v\" AS select 1 as a".to_string(),
                "COMMENT ON VIEW \"s\".\"v\" IS 'v'".to_string()
            ]
        );
        let t = Resource::new(
            "wh",
            ResourceSpec::Table {
                schema: "s".into(),
                name: "v".into(),
                columns: vec![col("a", LogicalType::Integer, true, None)],
                comment: None,
            },
            vec![],
        );
        assert_eq!(
            statements(Action::Replace, Some(&v), Some(&t), &[]),
            vec![
                "DROP TABLE \"s\".\"v\"".to_string(),
                "CREATE VIEW \"s\".\"v\" AS select 1 as a".to_string(),
                "COMMENT ON VIEW \"s\".\"v\" IS 'v'".to_string()
            ]
        );
    }

    fn store(connection: &[(&str, Value)]) -> ResolvedStore {
        ResolvedStore {
            name: "wh".into(),
            connector: Some("postgres".into()),
            connector_type: "postgres".into(),
            connection: connection
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<IndexMap<_, _>>(),
            secrets: IndexMap::new(),
            bound: false,
            file: Arc::from("stores/wh.yaml"),
        }
    }

    #[test]
    fn connection_settings() {
        let s = store(&[
            ("host", Value::from("db.internal")),
            ("port", Value::from(6543)),
            ("database", Value::from("shop")),
            ("user", Value::from("loader")),
            ("sslmode", Value::from("prefer")),
            ("schema", Value::from("ignored")),
        ]);
        let c = config_for(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(describe(&c), "db.internal:6543/shop as loader");
        assert_eq!(c.get_ssl_mode(), SslMode::Prefer);

        let s = store(&[(
            "connection_string",
            Value::from("host=h port=5433 user=u dbname=d sslmode=allow application_name=x"),
        )]);
        let c = config_for(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(describe(&c), "h:5433/d as u");
        assert_eq!(c.get_application_name(), Some("x"));

        let s = store(&[(
            "connection_string",
            Value::from("postgresql://u@h:5434/d?sslmode=verify-full"),
        )]);
        let c = config_for(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        assert_eq!(
            connector_for(&s).unwrap_or_else(|e| panic!("{e}")).mode(),
            dk_pgtls::SslMode::VerifyFull
        );

        let s = store(&[
            ("host", Value::from("h")),
            ("user", Value::from("u")),
            ("sslmode", Value::from("require")),
        ]);
        assert_eq!(
            config_for(&s).map(|c| c.get_ssl_mode()).ok(),
            Some(SslMode::Require)
        );
        let s = store(&[
            ("host", Value::from("h")),
            ("user", Value::from("u")),
            ("sslmode", Value::from("verify-ca")),
            ("sslrootcert", Value::from("/nonexistent/ca.pem")),
        ]);
        let Err(ProviderError::Config { message, .. }) = config_for(&s) else {
            panic!("an unreadable sslrootcert must be refused");
        };
        assert!(message.contains("/nonexistent/ca.pem"), "{message}");
        let s = store(&[
            ("host", Value::from("h")),
            ("user", Value::from("u")),
            ("sslmode", Value::from("on")),
        ]);
        let Err(ProviderError::Config { message, .. }) = config_for(&s) else {
            panic!("an unknown sslmode must be refused");
        };
        assert!(message.contains("verify-full"), "{message}");
        let s = store(&[
            ("host", Value::from("h")),
            ("user", Value::from("u")),
            ("port", Value::from("x")),
        ]);
        assert!(matches!(config_for(&s), Err(ProviderError::Config { .. })));
        let s = store(&[("host", Value::from("h"))]);
        let Err(ProviderError::Config { message, .. }) = config_for(&s) else {
            panic!("a missing user must be refused");
        };
        assert!(message.contains("connection.user"), "{message}");
    }
}
