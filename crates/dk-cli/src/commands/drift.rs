//! `dk drift` (one check, or `--watch`) and `dk import` (adopt objects, discover unmanaged tables).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use dk_engine::drift::{DriftEntry, DriftKind, DriftReport, FieldDrift};
use dk_engine::EngineError;
use dk_state::Backend;
use serde_json::Value;

use super::core::{backend_config, engine_exit, prepare, providers_for, runtime, Prepared};
use crate::cli::{DriftArgs, ImportArgs, ProjectArg, TextOrJson};
use crate::exit::Exit;
use crate::output;

fn paint(s: &str, code: &str) -> String {
    if output::color_stdout() {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Null => "(absent)".into(),
        Value::String(s) => {
            let one_line = s.replace('\n', "⏎");
            if one_line.chars().count() > 60 {
                format!("{:?}…", one_line.chars().take(60).collect::<String>())
            } else {
                format!("{one_line:?}")
            }
        }
        Value::Object(m) if m.contains_key("type") => {
            let ty = m.get("type").and_then(Value::as_str).unwrap_or("?");
            let nullable = m.get("nullable").and_then(Value::as_bool).unwrap_or(true);
            format!("{ty}{}", if nullable { "" } else { " not null" })
        }
        other => other.to_string(),
    }
}

fn field_line(f: &FieldDrift) -> String {
    format!(
        "{}: {} → {}",
        f.field,
        show_value(&f.expected),
        show_value(&f.actual)
    )
}

fn entry_lines(e: &DriftEntry) -> String {
    let mut out = String::new();
    let (sym, color, what) = match e.kind {
        DriftKind::Changed => ("~", "33", "changed outside dk"),
        DriftKind::Deleted => ("-", "31", "deleted outside dk"),
        DriftKind::Unmanaged => (
            "?",
            "36",
            "unmanaged: not in state; adopt it with `dk import` or drop it",
        ),
    };
    out.push_str(&format!(
        "  {} {} ({what})\n",
        paint(sym, color),
        paint(&e.address, "1")
    ));
    for f in &e.fields {
        out.push_str(&format!("      {}\n", field_line(f)));
    }
    out
}

/// The human report of one check.
pub fn render_drift_human(r: &DriftReport) -> String {
    let mut out = String::new();
    if r.entries.is_empty() {
        out.push_str(&format!(
            "No drift in {}: the real systems match state (serial {}, {} objects checked).\n",
            r.environment, r.serial, r.resources_checked
        ));
    } else {
        out.push_str(&format!(
            "Drift in {} (state serial {}, {} objects checked):\n\n",
            r.environment, r.serial, r.resources_checked
        ));
        for e in &r.entries {
            out.push_str(&entry_lines(e));
        }
    }
    if !r.ignored.is_empty() {
        out.push_str("\nIgnored by drift.ignore rules:\n");
        for i in &r.ignored {
            let what = if i.entry.fields.is_empty() {
                i.entry.kind.as_str().to_string()
            } else {
                i.entry
                    .fields
                    .iter()
                    .map(|f| f.field.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let until = i
                .expires
                .as_deref()
                .map(|e| format!(", until {e}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {} {what} — {} ({}{until})\n",
                i.entry.address, i.reason, i.rule
            ));
        }
    }
    if !r.expired_rules.is_empty() {
        out.push_str(
            "\nExpired drift.ignore rules (they hide nothing now; remove or renew them):\n",
        );
        for e in &r.expired_rules {
            out.push_str(&format!("  {e}\n"));
        }
    }
    if !r.unsettled.is_empty() {
        out.push_str(&format!(
            "\n{} resource(s) are pending or tainted from an interrupted or failed apply and were not compared; run `dk apply -e {}` to settle them.\n",
            r.unsettled.len(),
            r.environment
        ));
    }
    if !r.entries.is_empty() {
        let count = |k: DriftKind| r.entries.iter().filter(|e| e.kind == k).count();
        out.push_str(&format!(
            "\nDrift: {} changed, {} deleted, {} unmanaged. `dk plan -e {}` shows how dk would restore the configuration.\n",
            count(DriftKind::Changed),
            count(DriftKind::Deleted),
            count(DriftKind::Unmanaged),
            r.environment
        ));
    }
    out
}

async fn check(p: &Prepared, backend: &Backend) -> Result<DriftReport, EngineError> {
    let state = backend.read_or_new().await?;
    let providers = providers_for(p, &state).await?;
    let rules = dk_engine::drift::ignore_rules(&p.env, &p.model)?;
    dk_engine::drift::detect(&providers, &p.env, &p.compiled, &state, &rules).await
}

pub fn drift(a: DriftArgs) -> anyhow::Result<Exit> {
    let p = match prepare(&a.project.dir, a.env.as_deref())? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    if !(a.interval > 0.0 && a.interval.is_finite()) {
        bail!("--interval must be a positive number of seconds");
    }
    let rt = runtime()?;
    let cfg = backend_config(&p)?;
    let result = rt.block_on(async {
        let backend = Backend::open(&cfg, &p.project, &p.env.environment).await?;
        if a.watch {
            watch(&p, &backend, &a).await
        } else {
            let report = check(&p, &backend).await?;
            match a.output {
                TextOrJson::Text => print!("{}", render_drift_human(&report)),
                TextOrJson::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report)
                        .map_err(|e| EngineError::Internal(e.to_string()))?
                ),
            }
            Ok(report.has_drift())
        }
    });
    match result {
        Ok(true) => Ok(Exit::Drift),
        Ok(false) => Ok(Exit::Ok),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(engine_exit(&e))
        }
    }
}

/// A stable key of an entry, to report each drift once while it lasts.
fn entry_key(e: &DriftEntry) -> String {
    serde_json::to_string(e).unwrap_or_else(|_| e.address.clone())
}

/// Postgres stores of the environment that hold managed objects (watched by event triggers).
fn postgres_stores(p: &Prepared) -> Vec<&dk_env::ResolvedStore> {
    p.env
        .stores
        .values()
        .filter(|s| matches!(s.connector_type.as_str(), "postgres" | "postgresql"))
        .filter(|s| p.compiled.stores.contains_key(&s.name))
        .collect()
}

async fn watch(p: &Prepared, backend: &Backend, a: &DriftArgs) -> Result<bool, EngineError> {
    use dk_providers::postgres::watch::DdlWatch;
    let interval = Duration::from_secs_f64(a.interval);
    let deadline = a
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let pg = postgres_stores(p);
    let polls_only = p.compiled.stores.len() > pg.len();
    let mut watches = Vec::new();
    for s in &pg {
        match DdlWatch::install(s).await {
            Ok(w) => watches.push(w),
            Err(e) => eprintln!(
                "warning: store {}: cannot install DDL event triggers ({e}); polling every {:.1}s instead",
                s.name, a.interval
            ),
        }
    }
    let mode = if watches.is_empty() {
        format!("polling every {:.1}s", a.interval)
    } else if polls_only || watches.len() < pg.len() {
        format!(
            "DDL event triggers on {} PostgreSQL store(s), polling the others every {:.1}s",
            watches.len(),
            a.interval
        )
    } else {
        "DDL event triggers (LISTEN/NOTIFY)".to_string()
    };
    eprintln!(
        "Watching {} for drift ({mode}); press Ctrl-C to stop.",
        p.env.environment
    );
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut any = false;
    let mut first = true;
    // Registered once, before the first check: a signal that arrives while a check runs is kept
    // until the loop waits again (a `ctrl_c()` future made afterwards would miss it).
    let mut stop =
        Stop::new().map_err(|e| EngineError::Internal(format!("cannot handle signals: {e}")))?;
    let outcome: Result<(), EngineError> = async {
        loop {
            // Let an apply that is running finish before comparing (its DDL is not drift).
            for _ in 0..600 {
                let locks = backend.list_locks().await.unwrap_or_default();
                if !locks
                    .iter()
                    .any(|l| matches!(l.operation.as_str(), "apply" | "destroy" | "import"))
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let report = check(p, backend).await?;
            let now: BTreeSet<String> = report.entries.iter().map(entry_key).collect();
            for e in &report.entries {
                if seen.contains(&entry_key(e)) {
                    continue;
                }
                any = true;
                match a.output {
                    TextOrJson::Json => println!(
                        "{}",
                        serde_json::json!({
                            "event": "drift",
                            "at": report.checked_at,
                            "environment": report.environment,
                            "entry": e,
                        })
                    ),
                    TextOrJson::Text => {
                        print!(
                            "[{}] {}",
                            report.checked_at.format("%H:%M:%S"),
                            entry_lines(e).trim_start()
                        );
                    }
                }
            }
            if first && report.entries.is_empty() && a.output == TextOrJson::Text {
                println!(
                    "[{}] no drift ({} objects checked)",
                    report.checked_at.format("%H:%M:%S"),
                    report.resources_checked
                );
            }
            for gone in seen.difference(&now) {
                if let Ok(e) = serde_json::from_str::<DriftEntry>(gone) {
                    match a.output {
                        TextOrJson::Json => println!(
                            "{}",
                            serde_json::json!({"event": "resolved", "at": report.checked_at, "address": e.address})
                        ),
                        TextOrJson::Text => println!(
                            "[{}] resolved: {}",
                            report.checked_at.format("%H:%M:%S"),
                            e.address
                        ),
                    }
                }
            }
            use std::io::Write;
            let _ = std::io::stdout().flush();
            seen = now;
            first = false;
            // Wait for DDL, the polling interval, the deadline or Ctrl-C.
            let wait = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(());
                    }
                    left.min(interval)
                }
                None => interval,
            };
            let ddl = async {
                if watches.is_empty() {
                    std::future::pending::<()>().await;
                }
                let next = futures_next(&mut watches).await;
                if next {
                    // Several statements usually come together: settle briefly.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    for w in watches.iter_mut() {
                        w.drain();
                    }
                }
            };
            tokio::select! {
                _ = ddl => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait() => return Ok(()),
            }
        }
    }
    .await;
    for w in watches {
        if let Err(e) = w.remove().await {
            eprintln!("warning: {e}");
        }
    }
    outcome?;
    eprintln!("Stopped watching.");
    Ok(any)
}

/// SIGINT (Ctrl-C) and SIGTERM, registered once so that none is missed between waits.
struct Stop {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Stop {
    fn new() -> std::io::Result<Stop> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Stop {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Stop {})
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for the next event of any watch; false when every connection closed.
async fn futures_next(watches: &mut [dk_providers::postgres::watch::DdlWatch]) -> bool {
    let futs = watches.iter_mut().map(|w| Box::pin(w.next()));
    let (event, _, _) = futures_util::future::select_all(futs).await;
    event.is_some()
}

// ---------------------------------------------------------------------------------------------
// import

pub fn import(a: ImportArgs) -> anyhow::Result<Exit> {
    let p = match prepare(&a.project.dir, a.env.as_deref())? {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    match &a.discover {
        Some(schema) => discover(&p, &a, schema),
        None => import_addresses(&p, &a),
    }
}

fn import_addresses(p: &Prepared, a: &ImportArgs) -> anyhow::Result<Exit> {
    let rt = runtime()?;
    let cfg = backend_config(p)?;
    let result: Result<Vec<dk_providers::model::Resource>, EngineError> = rt.block_on(async {
        let backend = Backend::open(&cfg, &p.project, &p.env.environment).await?;
        let lock = backend.lock("import").await?;
        let outcome = async {
            let mut state = backend.read_or_new().await?;
            let providers = providers_for(p, &state).await?;
            let mut adopted = Vec::new();
            for addr in &a.address {
                adopted.push(
                    dk_engine::import::import_address(&providers, &p.compiled, &state, addr)
                        .await?,
                );
            }
            let serial = state.serial;
            dk_engine::import::record(&mut state, &adopted);
            backend.write(&state, serial, "import").await?;
            Ok(adopted)
        }
        .await;
        lock.release().await?;
        outcome
    });
    let adopted = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(engine_exit(&e));
        }
    };
    match a.output {
        TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&adopted)?),
        TextOrJson::Text => {
            for r in &adopted {
                println!("Imported {}", r.address);
            }
            println!(
                "\n{} object(s) adopted into the state of {}. Run `dk plan -e {}` to compare them with their manifests.",
                adopted.len(),
                p.env.environment,
                p.env.environment
            );
        }
    }
    Ok(Exit::Ok)
}

fn pick_store(p: &Prepared, wanted: Option<&str>) -> anyhow::Result<String> {
    let candidates = dk_engine::import::introspectable_stores(&p.env);
    match wanted {
        Some(s) if candidates.contains(s) => Ok(s.to_string()),
        Some(s) if p.env.stores.contains_key(s) => {
            bail!("store {s} is not a database dk can introspect (supported: postgres, duckdb)")
        }
        Some(s) => bail!(
            "no store named {s} in environment {}; stores: {}",
            p.env.environment,
            candidates.into_iter().collect::<Vec<_>>().join(", ")
        ),
        None if candidates.len() == 1 => Ok(candidates.into_iter().next().unwrap_or_default()),
        None if candidates.is_empty() => bail!(
            "environment {} has no postgres or duckdb store to discover in",
            p.env.environment
        ),
        None => bail!(
            "several database stores: pass --store (one of {})",
            candidates.into_iter().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `--write DIR` as a path relative to the project root (it must be inside the project).
fn relative_dir(root: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let abs = std::path::absolute(dir)?;
    let root = std::path::absolute(root)?;
    let canon_root = root.canonicalize().unwrap_or(root.clone());
    for r in [&root, &canon_root] {
        if let Ok(rel) = abs.strip_prefix(r) {
            return Ok(rel.to_path_buf());
        }
    }
    bail!(
        "--write {}: the directory must be inside the project ({}), or dk would not load the manifests",
        dir.display(),
        root.display()
    )
}

fn discover(p: &Prepared, a: &ImportArgs, schema: &str) -> anyhow::Result<Exit> {
    let store = pick_store(p, a.store.as_deref())?;
    let rt = runtime()?;
    let cfg = backend_config(p)?;
    let result = rt.block_on(async {
        let backend = Backend::open(&cfg, &p.project, &p.env.environment).await?;
        let state = backend.read_or_new().await?;
        let stores: BTreeSet<String> = [store.clone()].into_iter().collect();
        let providers = dk_engine::plan::connect(&p.env, &stores, &p.model.root).await?;
        dk_engine::import::discover(&providers, &p.compiled, &state, &store, schema).await
    });
    let found = match result {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(engine_exit(&e));
        }
    };
    let (manifests, skipped) = dk_engine::import::discovered_manifests(&found, &p.env, &p.model);
    for s in &skipped {
        eprintln!("note: skipped {s}");
    }
    for v in &found.views {
        eprintln!(
            "note: {} is a view; views are produced by `sql` transforms with `materialized: view`, so no DataSet was written for it",
            v.address
        );
    }
    if a.output == TextOrJson::Json && a.write.is_none() {
        println!("{}", serde_json::to_string_pretty(&manifests)?);
        return Ok(Exit::Ok);
    }
    if manifests.is_empty() {
        println!(
            "No unmanaged tables in {store}.{schema} ({} already declared or managed).",
            found.managed
        );
        return Ok(Exit::Ok);
    }
    let Some(dir) = &a.write else {
        let docs: Vec<&dk_manifest::model::DataSet> = manifests.values().collect();
        print!("{}", dk_manifest::write::to_yaml_string(&docs)?);
        eprintln!(
            "{} unmanaged table(s) in {store}.{schema}; pass --write DIR to save these manifests.",
            manifests.len()
        );
        return Ok(Exit::Ok);
    };
    let rel = relative_dir(&p.model.root, dir)?;
    let mut files = Vec::new();
    for (file, ds) in &manifests {
        files.push((rel.join(file), dk_manifest::write::to_yaml_string(&[ds])?));
    }
    let project = ProjectArg {
        dir: p.model.root.clone(),
    };
    let code = super::scaffold::write_manifests(&project, files, a.force, Vec::new())?;
    if code == Exit::Ok {
        println!(
            "\n{} DataSet manifest(s) written for the unmanaged tables of {store}.{schema}. `dk plan -e {env}` now lists them as existing objects to record, and `dk apply -e {env}` adopts them without changing the database.",
            manifests.len(),
            env = p.env.environment
        );
    }
    Ok(code)
}
