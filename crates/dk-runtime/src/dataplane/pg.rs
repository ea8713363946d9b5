//! The PostgreSQL data plane: reads are `COPY (query) TO STDOUT (FORMAT binary)` decoded into
//! Arrow batches as the bytes arrive; writes are `COPY … FROM STDIN (FORMAT binary)` on a
//! connection of their own inside one transaction (overwrite truncates first; merge copies into a
//! temporary table, deletes the rows with matching keys, and inserts).
//!
//! Transactions and writes take a connection from the plane's idle pool (opened on first need,
//! returned after a commit, dropped after an error), so a run of many transforms on one store
//! opens as many connections as run at once, not one per transform. A transaction's statements go
//! in one simple-protocol round trip (`BEGIN; …; COMMIT`).

use futures_util::{pin_mut, SinkExt, StreamExt};
use tokio_postgres::{Client, Config};

use super::pgcopy::{self, Decoder, Wire};
use super::schema::{conform, DeclaredColumn};
use super::{quote_ident, BatchStream, WriteMode, WriteReport, BATCH_ROWS};
use crate::error::{Result, RuntimeError};
use dk_env::ResolvedStore;
use dk_providers::model::LogicalType;
use dk_providers::postgres::{config_for, connect_message, connector_for, describe, error_text};

/// Bytes of encoded rows sent per COPY message.
const COPY_CHUNK: usize = 1 << 20;

/// A PostgreSQL store.
pub struct PgPlane {
    pub(crate) resolved: ResolvedStore,
    config: Config,
    target: String,
    client: Client,
    /// Connections for transactions and writes, idle between uses.
    idle: std::sync::Mutex<Vec<Client>>,
}

/// A new connection with the store's TLS settings (`sslmode`, `sslrootcert`).
async fn connect(rs: &ResolvedStore, config: &Config, target: &str) -> Result<Client> {
    connector_for(rs)?
        .connect(config)
        .await
        .map_err(|e| RuntimeError::db(&rs.name, "connect", connect_message(target, &e)))
}

impl PgPlane {
    pub async fn connect(store: &ResolvedStore) -> Result<PgPlane> {
        let mut config = config_for(store)?;
        if config.get_application_name().is_none() {
            config.application_name("dk-run");
        }
        let target = describe(&config);
        let client = connect(store, &config, &target).await?;
        Ok(PgPlane {
            resolved: store.clone(),
            config,
            target,
            client,
            idle: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// An idle pooled connection, or a new one.
    async fn checkout(&self) -> Result<Client> {
        loop {
            let reused = match self.idle.lock() {
                Ok(mut idle) => idle.pop(),
                Err(poisoned) => poisoned.into_inner().pop(),
            };
            match reused {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => return connect(&self.resolved, &self.config, &self.target).await,
            }
        }
    }

    /// Returns a connection that is outside any transaction to the idle pool.
    fn checkin(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        match self.idle.lock() {
            Ok(mut idle) => idle.push(client),
            Err(poisoned) => poisoned.into_inner().push(client),
        }
    }

    fn err(&self, context: impl Into<String>, e: &tokio_postgres::Error) -> RuntimeError {
        RuntimeError::db(&self.resolved.name, context, error_text(e))
    }

    pub async fn execute(&self, sql: &str) -> Result<u64> {
        match self.client.execute(sql, &[]).await {
            Ok(n) => Ok(n),
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::SYNTAX_ERROR)
                    && error_text(&e).contains("multiple commands") =>
            {
                self.client
                    .batch_execute(sql)
                    .await
                    .map(|_| 0)
                    .map_err(|e| self.err("execute", &e))
            }
            Err(e) => Err(self.err("execute", &e)),
        }
    }

    /// Runs the statements in one transaction, in one round trip; returns each statement's row
    /// count (0 for empty statements and DDL). A failure names the statement that failed.
    pub async fn transaction(&self, statements: &[String]) -> Result<Vec<u64>> {
        let body: Vec<(usize, &str)> = statements
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.trim().trim_end_matches(';').trim_end()))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        let mut counts = vec![0u64; statements.len()];
        if body.is_empty() {
            return Ok(counts);
        }
        // Each statement on lines of its own, so a trailing `--` comment cannot swallow the `;`.
        let mut sql = String::from("BEGIN;\n");
        for (_, s) in &body {
            sql.push_str(s);
            sql.push_str("\n;\n");
        }
        sql.push_str("COMMIT");
        let client = self.checkout().await?;
        let stream = client
            .simple_query_raw(&sql)
            .await
            .map_err(|e| self.err("begin", &e))?;
        pin_mut!(stream);
        // Completed commands: BEGIN, then the statements, then COMMIT.
        let mut done = 0usize;
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(tokio_postgres::SimpleQueryMessage::CommandComplete(n)) => {
                    if let Some((i, _)) = done.checked_sub(1).and_then(|k| body.get(k)) {
                        counts[*i] = n;
                    }
                    done += 1;
                }
                Ok(_) => {}
                Err(e) => {
                    // The connection is left in an aborted transaction: drop it, not pool it.
                    let what = match done.checked_sub(1).and_then(|k| body.get(k)) {
                        Some((_, s)) => s
                            .lines()
                            .map(str::trim)
                            .find(|l| !l.is_empty())
                            .unwrap_or("")
                            .chars()
                            .take(80)
                            .collect::<String>(),
                        None if done == 0 => "begin".to_string(),
                        None => "commit".to_string(),
                    };
                    return Err(self.err(what, &e));
                }
            }
        }
        if done != body.len() + 2 {
            return Err(RuntimeError::db(
                &self.resolved.name,
                "commit",
                format!(
                    "the server completed {done} of {} commands of the transaction",
                    body.len() + 2
                ),
            ));
        }
        self.checkin(client);
        Ok(counts)
    }

    /// Columns with their native types (`format_type`), `None` when the relation is missing.
    async fn table_columns(
        &self,
        schema: &str,
        name: &str,
    ) -> Result<Option<Vec<(DeclaredColumn, String)>>> {
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull \
                 FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&schema, &name],
            )
            .await
            .map_err(|e| self.err(format!("read the columns of {schema}.{name}"), &e))?;
        if rows.is_empty() {
            return Ok(None);
        }
        rows.iter()
            .map(|r| {
                let n: String = r.get(0);
                let native: String = r.get(1);
                let notnull: bool = r.get(2);
                // A `numeric` without precision has no decimal(p,s): it moves as exact text.
                let ty = dk_providers::postgres::logical_type(&native)
                    .or_else(|| (native == "numeric").then_some(LogicalType::String))
                    .ok_or_else(|| {
                    RuntimeError::Schema(format!(
                        "store {}: column {schema}.{name}.{n} has type {native}, which dk cannot read or write (no logical type); change the column or cast it in a view",
                        self.resolved.name
                    ))
                })?;
                Ok((
                    DeclaredColumn {
                        name: n,
                        ty,
                        nullable: !notnull,
                    },
                    native,
                ))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    pub async fn columns(&self, schema: &str, name: &str) -> Result<Option<Vec<DeclaredColumn>>> {
        Ok(self
            .table_columns(schema, name)
            .await?
            .map(|v| v.into_iter().map(|(c, _)| c).collect()))
    }

    pub async fn query(&self, sql: &str) -> Result<BatchStream> {
        self.stream(sql, &[]).await
    }

    /// Reads a table: its catalog types give exact decimals (`numeric(p,s)`). A `numeric` without
    /// precision that the dataset declares `decimal(p,s)` is decoded straight into that decimal
    /// (rounded half away from zero, refused when it does not fit), as the declared schema's cast
    /// of its exact text would.
    pub async fn scan_table(
        &self,
        schema: &str,
        name: &str,
        sql: &str,
        declared: &[DeclaredColumn],
    ) -> Result<BatchStream> {
        let mut known = self.table_columns(schema, name).await?.ok_or_else(|| {
            RuntimeError::Config(format!(
                "store {}: table {schema}.{name} does not exist (run `dk apply`, or the transform that produces it)",
                self.resolved.name
            ))
        })?;
        for (k, native) in &mut known {
            if native == "numeric" {
                if let Some(d) = declared.iter().find(|d| d.name == k.name) {
                    if let LogicalType::Decimal(..) = d.ty {
                        k.ty = d.ty;
                    }
                }
            }
        }
        self.stream(sql, &known).await
    }

    async fn stream(&self, sql: &str, known: &[(DeclaredColumn, String)]) -> Result<BatchStream> {
        let sql = sql.trim().trim_end_matches(';').trim();
        let stmt = self
            .client
            .prepare(sql)
            .await
            .map_err(|e| self.err("query", &e))?;
        let mut names = Vec::new();
        let mut wires = Vec::new();
        for c in stmt.columns() {
            let wire = match known.iter().find(|(k, _)| k.name == c.name()) {
                Some((k, native)) => Wire::of_logical(k.ty, native),
                None => Wire::of_type_name(c.type_().name()).ok_or_else(|| {
                    RuntimeError::Schema(format!(
                        "store {}: result column {} has type {}, which dk cannot read; cast it in the query (e.g. {}::text)",
                        self.resolved.name,
                        c.name(),
                        c.type_().name(),
                        quote_ident(c.name())
                    ))
                })?,
            };
            names.push(c.name().to_string());
            wires.push(wire);
        }
        let copy = format!("COPY ({sql}) TO STDOUT (FORMAT binary)");
        let out = self
            .client
            .copy_out(copy.as_str())
            .await
            .map_err(|e| self.err("query", &e))?;
        let mut decoder = Decoder::new(names, wires, format!("store {}", self.resolved.name));
        let (tx, stream) = BatchStream::channel(decoder.schema());
        let store = self.resolved.name.clone();
        tokio::spawn(async move {
            pin_mut!(out);
            while let Some(chunk) = out.next().await {
                let step = match chunk {
                    Ok(bytes) => decoder.push(&bytes),
                    Err(e) => Err(RuntimeError::db(&store, "query", error_text(&e))),
                };
                if let Err(e) = step {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                if decoder.pending_rows() >= BATCH_ROWS {
                    match decoder.flush() {
                        Ok(Some(b)) => {
                            if tx.send(Ok(b)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    }
                }
            }
            match decoder.flush() {
                Ok(Some(b)) => {
                    let _ = tx.send(Ok(b)).await;
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        Ok(stream)
    }

    pub async fn write(
        &self,
        schema: &str,
        name: &str,
        columns: &[DeclaredColumn],
        mut stream: BatchStream,
        mode: &WriteMode,
    ) -> Result<WriteReport> {
        let natives = self.table_columns(schema, name).await?.unwrap_or_default();
        let wires: Vec<Wire> = columns
            .iter()
            .map(|c| {
                let native = natives
                    .iter()
                    .find(|(k, _)| k.name == c.name)
                    .map(|(_, n)| n.as_str())
                    .unwrap_or("");
                Wire::of_logical(c.ty, native)
            })
            .collect();
        let client = self.checkout().await?;
        let target = format!("{}.{}", quote_ident(schema), quote_ident(name));
        let context = format!("store {}: table {schema}.{name}", self.resolved.name);
        let err = |what: &str, e: &tokio_postgres::Error| {
            RuntimeError::db(
                &self.resolved.name,
                format!("{schema}.{name}: {what}"),
                error_text(e),
            )
        };
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| err("begin", &e))?;
        let result: Result<u64> = async {
            let into = match mode {
                WriteMode::Overwrite => {
                    client
                        .batch_execute(&format!("TRUNCATE {target}"))
                        .await
                        .map_err(|e| err("truncate", &e))?;
                    target.clone()
                }
                WriteMode::Merge { .. } => {
                    let stage = quote_ident(&format!("dk_stage_{}", uuid::Uuid::new_v4().simple()));
                    client
                        .batch_execute(&format!(
                            "CREATE TEMP TABLE {stage} (LIKE {target}) ON COMMIT DROP"
                        ))
                        .await
                        .map_err(|e| err("create staging table", &e))?;
                    stage
                }
                WriteMode::Append => target.clone(),
            };
            let cols = columns
                .iter()
                .map(|c| quote_ident(&c.name))
                .collect::<Vec<_>>()
                .join(", ");
            let sink = client
                .copy_in::<_, bytes::Bytes>(
                    format!("COPY {into} ({cols}) FROM STDIN (FORMAT binary)").as_str(),
                )
                .await
                .map_err(|e| err("start COPY", &e))?;
            pin_mut!(sink);
            let mut buf = bytes::BytesMut::with_capacity(COPY_CHUNK + 4096);
            pgcopy::header(&mut buf);
            let mut rows = 0u64;
            while let Some(batch) = stream.next().await {
                let batch = conform(&batch?, columns, &context)?;
                rows += batch.num_rows() as u64;
                pgcopy::encode(&batch, &wires, &context, &mut buf)?;
                if buf.len() >= COPY_CHUNK {
                    sink.send(buf.split().freeze())
                        .await
                        .map_err(|e| err("COPY rows", &e))?;
                }
            }
            pgcopy::trailer(&mut buf);
            sink.send(buf.split().freeze())
                .await
                .map_err(|e| err("COPY rows", &e))?;
            sink.as_mut()
                .finish()
                .await
                .map_err(|e| err("finish COPY", &e))?;
            if let WriteMode::Merge { keys } = mode {
                let on = keys
                    .iter()
                    .map(|k| format!("t.{q} = s.{q}", q = quote_ident(k)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                client
                    .batch_execute(&format!(
                        "DELETE FROM {target} t USING {into} s WHERE {on}; \
                         INSERT INTO {target} ({cols}) SELECT {cols} FROM {into}"
                    ))
                    .await
                    .map_err(|e| err("merge staged rows", &e))?;
            }
            Ok(rows)
        }
        .await;
        match result {
            Ok(rows) => {
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(|e| err("commit", &e))?;
                self.checkin(client);
                Ok(WriteReport { rows })
            }
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }
}
