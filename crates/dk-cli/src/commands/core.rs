//! `dk plan`, `dk apply`, `dk destroy` and `dk state …`: the core loop.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context};
use dk_diagnostics::{render, Diagnostic, Severity};
use dk_engine::plan::{Plan, PlanOptions, Providers};
use dk_engine::{Compiled, EngineError};
use dk_env::ResolvedProject;
use dk_manifest::{loader, ProjectModel};
use dk_providers::model::{Action, ColumnOp, ResourceSpec};
use dk_state::{Backend, BackendConfig, StateDocument};

use crate::cli::{ApplyArgs, DestroyArgs, PlanArgs, PlanOutput, StateCommand, TextOrJson};
use crate::exit::Exit;
use crate::output;

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn print_diags(model: &ProjectModel, diags: &[Diagnostic]) {
    let opts = render::HumanOptions {
        color: output::color_stdout(),
        width: output::width(),
    };
    eprint!("{}", render::human(diags, &model.sources, opts));
}

/// A loaded, validated project resolved for one environment and compiled.
pub struct Prepared {
    pub model: ProjectModel,
    pub env: ResolvedProject,
    pub compiled: Compiled,
    pub project: String,
}

/// Loads, lints, resolves and compiles; `Err(exit)` after printing the diagnostics.
pub fn prepare(dir: &Path, env: Option<&str>) -> anyhow::Result<Result<Prepared, Exit>> {
    let (root, is_project) = loader::find_root(dir)?;
    if !is_project {
        bail!("{} is not inside a dk project (no project.yaml of kind Project above it); run `dk init` first", dir.display());
    }
    let model = loader::load_root(&root, true)?;
    let diags = super::lint::all_rules(&model, false);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        let errors: Vec<Diagnostic> = diags
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        print_diags(&model, &errors);
        eprintln!("✗ the project has errors (see `dk lint`); nothing was planned");
        return Ok(Err(Exit::Invalid));
    }
    let resolved = match dk_env::resolve(&model, env, &dk_env::ProcessEnv) {
        Ok(r) => r,
        Err(d) => {
            print_diags(&model, &d);
            return Ok(Err(Exit::Invalid));
        }
    };
    let compiled = match dk_engine::compile(&model, &resolved) {
        Ok(c) => c,
        Err(d) => {
            print_diags(&model, &d);
            return Ok(Err(Exit::Invalid));
        }
    };
    let project = model
        .project()
        .map(|p| p.metadata.name.clone())
        .unwrap_or_else(|| "project".into());
    Ok(Ok(Prepared {
        model,
        env: resolved,
        compiled,
        project,
    }))
}

/// The state backend configured in project.yaml (`${VAR}`s in its url resolved).
pub fn backend_config(p: &Prepared) -> anyhow::Result<BackendConfig> {
    backend_config_for(&p.model, &p.env)
}

/// [`backend_config`] for a model and an environment resolved without compiling.
pub fn backend_config_for(
    model: &ProjectModel,
    env: &ResolvedProject,
) -> anyhow::Result<BackendConfig> {
    let spec = model.project().and_then(|pr| pr.spec.state_backend.clone());
    let mut value = spec.map(serde_json::to_value).transpose()?;
    if let Some(url) = value.as_mut().and_then(|v| v.get_mut("url")) {
        if let Some(u) = url.as_str() {
            let lookup = |n: &str| {
                env.variables
                    .get(n)
                    .cloned()
                    .or_else(|| std::env::var(n).ok())
            };
            let (resolved, _) = dk_env::interpolate(u, &lookup)
                .map_err(|e| anyhow::anyhow!("project.yaml stateBackend.url: {e}"))?;
            *url = serde_json::Value::String(resolved);
        }
    }
    Ok(BackendConfig::from_spec(value.as_ref(), &model.root)?)
}

pub(crate) async fn providers_for(
    p: &Prepared,
    state: &StateDocument,
) -> Result<Providers, EngineError> {
    let mut stores: std::collections::BTreeSet<String> =
        p.compiled.stores.keys().cloned().collect();
    stores.extend(state.resources.iter().map(|r| r.provider.clone()));
    dk_engine::plan::connect(&p.env, &stores, &p.model.root).await
}

fn paint(s: &str, code: &str) -> String {
    if output::color_stdout() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn describe_op(op: &ColumnOp) -> String {
    match op {
        ColumnOp::AddColumn { column } => {
            format!(
                "+ column {} {}{}",
                column.name,
                column.ty,
                if column.nullable { "" } else { " not null" }
            )
        }
        ColumnOp::DropColumn { column } => format!("- column {column}"),
        ColumnOp::ChangeType { column, from, to } => format!("~ column {column}: {from} → {to}"),
        ColumnOp::SetNotNull { column } => format!("~ column {column}: nullable → not null"),
        ColumnOp::DropNotNull { column } => format!("~ column {column}: not null → nullable"),
        ColumnOp::SetColumnComment { column, .. } => format!("~ column {column}: comment"),
        ColumnOp::SetComment { .. } => "~ comment".to_string(),
        ColumnOp::ReplaceQuery { .. } => "~ query".to_string(),
    }
}

/// Terraform-like rendering of a plan, then its policy findings and approval requirement.
pub fn render_plan_human(plan: &Plan) -> String {
    let mut out = render_changes_human(plan);
    out.push_str(&super::governance::render_governance(plan));
    out
}

fn render_changes_human(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("No changes. Infrastructure matches the configuration.\n");
        return out;
    }
    if !plan.changes.is_empty() {
        out.push_str(&format!(
            "dk will perform the following actions in environment {}:\n\n",
            plan.environment
        ));
    }
    for c in &plan.changes {
        let color = match c.action {
            Action::Create => "32",
            Action::Update => "33",
            Action::Delete | Action::Replace => "31",
        };
        let head = format!("  {} {}", c.action.symbol(), c.address);
        out.push_str(&paint(&head, color));
        if c.destructive {
            out.push_str(&paint("  (destructive)", "1;31"));
        }
        out.push('\n');
        if let Some(r) = c
            .after
            .as_ref()
            .filter(|_| matches!(c.action, Action::Create | Action::Replace))
        {
            match &r.spec {
                ResourceSpec::Table { columns, .. } => {
                    for col in columns {
                        out.push_str(&format!(
                            "      + {} {}{}\n",
                            col.name,
                            col.ty,
                            if col.nullable { "" } else { " not null" }
                        ));
                    }
                }
                ResourceSpec::View { sql, .. } => {
                    let first = sql.lines().next().unwrap_or("");
                    out.push_str(&format!(
                        "      + query: {first}{}\n",
                        if sql.lines().count() > 1 { " …" } else { "" }
                    ));
                }
                ResourceSpec::Schema { .. } => {}
            }
        }
        for op in &c.ops {
            out.push_str(&format!("      {}\n", describe_op(op)));
        }
        for r in &c.reasons {
            out.push_str(&paint(&format!("      ! {r}\n"), "31"));
        }
        if let Some(n) = c.impact.rows {
            out.push_str(&paint(&format!("      ! impact: {n} rows\n"), "31"));
        }
        for (col, n) in &c.impact.values {
            out.push_str(&paint(
                &format!("      ! impact: {n} non-null values in {col}\n"),
                "31",
            ));
        }
        for (col, n) in &c.impact.violations {
            out.push_str(&paint(
                &format!("      ! impact: {n} rows have NULL in {col}\n"),
                "31",
            ));
        }
        out.push('\n');
    }
    if !plan.record.is_empty() {
        out.push_str(&format!(
            "{} existing object(s) match the configuration and will be recorded in state:\n",
            plan.record.len()
        ));
        for r in &plan.record {
            out.push_str(&format!("  = {}\n", r.address));
        }
        out.push('\n');
    }
    if !plan.forget.is_empty() {
        out.push_str(&format!(
            "{} object(s) were deleted outside dk and will be removed from state:\n",
            plan.forget.len()
        ));
        for a in &plan.forget {
            out.push_str(&format!("  ? {a}\n"));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Plan: {} to add, {} to change, {} to destroy.\n",
        plan.summary.add, plan.summary.change, plan.summary.destroy
    ));
    let destructive: Vec<&str> = plan.destructive().map(|c| c.address.as_str()).collect();
    if !destructive.is_empty() {
        out.push_str(&paint(
            &format!(
                "Destructive: {} change(s) can lose data and need --allow-destructive.\n",
                destructive.len()
            ),
            "1;31",
        ));
    }
    out
}

/// Markdown for pull-request comments.
pub fn render_plan_markdown(plan: &Plan) -> String {
    let mut out = format!(
        "### dk plan — `{}` / `{}`\n\n",
        plan.project, plan.environment
    );
    if plan.is_empty() {
        out.push_str("No changes. Infrastructure matches the configuration.\n");
        out.push_str(&governance_markdown(plan));
        return out;
    }
    out.push_str("| | Address | Details |\n|---|---|---|\n");
    for c in &plan.changes {
        let mut details: Vec<String> = c.ops.iter().map(describe_op).collect();
        details.extend(c.reasons.iter().map(|r| format!("⚠️ {r}")));
        out.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            c.action.symbol(),
            c.address,
            details.join("<br>").replace('|', "\\|")
        ));
    }
    out.push_str(&format!(
        "\n**Plan: {} to add, {} to change, {} to destroy.** Digest `{}`.\n",
        plan.summary.add,
        plan.summary.change,
        plan.summary.destroy,
        &plan.digest[..12.min(plan.digest.len())]
    ));
    out.push_str(&governance_markdown(plan));
    out
}

/// Policy findings, breaking changes and the approval requirement, as Markdown.
fn governance_markdown(plan: &Plan) -> String {
    let g = &plan.governance;
    let mut out = String::new();
    let esc = |s: &str| s.replace('|', "\\|");
    let shown: Vec<_> = g.violations.iter().filter(|v| v.code != "W630").collect();
    if !shown.is_empty() {
        out.push_str("\n#### Policy\n\n| | Code | Rule | Finding |\n|---|---|---|---|\n");
        for v in shown {
            let mark = match v.severity.as_str() {
                "error" => "❌",
                "warning" => "⚠️",
                _ => "ℹ️",
            };
            let at = v
                .location
                .as_deref()
                .map(|l| format!(" (`{l}`)"))
                .unwrap_or_default();
            out.push_str(&format!(
                "| {mark} | {} | `{}` | {}{at} |\n",
                v.code,
                esc(&v.rule),
                esc(&v.message)
            ));
        }
    }
    if !g.breaking.is_empty() {
        out.push_str("\n#### Breaking changes\n\n");
        for b in &g.breaking {
            out.push_str(&format!(
                "- `{}` ({}): {}; read by {}\n",
                b.address,
                b.dataset,
                b.details.join(", "),
                if b.transforms.is_empty() {
                    "no transform".to_string()
                } else {
                    b.transforms.join(", ")
                }
            ));
        }
    }
    out
}

pub(crate) fn engine_exit(e: &EngineError) -> Exit {
    match e.exit_code() {
        3 => Exit::Invalid,
        4 => Exit::Gate,
        5 => Exit::Locked,
        _ => Exit::Error,
    }
}

async fn make_plan(
    p: &Prepared,
    backend: &Backend,
    opts: &PlanOptions,
) -> Result<Plan, EngineError> {
    let state = backend.read_or_new().await?;
    let providers = providers_for(p, &state).await?;
    let input = dk_engine::PlanInput {
        model: &p.model,
        env: &p.env,
        state: &state,
        project: &p.project,
        options: opts,
    };
    let mut plan = dk_engine::plan(input, &providers, &p.compiled).await?;
    super::governance::on_plan(p, backend, &mut plan).await?;
    Ok(plan)
}

pub fn plan(a: PlanArgs) -> anyhow::Result<Exit> {
    let p = match prepare(&a.project.dir, a.env.as_deref())? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    let opts = PlanOptions {
        targets: a.target.clone(),
        destroy: a.destroy,
        refresh_only: a.refresh_only,
    };
    let result: Result<Plan, EngineError> = rt.block_on(async {
        let backend = Backend::open(
            &backend_config(&p).map_err(|e| EngineError::Internal(e.to_string()))?,
            &p.project,
            &p.env.environment,
        )
        .await?;
        let lock = backend.lock("plan").await?;
        let plan = make_plan(&p, &backend, &opts).await;
        lock.release().await?;
        plan
    });
    let plan = match result {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(engine_exit(&e));
        }
    };
    match a.output {
        PlanOutput::Human => print!("{}", render_plan_human(&plan)),
        PlanOutput::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        PlanOutput::Markdown => print!("{}", render_plan_markdown(&plan)),
    }
    if let Some(out) = &a.out {
        let bytes = serde_json::to_vec_pretty(&plan)?;
        dk_manifest::write::write_atomic(out, &bytes)?;
        eprintln!(
            "Saved the plan to {} (digest {}). Apply it with: dk apply -e {} {}",
            out.display(),
            &plan.digest[..12],
            plan.environment,
            out.display()
        );
    }
    if plan.governance.has_errors() {
        return Ok(Exit::Gate);
    }
    let changes = !plan.changes.is_empty() || !plan.record.is_empty() || !plan.forget.is_empty();
    Ok(if a.detailed_exitcode && changes {
        Exit::Changes
    } else {
        Exit::Ok
    })
}

fn confirm(question: &str, expected: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("{question}: no terminal to ask on; pass --auto-approve to apply without a prompt");
    }
    print!("{question}\n  Only '{expected}' will be accepted.\n\n  Enter a value: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == expected)
}

fn run_apply(
    p: &Prepared,
    backend: &Backend,
    plan: &Plan,
    a: &ApplyArgs,
) -> Result<dk_engine::ApplyReport, EngineError> {
    let rt = runtime().map_err(|e| EngineError::Internal(e.to_string()))?;
    rt.block_on(async {
        let state = backend.read_or_new().await?;
        let providers = providers_for(p, &state).await?;
        let opts = dk_engine::ApplyOptions {
            parallelism: a.parallelism,
            allow_destructive: a.allow_destructive,
        };
        let progress = crate::progress::ApplyProgress::new(plan.changes.len());
        let on_event = |e: dk_engine::Event| match e {
            // Changes of a wave are queued together; the bar counts finished ones.
            dk_engine::Event::Started { .. } => {}
            dk_engine::Event::Finished(r) => progress.finished(&match &r.error {
                None => format!(
                    "{} {}: done in {:.2}s",
                    r.action.symbol(),
                    r.address,
                    r.duration.as_secs_f64()
                ),
                Some(err) => format!(
                    "{} {}: FAILED after {:.2}s: {err}",
                    r.action.symbol(),
                    r.address,
                    r.duration.as_secs_f64()
                ),
            }),
        };
        let report = dk_engine::apply(plan, backend, &providers, &opts, &on_event).await;
        progress.finish();
        report
    })
}

pub fn apply(a: ApplyArgs) -> anyhow::Result<Exit> {
    let p = match prepare(&a.project.dir, a.env.as_deref())? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    let cfg = backend_config(&p)?;
    let backend = rt.block_on(Backend::open(&cfg, &p.project, &p.env.environment))?;
    let lock = match rt.block_on(backend.lock(if a.destroy_mode { "destroy" } else { "apply" })) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(if e.exit_code() == 5 {
                Exit::Locked
            } else {
                Exit::Error
            });
        }
    };
    let result = (|| -> anyhow::Result<Exit> {
        let plan = match &a.plan {
            Some(path) => {
                let plan = match Plan::read(path) {
                    Ok(pl) => pl,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(Exit::Error);
                    }
                };
                if plan.environment != p.env.environment || plan.project != p.project {
                    bail!(
                        "{} is a plan for {}/{}, not {}/{}",
                        path.display(),
                        plan.project,
                        plan.environment,
                        p.project,
                        p.env.environment
                    );
                }
                print!("{}", render_plan_human(&plan));
                plan
            }
            None => {
                let opts = PlanOptions {
                    targets: a.target.clone(),
                    destroy: a.destroy_mode,
                    refresh_only: false,
                };
                let plan = match rt.block_on(make_plan(&p, &backend, &opts)) {
                    Ok(pl) => pl,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(engine_exit(&e));
                    }
                };
                print!("{}", render_plan_human(&plan));
                if plan.governance.has_errors() {
                    eprintln!("error: the plan violates error-severity policies (above); nothing was applied");
                    return Ok(Exit::Gate);
                }
                if plan.is_empty() {
                    return Ok(Exit::Ok);
                }
                if !a.auto_approve {
                    let (q, expected) = if a.destroy_mode {
                        (format!("Do you really want to destroy every object dk manages in {}? Type the environment name to confirm.", plan.environment), plan.environment.clone())
                    } else {
                        (
                            "Do you want to perform these actions?".to_string(),
                            "yes".to_string(),
                        )
                    };
                    if !confirm(&q, &expected)? {
                        println!("Apply cancelled.");
                        return Ok(Exit::Error);
                    }
                }
                plan
            }
        };
        let gate = super::governance::gate(&p, &backend, &plan, a.plan.as_deref(), a.allow_dirty);
        if let Some(code) = rt.block_on(gate)? {
            return Ok(code);
        }
        let applied = run_apply(&p, &backend, &plan, &a);
        let (serial, error) = match &applied {
            Ok(r) if r.failed() => (Some(r.serial), Some("a change failed".to_string())),
            Ok(r) => (Some(r.serial), None),
            Err(e) => (None, Some(e.to_string())),
        };
        rt.block_on(super::governance::after_apply(
            &backend, &plan, serial, error,
        ))?;
        match applied {
            Ok(report) => {
                if report.failed() {
                    eprintln!(
                        "\n✗ apply stopped after a failure; state was saved (serial {}). Not started: {}.\n  Fix the cause and run `dk apply -e {}` again: it resumes from the recorded state.",
                        report.serial,
                        if report.skipped.is_empty() { "nothing".to_string() } else { report.skipped.join(", ") },
                        plan.environment
                    );
                    Ok(Exit::Error)
                } else {
                    let n = report.results.len();
                    println!(
                        "\nApply complete! {n} change(s) applied. State serial {}.",
                        report.serial
                    );
                    Ok(Exit::Ok)
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(engine_exit(&e))
            }
        }
    })();
    rt.block_on(lock.release())?;
    result
}

pub fn destroy(a: DestroyArgs) -> anyhow::Result<Exit> {
    apply(ApplyArgs {
        plan: None,
        env: a.env,
        auto_approve: a.auto_approve,
        parallelism: a.parallelism,
        allow_destructive: true,
        allow_dirty: false,
        target: Vec::new(),
        destroy_mode: true,
        project: a.project,
    })
}

pub fn state(cmd: StateCommand) -> anyhow::Result<Exit> {
    // `dk state lock list|unlock` is another spelling of `dk state locks|unlock`.
    let cmd = match cmd {
        StateCommand::Lock(crate::cli::LockCommand::List(a)) => StateCommand::Locks(a),
        StateCommand::Lock(crate::cli::LockCommand::Unlock(a)) => StateCommand::Unlock(a),
        other => other,
    };
    let (env, project, output) = match &cmd {
        StateCommand::List {
            env,
            project,
            output,
        }
        | StateCommand::History {
            env,
            project,
            output,
        }
        | StateCommand::Show {
            env,
            project,
            output,
            ..
        } => (env.clone(), project.clone(), *output),
        StateCommand::Rm { env, project, .. }
        | StateCommand::Mv { env, project, .. }
        | StateCommand::Unlock(crate::cli::UnlockArgs { env, project, .. })
        | StateCommand::Pull { env, project, .. }
        | StateCommand::Push { env, project, .. } => {
            (env.clone(), project.clone(), TextOrJson::Text)
        }
        StateCommand::Locks(crate::cli::LocksArgs {
            env,
            project,
            output,
        }) => (env.clone(), project.clone(), *output),
        StateCommand::Lock(_) => {
            bail!("dk state lock: use `dk state lock list` or `dk state lock unlock ID`")
        }
    };
    let (root, is_project) = loader::find_root(&project.dir)?;
    if !is_project {
        bail!(
            "{} is not inside a dk project (no project.yaml)",
            project.dir.display()
        );
    }
    let model = loader::load_root(&root, true)?;
    let resolved = match dk_env::resolve(&model, env.as_deref(), &dk_env::ProcessEnv) {
        Ok(r) => r,
        Err(d) => {
            print_diags(&model, &d);
            return Ok(Exit::Invalid);
        }
    };
    let p = Prepared {
        project: model
            .project()
            .map(|p| p.metadata.name.clone())
            .unwrap_or_else(|| "project".into()),
        model,
        env: resolved,
        compiled: Compiled::default(),
    };
    let rt = runtime()?;
    let backend = rt.block_on(Backend::open(
        &backend_config(&p)?,
        &p.project,
        &p.env.environment,
    ))?;
    let result = rt.block_on(async {
        match cmd {
            StateCommand::List { .. } => {
                let doc = backend.read_or_new().await?;
                if output == TextOrJson::Json {
                    let v: Vec<_> = doc.resources.iter().map(|r| serde_json::json!({"address": r.address, "status": r.status, "type": r.resource_type, "store": r.provider})).collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    for r in &doc.resources {
                        let status = format!("{:?}", r.status).to_lowercase();
                        println!("{}{}", r.address, if status == "ok" { String::new() } else { format!("  ({status})") });
                    }
                }
            }
            StateCommand::Show { address, .. } => {
                let doc = backend.read_or_new().await?;
                let r = doc.get(&address).with_context(|| format!("{address} is not in the state of {}", p.env.environment))?;
                println!("{}", serde_json::to_string_pretty(r)?);
            }
            StateCommand::History { .. } => {
                let h = backend.history().await?;
                if output == TextOrJson::Json {
                    println!("{}", serde_json::to_string_pretty(&h)?);
                } else {
                    for e in h {
                        let git = e
                            .git
                            .as_ref()
                            .and_then(|g| g.commit.as_deref().map(|c| format!(" {}{}", &c[..c.len().min(8)], if g.dirty { "+dirty" } else { "" })))
                            .unwrap_or_default();
                        println!("{:>6}  {}  {:<8} {} resources{git}", e.serial, e.created.format("%Y-%m-%d %H:%M:%S"), e.operation, e.resources);
                    }
                }
            }
            StateCommand::Rm { address, .. } => {
                let lock = backend.lock("state rm").await?;
                let mut doc = backend.read_or_new().await?;
                if doc.remove(&address).is_none() {
                    lock.release().await?;
                    bail!("{address} is not in the state of {}", p.env.environment);
                }
                let written = backend.write(&doc, doc.serial, "state rm").await?;
                super::governance::audit_state_edit(&backend, "state rm", written.serial, format!("removed {address} from state")).await?;
                lock.release().await?;
                println!("Removed {address} from state (serial {}). The object itself was not touched.", written.serial);
            }
            StateCommand::Mv { from, to, .. } => {
                let lock = backend.lock("state mv").await?;
                let mut doc = backend.read_or_new().await?;
                doc.mv(&from, &to)?;
                let written = backend.write(&doc, doc.serial, "state mv").await?;
                super::governance::audit_state_edit(&backend, "state mv", written.serial, format!("moved {from} to {to}")).await?;
                lock.release().await?;
                println!("Moved {from} to {to} (serial {}).", written.serial);
            }
            StateCommand::Pull { out, .. } => {
                let Some(doc) = backend.read_latest().await? else {
                    bail!(
                        "environment {} has no state yet ({}); nothing to pull",
                        p.env.environment,
                        backend.describe()
                    );
                };
                let mut text = doc.to_json_pretty()?;
                text.push('\n');
                match out {
                    Some(path) => {
                        dk_manifest::write::write_atomic(&path, text.as_bytes())?;
                        eprintln!(
                            "Wrote serial {} of environment {} to {}.",
                            doc.serial,
                            p.env.environment,
                            path.display()
                        );
                    }
                    None => print!("{text}"),
                }
            }
            StateCommand::Push { file, force, .. } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let doc: StateDocument = serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "{} is not a dk state document ({e}); push a file written by `dk state pull`",
                        file.display()
                    )
                })?;
                let lock = backend.lock("state push").await?;
                let pushed = backend.push(&doc, force).await;
                lock.release().await?;
                let (written, replaced) = pushed?;
                if replaced == 0 {
                    println!(
                        "Pushed {} to environment {}: serial {} (there was no state before).",
                        file.display(),
                        p.env.environment,
                        written.serial
                    );
                } else {
                    println!(
                        "Pushed {} to environment {}: serial {} (serial {} is kept in the history).",
                        file.display(),
                        p.env.environment,
                        written.serial,
                        replaced
                    );
                }
            }
            StateCommand::Locks(_) => {
                let locks = backend.list_locks().await?;
                if output == TextOrJson::Json {
                    println!("{}", serde_json::to_string_pretty(&locks)?);
                } else if locks.is_empty() {
                    println!("No locks held.");
                } else {
                    for l in locks {
                        println!("{}  {} by {}@{} (pid {}) since {}", l.id, l.operation, l.who, l.host, l.pid, l.created.format("%Y-%m-%d %H:%M:%S"));
                    }
                }
            }
            StateCommand::Lock(_) => {}
            StateCommand::Unlock(crate::cli::UnlockArgs { id, .. }) => {
                let info = backend.force_unlock(&id).await?;
                println!("Released lock {} ({} by {}@{}, pid {}).", info.id, info.operation, info.who, info.host, info.pid);
            }
        }
        Ok::<_, anyhow::Error>(())
    });
    match result {
        Ok(()) => Ok(Exit::Ok),
        // A held lock is exit code 5 for `state rm|mv|push` as for apply.
        Err(e)
            if e.downcast_ref::<dk_state::StateError>()
                .is_some_and(|s| s.exit_code() == 5) =>
        {
            eprintln!("error: {e}");
            Ok(Exit::Locked)
        }
        Err(e) => Err(e),
    }
}
