//! Renderings of `dk pipeline show`: text (tree, or a boxed chain with a destination), mermaid,
//! dot and json. For the graphs the DataKit Go tool can draw they are byte-identical to its
//! output (reference: datakit-go.md §3.3); where the Go tool silently dropped nodes (transforms
//! without inputs, cycles) these renderers still show every node.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::str::FromStr;

use serde::Serialize;

use crate::graph::{ColumnOrigin, Graph, Node, NodeIx, NodeKind};

/// What the text renderer prints for a graph without nodes.
pub const EMPTY: &str = "No transforms or datasets found.";

const RULE: &str = "══════════════════════════════";

/// Output format of `dk pipeline show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Mermaid,
    Dot,
    Json,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Format::Text),
            "mermaid" => Ok(Format::Mermaid),
            "dot" => Ok(Format::Dot),
            "json" => Ok(Format::Json),
            other => Err(format!(
                "unsupported graph output format: {other} (use text, mermaid, json, dot)"
            )),
        }
    }
}

/// Rendering options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// The `--destination` the graph was filtered to: the text renderer draws the boxed chain.
    pub destination: Option<&'a str>,
    /// Add column lineage (text and json): declared `from:` edges and those added with
    /// [`Graph::add_column_edges`] (derived from SQL).
    pub columns: bool,
}

/// Renders `g` in `format`.
pub fn render(g: &Graph, format: Format, opts: Options<'_>) -> String {
    match format {
        Format::Text => text(g, opts),
        Format::Mermaid => mermaid(g),
        Format::Dot => dot(g),
        Format::Json => json(g, opts.columns),
    }
}

fn sorted_children(g: &Graph, ix: NodeIx) -> Vec<NodeIx> {
    let mut c: Vec<NodeIx> = g.successors(ix).collect();
    c.sort_by(|a, b| {
        let (x, y) = (g.node(*a), g.node(*b));
        (&x.name, x.kind).cmp(&(&y.name, y.kind))
    });
    c
}

/// The text rendering: a tree from every root dataset, or with a destination the chain view.
pub fn text(g: &Graph, opts: Options<'_>) -> String {
    let mut out = String::new();
    if g.is_empty() {
        out.push_str(EMPTY);
        out.push('\n');
        return out;
    }
    match opts.destination {
        Some(dest) => {
            let _ = writeln!(out, "Pipeline Graph → {dest}");
            let _ = writeln!(out, "{RULE}\n");
            chain(g, &mut out);
        }
        None => {
            let _ = writeln!(out, "Pipeline Dependency Graph");
            let _ = writeln!(out, "{RULE}\n");
            tree(g, &mut out);
        }
    }
    if opts.columns {
        column_section(g, &mut out);
    }
    out
}

fn has_incoming(g: &Graph, ix: NodeIx) -> bool {
    g.predecessors(ix).next().is_some()
}

fn tree(g: &Graph, out: &mut String) {
    let by_name = |v: &mut Vec<NodeIx>| v.sort_by(|a, b| g.node(*a).name.cmp(&g.node(*b).name));
    let mut dataset_roots: Vec<NodeIx> = g
        .iter()
        .filter(|(ix, n)| n.kind == NodeKind::DataSet && !has_incoming(g, *ix))
        .map(|(ix, _)| ix)
        .collect();
    by_name(&mut dataset_roots);
    let mut transform_roots: Vec<NodeIx> = g
        .iter()
        .filter(|(ix, n)| n.kind == NodeKind::Transform && !has_incoming(g, *ix))
        .map(|(ix, _)| ix)
        .collect();
    by_name(&mut transform_roots);
    if dataset_roots.is_empty() && transform_roots.is_empty() {
        // Every node has an incoming edge (a pure cycle): list the nodes, as the Go tool does.
        for n in g.nodes() {
            let _ = writeln!(out, "  {} ({})", n.name, n.kind);
        }
        return;
    }
    let mut visited = vec![false; g.len()];
    for root in dataset_roots.into_iter().chain(transform_roots) {
        walk(g, root, &mut visited, out);
    }
    // Nodes only reachable through a cycle.
    for ix in 0..g.len() {
        walk(g, NodeIx(ix), &mut visited, out);
    }
}

/// Depth-first from `root`, each node once (iteratively: deep chains must not overflow).
fn walk(g: &Graph, root: NodeIx, visited: &mut [bool], out: &mut String) {
    let mut stack = vec![(root, 0usize)];
    while let Some((ix, depth)) = stack.pop() {
        if visited[ix.0] {
            continue;
        }
        visited[ix.0] = true;
        let node = g.node(ix);
        let indent = "  ".repeat(depth);
        match node.kind {
            NodeKind::Transform => {
                let _ = writeln!(
                    out,
                    "{indent}  [{}] runtime={} trigger={}",
                    node.name,
                    node.runtime_short(),
                    node.trigger_display()
                );
            }
            NodeKind::DataSet => {
                let _ = writeln!(out, "{indent}  {}", node.name);
            }
        }
        for child in sorted_children(g, ix).into_iter().rev() {
            if !visited[child.0] {
                stack.push((child, depth + 1));
            }
        }
    }
}

/// The `--destination` view: breadth-first from the roots, transforms drawn as boxes.
fn chain(g: &Graph, out: &mut String) {
    let mut visited = vec![false; g.len()];
    let mut first = true;
    let mut queue: std::collections::VecDeque<NodeIx> = g
        .iter()
        .filter(|(ix, _)| !has_incoming(g, *ix))
        .map(|(ix, _)| ix)
        .collect();
    loop {
        while let Some(ix) = queue.pop_front() {
            if visited[ix.0] {
                continue;
            }
            visited[ix.0] = true;
            if !first {
                out.push_str("    │\n    ▼\n");
            }
            first = false;
            let node = g.node(ix);
            match node.kind {
                NodeKind::Transform => {
                    let bar = "─".repeat(20);
                    let _ = writeln!(out, "  ┌{bar}┐");
                    let _ = writeln!(
                        out,
                        "  │ {:<18} │  trigger: {}",
                        node.name,
                        node.trigger_display()
                    );
                    let _ = writeln!(out, "  │ runtime: {:<9} │", node.runtime_short());
                    let _ = writeln!(out, "  └{bar}┘");
                }
                NodeKind::DataSet => {
                    let _ = writeln!(out, "  {}", node.name);
                }
            }
            for child in sorted_children(g, ix) {
                if !visited[child.0] {
                    queue.push_back(child);
                }
            }
        }
        // Nodes only reachable through a cycle.
        match (0..g.len()).find(|&i| !visited[i]) {
            Some(i) => queue.push_back(NodeIx(i)),
            None => break,
        }
    }
}

/// Producers of a dataset by name ("" when none), for the column lineage.
fn producers(g: &Graph, dataset: &str) -> Vec<String> {
    let Some(ix) = g.find(NodeKind::DataSet, dataset) else {
        return Vec::new();
    };
    let mut v: Vec<String> = g.predecessors(ix).map(|p| g.node(p).name.clone()).collect();
    v.sort();
    v
}

fn column_section(g: &Graph, out: &mut String) {
    let _ = writeln!(out, "\nColumn Lineage");
    let _ = writeln!(out, "{RULE}\n");
    let cols = g.column_edges();
    if cols.is_empty() {
        out.push_str(
            "  No column lineage (declare DataSet columns with `from: dataset.column`, or give the inputs of sql transforms a schema).\n",
        );
        return;
    }
    let mut i = 0;
    while i < cols.len() {
        let ds = &cols[i].to_dataset;
        let group: Vec<_> = cols[i..]
            .iter()
            .take_while(|c| &c.to_dataset == ds)
            .collect();
        let via = producers(g, ds);
        if via.is_empty() {
            let _ = writeln!(out, "  {ds}");
        } else {
            let _ = writeln!(out, "  {ds} (via {})", via.join(", "));
        }
        let width = group
            .iter()
            .map(|c| c.to_column.chars().count())
            .max()
            .unwrap_or(0);
        for c in &group {
            let mark = match c.origin {
                ColumnOrigin::Declared => "",
                ColumnOrigin::Sql { .. } => "  (sql)",
            };
            let _ = writeln!(
                out,
                "    {:<width$} ← {}.{}{mark}",
                c.to_column, c.from_dataset, c.from_column
            );
        }
        i += group.len();
    }
}

/// Names that appear as both a dataset and a transform (their renderer ids need a prefix).
fn shared_names(g: &Graph) -> HashSet<&str> {
    g.nodes()
        .iter()
        .filter(|n| n.kind == NodeKind::Transform && g.find(NodeKind::DataSet, &n.name).is_some())
        .map(|n| n.name.as_str())
        .collect()
}

fn mermaid_id(n: &Node, shared: &HashSet<&str>) -> String {
    let safe: String = n
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if n.kind == NodeKind::Transform && shared.contains(n.name.as_str()) {
        format!("t__{safe}")
    } else {
        safe
    }
}

fn mermaid_label(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ' ' | '<' | '>'))
    {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "#quot;"))
    }
}

/// Mermaid: `graph TD`, one line per node, one per edge.
pub fn mermaid(g: &Graph) -> String {
    let shared = shared_names(g);
    let mut out = String::from("graph TD\n");
    for n in g.nodes() {
        let sid = mermaid_id(n, &shared);
        match n.kind {
            NodeKind::Transform => {
                let label = format!(
                    "{}<br/>{} / {}",
                    n.name,
                    n.runtime_short(),
                    n.policy_or_manual()
                );
                let _ = writeln!(out, "  {sid}[{}]", mermaid_label(&label));
            }
            NodeKind::DataSet => {
                let _ = writeln!(out, "  {sid}[{}]", mermaid_label(&n.name));
            }
        }
    }
    for e in g.edges() {
        let _ = writeln!(
            out,
            "  {} --> {}",
            mermaid_id(g.node(e.from), &shared),
            mermaid_id(g.node(e.to), &shared)
        );
    }
    out
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn dot_quote(s: &str) -> String {
    format!("\"{}\"", dot_escape(s))
}

fn dot_id(n: &Node, shared: &HashSet<&str>) -> String {
    if n.kind == NodeKind::Transform && shared.contains(n.name.as_str()) {
        dot_quote(&format!("transform:{}", n.name))
    } else {
        dot_quote(&n.name)
    }
}

/// Graphviz: transforms as filled boxes, datasets as ellipses.
pub fn dot(g: &Graph) -> String {
    let shared = shared_names(g);
    let mut out = String::from("digraph pipeline {\n  rankdir=TD;\n  node [shape=box];\n\n");
    for n in g.nodes() {
        let id = dot_id(n, &shared);
        match n.kind {
            NodeKind::Transform => {
                let label = format!(
                    "{}\\n{} / {}",
                    dot_escape(&n.name),
                    n.runtime_short(),
                    n.policy_or_manual()
                );
                let _ = writeln!(
                    out,
                    "  {id} [label=\"{label}\" shape=box style=filled fillcolor=lightblue];"
                );
            }
            NodeKind::DataSet => {
                let _ = writeln!(out, "  {id} [label={} shape=ellipse];", dot_quote(&n.name));
            }
        }
    }
    out.push('\n');
    for e in g.edges() {
        let _ = writeln!(
            out,
            "  {} -> {};",
            dot_id(g.node(e.from), &shared),
            dot_id(g.node(e.to), &shared)
        );
    }
    out.push_str("}\n");
    out
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonNode<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    type_: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_policy: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_ref: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonEdge<'a> {
    from: &'a str,
    to: &'a str,
}

#[derive(Serialize)]
struct JsonColumn {
    from: String,
    to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<String>,
    /// `sql` for lineage derived from a transform's query (absent for declared `from:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<&'static str>,
}

#[derive(Serialize)]
struct JsonGraph<'a> {
    nodes: Vec<JsonNode<'a>>,
    edges: Vec<JsonEdge<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    columns: Option<Vec<JsonColumn>>,
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// JSON: `{"nodes": [...], "edges": [...]}` (+ `"columns"` with column lineage), indented by
/// two spaces, newline-terminated. A dataset without `filePath` is referenced but not defined.
pub fn json(g: &Graph, columns: bool) -> String {
    let doc = JsonGraph {
        nodes: g
            .nodes()
            .iter()
            .map(|n| JsonNode {
                id: &n.name,
                type_: n.kind.as_str(),
                runtime: non_empty(n.runtime.as_deref()),
                trigger_policy: non_empty(n.trigger_policy.as_deref()),
                trigger_detail: non_empty(n.trigger_detail.as_deref()),
                file_path: n.file_path.as_deref(),
                schema_ref: non_empty(n.schema_ref.as_deref()),
            })
            .collect(),
        edges: g
            .edges()
            .iter()
            .map(|e| JsonEdge {
                from: &g.node(e.from).name,
                to: &g.node(e.to).name,
            })
            .collect(),
        columns: columns.then(|| {
            g.column_edges()
                .iter()
                .map(|c| JsonColumn {
                    from: format!("{}.{}", c.from_dataset, c.from_column),
                    to: format!("{}.{}", c.to_dataset, c.to_column),
                    via: match &c.origin {
                        ColumnOrigin::Sql { transform } => Some(transform.clone()),
                        ColumnOrigin::Declared => producers(g, &c.to_dataset).into_iter().next(),
                    },
                    origin: match c.origin {
                        ColumnOrigin::Sql { .. } => Some("sql"),
                        ColumnOrigin::Declared => None,
                    },
                })
                .collect()
        }),
    };
    let mut s =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Filter;
    use crate::testutil::{model, transform};

    fn fixture(rel: &str) -> Graph {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/datakit")
            .join(rel);
        let m = dk_manifest::loader::load(&p).expect("fixture loads");
        Graph::build(&m)
    }

    #[test]
    fn reactive_pipeline_text_is_the_go_rendering() {
        let g = fixture("examples/reactive-pipeline");
        let want = "Pipeline Dependency Graph
══════════════════════════════

  raw-events
    [ingest] runtime=cq trigger=on-change
      raw-events-parquet
        [enrich] runtime=python trigger=on-change
          enriched-events
            [aggregate] runtime=dbt trigger=schedule (0 */6 * * *)
              event-summary
";
        assert_eq!(text(&g, Options::default()), want);
    }

    #[test]
    fn destination_chain_view() {
        let g = fixture("tests/e2e/testdata/multi-transform");
        let f = Filter {
            destination: Some("final-report".into()),
            ..Filter::default()
        };
        let sub = g.filter(&f).expect("filter");
        let got = text(
            &sub,
            Options {
                destination: Some("final-report"),
                columns: false,
            },
        );
        let want = "Pipeline Graph → final-report
══════════════════════════════

  raw-events
    │
    ▼
  ┌────────────────────┐
  │ extract            │  trigger: schedule (0 */6 * * *)
  │ runtime: go        │
  └────────────────────┘
    │
    ▼
  processed-events
    │
    ▼
  ┌────────────────────┐
  │ transform-etl      │  trigger: on-change
  │ runtime: go        │
  └────────────────────┘
    │
    ▼
  final-report
";
        assert_eq!(got, want);
    }

    #[test]
    fn diamonds_once_and_nothing_dropped() {
        let m = model(&[
            transform("split", "sql", &["src"], &["a", "b"]),
            transform("join", "sql", &["a", "b"], &["out"]),
            transform("gen", "python", &[], &["seed"]),
        ]);
        let got = text(&Graph::build(&m), Options::default());
        let want = "Pipeline Dependency Graph
══════════════════════════════

  src
    [split] runtime=sql trigger=manual
      a
        [join] runtime=sql trigger=manual
          out
      b
  [gen] runtime=python trigger=manual
    seed
";
        assert_eq!(got, want);
    }

    #[test]
    fn pure_cycle_lists_nodes() {
        let m = model(&[
            transform("t1", "sql", &["a"], &["b"]),
            transform("t2", "sql", &["b"], &["a"]),
        ]);
        let got = text(&Graph::build(&m), Options::default());
        assert!(
            got.ends_with("\n  a (dataset)\n  b (dataset)\n  t1 (transform)\n  t2 (transform)\n"),
            "{got}"
        );
    }

    #[test]
    fn empty_graph() {
        let g = Graph::default();
        assert_eq!(
            text(&g, Options::default()),
            "No transforms or datasets found.\n"
        );
        assert_eq!(mermaid(&g), "graph TD\n");
        assert_eq!(json(&g, false), "{\n  \"nodes\": [],\n  \"edges\": []\n}\n");
    }

    #[test]
    fn shared_names_get_distinct_ids() {
        let m = model(&[transform("orders", "sql", &["raw"], &["orders"])]);
        let g = Graph::build(&m);
        assert_eq!(
            mermaid(&g),
            "graph TD\n  orders[orders]\n  raw[raw]\n  t__orders[orders<br/>sql / manual]\n  raw --> t__orders\n  t__orders --> orders\n"
        );
        let d = dot(&g);
        assert!(d.contains("  \"transform:orders\" [label=\"orders\\nsql / manual\" shape=box style=filled fillcolor=lightblue];\n"), "{d}");
        assert!(d.contains("  \"transform:orders\" -> \"orders\";\n"), "{d}");
    }

    #[test]
    fn columns_in_text_and_json() {
        let g = fixture("examples/reactive-pipeline");
        let t = text(
            &g,
            Options {
                destination: None,
                columns: true,
            },
        );
        assert!(
            t.ends_with("\nColumn Lineage\n══════════════════════════════\n\n  enriched-events (via enrich)\n    user_name  ← users.name\n    user_email ← users.email\n"),
            "{t}"
        );
        let j: serde_json::Value = serde_json::from_str(&json(&g, true)).expect("json");
        assert_eq!(
            j["columns"][0],
            serde_json::json!({"from": "users.name", "to": "enriched-events.user_name", "via": "enrich"})
        );
        let j: serde_json::Value = serde_json::from_str(&json(&g, false)).expect("json");
        assert!(j.get("columns").is_none());
    }

    #[test]
    fn sql_derived_columns_are_marked() {
        use crate::graph::{ColumnEdge, ColumnOrigin};
        let mut g = fixture("examples/reactive-pipeline");
        let edge = |from: &str, to: &str| ColumnEdge {
            from_dataset: "raw-events".into(),
            from_column: from.into(),
            to_dataset: "raw-events-parquet".into(),
            to_column: to.into(),
            location: None,
            origin: ColumnOrigin::Sql {
                transform: "ingest".into(),
            },
        };
        g.add_column_edges([
            edge("id", "id"),
            edge("id", "id"),
            ColumnEdge {
                to_dataset: "nowhere".into(),
                ..edge("x", "x")
            },
        ]);
        assert_eq!(g.column_edges().len(), 3, "{:?}", g.column_edges());
        let t = text(
            &g,
            Options {
                destination: None,
                columns: true,
            },
        );
        assert!(
            t.contains("  raw-events-parquet (via ingest)\n    id ← raw-events.id  (sql)\n"),
            "{t}"
        );
        let j: serde_json::Value = serde_json::from_str(&json(&g, true)).expect("json");
        assert_eq!(
            j["columns"][2],
            serde_json::json!({"from": "raw-events.id", "to": "raw-events-parquet.id", "via": "ingest", "origin": "sql"})
        );
    }
}
