//! The local-files data plane: a `file` store's `connection.path` (relative to the project root;
//! default the root itself) holds one folder per DataSet `prefix`; each folder holds files of the
//! DataSet's `format` (CSV with a header line, Parquet, JSON lines), read in name order, recursively.
//!
//! Reads use the arrow-rs readers on a blocking thread. CSV and JSON values are read as text and
//! typed by the declared schema ([`conform`]), so a value that does not parse is an error naming
//! the column and file, never a silent NULL. Writes add one new file per write
//! (`part-<time>-<id>.<ext>`), written to a temporary name, fsynced and renamed; overwrite then
//! removes the files that were there before, so readers never see a half-written file. Files
//! cannot merge on a key: use a database store for that.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, Scalar, StringArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dk_env::ResolvedStore;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use super::schema::{arrow_schema, conform, DeclaredColumn};
use super::{blocking, BatchStream, FileFormat, ScanOptions, WriteMode, WriteReport, BATCH_ROWS};
use crate::error::{Result, RuntimeError};

/// A file store.
pub struct FilePlane {
    pub(crate) store: String,
    root: PathBuf,
}

impl FilePlane {
    pub fn open(store: &ResolvedStore, project_root: &Path) -> Result<FilePlane> {
        let raw = match store.connection.get("path") {
            None | Some(serde_json::Value::Null) => ".".to_string(),
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(other) => {
                return Err(RuntimeError::Config(format!(
                    "store {}: connection.path must be a folder (relative to the project root), got {other}",
                    store.name
                )))
            }
        };
        Ok(FilePlane {
            store: store.name.clone(),
            root: if Path::new(&raw).is_absolute() {
                PathBuf::from(&raw)
            } else {
                project_root.join(&raw)
            },
        })
    }

    fn dir(&self, prefix: &str) -> Result<PathBuf> {
        let rel = Path::new(prefix.trim_start_matches('/'));
        if rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(RuntimeError::Config(format!(
                "store {}: prefix {prefix} leaves the store's folder (`..`)",
                self.store
            )));
        }
        Ok(self.root.join(rel))
    }

    /// The data files under a prefix, in name order.
    pub fn list(&self, prefix: &str, format: FileFormat) -> Result<Vec<PathBuf>> {
        let dir = self.dir(prefix)?;
        let mut out = Vec::new();
        if dir.is_dir() {
            walk(&dir, format, &mut out)?;
        }
        out.sort();
        Ok(out)
    }

    pub fn scan(
        &self,
        prefix: &str,
        format: FileFormat,
        options: &ScanOptions,
    ) -> Result<BatchStream> {
        let files = self.list(prefix, format)?;
        let declared = options.declared.clone();
        let schema: SchemaRef = if !declared.is_empty() {
            arrow_schema(&declared)
        } else {
            match files.first() {
                Some(f) => file_schema(f, format, &[])?,
                None => Arc::new(Schema::empty()),
            }
        };
        let schema = match options.columns.is_empty() {
            true => schema,
            false => Arc::new(
                schema
                    .project(
                        &options
                            .columns
                            .iter()
                            .map(|c| {
                                schema.index_of(c).map_err(|_| {
                                    RuntimeError::Schema(format!(
                                        "store {}: {prefix} has no column {c}",
                                        self.store
                                    ))
                                })
                            })
                            .collect::<Result<Vec<_>>>()?,
                    )
                    .map_err(|e| RuntimeError::arrow("project columns", e))?,
            ),
        };
        let (tx, stream) = BatchStream::channel(schema.clone());
        let after = options.after.clone();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            for f in files {
                let context = format!("store {store}: file {}", f.display());
                let reader = match open_reader(&f, format, &declared) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                for batch in reader {
                    let step = batch
                        .map_err(|e| RuntimeError::arrow(&context, e))
                        .and_then(|b| {
                            let b = if declared.is_empty() {
                                b
                            } else {
                                conform(&b, &declared, &context)?
                            };
                            let b = match &after {
                                Some((col, value)) => after_cursor(&b, col, value, &context)?,
                                None => b,
                            };
                            let idx = schema
                                .fields()
                                .iter()
                                .map(|fl| {
                                    b.schema().index_of(fl.name()).map_err(|_| {
                                        RuntimeError::Schema(format!(
                                            "{context}: no column {} (files under one prefix must share their columns)",
                                            fl.name()
                                        ))
                                    })
                                })
                                .collect::<Result<Vec<_>>>()?;
                            b.project(&idx).map_err(|e| RuntimeError::arrow(&context, e))
                        });
                    let stop = step.is_err();
                    if matches!(&step, Ok(b) if b.num_rows() == 0) {
                        continue;
                    }
                    if tx.blocking_send(step).is_err() || stop {
                        return;
                    }
                }
            }
        });
        Ok(stream)
    }

    pub async fn write(
        &self,
        prefix: &str,
        format: FileFormat,
        mut stream: BatchStream,
        mode: &WriteMode,
        declared: &[DeclaredColumn],
    ) -> Result<WriteReport> {
        if let WriteMode::Merge { .. } = mode {
            return Err(RuntimeError::Config(format!(
                "store {}: files under {prefix} cannot be merged on a key; write them with append or overwrite, or use a database store",
                self.store
            )));
        }
        let dir = self.dir(prefix)?;
        let old = self.list(prefix, format)?;
        let declared = declared.to_vec();
        let schema = if declared.is_empty() {
            stream.schema()
        } else {
            arrow_schema(&declared)
        };
        let name = format!(
            "part-{}-{}.{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f"),
            &uuid::Uuid::new_v4().simple().to_string()[..8],
            format.extensions()[0]
        );
        let overwrite = matches!(mode, WriteMode::Overwrite);
        let store = self.store.clone();
        blocking(move || {
            std::fs::create_dir_all(&dir)
                .map_err(|e| RuntimeError::file("create folder", &dir, e))?;
            let path = dir.join(&name);
            let tmp = dir.join(format!(".{name}.tmp"));
            let context = format!("store {store}: file {}", path.display());
            let file = File::create(&tmp).map_err(|e| RuntimeError::file("create", &tmp, e))?;
            let mut writer = FileWriter::new(file, format, schema.clone(), &context)?;
            let mut rows = 0u64;
            let result = (|| -> Result<()> {
                while let Some(batch) = stream.blocking_next() {
                    let batch = batch?;
                    let batch = if declared.is_empty() {
                        batch
                    } else {
                        conform(&batch, &declared, &context)?
                    };
                    rows += batch.num_rows() as u64;
                    writer.write(&batch, &context)?;
                }
                Ok(())
            })();
            if let Err(e) = result {
                drop(writer);
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            if rows == 0 && !overwrite {
                drop(writer);
                let _ = std::fs::remove_file(&tmp);
                return Ok(WriteReport { rows });
            }
            let file = writer.finish(&context)?;
            file.sync_all()
                .map_err(|e| RuntimeError::file("fsync", &tmp, e))?;
            drop(file);
            std::fs::rename(&tmp, &path).map_err(|e| RuntimeError::file("rename", &tmp, e))?;
            if overwrite {
                for f in old {
                    std::fs::remove_file(&f)
                        .map_err(|e| RuntimeError::file("remove old file", &f, e))?;
                }
            }
            if let Ok(d) = File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(WriteReport { rows })
        })
        .await
    }
}

fn walk(dir: &Path, format: FileFormat, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| RuntimeError::file("list", dir, e))?;
    for e in entries {
        let e = e.map_err(|e| RuntimeError::file("list", dir, e))?;
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, format, out)?;
        } else if p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
            format
                .extensions()
                .contains(&x.to_ascii_lowercase().as_str())
        }) {
            out.push(p);
        }
    }
    Ok(())
}

/// Text columns named by a CSV file's header line.
fn csv_text_schema(path: &Path) -> Result<SchemaRef> {
    let f = File::open(path).map_err(|e| RuntimeError::file("open", path, e))?;
    let (schema, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .infer_schema(f, Some(0))
        .map_err(|e| RuntimeError::file("read the header of", path, e))?;
    Ok(Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    )))
}

fn file_schema(path: &Path, format: FileFormat, declared: &[DeclaredColumn]) -> Result<SchemaRef> {
    match format {
        FileFormat::Csv => csv_text_schema(path),
        FileFormat::Parquet => {
            let f = File::open(path).map_err(|e| RuntimeError::file("open", path, e))?;
            let b = ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| RuntimeError::file("read", path, e))?;
            Ok(b.schema().clone())
        }
        FileFormat::JsonLines => {
            if !declared.is_empty() {
                return Ok(Arc::new(Schema::new(
                    declared
                        .iter()
                        .map(|c| Field::new(&c.name, DataType::Utf8, true))
                        .collect::<Vec<_>>(),
                )));
            }
            let f = File::open(path).map_err(|e| RuntimeError::file("open", path, e))?;
            let (schema, _) =
                arrow_json::reader::infer_json_schema_from_seekable(BufReader::new(f), Some(1000))
                    .map_err(|e| RuntimeError::file("infer the columns of", path, e))?;
            Ok(Arc::new(schema))
        }
    }
}

type BatchIter =
    Box<dyn Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>> + Send>;

fn open_reader(path: &Path, format: FileFormat, declared: &[DeclaredColumn]) -> Result<BatchIter> {
    let open = || File::open(path).map_err(|e| RuntimeError::file("open", path, e));
    Ok(match format {
        FileFormat::Csv => Box::new(
            arrow_csv::ReaderBuilder::new(csv_text_schema(path)?)
                .with_header(true)
                .with_batch_size(BATCH_ROWS)
                .build(open()?)
                .map_err(|e| RuntimeError::file("read", path, e))?,
        ),
        FileFormat::Parquet => Box::new(
            ParquetRecordBatchReaderBuilder::try_new(open()?)
                .map_err(|e| RuntimeError::file("read", path, e))?
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| RuntimeError::file("read", path, e))?,
        ),
        FileFormat::JsonLines => Box::new(
            arrow_json::ReaderBuilder::new(file_schema(path, format, declared)?)
                .with_coerce_primitive(true)
                .with_batch_size(BATCH_ROWS)
                .build(BufReader::new(open()?))
                .map_err(|e| RuntimeError::file("read", path, e))?,
        ),
    })
}

/// Rows whose `col` is greater than `value` (the value cast to the column's type).
pub fn after_cursor(b: &RecordBatch, col: &str, value: &str, context: &str) -> Result<RecordBatch> {
    let i = b.schema().index_of(col).map_err(|_| {
        RuntimeError::Schema(format!("{context}: cursor column {col} is not in the data"))
    })?;
    let column = b.column(i);
    let v = cast(&StringArray::from(vec![value]), column.data_type()).map_err(|e| {
        RuntimeError::Schema(format!(
            "{context}: cursor value {value:?} does not convert to {}: {e}",
            column.data_type()
        ))
    })?;
    if v.null_count() > 0 {
        return Err(RuntimeError::Schema(format!(
            "{context}: cursor value {value:?} does not convert to {}",
            column.data_type()
        )));
    }
    let mask = arrow::compute::kernels::cmp::gt(column, &Scalar::new(v))
        .map_err(|e| RuntimeError::arrow(context, e))?;
    filter_record_batch(b, &mask).map_err(|e| RuntimeError::arrow(context, e))
}

enum FileWriter {
    Csv(Box<arrow_csv::Writer<File>>),
    Parquet(Box<ArrowWriter<File>>),
    Json(arrow_json::LineDelimitedWriter<File>),
}

impl FileWriter {
    fn new(file: File, format: FileFormat, schema: SchemaRef, context: &str) -> Result<Self> {
        Ok(match format {
            FileFormat::Csv => FileWriter::Csv(Box::new(
                arrow_csv::WriterBuilder::new()
                    .with_header(true)
                    .build(file),
            )),
            FileFormat::Parquet => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build();
                FileWriter::Parquet(Box::new(
                    ArrowWriter::try_new(file, schema, Some(props))
                        .map_err(|e| RuntimeError::arrow(context, e))?,
                ))
            }
            FileFormat::JsonLines => FileWriter::Json(arrow_json::LineDelimitedWriter::new(file)),
        })
    }

    fn write(&mut self, b: &RecordBatch, context: &str) -> Result<()> {
        match self {
            FileWriter::Csv(w) => w.write(b).map_err(|e| RuntimeError::arrow(context, e)),
            FileWriter::Parquet(w) => w.write(b).map_err(|e| RuntimeError::arrow(context, e)),
            FileWriter::Json(w) => w.write(b).map_err(|e| RuntimeError::arrow(context, e)),
        }
    }

    fn finish(self, context: &str) -> Result<File> {
        match self {
            FileWriter::Csv(w) => {
                let mut f = (*w).into_inner();
                f.flush().map_err(|e| RuntimeError::arrow(context, e))?;
                Ok(f)
            }
            FileWriter::Parquet(w) => w.into_inner().map_err(|e| RuntimeError::arrow(context, e)),
            FileWriter::Json(mut w) => {
                w.finish().map_err(|e| RuntimeError::arrow(context, e))?;
                Ok(w.into_inner())
            }
        }
    }
}
