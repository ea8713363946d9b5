//! Governance commands and the gates around plan and apply: `dk keygen`, `dk approve`,
//! `dk approvals list`, `dk promote`, `dk rollback`, `dk audit`; the policy evaluation, snapshot
//! and audit entry of every plan ([`on_plan`]), the apply gate ([`gate`]) and the audit entry of
//! every apply ([`after_apply`]). Docs: docs/policies.md, docs/approvals.md, docs/promotion.md.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use dk_engine::governance::{self, PlanSource};
use dk_engine::plan::{Plan, PlanOptions};
use dk_engine::EngineError;
use dk_env::approval::{self, Approval};
use dk_manifest::loader;
use dk_state::{AuditEntry, Backend, StateDocument};

use super::core::{backend_config, prepare, render_plan_human, render_plan_markdown, Prepared};
use crate::cli::{PlanOutput, ProjectArg, TextOrJson};
use crate::exit::Exit;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn short(d: &str) -> &str {
    &d[..d.len().min(12)]
}

// --- hooks used by plan and apply ---------------------------------------------------------------

/// After a plan is made: evaluate policies and breaking changes into it (re-digesting it), store
/// the manifests snapshot it was made from, and append a `plan` audit entry.
pub async fn on_plan(p: &Prepared, backend: &Backend, plan: &mut Plan) -> Result<(), EngineError> {
    let (env_doc, env) = dk_env::pick_environment(&p.model, Some(&p.env.environment))
        .map_err(|d| EngineError::Internal(d.message.clone()))?;
    governance::evaluate(&p.model, &p.env, env_doc, env, plan);
    let (digest, snap) = governance::snapshot(&p.model, plan.git.as_ref());
    if digest == plan.manifests_digest {
        backend.put_snapshot(&digest, &snap).await?;
    }
    audit_plan(backend, plan, "plan", None).await?;
    Ok(())
}

async fn audit_plan(
    backend: &Backend,
    plan: &Plan,
    operation: &str,
    extra: Option<String>,
) -> Result<(), EngineError> {
    let outcome = if plan.governance.has_errors() {
        "refused"
    } else {
        "ok"
    };
    let mut e = AuditEntry::now(
        operation,
        &plan.environment,
        outcome,
        format!(
            "{}: {} to add, {} to change, {} to destroy; {} violation(s){}",
            operation,
            plan.summary.add,
            plan.summary.change,
            plan.summary.destroy,
            plan.governance.violations.len(),
            extra.map(|x| format!("; {x}")).unwrap_or_default()
        ),
    );
    e.digest = Some(plan.digest.clone());
    e.manifests_digest = Some(plan.manifests_digest.clone());
    e.serial = Some(plan.serial);
    e.details = serde_json::json!({
        "git": plan.git,
        "source": plan.governance.source,
        "approval": plan.governance.approval,
    });
    backend.append_audit(&e).await?;
    Ok(())
}

/// What `dk plan` prints after the changes: violations, breaking changes, approvals needed.
pub fn render_governance(plan: &Plan) -> String {
    let g = &plan.governance;
    let mut out = String::new();
    if let Some(s) = &g.source {
        out.push_str(&format!(
            "\nPlanned from the manifests {} applied at serial {} ({}{}).\n",
            s.environment,
            s.serial,
            short(&s.manifests_digest),
            s.commit
                .as_deref()
                .map(|c| format!(", commit {}", short(c)))
                .unwrap_or_default()
        ));
    }
    if !g.breaking.is_empty() {
        out.push_str("\nBreaking changes (readers downstream):\n");
        for b in &g.breaking {
            out.push_str(&format!(
                "  ! {} ({}): {}\n",
                b.dataset,
                b.address,
                b.details.join(", ")
            ));
            out.push_str(&format!(
                "      read by transforms: {}\n",
                if b.transforms.is_empty() {
                    "none".to_string()
                } else {
                    b.transforms.join(", ")
                }
            ));
            if !b.datasets.is_empty() {
                out.push_str(&format!(
                    "      downstream datasets: {}\n",
                    b.datasets.join(", ")
                ));
            }
            if !b.lineage_columns.is_empty() {
                out.push_str(&format!(
                    "      columns derived from it: {}\n",
                    b.lineage_columns.join(", ")
                ));
            }
        }
    }
    let shown: Vec<_> = g.violations.iter().filter(|v| v.code != "W630").collect();
    if !shown.is_empty() {
        out.push_str("\nPolicy:\n");
        for v in &shown {
            out.push_str(&format!(
                "  {} [{}] {}: {}{}\n",
                match v.severity.as_str() {
                    "error" => "✗",
                    "warning" => "!",
                    _ => "i",
                },
                v.code,
                v.rule,
                v.message,
                v.location
                    .as_deref()
                    .map(|l| format!(" ({l})"))
                    .unwrap_or_default()
            ));
        }
    }
    let a = &g.approval;
    if a.required > 0 {
        out.push_str(&format!(
            "\nApproval: {} approval(s) from {} needed ({}); sign with `dk approve PLAN --key FILE`.\n",
            a.required,
            if a.approvers.is_empty() {
                "(no approvers listed)".to_string()
            } else {
                a.approvers.join(", ")
            },
            a.reasons.join(", ")
        ));
    } else if a.auto_approved {
        out.push_str(&format!(
            "\nApproval: auto-approved by the environment ({}).\n",
            a.reasons.join(", ")
        ));
    }
    if g.has_errors() {
        out.push_str(&format!(
            "✗ {} policy error(s): this plan cannot be applied.\n",
            g.violations.iter().filter(|v| v.is_error()).count()
        ));
    }
    out
}

/// The approvals file kept beside a plan file: `plan.json` → `plan.approvals.json`.
pub fn approvals_path(plan: &Path) -> PathBuf {
    let stem = plan
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "plan".into());
    plan.with_file_name(format!("{stem}.approvals.json"))
}

fn read_approvals_file(path: &Path) -> anyhow::Result<Vec<Approval>> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .with_context(|| format!("{} is not a dk approvals file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The apply gate: `Ok(None)` to go on, `Ok(Some(exit))` after printing why not.
pub async fn gate(
    p: &Prepared,
    backend: &Backend,
    plan: &Plan,
    plan_file: Option<&Path>,
    allow_dirty: bool,
) -> anyhow::Result<Option<Exit>> {
    let (_, env) = dk_env::pick_environment(&p.model, Some(&p.env.environment))
        .map_err(|d| anyhow::anyhow!(d.message.clone()))?;
    let mut approvals = match plan_file {
        Some(f) => read_approvals_file(&approvals_path(f))?,
        None => Vec::new(),
    };
    for v in backend.approvals(Some(&plan.digest)).await? {
        if let Ok(a) = serde_json::from_value::<Approval>(v) {
            approvals.push(a);
        }
    }
    let mut untested = Vec::new();
    let tests_passed = if env.spec.require_tests {
        match backend.passing_test(&plan.manifests_digest).await? {
            None => Some(false),
            Some(record) => {
                // Checks skipped because their tables did not exist yet count only when this
                // plan creates those tables.
                let created = governance::created_datasets(plan, &p.model, &p.env);
                untested = record
                    .pending
                    .into_iter()
                    .filter(|d| !created.contains(d))
                    .collect();
                Some(untested.is_empty())
            }
        }
    } else {
        None
    };
    let opts = governance::GateOptions {
        allow_dirty,
        tests_passed,
        untested,
    };
    match governance::gate_apply(env, Some(&p.model), Some(&p.env), plan, &approvals, &opts) {
        Ok(report) => {
            if report.requirement.auto_approved {
                eprintln!(
                    "Approval: auto-approved by environment {} ({}).",
                    p.env.environment,
                    report.requirement.reasons.join(", ")
                );
            } else if report.requirement.required > 0 {
                eprintln!(
                    "Approval: {} of {} required ({}).",
                    report.verdict.approved_by.len(),
                    report.requirement.required,
                    report.verdict.approved_by.join(", ")
                );
            }
            Ok(None)
        }
        Err(refusal) => {
            let mut e = AuditEntry::now(
                "apply",
                &plan.environment,
                "refused",
                refusal.message.lines().next().unwrap_or("").to_string(),
            );
            e.digest = Some(plan.digest.clone());
            e.manifests_digest = Some(plan.manifests_digest.clone());
            e.details = serde_json::json!({"reason": refusal.message});
            backend.append_audit(&e).await?;
            eprintln!("✗ apply refused: {}", refusal.message);
            if refusal.verdict.is_some() && plan_file.is_none() {
                eprintln!("  Save the plan with `dk plan -e {} --out plan.json`, have approvers run `dk approve plan.json --key KEY`, then `dk apply -e {} plan.json`.", plan.environment, plan.environment);
            }
            Ok(Some(Exit::Gate))
        }
    }
}

/// After an apply ran: its audit entry.
pub async fn after_apply(
    backend: &Backend,
    plan: &Plan,
    serial: Option<u64>,
    error: Option<String>,
) -> anyhow::Result<()> {
    let op = if plan.destroy {
        "destroy"
    } else if let Some(s) = &plan.governance.source {
        if s.kind == "promote" {
            "apply (promote)"
        } else {
            "apply (rollback)"
        }
    } else {
        "apply"
    };
    let (outcome, summary) = match &error {
        None => (
            "ok",
            format!(
                "applied plan {}: {} to add, {} to change, {} to destroy",
                short(&plan.digest),
                plan.summary.add,
                plan.summary.change,
                plan.summary.destroy
            ),
        ),
        Some(e) => (
            "failed",
            format!("apply of plan {} failed: {e}", short(&plan.digest)),
        ),
    };
    let mut e = AuditEntry::now(op, &plan.environment, outcome, summary);
    e.digest = Some(plan.digest.clone());
    e.manifests_digest = Some(plan.manifests_digest.clone());
    e.serial = serial;
    backend.append_audit(&e).await?;
    Ok(())
}

/// An audit entry for a state edit (`state rm`, `state mv`, …).
pub async fn audit_state_edit(
    backend: &Backend,
    operation: &str,
    serial: u64,
    summary: String,
) -> anyhow::Result<()> {
    let mut e = AuditEntry::now(operation, backend.environment(), "ok", summary);
    e.serial = Some(serial);
    backend.append_audit(&e).await?;
    Ok(())
}

// --- dk keygen ----------------------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key (its public key goes to FILE.pub).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
}

pub fn keygen(a: KeygenArgs) -> anyhow::Result<Exit> {
    let pub_path = PathBuf::from(format!("{}.pub", a.out.display()));
    if !a.force {
        for p in [&a.out, &pub_path] {
            if p.exists() {
                bail!("{} exists; pass --force to replace it", p.display());
            }
        }
    }
    let key = approval::generate()?;
    let text = approval::private_key_text(&key);
    dk_manifest::write::write_atomic(&a.out, text.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&a.out, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", a.out.display()))?;
    }
    let public = approval::public_key(&key);
    dk_manifest::write::write_atomic(&pub_path, format!("{public}\n").as_bytes())?;
    println!(
        "Wrote the private key to {} (keep it secret) and the public key to {}.",
        a.out.display(),
        pub_path.display()
    );
    println!("Public key: {public}");
    println!("List it in an Environment:\n  approval:\n    approvers:\n      - {{name: YOUR-NAME, publicKey: \"{public}\"}}");
    Ok(Exit::Ok)
}

// --- dk approve ---------------------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The plan file (`dk plan --out`).
    pub plan: PathBuf,
    /// Your private key (`dk keygen --out FILE`).
    #[arg(long)]
    pub key: PathBuf,
    /// Why you approve (signed with the digest).
    #[arg(long)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub project: ProjectArg,
}

/// Loads the project and resolves `env` without compiling (governance commands need the
/// Environment and the state backend, not the resources).
fn load_env(dir: &Path, env: Option<&str>) -> anyhow::Result<Prepared> {
    let (root, is_project) = loader::find_root(dir)?;
    if !is_project {
        bail!("{} is not inside a dk project (no project.yaml of kind Project above it); run `dk init` first", dir.display());
    }
    let model = loader::load_root(&root, true)?;
    let resolved = dk_env::resolve(&model, env, &dk_env::ProcessEnv).map_err(|d| {
        anyhow::anyhow!(d
            .iter()
            .map(|x| match &x.location {
                Some(l) => format!("{l}: {}", x.message),
                None => x.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n"))
    })?;
    Ok(Prepared {
        project: model
            .project()
            .map(|p| p.metadata.name.clone())
            .unwrap_or_else(|| "project".into()),
        model,
        env: resolved,
        compiled: Default::default(),
    })
}

pub fn approve(a: ApproveArgs) -> anyhow::Result<Exit> {
    let plan = match Plan::read(&a.plan) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Exit::Error);
        }
    };
    let key_text = std::fs::read_to_string(&a.key)
        .with_context(|| format!("cannot read the key {}", a.key.display()))?;
    let key = approval::parse_private_key(&key_text, &a.key.display().to_string())?;
    let p = load_env(&a.project.dir, Some(&plan.environment))?;
    if p.project != plan.project {
        bail!(
            "{} is a plan of project {}, not {}",
            a.plan.display(),
            plan.project,
            p.project
        );
    }
    let (_, env) = dk_env::pick_environment(&p.model, Some(&plan.environment))
        .map_err(|d| anyhow::anyhow!(d.message.clone()))?;
    let public = approval::public_key(&key);
    let approver = env
        .spec
        .approval
        .as_ref()
        .and_then(|ap| ap.approvers.iter().find(|x| x.public_key.trim() == public))
        .map(|x| x.name.clone());
    let mut signed = Approval::sign(
        &key,
        &plan.project,
        &plan.environment,
        &plan.digest,
        a.comment.clone(),
    );
    signed.signed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    signed.signer = format!("{}@{}", dk_state::current_user(), dk_state::current_host());
    // Beside the plan: replace an earlier approval by the same key.
    let side = approvals_path(&a.plan);
    let mut list = read_approvals_file(&side)?;
    list.retain(|x| !(x.public_key == signed.public_key && x.digest == signed.digest));
    list.push(signed.clone());
    dk_manifest::write::write_atomic(&side, serde_json::to_string_pretty(&list)?.as_bytes())?;
    let rt = runtime()?;
    rt.block_on(async {
        let backend = Backend::open(&backend_config(&p)?, &p.project, &plan.environment).await?;
        backend
            .put_approval(
                &plan.digest,
                &signed.key_id(),
                &serde_json::to_value(&signed)?,
            )
            .await?;
        let mut e = AuditEntry::now(
            "approve",
            &plan.environment,
            "ok",
            format!(
                "{} approved plan {}{}",
                approver
                    .clone()
                    .unwrap_or_else(|| format!("key {} (not an approver)", signed.key_id())),
                short(&plan.digest),
                a.comment
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            ),
        );
        e.digest = Some(plan.digest.clone());
        e.manifests_digest = Some(plan.manifests_digest.clone());
        backend.append_audit(&e).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    match &approver {
        Some(name) => println!(
            "Approved plan {} for {}/{} as {name}; saved to {} and the state backend.",
            short(&plan.digest),
            plan.project,
            plan.environment,
            side.display()
        ),
        None => {
            println!(
                "Signed plan {} with key {}, saved to {} and the state backend.",
                short(&plan.digest),
                signed.key_id(),
                side.display()
            );
            eprintln!(
                "warning: this key is not an approver of environment {}: apply will not count it (add it under approval.approvers)",
                plan.environment
            );
        }
    }
    Ok(Exit::Ok)
}

// --- dk approvals list --------------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Approvals stored in the state backend of an environment, checked against its approvers.
    List {
        #[arg(long, short = 'e', env = "DK_ENV")]
        env: Option<String>,
        /// Only the approvals of this plan (with the approvals file beside it).
        #[arg(long)]
        plan: Option<PathBuf>,
        #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
        output: TextOrJson,
        #[command(flatten)]
        project: ProjectArg,
    },
}

pub fn approvals(cmd: ApprovalsCommand) -> anyhow::Result<Exit> {
    let ApprovalsCommand::List {
        env,
        plan,
        output,
        project,
    } = cmd;
    let plan_path = plan;
    let plan = match &plan_path {
        Some(path) => Some(Plan::read(path).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let env_name = env.or_else(|| plan.as_ref().map(|p| p.environment.clone()));
    let p = load_env(&project.dir, env_name.as_deref())?;
    let (_, e) = dk_env::pick_environment(&p.model, Some(&p.env.environment))
        .map_err(|d| anyhow::anyhow!(d.message.clone()))?;
    let rt = runtime()?;
    let stored: Vec<serde_json::Value> = rt.block_on(async {
        let backend = Backend::open(&backend_config(&p)?, &p.project, &p.env.environment).await?;
        Ok::<_, anyhow::Error>(
            backend
                .approvals(plan.as_ref().map(|x| x.digest.as_str()))
                .await?,
        )
    })?;
    let mut list: Vec<Approval> = stored
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    if let Some(path) = &plan_path {
        for a in read_approvals_file(&approvals_path(path))? {
            if !list
                .iter()
                .any(|x| x.public_key == a.public_key && x.signature == a.signature)
            {
                list.push(a);
            }
        }
    }
    list.sort_by(|a, b| (&a.digest, &a.signed_at).cmp(&(&b.digest, &b.signed_at)));
    let approvers = e.spec.approval.clone().unwrap_or_default().approvers;
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|a| {
            let who = approvers
                .iter()
                .find(|x| x.public_key.trim() == a.public_key.trim())
                .map(|x| x.name.clone());
            let status = if who.is_none() {
                "not an approver"
            } else if !a.signature_valid() {
                "invalid signature"
            } else {
                "valid"
            };
            serde_json::json!({
                "digest": a.digest,
                "approver": who,
                "keyId": a.key_id(),
                "status": status,
                "signedAt": a.signed_at,
                "signer": a.signer,
                "comment": a.comment,
            })
        })
        .collect();
    if output == TextOrJson::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!(
            "No approvals recorded in environment {}.",
            p.env.environment
        );
    } else {
        for r in rows {
            println!(
                "{}  {:<12} {:<18} {}{}",
                short(r["digest"].as_str().unwrap_or("")),
                r["approver"].as_str().unwrap_or("-"),
                r["status"].as_str().unwrap_or(""),
                r["signedAt"].as_str().unwrap_or(""),
                r["comment"]
                    .as_str()
                    .map(|c| format!("  \"{c}\""))
                    .unwrap_or_default()
            );
        }
    }
    Ok(Exit::Ok)
}

// --- dk audit -----------------------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[arg(long, short = 'e', env = "DK_ENV")]
    pub env: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
    #[command(flatten)]
    pub project: ProjectArg,
}

pub fn audit(a: AuditArgs) -> anyhow::Result<Exit> {
    let p = load_env(&a.project.dir, a.env.as_deref())?;
    let rt = runtime()?;
    let entries = rt.block_on(async {
        let backend = Backend::open(&backend_config(&p)?, &p.project, &p.env.environment).await?;
        Ok::<_, anyhow::Error>(backend.audit().await?)
    })?;
    if a.output == TextOrJson::Json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(Exit::Ok);
    }
    if entries.is_empty() {
        println!("No audit entries for environment {}.", p.env.environment);
    }
    for e in entries {
        println!(
            "{}  {:<18} {:<8} {:<20} {}{}",
            e.at.format("%Y-%m-%d %H:%M:%S"),
            e.operation,
            e.outcome,
            e.who,
            e.summary,
            e.digest
                .as_deref()
                .map(|d| format!("  [{}]", short(d)))
                .unwrap_or_default()
        );
    }
    Ok(Exit::Ok)
}

// --- dk promote / dk rollback -------------------------------------------------------------------

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The environment whose last applied manifests are promoted.
    #[arg(long)]
    pub from: String,
    /// The next environment in promotion order.
    #[arg(long)]
    pub to: String,
    /// Save the plan for `dk approve` and `dk apply`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, short = 'o', value_enum, default_value_t = PlanOutput::Human)]
    pub output: PlanOutput,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_serial", "to_commit"])))]
pub struct RollbackArgs {
    #[arg(long, short = 'e', env = "DK_ENV")]
    pub env: Option<String>,
    /// Plan back to the manifests of this state serial (`dk state history`).
    #[arg(long)]
    pub to_serial: Option<u64>,
    /// Plan back to the manifests last applied from this Git commit (a prefix is enough).
    #[arg(long)]
    pub to_commit: Option<String>,
    /// Save the plan for `dk approve` and `dk apply`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, short = 'o', value_enum, default_value_t = PlanOutput::Human)]
    pub output: PlanOutput,
    #[command(flatten)]
    pub project: ProjectArg,
}

/// Plans `target` from a stored snapshot (promotion or rollback) and prints / saves the plan.
fn plan_from_snapshot(
    working: &Prepared,
    target: &str,
    source_backend_env: &str,
    pick: impl FnOnce(&[dk_state::HistoryEntry], &StateDocument) -> anyhow::Result<u64>,
    kind: &str,
    out: Option<&Path>,
    output: PlanOutput,
) -> anyhow::Result<Exit> {
    let rt = runtime()?;
    let tmp = tempfile::tempdir()?;
    let root = working.model.root.clone();
    let result = rt.block_on(async {
        let source = Backend::open(&backend_config(working)?, &working.project, source_backend_env).await?;
        let latest = source.read_or_new().await?;
        let history = source.history().await?;
        let serial = pick(&history, &latest)?;
        let doc = source.read_serial(serial).await?;
        let Some(digest) = doc.manifests_digest.clone() else {
            bail!("serial {serial} of environment {source_backend_env} records no manifests digest (it was not written by an apply); nothing to {kind} from");
        };
        let Some(snap) = source.snapshot(&digest).await? else {
            bail!("environment {source_backend_env} has no stored snapshot of manifests {} (serial {serial}); it was applied by a dk that kept no snapshots", short(&digest));
        };
        let git = governance::materialize(&snap, tmp.path()).map_err(|e| anyhow::anyhow!(e))?;
        let p = match prepare(tmp.path(), Some(target))? {
            Ok(p) => p,
            Err(_) => bail!("the snapshot {} does not plan cleanly for environment {target} (see above)", short(&digest)),
        };
        // State lives with the working project, not in the snapshot's directory.
        let backend = Backend::open(&backend_config(working)?, &working.project, target).await?;
        let lock = backend.lock(kind).await?;
        let made = async {
            let state = backend.read_or_new().await?;
            let mut stores: std::collections::BTreeSet<String> = p.compiled.stores.keys().cloned().collect();
            stores.extend(state.resources.iter().map(|r| r.provider.clone()));
            // Relative store paths (DuckDB files) are the project's, not the snapshot directory's.
            let providers = dk_engine::plan::connect(&p.env, &stores, &root).await?;
            let opts = PlanOptions::default();
            let input = dk_engine::PlanInput {
                model: &p.model,
                env: &p.env,
                state: &state,
                project: &p.project,
                options: &opts,
            };
            let mut plan = dk_engine::plan(input, &providers, &p.compiled).await?;
            plan.git = git.clone();
            plan.governance.source = Some(PlanSource {
                kind: kind.to_string(),
                environment: source_backend_env.to_string(),
                serial,
                manifests_digest: digest.clone(),
                commit: git.as_ref().and_then(|g| g.commit.clone()),
            });
            let (env_doc, env) = dk_env::pick_environment(&p.model, Some(target))
                .map_err(|d| EngineError::Internal(d.message.clone()))?;
            governance::evaluate(&p.model, &p.env, env_doc, env, &mut plan);
            backend.put_snapshot(&digest, &snap).await?;
            audit_plan(
                &backend,
                &plan,
                kind,
                Some(format!("from {source_backend_env} serial {serial} (manifests {})", short(&digest))),
            )
            .await?;
            Ok::<_, EngineError>(plan)
        }
        .await;
        lock.release().await?;
        Ok(made?)
    });
    let plan = match result {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(Exit::Error);
        }
    };
    match output {
        PlanOutput::Human => {
            print!("{}", render_plan_human(&plan));
            print!("{}", render_governance(&plan));
        }
        PlanOutput::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        PlanOutput::Markdown => print!("{}", render_plan_markdown(&plan)),
    }
    if let Some(out) = out {
        dk_manifest::write::write_atomic(out, &serde_json::to_vec_pretty(&plan)?)?;
        eprintln!(
            "Saved the plan to {} (digest {}). Apply it with: dk apply -e {} {}",
            out.display(),
            short(&plan.digest),
            plan.environment,
            out.display()
        );
    }
    Ok(if plan.governance.has_errors() {
        Exit::Gate
    } else {
        Exit::Ok
    })
}

pub fn promote(a: PromoteArgs) -> anyhow::Result<Exit> {
    let working = load_env(&a.project.dir, Some(&a.to))?;
    let envs = dk_env::environments(&working.model);
    let names: Vec<&str> = envs.iter().map(|(_, e)| e.metadata.name.as_str()).collect();
    let Some(i) = names.iter().position(|n| *n == a.from) else {
        bail!(
            "environment {} is not defined (environments: {})",
            a.from,
            names.join(", ")
        );
    };
    let next = names.get(i + 1).copied();
    if next != Some(a.to.as_str()) {
        bail!(
            "promotion follows the environments' order ({}): the environment after {} is {}, not {}",
            names.join(" → "),
            a.from,
            next.unwrap_or("none (it is the last)"),
            a.to
        );
    }
    let from = a.from.clone();
    plan_from_snapshot(
        &working,
        &a.to,
        &a.from,
        |_, latest| {
            if latest.serial == 0 {
                bail!("environment {from} has never been applied: there is nothing to promote");
            }
            Ok(latest.serial)
        },
        "promote",
        a.out.as_deref(),
        a.output,
    )
}

pub fn rollback(a: RollbackArgs) -> anyhow::Result<Exit> {
    let working = load_env(&a.project.dir, a.env.as_deref())?;
    let env = working.env.environment.clone();
    let to_serial = a.to_serial;
    let to_commit = a.to_commit.clone();
    let env2 = env.clone();
    plan_from_snapshot(
        &working,
        &env,
        &env,
        move |history, _| {
            if let Some(s) = to_serial {
                return Ok(s);
            }
            let c = to_commit.unwrap_or_default();
            history
                .iter()
                .rev()
                .find(|h| {
                    h.manifests_digest.is_some()
                        && h.git
                            .as_ref()
                            .and_then(|g| g.commit.as_deref())
                            .is_some_and(|x| !c.is_empty() && x.starts_with(&c))
                })
                .map(|h| h.serial)
                .with_context(|| format!("no state serial of environment {env2} was applied from a commit starting with {c}; see `dk state history -e {env2}`"))
        },
        "rollback",
        a.out.as_deref(),
        a.output,
    )
}
