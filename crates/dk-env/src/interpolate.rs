//! `${VAR}` / `${VAR:-default}` interpolation (`$${` is a literal `${`).
//!
//! A small scanner rather than a general template engine: the syntax is the shell's subset that
//! Terraform and docker-compose users know, and errors must name the variable.

/// Why a string could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    #[error("${{{0}}} is not set")]
    Unset(String),
    #[error("{0}")]
    Malformed(String),
}

/// A parsed piece of a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Var {
        name: String,
        default: Option<String>,
    },
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Splits a string into text and variable references.
pub fn parse(s: &str) -> Result<Vec<Piece>, VarError> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                return Err(VarError::Malformed(format!(
                    "unclosed `${{` in \"{s}\": add the closing `}}`"
                )));
            };
            let body = &tail[..end];
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d.to_string())),
                None => (body, None),
            };
            if !valid_name(name) {
                return Err(VarError::Malformed(format!(
                    "`${{{body}}}` in \"{s}\" is not a variable reference: names are letters, digits and `_`"
                )));
            }
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            out.push(Piece::Var {
                name: name.to_string(),
                default,
            });
            rest = &tail[end + 1..];
        } else {
            text.push('$');
            rest = &after[1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// Resolves a string; returns the value and the variables it read.
pub fn interpolate(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, Vec<String>), VarError> {
    let mut out = String::new();
    let mut vars = Vec::new();
    for p in parse(s)? {
        match p {
            Piece::Text(t) => out.push_str(&t),
            Piece::Var { name, default } => {
                match lookup(&name).or(default) {
                    Some(v) => out.push_str(&v),
                    None => return Err(VarError::Unset(name)),
                }
                vars.push(name);
            }
        }
    }
    Ok((out, vars))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(n: &str) -> Option<String> {
        (n == "A").then(|| "1".to_string())
    }

    #[test]
    fn resolves_defaults_and_escapes() {
        assert_eq!(interpolate("x${A}y", &look).unwrap().0, "x1y");
        assert_eq!(interpolate("${B:-dflt}", &look).unwrap().0, "dflt");
        assert_eq!(interpolate("${B:-}", &look).unwrap().0, "");
        assert_eq!(interpolate("$${A} $5", &look).unwrap().0, "${A} $5");
        assert_eq!(interpolate("${A}${A}", &look).unwrap().1, vec!["A", "A"]);
    }

    #[test]
    fn reports_unset_and_malformed() {
        assert_eq!(interpolate("${B}", &look), Err(VarError::Unset("B".into())));
        assert!(matches!(
            interpolate("${A", &look),
            Err(VarError::Malformed(_))
        ));
        assert!(matches!(
            interpolate("${1A}", &look),
            Err(VarError::Malformed(_))
        ));
    }
}
