//! Test projects bound to the real PostgreSQL: a database per test, the quickstart project with a
//! `prod` environment on it, and either state backend.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

pub use dk_test_support::{pg, pg_conninfo, TestDb};

use crate::common::*;

pub const SECRET: &str = "k3y-0f-the-pr0d-db-not-to-leak";

/// Where the test project keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    Local,
    /// The `dk_state` schema of the test's own database.
    Postgres,
}

/// The quickstart project with a `prod` environment bound to `db`, state kept as `state` says.
pub fn project(db: &TestDb, state: StateKind) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = tmp.path().join("shop");
    let (code, out, err) = run(
        &["init", p.to_str().expect("utf-8 path"), "--name", "shop"],
        None,
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    fs::write(
        p.join("connector/postgres.yaml"),
        "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Connector\nmetadata: {name: postgres}\nspec: {type: postgres, capabilities: [source, destination]}\n",
    )
    .expect("write connector");
    fs::write(
        p.join("environments/prod.yaml"),
        format!(
            "apiVersion: datakit.infoblox.dev/v1alpha1\nkind: Environment\nmetadata: {{name: prod}}\nspec:\n  tier: prod\n  order: 3\n  bindings:\n    warehouse:\n      connector: postgres\n      connection: {{host: 127.0.0.1, port: 5432, database: {}, user: postgres, sslmode: disable}}\n      secrets: {{password: \"${{SHOP_PG_PASSWORD}}\"}}\n",
            db.0
        ),
    )
    .expect("write environment");
    if state == StateKind::Postgres {
        let project_yaml = p.join("project.yaml");
        let text = fs::read_to_string(&project_yaml).expect("project.yaml");
        let replaced = text.replace(
            "type: local",
            "type: postgres\n    url: \"${DK_TEST_STATE_URL}\"\n    schema: dk_state",
        );
        assert_ne!(text, replaced, "project.yaml has no `type: local`:\n{text}");
        fs::write(&project_yaml, replaced).expect("write project.yaml");
    }
    (tmp, p)
}

/// A `dk` command in project `p` with the secret and the state URL of `db` set.
pub fn dk_cmd(p: &Path, db: &TestDb) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("dk"));
    c.current_dir(p)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("DK_PROJECT_DIR")
        .env_remove("DK_FAILPOINT_APPLY_DELAY_MS")
        .env_remove("DK_FAILPOINT_APPLY_ABORT_AFTER")
        .env("SHOP_PG_PASSWORD", SECRET)
        .env("DK_TEST_STATE_URL", pg_conninfo(&db.0));
    c
}

/// Runs dk in `p` and returns (exit code, stdout, stderr).
pub fn dk_in(p: &Path, db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let out = dk_cmd(p, db).args(args).output().expect("run dk");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Adds `n` DataSets `t00..` (tables `crash.tNN`) to the project.
pub fn add_tables(p: &Path, n: usize) {
    for i in 0..n {
        let (code, out, err) = run(
            &[
                "dataset",
                "create",
                &format!("t{i:02}"),
                "--store",
                "warehouse",
                "--table",
                &format!("crash.t{i:02}"),
                "--column",
                "id:bigint",
                "--column",
                "v:string",
            ],
            Some(p),
            None,
        );
        assert_eq!(code, 0, "{out}{err}");
    }
}

/// The columns of every non-system table of `db`, for comparing two databases.
pub fn catalog(db: &TestDb) -> Vec<Vec<Option<String>>> {
    pg(
        &db.0,
        "SELECT c.table_schema, c.table_name, c.column_name, c.data_type, c.is_nullable,
                col_description(format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position::int)
           FROM information_schema.columns c
          WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema', 'dk_state')
          ORDER BY 1, 2, c.ordinal_position",
    )
}

/// A loopback relay to the test server that declines TLS (answers `N` to SSLRequest), as a server
/// without TLS does. Returns its port; it serves until the test process ends.
pub fn plain_only_front() -> u16 {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let port = listener.local_addr().expect("relay address").port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            std::thread::spawn(move || {
                let mut head = [0u8; 8];
                if client.read_exact(&mut head).is_err() {
                    return;
                }
                let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", 5432)) else {
                    return;
                };
                if code == 80_877_103 || code == 80_877_104 {
                    // SSLRequest / GSSENCRequest: "not supported here".
                    if client.write_all(b"N").is_err() {
                        return;
                    }
                } else if server.write_all(&head).is_err() {
                    return;
                }
                let (mut c2, mut s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => return,
                };
                let up = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                    let _ = s2.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Write);
                let _ = up.join();
            });
        }
    });
    port
}

/// Rewrites the prod binding's connection (`sslmode: disable`, port 5432) of project `p`.
pub fn set_prod_connection(p: &Path, port: u16, sslmode: &str) {
    let f = p.join("environments/prod.yaml");
    let text = fs::read_to_string(&f).expect("prod.yaml");
    let new = text
        .replace("port: 5432", &format!("port: {port}"))
        .replace("sslmode: disable", &format!("sslmode: {sslmode}"));
    assert_ne!(text, new);
    fs::write(&f, new).expect("write prod.yaml");
}
