//! Transform unit tests (`spec.tests` of a `sql` Transform): fixtures in, expected rows out, on
//! an embedded in-memory DuckDB — no warehouse needed.
//!
//! For each test, every input DataSet becomes a table in a fresh `:memory:` database: its declared
//! columns with their DuckDB types (plus any fixture column the schema does not declare, typed
//! from its values), filled with the `given` rows (inline, or a CSV file beside the manifest).
//! The transform's SQL is rendered by the engine's one template renderer
//! ([`dk_engine::template`]) with `ref('x')` resolving to those fixture tables, run, and its rows
//! compared with `expect` on the columns `expect` names: as a multiset unless the test says
//! `ordered: true`. Numbers compare numerically (`15.5` = `15.50`), timestamps with either `T` or
//! a space, NULL only equals NULL. A failure carries a [`RowDiff`] (missing and unexpected rows)
//! whose `Display` is the readable diff `dk test` prints.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Instant;

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;
use dk_engine::template::{self, RefTarget};
use dk_env::ResolvedStore;
use dk_manifest::loader::{Document, ProjectModel};
use dk_manifest::model::{Fixture, Kind, Manifest, Transform, UnitTest};
use dk_providers::model::LogicalType;
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

use crate::dataplane::{quote_ident, quote_literal, DataPlane};

/// The outcome of one unit test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitStatus {
    Pass,
    Fail,
    /// The test could not run (bad fixture, SQL error, unsupported runtime).
    Error,
}

/// The result of one unit test.
#[derive(Debug, Clone, Serialize)]
pub struct UnitReport {
    pub transform: String,
    pub test: String,
    pub status: UnitStatus,
    /// Where the test is declared (`transforms/daily/dk.yaml:20:7`).
    pub location: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<RowDiff>,
    pub duration_ms: u64,
}

/// A row in a diff: its 0-based position (ordered comparisons) and its cells, in
/// [`RowDiff::columns`] order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub cells: Vec<Option<String>>,
}

/// Expected vs actual rows of a failed unit test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowDiff {
    pub columns: Vec<String>,
    pub ordered: bool,
    pub expected_rows: usize,
    pub actual_rows: usize,
    /// Expected rows the query did not return.
    pub missing: Vec<DiffRow>,
    /// Rows the query returned that were not expected.
    pub unexpected: Vec<DiffRow>,
}

impl RowDiff {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }
}

impl fmt::Display for RowDiff {
    /// ```text
    /// expected 2 rows, got 2 (order-insensitive): 1 missing, 1 unexpected
    ///     order_date | orders | revenue
    ///   - 2026-01-01 | 2      | 15.5
    ///   + 2026-01-01 | 3      | 114.5
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "expected {} row{}, got {} ({}): {} missing, {} unexpected",
            self.expected_rows,
            if self.expected_rows == 1 { "" } else { "s" },
            self.actual_rows,
            if self.ordered {
                "in order"
            } else {
                "order-insensitive"
            },
            self.missing.len(),
            self.unexpected.len()
        )?;
        let show = |c: &Option<String>| c.clone().unwrap_or_else(|| "NULL".into());
        let mut lines: Vec<(&str, Option<usize>, String, Vec<String>)> = Vec::new();
        for (sign, rows) in [("-", &self.missing), ("+", &self.unexpected)] {
            for r in rows {
                let pos = r.index.map(|i| format!("#{} ", i + 1)).unwrap_or_default();
                lines.push((sign, r.index, pos, r.cells.iter().map(show).collect()));
            }
        }
        if self.ordered {
            // Keep each position's missing and unexpected rows together.
            lines.sort_by_key(|l| (l.1, l.0 == "+"));
        }
        let pos_w = lines.iter().map(|l| l.2.chars().count()).max().unwrap_or(0);
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for (_, _, _, cells) in &lines {
            for (w, c) in widths.iter_mut().zip(cells) {
                *w = (*w).max(c.chars().count());
            }
        }
        let row = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, &w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join(" | ")
                .trim_end()
                .to_string()
        };
        writeln!(f, "    {:pos_w$}{}", "", row(&self.columns))?;
        for (sign, _, pos, cells) in &lines {
            writeln!(f, "  {sign} {pos:pos_w$}{}", row(cells))?;
        }
        Ok(())
    }
}

/// Runs the unit tests of every transform in `transforms` (names; all with tests when empty).
/// `variables` are the environment's variables when one is chosen (for `var()`), else empty.
pub async fn run_unit_tests(
    model: &ProjectModel,
    transforms: &[String],
    variables: &IndexMap<String, String>,
) -> Vec<UnitReport> {
    let mut out = Vec::new();
    for (doc, t) in model.transforms() {
        if t.spec.tests.is_empty()
            || (!transforms.is_empty() && !transforms.contains(&t.metadata.name))
        {
            continue;
        }
        for (i, ut) in t.spec.tests.iter().enumerate() {
            out.push(run_one(model, doc, t, i, ut, variables).await);
        }
    }
    out
}

/// Whether a transform declares unit tests.
pub fn has_unit_tests(model: &ProjectModel, transform: &str) -> bool {
    matches!(
        model.get(Kind::Transform, transform).and_then(|d| d.manifest.as_ref()),
        Some(Manifest::Transform(t)) if !t.spec.tests.is_empty()
    )
}

async fn run_one(
    model: &ProjectModel,
    doc: &Document,
    t: &Transform,
    i: usize,
    ut: &UnitTest,
    variables: &IndexMap<String, String>,
) -> UnitReport {
    let started = Instant::now();
    let l = doc.loc(&format!("/spec/tests/{i}"));
    let mut report = UnitReport {
        transform: t.metadata.name.clone(),
        test: ut.name.clone(),
        status: UnitStatus::Error,
        location: format!("{}:{}:{}", l.file, l.span.line, l.span.column),
        message: String::new(),
        diff: None,
        duration_ms: 0,
    };
    match execute(model, doc, t, ut, variables).await {
        Ok(diff) if diff.is_empty() => report.status = UnitStatus::Pass,
        Ok(diff) => {
            report.status = UnitStatus::Fail;
            report.message = diff
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            report.diff = Some(diff);
        }
        Err(e) => report.message = e,
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// An in-memory DuckDB store for one test.
fn memory_store() -> ResolvedStore {
    let mut connection = IndexMap::new();
    connection.insert("path".to_string(), Value::String(":memory:".into()));
    ResolvedStore {
        name: "unit-test".into(),
        connector: None,
        connector_type: "duckdb".into(),
        connection,
        secrets: IndexMap::new(),
        bound: false,
        file: "".into(),
    }
}

async fn execute(
    model: &ProjectModel,
    doc: &Document,
    t: &Transform,
    ut: &UnitTest,
    variables: &IndexMap<String, String>,
) -> Result<RowDiff, String> {
    if t.spec.runtime != "sql" {
        return Err(format!(
            "unit tests run `sql` transforms; this one has runtime \"{}\" (test it with its own tool)",
            t.spec.runtime
        ));
    }
    let rel = t
        .spec
        .sql
        .as_deref()
        .ok_or("the transform has no `sql` file to test")?;
    let sql_path = doc.dir().join(rel);
    let text = std::fs::read_to_string(&sql_path)
        .map_err(|e| format!("cannot read {}: {e}", sql_path.display()))?;
    let plane = DataPlane::connect(&memory_store(), &model.root)
        .await
        .map_err(|e| e.to_string())?;

    let mut inputs: Vec<String> = Vec::new();
    for r in &t.spec.inputs {
        for n in dk_manifest::refs::names(model, r) {
            if !inputs.contains(&n) {
                inputs.push(n);
            }
        }
    }
    if let Some(extra) = ut.given.keys().find(|k| !inputs.contains(k)) {
        return Err(format!(
            "`given` has rows for {extra}, which is not an input of this transform (inputs: {})",
            inputs.join(", ")
        ));
    }
    let mut refs = HashMap::new();
    for name in &inputs {
        let rows = match ut.given.get(name) {
            Some(fx) => fixture_rows(&plane, doc.dir(), fx).await?,
            None => Vec::new(),
        };
        let table = format!("{}.{}", quote_ident("main"), quote_ident(name));
        load_fixture(&plane, model, name, &table, &rows).await?;
        refs.insert(
            name.clone(),
            RefTarget {
                sql: table,
                tag: name.clone(),
            },
        );
    }
    let vars = template::vars(variables, &t.spec.vars);
    let rendered =
        template::render(&text, &refs, &vars).map_err(|e| format!("{rel}: template: {e}"))?;
    let batches = match plane.query(&rendered.sql).await {
        Ok(s) => s.collect().await,
        Err(e) => Err(e),
    }
    .map_err(|e| format!("the transform's SQL failed on the fixtures: {e}"))?;
    let (actual_cols, actual) = text_rows(&batches)?;
    let expected = fixture_rows(&plane, doc.dir(), &ut.expect).await?;
    compare(&expected, &actual_cols, &actual, ut.ordered)
}

/// The rows of a fixture: inline, or a CSV file (header row; values as text, empty = NULL).
async fn fixture_rows(
    plane: &DataPlane,
    dir: &Path,
    fx: &Fixture,
) -> Result<Vec<IndexMap<String, Value>>, String> {
    match fx {
        Fixture::Rows(r) => Ok(r.clone()),
        Fixture::File(f) => {
            let path = dir.join(f);
            if !path.is_file() {
                return Err(format!("fixture file {} does not exist", path.display()));
            }
            let sql = format!(
                "SELECT * FROM read_csv({}, header = true, all_varchar = true)",
                quote_literal(&path.to_string_lossy())
            );
            let batches = match plane.query(&sql).await {
                Ok(s) => s.collect().await,
                Err(e) => Err(e),
            }
            .map_err(|e| format!("fixture {f}: {e}"))?;
            let (cols, rows) = text_rows(&batches)?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    cols.iter()
                        .cloned()
                        .zip(
                            r.into_iter()
                                .map(|c| c.map(Value::String).unwrap_or(Value::Null)),
                        )
                        .collect()
                })
                .collect())
        }
    }
}

/// The DuckDB type of a logical type.
#[cfg(feature = "duckdb")]
fn native_type(t: LogicalType) -> String {
    dk_providers::duckdb::native_type(t)
}

/// Without the embedded engine the plane cannot open, so the mapping is never used to run SQL.
#[cfg(not(feature = "duckdb"))]
fn native_type(t: LogicalType) -> String {
    dk_providers::postgres::native_type(t)
}

/// The DuckDB type of a fixture column that the schema does not declare, from its values.
fn inferred_type(rows: &[IndexMap<String, Value>], col: &str) -> &'static str {
    match rows
        .iter()
        .filter_map(|r| r.get(col))
        .find(|v| !v.is_null())
    {
        Some(Value::Bool(_)) => "BOOLEAN",
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => "BIGINT",
        Some(Value::Number(_)) => "DOUBLE",
        Some(Value::Object(_)) | Some(Value::Array(_)) => "JSON",
        _ => "VARCHAR",
    }
}

/// Creates the fixture table of input `name` and inserts its rows.
async fn load_fixture(
    plane: &DataPlane,
    model: &ProjectModel,
    name: &str,
    table: &str,
    rows: &[IndexMap<String, Value>],
) -> Result<(), String> {
    let declared: Vec<(String, String)> = model
        .datasets()
        .find(|(_, d)| d.metadata.name == name)
        .map(|(_, d)| {
            d.spec
                .schema
                .iter()
                .map(|c| {
                    let ty = LogicalType::parse(&c.type_)
                        .map(native_type)
                        .unwrap_or_else(|| "VARCHAR".to_string());
                    (c.name.clone(), ty)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut columns = declared;
    for r in rows {
        for k in r.keys() {
            if !columns.iter().any(|(c, _)| c == k) {
                columns.push((k.clone(), inferred_type(rows, k).to_string()));
            }
        }
    }
    if columns.is_empty() {
        return Err(format!(
            "input {name} has no rows in `given` and declares no schema, so its fixture table has no columns: give at least one row or declare the DataSet's schema"
        ));
    }
    let defs = columns
        .iter()
        .map(|(c, t)| format!("{} {t}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!("CREATE TABLE {table} ({defs});");
    if !rows.is_empty() {
        let names = columns
            .iter()
            .map(|(c, _)| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let values = rows
            .iter()
            .map(|r| {
                let cells = columns
                    .iter()
                    .map(|(c, ty)| match r.get(c) {
                        None | Some(Value::Null) => "NULL".to_string(),
                        Some(v) => {
                            let lit = match v {
                                Value::String(s) => quote_literal(s),
                                Value::Number(n) => n.to_string(),
                                Value::Bool(b) => b.to_string(),
                                other => quote_literal(&other.to_string()),
                            };
                            format!("CAST({lit} AS {ty})")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("({cells})")
            })
            .collect::<Vec<_>>()
            .join(", ");
        sql.push_str(&format!(" INSERT INTO {table} ({names}) VALUES {values};"));
    }
    plane
        .execute(&sql)
        .await
        .map(|_| ())
        .map_err(|e| format!("loading the fixture rows of {name}: {e}"))
}

/// Column names and every cell as text.
#[allow(clippy::type_complexity)]
fn text_rows(batches: &[RecordBatch]) -> Result<(Vec<String>, Vec<Vec<Option<String>>>), String> {
    let Some(first) = batches.first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let cols: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut rows = Vec::new();
    for b in batches {
        let texts: Vec<StringArray> = b
            .columns()
            .iter()
            .map(|c| {
                arrow::compute::cast(c, &DataType::Utf8)
                    .map_err(|e| format!("reading the query's rows: {e}"))
                    .and_then(|a| {
                        a.as_any()
                            .downcast_ref::<StringArray>()
                            .cloned()
                            .ok_or_else(|| "reading the query's rows: not text".to_string())
                    })
            })
            .collect::<Result<_, _>>()?;
        for r in 0..b.num_rows() {
            rows.push(
                texts
                    .iter()
                    .map(|a| (!a.is_null(r)).then(|| a.value(r).to_string()))
                    .collect(),
            );
        }
    }
    Ok((cols, rows))
}

/// A manifest value as the text it is compared by.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Whether an expected cell equals an actual one (see the module doc).
pub fn cells_equal(expected: Option<&str>, actual: Option<&str>) -> bool {
    match (expected, actual) {
        (None, None) => true,
        (Some(e), Some(a)) => {
            if e == a {
                return true;
            }
            if let (Ok(x), Ok(y)) = (e.trim().parse::<f64>(), a.trim().parse::<f64>()) {
                return x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
            }
            let norm = |s: &str| {
                let s = s.trim().replacen('T', " ", 1);
                s.strip_suffix(".000").map(str::to_string).unwrap_or(s)
            };
            let is_bool =
                |s: &str| s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false");
            if is_bool(e) && e.eq_ignore_ascii_case(a) {
                return true;
            }
            norm(e) == norm(a)
        }
        _ => false,
    }
}

fn compare(
    expected: &[IndexMap<String, Value>],
    actual_cols: &[String],
    actual: &[Vec<Option<String>>],
    ordered: bool,
) -> Result<RowDiff, String> {
    let mut columns: Vec<String> = Vec::new();
    for r in expected {
        for k in r.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    if columns.is_empty() {
        columns = actual_cols.to_vec();
    }
    let mut idx = Vec::new();
    for c in &columns {
        match actual_cols.iter().position(|a| a == c) {
            Some(i) => idx.push(i),
            None if actual.is_empty() && actual_cols.is_empty() => idx.push(usize::MAX),
            None => {
                return Err(format!(
                    "expected column {c} is not in the query's output (columns: {})",
                    actual_cols.join(", ")
                ))
            }
        }
    }
    let exp: Vec<Vec<Option<String>>> = expected
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| r.get(c).and_then(value_text))
                .collect()
        })
        .collect();
    let act: Vec<Vec<Option<String>>> = actual
        .iter()
        .map(|r| idx.iter().map(|&i| r.get(i).cloned().flatten()).collect())
        .collect();
    let row_eq = |e: &[Option<String>], a: &[Option<String>]| {
        e.iter()
            .zip(a)
            .all(|(x, y)| cells_equal(x.as_deref(), y.as_deref()))
    };
    let mut diff = RowDiff {
        columns,
        ordered,
        expected_rows: exp.len(),
        actual_rows: act.len(),
        missing: Vec::new(),
        unexpected: Vec::new(),
    };
    if ordered {
        for i in 0..exp.len().max(act.len()) {
            match (exp.get(i), act.get(i)) {
                (Some(e), Some(a)) if row_eq(e, a) => {}
                (e, a) => {
                    if let Some(e) = e {
                        diff.missing.push(DiffRow {
                            index: Some(i),
                            cells: e.clone(),
                        });
                    }
                    if let Some(a) = a {
                        diff.unexpected.push(DiffRow {
                            index: Some(i),
                            cells: a.clone(),
                        });
                    }
                }
            }
        }
    } else {
        let mut used = vec![false; act.len()];
        for e in &exp {
            match (0..act.len()).find(|&j| !used[j] && row_eq(e, &act[j])) {
                Some(j) => used[j] = true,
                None => diff.missing.push(DiffRow {
                    index: None,
                    cells: e.clone(),
                }),
            }
        }
        for (j, a) in act.iter().enumerate() {
            if !used[j] {
                diff.unexpected.push(DiffRow {
                    index: None,
                    cells: a.clone(),
                });
            }
        }
    }
    Ok(diff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: Value) -> Vec<IndexMap<String, Value>> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn cells_compare_numbers_timestamps_and_nulls() {
        assert!(cells_equal(Some("15.5"), Some("15.50")));
        assert!(cells_equal(
            Some("2026-01-01 09:00:00"),
            Some("2026-01-01T09:00:00")
        ));
        assert!(cells_equal(Some("true"), Some("TRUE")));
        assert!(cells_equal(None, None));
        assert!(!cells_equal(Some("1"), None));
        assert!(!cells_equal(Some("a"), Some("b")));
        assert!(!cells_equal(Some("1"), Some("1.0001")));
    }

    #[test]
    fn multiset_diff_reports_missing_and_unexpected() {
        let exp = rows(json!([{"d": "2026-01-01", "n": 2}, {"d": "2026-01-02", "n": 1}]));
        let cols = vec!["d".to_string(), "n".to_string(), "extra".to_string()];
        let act = vec![
            vec![Some("2026-01-02".into()), Some("1".into()), None],
            vec![Some("2026-01-01".into()), Some("3".into()), None],
        ];
        let d = compare(&exp, &cols, &act, false).unwrap();
        assert_eq!(d.missing.len(), 1);
        assert_eq!(d.unexpected.len(), 1);
        insta::assert_snapshot!(d.to_string(), @r"
        expected 2 rows, got 2 (order-insensitive): 1 missing, 1 unexpected
            d          | n
          - 2026-01-01 | 2
          + 2026-01-01 | 3
        ");
        // Same rows in another order pass unless ordered.
        let act2 = vec![
            vec![Some("2026-01-02".into()), Some("1".into()), None],
            vec![Some("2026-01-01".into()), Some("2".into()), None],
        ];
        assert!(compare(&exp, &cols, &act2, false).unwrap().is_empty());
        let d = compare(&exp, &cols, &act2, true).unwrap();
        insta::assert_snapshot!(d.to_string(), @r"
        expected 2 rows, got 2 (in order): 2 missing, 2 unexpected
               d          | n
          - #1 2026-01-01 | 2
          + #1 2026-01-02 | 1
          - #2 2026-01-02 | 1
          + #2 2026-01-01 | 2
        ");
        let e = compare(&exp, &["x".to_string()], &[vec![None]], false).unwrap_err();
        assert!(
            e.contains("expected column d is not in the query's output"),
            "{e}"
        );
    }
}
