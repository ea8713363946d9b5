//! `dk-graph` owns the pipeline graph of a project.
//!
//! * [`Graph`] — nodes (DataSets and Transforms, in separate namespaces: a node id is
//!   `(kind, name)`) and edges derived from every Transform's `inputs` (dataset → transform) and
//!   `outputs` (transform → dataset). Tag selectors in references (labels + SemVer range) are
//!   resolved through [`dk_manifest::refs`]; datasets referenced but not defined become
//!   placeholder nodes. DataSet columns with `from: dataset.column` give column lineage.
//! * Ordering — [`Graph::order`]: a topological order of the transforms (a transform runs after the
//!   transforms that produce its inputs), Kahn's algorithm with alphabetical tie-breaks. A cycle is
//!   an error ([`GraphError::Cycle`]), never a silent omission.
//! * [`check`] — the graph diagnostics `dk lint` adds to the manifest validator: E406 (two
//!   transforms write the same dataset) and E407 (cycle, with its path and the transforms'
//!   locations).
//! * [`Selector`] — the dbt-like selection grammar shared by `dk pipeline`, `dk run`, `dk test` and
//!   `dk plan --target` (see `docs/selectors.md`), and [`Filter`] (`--destination`, `--source`,
//!   `--select`, `--exclude`).
//! * [`sqllineage`] — column lineage derived from a `sql` transform's query (sqlparser), added to
//!   the graph with [`Graph::add_column_edges`] next to the declared `from:` lineage.
//! * [`render`] — the renderings of `dk pipeline show` (text, mermaid, dot, json), byte-compatible
//!   with the DataKit Go tool.
//!
//! Like every library of `dk`, it never prints: it returns values, diagnostics and typed errors.

mod graph;
mod order;
pub mod render;
mod selector;
pub mod sqllineage;

pub use graph::{
    runtime_short, ColumnEdge, ColumnOrigin, Edge, Filter, Graph, GraphError, Node, NodeId, NodeIx,
    NodeKind, NodeSet,
};
pub use order::Cycle;
pub use render::Format;
pub use selector::{Atom, Depth, Method, Selector, SelectorError};

use dk_diagnostics::Diagnostic;
use dk_manifest::ProjectModel;

/// The graph findings of a project: E406 (a dataset with two producers) and E407 (cycles), in a
/// stable order. `dk lint` adds these to the manifest validator's findings.
pub fn check(model: &ProjectModel) -> Vec<Diagnostic> {
    Graph::build(model).diagnostics()
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Tiny manifest builders for the unit tests.

    use dk_manifest::ProjectModel;

    pub fn dataset(name: &str) -> String {
        format!(
            "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: DataSet\nmetadata: {{name: {name}}}\nspec: {{store: s, table: {name}}}\n"
        )
    }

    pub fn transform(name: &str, runtime: &str, inputs: &[&str], outputs: &[&str]) -> String {
        let refs = |v: &[&str]| {
            v.iter()
                .map(|d| format!("{{dataset: {d}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Transform\nmetadata: {{name: {name}}}\nspec:\n  runtime: {runtime}\n  inputs: [{}]\n  outputs: [{}]\n",
            refs(inputs),
            refs(outputs)
        )
    }

    /// A model from documents (joined into one multi-document file `p.yaml`).
    pub fn model(docs: &[String]) -> ProjectModel {
        dk_manifest::loader::load_str("p.yaml", &docs.join("---\n"))
    }
}
