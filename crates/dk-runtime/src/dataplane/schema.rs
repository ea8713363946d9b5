//! Logical types ↔ Arrow types, and conforming record batches to a declared schema.
//!
//! Every logical type has one canonical Arrow type that all engines read and write:
//!
//! | logical      | Arrow                         |
//! |--------------|-------------------------------|
//! | smallint     | `Int16`                       |
//! | integer      | `Int32`                       |
//! | bigint       | `Int64`                       |
//! | float        | `Float32`                     |
//! | double       | `Float64`                     |
//! | decimal(p,s) | `Decimal128(p, s)`            |
//! | boolean      | `Boolean`                     |
//! | string       | `Utf8`                        |
//! | date         | `Date32`                      |
//! | time         | `Time64(µs)`                  |
//! | timestamp    | `Timestamp(µs)`               |
//! | timestamptz  | `Timestamp(µs, "UTC")`        |
//! | json         | `Utf8` (the JSON text)        |
//! | binary       | `Binary`                      |
//! | uuid         | `Utf8` (hyphenated, lowercase)|
//!
//! [`conform`] turns any batch into the declared columns: columns are matched by name (exact, then
//! case-insensitive), cast with Arrow's cast kernel in checked mode (a value that does not convert
//! is an error naming the column, never a silent NULL), extra columns are dropped, a missing
//! nullable column becomes NULLs, and a missing or NULL-holding `nullable: false` column is an
//! error.

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::display::FormatOptions;
use dk_manifest::model::DataSet;
use dk_providers::model::LogicalType;

use crate::error::{Result, RuntimeError};

/// A column as declared on a DataSet (or read from a table's catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredColumn {
    pub name: String,
    pub ty: LogicalType,
    pub nullable: bool,
}

/// The canonical Arrow type of a logical type.
pub fn arrow_type(t: LogicalType) -> DataType {
    use LogicalType::*;
    match t {
        SmallInt => DataType::Int16,
        Integer => DataType::Int32,
        BigInt => DataType::Int64,
        Float => DataType::Float32,
        Double => DataType::Float64,
        Decimal(p, s) => DataType::Decimal128(p, s as i8),
        Boolean => DataType::Boolean,
        String | Json | Uuid => DataType::Utf8,
        Date => DataType::Date32,
        Time => DataType::Time64(TimeUnit::Microsecond),
        Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Binary => DataType::Binary,
    }
}

/// The logical type a column of this Arrow type gets when dk creates a table for it (outputs
/// without a declared schema); `None` for types with no logical counterpart.
pub fn logical_of_arrow(t: &DataType) -> Option<LogicalType> {
    use LogicalType as L;
    Some(match t {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => L::SmallInt,
        DataType::Int32 | DataType::UInt16 => L::Integer,
        DataType::Int64 | DataType::UInt32 => L::BigInt,
        DataType::UInt64 => L::Decimal(20, 0),
        DataType::Float16 | DataType::Float32 => L::Float,
        DataType::Float64 => L::Double,
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) if *s >= 0 && *p <= 38 => {
            L::Decimal(*p, *s as u8)
        }
        DataType::Boolean => L::Boolean,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => L::String,
        DataType::Date32 | DataType::Date64 => L::Date,
        DataType::Time32(_) | DataType::Time64(_) => L::Time,
        DataType::Timestamp(_, None) => L::Timestamp,
        DataType::Timestamp(_, Some(_)) => L::TimestampTz,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => L::Binary,
        DataType::FixedSizeBinary(_) => L::Binary,
        _ => return None,
    })
}

/// The declared columns of a DataSet (empty when it declares none). An unknown type is an
/// error naming the dataset and column (lint reports it with its location first).
pub fn declared_columns(ds: &DataSet) -> Result<Vec<DeclaredColumn>> {
    ds.spec
        .schema
        .iter()
        .map(|c| {
            let ty = LogicalType::parse(&c.type_).ok_or_else(|| {
                RuntimeError::Schema(format!(
                    "dataset {}: column {} has type \"{}\", which is not a logical type (see docs/manifests.md)",
                    ds.metadata.name, c.name, c.type_
                ))
            })?;
            Ok(DeclaredColumn {
                name: c.name.clone(),
                ty,
                nullable: c.nullable.unwrap_or(true),
            })
        })
        .collect()
}

/// Columns for a batch schema without a declaration (every column nullable).
pub fn columns_of_schema(schema: &Schema, context: &str) -> Result<Vec<DeclaredColumn>> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let ty = logical_of_arrow(f.data_type()).ok_or_else(|| {
                RuntimeError::Schema(format!(
                    "{context}: column {} has Arrow type {}, which has no logical type; declare the output's schema or cast the column",
                    f.name(),
                    f.data_type()
                ))
            })?;
            Ok(DeclaredColumn {
                name: f.name().clone(),
                ty,
                nullable: true,
            })
        })
        .collect()
}

/// The Arrow schema of declared columns.
pub fn arrow_schema(columns: &[DeclaredColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.ty), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

fn find_column<'a>(schema: &'a Schema, name: &str) -> Option<(usize, &'a Field)> {
    schema
        .fields()
        .iter()
        .enumerate()
        .find(|(_, f)| f.name() == name)
        .or_else(|| {
            schema
                .fields()
                .iter()
                .enumerate()
                .find(|(_, f)| f.name().eq_ignore_ascii_case(name))
        })
        .map(|(i, f)| (i, f.as_ref()))
}

/// Conforms `batch` to `columns` (see the module doc). `context` names what is being written
/// (`dataset orders`) in errors.
pub fn conform(
    batch: &RecordBatch,
    columns: &[DeclaredColumn],
    context: &str,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let target = arrow_schema(columns);
    let opts = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (c, field) in columns.iter().zip(target.fields()) {
        let want = field.data_type();
        let array = match find_column(&schema, &c.name) {
            Some((i, _)) => {
                let src = batch.column(i);
                if src.data_type() == want {
                    src.clone()
                } else {
                    cast_with_options(src, want, &opts).map_err(|e| {
                        RuntimeError::Schema(format!(
                            "{context}: column {} ({} in the input) does not convert to {}: {e}",
                            c.name,
                            src.data_type(),
                            c.ty
                        ))
                    })?
                }
            }
            None if c.nullable => new_null_array(want, batch.num_rows()),
            None => {
                return Err(RuntimeError::Schema(format!(
                    "{context}: column {} is declared `nullable: false` but the input has no such column (input columns: {})",
                    c.name,
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        if !c.nullable && array.null_count() > 0 {
            return Err(RuntimeError::Schema(format!(
                "{context}: column {} is declared `nullable: false` but {} row(s) of this batch are NULL",
                c.name,
                array.null_count()
            )));
        }
        arrays.push(array);
    }
    RecordBatch::try_new(target, arrays)
        .map_err(|e| RuntimeError::arrow(format!("{context}: build batch"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    fn cols() -> Vec<DeclaredColumn> {
        vec![
            DeclaredColumn {
                name: "id".into(),
                ty: LogicalType::BigInt,
                nullable: false,
            },
            DeclaredColumn {
                name: "amount".into(),
                ty: LogicalType::Decimal(10, 2),
                nullable: true,
            },
            DeclaredColumn {
                name: "note".into(),
                ty: LogicalType::String,
                nullable: true,
            },
        ]
    }

    fn batch(ids: Vec<Option<&str>>, amounts: Vec<Option<&str>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("AMOUNT", DataType::Utf8, true),
            Field::new("id", DataType::Utf8, true),
            Field::new("extra", DataType::Int64, true),
        ]));
        let n = ids.len();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(amounts)),
                Arc::new(StringArray::from(ids)),
                Arc::new(Int64Array::from(vec![1; n])),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn conform_casts_reorders_drops_and_fills() {
        let b = batch(vec![Some("1"), Some("2")], vec![Some("4.50"), None]);
        let out = conform(&b, &cols(), "dataset t").expect("conform");
        assert_eq!(out.num_columns(), 3);
        assert_eq!(out.schema().field(0).data_type(), &DataType::Int64);
        assert_eq!(
            out.schema().field(1).data_type(),
            &DataType::Decimal128(10, 2)
        );
        assert_eq!(out.column(2).null_count(), 2);
        let ids = out
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64");
        assert_eq!(ids.values(), &[1, 2]);
    }

    #[test]
    fn conform_rejects_nulls_and_bad_values() {
        let b = batch(vec![Some("1"), None], vec![None, None]);
        let e = conform(&b, &cols(), "dataset t").unwrap_err().to_string();
        assert!(e.contains("column id is declared `nullable: false`"), "{e}");
        let b = batch(vec![Some("x")], vec![None]);
        let e = conform(&b, &cols(), "dataset t").unwrap_err().to_string();
        assert!(
            e.contains("column id (Utf8 in the input) does not convert to bigint"),
            "{e}"
        );
    }

    #[test]
    fn every_logical_type_round_trips_through_arrow() {
        for t in [
            "smallint",
            "integer",
            "bigint",
            "float",
            "double",
            "decimal(12,4)",
            "boolean",
            "string",
            "date",
            "time",
            "timestamp",
            "timestamptz",
            "binary",
        ] {
            let lt = LogicalType::parse(t).expect(t);
            assert_eq!(logical_of_arrow(&arrow_type(lt)), Some(lt), "{t}");
        }
    }
}
