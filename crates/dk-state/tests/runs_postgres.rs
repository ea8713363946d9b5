//! Run records on the PostgreSQL backend against the real local server (`DK_TEST_PG_URL`): the
//! run summary (latest record of each transform per status, latest change of each dataset) in
//! two queries, per environment, and the same answer from the local backend.

mod common;

use chrono::{Duration, Utc};
use common::{require_pg, test_schema};
use dk_state::{BackendConfig, RunOutput, RunRecord, RunStatus, RunStore};
use dk_test_support::pg_url;

fn finished(transform: &str, env: &str, status: RunStatus, ago: i64, cursor: &str) -> RunRecord {
    let mut r = RunRecord::start("inv", transform, env, None);
    r.started = Utc::now() - Duration::seconds(ago);
    r.status = status;
    r.ended = Some(r.started);
    r.outputs.push(RunOutput {
        dataset: format!("{transform}-out"),
        rows_written: 1,
        cursor: Some(cursor.into()),
        rebuilt: false,
    });
    r
}

#[tokio::test]
async fn the_summary_reads_the_latest_runs_and_changes() {
    require_pg().await;
    let schema = test_schema();
    let cfg = BackendConfig::postgres(pg_url(), Some(&schema.name));
    let dev = RunStore::open(&cfg, "shop", "dev").await.expect("open dev");
    let prod = RunStore::open(&cfg, "shop", "prod")
        .await
        .expect("open prod");
    for r in [
        finished("load", "dev", RunStatus::Succeeded, 30, "old"),
        finished("load", "dev", RunStatus::Succeeded, 20, "newest-success"),
        finished("load", "dev", RunStatus::Failed, 10, "failed-later"),
        finished("copy", "dev", RunStatus::Succeeded, 5, "copy-1"),
        finished("other", "dev", RunStatus::Succeeded, 5, "not-asked"),
    ] {
        dev.put(&r).await.expect("put");
    }
    prod.put(&finished("load", "prod", RunStatus::Succeeded, 1, "prod"))
        .await
        .expect("put prod");
    let summary = dev.summary().await.expect("summary");
    let ok = |t: &str| {
        summary
            .latest(t, |s| s == RunStatus::Succeeded)
            .and_then(|r| r.outputs[0].cursor.clone())
    };
    assert_eq!(ok("load").as_deref(), Some("newest-success"));
    assert_eq!(ok("copy").as_deref(), Some("copy-1"));
    assert_eq!(ok("never"), None);
    assert_eq!(
        summary
            .latest("load", |s| s != RunStatus::Skipped)
            .map(|r| r.status),
        Some(RunStatus::Failed)
    );
    // Changes: only succeeded runs count, the latest by end.
    let change = summary.last_change("load-out").expect("load-out changed");
    let newest = dev
        .list()
        .await
        .expect("list")
        .into_iter()
        .find(|r| r.outputs[0].cursor.as_deref() == Some("newest-success"))
        .expect("newest");
    assert_eq!(change.run, newest.id);
    assert_eq!(change.ended, newest.ended.expect("ended"));
    assert!(summary.last_change("never-out").is_none());
    // Details and checks are not part of the summary.
    let mut big = finished("detailed", "dev", RunStatus::Succeeded, 1, "d");
    big.details = serde_json::json!({"stdout": "x".repeat(10_000)});
    dev.put(&big).await.expect("put big");
    let summary = dev.summary().await.expect("summary");
    assert!(summary
        .latest("detailed", |_| true)
        .expect("detailed")
        .details
        .is_null());
    // The other environment is not mixed in.
    let prod_summary = prod.summary().await.expect("prod");
    assert!(prod_summary.latest("copy", |_| true).is_none());
    assert!(prod_summary.latest("load", |_| true).is_some());
    // The local backend answers the same.
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = RunStore::open(&BackendConfig::local(tmp.path()), "shop", "dev")
        .await
        .expect("open local");
    for r in dev.list().await.expect("list") {
        local.put(&r).await.expect("put local");
    }
    assert_eq!(local.summary().await.expect("local summary"), summary);
    local.seal("inv").await.expect("seal");
    assert_eq!(local.summary().await.expect("sealed summary"), summary);
}
