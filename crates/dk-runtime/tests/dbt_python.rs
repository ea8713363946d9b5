//! The `dbt` and `python` runtimes against the real dbt (dbt-core + dbt-duckdb + dbt-postgres)
//! and the real PostgreSQL, on the fixture project `tests/fixtures/dbt-shop` (copied to a
//! temporary directory per test).
//!
//! dbt is found through `DK_DBT`, else `/var/tmp/dk-dbt-venv/bin/dbt` (what `scripts/dbt-venv.sh`
//! installs); the python transform runs with that venv's Python (it has the `duckdb` package).
//! PostgreSQL: `DK_TEST_PG_URL` (default `host=127.0.0.1 port=5432 user=postgres dbname=test`),
//! one database per test, dropped afterwards.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dk_runtime::{dbt, lineage, python};
use dk_test_support::{dbt_path, pg, pg_conninfo, TestDb};
use indexmap::IndexMap;

/// Sets DK_DBT / DK_PYTHON for the runtimes (same value for every test, so concurrent setting
/// is harmless).
fn use_venv() -> PathBuf {
    let dbt = dbt_path();
    let py = dbt.with_file_name("python");
    assert!(
        py.is_file(),
        "{} is missing: the dbt venv from scripts/dbt-venv.sh has Python with duckdb",
        py.display()
    );
    // SAFETY of set_var: every test sets the same values.
    unsafe {
        std::env::set_var("DK_DBT", &dbt);
        std::env::set_var("DK_PYTHON", &py);
        std::env::set_var("DBT_SEND_ANONYMOUS_USAGE_STATS", "false");
    }
    dbt
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dbt-shop"),
        dir.path(),
    );
    std::fs::create_dir_all(dir.path().join(".dk")).unwrap();
    dir
}

fn load(root: &Path) -> dk_manifest::ProjectModel {
    let model = dk_manifest::loader::load(root).unwrap();
    assert!(
        model
            .diagnostics
            .iter()
            .all(|d| d.severity != dk_diagnostics::Severity::Error),
        "{:?}",
        model.diagnostics
    );
    model
}

fn resolve(
    model: &dk_manifest::ProjectModel,
    env: &str,
    vars: &IndexMap<String, String>,
) -> dk_env::ResolvedProject {
    dk_env::resolve(model, Some(env), vars).unwrap_or_else(|d| panic!("{d:?}"))
}

fn duck_rows(path: &Path, sql: &str) -> Vec<String> {
    let conn = duckdb::Connection::open(path).unwrap();
    let mut st = conn.prepare(sql).unwrap();
    let rows = st
        .query_map([], |r| {
            let n = r.as_ref().column_count();
            let mut v = Vec::new();
            for i in 0..n {
                let x: duckdb::types::Value = r.get(i)?;
                v.push(format!("{x:?}"));
            }
            Ok(v.join("|"))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

fn seed_duckdb(path: &Path) {
    let conn = duckdb::Connection::open(path).unwrap();
    conn.execute_batch(
        "create schema raw; create table raw.orders (id integer, customer varchar, amount double);
         insert into raw.orders values (1, 'Ann', 10), (2, 'ann', 5.5), (3, 'Bob', 7), (4, 'Cy', 1);",
    )
    .unwrap();
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn dbt_builds_models_and_tests_on_duckdb() {
    let dbt_bin = use_venv();
    let dir = project();
    let db = dir.path().join(".dk/warehouse.duckdb");
    seed_duckdb(&db);
    let model = load(dir.path());
    let env = resolve(&model, "dev", &IndexMap::new());

    let setup = dbt::prepare(&model, &env, "revenue").unwrap();
    assert_eq!(setup.dbt, dbt_bin);
    assert_eq!(setup.select, vec!["+customer_revenue".to_string()]);
    assert_eq!(setup.schema, "main");
    assert_eq!(setup.profile, "shop");
    assert_eq!(setup.target, "dev");
    // The profile: private, outside the project, pointing at the environment's DuckDB file.
    let profile = setup.profiles_dir().join("profiles.yml");
    assert!(!setup.profiles_dir().starts_with(dir.path()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&profile).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "profiles.yml mode {mode:o}");
    }
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.contains("\"type\": \"duckdb\""), "{text}");
    assert!(text.contains(&db.display().to_string()), "{text}");
    // Store variables as the DataKit Go tool sets them.
    assert_eq!(setup.env.get("DK_STORE_TYPE_WAREHOUSE"), Some("duckdb"));
    assert_eq!(
        setup.env.get("DK_STORE_DSN_WAREHOUSE"),
        Some(db.display().to_string().as_str())
    );
    assert_eq!(setup.vars.get("min_amount"), Some(&serde_json::json!("0")));

    let run = rt()
        .block_on(dbt::build(&setup, Some(Duration::from_secs(300)), false))
        .unwrap();
    assert!(
        run.success(),
        "{:?}\n{}\n{}",
        run.error,
        run.stdout,
        run.stderr
    );
    assert_eq!(run.exit_code, Some(0));
    let status = |name: &str| {
        run.nodes
            .iter()
            .find(|n| n.name == name || n.unique_id.contains(name))
            .map(|n| n.status.clone())
    };
    assert_eq!(
        status("stg_orders").as_deref(),
        Some("success"),
        "{:?}",
        run.nodes
    );
    assert_eq!(status("customer_revenue").as_deref(), Some("success"));
    assert_eq!(
        status("unique_customer_revenue_customer").as_deref(),
        Some("pass")
    );
    assert_eq!(
        status("source_unique_raw_orders_id").as_deref(),
        Some("pass")
    );
    assert!(
        run.nodes.iter().all(|n| n.name != "broken_model"),
        "the selection builds only the transform's models: {:?}",
        run.nodes
    );
    let profiles_dir = setup.profiles_dir().to_path_buf();
    drop(setup);
    assert!(!profiles_dir.exists(), "the generated profile is removed");

    assert_eq!(
        duck_rows(
            &db,
            "select customer, orders, revenue from main.customer_revenue order by 1"
        ),
        vec![
            "Text(\"ann\")|BigInt(2)|Double(15.5)",
            "Text(\"bob\")|BigInt(1)|Double(7.0)",
            "Text(\"cy\")|BigInt(1)|Double(1.0)"
        ]
    );

    // A failing model: the run fails and says which node and why.
    let setup = dbt::prepare(&model, &env, "broken").unwrap();
    assert_eq!(setup.select, vec!["broken_model".to_string()]);
    let run = rt().block_on(dbt::build(&setup, None, false)).unwrap();
    assert!(!run.success());
    assert_eq!(run.exit_code, Some(1));
    let err = run.error.clone().unwrap();
    assert!(err.contains("model broken_model error"), "{err}");
    assert!(err.to_lowercase().contains("no_such_column"), "{err}");
}

#[test]
fn dbt_passthrough_command_and_missing_dbt() {
    use_venv();
    let dir = project();
    let model = load(dir.path());
    let env = resolve(&model, "dev", &IndexMap::new());
    let e = dbt::pick_transform(&model, None).unwrap_err().to_string();
    assert!(
        e.contains("several dbt transforms (broken, revenue)"),
        "{e}"
    );
    assert_eq!(
        dbt::pick_transform(&model, Some("revenue")).unwrap(),
        "revenue"
    );
    let e = dbt::pick_transform(&model, Some("score"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("runtime is python, not dbt"), "{e}");

    let setup = dbt::prepare(&model, &env, "revenue").unwrap();
    let out = setup.command(&["debug".to_string()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("All checks passed"), "{stdout}");
    assert!(
        stdout.contains(&setup.profiles_dir().display().to_string()),
        "{stdout}"
    );

    // DK_DBT pointing nowhere is a clear error naming the install script.
    let e = process_error_with("DK_DBT_MISSING_FOR_TEST");
    assert!(e.contains("scripts/dbt-venv.sh"), "{e}");
}

/// The error `find_program` gives for an unset variable and a program not on PATH.
fn process_error_with(var: &str) -> String {
    dk_runtime::process::find_program(var, "dbt-not-installed-anywhere", dbt::INSTALL_HINT)
        .unwrap_err()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

fn pg_vars(db: &str) -> IndexMap<String, String> {
    let cfg: tokio_postgres::Config = pg_conninfo(db).parse().unwrap();
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let mut v = IndexMap::new();
    v.insert("SHOP_PG_HOST".to_string(), host);
    v.insert(
        "SHOP_PG_PORT".to_string(),
        cfg.get_ports().first().copied().unwrap_or(5432).to_string(),
    );
    v.insert("SHOP_PG_DB".to_string(), db.to_string());
    v.insert(
        "SHOP_PG_USER".to_string(),
        cfg.get_user().unwrap_or("postgres").to_string(),
    );
    v.insert(
        "SHOP_PG_PASSWORD".to_string(),
        cfg.get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default(),
    );
    v
}

#[test]
fn dbt_builds_models_and_tests_on_postgres() {
    use_venv();
    let db = TestDb::new("dbt");
    pg(
        &db.0,
        "create schema raw; create table raw.orders (id integer, customer text, amount double precision);
         insert into raw.orders values (1, 'Ann', 10), (2, 'ann', 5.5), (3, 'Bob', 7);",
    );
    let dir = project();
    let model = load(dir.path());
    let env = resolve(&model, "pg", &pg_vars(&db.0));
    let setup = dbt::prepare(&model, &env, "revenue").unwrap();
    assert_eq!(setup.schema, "public");
    assert_eq!(setup.target, "pg");
    let text = std::fs::read_to_string(setup.profiles_dir().join("profiles.yml")).unwrap();
    assert!(text.contains("\"type\": \"postgres\""), "{text}");
    assert!(
        text.contains(&format!("\"dbname\": \"{}\"", db.0)),
        "{text}"
    );
    assert_eq!(setup.env.get("DK_STORE_TYPE_WAREHOUSE"), Some("postgres"));
    let dsn = setup.env.get("DK_STORE_DSN_WAREHOUSE").unwrap().to_string();
    assert!(
        dsn.starts_with("postgresql://") && dsn.contains(&format!("/{}", db.0)),
        "{dsn}"
    );

    let run = rt()
        .block_on(dbt::build(&setup, Some(Duration::from_secs(300)), false))
        .unwrap();
    assert!(
        run.success(),
        "{:?}\n{}\n{}",
        run.error,
        run.stdout,
        run.stderr
    );
    let model_node = run
        .nodes
        .iter()
        .find(|n| n.name == "customer_revenue")
        .unwrap();
    assert_eq!(
        model_node.rows,
        Some(2),
        "postgres reports rows: {model_node:?}"
    );
    assert_eq!(run.rows_written(), Some(2));
    assert_eq!(
        pg(
            &db.0,
            "select customer, orders, revenue from public.customer_revenue order by 1"
        ),
        vec![
            vec![Some("ann".into()), Some("2".into()), Some("15.5".into())],
            vec![Some("bob".into()), Some("1".into()), Some("7".into())],
        ]
    );
    // A failing dbt test fails the run with the test named: duplicate customers.
    pg(&db.0, "insert into raw.orders values (3, 'Dee', 1)");
    let run = rt().block_on(dbt::build(&setup, None, false)).unwrap();
    assert!(!run.success());
    let err = run.error.unwrap();
    assert!(err.contains("source_unique_raw_orders_id fail"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// python

#[test]
fn python_transform_reads_csv_and_writes_duckdb() {
    use_venv();
    let dir = project();
    let lake = dir.path().join("lake/orders");
    std::fs::create_dir_all(&lake).unwrap();
    std::fs::write(
        lake.join("part-1.csv"),
        "id,customer,amount\n1,ann,10\n2,bob,2.5\n3,ann,1\n",
    )
    .unwrap();
    let model = load(dir.path());
    let env = resolve(&model, "dev", &IndexMap::new());
    let ctx = python::run_context(&model, &env, "score", "r-1", false).unwrap();
    assert_eq!(
        ctx.inputs[0].path.as_deref(),
        Some(lake.display().to_string().as_str())
    );
    assert_eq!(ctx.outputs[0].dsn_env, "DK_STORE_DSN_WAREHOUSE");
    assert_eq!(ctx.outputs[0].schema[1].name, "score");

    let run = rt()
        .block_on(python::run(&model, &env, "score", "run-42", false))
        .unwrap();
    assert!(
        run.success(),
        "{:?}\n{}\n{}",
        run.error,
        run.stdout,
        run.stderr
    );
    assert_eq!(run.stdout, "scored 2 customers for run run-42 in dev\n");
    assert_eq!(
        duck_rows(
            &dir.path().join(".dk/warehouse.duckdb"),
            "select customer, score from scores.customer_scores order by 1"
        ),
        vec!["Text(\"ann\")|Double(32.0)", "Text(\"bob\")|Double(15.0)"]
    );

    // Non-zero exit: a failure carrying the script's last stderr line.
    std::fs::remove_file(lake.join("part-1.csv")).unwrap();
    let run = rt()
        .block_on(python::run(&model, &env, "score", "run-43", false))
        .unwrap();
    assert_eq!(run.exit_code, Some(3));
    let err = run.error.unwrap();
    assert!(
        err.contains("score.py exited with status 3: no input rows under"),
        "{err}"
    );
}

#[test]
fn python_timeout_stops_the_script() {
    use_venv();
    let dir = project();
    let t = dir.path().join("transforms/score/dk.yaml");
    let text = std::fs::read_to_string(&t)
        .unwrap()
        .replace("timeout: 2m", "timeout: 1s");
    std::fs::write(&t, text).unwrap();
    std::fs::write(
        dir.path().join("transforms/score/score.py"),
        "import time\nprint('started', flush=True)\ntime.sleep(30)\n",
    )
    .unwrap();
    let model = load(dir.path());
    let env = resolve(&model, "dev", &IndexMap::new());
    let start = std::time::Instant::now();
    let run = rt()
        .block_on(python::run(&model, &env, "score", "r", false))
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(run.timed_out);
    assert_eq!(run.stdout, "started\n");
    assert!(run
        .error
        .unwrap()
        .contains("did not finish within the transform's timeout (1s)"));
}

// ---------------------------------------------------------------------------------------------
// lineage of the fixture's transforms

#[test]
fn job_info_names_datasets_and_declares_schemas() {
    let dir = project();
    let model = load(dir.path());
    let env = resolve(&model, "dev", &IndexMap::new());
    let job = lineage::JobInfo::for_transform(&model, &env, "revenue").unwrap();
    assert_eq!(job.namespace, "shop");
    let db = dir.path().join(".dk/warehouse.duckdb");
    assert_eq!(
        job.inputs[0].namespace,
        format!("duckdb://{}", db.display())
    );
    assert_eq!(job.inputs[0].name, "raw.orders");
    assert_eq!(job.outputs[0].name, "main.customer_revenue");
    assert_eq!(job.outputs[0].fields.len(), 3);
    let job = lineage::JobInfo::for_transform(&model, &env, "score").unwrap();
    assert_eq!(job.inputs[0].namespace, "file");
    assert_eq!(
        job.inputs[0].name,
        dir.path().join("lake/orders").display().to_string()
    );
}
