//! Compile: a project resolved for one environment → the desired resources.
//!
//! * a DataSet with `table` in a database store compiles to a **table** (columns from its schema)
//!   unless a `sql` transform with `materialized: view` produces it, in which case it compiles to a
//!   **view** whose query is the transform's rendered SQL;
//! * every non-default schema used compiles to a **schema**;
//! * `external: true` DataSets are sources dk does not create; DataSets in stores without a
//!   database provider (files, object stores, streams) are not resources of this version.
//!
//! Descriptions, classification and PII travel as table/column comments: the description text,
//! then (when set) a line `dk: {"classification": …, "pii": true}`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use dk_diagnostics::{Code, Diagnostic, Severity};
use dk_env::ResolvedProject;
use dk_manifest::loader::{Document, ProjectModel};
use dk_manifest::model::{DataSet, Transform};
use dk_providers::model::{address, ColumnSpec, LogicalType, Resource, ResourceKind, ResourceSpec};
use dk_providers::quote_ident;
use serde_json::json;

/// Connector types whose DataSets with `table` compile to resources.
pub const DATABASE_TYPES: &[&str] = &[
    "postgres",
    "postgresql",
    "duckdb",
    "mysql",
    "mariadb",
    "sqlite",
    "snowflake",
];

/// Connector types dk has a provider for.
pub const PROVIDER_TYPES: &[&str] = &["postgres", "postgresql", "duckdb"];

/// The default schema of a technology (objects there need no schema resource).
pub fn default_schema(connector_type: &str) -> &'static str {
    match connector_type {
        "duckdb" => "main",
        _ => "public",
    }
}

/// Splits `schema.table` (or `table`) for a store of `connector_type`.
pub fn split_table(table: &str, connector_type: &str) -> (String, String) {
    match table.rsplit_once('.') {
        Some((schema, name)) => (
            schema.rsplit('.').next().unwrap_or(schema).to_string(),
            name.to_string(),
        ),
        None => (
            default_schema(connector_type).to_string(),
            table.to_string(),
        ),
    }
}

/// The comment carrying a description plus classification / PII.
pub fn comment(
    description: Option<&str>,
    classification: Option<&str>,
    pii: bool,
) -> Option<String> {
    let mut meta = serde_json::Map::new();
    if let Some(c) = classification {
        meta.insert("classification".into(), json!(c));
    }
    if pii {
        meta.insert("pii".into(), json!(true));
    }
    let desc = description.map(str::trim).filter(|d| !d.is_empty());
    match (desc, meta.is_empty()) {
        (None, true) => None,
        (Some(d), true) => Some(d.to_string()),
        (None, false) => Some(format!("dk: {}", serde_json::Value::Object(meta))),
        (Some(d), false) => Some(format!("{d}\ndk: {}", serde_json::Value::Object(meta))),
    }
}

/// What a comment written by [`comment`] carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommentParts {
    pub description: Option<String>,
    pub classification: Option<String>,
    pub pii: bool,
}

/// The inverse of [`comment`]: a comment whose last line is `dk: {json}` yields the metadata; any
/// other comment is a plain description.
pub fn parse_comment(comment: Option<&str>) -> CommentParts {
    let Some(text) = comment.map(str::trim).filter(|t| !t.is_empty()) else {
        return CommentParts::default();
    };
    let (desc, last) = match text.rsplit_once('\n') {
        Some((d, l)) => (Some(d), l),
        None => (None, text),
    };
    let meta = last
        .strip_prefix("dk: ")
        .and_then(|j| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(j).ok());
    match meta {
        Some(m) => CommentParts {
            description: desc.map(str::to_string),
            classification: m
                .get("classification")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            pii: m.get("pii").and_then(|v| v.as_bool()).unwrap_or(false),
        },
        None => CommentParts {
            description: Some(text.to_string()),
            ..CommentParts::default()
        },
    }
}

/// The result of compiling.
#[derive(Debug, Default)]
pub struct Compiled {
    /// Desired resources by address, in a stable order.
    pub resources: BTreeMap<String, Resource>,
    /// Stores that have resources, with their connector type.
    pub stores: BTreeMap<String, String>,
    /// The manifest each resource comes from, as `DataSet NAME (FILE:LINE:COL)`, for messages.
    pub origins: BTreeMap<String, String>,
}

struct Ctx<'a> {
    model: &'a ProjectModel,
    env: &'a ResolvedProject,
    diags: Vec<Diagnostic>,
}

fn datasets_by_name(model: &ProjectModel) -> HashMap<&str, (&Document, &DataSet)> {
    model
        .datasets()
        .map(|(d, ds)| (ds.metadata.name.as_str(), (d, ds)))
        .collect()
}

/// Compiles the project for the resolved environment.
pub fn compile(model: &ProjectModel, env: &ResolvedProject) -> Result<Compiled, Vec<Diagnostic>> {
    let mut cx = Ctx {
        model,
        env,
        diags: Vec::new(),
    };
    let by_name = datasets_by_name(model);
    // Producer of each dataset (the graph rules reject two producers).
    let mut producer: HashMap<String, (&Document, &Transform)> = HashMap::new();
    for (d, t) in model.transforms() {
        for r in &t.spec.outputs {
            for n in dk_manifest::refs::names(model, r) {
                producer.insert(n, (d, t));
            }
        }
    }
    let views: BTreeSet<String> = producer
        .iter()
        .filter(|(_, (_, t))| {
            t.spec.runtime == "sql" && t.spec.materialized.as_deref() == Some("view")
        })
        .map(|(n, _)| n.clone())
        .collect();
    let mut out = Compiled::default();
    let mut names: Vec<&str> = by_name.keys().copied().collect();
    names.sort_unstable();
    for name in names {
        let (doc, ds) = by_name[name];
        let Some(table) = &ds.spec.table else {
            continue;
        };
        if ds.spec.external {
            continue;
        }
        let Some(store) = env.stores.get(&ds.spec.store) else {
            continue;
        };
        let ctype = store.connector_type.as_str();
        if !DATABASE_TYPES.contains(&ctype) {
            continue;
        }
        if !PROVIDER_TYPES.contains(&ctype) {
            cx.diags.push(
                Diagnostic::new(
                    Code::NoProvider,
                    format!("DataSet {name} is a table in store {} of type {ctype}, which dk cannot plan yet", store.name),
                )
                .at(doc.loc("/spec/store")),
            );
            continue;
        }
        let (schema, tname) = split_table(table, ctype);
        let mut depends = Vec::new();
        if schema != default_schema(ctype) {
            let s = Resource::new(
                &store.name,
                ResourceSpec::Schema {
                    name: schema.clone(),
                },
                Vec::new(),
            );
            depends.push(s.address.clone());
            out.resources.entry(s.address.clone()).or_insert(s);
        }
        let columns = columns(&mut cx, doc, ds);
        let tcomment = comment(
            ds.spec.description.as_deref(),
            ds.spec.classification.as_deref(),
            false,
        );
        let view = producer.get(name).filter(|(_, t)| {
            t.spec.runtime == "sql" && t.spec.materialized.as_deref() == Some("view")
        });
        let spec = match view {
            Some((tdoc, t)) => match render_sql(&mut cx, tdoc, t, &store.name, &by_name, &views) {
                Some((sql, inputs)) => {
                    depends.extend(inputs);
                    ResourceSpec::View {
                        schema,
                        name: tname,
                        sql,
                        columns,
                        comment: tcomment,
                    }
                }
                None => continue,
            },
            None => ResourceSpec::Table {
                schema,
                name: tname,
                columns,
                comment: tcomment,
            },
        };
        let r = Resource::new(&store.name, spec, depends);
        let l = doc.loc("/metadata/name");
        let origin = format!(
            "DataSet {name} ({}:{}:{})",
            l.file, l.span.line, l.span.column
        );
        out.origins.insert(r.address.clone(), origin);
        out.stores.insert(store.name.clone(), ctype.to_string());
        out.resources.insert(r.address.clone(), r);
    }
    // Views may depend on tables compiled later in name order: keep only known addresses.
    let known: BTreeSet<String> = out.resources.keys().cloned().collect();
    for r in out.resources.values_mut() {
        r.depends_on.retain(|a| known.contains(a));
        r.depends_on.sort();
        r.depends_on.dedup();
    }
    if cx.diags.iter().any(|d| d.severity == Severity::Error) {
        return Err(cx.diags);
    }
    Ok(out)
}

fn columns(cx: &mut Ctx<'_>, doc: &Document, ds: &DataSet) -> Vec<ColumnSpec> {
    let mut out = Vec::new();
    for (i, c) in ds.spec.schema.iter().enumerate() {
        match LogicalType::parse(&c.type_) {
            Some(ty) => out.push(ColumnSpec {
                name: c.name.clone(),
                ty,
                nullable: c.nullable.unwrap_or(true),
                comment: comment(c.description.as_deref(), c.classification.as_deref(), c.pii),
            }),
            None => cx.diags.push(
                Diagnostic::new(
                    Code::UnknownColumnType,
                    format!(
                        "column {} has type \"{}\", which dk cannot create",
                        c.name, c.type_
                    ),
                )
                .with_severity(Severity::Error)
                .at(doc.loc(&format!("/spec/schema/{i}/type"))),
            ),
        }
    }
    out
}

/// Renders a view transform's SQL; returns the SQL and the addresses of the inputs it reads.
fn render_sql(
    cx: &mut Ctx<'_>,
    tdoc: &Document,
    t: &Transform,
    store: &str,
    by_name: &HashMap<&str, (&Document, &DataSet)>,
    views: &BTreeSet<String>,
) -> Option<(String, Vec<String>)> {
    let rel = t.spec.sql.as_deref()?;
    let path = tdoc.dir().join(rel);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            cx.diags.push(
                Diagnostic::new(
                    Code::SqlFileMissing,
                    format!("cannot read {}: {e}", path.display()),
                )
                .at(tdoc.loc("/spec/sql")),
            );
            return None;
        }
    };
    let mut refs: HashMap<String, (String, String)> = HashMap::new();
    let mut problems = Vec::new();
    for r in t.spec.inputs.iter() {
        for n in dk_manifest::refs::names(cx.model, r) {
            let Some((_, ds)) = by_name.get(n.as_str()) else {
                continue;
            };
            let Some(table) = &ds.spec.table else {
                problems.push(format!("input {n} has no table"));
                continue;
            };
            let ctype = cx
                .env
                .stores
                .get(&ds.spec.store)
                .map(|s| s.connector_type.clone())
                .unwrap_or_default();
            if ds.spec.store != store {
                cx.diags.push(
                    Diagnostic::new(
                        Code::ViewAcrossStores,
                        format!(
                            "view transform {} reads {n} in store {}, but writes to store {store}",
                            t.metadata.name, ds.spec.store
                        ),
                    )
                    .at(tdoc.loc("/spec/inputs")),
                );
                continue;
            }
            let (schema, name) = split_table(table, &ctype);
            let kind = if views.contains(n.as_str()) {
                ResourceKind::View
            } else {
                ResourceKind::Table
            };
            refs.insert(
                n.clone(),
                (
                    format!("{}.{}", quote_ident(&schema), quote_ident(&name)),
                    address(kind, store, &schema, &name),
                ),
            );
        }
    }
    if !problems.is_empty() {
        cx.diags.push(
            Diagnostic::new(Code::TemplateError, problems.join("; ")).at(tdoc.loc("/spec/inputs")),
        );
        return None;
    }
    let vars = crate::template::vars(&cx.env.variables, &t.spec.vars);
    let refs: HashMap<String, crate::template::RefTarget> = refs
        .into_iter()
        .map(|(k, (sql, tag))| (k, crate::template::RefTarget { sql, tag }))
        .collect();
    match crate::template::render(&text, &refs, &vars) {
        Ok(r) => Some((r.sql, r.used)),
        Err(e) => {
            let line = e.line.map(|l| format!(" (line {l})")).unwrap_or_default();
            cx.diags.push(
                Diagnostic::new(
                    Code::TemplateError,
                    format!("{}{line}: {}", path_display(cx.model, &path), e.message),
                )
                .at(tdoc.loc("/spec/sql")),
            );
            None
        }
    }
}

fn path_display(model: &ProjectModel, p: &Path) -> String {
    p.strip_prefix(&model.root)
        .unwrap_or(p)
        .display()
        .to_string()
}
