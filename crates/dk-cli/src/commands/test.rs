//! `dk test`: the data checks of the selected DataSets against an environment's stores (one fused
//! scan per table) and the unit tests of the selected Transforms (embedded DuckDB, fixtures),
//! rendered as human text or JSON, optionally as JUnit XML, and recorded in the state backend for
//! `requireTests`. Exit 8 when an error-severity check or a unit test fails.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use dk_diagnostics::render::{junit_xml, JunitCase, JunitOutcome, JunitSuite};
use dk_diagnostics::{Diagnostic, Severity};
use dk_graph::{Graph, NodeKind, Selector};
use dk_manifest::{loader, ProjectModel};
use dk_runtime::checks::{self, CheckResult, CheckSeverity, CheckStatus, DatasetReport};
use dk_runtime::unit::{self, UnitReport, UnitStatus};
use dk_runtime::DataPlane;
use serde::Serialize;

use crate::cli::ProjectArg;
use crate::exit::Exit;
use crate::output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestOutput {
    Human,
    Json,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Selectors as in `dk pipeline order` (docs/selectors.md): selected DataSets run their checks, \
                  selected Transforms their unit tests. Exit codes: 0 passed (warn-severity failures \
                  included), 8 an error-severity check or a unit test failed, 3 invalid project, 1 error. \
                  See docs/testing.md."
)]
pub struct TestArgs {
    /// The environment whose stores are checked (default: the Project's defaultEnvironment).
    #[arg(long, short = 'e', env = "DK_ENV")]
    pub env: Option<String>,
    /// Only these DataSets and Transforms (several words are united), e.g. `orders+`.
    #[arg(value_name = "SELECTOR")]
    pub selector: Vec<String>,
    /// Leave out the selected nodes (repeatable).
    #[arg(long, value_name = "SELECTOR")]
    pub exclude: Vec<String>,
    /// Only the transforms' unit tests (embedded DuckDB; no environment needed).
    #[arg(long)]
    pub unit: bool,
    /// Also write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Sample failing rows shown per failing check (0: none, and no second query).
    #[arg(long, default_value_t = checks::DEFAULT_SAMPLES, value_name = "N")]
    pub samples: usize,
    #[arg(long, short = 'o', value_enum, default_value_t = TestOutput::Human)]
    pub output: TestOutput,
    #[command(flatten)]
    pub project: ProjectArg,
}

/// Counts over every result.
#[derive(Debug, Default, Clone, Serialize)]
struct Summary {
    pass: usize,
    /// Blocking failures (error-severity checks, unit tests).
    fail: usize,
    /// Warn-severity check failures.
    warn: usize,
    /// Checks or unit tests that could not run.
    error: usize,
    /// Checks not run because their DataSet's table was never created (new DataSets).
    skipped: usize,
}

#[derive(Debug, Serialize)]
struct TestReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
    manifests_digest: String,
    passed: bool,
    summary: Summary,
    /// DataSets whose checks were skipped: their tables were never created (see `requireTests`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pending: Vec<String>,
    checks: Vec<DatasetReport>,
    unit_tests: Vec<UnitReport>,
}

impl TestReport {
    fn summarize(&mut self) {
        let mut s = Summary::default();
        for r in self.checks.iter().flat_map(|d| &d.results) {
            match (r.status, r.spec.severity) {
                (CheckStatus::Pass, _) => s.pass += 1,
                (CheckStatus::Error, _) => s.error += 1,
                (CheckStatus::Skipped, _) => s.skipped += 1,
                (CheckStatus::Fail, CheckSeverity::Warn) => s.warn += 1,
                (CheckStatus::Fail, CheckSeverity::Error) => s.fail += 1,
            }
        }
        self.pending = self
            .checks
            .iter()
            .filter(|d| {
                !d.results.is_empty() && d.results.iter().all(|r| r.status == CheckStatus::Skipped)
            })
            .map(|d| d.dataset.clone())
            .collect();
        for u in &self.unit_tests {
            match u.status {
                UnitStatus::Pass => s.pass += 1,
                UnitStatus::Fail => s.fail += 1,
                UnitStatus::Error => s.error += 1,
            }
        }
        let blocking_errors = self
            .checks
            .iter()
            .flat_map(|d| &d.results)
            .any(|r| r.status == CheckStatus::Error && r.spec.severity == CheckSeverity::Error)
            || self
                .unit_tests
                .iter()
                .any(|u| u.status == UnitStatus::Error);
        self.passed = s.fail == 0 && !blocking_errors;
        self.summary = s;
    }
}

fn print_diags(model: &ProjectModel, diags: &[Diagnostic]) {
    let opts = dk_diagnostics::render::HumanOptions {
        color: output::color_stdout(),
        width: output::width(),
    };
    eprint!(
        "{}",
        dk_diagnostics::render::human(diags, &model.sources, opts)
    );
}

fn selector(words: &[String]) -> anyhow::Result<Option<Selector>> {
    if words.is_empty() {
        return Ok(None);
    }
    Ok(Some(Selector::parse_words(words)?))
}

pub fn run(a: TestArgs) -> anyhow::Result<Exit> {
    let started = chrono::Utc::now();
    let (root, is_project) = loader::find_root(&a.project.dir)?;
    if !is_project {
        bail!(
            "{} is not inside a dk project (no project.yaml of kind Project above it); run `dk init` first",
            a.project.dir.display()
        );
    }
    let model = loader::load_root(&root, true)?;
    let errors: Vec<Diagnostic> = super::lint::all_rules(&model, false)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    if !errors.is_empty() {
        print_diags(&model, &errors);
        eprintln!("✗ the project has errors (see `dk lint`); nothing was tested");
        return Ok(Exit::Invalid);
    }
    // The environment: needed for checks; for `--unit` only when named (then its variables
    // feed var() and the outcome is recorded in its state backend).
    let env = if a.unit && a.env.is_none() {
        None
    } else {
        match dk_env::resolve(&model, a.env.as_deref(), &dk_env::ProcessEnv) {
            Ok(r) => Some(r),
            Err(d) => {
                print_diags(&model, &d);
                return Ok(Exit::Invalid);
            }
        }
    };

    let graph = Graph::build(&model);
    let set = graph.selection(
        selector(&a.selector)?.as_ref(),
        selector(&a.exclude)?.as_ref(),
    )?;
    let mut datasets: Vec<String> = Vec::new();
    let mut transforms: Vec<String> = Vec::new();
    for ix in set.iter() {
        let n = graph.node(ix);
        match n.kind {
            NodeKind::DataSet => {
                if model
                    .datasets()
                    .any(|(_, d)| d.metadata.name == n.name && checks::has_checks(d))
                {
                    datasets.push(n.name.clone());
                }
            }
            NodeKind::Transform => {
                if unit::has_unit_tests(&model, &n.name) {
                    transforms.push(n.name.clone());
                }
            }
        }
    }
    datasets.sort();
    datasets.dedup();
    transforms.sort();
    transforms.dedup();

    let rt = super::core::runtime()?;
    let clock = Instant::now();
    let mut report = TestReport {
        environment: env.as_ref().map(|e| e.environment.clone()),
        manifests_digest: dk_engine::plan::manifests_digest(&model),
        passed: false,
        summary: Summary::default(),
        pending: Vec::new(),
        checks: Vec::new(),
        unit_tests: Vec::new(),
    };
    if let (Some(env), false) = (&env, a.unit) {
        report.checks = rt.block_on(run_checks(&model, env, &datasets, a.samples))?;
    }
    if !transforms.is_empty() {
        let vars = env
            .as_ref()
            .map(|e| e.variables.clone())
            .unwrap_or_default();
        report.unit_tests = rt.block_on(unit::run_unit_tests(&model, &transforms, &vars));
    }
    report.summarize();
    let elapsed = clock.elapsed();

    if let Some(path) = &a.junit {
        write_file(path, &junit(&report))?;
    }
    match a.output {
        TestOutput::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        TestOutput::Human => print!("{}", human(&report, elapsed.as_secs_f64())),
    }
    if let Some(env) = &env {
        record(&model, env, &report, started, a.unit)?;
    }
    Ok(if report.passed {
        Exit::Ok
    } else {
        Exit::TestsFailed
    })
}

/// Runs the checks of `datasets`, one data plane per store (connected once).
async fn run_checks(
    model: &ProjectModel,
    env: &dk_env::ResolvedProject,
    datasets: &[String],
    samples: usize,
) -> anyhow::Result<Vec<DatasetReport>> {
    let mut planes: HashMap<String, Result<DataPlane, String>> = HashMap::new();
    let mut out = Vec::new();
    // DataSets the environment's state records: a missing table of one of these is an error
    // (it was dropped); of any other, a DataSet not created yet. Unreadable state: all count
    // as applied (a missing table is then an error).
    let applied = match applied_datasets(model, env).await {
        Ok(a) => Some(a),
        Err(e) => {
            eprintln!(
                "warning: cannot read the state of environment {} ({e:#}); a missing table is reported as an error",
                env.environment
            );
            None
        }
    };
    // External DataSets are not dk's to create: a missing one is always an error.
    let external: HashSet<&str> = model
        .datasets()
        .filter(|(_, d)| d.spec.external)
        .map(|(_, d)| d.metadata.name.as_str())
        .collect();
    // Plan every dataset's checks, connect each store once, and read what the tables'
    // definitions guarantee with one catalog query per store.
    let mut planned = Vec::with_capacity(datasets.len());
    for name in datasets {
        let tc = checks::plan_dataset(model, env, name);
        if let Ok(Some(tc)) = &tc {
            if !planes.contains_key(&tc.store) {
                let plane = match env.stores.get(&tc.store) {
                    Some(s) => DataPlane::connect(s, &model.root)
                        .await
                        .map_err(|e| e.to_string()),
                    None => Err(format!("store {} is not defined", tc.store)),
                };
                planes.insert(tc.store.clone(), plane);
            }
        }
        planned.push((name, tc));
    }
    let guarantees = checks::guarantees_of(planned.iter().filter_map(|(_, tc)| {
        let tc = tc.as_ref().ok()?.as_ref()?;
        Some((planes.get(&tc.store)?.as_ref().ok()?, tc))
    }))
    .await;
    for (name, tc) in planned {
        let tc = match tc {
            Ok(Some(tc)) => tc,
            Ok(None) => continue,
            Err(e) => {
                out.push(DatasetReport {
                    dataset: name.clone(),
                    store: String::new(),
                    relation: String::new(),
                    rows: None,
                    queries: 0,
                    duration_ms: 0,
                    results: vec![config_error(name, &e.to_string())],
                });
                continue;
            }
        };
        let g = guarantees.get(&tc);
        match planes.get(&tc.store) {
            Some(Ok(plane))
                if applied.as_ref().is_some_and(|a| !a.contains(name))
                    && !external.contains(name.as_str())
                    && matches!(tc.target, dk_runtime::Target::Table { .. })
                    && !plane.exists(&tc.target).await.unwrap_or(true) =>
            {
                out.push(checks::skipped_report(
                    &tc,
                    &format!(
                        "not created yet: {} does not exist in store {} and environment {} has never applied it; its checks run after `dk apply` and `dk run`",
                        tc.target.describe(),
                        tc.store,
                        env.environment
                    ),
                ))
            }
            Some(Ok(plane)) => out.push(checks::run_table_checks(plane, &tc, g, samples).await),
            Some(Err(e)) => out.push(DatasetReport {
                dataset: tc.dataset.clone(),
                store: tc.store.clone(),
                relation: tc.target.describe(),
                rows: None,
                queries: 0,
                duration_ms: 0,
                results: tc
                    .checks
                    .iter()
                    .map(|s| CheckResult {
                        spec: s.clone(),
                        status: CheckStatus::Error,
                        failing: 0,
                        observed: None,
                        message: e.clone(),
                        samples: Vec::new(),
                    })
                    .collect(),
            }),
            None => {}
        }
    }
    Ok(out)
}

/// The DataSets whose table or view the environment's state records (applied at least once).
async fn applied_datasets(
    model: &ProjectModel,
    env: &dk_env::ResolvedProject,
) -> anyhow::Result<HashSet<String>> {
    let cfg = super::core::backend_config_for(model, env)?;
    let backend = dk_state::Backend::open(&cfg, &project_name(model), &env.environment).await?;
    let Some(doc) = backend.read_latest().await? else {
        return Ok(HashSet::new());
    };
    let by_address = dk_engine::governance::dataset_addresses(model, env);
    Ok(doc
        .resources
        .iter()
        .filter_map(|r| by_address.get(&r.address).cloned())
        .collect())
}

fn project_name(model: &ProjectModel) -> String {
    model
        .project()
        .map(|p| p.metadata.name.clone())
        .unwrap_or_else(|| "project".into())
}

/// A dataset whose checks cannot even be planned (store missing, no table).
fn config_error(dataset: &str, message: &str) -> CheckResult {
    CheckResult {
        spec: checks::CheckSpec {
            name: "checks".into(),
            kind: checks::CheckKind::Expression,
            column: None,
            severity: CheckSeverity::Error,
            args: Default::default(),
            location: None,
            parent: None,
            problem: Some(message.to_string()),
            guaranteed_by: None,
        },
        status: CheckStatus::Error,
        failing: 0,
        observed: None,
        message: format!("{dataset}: {message}"),
        samples: Vec::new(),
    }
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn paint(s: &str, code: &str) -> String {
    if output::color_stdout() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn status_word(r: &CheckResult) -> String {
    match (r.status, r.spec.severity) {
        (CheckStatus::Pass, _) => paint("PASS ", "32"),
        (CheckStatus::Fail, CheckSeverity::Warn) => paint("WARN ", "33"),
        (CheckStatus::Fail, CheckSeverity::Error) => paint("FAIL ", "31"),
        (CheckStatus::Error, _) => paint("ERROR", "31;1"),
        (CheckStatus::Skipped, _) => paint("SKIP ", "36"),
    }
}

fn sample_text(row: &serde_json::Map<String, serde_json::Value>) -> String {
    row.iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "NULL".into(),
                other => other.to_string(),
            };
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn human(r: &TestReport, secs: f64) -> String {
    let mut out = String::new();
    if let Some(env) = &r.environment {
        if !r.checks.is_empty() {
            out.push_str(&format!("Checks in environment {env}\n"));
        }
    }
    for d in &r.checks {
        let rows = d
            .rows
            .map(|n| format!(", {n} row{}", if n == 1 { "" } else { "s" }))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {} ({}{}{rows}, {} quer{})\n",
            d.dataset,
            if d.store.is_empty() {
                String::new()
            } else {
                format!("{}: ", d.store)
            },
            d.relation,
            d.queries,
            if d.queries == 1 { "y" } else { "ies" }
        ));
        let w = d
            .results
            .iter()
            .map(|c| c.spec.name.chars().count())
            .max()
            .unwrap_or(0);
        for c in &d.results {
            let detail = match (&c.message, &c.observed) {
                (m, _) if !m.is_empty() => m.clone(),
                (_, Some(o)) => o.clone(),
                _ => String::new(),
            };
            let line = format!("    {} {:<w$}  {}", status_word(c), c.spec.name, detail);
            out.push_str(line.trim_end());
            out.push('\n');
            if matches!(c.status, CheckStatus::Fail | CheckStatus::Error) {
                if let Some(l) = &c.spec.location {
                    out.push_str(&format!("          at {l}\n"));
                }
            }
            for s in &c.samples {
                out.push_str(&format!("          sample: {}\n", sample_text(s)));
            }
        }
    }
    if !r.unit_tests.is_empty() {
        out.push_str("Unit tests (embedded DuckDB)\n");
        for u in &r.unit_tests {
            let word = match u.status {
                UnitStatus::Pass => paint("PASS ", "32"),
                UnitStatus::Fail => paint("FAIL ", "31"),
                UnitStatus::Error => paint("ERROR", "31;1"),
            };
            out.push_str(&format!("    {word} {} › {}\n", u.transform, u.test));
            if u.status != UnitStatus::Pass {
                out.push_str(&format!("          at {}\n", u.location));
                match &u.diff {
                    Some(d) => {
                        for l in d.to_string().lines() {
                            out.push_str(&format!("          {l}\n"));
                        }
                    }
                    None => out.push_str(&format!("          {}\n", u.message)),
                }
            }
        }
    }
    if r.checks.is_empty() && r.unit_tests.is_empty() {
        out.push_str("Nothing to test: no selected DataSet declares checks and no selected Transform has unit tests.\n");
    }
    let s = &r.summary;
    let skipped = if s.skipped > 0 {
        format!(", {} skipped", s.skipped)
    } else {
        String::new()
    };
    out.push_str(&format!(
        "{} {} passed, {} failed, {} warned, {} errored{skipped} in {:.2}s\n",
        if r.passed {
            paint("✓", "32")
        } else {
            paint("✗", "31")
        },
        s.pass,
        s.fail,
        s.warn,
        s.error,
        secs
    ));
    if !r.pending.is_empty() {
        out.push_str(&format!(
            "  not created yet: {} (their checks run after `dk apply` and `dk run`; requireTests accepts this run for a plan that creates them)\n",
            r.pending.join(", ")
        ));
    }
    out
}

fn junit(r: &TestReport) -> String {
    let mut suites = Vec::new();
    for d in &r.checks {
        let cases = d
            .results
            .iter()
            .map(|c| {
                let mut body = String::new();
                if let Some(l) = &c.spec.location {
                    body.push_str(&format!("{l}: "));
                }
                body.push_str(&c.message);
                for s in &c.samples {
                    body.push_str(&format!("\nsample: {}", sample_text(s)));
                }
                let (outcome, system_out) = match (c.status, c.spec.severity) {
                    (CheckStatus::Pass, _) => (JunitOutcome::Passed, c.observed.clone()),
                    (CheckStatus::Fail, CheckSeverity::Warn) => {
                        (JunitOutcome::Passed, Some(format!("warning: {body}")))
                    }
                    (CheckStatus::Fail, CheckSeverity::Error) => (
                        JunitOutcome::Failure {
                            kind: c.spec.kind.as_str().into(),
                            message: c.message.clone(),
                            body,
                        },
                        None,
                    ),
                    (CheckStatus::Error, _) => (
                        JunitOutcome::Error {
                            kind: "error".into(),
                            message: c.message.clone(),
                            body,
                        },
                        None,
                    ),
                    (CheckStatus::Skipped, _) => (
                        JunitOutcome::Skipped {
                            message: c.message.clone(),
                        },
                        None,
                    ),
                };
                JunitCase {
                    name: c.spec.name.clone(),
                    classname: format!("dataset.{}", d.dataset),
                    time: None,
                    outcome,
                    system_out,
                }
            })
            .collect();
        suites.push(JunitSuite {
            name: format!("checks: {}", d.dataset),
            time: Some(d.duration_ms as f64 / 1000.0),
            cases,
        });
    }
    let mut by_transform: BTreeMap<&str, Vec<&UnitReport>> = BTreeMap::new();
    for u in &r.unit_tests {
        by_transform.entry(&u.transform).or_default().push(u);
    }
    for (t, us) in by_transform {
        let cases = us
            .iter()
            .map(|u| {
                let body = match &u.diff {
                    Some(d) => format!("{}: {d}", u.location),
                    None => format!("{}: {}", u.location, u.message),
                };
                let outcome = match u.status {
                    UnitStatus::Pass => JunitOutcome::Passed,
                    UnitStatus::Fail => JunitOutcome::Failure {
                        kind: "unit-test".into(),
                        message: u.message.clone(),
                        body,
                    },
                    UnitStatus::Error => JunitOutcome::Error {
                        kind: "error".into(),
                        message: u.message.clone(),
                        body,
                    },
                };
                JunitCase {
                    name: u.test.clone(),
                    classname: format!("transform.{t}"),
                    time: Some(u.duration_ms as f64 / 1000.0),
                    outcome,
                    system_out: None,
                }
            })
            .collect();
        suites.push(JunitSuite {
            name: format!("unit: {t}"),
            time: None,
            cases,
        });
    }
    junit_xml("dk test", &suites)
}

/// Records the outcome in the environment's state backend (for `requireTests`).
fn record(
    model: &ProjectModel,
    env: &dk_env::ResolvedProject,
    report: &TestReport,
    started: chrono::DateTime<chrono::Utc>,
    unit_only: bool,
) -> anyhow::Result<()> {
    let project = project_name(model);
    let cfg = super::core::backend_config_for(model, env)?;
    let rt = super::core::runtime()?;
    let rec = dk_state::TestRecord {
        id: uuid::Uuid::new_v4().to_string(),
        kind: "test".into(),
        project: project.clone(),
        environment: env.environment.clone(),
        manifests_digest: report.manifests_digest.clone(),
        started: started.to_rfc3339(),
        finished: chrono::Utc::now().to_rfc3339(),
        passed: report.passed,
        checks_ran: !unit_only,
        pending: report.pending.clone(),
        summary: serde_json::to_value(&report.summary)?,
        results: serde_json::to_value(report)?,
    };
    rt.block_on(async {
        let backend = dk_state::Backend::open(&cfg, &project, &env.environment).await?;
        backend.record_test(&rec).await
    })
    .context("recording the test outcome in the state backend")?;
    Ok(())
}
