//! `dk lint [PATH]`: load, validate, render.

use std::path::Path;

use dk_diagnostics::{render, Diagnostic, Severity, Summary};
use dk_manifest::{loader, validate, ValidateOptions};

use crate::cli::{LintArgs, LintOutput};
use crate::exit::Exit;
use crate::output;

/// Every rule `dk lint` applies: the manifest validator and the graph rules (two producers of one
/// DataSet, cycles), with `--strict` applied and sorted. Scaffolding and `dk init` use it too.
pub fn all_rules(model: &dk_manifest::ProjectModel, strict: bool) -> Vec<Diagnostic> {
    let mut diags = validate(model, ValidateOptions { strict });
    diags.extend(dk_graph::check(model));
    diags.extend(dk_env::policy::check_conditions(model));
    dk_manifest::validate::finish(&mut diags, ValidateOptions { strict }, model.is_project);
    diags
}

/// Loads and validates the project containing `path`; when `path` is a file, only its findings
/// are kept. Returns the model and the diagnostics.
pub fn check(
    path: &Path,
    strict: bool,
) -> anyhow::Result<(dk_manifest::ProjectModel, Vec<Diagnostic>)> {
    let (root, is_project) = loader::find_root(path)?;
    let model = if path.is_file() && !is_project {
        // A loose file: that file alone.
        let abs = std::fs::canonicalize(path)?;
        loader::load_file(&abs)?
    } else {
        loader::load_root(&root, is_project)?
    };
    let mut diags = all_rules(&model, strict);
    if path.is_file() && is_project {
        let abs = std::fs::canonicalize(path)?;
        let rel = abs
            .strip_prefix(&model.root)
            .unwrap_or(&abs)
            .to_string_lossy()
            .replace('\\', "/");
        diags.retain(|d| d.location.as_ref().is_some_and(|l| l.file.as_ref() == rel));
    }
    Ok((model, diags))
}

pub fn run(a: LintArgs) -> anyhow::Result<Exit> {
    let (model, mut diags) = check(&a.path, a.strict)?;
    if let Some(env) = &a.env {
        // Policies, guardrails and lineage for one environment (docs/policies.md).
        match dk_env::pick_environment(&model, Some(env)) {
            Ok((doc, e)) => {
                let mut more = dk_env::policy::lint_environment(&model, doc, e);
                // E601 is already among the rules every lint applies.
                more.retain(|d| d.code != dk_diagnostics::Code::PolicyConditionInvalid);
                diags.extend(more);
                dk_manifest::validate::finish(
                    &mut diags,
                    ValidateOptions { strict: a.strict },
                    model.is_project,
                );
            }
            Err(d) => diags.push(*d),
        }
    }
    let summary = Summary::of(&diags, model.files);
    let text = match a.output {
        LintOutput::Human => {
            let mut s = render::human(
                &diags,
                &model.sources,
                render::HumanOptions {
                    color: output::color_stdout(),
                    width: output::width(),
                },
            );
            let verdict = if summary.errors > 0 { "✗" } else { "✓" };
            s.push_str(&format!(
                "{verdict} {summary} ({} manifests in {})\n",
                model.docs.len(),
                model.root.display()
            ));
            s
        }
        LintOutput::Short => {
            let mut s = render::short(&diags);
            s.push_str(&format!("{summary}\n"));
            s
        }
        LintOutput::Json => render::json(&diags, summary),
        LintOutput::Sarif => render::sarif(&diags, env!("CARGO_PKG_VERSION")),
        LintOutput::Junit => render::junit(&diags, &model.sources, "dk lint"),
    };
    print!("{text}");
    let failed = diags.iter().any(|d| d.severity == Severity::Error);
    // The process ends right after: freeing a large project node by node is wasted time.
    std::mem::forget(model);
    Ok(if failed { Exit::Invalid } else { Exit::Ok })
}
