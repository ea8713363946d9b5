//! The one diagnostic code space of `dk`.
//!
//! Every diagnostic any crate emits carries one of these codes. Codes keep the numbers of the DataKit
//! Go implementation where its meaning was unambiguous (E001, E002, E020, E031, W209, W210, E2xx,
//! E3xx); everything new gets a number of its own, grouped by subsystem:
//!
//! | range | subsystem |
//! |---|---|
//! | E001–E099 | metadata and generic field rules |
//! | E100–E199 | files and YAML (loader) |
//! | E200–E299 | per-kind field rules (Connector 20x, Store 21x, DataSet 22x, Transform 23x, DataSetGroup 24x, Environment 25x, Project 26x, Policy 27x) |
//! | E300–E399 | schema references and locks |
//! | E400–E499 | references between manifests and the graph |
//! | E600–E699 | governance: policies (60x), guardrails (61x), lineage (62x), breaking changes (63x) |
//!
//! `docs/diagnostics.md` is generated from this table (`dk diagnostics --markdown`) and a test fails
//! when it is stale.

use serde::Serialize;

use crate::Severity;

macro_rules! codes {
    ($( $variant:ident => ($id:literal, $sev:ident, $title:literal, $explain:literal), )*) => {
        /// A diagnostic code. `Code::ALL` lists them in documentation order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $( $variant, )* }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The stable identifier, e.g. `E230`.
            pub fn id(self) -> &'static str { match self { $( Code::$variant => $id, )* } }

            /// The severity a diagnostic with this code has unless its producer says otherwise.
            pub fn default_severity(self) -> Severity { match self { $( Code::$variant => Severity::$sev, )* } }

            /// One line naming the condition.
            pub fn title(self) -> &'static str { match self { $( Code::$variant => $title, )* } }

            /// A paragraph: why it matters and how to fix it.
            pub fn explanation(self) -> &'static str { match self { $( Code::$variant => $explain, )* } }

            /// Looks a code up by its identifier (`"E230"`).
            pub fn from_id(id: &str) -> Option<Code> {
                Code::ALL.iter().copied().find(|c| c.id().eq_ignore_ascii_case(id))
            }
        }
    };
}

codes! {
    NameInvalid => ("E001", Error, "metadata.name is missing or not a valid name",
        "Every manifest needs `metadata.name` matching `^[a-z][a-z0-9-]{0,62}$` (lower case letters, digits and hyphens, starting with a letter). Names are how other manifests refer to this one."),
    InvalidEnum => ("E002", Error, "a field has a value outside its allowed set",
        "Fields such as `spec.runtime`, `spec.mode`, `spec.classification`, `spec.capabilities`, `spec.trigger.policy`, `spec.tier` accept a fixed set of values; the message lists them."),
    InvalidSemver => ("E020", Error, "a version or version range is not valid SemVer",
        "`metadata.version` and Connector `spec.version` must be a SemVer version (`1.2.3`); `connectorVersion` and DataSet reference `version` fields must be SemVer ranges (`>=1.0.0, <2`)."),
    InvalidDuration => ("E031", Error, "a duration is not valid",
        "Durations are written as a number and a unit: `90s`, `30m`, `1h`, `1h30m`, `2d`."),
    DuplicateColumn => ("E043", Error, "a DataSet declares the same column twice",
        "Column names in `spec.schema` must be unique."),
    DuplicateName => ("E050", Error, "two manifests of the same kind have the same name",
        "References are by name, so `(kind, metadata.name)` must be unique in a project. Rename one of them or delete the copy."),
    YamlSyntax => ("E100", Error, "the file is not valid YAML",
        "The YAML parser stopped at the position shown. Every `*.yaml`/`*.yml` file under the project root is read; fix the file, or list it in the Project's `spec.exclude` if it is not meant to be YAML."),
    NotUtf8 => ("E101", Error, "the file is not valid UTF-8",
        "Manifests must be UTF-8 text. Re-save the file as UTF-8."),
    EmptyFile => ("W102", Warning, "the YAML file is empty",
        "An empty file declares nothing and is skipped. Delete it or give it content."),
    Io => ("E103", Error, "a file or directory could not be read",
        "The path could not be read (missing, permission denied, or not a directory)."),
    UnknownKind => ("W104", Warning, "a document has the dk apiVersion but a kind dk does not know",
        "Known kinds: Project, Connector, Store, DataSet, DataSetGroup, Transform, Environment, Policy. Legacy DataKit kinds (such as `Pipeline`) are skipped: the pipeline graph now emerges from Transform inputs and outputs."),
    MissingKind => ("E105", Error, "a document has the dk apiVersion but no kind",
        "Add `kind:` with one of the known kinds."),
    WrongType => ("E106", Error, "a field has the wrong type",
        "The value does not have the type the field needs (for example a list where a mapping is expected). Values that look like numbers or booleans but are meant as text must be quoted."),
    UnknownField => ("W107", Warning, "a field is not part of the kind's schema",
        "Unknown fields are ignored. It is often a typo: the message suggests the closest known field. `--strict` makes this an error."),
    NotAManifest => ("I108", Info, "a YAML file that looks like a legacy DataKit file is not a manifest",
        "Files without the dk apiVersion are ignored. This one looks like a legacy DataKit file (for example a bare `bindings.yaml` list); it is skipped. Environment bindings now live in Environment manifests."),
    UnsupportedApiVersion => ("W109", Warning, "a document uses an apiVersion of the DataKit group that dk does not support",
        "dk reads `datakit.infoblox.dev/v1alpha1`. Documents of other versions are skipped."),
    InvalidValue => ("E110", Error, "a field value is out of range",
        "The value breaks a constraint of the field (a minimum, a maximum, a length)."),
    ConnectorTypeRequired => ("E200", Error, "Connector spec.type is required",
        "A Connector names the technology it stands for in `spec.type` (postgres, duckdb, file, s3, kafka, ...)."),
    ConnectorCapabilitiesRequired => ("E201", Error, "Connector spec.capabilities is required",
        "List what the connector can be used as: `capabilities: [source, destination]`."),
    UnknownConnectorType => ("I202", Info, "a Connector type has no provider in this version of dk",
        "Lint and the pipeline graph accept any connector type; plan and apply need a provider for the stores that use it."),
    StoreConnectorRequired => ("E210", Error, "Store spec.connector is required",
        "A Store is an instance of a Connector: set `spec.connector` to a Connector name."),
    StoreConnectionRequired => ("E211", Error, "Store spec.connection is required and must not be empty",
        "Give the connection settings (for example `path` for DuckDB, `host`/`port`/`database` for PostgreSQL)."),
    SecretLiteral => ("E212", Error, "a secret is written as a literal value",
        "Credentials must never be committed. Write `${VAR}` and provide VAR in the environment (or the Environment's variables) at plan/apply time."),
    SecretNotReference => ("W213", Warning, "a value under spec.secrets is not a ${VAR} reference",
        "`secrets` is for credentials, which must be `${VAR}` references. This value does not look like a credential: move it to `spec.connection`, or make it a reference."),
    CredentialInConnection => ("E214", Error, "a credential is written in spec.connection",
        "Passwords, tokens and keys belong under `spec.secrets` as `${VAR}` references, never in `connection`."),
    DataSetStoreRequired => ("E220", Error, "DataSet spec.store is required",
        "A DataSet lives in a Store: set `spec.store` to a Store name."),
    DataSetLocationRequired => ("E221", Error, "DataSet needs one of spec.table, spec.prefix or spec.topic",
        "Say where the data lives: `table` (schema.table), `prefix` (object-store path) or `topic` (stream)."),
    ColumnIncomplete => ("E222", Error, "a DataSet column needs a name and a type",
        "Each `spec.schema` entry needs `name` and `type`."),
    UnknownFormat => ("W223", Warning, "a DataSet format is not one dk knows",
        "Known formats: parquet, csv, json, jsonl, avro. Other values are kept but dk cannot read or write them."),
    InvalidTableName => ("E224", Error, "a table name cannot be represented in the target",
        "`table` is `name` or `schema.name`; each part is 1–63 bytes and may not contain NUL or quotes."),
    UnknownColumnType => ("W225", Warning, "a column type is not a dk logical type",
        "Logical types: integer, bigint, smallint, string, text, boolean, float, double, decimal(p,s), date, time, timestamp, timestamptz, json, binary, uuid. Other types are passed through as native types and may not map between stores."),
    InvalidCheck => ("E226", Error, "a data check is not well-formed",
        "Checks are `not_null`, `unique`, `accepted_values {values}`, `relationships {to: dataset.column}`, `range {min, max}`, `regex {pattern}`, `row_count {min, max}`, `freshness {column, maxAge}`, `expression {sql}`; each takes the arguments shown."),
    NoTrigger => ("W209", Warning, "a batch Transform has no trigger",
        "Without `spec.trigger` the transform only runs when selected by hand (manual). Add `trigger: {policy: schedule, schedule: {cron: ...}}` or `policy: on-change`, or `policy: manual` to say so."),
    RefVersionWithoutTags => ("W210", Warning, "a DataSet reference has a version but no tags",
        "`version` is a SemVer range applied to DataSets selected by `tags`; with `dataset:` it is ignored."),
    InputsRequired => ("E230", Error, "a Transform needs at least one input",
        "List the DataSets the transform reads in `spec.inputs`."),
    OutputsRequired => ("E231", Error, "a Transform needs at least one output",
        "List the DataSets the transform writes in `spec.outputs`."),
    ImageRequired => ("E232", Error, "a container runtime needs spec.image",
        "`generic-go` and `generic-python` transforms run a container image: set `spec.image`."),
    RefTargetRequired => ("E233", Error, "a DataSet reference names neither a dataset nor tags",
        "Write `{dataset: NAME}` or `{tags: {KEY: VALUE}, version: RANGE}`."),
    RefAmbiguous => ("E234", Error, "a DataSet reference names both a dataset and tags",
        "Use either `dataset:` or `tags:`, not both."),
    ScheduleRequired => ("E235", Error, "a schedule trigger needs spec.trigger.schedule",
        "With `policy: schedule`, give `schedule: {cron: \"0 * * * *\", timezone: UTC}`."),
    InvalidCron => ("E236", Error, "a cron expression does not parse",
        "Use five fields (minute hour day-of-month month day-of-week), optionally six with seconds first, for example `0 */6 * * *`."),
    InvalidTimezone => ("E237", Error, "a timezone is not an IANA timezone name",
        "Use a name from the IANA database such as `UTC`, `Europe/Berlin`, `America/New_York`."),
    InvalidComposite => ("E238", Error, "a composite trigger is not well-formed",
        "`policy: composite` needs `policies:` listing two or more of schedule, on-change, manual (each once); with `schedule` among them, `schedule:` is required too."),
    SqlFileMissing => ("E239", Error, "a file the Transform names does not exist",
        "`spec.sql`, `spec.script` and `spec.project` paths are relative to the manifest's directory."),
    GroupStoreRequired => ("E240", Error, "DataSetGroup spec.store is required",
        "Set `spec.store` to the Store the grouped DataSets live in."),
    GroupDatasetsRequired => ("E241", Error, "DataSetGroup spec.datasets must list unique DataSet names",
        "List at least one DataSet name, each once."),
    RuntimeFieldMismatch => ("E242", Error, "a Transform field does not fit its runtime",
        "`sql` and `materialized` belong to `runtime: sql` (and `dbt`), `script` to `runtime: python`; incremental materialization needs `uniqueKey` or `cursor`."),
    ApprovalUnsatisfiable => ("E250", Error, "an Environment requires more approvals than it has approvers",
        "`approval.required` cannot exceed the number of listed approvers."),
    InvalidDate => ("E251", Error, "a date is not valid",
        "Dates are RFC 3339 (`2026-12-31` or `2026-12-31T00:00:00Z`)."),
    StateBackendInvalid => ("E260", Error, "the Project's stateBackend is not complete",
        "`stateBackend: {type: local}` (default) or `{type: postgres, url: \"${DK_STATE_URL}\", schema: dk_state}`."),
    MultipleProjects => ("E261", Error, "more than one Project manifest",
        "A project has exactly one `kind: Project` (the project.yaml at its root)."),
    PolicyRuleInvalid => ("E270", Error, "a Policy rule is not well-formed",
        "Each rule needs a unique `name`, a `condition` and a `message`; `severity` is error, warning or info."),
    SchemaRefConflict => ("E310", Error, "a DataSet has both spec.schema and spec.schemaRef",
        "Declare the columns inline or point at a schema module, not both."),
    SchemaRefInvalid => ("E311", Error, "a schema reference is not well-formed",
        "Write `module` or `module@constraint` with a lower-case module name."),
    UnknownConnector => ("E400", Error, "a Store names a Connector that does not exist",
        "Create the Connector (`dk connector create NAME --type TYPE`) or fix the name. Outside a project (no project.yaml) this is a warning."),
    UnknownStore => ("E401", Error, "a manifest names a Store that does not exist",
        "Create the Store (`dk store create NAME --connector C`) or fix the name. Outside a project (no project.yaml) this is a warning."),
    UnknownDataSet => ("E402", Error, "a reference names a DataSet that does not exist",
        "Create the DataSet (`dk dataset create NAME --store S --table T`) or fix the name. Outside a project (no project.yaml) this is a warning."),
    SelectorMatchesNothing => ("E403", Error, "a tag selector matches no DataSet",
        "No DataSet has all the labels given in `tags` with a `metadata.version` in the `version` range."),
    UnknownLineageColumn => ("E404", Error, "a column's `from:` names a dataset column that does not exist",
        "`from:` is `dataset.column` and must name a column declared in that DataSet's schema."),
    UnknownBindingStore => ("E405", Error, "an Environment binds a Store that does not exist",
        "Binding keys are Store names. Fix the name or create the Store."),
    DuplicateProducer => ("E406", Error, "two Transforms write the same DataSet",
        "Each DataSet has at most one producing Transform. Make one of them write a different DataSet. Outside a project (no project.yaml) this is a warning."),
    GraphCycle => ("E407", Error, "the pipeline graph has a cycle",
        "A transform's output feeds back into its own inputs. The cycle path is shown; break it by removing one of the edges."),
    UnknownEnvironment => ("E408", Error, "a name refers to an Environment that does not exist",
        "Create the Environment manifest or fix the name."),
    UnresolvedVariable => ("E409", Error, "a ${VAR} reference has no value",
        "Variables resolve from the Environment's `spec.variables`, then the process environment, then the default in `${VAR:-default}`. Set the variable (for example `export SHOP_PG_PASSWORD=...`) or give a default."),
    InvalidVariable => ("E410", Error, "a ${...} reference is malformed",
        "Write `${NAME}` or `${NAME:-default}` with NAME made of letters, digits and `_`, not starting with a digit. Write `$${` for a literal `${`."),
    TemplateError => ("E411", Error, "a transform's SQL template does not render",
        "SQL files are minijinja templates: `{{ ref('dataset') }}` names a DataSet, `{{ var('name') }}` a variable from the transform's `vars` or the environment. The message shows the template error."),
    NoProvider => ("E412", Error, "a resource needs a provider dk does not have",
        "`dk plan` and `dk apply` manage tables and views in stores of type postgres and duckdb. Other stores are accepted by lint and the graph; mark such DataSets `external: true` or bind the store to a supported technology in this environment."),
    ViewAcrossStores => ("E413", Error, "a view reads a DataSet in another store",
        "A `materialized: view` transform runs inside its output's store, so every input must live in that store. Use `materialized: table` (filled by `dk run`, which moves data between stores) or move the input."),
    PolicyViolation => ("E600", Error, "a policy rule is violated",
        "A rule of a Policy manifest or of a built-in pack (`versions`, `quality`, `security`, `changes`) does not hold for a manifest (`dk lint -e ENV`) or a planned change (`dk plan`). The rule's severity sets the diagnostic's; error-severity violations make plan and apply exit 4. The message and help name the rule and where it is defined; see docs/policies.md for the JSON each condition sees."),
    PolicyConditionInvalid => ("E601", Error, "a policy condition is not a valid CEL expression",
        "Conditions are CEL expressions (https://cel.dev) that must evaluate to true for a compliant manifest or change. Fix the syntax at the reported position."),
    PolicyEvaluationFailed => ("E602", Error, "a policy condition failed to evaluate",
        "The condition raised an error (a missing field, a type mismatch) or returned something other than a boolean. Guard optional fields with `has(object.spec.field)`; the views are documented in docs/policies.md."),
    ConnectorNotAllowed => ("E610", Error, "a Store uses a connector the environment does not allow",
        "The Environment's `allowedConnectors` lists the connector types (or Connector names) its Stores may use. Bind the store to an allowed technology in this environment or extend the list."),
    QuotaExceeded => ("E611", Error, "an environment quota is exceeded",
        "The Environment's `quotas` cap the number of DataSets, Transforms and tables per Store. Remove manifests, or raise the quota in the Environment."),
    ProtectedEnvironment => ("E612", Error, "a protected environment cannot be destroyed",
        "The Environment has `protected: true`: `dk destroy` and `dk plan --destroy` are refused. Remove `protected` in a reviewed change first if the environment really must go."),
    TestsRequired => ("E613", Error, "the environment requires passing tests for these manifests",
        "The Environment has `requireTests: true`: apply is refused unless a passing `dk test` run is recorded for the same manifests digest."),
    ClassificationDowngrade => ("E620", Error, "a transform writes data classified lower than what it reads",
        "Classification along lineage (pack `security`): a Transform's output must be classified at least as high as its most sensitive input, and a column with `from:` lineage at least as high as its source column, unless the Transform declares a `masking` step for that output or column. The message names the path input → transform → output."),
    BreakingChange => ("W630", Warning, "a plan drops or narrows a column that downstream transforms read",
        "The plan drops, renames or narrows a DataSet column (or drops the DataSet) that other Transforms and DataSets read, listed in the plan. Environments whose `approval.requireFor` includes `breaking` need approvals for such a plan."),
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// Renders the code table as Markdown (the content of `docs/diagnostics.md`).
pub fn markdown_reference() -> String {
    let mut out = String::from(
        "# Diagnostics reference\n\n\
         <!-- Generated by `dk diagnostics --markdown` from crates/dk-diagnostics/src/codes.rs. Do not edit by hand. -->\n\n\
         Every diagnostic `dk` prints has a stable code. The letter gives the default severity \
         (E error, W warning, I info); `--strict` turns warnings into errors. Reference codes \
         (E400–E406) are warnings when the linted directory is not a project (no `project.yaml`).\n\n\
         | Code | Severity | Condition |\n|---|---|---|\n",
    );
    for code in Code::ALL {
        out.push_str(&format!(
            "| [{id}](#{anchor}) | {sev} | {title} |\n",
            id = code.id(),
            anchor = code.id().to_ascii_lowercase(),
            sev = code.default_severity(),
            title = code.title()
        ));
    }
    for code in Code::ALL {
        out.push_str(&format!(
            "\n## {id}\n\n**{title}** ({sev})\n\n{explain}\n",
            id = code.id(),
            title = code.title(),
            sev = code.default_severity(),
            explain = code.explanation()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_match_severity_letter() {
        let mut seen = HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.id()), "duplicate id {}", c.id());
            let letter = c.id().chars().next().unwrap();
            let expected = match c.default_severity() {
                Severity::Error => 'E',
                Severity::Warning => 'W',
                Severity::Info => 'I',
            };
            assert_eq!(
                letter,
                expected,
                "{} letter does not match its severity",
                c.id()
            );
        }
    }

    #[test]
    fn from_id_round_trips() {
        for c in Code::ALL {
            assert_eq!(Code::from_id(c.id()), Some(*c));
        }
        assert_eq!(Code::from_id("E999"), None);
    }
}
