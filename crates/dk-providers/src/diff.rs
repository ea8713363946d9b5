//! Provider-independent diff of a desired and an actual resource. Providers turn the result into
//! statements of their dialect and measure the impact of destructive operations.

use crate::model::{Action, ColumnOp, Resource, ResourceSpec};

/// The shape of a change before dialect and impact are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub action: Action,
    pub ops: Vec<ColumnOp>,
    /// Reasons data could be lost (empty when the change is safe). Whether a `SetNotNull` loses
    /// anything depends on the data: providers decide once they have measured violations.
    pub reasons: Vec<String>,
}

/// Compares `desired` with `actual`; `None` when they match.
pub fn diff(desired: Option<&Resource>, actual: Option<&Resource>) -> Option<Diff> {
    match (desired, actual) {
        (None, None) => None,
        (Some(_), None) => Some(Diff {
            action: Action::Create,
            ops: Vec::new(),
            reasons: Vec::new(),
        }),
        (None, Some(a)) => {
            let reasons = match &a.spec {
                ResourceSpec::Table { .. } => {
                    vec![format!("drops table {} and its rows", a.address)]
                }
                _ => Vec::new(),
            };
            Some(Diff {
                action: Action::Delete,
                ops: Vec::new(),
                reasons,
            })
        }
        (Some(d), Some(a)) => match (&d.spec, &a.spec) {
            (ResourceSpec::Schema { .. }, ResourceSpec::Schema { .. }) => None,
            (
                ResourceSpec::Table {
                    columns: dc,
                    comment: dcom,
                    ..
                },
                ResourceSpec::Table {
                    columns: ac,
                    comment: acom,
                    ..
                },
            ) => {
                let mut ops = Vec::new();
                let mut reasons = Vec::new();
                for a_col in ac {
                    if !dc.iter().any(|c| c.name == a_col.name) {
                        ops.push(ColumnOp::DropColumn {
                            column: a_col.name.clone(),
                        });
                        reasons.push(format!("drops column {} and its values", a_col.name));
                    }
                }
                for d_col in dc {
                    match ac.iter().find(|c| c.name == d_col.name) {
                        None => {
                            ops.push(ColumnOp::AddColumn {
                                column: d_col.clone(),
                            });
                        }
                        Some(a_col) => {
                            if a_col.ty != d_col.ty {
                                if !a_col.ty.widens_to(d_col.ty) {
                                    reasons.push(format!(
                                        "narrows column {} from {} to {}",
                                        d_col.name, a_col.ty, d_col.ty
                                    ));
                                }
                                ops.push(ColumnOp::ChangeType {
                                    column: d_col.name.clone(),
                                    from: a_col.ty,
                                    to: d_col.ty,
                                });
                            }
                            if a_col.nullable && !d_col.nullable {
                                ops.push(ColumnOp::SetNotNull {
                                    column: d_col.name.clone(),
                                });
                            } else if !a_col.nullable && d_col.nullable {
                                ops.push(ColumnOp::DropNotNull {
                                    column: d_col.name.clone(),
                                });
                            }
                            if a_col.comment != d_col.comment {
                                ops.push(ColumnOp::SetColumnComment {
                                    column: d_col.name.clone(),
                                    from: a_col.comment.clone(),
                                    to: d_col.comment.clone(),
                                });
                            }
                        }
                    }
                }
                if dcom != acom {
                    ops.push(ColumnOp::SetComment {
                        from: acom.clone(),
                        to: dcom.clone(),
                    });
                }
                (!ops.is_empty()).then_some(Diff {
                    action: Action::Update,
                    ops,
                    reasons,
                })
            }
            (
                ResourceSpec::View {
                    sql: dsql,
                    comment: dcom,
                    ..
                },
                ResourceSpec::View {
                    sql: asql,
                    comment: acom,
                    ..
                },
            ) => {
                let mut ops = Vec::new();
                if normalize_sql(dsql) != normalize_sql(asql) {
                    ops.push(ColumnOp::ReplaceQuery {
                        from: asql.clone(),
                        to: dsql.clone(),
                    });
                }
                if dcom != acom {
                    ops.push(ColumnOp::SetComment {
                        from: acom.clone(),
                        to: dcom.clone(),
                    });
                }
                (!ops.is_empty()).then_some(Diff {
                    action: Action::Update,
                    ops,
                    reasons: Vec::new(),
                })
            }
            // The kind changed (table ↔ view): drop and create.
            (_, a_spec) => {
                let reasons = match a_spec {
                    ResourceSpec::Table { .. } => vec![format!(
                        "replaces table {} (and its rows) with a view",
                        a.address
                    )],
                    _ => Vec::new(),
                };
                Some(Diff {
                    action: Action::Replace,
                    ops: Vec::new(),
                    reasons,
                })
            }
        },
    }
}

/// Whitespace-insensitive form of a query (trailing `;` ignored) for comparisons.
pub fn normalize_sql(sql: &str) -> String {
    sql.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(';')
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ColumnSpec, LogicalType};

    fn table(cols: &[(&str, LogicalType, bool)]) -> Resource {
        Resource::new(
            "wh",
            ResourceSpec::Table {
                schema: "main".into(),
                name: "t".into(),
                columns: cols
                    .iter()
                    .map(|(n, t, null)| ColumnSpec {
                        name: n.to_string(),
                        ty: *t,
                        nullable: *null,
                        comment: None,
                    })
                    .collect(),
                comment: None,
            },
            vec![],
        )
    }

    #[test]
    fn same_is_no_change() {
        let t = table(&[("id", LogicalType::BigInt, false)]);
        assert_eq!(diff(Some(&t), Some(&t)), None);
    }

    #[test]
    fn column_changes_and_destructiveness() {
        let a = table(&[
            ("id", LogicalType::Integer, true),
            ("old", LogicalType::String, true),
            ("amount", LogicalType::Double, true),
        ]);
        let d = table(&[
            ("id", LogicalType::BigInt, false),
            ("amount", LogicalType::Float, true),
            ("new", LogicalType::Date, true),
        ]);
        let r = diff(Some(&d), Some(&a)).unwrap();
        assert_eq!(r.action, Action::Update);
        assert!(r.ops.contains(&ColumnOp::DropColumn {
            column: "old".into()
        }));
        assert!(r.ops.contains(&ColumnOp::SetNotNull {
            column: "id".into()
        }));
        assert!(r
            .ops
            .iter()
            .any(|o| matches!(o, ColumnOp::AddColumn { column } if column.name == "new")));
        assert_eq!(r.reasons.len(), 2, "{:?}", r.reasons); // drop column, narrow double→float
    }

    #[test]
    fn widening_is_safe() {
        assert!(LogicalType::Integer.widens_to(LogicalType::BigInt));
        assert!(!LogicalType::BigInt.widens_to(LogicalType::Integer));
        assert!(LogicalType::Decimal(10, 2).widens_to(LogicalType::Decimal(12, 2)));
        assert!(!LogicalType::Decimal(10, 2).widens_to(LogicalType::Decimal(10, 3)));
    }

    #[test]
    fn types_parse_and_print() {
        for s in [
            "smallint",
            "integer",
            "bigint",
            "float",
            "double",
            "decimal(10,2)",
            "boolean",
            "string",
            "date",
            "time",
            "timestamp",
            "timestamptz",
            "json",
            "binary",
            "uuid",
        ] {
            assert_eq!(LogicalType::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(LogicalType::parse("text"), Some(LogicalType::String));
        assert_eq!(
            LogicalType::parse("DECIMAL( 5 , 1 )"),
            Some(LogicalType::Decimal(5, 1))
        );
        assert_eq!(LogicalType::parse("decimal(5,6)"), None);
    }
}
