//! `dk dbt -e ENV [--transform NAME] -- ARGS…`: runs dbt with any arguments, set up as `dk run`
//! sets it up for a dbt transform (crate `dk-runtime`, module `dbt`): a private generated
//! `profiles.yml` for the environment's bindings (removed afterwards), `DK_STORE_DSN_*` /
//! `DK_STORE_TYPE_*`, `DBT_PROFILES_DIR`, `DBT_PROJECT_DIR`, `DBT_PROFILE`, `DBT_TARGET`, in the
//! dbt project's directory. dbt is attached to the terminal; Ctrl-C reaches dbt, and dk waits for
//! it to stop before removing the profile. Exit 0 when dbt succeeds, 1 otherwise.

use std::path::PathBuf;

use clap::Args;
use dk_diagnostics::render;
use dk_manifest::loader;

use crate::cli::ProjectArg;
use crate::exit::Exit;
use crate::output;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  dk dbt -e dev -- debug\n  dk dbt -e prod --transform revenue -- run --select customer_revenue\n\n\
                  dbt is found through DK_DBT, else `dbt` on PATH (scripts/dbt-venv.sh installs it)."
)]
pub struct DbtArgs {
    /// The environment whose bindings the profile is generated from (default: the Project's
    /// defaultEnvironment).
    #[arg(long, short = 'e', env = "DK_ENV")]
    pub env: Option<String>,
    /// The dbt transform (default: the project's only one).
    #[arg(long, value_name = "NAME")]
    pub transform: Option<String>,
    #[command(flatten)]
    pub project: ProjectArg,
    /// The dbt command line, after `--` (e.g. `-- run --select my_model`).
    #[arg(last = true, required = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

pub fn run(a: DbtArgs) -> anyhow::Result<Exit> {
    let model = loader::load(&a.project.dir)?;
    let resolved = match dk_env::resolve(&model, a.env.as_deref(), &dk_env::ProcessEnv) {
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
    let name = dk_runtime::dbt::pick_transform(&model, a.transform.as_deref())?;
    let setup = dk_runtime::dbt::prepare(&model, &resolved, &name)?;
    eprintln!(
        "dk: dbt {} (transform {name}, environment {}, project {}, target schema {} in store {})",
        a.args.join(" "),
        resolved.environment,
        display(&setup.project_dir),
        setup.schema,
        setup.output_store,
    );
    let rt = super::core::runtime()?;
    let status = rt.block_on(async {
        let mut child = tokio::process::Command::from(setup.command(&a.args))
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", setup.dbt.display()))?;
        // Ctrl-C goes to dbt too (same process group): wait for it to finish rather than dying
        // with the generated profile left behind.
        loop {
            tokio::select! {
                s = child.wait() => break s.map_err(anyhow::Error::from),
                _ = tokio::signal::ctrl_c() => continue,
            }
        }
    });
    drop(setup);
    let status = status?;
    match status.code() {
        Some(0) => Ok(Exit::Ok),
        Some(c) => {
            eprintln!("dk: dbt exited with status {c}");
            Ok(Exit::Error)
        }
        None => {
            eprintln!("dk: dbt was stopped by a signal");
            Ok(Exit::Error)
        }
    }
}

fn display(p: &std::path::Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(PathBuf::from))
        .filter(|r| !r.as_os_str().is_empty())
        .unwrap_or_else(|| p.to_path_buf())
        .display()
        .to_string()
}
