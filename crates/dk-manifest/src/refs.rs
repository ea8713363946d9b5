//! Resolving DataSet references: by name, or by a tag selector (labels) with a SemVer range on
//! `metadata.version`. Used by the validator and by the pipeline graph.

use crate::loader::{Document, ProjectModel};
use crate::model::{DataSetRef, Kind};

/// The DataSet documents a reference selects (by name: zero or one; by tags: every DataSet whose
/// labels include all the tags and whose version is in the range), sorted by name.
pub fn resolve<'m>(model: &'m ProjectModel, r: &DataSetRef) -> Vec<&'m Document> {
    if let Some(name) = &r.dataset {
        return model.get(Kind::DataSet, name).into_iter().collect();
    }
    if r.tags.is_empty() {
        return Vec::new();
    }
    let req = r
        .version
        .as_deref()
        .and_then(|v| semver::VersionReq::parse(v).ok());
    let mut out: Vec<&Document> = model
        .datasets()
        .filter(|(_, ds)| {
            r.tags
                .iter()
                .all(|(k, v)| ds.metadata.labels.get(k) == Some(v))
        })
        .filter(|(_, ds)| match &req {
            None => true,
            Some(req) => ds
                .metadata
                .version
                .as_deref()
                .and_then(|v| semver::Version::parse(v).ok())
                .is_some_and(|v| req.matches(&v)),
        })
        .map(|(d, _)| d)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// Names a reference stands for: the name itself for `dataset:` (even when undefined), the
/// selected DataSets for tags.
pub fn names(model: &ProjectModel, r: &DataSetRef) -> Vec<String> {
    match &r.dataset {
        Some(n) if !n.is_empty() => vec![n.clone()],
        Some(_) => Vec::new(),
        None => resolve(model, r)
            .into_iter()
            .map(|d| d.name.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::load_str;

    #[test]
    fn tags_and_version_range() {
        let text = r#"
apiVersion: datakit.infoblox.dev/v1alpha1
kind: DataSet
metadata: {name: a, version: 1.2.0, labels: {domain: x}}
spec: {store: s, table: a}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: DataSet
metadata: {name: b, version: 2.0.0, labels: {domain: x}}
spec: {store: s, table: b}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: DataSet
metadata: {name: c, labels: {domain: y}}
spec: {store: s, table: c}
"#;
        let m = load_str("d.yaml", text);
        let mut r = DataSetRef::default();
        r.tags.insert("domain".into(), "x".into());
        assert_eq!(names(&m, &r), vec!["a", "b"]);
        r.version = Some(">=1.0.0, <2.0.0".into());
        assert_eq!(names(&m, &r), vec!["a"]);
    }
}
