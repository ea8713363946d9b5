//! The `sync` runtime (also DataKit's `cloudquery` transforms): copies input DataSet *i* into
//! output DataSet *i* across stores as a stream of Arrow batches — PostgreSQL → DuckDB, files →
//! PostgreSQL, DuckDB → files, … — enforcing the output's declared schema on every batch (columns
//! by name, logical types with checked casts, `nullable: false`; see
//! [`conform`](crate::dataplane::schema::conform)).
//!
//! Incremental loads: with `spec.cursor` (a column of the input), a run reads only the rows whose
//! cursor is greater than the highest value the last successful run wrote (kept in its run record,
//! `outputs[].cursor`) and appends them — or merges them on `spec.uniqueKey` when set. The first
//! run, a run without a cursor, and `--full-refresh` copy everything and overwrite the output
//! (merge on `uniqueKey` when there is no cursor but a key).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef};
use arrow::compute::{concat, sort_to_indices, take, SortOptions};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use dk_manifest::model::{DataSet, Transform};
use dk_state::{RunOutput, RunRecord};

use crate::dataplane::schema::{arrow_schema, conform, declared_columns};
use crate::dataplane::{ScanOptions, Target, WriteMode};
use crate::error::{Result, RuntimeError};
use crate::runner::{Context, Outcome};

/// The position of the largest non-null value of a column, if any.
fn max_index(a: &ArrayRef) -> Result<Option<u32>> {
    if a.len() == a.null_count() {
        return Ok(None);
    }
    let idx = sort_to_indices(
        a,
        Some(SortOptions {
            descending: true,
            nulls_first: false,
        }),
        Some(1),
    )
    .map_err(|e| RuntimeError::arrow("find the cursor maximum", e))?;
    Ok(idx.values().first().copied())
}

/// Keeps the running maximum of a cursor column as a one-element array.
#[derive(Default)]
pub(crate) struct CursorMax(Option<ArrayRef>);

impl CursorMax {
    pub(crate) fn update(&mut self, column: &ArrayRef) -> Result<()> {
        let Some(i) = max_index(column)? else {
            return Ok(());
        };
        let one = column.slice(i as usize, 1);
        let merged = match &self.0 {
            None => one,
            Some(cur) => {
                let both = concat(&[cur.as_ref(), one.as_ref()])
                    .map_err(|e| RuntimeError::arrow("cursor maximum", e))?;
                match max_index(&both)? {
                    Some(j) => take(&both, &arrow::array::UInt32Array::from(vec![j]), None)
                        .map_err(|e| RuntimeError::arrow("cursor maximum", e))?,
                    None => return Ok(()),
                }
            }
        };
        self.0 = Some(merged);
        Ok(())
    }

    /// The maximum as text (ISO timestamps, plain numbers), readable back by both engines.
    pub(crate) fn text(&self) -> Result<Option<String>> {
        let Some(a) = &self.0 else { return Ok(None) };
        let f = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default())
            .map_err(|e| RuntimeError::arrow("format the cursor", e))?;
        Ok(Some(f.value(0).to_string()))
    }
}

fn dataset<'m>(cx: &Context<'m>, name: &str, t: &Transform) -> Result<&'m DataSet> {
    cx.model
        .datasets()
        .find(|(_, d)| d.metadata.name == name)
        .map(|(_, d)| d)
        .ok_or_else(|| RuntimeError::Transform {
            transform: t.metadata.name.clone(),
            message: format!("dataset {name} is not defined"),
        })
}

/// Runs a sync transform.
pub async fn run(cx: &Context<'_>, t: &Transform, previous: Option<&RunRecord>) -> Result<Outcome> {
    let tname = &t.metadata.name;
    let names = |refs: &[dk_manifest::model::DataSetRef]| -> Vec<String> {
        refs.iter()
            .flat_map(|r| dk_manifest::refs::names(cx.model, r))
            .collect()
    };
    let inputs = names(&t.spec.inputs);
    let outputs = names(&t.spec.outputs);
    if inputs.len() != outputs.len() || inputs.is_empty() {
        return Err(RuntimeError::Transform {
            transform: tname.clone(),
            message: format!(
                "a sync copies input i into output i, so it needs as many inputs as outputs (it has {} input(s): {}; {} output(s): {})",
                inputs.len(),
                inputs.join(", "),
                outputs.len(),
                outputs.join(", ")
            ),
        });
    }
    let mut outcome = Outcome::default();
    for (input, output) in inputs.iter().zip(&outputs) {
        let last_cursor = previous
            .and_then(|r| r.outputs.iter().find(|o| &o.dataset == output))
            .and_then(|o| o.cursor.clone());
        let (read, out) = copy(cx, t, input, output, last_cursor).await?;
        outcome.rows_read += read;
        outcome.rows_written += out.rows_written;
        outcome.outputs.push(out);
    }
    Ok(outcome)
}

/// Copies one dataset into another; returns rows read and the output's record.
pub(crate) async fn copy(
    cx: &Context<'_>,
    t: &Transform,
    input: &str,
    output: &str,
    last_cursor: Option<String>,
) -> Result<(u64, RunOutput)> {
    let tname = t.metadata.name.clone();
    let in_ds = dataset(cx, input, t)?;
    let out_ds = dataset(cx, output, t)?;
    let src = cx.plane(&in_ds.spec.store).await?;
    let dst = cx.plane(&out_ds.spec.store).await?;
    let in_target = Target::of_dataset(in_ds, cx.store(&in_ds.spec.store)?)?;
    let out_target = Target::of_dataset(out_ds, cx.store(&out_ds.spec.store)?)?;
    let in_cols = declared_columns(in_ds)?;
    let mut out_cols = declared_columns(out_ds)?;
    if out_cols.is_empty() {
        out_cols = in_cols.clone();
    }
    let cursor = t.spec.cursor.clone();
    if let Some(c) = &cursor {
        if !out_cols.is_empty() && !out_cols.iter().any(|d| &d.name == c) {
            return Err(RuntimeError::Transform {
                transform: tname,
                message: format!("cursor column {c} is not a column of {output}"),
            });
        }
    }
    let keys = t.spec.unique_key.clone();
    let incremental = !cx.full_refresh && cursor.is_some() && last_cursor.is_some();
    let mode = if incremental {
        if keys.is_empty() {
            WriteMode::Append
        } else {
            WriteMode::Merge { keys }
        }
    } else if !cx.full_refresh && cursor.is_none() && !keys.is_empty() {
        WriteMode::Merge { keys }
    } else {
        WriteMode::Overwrite
    };
    let options = ScanOptions {
        columns: Vec::new(),
        after: match (&cursor, incremental) {
            (Some(c), true) => last_cursor.clone().map(|v| (c.clone(), v)),
            _ => None,
        },
        declared: in_cols.clone(),
    };
    let stream = src.scan(&in_target, &options).await?;
    let rows = Arc::new(AtomicU64::new(0));
    let max = Arc::new(Mutex::new(CursorMax::default()));
    let (rows2, max2) = (rows.clone(), max.clone());
    let context = format!("transform {tname}: {input} → {output}");
    let stream = if out_cols.is_empty() {
        // Nothing declared anywhere: copy the columns as they come.
        let schema = stream.schema();
        let cursor = cursor.clone();
        stream.map(schema, move |b| {
            rows2.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
            if let Some(c) = &cursor {
                if let Ok(i) = b.schema().index_of(c) {
                    max2.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .update(b.column(i))?;
                }
            }
            Ok(b)
        })
    } else {
        let cols = out_cols.clone();
        let cursor_ix = cursor
            .as_ref()
            .and_then(|c| cols.iter().position(|d| &d.name == c));
        stream.map(arrow_schema(&out_cols), move |b| {
            rows2.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
            let b = conform(&b, &cols, &context)?;
            if let Some(i) = cursor_ix {
                max2.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .update(b.column(i))?;
            }
            Ok(b)
        })
    };
    let report = dst.write(&out_target, stream, &mode, &out_cols).await?;
    let new_cursor = max.lock().unwrap_or_else(|p| p.into_inner()).text()?;
    Ok((
        rows.load(Ordering::Relaxed),
        RunOutput {
            dataset: output.to_string(),
            rows_written: report.rows,
            cursor: new_cursor.or(if incremental { last_cursor } else { None }),
            rebuilt: matches!(mode, WriteMode::Overwrite),
        },
    ))
}
