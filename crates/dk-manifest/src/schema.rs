//! JSON Schemas generated from the serde types (one source of truth), their export for editors,
//! and structural validation of loaded documents against them.
//!
//! Two variants are generated per kind: **strict** (`additionalProperties: false` everywhere, what
//! `dk lint --strict` enforces) and **open** (unknown fields allowed, what plain `dk lint` accepts
//! without error). The loader validates against the strict variant and turns unknown-field errors
//! into W107 warnings. Required fields, enums and name patterns are in the exported schemas for
//! editors, but the validator reports those itself (with DataKit codes), so they are skipped here.

use std::sync::OnceLock;

use dk_diagnostics::{Code, Diagnostic};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use schemars::JsonSchema;
use serde_json::{json, Value};

use crate::loader::Document;
use crate::model::*;
use crate::suggest;

/// The URL prefix of the exported schemas' `$id`.
pub const SCHEMA_ID_BASE: &str = "https://datakit.infoblox.dev/schemas/v1alpha1";

fn generate<T: JsonSchema>(kind: Kind) -> Value {
    let mut v = schemars::schema_for!(T).to_value();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "$id".into(),
            json!(format!("{SCHEMA_ID_BASE}/{}.schema.json", kind.cli_name())),
        );
        o.insert("title".into(), json!(kind.as_str()));
        o.insert(
            "description".into(),
            json!(format!(
                "dk {} manifest ({API_VERSION}). Generated from the dk types; do not edit.",
                kind.as_str()
            )),
        );
        if let Some(props) = o.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("apiVersion".into(), json!({"const": API_VERSION}));
            props.insert("kind".into(), json!({"const": kind.as_str()}));
        }
    }
    v
}

/// The strict schema of a kind.
pub fn strict_schema(kind: Kind) -> Value {
    match kind {
        Kind::Project => generate::<Project>(kind),
        Kind::Connector => generate::<Connector>(kind),
        Kind::Store => generate::<Store>(kind),
        Kind::DataSet => generate::<DataSet>(kind),
        Kind::DataSetGroup => generate::<DataSetGroup>(kind),
        Kind::Transform => generate::<Transform>(kind),
        Kind::Environment => generate::<Environment>(kind),
        Kind::Policy => generate::<Policy>(kind),
    }
}

/// The open schema of a kind: the strict one without `additionalProperties: false`.
pub fn open_schema(kind: Kind) -> Value {
    fn open(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if o.get("additionalProperties") == Some(&Value::Bool(false)) {
                    o.remove("additionalProperties");
                }
                o.values_mut().for_each(open);
            }
            Value::Array(a) => a.iter_mut().for_each(open),
            _ => {}
        }
    }
    let mut v = strict_schema(kind);
    open(&mut v);
    v
}

/// File name of a kind's exported schema (`transform.schema.json`).
pub fn file_name(kind: Kind) -> String {
    format!("{}.schema.json", kind.cli_name())
}

struct Compiled {
    schema: Value,
    validator: jsonschema::Validator,
}

fn compiled(kind: Kind) -> &'static Compiled {
    static CELLS: OnceLock<Vec<Compiled>> = OnceLock::new();
    let all = CELLS.get_or_init(|| {
        Kind::ALL
            .iter()
            .map(|&k| {
                let schema = strict_schema(k);
                // The schema is generated from our own types; failing to compile it is a bug in dk.
                let validator = jsonschema::validator_for(&schema)
                    .unwrap_or_else(|e| panic!("generated schema for {k} does not compile: {e}"));
                Compiled { schema, validator }
            })
            .collect()
    });
    let i = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    &all[i]
}

/// Resolves `$ref: "#/$defs/X"` against the root schema.
fn deref<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(n) => node = n,
                None => return node,
            },
            None => return node,
        }
    }
    node
}

/// The schema node describing the instance at `pointer` (following properties, items, refs and
/// the first alternative of anyOf/oneOf that has properties).
fn schema_at<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut node = deref(root, root);
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        node = deref(root, node);
        if let Some(alts) = node
            .get("anyOf")
            .or_else(|| node.get("oneOf"))
            .and_then(Value::as_array)
        {
            node = alts
                .iter()
                .map(|a| deref(root, a))
                .find(|a| a.get("properties").is_some() || a.get("items").is_some())?;
        }
        node = if let Some(p) = node.get("properties").and_then(|p| p.get(&seg)) {
            p
        } else if let Some(items) = node.get("items") {
            items
        } else {
            node.get("additionalProperties").filter(|v| v.is_object())?
        };
    }
    Some(deref(root, node))
}

fn known_fields(root: &Value, pointer: &str) -> Vec<String> {
    let Some(node) = schema_at(root, pointer) else {
        return Vec::new();
    };
    let node = match node
        .get("anyOf")
        .or_else(|| node.get("oneOf"))
        .and_then(Value::as_array)
    {
        Some(alts) => alts
            .iter()
            .map(|a| deref(root, a))
            .find(|a| a.get("properties").is_some())
            .unwrap_or(node),
        None => node,
    };
    node.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn type_kind_name(k: &TypeKind) -> String {
    fn one(t: &jsonschema::JsonType) -> &'static str {
        use jsonschema::JsonType as J;
        match t {
            J::Array => "a list",
            J::Boolean => "a boolean",
            J::Integer => "an integer",
            J::Null => "null",
            J::Number => "a number",
            J::Object => "a mapping",
            J::String => "a string",
        }
    }
    match k {
        TypeKind::Single(t) => one(t).to_string(),
        TypeKind::Multiple(set) => {
            let v: Vec<&str> = set
                .iter()
                .filter(|t| !matches!(t, jsonschema::JsonType::Null))
                .map(|t| one(&t))
                .collect();
            v.join(" or ")
        }
    }
}

/// Structural validation of one document against its kind's strict schema.
pub fn validate_structure(doc: &Document, value: &Value) -> Vec<Diagnostic> {
    let c = compiled(doc.kind);
    let mut out = Vec::new();
    for err in c.validator.iter_errors(value) {
        let pointer = err.instance_path().as_str().to_string();
        match err.kind() {
            ValidationErrorKind::Required { .. }
            | ValidationErrorKind::Enum { .. }
            | ValidationErrorKind::Pattern { .. }
            | ValidationErrorKind::Constant { .. } => {}
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let known = known_fields(&c.schema, &pointer);
                for key in unexpected {
                    let p = format!("{pointer}/{}", crate::yaml::escape_pointer(key));
                    let field = display_field(&p);
                    let mut d = Diagnostic::new(
                        Code::UnknownField,
                        format!("unknown field `{field}` in {}", doc.kind),
                    )
                    .at(doc.key_loc(&p))
                    .label("not a field of this kind");
                    d = match suggest::closest(key, known.iter().map(String::as_str)) {
                        Some(s) => d.help(format!("did you mean `{s}`? (unknown fields are ignored; `--strict` makes this an error)")),
                        None => d.help(format!(
                            "known fields here: {}; unknown fields are ignored (`--strict` makes this an error)",
                            known.join(", ")
                        )),
                    };
                    out.push(d);
                }
            }
            ValidationErrorKind::Type { kind } => {
                let actual = value.pointer(&pointer).unwrap_or(&Value::Null);
                let expected = type_kind_name(kind);
                let mut help = format!("`{}` must be {expected}", display_field(&pointer));
                if expected.contains("string")
                    && matches!(actual, Value::Number(_) | Value::Bool(_))
                {
                    help.push_str(&format!("; quote the value: \"{actual}\""));
                }
                out.push(
                    Diagnostic::new(
                        Code::WrongType,
                        format!(
                            "`{}` is {}, expected {expected}",
                            display_field(&pointer),
                            json_type_name(actual)
                        ),
                    )
                    .at(doc.loc(&pointer))
                    .label(format!("expected {expected}"))
                    .help(help),
                );
            }
            ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
                out.push(
                    Diagnostic::new(Code::WrongType, format!("`{}` does not have any accepted shape", display_field(&pointer)))
                        .at(doc.loc(&pointer))
                        .help("see `dk schema export` or docs/manifests.md for the accepted forms of this field"),
                );
            }
            _ => {
                out.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!("`{}`: {}", display_field(&pointer), err.masked()),
                    )
                    .at(doc.loc(&pointer)),
                );
            }
        }
    }
    out
}

/// `/spec/inputs/0/dataset` → `spec.inputs[0].dataset`.
pub fn display_field(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    if out.is_empty() {
        "(document)".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_compiles_and_open_differs() {
        for k in Kind::ALL {
            let _ = compiled(k);
            let strict = strict_schema(k).to_string();
            let open = open_schema(k).to_string();
            assert!(strict.contains("\"additionalProperties\":false"), "{k}");
            assert!(!open.contains("\"additionalProperties\":false"), "{k}");
        }
    }

    #[test]
    fn display_field_formats_indexes() {
        assert_eq!(
            display_field("/spec/inputs/0/dataset"),
            "spec.inputs[0].dataset"
        );
    }

    #[test]
    fn known_fields_follow_refs() {
        let s = strict_schema(Kind::Transform);
        let f = known_fields(&s, "/spec");
        assert!(f.contains(&"runtime".to_string()));
        let f = known_fields(&s, "/spec/inputs/0");
        assert!(f.contains(&"dataset".to_string()), "{f:?}");
    }
}
