//! What the external runtimes (`dbt`, `python`) share: the `DK_STORE_*` environment of a
//! transform, finding the program to run, and running a child process with a timeout while
//! capturing its output.
//!
//! Store variables follow the DataKit Go tool's convention (reference: datakit-go.md §5.2): for
//! every store a transform reads or writes, `DK_STORE_DSN_<NAME>` and `DK_STORE_TYPE_<NAME>`,
//! where `NAME` is the store name upper-cased with `-` and `.` turned into `_`. The DSN is the
//! store's `connection_string` when it has one, else
//!
//! | type                    | DSN                                                        |
//! |-------------------------|------------------------------------------------------------|
//! | `postgres`/`postgresql` | `postgresql://user:password@host:port/database?sslmode=…`  |
//! | `mysql`/`mariadb`       | `mysql://user:password@host:port/database`                 |
//! | `duckdb`/`sqlite`       | the absolute path of the database file (`duckdb.connect(dsn)` works as is) |
//! | `file`                  | the absolute path of the store's directory                 |
//! | `s3`                    | `s3://bucket?endpoint=…&region=…`                          |
//! | `kafka`                 | `kafka://brokers`                                          |
//! | other                   | `<type>://?key=value&…` (connection keys, URL-encoded)     |
//!
//! Secret values (passwords) only ever go into these variables of the child process and into
//! files the runtime removes afterwards; they are never part of a returned value's `Debug`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use dk_env::{ResolvedProject, ResolvedStore};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::error::{Result, RuntimeError};

/// How much of a child's stdout and stderr is kept (the end of each stream), in bytes.
pub const OUTPUT_TAIL_BYTES: usize = 64 * 1024;

/// `DK_STORE_<KIND>_<NAME>`'s `NAME` for a store: upper case, `-` and `.` → `_`.
pub fn store_env_name(store: &str) -> String {
    store
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn conn(store: &ResolvedStore, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| store.connection.get(*k).and_then(text))
}

/// Everything but RFC 3986's unreserved characters is percent-encoded in DSN parts.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// A path from a store's connection, anchored at the project root when relative.
pub fn store_path(store: &ResolvedStore, project_root: &Path) -> Option<PathBuf> {
    let raw = conn(store, &["path"])?;
    if raw == ":memory:" {
        return Some(PathBuf::from(raw));
    }
    let p = Path::new(&raw);
    Some(if p.is_absolute() {
        p.to_path_buf()
    } else {
        project_root.join(p)
    })
}

/// The DSN of a store (see the module docs).
pub fn store_dsn(store: &ResolvedStore, project_root: &Path) -> String {
    if let Some(secret) = store
        .secrets
        .get("connection_string")
        .or_else(|| store.secrets.get("url"))
    {
        return secret.expose().to_string();
    }
    if let Some(s) = conn(store, &["connection_string", "url"]) {
        return s;
    }
    let ctype = store.connector_type.as_str();
    let userinfo = || {
        let user = conn(store, &["user", "username"]).unwrap_or_default();
        match store.secrets.get("password") {
            Some(p) => format!("{}:{}@", enc(&user), enc(p.expose())),
            None if user.is_empty() => String::new(),
            None => format!("{}@", enc(&user)),
        }
    };
    match ctype {
        "postgres" | "postgresql" | "mysql" | "mariadb" => {
            let scheme = if ctype.starts_with("postgres") {
                "postgresql"
            } else {
                "mysql"
            };
            let host = conn(store, &["host", "hostname"]).unwrap_or_else(|| "localhost".into());
            let port = conn(store, &["port"])
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            let db = conn(store, &["database", "dbname"]).unwrap_or_default();
            let mut dsn = format!("{scheme}://{}{host}{port}/{}", userinfo(), enc(&db));
            if let Some(mode) = conn(store, &["sslmode"]) {
                dsn.push_str(&format!("?sslmode={}", enc(&mode)));
            }
            dsn
        }
        "duckdb" | "sqlite" | "file" => store_path(store, project_root)
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        "s3" => {
            let bucket = conn(store, &["bucket"]).unwrap_or_default();
            let q: Vec<String> = ["endpoint", "region"]
                .iter()
                .filter_map(|k| conn(store, &[k]).map(|v| format!("{k}={}", enc(&v))))
                .collect();
            if q.is_empty() {
                format!("s3://{bucket}")
            } else {
                format!("s3://{bucket}?{}", q.join("&"))
            }
        }
        "kafka" => format!(
            "kafka://{}",
            conn(store, &["brokers"]).unwrap_or_else(|| {
                store
                    .connection
                    .get("brokers")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(text).collect::<Vec<_>>().join(","))
                    .unwrap_or_default()
            })
        ),
        other => {
            let q: Vec<String> = store
                .connection
                .iter()
                .filter_map(|(k, v)| text(v).map(|v| format!("{}={}", enc(k), enc(&v))))
                .collect();
            format!("{other}://?{}", q.join("&"))
        }
    }
}

/// Environment variables for a child process. `Debug` shows the names only (values may be
/// secrets).
#[derive(Clone, Default)]
pub struct ChildEnv {
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for ChildEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

impl ChildEnv {
    pub fn set(&mut self, k: impl Into<String>, v: impl Into<String>) {
        self.vars.insert(k.into(), v.into());
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.vars.get(k).map(String::as_str)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }
    /// Applies the variables to a command.
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
    }
    /// Applies the variables to a std command (`dk dbt` runs dbt attached to the terminal).
    pub fn apply_std(&self, cmd: &mut std::process::Command) {
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
    }
}

/// `DK_STORE_DSN_<NAME>` / `DK_STORE_TYPE_<NAME>` for `stores` (names in `env`), plus
/// `DK_ENV` (the environment's name). A store name not in `env` is an error naming it.
pub fn store_env<'a>(
    env: &ResolvedProject,
    stores: impl IntoIterator<Item = &'a str>,
    project_root: &Path,
) -> Result<ChildEnv> {
    let mut out = ChildEnv::default();
    out.set("DK_ENV", env.environment.clone());
    for name in stores {
        let store = env.stores.get(name).ok_or_else(|| {
            RuntimeError::Config(format!(
                "store {name} is not defined (environment {}): add a Store manifest named {name} or fix the DataSet's spec.store",
                env.environment
            ))
        })?;
        let n = store_env_name(name);
        out.set(format!("DK_STORE_DSN_{n}"), store_dsn(store, project_root));
        out.set(format!("DK_STORE_TYPE_{n}"), store.connector_type.clone());
    }
    Ok(out)
}

/// Finds an external program: the path in `env_var` when set (it must exist), else `name` on
/// `PATH`. `install` says how to get it (part of the error).
pub fn find_program(env_var: &str, name: &str, install: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(RuntimeError::Config(format!(
                "{env_var}={} does not exist: point {env_var} at the {name} executable, or unset it to use {name} from PATH. {install}",
                p.display()
            )))
        };
    }
    on_path(name).ok_or_else(|| {
        RuntimeError::Config(format!(
            "{name} was not found on PATH (nor set with {env_var}). {install}"
        ))
    })
}

/// `name` on `PATH`, when it is there.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// How a child process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Exit status code.
    Code(i32),
    /// Killed by a signal.
    Signal,
    /// Killed by `dk` after the timeout.
    TimedOut,
}

/// A finished child process.
#[derive(Debug, Clone)]
pub struct Captured {
    pub exit: Exit,
    /// The end of stdout ([`OUTPUT_TAIL_BYTES`]), lossy UTF-8.
    pub stdout: String,
    /// The end of stderr.
    pub stderr: String,
    pub elapsed: Duration,
}

impl Captured {
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }
}

/// The end of a stream, shared with the task filling it (so a stream that stays open — a
/// grandchild holding the pipe — can be abandoned without losing what was read).
type TailBuf = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

async fn pump<R: tokio::io::AsyncRead + Unpin>(mut r: R, keep: TailBuf) {
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Ok(mut k) = keep.lock() {
                    k.extend_from_slice(&buf[..n]);
                    if k.len() > 2 * OUTPUT_TAIL_BYTES {
                        let cut = k.len() - OUTPUT_TAIL_BYTES;
                        k.drain(..cut);
                    }
                }
            }
        }
    }
}

fn tail_text(keep: &TailBuf) -> String {
    let k = keep.lock().map(|k| k.clone()).unwrap_or_default();
    let from = k.len().saturating_sub(OUTPUT_TAIL_BYTES);
    String::from_utf8_lossy(&k[from..]).into_owned()
}

/// How long output is still read after the child ended (its own children may hold the pipes).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs `cmd` (stdin closed, stdout and stderr captured) until it ends or `timeout` passes, when
/// it is killed. `what` names the program in errors (`dbt`, `python3`).
pub async fn run_captured(
    mut cmd: tokio::process::Command,
    what: &str,
    timeout: Option<Duration>,
) -> Result<Captured> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| RuntimeError::Config(format!("cannot start {what}: {e}")))?;
    let out_buf = TailBuf::default();
    let err_buf = TailBuf::default();
    let mut pumps = Vec::new();
    if let Some(s) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(s, out_buf.clone())));
    }
    if let Some(s) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(s, err_buf.clone())));
    }
    let waited = match timeout {
        Some(t) => tokio::time::timeout(t, child.wait()).await.ok(),
        None => Some(child.wait().await),
    };
    let exit = match waited {
        Some(Ok(status)) => match status.code() {
            Some(c) => Exit::Code(c),
            None => Exit::Signal,
        },
        Some(Err(e)) => {
            return Err(RuntimeError::Internal(format!(
                "waiting for {what} failed: {e}"
            )))
        }
        None => {
            let _ = child.kill().await;
            Exit::TimedOut
        }
    };
    let aborts: Vec<_> = pumps.iter().map(|p| p.abort_handle()).collect();
    let _ = tokio::time::timeout(DRAIN_GRACE, futures_util::future::join_all(pumps)).await;
    for a in aborts {
        a.abort();
    }
    Ok(Captured {
        exit,
        stdout: tail_text(&out_buf),
        stderr: tail_text(&err_buf),
        elapsed: start.elapsed(),
    })
}

/// Parses a transform's `timeout` (`30m`, `1h 30m`).
pub fn parse_timeout(transform: &str, s: Option<&str>) -> Result<Option<Duration>> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => humantime::parse_duration(s)
            .map(Some)
            .map_err(|e| RuntimeError::Transform {
                transform: transform.to_string(),
                message: format!(
                    "spec.timeout {s:?} is not a duration ({e}); write e.g. 30s, 10m or 1h"
                ),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(ctype: &str, conn: Value) -> ResolvedStore {
        ResolvedStore {
            name: "my-store.x".into(),
            connector: None,
            connector_type: ctype.into(),
            connection: serde_json::from_value(conn).unwrap(),
            secrets: Default::default(),
            bound: false,
            file: "s.yaml".into(),
        }
    }

    #[test]
    fn env_names_and_dsns() {
        assert_eq!(store_env_name("my-store.x"), "MY_STORE_X");
        let root = Path::new("/proj");
        let pg = store(
            "postgres",
            serde_json::json!({"host": "db", "port": 5433, "database": "shop", "user": "a b", "sslmode": "disable"}),
        );
        assert_eq!(
            store_dsn(&pg, root),
            "postgresql://a%20b@db:5433/shop?sslmode=disable"
        );
        let duck = store("duckdb", serde_json::json!({"path": ".dk/w.duckdb"}));
        assert_eq!(store_dsn(&duck, root), "/proj/.dk/w.duckdb");
        let s3 = store("s3", serde_json::json!({"bucket": "b", "region": "eu-1"}));
        assert_eq!(store_dsn(&s3, root), "s3://b?region=eu-1");
        let cs = store(
            "postgres",
            serde_json::json!({"connection_string": "postgresql://x@y/z"}),
        );
        assert_eq!(store_dsn(&cs, root), "postgresql://x@y/z");
        let other = store("nats", serde_json::json!({"url2": "n://h"}));
        assert_eq!(store_dsn(&other, root), "nats://?url2=n%3A%2F%2Fh");
    }

    #[test]
    fn timeouts() {
        assert_eq!(
            parse_timeout("t", Some("10m")).unwrap(),
            Some(Duration::from_secs(600))
        );
        assert_eq!(parse_timeout("t", None).unwrap(), None);
        let e = parse_timeout("t", Some("soon")).unwrap_err().to_string();
        assert!(e.contains("transform t: spec.timeout \"soon\""), "{e}");
    }

    #[tokio::test]
    async fn captures_output_exit_codes_and_timeouts() {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let c = run_captured(cmd, "sh", None).await.unwrap();
        assert_eq!(c.exit, Exit::Code(3));
        assert_eq!(c.stdout, "out\n");
        assert_eq!(c.stderr, "err\n");
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "sleep 5"]);
        let c = run_captured(cmd, "sh", Some(Duration::from_millis(200)))
            .await
            .unwrap();
        assert_eq!(c.exit, Exit::TimedOut);
        assert!(c.elapsed < Duration::from_secs(4));
        let e = run_captured(
            tokio::process::Command::new("/nonexistent/dk-test"),
            "x",
            None,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("cannot start x"), "{e}");
    }
}
