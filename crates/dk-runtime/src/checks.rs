//! Data checks on DataSets (`not_null`, `unique`, `accepted_values`, `relationships`, `range`,
//! `regex`, `row_count`, `freshness`, `expression`), run **fused**: all checks of one table are one
//! SQL statement that scans the table once with conditional aggregates
//! (`count(*) FILTER (WHERE …)`); `unique` is `count(col) - count(DISTINCT col)` in the same scan and
//! each `relationships` check joins a `SELECT DISTINCT` of its parent column. Sample failing rows
//! are read by a second statement, issued only when a row-level check failed (one `UNION ALL`
//! branch per failing check).
//!
//! * [`plan_dataset`] — a DataSet's checks as [`CheckSpec`]s (with manifest locations), resolved
//!   against the environment (relationship parents must live in the same store);
//! * [`fused_sql`] / [`samples_sql`] — the statements, per [`Dialect`] (regular expressions are
//!   `regexp_matches` in DuckDB and `~` in PostgreSQL; freshness ages use each engine's epoch, `epoch_ms` in DuckDB so that ICU is not needed);
//! * [`run_table_checks`] — runs them through the [`DataPlane`] and returns a [`DatasetReport`];
//! * [`check_outputs`] — what `dk run` calls after a transform: its outputs' checks, with the
//!   blocking (error-severity) failures.
//!
//! Checks the table's definition already enforces are not scanned: `not_null` on a `NOT NULL`
//! column and `unique` on a column with its own unique index or key pass, saying what guarantees
//! them ([`DataPlane::guarantees`], one catalog query per store).
//!
//! Semantics (documented in `docs/testing.md`): NULLs pass every row-level check but `not_null`;
//! `unique` counts the rows beyond the first of each duplicated value; `range` bounds are
//! inclusive; `regex` is a search (anchor with `^…$` for a full match); `expression` fails the rows
//! where the SQL is false (NULL passes, as in dbt); `where` restricts any check to matching rows.

use std::collections::HashMap;
use std::time::Instant;

use arrow::array::RecordBatch;
use dk_env::ResolvedProject;
use dk_manifest::loader::ProjectModel;
use dk_manifest::model::{Check, CheckArgs, DataSet, Kind};
use serde::Serialize;
use serde_json::Value;

use crate::dataplane::{
    quote_ident, quote_literal, text_column, DataPlane, Dialect, Guarantees, Target,
};
use crate::error::{Result, RuntimeError};

/// Sample failing rows read per failing check unless told otherwise.
pub const DEFAULT_SAMPLES: usize = 5;

/// The kinds of checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    NotNull,
    Unique,
    AcceptedValues,
    Relationships,
    Range,
    Regex,
    RowCount,
    Freshness,
    Expression,
}

impl CheckKind {
    pub fn parse(s: &str) -> Option<CheckKind> {
        Some(match s {
            "not_null" => CheckKind::NotNull,
            "unique" => CheckKind::Unique,
            "accepted_values" => CheckKind::AcceptedValues,
            "relationships" => CheckKind::Relationships,
            "range" => CheckKind::Range,
            "regex" => CheckKind::Regex,
            "row_count" => CheckKind::RowCount,
            "freshness" => CheckKind::Freshness,
            "expression" => CheckKind::Expression,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::NotNull => "not_null",
            CheckKind::Unique => "unique",
            CheckKind::AcceptedValues => "accepted_values",
            CheckKind::Relationships => "relationships",
            CheckKind::Range => "range",
            CheckKind::Regex => "regex",
            CheckKind::RowCount => "row_count",
            CheckKind::Freshness => "freshness",
            CheckKind::Expression => "expression",
        }
    }

    /// Whether failures are rows (so samples exist); `row_count` and `freshness` judge the table.
    pub fn is_row_level(self) -> bool {
        !matches!(self, CheckKind::RowCount | CheckKind::Freshness)
    }

    /// Whether the check needs a column.
    pub fn needs_column(self) -> bool {
        !matches!(
            self,
            CheckKind::RowCount | CheckKind::Expression | CheckKind::Freshness
        )
    }
}

/// `warn` failures are reported; `error` failures fail `dk test` (exit 8) and stop `dk run`
/// downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckSeverity {
    Warn,
    Error,
}

/// One check of one DataSet, ready to run.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSpec {
    /// Unique within the dataset: `not_null(order_id)`, `row_count`, `expression#2`.
    pub name: String,
    pub kind: CheckKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub severity: CheckSeverity,
    #[serde(skip)]
    pub args: CheckArgs,
    /// Where the check is declared (`dataset/orders.yaml:12:9`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `relationships`: the parent's quoted relation and column.
    #[serde(skip)]
    pub parent: Option<(String, String)>,
    /// Why this check cannot run (reported as an error result instead of running).
    #[serde(skip)]
    pub problem: Option<String>,
    /// What in the table's definition makes this check pass without a scan (`NOT NULL`,
    /// `unique index events_id_key`); set by [`run_table_checks`] from the store's catalog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guaranteed_by: Option<String>,
}

/// The checks of one DataSet and where its data is.
#[derive(Debug, Clone)]
pub struct TableChecks {
    pub dataset: String,
    pub store: String,
    pub target: Target,
    pub checks: Vec<CheckSpec>,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Fail,
    /// The check could not run (missing table, bad SQL, unsupported store).
    Error,
    /// Not run: the DataSet's table does not exist yet and no apply has created it (a new
    /// DataSet). Its checks run after `dk apply` and `dk run`; see [`skipped_report`].
    Skipped,
}

/// The result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    #[serde(flatten)]
    pub spec: CheckSpec,
    pub status: CheckStatus,
    /// Failing rows (row-level checks) or 1/0 (row_count, freshness).
    pub failing: u64,
    /// What was measured, for table-level checks (`rows: 0`, `newest: 2026-01-01 …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// One line saying what failed (empty when it passed).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Up to N failing rows, column → value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<serde_json::Map<String, Value>>,
}

impl CheckResult {
    /// A failed or errored check of error severity.
    pub fn is_blocking(&self) -> bool {
        matches!(self.status, CheckStatus::Fail | CheckStatus::Error)
            && self.spec.severity == CheckSeverity::Error
    }
}

/// The checks of one DataSet, run.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    pub dataset: String,
    pub store: String,
    /// `main.orders`, `raw/orders/*.csv`.
    pub relation: String,
    /// Rows scanned (when the fused query ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Statements issued: 1 (the fused scan) + 1 when samples were read.
    pub queries: usize,
    pub duration_ms: u64,
    pub results: Vec<CheckResult>,
}

impl DatasetReport {
    pub fn blocking(&self) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(|r| r.is_blocking())
    }
}

/// The checks declared on a DataSet (column checks first, in schema order, then table checks),
/// resolved for an environment. `None` when the DataSet declares none.
pub fn plan_dataset(
    model: &ProjectModel,
    env: &ResolvedProject,
    dataset: &str,
) -> Result<Option<TableChecks>> {
    let Some((doc, ds)) = model.datasets().find(|(_, d)| d.metadata.name == dataset) else {
        return Err(RuntimeError::Config(format!(
            "dataset {dataset} is not defined in this project"
        )));
    };
    let mut declared: Vec<(Option<String>, String, CheckArgs, String)> = Vec::new();
    for (i, col) in ds.spec.schema.iter().enumerate() {
        for (j, c) in col.checks.iter().enumerate() {
            for (kind, args, ptr) in parts(c, &format!("/spec/schema/{i}/checks/{j}")) {
                let column = args.column.clone().or_else(|| Some(col.name.clone()));
                declared.push((column, kind, args, ptr));
            }
        }
    }
    for (j, c) in ds.spec.checks.iter().enumerate() {
        for (kind, args, ptr) in parts(c, &format!("/spec/checks/{j}")) {
            declared.push((args.column.clone(), kind, args, ptr));
        }
    }
    if declared.is_empty() {
        return Ok(None);
    }
    let store = env.stores.get(&ds.spec.store).ok_or_else(|| {
        RuntimeError::Config(format!(
            "dataset {dataset}: store {} is not defined in environment {}",
            ds.spec.store, env.environment
        ))
    })?;
    let target = Target::of_dataset(ds, store)?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut checks = Vec::new();
    for (column, kind_name, args, ptr) in declared {
        let l = doc.loc(&ptr);
        let location = Some(format!("{}:{}:{}", l.file, l.span.line, l.span.column));
        let Some(kind) = CheckKind::parse(&kind_name) else {
            checks.push(CheckSpec {
                name: kind_name.clone(),
                kind: CheckKind::Expression,
                column,
                severity: CheckSeverity::Error,
                args,
                location,
                parent: None,
                problem: Some(format!(
                    "unknown check `{kind_name}` (run `dk lint` for the list)"
                )),
                guaranteed_by: None,
            });
            continue;
        };
        let base = match &column {
            Some(c) if kind.needs_column() || kind == CheckKind::Freshness => {
                format!("{}({c})", kind.as_str())
            }
            _ => kind.as_str().to_string(),
        };
        let n = seen.entry(base.clone()).or_insert(0);
        *n += 1;
        let name = if *n == 1 { base } else { format!("{base}#{n}") };
        let severity = match args.severity.as_deref() {
            Some("warn") | Some("warning") => CheckSeverity::Warn,
            _ => CheckSeverity::Error,
        };
        let mut spec = CheckSpec {
            name,
            kind,
            column,
            severity,
            args,
            location,
            parent: None,
            problem: None,
            guaranteed_by: None,
        };
        spec.problem = problem(&spec);
        if kind == CheckKind::Relationships && spec.problem.is_none() {
            match parent(model, env, ds, &spec) {
                Ok(p) => spec.parent = Some(p),
                Err(e) => spec.problem = Some(e),
            }
        }
        checks.push(spec);
    }
    Ok(Some(TableChecks {
        dataset: dataset.to_string(),
        store: store.name.clone(),
        target,
        checks,
    }))
}

fn parts(c: &Check, ptr: &str) -> Vec<(String, CheckArgs, String)> {
    match c {
        Check::Name(n) => vec![(n.clone(), CheckArgs::default(), ptr.to_string())],
        Check::WithArgs(m) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.clone(),
                    format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1")),
                )
            })
            .collect(),
    }
}

/// What makes a check unrunnable (the validator reports these too, with codes).
fn problem(s: &CheckSpec) -> Option<String> {
    let a = &s.args;
    let k = s.kind.as_str();
    if s.kind.needs_column() && s.column.is_none() {
        return Some(format!("check `{k}` needs `column`"));
    }
    match s.kind {
        CheckKind::AcceptedValues if a.values.iter().all(Value::is_null) => {
            Some("accepted_values needs `values`".into())
        }
        CheckKind::Relationships if a.to.as_deref().is_none_or(|t| !t.contains('.')) => {
            Some("relationships needs `to: dataset.column`".into())
        }
        CheckKind::Range | CheckKind::RowCount if a.min.is_none() && a.max.is_none() => {
            Some(format!("check `{k}` needs `min` or `max`"))
        }
        CheckKind::Range => [&a.min, &a.max]
            .into_iter()
            .flatten()
            .find_map(|v| literal(v).err()),
        CheckKind::RowCount => [&a.min, &a.max]
            .into_iter()
            .flatten()
            .find(|v| v.as_u64().is_none())
            .map(|v| format!("row_count bounds must be whole numbers (got {v})")),
        CheckKind::Regex if a.pattern.is_none() => Some("regex needs `pattern`".into()),
        CheckKind::Freshness => match (&s.column, &a.max_age) {
            (None, _) => Some("freshness needs `column` (a timestamp or date column)".into()),
            (_, None) => Some("freshness needs `maxAge` (e.g. 24h)".into()),
            (_, Some(age)) => humantime::parse_duration(age)
                .err()
                .map(|e| format!("freshness maxAge \"{age}\": {e}")),
        },
        CheckKind::Expression if a.sql.as_deref().is_none_or(|s| s.trim().is_empty()) => {
            Some("expression needs `sql`".into())
        }
        _ => None,
    }
}

/// The parent relation and column of a relationships check (same store only).
fn parent(
    model: &ProjectModel,
    env: &ResolvedProject,
    child: &DataSet,
    s: &CheckSpec,
) -> std::result::Result<(String, String), String> {
    let to = s.args.to.as_deref().unwrap_or_default();
    let Some((pds, pcol)) = to.rsplit_once('.') else {
        return Err(format!(
            "relationships `to` must be dataset.column (got {to})"
        ));
    };
    let Some((_, p)) = model.datasets().find(|(_, d)| d.metadata.name == pds) else {
        return Err(format!("relationships: dataset {pds} is not defined"));
    };
    if p.spec.store != child.spec.store {
        return Err(format!(
            "relationships: {pds} is in store {}, {} in store {}; both must be in one store to be compared in SQL",
            p.spec.store, child.metadata.name, child.spec.store
        ));
    }
    let store = env
        .stores
        .get(&p.spec.store)
        .ok_or_else(|| format!("store {} is not defined", p.spec.store))?;
    match Target::of_dataset(p, store).map_err(|e| e.to_string())? {
        Target::Table { schema, name } => Ok((
            format!("{}.{}", quote_ident(&schema), quote_ident(&name)),
            pcol.to_string(),
        )),
        Target::Files { .. } => Err(format!(
            "relationships: {pds} is files; the parent must be a table"
        )),
    }
}

/// A manifest value as a SQL literal (strings quoted, numbers and booleans as written).
fn literal(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::String(s) => Ok(quote_literal(s)),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(if *b { "TRUE" } else { "FALSE" }.into()),
        other => Err(format!(
            "{other} cannot be compared in SQL: write a number, a string or a boolean"
        )),
    }
}

/// The row predicate that makes a row fail a row-level check (`None` for table-level checks
/// and `unique`, which are aggregates). Columns are referred to as `t."col"`; the relationships
/// check of index `i` uses the join alias `r{i}`.
fn failing_predicate(s: &CheckSpec, i: usize, dialect: Dialect) -> Option<String> {
    let col = s.column.as_deref().map(|c| format!("t.{}", quote_ident(c)));
    let col = col.as_deref().unwrap_or("NULL");
    let a = &s.args;
    Some(match s.kind {
        CheckKind::NotNull => format!("{col} IS NULL"),
        CheckKind::AcceptedValues => {
            let vals: Vec<String> = a
                .values
                .iter()
                .filter(|v| !v.is_null())
                .filter_map(|v| literal(v).ok())
                .collect();
            format!("{col} IS NOT NULL AND {col} NOT IN ({})", vals.join(", "))
        }
        CheckKind::Range => {
            let mut conds = Vec::new();
            if let Some(m) = a.min.as_ref().and_then(|v| literal(v).ok()) {
                conds.push(format!("{col} < {m}"));
            }
            if let Some(m) = a.max.as_ref().and_then(|v| literal(v).ok()) {
                conds.push(format!("{col} > {m}"));
            }
            format!("({})", conds.join(" OR "))
        }
        CheckKind::Regex => {
            let pat = quote_literal(a.pattern.as_deref().unwrap_or_default());
            match dialect {
                Dialect::Postgres => format!("CAST({col} AS TEXT) !~ {pat}"),
                _ => format!("NOT regexp_matches(CAST({col} AS VARCHAR), {pat})"),
            }
        }
        CheckKind::Expression => format!("NOT ({})", a.sql.as_deref().unwrap_or("TRUE")),
        CheckKind::Relationships => {
            format!(
                "{col} IS NOT NULL AND r{i}.{} IS NULL",
                quote_ident(&key_alias(i))
            )
        }
        CheckKind::Unique | CheckKind::RowCount | CheckKind::Freshness => return None,
    })
}

fn key_alias(i: usize) -> String {
    format!("__dk_k{i}")
}

fn with_where(s: &CheckSpec, pred: &str) -> String {
    match s.args.where_.as_deref().filter(|w| !w.trim().is_empty()) {
        Some(w) => format!("({w}) AND ({pred})"),
        None => pred.to_string(),
    }
}

fn filter_where(s: &CheckSpec) -> String {
    match s.args.where_.as_deref().filter(|w| !w.trim().is_empty()) {
        Some(w) => format!(" FILTER (WHERE {w})"),
        None => String::new(),
    }
}

fn join_clause(s: &CheckSpec, i: usize) -> Option<String> {
    let (rel, pcol) = s.parent.as_ref()?;
    let col = s.column.as_deref()?;
    let k = quote_ident(&key_alias(i));
    Some(format!(
        " LEFT JOIN (SELECT DISTINCT {} AS {k} FROM {rel}) AS r{i} ON t.{} = r{i}.{k}",
        quote_ident(pcol),
        quote_ident(col)
    ))
}

/// The fused statement: one scan of `relation` (aliased `t`) computing every runnable check.
/// Columns: `__dk_rows`, then per check `i` `c{i}` (failing rows; for `row_count` the rows
/// counted; for `freshness` the newest value as text) and, for freshness, `a{i}` (its age in
/// seconds). Checks with a `problem` are left out (the caller reports them).
pub fn fused_sql(relation: &str, checks: &[CheckSpec], dialect: Dialect) -> String {
    let mut cols = vec!["count(*) AS \"__dk_rows\"".to_string()];
    let mut joins = String::new();
    for (i, s) in checks.iter().enumerate() {
        if s.problem.is_some() || s.guaranteed_by.is_some() {
            continue;
        }
        let col = s
            .column
            .as_deref()
            .map(|c| format!("t.{}", quote_ident(c)))
            .unwrap_or_default();
        match s.kind {
            CheckKind::Unique => {
                let f = filter_where(s);
                cols.push(format!(
                    "count({col}){f} - count(DISTINCT {col}){f} AS \"c{i}\""
                ));
            }
            CheckKind::RowCount => cols.push(format!("count(*){} AS \"c{i}\"", filter_where(s))),
            CheckKind::Freshness => {
                let newest = format!("max({col}){}", filter_where(s));
                cols.push(format!("CAST({newest} AS VARCHAR) AS \"c{i}\""));
                let age = match dialect {
                    Dialect::Postgres => {
                        format!("EXTRACT(EPOCH FROM (now() - CAST({newest} AS TIMESTAMPTZ)))")
                    }
                    // `epoch_ms`, not `epoch` or a cast to TIMESTAMPTZ: those need DuckDB's ICU
                    // extension, which may not be installed. TIMESTAMP columns read as UTC.
                    _ => format!("(epoch_ms(now()) - epoch_ms({newest})) / 1000.0"),
                };
                cols.push(format!("CAST({age} AS DOUBLE PRECISION) AS \"a{i}\""));
            }
            _ => {
                if let Some(j) = join_clause(s, i) {
                    joins.push_str(&j);
                }
                let pred = failing_predicate(s, i, dialect).unwrap_or_else(|| "FALSE".into());
                cols.push(format!(
                    "count(*) FILTER (WHERE {}) AS \"c{i}\"",
                    with_where(s, &pred)
                ));
            }
        }
    }
    format!("SELECT {} FROM {relation} AS t{joins}", cols.join(", "))
}

/// The samples statement: for each failing row-level check `i` (in `failing`), up to `limit`
/// failing rows as one JSON object each, tagged with the check's index: columns
/// `__dk_check` (integer) and `__dk_row` (JSON text).
pub fn samples_sql(
    relation: &str,
    checks: &[CheckSpec],
    failing: &[usize],
    limit: usize,
    dialect: Dialect,
) -> Option<String> {
    let row_json = match dialect {
        Dialect::Postgres => "CAST(row_to_json(t) AS TEXT)",
        _ => "CAST(to_json(t) AS VARCHAR)",
    };
    let branches: Vec<String> = failing
        .iter()
        .filter_map(|&i| {
            let s = checks.get(i)?;
            if !s.kind.is_row_level() || s.problem.is_some() || s.guaranteed_by.is_some() {
                return None;
            }
            let (join, pred) = match s.kind {
                CheckKind::Unique => {
                    let c = quote_ident(s.column.as_deref()?);
                    let inner_where = s
                        .args
                        .where_
                        .as_deref()
                        .filter(|w| !w.trim().is_empty())
                        .map(|w| format!(" WHERE ({w})"))
                        .unwrap_or_default();
                    (
                        String::new(),
                        format!(
                            "t.{c} IN (SELECT u.{c} FROM {relation} AS u{inner_where} GROUP BY u.{c} HAVING count(*) > 1)"
                        ),
                    )
                }
                _ => (
                    join_clause(s, i).unwrap_or_default(),
                    failing_predicate(s, i, dialect)?,
                ),
            };
            Some(format!(
                "(SELECT {i} AS \"__dk_check\", {row_json} AS \"__dk_row\" FROM {relation} AS t{join} WHERE {} LIMIT {limit})",
                with_where(s, &pred)
            ))
        })
        .collect();
    (!branches.is_empty()).then(|| branches.join(" UNION ALL "))
}

fn first_text(batches: &[RecordBatch], name: &str) -> Result<Option<String>> {
    for b in batches {
        if b.num_rows() > 0 {
            return Ok(text_column(b, name)?.into_iter().next().flatten());
        }
    }
    Ok(None)
}

/// What in the table's definition makes the check pass, if anything.
fn guaranteed_by(s: &CheckSpec, g: &Guarantees) -> Option<String> {
    let col = s.column.as_deref()?;
    match s.kind {
        CheckKind::NotNull if g.not_null.contains(col) => Some("NOT NULL".to_string()),
        CheckKind::Unique => g.unique.get(col).cloned(),
        _ => None,
    }
}

/// The result of a check that is not part of the scan: its problem, or a pass guaranteed by the
/// table's definition.
fn unscanned_result(s: &CheckSpec) -> CheckResult {
    match (&s.problem, &s.guaranteed_by) {
        (Some(p), _) => error_result(s, p.clone()),
        (None, g) => CheckResult {
            spec: s.clone(),
            status: CheckStatus::Pass,
            failing: 0,
            observed: g.as_ref().map(|g| format!("guaranteed by {g}")),
            message: String::new(),
            samples: Vec::new(),
        },
    }
}

fn error_result(spec: &CheckSpec, message: String) -> CheckResult {
    CheckResult {
        spec: spec.clone(),
        status: CheckStatus::Error,
        failing: 0,
        observed: None,
        message,
        samples: Vec::new(),
    }
}

/// The report of a DataSet whose checks cannot run yet because its table was never created
/// (`reason` says so): every check `skipped`, nothing blocking.
pub fn skipped_report(tc: &TableChecks, reason: &str) -> DatasetReport {
    DatasetReport {
        dataset: tc.dataset.clone(),
        store: tc.store.clone(),
        relation: tc.target.describe(),
        rows: None,
        queries: 0,
        duration_ms: 0,
        results: tc
            .checks
            .iter()
            .map(|s| CheckResult {
                spec: s.clone(),
                status: CheckStatus::Skipped,
                failing: 0,
                observed: None,
                message: reason.to_string(),
                samples: Vec::new(),
            })
            .collect(),
    }
}

/// Runs the checks of one DataSet on its store: one fused statement, plus one statement for the
/// samples of failing row-level checks when `sample_limit > 0`.
///
/// `guarantees` — what the table's definition enforces ([`DataPlane::guarantees`], fetched by the
/// caller for all its tables at once): a `not_null` check on a `NOT NULL` column and a `unique`
/// check (with or without `where`: a subset of unique values is unique) on a column with its own
/// unique index or key pass without being part of the scan; their results say what guarantees
/// them. When every check is guaranteed, no statement runs.
pub async fn run_table_checks(
    plane: &DataPlane,
    tc: &TableChecks,
    guarantees: Option<&Guarantees>,
    sample_limit: usize,
) -> DatasetReport {
    let started = Instant::now();
    let mut checks = tc.checks.clone();
    if let Some(g) = guarantees {
        for s in checks.iter_mut().filter(|s| s.problem.is_none()) {
            s.guaranteed_by = guaranteed_by(s, g);
        }
    }
    let checks = checks;
    let mut report = DatasetReport {
        dataset: tc.dataset.clone(),
        store: tc.store.clone(),
        relation: tc.target.describe(),
        rows: None,
        queries: 0,
        duration_ms: 0,
        results: Vec::new(),
    };
    let all_error = |report: &mut DatasetReport, msg: &str| {
        report.results = checks
            .iter()
            .map(|s| error_result(s, s.problem.clone().unwrap_or_else(|| msg.to_string())))
            .collect();
    };
    let relation = match (&tc.target, plane.dialect()) {
        (Target::Table { .. }, Dialect::DuckDb | Dialect::Postgres) => {
            match plane.relation(&tc.target) {
                Ok(r) => r,
                Err(e) => {
                    all_error(&mut report, &e.to_string());
                    return report;
                }
            }
        }
        _ => {
            all_error(
                &mut report,
                &format!(
                    "{} is files in store {}: checks run on database tables (DuckDB, PostgreSQL); sync the files into a table and check that DataSet",
                    tc.target.describe(),
                    tc.store
                ),
            );
            return report;
        }
    };
    let dialect = plane.dialect();
    if checks
        .iter()
        .all(|s| s.problem.is_some() || s.guaranteed_by.is_some())
    {
        report.results = checks.iter().map(unscanned_result).collect();
        report.duration_ms = started.elapsed().as_millis() as u64;
        return report;
    }
    let sql = fused_sql(&relation, &checks, dialect);
    report.queries += 1;
    let batches = match plane.query(&sql).await {
        Ok(s) => s.collect().await,
        Err(e) => Err(e),
    };
    let batches = match batches {
        Ok(b) => b,
        Err(e) => {
            let exists = plane.exists(&tc.target).await.unwrap_or(true);
            let msg = if exists {
                format!("the check query failed: {e}")
            } else {
                format!(
                    "{} does not exist in store {} (run `dk apply` and `dk run` first)",
                    tc.target.describe(),
                    tc.store
                )
            };
            all_error(&mut report, &msg);
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
    };
    report.rows = first_text(&batches, "__dk_rows")
        .ok()
        .flatten()
        .and_then(|v| v.parse().ok());
    let mut failing_rows = Vec::new();
    for (i, s) in checks.iter().enumerate() {
        if s.problem.is_some() || s.guaranteed_by.is_some() {
            report.results.push(unscanned_result(s));
            continue;
        }
        let value = match first_text(&batches, &format!("c{i}")) {
            Ok(v) => v,
            Err(e) => {
                report.results.push(error_result(s, e.to_string()));
                continue;
            }
        };
        let r = judge(s, value, || first_text(&batches, &format!("a{i}")));
        if r.status == CheckStatus::Fail && s.kind.is_row_level() {
            failing_rows.push(i);
        }
        report.results.push(r);
    }
    if sample_limit > 0 {
        if let Some(sql) = samples_sql(&relation, &checks, &failing_rows, sample_limit, dialect) {
            report.queries += 1;
            let got = match plane.query(&sql).await {
                Ok(s) => s.collect().await,
                Err(e) => Err(e),
            };
            match got {
                Ok(batches) => {
                    for b in &batches {
                        let (Ok(ids), Ok(rows)) =
                            (text_column(b, "__dk_check"), text_column(b, "__dk_row"))
                        else {
                            continue;
                        };
                        for (id, row) in ids.into_iter().zip(rows) {
                            let Some(i) = id.and_then(|v| v.parse::<usize>().ok()) else {
                                continue;
                            };
                            let row = row
                                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                                .and_then(|v| v.as_object().cloned());
                            if let (Some(r), Some(row)) = (report.results.get_mut(i), row) {
                                r.samples.push(row);
                            }
                        }
                    }
                }
                Err(e) => {
                    for &i in &failing_rows {
                        if let Some(r) = report.results.get_mut(i) {
                            r.message.push_str(&format!(" (samples unavailable: {e})"));
                        }
                    }
                }
            }
        }
    }
    for r in &mut report.results {
        // Stable output: engines return sample rows in no particular order.
        r.samples
            .sort_by_cached_key(|s| serde_json::to_string(s).unwrap_or_default());
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// Turns one fused result value into a check result.
fn judge(
    s: &CheckSpec,
    value: Option<String>,
    age: impl FnOnce() -> Result<Option<String>>,
) -> CheckResult {
    let mut r = CheckResult {
        spec: s.clone(),
        status: CheckStatus::Pass,
        failing: 0,
        observed: None,
        message: String::new(),
        samples: Vec::new(),
    };
    let num = value.as_deref().and_then(|v| v.parse::<u64>().ok());
    match s.kind {
        CheckKind::RowCount => {
            let n = num.unwrap_or(0);
            r.observed = Some(format!("rows: {n}"));
            let min = s.args.min.as_ref().and_then(Value::as_u64);
            let max = s.args.max.as_ref().and_then(Value::as_u64);
            let low = min.is_some_and(|m| n < m);
            let high = max.is_some_and(|m| n > m);
            if low || high {
                r.status = CheckStatus::Fail;
                r.failing = 1;
                r.message = match (min, max) {
                    (Some(a), Some(b)) => format!("{n} rows, expected between {a} and {b}"),
                    (Some(a), None) => format!("{n} rows, expected at least {a}"),
                    (None, Some(b)) => format!("{n} rows, expected at most {b}"),
                    (None, None) => String::new(),
                };
            }
        }
        CheckKind::Freshness => {
            let max_age = s
                .args
                .max_age
                .as_deref()
                .and_then(|a| humantime::parse_duration(a).ok())
                .unwrap_or_default();
            let limit = s.args.max_age.clone().unwrap_or_default();
            match value {
                None => {
                    r.status = CheckStatus::Fail;
                    r.failing = 1;
                    r.observed = Some("newest: none".into());
                    r.message = "no rows with a value to judge freshness by".into();
                }
                Some(newest) => {
                    let secs = age()
                        .ok()
                        .flatten()
                        .and_then(|a| a.parse::<f64>().ok())
                        .unwrap_or(f64::INFINITY);
                    let shown = if secs.is_finite() && secs >= 0.0 {
                        humantime::format_duration(std::time::Duration::from_secs(secs as u64))
                            .to_string()
                    } else {
                        "unknown".into()
                    };
                    r.observed = Some(format!("newest: {newest} ({shown} old)"));
                    let fresh = secs <= max_age.as_secs_f64();
                    if !fresh {
                        r.status = CheckStatus::Fail;
                        r.failing = 1;
                        r.message =
                            format!("newest value {newest} is {shown} old, more than {limit}");
                    }
                }
            }
        }
        _ => {
            let n = num.unwrap_or(0);
            r.failing = n;
            if n > 0 {
                r.status = CheckStatus::Fail;
                r.message = match s.kind {
                    CheckKind::Unique => format!("{n} duplicate row{}", plural(n)),
                    _ => format!("{n} failing row{}", plural(n)),
                };
            }
        }
    }
    r
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The checks of a transform's outputs, run after it (the `dk run` hook). Each output is checked
/// on the plane of its store (`planes` by store name). The reports say which failures block:
/// [`DatasetReport::blocking`].
pub async fn check_outputs(
    model: &ProjectModel,
    env: &ResolvedProject,
    transform: &str,
    planes: &HashMap<String, DataPlane>,
    sample_limit: usize,
) -> Result<Vec<DatasetReport>> {
    let Some(tdoc) = model.get(Kind::Transform, transform) else {
        return Err(RuntimeError::Config(format!(
            "transform {transform} is not defined"
        )));
    };
    let Some(dk_manifest::model::Manifest::Transform(t)) = &tdoc.manifest else {
        return Ok(Vec::new());
    };
    let mut wanted = Vec::new();
    for r in &t.spec.outputs {
        for name in dk_manifest::refs::names(model, r) {
            let Some(tc) = plan_dataset(model, env, &name)? else {
                continue;
            };
            let plane = planes.get(&tc.store).ok_or_else(|| {
                RuntimeError::Internal(format!("no data plane for store {}", tc.store))
            })?;
            wanted.push((plane, tc));
        }
    }
    let guarantees = guarantees_of(wanted.iter().map(|(p, tc)| (*p, tc))).await;
    let mut out = Vec::new();
    for (plane, tc) in &wanted {
        let g = guarantees.get(tc);
        out.push(run_table_checks(plane, tc, g, sample_limit).await);
    }
    Ok(out)
}

/// What the checked tables' definitions guarantee, by store and table.
#[derive(Debug, Default)]
pub struct TableGuarantees(HashMap<String, HashMap<(String, String), Guarantees>>);

impl TableGuarantees {
    /// The guarantees of the table `tc` checks, if its store reported any.
    pub fn get(&self, tc: &TableChecks) -> Option<&Guarantees> {
        let Target::Table { schema, name } = &tc.target else {
            return None;
        };
        self.0.get(&tc.store)?.get(&(schema.clone(), name.clone()))
    }
}

/// What the definitions of the tables of these checks guarantee ([`DataPlane::guarantees`]): one
/// catalog query per store. A store whose query fails reports none, so its checks are all
/// scanned (slower, same results).
pub async fn guarantees_of<'a>(
    tables: impl IntoIterator<Item = (&'a DataPlane, &'a TableChecks)>,
) -> TableGuarantees {
    // Store → its plane and its tables (schema, name).
    type Tables<'p> = (&'p DataPlane, Vec<(String, String)>);
    let mut by_store: HashMap<&str, Tables<'_>> = HashMap::new();
    for (plane, tc) in tables {
        if let Target::Table { schema, name } = &tc.target {
            by_store
                .entry(tc.store.as_str())
                .or_insert_with(|| (plane, Vec::new()))
                .1
                .push((schema.clone(), name.clone()));
        }
    }
    let mut out = TableGuarantees::default();
    for (store, (plane, list)) in by_store {
        if let Ok(g) = plane.guarantees(&list).await {
            out.0.insert(store.to_string(), g);
        }
    }
    out
}

/// Whether a DataSet has checks (for selecting what `dk test` runs).
pub fn has_checks(ds: &DataSet) -> bool {
    !ds.spec.checks.is_empty() || ds.spec.schema.iter().any(|c| !c.checks.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "apiVersion: datakit.infoblox.dev/v1alpha1\n";

    fn project(ds_spec: &str) -> ProjectModel {
        let text = format!(
            "{HEAD}kind: Connector\nmetadata: {{name: duckdb}}\nspec: {{type: duckdb}}\n---\n\
             {HEAD}kind: Store\nmetadata: {{name: wh}}\nspec: {{connector: duckdb, connection: {{path: ':memory:'}}}}\n---\n\
             {HEAD}kind: Environment\nmetadata: {{name: dev}}\nspec: {{tier: dev}}\n---\n\
             {HEAD}kind: DataSet\nmetadata: {{name: customers}}\nspec: {{store: wh, table: main.customers}}\n---\n\
             {HEAD}kind: DataSet\nmetadata: {{name: orders}}\nspec:\n{ds_spec}"
        );
        dk_manifest::loader::load_str("p.yaml", &text)
    }

    fn planned(ds_spec: &str) -> TableChecks {
        let m = project(ds_spec);
        let env = dk_env::resolve(
            &m,
            Some("dev"),
            &indexmap::IndexMap::<String, String>::new(),
        )
        .expect("env");
        plan_dataset(&m, &env, "orders")
            .expect("plan")
            .expect("checks")
    }

    // A raw string: `\` line continuations would strip the indentation YAML needs.
    const SPEC: &str = r#"  store: wh
  table: main.orders
  schema:
    - {name: id, type: bigint, checks: [not_null, unique]}
    - {name: status, type: string, checks: [{accepted_values: {values: [a, b], severity: warn}}]}
    - {name: amount, type: double, checks: [{range: {min: 0, max: 100.5}}]}
    - {name: email, type: string, checks: [{regex: {pattern: '^[^@]+@[^@]+$', where: "status = 'a'"}}]}
    - {name: customer_id, type: bigint, checks: [{relationships: {to: customers.id}}]}
    - {name: ts, type: timestamp}
  checks:
    - {row_count: {min: 1}}
    - {freshness: {column: ts, maxAge: 24h}}
    - {expression: {sql: amount >= 0 OR status = 'b'}}
    - {expression: {sql: id > 0}}
"#;

    #[test]
    fn plan_names_locations_and_severities() {
        let tc = planned(SPEC);
        let names: Vec<&str> = tc.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "not_null(id)",
                "unique(id)",
                "accepted_values(status)",
                "range(amount)",
                "regex(email)",
                "relationships(customer_id)",
                "row_count",
                "freshness(ts)",
                "expression",
                "expression#2"
            ]
        );
        assert_eq!(tc.checks[2].severity, CheckSeverity::Warn);
        assert_eq!(tc.checks[0].severity, CheckSeverity::Error);
        assert_eq!(tc.checks[0].location.as_deref(), Some("p.yaml:28:41"));
        assert_eq!(
            tc.checks[5].parent,
            Some(("\"main\".\"customers\"".to_string(), "id".to_string()))
        );
        assert!(tc.checks.iter().all(|c| c.problem.is_none()));
    }

    #[test]
    fn fused_sql_is_one_statement_per_dialect() {
        let tc = planned(SPEC);
        let duck = fused_sql("\"main\".\"orders\"", &tc.checks, Dialect::DuckDb);
        insta::assert_snapshot!("fused_duckdb", duck);
        let pg = fused_sql("\"main\".\"orders\"", &tc.checks, Dialect::Postgres);
        insta::assert_snapshot!("fused_postgres", pg);
        assert_eq!(
            duck.matches("SELECT").count(),
            2,
            "one scan + the parent's keys"
        );
        assert!(pg.contains("!~ '^[^@]+@[^@]+$'"));
        assert!(duck.contains("NOT regexp_matches("));
    }

    #[test]
    fn samples_only_for_failing_row_checks() {
        let tc = planned(SPEC);
        assert_eq!(samples_sql("x", &tc.checks, &[], 5, Dialect::DuckDb), None);
        // row_count (6) has no samples; unique (1) and relationships (5) do.
        let sql = samples_sql(
            "\"main\".\"orders\"",
            &tc.checks,
            &[1, 5, 6],
            3,
            Dialect::Postgres,
        )
        .expect("samples");
        insta::assert_snapshot!("samples_postgres", sql);
        assert_eq!(sql.matches("UNION ALL").count(), 1);
    }

    #[test]
    fn unrunnable_checks_carry_their_problem() {
        let tc = planned(
            "  store: wh\n  table: orders\n  schema:\n    - {name: a, type: bigint, checks: [{relationships: {to: nowhere.id}}, {range: {min: [1]}}]}\n  checks:\n    - {row_count: {min: -1}}\n",
        );
        let p: Vec<Option<&str>> = tc.checks.iter().map(|c| c.problem.as_deref()).collect();
        assert_eq!(p[0], Some("relationships: dataset nowhere is not defined"));
        assert!(
            p[1].is_some_and(|m| m.contains("cannot be compared")),
            "{p:?}"
        );
        assert!(p[2].is_some_and(|m| m.contains("whole numbers")), "{p:?}");
        let sql = fused_sql("x", &tc.checks, Dialect::DuckDb);
        assert_eq!(sql, "SELECT count(*) AS \"__dk_rows\" FROM x AS t");
    }

    #[test]
    fn judge_table_level_checks() {
        let tc = planned(SPEC);
        let rc = &tc.checks[6];
        assert_eq!(
            judge(rc, Some("0".into()), || Ok(None)).status,
            CheckStatus::Fail
        );
        assert_eq!(
            judge(rc, Some("3".into()), || Ok(None)).status,
            CheckStatus::Pass
        );
        let fr = &tc.checks[7];
        let stale = judge(fr, Some("2020-01-01 00:00:00".into()), || {
            Ok(Some("90000".into()))
        });
        assert_eq!(stale.status, CheckStatus::Fail);
        assert!(stale.message.contains("more than 24h"), "{}", stale.message);
        let fresh = judge(fr, Some("x".into()), || Ok(Some("60".into())));
        assert_eq!(fresh.status, CheckStatus::Pass);
        assert_eq!(judge(fr, None, || Ok(None)).status, CheckStatus::Fail);
        let u = judge(&tc.checks[1], Some("2".into()), || Ok(None));
        assert_eq!(
            (u.status, u.failing, u.message.as_str()),
            (CheckStatus::Fail, 2, "2 duplicate rows")
        );
    }
}
