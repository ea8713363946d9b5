//! The graph model and its construction from a loaded project.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use dk_diagnostics::{Code, Diagnostic, Location};
use dk_manifest::model::DataSetRef;
use dk_manifest::{refs, ProjectModel};
use indexmap::IndexMap;
use serde::Serialize;

use crate::order::Cycle;
use crate::selector::{Selector, SelectorError};

/// What a node is. Datasets sort before transforms (as in the Go tool's output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    DataSet,
    Transform,
}

impl NodeKind {
    /// `dataset` or `transform` (the JSON `type` and the selector spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::DataSet => "dataset",
            NodeKind::Transform => "transform",
        }
    }

    /// Parses `dataset` / `transform` (case-insensitive).
    pub fn parse(s: &str) -> Option<NodeKind> {
        if s.eq_ignore_ascii_case("dataset") {
            Some(NodeKind::DataSet)
        } else if s.eq_ignore_ascii_case("transform") {
            Some(NodeKind::Transform)
        } else {
            None
        }
    }

    fn slot(self) -> usize {
        match self {
            NodeKind::DataSet => 0,
            NodeKind::Transform => 1,
        }
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's identity: transforms and datasets live in separate namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub kind: NodeKind,
    pub name: String,
}

impl NodeId {
    pub fn new(kind: NodeKind, name: impl Into<String>) -> Self {
        NodeId {
            kind,
            name: name.into(),
        }
    }
    pub fn dataset(name: impl Into<String>) -> Self {
        NodeId::new(NodeKind::DataSet, name)
    }
    pub fn transform(name: impl Into<String>) -> Self {
        NodeId::new(NodeKind::Transform, name)
    }
}

impl fmt::Display for NodeId {
    /// `dataset/raw-events`, `transform/ingest` (the `dk show` address form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Index of a node in one [`Graph`] (meaningless in another graph, e.g. a subgraph).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeIx(pub usize);

/// One node. The first six fields mirror the Go tool's JSON node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub name: String,
    /// Transform runtime as written (`cloudquery`, `sql`, …); `None` for datasets.
    pub runtime: Option<String>,
    /// Transform trigger policy (`schedule`, `on-change`, …); `None` when absent.
    pub trigger_policy: Option<String>,
    /// The cron expression of a `schedule` trigger.
    pub trigger_detail: Option<String>,
    /// The manifest file, relative to the project root; `None` for placeholder datasets.
    pub file_path: Option<Arc<str>>,
    /// A DataSet's `spec.schemaRef`.
    pub schema_ref: Option<String>,
    /// A DataSet's `spec.store`.
    pub store: Option<String>,
    /// `metadata.labels`.
    pub labels: IndexMap<String, String>,
    /// Where the manifest names this node (`metadata.name`); `None` for placeholders.
    pub location: Option<Location>,
}

impl Node {
    fn placeholder(name: &str) -> Self {
        Node {
            kind: NodeKind::DataSet,
            name: name.to_string(),
            runtime: None,
            trigger_policy: None,
            trigger_detail: None,
            file_path: None,
            schema_ref: None,
            store: None,
            labels: IndexMap::new(),
            location: None,
        }
    }

    pub fn id(&self) -> NodeId {
        NodeId::new(self.kind, self.name.clone())
    }

    /// A dataset referenced by a transform but defined by no manifest.
    pub fn is_placeholder(&self) -> bool {
        self.kind == NodeKind::DataSet && self.file_path.is_none()
    }

    /// The runtime's short name (`cq`, `go`, `python`, `dbt`, `sql`, `sync`); "" for datasets.
    pub fn runtime_short(&self) -> &str {
        runtime_short(self.runtime.as_deref().unwrap_or(""))
    }

    /// `schedule (0 */6 * * *)`, `on-change`, …; `manual` when the transform has no trigger.
    pub fn trigger_display(&self) -> String {
        let mut s = self.trigger_policy.clone().unwrap_or_default();
        if let Some(d) = self.trigger_detail.as_deref().filter(|d| !d.is_empty()) {
            s.push_str(" (");
            s.push_str(d);
            s.push(')');
        }
        if s.is_empty() {
            "manual".to_string()
        } else {
            s
        }
    }

    /// The trigger policy, `manual` when absent (mermaid and dot labels).
    pub fn policy_or_manual(&self) -> &str {
        self.trigger_policy
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("manual")
    }
}

/// Short runtime names as the Go tool prints them: cloudquery → cq, generic-go → go,
/// generic-python → python; every other runtime (dbt, sql, sync, python) is its own short name.
pub fn runtime_short(runtime: &str) -> &str {
    match runtime {
        "cloudquery" => "cq",
        "generic-go" => "go",
        "generic-python" => "python",
        other => other,
    }
}

/// A directed edge: dataset → transform (an input) or transform → dataset (an output).
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: NodeIx,
    pub to: NodeIx,
    /// The `spec.inputs[i]` / `spec.outputs[i]` reference in the transform manifest (its
    /// `dataset` value, or its `tags` for a tag selector).
    pub location: Option<Location>,
}

/// Column lineage: `to_dataset.to_column` is derived from `from_dataset.from_column`
/// (a DataSet column's `from:`, or derived from a `sql` transform's query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnEdge {
    pub from_dataset: String,
    pub from_column: String,
    pub to_dataset: String,
    pub to_column: String,
    /// The column's `from:` in the DataSet manifest (declared edges).
    pub location: Option<Location>,
    pub origin: ColumnOrigin,
}

/// Where a column lineage edge comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnOrigin {
    /// A DataSet column's `from: dataset.column`.
    Declared,
    /// Derived from the query of this `sql` transform ([`crate::sqllineage`]).
    Sql { transform: String },
}

/// A set of nodes of one graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSet {
    bits: Vec<bool>,
}

impl NodeSet {
    /// The empty set for a graph of `n` nodes.
    pub fn empty(n: usize) -> Self {
        NodeSet {
            bits: vec![false; n],
        }
    }
    /// Every node of a graph of `n` nodes.
    pub fn full(n: usize) -> Self {
        NodeSet {
            bits: vec![true; n],
        }
    }
    pub fn insert(&mut self, ix: NodeIx) -> bool {
        match self.bits.get_mut(ix.0) {
            Some(b) if !*b => {
                *b = true;
                true
            }
            _ => false,
        }
    }
    pub fn remove(&mut self, ix: NodeIx) {
        if let Some(b) = self.bits.get_mut(ix.0) {
            *b = false;
        }
    }
    pub fn contains(&self, ix: NodeIx) -> bool {
        self.bits.get(ix.0).copied().unwrap_or(false)
    }
    pub fn len(&self) -> usize {
        self.bits.iter().filter(|b| **b).count()
    }
    pub fn is_empty(&self) -> bool {
        !self.bits.iter().any(|b| *b)
    }
    /// Members in node order.
    pub fn iter(&self) -> impl Iterator<Item = NodeIx> + '_ {
        self.bits
            .iter()
            .enumerate()
            .filter(|(_, b)| **b)
            .map(|(i, _)| NodeIx(i))
    }
    pub fn union_with(&mut self, other: &NodeSet) {
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a |= *b;
        }
    }
    pub fn intersect_with(&mut self, other: &NodeSet) {
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a &= *b;
        }
    }
    pub fn subtract(&mut self, other: &NodeSet) {
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a &= !*b;
        }
    }
}

/// Errors of graph queries.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// The graph has at least one cycle, so there is no execution order.
    #[error("the pipeline graph has a cycle: {}", .0.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; "))]
    Cycle(Vec<Cycle>),
    /// `--destination` / `--source` names nothing in the graph.
    #[error("no dataset or transform named \"{name}\" in the pipeline graph{}", suggestion_suffix(.suggestion))]
    UnknownNode {
        name: String,
        suggestion: Option<String>,
    },
    #[error(transparent)]
    Selector(#[from] SelectorError),
}

pub(crate) fn suggestion_suffix(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean \"{s}\"?)"),
        None => String::new(),
    }
}

/// What `dk pipeline show` keeps: ancestors of a destination, descendants of a source, a
/// selection, minus an exclusion. Every criterion given must hold (they intersect).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Keep this node and its ancestors; the output lists nodes by name (the Go tool's order).
    pub destination: Option<String>,
    /// Keep this node and its descendants.
    pub source: Option<String>,
    pub select: Option<Selector>,
    pub exclude: Option<Selector>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.destination.is_none()
            && self.source.is_none()
            && self.select.is_none()
            && self.exclude.is_none()
    }
}

/// The pipeline graph of a project.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    /// name → [dataset, transform].
    by_name: HashMap<String, [Option<NodeIx>; 2]>,
    edges: Vec<Edge>,
    out_edges: Vec<Vec<usize>>,
    in_edges: Vec<Vec<usize>>,
    columns: Vec<ColumnEdge>,
}

/// Canonical key of a tag reference (for memoising its resolution).
fn tag_key(r: &DataSetRef) -> String {
    let mut tags: Vec<String> = r.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    tags.sort();
    format!("{}|{}", tags.join(","), r.version.as_deref().unwrap_or(""))
}

impl Graph {
    /// Derives the graph of a loaded project. Never fails: problems (duplicate producers, cycles)
    /// are reported by [`Graph::diagnostics`]; manifests too broken to read are skipped (the
    /// validator reports them). When a kind/name is defined twice, the first definition counts.
    pub fn build(model: &ProjectModel) -> Graph {
        let mut g = Graph::default();
        let mut seen_edges: HashSet<(usize, usize)> = HashSet::new();
        for (doc, ds) in model.datasets() {
            if doc.name.is_empty() || g.find(NodeKind::DataSet, &doc.name).is_some() {
                continue;
            }
            g.add_node(Node {
                kind: NodeKind::DataSet,
                name: doc.name.clone(),
                runtime: None,
                trigger_policy: None,
                trigger_detail: None,
                file_path: Some(doc.file.clone()),
                schema_ref: ds.spec.schema_ref.clone().filter(|s| !s.is_empty()),
                store: Some(ds.spec.store.clone()).filter(|s| !s.is_empty()),
                labels: ds.metadata.labels.clone(),
                location: Some(doc.loc("/metadata/name")),
            });
            for (i, col) in ds.spec.schema.iter().enumerate() {
                let Some(from) = col.from.as_deref() else {
                    continue;
                };
                let Some((fd, fc)) = from.split_once('.') else {
                    continue;
                };
                if fd.is_empty() || fc.is_empty() {
                    continue;
                }
                g.columns.push(ColumnEdge {
                    from_dataset: fd.to_string(),
                    from_column: fc.to_string(),
                    to_dataset: doc.name.clone(),
                    to_column: col.name.clone(),
                    location: Some(doc.loc(&format!("/spec/schema/{i}/from"))),
                    origin: ColumnOrigin::Declared,
                });
            }
        }
        let mut tag_memo: HashMap<String, Vec<String>> = HashMap::new();
        for (doc, t) in model.transforms() {
            if doc.name.is_empty() || g.find(NodeKind::Transform, &doc.name).is_some() {
                continue;
            }
            let (policy, detail) = match &t.spec.trigger {
                Some(tr) if !tr.policy.is_empty() => {
                    let detail = if tr.policy == "schedule" {
                        tr.schedule
                            .as_ref()
                            .map(|s| s.cron.clone())
                            .filter(|c| !c.is_empty())
                    } else {
                        None
                    };
                    (Some(tr.policy.clone()), detail)
                }
                _ => (None, None),
            };
            let tix = g.add_node(Node {
                kind: NodeKind::Transform,
                name: doc.name.clone(),
                runtime: Some(t.spec.runtime.clone()),
                trigger_policy: policy,
                trigger_detail: detail,
                file_path: Some(doc.file.clone()),
                schema_ref: None,
                store: None,
                labels: t.metadata.labels.clone(),
                location: Some(doc.loc("/metadata/name")),
            });
            for (side, list) in [("inputs", &t.spec.inputs), ("outputs", &t.spec.outputs)] {
                for (i, r) in list.iter().enumerate() {
                    let names = if r.dataset.is_some() {
                        refs::names(model, r)
                    } else {
                        tag_memo
                            .entry(tag_key(r))
                            .or_insert_with(|| refs::names(model, r))
                            .clone()
                    };
                    for name in names {
                        let dix = match g.find(NodeKind::DataSet, &name) {
                            Some(ix) => ix,
                            None => g.add_node(Node::placeholder(&name)),
                        };
                        let (from, to) = if side == "inputs" {
                            (dix, tix)
                        } else {
                            (tix, dix)
                        };
                        if seen_edges.insert((from.0, to.0)) {
                            let field = if r.dataset.is_some() {
                                "dataset"
                            } else {
                                "tags"
                            };
                            let location = Some(doc.loc(&format!("/spec/{side}/{i}/{field}")));
                            g.edges.push(Edge { from, to, location });
                        }
                    }
                }
            }
        }
        // Datasets before transforms, each by name.
        let mut order: Vec<NodeIx> = (0..g.nodes.len()).map(NodeIx).collect();
        order.sort_by(|a, b| {
            let (x, y) = (&g.nodes[a.0], &g.nodes[b.0]);
            (x.kind, &x.name).cmp(&(y.kind, &y.name))
        });
        g.permute(&order);
        g.columns.sort_by(|a, b| a.to_dataset.cmp(&b.to_dataset));
        g
    }

    fn add_node(&mut self, node: Node) -> NodeIx {
        let ix = NodeIx(self.nodes.len());
        self.by_name.entry(node.name.clone()).or_default()[node.kind.slot()] = Some(ix);
        self.nodes.push(node);
        ix
    }

    /// Rebuilds the graph with its nodes in `order` (a permutation or a subset of the current
    /// indices); edges between kept nodes keep their relative order.
    fn permute(&mut self, order: &[NodeIx]) {
        let mut map = vec![usize::MAX; self.nodes.len()];
        for (new, old) in order.iter().enumerate() {
            map[old.0] = new;
        }
        let mut old_nodes: Vec<Option<Node>> = std::mem::take(&mut self.nodes)
            .into_iter()
            .map(Some)
            .collect();
        self.by_name.clear();
        for old in order {
            if let Some(n) = old_nodes.get_mut(old.0).and_then(Option::take) {
                self.add_node(n);
            }
        }
        let edges = std::mem::take(&mut self.edges);
        self.edges = edges
            .into_iter()
            .filter(|e| map[e.from.0] != usize::MAX && map[e.to.0] != usize::MAX)
            .map(|e| Edge {
                from: NodeIx(map[e.from.0]),
                to: NodeIx(map[e.to.0]),
                location: e.location,
            })
            .collect();
        self.out_edges = vec![Vec::new(); self.nodes.len()];
        self.in_edges = vec![Vec::new(); self.nodes.len()];
        for (i, e) in self.edges.iter().enumerate() {
            self.out_edges[e.from.0].push(i);
            self.in_edges[e.to.0].push(i);
        }
        let kept: HashSet<&str> = self
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::DataSet)
            .map(|n| n.name.as_str())
            .collect();
        let columns = std::mem::take(&mut self.columns);
        self.columns = columns
            .into_iter()
            .filter(|c| kept.contains(c.to_dataset.as_str()))
            .collect();
    }

    // -----------------------------------------------------------------------------------------
    // Access

    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    /// Nodes in display order: datasets then transforms, each by name (by name only after a
    /// `--destination` filter, as the Go tool does).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    pub fn node(&self, ix: NodeIx) -> &Node {
        &self.nodes[ix.0]
    }
    /// Indices with their nodes.
    pub fn iter(&self) -> impl Iterator<Item = (NodeIx, &Node)> {
        self.nodes.iter().enumerate().map(|(i, n)| (NodeIx(i), n))
    }
    /// Edges in derivation order: per transform (in file order), its inputs then its outputs.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }
    /// Column lineage edges whose target dataset is in the graph, grouped by target dataset.
    pub fn column_edges(&self) -> &[ColumnEdge] {
        &self.columns
    }

    /// Adds derived column lineage (from SQL): edges whose target dataset is not in the graph, or
    /// that repeat an edge already present (e.g. declared with `from:`), are left out. Edges
    /// stay grouped by target dataset; within a dataset, declared edges come first.
    pub fn add_column_edges(&mut self, edges: impl IntoIterator<Item = ColumnEdge>) {
        let same = |a: &ColumnEdge, b: &ColumnEdge| {
            a.from_dataset == b.from_dataset
                && a.from_column == b.from_column
                && a.to_dataset == b.to_dataset
                && a.to_column == b.to_column
        };
        for e in edges {
            if self.find(NodeKind::DataSet, &e.to_dataset).is_none()
                || self.columns.iter().any(|c| same(c, &e))
            {
                continue;
            }
            self.columns.push(e);
        }
        self.columns.sort_by(|a, b| a.to_dataset.cmp(&b.to_dataset));
    }
    /// The node of `kind` named `name`.
    pub fn find(&self, kind: NodeKind, name: &str) -> Option<NodeIx> {
        self.by_name.get(name).and_then(|s| s[kind.slot()])
    }
    pub fn find_id(&self, id: &NodeId) -> Option<NodeIx> {
        self.find(id.kind, &id.name)
    }
    /// Every node named `name` (a dataset, a transform, or both).
    pub fn find_name(&self, name: &str) -> Vec<NodeIx> {
        self.by_name
            .get(name)
            .map(|s| s.iter().flatten().copied().collect())
            .unwrap_or_default()
    }
    /// Successors (inputs → transform → outputs), in edge order.
    pub fn successors(&self, ix: NodeIx) -> impl Iterator<Item = NodeIx> + '_ {
        self.out_edges[ix.0].iter().map(move |&e| self.edges[e].to)
    }
    /// Predecessors, in edge order.
    pub fn predecessors(&self, ix: NodeIx) -> impl Iterator<Item = NodeIx> + '_ {
        self.in_edges[ix.0].iter().map(move |&e| self.edges[e].from)
    }
    /// Input datasets of a transform (or producers of a dataset).
    pub fn inputs(&self, ix: NodeIx) -> Vec<NodeIx> {
        self.predecessors(ix).collect()
    }
    /// Output datasets of a transform (or consumers of a dataset).
    pub fn outputs(&self, ix: NodeIx) -> Vec<NodeIx> {
        self.successors(ix).collect()
    }
    /// The edge `from → to`, if any.
    pub fn edge(&self, from: NodeIx, to: NodeIx) -> Option<&Edge> {
        self.out_edges
            .get(from.0)?
            .iter()
            .map(|&e| &self.edges[e])
            .find(|e| e.to == to)
    }
    pub(crate) fn out_edge_ids(&self, ix: NodeIx) -> &[usize] {
        &self.out_edges[ix.0]
    }
    /// A close name for "did you mean".
    pub(crate) fn suggest(&self, name: &str, kind: Option<NodeKind>) -> Option<String> {
        let names = self
            .nodes
            .iter()
            .filter(|n| kind.is_none_or(|k| n.kind == k))
            .map(|n| n.name.as_str());
        dk_manifest::suggest::closest(name, names).map(str::to_string)
    }

    // -----------------------------------------------------------------------------------------
    // Traversal and filtering

    fn walk(&self, start: &[NodeIx], depth: Option<u32>, forward: bool) -> NodeSet {
        let mut set = NodeSet::empty(self.len());
        let mut queue: VecDeque<(NodeIx, u32)> = VecDeque::new();
        for &s in start {
            if set.insert(s) {
                queue.push_back((s, 0));
            }
        }
        while let Some((ix, d)) = queue.pop_front() {
            if depth.is_some_and(|max| d >= max) {
                continue;
            }
            let ids = if forward {
                &self.out_edges[ix.0]
            } else {
                &self.in_edges[ix.0]
            };
            for &e in ids {
                let next = if forward {
                    self.edges[e].to
                } else {
                    self.edges[e].from
                };
                if set.insert(next) {
                    queue.push_back((next, d + 1));
                }
            }
        }
        set
    }

    /// `start` and everything upstream of it, up to `depth` edges (`None`: unlimited).
    pub fn ancestors(&self, start: &[NodeIx], depth: Option<u32>) -> NodeSet {
        self.walk(start, depth, false)
    }

    /// `start` and everything downstream of it, up to `depth` edges (`None`: unlimited).
    pub fn descendants(&self, start: &[NodeIx], depth: Option<u32>) -> NodeSet {
        self.walk(start, depth, true)
    }

    /// The graph restricted to `keep` (nodes keep their order, edges between kept nodes theirs).
    pub fn subgraph(&self, keep: &NodeSet) -> Graph {
        let mut g = self.clone();
        let order: Vec<NodeIx> = keep.iter().collect();
        g.permute(&order);
        g
    }

    /// Resolves a `--destination` / `--source` name: the dataset of that name, else the transform.
    pub fn resolve_endpoint(&self, name: &str) -> Result<NodeIx, GraphError> {
        self.find(NodeKind::DataSet, name)
            .or_else(|| self.find(NodeKind::Transform, name))
            .ok_or_else(|| GraphError::UnknownNode {
                name: name.to_string(),
                suggestion: self.suggest(name, None),
            })
    }

    /// The nodes `select` picks (every node without one) minus those `exclude` picks: what
    /// `dk run SELECTOR --exclude X` acts on. Pair with [`Graph::order_within`].
    pub fn selection(
        &self,
        select: Option<&Selector>,
        exclude: Option<&Selector>,
    ) -> Result<NodeSet, SelectorError> {
        let mut set = match select {
            Some(s) => s.select(self)?,
            None => NodeSet::full(self.len()),
        };
        if let Some(ex) = exclude {
            set.subtract(&ex.select(self)?);
        }
        Ok(set)
    }

    /// The nodes a filter keeps.
    pub fn filter_set(&self, f: &Filter) -> Result<NodeSet, GraphError> {
        let mut keep = NodeSet::full(self.len());
        if let Some(d) = &f.destination {
            let ix = self.resolve_endpoint(d)?;
            keep.intersect_with(&self.ancestors(&[ix], None));
        }
        if let Some(s) = &f.source {
            let ix = self.resolve_endpoint(s)?;
            keep.intersect_with(&self.descendants(&[ix], None));
        }
        if let Some(sel) = &f.select {
            keep.intersect_with(&sel.select(self)?);
        }
        if let Some(ex) = &f.exclude {
            keep.subtract(&ex.select(self)?);
        }
        Ok(keep)
    }

    /// The subgraph a filter keeps. With a destination, nodes are listed by name only (the Go
    /// tool's order for `--destination`).
    pub fn filter(&self, f: &Filter) -> Result<Graph, GraphError> {
        if f.is_empty() {
            return Ok(self.clone());
        }
        let keep = self.filter_set(f)?;
        let mut g = self.subgraph(&keep);
        if f.destination.is_some() {
            let mut order: Vec<NodeIx> = (0..g.len()).map(NodeIx).collect();
            order.sort_by(|a, b| {
                let (x, y) = (&g.nodes[a.0], &g.nodes[b.0]);
                (&x.name, x.kind).cmp(&(&y.name, y.kind))
            });
            g.permute(&order);
        }
        Ok(g)
    }

    // -----------------------------------------------------------------------------------------
    // Diagnostics

    /// E406 for every dataset written by more than one transform, then E407 for every cycle.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for (ix, node) in self.iter() {
            if node.kind != NodeKind::DataSet || self.in_edges[ix.0].len() < 2 {
                continue;
            }
            let mut producers: Vec<&Edge> = self.in_edges[ix.0]
                .iter()
                .map(|&e| &self.edges[e])
                .collect();
            producers.sort_by(|a, b| self.nodes[a.from.0].name.cmp(&self.nodes[b.from.0].name));
            let first = producers[0];
            let first_name = &self.nodes[first.from.0].name;
            for other in &producers[1..] {
                let other_name = &self.nodes[other.from.0].name;
                let mut d = Diagnostic::new(
                    Code::DuplicateProducer,
                    format!("DataSet \"{}\" is written by two Transforms: \"{first_name}\" and \"{other_name}\"", node.name),
                )
                .at_opt(other.location.clone())
                .label(format!("{other_name} writes {}", node.name))
                .help(format!(
                    "each DataSet has one producing Transform: make \"{other_name}\" or \"{first_name}\" write a different DataSet"
                ));
                if let Some(l) = &first.location {
                    d = d.related(l.clone(), format!("{first_name} also writes {}", node.name));
                }
                out.push(d);
            }
        }
        for c in self.cycles() {
            out.push(c.diagnostic(self));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{dataset, model, transform};

    fn names(g: &Graph) -> Vec<String> {
        g.nodes().iter().map(|n| n.id().to_string()).collect()
    }

    fn edges(g: &Graph) -> Vec<String> {
        g.edges()
            .iter()
            .map(|e| format!("{}->{}", g.node(e.from).name, g.node(e.to).name))
            .collect()
    }

    #[test]
    fn nodes_edges_and_placeholders() {
        let m = model(&[
            dataset("b"),
            dataset("a"),
            transform("t2", "sql", &["b"], &["c"]),
            transform("t1", "cloudquery", &["a"], &["b"]),
        ]);
        let g = Graph::build(&m);
        assert_eq!(
            names(&g),
            [
                "dataset/a",
                "dataset/b",
                "dataset/c",
                "transform/t1",
                "transform/t2"
            ]
        );
        // Derivation order: per transform in file order, inputs then outputs.
        assert_eq!(edges(&g), ["b->t2", "t2->c", "a->t1", "t1->b"]);
        let c = g.find(NodeKind::DataSet, "c").expect("placeholder");
        assert!(g.node(c).is_placeholder());
        assert!(g.node(c).location.is_none());
        let a = g.find(NodeKind::DataSet, "a").expect("a");
        assert!(!g.node(a).is_placeholder());
        assert_eq!(g.node(a).store.as_deref(), Some("s"));
        let t1 = g.find(NodeKind::Transform, "t1").expect("t1");
        assert_eq!(g.node(t1).runtime_short(), "cq");
        assert_eq!(g.node(t1).trigger_display(), "manual");
        assert!(g.diagnostics().is_empty());
    }

    #[test]
    fn transforms_and_datasets_have_separate_namespaces() {
        let m = model(&[
            dataset("orders"),
            transform("orders", "sql", &["raw"], &["orders"]),
        ]);
        let g = Graph::build(&m);
        assert_eq!(
            names(&g),
            ["dataset/orders", "dataset/raw", "transform/orders"]
        );
        assert_eq!(g.find_name("orders").len(), 2);
        assert_eq!(edges(&g), ["raw->orders", "orders->orders"]);
        assert!(
            g.cycles().is_empty(),
            "a name shared by two kinds is no cycle"
        );
    }

    #[test]
    fn tag_selectors_resolve_with_version_ranges() {
        let labelled = |name: &str, version: &str, domain: &str| {
            format!(
                "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: DataSet\nmetadata: {{name: {name}, version: {version}, labels: {{domain: {domain}}}}}\nspec: {{store: s, table: {name}}}\n"
            )
        };
        let t = "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Transform\nmetadata: {name: t}\nspec:\n  runtime: sql\n  inputs: [{tags: {domain: x}, version: \">=1.0.0, <2.0.0\"}]\n  outputs: [{dataset: out}]\n".to_string();
        let u = "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Transform\nmetadata: {name: u}\nspec:\n  runtime: sql\n  inputs: [{tags: {domain: x}}]\n  outputs: [{dataset: out2}]\n".to_string();
        let m = model(&[
            labelled("a", "1.2.0", "x"),
            labelled("b", "2.0.0", "x"),
            labelled("c", "1.0.0", "y"),
            t,
            u,
        ]);
        let g = Graph::build(&m);
        assert_eq!(
            edges(&g),
            ["a->t", "t->out", "a->u", "b->u", "u->out2"],
            "t's range excludes b; u takes every dataset labelled domain=x"
        );
    }

    #[test]
    fn duplicate_producer_is_e406_with_both_locations() {
        let m = model(&[
            transform("w1", "sql", &["a"], &["x"]),
            transform("w2", "sql", &["b"], &["x"]),
        ]);
        let d = Graph::build(&m).diagnostics();
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].code, Code::DuplicateProducer);
        assert!(
            d[0].message.contains("\"w1\" and \"w2\""),
            "{}",
            d[0].message
        );
        let here = d[0].location.as_ref().expect("location");
        assert_eq!(here.file.as_ref(), "p.yaml");
        assert_eq!(here.span.line, 15, "w2's outputs entry");
        assert_eq!(d[0].related.len(), 1);
        assert_eq!(d[0].related[0].location.span.line, 7, "w1's outputs entry");
    }

    #[test]
    fn filters_destination_source_select_exclude() {
        let m = model(&[
            transform("t1", "sql", &["a"], &["b"]),
            transform("t2", "sql", &["b"], &["c"]),
            transform("t3", "sql", &["x"], &["y"]),
        ]);
        let g = Graph::build(&m);
        let dest = g
            .filter(&Filter {
                destination: Some("b".into()),
                ..Filter::default()
            })
            .expect("filter");
        assert_eq!(names(&dest), ["dataset/a", "dataset/b", "transform/t1"]);
        let src = g
            .filter(&Filter {
                source: Some("b".into()),
                ..Filter::default()
            })
            .expect("filter");
        assert_eq!(names(&src), ["dataset/b", "dataset/c", "transform/t2"]);
        assert_eq!(edges(&src), ["b->t2", "t2->c"]);
        let sel = g
            .filter(&Filter {
                select: Some(Selector::parse("+c").expect("selector")),
                exclude: Some(Selector::parse("kind:dataset").expect("selector")),
                ..Filter::default()
            })
            .expect("filter");
        assert_eq!(names(&sel), ["transform/t1", "transform/t2"]);
        assert!(sel.edges().is_empty());
        let err = g
            .filter(&Filter {
                destination: Some("cc".into()),
                ..Filter::default()
            })
            .expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "no dataset or transform named \"cc\" in the pipeline graph (did you mean \"c\"?)"
        );
    }

    #[test]
    fn destination_lists_nodes_by_name() {
        let m = model(&[transform("z", "sql", &["a"], &["b"])]);
        let g = Graph::build(&m)
            .filter(&Filter {
                destination: Some("b".into()),
                ..Filter::default()
            })
            .expect("filter");
        assert_eq!(names(&g), ["dataset/a", "dataset/b", "transform/z"]);
        let m = model(&[transform("m", "sql", &["a"], &["z"])]);
        let g = Graph::build(&m)
            .filter(&Filter {
                destination: Some("z".into()),
                ..Filter::default()
            })
            .expect("filter");
        assert_eq!(names(&g), ["dataset/a", "transform/m", "dataset/z"]);
    }

    #[test]
    fn column_lineage() {
        let ds = "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: DataSet\nmetadata: {name: out}\nspec:\n  store: s\n  table: out\n  schema:\n    - {name: id, type: bigint, from: src.id}\n    - {name: n, type: string}\n    - {name: bad, type: string, from: nodot}\n".to_string();
        let m = model(&[ds, transform("t", "sql", &["src"], &["out"])]);
        let g = Graph::build(&m);
        let c = g.column_edges();
        assert_eq!(c.len(), 1);
        assert_eq!(
            (
                c[0].from_dataset.as_str(),
                c[0].from_column.as_str(),
                c[0].to_dataset.as_str(),
                c[0].to_column.as_str()
            ),
            ("src", "id", "out", "id")
        );
        let dropped = g
            .filter(&Filter {
                select: Some(Selector::parse("kind:transform").expect("selector")),
                ..Filter::default()
            })
            .expect("filter");
        assert!(dropped.column_edges().is_empty());
    }
}
