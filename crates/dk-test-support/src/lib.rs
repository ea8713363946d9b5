//! The test fixtures for the real services: PostgreSQL URL, per-test databases/schemas, the dbt
//! venv. Used only by the integration tests (a dev-dependency), never by dk itself.
//!
//! A test never skips when a service is missing: it fails naming the service and how to start it
//! (`bash scripts/services.sh` for PostgreSQL, `bash scripts/dbt-venv.sh` for dbt).
//!
//! - PostgreSQL: `DK_TEST_PG_URL`, a libpq connection string (default [`DEFAULT_PG_URL`]).
//! - dbt: `DK_DBT`, else [`VENV_DBT`].

use std::fmt::Display;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The test server when `DK_TEST_PG_URL` is not set: the local PostgreSQL of
/// `scripts/services.sh` (trust auth).
pub const DEFAULT_PG_URL: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

/// Where `scripts/dbt-venv.sh` installs dbt (dbt-core, dbt-duckdb, dbt-postgres).
pub const VENV_DBT: &str = "/var/tmp/dk-dbt-venv/bin/dbt";

/// libpq connection string of the test server: `DK_TEST_PG_URL`, else [`DEFAULT_PG_URL`].
pub fn pg_url() -> String {
    std::env::var("DK_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string())
}

/// The database of [`pg_url`] (`test` unless it names another), where per-test databases are
/// created and dropped.
pub fn pg_db() -> String {
    pg_url()
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("dbname=").map(str::to_string))
        .unwrap_or_else(|| "test".to_string())
}

/// [`pg_url`] with its `dbname=` replaced by `db`.
pub fn pg_conninfo(db: &str) -> String {
    let url = pg_url();
    let dbname = format!("dbname={db}");
    url.split_whitespace()
        .filter(|kv| !kv.starts_with("dbname="))
        .chain(std::iter::once(dbname.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Fails the test for an unreachable PostgreSQL, naming it and saying how to start it.
pub fn pg_unreachable(e: impl Display) -> ! {
    panic!(
        "PostgreSQL at {} is unreachable ({e}); start it with `bash scripts/services.sh` (or \
         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) or set \
         DK_TEST_PG_URL",
        pg_url()
    )
}

/// A client on the libpq connection string `conninfo` (its connection driven by a spawned task of
/// the current runtime); fails the test when the server is unreachable.
pub async fn connect(conninfo: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = conninfo
        .parse()
        .unwrap_or_else(|e| panic!("DK_TEST_PG_URL is not a valid connection string: {e}"));
    config.connect_timeout(Duration::from_secs(10));
    match config.connect(tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
        }
        Err(e) => pg_unreachable(e),
    }
}

/// Runs `sql` (simple query protocol, several statements allowed) on database `db` of the test
/// server and returns the rows as text. Blocking: call it outside a runtime.
pub fn pg(db: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    runtime().block_on(async {
        let client = connect(&pg_conninfo(db)).await;
        let msgs = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Best-effort cleanup `sql` on the admin database, from a thread and runtime of its own (a guard
/// may drop inside or outside a runtime, and while a failed test unwinds).
fn cleanup(sql: String) {
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let Ok(config) = pg_conninfo(&pg_db()).parse::<tokio_postgres::Config>() else {
                return;
            };
            let Ok((client, conn)) = config.connect(tokio_postgres::NoTls).await else {
                return;
            };
            let task = tokio::spawn(async move {
                let _ = conn.await;
            });
            let _ = client.batch_execute(&sql).await;
            drop(client);
            let _ = task.await;
        });
    })
    .join();
}

static N: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test: `<prefix>_<pid>_<n>`.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A database of its own (`dk_<tag>_<pid>_<n>`), created anew and dropped (`WITH (FORCE)`) on
/// drop, even when the test fails.
pub struct TestDb(pub String);

impl TestDb {
    /// Creates the database; blocking, like [`pg`].
    pub fn new(tag: &str) -> TestDb {
        let name = unique_name(&format!("dk_{tag}"));
        pg(&pg_db(), &format!("DROP DATABASE IF EXISTS {name}"));
        pg(&pg_db(), &format!("CREATE DATABASE {name}"));
        TestDb(name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        cleanup(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
    }
}

/// A uniquely named schema (`<prefix>_<pid>_<n>`) in the test database, dropped (CASCADE) on
/// drop, even when the test fails.
pub struct TestSchema {
    pub name: String,
}

impl TestSchema {
    /// Only the name: what the test runs creates the schema.
    pub fn named(prefix: &str) -> TestSchema {
        TestSchema {
            name: unique_name(prefix),
        }
    }

    /// Creates the schema anew; blocking, like [`pg`].
    pub fn create(prefix: &str) -> TestSchema {
        let s = TestSchema::named(prefix);
        pg(
            &pg_db(),
            &format!(
                "DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}",
                s.name
            ),
        );
        s
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        cleanup(format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
    }
}

/// The dbt executable: `DK_DBT`, else [`VENV_DBT`]; fails the test when it is missing, saying how
/// to install it.
pub fn dbt_path() -> PathBuf {
    let p = std::env::var_os("DK_DBT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(VENV_DBT));
    assert!(
        p.is_file(),
        "dbt is not installed at {} (DK_DBT or {VENV_DBT}): run `bash scripts/dbt-venv.sh` and \
         export DK_DBT=<the path it prints>",
        p.display()
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_replaces_the_database() {
        let info = pg_conninfo("other");
        assert!(info.ends_with(" dbname=other"), "{info}");
        assert_eq!(info.matches("dbname=").count(), 1, "{info}");
    }

    #[test]
    fn names_are_unique() {
        assert_ne!(unique_name("dk_t"), unique_name("dk_t"));
    }
}
