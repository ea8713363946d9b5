//! Shared helpers of the CLI tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// `../shared/fixtures` beside the repository (CI has it there too).
pub fn fixtures() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    assert!(
        p.is_dir(),
        "fixtures not found at {} (the shared/ directory must sit beside the repository)",
        p.display()
    );
    p.canonicalize().expect("canonical fixtures path")
}

pub fn fixture(rel: &str) -> PathBuf {
    fixtures().join(rel)
}

pub fn dk() -> Command {
    let mut c = Command::cargo_bin("dk").expect("dk binary");
    c.env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("DK_PROJECT_DIR");
    c
}

/// Runs dk and returns (exit code, stdout, stderr) with `root` replaced by `[ROOT]`.
pub fn run(args: &[&str], cwd: Option<&Path>, root: Option<&Path>) -> (i32, String, String) {
    let mut c = dk();
    c.args(args);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    let out = c.output().expect("run dk");
    let mut so = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut se = String::from_utf8_lossy(&out.stderr).into_owned();
    if let Some(r) = root {
        let r = r.display().to_string();
        so = so.replace(&r, "[ROOT]");
        se = se.replace(&r, "[ROOT]");
    }
    (out.status.code().unwrap_or(-1), so, se)
}

/// Codes in a `dk lint -o json` document, with their severities, sorted.
pub fn codes(json: &str) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(json).expect("lint json");
    let mut out: Vec<(String, String)> = v["diagnostics"]
        .as_array()
        .expect("diagnostics array")
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or("").to_string(),
                d["severity"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}
