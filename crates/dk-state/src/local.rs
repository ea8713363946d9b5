//! The local backend: files under `<root>/.dk/state/<environment>/`.
//!
//! ```text
//! .dk/state/dev/
//!   state.json                 the latest serial (the commit point)
//!   history/0000000001.json    every serial ever written, one file each
//!   lock                       flock(2) target, held for a whole operation
//!   lock.json                  holder info of the current lock
//!   write.lock                 flock(2) target, held only during one write (the CAS)
//! ```
//!
//! Writes never modify a file in place: bytes go to a temp file in the same directory, which is
//! fsynced, renamed over the target, and the directory fsynced. The history file of the new
//! serial is written before `state.json`, so `state.json` never names a serial whose history is
//! missing; a crash between the two leaves a history file newer than `state.json`, which is
//! ignored (not committed) and overwritten by the next write.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fs4::TryLockError;

use crate::backend::{prepare_write, validate_environment, validate_project, HistoryEntry};
use crate::document::StateDocument;
use crate::error::{Result, StateError};
use crate::lock::LockInfo;

const STATE_FILE: &str = "state.json";
const HISTORY_DIR: &str = "history";
const LOCK_FILE: &str = "lock";
const LOCK_INFO_FILE: &str = "lock.json";
const WRITE_LOCK_FILE: &str = "write.lock";

/// State kept in files under a project root. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
    project: String,
    environment: String,
}

impl LocalBackend {
    /// The backend for `environment` of the project rooted at `root` (the directory holding
    /// `project.yaml`). Nothing is created until the first write or lock.
    pub fn new(root: impl Into<PathBuf>, project: &str, environment: &str) -> Result<Self> {
        validate_project(project)?;
        validate_environment(environment)?;
        Ok(LocalBackend {
            root: root.into(),
            project: project.to_string(),
            environment: environment.to_string(),
        })
    }

    /// `<root>/.dk/state`.
    pub fn state_root(&self) -> PathBuf {
        self.root.join(".dk").join("state")
    }

    /// `<root>/.dk/state/<environment>`.
    pub fn dir(&self) -> PathBuf {
        self.state_root().join(&self.environment)
    }

    /// Project name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Environment name.
    pub fn environment(&self) -> &str {
        &self.environment
    }

    fn history_dir(&self) -> PathBuf {
        self.dir().join(HISTORY_DIR)
    }

    fn history_path(&self, serial: u64) -> PathBuf {
        self.history_dir().join(history_name(serial))
    }

    /// The latest committed document, `None` when the environment has no state yet.
    pub fn read_latest(&self) -> Result<Option<StateDocument>> {
        read_doc(&self.dir().join(STATE_FILE))
    }

    /// The document of one kept serial.
    pub fn read_serial(&self, serial: u64) -> Result<StateDocument> {
        let latest = self.read_latest()?.map(|d| d.serial);
        let missing = || StateError::SerialNotFound {
            environment: self.environment.clone(),
            serial,
            available: match latest {
                Some(l) => format!("latest is {l}"),
                None => "no state yet".to_string(),
            },
        };
        match latest {
            Some(l) if serial >= 1 && serial <= l => {}
            _ => return Err(missing()),
        }
        read_doc(&self.history_path(serial))?.ok_or_else(missing)
    }

    /// Every committed serial, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryEntry>> {
        let Some(latest) = self.read_latest()?.map(|d| d.serial) else {
            return Ok(Vec::new());
        };
        let dir = self.history_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StateError::io("list", &dir, e)),
        };
        let mut serials = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StateError::io("list", &dir, e))?;
            let name = entry.file_name();
            let Some(serial) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|n| n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if serial >= 1 && serial <= latest {
                serials.push(serial);
            }
        }
        serials.sort_unstable();
        let mut out = Vec::with_capacity(serials.len());
        for serial in serials {
            if let Some(doc) = read_doc(&self.history_path(serial))? {
                out.push(HistoryEntry::of(&doc));
            }
        }
        Ok(out)
    }

    /// Compare-and-swap write: stores `doc` as serial `expected_serial + 1` if the stored serial is
    /// still `expected_serial` (0 = no state yet). Returns the document as written.
    pub fn write(
        &self,
        doc: &StateDocument,
        expected_serial: u64,
        operation: &str,
    ) -> Result<StateDocument> {
        self.write_with(doc, expected_serial, operation, false)
    }

    /// [`write`](Self::write), optionally accepting a document of another lineage than the stored
    /// one (`dk state push --force`).
    pub(crate) fn write_with(
        &self,
        doc: &StateDocument,
        expected_serial: u64,
        operation: &str,
        allow_new_lineage: bool,
    ) -> Result<StateDocument> {
        let new = prepare_write(
            doc,
            expected_serial,
            operation,
            &self.project,
            &self.environment,
        )?;
        let dir = self.dir();
        let history_dir = self.history_dir();
        fs::create_dir_all(&history_dir)
            .map_err(|e| StateError::io("create directory", &history_dir, e))?;

        // Serialise writers of this environment for the read-compare-write below.
        let write_lock_path = dir.join(WRITE_LOCK_FILE);
        let write_lock = open_lock_file(&write_lock_path)?;
        fs4::FileExt::lock(&write_lock).map_err(|e| StateError::io("lock", &write_lock_path, e))?;

        remove_temp_files(&dir, STATE_FILE);
        remove_temp_files(&history_dir, "");

        let current = self.read_latest()?;
        let found = current.as_ref().map_or(0, |d| d.serial);
        if found != expected_serial {
            return Err(StateError::Stale {
                environment: self.environment.clone(),
                expected: expected_serial,
                found,
            });
        }
        if let Some(cur) = current.as_ref().filter(|_| !allow_new_lineage) {
            if cur.lineage != new.lineage {
                return Err(StateError::LineageMismatch {
                    environment: self.environment.clone(),
                    expected: new.lineage.to_string(),
                    found: cur.lineage.to_string(),
                });
            }
        }

        let bytes = new.to_json_pretty()?.into_bytes();
        // History first: the latest pointer must never name a serial whose history is missing.
        atomic_write(&history_dir, &history_name(new.serial), &bytes)?;
        atomic_write(&dir, STATE_FILE, &bytes)?;
        drop(write_lock);
        Ok(new)
    }

    /// Takes the environment's lock or fails at once with [`StateError::Locked`] naming the
    /// holder. The lock is released when the guard is dropped (or the process dies).
    pub fn lock(&self, operation: &str) -> Result<LocalLockGuard> {
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(|e| StateError::io("create directory", &dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        // A force-unlock may unlink the lock file between our open and our flock: retry then.
        for _ in 0..10 {
            let file = open_lock_file(&lock_path)?;
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => {
                    if !is_same_file(&file, &lock_path) {
                        let _ = fs4::FileExt::unlock(&file);
                        continue;
                    }
                    remove_temp_files(&dir, LOCK_INFO_FILE);
                    let info =
                        LockInfo::for_current_process(&self.project, &self.environment, operation);
                    write_lock_info(&dir, &info)?;
                    return Ok(LocalLockGuard {
                        file: Some(file),
                        dir,
                        info,
                    });
                }
                Err(TryLockError::WouldBlock) => {
                    let holder = self.read_holder_of_busy_lock();
                    return Err(StateError::Locked {
                        environment: self.environment.clone(),
                        holder: Box::new(holder),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(StateError::io("lock", &lock_path, e)),
            }
        }
        Err(StateError::Internal(format!(
            "the lock file {} kept being replaced while locking; retry",
            lock_path.display()
        )))
    }

    /// Holder info of a lock somebody else holds. The holder writes `lock.json` right after
    /// taking the flock, so a missing file, or one left by a dead process, is re-read briefly.
    fn read_holder_of_busy_lock(&self) -> LockInfo {
        let path = self.dir().join(LOCK_INFO_FILE);
        let mut last = None;
        for _ in 0..25 {
            if let Some(info) = read_lock_info(&path) {
                if !info.holder_is_dead_local_process() {
                    return info;
                }
                last = Some(info);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        last.unwrap_or_else(|| LockInfo::unknown(&self.project, &self.environment))
    }

    /// Current locks of every environment of this project (stale holder files of finished or
    /// killed processes are removed on the way).
    pub fn list_locks(&self) -> Result<Vec<LockInfo>> {
        let mut out = Vec::new();
        for env_dir in self.env_dirs()? {
            let info_path = env_dir.join(LOCK_INFO_FILE);
            let lock_path = env_dir.join(LOCK_FILE);
            let info = read_lock_info(&info_path);
            let env_name = env_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match probe_lock(&lock_path)? {
                Probe::Free(file) => {
                    // Nobody holds it: whatever holder file is left is stale.
                    if info.is_some() {
                        let _ = fs::remove_file(&info_path);
                    }
                    drop(file);
                }
                Probe::Held => {
                    out.push(info.unwrap_or_else(|| LockInfo::unknown(&self.project, &env_name)))
                }
            }
        }
        out.sort_by(|a, b| a.environment.cmp(&b.environment));
        Ok(out)
    }

    /// Removes the lock with this ID (`dk state unlock ID`), even if its holder still runs: the
    /// lock file is unlinked so the next locker gets a fresh one. Returns the removed holder.
    pub fn force_unlock(&self, id: &str) -> Result<LockInfo> {
        for env_dir in self.env_dirs()? {
            let info_path = env_dir.join(LOCK_INFO_FILE);
            let Some(info) = read_lock_info(&info_path).filter(|i| i.id == id) else {
                continue;
            };
            let lock_path = env_dir.join(LOCK_FILE);
            match probe_lock(&lock_path)? {
                Probe::Free(file) => {
                    remove_if_exists(&info_path)?;
                    drop(file);
                }
                Probe::Held => {
                    remove_if_exists(&lock_path)?;
                    remove_if_exists(&info_path)?;
                    sync_dir(&env_dir)?;
                }
            }
            return Ok(info);
        }
        Err(StateError::LockNotFound {
            project: self.project.clone(),
            id: id.to_string(),
        })
    }

    fn env_dirs(&self) -> Result<Vec<PathBuf>> {
        let root = self.state_root();
        let entries = match fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StateError::io("list", &root, e)),
        };
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StateError::io("list", &root, e))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
        dirs.sort();
        Ok(dirs)
    }
}

/// Holds the local lock of one environment; dropping it releases the lock.
#[derive(Debug)]
pub struct LocalLockGuard {
    file: Option<File>,
    dir: PathBuf,
    info: LockInfo,
}

impl LocalLockGuard {
    /// Holder info of this lock.
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// Fails with [`StateError::LockLost`] when the lock was force-unlocked meanwhile.
    pub fn ensure_held(&self) -> Result<()> {
        let still_ours = self
            .file
            .as_ref()
            .is_some_and(|f| is_same_file(f, &self.dir.join(LOCK_FILE)));
        if still_ours {
            Ok(())
        } else {
            Err(StateError::LockLost {
                environment: self.info.environment.clone(),
                reason: "the lock file was removed (`dk state unlock`)".to_string(),
            })
        }
    }

    /// Releases the lock now.
    pub fn release(mut self) -> Result<()> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        // Remove our holder file while still holding the flock, and only if it is still ours
        // (after a force-unlock it may belong to the next holder).
        let info_path = self.dir.join(LOCK_INFO_FILE);
        let result = if is_same_file(&file, &self.dir.join(LOCK_FILE))
            && read_lock_info(&info_path).is_some_and(|i| i.id == self.info.id)
        {
            remove_if_exists(&info_path)
        } else {
            Ok(())
        };
        let _ = fs4::FileExt::unlock(&file);
        drop(file);
        result
    }
}

impl Drop for LocalLockGuard {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}

enum Probe {
    /// The lock was free; we hold it until this is dropped.
    Free(Unlocking),
    Held,
}

/// A locked file that is explicitly unlocked on drop. Closing alone is not enough: a child
/// forked by another thread shares the open file description until it execs, and would keep
/// the flock alive meanwhile.
struct Unlocking(File);

impl Drop for Unlocking {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.0);
    }
}

fn probe_lock(path: &Path) -> Result<Probe> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // No lock file: nobody can hold it. Create one to return a uniform answer.
            open_lock_file(path)?
        }
        Err(e) => return Err(StateError::io("open", path, e)),
    };
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(Probe::Free(Unlocking(file))),
        Err(TryLockError::WouldBlock) => Ok(Probe::Held),
        Err(TryLockError::Error(e)) => Err(StateError::io("lock", path, e)),
    }
}

fn history_name(serial: u64) -> String {
    format!("{serial:010}.json")
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StateError::io("open", path, e))
}

fn read_doc(path: &Path) -> Result<Option<StateDocument>> {
    match fs::read_to_string(path) {
        Ok(text) => StateDocument::from_json(&text, &path.display().to_string()).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io("read", path, e)),
    }
}

fn read_lock_info(path: &Path) -> Option<LockInfo> {
    let text = fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_lock_info(dir: &Path, info: &LockInfo) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(info).map_err(|e| StateError::Internal(e.to_string()))?;
    atomic_write(dir, LOCK_INFO_FILE, &bytes)
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StateError::io("remove", path, e)),
    }
}

/// Writes `bytes` to `dir/name` atomically and durably: temp file in `dir`, write, fsync,
/// rename over the target, fsync `dir`.
pub(crate) fn atomic_write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| StateError::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| StateError::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| StateError::io("fsync", &tmp, e))?;
        drop(f);
        let target = dir.join(name);
        fs::rename(&tmp, &target).map_err(|e| StateError::io("rename into place", &target, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io("fsync directory", dir, e))
}

/// Removes temp files left by a crashed writer (`.<name>.tmp-*`; any name when `name` is empty).
fn remove_temp_files(dir: &Path, name: &str) {
    let prefix = format!(".{name}");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        if n.starts_with(&prefix) && n.contains(".tmp-") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(unix)]
fn is_same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn is_same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::ResourceState;

    fn backend(dir: &Path, env: &str) -> LocalBackend {
        LocalBackend::new(dir, "shop", env).expect("backend")
    }

    fn doc_with(b: &LocalBackend, n: usize) -> StateDocument {
        let mut d = StateDocument::new(b.project(), b.environment());
        for i in 0..n {
            d.put(ResourceState::new(
                format!("table.w.public.t{i}"),
                "table",
                "duckdb",
            ));
        }
        d
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn empty_environment_has_no_state() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = backend(tmp.path(), "dev");
        assert!(b.read_latest().expect("read").is_none());
        assert!(b.history().expect("history").is_empty());
        let err = b.read_serial(1).unwrap_err();
        assert!(err.to_string().contains("no state yet"), "{err}");
        assert!(!b.dir().exists(), "reading creates nothing");
    }

    #[test]
    fn write_is_compare_and_swap_and_keeps_history() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = backend(tmp.path(), "dev");
        let d = doc_with(&b, 1);
        let w1 = b.write(&d, 0, "apply").expect("first write");
        assert_eq!(w1.serial, 1);
        assert_eq!(w1.operation, "apply");
        assert_eq!(w1.lineage, d.lineage);

        // A second writer that also read "no state" is refused.
        let err = b.write(&d, 0, "apply").unwrap_err();
        match &err {
            StateError::Stale {
                expected, found, ..
            } => assert_eq!((*expected, *found), (0, 1)),
            other => panic!("expected Stale, got {other}"),
        }
        assert!(err.to_string().contains("re-run `dk plan`"));

        let mut d2 = w1.clone();
        d2.put(ResourceState::new("view.w.marts.v", "view", "duckdb"));
        let w2 = b.write(&d2, 1, "apply").expect("second write");
        assert_eq!(w2.serial, 2);
        let w3 = b.write(&w2, 2, "state mv").expect("third write");
        assert_eq!(w3.serial, 3);

        let latest = b.read_latest().expect("read").expect("some");
        assert_eq!(latest, w3);
        assert_eq!(b.read_serial(1).expect("serial 1"), w1);
        assert_eq!(b.read_serial(2).expect("serial 2"), w2);
        let err = b.read_serial(4).unwrap_err();
        assert!(err.to_string().contains("latest is 3"), "{err}");

        let h = b.history().expect("history");
        let serials: Vec<u64> = h.iter().map(|e| e.serial).collect();
        assert_eq!(serials, [1, 2, 3]);
        assert_eq!(h[0].resources, 1);
        assert_eq!(h[1].resources, 2);
        assert_eq!(h[2].operation, "state mv");
        assert!(h.iter().all(|e| e.lineage == d.lineage));
    }

    #[test]
    fn write_refuses_other_lineage_and_wrong_environment() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = backend(tmp.path(), "dev");
        b.write(&doc_with(&b, 0), 0, "apply").expect("write");
        let other = doc_with(&b, 0); // fresh lineage
        let err = b.write(&other, 1, "apply").unwrap_err();
        assert!(matches!(err, StateError::LineageMismatch { .. }), "{err}");

        let prod = StateDocument::new("shop", "prod");
        let err = b.write(&prod, 1, "apply").unwrap_err();
        assert!(matches!(err, StateError::InvalidDocument(_)), "{err}");
    }

    #[test]
    fn write_refuses_plain_secrets() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = backend(tmp.path(), "dev");
        let mut d = doc_with(&b, 0);
        let mut r = ResourceState::new("store.warehouse", "store", "postgres");
        r.attributes = serde_json::json!({"token": "s3cr3t"});
        d.put(r);
        let err = b.write(&d, 0, "apply").unwrap_err();
        assert!(matches!(err, StateError::SecretInState { .. }), "{err}");
        assert!(b.read_latest().expect("read").is_none());
    }

    #[test]
    fn atomic_write_leaves_no_temp_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = backend(tmp.path(), "dev");
        let mut d = doc_with(&b, 3);
        for serial in 0..5 {
            d = b.write(&d, serial, "apply").expect("write");
        }
        assert_eq!(files_in(&b.dir()), ["history", "state.json", "write.lock"]);
        assert_eq!(
            files_in(&b.history_dir()),
            (1..=5).map(history_name).collect::<Vec<_>>()
        );
    }

    #[test]
    fn crash_between_history_and_latest_keeps_previous_state() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = backend(tmp.path(), "dev");
        let w1 = b.write(&doc_with(&b, 1), 0, "apply").expect("write");
        // Simulate a writer killed after the history file of serial 2 was renamed into place
        // but before state.json was replaced, plus a torn temp file of state.json.
        let mut next = w1.clone();
        next.serial = 2;
        next.put(ResourceState::new("table.w.public.new", "table", "duckdb"));
        atomic_write(
            &b.history_dir(),
            &history_name(2),
            next.to_json_pretty().expect("json").as_bytes(),
        )
        .expect("history write");
        fs::write(b.dir().join(".state.json.tmp-999-x"), b"{\"format_ver").expect("torn");

        let latest = b.read_latest().expect("read").expect("some");
        assert_eq!(latest, w1, "the previous complete state");
        assert_eq!(
            b.history().expect("history").len(),
            1,
            "serial 2 not committed"
        );
        assert!(b.read_serial(2).is_err());

        // The next writer works from serial 1 and replaces the orphan.
        let w2 = b.write(&w1, 1, "apply").expect("write after crash");
        assert_eq!(w2.serial, 2);
        assert_eq!(b.read_serial(2).expect("serial 2"), w2);
        assert!(!files_in(&b.dir()).iter().any(|n| n.contains(".tmp-")));
    }

    #[test]
    fn second_lock_fails_fast_naming_the_holder() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = backend(tmp.path(), "dev");
        let guard = b.lock("apply").expect("lock");
        let info = guard.info().clone();
        assert_eq!(info.pid, std::process::id());
        assert_eq!(info.operation, "apply");
        assert_eq!(info.environment, "dev");
        assert!(info.expires.is_none());
        let on_disk: LockInfo = serde_json::from_str(
            &fs::read_to_string(b.dir().join(LOCK_INFO_FILE)).expect("lock.json"),
        )
        .expect("parse");
        assert_eq!(on_disk, info);

        let started = std::time::Instant::now();
        let err = b.lock("plan").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "fails fast");
        match &err {
            StateError::Locked { holder, .. } => assert_eq!(**holder, info),
            other => panic!("expected Locked, got {other}"),
        }
        assert_eq!(err.exit_code(), 5);

        // Other environments are independent.
        let other = backend(tmp.path(), "prod")
            .lock("apply")
            .expect("prod lock");
        let listed = b.list_locks().expect("list");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].environment, "dev");
        assert_eq!(listed[1].environment, "prod");
        drop(other);

        guard.release().expect("release");
        assert!(!b.dir().join(LOCK_INFO_FILE).exists());
        let again = b.lock("plan").expect("lock after release");
        drop(again);
        assert!(b.list_locks().expect("list").is_empty());
    }

    #[test]
    fn writes_under_the_lock_do_not_deadlock() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = backend(tmp.path(), "dev");
        let guard = b.lock("apply").expect("lock");
        let w = b.write(&doc_with(&b, 1), 0, "apply").expect("write");
        guard.ensure_held().expect("held");
        drop(guard);
        assert_eq!(w.serial, 1);
    }

    #[test]
    fn stale_holder_file_is_cleaned_and_overwritten() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = backend(tmp.path(), "dev");
        fs::create_dir_all(b.dir()).expect("mkdir");
        let mut dead = LockInfo::for_current_process("shop", "dev", "apply");
        dead.pid = u32::MAX - 1;
        write_lock_info(&b.dir(), &dead).expect("write");
        // Nobody holds the flock: list_locks drops the stale holder file.
        assert!(b.list_locks().expect("list").is_empty());
        assert!(!b.dir().join(LOCK_INFO_FILE).exists());
        // And locking over a stale holder file works.
        write_lock_info(&b.dir(), &dead).expect("write");
        let g = b.lock("apply").expect("lock");
        assert_ne!(g.info().id, dead.id);
    }

    #[test]
    fn force_unlock_breaks_a_held_lock() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let b = backend(tmp.path(), "dev");
        let g = b.lock("apply").expect("lock");
        let id = g.info().id.clone();
        let err = b.force_unlock("no-such-id").unwrap_err();
        assert!(matches!(err, StateError::LockNotFound { .. }), "{err}");
        let removed = b.force_unlock(&id).expect("force unlock");
        assert_eq!(removed.id, id);
        assert!(
            g.ensure_held().is_err(),
            "the old holder learns it lost the lock"
        );
        let g2 = b.lock("apply").expect("lock after force unlock");
        // The old guard's release must not remove the new holder's info.
        drop(g);
        let listed = b.list_locks().expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, g2.info().id);
    }

    #[test]
    fn invalid_environment_names_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for bad in ["", "..", "a/b", ".hidden", "dev\n"] {
            let err = LocalBackend::new(tmp.path(), "shop", bad).unwrap_err();
            assert!(
                matches!(err, StateError::InvalidName { .. }),
                "{bad:?}: {err}"
            );
        }
    }
}
