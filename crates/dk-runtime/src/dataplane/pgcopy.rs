//! PostgreSQL binary `COPY` format ↔ Arrow, both ways, for the logical types.
//!
//! The format (PostgreSQL docs, "COPY … Binary Format"): an 11-byte signature, a 32-bit flags
//! field, a 32-bit header-extension length (+ extension), then tuples: a 16-bit field count (-1
//! ends the data) and per field a 32-bit length (-1 = NULL) followed by the value in the type's
//! binary send format. Dates count days and timestamps microseconds from 2000-01-01; `numeric` is
//! base-10000 digits with a weight, a sign and a display scale; `jsonb` carries a version byte.
//!
//! [`Decoder`] turns the bytes of `COPY (…) TO STDOUT (FORMAT binary)` into record batches with
//! the canonical Arrow types of [`super::schema`] (a `numeric` without precision becomes text: its
//! exact digits); [`encode`] writes the bytes of `COPY … FROM STDIN (FORMAT binary)` from a batch
//! already conformed to the table's logical types.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder,
    Date32Array, Date32Builder, Decimal128Array, Decimal128Builder, Float32Array, Float32Builder,
    Float64Array, Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array,
    Int64Builder, RecordBatch, StringArray, StringBuilder, Time64MicrosecondArray,
    Time64MicrosecondBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::{Buf, BufMut, BytesMut};
use dk_providers::model::LogicalType;

use super::schema::arrow_type;
use crate::error::{Result, RuntimeError};

/// The binary COPY signature.
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// How one column is decoded/encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `numeric(p,s)` into Decimal128.
    Numeric(u8, u8),
    /// `numeric` without a typmod: its exact text.
    NumericText,
    Text,
    Json,
    Jsonb,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
}

impl Wire {
    /// The wire form of a logical type for a column created by dk (`json` is `jsonb`).
    pub fn of_logical(t: LogicalType, native: &str) -> Wire {
        use LogicalType as L;
        match t {
            L::SmallInt => Wire::Int2,
            L::Integer => Wire::Int4,
            L::BigInt => Wire::Int8,
            L::Float => Wire::Float4,
            L::Double => Wire::Float8,
            L::Decimal(p, s) => Wire::Numeric(p, s),
            L::Boolean => Wire::Bool,
            // A `numeric` without precision is read and written as its exact text.
            L::String if native == "numeric" => Wire::NumericText,
            L::String => Wire::Text,
            L::Json if native == "json" => Wire::Json,
            L::Json => Wire::Jsonb,
            L::Binary => Wire::Bytea,
            L::Date => Wire::Date,
            L::Time => Wire::Time,
            L::Timestamp => Wire::Timestamp,
            L::TimestampTz => Wire::TimestampTz,
            L::Uuid => Wire::Uuid,
        }
    }

    /// The wire form of a result column's type (by type name), `None` when dk cannot read it.
    pub fn of_type_name(name: &str) -> Option<Wire> {
        Some(match name {
            "bool" => Wire::Bool,
            "int2" => Wire::Int2,
            "int4" => Wire::Int4,
            "int8" => Wire::Int8,
            "float4" => Wire::Float4,
            "float8" => Wire::Float8,
            "numeric" => Wire::NumericText,
            "text" | "varchar" | "bpchar" | "name" | "citext" => Wire::Text,
            "json" => Wire::Json,
            "jsonb" => Wire::Jsonb,
            "bytea" => Wire::Bytea,
            "date" => Wire::Date,
            "time" => Wire::Time,
            "timestamp" => Wire::Timestamp,
            "timestamptz" => Wire::TimestampTz,
            "uuid" => Wire::Uuid,
            _ => return None,
        })
    }

    /// The Arrow type decoded values get.
    pub fn arrow_type(self) -> DataType {
        use LogicalType as L;
        match self {
            Wire::Bool => arrow_type(L::Boolean),
            Wire::Int2 => arrow_type(L::SmallInt),
            Wire::Int4 => arrow_type(L::Integer),
            Wire::Int8 => arrow_type(L::BigInt),
            Wire::Float4 => arrow_type(L::Float),
            Wire::Float8 => arrow_type(L::Double),
            Wire::Numeric(p, s) => arrow_type(L::Decimal(p, s)),
            Wire::NumericText | Wire::Text | Wire::Json | Wire::Jsonb | Wire::Uuid => {
                DataType::Utf8
            }
            Wire::Bytea => DataType::Binary,
            Wire::Date => arrow_type(L::Date),
            Wire::Time => arrow_type(L::Time),
            Wire::Timestamp => arrow_type(L::Timestamp),
            Wire::TimestampTz => arrow_type(L::TimestampTz),
        }
    }
}

fn bad(context: &str, what: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::arrow(context, format!("malformed binary COPY data: {what}"))
}

/// Incremental decoder of binary COPY output.
pub struct Decoder {
    names: Vec<String>,
    wires: Vec<Wire>,
    schema: SchemaRef,
    builders: Vec<Box<dyn ArrayBuilder>>,
    rows: usize,
    buf: BytesMut,
    header_done: bool,
    finished: bool,
    context: String,
}

impl Decoder {
    pub fn new(names: Vec<String>, wires: Vec<Wire>, context: String) -> Decoder {
        let schema = Arc::new(Schema::new(
            names
                .iter()
                .zip(&wires)
                .map(|(n, w)| Field::new(n, w.arrow_type(), true))
                .collect::<Vec<_>>(),
        ));
        let mut d = Decoder {
            names,
            wires,
            schema,
            builders: Vec::new(),
            rows: 0,
            buf: BytesMut::new(),
            header_done: false,
            finished: false,
            context,
        };
        d.builders = d.new_builders();
        d
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn new_builders(&self) -> Vec<Box<dyn ArrayBuilder>> {
        self.wires
            .iter()
            .map(|w| -> Box<dyn ArrayBuilder> {
                match w {
                    Wire::Bool => Box::new(BooleanBuilder::new()),
                    Wire::Int2 => Box::new(Int16Builder::new()),
                    Wire::Int4 => Box::new(Int32Builder::new()),
                    Wire::Int8 => Box::new(Int64Builder::new()),
                    Wire::Float4 => Box::new(Float32Builder::new()),
                    Wire::Float8 => Box::new(Float64Builder::new()),
                    Wire::Numeric(p, s) => Box::new(
                        Decimal128Builder::new()
                            .with_precision_and_scale(*p, *s as i8)
                            .unwrap_or_default(),
                    ),
                    Wire::NumericText | Wire::Text | Wire::Json | Wire::Jsonb | Wire::Uuid => {
                        Box::new(StringBuilder::new())
                    }
                    Wire::Bytea => Box::new(BinaryBuilder::new()),
                    Wire::Date => Box::new(Date32Builder::new()),
                    Wire::Time => Box::new(Time64MicrosecondBuilder::new()),
                    Wire::Timestamp => Box::new(TimestampMicrosecondBuilder::new()),
                    Wire::TimestampTz => {
                        Box::new(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
                    }
                }
            })
            .collect()
    }

    /// Rows decoded into the pending batch.
    pub fn pending_rows(&self) -> usize {
        self.rows
    }

    /// Whether the end-of-data marker was seen.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Feeds bytes; decodes every complete tuple.
    pub fn push(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        if !self.header_done {
            if self.buf.len() < 19 {
                return Ok(());
            }
            if &self.buf[..11] != SIGNATURE {
                return Err(bad(&self.context, "bad signature"));
            }
            let ext = u32::from_be_bytes([self.buf[15], self.buf[16], self.buf[17], self.buf[18]])
                as usize;
            if self.buf.len() < 19 + ext {
                return Ok(());
            }
            self.buf.advance(19 + ext);
            self.header_done = true;
        }
        loop {
            if self.finished || self.buf.len() < 2 {
                return Ok(());
            }
            let n = i16::from_be_bytes([self.buf[0], self.buf[1]]);
            if n == -1 {
                self.finished = true;
                self.buf.advance(2);
                return Ok(());
            }
            if n as usize != self.wires.len() {
                return Err(bad(
                    &self.context,
                    format!("tuple has {n} fields, expected {}", self.wires.len()),
                ));
            }
            // Is the whole tuple here?
            let mut pos = 2usize;
            for _ in 0..n {
                if self.buf.len() < pos + 4 {
                    return Ok(());
                }
                let len = i32::from_be_bytes([
                    self.buf[pos],
                    self.buf[pos + 1],
                    self.buf[pos + 2],
                    self.buf[pos + 3],
                ]);
                pos += 4;
                if len > 0 {
                    pos += len as usize;
                }
            }
            if self.buf.len() < pos {
                return Ok(());
            }
            let tuple = self.buf.split_to(pos).freeze();
            let mut p = 2usize;
            for i in 0..self.wires.len() {
                let len = i32::from_be_bytes([tuple[p], tuple[p + 1], tuple[p + 2], tuple[p + 3]]);
                p += 4;
                if len < 0 {
                    self.append(i, None)?;
                } else {
                    let v = &tuple[p..p + len as usize];
                    p += len as usize;
                    self.append(i, Some(v))?;
                }
            }
            self.rows += 1;
        }
    }

    fn append(&mut self, i: usize, v: Option<&[u8]>) -> Result<()> {
        let wire = self.wires[i];
        let ctx = &self.context;
        let name = &self.names[i];
        let b = self.builders[i].as_any_mut();
        macro_rules! put {
            ($ty:ty, $conv:expr) => {{
                let bb = b
                    .downcast_mut::<$ty>()
                    .ok_or_else(|| RuntimeError::Internal("builder type".into()))?;
                match v {
                    None => bb.append_null(),
                    Some(v) => {
                        let conv: Result<_> = $conv(v);
                        bb.append_value(conv?)
                    }
                }
            }};
        }
        let fixed = |v: &[u8], n: usize| -> Result<()> {
            if v.len() == n {
                Ok(())
            } else {
                Err(bad(
                    ctx,
                    format!("column {name}: {} bytes, expected {n}", v.len()),
                ))
            }
        };
        match wire {
            Wire::Bool => put!(BooleanBuilder, |v: &[u8]| fixed(v, 1).map(|_| v[0] != 0)),
            Wire::Int2 => put!(Int16Builder, |v: &[u8]| fixed(v, 2)
                .map(|_| i16::from_be_bytes([v[0], v[1]]))),
            Wire::Int4 => put!(Int32Builder, |v: &[u8]| fixed(v, 4)
                .map(|_| i32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
            Wire::Int8 => put!(Int64Builder, |v: &[u8]| fixed(v, 8).map(|_| be_i64(v))),
            Wire::Float4 => put!(Float32Builder, |v: &[u8]| fixed(v, 4)
                .map(|_| f32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
            Wire::Float8 => put!(Float64Builder, |v: &[u8]| fixed(v, 8)
                .map(|_| f64::from_bits(be_i64(v) as u64))),
            Wire::Numeric(p, s) => put!(Decimal128Builder, |v: &[u8]| numeric_to_decimal(v, p, s)
                .map_err(|e| RuntimeError::Schema(format!("{ctx}: column {name}: {e}")))),
            Wire::NumericText => put!(StringBuilder, |v: &[u8]| numeric_to_string(v)
                .map_err(|e| bad(ctx, format!("column {name}: {e}")))),
            // Text is appended straight from the wire buffer (validated, not copied first).
            Wire::Text | Wire::Json | Wire::Jsonb => {
                let bb = b
                    .downcast_mut::<StringBuilder>()
                    .ok_or_else(|| RuntimeError::Internal("builder type".into()))?;
                match v {
                    None => bb.append_null(),
                    Some(v) => {
                        let v = if wire == Wire::Jsonb {
                            if v.first() != Some(&1) {
                                return Err(bad(
                                    ctx,
                                    format!("column {name}: unknown jsonb version"),
                                ));
                            }
                            &v[1..]
                        } else {
                            v
                        };
                        let s = std::str::from_utf8(v)
                            .map_err(|e| bad(ctx, format!("column {name}: {e}")))?;
                        bb.append_value(s);
                    }
                }
            }
            Wire::Uuid => put!(StringBuilder, |v: &[u8]| fixed(v, 16).map(|_| uuid_text(v))),
            Wire::Bytea => put!(BinaryBuilder, |v: &[u8]| Ok::<_, RuntimeError>(v.to_vec())),
            Wire::Date => put!(Date32Builder, |v: &[u8]| {
                fixed(v, 4)?;
                let d = i32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                if d == i32::MAX || d == i32::MIN {
                    return Err(bad(
                        ctx,
                        format!("column {name}: infinite dates have no Arrow form"),
                    ));
                }
                Ok(d + PG_EPOCH_DAYS)
            }),
            Wire::Time => put!(Time64MicrosecondBuilder, |v: &[u8]| fixed(v, 8)
                .map(|_| be_i64(v))),
            Wire::Timestamp | Wire::TimestampTz => {
                put!(TimestampMicrosecondBuilder, |v: &[u8]| {
                    fixed(v, 8)?;
                    let t = be_i64(v);
                    if t == i64::MAX || t == i64::MIN {
                        return Err(bad(
                            ctx,
                            format!("column {name}: infinite timestamps have no Arrow form"),
                        ));
                    }
                    Ok(t + PG_EPOCH_MICROS)
                })
            }
        }
        Ok(())
    }

    /// The pending rows as a batch (`None` when there are none).
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
            .map(Some)
            .map_err(|e| RuntimeError::arrow(&self.context, e))
    }
}

fn be_i64(v: &[u8]) -> i64 {
    i64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]])
}

fn uuid_text(v: &[u8]) -> String {
    let h: String = v.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

struct NumericParts {
    weight: i16,
    negative: bool,
    dscale: u16,
    digits: Vec<i16>,
}

fn numeric_parts(v: &[u8]) -> std::result::Result<NumericParts, String> {
    if v.len() < 8 {
        return Err("numeric shorter than its header".into());
    }
    let ndigits = i16::from_be_bytes([v[0], v[1]]);
    let weight = i16::from_be_bytes([v[2], v[3]]);
    let sign = u16::from_be_bytes([v[4], v[5]]);
    let dscale = u16::from_be_bytes([v[6], v[7]]);
    if sign == 0xC000 {
        return Err("NaN has no decimal form".into());
    }
    if sign == 0xD000 || sign == 0xF000 {
        return Err("infinity has no decimal form".into());
    }
    if ndigits < 0 || v.len() != 8 + 2 * ndigits as usize {
        return Err("numeric digit count does not match its length".into());
    }
    let digits = (0..ndigits as usize)
        .map(|i| i16::from_be_bytes([v[8 + 2 * i], v[9 + 2 * i]]))
        .collect();
    Ok(NumericParts {
        weight,
        negative: sign == 0x4000,
        dscale,
        digits,
    })
}

/// A binary `numeric` as an unscaled i128 with `scale` decimals. Extra decimals round half away
/// from zero, as PostgreSQL's `::numeric(p,s)` and Arrow's decimal parsing do.
pub fn numeric_to_i128(v: &[u8], scale: u8) -> std::result::Result<i128, String> {
    let n = numeric_parts(v)?;
    let too_large = || "value too large for decimal(38)".to_string();
    let mut acc: i128 = 0;
    for (i, d) in n.digits.iter().enumerate() {
        let e = 4 * (n.weight as i32 - i as i32) + scale as i32;
        let d = *d as i128;
        if e >= 0 {
            let p = 10i128.checked_pow(e as u32).ok_or_else(too_large)?;
            acc = d
                .checked_mul(p)
                .and_then(|x| acc.checked_add(x))
                .ok_or_else(too_large)?;
        } else if e > -4 {
            acc += d / 10i128.pow((-e) as u32);
        }
    }
    // The first decimal dropped (position scale + 1): its base-10000 digit, then its place in it.
    let k = scale as i32;
    let at = n.weight as i32 + 1 + k / 4;
    if let Some(d) = usize::try_from(at).ok().and_then(|i| n.digits.get(i)) {
        if (*d as i32 / 10i32.pow(3 - (k % 4) as u32)) % 10 >= 5 {
            acc = acc.checked_add(1).ok_or_else(too_large)?;
        }
    }
    Ok(if n.negative { -acc } else { acc })
}

/// A binary `numeric` as a `decimal(precision, scale)` value: rounded like
/// [`numeric_to_i128`], refused when it has more than `precision` digits.
pub fn numeric_to_decimal(v: &[u8], precision: u8, scale: u8) -> std::result::Result<i128, String> {
    let x = numeric_to_i128(v, scale)?;
    match POW10.get(precision as usize) {
        Some(bound) if x.unsigned_abs() >= *bound => Err(format!(
            "{} does not fit in decimal({precision},{scale})",
            numeric_to_string(v).unwrap_or_default()
        )),
        _ => Ok(x),
    }
}

/// 10^0 ..= 10^38: the bounds of decimal precisions.
const POW10: [u128; 39] = {
    let mut t = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// A binary `numeric` as its exact decimal text.
pub fn numeric_to_string(v: &[u8]) -> std::result::Result<String, String> {
    let n = numeric_parts(v)?;
    let mut int = String::new();
    for w in (0..=n.weight.max(-1)).rev() {
        let i = n.weight - w;
        let d = n.digits.get(i as usize).copied().unwrap_or(0);
        if int.is_empty() {
            if d != 0 {
                int.push_str(&d.to_string());
            }
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    let mut i = n.weight as i32 + 1;
    while frac.len() < n.dscale as usize {
        let d = if i >= 0 {
            n.digits.get(i as usize).copied().unwrap_or(0)
        } else {
            0
        };
        frac.push_str(&format!("{d:04}"));
        i += 1;
    }
    frac.truncate(n.dscale as usize);
    let sign = if n.negative { "-" } else { "" };
    Ok(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// Binary `numeric` of a decimal text (`-12.340`, `7`, `.5`, `NaN`), for a `numeric` column
/// without precision; its scale is the text's number of decimals. `None` when it is not one.
pub fn numeric_from_text(text: &str, out: &mut BytesMut) -> Option<()> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("nan") {
        out.put_i32(8);
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(0xC000);
        out.put_u16(0);
        return Some(());
    }
    let (negative, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 16383
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    // Base-10000 groups aligned on the decimal point.
    let ipad = (4 - int.len() % 4) % 4;
    let fpad = (4 - frac.len() % 4) % 4;
    let all: Vec<u8> = std::iter::repeat_n(b'0', ipad)
        .chain(int.bytes())
        .chain(frac.bytes())
        .chain(std::iter::repeat_n(b'0', fpad))
        .collect();
    let digits: Vec<i16> = all
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |a, d| a * 10 + (d - b'0') as i16))
        .collect();
    let weight = ((ipad + int.len()) / 4) as i32 - 1;
    put_numeric(digits, weight, negative, frac.len() as u16, out)
}

/// Binary `numeric` of an unscaled value with `scale` decimals (`None` only for a scale beyond
/// the format's).
pub fn numeric_from_i128(value: i128, scale: u8, out: &mut BytesMut) -> Option<()> {
    let negative = value < 0;
    let abs = value.unsigned_abs();
    let pow = 10u128.pow(scale as u32);
    let int = abs / pow;
    let frac = abs % pow;
    let pad = (4 - scale as u32 % 4) % 4;
    let frac_groups = (scale as u32 + pad) / 4;
    let mut frac_v = frac * 10u128.pow(pad);
    let mut fdigits = vec![0i16; frac_groups as usize];
    for i in (0..frac_groups as usize).rev() {
        fdigits[i] = (frac_v % 10_000) as i16;
        frac_v /= 10_000;
    }
    let mut idigits = Vec::new();
    let mut iv = int;
    while iv > 0 {
        idigits.push((iv % 10_000) as i16);
        iv /= 10_000;
    }
    idigits.reverse();
    let weight = idigits.len() as i32 - 1;
    let digits: Vec<i16> = idigits.into_iter().chain(fdigits).collect();
    put_numeric(digits, weight, negative, scale as u16, out)
}

/// Writes a binary `numeric` (length-prefixed) from base-10000 digits, the weight of the first
/// and the display scale, without leading and trailing zero groups. `None` (nothing written) when
/// it does not fit the format.
fn put_numeric(
    mut digits: Vec<i16>,
    mut weight: i32,
    negative: bool,
    dscale: u16,
    out: &mut BytesMut,
) -> Option<()> {
    let lead = digits.iter().take_while(|d| **d == 0).count();
    digits.drain(..lead);
    weight -= lead as i32;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    let (n, weight) = (
        i16::try_from(digits.len()).ok()?,
        i16::try_from(weight).ok()?,
    );
    out.put_i32(8 + 2 * digits.len() as i32);
    out.put_i16(n);
    out.put_i16(weight);
    out.put_u16(if negative && !digits.is_empty() {
        0x4000
    } else {
        0
    });
    out.put_u16(dscale);
    for d in digits {
        out.put_i16(d);
    }
    Some(())
}

/// The header of a binary COPY stream.
pub fn header(out: &mut BytesMut) {
    out.put_slice(SIGNATURE);
    out.put_i32(0);
    out.put_i32(0);
}

/// The end-of-data marker.
pub fn trailer(out: &mut BytesMut) {
    out.put_i16(-1);
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    uuid::Uuid::parse_str(s.trim()).ok().map(|u| *u.as_bytes())
}

fn downcast<'a, T: 'static>(a: &'a ArrayRef, context: &str) -> Result<&'a T> {
    a.as_any().downcast_ref::<T>().ok_or_else(|| {
        RuntimeError::Internal(format!(
            "{context}: column has Arrow type {} where another was expected",
            a.data_type()
        ))
    })
}

/// Appends the tuples of `batch` (conformed to `wires`' logical types) to `out`.
pub fn encode(
    batch: &RecordBatch,
    wires: &[Wire],
    context: &str,
    out: &mut BytesMut,
) -> Result<()> {
    let cols = batch.columns();
    if cols.len() != wires.len() {
        return Err(RuntimeError::Internal(format!(
            "{context}: {} columns for {} wire types",
            cols.len(),
            wires.len()
        )));
    }
    enum Col<'a> {
        Bool(&'a BooleanArray),
        I16(&'a Int16Array),
        I32(&'a Int32Array),
        I64(&'a Int64Array),
        F32(&'a Float32Array),
        F64(&'a Float64Array),
        Dec(&'a Decimal128Array, u8),
        Str(&'a StringArray, Wire),
        Bin(&'a BinaryArray),
        Date(&'a Date32Array),
        Time(&'a Time64MicrosecondArray),
        Ts(&'a TimestampMicrosecondArray),
    }
    let typed: Vec<Col<'_>> = cols
        .iter()
        .zip(wires)
        .map(|(a, w)| {
            Ok(match w {
                Wire::Bool => Col::Bool(downcast(a, context)?),
                Wire::Int2 => Col::I16(downcast(a, context)?),
                Wire::Int4 => Col::I32(downcast(a, context)?),
                Wire::Int8 => Col::I64(downcast(a, context)?),
                Wire::Float4 => Col::F32(downcast(a, context)?),
                Wire::Float8 => Col::F64(downcast(a, context)?),
                Wire::Numeric(_, s) => Col::Dec(downcast(a, context)?, *s),
                Wire::NumericText | Wire::Text | Wire::Json | Wire::Jsonb | Wire::Uuid => {
                    Col::Str(downcast(a, context)?, *w)
                }
                Wire::Bytea => Col::Bin(downcast(a, context)?),
                Wire::Date => Col::Date(downcast(a, context)?),
                Wire::Time => Col::Time(downcast(a, context)?),
                Wire::Timestamp | Wire::TimestampTz => Col::Ts(downcast(a, context)?),
            })
        })
        .collect::<Result<_>>()?;
    let names = batch.schema();
    for row in 0..batch.num_rows() {
        out.put_i16(cols.len() as i16);
        for (ci, c) in typed.iter().enumerate() {
            if cols[ci].is_null(row) {
                out.put_i32(-1);
                continue;
            }
            match c {
                Col::Bool(a) => {
                    out.put_i32(1);
                    out.put_u8(a.value(row) as u8);
                }
                Col::I16(a) => {
                    out.put_i32(2);
                    out.put_i16(a.value(row));
                }
                Col::I32(a) => {
                    out.put_i32(4);
                    out.put_i32(a.value(row));
                }
                Col::I64(a) => {
                    out.put_i32(8);
                    out.put_i64(a.value(row));
                }
                Col::F32(a) => {
                    out.put_i32(4);
                    out.put_f32(a.value(row));
                }
                Col::F64(a) => {
                    out.put_i32(8);
                    out.put_f64(a.value(row));
                }
                Col::Dec(a, s) => numeric_from_i128(a.value(row), *s, out).ok_or_else(|| {
                    RuntimeError::Schema(format!(
                        "{context}: column {} has a decimal scale {s} that PostgreSQL's numeric cannot carry",
                        names.field(ci).name()
                    ))
                })?,
                Col::Str(a, w) => {
                    let v = a.value(row);
                    match w {
                        Wire::Jsonb => {
                            out.put_i32(v.len() as i32 + 1);
                            out.put_u8(1);
                            out.put_slice(v.as_bytes());
                        }
                        Wire::Uuid => {
                            let u = parse_uuid(v).ok_or_else(|| {
                                RuntimeError::Schema(format!(
                                    "{context}: column {} value {v:?} is not a UUID",
                                    names.field(ci).name()
                                ))
                            })?;
                            out.put_i32(16);
                            out.put_slice(&u);
                        }
                        Wire::NumericText => numeric_from_text(v, out).ok_or_else(|| {
                            RuntimeError::Schema(format!(
                                "{context}: column {} value {v:?} is not a decimal number",
                                names.field(ci).name()
                            ))
                        })?,
                        _ => {
                            out.put_i32(v.len() as i32);
                            out.put_slice(v.as_bytes());
                        }
                    }
                }
                Col::Bin(a) => {
                    let v = a.value(row);
                    out.put_i32(v.len() as i32);
                    out.put_slice(v);
                }
                Col::Date(a) => {
                    out.put_i32(4);
                    out.put_i32(a.value(row) - PG_EPOCH_DAYS);
                }
                Col::Time(a) => {
                    out.put_i32(8);
                    out.put_i64(a.value(row));
                }
                Col::Ts(a) => {
                    out.put_i32(8);
                    out.put_i64(a.value(row) - PG_EPOCH_MICROS);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_text_round_trips() {
        for t in [
            "0",
            "1",
            "-1",
            "12.34",
            "-0.0001",
            "10000",
            "123456789.987654321",
            "0.50",
            "100.000",
            "99999999999999999999999999999999999999999.5",
        ] {
            let mut b = BytesMut::new();
            numeric_from_text(t, &mut b).expect(t);
            let body = &b[4..];
            assert_eq!(numeric_to_string(body).as_deref(), Ok(t), "{t}");
        }
        let mut b = BytesMut::new();
        numeric_from_text("+.5", &mut b).expect("+.5");
        assert_eq!(numeric_to_string(&b[4..]).as_deref(), Ok("0.5"));
        for bad in ["", "-", ".", "1e5", "12a", "1.2.3", " - 1"] {
            assert!(
                numeric_from_text(bad, &mut BytesMut::new()).is_none(),
                "{bad}"
            );
        }
    }

    fn roundtrip(value: i128, scale: u8) -> (i128, String) {
        let mut b = BytesMut::new();
        numeric_from_i128(value, scale, &mut b).expect("fits");
        let v = &b[4..];
        (
            numeric_to_i128(v, scale).expect("i128"),
            numeric_to_string(v).expect("text"),
        )
    }

    #[test]
    fn numeric_round_trips() {
        assert_eq!(roundtrip(4250, 2), (4250, "42.50".into()));
        assert_eq!(roundtrip(-1, 2), (-1, "-0.01".into()));
        assert_eq!(roundtrip(0, 3), (0, "0.000".into()));
        assert_eq!(
            roundtrip(123_456_789_012_345, 0),
            (123_456_789_012_345, "123456789012345".into())
        );
        assert_eq!(
            roundtrip(100_000_000, 4),
            (100_000_000, "10000.0000".into())
        );
        assert_eq!(roundtrip(5, 5), (5, "0.00005".into()));
        assert_eq!(
            roundtrip(-99_999_999_999, 9),
            (-99_999_999_999, "-99.999999999".into())
        );
    }

    /// Decoding an unconstrained `numeric` straight into a declared decimal gives what casting
    /// its exact text does (the declared schema's path before): same rounding, same refusals.
    #[test]
    fn numeric_to_decimal_agrees_with_casting_its_text() {
        use arrow::array::{Array, Decimal128Array, StringArray};
        use arrow::compute::{cast_with_options, CastOptions};
        let opts = CastOptions {
            safe: false,
            ..Default::default()
        };
        let values = [
            "0",
            "1.005",
            "-1.005",
            "1.004999",
            "2.5",
            "-2.5",
            "0.00049",
            "0.0005",
            "0.005",
            "-0.005",
            "12345678.994",
            "12345678.995",
            "99999999.99",
            "99999999.995",
            "-99999999.995",
            "100000000",
            "123.456789012345678901",
            "0.999999999",
            "9999.99995",
            "0.00000000001",
        ];
        for (p, sc) in [(10u8, 2u8), (10, 0), (12, 4), (38, 10), (5, 5), (3, 1)] {
            for t in values {
                let mut b = BytesMut::new();
                numeric_from_text(t, &mut b).expect(t);
                let ours = numeric_to_decimal(&b[4..], p, sc);
                let text = StringArray::from(vec![t]);
                let cast =
                    cast_with_options(&text, &DataType::Decimal128(p, sc as i8), &opts).map(|a| {
                        let d = a.as_any().downcast_ref::<Decimal128Array>().expect("dec");
                        assert!(!d.is_null(0));
                        d.value(0)
                    });
                match (&ours, &cast) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{t} as decimal({p},{sc})"),
                    (Err(e), Err(_)) => {
                        assert!(e.contains("does not fit in decimal("), "{e}")
                    }
                    _ => panic!("{t} as decimal({p},{sc}): ours {ours:?}, cast {cast:?}"),
                }
            }
        }
        let mut b = BytesMut::new();
        numeric_from_text("1.005", &mut b).expect("1.005");
        assert_eq!(numeric_to_decimal(&b[4..], 10, 2), Ok(101));
        let mut b = BytesMut::new();
        numeric_from_text("-99999999.995", &mut b).expect("big");
        assert_eq!(
            numeric_to_decimal(&b[4..], 10, 2),
            Err("-99999999.995 does not fit in decimal(10,2)".to_string())
        );
        let mut b = BytesMut::new();
        numeric_from_text("NaN", &mut b).expect("nan");
        assert!(numeric_to_decimal(&b[4..], 10, 2).is_err());
    }

    #[test]
    fn decoder_handles_tuples_split_across_chunks() {
        let mut bytes = BytesMut::new();
        header(&mut bytes);
        for i in 0..3i64 {
            bytes.put_i16(2);
            bytes.put_i32(8);
            bytes.put_i64(i);
            if i == 1 {
                bytes.put_i32(-1);
            } else {
                bytes.put_i32(2);
                bytes.put_slice(b"hi");
            }
        }
        trailer(&mut bytes);
        let mut d = Decoder::new(
            vec!["id".into(), "s".into()],
            vec![Wire::Int8, Wire::Text],
            "test".into(),
        );
        for chunk in bytes.chunks(5) {
            d.push(chunk).expect("push");
        }
        assert!(d.finished());
        let b = d.flush().expect("flush").expect("batch");
        assert_eq!(b.num_rows(), 3);
        assert_eq!(b.column(1).null_count(), 1);
    }
}
