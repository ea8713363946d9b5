//! Node selection, dbt-like. The grammar (documented with examples in `docs/selectors.md`):
//!
//! ```text
//! selector     = term { " " term }            union of terms
//! term         = atom { "," atom }            intersection of atoms
//! atom         = [ [N] "+" ] method [ "+" [N] ]
//! method       = NAME                          a dataset and/or transform of that name
//!              | "tag:" KEY [ "=" VALUE ]      metadata.labels
//!              | "runtime:" RUNTIME            transforms by runtime (full or short name)
//!              | "store:" STORE                datasets in the store and transforms touching them
//!              | "kind:" ( "dataset" | "transform" )
//!              | "dataset:" NAME | "transform:" NAME
//! ```
//! `+x` adds every ancestor, `x+` every descendant; `2+x` / `x+1` limit the depth (in edges:
//! datasets and transforms alternate, so `t+2` reaches the next transforms). `--exclude` takes the
//! same grammar and subtracts.

use std::fmt;
use std::str::FromStr;

use crate::graph::{suggestion_suffix, Graph, NodeIx, NodeKind, NodeSet};

/// Methods a selector may use, in the order error messages list them.
const METHODS: &[&str] = &["tag", "runtime", "store", "kind", "dataset", "transform"];

/// A selector parse or evaluation error. `column` is 1-based, in characters of the selector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("empty selector: give a name, `tag:KEY=VALUE`, `runtime:R`, `store:S` or `kind:K`")]
    Empty,
    #[error("invalid selector \"{selector}\" at column {column}: empty term (two commas in a row, or a comma at an end)")]
    EmptyAtom { selector: String, column: usize },
    #[error("invalid selector \"{selector}\" at column {column}: unexpected character '{found}'")]
    UnexpectedChar {
        selector: String,
        column: usize,
        found: char,
    },
    #[error(
        "invalid selector \"{selector}\" at column {column}: `+` needs a name or method next to it"
    )]
    MissingName { selector: String, column: usize },
    #[error("invalid selector \"{selector}\" at column {column}: depth `{depth}` is not a number of edges")]
    BadDepth {
        selector: String,
        column: usize,
        depth: String,
    },
    #[error("invalid selector \"{selector}\" at column {column}: unknown method `{method}:` (known: tag, runtime, store, kind, dataset, transform){}", suggestion_suffix(.suggestion))]
    UnknownMethod {
        selector: String,
        column: usize,
        method: String,
        suggestion: Option<String>,
    },
    #[error("invalid selector \"{selector}\" at column {column}: `{method}:` needs a value, e.g. `{example}`")]
    MissingValue {
        selector: String,
        column: usize,
        method: String,
        example: &'static str,
    },
    #[error("invalid selector \"{selector}\" at column {column}: `kind:{value}` is not a kind (use `kind:dataset` or `kind:transform`)")]
    BadKind {
        selector: String,
        column: usize,
        value: String,
    },
    #[error("selector \"{name}\" matches no {what}{}", suggestion_suffix(.suggestion))]
    UnknownName {
        name: String,
        what: &'static str,
        suggestion: Option<String>,
    },
}

/// How far a graph operator reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// `+name` / `name+`.
    All,
    /// `2+name` / `name+1`: at most this many edges.
    Limited(u32),
}

impl Depth {
    fn limit(self) -> Option<u32> {
        match self {
            Depth::All => None,
            Depth::Limited(n) => Some(n),
        }
    }
}

/// The base of an atom: what it matches before graph operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// A dataset and/or a transform of this name (both if both exist).
    Name(String),
    /// `tag:KEY=VALUE` (value `None`: `tag:KEY`, any value).
    Tag { key: String, value: Option<String> },
    /// `runtime:R` — transforms whose runtime or short runtime name is R.
    Runtime(String),
    /// `store:S` — datasets in store S and the transforms reading or writing them.
    Store(String),
    /// `kind:dataset` / `kind:transform`.
    Kind(NodeKind),
    /// `dataset:NAME` / `transform:NAME` — one namespace only.
    Qualified(NodeKind, String),
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Name(n) => f.write_str(n),
            Method::Tag {
                key,
                value: Some(v),
            } => write!(f, "tag:{key}={v}"),
            Method::Tag { key, value: None } => write!(f, "tag:{key}"),
            Method::Runtime(r) => write!(f, "runtime:{r}"),
            Method::Store(s) => write!(f, "store:{s}"),
            Method::Kind(k) => write!(f, "kind:{k}"),
            Method::Qualified(k, n) => write!(f, "{k}:{n}"),
        }
    }
}

/// One atom: a method with optional ancestor / descendant expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    pub method: Method,
    pub ancestors: Option<Depth>,
    pub descendants: Option<Depth>,
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ancestors {
            Some(Depth::All) => f.write_str("+")?,
            Some(Depth::Limited(n)) => write!(f, "{n}+")?,
            None => {}
        }
        write!(f, "{}", self.method)?;
        match self.descendants {
            Some(Depth::All) => f.write_str("+"),
            Some(Depth::Limited(n)) => write!(f, "+{n}"),
            None => Ok(()),
        }
    }
}

/// A parsed selector: a union (space) of intersections (comma) of atoms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub terms: Vec<Vec<Atom>>,
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let terms: Vec<String> = self
            .terms
            .iter()
            .map(|t| {
                t.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        f.write_str(&terms.join(" "))
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

/// A token: text and the 0-based character column where it starts.
type Tok<'a> = (&'a str, usize);

impl Selector {
    /// Parses the grammar above. Several command-line words can be joined with spaces first.
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        let err_sel = input.to_string();
        // Words separated by whitespace, with their character columns; a comma at the end of a
        // word or the start of the next one glues the two words into one term.
        let mut words: Vec<(String, usize)> = Vec::new();
        let mut cur: Option<(String, usize)> = None;
        for (col, c) in input.chars().enumerate() {
            if c.is_whitespace() {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            } else {
                cur.get_or_insert_with(|| (String::new(), col)).0.push(c);
            }
        }
        words.extend(cur);
        if words.is_empty() {
            return Err(SelectorError::Empty);
        }
        // Glue: "a, b" and "a ,b" are one term.
        let mut terms: Vec<Vec<(char, usize)>> = Vec::new();
        for (w, col) in words {
            let chars: Vec<(char, usize)> =
                w.chars().enumerate().map(|(i, c)| (c, col + i)).collect();
            let glue = match terms.last() {
                Some(prev) => prev.last().is_some_and(|(c, _)| *c == ',') || w.starts_with(','),
                None => false,
            };
            match (glue, terms.last_mut()) {
                (true, Some(prev)) => prev.extend(chars),
                _ => terms.push(chars),
            }
        }
        let mut out = Vec::new();
        for term in terms {
            let mut atoms = Vec::new();
            let mut start = 0;
            for i in 0..=term.len() {
                if i == term.len() || term[i].0 == ',' {
                    let part = &term[start..i];
                    if part.is_empty() {
                        let column = term.get(i).or(term.last()).map(|(_, c)| c + 1).unwrap_or(1);
                        return Err(SelectorError::EmptyAtom {
                            selector: err_sel,
                            column,
                        });
                    }
                    let text: String = part.iter().map(|(c, _)| c).collect();
                    atoms.push(parse_atom(&err_sel, (&text, part[0].1))?);
                    start = i + 1;
                }
            }
            out.push(atoms);
        }
        Ok(Selector { terms: out })
    }

    /// Parses several command-line words as one selector (joined by spaces: a union).
    pub fn parse_words<S: AsRef<str>>(words: &[S]) -> Result<Selector, SelectorError> {
        let joined: Vec<&str> = words.iter().map(|w| w.as_ref()).collect();
        Selector::parse(&joined.join(" "))
    }

    /// The nodes this selector selects in `g`. A bare name (or `dataset:`/`transform:`) that
    /// matches nothing is an error; other methods may match nothing.
    pub fn select(&self, g: &Graph) -> Result<NodeSet, SelectorError> {
        let mut union = NodeSet::empty(g.len());
        for term in &self.terms {
            let mut inter = NodeSet::full(g.len());
            for atom in term {
                inter.intersect_with(&atom.select(g)?);
            }
            union.union_with(&inter);
        }
        Ok(union)
    }
}

impl Atom {
    /// The nodes this atom selects, with its graph operators applied.
    pub fn select(&self, g: &Graph) -> Result<NodeSet, SelectorError> {
        let base: Vec<NodeIx> = self.method.matches(g)?;
        let mut set = NodeSet::empty(g.len());
        for &b in &base {
            set.insert(b);
        }
        if let Some(d) = self.ancestors {
            set.union_with(&g.ancestors(&base, d.limit()));
        }
        if let Some(d) = self.descendants {
            set.union_with(&g.descendants(&base, d.limit()));
        }
        Ok(set)
    }
}

impl Method {
    /// The nodes the method matches (before graph operators), in node order.
    pub fn matches(&self, g: &Graph) -> Result<Vec<NodeIx>, SelectorError> {
        let found: Vec<NodeIx> = match self {
            Method::Name(n) => {
                let v = g.find_name(n);
                if v.is_empty() {
                    return Err(SelectorError::UnknownName {
                        name: n.clone(),
                        what: "dataset or transform",
                        suggestion: g.suggest(n, None),
                    });
                }
                v
            }
            Method::Qualified(k, n) => match g.find(*k, n) {
                Some(ix) => vec![ix],
                None => {
                    return Err(SelectorError::UnknownName {
                        name: format!("{k}:{n}"),
                        what: if *k == NodeKind::DataSet {
                            "dataset"
                        } else {
                            "transform"
                        },
                        suggestion: g.suggest(n, Some(*k)).map(|s| format!("{k}:{s}")),
                    })
                }
            },
            Method::Tag { key, value } => g
                .iter()
                .filter(|(_, n)| match (n.labels.get(key), value) {
                    (Some(v), Some(want)) => v == want,
                    (Some(_), None) => true,
                    (None, _) => false,
                })
                .map(|(ix, _)| ix)
                .collect(),
            Method::Runtime(r) => g
                .iter()
                .filter(|(_, n)| {
                    n.kind == NodeKind::Transform
                        && (n.runtime.as_deref() == Some(r.as_str()) || n.runtime_short() == r)
                })
                .map(|(ix, _)| ix)
                .collect(),
            Method::Store(s) => {
                let mut set = NodeSet::empty(g.len());
                for (ix, n) in g.iter() {
                    if n.kind == NodeKind::DataSet && n.store.as_deref() == Some(s.as_str()) {
                        set.insert(ix);
                        for t in g.predecessors(ix).chain(g.successors(ix)) {
                            set.insert(t);
                        }
                    }
                }
                set.iter().collect()
            }
            Method::Kind(k) => g
                .iter()
                .filter(|(_, n)| n.kind == *k)
                .map(|(ix, _)| ix)
                .collect(),
        };
        Ok(found)
    }
}

fn parse_atom(sel: &str, (text, col): Tok<'_>) -> Result<Atom, SelectorError> {
    let chars: Vec<char> = text.chars().collect();
    let column = |i: usize| col + i + 1;
    // Leading `[N]+`.
    let mut lo = 0;
    let mut ancestors = None;
    let digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    if chars.get(digits) == Some(&'+') {
        ancestors = Some(if digits == 0 {
            Depth::All
        } else {
            let d: String = chars[..digits].iter().collect();
            Depth::Limited(d.parse().map_err(|_| SelectorError::BadDepth {
                selector: sel.into(),
                column: column(0),
                depth: d,
            })?)
        });
        lo = digits + 1;
    }
    // Trailing `+[N]`.
    let mut hi = chars.len();
    let mut descendants = None;
    let tail_digits = chars[lo..]
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if hi - tail_digits > lo && chars[hi - tail_digits - 1] == '+' {
        let plus = hi - tail_digits - 1;
        descendants = Some(if tail_digits == 0 {
            Depth::All
        } else {
            let d: String = chars[plus + 1..].iter().collect();
            Depth::Limited(d.parse().map_err(|_| SelectorError::BadDepth {
                selector: sel.into(),
                column: column(plus + 1),
                depth: d,
            })?)
        });
        hi = plus;
    }
    if lo >= hi {
        let at = if lo > 0 { lo - 1 } else { 0 };
        return Err(SelectorError::MissingName {
            selector: sel.into(),
            column: column(at.min(chars.len().saturating_sub(1))),
        });
    }
    let body = &chars[lo..hi];
    let method = match body.iter().position(|c| *c == ':') {
        None => Method::Name(check_name(sel, body, column(lo))?),
        Some(p) => {
            let name: String = body[..p].iter().collect();
            let value = &body[p + 1..];
            let vcol = column(lo + p + 1);
            let mcol = column(lo);
            let missing = |example: &'static str| SelectorError::MissingValue {
                selector: sel.into(),
                column: vcol,
                method: name.clone(),
                example,
            };
            match name.as_str() {
                "tag" => {
                    if value.is_empty() {
                        return Err(missing("tag:domain=analytics"));
                    }
                    match value.iter().position(|c| *c == '=') {
                        Some(e) => {
                            let key = check_name(sel, &value[..e], vcol)?;
                            let v = check_name(sel, &value[e + 1..], vcol + e + 1)?;
                            Method::Tag {
                                key,
                                value: Some(v),
                            }
                        }
                        None => Method::Tag {
                            key: check_name(sel, value, vcol)?,
                            value: None,
                        },
                    }
                }
                "runtime" => {
                    if value.is_empty() {
                        return Err(missing("runtime:dbt"));
                    }
                    Method::Runtime(check_name(sel, value, vcol)?)
                }
                "store" => {
                    if value.is_empty() {
                        return Err(missing("store:warehouse"));
                    }
                    Method::Store(check_name(sel, value, vcol)?)
                }
                "kind" => {
                    if value.is_empty() {
                        return Err(missing("kind:transform"));
                    }
                    let v: String = value.iter().collect();
                    match NodeKind::parse(&v) {
                        Some(k) => Method::Kind(k),
                        None => {
                            return Err(SelectorError::BadKind {
                                selector: sel.into(),
                                column: vcol,
                                value: v,
                            })
                        }
                    }
                }
                "dataset" | "transform" => {
                    if value.is_empty() {
                        return Err(missing(if name == "dataset" {
                            "dataset:orders"
                        } else {
                            "transform:daily-revenue"
                        }));
                    }
                    let kind = if name == "dataset" {
                        NodeKind::DataSet
                    } else {
                        NodeKind::Transform
                    };
                    Method::Qualified(kind, check_name(sel, value, vcol)?)
                }
                _ => {
                    if let Some(i) = body[..p].iter().position(|c| !is_name_char(*c)) {
                        return Err(SelectorError::UnexpectedChar {
                            selector: sel.into(),
                            column: mcol + i,
                            found: body[i],
                        });
                    }
                    let suggestion = dk_manifest::suggest::closest(&name, METHODS.iter().copied())
                        .map(|s| format!("{s}:"));
                    return Err(SelectorError::UnknownMethod {
                        selector: sel.into(),
                        column: mcol,
                        method: name,
                        suggestion,
                    });
                }
            }
        }
    };
    Ok(Atom {
        method,
        ancestors,
        descendants,
    })
}

/// A name, a label key or value, a runtime or a store: `[A-Za-z0-9._/-]+`.
fn check_name(sel: &str, chars: &[char], column: usize) -> Result<String, SelectorError> {
    if chars.is_empty() {
        return Err(SelectorError::MissingName {
            selector: sel.into(),
            column,
        });
    }
    if let Some(i) = chars.iter().position(|c| !is_name_char(*c)) {
        return Err(SelectorError::UnexpectedChar {
            selector: sel.into(),
            column: column + i,
            found: chars[i],
        });
    }
    Ok(chars.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(method: Method, ancestors: Option<Depth>, descendants: Option<Depth>) -> Atom {
        Atom {
            method,
            ancestors,
            descendants,
        }
    }

    fn name(n: &str) -> Method {
        Method::Name(n.to_string())
    }

    fn one(s: &str) -> Atom {
        let sel = Selector::parse(s).expect(s);
        assert_eq!(sel.terms.len(), 1, "{s}");
        assert_eq!(sel.terms[0].len(), 1, "{s}");
        assert_eq!(sel.to_string(), s, "display round-trips");
        sel.terms[0][0].clone()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(one("orders"), atom(name("orders"), None, None));
        assert_eq!(one("+orders"), atom(name("orders"), Some(Depth::All), None));
        assert_eq!(one("orders+"), atom(name("orders"), None, Some(Depth::All)));
        assert_eq!(
            one("+orders+"),
            atom(name("orders"), Some(Depth::All), Some(Depth::All))
        );
        assert_eq!(
            one("2+orders"),
            atom(name("orders"), Some(Depth::Limited(2)), None)
        );
        assert_eq!(
            one("orders+1"),
            atom(name("orders"), None, Some(Depth::Limited(1)))
        );
        assert_eq!(
            one("3+orders+12"),
            atom(
                name("orders"),
                Some(Depth::Limited(3)),
                Some(Depth::Limited(12))
            )
        );
        assert_eq!(
            one("tag:domain=analytics"),
            atom(
                Method::Tag {
                    key: "domain".into(),
                    value: Some("analytics".into())
                },
                None,
                None
            )
        );
        assert_eq!(
            one("tag:pii"),
            atom(
                Method::Tag {
                    key: "pii".into(),
                    value: None
                },
                None,
                None
            )
        );
        assert_eq!(
            one("runtime:dbt"),
            atom(Method::Runtime("dbt".into()), None, None)
        );
        assert_eq!(
            one("store:data-lake"),
            atom(Method::Store("data-lake".into()), None, None)
        );
        assert_eq!(
            one("kind:dataset"),
            atom(Method::Kind(NodeKind::DataSet), None, None)
        );
        assert_eq!(
            one("kind:transform"),
            atom(Method::Kind(NodeKind::Transform), None, None)
        );
        assert_eq!(
            one("dataset:orders"),
            atom(
                Method::Qualified(NodeKind::DataSet, "orders".into()),
                None,
                None
            )
        );
        assert_eq!(
            one("+transform:load+"),
            atom(
                Method::Qualified(NodeKind::Transform, "load".into()),
                Some(Depth::All),
                Some(Depth::All)
            )
        );
        assert_eq!(
            one("+tag:tier=raw"),
            atom(
                Method::Tag {
                    key: "tier".into(),
                    value: Some("raw".into())
                },
                Some(Depth::All),
                None
            )
        );
        // A name may end in digits without being a depth.
        assert_eq!(one("t1"), atom(name("t1"), None, None));
    }

    #[test]
    fn space_is_union_and_comma_is_intersection() {
        let s = Selector::parse("  a  +b,kind:transform   c+1 ").expect("parse");
        assert_eq!(s.terms.len(), 3);
        assert_eq!(s.terms[1].len(), 2);
        assert_eq!(s.to_string(), "a +b,kind:transform c+1");
        // Spaces around a comma keep one term.
        let s = Selector::parse("a , b,  c").expect("parse");
        assert_eq!(s.terms.len(), 1);
        assert_eq!(s.to_string(), "a,b,c");
        let s = Selector::parse_words(&["x", "tag:a=b"]).expect("words");
        assert_eq!(s.to_string(), "x tag:a=b");
    }

    #[test]
    fn parse_errors_are_typed_and_clear() {
        let err = |s: &str| Selector::parse(s).expect_err(s);
        assert_eq!(err("   "), SelectorError::Empty);
        assert!(matches!(
            err("a,,b"),
            SelectorError::EmptyAtom { column: 3, .. }
        ));
        assert!(matches!(err("a,"), SelectorError::EmptyAtom { .. }));
        assert!(matches!(err("+"), SelectorError::MissingName { .. }));
        assert!(matches!(err("2+"), SelectorError::MissingName { .. }));
        assert!(matches!(err("++"), SelectorError::MissingName { .. }));
        assert!(matches!(
            err("a+b"),
            SelectorError::UnexpectedChar {
                found: '+',
                column: 2,
                ..
            }
        ));
        assert!(matches!(
            err("@orders"),
            SelectorError::UnexpectedChar { found: '@', .. }
        ));
        assert!(matches!(
            err("99999999999+a"),
            SelectorError::BadDepth { .. }
        ));
        let e = err("a runtme:dbt");
        assert_eq!(
            e.to_string(),
            "invalid selector \"a runtme:dbt\" at column 3: unknown method `runtme:` (known: tag, runtime, store, kind, dataset, transform) (did you mean \"runtime:\"?)"
        );
        assert_eq!(
            err("tag:").to_string(),
            "invalid selector \"tag:\" at column 5: `tag:` needs a value, e.g. `tag:domain=analytics`"
        );
        assert!(matches!(err("tag:k="), SelectorError::MissingName { .. }));
        assert!(matches!(
            err("runtime:"),
            SelectorError::MissingValue { .. }
        ));
        assert!(matches!(err("store:"), SelectorError::MissingValue { .. }));
        assert!(matches!(
            err("dataset:"),
            SelectorError::MissingValue { .. }
        ));
        assert_eq!(
            err("a kind:table").to_string(),
            "invalid selector \"a kind:table\" at column 8: `kind:table` is not a kind (use `kind:dataset` or `kind:transform`)"
        );
    }

    fn graph() -> Graph {
        let text = r#"
apiVersion: datakit.infoblox.dev/v1alpha1
kind: DataSet
metadata: {name: raw, labels: {tier: raw}}
spec: {store: lake, prefix: raw/}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: DataSet
metadata: {name: clean, labels: {tier: curated}}
spec: {store: warehouse, table: clean}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: DataSet
metadata: {name: report}
spec: {store: warehouse, table: report}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Transform
metadata: {name: ingest, labels: {team: a}}
spec: {runtime: cloudquery, inputs: [{dataset: src}], outputs: [{dataset: raw}]}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Transform
metadata: {name: clean, labels: {team: b}}
spec: {runtime: generic-python, inputs: [{dataset: raw}], outputs: [{dataset: clean}]}
---
apiVersion: datakit.infoblox.dev/v1alpha1
kind: Transform
metadata: {name: report}
spec: {runtime: dbt, inputs: [{dataset: clean}], outputs: [{dataset: report}]}
"#;
        Graph::build(&dk_manifest::loader::load_str("p.yaml", text))
    }

    fn sel(g: &Graph, s: &str) -> Vec<String> {
        Selector::parse(s)
            .expect(s)
            .select(g)
            .expect(s)
            .iter()
            .map(|ix| g.node(ix).id().to_string())
            .collect()
    }

    #[test]
    fn evaluates_every_form() {
        let g = graph();
        // A name matches both namespaces.
        assert_eq!(sel(&g, "clean"), ["dataset/clean", "transform/clean"]);
        assert_eq!(sel(&g, "dataset:clean"), ["dataset/clean"]);
        assert_eq!(sel(&g, "transform:clean"), ["transform/clean"]);
        assert_eq!(
            sel(&g, "+transform:clean"),
            [
                "dataset/raw",
                "dataset/src",
                "transform/clean",
                "transform/ingest"
            ]
        );
        assert_eq!(
            sel(&g, "transform:ingest+"),
            [
                "dataset/clean",
                "dataset/raw",
                "dataset/report",
                "transform/clean",
                "transform/ingest",
                "transform/report"
            ]
        );
        // Depth counts edges: ingest+1 is its output, ingest+2 the next transform.
        assert_eq!(
            sel(&g, "transform:ingest+1"),
            ["dataset/raw", "transform/ingest"]
        );
        assert_eq!(
            sel(&g, "transform:ingest+2"),
            ["dataset/raw", "transform/clean", "transform/ingest"]
        );
        assert_eq!(
            sel(&g, "2+transform:report"),
            ["dataset/clean", "transform/clean", "transform/report"]
        );
        assert_eq!(sel(&g, "tag:tier=raw"), ["dataset/raw"]);
        assert_eq!(sel(&g, "tag:team"), ["transform/clean", "transform/ingest"]);
        assert_eq!(sel(&g, "runtime:dbt"), ["transform/report"]);
        assert_eq!(sel(&g, "runtime:cq"), ["transform/ingest"]);
        assert_eq!(sel(&g, "runtime:generic-python"), ["transform/clean"]);
        assert_eq!(
            sel(&g, "store:warehouse"),
            [
                "dataset/clean",
                "dataset/report",
                "transform/clean",
                "transform/report"
            ]
        );
        assert_eq!(sel(&g, "store:nowhere"), Vec::<String>::new());
        assert_eq!(
            sel(&g, "kind:dataset"),
            [
                "dataset/clean",
                "dataset/raw",
                "dataset/report",
                "dataset/src"
            ]
        );
        // Union and intersection.
        assert_eq!(
            sel(&g, "runtime:dbt tag:tier=raw"),
            ["dataset/raw", "transform/report"]
        );
        assert_eq!(
            sel(&g, "+report,kind:transform"),
            ["transform/clean", "transform/ingest", "transform/report"]
        );
        assert_eq!(sel(&g, "store:warehouse,tag:team=b"), ["transform/clean"]);
    }

    #[test]
    fn unknown_names_are_errors_with_suggestions() {
        let g = graph();
        let e = Selector::parse("raww")
            .expect("parse")
            .select(&g)
            .expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "selector \"raww\" matches no dataset or transform (did you mean \"raw\"?)"
        );
        let e = Selector::parse("transform:src")
            .expect("parse")
            .select(&g)
            .expect_err("unknown");
        assert!(matches!(
            e,
            SelectorError::UnknownName {
                what: "transform",
                ..
            }
        ));
    }
}
