//! `dk state pull|push`, concurrent applies and `kill -9` of a slow apply, on both state backends
//! (local files and PostgreSQL), against the real PostgreSQL.

mod common;
mod pgproject;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pgproject::*;

fn pull(p: &Path, db: &TestDb) -> serde_json::Value {
    let (code, out, err) = dk_in(p, db, &["state", "pull", "-e", "prod"]);
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("state pull is not JSON ({e}):\n{out}"))
}

fn history_len(p: &Path, db: &TestDb) -> usize {
    let (code, out, err) = dk_in(p, db, &["state", "history", "-e", "prod", "-o", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("history json");
    v.as_array().expect("history array").len()
}

fn pull_and_push(kind: StateKind) {
    let db = TestDb::new("push");
    let (_tmp, p) = project(&db, kind);
    let (code, out, err) = dk_in(&p, &db, &["state", "pull", "-e", "prod"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("has no state yet"), "{err}");
    let (code, out, err) = dk_in(&p, &db, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");

    // pull: stdout, and the same document atomically into a file.
    let doc = pull(&p, &db);
    let serial = doc["serial"].as_u64().expect("serial");
    assert_eq!(serial as usize, history_len(&p, &db));
    assert_eq!(doc["environment"], "prod");
    assert!(doc["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .any(|r| r["address"] == "table.warehouse.main.orders"));
    let (code, out, err) = dk_in(
        &p,
        &db,
        &["state", "pull", "-e", "prod", "--out", "pulled/state.json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.is_empty(), "--out writes nothing to stdout: {out}");
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.join("pulled/state.json")).expect("pulled file"),
    )
    .expect("pulled json");
    assert_eq!(file, doc);
    assert!(!std::fs::read_to_string(p.join("pulled/state.json"))
        .expect("pulled file")
        .contains(SECRET));

    // push of the unchanged document: its serial is not newer → refused, state untouched.
    let (code, out, err) = dk_in(
        &p,
        &db,
        &["state", "push", "pulled/state.json", "-e", "prod"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("not newer") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(pull(&p, &db), doc);

    // An edited document with the next serial: accepted, written as a new serial.
    let mut edited = doc.clone();
    edited["serial"] = serde_json::json!(serial + 1);
    edited["resources"]
        .as_array_mut()
        .expect("resources")
        .retain(|r| r["address"] != "table.warehouse.main.orders");
    std::fs::write(p.join("edited.json"), edited.to_string()).expect("write edited");
    let (code, out, err) = dk_in(&p, &db, &["state", "push", "edited.json", "-e", "prod"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("serial {}", serial + 1))
            && out.contains(&format!("serial {serial} is kept")),
        "{out}"
    );
    let (_, list, _) = dk_in(&p, &db, &["state", "list", "-e", "prod"]);
    assert!(!list.contains("table.warehouse.main.orders"), "{list}");
    assert_eq!(history_len(&p, &db), serial as usize + 1);
    let now = pull(&p, &db);
    assert_eq!(now["operation"], "state push");
    assert_eq!(now["lineage"], doc["lineage"]);
    // The table still exists: the next plan records it again, changing nothing.
    let (code, out, err) = dk_in(&p, &db, &["plan", "-e", "prod"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("= table.warehouse.main.orders"), "{out}");

    // Another lineage: refused, then replaced with --force (the old serial stays in history).
    let mut foreign = now.clone();
    foreign["lineage"] = serde_json::json!("00000000-0000-4000-8000-000000000001");
    foreign["serial"] = serde_json::json!(1000);
    std::fs::write(p.join("foreign.json"), foreign.to_string()).expect("write foreign");
    let (code, out, err) = dk_in(&p, &db, &["state", "push", "foreign.json", "-e", "prod"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("lineage"), "{err}");
    let (code, out, err) = dk_in(
        &p,
        &db,
        &["state", "push", "foreign.json", "-e", "prod", "--force"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let forced = pull(&p, &db);
    assert_eq!(forced["lineage"], foreign["lineage"]);
    assert_eq!(forced["serial"].as_u64(), Some(serial + 2));
    assert_eq!(history_len(&p, &db), serial as usize + 2);

    // Not a state document / an unknown format / another environment: clear errors.
    std::fs::write(p.join("bad.json"), "{\"serial\": 3").expect("write bad");
    let (code, _, err) = dk_in(&p, &db, &["state", "push", "bad.json", "-e", "prod"]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.json"), "{err}");
    let mut future = forced.clone();
    future["format_version"] = serde_json::json!(99);
    future["serial"] = serde_json::json!(5000);
    std::fs::write(p.join("future.json"), future.to_string()).expect("write future");
    let (code, _, err) = dk_in(
        &p,
        &db,
        &["state", "push", "future.json", "-e", "prod", "--force"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("format_version 99"), "{err}");
    let mut other_env = forced.clone();
    other_env["environment"] = serde_json::json!("dev");
    other_env["serial"] = serde_json::json!(5000);
    std::fs::write(p.join("dev.json"), other_env.to_string()).expect("write dev");
    let (code, _, err) = dk_in(&p, &db, &["state", "push", "dev.json", "-e", "prod"]);
    assert_eq!(code, 1);
    assert!(err.contains("environment \"dev\""), "{err}");
    assert_eq!(pull(&p, &db), forced);

    // push takes the state lock: refused with exit 5 while an apply holds it.
    add_tables(&p, 1);
    let mut child = dk_cmd(&p, &db)
        .args(["apply", "-e", "prod", "--auto-approve"])
        .env("DK_FAILPOINT_APPLY_DELAY_MS", "3000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn apply");
    wait_for_lock(&p, &db);
    let (code, _, err) = dk_in(&p, &db, &["state", "push", "edited.json", "-e", "prod"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("locked by"), "{err}");
    let status = child.wait().expect("wait apply");
    assert!(status.success());
}

/// Waits until some process holds the prod lock (at most 60 s).
fn wait_for_lock(p: &Path, db: &TestDb) {
    let t0 = Instant::now();
    loop {
        let (code, out, err) = dk_in(p, db, &["state", "locks", "-e", "prod", "-o", "json"]);
        assert_eq!(code, 0, "{out}{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("locks json");
        if v.as_array().is_some_and(|a| !a.is_empty()) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no process took the lock within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn state_pull_and_push_local() {
    pull_and_push(StateKind::Local);
}

#[test]
fn state_pull_and_push_postgres() {
    pull_and_push(StateKind::Postgres);
}

/// Two applies at once: the second fails fast with exit 5 naming the first (its pid).
fn concurrent_applies(kind: StateKind) {
    let db = TestDb::new("conc");
    let (_tmp, p) = project(&db, kind);
    let mut first = dk_cmd(&p, &db)
        .args(["apply", "-e", "prod", "--auto-approve"])
        .env("DK_FAILPOINT_APPLY_DELAY_MS", "3000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn first apply");
    wait_for_lock(&p, &db);
    let t0 = Instant::now();
    let (code, out, err) = dk_in(&p, &db, &["apply", "-e", "prod", "--auto-approve"]);
    let took = t0.elapsed();
    assert_eq!(code, 5, "{out}{err}");
    assert!(
        err.contains("locked by") && err.contains(&format!("pid {}", first.id())),
        "the message names the holder: {err}"
    );
    assert!(
        err.contains("apply"),
        "the message names the operation: {err}"
    );
    assert!(took < Duration::from_secs(3), "not fast: {took:?}");
    // `dk state lock list` (the spelling of `dk state locks`) names the holder too.
    let (code, out, err) = dk_in(&p, &db, &["state", "lock", "list", "-e", "prod"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("apply by") && out.contains(&format!("(pid {})", first.id())),
        "{out}"
    );
    let (code, _, err) = dk_in(
        &p,
        &db,
        &["state", "lock", "unlock", "no-such-id", "-e", "prod"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("no lock with ID no-such-id"), "{err}");
    let status = first.wait().expect("wait first");
    let mut first_err = String::new();
    if let Some(mut e) = first.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut first_err).expect("read stderr");
    }
    assert!(status.success(), "{first_err}");
    // The first one finished: the environment is free again and up to date.
    let (code, out, err) = dk_in(&p, &db, &["apply", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No changes."), "{out}");
}

#[test]
fn concurrent_apply_fails_fast_local_backend() {
    concurrent_applies(StateKind::Local);
}

#[test]
fn concurrent_apply_fails_fast_postgres_backend() {
    concurrent_applies(StateKind::Postgres);
}

/// Starts a slow apply, SIGKILLs it once `after` changes have reported, returns the number of
/// changes that had reported.
fn kill_apply_after(p: &Path, db: &TestDb, after: usize) -> usize {
    let mut child = dk_cmd(p, db)
        .args([
            "apply",
            "-e",
            "prod",
            "--auto-approve",
            "--parallelism",
            "2",
        ])
        .env("DK_FAILPOINT_APPLY_DELAY_MS", "150")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn apply");
    let stderr = child.stderr.take().expect("stderr");
    let mut done = 0;
    let mut log = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("stderr line");
        log.push_str(&line);
        log.push('\n');
        if line.contains(": done in ") {
            done += 1;
            if done >= after {
                break;
            }
        }
    }
    assert_eq!(done, after, "apply ended before {after} changes:\n{log}");
    child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix
    let status = child.wait().expect("wait killed apply");
    assert!(!status.success(), "the apply was killed: {status:?}");
    done
}

fn kill_9_converges(kind: StateKind) {
    // Reference: a clean apply of the same project in another database.
    let clean_db = TestDb::new("clean");
    let (_tmp_c, clean) = project(&clean_db, kind);
    add_tables(&clean, 20);
    let (code, out, err) = dk_in(
        &clean,
        &clean_db,
        &["apply", "-e", "prod", "--auto-approve"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (_, reference, _) = dk_in(&clean, &clean_db, &["state", "list", "-e", "prod"]);
    let reference_resources = pull(&clean, &clean_db)["resources"].clone();
    let reference_catalog = catalog(&clean_db);
    let total = reference.lines().count();
    assert!(total >= 22, "{reference}");

    let db = TestDb::new("kill");
    let (_tmp, p) = project(&db, kind);
    add_tables(&p, 20);
    // After the first change, after about half, after most of them.
    for after in [1, total / 2, total - 2] {
        kill_apply_after(&p, &db, after);
        // The killed holder's lock does not block the next run, which converges.
        let (code, out, err) = dk_in(&p, &db, &["apply", "-e", "prod", "--auto-approve"]);
        assert_eq!(code, 0, "after {after}: {out}{err}");
        let (_, state, _) = dk_in(&p, &db, &["state", "list", "-e", "prod"]);
        assert_eq!(state, reference, "after {after}");
        assert_eq!(
            pull(&p, &db)["resources"],
            reference_resources,
            "after {after}"
        );
        assert_eq!(catalog(&db), reference_catalog, "after {after}");
        let (code, out, _) = dk_in(&p, &db, &["plan", "-e", "prod", "--detailed-exitcode"]);
        assert_eq!(code, 0, "after {after}: {out}");
        let (code, out, err) = dk_in(&p, &db, &["destroy", "-e", "prod", "--auto-approve"]);
        assert_eq!(code, 0, "after {after}: {out}{err}");
    }
}

#[test]
fn kill_9_during_slow_apply_converges_local_backend() {
    kill_9_converges(StateKind::Local);
}

#[test]
fn kill_9_during_slow_apply_converges_postgres_backend() {
    kill_9_converges(StateKind::Postgres);
}

/// Runs `dk apply` on a pseudo-terminal (util-linux `script`) and returns what the terminal showed.
fn apply_on_a_terminal(p: &Path, db: &TestDb, term: &str) -> String {
    let dk = assert_cmd::cargo::cargo_bin("dk");
    let cmd = format!("'{}' apply -e prod --auto-approve", dk.display());
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .current_dir(p)
        .env("TERM", term)
        .env("DK_FAILPOINT_APPLY_DELAY_MS", "400")
        .env_remove("NO_COLOR")
        .env_remove("DK_PROJECT_DIR")
        .env("SHOP_PG_PASSWORD", SECRET)
        .env("DK_TEST_STATE_URL", pg_conninfo(&db.0))
        .stdin(Stdio::null())
        .output()
        .expect("run `script` (util-linux; apt-get install util-linux)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn progress_bar_only_on_a_terminal() {
    let db = TestDb::new("bar");
    let (_tmp, p) = project(&db, StateKind::Local);
    let shown = apply_on_a_terminal(&p, &db, "xterm");
    assert!(
        shown.contains("/3 changes"),
        "a bar on a terminal:\n{shown}"
    );
    assert!(shown.contains(": done in "), "the log lines stay:\n{shown}");
    let (code, out, err) = dk_in(&p, &db, &["destroy", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    let shown = apply_on_a_terminal(&p, &db, "dumb");
    assert!(
        !shown.contains("/3 changes"),
        "no bar with TERM=dumb:\n{shown}"
    );
    assert!(shown.contains(": done in "), "{shown}");
    let (code, out, err) = dk_in(&p, &db, &["destroy", "-e", "prod", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    // Not a terminal: the log lines only.
    let out = dk_cmd(&p, &db)
        .args(["apply", "-e", "prod", "--auto-approve"])
        .env("DK_FAILPOINT_APPLY_DELAY_MS", "400")
        .output()
        .expect("run dk");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(": done in ") && !err.contains("/3 changes"),
        "{err}"
    );
}
