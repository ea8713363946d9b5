//! Run records on the local backend: one append-only journal per `dk run` invocation and a
//! summary that keeps reads bounded however long the history grows.
//!
//! ```text
//! .dk/state/<env>/runs/
//!   <invocation>.jsonl        journal of a run in progress (or of one that died): one JSON record
//!                             per line, a record's start and its final form; the last line of an
//!                             id wins
//!   summary.json              the latest record per transform and status, the latest change per
//!                             dataset (a cache: rebuilt from the journals when missing)
//!   archive/<invocation>.jsonl journals already folded into the summary (read by `dk runs`)
//!   pruned.json               the summary of the journals `dk runs prune` deleted (the base the
//!                             summary is rebuilt on)
//!   .fold.lock                flock(2) target: shared while reading the summary, exclusive
//!                             while folding or pruning
//!   <id>.json                 one record per file, as written before journals (still read, and
//!                             archived as they are)
//! ```
//!
//! Durability: lines are appended by [`crate::jsonl`] (one `write`, `fdatasync`ed before `put`
//! returns; a journal's creation also fsyncs the directory). A line cut short by a crash can only
//! be the last one of its journal and is ignored (its record was never acknowledged); anything
//! else that does not parse is an error naming file and line. At the end of an invocation its journal
//! is folded into `summary.json` (temp file, fsync, rename, directory fsync) and moved into
//! `archive/`; journals of processes that died on this host are folded by the next invocation
//! that finishes. A crash between the two steps leaves the journal in place, and folding it again
//! changes nothing (folding is idempotent).
//!
//! Reads stay bounded as the archive grows: a journal's modification time is at or after the
//! start of every record in it (give or take [`MTIME_SLACK`] on file systems with coarse times),
//! so `dk runs list --limit N` reads journals newest-modified first and stops at the first one
//! modified before the N-th newest start found, and `dk runs show ID` reads only journals
//! modified at or after the start time its id begins with.
//! `dk runs prune --older-than` deletes archived journals last modified before the cut-off after
//! folding them into `pruned.json` (written first, so a crash in between folds them twice, which
//! changes nothing): the summary, and so `dk run --due` and incremental cursors, keep their state.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use crate::error::{Result, StateError};
use crate::jsonl;
use crate::local::{atomic_write, sync_dir};
use crate::lock::{current_host, pid_alive};
use crate::runs::{PruneReport, RunQuery, RunRecord, RunStatus, RunSummary, ID_TIME_FORMAT};

const SUMMARY: &str = "summary.json";
const PRUNED: &str = "pruned.json";
const ARCHIVE: &str = "archive";
const FOLD_LOCK: &str = ".fold.lock";
/// Modification times may be coarser than record times (2 s on FAT, 1 s on some network file
/// systems): a journal counts as written up to this much after its recorded mtime.
const MTIME_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// The run records of one environment in a local folder.
#[derive(Debug)]
pub struct LocalRuns {
    dir: PathBuf,
    /// Serializes this process's appends (parallel transforms share one journal).
    append: Mutex<()>,
}

/// What one journal file holds.
struct Journal {
    path: PathBuf,
    records: Vec<RunRecord>,
}

impl LocalRuns {
    pub fn new(dir: PathBuf) -> Self {
        LocalRuns {
            dir,
            append: Mutex::new(()),
        }
    }

    /// Appends `record` to its invocation's journal, durably.
    pub fn append(&self, record: &RunRecord) -> Result<()> {
        let key = if record.invocation.is_empty() {
            &record.id
        } else {
            &record.invocation
        };
        let _guard = self
            .append
            .lock()
            .map_err(|_| StateError::Internal("run journal lock poisoned".into()))?;
        jsonl::append(&self.dir, &format!("{key}.jsonl"), record)
    }

    /// The records `q` asks for (the newest `q.limit`, newest first; all in no order), one per id,
    /// from the journals, the archive and single-record files. Journals are read newest-modified
    /// first; once `limit` records are found, a journal modified before the `limit`-th newest
    /// start cannot hold a newer one, and reading stops.
    pub fn list(&self, q: &RunQuery) -> Result<Vec<RunRecord>> {
        if q.limit == Some(0) {
            return Ok(Vec::new());
        }
        let mut out = self.newest_first(
            |modified, found| {
                q.limit.is_some_and(|limit| {
                    found.len() >= limit && modified < nth_newest_start(found, limit)
                })
            },
            |r| q.transform.as_ref().is_none_or(|t| t == &r.transform),
        )?;
        if let Some(limit) = q.limit {
            out.sort_unstable_by(|a, b| (b.started, &b.id).cmp(&(a.started, &a.id)));
            out.truncate(limit);
        }
        Ok(out)
    }

    /// The records whose id starts with `prefix`, reading only journals modified at or after
    /// the earliest start such an id can have (ids begin with their start time).
    pub fn find(&self, prefix: &str) -> Result<Vec<RunRecord>> {
        let width = DateTime::<Utc>::UNIX_EPOCH
            .format(ID_TIME_FORMAT)
            .to_string()
            .len();
        let stamp = prefix.get(..width).unwrap_or(prefix);
        self.newest_first(
            |modified, _| modified.format(ID_TIME_FORMAT).to_string().as_str() < stamp,
            |r| r.id.starts_with(prefix),
        )
    }

    /// The records `keep` accepts, one per id, from journals read newest-modified first until
    /// `done(modified, found so far)` says no older journal can matter; `modified` already
    /// allows for [`MTIME_SLACK`].
    fn newest_first(
        &self,
        done: impl Fn(DateTime<Utc>, &HashMap<String, RunRecord>) -> bool,
        keep: impl Fn(&RunRecord) -> bool,
    ) -> Result<Vec<RunRecord>> {
        let mut found: HashMap<String, RunRecord> = HashMap::new();
        for (path, modified) in self.files_newest_first()? {
            if done(modified + MTIME_SLACK, &found) {
                break;
            }
            for r in read_journal(&path)?.records {
                if keep(&r) {
                    keep_finished(&mut found, r);
                }
            }
        }
        Ok(found.into_values().collect())
    }

    /// Deletes the archived journals last modified before `before` (every record in them started
    /// and ended before it, within the file system's time granularity), after folding them into
    /// `pruned.json`; journals of runs not sealed yet are never touched. With `dry_run`, only
    /// counts.
    pub fn prune(&self, before: DateTime<Utc>, dry_run: bool) -> Result<PruneReport> {
        let archive = self.dir.join(ARCHIVE);
        if !archive.exists() {
            return Ok(PruneReport::default());
        }
        let _lock = self.fold_lock(true)?;
        let mut report = PruneReport::default();
        let mut base = self.read_pruned()?;
        let mut doomed = Vec::new();
        for path in journal_files(&archive)? {
            if modified_at(&path)? >= before {
                continue;
            }
            for r in read_journal(&path)?.records {
                report.removed += 1;
                base.fold(&r);
            }
            doomed.push(path);
        }
        if dry_run || doomed.is_empty() {
            return Ok(report);
        }
        let bytes = serde_json::to_vec(&base)
            .map_err(|e| StateError::Internal(format!("serialize the pruned summary: {e}")))?;
        atomic_write(&self.dir, PRUNED, &bytes)?;
        for path in &doomed {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StateError::io("delete", path, e)),
            }
        }
        sync_dir(&archive)?;
        Ok(report)
    }

    /// Journals and single-record files, in the folder and in the archive, with their
    /// modification times, newest first.
    fn files_newest_first(&self) -> Result<Vec<(PathBuf, DateTime<Utc>)>> {
        let mut files = journal_files(&self.dir)?;
        files.extend(journal_files(&self.dir.join(ARCHIVE))?);
        let mut out = Vec::with_capacity(files.len());
        for path in files {
            match modified_at(&path) {
                Ok(t) => out.push((path, t)),
                // Folded into the archive since it was listed: the archive listing has it, or
                // the next read does.
                Err(StateError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        Ok(out)
    }

    /// `pruned.json`, or an empty summary.
    fn read_pruned(&self) -> Result<RunSummary> {
        let path = self.dir.join(PRUNED);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                StateError::InvalidConfig(format!(
                    "the summary of pruned runs {} is not valid: {e}",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RunSummary::default()),
            Err(e) => Err(StateError::io("read", &path, e)),
        }
    }

    /// The summary: `summary.json` with the journals not folded yet on top (rebuilt from the
    /// archive too when `summary.json` is missing).
    pub fn summary(&self) -> Result<RunSummary> {
        if !self.dir.exists() {
            return Ok(RunSummary::default());
        }
        let _lock = self.fold_lock(false)?;
        let (mut summary, _) = self.read_summary()?;
        for path in journal_files(&self.dir)? {
            for r in read_journal(&path)?.records {
                summary.fold(&r);
            }
        }
        Ok(summary)
    }

    /// Folds the finished journal of `invocation` (and those of processes that died on this host)
    /// into the summary and moves them into the archive.
    pub fn seal(&self, invocation: &str) -> Result<()> {
        if !self.dir.exists() {
            return Ok(());
        }
        let _lock = self.fold_lock(true)?;
        let (mut summary, rebuilt) = self.read_summary()?;
        let own = format!("{invocation}.jsonl");
        let host = current_host();
        let mut folded = Vec::new();
        for path in journal_files(&self.dir)? {
            let journal = read_journal(&path)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let legacy = name.ends_with(".json");
            let dead = journal
                .records
                .iter()
                .all(|r| r.status != RunStatus::Running && r.host == host && !pid_alive(r.pid));
            let finished = journal
                .records
                .iter()
                .all(|r| r.status != RunStatus::Running);
            if name == own || dead || (legacy && finished) {
                for r in &journal.records {
                    summary.fold(r);
                }
                folded.push(journal.path);
            }
        }
        if folded.is_empty() && !rebuilt {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&summary)
            .map_err(|e| StateError::Internal(format!("serialize the run summary: {e}")))?;
        atomic_write(&self.dir, SUMMARY, &bytes)?;
        if folded.is_empty() {
            return Ok(());
        }
        let archive = self.dir.join(ARCHIVE);
        fs::create_dir_all(&archive).map_err(|e| StateError::io("create", &archive, e))?;
        for path in &folded {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let mut target = archive.join(&name);
            if target.exists() {
                target = archive.join(format!("{}-{}", uuid::Uuid::new_v4().simple(), name));
            }
            fs::rename(path, &target)
                .map_err(|e| StateError::io("move into the archive", path, e))?;
        }
        sync_dir(&archive)?;
        sync_dir(&self.dir)
    }

    fn fold_lock(&self, exclusive: bool) -> Result<File> {
        let path = self.dir.join(FOLD_LOCK);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StateError::io("open", &path, e))?;
        let r = if exclusive {
            fs4::FileExt::lock(&f)
        } else {
            fs4::FileExt::lock_shared(&f)
        };
        r.map_err(|e| StateError::io("lock", &path, e))?;
        Ok(f)
    }

    /// `summary.json`, or when it is missing one rebuilt from the archive (`true`).
    fn read_summary(&self) -> Result<(RunSummary, bool)> {
        let path = self.dir.join(SUMMARY);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(|s| (s, false))
                .map_err(|e| {
                    StateError::InvalidConfig(format!(
                    "the run summary {} is not valid: {e}; delete it and it is rebuilt from the \
                     journals in {}",
                    path.display(),
                    self.dir.join(ARCHIVE).display()
                ))
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut s = self.read_pruned()?;
                let archived = journal_files(&self.dir.join(ARCHIVE))?;
                let rebuilt = !archived.is_empty() || s != RunSummary::default();
                for path in archived {
                    for r in read_journal(&path)?.records {
                        s.fold(&r);
                    }
                }
                Ok((s, rebuilt))
            }
            Err(e) => Err(StateError::io("read", &path, e)),
        }
    }
}

/// Inserts `r` unless a finished form of the same id is there (a journal folded twice after a
/// crash holds each record twice).
fn keep_finished(by_id: &mut HashMap<String, RunRecord>, r: RunRecord) {
    match by_id.get(&r.id) {
        Some(old) if old.ended.is_some() && r.ended.is_none() => {}
        _ => {
            by_id.insert(r.id.clone(), r);
        }
    }
}

/// The `n`-th newest start among `records` (the oldest when there are fewer; the epoch when
/// there are none).
fn nth_newest_start(records: &HashMap<String, RunRecord>, n: usize) -> DateTime<Utc> {
    let mut starts: Vec<DateTime<Utc>> = records.values().map(|r| r.started).collect();
    starts.sort_unstable_by(|a, b| b.cmp(a));
    starts
        .get(n.saturating_sub(1))
        .or(starts.last())
        .copied()
        .unwrap_or_default()
}

fn modified_at(path: &Path) -> Result<DateTime<Utc>> {
    let t: SystemTime = fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| StateError::io("read the modification time of", path, e))?;
    Ok(DateTime::<Utc>::from(t))
}

/// Journals (`*.jsonl`) and single-record files (`*.json`, not the summaries) directly in `dir`,
/// sorted by name (= start order).
fn journal_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|e| StateError::io("list", dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name == SUMMARY || name == PRUNED {
            continue;
        }
        if name.ends_with(".jsonl") || name.ends_with(".json") {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The records of one journal (the last line of each id), settled: a `running` record whose
/// process is gone reads as interrupted. A `.json` file holds one pretty-printed record.
fn read_journal(path: &Path) -> Result<Journal> {
    let journal = |records: Vec<RunRecord>| Journal {
        path: path.to_path_buf(),
        records: records.into_iter().map(RunRecord::settle).collect(),
    };
    if path.extension().is_some_and(|e| e == "json") {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(journal(Vec::new())),
            Err(e) => return Err(StateError::io("read", path, e)),
        };
        let r: RunRecord =
            serde_json::from_slice(&bytes).map_err(|source| StateError::CorruptLine {
                location: format!("{}:1", path.display()),
                source,
            })?;
        return Ok(journal(vec![r]));
    }
    // Missing: folded into the archive between listing and reading.
    let lines: Vec<RunRecord> = jsonl::read(path)?.unwrap_or_default();
    let mut order: Vec<String> = Vec::new();
    let mut by_id: HashMap<String, RunRecord> = HashMap::new();
    for r in lines {
        if !by_id.contains_key(&r.id) {
            order.push(r.id.clone());
        }
        by_id.insert(r.id.clone(), r);
    }
    Ok(journal(
        order
            .into_iter()
            .filter_map(|id| by_id.remove(&id))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn finished(inv: &str, transform: &str, dataset: &str) -> RunRecord {
        let mut r = RunRecord::start(inv, transform, "dev", None);
        r.status = RunStatus::Succeeded;
        r.ended = Some(chrono::Utc::now());
        r.outputs.push(crate::RunOutput {
            dataset: dataset.into(),
            rows_written: 3,
            cursor: None,
            rebuilt: false,
        });
        r
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_other_bad_lines_are_named() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let runs = LocalRuns::new(tmp.path().to_path_buf());
        let r = finished("inv", "load", "orders");
        runs.append(&r).expect("append");
        let path = tmp.path().join("inv.jsonl");
        // A crash in the middle of the next append.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"id\":\"2026").expect("write");
        drop(f);
        let all = runs.list(&RunQuery::default()).expect("list");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, r.id);
        // The same bytes followed by a newline are a corrupt record, not a torn write.
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"\n").expect("write");
        drop(f);
        let err = runs
            .list(&RunQuery::default())
            .expect_err("corrupt")
            .to_string();
        assert!(err.contains("inv.jsonl:2"), "{err}");
    }

    #[test]
    fn sealing_folds_the_journal_into_the_summary_and_archives_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let runs = LocalRuns::new(tmp.path().to_path_buf());
        let mut a = RunRecord::start("inv-a", "load", "dev", None);
        runs.append(&a).expect("start");
        a.status = RunStatus::Succeeded;
        a.ended = Some(chrono::Utc::now());
        runs.append(&a).expect("end");
        let b = finished("inv-a", "copy", "orders");
        runs.append(&b).expect("b");
        // A journal of a process that died: folded by the next seal, as interrupted.
        let mut dead = RunRecord::start("inv-dead", "load", "dev", None);
        dead.pid = 0;
        runs.append(&dead).expect("dead");
        // A single-record file from before journals.
        let old = finished("", "older", "legacy");
        std::fs::write(
            tmp.path().join(format!("{}.json", old.id)),
            serde_json::to_vec_pretty(&old).expect("json"),
        )
        .expect("legacy");
        runs.seal("inv-a").expect("seal");
        let mut names: Vec<String> = std::fs::read_dir(tmp.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names, [".fold.lock", "archive", "summary.json"]);
        assert_eq!(
            std::fs::read_dir(tmp.path().join("archive"))
                .expect("archive")
                .count(),
            3
        );
        let s = runs.summary().expect("summary");
        assert_eq!(
            s.latest("load", |st| st == RunStatus::Interrupted)
                .map(|r| &r.id),
            Some(&dead.id)
        );
        assert_eq!(
            s.latest("load", |st| st == RunStatus::Succeeded)
                .map(|r| &r.id),
            Some(&a.id)
        );
        assert_eq!(s.last_change("orders").map(|c| &c.run), Some(&b.id));
        assert_eq!(s.last_change("legacy").map(|c| &c.run), Some(&old.id));
        assert_eq!(runs.list(&RunQuery::default()).expect("list").len(), 4);
        // The summary is a cache: without it, it is rebuilt from the archive.
        std::fs::remove_file(tmp.path().join(SUMMARY)).expect("rm");
        let rebuilt = runs.summary().expect("rebuilt");
        assert_eq!(rebuilt, s);
        // Folding the same records again changes nothing.
        let mut again = s.clone();
        for r in runs.list(&RunQuery::default()).expect("list") {
            again.fold(&r);
        }
        assert_eq!(again, s);
    }

    /// A file system that keeps coarse times can record a journal as modified before the start of
    /// its newest record: the newest-N listing still finds that record.
    #[test]
    fn newest_first_listing_allows_for_coarse_modification_times() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let runs = LocalRuns::new(tmp.path().to_path_buf());
        let now = Utc::now();
        let mut newer = finished("inv-a", "load", "orders");
        newer.started = now - chrono::TimeDelta::milliseconds(10_000);
        newer.id = crate::runs::new_id(newer.started);
        let mut older = finished("inv-b", "load", "orders");
        older.started = now - chrono::TimeDelta::milliseconds(10_500);
        older.id = crate::runs::new_id(older.started);
        runs.append(&newer).expect("a");
        runs.append(&older).expect("b");
        let touch = |name: &str, t: DateTime<Utc>| {
            File::options()
                .write(true)
                .open(tmp.path().join(name))
                .expect("journal")
                .set_modified(t.into())
                .expect("mtime");
        };
        // inv-a's time truncated below its record's start; inv-b's right after its own.
        touch(
            "inv-a.jsonl",
            newer.started - chrono::TimeDelta::milliseconds(900),
        );
        touch(
            "inv-b.jsonl",
            older.started + chrono::TimeDelta::milliseconds(100),
        );
        let q = RunQuery {
            transform: None,
            limit: Some(1),
        };
        let got = runs.list(&q).expect("list");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, newer.id);
        assert_eq!(runs.find(&newer.id).expect("find").len(), 1);
    }

    #[test]
    fn a_live_run_is_not_folded_by_another_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let runs = LocalRuns::new(tmp.path().to_path_buf());
        // Another invocation of this very (live) process, between two transforms.
        runs.append(&finished("inv-live", "load", "orders"))
            .expect("live");
        runs.append(&finished("inv-mine", "copy", "copies"))
            .expect("mine");
        runs.seal("inv-mine").expect("seal");
        assert!(tmp.path().join("inv-live.jsonl").exists());
        assert!(tmp.path().join("archive/inv-mine.jsonl").exists());
        // Its records are still read, on top of the summary.
        let s = runs.summary().expect("summary");
        assert!(s.last_change("orders").is_some());
        assert!(s.last_change("copies").is_some());
    }
}
