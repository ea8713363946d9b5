//! `dk show KIND/NAME`, `dk dataset list`, `dk dataset show NAME`.

use anyhow::{bail, Context};
use dk_manifest::{loader, write, Kind};

use crate::cli::{DocOutput, ListOutput, ProjectArg, ShowArgs};
use crate::exit::Exit;

fn load(project: &ProjectArg) -> anyhow::Result<dk_manifest::ProjectModel> {
    Ok(loader::load(&project.dir)?)
}

pub fn show(a: ShowArgs) -> anyhow::Result<Exit> {
    let (kind, name) = a.address.split_once('/').with_context(|| {
        format!(
            "expected KIND/NAME (for example dataset/users), got \"{}\"",
            a.address
        )
    })?;
    let kind = Kind::parse_cli(kind).with_context(|| {
        format!("unknown kind \"{kind}\": use one of project, connector, store, dataset, datasetgroup, transform, environment, policy")
    })?;
    show_named(kind, name, a.output, &a.project)
}

pub fn show_named(
    kind: Kind,
    name: &str,
    output: DocOutput,
    project: &ProjectArg,
) -> anyhow::Result<Exit> {
    let model = load(project)?;
    let Some(doc) = model.get(kind, name) else {
        let names = model.names(kind);
        let hint = match dk_manifest::suggest::closest(name, names.iter().copied()) {
            Some(s) => format!("; did you mean `{s}`?"),
            None if names.is_empty() => format!("; the project has no {kind} manifests"),
            None => String::new(),
        };
        bail!(
            "{kind} \"{name}\" not found in {}{hint}",
            model.root.display()
        );
    };
    match output {
        DocOutput::Yaml => {
            println!("# {}", doc.file);
            print!("{}", write::to_yaml_string(&[&doc.value()])?);
        }
        DocOutput::Json => println!("{}", serde_json::to_string_pretty(&doc.value())?),
    }
    Ok(Exit::Ok)
}

pub fn dataset_list(output: ListOutput, project: &ProjectArg) -> anyhow::Result<Exit> {
    let model = load(project)?;
    let mut rows: Vec<serde_json::Value> = model
        .datasets()
        .map(|(d, ds)| {
            let s = &ds.spec;
            let (loc_kind, loc) = match (&s.table, &s.prefix, &s.topic) {
                (Some(t), _, _) => ("table", t.clone()),
                (_, Some(p), _) => ("prefix", p.clone()),
                (_, _, Some(t)) => ("topic", t.clone()),
                _ => ("", String::new()),
            };
            serde_json::json!({
                "name": ds.metadata.name,
                "store": s.store,
                "type": loc_kind,
                "location": loc,
                "classification": s.classification,
                "version": ds.metadata.version,
                "columns": s.schema.len(),
                "file": d.file.as_ref(),
            })
        })
        .collect();
    rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    match output {
        ListOutput::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        ListOutput::Table => {
            if rows.is_empty() {
                println!("No DataSets found in {}.", model.root.display());
                return Ok(Exit::Ok);
            }
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::NOTHING);
            t.set_header([
                "NAME",
                "STORE",
                "TYPE",
                "LOCATION",
                "CLASSIFICATION",
                "COLUMNS",
            ]);
            for r in &rows {
                let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                t.add_row([
                    s("name"),
                    s("store"),
                    s("type"),
                    s("location"),
                    s("classification"),
                    r["columns"].to_string(),
                ]);
            }
            println!("{}", t.trim_fmt());
        }
    }
    Ok(Exit::Ok)
}
