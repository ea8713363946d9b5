//! `dk init [DIR] [--template quickstart|empty]`: a new project in the seed's layout, written
//! through the manifest types and validated before anything is written.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use dk_diagnostics::{render, Severity};
use dk_manifest::model::*;
use dk_manifest::{loader, write};
use indexmap::IndexMap;
use serde_json::json;

use crate::cli::{InitArgs, Template};
use crate::exit::Exit;
use crate::output;

/// One file of a template: a relative path and its text.
pub struct File {
    pub rel: String,
    pub text: String,
}

fn yaml<T: serde::Serialize>(docs: &[T]) -> anyhow::Result<String> {
    Ok(write::to_yaml_string(docs)?)
}

fn named_ref(name: &str) -> DataSetRef {
    DataSetRef {
        dataset: Some(name.to_string()),
        ..DataSetRef::default()
    }
}

fn col(name: &str, ty: &str, nullable: bool, description: &str, checks: Vec<Check>) -> Column {
    Column {
        name: name.into(),
        type_: ty.into(),
        nullable: if nullable { None } else { Some(false) },
        description: Some(description.into()),
        checks,
        ..Column::default()
    }
}

fn check_args(name: &str, args: CheckArgs) -> Check {
    let mut m = IndexMap::new();
    m.insert(name.to_string(), args);
    Check::WithArgs(m)
}

/// The files of a template for a project called `name`.
pub fn template_files(template: Template, name: &str) -> anyhow::Result<Vec<File>> {
    let mut project = Project::new(Kind::Project, name, ProjectSpec::default());
    project.spec.description = Some(format!("{name}: a DataKit project"));
    project.spec.default_environment = Some("dev".into());
    project.spec.state_backend = Some(StateBackend {
        type_: "local".into(),
        ..StateBackend::default()
    });

    let mut dev = Environment::new(Kind::Environment, "dev", EnvironmentSpec::default());
    dev.spec.tier = "dev".into();
    dev.spec.order = Some(1);
    dev.spec.description = Some("Local development: embedded DuckDB and local files".into());
    dev.spec.version_policy = Some("ranges".into());

    let mut files = vec![
        File {
            rel: "project.yaml".into(),
            text: yaml(&[&project])?,
        },
        File {
            rel: "environments/dev.yaml".into(),
            text: yaml(&[&dev])?,
        },
        File {
            rel: ".gitignore".into(),
            text: "# dk's local state, plans and run records\n.dk/\n".into(),
        },
    ];
    match template {
        Template::Empty => {
            for dir in ["connector", "store", "dataset", "transforms", "policies"] {
                files.push(File {
                    rel: format!("{dir}/.gitkeep"),
                    text: String::new(),
                });
            }
        }
        Template::Quickstart => files.extend(quickstart()?),
    }
    Ok(files)
}

fn quickstart() -> anyhow::Result<Vec<File>> {
    let duckdb = Connector::new(
        Kind::Connector,
        "duckdb",
        ConnectorSpec {
            type_: Some("duckdb".into()),
            capabilities: vec!["source".into(), "destination".into()],
            ..ConnectorSpec::default()
        },
    );
    let file = Connector::new(
        Kind::Connector,
        "file",
        ConnectorSpec {
            type_: Some("file".into()),
            capabilities: vec!["source".into(), "destination".into()],
            ..ConnectorSpec::default()
        },
    );
    let mut conn = IndexMap::new();
    conn.insert("path".to_string(), json!(".dk/warehouse.duckdb"));
    let warehouse = Store::new(
        Kind::Store,
        "warehouse",
        StoreSpec {
            connector: "duckdb".into(),
            connection: conn,
            ..StoreSpec::default()
        },
    );
    let mut conn = IndexMap::new();
    conn.insert("path".to_string(), json!("data"));
    let lake = Store::new(
        Kind::Store,
        "lake",
        StoreSpec {
            connector: "file".into(),
            connection: conn,
            ..StoreSpec::default()
        },
    );

    let mut raw = DataSet::new(Kind::DataSet, "raw-orders", DataSetSpec::default());
    raw.metadata.labels.insert("tier".into(), "raw".into());
    raw.spec = DataSetSpec {
        store: "lake".into(),
        prefix: Some("raw/orders/".into()),
        format: Some("csv".into()),
        external: true,
        classification: Some("confidential".into()),
        description: Some("Orders exported by the shop as CSV files".into()),
        owner: Some("data-eng".into()),
        schema: vec![
            col("order_id", "bigint", false, "Order number", vec![]),
            col(
                "customer_email",
                "string",
                true,
                "Customer e-mail address",
                vec![],
            ),
            col(
                "amount",
                "decimal(10,2)",
                false,
                "Order total in EUR",
                vec![],
            ),
            col(
                "status",
                "string",
                false,
                "placed, shipped or cancelled",
                vec![],
            ),
            col(
                "ordered_at",
                "timestamp",
                false,
                "When the order was placed",
                vec![],
            ),
        ],
        ..DataSetSpec::default()
    };
    raw.spec.schema[1].pii = true;

    let mut orders = DataSet::new(Kind::DataSet, "orders", DataSetSpec::default());
    orders
        .metadata
        .labels
        .insert("tier".into(), "silver".into());
    orders.spec = DataSetSpec {
        store: "warehouse".into(),
        table: Some("main.orders".into()),
        classification: Some("confidential".into()),
        description: Some("Orders loaded into the warehouse".into()),
        owner: Some("data-eng".into()),
        schema: vec![
            col(
                "order_id",
                "bigint",
                false,
                "Order number",
                vec![Check::Name("not_null".into()), Check::Name("unique".into())],
            ),
            col(
                "customer_email",
                "string",
                true,
                "Customer e-mail address",
                vec![],
            ),
            col(
                "amount",
                "decimal(10,2)",
                false,
                "Order total in EUR",
                vec![check_args(
                    "range",
                    CheckArgs {
                        min: Some(json!(0)),
                        ..CheckArgs::default()
                    },
                )],
            ),
            col(
                "status",
                "string",
                false,
                "placed, shipped or cancelled",
                vec![check_args(
                    "accepted_values",
                    CheckArgs {
                        values: vec![json!("placed"), json!("shipped"), json!("cancelled")],
                        ..CheckArgs::default()
                    },
                )],
            ),
            col(
                "ordered_at",
                "timestamp",
                false,
                "When the order was placed",
                vec![Check::Name("not_null".into())],
            ),
        ],
        checks: vec![check_args(
            "row_count",
            CheckArgs {
                min: Some(json!(1)),
                ..CheckArgs::default()
            },
        )],
        ..DataSetSpec::default()
    };
    orders.spec.schema[1].pii = true;
    for (c, src) in orders.spec.schema.iter_mut().zip([
        "order_id",
        "customer_email",
        "amount",
        "status",
        "ordered_at",
    ]) {
        c.from = Some(format!("raw-orders.{src}"));
    }

    let mut revenue = DataSet::new(Kind::DataSet, "daily-revenue", DataSetSpec::default());
    revenue.metadata.labels.insert("tier".into(), "gold".into());
    revenue.spec = DataSetSpec {
        store: "warehouse".into(),
        table: Some("main.daily_revenue".into()),
        classification: Some("internal".into()),
        description: Some("Revenue and order count per day, cancelled orders excluded".into()),
        owner: Some("analytics".into()),
        schema: vec![
            col(
                "order_date",
                "date",
                false,
                "Day of the orders",
                vec![Check::Name("not_null".into()), Check::Name("unique".into())],
            ),
            col(
                "orders",
                "bigint",
                false,
                "Orders placed that day",
                vec![check_args(
                    "range",
                    CheckArgs {
                        min: Some(json!(1)),
                        ..CheckArgs::default()
                    },
                )],
            ),
            col(
                "revenue",
                "decimal(18,2)",
                false,
                "Sum of order totals",
                vec![check_args(
                    "range",
                    CheckArgs {
                        min: Some(json!(0)),
                        ..CheckArgs::default()
                    },
                )],
            ),
        ],
        ..DataSetSpec::default()
    };
    revenue.spec.schema[0].from = Some("orders.ordered_at".into());
    revenue.spec.schema[2].from = Some("orders.amount".into());

    let mut load = Transform::new(Kind::Transform, "load-orders", TransformSpec::default());
    load.spec = TransformSpec {
        runtime: "sync".into(),
        description: Some("Copy the raw order files into the warehouse".into()),
        inputs: vec![named_ref("raw-orders")],
        outputs: vec![named_ref("orders")],
        trigger: Some(Trigger {
            policy: "schedule".into(),
            schedule: Some(Schedule {
                cron: "0 * * * *".into(),
                timezone: Some("UTC".into()),
                suspend: false,
            }),
            policies: vec![],
        }),
        timeout: Some("10m".into()),
        ..TransformSpec::default()
    };

    let mut daily = Transform::new(Kind::Transform, "daily-revenue", TransformSpec::default());
    let mut given = IndexMap::new();
    let row = |id: i64, amount: f64, status: &str, at: &str| {
        let mut r = IndexMap::new();
        r.insert("order_id".to_string(), json!(id));
        r.insert("amount".to_string(), json!(amount));
        r.insert("status".to_string(), json!(status));
        r.insert("ordered_at".to_string(), json!(at));
        r
    };
    given.insert(
        "orders".to_string(),
        Fixture::Rows(vec![
            row(1, 10.0, "placed", "2026-01-01 09:00:00"),
            row(2, 5.5, "shipped", "2026-01-01 17:30:00"),
            row(3, 99.0, "cancelled", "2026-01-01 18:00:00"),
            row(4, 20.0, "placed", "2026-01-02 08:15:00"),
        ]),
    );
    let exp = |d: &str, n: i64, r: f64| {
        let mut m = IndexMap::new();
        m.insert("order_date".to_string(), json!(d));
        m.insert("orders".to_string(), json!(n));
        m.insert("revenue".to_string(), json!(r));
        m
    };
    daily.spec = TransformSpec {
        runtime: "sql".into(),
        description: Some("Daily revenue from orders, cancelled orders excluded".into()),
        sql: Some("query.sql".into()),
        materialized: Some("table".into()),
        inputs: vec![named_ref("orders")],
        outputs: vec![named_ref("daily-revenue")],
        trigger: Some(Trigger {
            policy: "on-change".into(),
            ..Trigger::default()
        }),
        timeout: Some("5m".into()),
        tests: vec![UnitTest {
            name: "excludes-cancelled-orders".into(),
            given,
            expect: Fixture::Rows(vec![exp("2026-01-01", 2, 15.5), exp("2026-01-02", 1, 20.0)]),
            ordered: false,
        }],
        ..TransformSpec::default()
    };

    let csv = "order_id,customer_email,amount,status,ordered_at\n\
1001,ada@example.com,42.50,placed,2026-01-05 09:12:00\n\
1002,grace@example.com,19.99,shipped,2026-01-05 10:40:00\n\
1003,alan@example.com,7.25,cancelled,2026-01-05 11:03:00\n\
1004,ada@example.com,120.00,shipped,2026-01-06 08:55:00\n\
1005,edsger@example.com,64.10,placed,2026-01-06 14:20:00\n\
1006,barbara@example.com,15.00,placed,2026-01-07 16:45:00\n\
1007,grace@example.com,88.80,shipped,2026-01-07 18:02:00\n\
1008,ken@example.com,3.50,cancelled,2026-01-08 07:30:00\n\
1009,linus@example.com,45.00,placed,2026-01-08 12:00:00\n\
1010,margaret@example.com,250.00,shipped,2026-01-08 19:10:00\n";

    Ok(vec![
        File { rel: "connector/duckdb.yaml".into(), text: yaml(&[&duckdb])? },
        File { rel: "connector/file.yaml".into(), text: yaml(&[&file])? },
        File { rel: "store/warehouse.yaml".into(), text: yaml(&[&warehouse])? },
        File { rel: "store/lake.yaml".into(), text: yaml(&[&lake])? },
        File { rel: "dataset/raw-orders.yaml".into(), text: yaml(&[&raw])? },
        File { rel: "dataset/orders.yaml".into(), text: yaml(&[&orders])? },
        File { rel: "dataset/daily-revenue.yaml".into(), text: yaml(&[&revenue])? },
        File { rel: "transforms/load-orders/dk.yaml".into(), text: yaml(&[&load])? },
        File { rel: "transforms/daily-revenue/dk.yaml".into(), text: yaml(&[&daily])? },
        File {
            rel: "transforms/daily-revenue/query.sql".into(),
            text: "-- Daily revenue: one row per day, cancelled orders excluded.\n\
select\n    cast(ordered_at as date) as order_date,\n    count(*) as orders,\n    sum(amount) as revenue\n\
from {{ ref('orders') }}\nwhere status <> 'cancelled'\ngroup by 1\n"
                .into(),
        },
        File { rel: "data/raw/orders/orders.csv".into(), text: csv.into() },
        File {
            rel: "policies/README.md".into(),
            text: "Policies (kind: Policy) live here: guardrails evaluated by `dk lint -e ENV` and `dk plan`.\n".into(),
        },
    ])
}

fn is_non_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
}

pub fn run(a: InitArgs) -> anyhow::Result<Exit> {
    let dir: PathBuf = a.dir.clone();
    if dir.exists() && !dir.is_dir() {
        bail!("{} exists and is not a directory", dir.display());
    }
    if is_non_empty_dir(&dir) && !a.force {
        bail!(
            "{} is not empty; choose an empty or new directory, or pass --force to write into it",
            dir.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let abs = std::fs::canonicalize(&dir)?;
    let name = match &a.name {
        Some(n) => n.clone(),
        None => {
            let base = abs
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "project".into());
            let n = dk_manifest::validate::sanitize_name(&base);
            if n.is_empty() {
                "project".into()
            } else {
                n
            }
        }
    };
    if !dk_manifest::validate::is_valid_name(&name) {
        bail!("project name \"{name}\" is not valid: use lower case letters, digits and '-', starting with a letter");
    }
    let files = template_files(a.template, &name)?;
    // Validate the whole template in memory before writing anything.
    let mut model = loader::ProjectModel::empty(abs.clone(), true);
    for f in files.iter().filter(|f| f.rel.ends_with(".yaml")) {
        model.add_text(&abs.join(&f.rel), &f.text);
    }
    // File checks (query.sql) look at the disk: write non-YAML files first, YAML after validation.
    for f in files.iter().filter(|f| !f.rel.ends_with(".yaml")) {
        write::write_atomic(&abs.join(&f.rel), f.text.as_bytes())?;
    }
    let diags = super::lint::all_rules(&model, true);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        let opts = render::HumanOptions {
            color: output::color_stdout(),
            width: output::width(),
        };
        eprint!("{}", render::human(&diags, &model.sources, opts));
        bail!(
            "the {:?} template does not validate (a bug in dk); nothing but data files was written",
            a.template
        );
    }
    for f in files.iter().filter(|f| f.rel.ends_with(".yaml")) {
        write::write_atomic(&abs.join(&f.rel), f.text.as_bytes())?;
    }
    println!(
        "Created project \"{name}\" in {} ({} files):",
        dir.display(),
        files.len()
    );
    for f in &files {
        println!("  {}", f.rel);
    }
    println!(
        "\nNext: cd {} && dk lint && dk pipeline show",
        dir.display()
    );
    Ok(Exit::Ok)
}
