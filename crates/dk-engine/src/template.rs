//! The one SQL template renderer of `dk` (minijinja): `{{ ref('dataset') }}` and
//! `{{ var('name', default) }}`. Compile (view queries), the `sql` runtime and transform unit tests
//! all render through [`render`], so a query means the same thing everywhere; only what `ref`
//! resolves to differs (the real table, or a unit test's fixture table).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What `ref(name)` resolves to: the SQL text to substitute and a tag recorded when it is used
/// (compile records resource addresses there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefTarget {
    pub sql: String,
    pub tag: String,
}

/// A rendered template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The SQL, trimmed, without a trailing `;`.
    pub sql: String,
    /// The tags of the refs used, in order of use.
    pub used: Vec<String>,
}

/// A template that does not render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", .line.map(|l| format!("(line {l}) ")).unwrap_or_default())]
pub struct TemplateError {
    /// 1-based line in the template, when known.
    pub line: Option<usize>,
    pub message: String,
}

/// Renders `text` with `ref()` resolving through `refs` and `var()` through `vars`.
pub fn render(
    text: &str,
    refs: &HashMap<String, RefTarget>,
    vars: &serde_json::Map<String, serde_json::Value>,
) -> Result<Rendered, TemplateError> {
    let used = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut jenv = minijinja::Environment::new();
    jenv.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    {
        let refs = refs.clone();
        let used = used.clone();
        jenv.add_function(
            "ref",
            move |name: String| -> Result<String, minijinja::Error> {
                match refs.get(&name) {
                    Some(t) => {
                        if let Ok(mut u) = used.lock() {
                            u.push(t.tag.clone());
                        }
                        Ok(t.sql.clone())
                    }
                    None => Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!(
                            "ref('{name}'): {name} is not an input of this transform (inputs: {})",
                            {
                                let mut k: Vec<&String> = refs.keys().collect();
                                k.sort();
                                k.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                            }
                        ),
                    )),
                }
            },
        );
    }
    {
        let vars = vars.clone();
        jenv.add_function("var", move |name: String, default: Option<minijinja::Value>| -> Result<minijinja::Value, minijinja::Error> {
            match (vars.get(&name), default) {
                (Some(v), _) => Ok(minijinja::Value::from_serialize(v)),
                (None, Some(d)) => Ok(d),
                (None, None) => Err(minijinja::Error::new(
                    minijinja::ErrorKind::UndefinedError,
                    format!("var('{name}') is not set: add it to the transform's `vars` or the environment's `variables`, or give a default: var('{name}', 'x')"),
                )),
            }
        });
    }
    match jenv.render_str(text, minijinja::context! {}) {
        Ok(sql) => Ok(Rendered {
            sql: sql.trim().trim_end_matches(';').trim().to_string(),
            used: used.lock().map(|u| u.clone()).unwrap_or_default(),
        }),
        Err(e) => Err(TemplateError {
            line: e.line(),
            message: match e.detail() {
                Some(d) => format!("{}: {d}", e.kind()),
                None => e.to_string(),
            },
        }),
    }
}

/// The template variables of a transform: the environment's variables overlaid by the
/// transform's own `vars`.
pub fn vars(
    env_variables: &indexmap::IndexMap<String, String>,
    transform_vars: &indexmap::IndexMap<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out: serde_json::Map<String, serde_json::Value> = env_variables
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    for (k, v) in transform_vars {
        out.insert(k.clone(), v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_vars_and_errors() {
        let mut refs = HashMap::new();
        refs.insert(
            "orders".to_string(),
            RefTarget {
                sql: "\"main\".\"orders\"".into(),
                tag: "t1".into(),
            },
        );
        let mut vars = serde_json::Map::new();
        vars.insert("min".into(), serde_json::json!(3));
        let r = render(
            "select * from {{ ref('orders') }} where n > {{ var('min') }} and s = '{{ var('x', 'd') }}';\n",
            &refs,
            &vars,
        )
        .unwrap();
        assert_eq!(
            r.sql,
            "select * from \"main\".\"orders\" where n > 3 and s = 'd'"
        );
        assert_eq!(r.used, vec!["t1".to_string()]);
        let e = render("select 1\nfrom {{ ref('nope') }}", &refs, &vars).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("nope is not an input"), "{e}");
        let e = render("{{ var('y') }}", &refs, &vars).unwrap_err();
        assert!(e.message.contains("var('y') is not set"), "{e}");
    }
}
