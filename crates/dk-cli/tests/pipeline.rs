//! `dk pipeline show|order` on the DataKit fixtures and on dk-graph's own fixtures (a cycle, a
//! selector playground), in every output format.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;

const REACTIVE: &str = "datakit/examples/reactive-pipeline";
const MULTI: &str = "datakit/tests/e2e/testdata/multi-transform";

/// dk-graph's test fixtures (crates/dk-graph/tests/fixtures/NAME).
fn graph_fixture(name: &str) -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../dk-graph/tests/fixtures"
    ))
    .join(name);
    p.canonicalize().expect("dk-graph fixture")
}

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `dk pipeline show DIR [args…]`: (exit code, stdout, stderr).
fn show(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["pipeline", "show", path_str(dir)];
    all.extend_from_slice(args);
    run(&all, None, Some(dir))
}

/// `dk pipeline order -C DIR [args…]`.
fn order(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["pipeline", "order", "-C", path_str(dir)];
    all.extend_from_slice(args);
    run(&all, None, Some(dir))
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("valid json")
}

/// Node ids of a `show -o json` document.
fn json_ids(v: &serde_json::Value) -> Vec<String> {
    v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Transform names of `order` text output (first column).
fn order_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn reactive_pipeline_text_matches_the_go_tool_byte_for_byte() {
    let dir = fixture(REACTIVE);
    let (code, out, err) = show(&dir, &[]);
    assert_eq!(code, 0, "{err}");
    // datakit-go.md §3.3, "Derived output for examples/reactive-pipeline".
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
    assert_eq!(out, want);
    assert_eq!(err, "");
}

#[test]
fn every_format_on_the_datakit_fixtures() {
    for rel in [REACTIVE, MULTI] {
        let dir = fixture(rel);
        let name = rel.rsplit('/').next().unwrap_or(rel).replace('-', "_");
        for format in ["text", "mermaid", "dot", "json"] {
            let (code, out, err) = show(&dir, &["-o", format]);
            assert_eq!(code, 0, "{rel} {format}: {err}");
            assert_eq!(err, "", "{rel} {format}");
            insta::assert_snapshot!(format!("{name}__{format}"), out);
        }
    }
}

#[test]
fn multi_transform_has_seven_nodes_six_edges_and_its_run_order() {
    let dir = fixture(MULTI);
    let (_, out, _) = show(&dir, &["-o", "json"]);
    let v = json(&out);
    assert_eq!(v["nodes"].as_array().map(Vec::len), Some(7));
    assert_eq!(v["edges"].as_array().map(Vec::len), Some(6));
    let (code, out, err) = order(&dir, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        order_names(&out),
        ["extract", "transform-etl", "load-report"]
    );
    insta::assert_snapshot!("multi_transform__order_text", out);
    let (code, out, _) = order(&dir, &["-o", "json"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("multi_transform__order_json", out);
}

#[test]
fn destination_keeps_the_whole_chain() {
    let dir = fixture(REACTIVE);
    let (code, out, err) = show(&dir, &["--destination", "event-summary"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Pipeline Graph → event-summary\n"));
    for n in [
        "raw-events",
        "ingest",
        "raw-events-parquet",
        "enrich",
        "enriched-events",
        "aggregate",
        "event-summary",
    ] {
        assert!(out.contains(n), "{n} missing:\n{out}");
    }
    insta::assert_snapshot!("reactive_pipeline__destination_text", out);
    let (_, out, _) = show(&dir, &["--destination", "event-summary", "-o", "json"]);
    assert_eq!(
        json_ids(&json(&out)),
        [
            "aggregate",
            "enrich",
            "enriched-events",
            "event-summary",
            "ingest",
            "raw-events",
            "raw-events-parquet"
        ],
        "--destination lists nodes by name, like the Go tool"
    );
    // A middle destination keeps only the ancestors.
    let (_, out, _) = show(&dir, &["--destination", "raw-events-parquet", "-o", "json"]);
    assert_eq!(
        json_ids(&json(&out)),
        ["ingest", "raw-events", "raw-events-parquet"]
    );
    let (code, _, err) = show(&dir, &["--destination", "event-sumary"]);
    assert_eq!(code, 1);
    assert!(err.contains("did you mean \"event-summary\""), "{err}");
}

#[test]
fn source_keeps_the_descendants() {
    let dir = fixture(REACTIVE);
    let (code, out, err) = show(&dir, &["--source", "enriched-events"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Pipeline Dependency Graph
══════════════════════════════

  enriched-events
    [aggregate] runtime=dbt trigger=schedule (0 */6 * * *)
      event-summary
"
    );
}

#[test]
fn columns_in_text_and_json() {
    let dir = fixture(REACTIVE);
    let (code, out, _) = show(&dir, &["--columns"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("reactive_pipeline__columns_text", out);
    let (_, out, _) = show(&dir, &["--columns", "-o", "json"]);
    let v = json(&out);
    assert_eq!(
        v["columns"],
        serde_json::json!([
            {"from": "users.name", "to": "enriched-events.user_name", "via": "enrich"},
            {"from": "users.email", "to": "enriched-events.user_email", "via": "enrich"}
        ])
    );
    let dir = graph_fixture("select");
    let (_, out, _) = show(&dir, &["--columns"]);
    insta::assert_snapshot!("select__columns_text", out);
}

/// Parses mermaid back: every node line `  id[label]`, every edge line `  a --> b`, nothing else.
#[test]
fn mermaid_reparses_into_the_same_graph() {
    for rel in [REACTIVE, MULTI] {
        let dir = fixture(rel);
        let (_, mermaid, _) = show(&dir, &["-o", "mermaid"]);
        let (_, js, _) = show(&dir, &["-o", "json"]);
        let v = json(&js);
        let mut lines = mermaid.lines();
        assert_eq!(lines.next(), Some("graph TD"));
        let mut nodes: BTreeSet<String> = BTreeSet::new();
        let mut labels: BTreeSet<String> = BTreeSet::new();
        let mut edges: Vec<(String, String)> = Vec::new();
        for line in lines {
            let body = line.strip_prefix("  ").expect("two-space indent");
            if let Some((a, b)) = body.split_once(" --> ") {
                edges.push((a.to_string(), b.to_string()));
            } else {
                let (id, rest) = body.split_once('[').expect("node line `id[label]`");
                let label = rest.strip_suffix(']').expect("label closes");
                assert!(
                    id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{id}"
                );
                assert!(nodes.insert(id.to_string()), "duplicate node {id}");
                labels.insert(label.split("<br/>").next().unwrap_or("").to_string());
            }
        }
        let want: BTreeSet<String> = json_ids(&v).into_iter().collect();
        assert_eq!(labels, want, "{rel}: node labels are the node ids");
        let safe = |s: &str| s.replace('-', "_");
        let want_edges: Vec<(String, String)> = v["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| {
                (
                    safe(e["from"].as_str().unwrap_or("")),
                    safe(e["to"].as_str().unwrap_or("")),
                )
            })
            .collect();
        assert_eq!(edges, want_edges, "{rel}");
        for (a, b) in &edges {
            assert!(
                nodes.contains(a) && nodes.contains(b),
                "{rel}: edge {a} --> {b} to an undeclared node"
            );
        }
    }
}

/// Graphviz must accept the dot output. `dot` is required (scripts/test.sh and .ci/run install
/// graphviz): a missing `dot` fails this test instead of skipping it.
#[test]
fn dot_output_renders_with_graphviz() {
    let found = Command::new("dot").arg("-V").output();
    assert!(
        found.is_ok(),
        "graphviz `dot` is not installed: this test needs it (apt-get install -y graphviz, or run scripts/test.sh)"
    );
    for dir in [fixture(REACTIVE), fixture(MULTI), graph_fixture("select")] {
        let (_, dot, _) = show(&dir, &["-o", "dot"]);
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dot");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(dot.as_bytes())
            .expect("write dot");
        let out = child.wait_with_output().expect("dot runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "dot -Tsvg failed: {stderr}\n{dot}");
        assert!(stderr.is_empty(), "dot warned: {stderr}");
        let svg = String::from_utf8_lossy(&out.stdout);
        assert!(svg.contains("<svg"), "{svg}");
        let (_, js, _) = show(&dir, &["-o", "json"]);
        for id in json_ids(&json(&js)) {
            assert!(
                svg.contains(&format!("<title>{}</title>", id.replace('-', "&#45;"))),
                "{id} missing in svg"
            );
        }
    }
}

#[test]
fn cycle_fails_with_its_path() {
    let dir = graph_fixture("cycle");
    let (code, out, err) = order(&dir, &[]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert_eq!(out, "", "no order is printed for a cyclic graph");
    assert!(err.contains("E407"), "{err}");
    assert!(
        err.contains("the pipeline graph has a cycle: a → t1 → b → t2 → a"),
        "{err}"
    );
    assert!(err.contains("transforms/t1/dk.yaml:9:16"), "{err}");
    assert!(err.contains("transforms/t1/dk.yaml:4:9"), "{err}");
    assert!(err.contains("transforms/t2/dk.yaml:4:9"), "{err}");
    // show still draws the graph (every node, the cycle once) and fails the same way.
    let (code, out, err) = show(&dir, &[]);
    assert_eq!(code, 3);
    assert!(err.contains("a → t1 → b → t2 → a"), "{err}");
    insta::assert_snapshot!("cycle__text", out);
    let (_, out, _) = show(&dir, &["-o", "json"]);
    assert_eq!(json(&out)["nodes"].as_array().map(Vec::len), Some(6));
}

#[test]
fn two_producers_fail_with_e406() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = |name: &str, input: &str| {
        format!(
            "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Transform\nmetadata:\n  name: {name}\nspec:\n  runtime: sql\n  inputs:\n    - dataset: {input}\n  outputs:\n    - dataset: shared\n"
        )
    };
    std::fs::write(tmp.path().join("w1.yaml"), t("w1", "a")).expect("write");
    std::fs::write(tmp.path().join("w2.yaml"), t("w2", "b")).expect("write");
    let (code, out, err) = order(tmp.path(), &[]);
    assert_eq!(code, 3, "{out}");
    assert!(err.contains("E406"), "{err}");
    assert!(
        err.contains("DataSet \"shared\" is written by two Transforms: \"w1\" and \"w2\""),
        "{err}"
    );
    assert!(err.contains("w2.yaml:10:16"), "{err}");
    assert!(err.contains("w1.yaml:10:16"), "{err}");
}

#[test]
fn selectors_on_the_selector_fixture() {
    let dir = graph_fixture("select");
    let (code, out, err) = show(&dir, &["-o", "json"]);
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!("select__json", out);
    let (_, out, _) = show(&dir, &[]);
    insta::assert_snapshot!("select__text", out);

    let ids = |args: &[&str]| -> Vec<String> {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let (code, out, err) = show(&dir, &a);
        assert_eq!(code, 0, "{args:?}: {err}");
        json_ids(&json(&out))
    };
    // A name matches the dataset and the transform.
    assert_eq!(ids(&["--select", "orders"]), ["orders", "orders"]);
    assert_eq!(
        ids(&["--select", "transform:orders+1"]),
        ["orders", "orders"]
    );
    assert_eq!(
        ids(&["--select", "+revenue", "--exclude", "kind:transform"]),
        [
            "customers",
            "orders",
            "raw-customers",
            "raw-orders",
            "revenue"
        ],
        "the tag selector input takes raw-customers 1.4.0, not raw-customers-next 2.0.0"
    );
    assert_eq!(
        ids(&["--select", "store:lake"]),
        [
            "raw-customers",
            "raw-customers-next",
            "raw-orders",
            "customers",
            "orders"
        ]
    );
    assert_eq!(
        ids(&["--select", "tag:domain=crm,kind:dataset"]),
        ["customers", "raw-customers", "raw-customers-next"]
    );
    assert_eq!(
        ids(&["--select", "runtime:dbt", "--select", "runtime:cq"]),
        ["export", "revenue"]
    );
    assert_eq!(
        ids(&["--select", "revenue+"]),
        ["revenue", "revenue-export", "export", "revenue"]
    );

    let names = |args: &[&str]| -> Vec<String> {
        let (code, out, err) = order(&dir, args);
        assert_eq!(code, 0, "{args:?}: {err}");
        order_names(&out)
    };
    assert_eq!(names(&[]), ["customers", "orders", "revenue", "export"]);
    assert_eq!(names(&["transform:revenue+"]), ["revenue", "export"]);
    assert_eq!(
        names(&["+revenue-export", "--exclude", "tag:team=crm"]),
        ["orders", "revenue", "export"]
    );
    assert_eq!(names(&["export", "customers"]), ["customers", "export"]);
    assert_eq!(
        names(&["2+transform:revenue"]),
        ["customers", "orders", "revenue"]
    );
    assert_eq!(names(&["runtime:python"]), ["customers"]);

    // Errors: typed, with a clear message, exit 1.
    let (code, _, err) = order(&dir, &["revnue"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "selector \"revnue\" matches no dataset or transform (did you mean \"revenue\"?)"
        ),
        "{err}"
    );
    let (code, _, err) = show(&dir, &["--select", "tag:"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid selector \"tag:\" at column 5: `tag:` needs a value"),
        "{err}"
    );
    let (code, _, err) = show(&dir, &["--select", "orders,,revenue"]);
    assert_eq!(code, 1);
    assert!(err.contains("empty term"), "{err}");
}

#[test]
fn empty_project_prints_the_go_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = show(tmp.path(), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "No transforms or datasets found.\n");
    let (code, out, _) = show(tmp.path(), &["-o", "json"]);
    assert_eq!(code, 0);
    assert_eq!(out, "{\n  \"nodes\": [],\n  \"edges\": []\n}\n");
    let (code, out, err) = order(tmp.path(), &[]);
    assert_eq!(code, 0);
    assert_eq!(out, "");
    assert_eq!(err, "No transforms found.\n");
}
