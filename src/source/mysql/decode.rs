//! Binlog row values to [`Value`]s, by column type.
//!
//! Pure: a value and its column description in, a value or a reason out. A value with no exact
//! form on the other side (a zero date, invalid UTF-8 in a text column, a JSON diff) is an error
//! for that row, which goes to the dead-letter queue; it is never turned into NULL.

use chrono::{DateTime, NaiveDate, NaiveTime};
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::Value as My;

use super::charset::Charset;
use crate::model::Value;

/// What decoding needs to know about a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub column_type: Option<ColumnType>,
    pub unsigned: bool,
    /// The table map's metadata bytes for the column (lengths, precision, fraction digits).
    pub meta: Vec<u8>,
    /// The column's character set (from its collation id in the table map).
    pub charset: Charset,
    /// Variant names of an ENUM or SET column (from binlog_row_metadata=FULL), decoded by the
    /// column's character set; `Err` when a name has no exact text (every value of the column
    /// is then refused).
    pub variants: Result<Vec<String>, String>,
}

impl Default for ColumnInfo {
    fn default() -> ColumnInfo {
        ColumnInfo {
            name: String::new(),
            column_type: None,
            unsigned: false,
            meta: Vec::new(),
            charset: Charset::Unknown(0),
            variants: Ok(Vec::new()),
        }
    }
}

impl ColumnInfo {
    pub fn from_column(c: &mysql_async::Column, variants: Vec<String>) -> ColumnInfo {
        ColumnInfo {
            name: c.name_str().into_owned(),
            column_type: Some(c.column_type()),
            unsigned: c.flags().contains(ColumnFlags::UNSIGNED_FLAG),
            meta: Vec::new(),
            charset: Charset::of_collation(c.character_set()),
            variants: Ok(variants),
        }
    }
}

pub fn value(col: &ColumnInfo, v: BinlogValue<'_>) -> Result<Value, String> {
    use ColumnType::*;
    let ty = col.column_type.ok_or("column type unknown")?;
    let my = match v {
        BinlogValue::Value(my) => my,
        BinlogValue::Jsonb(j) => {
            let json: serde_json::Value = j.parse().map_err(|e| format!("JSON value: {e}"))?.into();
            return Ok(Value::Json(json.to_string()));
        }
        BinlogValue::JsonDiff(_) => {
            return Err("partial JSON update (set binlog_row_value_options='')".into())
        }
    };
    if my == My::NULL {
        return Ok(Value::Null);
    }
    let v = match ty {
        // mysql_common reads a signed MEDIUMINT's three bytes without sign extension
        // (-8388608 arrived as 8388608): extend bit 23 here.
        MYSQL_TYPE_INT24 if !col.unsigned => match integer(my)? {
            Value::Int(i) => Value::Int(((i as i32) << 8 >> 8) as i64),
            other => other,
        },
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_LONG
        | MYSQL_TYPE_LONGLONG => integer(my)?,
        MYSQL_TYPE_YEAR => year(my)?,
        MYSQL_TYPE_FLOAT => match my {
            // Through the shortest text form, so FLOAT 1.1 stays 1.1 rather than 1.100000023.
            My::Float(f) => Value::Float(f.to_string().parse().map_err(|_| "FLOAT value")?),
            My::Double(d) => Value::Float(d),
            _ => return Err("FLOAT value".into()),
        },
        MYSQL_TYPE_DOUBLE => match my {
            My::Double(d) => Value::Float(d),
            My::Float(f) => Value::Float(f as f64),
            _ => return Err("DOUBLE value".into()),
        },
        MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => Value::Decimal(text(my)?),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => date(my)?,
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => datetime(my)?,
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => timestamp(my)?,
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => time(my, fsp(col))?,
        MYSQL_TYPE_JSON => Value::Json(text(my)?),
        MYSQL_TYPE_ENUM => enum_value(col, my)?,
        MYSQL_TYPE_SET => set_value(col, my)?,
        MYSQL_TYPE_BIT => bits(my)?,
        MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB => match my {
            // BINARY(n) is stored padded with zero bytes, and the binlog leaves the padding out.
            My::Bytes(mut b) if col.charset == Charset::Binary => {
                if ty == MYSQL_TYPE_STRING {
                    b.resize(b.len().max(fixed_length(&col.meta)), 0);
                }
                Value::Bytes(b)
            }
            My::Bytes(b) => Value::Text(col.charset.decode_owned(b)?),
            _ => return Err("string value".into()),
        },
        other => return Err(format!("column type {other:?} is not supported")),
    };
    Ok(v)
}

/// The byte length of a CHAR/BINARY column from its two table-map metadata bytes (the real
/// type with the length's high bits folded in, then the length's low byte).
fn fixed_length(meta: &[u8]) -> usize {
    match meta {
        [t, low, ..] if t & 0x30 != 0x30 => ((((*t as usize) & 0x30) ^ 0x30) << 4) | *low as usize,
        [_, low, ..] => *low as usize,
        _ => 0,
    }
}

fn integer(my: My) -> Result<Value, String> {
    match my {
        My::Int(i) => Ok(Value::Int(i)),
        My::UInt(u) => Ok(i64::try_from(u).map(Value::Int).unwrap_or(Value::UInt(u))),
        _ => Err("integer value".into()),
    }
}

/// YEAR is one byte on disk: 0 is the year 0000, 1..=255 are 1901..=2155. mysql_common adds
/// 1900 to every byte, so 0000 arrived as 1900 (a year YEAR cannot hold).
fn year(my: My) -> Result<Value, String> {
    let y: i64 = text(my)?.parse().map_err(|_| "YEAR value")?;
    Ok(Value::Int(if y == 1900 { 0 } else { y }))
}

/// Fraction digits of a TIME2/DATETIME2/TIMESTAMP2 column (its one metadata byte).
fn fsp(col: &ColumnInfo) -> usize {
    col.meta.first().map_or(0, |&d| d.min(6) as usize)
}

fn text(my: My) -> Result<String, String> {
    match my {
        My::Bytes(b) => String::from_utf8(b).map_err(|_| "value is not valid UTF-8".into()),
        My::Int(i) => Ok(i.to_string()),
        My::UInt(u) => Ok(u.to_string()),
        _ => Err("text value".into()),
    }
}

fn date(my: My) -> Result<Value, String> {
    match my {
        My::Date(y, m, d, ..) => NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32)
            .map(Value::Date)
            .ok_or_else(|| "zero date or zero in date has no exact form".to_string()),
        _ => Err("DATE value".into()),
    }
}

fn datetime(my: My) -> Result<Value, String> {
    match my {
        My::Date(y, mo, d, h, mi, s, us) => NaiveDate::from_ymd_opt(y as i32, mo as u32, d as u32)
            .and_then(|date| date.and_hms_micro_opt(h as u32, mi as u32, s as u32, us))
            .map(Value::Timestamp)
            .ok_or_else(|| "zero date or zero in date has no exact form".to_string()),
        _ => Err("DATETIME value".into()),
    }
}

/// TIMESTAMP arrives as seconds since the epoch, `secs` or `secs.micros` text.
fn timestamp(my: My) -> Result<Value, String> {
    let (secs, micros) = match my {
        My::Int(i) => (i, 0),
        My::Bytes(b) => {
            let t = String::from_utf8(b).map_err(|_| "TIMESTAMP value")?;
            let (s, f) = t.split_once('.').unwrap_or((&t, "0"));
            let frac = format!("{f:0<6}");
            (
                s.parse().map_err(|_| "TIMESTAMP value")?,
                frac[..6].parse().map_err(|_| "TIMESTAMP value")?,
            )
        }
        _ => return Err("TIMESTAMP value".into()),
    };
    if secs == 0 && micros == 0 {
        return Err("timestamp 0 (zero date) has no exact form".into());
    }
    DateTime::from_timestamp(secs, micros * 1000)
        .map(Value::TimestampTz)
        .ok_or_else(|| "TIMESTAMP out of range".into())
}

fn time(my: My, fsp: usize) -> Result<Value, String> {
    match my {
        My::Time(neg, days, h, m, s, us) => {
            if neg || days > 0 {
                // Outside a time of day: keep the exact text as MariaDB shows it (its own
                // fraction digits), the target decides (interval, text).
                let sign = if neg { "-" } else { "" };
                let hours = days * 24 + h as u32;
                let mut t = format!("{sign}{hours:02}:{m:02}:{s:02}");
                if fsp > 0 {
                    t.push_str(&format!(".{us:06}")[..fsp + 1]);
                }
                return Ok(Value::Text(t));
            }
            NaiveTime::from_hms_micro_opt(h as u32, m as u32, s as u32, us)
                .map(Value::Time)
                .ok_or_else(|| "TIME value".into())
        }
        _ => Err("TIME value".into()),
    }
}

fn enum_value(col: &ColumnInfo, my: My) -> Result<Value, String> {
    let idx = match my {
        My::Int(i) => i as usize,
        My::UInt(u) => u as usize,
        _ => return Err("ENUM value".into()),
    };
    if idx == 0 {
        return Ok(Value::Text(String::new()));
    }
    let variants = col.variants.as_ref().map_err(Clone::clone)?;
    variants
        .get(idx - 1)
        .map(|v| Value::Text(v.clone()))
        .ok_or_else(|| format!("ENUM index {idx} has no name (is binlog_row_metadata=FULL?)"))
}

fn set_value(col: &ColumnInfo, my: My) -> Result<Value, String> {
    let My::Bytes(b) = my else {
        return Err("SET value".into());
    };
    let variants = col.variants.as_ref().map_err(Clone::clone)?;
    let mut bits = 0u64;
    for (i, byte) in b.iter().enumerate().take(8) {
        bits |= (*byte as u64) << (8 * i);
    }
    let mut names = Vec::new();
    for i in 0..64 {
        if bits & (1 << i) != 0 {
            let name = variants.get(i).ok_or_else(|| {
                format!("SET member {i} has no name (is binlog_row_metadata=FULL?)")
            })?;
            names.push(name.as_str());
        }
    }
    Ok(Value::Text(names.join(",")))
}

/// BIT(n) as its binary digits, most significant first: what PostgreSQL's bit/varbit take.
fn bits(my: My) -> Result<Value, String> {
    let My::Bytes(b) = my else {
        return Err("BIT value".into());
    };
    Ok(bit_text(&b))
}

/// A BIT value as its binary digits without leading zeros (`b'0101'` -> `101`), the form
/// PostgreSQL's `bit varying` reads; the same whether it came from the binlog or a query.
pub fn bit_text(bytes: &[u8]) -> Value {
    let digits: String = bytes.iter().map(|byte| format!("{byte:08b}")).collect();
    let trimmed = digits.trim_start_matches('0');
    Value::Text(if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: ColumnType) -> ColumnInfo {
        ColumnInfo {
            name: "c".into(),
            column_type: Some(ty),
            charset: Charset::Utf8,
            ..Default::default()
        }
    }

    fn v(c: &ColumnInfo, my: My) -> Result<Value, String> {
        value(c, BinlogValue::Value(my))
    }

    #[test]
    fn integers_keep_unsigned_range() {
        let c = col(ColumnType::MYSQL_TYPE_LONGLONG);
        assert_eq!(v(&c, My::UInt(u64::MAX)), Ok(Value::UInt(u64::MAX)));
        assert_eq!(v(&c, My::UInt(5)), Ok(Value::Int(5)));
        assert_eq!(v(&c, My::Int(-5)), Ok(Value::Int(-5)));
        assert_eq!(v(&c, My::NULL), Ok(Value::Null));
    }

    #[test]
    fn mediumint_sign_and_year_zero() {
        let c = col(ColumnType::MYSQL_TYPE_INT24);
        assert_eq!(v(&c, My::Int(8_388_608)), Ok(Value::Int(-8_388_608)));
        assert_eq!(v(&c, My::Int(16_777_215)), Ok(Value::Int(-1)));
        assert_eq!(v(&c, My::Int(-5)), Ok(Value::Int(-5)));
        assert_eq!(v(&c, My::Int(8_388_607)), Ok(Value::Int(8_388_607)));
        let mut u = col(ColumnType::MYSQL_TYPE_INT24);
        u.unsigned = true;
        assert_eq!(v(&u, My::UInt(16_777_215)), Ok(Value::Int(16_777_215)));
        let y = col(ColumnType::MYSQL_TYPE_YEAR);
        assert_eq!(v(&y, My::Int(1900)), Ok(Value::Int(0)));
        assert_eq!(v(&y, My::Int(2155)), Ok(Value::Int(2155)));
    }

    #[test]
    fn zero_date_reasons_carry_no_value() {
        let d = col(ColumnType::MYSQL_TYPE_DATE);
        let reason = v(&d, My::Date(2024, 0, 15, 0, 0, 0, 0)).unwrap_err();
        assert!(
            !reason.contains("2024") && !reason.contains("15"),
            "{reason}"
        );
    }

    #[test]
    fn float_keeps_its_shortest_form() {
        assert_eq!(
            v(&col(ColumnType::MYSQL_TYPE_FLOAT), My::Float(1.1)),
            Ok(Value::Float(1.1))
        );
    }

    #[test]
    fn zero_dates_are_row_errors() {
        let d = col(ColumnType::MYSQL_TYPE_DATE);
        assert!(v(&d, My::Date(0, 0, 0, 0, 0, 0, 0))
            .unwrap_err()
            .contains("zero date"));
        let dt = col(ColumnType::MYSQL_TYPE_DATETIME2);
        assert!(v(&dt, My::Date(0, 0, 0, 0, 0, 0, 0)).is_err());
        assert_eq!(
            v(&dt, My::Date(2024, 2, 29, 23, 59, 58, 123456)),
            Ok(Value::Timestamp(
                NaiveDate::from_ymd_opt(2024, 2, 29)
                    .unwrap()
                    .and_hms_micro_opt(23, 59, 58, 123456)
                    .unwrap()
            ))
        );
        let ts = col(ColumnType::MYSQL_TYPE_TIMESTAMP2);
        assert!(v(&ts, My::Bytes(b"0".to_vec())).is_err());
        let Ok(Value::TimestampTz(t)) = v(&ts, My::Bytes(b"1700000000.5".to_vec())) else {
            panic!()
        };
        assert_eq!(
            (t.timestamp(), t.timestamp_subsec_micros()),
            (1_700_000_000, 500_000)
        );
    }

    #[test]
    fn text_binary_enum_set_bit() {
        let t = col(ColumnType::MYSQL_TYPE_VARCHAR);
        assert_eq!(
            v(&t, My::Bytes("é🎉".as_bytes().to_vec())),
            Ok(Value::Text("é🎉".into()))
        );
        assert!(v(&t, My::Bytes(vec![0xff, 0xfe])).is_err());
        let mut fixed = col(ColumnType::MYSQL_TYPE_STRING);
        fixed.charset = Charset::Binary;
        fixed.meta = vec![0xfe, 4];
        assert_eq!(
            v(&fixed, My::Bytes(b"ab".to_vec())),
            Ok(Value::Bytes(b"ab\0\0".to_vec()))
        );
        // BINARY(255): no high bits; BINARY(300) is not allowed, but the high bits decode.
        fixed.meta = vec![0xfe, 255];
        assert_eq!(fixed_length(&fixed.meta), 255);
        assert_eq!(fixed_length(&[0xee, 0x2c]), 300);
        let mut b = col(ColumnType::MYSQL_TYPE_BLOB);
        b.charset = Charset::Binary;
        assert_eq!(
            v(&b, My::Bytes(vec![0, 255])),
            Ok(Value::Bytes(vec![0, 255]))
        );
        let mut e = col(ColumnType::MYSQL_TYPE_ENUM);
        e.variants = Ok(vec!["open".into(), "won".into()]);
        assert_eq!(v(&e, My::Int(2)), Ok(Value::Text("won".into())));
        assert!(v(&e, My::Int(3)).is_err());
        let mut s = col(ColumnType::MYSQL_TYPE_SET);
        s.variants = Ok(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(v(&s, My::Bytes(vec![0b101])), Ok(Value::Text("a,c".into())));
        assert_eq!(
            v(&col(ColumnType::MYSQL_TYPE_BIT), My::Bytes(vec![0, 5])),
            Ok(Value::Text("101".into()))
        );
        assert_eq!(
            v(
                &col(ColumnType::MYSQL_TYPE_NEWDECIMAL),
                My::Bytes(b"-1.500000000".to_vec())
            ),
            Ok(Value::Decimal("-1.500000000".into()))
        );
    }

    #[test]
    fn times_outside_a_day_keep_their_text() {
        let mut c = col(ColumnType::MYSQL_TYPE_TIME2);
        c.meta = vec![6];
        assert_eq!(
            v(&c, My::Time(true, 1, 2, 3, 4, 0)),
            Ok(Value::Text("-26:03:04.000000".into()))
        );
        c.meta = vec![3];
        assert_eq!(
            v(&c, My::Time(false, 34, 22, 59, 59, 120_000)),
            Ok(Value::Text("838:59:59.120".into()))
        );
        c.meta = vec![0];
        assert_eq!(
            v(&c, My::Time(true, 0, 0, 0, 1, 0)),
            Ok(Value::Text("-00:00:01".into()))
        );
        assert!(matches!(
            v(&c, My::Time(false, 0, 10, 0, 0, 5)),
            Ok(Value::Time(_))
        ));
    }
}
