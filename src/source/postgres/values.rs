//! PostgreSQL text-format values to [`Value`]s, by type OID.
//!
//! The replication session runs with `DateStyle=ISO`, `TimeZone=UTC`, `extra_float_digits=3`
//! and `bytea_output=hex` (set as startup options), so the text forms parsed here are fixed.
//! Types with no dedicated variant (arrays, enums, intervals, network types...) travel as their
//! text form, which is lossless and what the other side's text columns expect.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use crate::model::{iso, Value};

pub const BOOL: u32 = 16;
pub const BYTEA: u32 = 17;
pub const CHAR: u32 = 18;
pub const NAME: u32 = 19;
pub const INT8: u32 = 20;
pub const INT2: u32 = 21;
pub const INT4: u32 = 23;
pub const TEXT: u32 = 25;
pub const OID: u32 = 26;
pub const JSON: u32 = 114;
pub const FLOAT4: u32 = 700;
pub const FLOAT8: u32 = 701;
pub const BPCHAR: u32 = 1042;
pub const VARCHAR: u32 = 1043;
pub const DATE: u32 = 1082;
pub const TIME: u32 = 1083;
pub const TIMESTAMP: u32 = 1114;
pub const TIMESTAMPTZ: u32 = 1184;
pub const NUMERIC: u32 = 1700;
pub const UUID: u32 = 2950;
pub const JSONB: u32 = 3802;

/// Parse one text-format value. The error names the type, never the value.
pub fn from_text(oid: u32, raw: &[u8]) -> Result<Value, String> {
    let text =
        std::str::from_utf8(raw).map_err(|_| format!("{} value is not UTF-8", type_name(oid)))?;
    let bad = || format!("cannot read {} value", type_name(oid));
    let v = match oid {
        // `t`/`f` from the output function (the stream); `true`/`false` from a `::text` cast
        // (resync and verify reads).
        BOOL => match text {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => return Err(bad()),
        },
        INT2 | INT4 | INT8 => Value::Int(text.parse().map_err(|_| bad())?),
        OID => Value::UInt(text.parse().map_err(|_| bad())?),
        FLOAT4 | FLOAT8 => Value::Float(parse_float(text).ok_or_else(bad)?),
        NUMERIC => Value::Decimal(text.to_string()),
        BYTEA => Value::Bytes(parse_bytea(text).ok_or_else(bad)?),
        DATE => Value::Date(
            iso::parse_date(text)
                .or_else(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
                .ok_or_else(bad)?,
        ),
        TIME => Value::Time(
            iso::parse_time(text)
                .or_else(|| NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok())
                .ok_or_else(bad)?,
        ),
        TIMESTAMP => Value::Timestamp(parse_naive(text).ok_or_else(bad)?),
        TIMESTAMPTZ => Value::TimestampTz(parse_timestamptz(text).ok_or_else(bad)?),
        JSON | JSONB => Value::Json(text.to_string()),
        UUID => Value::Uuid(text.parse().map_err(|_| bad())?),
        _ => Value::Text(text.to_string()),
    };
    Ok(v)
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

fn parse_naive(text: &str) -> Option<NaiveDateTime> {
    iso::parse_datetime(text)
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok())
}

/// `\x0a0b` hex form.
fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// `2024-01-02 03:04:05.123456+00` (the offset may also be `+05:30` or `-03`).
fn parse_timestamptz(text: &str) -> Option<DateTime<Utc>> {
    let split = text.rfind(['+', '-']).filter(|&i| i > 10)?;
    let (local, offset) = text.split_at(split);
    let naive = parse_naive(local)?;
    let sign: i32 = if offset.starts_with('-') { -1 } else { 1 };
    let mut parts = offset[1..].split(':');
    let h: i32 = parts.next()?.parse().ok()?;
    let m: i32 = parts.next().map(|m| m.parse().ok()).unwrap_or(Some(0))?;
    let s: i32 = parts.next().map(|s| s.parse().ok()).unwrap_or(Some(0))?;
    let secs = sign * (h * 3600 + m * 60 + s);
    let utc = naive - chrono::Duration::seconds(secs as i64);
    Some(DateTime::from_naive_utc_and_offset(utc, Utc))
}

pub fn type_name(oid: u32) -> &'static str {
    match oid {
        BOOL => "boolean",
        BYTEA => "bytea",
        CHAR | BPCHAR => "char",
        NAME => "name",
        INT2 => "smallint",
        INT4 => "integer",
        INT8 => "bigint",
        TEXT => "text",
        OID => "oid",
        JSON => "json",
        FLOAT4 => "real",
        FLOAT8 => "double precision",
        VARCHAR => "varchar",
        DATE => "date",
        TIME => "time",
        TIMESTAMP => "timestamp",
        TIMESTAMPTZ => "timestamptz",
        NUMERIC => "numeric",
        UUID => "uuid",
        JSONB => "jsonb",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars() {
        assert_eq!(from_text(BOOL, b"t"), Ok(Value::Bool(true)));
        assert_eq!(
            from_text(BOOL, b"false"),
            Ok(Value::Bool(false)),
            "a ::text cast"
        );
        assert!(from_text(BOOL, b"yes").is_err());
        assert_eq!(
            from_text(INT8, b"-9223372036854775808"),
            Ok(Value::Int(i64::MIN))
        );
        assert_eq!(
            from_text(NUMERIC, b"-12.3400"),
            Ok(Value::Decimal("-12.3400".into()))
        );
        assert_eq!(
            from_text(FLOAT8, b"-Infinity"),
            Ok(Value::Float(f64::NEG_INFINITY))
        );
        assert_eq!(
            from_text(BYTEA, b"\\x00ff10"),
            Ok(Value::Bytes(vec![0, 255, 16]))
        );
        assert_eq!(
            from_text(TEXT, "é🎉".as_bytes()),
            Ok(Value::Text("é🎉".into()))
        );
        assert!(from_text(INT4, b"12x").unwrap_err().contains("integer"));
        assert!(from_text(BYTEA, b"\\x0").is_err());
    }

    #[test]
    fn timestamptz_offsets_normalise_to_utc() {
        let want = parse_timestamptz("2024-03-01 12:00:00+00").unwrap();
        assert_eq!(parse_timestamptz("2024-03-01 17:30:00+05:30"), Some(want));
        assert_eq!(parse_timestamptz("2024-03-01 09:00:00-03"), Some(want));
        let frac = parse_timestamptz("2024-03-01 12:00:00.123456+00").unwrap();
        assert_eq!(frac.timestamp_subsec_micros(), 123456);
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(
            from_text(DATE, b"2024-02-29"),
            Ok(Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()))
        );
        assert!(from_text(DATE, b"infinity").is_err());
        let t = from_text(TIMESTAMP, b"2024-02-29 23:59:59.5").unwrap();
        assert_eq!(t.kind(), "timestamp");
        assert!(matches!(from_text(TIME, b"10:11:12"), Ok(Value::Time(_))));
    }
}
