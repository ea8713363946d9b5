//! PostgreSQL backend against the real local server (`DK_TEST_PG_URL`, default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`). Each test works in its own schema,
//! dropped at the end. An unreachable server fails the tests with instructions, never skips.

mod common;

use std::time::{Duration, Instant};

use common::{child_role, park, require_pg, test_schema, ChildProc};
use dk_state::{
    Backend, BackendConfig, PgBackend, ResourceState, ResourceStatus, SecretRef, StateDocument,
    StateError,
};
use dk_test_support::{pg_url, TestSchema};

const SCHEMA_VAR: &str = "DK_STATE_TEST_SCHEMA";

async fn open(schema: &TestSchema, env: &str) -> PgBackend {
    require_pg().await;
    PgBackend::open(&pg_url(), &schema.name, "shop", env)
        .await
        .expect("open the PostgreSQL backend")
}

/// Entry point of the child roles (a no-op in a normal test run).
#[test]
fn child_helper() {
    let Some(role) = child_role() else { return };
    let schema = std::env::var(SCHEMA_VAR).expect("child needs DK_STATE_TEST_SCHEMA");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let b = PgBackend::open(&pg_url(), &schema, "shop", "dev")
            .await
            .expect("child open");
        match role.as_str() {
            "lock" => {
                let guard = b.lock("apply").await.expect("child lock");
                println!("LOCKED {}", guard.info().id);
                // Keep the guard (and its connection) alive until killed.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                drop(guard);
            }
            other => panic!("unknown child role {other}"),
        }
    });
    park();
}

#[tokio::test]
async fn writes_are_compare_and_swap_and_every_serial_is_kept() {
    let schema = test_schema();
    let b = open(&schema, "dev").await;
    assert!(b.read_latest().await.expect("read").is_none());
    assert!(b.history().await.expect("history").is_empty());

    let mut doc = StateDocument::new("shop", "dev");
    let mut r = ResourceState::new("table.warehouse.public.users", "table", "postgres");
    r.attributes = serde_json::json!({
        "z": 1, "a": {"y": [1, 2.5, "x"], "b": null},
        "secrets": {"password": SecretRef::new("SHOP_PG_PASSWORD", "hunter2").to_value()},
    });
    doc.put(r);
    doc.manifests_digest = Some("abc".into());
    let w1 = b.write(&doc, 0, "apply").await.expect("write 1");
    assert_eq!(w1.serial, 1);

    let err = b.write(&doc, 0, "apply").await.unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Stale {
                expected: 0,
                found: 1,
                ..
            }
        ),
        "{err}"
    );

    let mut d2 = w1.clone();
    d2.get_mut("table.warehouse.public.users")
        .expect("resource")
        .status = ResourceStatus::Pending;
    let w2 = b.write(&d2, 1, "apply").await.expect("write 2");
    d2.mv(
        "table.warehouse.public.users",
        "table.warehouse.public.people",
    )
    .expect("mv");
    let w3 = b.write(&d2, 2, "state mv").await.expect("write 3");

    let latest = b.read_latest().await.expect("read").expect("some");
    // jsonb reorders keys; the digest is over canonical JSON and must survive the round trip.
    assert_eq!(latest.digest(), w3.digest());
    assert_eq!(latest.serial, 3);
    assert_eq!(
        b.read_serial(1).await.expect("serial 1").digest(),
        w1.digest()
    );
    assert_eq!(
        b.read_serial(2).await.expect("serial 2").digest(),
        w2.digest()
    );
    let err = b.read_serial(9).await.unwrap_err();
    assert!(err.to_string().contains("latest is 3"), "{err}");

    let h = b.history().await.expect("history");
    assert_eq!(h.iter().map(|e| e.serial).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(h[2].operation, "state mv");
    assert_eq!(h[0].resources, 1);
    assert_eq!(h[0].manifests_digest.as_deref(), Some("abc"));
    assert!(h.iter().all(|e| e.lineage == doc.lineage));

    // Another lineage is refused; another environment is separate.
    let other = StateDocument::new("shop", "dev");
    let err = b.write(&other, 3, "apply").await.unwrap_err();
    assert!(matches!(err, StateError::LineageMismatch { .. }), "{err}");
    let prod = open(&schema, "prod").await;
    assert!(prod.read_latest().await.expect("read").is_none());

    // No secret value reaches the database.
    let (client, conn) = pg_url()
        .parse::<tokio_postgres::Config>()
        .expect("config")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let hits: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM \"{}\".states WHERE document::text LIKE '%hunter2%'",
                schema.name
            ),
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(hits, 0);
}

#[tokio::test]
async fn racing_writers_one_wins_the_other_is_stale() {
    let schema = test_schema();
    let a = open(&schema, "dev").await;
    let b = open(&schema, "dev").await;
    let doc = StateDocument::new("shop", "dev");
    let w = a.write(&doc, 0, "apply").await.expect("seed");
    for round in 0..5u64 {
        let base = w.serial + round;
        let current = a.read_serial(base).await.expect("base");
        let (ra, rb) = tokio::join!(
            a.write(&current, base, "apply"),
            b.write(&current, base, "apply")
        );
        let oks = [ra.is_ok(), rb.is_ok()].iter().filter(|x| **x).count();
        assert_eq!(oks, 1, "exactly one writer wins: {ra:?} / {rb:?}");
        let err = ra.err().or(rb.err()).expect("one error");
        assert!(matches!(err, StateError::Stale { .. }), "{err}");
    }
    assert_eq!(a.history().await.expect("history").len(), 6);
}

#[tokio::test]
async fn second_locker_fails_fast_naming_the_holder() {
    let schema = test_schema();
    let b = open(&schema, "dev").await;
    let guard = b.lock("apply").await.expect("lock");
    let info = guard.info().clone();
    assert_eq!(info.pid, std::process::id());
    assert!(info.expires.expect("lease") > info.created);

    let started = Instant::now();
    let err = b.lock("plan").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "fails fast");
    match &err {
        StateError::Locked { holder, .. } => {
            assert_eq!(holder.id, info.id);
            assert_eq!(holder.pid, info.pid);
            assert_eq!(holder.who, info.who);
            assert_eq!(holder.host, info.host);
            assert_eq!(holder.operation, "apply");
        }
        other => panic!("expected Locked, got {other}"),
    }
    assert_eq!(err.exit_code(), 5);

    // Another environment has its own lock.
    let prod = open(&schema, "prod").await;
    let prod_guard = prod.lock("apply").await.expect("prod lock");
    let listed = b.list_locks().await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|l| l.environment.as_str())
            .collect::<Vec<_>>(),
        ["dev", "prod"]
    );
    prod_guard.release().await.expect("release prod");

    guard.ensure_held().expect("still held");
    guard.release().await.expect("release");
    let again = b.lock("plan").await.expect("lock after release");
    again.release().await.expect("release");
    assert!(b.list_locks().await.expect("list").is_empty());
}

#[tokio::test]
async fn heartbeat_renews_the_lease() {
    let schema = test_schema();
    let mut b = open(&schema, "dev").await;
    b.set_lease(Duration::from_secs(3), Duration::from_millis(300));
    let guard = b.lock("apply").await.expect("lock");
    let first = guard.info().expires.expect("lease");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let listed = b.list_locks().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].expires.expect("lease") > first,
        "lease renewed: {:?} > {first:?}",
        listed[0].expires
    );
    guard.ensure_held().expect("held");
    guard.release().await.expect("release");
}

#[tokio::test]
async fn force_unlock_terminates_the_holder_session() {
    let schema = test_schema();
    let b = open(&schema, "dev").await;
    let mut holder_backend = open(&schema, "dev").await;
    holder_backend.set_lease(Duration::from_secs(3), Duration::from_millis(200));
    let guard = holder_backend.lock("apply").await.expect("lock");
    let id = guard.info().id.clone();
    let err = b.force_unlock("nope").await.unwrap_err();
    assert!(matches!(err, StateError::LockNotFound { .. }), "{err}");
    assert_eq!(b.force_unlock(&id).await.expect("unlock").id, id);

    let mine = lock_with_retry(&b).await;
    assert_eq!(mine.info().pid, std::process::id());
    // The old holder notices (connection terminated or lease row gone).
    let deadline = Instant::now() + Duration::from_secs(5);
    while guard.ensure_held().is_ok() {
        assert!(Instant::now() < deadline, "old holder never noticed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(guard);
    mine.release().await.expect("release");
}

/// After a session is terminated the server needs a moment to release its locks.
async fn lock_with_retry(b: &PgBackend) -> dk_state::PgLockGuard {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match b.lock("apply").await {
            Ok(g) => return g,
            Err(StateError::Locked { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("lock: {e}"),
        }
    }
}

#[tokio::test]
async fn lock_of_a_killed_process_does_not_block_the_next_run() {
    let schema = test_schema();
    let b = open(&schema, "dev").await; // creates the schema before the child uses it
    let mut child = ChildProc::spawn("lock", &[(SCHEMA_VAR, &schema.name)]);
    let child_id = child.wait_for("LOCKED ");

    let err = b.lock("apply").await.unwrap_err();
    match &err {
        StateError::Locked { holder, .. } => {
            assert_eq!(holder.pid, child.pid());
            assert_eq!(holder.id, child_id);
        }
        other => panic!("expected Locked, got {other}"),
    }
    assert!(err.to_string().contains(&format!("pid {}", child.pid())));

    child.kill9();

    // No retry here: the backend itself waits briefly for the server to notice a dead local
    // holder, so the next run is not blocked.
    let guard = b
        .lock("apply")
        .await
        .expect("lock after the holder was killed");
    let listed = b.list_locks().await.expect("list");
    assert_eq!(listed.len(), 1, "the stale holder row was overwritten");
    assert_eq!(listed[0].id, guard.info().id);
    assert_eq!(listed[0].pid, std::process::id());
    guard.release().await.expect("release");
}

#[tokio::test]
async fn facade_opens_postgres_from_project_spec() {
    require_pg().await;
    let schema = test_schema();
    let spec = serde_json::json!({"type": "postgres", "url": pg_url(), "schema": schema.name});
    let config = BackendConfig::from_spec(Some(&spec), std::path::Path::new(".")).expect("config");
    let b = Backend::open(&config, "shop", "dev").await.expect("open");
    assert!(
        b.describe().starts_with("postgres postgres@"),
        "{}",
        b.describe()
    );
    assert!(b.describe().contains(&schema.name));
    let doc = b.read_or_new().await.expect("new");
    let g = b.lock("apply").await.expect("lock");
    let w = b.write(&doc, 0, "apply").await.expect("write");
    assert_eq!(
        b.read_latest().await.expect("read").expect("some").serial,
        w.serial
    );
    assert_eq!(b.list_locks().await.expect("list").len(), 1);
    g.release().await.expect("release");
}
