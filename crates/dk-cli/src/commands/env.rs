//! `dk env list` and `dk env show -e ENV`.

use dk_diagnostics::render;
use dk_manifest::loader;

use crate::cli::{EnvCommand, TextOrJson};
use crate::exit::Exit;
use crate::output;

pub fn run(cmd: EnvCommand) -> anyhow::Result<Exit> {
    match cmd {
        EnvCommand::List { output, project } => {
            let model = loader::load(&project.dir)?;
            let envs = dk_env::environments(&model);
            let default = model
                .project()
                .and_then(|p| p.spec.default_environment.clone());
            match output {
                TextOrJson::Json => {
                    let v: Vec<_> = envs
                        .iter()
                        .map(|(d, e)| {
                            serde_json::json!({
                                "name": e.metadata.name, "tier": e.spec.tier, "order": e.spec.order,
                                "default": default.as_deref() == Some(e.metadata.name.as_str()),
                                "bindings": e.spec.bindings.keys().collect::<Vec<_>>(), "file": d.file.as_ref(),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                TextOrJson::Text => {
                    if envs.is_empty() {
                        println!("No environments found in {}.", model.root.display());
                    }
                    for (_, e) in envs {
                        let mark = if default.as_deref() == Some(e.metadata.name.as_str()) {
                            " (default)"
                        } else {
                            ""
                        };
                        let order = e
                            .spec
                            .order
                            .map(|o| format!("order {o}, "))
                            .unwrap_or_default();
                        println!(
                            "{}{mark}  tier {}, {order}{} binding(s)",
                            e.metadata.name,
                            e.spec.tier,
                            e.spec.bindings.len()
                        );
                    }
                }
            }
            Ok(Exit::Ok)
        }
        EnvCommand::Show {
            env,
            output,
            project,
        } => {
            let model = loader::load(&project.dir)?;
            let resolved = match dk_env::resolve(&model, env.as_deref(), &dk_env::ProcessEnv) {
                Ok(r) => r,
                Err(diags) => {
                    let opts = render::HumanOptions {
                        color: output::color_stdout(),
                        width: output::width(),
                    };
                    eprint!("{}", render::human(&diags, &model.sources, opts));
                    eprintln!("✗ the project does not resolve for this environment");
                    return Ok(Exit::Invalid);
                }
            };
            match output {
                TextOrJson::Json => println!("{}", serde_json::to_string_pretty(&resolved)?),
                TextOrJson::Text => {
                    println!(
                        "Environment {} (tier {})",
                        resolved.environment, resolved.tier
                    );
                    for (name, s) in &resolved.stores {
                        let via = match &s.connector {
                            Some(c) => format!("connector {c}"),
                            None => "flat binding".to_string(),
                        };
                        let bound = if s.bound {
                            ", bound by the environment"
                        } else {
                            ""
                        };
                        println!("  {name}: {} ({via}{bound})", s.connector_type);
                        for (k, v) in &s.connection {
                            let v = v
                                .as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string());
                            println!("    {k} = {v}");
                        }
                        for (k, sec) in &s.secrets {
                            println!(
                                "    {k} = {} (secret, sha256 {}…)",
                                sec.reference,
                                &sec.sha256[..12]
                            );
                        }
                    }
                }
            }
            Ok(Exit::Ok)
        }
    }
}
