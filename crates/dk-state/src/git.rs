//! Which commit the manifests came from, via the `git` CLI. A repository is not required: outside
//! one (or without `git` installed) detection returns `None`, never an error.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// Commit, branch and dirty flag of the working tree that holds the manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitInfo {
    /// Full SHA of `HEAD`; `None` in a repository without commits.
    pub commit: Option<String>,
    /// Current branch; `None` on a detached `HEAD`.
    pub branch: Option<String>,
    /// True when tracked files differ from `HEAD` or untracked files exist.
    pub dirty: bool,
}

impl GitInfo {
    /// Detects the repository containing `dir`. `None` when `dir` is not inside a git working
    /// tree or the `git` executable cannot be run.
    pub fn detect(dir: &Path) -> Option<GitInfo> {
        let inside = git(dir, &["rev-parse", "--is-inside-work-tree"])?;
        if inside != "true" {
            return None;
        }
        let commit = git(dir, &["rev-parse", "--verify", "--quiet", "HEAD"]);
        let branch = git(dir, &["symbolic-ref", "--quiet", "--short", "HEAD"]);
        let status = git(dir, &["status", "--porcelain", "--untracked-files=normal"])?;
        Some(GitInfo {
            commit,
            branch,
            dirty: !status.is_empty(),
        })
    }
}

/// Runs `git -C dir ARGS`, returning trimmed stdout on success.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "git {args:?} failed");
    }

    #[test]
    fn not_a_repository_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(GitInfo::detect(dir.path()), None);
        assert_eq!(GitInfo::detect(&dir.path().join("missing")), None);
    }

    #[test]
    fn detects_commit_branch_and_dirty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        run(d, &["init", "-q", "-b", "main"]);
        let empty = GitInfo::detect(d).expect("repo");
        assert_eq!(empty.commit, None);
        assert_eq!(empty.branch.as_deref(), Some("main"));
        assert!(!empty.dirty);

        std::fs::write(d.join("project.yaml"), "a: 1\n").expect("write");
        assert!(GitInfo::detect(d).expect("repo").dirty, "untracked file");
        run(d, &["add", "project.yaml"]);
        run(d, &["commit", "-q", "-m", "init"]);
        let clean = GitInfo::detect(d).expect("repo");
        assert!(!clean.dirty);
        let commit = clean.commit.expect("commit");
        assert_eq!(commit.len(), 40);

        std::fs::write(d.join("project.yaml"), "a: 2\n").expect("write");
        assert!(GitInfo::detect(d).expect("repo").dirty, "modified file");

        run(d, &["checkout", "-q", "--detach"]);
        let detached = GitInfo::detect(d).expect("repo");
        assert_eq!(detached.branch, None);
        assert_eq!(detached.commit.as_deref(), Some(commit.as_str()));
    }
}
