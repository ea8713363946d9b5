//! `dk-manifest` owns the manifests: the kinds as serde types ([`model`]), the one loader with
//! source spans ([`loader`], [`yaml`]), the JSON Schemas generated from the types ([`schema`]),
//! reference resolution ([`refs`]), the one validator ([`validate`]) and YAML writing for
//! scaffolding ([`write`]). Diagnostic codes live in `dk-diagnostics`.

pub mod loader;
pub mod model;
pub mod refs;
pub mod schema;
pub mod suggest;
pub mod validate;
pub mod write;
pub mod yaml;

pub use loader::{load, Document, LoadError, ProjectModel};
pub use model::{Kind, Manifest};
pub use validate::{validate, ValidateOptions};
