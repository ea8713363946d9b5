//! Run records on the PostgreSQL backend against the real local server (`DK_TEST_PG_URL`): the
//! latest successful record of each transform in one query, per environment.

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
async fn last_of_reads_the_latest_success_of_each_transform() {
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
    let wanted = ["load".to_string(), "copy".to_string(), "never".to_string()];
    let last = dev
        .last_of(&wanted, &[RunStatus::Succeeded])
        .await
        .expect("last_of");
    let cursor = |t: &str| {
        last.get(t)
            .and_then(|r| r.outputs[0].cursor.clone())
            .unwrap_or_default()
    };
    assert_eq!(last.len(), 2, "{last:?}");
    assert_eq!(cursor("load"), "newest-success");
    assert_eq!(cursor("copy"), "copy-1");
    // The local backend answers the same.
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = RunStore::open(&BackendConfig::local(tmp.path()), "shop", "dev")
        .await
        .expect("open local");
    for r in dev.list().await.expect("list") {
        local.put(&r).await.expect("put local");
    }
    let local_last = local
        .last_of(&wanted, &[RunStatus::Succeeded])
        .await
        .expect("last_of local");
    assert_eq!(
        local_last.get("load").map(|r| &r.id),
        last.get("load").map(|r| &r.id)
    );
    assert_eq!(local_last.len(), 2);
}
