//! Import: bringing objects that already exist under management.
//!
//! * [`import_address`] adopts one existing object into state. Like Terraform, the object must be
//!   declared by a manifest first (so the next plan compares it with its declaration); it must not
//!   be in state already.
//! * [`discover`] lists the unmanaged tables of a schema and [`dataset_manifest`] turns each into
//!   a DataSet manifest whose schema compiles back to exactly the table that exists (types,
//!   nullability, descriptions and classification read back from comments), so writing them and
//!   running `dk apply` adopts the tables with no change to the database.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use dk_env::ResolvedProject;
use dk_manifest::model::{Column, DataSet, DataSetSpec, Kind};
use dk_providers::model::{Resource, ResourceKind, ResourceSpec};
use dk_state::{ResourceState, ResourceStatus, StateDocument};

use crate::compile::{default_schema, parse_comment, Compiled};
use crate::plan::{kind_of, Providers};
use crate::EngineError;

/// The state entry recording `r` as in sync.
pub fn resource_state(r: &Resource, status: ResourceStatus) -> ResourceState {
    let mut s = ResourceState::new(r.address.clone(), r.kind().as_str(), r.store.clone());
    s.attributes = serde_json::to_value(r).unwrap_or_default();
    s.depends_on = r.depends_on.clone();
    s.status = status;
    s
}

/// `(store, schema)` of an address (`table.wh.public.orders` → `(wh, public)`).
fn store_and_schema(address: &str) -> Option<(&str, &str)> {
    let mut parts = address.splitn(4, '.');
    let _kind = parts.next()?;
    let store = parts.next()?;
    let schema = parts.next()?;
    Some((store, schema))
}

/// Finds the existing object at `address` (declared by a manifest, not yet in state) and returns
/// it as it exists, with the declared dependencies.
pub async fn import_address(
    providers: &Providers,
    desired: &Compiled,
    state: &StateDocument,
    address: &str,
) -> Result<Resource, EngineError> {
    let err = |m: String| EngineError::Import(m);
    if kind_of(address).is_none() {
        return Err(err(format!(
            "{address} is not a resource address; addresses look like table.STORE.SCHEMA.NAME, view.STORE.SCHEMA.NAME or schema.STORE.SCHEMA (see `dk plan`)"
        )));
    }
    if state.get(address).is_some() {
        return Err(err(format!(
            "{address} is already managed (it is in state); see `dk state show {address}`"
        )));
    }
    let Some(declared) = desired.resources.get(address) else {
        return Err(err(format!(
            "no manifest declares {address}; declare it first (for unmanaged tables `dk import --discover SCHEMA --write DIR` writes their DataSet manifests), then import it"
        )));
    };
    let (store, schema) =
        store_and_schema(address).ok_or_else(|| err(format!("{address}: malformed address")))?;
    let provider = providers
        .get(store)
        .ok_or_else(|| EngineError::UnknownStore(store.to_string()))?;
    let found = provider
        .refresh(&[schema.to_string()])
        .await?
        .into_iter()
        .find(|r| r.address == address);
    let Some(mut actual) = found else {
        return Err(err(format!(
            "{address} does not exist in store {store}; `dk apply` creates it (import adopts objects that already exist)"
        )));
    };
    actual.depends_on = declared.depends_on.clone();
    Ok(actual)
}

/// Records adopted objects in state (as `ok`).
pub fn record(state: &mut StateDocument, adopted: &[Resource]) {
    for r in adopted {
        state.put(resource_state(r, ResourceStatus::Ok));
    }
}

/// What discovery found in a schema.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Tables neither in state nor declared, by address.
    pub tables: Vec<Resource>,
    /// Views neither in state nor declared (not written: a view is produced by a `sql` transform).
    pub views: Vec<Resource>,
    /// Objects in the schema that are already declared or managed.
    pub managed: usize,
}

/// The unmanaged tables and views of `schema` in `store` (one bulk refresh).
pub async fn discover(
    providers: &Providers,
    desired: &Compiled,
    state: &StateDocument,
    store: &str,
    schema: &str,
) -> Result<Discovery, EngineError> {
    let provider = providers
        .get(store)
        .ok_or_else(|| EngineError::UnknownStore(store.to_string()))?;
    let found = provider.refresh(&[schema.to_string()]).await?;
    if !found
        .iter()
        .any(|r| r.kind() == ResourceKind::Schema && r.spec.qualified().0 == schema)
    {
        return Err(EngineError::Import(format!(
            "schema {schema} does not exist in store {store}"
        )));
    }
    let mut out = Discovery::default();
    for r in found {
        if r.kind() == ResourceKind::Schema {
            continue;
        }
        if state.get(&r.address).is_some() || desired.resources.contains_key(&r.address) {
            out.managed += 1;
            continue;
        }
        match r.kind() {
            ResourceKind::Table => out.tables.push(r),
            _ => out.views.push(r),
        }
    }
    out.tables.sort_by(|a, b| a.address.cmp(&b.address));
    out.views.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(out)
}

/// A DataSet name for a table that is not taken yet (`orders`, else `SCHEMA-orders`, else with a
/// number).
pub fn unique_name(schema: &str, table: &str, taken: &mut HashSet<String>) -> String {
    let base = dk_manifest::validate::sanitize_name(table);
    let mut candidates = vec![
        base.clone(),
        dk_manifest::validate::sanitize_name(&format!("{schema}-{base}")),
    ];
    for i in 2..1000 {
        candidates.push(format!("{base}-{i}"));
    }
    for c in candidates {
        let c: String = c.chars().take(63).collect();
        let c = c.trim_end_matches('-').to_string();
        if dk_manifest::validate::is_valid_name(&c) && taken.insert(c.clone()) {
            return c;
        }
    }
    base
}

/// The DataSet manifest that compiles to exactly `table` in `store` (a store of `connector_type`);
/// `Err(reason)` when the table has a column whose native type has no logical type.
pub fn dataset_manifest(
    table: &Resource,
    connector_type: &str,
    taken: &mut HashSet<String>,
) -> Result<DataSet, String> {
    let ResourceSpec::Table {
        schema,
        name,
        columns,
        comment,
    } = &table.spec
    else {
        return Err(format!("{} is not a table", table.address));
    };
    if let Some((c, native)) = columns
        .iter()
        .find_map(|c| dk_providers::postgres::native_type_of(c).map(|n| (c, n)))
    {
        return Err(format!(
            "{}: column {} has type {native}, which has no logical type (see docs/plan-apply.md); declare this table by hand",
            table.address, c.name
        ));
    }
    let tmeta = parse_comment(comment.as_deref());
    let schema_cols = columns
        .iter()
        .map(|c| {
            let meta = parse_comment(c.comment.as_deref());
            Column {
                name: c.name.clone(),
                type_: c.ty.to_string(),
                nullable: (!c.nullable).then_some(false),
                description: meta.description,
                classification: meta.classification,
                pii: meta.pii,
                ..Column::default()
            }
        })
        .collect();
    let table_ref = if schema == default_schema(connector_type) {
        name.clone()
    } else {
        format!("{schema}.{name}")
    };
    let spec = DataSetSpec {
        store: table.store.clone(),
        table: Some(table_ref),
        description: tmeta.description,
        classification: tmeta.classification,
        schema: schema_cols,
        ..DataSetSpec::default()
    };
    Ok(DataSet::new(
        Kind::DataSet,
        &unique_name(schema, name, taken),
        spec,
    ))
}

/// Manifest files to write for a discovery (`file name → manifest`, one file per table), and the
/// tables skipped with the reason.
pub fn discovered_manifests(
    discovery: &Discovery,
    env: &ResolvedProject,
    model: &dk_manifest::ProjectModel,
) -> (BTreeMap<String, DataSet>, Vec<String>) {
    let mut taken: HashSet<String> = model
        .datasets()
        .map(|(_, d)| d.metadata.name.clone())
        .collect();
    let mut out = BTreeMap::new();
    let mut skipped = Vec::new();
    for t in &discovery.tables {
        let ctype = env
            .stores
            .get(&t.store)
            .map(|s| s.connector_type.as_str())
            .unwrap_or("");
        match dataset_manifest(t, ctype, &mut taken) {
            Ok(ds) => {
                out.insert(format!("{}.yaml", ds.metadata.name), ds);
            }
            Err(reason) => skipped.push(reason),
        }
    }
    (out, skipped)
}

/// Stores of the environment that dk can introspect (database providers), sorted.
pub fn introspectable_stores(env: &ResolvedProject) -> BTreeSet<String> {
    env.stores
        .values()
        .filter(|s| crate::compile::PROVIDER_TYPES.contains(&s.connector_type.as_str()))
        .map(|s| s.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dk_providers::model::{ColumnSpec, LogicalType};

    #[test]
    fn names_are_valid_and_unique() {
        let mut taken: HashSet<String> = ["orders".to_string()].into_iter().collect();
        assert_eq!(unique_name("sales", "Orders", &mut taken), "sales-orders");
        assert_eq!(unique_name("sales", "orders", &mut taken), "orders-2");
        assert_eq!(unique_name("main", "2024_data", &mut taken), "x-2024-data");
        assert_eq!(unique_name("main", "Line Items", &mut taken), "line-items");
    }

    #[test]
    fn manifest_carries_types_nullability_and_comment_metadata() {
        let table = Resource::new(
            "wh",
            ResourceSpec::Table {
                schema: "sales".into(),
                name: "orders".into(),
                columns: vec![
                    ColumnSpec {
                        name: "id".into(),
                        ty: LogicalType::BigInt,
                        nullable: false,
                        comment: Some("Order id".into()),
                    },
                    ColumnSpec {
                        name: "email".into(),
                        ty: LogicalType::String,
                        nullable: true,
                        comment: Some(
                            "Buyer\ndk: {\"classification\":\"confidential\",\"pii\":true}".into(),
                        ),
                    },
                    ColumnSpec {
                        name: "amount".into(),
                        ty: LogicalType::Decimal(12, 2),
                        nullable: true,
                        comment: None,
                    },
                ],
                comment: Some("dk: {\"classification\":\"internal\"}".into()),
            },
            vec![],
        );
        let mut taken = HashSet::new();
        let ds = dataset_manifest(&table, "postgres", &mut taken).expect("a table");
        assert_eq!(ds.metadata.name, "orders");
        assert_eq!(ds.spec.table.as_deref(), Some("sales.orders"));
        assert_eq!(ds.spec.classification.as_deref(), Some("internal"));
        assert_eq!(ds.spec.description, None);
        let c = &ds.spec.schema;
        assert_eq!(
            (c[0].type_.as_str(), c[0].nullable),
            ("bigint", Some(false))
        );
        assert_eq!(c[0].description.as_deref(), Some("Order id"));
        assert_eq!(c[1].classification.as_deref(), Some("confidential"));
        assert!(c[1].pii);
        assert_eq!(c[1].description.as_deref(), Some("Buyer"));
        assert_eq!(c[2].type_, "decimal(12,2)");
        // Every logical type's text parses back to the same type.
        for c in c {
            let t = LogicalType::parse(&c.type_).expect("parses");
            assert_eq!(t.to_string(), c.type_);
        }
    }
}
