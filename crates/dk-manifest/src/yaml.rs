//! YAML text → `serde_json::Value` documents, each with a map from JSON pointer to source span
//! (of the value and, for mapping entries, of the key). Built on saphyr's marked tree, so every
//! node keeps its line and column; saphyr's markers count characters, converted here to bytes.

use std::sync::Arc;

use dk_diagnostics::Span;
use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

/// Spans of one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeSpans {
    /// The mapping key that holds this node, if any.
    pub key: Option<Span>,
    /// The node itself.
    pub value: Span,
}

/// Byte range as stored: (offset, length).
type Raw = (u32, u32);

/// JSON pointer (`/spec/inputs/0/dataset`) → spans. The empty pointer is the document.
///
/// Compact by design (a project has hundreds of thousands of nodes): entries are keyed by a 64-bit
/// hash of the pointer and hold byte ranges only; line and column are computed from the file text
/// when a location is asked for (which happens only for diagnostics).
#[derive(Debug, Clone, Default)]
pub struct SpanMap {
    entries: Vec<(u64, Option<Raw>, Raw)>,
    text: Arc<str>,
}

fn hash_pointer(p: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    h.write(p.as_bytes());
    h.write_u8(0xff);
    h.finish()
}

impl SpanMap {
    fn insert(&mut self, pointer: &str, key: Option<Raw>, value: Raw) {
        self.entries.push((hash_pointer(pointer), key, value));
    }

    fn seal(&mut self) {
        self.entries.sort_by_key(|e| e.0);
        self.entries.dedup_by_key(|e| e.0);
        self.entries.shrink_to_fit();
    }

    fn raw(&self, pointer: &str) -> Option<(Option<Raw>, Raw)> {
        let h = hash_pointer(pointer);
        self.entries
            .binary_search_by_key(&h, |e| e.0)
            .ok()
            .map(|i| (self.entries[i].1, self.entries[i].2))
    }

    fn span(&self, r: Raw) -> Span {
        let start = r.0 as usize;
        dk_diagnostics::span_from_offsets(&self.text, start, start + r.1 as usize)
    }

    /// The text of the file the spans point into.
    pub fn text(&self) -> &Arc<str> {
        &self.text
    }

    /// Whether a node exists at `pointer`.
    pub fn contains(&self, pointer: &str) -> bool {
        self.raw(pointer).is_some()
    }

    /// Whether `pointer` is a mapping entry (has a key span).
    pub fn has_key(&self, pointer: &str) -> bool {
        self.raw(pointer).is_some_and(|(k, _)| k.is_some())
    }

    pub fn get(&self, pointer: &str) -> Option<NodeSpans> {
        self.raw(pointer).map(|(k, v)| NodeSpans {
            key: k.map(|k| self.span(k)),
            value: self.span(v),
        })
    }

    /// The span of the value at `pointer`, or of its nearest existing ancestor.
    pub fn value_or_parent(&self, pointer: &str) -> Span {
        let mut p = pointer;
        loop {
            if let Some((_, v)) = self.raw(p) {
                return self.span(v);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Span::default(),
            }
        }
    }

    /// The span of the key at `pointer` if it is a mapping entry, else of the value (or parent).
    pub fn key_or_value(&self, pointer: &str) -> Span {
        match self.raw(pointer) {
            Some((Some(k), _)) => self.span(k),
            Some((None, v)) => self.span(v),
            None => self.value_or_parent(pointer),
        }
    }
}

/// One YAML document converted.
#[derive(Debug, Clone)]
pub struct YamlDoc {
    pub value: Value,
    pub spans: SpanMap,
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub message: String,
    pub span: Span,
}

/// Converts character indices (saphyr markers) to byte offsets.
struct Offsets<'a> {
    text: &'a str,
    /// Byte offset of each char index, only when the text is not ASCII.
    table: Option<Vec<usize>>,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        let table = if text.is_ascii() {
            None
        } else {
            let mut t: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            t.push(text.len());
            Some(t)
        };
        Offsets { text, table }
    }

    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.text.len()),
            Some(t) => t.get(char_index).copied().unwrap_or(self.text.len()),
        }
    }

    fn raw(&self, s: &saphyr_parser::Span) -> Raw {
        let start = self.byte(s.start.index());
        let end = self.byte(s.end.index()).max(start);
        (start as u32, (end - start) as u32)
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape_pointer(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

/// Parses every document of `text`.
pub fn parse(text: &str) -> Result<Vec<YamlDoc>, YamlError> {
    parse_shared(Arc::from(text))
}

/// Parses every document of a shared text (the span maps keep a reference to it).
pub fn parse_shared(shared: Arc<str>) -> Result<Vec<YamlDoc>, YamlError> {
    let text: &str = &shared;
    let offsets = Offsets::new(text);
    let docs = MarkedYaml::load_from_str(text).map_err(|e| {
        let m = e.marker();
        let at = offsets.byte(m.index());
        YamlError {
            message: e.info().to_string(),
            span: Span {
                offset: at,
                len: 0,
                line: m.line() as u32,
                column: m.col() as u32 + 1,
            },
        }
    })?;
    Ok(docs
        .iter()
        .map(|d| {
            let mut spans = SpanMap {
                entries: Vec::new(),
                text: shared.clone(),
            };
            let mut pointer = String::new();
            let value = convert(d, &offsets, &mut pointer, None, &mut spans);
            spans.seal();
            YamlDoc { value, spans }
        })
        .collect())
}

/// The length of a scalar's own text within its span (saphyr's end marker can run past a closing
/// quote to trailing blanks and a comment).
fn scalar_len(slice: &str) -> usize {
    let bytes = slice.as_bytes();
    match bytes.first() {
        Some(b'"') => {
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => return i + 1,
                    _ => i += 1,
                }
            }
            slice.len()
        }
        Some(b'\'') => {
            let mut i = 1;
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    return i + 1;
                }
                i += 1;
            }
            slice.len()
        }
        Some(b'|') | Some(b'>') => slice.trim_end().len(),
        _ => {
            let cut = slice.find(" #").unwrap_or(slice.len());
            let line_end = slice[..cut].find('\n').unwrap_or(cut);
            let first = &slice[..line_end];
            // Multi-line plain scalars keep their whole extent.
            if line_end < cut {
                slice[..cut].trim_end().len()
            } else {
                first.trim_end().len()
            }
        }
    }
}

fn scalar_to_json(s: &Scalar<'_>) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner())
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

fn key_string(node: &MarkedYaml<'_>) -> String {
    match &node.data {
        YamlData::Value(Scalar::String(s)) => s.to_string(),
        YamlData::Value(Scalar::Null) => String::new(),
        YamlData::Value(s) => match scalar_to_json(s) {
            Value::String(s) => s,
            v => v.to_string(),
        },
        YamlData::Representation(s, _, _) => s.to_string(),
        YamlData::Tagged(_, inner) => key_string(inner),
        _ => String::from("<complex key>"),
    }
}

fn convert(
    node: &MarkedYaml<'_>,
    offsets: &Offsets<'_>,
    pointer: &mut String,
    key: Option<Raw>,
    spans: &mut SpanMap,
) -> Value {
    let mut value_span = offsets.raw(&node.span);
    if matches!(node.data, YamlData::Value(_) | YamlData::Representation(..)) {
        let (o, l) = (value_span.0 as usize, value_span.1 as usize);
        value_span.1 = scalar_len(&offsets.text[o..o + l]) as u32;
    }
    spans.insert(pointer, key, value_span);
    match &node.data {
        YamlData::Value(s) => scalar_to_json(s),
        YamlData::Representation(s, _, _) => Value::String(s.to_string()),
        YamlData::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                out.push(convert(item, offsets, pointer, None, spans));
                pointer.truncate(len);
            }
            Value::Array(out)
        }
        YamlData::Mapping(map) => {
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map.iter() {
                let name = key_string(k);
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape_pointer(&name));
                let key_span = offsets.raw(&k.span);
                let value = convert(v, offsets, pointer, Some(key_span), spans);
                pointer.truncate(len);
                out.insert(name, value);
            }
            Value::Object(out)
        }
        YamlData::Tagged(_, inner) => convert(inner, offsets, pointer, key, spans),
        YamlData::Alias(_) | YamlData::BadValue => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_keys_and_values() {
        let text = "a: 1\nspec:\n  inputs:\n    - dataset: x\n";
        let docs = parse(text).unwrap();
        assert_eq!(docs.len(), 1);
        let s = docs[0].spans.get("/spec/inputs/0/dataset").unwrap();
        assert_eq!((s.value.line, s.value.column), (4, 16));
        let k = s.key.unwrap();
        assert_eq!((k.line, k.column), (4, 7));
        assert_eq!(&text[k.offset..k.offset + k.len], "dataset");
    }

    #[test]
    fn non_ascii_offsets_are_bytes() {
        let text = "d: \"é\"\nname: zz\n";
        let docs = parse(text).unwrap();
        let s = docs[0].spans.get("/name").unwrap().value;
        assert_eq!(&text[s.offset..s.offset + 2], "zz");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.span.line >= 1);
        assert!(!e.message.is_empty());
    }

    #[test]
    fn scalar_spans_stop_before_comments() {
        let text = "a: \"\"  # empty\nb: plain   # c\nc: 'x''y' # q\n";
        let docs = parse(text).unwrap();
        for (p, want) in [("/a", "\"\""), ("/b", "plain"), ("/c", "'x''y'")] {
            let s = docs[0].spans.get(p).unwrap().value;
            assert_eq!(&text[s.offset..s.offset + s.len], want);
        }
    }

    #[test]
    fn multi_document() {
        let docs = parse("a: 1\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value["b"], 2);
    }
}
