//! Governance records (audit log, approvals, snapshots) on the PostgreSQL backend, against the
//! real local server (`DK_TEST_PG_URL`); each test in its own schema. An unreachable server fails
//! the test with instructions.

mod common;

use common::{require_pg, test_schema};
use dk_state::{AuditEntry, Backend, BackendConfig};
use dk_test_support::pg_url;
use serde_json::json;

#[tokio::test]
async fn audit_approvals_and_snapshots_round_trip() {
    require_pg().await;
    let schema = test_schema();
    let cfg = BackendConfig::postgres(pg_url(), Some(&schema.name));
    let prod = Backend::open(&cfg, "shop", "prod")
        .await
        .expect("open prod");
    let dev = Backend::open(&cfg, "shop", "dev").await.expect("open dev");
    assert!(prod.audit().await.expect("empty").is_empty());
    let mut e = AuditEntry::now("plan", "prod", "ok", "planned");
    e.digest = Some("abc".into());
    prod.append_audit(&e).await.expect("append");
    prod.append_audit(&AuditEntry::now("apply", "prod", "refused", "no approvals"))
        .await
        .expect("append");
    dev.append_audit(&AuditEntry::now("plan", "dev", "ok", "dev plan"))
        .await
        .expect("append");
    let log = prod.audit().await.expect("audit");
    assert_eq!(
        log.iter().map(|e| e.operation.as_str()).collect::<Vec<_>>(),
        vec!["plan", "apply"]
    );
    assert_eq!(log[0], e);

    prod.put_approval("d1", "k1", &json!({"who": "alice", "n": 1}))
        .await
        .expect("put");
    prod.put_approval("d1", "k1", &json!({"who": "alice", "n": 2}))
        .await
        .expect("replace");
    prod.put_approval("d2", "k2", &json!({"who": "bob"}))
        .await
        .expect("put");
    assert_eq!(
        prod.approvals(Some("d1")).await.expect("d1"),
        vec![json!({"who": "alice", "n": 2})]
    );
    assert_eq!(prod.approvals(None).await.expect("all").len(), 2);
    assert!(dev.approvals(None).await.expect("dev").is_empty());

    assert_eq!(prod.snapshot("s1").await.expect("none"), None);
    let snap = json!({"files": {"project.yaml": "kind: Project"}});
    prod.put_snapshot("s1", &snap).await.expect("put");
    prod.put_snapshot("s1", &json!({"other": true}))
        .await
        .expect("idempotent");
    assert_eq!(prod.snapshot("s1").await.expect("some"), Some(snap));
    assert_eq!(dev.snapshot("s1").await.expect("dev"), None);
}
