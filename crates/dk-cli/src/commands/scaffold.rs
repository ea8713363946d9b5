//! Scaffolding: `dk connector|store|dataset|transform create`. Every command builds the manifest
//! as a typed value, serializes it through the YAML emitter, validates it in the context of the
//! project *before* writing, and writes atomically. Nothing is written when validation fails.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use dk_diagnostics::{render, Severity};
use dk_manifest::model::*;
use dk_manifest::{loader, write};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

use crate::cli::{
    ConnectorCommand, DatasetCreateArgs, ProjectArg, StoreCommand, TransformCreateArgs,
};
use crate::exit::Exit;
use crate::output;

/// A file to write next to the manifest (a SQL or Python starter).
pub struct ExtraFile {
    pub rel: PathBuf,
    pub contents: String,
}

/// Validates and writes `docs` to `rel` under the project root.
pub fn write_manifest<T: Serialize>(
    project: &ProjectArg,
    rel: &Path,
    docs: &[T],
    force: bool,
    extra: Vec<ExtraFile>,
) -> anyhow::Result<Exit> {
    let text = write::to_yaml_string(docs)?;
    write_manifests(project, vec![(rel.to_path_buf(), text)], force, extra)
}

/// Validates manifest files (`(path relative to the project root, YAML text)`) together in the
/// context of the project and writes them all, or none when one would add an error.
pub fn write_manifests(
    project: &ProjectArg,
    files: Vec<(PathBuf, String)>,
    force: bool,
    extra: Vec<ExtraFile>,
) -> anyhow::Result<Exit> {
    let (root, is_project) = loader::find_root(&project.dir)?;
    for (rel, _) in &files {
        let path = root.join(rel);
        if path.exists() && !force {
            bail!(
                "{} already exists; pass --force to replace it (nothing was written)",
                path.display()
            );
        }
    }
    let mut model = loader::load_root(&root, is_project)?;
    // Starter files must exist for the validator's file checks; remember which we created.
    let mut created = Vec::new();
    for f in &extra {
        let p = root.join(&f.rel);
        if !p.exists() {
            write::write_atomic(&p, f.contents.as_bytes())?;
            created.push(p);
        }
    }
    // What the project already reports is not this command's concern; what the new files add is
    // (in the files themselves, or elsewhere — a cycle one closes, a name it duplicates).
    let before: std::collections::HashSet<(dk_diagnostics::Code, String)> =
        super::lint::all_rules(&model, false)
            .into_iter()
            .map(|d| (d.code, d.message))
            .collect();
    let mut displays = Vec::new();
    for (rel, text) in &files {
        displays.push(model.add_text(&root.join(rel), text));
    }
    let mut diags = super::lint::all_rules(&model, false);
    diags.retain(|d| {
        d.location
            .as_ref()
            .is_some_and(|l| displays.contains(&l.file))
            || !before.contains(&(d.code, d.message.clone()))
    });
    if !diags.is_empty() {
        let opts = render::HumanOptions {
            color: output::color_stdout(),
            width: output::width(),
        };
        eprint!("{}", render::human(&diags, &model.sources, opts));
    }
    if diags.iter().any(|d| d.severity == Severity::Error) {
        for p in created {
            let _ = std::fs::remove_file(p);
        }
        let names: Vec<String> = displays.iter().map(|d| d.to_string()).collect();
        eprintln!(
            "✗ {} not written: fix the errors above (nothing was changed)",
            names.join(", ")
        );
        return Ok(Exit::Invalid);
    }
    for ((rel, text), display) in files.iter().zip(&displays) {
        let path = root.join(rel);
        write::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("Created {display}");
    }
    for f in &extra {
        println!("Created {}", f.rel.display());
    }
    Ok(Exit::Ok)
}

fn check_name(kind: &str, name: &str) -> anyhow::Result<()> {
    if !dk_manifest::validate::is_valid_name(name) {
        bail!(
            "{kind} name \"{name}\" is not valid: use lower case letters, digits and '-', starting with a letter (for example `{}`)",
            dk_manifest::validate::sanitize_name(name)
        );
    }
    Ok(())
}

/// Parses a `--set` value: integers, floats and booleans typed, everything else a string.
pub fn typed_value(v: &str) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = v.parse::<f64>() {
        if f.is_finite() {
            return Value::from(f);
        }
    }
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(v.to_string()),
    }
}

fn split_pair<'a>(flag: &str, s: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => bail!("{flag} expects KEY=VALUE, got \"{s}\""),
    }
}

pub fn connector(cmd: ConnectorCommand) -> anyhow::Result<Exit> {
    let ConnectorCommand::Create {
        name,
        type_,
        capabilities,
        force,
        project,
    } = cmd;
    check_name("connector", &name)?;
    let caps = if capabilities.is_empty() {
        vec!["source".to_string(), "destination".to_string()]
    } else {
        capabilities
    };
    let protocol = match type_.as_str() {
        "postgres" | "postgresql" => Some("postgresql".to_string()),
        "mysql" | "mariadb" => Some("mysql".to_string()),
        _ => None,
    };
    let c = Connector::new(
        Kind::Connector,
        &name,
        ConnectorSpec {
            type_: Some(type_),
            protocol,
            capabilities: caps,
            ..ConnectorSpec::default()
        },
    );
    write_manifest(
        &project,
        &PathBuf::from(format!("connector/{name}.yaml")),
        &[c],
        force,
        Vec::new(),
    )
}

pub fn store(cmd: StoreCommand) -> anyhow::Result<Exit> {
    let StoreCommand::Create {
        name,
        connector,
        set,
        secrets,
        force,
        project,
    } = cmd;
    check_name("store", &name)?;
    let mut connection = IndexMap::new();
    for s in &set {
        let (k, v) = split_pair("--set", s)?;
        connection.insert(k.to_string(), typed_value(v));
    }
    let mut sec = IndexMap::new();
    for s in &secrets {
        let (k, var) = split_pair("--secret", s)?;
        let var = var.trim_start_matches("${").trim_end_matches('}');
        sec.insert(k.to_string(), format!("${{{var}}}"));
    }
    let st = Store::new(
        Kind::Store,
        &name,
        StoreSpec {
            connector,
            connection,
            secrets: sec,
            ..StoreSpec::default()
        },
    );
    write_manifest(
        &project,
        &PathBuf::from(format!("store/{name}.yaml")),
        &[st],
        force,
        Vec::new(),
    )
}

pub fn dataset(a: DatasetCreateArgs) -> anyhow::Result<Exit> {
    check_name("dataset", &a.name)?;
    let mut schema = Vec::new();
    for c in &a.columns {
        let (n, t) = c
            .split_once(':')
            .with_context(|| format!("--column expects NAME:TYPE, got \"{c}\""))?;
        schema.push(Column {
            name: n.to_string(),
            type_: t.to_string(),
            ..Column::default()
        });
    }
    let spec = DataSetSpec {
        store: a.store,
        table: a.table,
        prefix: a.prefix,
        topic: a.topic,
        classification: a.classification,
        format: a.format,
        description: a.description,
        schema,
        ..DataSetSpec::default()
    };
    let ds = DataSet::new(Kind::DataSet, &a.name, spec);
    write_manifest(
        &a.project,
        &PathBuf::from(format!("dataset/{}.yaml", a.name)),
        &[ds],
        a.force,
        Vec::new(),
    )
}

pub fn transform(a: TransformCreateArgs) -> anyhow::Result<Exit> {
    check_name("transform", &a.name)?;
    let dir = PathBuf::from(format!("transforms/{}", a.name));
    let mut spec = TransformSpec {
        runtime: a.runtime.clone(),
        inputs: a
            .inputs
            .iter()
            .map(|d| DataSetRef {
                dataset: Some(d.clone()),
                ..DataSetRef::default()
            })
            .collect(),
        outputs: a
            .outputs
            .iter()
            .map(|d| DataSetRef {
                dataset: Some(d.clone()),
                ..DataSetRef::default()
            })
            .collect(),
        image: a.image.clone(),
        ..TransformSpec::default()
    };
    spec.trigger = Some(match a.trigger.as_str() {
        "schedule" => Trigger {
            policy: "schedule".into(),
            schedule: Some(Schedule {
                cron: a.cron.clone().unwrap_or_default(),
                timezone: a.timezone.clone(),
                suspend: false,
            }),
            policies: Vec::new(),
        },
        other => Trigger {
            policy: other.to_string(),
            ..Trigger::default()
        },
    });
    let mut extra = Vec::new();
    match a.runtime.as_str() {
        "sql" => {
            spec.sql = Some("query.sql".into());
            spec.materialized = Some(a.materialized.clone().unwrap_or_else(|| "view".into()));
            let refs: Vec<String> = a
                .inputs
                .iter()
                .map(|i| format!("{{{{ ref('{i}') }}}}"))
                .collect();
            let from = refs.first().cloned().unwrap_or_default();
            extra.push(ExtraFile {
                rel: dir.join("query.sql"),
                contents: format!(
                    "-- {}: reads {}\nselect *\nfrom {from}\n",
                    a.name,
                    refs.join(", ")
                ),
            });
        }
        "python" => {
            spec.script = Some("main.py".into());
            extra.push(ExtraFile {
                rel: dir.join("main.py"),
                contents: "\"\"\"A dk python transform.\n\nDK_STORE_DSN_<STORE> / DK_STORE_TYPE_<STORE> name the stores; DK_TRANSFORM_IO names a JSON file\ndescribing the inputs and outputs.\n\"\"\"\nimport json\nimport os\n\nio = json.load(open(os.environ[\"DK_TRANSFORM_IO\"]))\nprint(\"inputs:\", [i[\"dataset\"] for i in io[\"inputs\"]])\n".into(),
            });
        }
        _ => {}
    }
    if a.materialized.is_some() && a.runtime != "sql" && a.runtime != "dbt" {
        bail!("--materialized only applies to runtime sql and dbt");
    }
    if a.runtime == "dbt" {
        spec.materialized = a.materialized.clone();
    }
    let t = Transform::new(Kind::Transform, &a.name, spec);
    write_manifest(&a.project, &dir.join("dk.yaml"), &[t], a.force, extra)
}
