//! Test records: the outcome of every `dk test` (environment, manifests digest, per-check and
//! per-unit-test results, pass/fail), kept by the state backend next to the states so that
//! `dk apply` can honour an environment's `requireTests` ("a passing `dk test` on the same
//! manifests digest"): [`Backend::passing_test`].
//!
//! Local: one JSON file per record under `.dk/state/<env>/tests/` (`<finished>-<id>.json`,
//! written atomically: temp file + fsync + rename + directory fsync). PostgreSQL: rows of
//! `<schema>.test_results` (created on first write).

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Result, StateError};

/// One recorded `dk test`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestRecord {
    /// Unique id (uuid v4).
    pub id: String,
    /// Always `test` (records of other kinds may share the store later).
    pub kind: String,
    pub project: String,
    pub environment: String,
    /// The digest of the manifests tested (the same digest plans record).
    pub manifests_digest: String,
    /// RFC 3339.
    pub started: String,
    pub finished: String,
    /// No error-severity check failed and no unit test failed.
    pub passed: bool,
    /// Whether dataset checks ran (a `--unit`-only run does not prove the data).
    pub checks_ran: bool,
    /// DataSets whose checks were skipped because their tables were never created (new
    /// DataSets): `requireTests` accepts the record for a plan only when that plan creates them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    /// Counts: `{"pass": n, "fail": n, "warn": n, "error": n}`.
    pub summary: serde_json::Value,
    /// The full results, as `dk test -o json` prints them.
    pub results: serde_json::Value,
}

impl Backend {
    /// Records a `dk test` outcome durably.
    pub async fn record_test(&self, record: &TestRecord) -> Result<()> {
        match self {
            Backend::Local(b) => {
                let dir = b.dir().join("tests");
                let name = format!(
                    "{}-{}.json",
                    record.finished.replace([':', '.'], "-"),
                    record.id
                );
                let bytes = serde_json::to_vec_pretty(record)
                    .map_err(|e| StateError::Internal(format!("serialize test record: {e}")))?;
                tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| StateError::io("create directory", &dir, e))?;
                    crate::local::atomic_write(&dir, &name, &bytes)
                })
                .await
                .map_err(|e| StateError::Internal(format!("state task failed: {e}")))?
            }
            Backend::Postgres(b) => {
                let (client, schema, err) = b.record_parts();
                let client = client.lock().await;
                let json = serde_json::to_string(record)
                    .map_err(|e| StateError::Internal(format!("serialize test record: {e}")))?;
                client
                    .batch_execute(&ddl(schema))
                    .await
                    .map_err(err("create the test_results table"))?;
                client
                    .execute(
                        &format!(
                            "INSERT INTO \"{schema}\".test_results (project, environment, id, manifests_digest, passed, checks_ran, record) VALUES ($1, $2, $3, $4, $5, $6, ($7::text)::jsonb)"
                        ),
                        &[
                            &record.project,
                            &record.environment,
                            &record.id,
                            &record.manifests_digest,
                            &record.passed,
                            &record.checks_ran,
                            &json,
                        ],
                    )
                    .await
                    .map(|_| ())
                    .map_err(err("record the test result"))
            }
        }
    }

    /// Every recorded `dk test` of this environment, newest first.
    pub async fn test_records(&self) -> Result<Vec<TestRecord>> {
        let mut out: Vec<TestRecord> = match self {
            Backend::Local(b) => {
                let dir = b.dir().join("tests");
                tokio::task::spawn_blocking(move || -> Result<Vec<TestRecord>> {
                    let entries = match std::fs::read_dir(&dir) {
                        Ok(e) => e,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                        Err(e) => return Err(StateError::io("read directory", &dir, e)),
                    };
                    let mut out = Vec::new();
                    for e in entries.flatten() {
                        let p = e.path();
                        if p.extension().and_then(|x| x.to_str()) != Some("json") {
                            continue;
                        }
                        let text = std::fs::read(&p).map_err(|e| StateError::io("read", &p, e))?;
                        let rec = serde_json::from_slice(&text).map_err(|source| {
                            StateError::Corrupt {
                                location: p.display().to_string(),
                                source,
                            }
                        })?;
                        out.push(rec);
                    }
                    Ok(out)
                })
                .await
                .map_err(|e| StateError::Internal(format!("state task failed: {e}")))??
            }
            Backend::Postgres(b) => {
                let (client, schema, err) = b.record_parts();
                let client = client.lock().await;
                client
                    .batch_execute(&ddl(schema))
                    .await
                    .map_err(err("create the test_results table"))?;
                let rows = client
                    .query(
                        &format!(
                            "SELECT record::text FROM \"{schema}\".test_results WHERE project = $1 AND environment = $2"
                        ),
                        &[&self.project(), &self.environment()],
                    )
                    .await
                    .map_err(err("read the test results"))?;
                rows.iter()
                    .map(|r| {
                        let v: String = r.get(0);
                        serde_json::from_str(&v).map_err(|source| StateError::Corrupt {
                            location: format!("{schema}.test_results"),
                            source,
                        })
                    })
                    .collect::<Result<_>>()?
            }
        };
        out.sort_by(|a, b| b.finished.cmp(&a.finished).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// The newest passing `dk test` that ran the dataset checks on these manifests, if any.
    pub async fn passing_test(&self, manifests_digest: &str) -> Result<Option<TestRecord>> {
        Ok(self
            .test_records()
            .await?
            .into_iter()
            .find(|r| r.passed && r.checks_ran && r.manifests_digest == manifests_digest))
    }
}

fn ddl(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS \"{schema}\".test_results (
             project          text        NOT NULL,
             environment      text        NOT NULL,
             id               text        NOT NULL PRIMARY KEY,
             manifests_digest text        NOT NULL,
             passed           boolean     NOT NULL,
             checks_ran       boolean     NOT NULL,
             recorded         timestamptz NOT NULL DEFAULT now(),
             record           jsonb       NOT NULL
         )"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackendConfig;

    fn record(id: &str, finished: &str, digest: &str, passed: bool) -> TestRecord {
        TestRecord {
            id: id.into(),
            kind: "test".into(),
            project: "shop".into(),
            environment: "dev".into(),
            manifests_digest: digest.into(),
            started: finished.into(),
            finished: finished.into(),
            passed,
            checks_ran: true,
            pending: Vec::new(),
            summary: serde_json::json!({"pass": 1}),
            results: serde_json::json!([]),
        }
    }

    #[tokio::test]
    async fn local_records_round_trip_newest_first() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = Backend::open(&BackendConfig::local(tmp.path()), "shop", "dev")
            .await
            .expect("open");
        assert!(b.test_records().await.expect("empty").is_empty());
        b.record_test(&record("a", "2026-01-01T00:00:00Z", "d1", true))
            .await
            .expect("write");
        b.record_test(&record("b", "2026-01-02T00:00:00Z", "d1", false))
            .await
            .expect("write");
        let all = b.test_records().await.expect("read");
        assert_eq!(
            all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(
            b.passing_test("d1").await.expect("q").map(|r| r.id),
            Some("a".to_string())
        );
        assert_eq!(b.passing_test("d2").await.expect("q"), None);
        let files: Vec<_> = std::fs::read_dir(tmp.path().join(".dk/state/dev/tests"))
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(files.iter().all(|f| f.ends_with(".json")), "{files:?}");
    }
}
