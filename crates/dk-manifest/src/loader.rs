//! The one loader: finds the project root, walks it, parses every YAML file in parallel and keeps
//! the documents that carry the dk apiVersion, each with its source spans.
//!
//! Root = the nearest ancestor (of the given path) holding a `project.yaml` of `kind: Project`;
//! otherwise the given directory, in *loose* mode (a DataKit package or a partial tree: references
//! that leave it are warnings, not errors). Skipped directories: `.git`, `.dk`, `target`,
//! `node_modules`, `dbt_packages`, every other hidden directory, and the Project's `spec.exclude`
//! globs.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dk_diagnostics::{Code, Diagnostic, Location, Sources, Span};
use rayon::prelude::*;
use serde_json::Value;

use crate::model::{Kind, Manifest, API_GROUP, API_VERSION};
use crate::yaml::{self, SpanMap};

/// Directory names never walked into.
pub const SKIPPED_DIRS: &[&str] = &[".git", ".dk", "target", "node_modules", "dbt_packages"];

/// A failure to load at all (the path itself is unusable). Problems inside files are diagnostics.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: invalid exclude pattern in project.yaml: {1}")]
    BadExclude(PathBuf, String),
}

/// One manifest document.
#[derive(Debug, Clone)]
pub struct Document {
    /// Path as displayed (relative to the project root, `/`-separated).
    pub file: Arc<str>,
    /// Absolute path of the file.
    pub path: PathBuf,
    /// Position of the document in a multi-document file (0-based).
    pub index: usize,
    pub kind: Kind,
    /// `metadata.name` as written ("" when missing or not a string).
    pub name: String,
    pub spans: SpanMap,
    /// The typed manifest; `None` when the document's structure is broken (already diagnosed).
    pub manifest: Option<Manifest>,
}

impl Document {
    /// Location of the value at a JSON pointer (or its nearest ancestor).
    pub fn loc(&self, pointer: &str) -> Location {
        Location::new(self.file.clone(), self.spans.value_or_parent(pointer))
    }

    /// Location of the key at a JSON pointer (falls back to the value).
    pub fn key_loc(&self, pointer: &str) -> Location {
        Location::new(self.file.clone(), self.spans.key_or_value(pointer))
    }

    /// The document as written, as JSON (re-read from the file's text: the loader keeps only the
    /// typed manifest and the spans, to stay small on large projects).
    pub fn value(&self) -> Value {
        yaml::parse(self.spans.text())
            .ok()
            .and_then(|mut docs| {
                (self.index < docs.len()).then(|| docs.swap_remove(self.index).value)
            })
            .unwrap_or(Value::Null)
    }

    /// `Kind/name` as used in `dk show`.
    pub fn address(&self) -> String {
        format!("{}/{}", self.kind.cli_name(), self.name)
    }

    /// Directory of the manifest file (paths in a manifest are relative to it).
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Everything loaded from one project root.
#[derive(Debug, Default)]
pub struct ProjectModel {
    pub root: PathBuf,
    /// A `project.yaml` of kind Project was found at the root.
    pub is_project: bool,
    pub docs: Vec<Document>,
    pub sources: Sources,
    /// File-level findings (syntax, encoding, unknown kinds).
    pub diagnostics: Vec<Diagnostic>,
    /// Number of YAML files read.
    pub files: usize,
    index: HashMap<(Kind, String), Vec<usize>>,
}

impl ProjectModel {
    /// An empty model rooted at `root` (documents are added with `add_text`).
    pub fn empty(root: PathBuf, is_project: bool) -> Self {
        ProjectModel {
            root,
            is_project,
            ..ProjectModel::default()
        }
    }

    /// The first document of `kind` named `name`.
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Document> {
        self.index
            .get(&(kind, name.to_string()))
            .and_then(|v| v.first())
            .map(|&i| &self.docs[i])
    }

    /// All documents of `kind` named `name` (more than one is E050).
    pub fn all_named(&self, kind: Kind, name: &str) -> impl Iterator<Item = &Document> {
        self.index
            .get(&(kind, name.to_string()))
            .into_iter()
            .flatten()
            .map(|&i| &self.docs[i])
    }

    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Document> {
        self.docs.iter().filter(move |d| d.kind == kind)
    }

    /// Names of every document of a kind (for suggestions).
    pub fn names(&self, kind: Kind) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .of_kind(kind)
            .map(|d| d.name.as_str())
            .filter(|n| !n.is_empty())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The Project manifest, if any.
    pub fn project(&self) -> Option<&crate::model::Project> {
        self.of_kind(Kind::Project).find_map(|d| match &d.manifest {
            Some(Manifest::Project(p)) => Some(p),
            _ => None,
        })
    }

    fn reindex(&mut self) {
        self.index.clear();
        for (i, d) in self.docs.iter().enumerate() {
            self.index
                .entry((d.kind, d.name.clone()))
                .or_default()
                .push(i);
        }
    }

    /// Adds a document (used by tests and by scaffolding before it writes).
    pub fn push(&mut self, doc: Document) {
        self.docs.push(doc);
        self.reindex();
    }
}

macro_rules! typed_iter {
    ($fn:ident, $variant:ident, $ty:ty) => {
        impl ProjectModel {
            /// Every well-formed manifest of this kind with its document.
            pub fn $fn(&self) -> impl Iterator<Item = (&Document, &$ty)> {
                self.docs.iter().filter_map(|d| match &d.manifest {
                    Some(Manifest::$variant(m)) => Some((d, m)),
                    _ => None,
                })
            }
        }
    };
}
typed_iter!(connectors, Connector, crate::model::Connector);
typed_iter!(stores, Store, crate::model::Store);
typed_iter!(datasets, DataSet, crate::model::DataSet);
typed_iter!(dataset_groups, DataSetGroup, crate::model::DataSetGroup);
typed_iter!(transforms, Transform, crate::model::Transform);
typed_iter!(environments, Environment, crate::model::Environment);
typed_iter!(policies, Policy, crate::model::Policy);

/// Is `dir/project.yaml` (or `.yml`) a Project manifest?
fn project_file_in(dir: &Path) -> Option<PathBuf> {
    for name in ["project.yaml", "project.yml"] {
        let p = dir.join(name);
        if let Ok(text) = fs::read_to_string(&p) {
            if let Ok(docs) = yaml::parse(&text) {
                if docs
                    .iter()
                    .any(|d| d.value.get("kind").and_then(Value::as_str) == Some("Project"))
                {
                    return Some(p);
                }
            }
        }
    }
    None
}

/// Finds the project root for `start` (a file or directory): the nearest ancestor with a
/// `project.yaml` of kind Project. Returns `(root, is_project)`; when none is found the root is
/// `start` itself (or its directory).
pub fn find_root(start: &Path) -> Result<(PathBuf, bool), LoadError> {
    let abs = fs::canonicalize(start).map_err(|source| LoadError::Io {
        path: start.to_path_buf(),
        source,
    })?;
    let dir = if abs.is_file() {
        abs.parent().map(Path::to_path_buf).unwrap_or(abs.clone())
    } else {
        abs.clone()
    };
    let mut cur = Some(dir.as_path());
    while let Some(d) = cur {
        if project_file_in(d).is_some() {
            return Ok((d.to_path_buf(), true));
        }
        cur = d.parent();
    }
    Ok((dir, false))
}

fn display_path(root: &Path, path: &Path) -> Arc<str> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let s: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Arc::from(s.join("/"))
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml") | Some("yml")
    )
}

/// Reads the exclude globs of the root's Project manifest.
fn excludes(root: &Path) -> Result<Option<globset::GlobSet>, LoadError> {
    let Some(p) = project_file_in(root) else {
        return Ok(None);
    };
    let text = fs::read_to_string(&p).map_err(|source| LoadError::Io {
        path: p.clone(),
        source,
    })?;
    let docs = yaml::parse(&text).unwrap_or_default();
    let mut b = globset::GlobSetBuilder::new();
    let mut any = false;
    for d in &docs {
        if let Some(list) = d.value.pointer("/spec/exclude").and_then(Value::as_array) {
            for pat in list.iter().filter_map(Value::as_str) {
                let pat = pat.trim_end_matches('/');
                for variant in [pat.to_string(), format!("{pat}/**")] {
                    let g = globset::Glob::new(&variant)
                        .map_err(|e| LoadError::BadExclude(p.clone(), e.to_string()))?;
                    b.add(g);
                }
                any = true;
            }
        }
    }
    if !any {
        return Ok(None);
    }
    b.build()
        .map(Some)
        .map_err(|e| LoadError::BadExclude(p, e.to_string()))
}

/// Lists the YAML files under `root` that the loader reads, sorted.
pub fn yaml_files(root: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let excl = excludes(root)?;
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    for entry in walker.filter_entry(|e| {
        if e.depth() == 0 {
            return true;
        }
        let name = e.file_name().to_string_lossy();
        if e.file_type().is_dir()
            && (SKIPPED_DIRS.contains(&name.as_ref()) || name.starts_with('.'))
        {
            return false;
        }
        match &excl {
            Some(g) => {
                let rel = e.path().strip_prefix(root).unwrap_or(e.path());
                !g.is_match(rel)
            }
            None => true,
        }
    }) {
        let entry = entry.map_err(|e| LoadError::Io {
            path: e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.to_path_buf()),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("walk error")),
        })?;
        if entry.file_type().is_file() && is_yaml(entry.path()) {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

/// The outcome of reading one file.
struct FileResult {
    display: Arc<str>,
    text: Option<Arc<str>>,
    docs: Vec<Document>,
    diagnostics: Vec<Diagnostic>,
}

/// Does a YAML value look like a legacy DataKit file that is not a manifest?
fn looks_legacy(path: &Path, value: &Value) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match value {
        Value::Array(items) => {
            name.starts_with("bindings")
                || items
                    .iter()
                    .any(|i| i.get("dataset").is_some() && i.get("type").is_some())
        }
        _ => false,
    }
}

fn read_one(root: &Path, path: &Path) -> FileResult {
    let display = display_path(root, path);
    let mut res = FileResult {
        display: display.clone(),
        text: None,
        docs: Vec::new(),
        diagnostics: Vec::new(),
    };
    let here = |span: Span| Location::new(display.clone(), span);
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            res.diagnostics.push(
                Diagnostic::new(Code::Io, format!("cannot read {}: {e}", path.display()))
                    .at(here(Span::default()))
                    .help("check the file's permissions"),
            );
            return res;
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let valid = String::from_utf8_lossy(&e.as_bytes()[..at]).into_owned();
            let span = dk_diagnostics::span_from_offsets(&valid, at, at);
            res.diagnostics.push(
                Diagnostic::new(
                    Code::NotUtf8,
                    format!("{display} is not valid UTF-8 (invalid byte at offset {at})"),
                )
                .at(here(span))
                .help("re-save the file as UTF-8"),
            );
            return res;
        }
    };
    parse_file_text(display, path, &text)
}

/// Parses the decoded text of one file: documents with our apiVersion, and file-level findings.
fn parse_file_text(display: Arc<str>, path: &Path, text: &str) -> FileResult {
    let mut res = FileResult {
        display: display.clone(),
        text: None,
        docs: Vec::new(),
        diagnostics: Vec::new(),
    };
    let here = |span: Span| Location::new(display.clone(), span);
    let text: Arc<str> = Arc::from(text.strip_prefix('\u{feff}').unwrap_or(text));
    res.text = Some(text.clone());
    if text.trim().is_empty() {
        res.diagnostics.push(
            Diagnostic::new(Code::EmptyFile, format!("{display} is empty"))
                .at(here(Span {
                    offset: 0,
                    len: 0,
                    line: 1,
                    column: 1,
                }))
                .help("delete the file or add a manifest to it"),
        );
        return res;
    }
    let docs = match yaml::parse_shared(text.clone()) {
        Ok(d) => d,
        Err(e) => {
            res.diagnostics.push(
                Diagnostic::new(Code::YamlSyntax, format!("invalid YAML: {}", e.message))
                    .at(here(e.span))
                    .label(e.message.clone())
                    .help("fix the YAML syntax here, or add the file to `spec.exclude` in project.yaml if it is not meant to be read"),
            );
            return res;
        }
    };
    for (index, d) in docs.into_iter().enumerate() {
        let api = d.value.get("apiVersion").and_then(Value::as_str);
        match api {
            Some(API_VERSION) => {}
            Some(a) if a.starts_with(API_GROUP) => {
                res.diagnostics.push(
                    Diagnostic::new(
                        Code::UnsupportedApiVersion,
                        format!("apiVersion {a} is not supported; this document is skipped"),
                    )
                    .at(Location::new(
                        display.clone(),
                        d.spans.value_or_parent("/apiVersion"),
                    ))
                    .help(format!("use `apiVersion: {API_VERSION}`")),
                );
                continue;
            }
            _ => {
                if looks_legacy(path, &d.value) {
                    res.diagnostics.push(
                        Diagnostic::new(Code::NotAManifest, format!("{display} is a legacy DataKit bindings list, not a manifest; skipped"))
                            .at(Location::new(display.clone(), d.spans.value_or_parent("")))
                            .help("declare per-environment bindings in an Environment manifest (`spec.bindings`)"),
                    );
                }
                continue;
            }
        }
        let kind_str = d.value.get("kind").and_then(Value::as_str);
        let kind = match kind_str {
            None => {
                res.diagnostics.push(
                    Diagnostic::new(Code::MissingKind, "manifest is missing required 'kind' field")
                        .at(Location::new(display.clone(), d.spans.value_or_parent("/apiVersion")))
                        .help("add `kind:` with one of Project, Connector, Store, DataSet, DataSetGroup, Transform, Environment, Policy"),
                );
                continue;
            }
            Some(k) => match Kind::parse(k) {
                Some(kind) => kind,
                None => {
                    let legacy = matches!(
                        k,
                        "Pipeline" | "Source" | "Destination" | "Model" | "Binding" | "Asset"
                    );
                    let help = if legacy {
                        format!("`{k}` is a legacy DataKit kind: the pipeline graph now emerges from Transform inputs and outputs; delete this file or convert it")
                    } else {
                        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                        match crate::suggest::closest(k, known.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => "known kinds: Project, Connector, Store, DataSet, DataSetGroup, Transform, Environment, Policy".into(),
                        }
                    };
                    res.diagnostics.push(
                        Diagnostic::new(Code::UnknownKind, format!("unsupported manifest kind \"{k}\": must be Project, Connector, Store, DataSet, DataSetGroup, Transform, Environment or Policy; skipped"))
                            .at(Location::new(display.clone(), d.spans.value_or_parent("/kind")))
                            .help(help),
                    );
                    continue;
                }
            },
        };
        let name = d
            .value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut doc = Document {
            file: display.clone(),
            path: path.to_path_buf(),
            index,
            kind,
            name,
            spans: d.spans,
            manifest: None,
        };
        let structural = crate::schema::validate_structure(&doc, &d.value);
        let broken = structural
            .iter()
            .any(|d| d.code == Code::WrongType || d.code == Code::InvalidValue);
        match Manifest::from_value(kind, &d.value) {
            Ok(m) => doc.manifest = Some(m),
            Err((pointer, message)) if !broken => res.diagnostics.push(
                Diagnostic::new(
                    Code::WrongType,
                    format!("`{}`: {message}", crate::schema::display_field(&pointer)),
                )
                .at(doc.loc(&pointer)),
            ),
            Err(_) => {}
        }
        res.diagnostics.extend(structural);
        res.docs.push(doc);
    }
    res
}

/// Loads the project that contains `path`.
pub fn load(path: &Path) -> Result<ProjectModel, LoadError> {
    let (root, is_project) = find_root(path)?;
    load_root(&root, is_project)
}

/// Loads every manifest under `root`.
pub fn load_root(root: &Path, is_project: bool) -> Result<ProjectModel, LoadError> {
    let files = yaml_files(root)?;
    let results: Vec<FileResult> = files.par_iter().map(|p| read_one(root, p)).collect();
    let mut model = ProjectModel {
        root: root.to_path_buf(),
        is_project,
        files: results.len(),
        ..ProjectModel::default()
    };
    for r in results {
        model.absorb(r);
    }
    model.reindex();
    Ok(model)
}

/// Loads one file on its own (loose mode, root = its directory).
pub fn load_file(path: &Path) -> Result<ProjectModel, LoadError> {
    let root = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut model = ProjectModel {
        root: root.clone(),
        is_project: false,
        files: 1,
        ..ProjectModel::default()
    };
    model.absorb(read_one(&root, path));
    model.reindex();
    Ok(model)
}

impl ProjectModel {
    fn absorb(&mut self, r: FileResult) {
        if let Some(t) = r.text {
            self.sources.insert(r.display.clone(), t);
        }
        self.docs.extend(r.docs);
        self.diagnostics.extend(r.diagnostics);
    }

    /// Adds (or replaces) the file at `path` with `text`, as if it had been on disk when the
    /// project was loaded. Used to validate what scaffolding is about to write. Returns the
    /// displayed path of the file.
    pub fn add_text(&mut self, path: &Path, text: &str) -> Arc<str> {
        let display = display_path(&self.root, path);
        self.docs.retain(|d| d.file != display);
        self.diagnostics
            .retain(|d| d.location.as_ref().is_none_or(|l| l.file != display));
        let r = parse_file_text(display.clone(), path, text);
        self.files += 1;
        self.absorb(r);
        self.reindex();
        display
    }
}

/// Loads manifests from in-memory text as if it were the file `display` in a loose directory
/// (tests, fuzzing, and scaffolding checks).
pub fn load_str(display: &str, text: &str) -> ProjectModel {
    let display: Arc<str> = Arc::from(display);
    let path = PathBuf::from(display.as_ref());
    let r = parse_file_text(display.clone(), &path, text);
    let mut model = ProjectModel {
        root: PathBuf::from("."),
        files: 1,
        ..ProjectModel::default()
    };
    if let Some(t) = r.text {
        model.sources.insert(display, t);
    }
    model.docs.extend(r.docs);
    model.diagnostics.extend(r.diagnostics);
    model.reindex();
    model
}
