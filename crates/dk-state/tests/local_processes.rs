//! Local backend across processes: a lock held by another process fails fast naming it; a lock
//! of a process killed with SIGKILL does not block the next locker; a writer killed at random
//! instants never leaves a partial or dangling state.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{child_role, park, ChildProc};
use dk_state::{LocalBackend, ResourceState, StateDocument, StateError};

const DIR_VAR: &str = "DK_STATE_TEST_DIR";

fn backend(dir: &Path) -> LocalBackend {
    LocalBackend::new(dir, "shop", "dev").expect("backend")
}

/// Entry point of the child roles (a no-op in a normal test run).
#[test]
fn child_helper() {
    let Some(role) = child_role() else { return };
    let dir = std::env::var(DIR_VAR).expect("child needs DK_STATE_TEST_DIR");
    let b = backend(Path::new(&dir));
    match role.as_str() {
        "lock" => {
            let guard = b.lock("apply").expect("child lock");
            println!("LOCKED {}", guard.info().id);
            park();
        }
        "writer" => {
            let mut doc = b
                .read_latest()
                .expect("child read")
                .unwrap_or_else(|| StateDocument::new("shop", "dev"));
            loop {
                // Big enough that a write takes a noticeable moment.
                for i in 0..300 {
                    let mut r =
                        ResourceState::new(format!("table.w.public.t{i:04}"), "table", "duckdb");
                    r.attributes = serde_json::json!({
                        "columns": (0..10).map(|c| serde_json::json!({"name": format!("c{c}"), "type": "bigint", "serial": doc.serial})).collect::<Vec<_>>(),
                    });
                    doc.put(r);
                }
                let expected = doc.serial;
                doc = b.write(&doc, expected, "apply").expect("child write");
                println!("WROTE {}", doc.serial);
            }
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn lock_of_another_process_fails_fast_and_dies_with_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_str().expect("utf-8 path").to_string();
    let b = backend(tmp.path());

    let mut child = ChildProc::spawn("lock", &[(DIR_VAR, &dir)]);
    let child_lock_id = child.wait_for("LOCKED ");

    let started = Instant::now();
    let err = b.lock("apply").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "must fail fast");
    match &err {
        StateError::Locked {
            holder,
            environment,
        } => {
            assert_eq!(environment, "dev");
            assert_eq!(holder.pid, child.pid());
            assert_eq!(holder.id, child_lock_id);
            assert_eq!(holder.operation, "apply");
            assert_eq!(holder.host, dk_state::current_host());
        }
        other => panic!("expected Locked, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&format!("pid {}", child.pid())), "{msg}");
    assert!(
        msg.contains(&format!("dk state unlock {child_lock_id}")),
        "{msg}"
    );
    assert_eq!(err.exit_code(), 5);
    let listed = b.list_locks().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, child_lock_id);

    child.kill9();

    let guard = b.lock("apply").expect("lock after the holder was killed");
    assert_eq!(guard.info().pid, std::process::id());
    let listed = b.list_locks().expect("list");
    assert_eq!(listed.len(), 1, "the dead holder's info was replaced");
    assert_eq!(listed[0].id, guard.info().id);
}

#[test]
fn force_unlock_of_a_live_holder_lets_the_next_locker_in() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_str().expect("utf-8 path").to_string();
    let b = backend(tmp.path());
    let _child = ChildProc::spawn("lock", &[(DIR_VAR, &dir)]);
    let id = _child.wait_for("LOCKED ");
    assert!(b.lock("apply").is_err());
    let removed = b.force_unlock(&id).expect("force unlock");
    assert_eq!(removed.id, id);
    let guard = b.lock("apply").expect("lock after force unlock");
    assert_eq!(guard.info().pid, std::process::id());
}

fn assert_consistent(b: &LocalBackend) -> u64 {
    let latest = b
        .read_latest()
        .expect("latest must parse after a crash")
        .expect("some state");
    let history = b.history().expect("history must parse after a crash");
    let serials: Vec<u64> = history.iter().map(|h| h.serial).collect();
    assert_eq!(
        serials,
        (1..=latest.serial).collect::<Vec<_>>(),
        "every committed serial is kept"
    );
    assert_eq!(
        b.read_serial(latest.serial).expect("latest in history"),
        latest,
        "state.json and its history entry agree"
    );
    latest.serial
}

#[test]
fn writer_killed_mid_write_leaves_a_complete_state() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_str().expect("utf-8 path").to_string();
    let b = backend(tmp.path());
    let mut last = 0;
    for round in 0..6u64 {
        let mut child = ChildProc::spawn("writer", &[(DIR_VAR, &dir)]);
        let first: u64 = child.wait_for("WROTE ").parse().expect("serial");
        assert_eq!(
            first,
            last + 1,
            "the child continues from the committed state"
        );
        // Kill at a varying instant, most likely in the middle of a later write.
        let jitter = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos() % 3_000));
        std::thread::sleep(Duration::from_micros(1_500 * (round + 1) + jitter));
        child.kill9();
        let serial = assert_consistent(&b);
        assert!(serial >= first, "a reported write is durable");
        last = serial;
    }
    // The next writer works normally and clears any torn temp file.
    let doc = b.read_latest().expect("read").expect("some");
    let next = b
        .write(&doc, doc.serial, "apply")
        .expect("write after crashes");
    assert_eq!(next.serial, last + 1);
    let leftovers: Vec<String> = std::fs::read_dir(b.dir())
        .expect("dir")
        .chain(std::fs::read_dir(b.dir().join("history")).expect("history dir"))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}
