//! `dk lint` on the fixtures written by other projects, and on bad input.

mod common;

use std::fs;

use common::*;

/// (fixture dir, expected exit code, codes that must appear with their severity, codes that must not appear)
type Case = (
    &'static str,
    i32,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

const CASES: &[Case] = &[
    (
        "datakit/examples/reactive-pipeline",
        0,
        &[("E401", "warning")],
        &["E402"],
    ),
    (
        "datakit/tests/e2e/testdata/multi-transform",
        0,
        &[("W223", "warning"), ("E401", "warning")],
        &["E402"],
    ),
    (
        "datakit/tests/e2e/testdata/invalid-package",
        3,
        &[
            ("E001", "error"),
            ("E230", "error"),
            ("E231", "error"),
            ("E232", "error"),
            ("W209", "warning"),
        ],
        &[],
    ),
    (
        "datakit/tests/e2e/testdata/valid-pipeline",
        0,
        &[("W104", "warning"), ("W213", "warning")],
        &["E212"],
    ),
    (
        "datakit/examples/dbt-reporting",
        3,
        &[("E200", "error"), ("E201", "error")],
        &["E402"],
    ),
    (
        "datakit/examples/kafka-s3-pipeline",
        0,
        &[("E402", "warning")],
        &[],
    ),
    (
        "datakit/demos/k8s-report/transforms/k8s-collector",
        3,
        &[("E211", "error"), ("W209", "warning")],
        &["E402", "E401"],
    ),
    (
        "datakit/demos/k8s-report/transforms/s3-to-postgres",
        3,
        &[("W209", "warning"), ("E214", "error")],
        &["E402", "E401"],
    ),
    (
        "datakit/sdk/manifest/testdata/valid",
        0,
        &[],
        &["E001", "W107"],
    ),
    (
        "datakit/sdk/manifest/testdata/invalid",
        3,
        &[("E100", "error"), ("E001", "error")],
        &[],
    ),
    (
        "datakit/sdk/validate/testdata/valid",
        0,
        &[("W107", "warning"), ("I108", "info")],
        &[],
    ),
    (
        "datakit/sdk/validate/testdata/invalid",
        3,
        &[("E001", "error"), ("E231", "error"), ("E402", "warning")],
        &[],
    ),
];

#[test]
fn fixtures_give_their_expected_outcomes() {
    for (rel, exit, must, must_not) in CASES {
        let dir = fixture(rel);
        let (code, json, err) = run(
            &["lint", "-o", "json", dir.to_str().unwrap()],
            None,
            Some(&dir),
        );
        assert_eq!(code, *exit, "{rel}: exit code\n{json}\n{err}");
        let got = codes(&json);
        for (c, sev) in *must {
            assert!(
                got.iter().any(|(gc, gs)| gc == c && gs == sev),
                "{rel}: expected {c} ({sev}), got {got:?}"
            );
        }
        for c in *must_not {
            assert!(
                !got.iter().any(|(gc, _)| gc == c),
                "{rel}: did not expect {c}, got {got:?}"
            );
        }
        let name = rel.replace('/', "__");
        insta::assert_snapshot!(format!("{name}__json"), json);
        let (_, human, _) = run(&["lint", dir.to_str().unwrap()], None, Some(&dir));
        insta::assert_snapshot!(format!("{name}__human"), human);
    }
}

#[test]
fn malformed_yaml_reports_line_and_column() {
    let f = fixture("datakit/sdk/manifest/testdata/invalid/malformed.yaml");
    let (code, out, _) = run(&["lint", "-o", "short", f.to_str().unwrap()], None, None);
    assert_eq!(code, 3);
    assert!(
        out.contains("malformed.yaml:3:14: error[E100]: invalid YAML"),
        "{out}"
    );
}

#[test]
fn dangling_reference_is_an_error_inside_a_project() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("project.yaml"),
        "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Project\nmetadata: {name: p}\nspec: {}\n",
    )
    .unwrap();
    fs::copy(
        fixture("datakit/sdk/validate/testdata/invalid/missing-dataset-ref.yaml"),
        tmp.path().join("t.yaml"),
    )
    .unwrap();
    let (code, json, _) = run(
        &["lint", "-o", "json", tmp.path().to_str().unwrap()],
        None,
        None,
    );
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let d = v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["code"] == "E402"
                && d["message"]
                    .as_str()
                    .unwrap()
                    .contains("missing-dataset-ref")
        })
        .expect("E402 for the output");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["location"]["file"], "t.yaml");
    assert_eq!(d["location"]["line"], 12);
}

#[test]
fn suggestion_names_the_closest_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let doc = |kind: &str, name: &str, spec: &str| {
        format!("apiVersion: datakit.infoblox.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec: {spec}\n---\n")
    };
    let text = doc("Project", "p", "{}")
        + &doc("Connector", "duckdb", "{type: duckdb, capabilities: [source]}")
        + &doc("Store", "wh", "{connector: duckdb, connection: {path: x.duckdb}}")
        + &doc("DataSet", "raw-events", "{store: wh, table: raw_events}")
        + &doc("DataSet", "out", "{store: wh, table: out}")
        + &doc("Transform", "t", "{runtime: sync, inputs: [{dataset: raw-event}], outputs: [{dataset: out}], trigger: {policy: manual}}");
    fs::write(tmp.path().join("project.yaml"), text).unwrap();
    let (code, out, _) = run(
        &["lint", tmp.path().to_str().unwrap()],
        None,
        Some(tmp.path()),
    );
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("did you mean `raw-events`?"), "{out}");
}

#[test]
fn strict_turns_warnings_into_errors() {
    let dir = fixture("datakit/tests/e2e/testdata/valid-pipeline");
    let (code, _, _) = run(&["lint", dir.to_str().unwrap()], None, None);
    assert_eq!(code, 0);
    let (code, json, _) = run(
        &["lint", "--strict", "-o", "json", dir.to_str().unwrap()],
        None,
        None,
    );
    assert_eq!(code, 3);
    assert!(codes(&json).iter().all(|(_, s)| s != "warning"));
}

#[test]
fn unknown_field_suggests_and_duplicate_points_at_both() {
    let tmp = tempfile::tempdir().unwrap();
    let a = "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: DataSet\nmetadata: {name: users}\nspec:\n  store: wh\n  tabel: users\n  table: users\n";
    fs::write(tmp.path().join("a.yaml"), a).unwrap();
    fs::write(tmp.path().join("b.yaml"), "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: DataSet\nmetadata:\n  name: users\nspec: {store: wh, table: u2}\n").unwrap();
    let (code, json, _) = run(
        &["lint", "-o", "json", tmp.path().to_str().unwrap()],
        None,
        None,
    );
    assert_eq!(code, 3, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let diags = v["diagnostics"].as_array().unwrap();
    let unknown = diags.iter().find(|d| d["code"] == "W107").expect("W107");
    assert_eq!(unknown["location"]["line"], 6);
    assert_eq!(unknown["location"]["column"], 3);
    assert!(
        unknown["help"].as_str().unwrap().contains("`table`"),
        "{unknown}"
    );
    let dup = diags.iter().find(|d| d["code"] == "E050").expect("E050");
    assert_eq!(dup["location"]["file"], "b.yaml");
    assert_eq!(dup["related"][0]["location"]["file"], "a.yaml");
}

#[test]
fn bad_encoding_and_empty_files_are_diagnostics() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("latin1.yaml"),
        b"apiVersion: datakit.infoblox.dev/v1alpha1\nkind: DataSet\nname: caf\xe9\n",
    )
    .unwrap();
    fs::write(tmp.path().join("empty.yaml"), b"").unwrap();
    let (code, out, err) = run(
        &["lint", "-o", "short", tmp.path().to_str().unwrap()],
        None,
        None,
    );
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("latin1.yaml:3:10: error[E101]"), "{out}");
    assert!(out.contains("empty.yaml:1:1: warning[W102]"), "{out}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn wrong_types_are_located() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("t.yaml"),
        "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Transform\nmetadata:\n  name: t\n  version: 1.0\nspec:\n  runtime: sync\n  inputs: x\n  outputs: [{dataset: y}]\n  retries: many\n",
    )
    .unwrap();
    let (code, out, _) = run(
        &["lint", "-o", "short", tmp.path().to_str().unwrap()],
        None,
        None,
    );
    assert_eq!(code, 3);
    assert!(
        out.contains("t.yaml:5:12: error[E106]: `metadata.version` is a number, expected a string"),
        "{out}"
    );
    assert!(
        out.contains("t.yaml:8:11: error[E106]: `spec.inputs` is a string, expected a list"),
        "{out}"
    );
    assert!(out.contains("t.yaml:10:12: error[E106]"), "{out}");
}

#[test]
fn machine_formats_are_well_formed() {
    let dir = fixture("datakit/tests/e2e/testdata/invalid-package");
    let (code, sarif, _) = run(&["lint", "-o", "sarif", dir.to_str().unwrap()], None, None);
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    let rules = v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "dk.yaml"
        );
    }
    let (_, junit, _) = run(&["lint", "-o", "junit", dir.to_str().unwrap()], None, None);
    let doc = roxmltree::Document::parse(&junit).expect("junit is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("failures"), Some("4"));
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    assert_eq!(failures, 4);
    insta::assert_snapshot!("invalid_package_junit", junit);
}

#[test]
fn a_file_inside_a_project_is_linted_in_context() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, _, _) = run(&["init", tmp.path().to_str().unwrap()], None, None);
    assert_eq!(code, 0);
    let f = tmp.path().join("transforms/daily-revenue/dk.yaml");
    let (code, out, _) = run(&["lint", "-o", "short", f.to_str().unwrap()], None, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("0 errors, 0 warnings"), "{out}");
}

#[test]
fn a_closed_pipe_ends_dk_quietly() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..400 {
        text.push_str(&format!(
            "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: DataSet\nmetadata: {{name: d{i}}}\nspec: {{store: s, table: t{i}}}\n---\n"
        ));
    }
    fs::write(tmp.path().join("many.yaml"), text).unwrap();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("dk"))
        .args(["lint", "-o", "json", tmp.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The reader is gone now; dk must not panic while writing the rest.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
