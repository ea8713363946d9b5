//! Environment guardrails evaluated with the manifests: `allowedConnectors` (E610) and `quotas`
//! (E611). `protected` and `requireTests` concern plans and applies; dk-engine's governance
//! module enforces them.

use std::collections::BTreeMap;

use dk_diagnostics::{Code, Diagnostic};
use dk_manifest::loader::{Document, ProjectModel};
use dk_manifest::model::Environment;
use indexmap::IndexMap;

fn esc(s: &str) -> String {
    dk_manifest::yaml::escape_pointer(s)
}

/// Guardrail findings for one environment (`store_types`: store name → connector type there).
pub fn check(
    model: &ProjectModel,
    env_doc: &Document,
    env: &Environment,
    store_types: &IndexMap<String, String>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let spec = &env.spec;
    let envname = &env.metadata.name;
    if !spec.allowed_connectors.is_empty() {
        for (doc, store) in model.stores() {
            let name = &store.metadata.name;
            let binding = spec.bindings.get(name);
            let connector = binding
                .and_then(|b| b.connector.clone())
                .unwrap_or_else(|| store.spec.connector.clone());
            let ctype = store_types.get(name).cloned().unwrap_or_default();
            let allowed = spec
                .allowed_connectors
                .iter()
                .any(|a| *a == ctype || *a == connector);
            if allowed {
                continue;
            }
            let at = if binding.is_some() {
                env_doc.key_loc(&format!("/spec/bindings/{}", esc(name)))
            } else {
                doc.loc("/spec/connector")
            };
            out.push(
                Diagnostic::new(
                    Code::ConnectorNotAllowed,
                    format!(
                        "store {name} uses connector {connector} (type {ctype}), which environment {envname} does not allow"
                    ),
                )
                .at(at)
                .label("not in allowedConnectors")
                .related(
                    env_doc.key_loc("/spec/allowedConnectors"),
                    format!("allowed: {}", spec.allowed_connectors.join(", ")),
                )
                .help(format!(
                    "bind {name} to one of {} in {envname}, or add {ctype} to its allowedConnectors",
                    spec.allowed_connectors.join(", ")
                )),
            );
        }
    }
    if let Some(q) = &spec.quotas {
        let mut quota = |what: &str,
                         pointer: &str,
                         limit: Option<u32>,
                         count: usize,
                         detail: String| {
            if let Some(limit) = limit {
                if count > limit as usize {
                    out.push(
                        Diagnostic::new(
                            Code::QuotaExceeded,
                            format!(
                                "environment {envname} allows {limit} {what}, the project has {count}{detail}"
                            ),
                        )
                        .at(env_doc.loc(pointer))
                        .label("quota")
                        .help(format!("remove {} or raise the quota", count - limit as usize)),
                    );
                }
            }
        };
        quota(
            "DataSets",
            "/spec/quotas/datasets",
            q.datasets,
            model.datasets().count(),
            String::new(),
        );
        quota(
            "Transforms",
            "/spec/quotas/transforms",
            q.transforms,
            model.transforms().count(),
            String::new(),
        );
        let mut per_store: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, ds) in model.datasets() {
            if ds.spec.table.is_some() {
                *per_store.entry(ds.spec.store.as_str()).or_default() += 1;
            }
        }
        for (store, n) in per_store {
            quota(
                "tables per store",
                "/spec/quotas/tablesPerStore",
                q.tables_per_store,
                n,
                format!(" in store {store}"),
            );
        }
    }
    out
}
