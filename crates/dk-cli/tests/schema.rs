//! `dk schema export` output validates the valid fixtures, and the diagnostics reference is current.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use common::*;

fn schemas(dir: &Path, strict: bool) -> HashMap<String, jsonschema::Validator> {
    let mut args = vec!["schema", "export", "--out", dir.to_str().unwrap()];
    if strict {
        args.push("--strict");
    }
    let (code, _, err) = run(&args, None, None);
    assert_eq!(code, 0, "{err}");
    let mut out = HashMap::new();
    for kind in [
        "Project",
        "Connector",
        "Store",
        "DataSet",
        "DataSetGroup",
        "Transform",
        "Environment",
        "Policy",
    ] {
        let p = dir.join(format!("{}.schema.json", kind.to_ascii_lowercase()));
        let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        out.insert(
            kind.to_string(),
            jsonschema::validator_for(&v).expect("schema compiles"),
        );
    }
    out
}

/// Every document with the dk apiVersion in the YAML files under `dir` (file path, value).
fn documents(dir: &Path) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                let text = fs::read_to_string(&p).unwrap();
                for doc in dk_manifest::yaml::parse(&text).unwrap_or_default() {
                    if doc.value["apiVersion"] == "datakit.infoblox.dev/v1alpha1" {
                        out.push((p.display().to_string(), doc.value));
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Fixture files dk accepts without errors (per shared/fixtures/README.md).
const VALID: &[&str] = &[
    "datakit/examples/reactive-pipeline",
    "datakit/tests/e2e/testdata/multi-transform",
    "datakit/tests/e2e/testdata/valid-pipeline",
    "datakit/examples/kafka-s3-pipeline",
    "datakit/examples/dbt-reporting/dk.yaml",
    "datakit/examples/dbt-reporting/dataset",
    "datakit/sdk/manifest/testdata/valid",
    "datakit/sdk/validate/testdata/valid",
    "datakit/demos/k8s-report/transforms/k8s-collector/dataset",
];

#[test]
fn exported_schemas_accept_every_valid_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let open = schemas(tmp.path(), false);
    let mut checked = 0;
    for rel in VALID {
        let path = fixture(rel);
        let docs = if path.is_file() {
            let text = fs::read_to_string(&path).unwrap();
            dk_manifest::yaml::parse(&text)
                .unwrap()
                .into_iter()
                .map(|d| (path.display().to_string(), d.value))
                .collect()
        } else {
            documents(&path)
        };
        for (file, v) in docs {
            let kind = v["kind"].as_str().unwrap_or_default().to_string();
            let Some(validator) = open.get(&kind) else {
                continue;
            };
            let errors: Vec<String> = validator
                .iter_errors(&v)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{file}: {errors:?}");
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} documents checked");
}

#[test]
fn strict_schemas_reject_unknown_fields_and_accept_the_quickstart() {
    let tmp = tempfile::tempdir().unwrap();
    let strict = schemas(&tmp.path().join("s"), true);
    let f = fixture("datakit/sdk/validate/testdata/valid/transform-basic.yaml");
    let v = dk_manifest::yaml::parse(&fs::read_to_string(f).unwrap())
        .unwrap()
        .remove(0)
        .value;
    assert!(
        !strict["Transform"].is_valid(&v),
        "legacy spec.schedule must fail the strict schema"
    );
    let p = tmp.path().join("qs");
    let (code, _, _) = run(&["init", p.to_str().unwrap()], None, None);
    assert_eq!(code, 0);
    for (file, v) in documents(&p) {
        let kind = v["kind"].as_str().unwrap().to_string();
        let errors: Vec<String> = strict[&kind]
            .iter_errors(&v)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
}

#[test]
fn diagnostics_reference_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/diagnostics.md");
    let (code, generated, _) = run(&["diagnostics", "--markdown"], None, None);
    assert_eq!(code, 0);
    let on_disk = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/diagnostics.md is stale: regenerate it with `cargo run -q -p dk-cli -- diagnostics --markdown > docs/diagnostics.md`"
    );
}

#[test]
fn explain_one_code() {
    let (code, out, _) = run(&["diagnostics", "E230"], None, None);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("E230 (error): a Transform needs at least one input"),
        "{out}"
    );
    let (code, _, err) = run(&["diagnostics", "E999"], None, None);
    assert_eq!(code, 1);
    assert!(err.contains("no diagnostic code E999"));
}
