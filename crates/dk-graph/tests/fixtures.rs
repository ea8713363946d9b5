//! The library on its fixture projects (tests/fixtures/*), loaded the way the CLI loads them.

use std::path::PathBuf;

use dk_diagnostics::Code;
use dk_graph::{check, Graph, GraphError, NodeKind, Selector};

fn load(name: &str) -> dk_manifest::ProjectModel {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(name);
    dk_manifest::loader::load(&p).expect("fixture loads")
}

#[test]
fn cycle_fixture_reports_e407_with_path_and_transform_locations() {
    let model = load("cycle");
    let diags = check(&model);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    assert_eq!(d.code, Code::GraphCycle);
    assert_eq!(
        d.message,
        "the pipeline graph has a cycle: a → t1 → b → t2 → a"
    );
    assert_eq!(
        d.location.as_ref().map(|l| l.to_string()).as_deref(),
        Some("transforms/t1/dk.yaml:9:16")
    );
    let related: Vec<String> = d.related.iter().map(|r| r.location.to_string()).collect();
    assert_eq!(
        related,
        ["transforms/t1/dk.yaml:4:9", "transforms/t2/dk.yaml:4:9"]
    );
    let g = Graph::build(&model);
    match g.order() {
        Err(GraphError::Cycle(c)) => assert_eq!(c[0].to_string(), "a → t1 → b → t2 → a"),
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn select_fixture_orders_selections() {
    let g = Graph::build(&load("select"));
    assert!(g.diagnostics().is_empty());
    let names = |sel: &str| -> Vec<String> {
        let set = Selector::parse(sel)
            .expect("selector")
            .select(&g)
            .expect("select");
        g.order_within(&set)
            .expect("acyclic")
            .into_iter()
            .map(|ix| g.node(ix).name.clone())
            .collect()
    };
    assert_eq!(
        names("kind:transform"),
        ["customers", "orders", "revenue", "export"]
    );
    assert_eq!(
        names("+revenue-export"),
        ["customers", "orders", "revenue", "export"]
    );
    assert_eq!(
        names("store:warehouse,kind:transform"),
        ["customers", "orders", "revenue", "export"]
    );
    assert_eq!(names("tag:team=sales"), ["orders", "revenue"]);
    let placeholder = g
        .find(NodeKind::DataSet, "revenue-export")
        .expect("placeholder");
    assert!(g.node(placeholder).is_placeholder());
    // The tag-selector input resolved with its SemVer range.
    let customers = g.find(NodeKind::Transform, "customers").expect("customers");
    let inputs: Vec<&str> = g
        .inputs(customers)
        .into_iter()
        .map(|ix| g.node(ix).name.as_str())
        .collect();
    assert_eq!(inputs, ["raw-customers"]);
}
