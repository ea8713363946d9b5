//! Small commands: `dk schema export`, `dk diagnostics`, `dk completions`, `dk man`.

use anyhow::{bail, Context};
use clap::CommandFactory;
use dk_diagnostics::Code;
use dk_manifest::{schema, write, Kind};

use crate::cli::{Cli, CompletionsArgs, DiagnosticsArgs, ManArgs, SchemaCommand};
use crate::exit::Exit;

pub fn schema(cmd: SchemaCommand) -> anyhow::Result<Exit> {
    let SchemaCommand::Export { out, strict } = cmd;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for kind in Kind::ALL {
        let v = if strict {
            schema::strict_schema(kind)
        } else {
            schema::open_schema(kind)
        };
        let path = out.join(schema::file_name(kind));
        write::write_atomic(&path, (serde_json::to_string_pretty(&v)? + "\n").as_bytes())?;
        println!("{}", path.display());
    }
    Ok(Exit::Ok)
}

pub fn diagnostics(a: DiagnosticsArgs) -> anyhow::Result<Exit> {
    if a.markdown {
        print!("{}", dk_diagnostics::markdown_reference());
        return Ok(Exit::Ok);
    }
    match a.code {
        Some(id) => {
            let Some(c) = Code::from_id(&id) else {
                bail!("no diagnostic code {id}; `dk diagnostics` lists them")
            };
            println!(
                "{} ({}): {}\n\n{}",
                c.id(),
                c.default_severity(),
                c.title(),
                c.explanation()
            );
        }
        None => {
            for c in Code::ALL {
                println!(
                    "{}  {:<7}  {}",
                    c.id(),
                    c.default_severity().to_string(),
                    c.title()
                );
            }
        }
    }
    Ok(Exit::Ok)
}

pub fn completions(a: CompletionsArgs) -> anyhow::Result<Exit> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "dk", &mut std::io::stdout());
    Ok(Exit::Ok)
}

pub fn man(a: ManArgs) -> anyhow::Result<Exit> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    clap_mangen::generate_to(Cli::command(), &a.out)
        .with_context(|| format!("writing man pages to {}", a.out.display()))?;
    println!("Man pages written to {}", a.out.display());
    Ok(Exit::Ok)
}
