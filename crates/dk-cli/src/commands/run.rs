//! `dk run` (transforms in graph order, with the data checks of their outputs after each) and
//! `dk runs list|show` (the run records). See docs/run.md.

use std::collections::HashSet;
use std::sync::Mutex;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use dk_graph::{Graph, NodeKind, Selector};
use dk_manifest::model::{Kind, Manifest};
use dk_runtime::checks;
use dk_runtime::runner::{
    self, AfterTransform, BoxFuture, Event, HookContext, HookResult, RunOptions, RunReport,
};
use dk_state::{RunQuery, RunRecord, RunStatus, RunStore};

use crate::cli::{ProjectArg, TextOrJson};
use crate::exit::Exit;
use crate::output;

#[derive(Debug, Args)]
#[command(
    after_help = "Selectors as in `dk pipeline order` (docs/selectors.md). Without a selector every transform runs \
                  except `manual` ones. Exit codes: 0 all succeeded, 1 a transform failed, 8 a blocking data \
                  check failed, 3 invalid project. See docs/run.md."
)]
pub struct RunArgs {
    /// The environment (default: the Project's defaultEnvironment).
    #[arg(long, short = 'e', env = "DK_ENV")]
    pub env: Option<String>,
    /// Only these transforms (several words are united), e.g. `+daily-revenue`.
    #[arg(value_name = "SELECTOR")]
    pub selector: Vec<String>,
    /// Leave out the selected nodes (repeatable).
    #[arg(long, value_name = "SELECTOR")]
    pub exclude: Vec<String>,
    /// Ignore cursors: copy everything, rebuild incremental tables.
    #[arg(long)]
    pub full_refresh: bool,
    /// Transforms run at once (independent branches).
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
    /// Only what is due: schedules whose time came since the last run, on-change transforms
    /// whose inputs were written since theirs.
    #[arg(long)]
    pub due: bool,
    /// Do not run the outputs' data checks after each transform.
    #[arg(long)]
    pub no_checks: bool,
    /// Append OpenLineage events (START, COMPLETE/FAIL per transform) to this JSON-lines file.
    #[arg(long, value_name = "PATH")]
    pub lineage_file: Option<std::path::PathBuf>,
    /// POST OpenLineage events to this endpoint (Marquez: http://host:5000 →
    /// /api/v1/lineage). See docs/lineage.md.
    #[arg(long, value_name = "URL")]
    pub lineage_url: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Run records of an environment, newest last.
    List {
        #[arg(long, short = 'e', env = "DK_ENV")]
        env: Option<String>,
        /// Only runs of this transform.
        #[arg(long)]
        transform: Option<String>,
        /// At most N (the newest).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
        output: TextOrJson,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Delete run records older than a duration; what `dk run` still needs (the latest run of
    /// each transform per status, the latest change of each dataset) is kept.
    Prune {
        #[arg(long, short = 'e', env = "DK_ENV")]
        env: Option<String>,
        /// Delete records of runs that started (locally: whose journal was last written) longer
        /// ago than this, e.g. `30d`, `12h`.
        #[arg(long, value_name = "DURATION")]
        older_than: String,
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
        output: TextOrJson,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// One run record (by id or unique id prefix).
    Show {
        id: String,
        #[arg(long, short = 'e', env = "DK_ENV")]
        env: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
        output: TextOrJson,
        #[command(flatten)]
        project: ProjectArg,
    },
}

fn tokio_rt() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs the data checks of a transform's outputs (the `dk run` hook).
struct ChecksHook;

impl AfterTransform for ChecksHook {
    fn after_transform<'a>(&'a self, cx: HookContext<'a>) -> BoxFuture<'a, HookResult> {
        Box::pin(async move {
            match checks::check_outputs(
                cx.model,
                cx.env,
                cx.transform,
                cx.planes,
                checks::DEFAULT_SAMPLES,
            )
            .await
            {
                Ok(reports) => {
                    let blocking: Vec<String> = reports
                        .iter()
                        .flat_map(|r| {
                            r.blocking()
                                .map(move |c| format!("{}: {}", r.dataset, c.message))
                        })
                        .collect();
                    HookResult {
                        checks: serde_json::to_value(&reports).unwrap_or_default(),
                        blocking: (!blocking.is_empty()).then(|| {
                            format!("blocking data check failed: {}", blocking.join("; "))
                        }),
                    }
                }
                Err(e) => HookResult {
                    checks: serde_json::json!({ "error": e.to_string() }),
                    blocking: Some(format!("data checks could not run: {e}")),
                },
            }
        })
    }
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn paint(s: &str, code: &str) -> String {
    if output::color_stdout() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn status_word(s: RunStatus) -> String {
    match s {
        RunStatus::Succeeded => paint("ok     ", "32"),
        RunStatus::Failed => paint("FAILED ", "31"),
        RunStatus::Skipped => paint("skipped", "33"),
        RunStatus::Running => "running".into(),
        RunStatus::Interrupted => paint("interrupted", "31"),
    }
}

fn line(r: &runner::TransformReport) -> String {
    let mut s = format!(
        "{} {:<28} {:>7}  {} rows read, {} written",
        status_word(r.status),
        r.transform,
        secs(r.duration_ms),
        r.rows_read,
        r.rows_written
    );
    if r.attempts > 1 {
        s.push_str(&format!(" ({} attempts)", r.attempts));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!("\n        {}", e.replace('\n', "\n        ")));
    }
    if let Some(reason) = &r.reason {
        s = format!(
            "{} {:<28} {:>7}  {reason}",
            status_word(r.status),
            r.transform,
            "-"
        );
    }
    s
}

pub fn run(a: RunArgs) -> anyhow::Result<Exit> {
    crate::return_freed_memory_at_once();
    let p = match super::core::prepare(&a.project.dir, a.env.as_deref())? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let lineage = dk_runtime::lineage::Tracker::new(dk_runtime::lineage::Emitter::new(
        a.lineage_file.as_deref(),
        a.lineage_url.as_deref(),
    )?);
    let graph = Graph::build(&p.model);
    let select = if a.selector.is_empty() {
        None
    } else {
        Some(Selector::parse_words(&a.selector).map_err(|e| anyhow::anyhow!("{e}"))?)
    };
    let exclude = if a.exclude.is_empty() {
        None
    } else {
        Some(Selector::parse_words(&a.exclude).map_err(|e| anyhow::anyhow!("{e}"))?)
    };
    let set = graph
        .selection(select.as_ref(), exclude.as_ref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ordered: Vec<String> = graph
        .order_within(&set)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_iter()
        .filter(|ix| graph.node(*ix).kind == NodeKind::Transform)
        .map(|ix| graph.node(ix).name.clone())
        .collect();
    let transform = |name: &str| match p
        .model
        .get(Kind::Transform, name)
        .and_then(|d| d.manifest.as_ref())
    {
        Some(Manifest::Transform(t)) => Some(t),
        _ => None,
    };
    let policy = |name: &str| {
        transform(name)
            .and_then(|t| t.spec.trigger.as_ref())
            .map(|t| t.policy.clone())
            .unwrap_or_default()
    };
    let mut notes: Vec<String> = Vec::new();
    // Manual transforms run only when a selector names them.
    let mut order: Vec<String> = ordered
        .iter()
        .filter(|n| {
            let keep = select.is_some() || policy(n) != "manual";
            if !keep {
                notes.push(format!("{n}: manual trigger, not selected"));
            }
            keep
        })
        .cloned()
        .collect();
    let backend = super::core::backend_config(&p)?;
    let rt = tokio_rt()?;
    let runs = rt
        .block_on(RunStore::open(&backend, &p.project, &p.env.environment))
        .context("open the run records")?;
    if a.due {
        let records = rt
            .block_on(runs.summary())
            .context("read the run records")?;
        let now = chrono::Utc::now();
        let mut due: Vec<String> = Vec::new();
        let mut written: HashSet<String> = HashSet::new();
        for n in &order {
            let Some(t) = transform(n) else { continue };
            let (ins, outs) = runner::io_names(&p.model, t);
            let d = dk_runtime::triggers::due(t, &ins, &records, now)
                .map_err(|e| anyhow::anyhow!("transform {n}: trigger: {e}"))?;
            let upstream_due = policy(n) != "manual"
                && policy(n) != "schedule"
                && ins.iter().any(|i| written.contains(i));
            if d.due || upstream_due {
                notes.push(format!(
                    "{n}: due ({})",
                    if d.due {
                        d.reason
                    } else {
                        "an upstream transform is due".into()
                    }
                ));
                due.push(n.clone());
                written.extend(outs);
            } else {
                notes.push(format!("{n}: not due ({})", d.reason));
            }
        }
        order = due;
    }
    let human = a.output == TextOrJson::Text;
    if human {
        for n in &notes {
            eprintln!("· {n}");
        }
    }
    if order.is_empty() {
        if human {
            println!("Nothing to run.");
        } else {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "environment": p.env.environment, "transforms": [], "succeeded": 0, "failed": 0, "skipped": 0
                }))?
            );
        }
        return Ok(Exit::Ok);
    }
    let options = RunOptions {
        parallelism: a.parallelism as usize,
        full_refresh: a.full_refresh,
        manifests_digest: Some(dk_engine::plan::manifests_digest(&p.model)),
    };
    let bar = crate::progress::bar_enabled().then(|| {
        let b = indicatif::ProgressBar::new(order.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let bar_ref = Mutex::new(bar);
    let on_event = |e: &Event| {
        match e {
            Event::Started { transform, .. } => lineage.started(&p.model, &p.env, transform),
            Event::Finished(r) => lineage.finished(&r.transform, r.error.as_deref()),
        }
        let guard = bar_ref.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Started { transform, attempt } => {
                if let Some(b) = guard.as_ref() {
                    b.set_message(if *attempt > 1 {
                        format!("{transform} (attempt {attempt})")
                    } else {
                        transform.clone()
                    });
                }
            }
            Event::Finished(r) => {
                if human {
                    match guard.as_ref() {
                        Some(b) => b.suspend(|| println!("{}", line(r))),
                        None => println!("{}", line(r)),
                    }
                }
                if let Some(b) = guard.as_ref() {
                    b.inc(1);
                }
            }
        }
    };
    let hook = ChecksHook;
    let report: RunReport = rt
        .block_on(runner::execute(
            &p.model,
            &p.env,
            &p.model.root,
            &order,
            &runs,
            &options,
            (!a.no_checks).then_some(&hook as &dyn AfterTransform),
            &on_event,
        ))
        .context("dk run")?;
    if let Some(b) = bar_ref.lock().unwrap_or_else(|p| p.into_inner()).take() {
        b.finish_and_clear();
    }
    for w in lineage.warnings() {
        eprintln!("warning: lineage: {w}");
    }
    if human {
        println!(
            "\nRun {} in {}: {} succeeded, {} failed, {} skipped ({} rows written).",
            report.invocation,
            report.environment,
            report.succeeded,
            report.failed,
            report.skipped,
            report
                .transforms
                .iter()
                .map(|r| r.rows_written)
                .sum::<u64>(),
        );
        println!(
            "Took {}. Details: dk runs list -e {}",
            secs(report.duration_ms),
            report.environment
        );
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    let checks_failed = report.transforms.iter().any(|r| {
        r.status == RunStatus::Failed
            && r.error
                .as_deref()
                .is_some_and(|e| e.starts_with("blocking data check failed"))
    });
    Ok(if report.failed == 0 {
        Exit::Ok
    } else if checks_failed {
        Exit::TestsFailed
    } else {
        Exit::Error
    })
}

fn open_runs(
    env: Option<&str>,
    dir: &std::path::Path,
) -> anyhow::Result<(tokio::runtime::Runtime, RunStore, String)> {
    let p = match super::core::prepare(dir, env)? {
        Ok(p) => p,
        Err(_) => bail!("the project does not validate; run `dk lint`"),
    };
    let backend = super::core::backend_config(&p)?;
    let rt = tokio_rt()?;
    let store = rt.block_on(RunStore::open(&backend, &p.project, &p.env.environment))?;
    Ok((rt, store, p.env.environment.clone()))
}

fn show_record(r: &RunRecord) -> String {
    let mut s = format!(
        "run {}\n  transform:  {}\n  env:        {}\n  status:     {}\n  started:    {}\n",
        r.id,
        r.transform,
        r.environment,
        r.status.as_str(),
        r.started
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    );
    if let Some(e) = r.ended {
        s.push_str(&format!(
            "  ended:      {} ({})\n",
            e.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            secs(r.duration().num_milliseconds().max(0) as u64)
        ));
    }
    s.push_str(&format!(
        "  rows:       {} read, {} written\n  attempts:   {}\n  invocation: {}\n",
        r.rows_read, r.rows_written, r.attempts, r.invocation
    ));
    if let Some(d) = &r.manifests_digest {
        s.push_str(&format!("  manifests:  {d}\n"));
    }
    for o in &r.outputs {
        s.push_str(&format!(
            "  output {}: {} rows{}\n",
            o.dataset,
            o.rows_written,
            o.cursor
                .as_ref()
                .map(|c| format!(", cursor {c}"))
                .unwrap_or_default()
        ));
    }
    if let Some(e) = &r.error {
        s.push_str(&format!(
            "  error:      {}\n",
            e.replace('\n', "\n              ")
        ));
    }
    if !r.checks.is_null() {
        s.push_str("  checks:     (see --output json)\n");
    }
    s
}

pub fn runs(c: RunsCommand) -> anyhow::Result<Exit> {
    match c {
        RunsCommand::List {
            env,
            transform,
            limit,
            output,
            project,
        } => {
            let (rt, store, envname) = open_runs(env.as_deref(), &project.dir)?;
            let shown = rt.block_on(store.list(&RunQuery {
                transform,
                limit: Some(limit),
            }))?;
            let shown = shown.as_slice();
            if output == TextOrJson::Json {
                println!("{}", serde_json::to_string_pretty(shown)?);
                return Ok(Exit::Ok);
            }
            if shown.is_empty() {
                println!("No runs in environment {envname} yet (`dk run -e {envname}`).");
                return Ok(Exit::Ok);
            }
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::NOTHING);
            table.set_header([
                "ID",
                "TRANSFORM",
                "STATUS",
                "STARTED",
                "DURATION",
                "READ",
                "WRITTEN",
            ]);
            for r in shown {
                table.add_row([
                    r.id.clone(),
                    r.transform.clone(),
                    r.status.as_str().to_string(),
                    r.started.format("%Y-%m-%d %H:%M:%S").to_string(),
                    secs(r.duration().num_milliseconds().max(0) as u64),
                    r.rows_read.to_string(),
                    r.rows_written.to_string(),
                ]);
            }
            println!("{table}");
            Ok(Exit::Ok)
        }
        RunsCommand::Prune {
            env,
            older_than,
            dry_run,
            output,
            project,
        } => {
            let age = dk_runtime::runner::parse_duration(&older_than)
                .map_err(|e| anyhow::anyhow!("--older-than {older_than}: {e}"))
                .and_then(|d| {
                    chrono::Duration::from_std(d)
                        .map_err(|_| anyhow::anyhow!("--older-than {older_than} is too long"))
                })?;
            let (rt, store, envname) = open_runs(env.as_deref(), &project.dir)?;
            let before = chrono::Utc::now()
                .checked_sub_signed(age)
                .ok_or_else(|| anyhow::anyhow!("--older-than {older_than} is too long"))?;
            let report = rt.block_on(store.prune(before, dry_run))?;
            if output == TextOrJson::Json {
                let v = serde_json::json!({
                    "environment": envname,
                    "before": before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "dry_run": dry_run,
                    "removed": report.removed,
                    "kept": report.kept,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(Exit::Ok);
            }
            let verb = if dry_run { "Would delete" } else { "Deleted" };
            println!(
                "{verb} {} run record(s) of environment {envname} older than {} (before {}).",
                report.removed,
                older_than.trim(),
                before.format("%Y-%m-%d %H:%M:%S UTC")
            );
            if report.kept > 0 {
                println!(
                    "Kept {} older record(s) that `dk run` still reads (the latest of a transform per status, or the latest change of a dataset).",
                    report.kept
                );
            }
            Ok(Exit::Ok)
        }
        RunsCommand::Show {
            id,
            env,
            output,
            project,
        } => {
            let (rt, store, envname) = open_runs(env.as_deref(), &project.dir)?;
            let Some(r) = rt.block_on(store.get(&id))? else {
                bail!("no run {id} in environment {envname}; `dk runs list -e {envname}` shows the ids");
            };
            if output == TextOrJson::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", show_record(&r));
            }
            Ok(Exit::Ok)
        }
    }
}
