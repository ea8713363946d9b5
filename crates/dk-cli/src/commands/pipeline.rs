//! `dk pipeline show|order`: the pipeline graph derived from Transform inputs and outputs
//! (crate `dk-graph`). Graph errors (E406 duplicate producer, E407 cycle) go to stderr and make
//! the command exit 3.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use dk_diagnostics::{render, Diagnostic, Severity};
use dk_graph::render::Options;
use dk_graph::{Filter, Format, Graph, GraphError, NodeKind, Selector};
use dk_manifest::{loader, ProjectModel};
use serde::Serialize;

use crate::cli::ProjectArg;
use crate::exit::Exit;
use crate::output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowOutput {
    /// A tree from every source dataset (with --destination: the chain drawn with boxes).
    Text,
    /// A Mermaid flowchart (`graph TD`).
    Mermaid,
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
    /// `{"nodes": [...], "edges": [...]}` (+ `"columns"` with --columns).
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OrderOutput {
    /// One transform per line: name, runtime, trigger.
    Text,
    /// `{"transforms": [...]}`.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Draw the graph of datasets and transforms (text, mermaid, dot or json).
    #[command(
        after_help = "Selectors: `name`, `+name` (ancestors), `name+` (descendants), `2+name`, `name+1`, \
                      `tag:KEY=VALUE`, `runtime:dbt`, `store:NAME`, `kind:dataset|transform`; space = \
                      union, comma = intersection (docs/selectors.md)."
    )]
    Show {
        /// Project directory or a manifest file (default: the current directory).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Keep only this dataset and everything upstream of it (drawn as a chain in text).
        #[arg(long, value_name = "DATASET")]
        destination: Option<String>,
        /// Keep only this dataset and everything downstream of it.
        #[arg(long, value_name = "DATASET")]
        source: Option<String>,
        /// Keep only the selected nodes (repeatable: the selections are united).
        #[arg(long, value_name = "SELECTOR")]
        select: Vec<String>,
        /// Remove the selected nodes (repeatable).
        #[arg(long, value_name = "SELECTOR")]
        exclude: Vec<String>,
        /// Add column lineage to text and json: DataSet columns with `from: dataset.column`, and
        /// what the queries of sql transforms derive each output column from.
        #[arg(long)]
        columns: bool,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = ShowOutput::Text)]
        output: ShowOutput,
    },
    /// Print the transforms in execution order (producers before consumers, ties alphabetical).
    Order {
        /// Only these transforms (a selector; several words are united), e.g. `+event-summary`.
        #[arg(value_name = "SELECTOR")]
        selector: Vec<String>,
        /// Leave out the selected nodes (repeatable).
        #[arg(long, value_name = "SELECTOR")]
        exclude: Vec<String>,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = OrderOutput::Text)]
        output: OrderOutput,
        #[command(flatten)]
        project: ProjectArg,
    },
}

pub fn run(cmd: PipelineCommand) -> anyhow::Result<Exit> {
    match cmd {
        PipelineCommand::Show {
            path,
            destination,
            source,
            select,
            exclude,
            columns,
            output,
        } => {
            let filter = Filter {
                destination,
                source,
                select: selector(&select)?,
                exclude: selector(&exclude)?,
            };
            show(&path, &filter, columns, output)
        }
        PipelineCommand::Order {
            selector: words,
            exclude,
            output,
            project,
        } => order(&project.dir, selector(&words)?, selector(&exclude)?, output),
    }
}

/// Parses command-line words into a selector (`None` when there are none).
fn selector(words: &[String]) -> anyhow::Result<Option<Selector>> {
    if words.is_empty() {
        return Ok(None);
    }
    Ok(Some(Selector::parse_words(words)?))
}

/// Loads the project containing `path` (a loose manifest file alone, like `dk lint`).
fn load(path: &Path) -> anyhow::Result<ProjectModel> {
    let (root, is_project) = loader::find_root(path)?;
    let model = if path.is_file() && !is_project {
        loader::load_file(&std::fs::canonicalize(path)?)?
    } else {
        loader::load_root(&root, is_project)?
    };
    let unreadable = model
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if unreadable > 0 {
        eprintln!(
            "note: {unreadable} manifest error(s) leave parts of the project out of the graph; run `dk lint` for details"
        );
    }
    Ok(model)
}

fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Prints graph diagnostics to stderr; true when one is an error.
fn report(diags: &[Diagnostic], model: &ProjectModel) -> bool {
    if diags.is_empty() {
        return false;
    }
    let opts = render::HumanOptions {
        color: color_stderr(),
        width: output::width(),
    };
    eprint!("{}", render::human(diags, &model.sources, opts));
    diags.iter().any(|d| d.severity == Severity::Error)
}

fn show(path: &Path, filter: &Filter, columns: bool, output: ShowOutput) -> anyhow::Result<Exit> {
    let model = load(path)?;
    let graph = Graph::build(&model);
    let mut shown = graph.filter(filter)?;
    if columns {
        // Column lineage of sql transforms, derived from their queries (the default
        // environment, when it resolves, gives template variables and SQL dialects).
        let env = dk_env::resolve(&model, None, &dk_env::ProcessEnv).ok();
        let (edges, notes) = dk_runtime::lineage::sql_column_edges(&model, env.as_ref());
        shown.add_column_edges(edges);
        for n in notes {
            eprintln!("note: column lineage: {n}");
        }
    }
    let format = match output {
        ShowOutput::Text => Format::Text,
        ShowOutput::Mermaid => Format::Mermaid,
        ShowOutput::Dot => Format::Dot,
        ShowOutput::Json => Format::Json,
    };
    let opts = Options {
        destination: filter.destination.as_deref(),
        columns,
    };
    print!("{}", dk_graph::render::render(&shown, format, opts));
    let failed = report(&graph.diagnostics(), &model);
    Ok(if failed { Exit::Invalid } else { Exit::Ok })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrderItem<'a> {
    name: &'a str,
    runtime: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_policy: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_path: Option<&'a str>,
    inputs: Vec<&'a str>,
    outputs: Vec<&'a str>,
}

fn order(
    dir: &Path,
    select: Option<Selector>,
    exclude: Option<Selector>,
    output: OrderOutput,
) -> anyhow::Result<Exit> {
    let model = load(dir)?;
    let graph = Graph::build(&model);
    if report(&graph.diagnostics(), &model) {
        return Ok(Exit::Invalid);
    }
    let set = graph.selection(select.as_ref(), exclude.as_ref())?;
    let ordered = match graph.order_within(&set) {
        Ok(o) => o,
        Err(GraphError::Cycle(cycles)) => {
            let diags: Vec<Diagnostic> = cycles.iter().map(|c| c.diagnostic(&graph)).collect();
            report(&diags, &model);
            return Ok(Exit::Invalid);
        }
        Err(e) => return Err(e.into()),
    };
    match output {
        OrderOutput::Text => {
            if ordered.is_empty() {
                let what = if select.is_some() || exclude.is_some() {
                    "No transforms selected."
                } else {
                    "No transforms found."
                };
                eprintln!("{what}");
                return Ok(Exit::Ok);
            }
            let nodes: Vec<_> = ordered.iter().map(|ix| graph.node(*ix)).collect();
            let nw = nodes
                .iter()
                .map(|n| n.name.chars().count())
                .max()
                .unwrap_or(0);
            let rw = nodes
                .iter()
                .map(|n| n.runtime_short().chars().count())
                .max()
                .unwrap_or(0);
            let mut out = String::new();
            for n in nodes {
                out.push_str(&format!(
                    "{:<nw$}  runtime={:<rw$}  trigger={}\n",
                    n.name,
                    n.runtime_short(),
                    n.trigger_display()
                ));
            }
            print!("{out}");
        }
        OrderOutput::Json => {
            let names = |v: Vec<dk_graph::NodeIx>| -> Vec<&str> {
                v.into_iter()
                    .map(|ix| graph.node(ix))
                    .filter(|n| n.kind == NodeKind::DataSet)
                    .map(|n| n.name.as_str())
                    .collect()
            };
            let items: Vec<OrderItem<'_>> = ordered
                .iter()
                .map(|&ix| {
                    let n = graph.node(ix);
                    OrderItem {
                        name: &n.name,
                        runtime: n.runtime.as_deref().unwrap_or(""),
                        trigger_policy: n.trigger_policy.as_deref(),
                        trigger_detail: n.trigger_detail.as_deref(),
                        file_path: n.file_path.as_deref(),
                        inputs: names(graph.inputs(ix)),
                        outputs: names(graph.outputs(ix)),
                    }
                })
                .collect();
            let doc = serde_json::json!({ "transforms": items });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
    }
    Ok(Exit::Ok)
}
