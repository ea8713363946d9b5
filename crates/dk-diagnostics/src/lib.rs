//! `dk-diagnostics` owns the one diagnostic model of `dk`: [`Diagnostic`] (code, severity, message,
//! located labels, help), the one code space ([`Code`], documented in `docs/diagnostics.md`), the
//! source texts the labels point into ([`Sources`]) and the renderers: human (miette snippets),
//! JSON, SARIF 2.1.0 and JUnit XML.
//!
//! Libraries build diagnostics and return them; only the CLI chooses a renderer and prints.

mod codes;
pub mod render;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

pub use codes::{markdown_reference, Code};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// A place in a source file: byte range plus the 1-based line and column of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes (may be 0).
    pub len: usize,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

/// A located label: a file (as displayed, relative to where `dk` was pointed) and a span in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Location {
    pub file: Arc<str>,
    #[serde(flatten)]
    pub span: Span,
}

impl Location {
    pub fn new(file: Arc<str>, span: Span) -> Self {
        Location { file, span }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.span.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.span.line, self.span.column)
        }
    }
}

/// A secondary location with its own message ("first defined here").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Related {
    pub location: Location,
    pub message: String,
}

/// One finding about the user's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// Where; `None` for project-wide findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Text shown under the primary span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with the code's default severity.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.default_severity(),
            message: message.into(),
            location: None,
            label: None,
            related: Vec::new(),
            help: None,
        }
    }

    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn at_opt(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    pub fn related(mut self, location: Location, message: impl Into<String>) -> Self {
        self.related.push(Related {
            location,
            message: message.into(),
        });
        self
    }

    /// The help line: the producer's, else the first sentence of the code's explanation.
    pub fn effective_help(&self) -> String {
        self.help
            .clone()
            .unwrap_or_else(|| self.code.explanation().to_string())
    }

    /// Sort key giving a stable order: file, line, column, code.
    pub fn sort_key(&self) -> (Arc<str>, u32, u32, Code, String) {
        match &self.location {
            Some(l) => (
                l.file.clone(),
                l.span.line,
                l.span.column,
                self.code,
                self.message.clone(),
            ),
            None => (Arc::from(""), 0, 0, self.code, self.message.clone()),
        }
    }
}

/// Counts per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    pub files: usize,
}

impl Summary {
    pub fn of(diags: &[Diagnostic], files: usize) -> Self {
        let mut s = Summary {
            files,
            ..Summary::default()
        };
        for d in diags {
            match d.severity {
                Severity::Error => s.errors += 1,
                Severity::Warning => s.warnings += 1,
                Severity::Info => s.infos += 1,
            }
        }
        s
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {}, {} in {}",
            plural(self.errors, "error"),
            plural(self.warnings, "warning"),
            plural(self.infos, "note"),
            plural(self.files, "file")
        )
    }
}

/// The texts of the files diagnostics point into, by displayed path.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: BTreeMap<Arc<str>, Arc<str>>,
}

impl Sources {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, path: Arc<str>, text: Arc<str>) {
        self.files.insert(path, text);
    }

    pub fn get(&self, path: &str) -> Option<&Arc<str>> {
        self.files.get(path)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Displayed paths of every file, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &Arc<str>> {
        self.files.keys()
    }
}

/// Computes a [`Span`] from byte offsets into `text` (line and column counted here).
pub fn span_from_offsets(text: &str, start: usize, end: usize) -> Span {
    let start = start.min(text.len());
    let end = end.clamp(start, text.len());
    let before = &text[..start];
    let line = before.matches('\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = text[line_start..start].chars().count() as u32 + 1;
    Span {
        offset: start,
        len: end - start,
        line,
        column,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_from_offsets_counts_lines_and_chars() {
        let text = "a: 1\nbé: x\n";
        let s = span_from_offsets(text, 9, 10);
        assert_eq!((s.line, s.column), (2, 4));
        assert_eq!(s.len, 1);
    }

    #[test]
    fn summary_pluralises() {
        let d = vec![Diagnostic::new(Code::NameInvalid, "x")];
        assert_eq!(
            Summary::of(&d, 1).to_string(),
            "1 error, 0 warnings, 0 notes in 1 file"
        );
    }
}
