//! The JSON views policy conditions see (documented in docs/policies.md): `object` (one manifest,
//! its spec as written plus derived fields) and `env` (the environment).

use std::collections::{BTreeMap, BTreeSet};

use dk_manifest::loader::{Document, ProjectModel};
use dk_manifest::model::{DataSet, Environment, Manifest};
use indexmap::IndexMap;
use serde_json::{json, Value};

/// public 0, internal 1, confidential 2, restricted 3; anything else (unclassified) -1.
pub fn classification_rank(c: &str) -> i64 {
    match c {
        "public" => 0,
        "internal" => 1,
        "confidential" => 2,
        "restricted" => 3,
        _ => -1,
    }
}

/// `1.4.2`, `=1.4.2`, `v1.4.2`: one exact SemVer version, not a range.
pub fn is_exact_version(s: &str) -> bool {
    let t = s.trim();
    let t = t.strip_prefix('=').unwrap_or(t).trim();
    let t = t.strip_prefix('v').unwrap_or(t);
    semver::Version::parse(t).is_ok()
}

/// An image pinned to a digest (`…@sha256:…`) or to an exact version tag (`repo:1.4.2`).
pub fn is_pinned_image(s: &str) -> bool {
    if let Some((_, digest)) = s.split_once('@') {
        return digest.starts_with("sha256:") && digest.len() == 71;
    }
    // The tag is after the last ':' that follows the last '/' (a registry port is not a tag).
    let last = s.rsplit('/').next().unwrap_or(s);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag != "latest" && is_exact_version(tag),
        None => false,
    }
}

/// Who produces and who reads each DataSet, and the DataSets by name.
pub struct Index<'m> {
    pub datasets: BTreeMap<&'m str, (&'m Document, &'m DataSet)>,
    /// DataSet → the Transform that writes it.
    pub producer: BTreeMap<String, String>,
    /// DataSet → Transforms that read it.
    pub consumers: BTreeMap<String, BTreeSet<String>>,
}

impl<'m> Index<'m> {
    pub fn build(model: &'m ProjectModel) -> Index<'m> {
        let mut producer = BTreeMap::new();
        let mut consumers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (_, t) in model.transforms() {
            for r in &t.spec.outputs {
                for n in dk_manifest::refs::names(model, r) {
                    producer.insert(n, t.metadata.name.clone());
                }
            }
            for r in &t.spec.inputs {
                for n in dk_manifest::refs::names(model, r) {
                    consumers
                        .entry(n)
                        .or_default()
                        .insert(t.metadata.name.clone());
                }
            }
        }
        Index {
            datasets: model
                .datasets()
                .map(|(d, ds)| (ds.metadata.name.as_str(), (d, ds)))
                .collect(),
            producer,
            consumers,
        }
    }
}

/// Effective classification of a column: its own, else the DataSet's, else "".
pub fn column_classification(ds: &DataSet, column: &dk_manifest::model::Column) -> String {
    column
        .classification
        .clone()
        .or_else(|| ds.spec.classification.clone())
        .unwrap_or_default()
}

fn dataset_fields(ds: &DataSet, index: &Index<'_>) -> serde_json::Map<String, Value> {
    let name = &ds.metadata.name;
    let columns: Vec<Value> = ds
        .spec
        .schema
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.type_,
                "pii": c.pii,
                "classification": column_classification(ds, c),
                "description": c.description.clone().unwrap_or_default(),
                "checks": c.checks.len(),
                "from": c.from.clone().unwrap_or_default(),
            })
        })
        .collect();
    let check_count =
        ds.spec.checks.len() + ds.spec.schema.iter().map(|c| c.checks.len()).sum::<usize>();
    let mut m = serde_json::Map::new();
    m.insert(
        "classification".into(),
        json!(ds.spec.classification.clone().unwrap_or_default()),
    );
    m.insert(
        "description".into(),
        json!(ds.spec.description.clone().unwrap_or_default()),
    );
    m.insert(
        "tier".into(),
        json!(ds.metadata.labels.get("tier").cloned().unwrap_or_default()),
    );
    m.insert("isOutput".into(), json!(index.producer.contains_key(name)));
    m.insert(
        "producer".into(),
        json!(index.producer.get(name).cloned().unwrap_or_default()),
    );
    m.insert(
        "consumers".into(),
        json!(index
            .consumers
            .get(name)
            .map(|s| s.iter().cloned().collect::<Vec<_>>())
            .unwrap_or_default()),
    );
    m.insert("columns".into(), Value::Array(columns));
    m.insert("checkCount".into(), json!(check_count));
    m.insert("pii".into(), json!(ds.spec.schema.iter().any(|c| c.pii)));
    m
}

/// The `object` view of one manifest: `{kind, name, file, labels, annotations, version, spec}`
/// (spec as written) plus derived fields per kind (docs/policies.md).
pub fn manifest_view(
    doc: &Document,
    m: &Manifest,
    index: &Index<'_>,
    store_types: &IndexMap<String, String>,
) -> Value {
    let md = m.metadata();
    let spec = serde_json::to_value(m)
        .ok()
        .and_then(|v| v.get("spec").cloned())
        .unwrap_or(Value::Null);
    let mut o = serde_json::Map::new();
    o.insert("kind".into(), json!(doc.kind.as_str()));
    o.insert("name".into(), json!(md.name));
    o.insert("file".into(), json!(doc.file.as_ref()));
    o.insert("labels".into(), json!(md.labels));
    o.insert("annotations".into(), json!(md.annotations));
    o.insert(
        "version".into(),
        json!(md.version.clone().unwrap_or_default()),
    );
    o.insert("spec".into(), spec);
    match m {
        Manifest::DataSet(ds) => {
            o.extend(dataset_fields(ds, index));
            o.insert(
                "storeType".into(),
                json!(store_types.get(&ds.spec.store).cloned().unwrap_or_default()),
            );
        }
        Manifest::Store(s) => {
            o.insert(
                "connectorType".into(),
                json!(store_types
                    .get(&s.metadata.name)
                    .cloned()
                    .unwrap_or_default()),
            );
        }
        Manifest::Transform(t) => {
            let refs: Vec<Value> = t
                .spec
                .inputs
                .iter()
                .map(|r| ("input", r))
                .chain(t.spec.outputs.iter().map(|r| ("output", r)))
                .map(|(role, r)| {
                    json!({
                        "role": role,
                        "dataset": r.dataset.clone().unwrap_or_default(),
                        "tags": r.tags,
                        "version": r.version.clone().unwrap_or_default(),
                    })
                })
                .collect();
            o.insert("refs".into(), Value::Array(refs));
        }
        Manifest::Connector(c) => {
            let images: Vec<String> = c
                .spec
                .plugin
                .iter()
                .flat_map(|p| p.source.iter().chain(p.destination.iter()).cloned())
                .collect();
            o.insert("images".into(), json!(images));
        }
        _ => {}
    }
    Value::Object(o)
}

/// The `env` view of an Environment.
pub fn env_view(env: &Environment) -> Value {
    let s = &env.spec;
    let version_policy = s.version_policy.clone().unwrap_or_else(|| {
        if s.tier == "prod" {
            "exact".into()
        } else {
            "ranges".into()
        }
    });
    let approval = s.approval.clone().unwrap_or_default();
    let covers: Vec<String> = if approval.require_for.is_empty() && approval.required > 0 {
        vec!["always".into()]
    } else {
        approval.require_for.clone()
    };
    let q = s.quotas.clone().unwrap_or_default();
    json!({
        "name": env.metadata.name,
        "tier": s.tier,
        "order": s.order.map(i64::from).unwrap_or(-1),
        "versionPolicy": version_policy,
        "protected": s.protected,
        "requireTests": s.require_tests,
        "allowedConnectors": s.allowed_connectors,
        "labels": env.metadata.labels,
        "quotas": {
            "datasets": q.datasets.map(i64::from).unwrap_or(-1),
            "transforms": q.transforms.map(i64::from).unwrap_or(-1),
            "tablesPerStore": q.tables_per_store.map(i64::from).unwrap_or(-1),
        },
        "approval": {
            "required": approval.required,
            "requireFor": approval.require_for,
            "covers": covers,
            "approvers": approval.approvers.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
            "autoApprove": approval.auto_approve,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_versions_and_pinned_images() {
        for ok in ["1.4.2", "=1.4.2", "v1.4.2", "1.0.0-rc.1"] {
            assert!(is_exact_version(ok), "{ok}");
        }
        for bad in ["^1.4", ">=1.0.0", "1.x", "~1.2.3", "latest", ""] {
            assert!(!is_exact_version(bad), "{bad}");
        }
        assert!(is_pinned_image("ghcr.io/org/tool:1.2.3"));
        assert!(is_pinned_image("localhost:5000/tool:v2.0.0"));
        assert!(is_pinned_image(&format!("tool@sha256:{}", "a".repeat(64))));
        for bad in [
            "tool",
            "tool:latest",
            "tool:1.2",
            "localhost:5000/tool",
            "tool@sha256:abc",
        ] {
            assert!(!is_pinned_image(bad), "{bad}");
        }
    }

    #[test]
    fn ranks_order_classifications() {
        assert!(classification_rank("restricted") > classification_rank("confidential"));
        assert!(classification_rank("internal") > classification_rank("public"));
        assert_eq!(classification_rank(""), -1);
    }
}
