//! Append-only JSON-lines files of the local backend: the audit log and the run journals.
//!
//! A line is appended with one `write` and `fdatasync`ed before the call returns; creating the
//! file also fsyncs its directory, so an acknowledged line survives a crash or power loss. A crash
//! in the middle of an append can only leave an unterminated fragment at the end of the file: that
//! line was never acknowledged, so readers ignore it and the next append cuts it off first. Every
//! other line that does not parse is an error naming `file:line`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, StateError};
use crate::local::sync_dir;

/// Appends `value` as one line to `dir/name`, durably (creating `dir` and the file as needed).
pub(crate) fn append(dir: &Path, name: &str, value: &impl Serialize) -> Result<()> {
    let mut line = serde_json::to_vec(value)
        .map_err(|e| StateError::Internal(format!("serialize a record of {name}: {e}")))?;
    line.push(b'\n');
    let path = dir.join(name);
    let open = || {
        OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
    };
    let (mut f, created) = match open() {
        Ok(f) => (f, true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => (
            OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .map_err(|e| StateError::io("open", &path, e))?,
            false,
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| StateError::io("create directory", dir, e))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            (
                open().map_err(|e| StateError::io("create", &path, e))?,
                true,
            )
        }
        Err(e) => return Err(StateError::io("create", &path, e)),
    };
    if !created {
        cut_torn_tail(&mut f, &path)?;
    }
    f.write_all(&line)
        .map_err(|e| StateError::io("append to", &path, e))?;
    f.sync_data()
        .map_err(|e| StateError::io("fdatasync", &path, e))?;
    if created {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Truncates an unterminated last line (a crash mid-append) so the next line starts clean.
fn cut_torn_tail(f: &mut File, path: &Path) -> Result<()> {
    let io = |what: &'static str| move |e| StateError::io(what, path, e);
    let len = f.metadata().map_err(io("stat"))?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1)).map_err(io("read"))?;
    f.read_exact(&mut last).map_err(io("read"))?;
    if last[0] == b'\n' {
        return Ok(());
    }
    // Find the end of the last complete line, reading backwards in chunks.
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start)).map_err(io("read"))?;
        f.read_exact(chunk).map_err(io("read"))?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            break start + i as u64 + 1;
        }
        end = start;
    };
    f.set_len(keep).map_err(io("truncate"))?;
    Ok(())
}

/// The lines of `path` parsed as `T` (`None` when the file does not exist). An unterminated last
/// line is ignored; any other line that does not parse is [`StateError::CorruptLine`] at `file:line`.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<Vec<T>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("read", path, e)),
    };
    let pieces: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let n = pieces.len();
    let mut out = Vec::new();
    for (i, line) in pieces.into_iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<T>(line) {
            Ok(v) => out.push(v),
            // The last piece has no newline: an append cut short, never acknowledged.
            Err(_) if i + 1 == n => break,
            Err(source) => {
                return Err(StateError::CorruptLine {
                    location: format!("{}:{}", path.display(), i + 1),
                    source,
                })
            }
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tails_are_ignored_then_cut_and_corrupt_lines_are_named() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b");
        append(&dir, "x.jsonl", &serde_json::json!({"n": 1})).expect("create");
        let path = dir.join("x.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"n\": 2").expect("torn");
        drop(f);
        assert_eq!(
            read::<serde_json::Value>(&path).expect("read"),
            Some(vec![serde_json::json!({"n": 1})])
        );
        append(&dir, "x.jsonl", &serde_json::json!({"n": 3})).expect("append");
        assert_eq!(
            fs::read_to_string(&path).expect("text"),
            "{\"n\":1}\n{\"n\":3}\n"
        );
        fs::write(&path, "{\"n\":1}\nnot json\n{\"n\":3}\n").expect("corrupt");
        let err = read::<serde_json::Value>(&path)
            .expect_err("corrupt")
            .to_string();
        assert!(err.contains("x.jsonl:2"), "{err}");
        assert_eq!(
            read::<serde_json::Value>(&dir.join("none")).expect("none"),
            None
        );
    }

    #[test]
    fn a_torn_first_line_is_cut_entirely() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("x.jsonl");
        fs::write(&path, "{\"n\"").expect("torn");
        append(tmp.path(), "x.jsonl", &serde_json::json!({"n": 1})).expect("append");
        assert_eq!(fs::read_to_string(&path).expect("text"), "{\"n\":1}\n");
    }
}
