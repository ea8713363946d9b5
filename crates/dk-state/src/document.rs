//! The state document (DESIGN §6): what `dk` believes exists in one environment.
//!
//! Secrets are never stored. A resource attribute that depends on a secret holds a [`SecretRef`]
//! (the secret's name and the SHA-256 of its value, for change detection), never the value.
//! [`StateDocument::check_no_secrets`] (run by every backend `write`) refuses documents whose
//! attributes carry a plain value under a secret-looking key (`password`, `token`, ...).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{Result, StateError};
use crate::git::GitInfo;

/// The newest `format_version` this build reads and the one it writes.
pub const FORMAT_VERSION: u32 = 1;

/// The version of dk recorded in documents written by this build.
pub const DK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One state document per (project, environment). Every write increments `serial`; `lineage`
/// is fixed when the state is first created and identifies it for its whole life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateDocument {
    /// Document format; see [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Version of dk that wrote this serial.
    pub dk_version: String,
    /// UUID v4 fixed at creation.
    pub lineage: Uuid,
    /// 0 for a document never written; +1 on every write.
    pub serial: u64,
    /// Environment name.
    pub environment: String,
    /// Project name (from `project.yaml`).
    pub project: String,
    /// The repository the manifests came from; `None` outside a git repository.
    #[serde(default)]
    pub git: Option<GitInfo>,
    /// Digest of the manifests snapshot that produced this state (promotion, rollback).
    #[serde(default)]
    pub manifests_digest: Option<String>,
    /// Managed resources, sorted by address.
    #[serde(default)]
    pub resources: Vec<ResourceState>,
    /// Named outputs.
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    /// When this serial was written (set by the backend's `write`).
    pub updated_at: DateTime<Utc>,
    /// The operation that wrote this serial (`apply`, `import`, `state mv`, ...; set by `write`).
    #[serde(default)]
    pub operation: String,
}

/// The state of one managed resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// Stable address, e.g. `table.warehouse.public.users`.
    pub address: String,
    /// Resource type, e.g. `table`, `view`, `schema`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Provider that manages it, e.g. `postgres`, `duckdb`.
    pub provider: String,
    /// Attributes as last seen (normalised). Secrets appear only as [`SecretRef`]s.
    #[serde(default)]
    pub attributes: Value,
    /// Addresses this resource depends on.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Journal status: `pending` is written before an action, `ok`/`tainted` after it.
    #[serde(default)]
    pub status: ResourceStatus,
}

/// Journal status of a resource (DESIGN §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceStatus {
    /// Matches the recorded attributes.
    #[default]
    Ok,
    /// An action failed half-way; the next apply replaces or repairs it.
    Tainted,
    /// An action was started and not yet confirmed; the next plan refreshes it.
    Pending,
}

/// A reference to a secret: its name and the SHA-256 (hex) of its value. This is the only form
/// in which a secret may appear in state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecretRef {
    /// Name of the secret, e.g. `SHOP_PG_PASSWORD` or `warehouse.password`.
    pub name: String,
    /// Lowercase hex SHA-256 of the secret value.
    pub sha256: String,
}

impl SecretRef {
    /// A reference to `value` under `name`; the value itself is not kept.
    pub fn new(name: impl Into<String>, value: &str) -> Self {
        SecretRef {
            name: name.into(),
            sha256: sha256_hex(value.as_bytes()),
        }
    }

    /// True when `value` is the secret this reference was made from.
    pub fn matches(&self, value: &str) -> bool {
        self.sha256 == sha256_hex(value.as_bytes())
    }

    /// This reference as a JSON value, to put into resource attributes.
    pub fn to_value(&self) -> Value {
        serde_json::json!({"name": self.name, "sha256": self.sha256})
    }
}

/// Keys whose plain (string or number) values are refused in attributes: they hold secrets.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "secret_key",
    "secret_access_key",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "private_key",
    "client_secret",
    "credentials",
];

impl StateDocument {
    /// A new, never-written document (serial 0) with a fresh lineage.
    pub fn new(project: impl Into<String>, environment: impl Into<String>) -> Self {
        StateDocument {
            format_version: FORMAT_VERSION,
            dk_version: DK_VERSION.to_string(),
            lineage: Uuid::new_v4(),
            serial: 0,
            environment: environment.into(),
            project: project.into(),
            git: None,
            manifests_digest: None,
            resources: Vec::new(),
            outputs: BTreeMap::new(),
            updated_at: Utc::now(),
            operation: String::new(),
        }
    }

    /// Parses a document, refusing formats newer than this build.
    pub fn from_json(text: &str, location: &str) -> Result<Self> {
        let doc: StateDocument =
            serde_json::from_str(text).map_err(|source| StateError::Corrupt {
                location: location.to_string(),
                source,
            })?;
        if doc.format_version > FORMAT_VERSION {
            return Err(StateError::UnsupportedFormat {
                location: location.to_string(),
                found: doc.format_version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(doc)
    }

    /// Pretty JSON, as stored by the local backend.
    pub fn to_json_pretty(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| StateError::Internal(e.to_string()))
    }

    /// The resource at `address`.
    pub fn get(&self, address: &str) -> Option<&ResourceState> {
        self.index_of(address).ok().map(|i| &self.resources[i])
    }

    /// Mutable access to the resource at `address`.
    pub fn get_mut(&mut self, address: &str) -> Option<&mut ResourceState> {
        match self.index_of(address) {
            Ok(i) => Some(&mut self.resources[i]),
            Err(_) => None,
        }
    }

    /// Inserts or replaces a resource (kept sorted by address); returns the previous one.
    pub fn put(&mut self, resource: ResourceState) -> Option<ResourceState> {
        match self.index_of(&resource.address) {
            Ok(i) => Some(std::mem::replace(&mut self.resources[i], resource)),
            Err(i) => {
                self.resources.insert(i, resource);
                None
            }
        }
    }

    /// Removes the resource at `address` (`dk state rm`).
    pub fn remove(&mut self, address: &str) -> Option<ResourceState> {
        match self.index_of(address) {
            Ok(i) => Some(self.resources.remove(i)),
            Err(_) => None,
        }
    }

    /// Renames a resource (`dk state mv`); `depends_on` references to it are renamed too.
    pub fn mv(&mut self, from: &str, to: &str) -> Result<()> {
        if from == to {
            return if self.get(from).is_some() {
                Ok(())
            } else {
                Err(self.not_found(from))
            };
        }
        if self.get(to).is_some() {
            return Err(StateError::ResourceExists {
                environment: self.environment.clone(),
                address: to.to_string(),
            });
        }
        let mut resource = self.remove(from).ok_or_else(|| self.not_found(from))?;
        resource.address = to.to_string();
        self.put(resource);
        for r in &mut self.resources {
            for dep in &mut r.depends_on {
                if dep == from {
                    *dep = to.to_string();
                }
            }
        }
        Ok(())
    }

    /// SHA-256 (lowercase hex) of the document's canonical JSON (keys sorted, no whitespace).
    pub fn digest(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        sha256_hex(canonical_json(&value).as_bytes())
    }

    /// Refuses attributes that hold a plain value under a secret-looking key (see module doc).
    pub fn check_no_secrets(&self) -> Result<()> {
        for r in &self.resources {
            if let Some(path) = find_plain_secret(&r.attributes, "attributes") {
                return Err(StateError::SecretInState {
                    address: r.address.clone(),
                    path,
                });
            }
        }
        if let Some(path) = self
            .outputs
            .iter()
            .find_map(|(k, v)| find_plain_secret_kv(k, v, "outputs"))
        {
            return Err(StateError::SecretInState {
                address: "(outputs)".to_string(),
                path,
            });
        }
        Ok(())
    }

    fn index_of(&self, address: &str) -> std::result::Result<usize, usize> {
        // Resources are kept sorted by `put`; documents edited by hand may not be, so fall back
        // to a linear scan when the binary search misses.
        match self
            .resources
            .binary_search_by(|r| r.address.as_str().cmp(address))
        {
            Ok(i) => Ok(i),
            Err(i) => match self.resources.iter().position(|r| r.address == address) {
                Some(j) => Ok(j),
                None => Err(i),
            },
        }
    }

    fn not_found(&self, address: &str) -> StateError {
        StateError::ResourceNotFound {
            environment: self.environment.clone(),
            address: address.to_string(),
        }
    }
}

impl ResourceState {
    /// A resource with status `ok`, no attributes and no dependencies.
    pub fn new(
        address: impl Into<String>,
        resource_type: impl Into<String>,
        provider: impl Into<String>,
    ) -> Self {
        ResourceState {
            address: address.into(),
            resource_type: resource_type.into(),
            provider: provider.into(),
            attributes: Value::Object(Default::default()),
            depends_on: Vec::new(),
            status: ResourceStatus::Ok,
        }
    }
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    SECRET_KEYS.contains(&k.as_str())
}

fn find_plain_secret_kv(key: &str, value: &Value, path: &str) -> Option<String> {
    let here = format!("{path}.{key}");
    if is_secret_key(key) && matches!(value, Value::String(_) | Value::Number(_)) {
        return Some(here);
    }
    find_plain_secret(value, &here)
}

fn find_plain_secret(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| find_plain_secret_kv(k, v, path)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_plain_secret(v, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Canonical JSON: object keys sorted (by UTF-8 bytes), no insignificant whitespace, strings and
/// numbers as serde_json prints them. Used for digests; stable across key orders.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(k.as_str()) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(addr: &str) -> ResourceState {
        let mut r = ResourceState::new(addr, "table", "postgres");
        r.attributes = json!({"columns": [{"name": "id", "type": "bigint"}]});
        r
    }

    #[test]
    fn new_document_has_lineage_and_serial_zero() {
        let a = StateDocument::new("shop", "dev");
        let b = StateDocument::new("shop", "dev");
        assert_eq!(a.serial, 0);
        assert_ne!(a.lineage, b.lineage);
        assert_eq!(a.lineage.get_version_num(), 4);
        assert_eq!(a.format_version, FORMAT_VERSION);
    }

    #[test]
    fn put_get_remove_keep_resources_sorted() {
        let mut d = StateDocument::new("shop", "dev");
        assert!(d.put(table("table.w.public.b")).is_none());
        assert!(d.put(table("table.w.public.a")).is_none());
        assert!(d.put(table("table.w.public.c")).is_none());
        let addrs: Vec<_> = d.resources.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(
            addrs,
            ["table.w.public.a", "table.w.public.b", "table.w.public.c"]
        );
        let mut changed = table("table.w.public.b");
        changed.status = ResourceStatus::Tainted;
        let old = d.put(changed).expect("replaced");
        assert_eq!(old.status, ResourceStatus::Ok);
        assert_eq!(
            d.get("table.w.public.b").map(|r| r.status),
            Some(ResourceStatus::Tainted)
        );
        assert!(d.remove("table.w.public.a").is_some());
        assert!(d.remove("table.w.public.a").is_none());
        assert!(d.get("table.w.public.a").is_none());
        assert_eq!(d.resources.len(), 2);
    }

    #[test]
    fn mv_renames_and_rewrites_dependencies() {
        let mut d = StateDocument::new("shop", "dev");
        d.put(table("schema.w.raw"));
        let mut t = table("table.w.raw.users");
        t.depends_on = vec!["schema.w.raw".into()];
        d.put(t);
        d.mv("schema.w.raw", "schema.w.landing").expect("mv");
        assert!(d.get("schema.w.raw").is_none());
        assert!(d.get("schema.w.landing").is_some());
        assert_eq!(
            d.get("table.w.raw.users").map(|r| r.depends_on.clone()),
            Some(vec!["schema.w.landing".to_string()])
        );
        let err = d.mv("schema.w.nope", "schema.w.x").unwrap_err();
        assert!(matches!(err, StateError::ResourceNotFound { .. }), "{err}");
        let err = d.mv("schema.w.landing", "table.w.raw.users").unwrap_err();
        assert!(matches!(err, StateError::ResourceExists { .. }), "{err}");
        assert!(err.to_string().contains("dk state rm"));
    }

    #[test]
    fn digest_is_stable_and_order_independent() {
        let mut d = StateDocument::new("shop", "dev");
        let mut r = table("table.w.public.a");
        r.attributes = json!({"b": 1, "a": {"y": true, "x": [1, 2]}});
        d.put(r);
        let d1 = d.digest();
        assert_eq!(d1.len(), 64);
        assert_eq!(d1, d.digest());
        // same content, different key order in the attributes
        let mut e = d.clone();
        e.resources[0].attributes = json!({"a": {"x": [1, 2], "y": true}, "b": 1});
        assert_eq!(d1, e.digest());
        // any change changes it
        e.serial += 1;
        assert_ne!(d1, e.digest());
        // round trip through JSON keeps it
        let back =
            StateDocument::from_json(&d.to_json_pretty().expect("json"), "test").expect("parse");
        assert_eq!(back.digest(), d1);
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v = json!({"b": [true, null, "x\"y"], "a": 1.5});
        assert_eq!(canonical_json(&v), r#"{"a":1.5,"b":[true,null,"x\"y"]}"#);
    }

    #[test]
    fn document_json_shape() {
        let mut d = StateDocument::new("shop", "dev");
        d.put(table("table.w.public.a"));
        let v = serde_json::to_value(&d).expect("json");
        for key in [
            "format_version",
            "dk_version",
            "lineage",
            "serial",
            "environment",
            "project",
            "git",
            "manifests_digest",
            "resources",
            "outputs",
            "updated_at",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["resources"][0]["type"], "table");
        assert_eq!(v["resources"][0]["status"], "ok");
    }

    #[test]
    fn secrets_only_as_references() {
        let mut d = StateDocument::new("shop", "dev");
        let mut r = table("store.warehouse");
        let sref = SecretRef::new("SHOP_PG_PASSWORD", "hunter2");
        assert!(sref.matches("hunter2"));
        assert!(!sref.matches("hunter3"));
        r.attributes = json!({"host": "db", "secrets": {"password": sref.to_value()}});
        d.put(r.clone());
        d.check_no_secrets().expect("references are fine");
        assert!(!serde_json::to_string(&d).expect("json").contains("hunter2"));

        r.attributes = json!({"connection": {"user": "u", "Password": "hunter2"}});
        d.put(r);
        let err = d.check_no_secrets().unwrap_err();
        assert!(
            err.to_string().contains("attributes.connection.Password"),
            "{err}"
        );
        assert!(err.to_string().contains("SecretRef"));
    }

    #[test]
    fn newer_format_is_refused() {
        let mut v = serde_json::to_value(StateDocument::new("shop", "dev")).expect("json");
        v["format_version"] = json!(FORMAT_VERSION + 1);
        let err = StateDocument::from_json(&v.to_string(), "x.json").unwrap_err();
        assert!(matches!(err, StateError::UnsupportedFormat { .. }), "{err}");
        let err = StateDocument::from_json("{\"serial\": ", "x.json").unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
    }
}
