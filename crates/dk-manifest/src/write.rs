//! Writing manifests: typed values → YAML text through saphyr's emitter (never string-built), and
//! atomic file writes (temp file + fsync + rename) so a crash never leaves a half-written file.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

use saphyr::{Mapping, Scalar, Yaml, YamlEmitter};
use serde::Serialize;
use serde_json::Value;

/// Errors of writing.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("cannot emit YAML: {0}")]
    Emit(String),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn to_yaml(v: &Value) -> Yaml<'static> {
    match v {
        Value::Null => Yaml::Value(Scalar::Null),
        Value::Bool(b) => Yaml::Value(Scalar::Boolean(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Yaml::Value(Scalar::Integer(i)),
            (None, Some(f)) => Yaml::Value(Scalar::FloatingPoint(f.into())),
            _ => Yaml::Value(Scalar::String(Cow::Owned(n.to_string()))),
        },
        Value::String(s) => Yaml::Value(Scalar::String(Cow::Owned(s.clone()))),
        Value::Array(a) => Yaml::Sequence(a.iter().map(to_yaml).collect()),
        Value::Object(o) => {
            let mut m = Mapping::new();
            for (k, v) in o {
                m.insert(
                    Yaml::Value(Scalar::String(Cow::Owned(k.clone()))),
                    to_yaml(v),
                );
            }
            Yaml::Mapping(m)
        }
    }
}

/// Serializes documents to one YAML text (several documents separated by `---`).
pub fn to_yaml_string<T: Serialize>(docs: &[T]) -> Result<String, WriteError> {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        let v = serde_json::to_value(d)?;
        let mut s = String::new();
        YamlEmitter::new(&mut s)
            .dump(&to_yaml(&v))
            .map_err(|e| WriteError::Emit(e.to_string()))?;
        let body = s.strip_prefix("---\n").unwrap_or(&s);
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(body);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// Writes `contents` to `path` atomically: a temp file in the same directory, fsync, rename,
/// fsync of the directory. Creates parent directories.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    let io = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(contents).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    #[test]
    fn round_trips_through_the_loader() {
        let mut ds = DataSet::new(Kind::DataSet, "users", DataSetSpec::default());
        ds.spec.store = "warehouse".into();
        ds.spec.table = Some("public.users".into());
        ds.spec.schema.push(Column {
            name: "id".into(),
            type_: "bigint".into(),
            ..Column::default()
        });
        ds.metadata.version = Some("1.0".into());
        let text = to_yaml_string(&[&ds]).unwrap();
        let m = crate::loader::load_str("users.yaml", &text);
        assert!(m.diagnostics.is_empty(), "{:?}\n{text}", m.diagnostics);
        match &m.docs[0].manifest {
            Some(Manifest::DataSet(back)) => assert_eq!(back, &ds),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn atomic_write_creates_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/c.yaml");
        write_atomic(&p, b"x: 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "x: 1\n");
    }
}
