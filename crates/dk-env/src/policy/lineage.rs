//! Classification along lineage (pack `security`, E620): a Transform's output must be classified
//! at least as high as its most sensitive input, and a column with `from: dataset.column` at least
//! as high as its source column, unless the Transform declares a `masking` step for that output
//! (dataset level) or column (column level).

use dk_diagnostics::{Code, Diagnostic};
use dk_manifest::loader::ProjectModel;
use dk_manifest::model::Transform;

use super::view::{classification_rank, column_classification, Index};

fn masks(t: &Transform, output: &str, column: Option<&str>) -> bool {
    t.spec.masking.iter().any(|m| {
        m.dataset.as_deref().is_none_or(|d| d == output)
            && match column {
                // Dataset level: any masking step for the output.
                None => true,
                Some(c) => m.columns.is_empty() || m.columns.iter().any(|x| x == c),
            }
    })
}

fn label(c: &str) -> &str {
    if c.is_empty() {
        "unclassified"
    } else {
        c
    }
}

/// The lineage findings of a project.
pub fn check(model: &ProjectModel, index: &Index<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (tdoc, t) in model.transforms() {
        let tname = &t.metadata.name;
        let inputs: Vec<String> = t
            .spec
            .inputs
            .iter()
            .flat_map(|r| dk_manifest::refs::names(model, r))
            .collect();
        for r in &t.spec.outputs {
            for out_name in dk_manifest::refs::names(model, r) {
                let Some((odoc, ods)) = index.datasets.get(out_name.as_str()) else {
                    continue;
                };
                let ocl = ods.spec.classification.clone().unwrap_or_default();
                // Dataset level.
                let worst = inputs
                    .iter()
                    .filter_map(|i| index.datasets.get(i.as_str()))
                    .map(|(_, ds)| {
                        (
                            ds.metadata.name.clone(),
                            ds.spec.classification.clone().unwrap_or_default(),
                        )
                    })
                    .max_by_key(|(_, c)| classification_rank(c));
                if let Some((iname, icl)) = worst {
                    if classification_rank(&icl) > classification_rank(&ocl)
                        && !masks(t, &out_name, None)
                    {
                        out.push(
                            Diagnostic::new(
                                Code::ClassificationDowngrade,
                                format!(
                                    "dataset {out_name} is classified {} but transform {tname} writes it from {iname} ({icl}): {iname} ({icl}) → transform {tname} → {out_name} ({})",
                                    label(&ocl),
                                    label(&ocl)
                                ),
                            )
                            .at(odoc.loc("/spec/classification"))
                            .label("lower than its inputs")
                            .related(tdoc.loc("/spec/inputs"), format!("transform {tname} reads {iname}"))
                            .help(format!(
                                "classify {out_name} as {icl} (or higher), or declare the masking step in transform {tname}: `masking: [{{dataset: {out_name}, method: hash, columns: [...]}}]`"
                            )),
                        );
                    }
                }
                // Column level, where `from:` lineage exists.
                for (ci, col) in ods.spec.schema.iter().enumerate() {
                    let Some(from) = col.from.as_deref() else {
                        continue;
                    };
                    let Some((sds_name, scol_name)) = from.split_once('.') else {
                        continue;
                    };
                    let Some((_, sds)) = index.datasets.get(sds_name) else {
                        continue;
                    };
                    let Some(scol) = sds.spec.schema.iter().find(|c| c.name == scol_name) else {
                        continue;
                    };
                    let scl = column_classification(sds, scol);
                    let ccl = column_classification(ods, col);
                    let pii_lost = scol.pii && !col.pii;
                    if (classification_rank(&scl) > classification_rank(&ccl) || pii_lost)
                        && !masks(t, &out_name, Some(&col.name))
                    {
                        let what = if classification_rank(&scl) > classification_rank(&ccl) {
                            format!(
                                "is classified {} but comes from {from} ({scl})",
                                label(&ccl)
                            )
                        } else {
                            format!("drops pii: true from {from}")
                        };
                        out.push(
                            Diagnostic::new(
                                Code::ClassificationDowngrade,
                                format!(
                                    "column {out_name}.{} {what}: {from} ({}) → transform {tname} → {out_name}.{} ({})",
                                    col.name,
                                    label(&scl),
                                    col.name,
                                    label(&ccl)
                                ),
                            )
                            .at(odoc.loc(&format!("/spec/schema/{ci}")))
                            .label("lower than its source column")
                            .help(format!(
                                "classify {out_name}.{} as {scl} (and keep pii: true), or mask it in transform {tname}: `masking: [{{dataset: {out_name}, columns: [{}], method: hash}}]`",
                                col.name, col.name
                            )),
                        );
                    }
                }
            }
        }
    }
    out
}
