//! Run records on the PostgreSQL backend against the real local server (`DK_TEST_PG_URL`): the
//! run summary (latest record of each transform per status, latest change of each dataset) in
//! two queries, per environment, and the same answer from the local backend; bounded listing and
//! pruning on both backends.

mod common;

use chrono::{Duration, Utc};
use common::{require_pg, test_schema};
use dk_state::{new_id, BackendConfig, RunOutput, RunQuery, RunRecord, RunStatus, RunStore};
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
        .list(&RunQuery::default())
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
    for r in dev.list(&RunQuery::default()).await.expect("list") {
        local.put(&r).await.expect("put local");
    }
    assert_eq!(local.summary().await.expect("local summary"), summary);
    local.seal("inv").await.expect("seal");
    assert_eq!(local.summary().await.expect("sealed summary"), summary);
}

/// Like [`finished`], in its own invocation (its own journal on the local backend).
fn alone(transform: &str, status: RunStatus, ago: i64, cursor: &str) -> RunRecord {
    let mut r = finished(transform, "dev", status, ago, cursor);
    r.invocation = format!("inv-{cursor}");
    // Ids begin with the start time.
    r.id = new_id(r.started);
    r
}

fn cursors(records: &[RunRecord]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r.outputs[0].cursor.as_deref().unwrap_or(""))
        .collect()
}

#[tokio::test]
async fn listing_reads_the_newest_and_pruning_keeps_what_runs_need() {
    require_pg().await;
    let schema = test_schema();
    let tmp = tempfile::tempdir().expect("tempdir");
    let pg = RunStore::open(
        &BackendConfig::postgres(pg_url(), Some(&schema.name)),
        "shop",
        "dev",
    )
    .await
    .expect("open pg");
    let local = RunStore::open(&BackendConfig::local(tmp.path()), "shop", "dev")
        .await
        .expect("open local");
    let records = [
        alone("copy", RunStatus::Succeeded, 40, "copy-old"),
        alone("load", RunStatus::Succeeded, 30, "old"),
        alone("load", RunStatus::Succeeded, 20, "newest-success"),
        alone("load", RunStatus::Failed, 10, "failed-later"),
        alone("copy", RunStatus::Succeeded, 5, "copy-new"),
    ];
    for r in &records {
        pg.put(r).await.expect("put pg");
        local.put(r).await.expect("put local");
        local.seal(&r.invocation).await.expect("seal");
    }
    // Each archived journal was last written when its run ended.
    for r in &records {
        let path = tmp
            .path()
            .join(format!(".dk/state/dev/runs/archive/{}.jsonl", r.invocation));
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("journal");
        f.set_modified(r.ended.expect("ended").into())
            .expect("set mtime");
    }
    let before = pg.summary().await.expect("summary");
    assert_eq!(local.summary().await.expect("local summary"), before);
    for store in [&pg, &local] {
        let newest = RunQuery {
            transform: None,
            limit: Some(2),
        };
        let got = store.list(&newest).await.expect("newest two");
        assert_eq!(cursors(&got), ["failed-later", "copy-new"]);
        let load = RunQuery {
            transform: Some("load".into()),
            limit: Some(2),
        };
        let got = store.list(&load).await.expect("newest loads");
        assert_eq!(cursors(&got), ["newest-success", "failed-later"]);
        assert_eq!(
            store.list(&RunQuery::default()).await.expect("all").len(),
            5
        );
        // By id or unique prefix; an ambiguous prefix is refused.
        let id = &records[1].id;
        let got = store.get(id).await.expect("get").expect("found");
        assert_eq!(got.id, *id);
        let got = store.get(&id[..id.len() - 1]).await.expect("prefix");
        assert_eq!(got.map(|r| r.id), Some(id.clone()));
        assert!(store.get("2").await.is_err(), "ambiguous prefix");
        assert!(store.get("1999").await.expect("none").is_none());
    }
    let cut = Utc::now() - Duration::seconds(15);
    // PostgreSQL keeps the old rows the summary reads: the latest success of `load`.
    let dry = pg.prune(cut, true).await.expect("dry run");
    assert_eq!((dry.removed, dry.kept), (2, 1));
    assert_eq!(pg.list(&RunQuery::default()).await.expect("all").len(), 5);
    let done = pg.prune(cut, false).await.expect("prune");
    assert_eq!(done, dry);
    let left = pg.list(&RunQuery::default()).await.expect("left");
    assert_eq!(
        cursors(&left),
        ["newest-success", "failed-later", "copy-new"]
    );
    assert_eq!(pg.summary().await.expect("after"), before);
    // The local backend deletes the old journals and keeps their summary in pruned.json.
    let dry = local.prune(cut, true).await.expect("local dry run");
    assert_eq!((dry.removed, dry.kept), (3, 0));
    assert_eq!(
        local.list(&RunQuery::default()).await.expect("all").len(),
        5
    );
    local.prune(cut, false).await.expect("local prune");
    let left = local.list(&RunQuery::default()).await.expect("left");
    assert_eq!(cursors(&left), ["failed-later", "copy-new"]);
    assert_eq!(local.summary().await.expect("after"), before);
    let runs = tmp.path().join(".dk/state/dev/runs");
    std::fs::remove_file(runs.join("summary.json")).expect("drop the cache");
    assert_eq!(local.summary().await.expect("rebuilt"), before);
    // Pruning again finds nothing more.
    assert_eq!(local.prune(cut, false).await.expect("again").removed, 0);
}
