//! Helpers of the dk-state integration tests: child processes (re-executing the test binary)
//! and throw-away PostgreSQL schemas on the real local server.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Environment variable that turns the `child_helper` test of a test binary into a child role.
pub const CHILD_ROLE: &str = "DK_STATE_TEST_CHILD";

/// A child process running this test binary's `child_helper` test in a role; killed with
/// SIGKILL when dropped.
pub struct ChildProc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl ChildProc {
    /// Starts `child_helper` of the current test binary with `role` and extra env vars.
    pub fn spawn(role: &str, envs: &[(&str, &str)]) -> ChildProc {
        let exe = std::env::current_exe().expect("current test binary");
        let mut cmd = Command::new(exe);
        cmd.args(["child_helper", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ROLE, role)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn child test process");
        let stdout = child.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildProc { child, lines: rx }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most 60 s) for a line containing `prefix` (libtest may print `test name ... `
    /// before the first output line); returns the rest of that line.
    pub fn wait_for(&self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(at) = line.find(prefix) {
                        return line[at + prefix.len()..].trim().to_string();
                    }
                }
                Err(e) => panic!("child process did not print {prefix:?}: {e}"),
            }
        }
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The role this process was started in, if it is a child.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE).ok()
}

/// Sleeps "forever" (the parent kills us).
pub fn park() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Connection string of the test server.
pub fn pg_url() -> String {
    std::env::var("DK_TEST_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_string())
}

/// Fails the test (never skips) when the server is unreachable, saying how to start it.
pub async fn require_pg() {
    let url = pg_url();
    let config: tokio_postgres::Config = url
        .parse()
        .expect("DK_TEST_PG_URL is not a valid connection string");
    let mut config = config;
    config.connect_timeout(Duration::from_secs(5));
    match config.connect(tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            drop(client);
            let _ = conn.await;
        }
        Err(e) => panic!(
            "PostgreSQL is not reachable at {url:?}: {e}\n\
             The dk-state integration tests need the local PostgreSQL service (127.0.0.1:5432, trust auth, database test).\n\
             Start it with `bash scripts/services.sh` or \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
             or point DK_TEST_PG_URL at a server."
        ),
    }
}

static SCHEMA_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A uniquely named schema, dropped (CASCADE) when this guard is dropped, even on panic.
pub struct TestSchema {
    pub name: String,
}

impl TestSchema {
    pub fn new() -> TestSchema {
        let n = SCHEMA_COUNTER.fetch_add(1, Ordering::SeqCst);
        TestSchema {
            name: format!("dk_state_test_{}_{n}", std::process::id()),
        }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop from a fresh thread and runtime: this may run inside (or outside) a runtime.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(config) = pg_url().parse::<tokio_postgres::Config>() else {
                    return;
                };
                let Ok((client, conn)) = config.connect(tokio_postgres::NoTls).await else {
                    return;
                };
                let task = tokio::spawn(async move {
                    let _ = conn.await;
                });
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await;
                drop(client);
                let _ = task.await;
            });
        });
        let _ = handle.join();
    }
}
