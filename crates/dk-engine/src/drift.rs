//! Drift: what changed in the real systems outside `dk` since `dk` last wrote state.
//!
//! Drift compares a bulk refresh of the managed schemas with what the **state** records (the
//! objects as `dk` last created or changed them), not with the manifests: a manifest edit that has
//! not been applied yet is a pending change (`dk plan`), not drift. Three kinds of entries:
//!
//! * `changed` — an object in state whose attributes differ (one [`FieldDrift`] per attribute:
//!   `columns.<name>`, `columns.<name>.type`, `columns.<name>.nullable`, `columns.<name>.comment`,
//!   `comment`, `sql`, `kind`);
//! * `deleted` — an object in state that no longer exists;
//! * `unmanaged` — a table or view inside a schema `dk` manages that state does not know (adopt
//!   it with `dk import`, or drop it).
//!
//! An environment's `drift.ignore` rules ([`IgnoreRule`]) suppress entries (or some of their
//! fields) until they expire; suppressed entries stay visible in the report's `ignored` list.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use dk_env::ResolvedProject;
use dk_manifest::model::DriftIgnore;
use dk_providers::model::{Action, ColumnOp, Resource, ResourceKind, ResourceSpec};
use dk_state::{ResourceStatus, StateDocument};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::compile::Compiled;
use crate::plan::{refresh, state_resource, Providers};
use crate::EngineError;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftKind {
    Changed,
    Deleted,
    Unmanaged,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Changed => "changed",
            DriftKind::Deleted => "deleted",
            DriftKind::Unmanaged => "unmanaged",
        }
    }
}

/// One attribute that differs: what state records and what the system has now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDrift {
    pub field: String,
    pub expected: Value,
    pub actual: Value,
}

/// One drifted object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftEntry {
    pub address: String,
    pub store: String,
    pub kind: DriftKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDrift>,
}

/// An entry (or some fields of one) hidden by an ignore rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IgnoredDrift {
    pub entry: DriftEntry,
    pub rule: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// The result of one drift check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub environment: String,
    /// State serial the comparison used.
    pub serial: u64,
    pub checked_at: DateTime<Utc>,
    /// Objects recorded in state that were compared.
    pub resources_checked: usize,
    pub entries: Vec<DriftEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<IgnoredDrift>,
    /// Ignore rules whose `expires` has passed: they no longer hide anything; remove or renew them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired_rules: Vec<String>,
    /// State entries that are `pending` or `tainted` (an interrupted or failed apply): not compared;
    /// `dk apply` settles them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsettled: Vec<String>,
}

impl DriftReport {
    /// True when at least one entry is not ignored.
    pub fn has_drift(&self) -> bool {
        !self.entries.is_empty()
    }
}

/// A compiled `drift.ignore` rule. `resource` and `fields` are globs whose `*` matches one
/// dot-separated part and `**` any number of parts.
#[derive(Debug, Clone)]
pub struct IgnoreRule {
    pub resource: String,
    pub fields: Vec<String>,
    pub reason: String,
    pub expires: Option<String>,
    resource_glob: globset::GlobMatcher,
    field_globs: Vec<globset::GlobMatcher>,
    until: Option<DateTime<Utc>>,
}

fn dotted_glob(pattern: &str) -> Result<globset::GlobMatcher, globset::Error> {
    Ok(globset::GlobBuilder::new(&pattern.replace('.', "/"))
        .literal_separator(true)
        .build()?
        .compile_matcher())
}

impl IgnoreRule {
    /// Compiles a manifest rule. A date-only `expires` (`2026-12-31`) lasts through that day (UTC).
    pub fn new(rule: &DriftIgnore) -> Result<IgnoreRule, String> {
        let resource_glob = dotted_glob(&rule.resource)
            .map_err(|e| format!("drift.ignore resource {:?}: {e}", rule.resource))?;
        let field_globs = rule
            .fields
            .iter()
            .map(|f| dotted_glob(f).map_err(|e| format!("drift.ignore field {f:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let until = match &rule.expires {
            None => None,
            Some(s) => {
                let t = dk_manifest::validate::parse_date(s).ok_or_else(|| {
                    format!(
                        "drift.ignore expires {s:?} is not a date (YYYY-MM-DD) or RFC 3339 time"
                    )
                })?;
                Some(if s.len() == 10 {
                    t + chrono::Duration::days(1)
                } else {
                    t
                })
            }
        };
        Ok(IgnoreRule {
            resource: rule.resource.clone(),
            fields: rule.fields.clone(),
            reason: rule.reason.clone(),
            expires: rule.expires.clone(),
            resource_glob,
            field_globs,
            until,
        })
    }

    fn expired(&self, now: DateTime<Utc>) -> bool {
        self.until.is_some_and(|u| now >= u)
    }

    fn matches_resource(&self, address: &str) -> bool {
        self.resource_glob.is_match(address.replace('.', "/"))
    }

    fn matches_field(&self, field: &str) -> bool {
        let f = field.replace('.', "/");
        self.field_globs.iter().any(|g| g.is_match(&f))
    }

    fn label(&self) -> String {
        if self.fields.is_empty() {
            self.resource.clone()
        } else {
            format!("{} [{}]", self.resource, self.fields.join(", "))
        }
    }
}

/// The environment's ignore rules, compiled.
pub fn ignore_rules(
    env: &ResolvedProject,
    model: &dk_manifest::ProjectModel,
) -> Result<Vec<IgnoreRule>, EngineError> {
    let Some(e) = model
        .environments()
        .find(|(_, e)| e.metadata.name == env.environment)
        .map(|(_, e)| e)
    else {
        return Ok(Vec::new());
    };
    e.spec
        .drift
        .as_ref()
        .map(|d| d.ignore.iter().map(IgnoreRule::new).collect())
        .unwrap_or_else(|| Ok(Vec::new()))
        .map_err(EngineError::PlanFile)
}

fn column_json(c: &dk_providers::model::ColumnSpec) -> Value {
    json!({"type": c.ty.to_string(), "nullable": c.nullable})
}

/// Attribute differences between what state records and what exists.
pub fn field_drift(recorded: &Resource, actual: &Resource) -> Vec<FieldDrift> {
    let Some(d) = dk_providers::diff::diff(Some(recorded), Some(actual)) else {
        return Vec::new();
    };
    if d.action == Action::Replace {
        return vec![FieldDrift {
            field: "kind".into(),
            expected: json!(recorded.kind().as_str()),
            actual: json!(actual.kind().as_str()),
        }];
    }
    let actual_col = |name: &str| match &actual.spec {
        ResourceSpec::Table { columns, .. } | ResourceSpec::View { columns, .. } => {
            columns.iter().find(|c| c.name == name).map(column_json)
        }
        ResourceSpec::Schema { .. } => None,
    };
    // `diff(desired = recorded, actual)` says how to turn `actual` back into `recorded`.
    d.ops
        .iter()
        .map(|op| match op {
            ColumnOp::AddColumn { column } => FieldDrift {
                field: format!("columns.{}", column.name),
                expected: column_json(column),
                actual: Value::Null,
            },
            ColumnOp::DropColumn { column } => FieldDrift {
                field: format!("columns.{column}"),
                expected: Value::Null,
                actual: actual_col(column).unwrap_or(Value::Null),
            },
            ColumnOp::ChangeType { column, from, to } => FieldDrift {
                field: format!("columns.{column}.type"),
                expected: json!(to.to_string()),
                actual: json!(from.to_string()),
            },
            ColumnOp::SetNotNull { column } => FieldDrift {
                field: format!("columns.{column}.nullable"),
                expected: json!(false),
                actual: json!(true),
            },
            ColumnOp::DropNotNull { column } => FieldDrift {
                field: format!("columns.{column}.nullable"),
                expected: json!(true),
                actual: json!(false),
            },
            ColumnOp::SetColumnComment { column, from, to } => FieldDrift {
                field: format!("columns.{column}.comment"),
                expected: json!(to),
                actual: json!(from),
            },
            ColumnOp::SetComment { from, to } => FieldDrift {
                field: "comment".into(),
                expected: json!(to),
                actual: json!(from),
            },
            ColumnOp::ReplaceQuery { from, to } => FieldDrift {
                field: "sql".into(),
                expected: json!(to),
                actual: json!(from),
            },
        })
        .collect()
}

/// Compares state with refreshed objects (pure: no I/O).
pub fn compare(
    environment: &str,
    state: &StateDocument,
    actual: &HashMap<String, Resource>,
    rules: &[IgnoreRule],
    now: DateTime<Utc>,
) -> DriftReport {
    let mut raw = Vec::new();
    let mut unsettled = Vec::new();
    let mut managed_schemas: BTreeSet<(String, String)> = BTreeSet::new();
    let mut checked = 0;
    for rs in &state.resources {
        let recorded = state_resource(state, &rs.address);
        if let Some(r) = &recorded {
            managed_schemas.insert((r.store.clone(), r.spec.qualified().0.to_string()));
        }
        if rs.status != ResourceStatus::Ok {
            unsettled.push(rs.address.clone());
            continue;
        }
        let Some(recorded) = recorded else {
            continue;
        };
        checked += 1;
        match actual.get(&rs.address) {
            None => raw.push(DriftEntry {
                address: rs.address.clone(),
                store: recorded.store.clone(),
                kind: DriftKind::Deleted,
                fields: Vec::new(),
            }),
            Some(a) => {
                let fields = field_drift(&recorded, a);
                if !fields.is_empty() {
                    raw.push(DriftEntry {
                        address: rs.address.clone(),
                        store: recorded.store.clone(),
                        kind: DriftKind::Changed,
                        fields,
                    });
                }
            }
        }
    }
    let in_state: BTreeSet<&str> = state.resources.iter().map(|r| r.address.as_str()).collect();
    let mut unmanaged: Vec<&Resource> = actual
        .values()
        .filter(|a| a.kind() != ResourceKind::Schema && !in_state.contains(a.address.as_str()))
        .filter(|a| managed_schemas.contains(&(a.store.clone(), a.spec.qualified().0.to_string())))
        .collect();
    unmanaged.sort_by(|a, b| a.address.cmp(&b.address));
    raw.extend(unmanaged.into_iter().map(|a| DriftEntry {
        address: a.address.clone(),
        store: a.store.clone(),
        kind: DriftKind::Unmanaged,
        fields: Vec::new(),
    }));

    let active: Vec<&IgnoreRule> = rules.iter().filter(|r| !r.expired(now)).collect();
    let expired_rules = rules
        .iter()
        .filter(|r| r.expired(now))
        .map(|r| {
            format!(
                "{} (expired {})",
                r.label(),
                r.expires.as_deref().unwrap_or("")
            )
        })
        .collect();
    let mut entries = Vec::new();
    let mut ignored = Vec::new();
    for mut e in raw {
        for rule in active.iter().filter(|r| r.matches_resource(&e.address)) {
            if rule.fields.is_empty() {
                ignored.push(IgnoredDrift {
                    entry: std::mem::replace(
                        &mut e,
                        DriftEntry {
                            address: String::new(),
                            store: String::new(),
                            kind: DriftKind::Changed,
                            fields: Vec::new(),
                        },
                    ),
                    rule: rule.label(),
                    reason: rule.reason.clone(),
                    expires: rule.expires.clone(),
                });
                break;
            }
            if e.kind != DriftKind::Changed {
                continue;
            }
            let (hidden, kept): (Vec<FieldDrift>, Vec<FieldDrift>) = e
                .fields
                .drain(..)
                .partition(|f| rule.matches_field(&f.field));
            e.fields = kept;
            if !hidden.is_empty() {
                ignored.push(IgnoredDrift {
                    entry: DriftEntry {
                        address: e.address.clone(),
                        store: e.store.clone(),
                        kind: e.kind,
                        fields: hidden,
                    },
                    rule: rule.label(),
                    reason: rule.reason.clone(),
                    expires: rule.expires.clone(),
                });
            }
            if e.fields.is_empty() {
                break;
            }
        }
        let hidden_whole = e.address.is_empty();
        let all_fields_hidden = e.kind == DriftKind::Changed && e.fields.is_empty();
        if !hidden_whole && !all_fields_hidden {
            entries.push(e);
        }
    }
    DriftReport {
        environment: environment.to_string(),
        serial: state.serial,
        checked_at: now,
        resources_checked: checked,
        entries,
        ignored,
        expired_rules,
        unsettled,
    }
}

/// Refreshes the managed schemas (one bulk refresh per store) and compares them with state.
pub async fn detect(
    providers: &Providers,
    env: &ResolvedProject,
    desired: &Compiled,
    state: &StateDocument,
    rules: &[IgnoreRule],
) -> Result<DriftReport, EngineError> {
    let actual = refresh(providers, env, &desired.resources, state).await?;
    Ok(compare(&env.environment, state, &actual, rules, Utc::now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dk_providers::model::{ColumnSpec, LogicalType};

    fn table(cols: &[(&str, LogicalType, bool)], comment: Option<&str>) -> Resource {
        Resource::new(
            "wh",
            ResourceSpec::Table {
                schema: "main".into(),
                name: "orders".into(),
                columns: cols
                    .iter()
                    .map(|(n, t, null)| ColumnSpec {
                        name: n.to_string(),
                        ty: *t,
                        nullable: *null,
                        comment: None,
                    })
                    .collect(),
                comment: comment.map(str::to_string),
            },
            vec![],
        )
    }

    fn state_with(resources: &[&Resource]) -> StateDocument {
        let mut doc = StateDocument::new("p", "dev");
        for r in resources {
            let mut s =
                dk_state::ResourceState::new(r.address.clone(), r.kind().as_str(), r.store.clone());
            s.attributes = serde_json::to_value(r).unwrap_or_default();
            doc.put(s);
        }
        doc
    }

    fn rule(resource: &str, fields: &[&str], expires: Option<&str>) -> IgnoreRule {
        IgnoreRule::new(&DriftIgnore {
            resource: resource.into(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
            reason: "known".into(),
            expires: expires.map(str::to_string),
        })
        .expect("valid rule")
    }

    fn now() -> DateTime<Utc> {
        dk_manifest::validate::parse_date("2026-06-15T12:00:00Z").expect("date")
    }

    #[test]
    fn reports_changed_fields_deleted_and_unmanaged_objects() {
        let recorded = table(
            &[
                ("id", LogicalType::BigInt, false),
                ("amount", LogicalType::Integer, true),
            ],
            Some("orders"),
        );
        let gone = Resource::new(
            "wh",
            ResourceSpec::View {
                schema: "main".into(),
                name: "v".into(),
                sql: "select 1".into(),
                columns: vec![],
                comment: None,
            },
            vec![],
        );
        let state = state_with(&[&recorded, &gone]);
        let changed = table(
            &[
                ("id", LogicalType::BigInt, true),
                ("amount", LogicalType::BigInt, true),
                ("note", LogicalType::String, true),
            ],
            Some("orders"),
        );
        let mut stray = table(&[("x", LogicalType::Integer, true)], None);
        stray.spec = ResourceSpec::Table {
            schema: "main".into(),
            name: "stray".into(),
            columns: vec![],
            comment: None,
        };
        stray.address = "table.wh.main.stray".into();
        let mut elsewhere = stray.clone();
        elsewhere.spec = ResourceSpec::Table {
            schema: "other".into(),
            name: "t".into(),
            columns: vec![],
            comment: None,
        };
        elsewhere.address = "table.wh.other.t".into();
        let actual: HashMap<String, Resource> = [changed, stray, elsewhere]
            .into_iter()
            .map(|r| (r.address.clone(), r))
            .collect();
        let report = compare("dev", &state, &actual, &[], now());
        assert!(report.has_drift());
        let kinds: Vec<(&str, DriftKind)> = report
            .entries
            .iter()
            .map(|e| (e.address.as_str(), e.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("table.wh.main.orders", DriftKind::Changed),
                ("view.wh.main.v", DriftKind::Deleted),
                ("table.wh.main.stray", DriftKind::Unmanaged),
            ]
        );
        let fields: Vec<&str> = report.entries[0]
            .fields
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(
            fields,
            vec!["columns.note", "columns.id.nullable", "columns.amount.type"]
        );
        assert_eq!(report.entries[0].fields[2].expected, json!("integer"));
        assert_eq!(report.entries[0].fields[2].actual, json!("bigint"));
    }

    #[test]
    fn ignore_rules_hide_fields_until_they_expire() {
        let recorded = table(&[("amount", LogicalType::Integer, true)], None);
        let state = state_with(&[&recorded]);
        let actual: HashMap<String, Resource> =
            [table(&[("amount", LogicalType::BigInt, true)], Some("x"))]
                .into_iter()
                .map(|r| (r.address.clone(), r))
                .collect();
        // One field hidden, the other stays.
        let rules = vec![rule(
            "table.wh.*.orders",
            &["columns.*.type"],
            Some("2026-06-15"),
        )];
        let report = compare("dev", &state, &actual, &rules, now());
        assert_eq!(report.entries.len(), 1);
        assert_eq!(report.entries[0].fields.len(), 1);
        assert_eq!(report.entries[0].fields[0].field, "comment");
        assert_eq!(report.ignored.len(), 1);
        assert_eq!(
            report.ignored[0].entry.fields[0].field,
            "columns.amount.type"
        );
        // A whole-resource rule hides everything.
        let rules = vec![rule("table.wh.**", &[], None)];
        let report = compare("dev", &state, &actual, &rules, now());
        assert!(!report.has_drift());
        assert_eq!(report.ignored.len(), 1);
        // Expired the day before: it hides nothing and is reported.
        let rules = vec![rule("table.wh.**", &[], Some("2026-06-14"))];
        let report = compare("dev", &state, &actual, &rules, now());
        assert!(report.has_drift());
        assert_eq!(report.expired_rules.len(), 1);
    }

    #[test]
    fn star_matches_one_part_only() {
        let r = rule("table.*.orders", &[], None);
        assert!(!r.matches_resource("table.wh.main.orders"));
        let r = rule("table.*.*.orders", &[], None);
        assert!(r.matches_resource("table.wh.main.orders"));
    }

    #[test]
    fn bad_expiry_is_an_error() {
        let e = IgnoreRule::new(&DriftIgnore {
            resource: "table.*".into(),
            fields: vec![],
            reason: "r".into(),
            expires: Some("next week".into()),
        })
        .expect_err("invalid");
        assert!(e.contains("next week"), "{e}");
    }
}
