//! The command line, as clap derive types (also used to generate completions and the man page).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "dk",
    version,
    about = "DataKit: run your data platform as code",
    long_about = "DataKit (`dk`) checks data-platform manifests offline, draws the pipeline graph, plans \
                  changes against real systems, applies them with state kept outside every target, runs \
                  pipelines and tests the data.\n\nExit codes: 0 success, 1 error, 2 changes present \
                  (--detailed-exitcode), 3 validation failed, 4 policy or approval gate failed, 5 state \
                  locked, 6 drift detected, 8 tests failed.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate every manifest of a project (also spelled `dk validate`).
    #[command(visible_alias = "validate")]
    Lint(LintArgs),
    /// The pipeline graph derived from Transform inputs and outputs.
    #[command(subcommand)]
    Pipeline(crate::commands::pipeline::PipelineCommand),
    /// Create a new project.
    Init(InitArgs),
    /// JSON Schemas of the manifest kinds.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Connectors (technology types).
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Stores (instances of connectors).
    #[command(subcommand)]
    Store(StoreCommand),
    /// DataSets (data contracts).
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Transforms (compute between DataSets).
    #[command(subcommand)]
    Transform(TransformCommand),
    /// Print one manifest: `dk show dataset/users`.
    Show(ShowArgs),
    /// Show what apply would change in an environment.
    Plan(PlanArgs),
    /// Apply a saved plan, or plan and apply after confirmation.
    Apply(ApplyArgs),
    /// Destroy every object dk manages in an environment (typed confirmation).
    Destroy(DestroyArgs),
    /// Make an Ed25519 key pair for approving plans.
    Keygen(crate::commands::governance::KeygenArgs),
    /// Approve a saved plan: sign its digest with your key.
    Approve(crate::commands::governance::ApproveArgs),
    /// Approvals recorded for an environment.
    #[command(subcommand)]
    Approvals(crate::commands::governance::ApprovalsCommand),
    /// Plan the next environment from the manifests the previous one last applied.
    Promote(crate::commands::governance::PromoteArgs),
    /// Plan an environment back to the manifests of an earlier state serial or Git commit.
    Rollback(crate::commands::governance::RollbackArgs),
    /// The audit log of an environment: plans, approvals, applies, promotions, rollbacks, state edits.
    Audit(crate::commands::governance::AuditArgs),
    /// Read and edit the state of an environment.
    #[command(subcommand)]
    State(StateCommand),
    /// Report changes made outside dk since the last apply (exit 6 when there is drift).
    Drift(DriftArgs),
    /// Adopt existing objects into state, or write DataSet manifests for unmanaged tables.
    Import(ImportArgs),
    /// Environments: list them, or show how a project resolves in one (bindings, variables).
    #[command(subcommand)]
    Env(EnvCommand),
    /// List diagnostic codes, or explain one: `dk diagnostics E230`.
    Diagnostics(DiagnosticsArgs),
    /// Run the data checks of DataSets against an environment and the unit tests of Transforms.
    Test(crate::commands::test::TestArgs),
    /// Run transforms in graph order (sync, sql), with their outputs' data checks.
    Run(crate::commands::run::RunArgs),
    /// Run records: `dk runs list`, `dk runs show ID`.
    #[command(subcommand)]
    Runs(crate::commands::run::RunsCommand),
    /// Run dbt with any arguments, with a profile generated from an environment's bindings.
    Dbt(crate::commands::dbt::DbtArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Write the man pages.
    Man(ManArgs),
}

/// Where the project is: a directory inside it (default: the current directory).
#[derive(Debug, Clone, Args)]
pub struct ProjectArg {
    /// A directory inside the project (the root is the nearest ancestor with project.yaml).
    #[arg(
        long = "project",
        short = 'C',
        value_name = "DIR",
        default_value = ".",
        env = "DK_PROJECT_DIR",
        global = true
    )]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintOutput {
    /// Snippets with help lines and a summary.
    Human,
    /// One line per diagnostic: file:line:col: severity[CODE]: message.
    Short,
    /// A JSON document (docs/lint.md).
    Json,
    /// SARIF 2.1.0 for code-scanning UIs.
    Sarif,
    /// JUnit XML for CI test reports.
    Junit,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Project directory or a manifest file (default: the current directory).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Treat warnings (unknown fields, missing triggers, …) as errors.
    #[arg(long)]
    pub strict: bool,
    /// Also evaluate policies and environment guardrails for this environment.
    #[arg(long, short = 'e')]
    pub env: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = LintOutput::Human)]
    pub output: LintOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// Embedded DuckDB warehouse, local files, datasets with checks, a SQL transform and seed data.
    Quickstart,
    /// Only project.yaml, a dev environment and the directory layout.
    Empty,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create the project in (default: the current directory).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// What to put in the project.
    #[arg(long, value_enum, default_value_t = Template::Quickstart)]
    pub template: Template,
    /// Project name (default: the directory's name, made a valid name).
    #[arg(long)]
    pub name: Option<String>,
    /// Write into a non-empty directory (existing files with the same names are replaced).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Write one `<kind>.schema.json` per kind into a directory.
    Export {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Closed schemas (unknown fields are errors), as `dk lint --strict` checks.
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Write connector/NAME.yaml.
    Create {
        name: String,
        /// Technology: postgres, mysql, duckdb, sqlite, file, s3, kafka, nats, dataiku, snowflake, ...
        #[arg(long = "type")]
        type_: String,
        /// Capabilities (default: source and destination).
        #[arg(long = "capability", value_parser = ["source", "destination"])]
        capabilities: Vec<String>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        project: ProjectArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Write store/NAME.yaml.
    Create {
        name: String,
        /// The Connector this store is an instance of.
        #[arg(long)]
        connector: String,
        /// A connection setting, KEY=VALUE (repeatable). Numbers and booleans are typed.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A secret as KEY=VAR: written as `KEY: ${VAR}` (repeatable).
        #[arg(long = "secret", value_name = "KEY=VAR")]
        secrets: Vec<String>,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        project: ProjectArg,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListOutput {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocOutput {
    Yaml,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Write dataset/NAME.yaml.
    Create(DatasetCreateArgs),
    /// List the project's DataSets.
    List {
        #[arg(long, short = 'o', value_enum, default_value_t = ListOutput::Table)]
        output: ListOutput,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Print one DataSet.
    Show {
        name: String,
        #[arg(long, short = 'o', value_enum, default_value_t = DocOutput::Yaml)]
        output: DocOutput,
        #[command(flatten)]
        project: ProjectArg,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("location").required(true).args(["table", "prefix", "topic"])))]
pub struct DatasetCreateArgs {
    pub name: String,
    /// The Store it lives in.
    #[arg(long)]
    pub store: String,
    /// `schema.table` in a database store.
    #[arg(long)]
    pub table: Option<String>,
    /// Path prefix in an object or file store.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Stream topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// public, internal, confidential or restricted.
    #[arg(long, value_parser = ["public", "internal", "confidential", "restricted"])]
    pub classification: Option<String>,
    /// parquet, csv, json, jsonl or avro.
    #[arg(long, value_parser = ["parquet", "csv", "json", "jsonl", "avro"])]
    pub format: Option<String>,
    /// A column as NAME:TYPE (repeatable), e.g. `--column id:bigint`.
    #[arg(long = "column", value_name = "NAME:TYPE")]
    pub columns: Vec<String>,
    /// One-line description.
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Subcommand)]
pub enum TransformCommand {
    /// Write transforms/NAME/dk.yaml (plus a query.sql or main.py starter for sql and python).
    Create(TransformCreateArgs),
}

#[derive(Debug, Args)]
pub struct TransformCreateArgs {
    pub name: String,
    /// sql, dbt, sync, python, generic-go, generic-python (cloudquery = sync).
    #[arg(long, value_parser = ["sql", "dbt", "sync", "python", "cloudquery", "generic-go", "generic-python"])]
    pub runtime: String,
    /// An input DataSet (repeatable).
    #[arg(long = "input", required = true)]
    pub inputs: Vec<String>,
    /// An output DataSet (repeatable).
    #[arg(long = "output", required = true)]
    pub outputs: Vec<String>,
    /// When it runs.
    #[arg(long, value_parser = ["manual", "on-change", "schedule"], default_value = "manual")]
    pub trigger: String,
    /// Cron expression for `--trigger schedule`.
    #[arg(long, required_if_eq("trigger", "schedule"))]
    pub cron: Option<String>,
    /// IANA timezone of the schedule.
    #[arg(long, requires = "cron")]
    pub timezone: Option<String>,
    /// Materialization for sql transforms: view, table, incremental.
    #[arg(long, value_parser = ["view", "table", "incremental"])]
    pub materialized: Option<String>,
    /// Container image (generic-go, generic-python).
    #[arg(long)]
    pub image: Option<String>,
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// KIND/NAME, e.g. `dataset/users`, `transform/daily-revenue`, `store/warehouse`.
    pub address: String,
    #[arg(long, short = 'o', value_enum, default_value_t = DocOutput::Yaml)]
    pub output: DocOutput,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct DiagnosticsArgs {
    /// A code to explain (E230); without it, every code is listed.
    pub code: Option<String>,
    /// Print the full reference as Markdown (the content of docs/diagnostics.md).
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write dk.1 and one page per subcommand into.
    #[arg(long, default_value = "man")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TextOrJson {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the environments in promotion order.
    List {
        #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
        output: TextOrJson,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Resolve every Store for one environment: bindings applied, ${VAR}s resolved, secrets shown
    /// only as references and hashes.
    Show {
        /// The environment (default: the Project's defaultEnvironment).
        #[arg(long, short = 'e', env = "DK_ENV")]
        env: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
        output: TextOrJson,
        #[command(flatten)]
        project: ProjectArg,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanOutput {
    Human,
    Json,
    /// For pull-request comments.
    Markdown,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The environment (default: the Project's defaultEnvironment).
    #[arg(long, short = 'e', env = "DK_ENV")]
    pub env: Option<String>,
    /// Save the plan (with its digest) for `dk apply FILE`.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only these resource addresses (exact, `kind.store` prefixes, or `*` globs) and what they need.
    #[arg(long)]
    pub target: Vec<String>,
    /// Record the real systems' current state without planning changes.
    #[arg(long)]
    pub refresh_only: bool,
    /// Plan the destruction of everything dk manages in the environment.
    #[arg(long)]
    pub destroy: bool,
    /// Exit 2 when there are changes, 0 when there are none.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[arg(long, short = 'o', value_enum, default_value_t = PlanOutput::Human)]
    pub output: PlanOutput,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    #[arg(long, short = 'e', env = "DK_ENV")]
    pub env: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
    /// Keep watching and report drift as it happens (PostgreSQL: DDL event triggers; otherwise
    /// polling). Stops on Ctrl-C (exit 6 if drift was seen).
    #[arg(long)]
    pub watch: bool,
    /// Seconds between checks when polling (and the longest wait between checks on PostgreSQL).
    #[arg(long, default_value_t = 2.0, requires = "watch")]
    pub interval: f64,
    /// Stop watching after this many seconds (default: until interrupted).
    #[arg(long, requires = "watch")]
    pub duration: Option<f64>,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Addresses to adopt (`table.STORE.SCHEMA.NAME`), each declared by a manifest and existing in
    /// its store.
    #[arg(required_unless_present = "discover", conflicts_with = "discover")]
    pub address: Vec<String>,
    #[arg(long, short = 'e', env = "DK_ENV")]
    pub env: Option<String>,
    /// List the unmanaged tables of this schema and write a DataSet manifest for each.
    #[arg(long, value_name = "SCHEMA")]
    pub discover: Option<String>,
    /// The store to discover in (default: the only database store of the environment).
    #[arg(long, requires = "discover")]
    pub store: Option<String>,
    /// Directory (inside the project) for the discovered manifests; without it they are printed.
    #[arg(long, value_name = "DIR", requires = "discover")]
    pub write: Option<PathBuf>,
    /// Replace manifest files that already exist.
    #[arg(long, requires = "write")]
    pub force: bool,
    #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `dk plan --out` (refused when stale or modified).
    pub plan: Option<PathBuf>,
    #[arg(long, short = 'e', env = "DK_ENV")]
    pub env: Option<String>,
    /// Apply without asking (needed when there is no terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Changes run at the same time at most.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(usize))]
    pub parallelism: usize,
    /// Allow changes that can lose data (dropped tables and columns, narrowing types, NOT NULL on NULLs).
    #[arg(long)]
    pub allow_destructive: bool,
    /// Apply a plan made from a Git tree with uncommitted changes in a prod-tier environment.
    #[arg(long)]
    pub allow_dirty: bool,
    /// Only these addresses (when no plan file is given).
    #[arg(long, conflicts_with = "plan")]
    pub target: Vec<String>,
    #[arg(skip)]
    pub destroy_mode: bool,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[arg(long, short = 'e', env = "DK_ENV")]
    pub env: Option<String>,
    /// Destroy without the typed confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    #[arg(long, default_value_t = 4)]
    pub parallelism: usize,
    #[command(flatten)]
    pub project: ProjectArg,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Resource addresses in state (with their status when not ok).
    List {
        #[arg(long, short = 'e', env = "DK_ENV")]
        env: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
        output: TextOrJson,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// One resource as recorded.
    Show {
        address: String,
        #[arg(long, short = 'e', env = "DK_ENV")]
        env: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Json)]
        output: TextOrJson,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Every serial of the state.
    History {
        #[arg(long, short = 'e', env = "DK_ENV")]
        env: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
        output: TextOrJson,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Forget a resource (the object itself is not touched).
    Rm {
        address: String,
        #[arg(long, short = 'e', env = "DK_ENV")]
        env: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Rename a resource's address in state.
    Mv {
        from: String,
        to: String,
        #[arg(long, short = 'e', env = "DK_ENV")]
        env: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Print the current state document as JSON (or write it atomically with --out).
    Pull {
        #[arg(long, short = 'e', env = "DK_ENV")]
        env: Option<String>,
        /// Write the document to this file (temp file + fsync + rename) instead of stdout.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Replace the state with a document (same lineage and a newer serial, unless --force).
    Push {
        /// A state document, as written by `dk state pull`.
        file: std::path::PathBuf,
        #[arg(long, short = 'e', env = "DK_ENV")]
        env: Option<String>,
        /// Push even if the document has another lineage or a serial not newer than the stored one.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Locks held on the project's environments (`dk state lock list`).
    #[command(name = "locks", visible_alias = "lock-list")]
    Locks(LocksArgs),
    /// Release a lock by ID (when its holder is gone).
    Unlock(UnlockArgs),
    /// `dk state lock list` and `dk state lock unlock ID`: the same as `locks` and `unlock`.
    #[command(subcommand)]
    Lock(LockCommand),
}

/// Arguments of `dk state locks` / `dk state lock list`.
#[derive(Debug, Args)]
pub struct LocksArgs {
    #[arg(long, short = 'e', env = "DK_ENV")]
    pub env: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value_t = TextOrJson::Text)]
    pub output: TextOrJson,
    #[command(flatten)]
    pub project: ProjectArg,
}

/// Arguments of `dk state unlock` / `dk state lock unlock`.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    pub id: String,
    #[arg(long, short = 'e', env = "DK_ENV")]
    pub env: Option<String>,
    #[command(flatten)]
    pub project: ProjectArg,
}

/// `dk state lock …`.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Locks held on the project's environments.
    List(LocksArgs),
    /// Release a lock by ID (when its holder is gone).
    Unlock(UnlockArgs),
}
