//! Lineage: OpenLineage run events for `dk run`, and column lineage of `sql` transforms.
//!
//! * [`JobInfo::for_transform`] describes one transform as an OpenLineage job: its namespace
//!   (`spec.lineage.namespace`, else the project's name, else `dk`), its input and output
//!   datasets named after OpenLineage's naming conventions (PostgreSQL
//!   `postgres://host:port` + `database.schema.table`, DuckDB `duckdb://<file>` +
//!   `schema.table`, files `file` + the absolute path, S3 `s3://bucket` + the prefix), each with a
//!   `schema` facet from its declared columns, and on outputs a `columnLineage` facet from the
//!   DataSet's `from:` columns and, for `sql` transforms, from the query ([`sql_lineage`]).
//! * [`event`] builds a `RunEvent` (START, COMPLETE, FAIL — FAIL carries an `errorMessage` run
//!   facet) for OpenLineage spec 2-0-2.
//! * [`Emitter`] sends events to a JSON-lines file (appended, one event per line, flushed) and/or
//!   an HTTP endpoint (POST, Marquez-compatible: a bare server URL gets `/api/v1/lineage`;
//!   `OPENLINEAGE_API_KEY` becomes a bearer token). Emission is synchronous (ureq); async callers
//!   use [`Emitter::emit_async`].
//! * [`Observer`] (async) and [`Tracker`] (for the executor's synchronous event callback) wrap an
//!   emitter around a run: START before a transform, COMPLETE or FAIL after, one `runId` each;
//!   emission problems become warnings, never failures.
//! * [`sql_lineage`] / [`sql_column_edges`] derive column lineage from a `sql` transform's query
//!   (rendered with the one template renderer, analysed by [`dk_graph::sqllineage`]); `dk
//!   pipeline show --columns` adds the edges to the graph.
//!
//! A transform whose manifest has a `lineage` block with `enabled: false` (the default inside
//! the block) emits no events.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use dk_env::{ResolvedProject, ResolvedStore};
use dk_graph::sqllineage::{self, Analysis, Input};
use dk_graph::{ColumnEdge, ColumnOrigin};
use dk_manifest::model::{DataSet, Transform};
use dk_manifest::ProjectModel;
use serde_json::{json, Value};

/// The producer URI of every event and facet.
pub const PRODUCER: &str = concat!(
    "https://example.invalid/datakit/dk/",
    env!("CARGO_PKG_VERSION")
);
/// The OpenLineage spec version of the events.
pub const RUN_EVENT_SCHEMA: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const SCHEMA_FACET: &str =
    "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet";
const COLUMN_LINEAGE_FACET: &str = "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet";
const ERROR_FACET: &str =
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const JOB_TYPE_FACET: &str =
    "https://openlineage.io/spec/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const SQL_FACET: &str =
    "https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json#/$defs/SQLJobFacet";

/// Lineage failures (a sink that cannot be written or reached).
#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("lineage file {path}: {message}")]
    File { path: String, message: String },
    #[error("lineage endpoint {url}: {message}")]
    Http { url: String, message: String },
    #[error("--lineage-url {url}: {message}")]
    BadUrl { url: String, message: String },
}

/// One input field of an output column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputField {
    pub namespace: String,
    pub name: String,
    pub field: String,
    /// IDENTITY, TRANSFORMATION or AGGREGATION (a DIRECT transformation).
    pub subtype: &'static str,
}

/// A dataset as OpenLineage names it, with its facets' content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInfo {
    /// The DataSet manifest's name.
    pub dataset: String,
    pub namespace: String,
    pub name: String,
    /// (name, type, description) of the declared columns.
    pub fields: Vec<(String, String, Option<String>)>,
    /// Output column → its input fields.
    pub column_lineage: Vec<(String, Vec<InputField>)>,
}

/// A transform as an OpenLineage job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    pub namespace: String,
    pub name: String,
    pub runtime: String,
    pub inputs: Vec<DatasetInfo>,
    pub outputs: Vec<DatasetInfo>,
    /// The rendered query of a `sql` transform.
    pub sql: Option<String>,
    /// False when the transform's `lineage.enabled` is false.
    pub enabled: bool,
}

fn conn(store: &ResolvedStore, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match store.connection.get(*k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// OpenLineage's (namespace, name) of a dataset in a store.
pub fn dataset_name(
    ds_name: &str,
    ds: &DataSet,
    store: Option<&ResolvedStore>,
    project_root: &Path,
) -> (String, String) {
    let object = ds
        .spec
        .table
        .clone()
        .or_else(|| ds.spec.prefix.clone())
        .or_else(|| ds.spec.topic.clone())
        .unwrap_or_else(|| ds_name.to_string());
    let Some(store) = store else {
        return (format!("dk://{}", ds.spec.store), object);
    };
    let ctype = store.connector_type.as_str();
    let table = |t: &str| dk_engine::compile::split_table(t, ctype);
    match ctype {
        "postgres" | "postgresql" | "mysql" | "mariadb" => {
            let (host, port, db) = match dk_providers::postgres::config_for(store) {
                Ok(cfg) if ctype.starts_with("postgres") => (
                    cfg.get_hosts()
                        .first()
                        .map(|h| match h {
                            tokio_postgres::config::Host::Tcp(s) => s.clone(),
                            #[cfg(unix)]
                            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                        })
                        .unwrap_or_else(|| "localhost".into()),
                    cfg.get_ports().first().copied().unwrap_or(5432).to_string(),
                    cfg.get_dbname().unwrap_or_default().to_string(),
                ),
                _ => (
                    conn(store, &["host", "hostname"]).unwrap_or_else(|| "localhost".into()),
                    conn(store, &["port"]).unwrap_or_else(|| {
                        String::from(if ctype.starts_with("postgres") {
                            "5432"
                        } else {
                            "3306"
                        })
                    }),
                    conn(store, &["database", "dbname"]).unwrap_or_default(),
                ),
            };
            let scheme = if ctype.starts_with("postgres") {
                "postgres"
            } else {
                "mysql"
            };
            let (schema, t) = table(&object);
            let name = if scheme == "postgres" {
                format!("{db}.{schema}.{t}")
            } else {
                format!("{db}.{t}")
            };
            (format!("{scheme}://{host}:{port}"), name)
        }
        "duckdb" | "sqlite" => {
            let file = crate::process::store_path(store, project_root)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let (schema, t) = table(&object);
            (format!("{ctype}://{file}"), format!("{schema}.{t}"))
        }
        "file" => {
            let base = crate::process::store_path(store, project_root).unwrap_or_default();
            ("file".to_string(), base.join(&object).display().to_string())
        }
        "s3" => (
            format!("s3://{}", conn(store, &["bucket"]).unwrap_or_default()),
            object,
        ),
        "kafka" => (
            format!("kafka://{}", conn(store, &["brokers"]).unwrap_or_default()),
            object,
        ),
        other => (format!("{other}://{}", store.name), object),
    }
}

fn find_dataset<'m>(model: &'m ProjectModel, name: &str) -> Option<&'m DataSet> {
    model
        .datasets()
        .find(|(d, _)| d.name == name)
        .map(|(_, ds)| ds)
}

fn ref_names(model: &ProjectModel, refs: &[dk_manifest::model::DataSetRef]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in refs {
        for n in dk_manifest::refs::names(model, r) {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// The rendered SQL of a `sql` transform and its column lineage. `None` for other runtimes.
/// `env` gives template variables and each store's dialect; without it the default
/// environment is tried, then the transform's own `vars`.
pub fn sql_lineage(
    model: &ProjectModel,
    env: Option<&ResolvedProject>,
    transform: &str,
) -> Result<Option<(String, Analysis)>, String> {
    let Some((doc, t)) = model.transforms().find(|(d, _)| d.name == transform) else {
        return Err(format!("no transform named {transform}"));
    };
    if t.spec.runtime != "sql" {
        return Ok(None);
    }
    let Some(sql_file) = t.spec.sql.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let path = doc.dir().join(sql_file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("transform {transform}: cannot read {}: {e}", path.display()))?;
    let store_type = |store: &str| -> String {
        env.and_then(|e| e.stores.get(store))
            .map(|s| s.connector_type.clone())
            .unwrap_or_default()
    };
    let mut refs = HashMap::new();
    let mut inputs = Vec::new();
    for n in ref_names(model, &t.spec.inputs) {
        let Some(ds) = find_dataset(model, &n) else {
            continue;
        };
        let Some(table) = ds.spec.table.clone() else {
            continue;
        };
        let ctype = store_type(&ds.spec.store);
        let (schema, name) = dk_engine::compile::split_table(&table, &ctype);
        refs.insert(
            n.clone(),
            dk_engine::template::RefTarget {
                sql: format!(
                    "{}.{}",
                    dk_providers::quote_ident(&schema),
                    dk_providers::quote_ident(&name)
                ),
                tag: n.clone(),
            },
        );
        inputs.push(Input {
            dataset: n.clone(),
            table: format!("{schema}.{name}"),
            columns: ds.spec.schema.iter().map(|c| c.name.clone()).collect(),
        });
    }
    let empty = indexmap::IndexMap::new();
    let vars = dk_engine::template::vars(env.map(|e| &e.variables).unwrap_or(&empty), &t.spec.vars);
    let rendered = dk_engine::template::render(&text, &refs, &vars)
        .map_err(|e| format!("transform {transform}: {}: {e}", path.display()))?;
    let dialect = ref_names(model, &t.spec.outputs)
        .first()
        .and_then(|o| find_dataset(model, o))
        .map(|ds| store_type(&ds.spec.store))
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "generic".to_string());
    let analysis = sqllineage::analyze(&rendered.sql, &dialect, &inputs)
        .map_err(|e| format!("transform {transform}: {}: {e}", path.display()))?;
    Ok(Some((rendered.sql, analysis)))
}

/// Column lineage edges of every `sql` transform (for `dk pipeline show --columns`), and notes
/// about what could not be derived. An output column is included when the output DataSet
/// declares it, or declares no columns at all.
pub fn sql_column_edges(
    model: &ProjectModel,
    env: Option<&ResolvedProject>,
) -> (Vec<ColumnEdge>, Vec<String>) {
    let mut edges = Vec::new();
    let mut notes = Vec::new();
    for (doc, t) in model.transforms() {
        if t.spec.runtime != "sql" {
            continue;
        }
        let analysis = match sql_lineage(model, env, &doc.name) {
            Ok(Some((_, a))) => a,
            Ok(None) => continue,
            Err(e) => {
                notes.push(e);
                continue;
            }
        };
        notes.extend(
            analysis
                .notes
                .iter()
                .map(|n| format!("transform {}: {n}", doc.name)),
        );
        for out in ref_names(model, &t.spec.outputs) {
            let declared: Vec<&str> = find_dataset(model, &out)
                .map(|ds| ds.spec.schema.iter().map(|c| c.name.as_str()).collect())
                .unwrap_or_default();
            for col in &analysis.columns {
                let to_column = match declared.iter().find(|d| d.eq_ignore_ascii_case(&col.name)) {
                    Some(d) => d.to_string(),
                    None if declared.is_empty() => col.name.clone(),
                    None => continue,
                };
                for s in &col.sources {
                    edges.push(ColumnEdge {
                        from_dataset: s.dataset.clone(),
                        from_column: s.column.clone(),
                        to_dataset: out.clone(),
                        to_column: to_column.clone(),
                        location: None,
                        origin: ColumnOrigin::Sql {
                            transform: doc.name.clone(),
                        },
                    });
                }
            }
        }
    }
    (edges, notes)
}

impl JobInfo {
    /// Describes transform `name` for environment `env`.
    pub fn for_transform(
        model: &ProjectModel,
        env: &ResolvedProject,
        name: &str,
    ) -> Result<JobInfo, String> {
        let Some((_, t)) = model.transforms().find(|(d, _)| d.name == name) else {
            return Err(format!("no transform named {name}"));
        };
        let namespace = t
            .spec
            .lineage
            .as_ref()
            .and_then(|l| l.namespace.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                model
                    .project()
                    .map(|p| p.metadata.name.clone())
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(|| "dk".to_string());
        let info = |n: &str| -> DatasetInfo {
            let ds = find_dataset(model, n);
            let (namespace, oname) = match ds {
                Some(ds) => dataset_name(n, ds, env.stores.get(&ds.spec.store), &model.root),
                None => ("dk".to_string(), n.to_string()),
            };
            DatasetInfo {
                dataset: n.to_string(),
                namespace,
                name: oname,
                fields: ds
                    .map(|ds| {
                        ds.spec
                            .schema
                            .iter()
                            .map(|c| (c.name.clone(), c.type_.clone(), c.description.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                column_lineage: Vec::new(),
            }
        };
        let inputs: Vec<DatasetInfo> = ref_names(model, &t.spec.inputs)
            .iter()
            .map(|n| info(n))
            .collect();
        let mut outputs: Vec<DatasetInfo> = ref_names(model, &t.spec.outputs)
            .iter()
            .map(|n| info(n))
            .collect();
        // Where an input dataset is in OpenLineage terms (declared `from:` may name any dataset).
        let locate = |ds_name: &str| -> (String, String) {
            inputs
                .iter()
                .find(|i| i.dataset == ds_name)
                .map(|i| (i.namespace.clone(), i.name.clone()))
                .unwrap_or_else(|| {
                    let i = info(ds_name);
                    (i.namespace, i.name)
                })
        };
        let sql = sql_lineage(model, Some(env), name).ok().flatten();
        for out in outputs.iter_mut() {
            let mut cols: Vec<(String, Vec<InputField>)> = Vec::new();
            let mut add = |col: &str, f: InputField| match cols.iter_mut().find(|(c, _)| c == col) {
                Some((_, v)) => {
                    if !v.iter().any(|x| {
                        x.name == f.name && x.field == f.field && x.namespace == f.namespace
                    }) {
                        v.push(f);
                    }
                }
                None => cols.push((col.to_string(), vec![f])),
            };
            if let Some(ds) = find_dataset(model, &out.dataset) {
                for c in &ds.spec.schema {
                    let Some((fd, fc)) = c.from.as_deref().and_then(|f| f.split_once('.')) else {
                        continue;
                    };
                    let (namespace, name) = locate(fd);
                    add(
                        &c.name,
                        InputField {
                            namespace,
                            name,
                            field: fc.to_string(),
                            subtype: "IDENTITY",
                        },
                    );
                }
            }
            if let Some((_, analysis)) = &sql {
                let declared: Vec<&str> = out.fields.iter().map(|f| f.0.as_str()).collect();
                for col in &analysis.columns {
                    let to = match declared.iter().find(|d| d.eq_ignore_ascii_case(&col.name)) {
                        Some(d) => d.to_string(),
                        None if declared.is_empty() => col.name.clone(),
                        None => continue,
                    };
                    for s in &col.sources {
                        let (namespace, name) = locate(&s.dataset);
                        add(
                            &to,
                            InputField {
                                namespace,
                                name,
                                field: s.column.clone(),
                                subtype: s.derivation.as_openlineage(),
                            },
                        );
                    }
                }
            }
            out.column_lineage = cols;
        }
        Ok(JobInfo {
            namespace,
            name: name.to_string(),
            runtime: t.spec.runtime.clone(),
            inputs,
            outputs,
            sql: sql.map(|(s, _)| s),
            enabled: lineage_enabled(t),
        })
    }
}

fn lineage_enabled(t: &Transform) -> bool {
    t.spec.lineage.as_ref().is_none_or(|l| l.enabled)
}

/// The kind of a run event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Start,
    Complete,
    Fail,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Start => "START",
            EventType::Complete => "COMPLETE",
            EventType::Fail => "FAIL",
        }
    }
}

fn facet(schema_url: &str, mut body: Value) -> Value {
    if let Some(m) = body.as_object_mut() {
        m.insert("_producer".into(), json!(PRODUCER));
        m.insert("_schemaURL".into(), json!(schema_url));
    }
    body
}

fn dataset_json(d: &DatasetInfo, output: bool) -> Value {
    let mut facets = serde_json::Map::new();
    if !d.fields.is_empty() {
        facets.insert(
            "schema".into(),
            facet(
                SCHEMA_FACET,
                json!({"fields": d.fields.iter().map(|(n, t, desc)| {
                    let mut f = json!({"name": n, "type": t});
                    if let Some(desc) = desc {
                        f["description"] = json!(desc);
                    }
                    f
                }).collect::<Vec<_>>()}),
            ),
        );
    }
    if output && !d.column_lineage.is_empty() {
        let fields: serde_json::Map<String, Value> = d
            .column_lineage
            .iter()
            .map(|(col, inputs)| {
                (
                    col.clone(),
                    json!({"inputFields": inputs.iter().map(|i| json!({
                        "namespace": i.namespace,
                        "name": i.name,
                        "field": i.field,
                        "transformations": [{"type": "DIRECT", "subtype": i.subtype}],
                    })).collect::<Vec<_>>()}),
                )
            })
            .collect();
        facets.insert(
            "columnLineage".into(),
            facet(COLUMN_LINEAGE_FACET, json!({ "fields": fields })),
        );
    }
    json!({"namespace": d.namespace, "name": d.name, "facets": facets})
}

/// An OpenLineage `RunEvent` for `job`'s run `run_id`. `error` (FAIL events) becomes the
/// `errorMessage` run facet.
pub fn event(
    kind: EventType,
    run_id: &uuid::Uuid,
    job: &JobInfo,
    time: chrono::DateTime<chrono::Utc>,
    error: Option<&str>,
) -> Value {
    let mut run_facets = serde_json::Map::new();
    if let (EventType::Fail, Some(msg)) = (kind, error) {
        run_facets.insert(
            "errorMessage".into(),
            facet(
                ERROR_FACET,
                json!({"message": msg, "programmingLanguage": job.runtime}),
            ),
        );
    }
    let mut job_facets = serde_json::Map::new();
    job_facets.insert(
        "jobType".into(),
        facet(
            JOB_TYPE_FACET,
            json!({"processingType": "BATCH", "integration": "DK", "jobType": "TRANSFORM"}),
        ),
    );
    if let Some(sql) = &job.sql {
        job_facets.insert("sql".into(), facet(SQL_FACET, json!({ "query": sql })));
    }
    json!({
        "eventType": kind.as_str(),
        "eventTime": time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
        "run": {"runId": run_id.to_string(), "facets": run_facets},
        "job": {"namespace": job.namespace, "name": job.name, "facets": job_facets},
        "inputs": job.inputs.iter().map(|d| dataset_json(d, false)).collect::<Vec<_>>(),
        "outputs": job.outputs.iter().map(|d| dataset_json(d, true)).collect::<Vec<_>>(),
    })
}

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// A JSON-lines file, appended to.
    File(PathBuf),
    /// An OpenLineage HTTP endpoint (the full `/api/v1/lineage` URL).
    Http(String),
}

/// Sends events to its sinks.
#[derive(Debug, Clone, Default)]
pub struct Emitter {
    sinks: Vec<Sink>,
    api_key: Option<String>,
}

/// The endpoint for a `--lineage-url`: a URL without a path gets Marquez's `/api/v1/lineage`.
pub fn endpoint(url: &str) -> Result<String, LineageError> {
    let bad = |message: &str| LineageError::BadUrl {
        url: url.to_string(),
        message: message.to_string(),
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if path.is_empty() || path == "/" {
        Ok(format!("{}/api/v1/lineage", url.trim_end_matches('/')))
    } else {
        Ok(url.to_string())
    }
}

impl Emitter {
    /// An emitter for a lineage file and/or URL (`None`s: an emitter that sends nothing).
    /// `OPENLINEAGE_API_KEY` in the process environment is sent as a bearer token.
    pub fn new(file: Option<&Path>, url: Option<&str>) -> Result<Emitter, LineageError> {
        let mut sinks = Vec::new();
        if let Some(f) = file {
            sinks.push(Sink::File(f.to_path_buf()));
        }
        if let Some(u) = url {
            sinks.push(Sink::Http(endpoint(u)?));
        }
        Ok(Emitter {
            sinks,
            api_key: std::env::var("OPENLINEAGE_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    pub fn sinks(&self) -> &[Sink] {
        &self.sinks
    }

    /// Sends one event to every sink; the first failure is returned after trying them all.
    pub fn emit(&self, event: &Value) -> Result<(), LineageError> {
        let mut first_err = None;
        for sink in &self.sinks {
            let r = match sink {
                Sink::File(p) => append_line(p, event),
                Sink::Http(url) => post(url, self.api_key.as_deref(), event),
            };
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// [`Emitter::emit`] on a blocking thread.
    pub async fn emit_async(&self, event: Value) -> Result<(), LineageError> {
        let me = self.clone();
        match tokio::task::spawn_blocking(move || me.emit(&event)).await {
            Ok(r) => r,
            Err(e) => Err(LineageError::File {
                path: "-".into(),
                message: format!("the emitting thread failed: {e}"),
            }),
        }
    }
}

fn append_line(path: &Path, event: &Value) -> Result<(), LineageError> {
    let err = |e: std::io::Error| LineageError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut line = serde_json::to_vec(event).map_err(|e| LineageError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(err)?;
    // One write per event: concurrent appenders never interleave within a line.
    f.write_all(&line).map_err(err)?;
    f.sync_data().map_err(err)
}

fn post(url: &str, api_key: Option<&str>, event: &Value) -> Result<(), LineageError> {
    let err = |message: String| LineageError::Http {
        url: url.to_string(),
        message,
    };
    let body = serde_json::to_vec(event).map_err(|e| err(e.to_string()))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.post(url).header("Content-Type", "application/json");
    if let Some(k) = api_key {
        req = req.header("Authorization", &format!("Bearer {k}"));
    }
    let mut resp = req
        .send(&body[..])
        .map_err(|e| err(format!("cannot send the event: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp
        .body_mut()
        .read_to_string()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect::<String>();
    Err(err(format!("the server answered {status}: {text}")))
}

/// The run of one transform as the lineage observer tracks it.
#[derive(Debug, Clone)]
pub struct LineageRun {
    pub run_id: uuid::Uuid,
    pub job: JobInfo,
}

/// What `dk run` calls around each transform: [`Observer::start`] before it runs (START),
/// [`Observer::finish`] after (COMPLETE, or FAIL with the error). Emission failures never fail
/// the run: they are collected as warnings ([`Observer::warnings`]) for the command to print.
#[derive(Debug, Default)]
pub struct Observer {
    emitter: Emitter,
    warnings: std::sync::Mutex<Vec<String>>,
}

impl Observer {
    pub fn new(emitter: Emitter) -> Observer {
        Observer {
            emitter,
            warnings: Default::default(),
        }
    }

    fn warn(&self, w: String) {
        if let Ok(mut v) = self.warnings.lock() {
            v.push(w);
        }
    }

    /// Emits START for transform `name` (when lineage is on for it) and returns its run.
    pub async fn start(
        &self,
        model: &ProjectModel,
        env: &ResolvedProject,
        name: &str,
        run_id: uuid::Uuid,
    ) -> Option<LineageRun> {
        if self.emitter.is_empty() {
            return None;
        }
        let job = match JobInfo::for_transform(model, env, name) {
            Ok(j) if j.enabled => j,
            Ok(_) => return None,
            Err(e) => {
                self.warn(format!("lineage of {name}: {e}"));
                return None;
            }
        };
        let ev = event(EventType::Start, &run_id, &job, chrono::Utc::now(), None);
        if let Err(e) = self.emitter.emit_async(ev).await {
            self.warn(e.to_string());
        }
        Some(LineageRun { run_id, job })
    }

    /// Emits COMPLETE (no error) or FAIL (with the error message).
    pub async fn finish(&self, run: Option<LineageRun>, error: Option<&str>) {
        let Some(run) = run else {
            return;
        };
        let kind = if error.is_some() {
            EventType::Fail
        } else {
            EventType::Complete
        };
        let ev = event(kind, &run.run_id, &run.job, chrono::Utc::now(), error);
        if let Err(e) = self.emitter.emit_async(ev).await {
            self.warn(e.to_string());
        }
    }

    /// Emission problems so far (unreachable endpoint, unwritable file).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// The synchronous form of [`Observer`] for an executor's event callback: call
/// [`Tracker::started`] when a transform's first attempt starts and [`Tracker::finished`] when
/// it ends; a transform that never started (skipped) emits nothing. Each transform run gets a
/// new UUID `runId`, shared by its START and its COMPLETE/FAIL.
#[derive(Debug, Default)]
pub struct Tracker {
    emitter: Emitter,
    runs: std::sync::Mutex<HashMap<String, LineageRun>>,
    warnings: std::sync::Mutex<Vec<String>>,
}

impl Tracker {
    pub fn new(emitter: Emitter) -> Tracker {
        Tracker {
            emitter,
            ..Default::default()
        }
    }

    fn warn(&self, w: String) {
        if let Ok(mut v) = self.warnings.lock() {
            v.push(w);
        }
    }

    /// Emits START for `transform` (once per run of it, whatever the attempts).
    pub fn started(&self, model: &ProjectModel, env: &ResolvedProject, transform: &str) {
        if self.emitter.is_empty() {
            return;
        }
        if self
            .runs
            .lock()
            .map(|r| r.contains_key(transform))
            .unwrap_or(true)
        {
            return;
        }
        let job = match JobInfo::for_transform(model, env, transform) {
            Ok(j) if j.enabled => j,
            Ok(_) => return,
            Err(e) => {
                self.warn(format!("lineage of {transform}: {e}"));
                return;
            }
        };
        let run = LineageRun {
            run_id: uuid::Uuid::new_v4(),
            job,
        };
        let ev = event(
            EventType::Start,
            &run.run_id,
            &run.job,
            chrono::Utc::now(),
            None,
        );
        if let Err(e) = self.emitter.emit(&ev) {
            self.warn(e.to_string());
        }
        if let Ok(mut r) = self.runs.lock() {
            r.insert(transform.to_string(), run);
        }
    }

    /// Emits COMPLETE (no error) or FAIL (with the error) for a started transform.
    pub fn finished(&self, transform: &str, error: Option<&str>) {
        let Some(run) = self.runs.lock().ok().and_then(|mut r| r.remove(transform)) else {
            return;
        };
        let kind = if error.is_some() {
            EventType::Fail
        } else {
            EventType::Complete
        };
        let ev = event(kind, &run.run_id, &run.job, chrono::Utc::now(), error);
        if let Err(e) = self.emitter.emit(&ev) {
            self.warn(e.to_string());
        }
    }

    /// Emission problems so far.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint("http://localhost:5000").unwrap(),
            "http://localhost:5000/api/v1/lineage"
        );
        assert_eq!(
            endpoint("http://localhost:5000/").unwrap(),
            "http://localhost:5000/api/v1/lineage"
        );
        assert_eq!(
            endpoint("https://ol.example/custom/events").unwrap(),
            "https://ol.example/custom/events"
        );
        assert!(endpoint("localhost:5000").is_err());
        assert!(endpoint("http:///x").is_err());
    }

    #[test]
    fn events_have_required_fields_and_facets() {
        let job = JobInfo {
            namespace: "shop".into(),
            name: "daily".into(),
            runtime: "sql".into(),
            inputs: vec![DatasetInfo {
                dataset: "orders".into(),
                namespace: "postgres://db:5432".into(),
                name: "shop.public.orders".into(),
                fields: vec![("amount".into(), "double".into(), None)],
                column_lineage: vec![],
            }],
            outputs: vec![DatasetInfo {
                dataset: "daily".into(),
                namespace: "postgres://db:5432".into(),
                name: "shop.public.daily".into(),
                fields: vec![("total".into(), "double".into(), Some("sum".into()))],
                column_lineage: vec![(
                    "total".into(),
                    vec![InputField {
                        namespace: "postgres://db:5432".into(),
                        name: "shop.public.orders".into(),
                        field: "amount".into(),
                        subtype: "AGGREGATION",
                    }],
                )],
            }],
            sql: Some("select sum(amount) as total from orders".into()),
            enabled: true,
        };
        let id = uuid::Uuid::new_v4();
        let e = event(EventType::Fail, &id, &job, chrono::Utc::now(), Some("boom"));
        assert_eq!(e["eventType"], "FAIL");
        assert_eq!(e["run"]["runId"], id.to_string());
        assert_eq!(e["run"]["facets"]["errorMessage"]["message"], "boom");
        assert_eq!(e["job"]["facets"]["sql"]["query"], job.sql.clone().unwrap());
        let out = &e["outputs"][0]["facets"];
        assert_eq!(out["schema"]["fields"][0]["description"], "sum");
        assert_eq!(
            out["columnLineage"]["fields"]["total"]["inputFields"][0]["transformations"][0]
                ["subtype"],
            "AGGREGATION"
        );
        assert!(e["inputs"][0]["facets"].get("columnLineage").is_none());
        assert!(e["eventTime"].as_str().unwrap().ends_with('Z'));
        let s = event(EventType::Start, &id, &job, chrono::Utc::now(), None);
        assert!(s["run"]["facets"].get("errorMessage").is_none());
    }
}
