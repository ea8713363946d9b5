//! Helpers of the dk-state integration tests: child processes (re-executing the test binary)
//! and throw-away PostgreSQL schemas on the real local server (those of dk-test-support).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
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

/// Fails the test (never skips) when the server is unreachable, saying how to start it.
pub async fn require_pg() {
    drop(dk_test_support::connect(&dk_test_support::pg_url()).await);
}

/// A uniquely named schema (`dk_state_test_<pid>_<n>`), dropped (CASCADE) when dropped, even on
/// panic.
pub fn test_schema() -> dk_test_support::TestSchema {
    dk_test_support::TestSchema::named("dk_state_test")
}
