//! PostgreSQL helpers of the CLI tests: a database per test on the real server, and SQL to it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

static N: AtomicUsize = AtomicUsize::new(0);

/// libpq key=value connection info for `db` on the test server (`DK_TEST_PG_URL`, default
/// `host=127.0.0.1 port=5432 user=postgres dbname=test`).
pub fn pg_conninfo(db: &str) -> String {
    let base = std::env::var("DK_TEST_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    base.split_whitespace()
        .filter(|kv| !kv.starts_with("dbname="))
        .chain(std::iter::once(format!("dbname={db}").as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs SQL on the test PostgreSQL and returns the rows as text; panics naming the service when
/// it is unreachable.
pub fn pg(db: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (client, conn) = match tokio_postgres::connect(&pg_conninfo(db), tokio_postgres::NoTls).await {
            Ok(c) => c,
            Err(e) => panic!(
                "PostgreSQL at 127.0.0.1:5432 is unreachable ({e}); start it with `bash scripts/services.sh` or set DK_TEST_PG_URL"
            ),
        };
        tokio::spawn(conn);
        let msgs = client.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}: {:?}", e.as_db_error().map(|d| d.message())));
        msgs.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    })
}

/// A database of its own (`dk_<tag>_<pid>_<n>`), dropped on drop.
pub struct TestDb(pub String);

impl TestDb {
    pub fn new(tag: &str) -> TestDb {
        let name = format!(
            "dk_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        pg("test", &format!("DROP DATABASE IF EXISTS {name}"));
        pg("test", &format!("CREATE DATABASE {name}"));
        TestDb(name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        pg(
            "test",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0),
        );
    }
}
