//! `dk-env` owns environment resolution: for one Environment, each Store's connection is overlaid
//! by the environment's `bindings[store]`, and `${VAR}` / `${VAR:-default}` references are resolved
//! from the environment's `spec.variables`, then the process environment, then the default.
//!
//! Secrets are carried as [`SecretRef`]s: the reference as written, the variable name and a SHA-256
//! of the value (for change detection). The value itself is only reachable through
//! [`SecretRef::expose`] and is never serialized, so nothing printed or stored can contain it.
//!
//! [`policy`] evaluates Policy rules (CEL), the built-in packs, environment guardrails and
//! classification along lineage; [`approval`] makes and verifies Ed25519 approvals of plan digests.

pub mod approval;
mod interpolate;
pub mod policy;

use std::sync::Arc;

use dk_diagnostics::{Code, Diagnostic, Location};
use dk_manifest::loader::{Document, ProjectModel};
use dk_manifest::model::{Binding, Environment, Kind, Manifest, Store};
use indexmap::IndexMap;
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use interpolate::{interpolate, Piece, VarError};

/// Where variable values come from, in order: the environment's variables, then this lookup
/// (the process environment in the CLI; a map in tests).
pub trait VarSource {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl VarSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl VarSource for IndexMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        IndexMap::get(self, name).cloned()
    }
}

/// A resolved secret: printable and storable as a reference and a hash, never as a value.
#[derive(Clone)]
pub struct SecretRef {
    /// The value as written in the manifest (`${SHOP_PG_PASSWORD}`).
    pub reference: String,
    /// Variables it reads.
    pub vars: Vec<String>,
    /// Hex SHA-256 of the resolved value.
    pub sha256: String,
    value: SecretString,
}

impl SecretRef {
    fn new(reference: String, vars: Vec<String>, value: String) -> Self {
        let sha256 = hex::encode(Sha256::digest(value.as_bytes()));
        SecretRef {
            reference,
            vars,
            sha256,
            value: SecretString::from(value),
        }
    }

    /// The secret value, for handing to a driver. Never print or store it.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretRef({} sha256:{})",
            self.reference,
            &self.sha256[..12]
        )
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("SecretRef", 2)?;
        st.serialize_field("reference", &self.reference)?;
        st.serialize_field("sha256", &self.sha256)?;
        st.end()
    }
}

/// One Store as it is in the chosen environment.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedStore {
    pub name: String,
    /// The Connector manifest's name, when the technology comes from one.
    pub connector: Option<String>,
    /// The technology (`postgres`, `duckdb`, …): the Connector's `spec.type` or a flat binding's `type`.
    pub connector_type: String,
    /// Connection settings with variables resolved (never credentials).
    pub connection: IndexMap<String, Value>,
    pub secrets: IndexMap<String, SecretRef>,
    /// Whether an environment binding changed this store.
    pub bound: bool,
    /// Where the store is declared.
    pub file: Arc<str>,
}

/// A project resolved for one environment.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedProject {
    pub environment: String,
    pub tier: String,
    /// The environment's variables, resolved (they are not secrets; secrets live in `secrets`).
    pub variables: IndexMap<String, String>,
    pub stores: IndexMap<String, ResolvedStore>,
}

/// The environment to use: the one named, else the Project's `defaultEnvironment`, else the only
/// one defined.
pub fn pick_environment<'m>(
    model: &'m ProjectModel,
    name: Option<&str>,
) -> Result<(&'m Document, &'m Environment), Box<Diagnostic>> {
    let envs: Vec<(&Document, &Environment)> = model.environments().collect();
    let wanted = name
        .map(str::to_string)
        .or_else(|| {
            model
                .project()
                .and_then(|p| p.spec.default_environment.clone())
        })
        .or_else(|| {
            if envs.len() == 1 {
                Some(envs[0].1.metadata.name.clone())
            } else {
                None
            }
        });
    let Some(wanted) = wanted else {
        let names: Vec<&str> = envs.iter().map(|(_, e)| e.metadata.name.as_str()).collect();
        return Err(Box::new(Diagnostic::new(Code::UnknownEnvironment, "no environment given").help(if names.is_empty() {
            "the project has no Environment manifests: create environments/dev.yaml with `kind: Environment`".to_string()
        } else {
            format!("pass -e ENV (one of {}) or set `defaultEnvironment` in project.yaml", names.join(", "))
        })));
    };
    envs.into_iter()
        .find(|(_, e)| e.metadata.name == wanted)
        .ok_or_else(|| {
            let names = model.names(Kind::Environment);
            let help = match dk_manifest::suggest::closest(&wanted, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "defined environments: {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            };
            Box::new(
                Diagnostic::new(
                    Code::UnknownEnvironment,
                    format!("environment \"{wanted}\" is not defined"),
                )
                .help(help),
            )
        })
}

struct Resolver<'a> {
    env_vars: &'a IndexMap<String, String>,
    source: &'a dyn VarSource,
    diags: Vec<Diagnostic>,
}

impl Resolver<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.env_vars
            .get(name)
            .cloned()
            .or_else(|| self.source.get(name))
    }

    /// Resolves a string; on failure records a diagnostic at `at` and returns None.
    fn string(&mut self, s: &str, at: &Location) -> Option<(String, Vec<String>)> {
        match interpolate(s, &|n| self.lookup(n)) {
            Ok(v) => Some(v),
            Err(VarError::Unset(name)) => {
                self.diags.push(
                    Diagnostic::new(Code::UnresolvedVariable, format!("${{{name}}} is not set"))
                        .at(at.clone())
                        .label("unresolved")
                        .help(format!(
                            "set {name} in the process environment (`export {name}=…`), add it to the Environment's `spec.variables`, or write `${{{name}:-default}}`"
                        )),
                );
                None
            }
            Err(VarError::Malformed(msg)) => {
                self.diags
                    .push(Diagnostic::new(Code::InvalidVariable, msg).at(at.clone()));
                None
            }
        }
    }

    fn value(&mut self, v: &Value, at: &Location) -> Value {
        match v {
            Value::String(s) => self
                .string(s, at)
                .map(|(r, _)| Value::String(r))
                .unwrap_or(Value::Null),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.value(x, at)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (k.clone(), self.value(x, at)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

fn esc(s: &str) -> String {
    dk_manifest::yaml::escape_pointer(s)
}

/// Resolves the project for environment `env_name` (or the default environment).
pub fn resolve(
    model: &ProjectModel,
    env_name: Option<&str>,
    source: &dyn VarSource,
) -> Result<ResolvedProject, Vec<Diagnostic>> {
    let (env_doc, env) = pick_environment(model, env_name).map_err(|d| vec![*d])?;
    // The environment's own variables may reference the process environment.
    let mut r = Resolver {
        env_vars: &IndexMap::new(),
        source,
        diags: Vec::new(),
    };
    let mut variables = IndexMap::new();
    for (k, v) in &env.spec.variables {
        let at = env_doc.loc(&format!("/spec/variables/{}", esc(k)));
        if let Some((val, _)) = r.string(v, &at) {
            variables.insert(k.clone(), val);
        }
    }
    let mut diags = std::mem::take(&mut r.diags);
    let mut r = Resolver {
        env_vars: &variables,
        source,
        diags: Vec::new(),
    };
    let mut stores = IndexMap::new();
    let mut all: Vec<(&Document, &Store)> = model.stores().collect();
    all.sort_by(|a, b| a.1.metadata.name.cmp(&b.1.metadata.name));
    for (doc, store) in all {
        let binding = env.spec.bindings.get(&store.metadata.name);
        let bind_ptr = format!("/spec/bindings/{}", esc(&store.metadata.name));
        stores.insert(
            store.metadata.name.clone(),
            resolve_store(
                model,
                doc,
                store,
                binding.map(|b| (b, bind_ptr)),
                env_doc,
                &mut r,
            ),
        );
    }
    diags.extend(r.diags);
    for (name, _) in &env.spec.bindings {
        if model.get(Kind::Store, name).is_none() {
            diags.push(
                Diagnostic::new(
                    Code::UnknownBindingStore,
                    format!(
                        "environment {} binds Store \"{name}\", which is not defined",
                        env.metadata.name
                    ),
                )
                .at(env_doc.key_loc(&format!("/spec/bindings/{}", esc(name)))),
            );
        }
    }
    if !diags.is_empty() {
        diags.sort_by_key(|d| d.sort_key());
        return Err(diags);
    }
    Ok(ResolvedProject {
        environment: env.metadata.name.clone(),
        tier: env.spec.tier.clone(),
        variables,
        stores,
    })
}

fn connector_type(model: &ProjectModel, connector: &str) -> Option<String> {
    model
        .connectors()
        .find(|(_, c)| {
            c.metadata.name == connector || c.spec.provider.as_deref() == Some(connector)
        })
        .and_then(|(_, c)| c.spec.type_.clone())
}

fn resolve_store(
    model: &ProjectModel,
    doc: &Document,
    store: &Store,
    binding: Option<(&Binding, String)>,
    env_doc: &Document,
    r: &mut Resolver<'_>,
) -> ResolvedStore {
    let mut connector = Some(store.spec.connector.clone());
    let mut ctype = connector_type(model, &store.spec.connector)
        .unwrap_or_else(|| store.spec.connector.clone());
    // (value, where it was written)
    let mut connection: IndexMap<String, (Value, Location)> = store
        .spec
        .connection
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v.clone(), doc.loc(&format!("/spec/connection/{}", esc(k)))),
            )
        })
        .collect();
    let mut secrets: IndexMap<String, (String, Location)> = store
        .spec
        .secrets
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v.clone(), doc.loc(&format!("/spec/secrets/{}", esc(k)))),
            )
        })
        .collect();
    let bound = binding.is_some();
    if let Some((b, ptr)) = binding {
        // A binding that swaps the technology replaces the connection; otherwise it overlays it.
        let swapped = match (&b.connector, &b.type_) {
            (Some(c), _) => {
                let t = connector_type(model, c).unwrap_or_else(|| c.clone());
                let changed = t != ctype;
                connector = Some(c.clone());
                ctype = t;
                changed
            }
            (None, Some(t)) => {
                let changed = *t != ctype;
                connector = None;
                ctype = t.clone();
                changed
            }
            (None, None) => false,
        };
        if swapped {
            connection.clear();
            secrets.clear();
        }
        for (k, v) in &b.connection {
            connection.insert(
                k.clone(),
                (
                    v.clone(),
                    env_doc.loc(&format!("{ptr}/connection/{}", esc(k))),
                ),
            );
        }
        for (k, v) in &b.flat {
            connection.insert(
                k.clone(),
                (v.clone(), env_doc.loc(&format!("{ptr}/{}", esc(k)))),
            );
        }
        for (k, v) in &b.secrets {
            secrets.insert(
                k.clone(),
                (v.clone(), env_doc.loc(&format!("{ptr}/secrets/{}", esc(k)))),
            );
        }
    }
    let connection = connection
        .into_iter()
        .map(|(k, (v, at))| (k, r.value(&v, &at)))
        .collect();
    let secrets = secrets
        .into_iter()
        .filter_map(|(k, (v, at))| {
            r.string(&v, &at)
                .map(|(val, vars)| (k, SecretRef::new(v, vars, val)))
        })
        .collect();
    ResolvedStore {
        name: store.metadata.name.clone(),
        connector,
        connector_type: ctype,
        connection,
        secrets,
        bound,
        file: doc.file.clone(),
    }
}

/// Environments of a project in promotion order (then by name).
pub fn environments(model: &ProjectModel) -> Vec<(&Document, &Environment)> {
    let mut v: Vec<_> = model.environments().collect();
    v.sort_by(|a, b| {
        (a.1.spec.order.unwrap_or(u32::MAX), &a.1.metadata.name)
            .cmp(&(b.1.spec.order.unwrap_or(u32::MAX), &b.1.metadata.name))
    });
    v
}

/// The manifest behind a document, if it is an Environment.
pub fn as_environment(doc: &Document) -> Option<&Environment> {
    match &doc.manifest {
        Some(Manifest::Environment(e)) => Some(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
