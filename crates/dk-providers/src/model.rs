//! The resource model: what a provider creates, changes or drops, with stable addresses and
//! normalised attributes (logical column types), and the changes between a desired and an actual
//! resource.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A column's logical type (DESIGN §5). Every provider maps these to native types and back, so
/// apply-then-plan shows no changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum LogicalType {
    SmallInt,
    Integer,
    BigInt,
    Float,
    Double,
    Decimal(u8, u8),
    Boolean,
    String,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Json,
    Binary,
    Uuid,
}

impl LogicalType {
    /// Parses a manifest type (`bigint`, `decimal(10,2)`, `text`, …). `string`/`text`/`varchar` are
    /// one type; bare `decimal` is `decimal(18,3)`.
    pub fn parse(s: &str) -> Option<LogicalType> {
        let t = s.trim().to_ascii_lowercase().replace(' ', "");
        Some(match t.as_str() {
            "smallint" | "int2" => LogicalType::SmallInt,
            "integer" | "int" | "int4" => LogicalType::Integer,
            "bigint" | "int8" | "long" => LogicalType::BigInt,
            "float" | "real" | "float4" => LogicalType::Float,
            "double" | "float8" | "doubleprecision" => LogicalType::Double,
            "boolean" | "bool" => LogicalType::Boolean,
            "string" | "text" | "varchar" => LogicalType::String,
            "date" => LogicalType::Date,
            "time" => LogicalType::Time,
            "timestamp" | "datetime" => LogicalType::Timestamp,
            "timestamptz" => LogicalType::TimestampTz,
            "json" | "jsonb" => LogicalType::Json,
            "binary" | "bytes" | "blob" | "bytea" => LogicalType::Binary,
            "uuid" => LogicalType::Uuid,
            "decimal" | "numeric" => LogicalType::Decimal(18, 3),
            other => {
                let args = other
                    .strip_prefix("decimal(")
                    .or_else(|| other.strip_prefix("numeric("))?
                    .strip_suffix(')')?;
                let (p, s) = match args.split_once(',') {
                    Some((p, s)) => (p.parse().ok()?, s.parse().ok()?),
                    None => (args.parse().ok()?, 0),
                };
                if p == 0 || p > 38 || s > p {
                    return None;
                }
                LogicalType::Decimal(p, s)
            }
        })
    }

    /// Can every value of `self` be stored in `to` without loss? (Used to flag destructive type
    /// changes; an unknown conversion counts as narrowing.)
    pub fn widens_to(self, to: LogicalType) -> bool {
        use LogicalType::*;
        if self == to {
            return true;
        }
        match (self, to) {
            (SmallInt, Integer | BigInt | Double | String) => true,
            (Integer, BigInt | Double | String) => true,
            (BigInt, String) => true,
            (Float, Double | String) => true,
            (Double | Boolean | Date | Time | Timestamp | TimestampTz | Uuid | Json, String) => {
                true
            }
            (Decimal(p1, s1), Decimal(p2, s2)) => s2 >= s1 && (p2 - s2) >= (p1 - s1),
            (SmallInt, Decimal(p, s)) => p - s >= 5,
            (Integer, Decimal(p, s)) => p - s >= 10,
            (BigInt, Decimal(p, s)) => p - s >= 19,
            (Decimal(..), String) => true,
            (Date, Timestamp | TimestampTz) => true,
            _ => false,
        }
    }
}

impl fmt::Display for LogicalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LogicalType::*;
        match self {
            SmallInt => f.write_str("smallint"),
            Integer => f.write_str("integer"),
            BigInt => f.write_str("bigint"),
            Float => f.write_str("float"),
            Double => f.write_str("double"),
            Decimal(p, s) => write!(f, "decimal({p},{s})"),
            Boolean => f.write_str("boolean"),
            String => f.write_str("string"),
            Date => f.write_str("date"),
            Time => f.write_str("time"),
            Timestamp => f.write_str("timestamp"),
            TimestampTz => f.write_str("timestamptz"),
            Json => f.write_str("json"),
            Binary => f.write_str("binary"),
            Uuid => f.write_str("uuid"),
        }
    }
}

impl From<LogicalType> for String {
    fn from(t: LogicalType) -> String {
        t.to_string()
    }
}

impl TryFrom<String> for LogicalType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        LogicalType::parse(&s).ok_or_else(|| format!("unknown logical type {s}"))
    }
}

/// What kind of object a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Schema,
    Table,
    View,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Schema => "schema",
            ResourceKind::Table => "table",
            ResourceKind::View => "view",
        }
    }
}

/// A column of a table (or the declared columns of a view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: LogicalType,
    pub nullable: bool,
    /// Description, classification and PII travel as the column comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Desired or actual attributes of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ResourceSpec {
    Schema {
        name: String,
    },
    Table {
        schema: String,
        name: String,
        columns: Vec<ColumnSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    View {
        schema: String,
        name: String,
        /// The view's SELECT, as compiled (templates rendered).
        sql: String,
        /// Columns the view is declared to produce (checked at plan time when known).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        columns: Vec<ColumnSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
}

impl ResourceSpec {
    pub fn kind(&self) -> ResourceKind {
        match self {
            ResourceSpec::Schema { .. } => ResourceKind::Schema,
            ResourceSpec::Table { .. } => ResourceKind::Table,
            ResourceSpec::View { .. } => ResourceKind::View,
        }
    }

    /// `(schema, name)` of the object (`(name, "")` for a schema).
    pub fn qualified(&self) -> (&str, &str) {
        match self {
            ResourceSpec::Schema { name } => (name, ""),
            ResourceSpec::Table { schema, name, .. } | ResourceSpec::View { schema, name, .. } => {
                (schema, name)
            }
        }
    }
}

/// One object in one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// `table.warehouse.main.orders`, `view.warehouse.marts.daily`, `schema.warehouse.marts`.
    pub address: String,
    /// The Store it lives in.
    pub store: String,
    pub spec: ResourceSpec,
    /// Addresses this resource needs first (a table's schema, a view's inputs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// The address of an object.
pub fn address(kind: ResourceKind, store: &str, schema: &str, name: &str) -> String {
    match kind {
        ResourceKind::Schema => format!("schema.{store}.{schema}"),
        k => format!("{}.{store}.{schema}.{name}", k.as_str()),
    }
}

impl Resource {
    pub fn new(store: &str, spec: ResourceSpec, depends_on: Vec<String>) -> Resource {
        let (schema, name) = spec.qualified();
        Resource {
            address: address(spec.kind(), store, schema, name),
            store: store.to_string(),
            spec,
            depends_on,
        }
    }

    pub fn kind(&self) -> ResourceKind {
        self.spec.kind()
    }
}

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    /// Terraform's symbols: `+`, `~`, `-/+`, `-`.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

/// One attribute-level difference inside an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ColumnOp {
    AddColumn {
        column: ColumnSpec,
    },
    DropColumn {
        column: String,
    },
    ChangeType {
        column: String,
        from: LogicalType,
        to: LogicalType,
    },
    SetNotNull {
        column: String,
    },
    DropNotNull {
        column: String,
    },
    SetColumnComment {
        column: String,
        from: Option<String>,
        to: Option<String>,
    },
    SetComment {
        from: Option<String>,
        to: Option<String>,
    },
    ReplaceQuery {
        from: String,
        to: String,
    },
}

/// Data a destructive change would lose, measured at plan time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impact {
    /// Rows in a table that would be dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Non-null values per dropped or narrowed column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<(String, u64)>,
    /// Rows violating a new NOT NULL, per column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<(String, u64)>,
}

impl Impact {
    pub fn is_empty(&self) -> bool {
        self.rows.is_none() && self.values.is_empty() && self.violations.is_empty()
    }
}

/// A planned change of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub address: String,
    pub store: String,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Resource>,
    /// For updates: what changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<ColumnOp>,
    /// Data can be lost.
    pub destructive: bool,
    /// Why it is destructive (one line per reason).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Impact::is_empty")]
    pub impact: Impact,
    /// The statements the provider will run, in order.
    pub statements: Vec<String>,
}
