//! The one validator: field rules per kind (with DataKit's codes where they exist) and project
//! rules (duplicates, references between manifests, tag selectors, column lineage, bindings).
//!
//! Structural checks (types, unknown fields) run in the loader against the generated schema; this
//! module adds everything a schema cannot say well. Graph rules (cycles, two producers of one
//! DataSet) live in `dk-graph`.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use dk_diagnostics::{Code, Diagnostic, Location, Severity};
use rayon::prelude::*;
use regex::Regex;
use serde_json::Value;

use crate::loader::{Document, ProjectModel};
use crate::model::*;
use crate::refs;
use crate::suggest;

/// Options of a validation run.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidateOptions {
    /// Warnings become errors.
    pub strict: bool,
}

/// Names: `^[a-z][a-z0-9-]{0,62}$`.
pub fn name_regex() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"^[a-z][a-z0-9-]{0,62}$").expect("static regex"))
}

fn var_ref_regex() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}").expect("static regex"))
}

/// Is `s` a valid name?
pub fn is_valid_name(s: &str) -> bool {
    name_regex().is_match(s)
}

/// A valid name derived from `s` (for suggestions): lower case, `_`/space/`.` to `-`.
pub fn sanitize_name(s: &str) -> String {
    let mut out: String = s
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-').to_string();
    let out = if out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("x-{out}")
    } else {
        out
    };
    out.chars().take(63).collect()
}

/// Does a value contain a `${VAR}` reference?
pub fn has_var_ref(s: &str) -> bool {
    var_ref_regex().is_match(s)
}

/// Is a connection/secret key a credential by its name?
pub fn is_credential_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace(['-', '_'], "");
    [
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "privatekey",
        "credential",
        "accesskey",
        "passphrase",
        "sessionkey",
    ]
    .iter()
    .any(|w| k.contains(w))
}

pub const RUNTIMES: &[&str] = &[
    "sql",
    "dbt",
    "sync",
    "python",
    "cloudquery",
    "generic-go",
    "generic-python",
];
pub const MODES: &[&str] = &["batch", "streaming"];
pub const CLASSIFICATIONS: &[&str] = &["public", "internal", "confidential", "restricted"];

/// The built-in policy packs (`Policy spec.packs`; their rules live in dk-env).
pub const POLICY_PACKS: &[&str] = &["versions", "quality", "security", "changes"];
pub const FORMATS: &[&str] = &["parquet", "csv", "json", "jsonl", "avro"];
pub const TRIGGER_POLICIES: &[&str] = &["schedule", "on-change", "manual", "composite"];
pub const MATERIALIZATIONS: &[&str] = &["view", "table", "incremental"];
pub const TIERS: &[&str] = &["dev", "stage", "prod"];
pub const CHECKS: &[&str] = &[
    "not_null",
    "unique",
    "accepted_values",
    "relationships",
    "range",
    "regex",
    "row_count",
    "freshness",
    "expression",
];
/// Connector types dk has (or will have) providers for; others get a note.
pub const KNOWN_CONNECTOR_TYPES: &[&str] = &[
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "duckdb",
    "sqlite",
    "file",
    "s3",
    "kafka",
    "nats",
    "dataiku",
    "snowflake",
];

/// Parses a logical column type; `None` when it is not one.
pub fn is_logical_type(t: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    let r = R.get_or_init(|| {
        Regex::new(r"^(integer|int|bigint|smallint|string|text|varchar|boolean|bool|float|double|decimal(\(\s*\d+\s*(,\s*\d+\s*)?\))?|numeric(\(\s*\d+\s*(,\s*\d+\s*)?\))?|date|time|timestamp|timestamptz|json|binary|uuid)$")
            .expect("static regex")
    });
    r.is_match(&t.trim().to_ascii_lowercase())
}

/// Collects the diagnostics of one document.
struct Ctx<'a> {
    doc: &'a Document,
    out: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    fn push(
        &mut self,
        code: Code,
        pointer: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let mut d = Diagnostic::new(code, message).at(self.doc.loc(pointer));
        if let Some(h) = help {
            d = d.help(h);
        }
        self.out.push(d);
    }

    /// Location for a missing field: the parent mapping's key (e.g. `spec:`), else the document.
    fn missing(
        &mut self,
        code: Code,
        pointer: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let parent = pointer.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        let loc = if self.doc.spans.get(pointer).is_some() {
            self.doc.loc(pointer)
        } else if self.doc.spans.get(parent).and_then(|s| s.key).is_some() {
            self.doc.key_loc(parent)
        } else {
            self.doc.key_loc("/kind")
        };
        let mut d = Diagnostic::new(code, message).at(loc);
        if let Some(h) = help {
            d = d.help(h);
        }
        self.out.push(d);
    }

    fn enum_value(&mut self, pointer: &str, field: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            let help = match suggest::closest(value, allowed.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? allowed: {}", allowed.join(", ")),
                None => format!("allowed: {}", allowed.join(", ")),
            };
            self.push(
                Code::InvalidEnum,
                pointer,
                format!(
                    "{field} must be one of {} (got \"{value}\")",
                    allowed.join(", ")
                ),
                Some(help),
            );
        }
    }

    fn semver(&mut self, pointer: &str, field: &str, value: &str) {
        if semver::Version::parse(value).is_err() {
            self.push(
                Code::InvalidSemver,
                pointer,
                format!("{field} must be valid SemVer (got \"{value}\")"),
                Some("write MAJOR.MINOR.PATCH, for example `1.0.0`".into()),
            );
        }
    }

    fn semver_range(&mut self, pointer: &str, field: &str, value: &str) {
        if semver::VersionReq::parse(value).is_err() {
            self.push(
                Code::InvalidSemver,
                pointer,
                format!("{field} must be a SemVer range (got \"{value}\")"),
                Some("for example `>=1.0.0, <2.0.0`, `^1.2`, `~1.4.0` or `=1.2.3`".into()),
            );
        }
    }

    fn duration(&mut self, pointer: &str, field: &str, value: &str) {
        if humantime::parse_duration(value).is_err() || value.trim().is_empty() {
            self.push(
                Code::InvalidDuration,
                pointer,
                format!("{field} must be a valid duration (e.g., 1h, 30m), got \"{value}\""),
                Some("write a number and a unit: `90s`, `30m`, `1h30m`, `2d`".into()),
            );
        }
    }

    fn file_exists(&mut self, pointer: &str, field: &str, rel: &str) {
        let p = self.doc.dir().join(rel);
        if !p.exists() {
            self.push(
                Code::SqlFileMissing,
                pointer,
                format!("{field} names {rel}, which does not exist next to the manifest"),
                Some(format!(
                    "create {} or fix the path (relative to {})",
                    rel, self.doc.file
                )),
            );
        }
    }
}

fn check_metadata(c: &mut Ctx<'_>, m: &Metadata) {
    if m.name.is_empty() {
        c.missing(
            Code::NameInvalid,
            "/metadata/name",
            "metadata.name is required",
            Some("add `metadata: {name: my-name}`".into()),
        );
    } else if !is_valid_name(&m.name) {
        c.push(
            Code::NameInvalid,
            "/metadata/name",
            format!("metadata.name \"{}\" must be DNS-safe (lower case letters, digits and '-', starting with a letter, at most 63 characters)", m.name),
            Some(format!("for example `{}`", sanitize_name(&m.name))),
        );
    }
    if let Some(ns) = &m.namespace {
        if !is_valid_name(ns) {
            c.push(
                Code::NameInvalid,
                "/metadata/namespace",
                format!("metadata.namespace \"{ns}\" must be DNS-safe"),
                Some(format!("for example `{}`", sanitize_name(ns))),
            );
        }
    }
    if let Some(v) = &m.version {
        c.semver("/metadata/version", "metadata.version", v);
    }
}

fn check_secrets(c: &mut Ctx<'_>, base: &str, secrets: &indexmap::IndexMap<String, String>) {
    for (k, v) in secrets {
        let p = format!("{base}/{}", crate::yaml::escape_pointer(k));
        if v.trim().is_empty() {
            c.push(
                Code::SecretLiteral,
                &p,
                format!("secret `{k}` is empty"),
                Some(format!("write `{k}: ${{{}}}`", k.to_ascii_uppercase())),
            );
        } else if !has_var_ref(v) {
            if is_credential_key(k) {
                c.push(
                    Code::SecretLiteral,
                    &p,
                    format!("secret `{k}` is a literal value; secrets must be ${{VAR}} references"),
                    Some(format!("write `{k}: ${{{}}}` and set the variable at plan/apply time; remove the value from Git history", k.to_ascii_uppercase())),
                );
            } else {
                c.push(
                    Code::SecretNotReference,
                    &p,
                    format!("`{k}` under secrets is not a ${{VAR}} reference"),
                    Some(format!("`{k}` does not look like a credential: move it to `connection`, or write `{k}: ${{{}}}`", k.to_ascii_uppercase())),
                );
            }
        }
    }
}

fn check_connection(c: &mut Ctx<'_>, base: &str, conn: &indexmap::IndexMap<String, Value>) {
    static URL_PW: OnceLock<Regex> = OnceLock::new();
    let url_pw =
        URL_PW.get_or_init(|| Regex::new(r"://[^/\s:@]+:([^@\s]+)@").expect("static regex"));
    for (k, v) in conn {
        let p = format!("{base}/{}", crate::yaml::escape_pointer(k));
        let Some(s) = v.as_str() else { continue };
        if is_credential_key(k) && !has_var_ref(s) && !s.is_empty() {
            c.push(
                Code::CredentialInConnection,
                &p,
                format!("`{k}` is a credential written in connection"),
                Some(format!(
                    "move it to `secrets: {{{k}: ${{{}}}}}`",
                    k.to_ascii_uppercase()
                )),
            );
        } else if let Some(m) = url_pw.captures(s).and_then(|c| c.get(1)) {
            if !has_var_ref(m.as_str()) {
                c.push(
                    Code::CredentialInConnection,
                    &p,
                    format!("`{k}` contains a password"),
                    Some("write the password as ${VAR} (for example `postgres://user:${PG_PASSWORD}@host/db`) or move it to `secrets`".into()),
                );
            }
        }
    }
}

fn check_checks(c: &mut Ctx<'_>, base: &str, checks: &[Check], column_level: bool) {
    for (i, check) in checks.iter().enumerate() {
        let p = format!("{base}/{i}");
        for (name, args) in check.parts() {
            let np = match check {
                Check::Name(_) => p.clone(),
                Check::WithArgs(_) => format!("{p}/{}", crate::yaml::escape_pointer(&name)),
            };
            if !CHECKS.contains(&name.as_str()) {
                let help = match suggest::closest(&name, CHECKS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? checks: {}", CHECKS.join(", ")),
                    None => format!("checks: {}", CHECKS.join(", ")),
                };
                c.push(
                    Code::InvalidCheck,
                    &np,
                    format!("unknown check `{name}`"),
                    Some(help),
                );
                continue;
            }
            let col_only = [
                "not_null",
                "unique",
                "accepted_values",
                "relationships",
                "range",
                "regex",
            ];
            if !column_level && col_only.contains(&name.as_str()) && args.column.is_none() {
                c.push(
                    Code::InvalidCheck,
                    &np,
                    format!("table-level check `{name}` needs `column`"),
                    Some(format!(
                        "write `{name}: {{column: COLUMN}}` or put the check on the column"
                    )),
                );
            }
            let need = |field: &str| format!("check `{name}` needs `{field}`");
            match name.as_str() {
                "accepted_values" if args.values.is_empty() => c.push(
                    Code::InvalidCheck,
                    &np,
                    need("values"),
                    Some("`accepted_values: {values: [a, b]}`".into()),
                ),
                "relationships" => match &args.to {
                    None => c.push(
                        Code::InvalidCheck,
                        &np,
                        need("to"),
                        Some("`relationships: {to: dataset.column}`".into()),
                    ),
                    Some(t) if !t.contains('.') => c.push(
                        Code::InvalidCheck,
                        &np,
                        format!("relationships `to` must be dataset.column (got \"{t}\")"),
                        None,
                    ),
                    _ => {}
                },
                "range" | "row_count" if args.min.is_none() && args.max.is_none() => c.push(
                    Code::InvalidCheck,
                    &np,
                    format!("check `{name}` needs `min` or `max`"),
                    None,
                ),
                "regex" => match &args.pattern {
                    None => c.push(Code::InvalidCheck, &np, need("pattern"), None),
                    Some(pat) => {
                        if let Err(e) = Regex::new(pat) {
                            c.push(
                                Code::InvalidCheck,
                                &np,
                                format!("regex pattern does not compile: {e}"),
                                None,
                            );
                        }
                    }
                },
                "freshness" => match &args.max_age {
                    None => c.push(
                        Code::InvalidCheck,
                        &np,
                        need("maxAge"),
                        Some("`freshness: {column: updated_at, maxAge: 24h}`".into()),
                    ),
                    Some(a) => c.duration(&format!("{np}/maxAge"), "freshness maxAge", a),
                },
                "expression" if args.sql.as_deref().is_none_or(|s| s.trim().is_empty()) => c.push(
                    Code::InvalidCheck,
                    &np,
                    need("sql"),
                    Some("`expression: {sql: \"amount >= 0\"}`".into()),
                ),
                _ => {}
            }
            if let Some(sev) = &args.severity {
                c.enum_value(
                    &format!("{np}/severity"),
                    "check severity",
                    sev,
                    &["warn", "error"],
                );
            }
        }
    }
}

fn check_table_name(c: &mut Ctx<'_>, table: &str) {
    let parts: Vec<&str> = table.split('.').collect();
    let bad = parts.len() > 3
        || parts.iter().any(|p| {
            p.is_empty() || p.len() > 63 || p.contains('\0') || p.contains('"') || p.contains('`')
        });
    if bad {
        c.push(
            Code::InvalidTableName,
            "/spec/table",
            format!("table \"{table}\" cannot be represented: write `table` or `schema.table`, each part 1–63 bytes without quotes"),
            None,
        );
    }
}

fn check_ref(c: &mut Ctx<'_>, p: &str, r: &DataSetRef) {
    match (&r.dataset, r.tags.is_empty()) {
        (None, true) => c.push(
            Code::RefTargetRequired,
            p,
            "either dataset name or tags is required",
            Some("write `{dataset: NAME}` or `{tags: {KEY: VALUE}}`".into()),
        ),
        (Some(_), false) => c.push(
            Code::RefAmbiguous,
            p,
            "dataset and tags are mutually exclusive",
            Some("keep one of `dataset:` and `tags:`".into()),
        ),
        (Some(d), true) if d.is_empty() => c.push(
            Code::RefTargetRequired,
            &format!("{p}/dataset"),
            "dataset name is empty",
            None,
        ),
        _ => {}
    }
    if let Some(v) = &r.version {
        if r.tags.is_empty() {
            c.push(
                Code::RefVersionWithoutTags,
                &format!("{p}/version"),
                "version is only used with tags",
                Some("remove `version`, or select DataSets with `tags:`".into()),
            );
        }
        c.semver_range(&format!("{p}/version"), "version", v);
    }
    if let Some(s) = &r.schema {
        check_schema_ref(c, &format!("{p}/schema"), s);
    }
}

fn check_schema_ref(c: &mut Ctx<'_>, p: &str, s: &str) {
    static R: OnceLock<Regex> = OnceLock::new();
    let r = R.get_or_init(|| Regex::new(r"^[a-z][a-z0-9-]*(@.+)?$").expect("static regex"));
    if !r.is_match(s) {
        c.push(
            Code::SchemaRefInvalid,
            p,
            format!("schema reference \"{s}\" must be `module` or `module@constraint`"),
            None,
        );
    }
}

fn check_trigger(c: &mut Ctx<'_>, t: &Trigger) {
    c.enum_value(
        "/spec/trigger/policy",
        "spec.trigger.policy",
        &t.policy,
        TRIGGER_POLICIES,
    );
    let needs_schedule = t.policy == "schedule"
        || (t.policy == "composite" && t.policies.iter().any(|p| p == "schedule"));
    if t.policy == "composite" {
        let mut seen = HashSet::new();
        if t.policies.is_empty() {
            c.push(
                Code::InvalidComposite,
                "/spec/trigger",
                "a composite trigger needs `policies`",
                Some("for example `policies: [schedule, on-change]`".into()),
            );
        }
        for (i, p) in t.policies.iter().enumerate() {
            if !["schedule", "on-change", "manual"].contains(&p.as_str()) || !seen.insert(p) {
                c.push(Code::InvalidComposite, &format!("/spec/trigger/policies/{i}"), format!("composite policy \"{p}\" must be one of schedule, on-change, manual, each once"), None);
            }
        }
    }
    match &t.schedule {
        None if needs_schedule => c.missing(
            Code::ScheduleRequired,
            "/spec/trigger/schedule",
            "spec.trigger.schedule is required when policy is schedule",
            Some("add `schedule: {cron: \"0 * * * *\", timezone: UTC}`".into()),
        ),
        Some(s) => {
            if s.cron.trim().is_empty() {
                c.missing(
                    Code::InvalidCron,
                    "/spec/trigger/schedule/cron",
                    "spec.trigger.schedule.cron is required",
                    None,
                );
            } else if let Err(e) = croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Optional)
                .build()
                .parse(&s.cron)
            {
                c.push(
                    Code::InvalidCron,
                    "/spec/trigger/schedule/cron",
                    format!("cron \"{}\" does not parse: {e}", s.cron),
                    None,
                );
            }
            if let Some(tz) = &s.timezone {
                if tz.parse::<chrono_tz::Tz>().is_err() {
                    let names = chrono_tz::TZ_VARIANTS.iter().map(|t| t.name());
                    let help = suggest::closest(tz, names).map(|s| format!("did you mean `{s}`?"));
                    c.push(
                        Code::InvalidTimezone,
                        "/spec/trigger/schedule/timezone",
                        format!("timezone \"{tz}\" is not an IANA timezone"),
                        help,
                    );
                }
            }
        }
        None => {}
    }
}

fn check_transform(c: &mut Ctx<'_>, t: &TransformSpec) {
    if t.runtime.is_empty() {
        c.missing(
            Code::InvalidEnum,
            "/spec/runtime",
            format!("spec.runtime is required ({})", RUNTIMES.join(", ")),
            None,
        );
    } else {
        c.enum_value("/spec/runtime", "spec.runtime", &t.runtime, RUNTIMES);
    }
    let mode = t.mode.as_deref().unwrap_or("batch");
    if t.mode.is_some() {
        c.enum_value("/spec/mode", "spec.mode", mode, MODES);
    }
    if t.runtime == "dbt" && mode == "streaming" {
        c.push(
            Code::RuntimeFieldMismatch,
            "/spec/mode",
            "dbt transforms cannot run in streaming mode",
            Some("use `mode: batch`".into()),
        );
    }
    if t.inputs.is_empty() {
        c.missing(
            Code::InputsRequired,
            "/spec/inputs",
            "spec.inputs: at least one input dataset is required",
            None,
        );
    }
    if t.outputs.is_empty() {
        c.missing(
            Code::OutputsRequired,
            "/spec/outputs",
            "spec.outputs: at least one output dataset is required",
            None,
        );
    }
    for (i, r) in t.inputs.iter().enumerate() {
        check_ref(c, &format!("/spec/inputs/{i}"), r);
    }
    for (i, r) in t.outputs.iter().enumerate() {
        check_ref(c, &format!("/spec/outputs/{i}"), r);
    }
    if matches!(t.runtime.as_str(), "generic-go" | "generic-python")
        && t.image.as_deref().is_none_or(str::is_empty)
    {
        c.missing(
            Code::ImageRequired,
            "/spec/image",
            format!("spec.image is required for {} transforms", t.runtime),
            Some("set `image: registry/name:tag`".into()),
        );
    }
    match &t.trigger {
        None if mode == "batch" => c.missing(
            Code::NoTrigger,
            "/spec/trigger",
            "trigger is recommended for batch-mode transforms",
            Some("add `trigger: {policy: schedule, schedule: {cron: \"0 * * * *\"}}`, `{policy: on-change}` or `{policy: manual}`".into()),
        ),
        Some(tr) => check_trigger(c, tr),
        None => {}
    }
    if let Some(to) = &t.timeout {
        c.duration("/spec/timeout", "spec.timeout", to);
    }
    // Runtime-specific fields.
    let is_sql = t.runtime == "sql";
    match &t.sql {
        Some(sql) if is_sql => c.file_exists("/spec/sql", "spec.sql", sql),
        Some(_) => c.push(
            Code::RuntimeFieldMismatch,
            "/spec/sql",
            format!(
                "spec.sql is only used by runtime sql (this is {})",
                t.runtime
            ),
            None,
        ),
        None if is_sql => c.missing(
            Code::RuntimeFieldMismatch,
            "/spec/sql",
            "runtime sql needs spec.sql (a SELECT in a file next to the manifest)",
            Some("add `sql: query.sql`".into()),
        ),
        None => {}
    }
    if let Some(m) = &t.materialized {
        if !matches!(t.runtime.as_str(), "sql" | "dbt") {
            c.push(
                Code::RuntimeFieldMismatch,
                "/spec/materialized",
                format!(
                    "spec.materialized is only used by runtime sql and dbt (this is {})",
                    t.runtime
                ),
                None,
            );
        }
        c.enum_value(
            "/spec/materialized",
            "spec.materialized",
            m,
            MATERIALIZATIONS,
        );
        if m == "incremental" && t.unique_key.is_empty() && t.cursor.is_none() {
            c.push(
                Code::RuntimeFieldMismatch,
                "/spec/materialized",
                "incremental materialization needs `uniqueKey` or `cursor`",
                Some("add `uniqueKey: [id]` and/or `cursor: updated_at`".into()),
            );
        }
    }
    match &t.script {
        Some(s) if t.runtime == "python" => c.file_exists("/spec/script", "spec.script", s),
        Some(_) => c.push(
            Code::RuntimeFieldMismatch,
            "/spec/script",
            format!(
                "spec.script is only used by runtime python (this is {})",
                t.runtime
            ),
            None,
        ),
        None if t.runtime == "python" => c.missing(
            Code::RuntimeFieldMismatch,
            "/spec/script",
            "runtime python needs spec.script",
            Some("add `script: main.py`".into()),
        ),
        None => {}
    }
    if let Some(p) = &t.project {
        c.file_exists("/spec/project", "spec.project", p);
    }
    let input_names: HashSet<&str> = t
        .inputs
        .iter()
        .filter_map(|r| r.dataset.as_deref())
        .collect();
    let mut test_names = HashSet::new();
    for (i, ut) in t.tests.iter().enumerate() {
        let p = format!("/spec/tests/{i}");
        if ut.name.is_empty() {
            c.missing(
                Code::RuntimeFieldMismatch,
                &format!("{p}/name"),
                "a unit test needs a name",
                None,
            );
        } else if !test_names.insert(ut.name.as_str()) {
            c.push(
                Code::RuntimeFieldMismatch,
                &format!("{p}/name"),
                format!("unit test name \"{}\" is used twice", ut.name),
                None,
            );
        }
        for (ds, fx) in &ut.given {
            let gp = format!("{p}/given/{}", crate::yaml::escape_pointer(ds));
            if !input_names.contains(ds.as_str()) {
                c.push(Code::RuntimeFieldMismatch, &gp, format!("unit test gives rows for \"{ds}\", which is not an input of this transform"), Some(format!("inputs: {}", input_names.iter().copied().collect::<Vec<_>>().join(", "))));
            }
            if let Fixture::File(f) = fx {
                c.file_exists(&gp, "fixture", f);
            }
        }
        if let Fixture::File(f) = &ut.expect {
            c.file_exists(&format!("{p}/expect"), "fixture", f);
        }
    }
    for (i, e) in t.env.iter().enumerate() {
        if e.name.is_empty() {
            c.missing(
                Code::InvalidValue,
                &format!("/spec/env/{i}/name"),
                "an env entry needs a name",
                None,
            );
        }
    }
}

fn check_dataset(c: &mut Ctx<'_>, s: &DataSetSpec) {
    if s.store.is_empty() {
        c.missing(
            Code::DataSetStoreRequired,
            "/spec/store",
            "spec.store is required — must reference a Store name",
            None,
        );
    }
    if s.table.is_none() && s.prefix.is_none() && s.topic.is_none() {
        c.missing(
            Code::DataSetLocationRequired,
            "/spec/table",
            "at least one of spec.table, spec.prefix, or spec.topic is required",
            None,
        );
    }
    if let Some(t) = &s.table {
        check_table_name(c, t);
    }
    if let Some(f) = &s.format {
        if !FORMATS.contains(&f.as_str()) {
            c.push(
                Code::UnknownFormat,
                "/spec/format",
                format!("format \"{f}\" is not one of {}", FORMATS.join(", ")),
                Some("dk keeps the value but cannot read or write this format".into()),
            );
        }
    }
    if let Some(cl) = &s.classification {
        c.enum_value(
            "/spec/classification",
            "spec.classification",
            cl,
            CLASSIFICATIONS,
        );
    }
    if s.schema_ref.is_some() && !s.schema.is_empty() {
        c.push(
            Code::SchemaRefConflict,
            "/spec/schemaRef",
            "spec.schema and spec.schemaRef are mutually exclusive",
            None,
        );
    }
    if let Some(r) = &s.schema_ref {
        check_schema_ref(c, "/spec/schemaRef", r);
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, col) in s.schema.iter().enumerate() {
        let p = format!("/spec/schema/{i}");
        if col.name.is_empty() {
            c.missing(
                Code::ColumnIncomplete,
                &format!("{p}/name"),
                format!("spec.schema[{i}].name is required"),
                None,
            );
        } else if let Some(first) = seen.insert(col.name.to_ascii_lowercase(), i) {
            let d = Diagnostic::new(Code::DuplicateColumn, format!("duplicate schema field name: {}", col.name))
                .at(c.doc.loc(&format!("{p}/name")))
                .related(c.doc.loc(&format!("/spec/schema/{first}/name")), "first declared here")
                .help("column names are compared without case (most engines fold them); rename or remove one");
            c.out.push(d);
        }
        if col.type_.is_empty() {
            c.missing(
                Code::ColumnIncomplete,
                &format!("{p}/type"),
                format!("spec.schema[{i}].type is required"),
                None,
            );
        } else if !is_logical_type(&col.type_) {
            c.push(
                Code::UnknownColumnType,
                &format!("{p}/type"),
                format!("column type \"{}\" is not a dk logical type", col.type_),
                None,
            );
        }
        if let Some(cl) = &col.classification {
            c.enum_value(
                &format!("{p}/classification"),
                "column classification",
                cl,
                CLASSIFICATIONS,
            );
        }
        if let Some(f) = &col.from {
            if f.split('.').count() != 2 || f.split('.').any(str::is_empty) {
                c.push(
                    Code::InvalidValue,
                    &format!("{p}/from"),
                    format!("`from` must be dataset.column (got \"{f}\")"),
                    None,
                );
            }
        }
        check_checks(c, &format!("{p}/checks"), &col.checks, true);
    }
    check_checks(c, "/spec/checks", &s.checks, false);
}

fn check_environment(c: &mut Ctx<'_>, e: &EnvironmentSpec) {
    if e.tier.is_empty() {
        c.missing(
            Code::InvalidEnum,
            "/spec/tier",
            "spec.tier is required (dev, stage, prod)",
            None,
        );
    } else {
        c.enum_value("/spec/tier", "spec.tier", &e.tier, TIERS);
    }
    if let Some(v) = &e.version_policy {
        c.enum_value(
            "/spec/versionPolicy",
            "spec.versionPolicy",
            v,
            &["ranges", "exact"],
        );
    }
    for (store, b) in &e.bindings {
        let bp = format!("/spec/bindings/{}", crate::yaml::escape_pointer(store));
        check_secrets(c, &format!("{bp}/secrets"), &b.secrets);
        check_connection(c, &format!("{bp}/connection"), &b.connection);
        check_connection(c, &bp, &b.flat);
    }
    if let Some(a) = &e.approval {
        if a.required as usize > a.approvers.len() {
            c.push(
                Code::ApprovalUnsatisfiable,
                "/spec/approval/required",
                format!(
                    "approval.required is {} but only {} approvers are listed",
                    a.required,
                    a.approvers.len()
                ),
                None,
            );
        }
        for (i, r) in a.require_for.iter().enumerate() {
            c.enum_value(
                &format!("/spec/approval/requireFor/{i}"),
                "approval.requireFor",
                r,
                &["destructive", "breaking", "pii", "always"],
            );
        }
        let mut names = HashSet::new();
        for (i, ap) in a.approvers.iter().enumerate() {
            let p = format!("/spec/approval/approvers/{i}");
            if ap.name.is_empty() || ap.public_key.is_empty() {
                c.missing(
                    Code::InvalidValue,
                    &p,
                    "an approver needs `name` and `publicKey`",
                    Some("`dk keygen` prints a public key".into()),
                );
            }
            if !ap.name.is_empty() && !names.insert(ap.name.as_str()) {
                c.push(
                    Code::InvalidValue,
                    &format!("{p}/name"),
                    format!("approver \"{}\" is listed twice", ap.name),
                    None,
                );
            }
        }
    }
    if let Some(d) = &e.drift {
        if let Some(p) = &d.policy {
            c.enum_value(
                "/spec/drift/policy",
                "drift.policy",
                p,
                &["alert", "auto-correct"],
            );
        }
        for (i, ig) in d.ignore.iter().enumerate() {
            let p = format!("/spec/drift/ignore/{i}");
            if ig.resource.is_empty() || ig.reason.is_empty() {
                c.missing(
                    Code::InvalidValue,
                    &p,
                    "a drift ignore rule needs `resource` and `reason`",
                    None,
                );
            }
            if let Some(x) = &ig.expires {
                if parse_date(x).is_none() {
                    c.push(
                        Code::InvalidDate,
                        &format!("{p}/expires"),
                        format!("expires \"{x}\" is not an RFC 3339 date"),
                        Some("for example `2026-12-31`".into()),
                    );
                }
            }
        }
    }
}

/// Parses `2026-12-31` or an RFC 3339 timestamp.
pub fn parse_date(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

fn check_policy(c: &mut Ctx<'_>, p: &PolicySpec) {
    for (i, pack) in p.packs.iter().enumerate() {
        c.enum_value(
            &format!("/spec/packs/{i}"),
            "policy pack",
            pack,
            POLICY_PACKS,
        );
    }
    if p.rules.is_empty() && p.packs.is_empty() {
        c.missing(
            Code::PolicyRuleInvalid,
            "/spec/rules",
            "a Policy needs at least one rule (or a built-in pack under `packs`)",
            None,
        );
    }
    let mut names = HashSet::new();
    for (i, r) in p.rules.iter().enumerate() {
        let rp = format!("/spec/rules/{i}");
        if r.name.is_empty() {
            c.missing(
                Code::PolicyRuleInvalid,
                &format!("{rp}/name"),
                "a policy rule needs a name",
                None,
            );
        } else if !names.insert(r.name.as_str()) {
            c.push(
                Code::PolicyRuleInvalid,
                &format!("{rp}/name"),
                format!("rule name \"{}\" is used twice", r.name),
                None,
            );
        }
        if r.condition.trim().is_empty() {
            c.missing(
                Code::PolicyRuleInvalid,
                &format!("{rp}/condition"),
                "a policy rule needs a condition",
                None,
            );
        }
        if r.message.trim().is_empty() {
            c.missing(
                Code::PolicyRuleInvalid,
                &format!("{rp}/message"),
                "a policy rule needs a message",
                None,
            );
        }
        if let Some(s) = &r.severity {
            c.enum_value(
                &format!("{rp}/severity"),
                "rule severity",
                s,
                &["error", "warning", "info"],
            );
        }
        if let Some(a) = &r.applies_to {
            for (j, k) in a.kinds.iter().enumerate() {
                let mut kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                kinds.push("Change");
                c.enum_value(
                    &format!("{rp}/appliesTo/kinds/{j}"),
                    "appliesTo.kinds",
                    k,
                    &kinds,
                );
            }
        }
    }
}

/// Field rules of one document.
pub fn check_document(doc: &Document) -> Vec<Diagnostic> {
    let Some(m) = &doc.manifest else {
        return Vec::new();
    };
    let mut c = Ctx {
        doc,
        out: Vec::new(),
    };
    check_metadata(&mut c, m.metadata());
    match m {
        Manifest::Project(p) => {
            if let Some(sb) = &p.spec.state_backend {
                match sb.type_.as_str() {
                    "local" => {}
                    "postgres" if sb.url.as_deref().is_some_and(|u| !u.is_empty()) => {}
                    "postgres" => c.missing(
                        Code::StateBackendInvalid,
                        "/spec/stateBackend/url",
                        "stateBackend type postgres needs `url`",
                        Some("`url: \"${DK_STATE_URL}\"`".into()),
                    ),
                    other => c.push(
                        Code::StateBackendInvalid,
                        "/spec/stateBackend/type",
                        format!("stateBackend.type must be local or postgres (got \"{other}\")"),
                        None,
                    ),
                }
            }
        }
        Manifest::Connector(k) => {
            match &k.spec.type_ {
                None => c.missing(Code::ConnectorTypeRequired, "/spec/type", "spec.type is required for Connector", Some("for example `type: postgres`".into())),
                Some(t) if t.is_empty() => c.push(Code::ConnectorTypeRequired, "/spec/type", "spec.type is required for Connector", None),
                Some(t) if !KNOWN_CONNECTOR_TYPES.contains(&t.as_str()) => c.push(
                    Code::UnknownConnectorType,
                    "/spec/type",
                    format!("connector type \"{t}\" has no provider in this version of dk"),
                    Some("lint and the pipeline graph accept it; plan and apply will need a provider for stores of this type".into()),
                ),
                Some(_) => {}
            }
            if k.spec.capabilities.is_empty() {
                c.missing(
                    Code::ConnectorCapabilitiesRequired,
                    "/spec/capabilities",
                    "spec.capabilities is required for Connector",
                    Some("`capabilities: [source, destination]`".into()),
                );
            }
            let mut seen = HashSet::new();
            for (i, cap) in k.spec.capabilities.iter().enumerate() {
                if cap != "source" && cap != "destination" {
                    c.push(
                        Code::InvalidEnum,
                        &format!("/spec/capabilities/{i}"),
                        format!("capability must be 'source' or 'destination' (got \"{cap}\")"),
                        None,
                    );
                } else if !seen.insert(cap) {
                    c.push(
                        Code::InvalidEnum,
                        &format!("/spec/capabilities/{i}"),
                        format!("capability \"{cap}\" is listed twice"),
                        None,
                    );
                }
            }
            if let Some(v) = &k.spec.version {
                c.semver("/spec/version", "spec.version", v);
            }
            if let Some(p) = &k.spec.provider {
                if !is_valid_name(p) {
                    c.push(
                        Code::NameInvalid,
                        "/spec/provider",
                        format!("spec.provider \"{p}\" must be DNS-safe"),
                        None,
                    );
                }
            }
        }
        Manifest::Store(s) => {
            if s.spec.connector.is_empty() {
                c.missing(
                    Code::StoreConnectorRequired,
                    "/spec/connector",
                    "spec.connector is required — must reference a Connector name",
                    None,
                );
            }
            if s.spec.connection.is_empty() {
                c.missing(
                    Code::StoreConnectionRequired,
                    "/spec/connection",
                    "spec.connection is required and must not be empty",
                    Some("for example `connection: {path: .dk/warehouse.duckdb}`".into()),
                );
            }
            if let Some(v) = &s.spec.connector_version {
                c.semver_range("/spec/connectorVersion", "spec.connectorVersion", v);
            }
            check_secrets(&mut c, "/spec/secrets", &s.spec.secrets);
            check_connection(&mut c, "/spec/connection", &s.spec.connection);
        }
        Manifest::DataSet(d) => check_dataset(&mut c, &d.spec),
        Manifest::DataSetGroup(g) => {
            if g.spec.store.is_empty() {
                c.missing(
                    Code::GroupStoreRequired,
                    "/spec/store",
                    "spec.store is required for DataSetGroup",
                    None,
                );
            }
            if g.spec.datasets.is_empty() {
                c.missing(
                    Code::GroupDatasetsRequired,
                    "/spec/datasets",
                    "spec.datasets must list at least one DataSet",
                    None,
                );
            }
            let mut seen = HashSet::new();
            for (i, n) in g.spec.datasets.iter().enumerate() {
                if !seen.insert(n) {
                    c.push(
                        Code::GroupDatasetsRequired,
                        &format!("/spec/datasets/{i}"),
                        format!("DataSet \"{n}\" is listed twice"),
                        None,
                    );
                }
            }
        }
        Manifest::Transform(t) => check_transform(&mut c, &t.spec),
        Manifest::Environment(e) => check_environment(&mut c, &e.spec),
        Manifest::Policy(p) => check_policy(&mut c, &p.spec),
    }
    c.out
}

fn unknown_ref(
    model: &ProjectModel,
    code: Code,
    kind: Kind,
    name: &str,
    what: &str,
    at: Location,
) -> Diagnostic {
    let names = model.names(kind);
    let help = match suggest::closest(name, names.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None if names.is_empty() => {
            format!("no {kind} manifests are defined; create one or fix the name")
        }
        None => format!("defined {kind}s: {}", abbreviate(&names)),
    };
    Diagnostic::new(
        code,
        format!("{what} references {kind} \"{name}\", which is not defined"),
    )
    .at(at)
    .label(format!("unknown {kind}"))
    .help(help)
}

fn abbreviate(names: &[&str]) -> String {
    if names.len() <= 8 {
        names.join(", ")
    } else {
        format!("{}, … ({} in all)", names[..8].join(", "), names.len())
    }
}

/// Project rules: duplicates and references.
pub fn check_project(model: &ProjectModel) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // Duplicates.
    let mut first: HashMap<(Kind, &str), &Document> = HashMap::new();
    for d in &model.docs {
        if d.name.is_empty() {
            continue;
        }
        match first.get(&(d.kind, d.name.as_str())) {
            Some(f) => out.push(
                Diagnostic::new(
                    Code::DuplicateName,
                    format!("{} \"{}\" is defined more than once", d.kind, d.name),
                )
                .at(d.loc("/metadata/name"))
                .label("duplicate")
                .related(f.loc("/metadata/name"), "first defined here")
                .help("rename one of them or delete the copy"),
            ),
            None => {
                first.insert((d.kind, d.name.as_str()), d);
            }
        }
    }
    let projects: Vec<&Document> = model.of_kind(Kind::Project).collect();
    for extra in projects.iter().skip(1) {
        out.push(
            Diagnostic::new(Code::MultipleProjects, "more than one Project manifest")
                .at(extra.key_loc("/kind"))
                .related(projects[0].key_loc("/kind"), "the first Project")
                .help("keep one project.yaml at the project root"),
        );
    }
    // Connector lookup by name, provider or type.
    let connector_ok = |name: &str| {
        model.get(Kind::Connector, name).is_some()
            || model
                .connectors()
                .any(|(_, c)| c.spec.provider.as_deref() == Some(name))
    };
    for (d, s) in model.stores() {
        if !s.spec.connector.is_empty() && !connector_ok(&s.spec.connector) {
            out.push(unknown_ref(
                model,
                Code::UnknownConnector,
                Kind::Connector,
                &s.spec.connector,
                "spec.connector",
                d.loc("/spec/connector"),
            ));
        }
    }
    for (d, ds) in model.datasets() {
        if !ds.spec.store.is_empty() && model.get(Kind::Store, &ds.spec.store).is_none() {
            out.push(unknown_ref(
                model,
                Code::UnknownStore,
                Kind::Store,
                &ds.spec.store,
                "spec.store",
                d.loc("/spec/store"),
            ));
        }
        for (i, col) in ds.spec.schema.iter().enumerate() {
            if let Some(f) = &col.from {
                if let Some(diag) =
                    check_column_ref(model, f, d.loc(&format!("/spec/schema/{i}/from")), "from")
                {
                    out.push(diag);
                }
            }
            for (j, ch) in col.checks.iter().enumerate() {
                for (name, args) in ch.parts() {
                    if let (true, Some(to)) = (name == "relationships", &args.to) {
                        let p = format!("/spec/schema/{i}/checks/{j}");
                        if let Some(diag) =
                            check_column_ref(model, to, d.loc(&p), "relationships.to")
                        {
                            out.push(diag);
                        }
                    }
                }
            }
        }
    }
    for (d, g) in model.dataset_groups() {
        if !g.spec.store.is_empty() && model.get(Kind::Store, &g.spec.store).is_none() {
            out.push(unknown_ref(
                model,
                Code::UnknownStore,
                Kind::Store,
                &g.spec.store,
                "spec.store",
                d.loc("/spec/store"),
            ));
        }
        for (i, n) in g.spec.datasets.iter().enumerate() {
            if model.get(Kind::DataSet, n).is_none() {
                out.push(unknown_ref(
                    model,
                    Code::UnknownDataSet,
                    Kind::DataSet,
                    n,
                    "spec.datasets",
                    d.loc(&format!("/spec/datasets/{i}")),
                ));
            }
        }
    }
    for (d, t) in model.transforms() {
        for (side, refs_) in [("inputs", &t.spec.inputs), ("outputs", &t.spec.outputs)] {
            for (i, r) in refs_.iter().enumerate() {
                let p = format!("/spec/{side}/{i}");
                if let Some(name) = &r.dataset {
                    if !name.is_empty() && model.get(Kind::DataSet, name).is_none() {
                        out.push(unknown_ref(
                            model,
                            Code::UnknownDataSet,
                            Kind::DataSet,
                            name,
                            &format!("spec.{side}[{i}]"),
                            d.loc(&format!("{p}/dataset")),
                        ));
                    }
                } else if !r.tags.is_empty() && refs::resolve(model, r).is_empty() {
                    let sel: Vec<String> = r.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let ver = r
                        .version
                        .as_deref()
                        .map(|v| format!(" with version {v}"))
                        .unwrap_or_default();
                    out.push(
                        Diagnostic::new(
                            Code::SelectorMatchesNothing,
                            format!(
                                "spec.{side}[{i}]: no DataSet has labels {}{ver}",
                                sel.join(", ")
                            ),
                        )
                        .at(d.loc(&format!("{p}/tags")))
                        .help(
                            "label a DataSet with these tags (metadata.labels) or fix the selector",
                        ),
                    );
                }
            }
        }
    }
    for (d, e) in model.environments() {
        for (store, b) in &e.spec.bindings {
            let p = format!("/spec/bindings/{}", crate::yaml::escape_pointer(store));
            if model.get(Kind::Store, store).is_none() {
                let mut diag = unknown_ref(
                    model,
                    Code::UnknownBindingStore,
                    Kind::Store,
                    store,
                    "a binding",
                    d.key_loc(&p),
                );
                diag.code = Code::UnknownBindingStore;
                out.push(diag);
            }
            if let Some(cn) = &b.connector {
                if !connector_ok(cn) {
                    out.push(unknown_ref(
                        model,
                        Code::UnknownConnector,
                        Kind::Connector,
                        cn,
                        "binding connector",
                        d.loc(&format!("{p}/connector")),
                    ));
                }
            }
        }
    }
    if let Some(pd) = model.of_kind(Kind::Project).next() {
        if let Some(Manifest::Project(p)) = &pd.manifest {
            if let Some(env) = &p.spec.default_environment {
                if model.get(Kind::Environment, env).is_none() {
                    out.push(unknown_ref(
                        model,
                        Code::UnknownEnvironment,
                        Kind::Environment,
                        env,
                        "spec.defaultEnvironment",
                        pd.loc("/spec/defaultEnvironment"),
                    ));
                }
            }
        }
    }
    out
}

fn check_column_ref(
    model: &ProjectModel,
    target: &str,
    at: Location,
    what: &str,
) -> Option<Diagnostic> {
    let (ds, col) = target.split_once('.')?;
    let Some(doc) = model.get(Kind::DataSet, ds) else {
        return Some(unknown_ref(
            model,
            Code::UnknownLineageColumn,
            Kind::DataSet,
            ds,
            what,
            at,
        ));
    };
    let Some(Manifest::DataSet(d)) = &doc.manifest else {
        return None;
    };
    if d.spec.schema.is_empty() || d.spec.schema.iter().any(|c| c.name == col) {
        return None;
    }
    let cols: Vec<&str> = d.spec.schema.iter().map(|c| c.name.as_str()).collect();
    let help = suggest::closest(col, cols.iter().copied())
        .map(|s| format!("did you mean `{ds}.{s}`?"))
        .unwrap_or_else(|| format!("columns of {ds}: {}", abbreviate(&cols)));
    Some(
        Diagnostic::new(
            Code::UnknownLineageColumn,
            format!(
                "{what} references column \"{col}\" of DataSet \"{ds}\", which it does not declare"
            ),
        )
        .at(at)
        .related(doc.loc("/spec/schema"), format!("schema of {ds}"))
        .help(help),
    )
}

/// Codes downgraded to warnings outside a project (loose manifests).
const LOOSE_REFERENCE_CODES: &[Code] = &[
    Code::UnknownConnector,
    Code::UnknownStore,
    Code::UnknownDataSet,
    Code::SelectorMatchesNothing,
    Code::UnknownLineageColumn,
    Code::UnknownBindingStore,
    // Loose manifests are often unrelated files (fixtures, packages of different pipelines).
    Code::DuplicateProducer,
];

/// Validates a loaded project: the loader's findings, field rules and project rules, with the
/// severity policy applied (loose mode, `--strict`) and in a stable order.
pub fn validate(model: &ProjectModel, opts: ValidateOptions) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = model.diagnostics.clone();
    let per_doc: Vec<Vec<Diagnostic>> = model.docs.par_iter().map(check_document).collect();
    out.extend(per_doc.into_iter().flatten());
    out.extend(check_project(model));
    finish(&mut out, opts, model.is_project);
    out
}

/// Applies the severity policy and sorts: outside a project (no project.yaml) reference findings
/// and duplicate producers are warnings; `--strict` turns warnings into errors. Idempotent, so
/// callers that add findings (the graph rules) can apply it again.
pub fn finish(diags: &mut Vec<Diagnostic>, opts: ValidateOptions, is_project: bool) {
    if !is_project {
        for d in diags.iter_mut() {
            if LOOSE_REFERENCE_CODES.contains(&d.code) && d.severity == Severity::Error {
                d.severity = Severity::Warning;
            }
        }
    }
    if opts.strict {
        for d in diags.iter_mut() {
            if d.severity == Severity::Warning {
                d.severity = Severity::Error;
            }
        }
    }
    diags.sort_by_key(|d| d.sort_key());
    diags.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::load_str;

    fn codes(text: &str) -> Vec<(String, u32)> {
        let m = load_str("f.yaml", text);
        let mut v: Vec<(String, u32)> = validate(&m, ValidateOptions::default())
            .into_iter()
            .map(|d| {
                (
                    d.code.id().to_string(),
                    d.location.map(|l| l.span.line).unwrap_or(0),
                )
            })
            .collect();
        v.sort();
        v
    }

    const HEAD: &str = "apiVersion: datakit.infoblox.dev/v1alpha1\n";

    #[test]
    fn triggers_cron_timezone_composite() {
        let t = format!(
            "{HEAD}kind: Transform\nmetadata: {{name: t}}\nspec:\n  runtime: sync\n  inputs: [{{dataset: a}}]\n  outputs: [{{dataset: b}}]\n  trigger:\n    policy: schedule\n    schedule: {{cron: \"61 * * * *\", timezone: Europe/Berln}}\n"
        );
        let c = codes(&t);
        assert!(c.contains(&("E236".into(), 10)), "{c:?}");
        assert!(c.contains(&("E237".into(), 10)), "{c:?}");
        let t2 = t.replace(
            "policy: schedule\n    schedule: {cron: \"61 * * * *\", timezone: Europe/Berln}",
            "policy: composite\n    policies: [schedule, schedule, bogus]",
        );
        let c = codes(&t2);
        assert_eq!(c.iter().filter(|(k, _)| k == "E238").count(), 2, "{c:?}");
        assert!(c.iter().any(|(k, _)| k == "E235"), "{c:?}");
        let t3 = t
            .replace("\"61 * * * *\"", "\"0 */6 * * *\"")
            .replace("Europe/Berln", "UTC");
        assert!(
            !codes(&t3).iter().any(|(k, _)| k.starts_with("E23")),
            "{:?}",
            codes(&t3)
        );
    }

    #[test]
    fn secrets_literal_reference_and_connection_credentials() {
        let s = format!(
            "{HEAD}kind: Store\nmetadata: {{name: s}}\nspec:\n  connector: c\n  connection:\n    host: h\n    password: hunter2\n    url: \"postgres://u:pw@h/db\"\n    ok: \"postgres://u:${{PW}}@h/db\"\n  secrets:\n    password: plain\n    token: \"${{TOKEN}}\"\n    groupId: g1\n    empty: \"\"\n"
        );
        let c = codes(&s);
        assert!(c.contains(&("E214".into(), 8)), "{c:?}");
        assert!(c.contains(&("E214".into(), 9)), "{c:?}");
        assert!(!c.contains(&("E214".into(), 10)), "{c:?}");
        assert!(c.contains(&("E212".into(), 12)), "{c:?}");
        assert!(c.contains(&("W213".into(), 14)), "{c:?}");
        assert!(c.contains(&("E212".into(), 15)), "{c:?}");
        assert!(
            !c.iter().any(|(k, l)| *l == 13 && k.starts_with("E21")),
            "{c:?}"
        );
    }

    #[test]
    fn datasets_checks_and_types() {
        let d = format!(
            "{HEAD}kind: DataSet\nmetadata: {{name: d}}\nspec:\n  store: s\n  table: a.b.c.d\n  classification: secret\n  schema:\n    - {{name: id, type: bigint, checks: [not_null, uniq, {{regex: {{pattern: \"[\"}}}}]}}\n    - {{name: ID, type: blob}}\n  checks:\n    - unique\n    - {{freshness: {{column: ts, maxAge: soon}}}}\n"
        );
        let c = codes(&d);
        for want in [
            ("E224", 6),
            ("E002", 7),
            ("E226", 9),
            ("E043", 10),
            ("W225", 10),
            ("E226", 12),
            ("E031", 13),
        ] {
            assert!(
                c.contains(&(want.0.to_string(), want.1)),
                "missing {want:?} in {c:?}"
            );
        }
    }

    #[test]
    fn runtime_specific_fields() {
        let t = format!(
            "{HEAD}kind: Transform\nmetadata: {{name: t}}\nspec:\n  runtime: sql\n  materialized: incremental\n  inputs: [{{dataset: a}}]\n  outputs: [{{dataset: b}}]\n  script: x.py\n  trigger: {{policy: manual}}\n  tests:\n    - {{name: u, given: {{zz: []}}, expect: []}}\n"
        );
        let c = codes(&t);
        for want in [("E242", 4), ("E242", 6), ("E242", 9), ("E242", 12)] {
            assert!(
                c.contains(&(want.0.to_string(), want.1)),
                "missing {want:?} in {c:?}"
            );
        }
    }

    #[test]
    fn environment_and_policy_rules() {
        let e = format!(
            "{HEAD}kind: Environment\nmetadata: {{name: prod}}\nspec:\n  tier: production\n  approval: {{required: 2, approvers: [{{name: a, publicKey: k}}], requireFor: [everything]}}\n  drift: {{ignore: [{{resource: x, reason: y, expires: tomorrow}}]}}\n---\n{HEAD}kind: Policy\nmetadata: {{name: p}}\nspec:\n  rules:\n    - {{name: r, condition: \"\", message: m, severity: fatal}}\n"
        );
        let c = codes(&e);
        for want in [
            ("E002", 5),
            ("E250", 6),
            ("E002", 6),
            ("E251", 7),
            ("E270", 14),
            ("E002", 14),
        ] {
            assert!(
                c.contains(&(want.0.to_string(), want.1)),
                "missing {want:?} in {c:?}"
            );
        }
    }

    #[test]
    fn exclude_globs_skip_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("project.yaml"), format!("{HEAD}kind: Project\nmetadata: {{name: p}}\nspec: {{exclude: [vendor, \"*.tmpl.yaml\"]}}\n")).unwrap();
        std::fs::create_dir_all(dir.path().join("vendor")).unwrap();
        std::fs::write(dir.path().join("vendor/bad.yaml"), "a: [").unwrap();
        std::fs::write(dir.path().join("x.tmpl.yaml"), "a: [").unwrap();
        std::fs::create_dir_all(dir.path().join("target")).unwrap();
        std::fs::write(dir.path().join("target/bad.yaml"), "a: [").unwrap();
        let m = crate::loader::load(dir.path()).unwrap();
        assert!(m.is_project);
        assert_eq!(m.files, 1);
        assert!(validate(&m, ValidateOptions { strict: true }).is_empty());
    }
}
