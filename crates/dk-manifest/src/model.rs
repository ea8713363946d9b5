//! The manifest kinds of `datakit.infoblox.dev/v1alpha1`, as serde types.
//!
//! These types are the single source of truth: the JSON Schemas `dk schema export` writes and the
//! schema the loader validates against are generated from them (schemars). Serde is lenient here
//! (missing fields default, unknown fields are ignored) because the validator reports those
//! conditions itself, with codes and locations; the schema marks what is required for editors.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The one apiVersion dk reads.
pub const API_VERSION: &str = "datakit.infoblox.dev/v1alpha1";
/// The API group: documents of this group with another version get W109.
pub const API_GROUP: &str = "datakit.infoblox.dev";

/// The kinds dk knows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Kind {
    Project,
    Connector,
    Store,
    DataSet,
    DataSetGroup,
    Transform,
    Environment,
    Policy,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Project,
        Kind::Connector,
        Kind::Store,
        Kind::DataSet,
        Kind::DataSetGroup,
        Kind::Transform,
        Kind::Environment,
        Kind::Policy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Project => "Project",
            Kind::Connector => "Connector",
            Kind::Store => "Store",
            Kind::DataSet => "DataSet",
            Kind::DataSetGroup => "DataSetGroup",
            Kind::Transform => "Transform",
            Kind::Environment => "Environment",
            Kind::Policy => "Policy",
        }
    }

    /// Parses a kind name as written in `kind:` (exact case).
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// Parses the lower-case spelling used on the command line (`dataset`, `transform`, ...).
    pub fn parse_cli(s: &str) -> Option<Kind> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
    }

    /// `dataset`, `transform`, ...: the spelling used in `dk show KIND/NAME` and selectors.
    pub fn cli_name(self) -> String {
        self.as_str().to_ascii_lowercase()
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `metadata` of every kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Metadata {
    /// `^[a-z][a-z0-9-]{0,62}$`; how other manifests refer to this one.
    #[schemars(required, regex(pattern = r"^[a-z][a-z0-9-]{0,62}$"))]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// SemVer version of this manifest (used by tag selectors with a `version` range).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub annotations: IndexMap<String, String>,
}

/// The envelope every kind shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Resource<S: Default> {
    #[schemars(required)]
    pub api_version: String,
    #[schemars(required)]
    pub kind: String,
    #[serde(default)]
    #[schemars(required)]
    pub metadata: Metadata,
    #[serde(default)]
    #[schemars(required)]
    pub spec: S,
}

impl<S: Default> Resource<S> {
    /// A new manifest of `kind` named `name` (used by scaffolding).
    pub fn new(kind: Kind, name: &str, spec: S) -> Self {
        Resource {
            api_version: API_VERSION.to_string(),
            kind: kind.as_str().to_string(),
            metadata: Metadata {
                name: name.to_string(),
                ..Metadata::default()
            },
            spec,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Project

/// `kind: Project` — the project root marker (`project.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ProjectSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The environment used when `-e` is not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_backend: Option<StateBackend>,
    /// Glob patterns (relative to the project root) of files and directories the loader skips.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// Where state is kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct StateBackend {
    /// `local` (default, `.dk/state/<env>/`) or `postgres`.
    #[serde(rename = "type")]
    #[schemars(required)]
    pub type_: String,
    /// PostgreSQL URL (`${DK_STATE_URL}`), for `type: postgres`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PostgreSQL schema for the state tables (default `dk_state`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Directory for `type: local` (default `.dk/state`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Connector

/// `kind: Connector` — a technology type (platform engineers).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ConnectorSpec {
    /// Technology: postgres, mysql, duckdb, sqlite, file, s3, kafka, nats, dataiku, snowflake, ...
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(required)]
    pub type_: Option<String>,
    /// Logical identity Stores may reference (defaults to `type`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// SemVer version of the connector definition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// `source`, `destination`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(required)]
    pub capabilities: Vec<String>,
    /// CloudQuery plugin images (DataKit compatibility).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginImages>,
    /// DataKit connector tools (kept for compatibility; dk does not execute them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Value>,
    /// Connection keys the connector accepts (documentation).
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub connection_schema: IndexMap<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct PluginImages {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Store

/// `kind: Store` — an instance of a Connector with its default (dev) connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct StoreSpec {
    /// A Connector name.
    #[schemars(required)]
    pub connector: String,
    /// SemVer range of acceptable connector versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector_version: Option<String>,
    /// Connection settings (never credentials).
    #[schemars(required)]
    pub connection: IndexMap<String, Value>,
    /// Credentials, only as `${VAR}` references.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, String>,
}

// ---------------------------------------------------------------------------------------------
// DataSet

/// `kind: DataSet` — a data contract: a table, prefix or topic in a Store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct DataSetSpec {
    /// A Store name.
    #[schemars(required)]
    pub store: String,
    /// `schema.table` (or `table`) in a database store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Object-store or file path prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Stream topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// parquet, csv, json, jsonl, avro.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// public, internal, confidential, restricted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// A source dk must not create, only check.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// Columns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schema: Vec<Column>,
    /// APX schema module reference `module[@constraint]` (DataKit compatibility).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_ref: Option<String>,
    /// Table-level checks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// Development-only seed data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<DevSpec>,
}

/// A column of a DataSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Column {
    #[schemars(required)]
    pub name: String,
    /// Logical type: integer, bigint, smallint, string, text, boolean, float, double,
    /// decimal(p,s), date, time, timestamp, timestamptz, json, binary, uuid.
    #[serde(rename = "type")]
    #[schemars(required)]
    pub type_: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pii: bool,
    /// Defaults to true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nullable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Column-level classification (defaults to the DataSet's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    /// Column lineage: `dataset.column` this column is derived from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

/// A data check: a bare name (`not_null`) or a one-key mapping with arguments
/// (`accepted_values: {values: [a, b]}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Check {
    Name(String),
    WithArgs(IndexMap<String, CheckArgs>),
}

impl Check {
    /// The check's name and its arguments (default arguments for the bare form).
    pub fn parts(&self) -> Vec<(String, CheckArgs)> {
        match self {
            Check::Name(n) => vec![(n.clone(), CheckArgs::default())],
            Check::WithArgs(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

/// Arguments of a check (which apply depends on the check).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct CheckArgs {
    /// `warn` or `error` (default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// accepted_values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Value>,
    /// relationships: `dataset.column`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// range, row_count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Value>,
    /// regex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// freshness: the timestamp column and the maximum age (`24h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// expression: a SQL boolean that every row must satisfy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// Only rows matching this SQL predicate are checked.
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_: Option<String>,
}

/// `spec.dev` of a DataSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct DevSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<Seed>,
}

/// Seed rows for development environments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Seed {
    /// Rows as mappings column → value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inline: Vec<IndexMap<String, Value>>,
    /// A CSV or JSON-lines file relative to the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub profiles: IndexMap<String, Seed>,
}

// ---------------------------------------------------------------------------------------------
// DataSetGroup

/// `kind: DataSetGroup` (DataKit compatibility): a named set of DataSets in one Store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct DataSetGroupSpec {
    #[schemars(required)]
    pub store: String,
    #[schemars(required)]
    pub datasets: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Transform

/// `kind: Transform` — compute that reads input DataSets and writes output DataSets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct TransformSpec {
    /// sql, dbt, sync, python; DataKit's cloudquery (= sync), generic-go, generic-python.
    #[schemars(required)]
    pub runtime: String,
    /// batch (default) or streaming.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[schemars(required)]
    pub inputs: Vec<DataSetRef>,
    #[schemars(required)]
    pub outputs: Vec<DataSetRef>,
    /// SQL file (runtime sql), relative to this manifest; minijinja templated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// dbt model selector (runtime dbt); defaults to the transform's outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// dbt project directory (runtime dbt), relative to this manifest; default: this directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Python script (runtime python), relative to this manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// view, table or incremental (runtime sql).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub materialized: Option<String>,
    /// Key columns for incremental merge.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unique_key: Vec<String>,
    /// Cursor column for incremental loads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Template variables for `{{ var('name') }}`.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub vars: IndexMap<String, Value>,
    /// Container image (generic-go, generic-python).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Maximum run time (`30m`, `1h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retries after a failure (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub replicas: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineage: Option<LineageSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Unit tests run on embedded DuckDB from fixtures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<UnitTest>,
    /// Masking / anonymising steps: output columns derived from more sensitive inputs that this
    /// transform hashes, redacts or aggregates (waives the classification-along-lineage rule).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masking: Vec<Masking>,
}

/// A masking step of a Transform (docs/policies.md, classification along lineage).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Masking {
    /// The output DataSet (default: every output of the transform).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Output columns the step masks; empty = the whole dataset (e.g. an aggregate).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// hash, redact, tokenize, aggregate, anonymize, …
    #[schemars(required)]
    pub method: String,
}

/// A reference to DataSets: by name, or by labels with a SemVer range.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct DataSetRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Label selector over DataSets.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub tags: IndexMap<String, String>,
    /// SemVer range on the selected DataSets' `metadata.version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// DataKit cell (cross-cell resolution; kept for compatibility).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
    /// Schema module for consumer-side validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct EnvVar {
    #[schemars(required)]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<Value>,
}

/// When a transform runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Trigger {
    /// schedule, on-change, manual, composite.
    #[schemars(required)]
    pub policy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// For `composite`: the policies combined.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Schedule {
    /// Five-field cron (or six with seconds).
    #[schemars(required)]
    pub cron: String,
    /// IANA timezone (default UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// Compute resources (both the DataKit `{cpu, memory}` and the `{requests, limits}` shapes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceAmounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceAmounts>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct ResourceAmounts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct LineageSpec {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emitter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval: Option<String>,
}

/// A unit test of a transform: fixtures in, expected rows out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct UnitTest {
    #[schemars(required)]
    pub name: String,
    /// Per input dataset: rows, or a CSV file path.
    #[schemars(required)]
    pub given: IndexMap<String, Fixture>,
    #[schemars(required)]
    pub expect: Fixture,
    /// Compare rows in order (default: as a multiset, order-insensitive).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ordered: bool,
}

/// Rows inline or a CSV file (relative to the manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Fixture {
    Rows(Vec<IndexMap<String, Value>>),
    File(String),
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::Rows(Vec::new())
    }
}

// ---------------------------------------------------------------------------------------------
// Environment

/// `kind: Environment` — where and under which rules a project is deployed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// dev, stage, prod.
    #[schemars(required)]
    pub tier: String,
    /// Promotion order (dev 1 → stage 2 → prod 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Per Store: connection overrides, secrets, or a different connector.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub bindings: IndexMap<String, Binding>,
    /// Values for `${VAR}`.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub variables: IndexMap<String, String>,
    /// `ranges` (dev) or `exact` (prod).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_connectors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftSpec>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_tests: bool,
    /// Refuse applying plans made from a Git tree with uncommitted changes unless `--allow-dirty`
    /// (default: true in tier `prod`, false elsewhere); `false` lets prod apply dirty plans,
    /// `true` makes any tier refuse them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_clean_git: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
}

/// An environment's binding for one Store. Two forms are accepted: structured
/// (`{connector, connection, secrets}`) and the seed's flat form (`{type: snowflake, account: …}`,
/// where `type` names the connector type and every other key is a connection key).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Binding {
    /// A Connector name to swap the technology.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub connection: IndexMap<String, Value>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub secrets: IndexMap<String, String>,
    /// Flat form: the connector type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Flat form: connection keys.
    #[serde(flatten)]
    pub flat: IndexMap<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Approval {
    /// Distinct approvals a plan needs.
    pub required: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<Approver>,
    /// destructive, breaking, pii, always.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require_for: Vec<String>,
    /// Plans that need no approval apply without one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auto_approve: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Approver {
    #[schemars(required)]
    pub name: String,
    /// Ed25519 public key (base64), as printed by `dk keygen`.
    #[schemars(required)]
    pub public_key: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Quotas {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datasets: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transforms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables_per_store: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct DriftSpec {
    /// alert (default) or auto-correct.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<DriftIgnore>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct DriftIgnore {
    /// A resource address (`table.warehouse.public.users`); `*` matches any part.
    #[schemars(required)]
    pub resource: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    #[schemars(required)]
    pub reason: String,
    /// RFC 3339 date after which the rule stops applying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Policy

/// `kind: Policy` — guardrails evaluated at lint and plan time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Built-in rule packs to enable: versions, quality, security, changes (docs/policies.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packs: Vec<String>,
    /// Rules (required unless `packs` is given).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<PolicyRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct PolicyRule {
    #[schemars(required)]
    pub name: String,
    /// error (default), warning, info.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applies_to: Option<AppliesTo>,
    /// Boolean expression over the JSON view of a manifest or planned action.
    #[schemars(required)]
    pub condition: String,
    #[schemars(required)]
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct AppliesTo {
    /// Manifest kinds (manifest rules) or `Change` (a rule over each planned action).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub labels: IndexMap<String, String>,
}

pub type Project = Resource<ProjectSpec>;
pub type Connector = Resource<ConnectorSpec>;
pub type Store = Resource<StoreSpec>;
pub type DataSet = Resource<DataSetSpec>;
pub type DataSetGroup = Resource<DataSetGroupSpec>;
pub type Transform = Resource<TransformSpec>;
pub type Environment = Resource<EnvironmentSpec>;
pub type Policy = Resource<PolicySpec>;

/// A typed manifest of any kind. (Variants differ in size; each document holds exactly one, so
/// boxing would only add an allocation per document.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Manifest {
    Project(Project),
    Connector(Connector),
    Store(Store),
    DataSet(DataSet),
    DataSetGroup(DataSetGroup),
    Transform(Transform),
    Environment(Environment),
    Policy(Policy),
}

impl Manifest {
    pub fn kind(&self) -> Kind {
        match self {
            Manifest::Project(_) => Kind::Project,
            Manifest::Connector(_) => Kind::Connector,
            Manifest::Store(_) => Kind::Store,
            Manifest::DataSet(_) => Kind::DataSet,
            Manifest::DataSetGroup(_) => Kind::DataSetGroup,
            Manifest::Transform(_) => Kind::Transform,
            Manifest::Environment(_) => Kind::Environment,
            Manifest::Policy(_) => Kind::Policy,
        }
    }

    pub fn metadata(&self) -> &Metadata {
        match self {
            Manifest::Project(r) => &r.metadata,
            Manifest::Connector(r) => &r.metadata,
            Manifest::Store(r) => &r.metadata,
            Manifest::DataSet(r) => &r.metadata,
            Manifest::DataSetGroup(r) => &r.metadata,
            Manifest::Transform(r) => &r.metadata,
            Manifest::Environment(r) => &r.metadata,
            Manifest::Policy(r) => &r.metadata,
        }
    }

    /// Deserializes a JSON value of a known kind; on failure, the JSON pointer of the offending
    /// value and serde's message.
    pub fn from_value(kind: Kind, value: &Value) -> Result<Manifest, (String, String)> {
        fn de<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, (String, String)> {
            serde_path_to_error::deserialize(v).map_err(|e| {
                let path = e.path().to_string();
                let pointer = path_to_pointer(&path);
                (pointer, e.into_inner().to_string())
            })
        }
        Ok(match kind {
            Kind::Project => Manifest::Project(de(value)?),
            Kind::Connector => Manifest::Connector(de(value)?),
            Kind::Store => Manifest::Store(de(value)?),
            Kind::DataSet => Manifest::DataSet(de(value)?),
            Kind::DataSetGroup => Manifest::DataSetGroup(de(value)?),
            Kind::Transform => Manifest::Transform(de(value)?),
            Kind::Environment => Manifest::Environment(de(value)?),
            Kind::Policy => Manifest::Policy(de(value)?),
        })
    }
}

/// Turns serde_path_to_error's `a.b[0].c` into the JSON pointer `/a/b/0/c`.
fn path_to_pointer(path: &str) -> String {
    if path == "." || path.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for seg in path.split('.') {
        let mut rest = seg;
        if let Some(i) = rest.find('[') {
            let (name, idx) = rest.split_at(i);
            if !name.is_empty() {
                out.push('/');
                out.push_str(name);
            }
            rest = idx;
            for part in rest.split('[').filter(|p| !p.is_empty()) {
                out.push('/');
                out.push_str(part.trim_end_matches(']'));
            }
        } else {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_to_pointer_handles_indexes() {
        assert_eq!(
            path_to_pointer("spec.inputs[0].dataset"),
            "/spec/inputs/0/dataset"
        );
        assert_eq!(path_to_pointer("."), "");
    }
}
