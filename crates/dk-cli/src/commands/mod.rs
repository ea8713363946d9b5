//! One module per command. `run` dispatches.

mod core;
pub mod dbt;
mod drift;
mod env;
pub mod governance;
mod init;
mod lint;
mod misc;
pub mod pipeline;
pub mod run;
mod scaffold;
mod show;
pub mod test;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Lint(a) => lint::run(a),
        Command::Pipeline(c) => pipeline::run(c),
        Command::Init(a) => init::run(a),
        Command::Schema(c) => misc::schema(c),
        Command::Connector(c) => scaffold::connector(c),
        Command::Store(c) => scaffold::store(c),
        Command::Dataset(c) => match c {
            crate::cli::DatasetCommand::Create(a) => scaffold::dataset(a),
            crate::cli::DatasetCommand::List { output, project } => {
                show::dataset_list(output, &project)
            }
            crate::cli::DatasetCommand::Show {
                name,
                output,
                project,
            } => show::show_named(dk_manifest::Kind::DataSet, &name, output, &project),
        },
        Command::Transform(crate::cli::TransformCommand::Create(a)) => scaffold::transform(a),
        Command::Show(a) => show::show(a),
        Command::Env(c) => env::run(c),
        Command::Plan(a) => core::plan(a),
        Command::Apply(a) => core::apply(a),
        Command::Destroy(a) => core::destroy(a),
        Command::Keygen(a) => governance::keygen(a),
        Command::Approve(a) => governance::approve(a),
        Command::Approvals(c) => governance::approvals(c),
        Command::Promote(a) => governance::promote(a),
        Command::Rollback(a) => governance::rollback(a),
        Command::Audit(a) => governance::audit(a),
        Command::State(c) => core::state(c),
        Command::Drift(a) => drift::drift(a),
        Command::Import(a) => drift::import(a),
        Command::Diagnostics(a) => misc::diagnostics(a),
        Command::Dbt(a) => dbt::run(a),
        Command::Run(a) => run::run(a),
        Command::Runs(c) => run::runs(c),
        Command::Completions(a) => misc::completions(a),
        Command::Man(a) => misc::man(a),
        Command::Test(a) => test::run(a),
    }
}
