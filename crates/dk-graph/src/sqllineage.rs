//! Column lineage derived from SQL (`sql` transforms): for every column a query returns, the input
//! dataset columns it is computed from.
//!
//! The query is parsed with [`sqlparser`] and resolved scope by scope: CTEs (in order, each seeing
//! the ones before it), derived tables and nested joins in `FROM`, table and column aliases,
//! qualified (`o.amount`, `sales.orders.amount`) and unqualified column references, `*` and
//! `alias.*` (expanded from the declared schema of an input, or from the columns of a CTE or
//! subquery), scalar subqueries in the select list, and `UNION`/`INTERSECT`/`EXCEPT` (positional).
//!
//! Inputs are described by [`Input`]: the dataset, the table names it can be referred to by in the
//! SQL, and its declared columns. An input without declared columns is *open*: any column read
//! from it is taken at its word, but `*` over it cannot be expanded (that is reported in
//! [`Analysis::notes`], not an error). Tables that are not inputs (a CTE's own name aside)
//! contribute no lineage.
//!
//! Only *direct* lineage is reported (the columns an output value is computed from), each with how
//! it is derived ([`Derivation`]): copied as is, transformed, or aggregated. Columns that only
//! filter, join or group rows (`WHERE`, `ON`, `GROUP BY`) are not sources.
//!
//! Pure: no I/O. Templates (`{{ ref('x') }}`) must be rendered before analysis.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArguments, Ident, ObjectName, ObjectNamePart, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableAlias, TableFactor, TableWithJoins,
    Visit, Visitor,
};
use sqlparser::dialect::{dialect_from_str, Dialect, GenericDialect};
use sqlparser::parser::Parser;

/// An input dataset of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The DataSet name.
    pub dataset: String,
    /// The table as the DataSet declares it (`orders` or `sales.orders`); the SQL may name it with
    /// or without the schema (a three-part `db.schema.table` matches on the last two parts).
    pub table: String,
    /// Declared columns (the DataSet's `schema`); empty when undeclared (an open input).
    pub columns: Vec<String>,
}

/// How an output column is derived from a source column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Derivation {
    /// The value is copied as is (`select amount`, `o.amount as total`, `cast(amount as int)`).
    Identity,
    /// The value is computed from it (`amount * 2`, `upper(name)`, `case … end`).
    Transformation,
    /// The value aggregates it (`sum(amount)`, `count(id)`, window aggregates).
    Aggregation,
}

impl Derivation {
    /// OpenLineage's `subtype` name (`IDENTITY`, `TRANSFORMATION`, `AGGREGATION`).
    pub fn as_openlineage(self) -> &'static str {
        match self {
            Derivation::Identity => "IDENTITY",
            Derivation::Transformation => "TRANSFORMATION",
            Derivation::Aggregation => "AGGREGATION",
        }
    }
}

/// One source column of an output column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    pub dataset: String,
    pub column: String,
    pub derivation: Derivation,
}

/// One column the query returns, with its sources (empty for constants and `count(*)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    pub name: String,
    pub sources: Vec<Source>,
}

/// The result of [`analyze`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Analysis {
    /// The query's columns in order.
    pub columns: Vec<OutputColumn>,
    /// What could not be resolved (a `*` over an input without declared columns, an ambiguous or
    /// unknown column): the lineage is complete except for these.
    pub notes: Vec<String>,
}

/// A query that cannot be analysed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlLineageError {
    #[error("the SQL does not parse: {0}")]
    Parse(String),
    #[error("the SQL must be one SELECT query (found {0})")]
    NotAQuery(String),
}

/// Analyses one SELECT query. `dialect` is a store type (`postgres`, `duckdb`, `mysql`, `sqlite`,
/// …); unknown ones parse with the generic dialect.
pub fn analyze(sql: &str, dialect: &str, inputs: &[Input]) -> Result<Analysis, SqlLineageError> {
    let dialect: Box<dyn Dialect> =
        dialect_from_str(dialect).unwrap_or_else(|| Box::new(GenericDialect {}));
    let statements = Parser::parse_sql(dialect.as_ref(), sql)
        .map_err(|e| SqlLineageError::Parse(e.to_string()))?;
    let query = match statements.as_slice() {
        [Statement::Query(q)] => q,
        [] => return Err(SqlLineageError::NotAQuery("no statement".into())),
        [other] => {
            let kind = other.to_string();
            let word = kind.split_whitespace().next().unwrap_or("a statement");
            return Err(SqlLineageError::NotAQuery(word.to_uppercase()));
        }
        many => {
            return Err(SqlLineageError::NotAQuery(format!(
                "{} statements",
                many.len()
            )))
        }
    };
    let mut cx = Cx {
        inputs,
        notes: Vec::new(),
    };
    let rel = cx.query(query, &[], &Scope::default());
    let columns = rel
        .columns
        .into_iter()
        .map(|(name, sources)| OutputColumn {
            name,
            sources: sources.into_iter().collect(),
        })
        .collect();
    let mut notes = cx.notes;
    notes.dedup();
    Ok(Analysis { columns, notes })
}

/// Identifier as the database folds it: unquoted names are case-insensitive (lower-cased).
fn norm(id: &Ident) -> String {
    if id.quote_style.is_some() {
        id.value.clone()
    } else {
        id.value.to_lowercase()
    }
}

fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => norm(i),
            other => other.to_string().to_lowercase(),
        })
        .collect()
}

/// A relation in scope: its columns with their sources, or open (any column of one input).
#[derive(Debug, Clone, Default)]
struct Relation {
    columns: Vec<(String, BTreeSet<Source>)>,
    /// An input without declared columns: any column `c` is `(dataset, c)`.
    open: Option<String>,
}

impl Relation {
    fn column(&self, name: &str) -> Option<BTreeSet<Source>> {
        if let Some((_, s)) = self
            .columns
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Some(s.clone());
        }
        self.open.as_ref().map(|ds| {
            BTreeSet::from([Source {
                dataset: ds.clone(),
                column: name.to_string(),
                derivation: Derivation::Identity,
            }])
        })
    }
}

/// The relations a SELECT can read from, by the name they are referred to (alias or table name).
#[derive(Debug, Clone, Default)]
struct Scope {
    /// (qualifier parts, relation): the alias, or the table's name parts.
    relations: Vec<(Vec<String>, Relation)>,
    /// The enclosing query's scope (correlated subqueries).
    outer: Option<Box<Scope>>,
}

impl Scope {
    /// The relation a qualifier (`o`, `orders`, `sales.orders`) names.
    fn qualified(&self, qual: &[String]) -> Option<&Relation> {
        self.relations
            .iter()
            .find(|(q, _)| q.len() >= qual.len() && q[q.len() - qual.len()..] == *qual)
            .map(|(_, r)| r)
            .or_else(|| self.outer.as_ref().and_then(|o| o.qualified(qual)))
    }

    /// Sources of an unqualified column: the relations that have it (all of them when several,
    /// e.g. a `USING` join key), else the only open relation.
    fn unqualified(&self, col: &str) -> Option<BTreeSet<Source>> {
        let mut found = BTreeSet::new();
        let mut hit = false;
        for (_, r) in &self.relations {
            if let Some((_, s)) = r.columns.iter().find(|(n, _)| n.eq_ignore_ascii_case(col)) {
                found.extend(s.iter().cloned());
                hit = true;
            }
        }
        if hit {
            return Some(found);
        }
        let open: Vec<&Relation> = self
            .relations
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.open.is_some())
            .collect();
        if open.len() == 1 {
            return open[0].column(col);
        }
        self.outer.as_ref().and_then(|o| o.unqualified(col))
    }
}

struct Cx<'a> {
    inputs: &'a [Input],
    notes: Vec<String>,
}

/// What one expression reads: column references, subqueries (evaluated apart) and whether it
/// aggregates. Nested queries are not descended into (their columns are their own scope).
#[derive(Default)]
struct ExprRefs {
    columns: Vec<Vec<String>>,
    subqueries: Vec<Query>,
    aggregate: bool,
    depth: usize,
}

const AGGREGATES: &[&str] = &[
    "sum",
    "count",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "listagg",
    "group_concat",
    "bool_and",
    "bool_or",
    "every",
    "any_value",
    "arbitrary",
    "first",
    "last",
    "median",
    "mode",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "percentile_cont",
    "percentile_disc",
    "approx_count_distinct",
    "count_if",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "list",
    "histogram",
    "product",
    "arg_max",
    "arg_min",
    "max_by",
    "min_by",
];

impl Visitor for ExprRefs {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            self.subqueries.push(q.clone());
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        match e {
            Expr::Identifier(i) => self.columns.push(vec![norm(i)]),
            Expr::CompoundIdentifier(parts) => {
                self.columns.push(parts.iter().map(norm).collect());
            }
            Expr::Function(f) => {
                let name = name_parts(&f.name).last().cloned().unwrap_or_default();
                let called = matches!(&f.args, FunctionArguments::List(_));
                if f.over.is_some() || (AGGREGATES.contains(&name.as_str()) && called) {
                    self.aggregate = true;
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// The name a database gives an unaliased select item.
fn implicit_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => norm(i),
        Expr::CompoundIdentifier(parts) => parts.last().map(norm).unwrap_or_default(),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => implicit_name(expr),
        Expr::Function(f) => name_parts(&f.name).last().cloned().unwrap_or_default(),
        _ => "?column?".to_string(),
    }
}

fn is_plain_column(e: &Expr) -> bool {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        Expr::Cast { expr, .. } | Expr::Nested(expr) => is_plain_column(expr),
        _ => false,
    }
}

fn with_derivation(sources: BTreeSet<Source>, d: Derivation) -> BTreeSet<Source> {
    sources
        .into_iter()
        .map(|mut s| {
            // The weakest link wins: an aggregate of a transformed column is an aggregation.
            s.derivation = s.derivation.max(d);
            s
        })
        .collect()
}

impl Cx<'_> {
    /// A query's output relation. `ctes` are the CTEs visible from outside; `outer` the enclosing
    /// SELECT's scope (for correlated subqueries).
    fn query(&mut self, q: &Query, ctes: &[(String, Relation)], outer: &Scope) -> Relation {
        let mut visible: Vec<(String, Relation)> = ctes.to_vec();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let rel = self.query(&cte.query, &visible, outer);
                let rel = rename(rel, Some(&cte.alias));
                visible.insert(0, (norm(&cte.alias.name), rel));
            }
        }
        self.set_expr(&q.body, &visible, outer)
    }

    fn set_expr(&mut self, body: &SetExpr, ctes: &[(String, Relation)], outer: &Scope) -> Relation {
        match body {
            SetExpr::Select(s) => self.select(s, ctes, outer),
            SetExpr::Query(q) => self.query(q, ctes, outer),
            SetExpr::SetOperation { left, right, .. } => {
                let mut l = self.set_expr(left, ctes, outer);
                let r = self.set_expr(right, ctes, outer);
                for ((_, ls), (_, rs)) in l.columns.iter_mut().zip(r.columns) {
                    ls.extend(rs);
                }
                l
            }
            SetExpr::Values(v) => Relation {
                columns: (1..=v.rows.first().map(|r| r.len()).unwrap_or(0))
                    .map(|i| (format!("column{i}"), BTreeSet::new()))
                    .collect(),
                open: None,
            },
            other => {
                let text = other.to_string();
                self.notes.push(format!(
                    "no column lineage through `{}`",
                    text.split_whitespace().next().unwrap_or("?")
                ));
                Relation::default()
            }
        }
    }

    fn input_for(&self, parts: &[String]) -> Option<&Input> {
        let tail = |t: &str| -> Vec<String> {
            t.split('.')
                .map(|p| p.trim_matches('"').to_lowercase())
                .collect()
        };
        self.inputs.iter().find(|i| {
            let decl = tail(&i.table);
            let n = parts.len().min(2);
            let want = &parts[parts.len() - n..];
            match (decl.len(), want.len()) {
                (_, 1) => decl.last() == want.last(),
                (1, _) => decl.last() == want.last(),
                _ => decl[decl.len() - 2..] == *want,
            }
        })
    }

    fn table_factor(
        &mut self,
        tf: &TableFactor,
        ctes: &[(String, Relation)],
        outer: &Scope,
        scope: &mut Scope,
    ) {
        match tf {
            TableFactor::Table { name, alias, .. } => {
                let parts = name_parts(name);
                let rel = if let (1, Some((_, r))) = (
                    parts.len(),
                    ctes.iter().find(|(n, _)| Some(n) == parts.first()),
                ) {
                    r.clone()
                } else if let Some(input) = self.input_for(&parts) {
                    let src = |c: &String| Source {
                        dataset: input.dataset.clone(),
                        column: c.clone(),
                        derivation: Derivation::Identity,
                    };
                    if input.columns.is_empty() {
                        Relation {
                            columns: Vec::new(),
                            open: Some(input.dataset.clone()),
                        }
                    } else {
                        Relation {
                            columns: input
                                .columns
                                .iter()
                                .map(|c| (c.to_lowercase(), BTreeSet::from([src(c)])))
                                .collect(),
                            open: None,
                        }
                    }
                } else {
                    self.notes.push(format!(
                        "table {} is not an input of the transform: no lineage through it",
                        parts.join(".")
                    ));
                    Relation::default()
                };
                let qual = match alias {
                    Some(a) => vec![norm(&a.name)],
                    None => parts,
                };
                scope.relations.push((qual, rename(rel, alias.as_ref())));
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                let rel = self.query(subquery, ctes, outer);
                let qual = alias
                    .as_ref()
                    .map(|a| vec![norm(&a.name)])
                    .unwrap_or_default();
                scope.relations.push((qual, rename(rel, alias.as_ref())));
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let mut inner = Scope::default();
                self.join_tree(table_with_joins, ctes, outer, &mut inner);
                match alias {
                    Some(a) => {
                        let merged = Relation {
                            columns: inner
                                .relations
                                .into_iter()
                                .flat_map(|(_, r)| r.columns)
                                .collect(),
                            open: None,
                        };
                        scope
                            .relations
                            .push((vec![norm(&a.name)], rename(merged, Some(a))));
                    }
                    None => scope.relations.extend(inner.relations),
                }
            }
            other => {
                let text = other.to_string();
                self.notes
                    .push(format!("no column lineage through `{text}`"));
                scope.relations.push((Vec::new(), Relation::default()));
            }
        }
    }

    fn join_tree(
        &mut self,
        twj: &TableWithJoins,
        ctes: &[(String, Relation)],
        outer: &Scope,
        scope: &mut Scope,
    ) {
        self.table_factor(&twj.relation, ctes, outer, scope);
        for j in &twj.joins {
            self.table_factor(&j.relation, ctes, outer, scope);
        }
    }

    fn select(&mut self, s: &Select, ctes: &[(String, Relation)], outer: &Scope) -> Relation {
        let mut scope = Scope {
            relations: Vec::new(),
            outer: Some(Box::new(outer.clone())),
        };
        for twj in &s.from {
            self.join_tree(twj, ctes, outer, &mut scope);
        }
        let mut columns = Vec::new();
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    columns.push((implicit_name(e), self.expr(e, ctes, &scope)));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    columns.push((norm(alias), self.expr(expr, ctes, &scope)));
                }
                SelectItem::ExprWithAliases { expr, aliases } => {
                    let src = self.expr(expr, ctes, &scope);
                    for a in aliases {
                        columns.push((norm(a), src.clone()));
                    }
                }
                SelectItem::Wildcard(_) => {
                    for (_, r) in &scope.relations {
                        if let Some(ds) = &r.open {
                            self.notes.push(format!(
                                "cannot expand * over {ds}: declare its columns (spec.schema) to get lineage for them"
                            ));
                        }
                        columns.extend(r.columns.iter().cloned());
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => match kind {
                    SelectItemQualifiedWildcardKind::ObjectName(name) => {
                        let qual = name_parts(name);
                        match scope.qualified(&qual) {
                            Some(r) => {
                                if let Some(ds) = &r.open {
                                    self.notes.push(format!(
                                        "cannot expand {}.* over {ds}: declare its columns (spec.schema) to get lineage for them",
                                        qual.join(".")
                                    ));
                                }
                                columns.extend(r.columns.iter().cloned());
                            }
                            None => self
                                .notes
                                .push(format!("{}.* names no table in FROM", qual.join("."))),
                        }
                    }
                    SelectItemQualifiedWildcardKind::Expr(e) => {
                        self.notes
                            .push(format!("no column lineage through `{e}.*`"));
                    }
                },
            }
        }
        Relation {
            columns,
            open: None,
        }
    }

    /// The sources of one expression.
    fn expr(&mut self, e: &Expr, ctes: &[(String, Relation)], scope: &Scope) -> BTreeSet<Source> {
        let mut refs = ExprRefs::default();
        let _ = e.visit(&mut refs);
        let derivation = if refs.aggregate {
            Derivation::Aggregation
        } else if is_plain_column(e) {
            Derivation::Identity
        } else {
            Derivation::Transformation
        };
        let mut out = BTreeSet::new();
        for parts in &refs.columns {
            let found = match parts.as_slice() {
                [] => None,
                [col] => scope.unqualified(col),
                [qual @ .., col] => scope.qualified(qual).and_then(|r| r.column(col)),
            };
            match found {
                Some(s) => out.extend(s),
                None => {
                    // An unqualified name that resolves nowhere may be a keyword-like function
                    // (`current_date`); only report qualified misses and names with FROM tables.
                    if parts.len() > 1 || !scope.relations.is_empty() {
                        self.notes
                            .push(format!("column {} not found in FROM", parts.join(".")));
                    }
                }
            }
        }
        for q in &refs.subqueries {
            let rel = self.query(q, ctes, scope);
            for (_, s) in rel.columns {
                out.extend(s);
            }
        }
        let derivation = if refs.subqueries.is_empty() {
            derivation
        } else {
            derivation.max(Derivation::Transformation)
        };
        with_derivation(out, derivation)
    }
}

/// Applies a table alias's column list (`t(a, b)`) to a relation.
fn rename(mut rel: Relation, alias: Option<&TableAlias>) -> Relation {
    if let Some(a) = alias {
        for (i, c) in a.columns.iter().enumerate() {
            if let Some(col) = rel.columns.get_mut(i) {
                col.0 = norm(&c.name);
            }
        }
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Vec<Input> {
        vec![
            Input {
                dataset: "orders".into(),
                table: "sales.orders".into(),
                columns: vec![
                    "id".into(),
                    "customer_id".into(),
                    "amount".into(),
                    "ts".into(),
                ],
            },
            Input {
                dataset: "customers".into(),
                table: "customers".into(),
                columns: vec!["id".into(), "name".into(), "email".into()],
            },
            Input {
                dataset: "events".into(),
                table: "raw.events".into(),
                columns: vec![],
            },
        ]
    }

    /// `name <- ds.col/D ds.col/D` per output column.
    fn lineage(sql: &str) -> Vec<String> {
        let a = analyze(sql, "postgres", &inputs()).unwrap();
        a.columns
            .iter()
            .map(|c| {
                let s: Vec<String> = c
                    .sources
                    .iter()
                    .map(|s| {
                        let d = match s.derivation {
                            Derivation::Identity => "I",
                            Derivation::Transformation => "T",
                            Derivation::Aggregation => "A",
                        };
                        format!("{}.{}/{d}", s.dataset, s.column)
                    })
                    .collect();
                format!("{} <- {}", c.name, s.join(" "))
            })
            .collect()
    }

    #[test]
    fn plain_columns_aliases_and_expressions() {
        assert_eq!(
            lineage(
                "select id, amount as total, amount * 2 + 1 as doubled, 'x' as k from sales.orders"
            ),
            vec![
                "id <- orders.id/I",
                "total <- orders.amount/I",
                "doubled <- orders.amount/T",
                "k <- "
            ]
        );
    }

    #[test]
    fn joins_with_table_aliases_and_aggregates() {
        let l = lineage(
            "select c.name as customer, sum(o.amount) as revenue, count(*) as n, max(o.ts)::date as last_day \
             from \"sales\".\"orders\" o join customers c on c.id = o.customer_id group by c.name",
        );
        assert_eq!(
            l,
            vec![
                "customer <- customers.name/I",
                "revenue <- orders.amount/A",
                "n <- ",
                "last_day <- orders.ts/A"
            ]
        );
    }

    #[test]
    fn ctes_and_derived_tables() {
        let l = lineage(
            "with o as (select customer_id as cid, amount * 100 as cents from orders), \
                  agg as (select cid, sum(cents) as total from o group by cid) \
             select x.cid, x.total, upper(c.email) as mail \
             from (select * from agg) x left join customers c on c.id = x.cid",
        );
        assert_eq!(
            l,
            vec![
                "cid <- orders.customer_id/I",
                "total <- orders.amount/A",
                "mail <- customers.email/T"
            ]
        );
    }

    #[test]
    fn star_expansion_and_qualified_star() {
        assert_eq!(
            lineage("select * from customers"),
            vec![
                "id <- customers.id/I",
                "name <- customers.name/I",
                "email <- customers.email/I"
            ]
        );
        assert_eq!(
            lineage("select c.*, o.amount from customers c, sales.orders o"),
            vec![
                "id <- customers.id/I",
                "name <- customers.name/I",
                "email <- customers.email/I",
                "amount <- orders.amount/I"
            ]
        );
    }

    #[test]
    fn open_inputs_and_notes() {
        let a = analyze(
            "select e.kind, * from raw.events e where e.ts > now()",
            "duckdb",
            &inputs(),
        )
        .unwrap();
        assert_eq!(a.columns.len(), 1);
        assert_eq!(a.columns[0].sources[0].dataset, "events");
        assert_eq!(a.columns[0].sources[0].column, "kind");
        assert!(
            a.notes[0].contains("cannot expand * over events"),
            "{:?}",
            a.notes
        );
    }

    #[test]
    fn unions_subqueries_windows_and_column_aliases() {
        assert_eq!(
            lineage("select id, name from customers union all select id, cast(amount as text) from sales.orders"),
            vec![
                "id <- customers.id/I orders.id/I",
                "name <- customers.name/I orders.amount/I"
            ]
        );
        assert_eq!(
            lineage(
                "select c.id, (select max(amount) from sales.orders o where o.customer_id = c.id) as top, \
                 row_number() over (partition by c.name order by c.id) as rn from customers c"
            ),
            vec!["id <- customers.id/I", "top <- orders.amount/A", "rn <- customers.id/A customers.name/A"]
        );
        assert_eq!(
            lineage("select a, b from (select id, email from customers) t(a, b)"),
            vec!["a <- customers.id/I", "b <- customers.email/I"]
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            analyze("selec 1", "postgres", &inputs()),
            Err(SqlLineageError::Parse(_))
        ));
        assert!(matches!(
            analyze("delete from customers", "postgres", &inputs()),
            Err(SqlLineageError::NotAQuery(_))
        ));
        let a = analyze("select x.y from customers", "postgres", &inputs()).unwrap();
        assert!(a.notes[0].contains("x.y not found"), "{:?}", a.notes);
        let a = analyze("select id from other_table", "postgres", &inputs()).unwrap();
        assert!(
            a.notes[0].contains("other_table is not an input"),
            "{:?}",
            a.notes
        );
    }
}
