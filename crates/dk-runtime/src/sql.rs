//! The `sql` runtime: a SELECT in a file beside the Transform manifest (`spec.sql`), rendered by
//! the one template renderer ([`dk_engine::template`]: `{{ ref('dataset') }}`, `{{ var('x') }}`),
//! pushed down to the store of the transform's single output and materialized there:
//!
//! * `view` — `CREATE OR REPLACE VIEW` (the same view `dk apply` creates);
//! * `table` (the default) — in one transaction, the output table's rows are replaced by the
//!   query's (`DELETE` + `INSERT … SELECT`; the table is created from the DataSet's declared schema
//!   when missing, or with `CREATE TABLE AS` when no schema is declared);
//! * `incremental` — the first run and `--full-refresh` build it like `table`; later runs insert
//!   only the query's rows whose `cursor` is greater than the table's current maximum, and with a
//!   `uniqueKey` replace the rows with the same key (staged in a temporary table, one transaction).
//!
//! **Inputs in another store** are synced first: each is copied (overwrite, with its declared
//! schema) into the table `dk_stage.<dataset name, - as _>` of the output's store, and `ref()`
//! points there. Inputs in the output's store are referenced in place.

use std::collections::HashMap;

use dk_engine::template::{self, RefTarget};
use dk_manifest::model::{DataSet, Kind, Transform};

use crate::dataplane::schema::{columns_of_schema, declared_columns};
use crate::dataplane::{quote_ident, DataPlane, Dialect, ScanOptions, Target, WriteMode};
use crate::error::{Result, RuntimeError};
use crate::runner::{io_names, Context, Outcome};
use dk_state::RunOutput;

/// Schema of the tables cross-store inputs are synced into.
pub const STAGE_SCHEMA: &str = "dk_stage";

fn terr(t: &Transform, message: impl Into<String>) -> RuntimeError {
    RuntimeError::Transform {
        transform: t.metadata.name.clone(),
        message: message.into(),
    }
}

fn dataset<'m>(cx: &Context<'m>, name: &str, t: &Transform) -> Result<&'m DataSet> {
    cx.model
        .datasets()
        .find(|(_, d)| d.metadata.name == name)
        .map(|(_, d)| d)
        .ok_or_else(|| terr(t, format!("dataset {name} is not defined")))
}

/// Copies a dataset of another store into `dk_stage` of `dst`; returns the relation and rows.
async fn stage(cx: &Context<'_>, ds: &DataSet, dst: &DataPlane) -> Result<(String, u64)> {
    let src = cx.plane(&ds.spec.store).await?;
    let target = Target::of_dataset(ds, cx.store(&ds.spec.store)?)?;
    let cols = declared_columns(ds)?;
    let stream = src
        .scan(
            &target,
            &ScanOptions {
                declared: cols.clone(),
                ..ScanOptions::default()
            },
        )
        .await?;
    let cols = if cols.is_empty() {
        columns_of_schema(&stream.schema(), &format!("dataset {}", ds.metadata.name))?
    } else {
        cols
    };
    let stage = Target::Table {
        schema: STAGE_SCHEMA.to_string(),
        name: ds.metadata.name.replace('-', "_"),
    };
    // The staged copy always has the dataset's current columns.
    dst.execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {s}; DROP TABLE IF EXISTS {r}",
        s = quote_ident(STAGE_SCHEMA),
        r = dst.relation(&stage)?
    ))
    .await?;
    dst.ensure_table(&stage, &cols).await?;
    let report = dst
        .write(&stage, stream, &WriteMode::Overwrite, &cols)
        .await?;
    Ok((dst.relation(&stage)?, report.rows))
}

/// Runs a sql transform.
pub async fn run(cx: &Context<'_>, t: &Transform) -> Result<Outcome> {
    let name = &t.metadata.name;
    let tdoc = cx
        .model
        .get(Kind::Transform, name)
        .ok_or_else(|| terr(t, "is not defined"))?;
    let rel = t.spec.sql.as_deref().ok_or_else(|| {
        terr(
            t,
            "runtime sql needs `sql:` naming the query file beside the manifest",
        )
    })?;
    let path = tdoc.dir().join(rel);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| RuntimeError::file("read the query of", &path, e))?;
    let (inputs, outputs) = io_names(cx.model, t);
    let [output] = outputs.as_slice() else {
        return Err(terr(
            t,
            format!(
                "a sql transform writes exactly one output (it has {}: {})",
                outputs.len(),
                outputs.join(", ")
            ),
        ));
    };
    let out_ds = dataset(cx, output, t)?;
    let plane = cx.plane(&out_ds.spec.store).await?;
    if plane.dialect() == Dialect::Files {
        return Err(terr(
            t,
            format!(
                "output {output} is in file store {}; a sql transform writes to a database store (add a sync after it to write files)",
                out_ds.spec.store
            ),
        ));
    }
    let target = Target::of_dataset(out_ds, cx.store(&out_ds.spec.store)?)?;
    let relation = plane.relation(&target)?;
    let mut rows_read = 0u64;
    let mut refs: HashMap<String, RefTarget> = HashMap::new();
    for input in &inputs {
        let ds = dataset(cx, input, t)?;
        let sql = if ds.spec.store == out_ds.spec.store {
            plane.relation(&Target::of_dataset(ds, cx.store(&ds.spec.store)?)?)?
        } else {
            let (rel, n) = stage(cx, ds, plane).await?;
            rows_read += n;
            rel
        };
        refs.insert(
            input.clone(),
            RefTarget {
                sql,
                tag: input.clone(),
            },
        );
    }
    let vars = template::vars(&cx.env.variables, &t.spec.vars);
    let rendered = template::render(&text, &refs, &vars).map_err(|e| {
        terr(
            t,
            format!(
                "{}{}: {}",
                path.strip_prefix(&cx.model.root).unwrap_or(&path).display(),
                e.line.map(|l| format!(":{l}")).unwrap_or_default(),
                e.message
            ),
        )
    })?;
    let query = rendered.sql;
    let declared = declared_columns(out_ds)?;
    let materialized = t.spec.materialized.as_deref().unwrap_or("table");
    let Target::Table { schema, .. } = &target else {
        return Err(terr(t, "output is not a table"));
    };
    let ensure_schema = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
    // Views are redefined and tables rebuilt wholesale; incremental runs only add or replace rows.
    let mut rebuilt = true;
    let rows_written = match materialized {
        "view" => {
            plane
                .transaction(&[
                    ensure_schema,
                    format!("CREATE OR REPLACE VIEW {relation} AS {query}"),
                ])
                .await?;
            0
        }
        "table" => rebuild(plane, &target, &relation, &query, &declared).await?,
        "incremental" => {
            let cursor = t.spec.cursor.as_deref();
            let keys = &t.spec.unique_key;
            if cursor.is_none() && keys.is_empty() {
                return Err(terr(
                    t,
                    "materialized: incremental needs `cursor` (a column increasing with new rows), `uniqueKey`, or both",
                ));
            }
            match plane.columns(&target).await? {
                Some(existing) if !cx.full_refresh => {
                    rebuilt = false;
                    let cols: Vec<String> = if declared.is_empty() {
                        existing.iter().map(|c| quote_ident(&c.name)).collect()
                    } else {
                        declared.iter().map(|c| quote_ident(&c.name)).collect()
                    };
                    let cols = cols.join(", ");
                    let filter = match cursor {
                        Some(c) => {
                            let c = quote_ident(c);
                            format!(
                                " WHERE (SELECT max({c}) FROM {relation}) IS NULL OR dk_q.{c} > (SELECT max({c}) FROM {relation})"
                            )
                        }
                        None => String::new(),
                    };
                    if keys.is_empty() {
                        let n = plane
                            .transaction(&[format!(
                                "INSERT INTO {relation} ({cols}) SELECT {cols} FROM ({query}) AS dk_q{filter}"
                            )])
                            .await?;
                        n.last().copied().unwrap_or(0)
                    } else {
                        let stage = quote_ident(&format!(
                            "dk_incr_{}",
                            &uuid::Uuid::new_v4().simple().to_string()[..12]
                        ));
                        let on = keys
                            .iter()
                            .map(|k| format!("{relation}.{q} = s.{q}", q = quote_ident(k)))
                            .collect::<Vec<_>>()
                            .join(" AND ");
                        let n = plane
                            .transaction(&[
                                format!("CREATE TEMP TABLE {stage} AS SELECT {cols} FROM ({query}) AS dk_q{filter}"),
                                format!("DELETE FROM {relation} WHERE EXISTS (SELECT 1 FROM {stage} s WHERE {on})"),
                                format!("INSERT INTO {relation} ({cols}) SELECT {cols} FROM {stage}"),
                                format!("DROP TABLE {stage}"),
                            ])
                            .await?;
                        n.get(2).copied().unwrap_or(0)
                    }
                }
                _ => rebuild(plane, &target, &relation, &query, &declared).await?,
            }
        }
        other => {
            return Err(terr(
                t,
                format!("materialized: {other} is not one of view, table, incremental"),
            ))
        }
    };
    Ok(Outcome {
        rows_read,
        rows_written,
        outputs: vec![RunOutput {
            dataset: output.clone(),
            rows_written,
            cursor: None,
            rebuilt,
        }],
        details: serde_json::Value::Null,
    })
}

/// Replaces the table's rows with the query's, in one transaction.
async fn rebuild(
    plane: &DataPlane,
    target: &Target,
    relation: &str,
    query: &str,
    declared: &[crate::dataplane::DeclaredColumn],
) -> Result<u64> {
    if declared.is_empty() {
        let n = plane
            .transaction(&[
                match target {
                    Target::Table { schema, .. } => {
                        format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema))
                    }
                    Target::Files { .. } => String::new(),
                },
                format!("DROP TABLE IF EXISTS {relation}"),
                format!("CREATE TABLE {relation} AS {query}"),
            ])
            .await?;
        return Ok(n.get(2).copied().unwrap_or(0));
    }
    plane.ensure_table(target, declared).await?;
    let cols = declared
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let n = plane
        .transaction(&[
            format!("DELETE FROM {relation}"),
            format!("INSERT INTO {relation} ({cols}) SELECT {cols} FROM ({query}) AS dk_q"),
        ])
        .await?;
    Ok(n.get(1).copied().unwrap_or(0))
}
