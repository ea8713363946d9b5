//! Renderers: the same list of diagnostics as human text (miette snippets), JSON, SARIF 2.1.0 and
//! JUnit XML. Each returns a `String`; the caller prints it. [`junit_xml`] is the one JUnit writer
//! of dk: `dk lint` renders diagnostics through it and `dk test` its check and unit-test results.

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde_json::json;

use crate::{Code, Diagnostic, Location, Severity, Sources, Summary};

/// Options of the human renderer.
#[derive(Debug, Clone, Copy)]
pub struct HumanOptions {
    pub color: bool,
    pub width: usize,
}

impl Default for HumanOptions {
    fn default() -> Self {
        HumanOptions {
            color: false,
            width: 100,
        }
    }
}

/// miette view of one diagnostic (and, as `related`, its secondary locations).
struct MietteView<'a> {
    message: String,
    code: Option<Code>,
    severity: Severity,
    help: Option<String>,
    source: Option<NamedSource<Arc<str>>>,
    label: Option<(SourceSpan, Option<String>)>,
    related: Vec<MietteView<'a>>,
    _sources: &'a Sources,
}

impl fmt::Debug for MietteView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for MietteView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MietteView<'_> {}

impl miette::Diagnostic for MietteView<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.code.map(|c| Box::new(c.id()) as Box<dyn fmt::Display>)
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h.as_str()) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (span, text) = self.label.clone()?;
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(text, span),
        )))
    }
    fn related<'b>(&'b self) -> Option<Box<dyn Iterator<Item = &'b dyn miette::Diagnostic> + 'b>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(
            self.related.iter().map(|r| r as &dyn miette::Diagnostic),
        ))
    }
}

fn source_and_span(
    sources: &Sources,
    loc: &Location,
) -> (Option<NamedSource<Arc<str>>>, Option<SourceSpan>) {
    match sources.get(&loc.file) {
        Some(text) if loc.span.line > 0 => {
            let offset = loc.span.offset.min(text.len());
            let len = loc.span.len.min(text.len() - offset);
            (
                Some(NamedSource::new(loc.file.as_ref(), text.clone()).with_language("yaml")),
                Some(SourceSpan::new(offset.into(), len)),
            )
        }
        _ => (None, None),
    }
}

fn view<'a>(d: &Diagnostic, sources: &'a Sources) -> MietteView<'a> {
    let (source, span) = match &d.location {
        Some(loc) => source_and_span(sources, loc),
        None => (None, None),
    };
    // Without a snippet, keep the position visible in the message.
    let message = match (&d.location, &source) {
        (Some(loc), None) => format!("{}: {}", loc, d.message),
        _ => d.message.clone(),
    };
    let related = d
        .related
        .iter()
        .map(|r| {
            let (source, span) = source_and_span(sources, &r.location);
            let message = if source.is_some() {
                r.message.clone()
            } else {
                format!("{}: {}", r.location, r.message)
            };
            MietteView {
                message,
                code: None,
                severity: Severity::Info,
                help: None,
                label: span.map(|s| (s, Some(r.message.clone()))),
                source,
                related: Vec::new(),
                _sources: sources,
            }
        })
        .collect();
    MietteView {
        message,
        code: Some(d.code),
        severity: d.severity,
        help: Some(d.effective_help()),
        label: span.map(|s| {
            (
                s,
                Some(d.label.clone().unwrap_or_else(|| "here".to_string())),
            )
        }),
        source,
        related,
        _sources: sources,
    }
}

/// Human output: one miette report per diagnostic, then nothing else (the caller adds the summary).
pub fn human(diags: &[Diagnostic], sources: &Sources, opts: HumanOptions) -> String {
    let theme = if opts.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(opts.width)
        .with_links(false);
    let mut out = String::new();
    for d in diags {
        let v = view(d, sources);
        if handler.render_report(&mut out, &v).is_err() {
            out.push_str(&format!("{} [{}] {}\n", d.severity, d.code, d.message));
        }
        out.push('\n');
    }
    out
}

/// One line per diagnostic: `file:line:col: severity[CODE]: message`.
pub fn short(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        match &d.location {
            Some(l) => out.push_str(&format!("{l}: {}[{}]: {}\n", d.severity, d.code, d.message)),
            None => out.push_str(&format!("{}[{}]: {}\n", d.severity, d.code, d.message)),
        }
    }
    out
}

fn location_json(l: &Location) -> serde_json::Value {
    json!({"file": l.file.as_ref(), "line": l.span.line, "column": l.span.column,
           "offset": l.span.offset, "length": l.span.len})
}

/// JSON: `{"version": 1, "summary": {...}, "diagnostics": [...]}` (documented in docs/lint.md).
pub fn json(diags: &[Diagnostic], summary: Summary) -> String {
    let items: Vec<_> = diags
        .iter()
        .map(|d| {
            let mut o = json!({
                "code": d.code.id(),
                "severity": d.severity,
                "message": d.message,
                "help": d.effective_help(),
            });
            if let Some(l) = &d.location {
                o["location"] = location_json(l);
            }
            if let Some(label) = &d.label {
                o["label"] = json!(label);
            }
            if !d.related.is_empty() {
                o["related"] = d
                    .related
                    .iter()
                    .map(|r| json!({"message": r.message, "location": location_json(&r.location)}))
                    .collect();
            }
            o
        })
        .collect();
    let doc = json!({"version": 1, "summary": summary, "diagnostics": items});
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn sarif_location(l: &Location) -> serde_json::Value {
    let mut region = json!({});
    if l.span.line > 0 {
        region = json!({"startLine": l.span.line, "startColumn": l.span.column,
                        "charOffset": l.span.offset, "charLength": l.span.len});
    }
    json!({"physicalLocation": {"artifactLocation": {"uri": l.file.as_ref(), "uriBaseId": "%SRCROOT%"}, "region": region}})
}

/// SARIF 2.1.0, one run, every code as a rule (so code-scanning UIs show titles and help).
pub fn sarif(diags: &[Diagnostic], tool_version: &str) -> String {
    let rules: Vec<_> = Code::ALL
        .iter()
        .map(|c| {
            json!({
                "id": c.id(),
                "shortDescription": {"text": c.title()},
                "fullDescription": {"text": c.explanation()},
                "help": {"text": c.explanation()},
                "defaultConfiguration": {"level": sarif_level(c.default_severity())},
            })
        })
        .collect();
    let results: Vec<_> = diags
        .iter()
        .map(|d| {
            let mut r = json!({
                "ruleId": d.code.id(),
                "ruleIndex": Code::ALL.iter().position(|c| *c == d.code).unwrap_or(0),
                "level": sarif_level(d.severity),
                "message": {"text": format!("{} (help: {})", d.message, d.effective_help())},
            });
            if let Some(l) = &d.location {
                r["locations"] = json!([sarif_location(l)]);
            }
            if !d.related.is_empty() {
                r["relatedLocations"] = d
                    .related
                    .iter()
                    .enumerate()
                    .map(|(i, rel)| {
                        let mut loc = sarif_location(&rel.location);
                        loc["id"] = json!(i);
                        loc["message"] = json!({"text": rel.message});
                        loc
                    })
                    .collect();
            }
            r
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "dk",
                "version": tool_version,
                "informationUri": "https://github.com/datakit/dk/blob/main/docs/diagnostics.md",
                "rules": rules,
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": "./"}},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// Escapes text for XML attribute and element content.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// One test case of a JUnit report.
#[derive(Debug, Clone, PartialEq)]
pub struct JunitCase {
    pub name: String,
    pub classname: String,
    /// Seconds.
    pub time: Option<f64>,
    pub outcome: JunitOutcome,
    /// Text for `<system-out>`.
    pub system_out: Option<String>,
}

/// How a JUnit test case ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JunitOutcome {
    Passed,
    /// An assertion failed: `<failure type message>body</failure>`.
    Failure {
        kind: String,
        message: String,
        body: String,
    },
    /// The test could not run: `<error type message>body</error>`.
    Error {
        kind: String,
        message: String,
        body: String,
    },
    Skipped {
        message: String,
    },
}

/// One `<testsuite>` of a JUnit report.
#[derive(Debug, Clone, PartialEq)]
pub struct JunitSuite {
    pub name: String,
    /// Seconds.
    pub time: Option<f64>,
    pub cases: Vec<JunitCase>,
}

/// The one JUnit XML writer of dk (used by `dk lint -o junit` and `dk test --junit`): a
/// `<testsuites>` document with the counts JUnit consumers expect on every level.
pub fn junit_xml(name: &str, suites: &[JunitSuite]) -> String {
    fn count(cases: &[JunitCase], f: fn(&JunitOutcome) -> bool) -> usize {
        cases.iter().filter(|c| f(&c.outcome)).count()
    }
    fn is_failure(o: &JunitOutcome) -> bool {
        matches!(o, JunitOutcome::Failure { .. })
    }
    fn is_error(o: &JunitOutcome) -> bool {
        matches!(o, JunitOutcome::Error { .. })
    }
    fn is_skipped(o: &JunitOutcome) -> bool {
        matches!(o, JunitOutcome::Skipped { .. })
    }
    let time_attr = |t: Option<f64>| t.map(|t| format!(" time=\"{t:.3}\"")).unwrap_or_default();
    let all: Vec<JunitCase> = suites.iter().flat_map(|s| s.cases.clone()).collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
        xml_escape(name),
        all.len(),
        count(&all, is_failure),
        count(&all, is_error)
    ));
    for suite in suites {
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\"{}>\n",
            xml_escape(&suite.name),
            suite.cases.len(),
            count(&suite.cases, is_failure),
            count(&suite.cases, is_error),
            count(&suite.cases, is_skipped),
            time_attr(suite.time)
        ));
        for case in &suite.cases {
            let open = format!(
                "    <testcase name=\"{}\" classname=\"{}\"{}",
                xml_escape(&case.name),
                xml_escape(&case.classname),
                time_attr(case.time)
            );
            if case.outcome == JunitOutcome::Passed && case.system_out.is_none() {
                out.push_str(&open);
                out.push_str("/>\n");
                continue;
            }
            out.push_str(&open);
            out.push_str(">\n");
            match &case.outcome {
                JunitOutcome::Passed => {}
                JunitOutcome::Failure {
                    kind,
                    message,
                    body,
                } => out.push_str(&format!(
                    "      <failure type=\"{}\" message=\"{}\">{}</failure>\n",
                    xml_escape(kind),
                    xml_escape(message),
                    xml_escape(body)
                )),
                JunitOutcome::Error {
                    kind,
                    message,
                    body,
                } => out.push_str(&format!(
                    "      <error type=\"{}\" message=\"{}\">{}</error>\n",
                    xml_escape(kind),
                    xml_escape(message),
                    xml_escape(body)
                )),
                JunitOutcome::Skipped { message } => out.push_str(&format!(
                    "      <skipped message=\"{}\"/>\n",
                    xml_escape(message)
                )),
            }
            if let Some(text) = &case.system_out {
                out.push_str(&format!(
                    "      <system-out>{}</system-out>\n",
                    xml_escape(text)
                ));
            }
            out.push_str("    </testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// JUnit XML: one `<testsuite>` per file that was checked, one `<testcase>` per diagnostic.
/// Errors are `<failure>`s; warnings and notes are passing test cases whose text is in
/// `<system-out>` (with `--strict`, warnings arrive here already promoted to errors). A file
/// without diagnostics has one passing test case, so every checked file is visible.
pub fn junit(diags: &[Diagnostic], sources: &Sources, suite_name: &str) -> String {
    use std::collections::BTreeMap;
    let mut by_file: BTreeMap<String, Vec<&Diagnostic>> = BTreeMap::new();
    for p in sources.paths() {
        by_file.entry(p.to_string()).or_default();
    }
    for d in diags {
        let f = d
            .location
            .as_ref()
            .map(|l| l.file.to_string())
            .unwrap_or_else(|| "(project)".to_string());
        by_file.entry(f).or_default().push(d);
    }
    let suites: Vec<JunitSuite> = by_file
        .iter()
        .map(|(file, ds)| {
            let mut cases: Vec<JunitCase> = ds
                .iter()
                .map(|d| {
                    let pos = d
                        .location
                        .as_ref()
                        .map(|l| format!(" {}:{}", l.span.line, l.span.column))
                        .unwrap_or_default();
                    let body = format!(
                        "{}{}\nhelp: {}",
                        d.location
                            .as_ref()
                            .map(|l| format!("{l}: "))
                            .unwrap_or_default(),
                        d.message,
                        d.effective_help()
                    );
                    let (outcome, system_out) = if d.severity == Severity::Error {
                        (
                            JunitOutcome::Failure {
                                kind: d.code.to_string(),
                                message: d.message.clone(),
                                body,
                            },
                            None,
                        )
                    } else {
                        (
                            JunitOutcome::Passed,
                            Some(format!("{}: {body}", d.severity)),
                        )
                    };
                    JunitCase {
                        name: format!("{}{} {}", d.code, pos, d.code.title()),
                        classname: file.clone(),
                        time: None,
                        outcome,
                        system_out,
                    }
                })
                .collect();
            if cases.is_empty() {
                cases.push(JunitCase {
                    name: "lint".into(),
                    classname: file.clone(),
                    time: None,
                    outcome: JunitOutcome::Passed,
                    system_out: None,
                });
            }
            JunitSuite {
                name: file.clone(),
                time: None,
                cases,
            }
        })
        .collect();
    junit_xml(suite_name, &suites)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{span_from_offsets, Diagnostic};

    fn sample() -> (Vec<Diagnostic>, Sources) {
        let text: Arc<str> = Arc::from("kind: Transform\nmetadata:\n  name: \"\"\n");
        let mut sources = Sources::new();
        sources.insert(Arc::from("dk.yaml"), text.clone());
        let d = Diagnostic::new(Code::NameInvalid, "metadata.name is required")
            .at(Location::new(
                Arc::from("dk.yaml"),
                span_from_offsets(&text, 34, 36),
            ))
            .label("empty name");
        (vec![d], sources)
    }

    #[test]
    fn human_shows_snippet_code_and_help() {
        let (d, s) = sample();
        let out = human(&d, &s, HumanOptions::default());
        assert!(out.contains("E001"), "{out}");
        assert!(out.contains("dk.yaml:3:9"), "{out}");
        assert!(out.contains("empty name"), "{out}");
        assert!(out.contains("help:"), "{out}");
    }

    #[test]
    fn junit_escapes_and_counts() {
        let (mut d, s) = sample();
        d[0].message = "a <b> & \"c\"".into();
        let out = junit(&d, &s, "dk lint");
        assert!(out.contains("failures=\"1\""));
        assert!(out.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
    }

    #[test]
    fn junit_xml_counts_every_outcome() {
        let case = |name: &str, outcome: JunitOutcome| JunitCase {
            name: name.into(),
            classname: "orders".into(),
            time: Some(0.25),
            outcome,
            system_out: None,
        };
        let suites = vec![JunitSuite {
            name: "checks".into(),
            time: Some(1.0),
            cases: vec![
                case("a", JunitOutcome::Passed),
                case(
                    "b",
                    JunitOutcome::Failure {
                        kind: "unique".into(),
                        message: "2 rows".into(),
                        body: "x < y".into(),
                    },
                ),
                case(
                    "c",
                    JunitOutcome::Error {
                        kind: "error".into(),
                        message: "no table".into(),
                        body: String::new(),
                    },
                ),
                case(
                    "d",
                    JunitOutcome::Skipped {
                        message: "files".into(),
                    },
                ),
            ],
        }];
        let out = junit_xml("dk test", &suites);
        assert!(
            out.contains("<testsuites name=\"dk test\" tests=\"4\" failures=\"1\" errors=\"1\">"),
            "{out}"
        );
        assert!(
            out.contains("tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\" time=\"1.000\""),
            "{out}"
        );
        assert!(
            out.contains("<testcase name=\"a\" classname=\"orders\" time=\"0.250\"/>"),
            "{out}"
        );
        assert!(out.contains("x &lt; y</failure>"), "{out}");
        assert!(out.contains("<skipped message=\"files\"/>"), "{out}");
    }

    #[test]
    fn sarif_has_rules_and_result() {
        let (d, _) = sample();
        let v: serde_json::Value = serde_json::from_str(&sarif(&d, "0.1.0")).unwrap();
        assert_eq!(v["version"], "2.1.0");
        assert_eq!(v["runs"][0]["results"][0]["ruleId"], "E001");
        assert_eq!(
            v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"],
            3
        );
    }
}
