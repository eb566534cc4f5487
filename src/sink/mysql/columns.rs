//! What the MySQL/MariaDB sink knows about a target table, read once from information_schema
//! when it first writes the table, and the one encoder per column type that decides whether a
//! value arrives exactly or the row is refused.
//!
//! Strict mode already turns most misfits into errors, but not all: MariaDB rounds a decimal's
//! extra fractional digits and fractional seconds, pads `BINARY(n)`, drops `CHAR(n)`'s trailing
//! spaces and reorders `SET` members, all without an error. Its errors also quote the value. So
//! every value is checked here against the column's own facts before it is sent, and a refusal
//! names the column and why, never the value. The same encoder serves every write path
//! (streaming upserts and updates, bulk loads, resync, repair).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, Timelike};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value as My};

use crate::error::{Error, Result};
use crate::mapping::TargetTable;
use crate::model::{iso, Value};
use crate::sink::exact;

/// How a column's values are checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Int {
        bits: u32,
        unsigned: bool,
    },
    Decimal {
        precision: u32,
        scale: u32,
        unsigned: bool,
    },
    Float {
        single: bool,
    },
    /// `CHAR`/`VARCHAR` count characters, the `TEXT` types bytes in the column's charset.
    Text {
        max_chars: Option<u64>,
        max_bytes: Option<u64>,
        charset: Charset,
        fixed: bool,
    },
    Binary {
        max_bytes: u64,
        fixed: bool,
    },
    Bit {
        width: u32,
    },
    Enum(Vec<String>),
    Set(Vec<String>),
    Date,
    DateTime {
        fsp: u32,
    },
    Timestamp {
        fsp: u32,
    },
    Time {
        fsp: u32,
    },
    Year,
    /// JSON validity, UUID, spatial and other types: the server decides (strict mode).
    Other,
}

/// A text column's character set, as far as the encoder checks it (others: the server's call,
/// strict mode refuses what it cannot convert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Charset {
    Utf8mb4,
    /// Three bytes at most: no character beyond the Basic Multilingual Plane (no emoji).
    Utf8mb3,
    /// MariaDB's latin1 is Windows-1252.
    Latin1,
    Ascii,
    /// UCS-2 (BMP only, two bytes each), UTF-16, UTF-32.
    Ucs2,
    Utf16,
    Utf32,
    Other(String),
}

impl Charset {
    fn of(name: &str) -> Charset {
        match name.to_ascii_lowercase().as_str() {
            "utf8mb4" => Charset::Utf8mb4,
            "utf8mb3" | "utf8" => Charset::Utf8mb3,
            "latin1" => Charset::Latin1,
            "ascii" => Charset::Ascii,
            "ucs2" => Charset::Ucs2,
            "utf16" | "utf16le" => Charset::Utf16,
            "utf32" => Charset::Utf32,
            other => Charset::Other(other.to_string()),
        }
    }

    fn name(&self) -> &str {
        match self {
            Charset::Utf8mb4 => "utf8mb4",
            Charset::Utf8mb3 => "utf8mb3",
            Charset::Latin1 => "latin1",
            Charset::Ascii => "ascii",
            Charset::Ucs2 => "ucs2",
            Charset::Utf16 => "utf16",
            Charset::Utf32 => "utf32",
            Charset::Other(name) => name,
        }
    }

    /// The first character (1-based) the charset cannot hold.
    fn unrepresentable(&self, s: &str) -> Option<usize> {
        let ok: fn(char) -> bool = match self {
            Charset::Latin1 => exact::in_latin1,
            Charset::Ascii => |c| c.is_ascii(),
            Charset::Utf8mb3 | Charset::Ucs2 => |c| (c as u32) <= 0xFFFF,
            _ => return None,
        };
        // Plain ASCII fits every one of them: skip the scan.
        if s.is_ascii() {
            return None;
        }
        s.chars().position(|c| !ok(c)).map(|n| n + 1)
    }

    /// Bytes `s` takes in this charset (UTF-8's for the charsets not modelled).
    fn bytes(&self, s: &str) -> usize {
        match self {
            Charset::Latin1 | Charset::Ascii => s.chars().count(),
            Charset::Ucs2 | Charset::Utf16 => s.encode_utf16().count() * 2,
            Charset::Utf32 => s.chars().count() * 4,
            _ => s.len(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    /// `COLUMN_TYPE` as the server spells it (`decimal(10,2)`, `int(10) unsigned`).
    pub column_type: String,
    pub kind: Kind,
    /// NOT NULL, no default, not generated, not auto-increment: an insert must carry it.
    pub required: bool,
}

/// A target table's facts, aligned with the mapping's columns.
#[derive(Debug)]
pub(crate) struct TableFacts {
    pub columns: Vec<Column>,
    /// Writes go through the update-existing / insert-missing split (see `apply`): the table
    /// has another unique index an upsert could hit, or a column only an insert needs.
    pub split: bool,
}

/// Read the facts of `t` (one query per table and session).
pub(crate) async fn load(conn: &mut Conn, ep: &str, t: &TargetTable) -> Result<Arc<TableFacts>> {
    type Row = (
        String,
        String,
        String,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<String>,
        String,
        Option<String>,
        String,
    );
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_MAXIMUM_LENGTH, \
                    CHARACTER_OCTET_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, \
                    CHARACTER_SET_NAME, IS_NULLABLE, COLUMN_DEFAULT, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (&t.namespace, &t.name),
        )
        .await
        .map_err(|e| Error::mysql(ep, e))?;
    let mut all = HashMap::new();
    let mut auto = Vec::new();
    for r in rows {
        let extra = r.11.to_ascii_uppercase();
        let generated = ["GENERATED", "VIRTUAL", "PERSISTENT", "STORED"]
            .iter()
            .any(|g| extra.contains(g));
        if extra.contains("AUTO_INCREMENT") {
            auto.push(r.0.to_lowercase());
        }
        let required =
            r.9 == "NO" && r.10.is_none() && !generated && !extra.contains("AUTO_INCREMENT");
        let kind = kind(&r.1, &r.2, r.3, r.4, r.5, r.6, r.7, r.8.unwrap_or_default());
        all.insert(
            r.0.to_lowercase(),
            Column {
                name: r.0,
                column_type: r.2,
                kind,
                required,
            },
        );
    }
    let mut columns = Vec::with_capacity(t.columns.len());
    for c in &t.columns {
        let Some(col) = all.get(&c.to_lowercase()) else {
            return Err(Error::setup(
                ep,
                format!("column '{c}' of {t} does not exist"),
                "fix the mapping or the table, then restart",
            ));
        };
        columns.push(col.clone());
    }
    let mapped = |name: &str| t.columns.iter().any(|c| c.eq_ignore_ascii_case(name));
    let needs_insert = all.values().any(|c| c.required && !mapped(&c.name));
    let other_unique = other_unique_index(conn, ep, t, &auto).await?;
    if needs_insert || other_unique {
        tracing::debug!(endpoint = ep, table = %t, needs_insert, other_unique, "writes update existing rows and insert missing ones separately");
    }
    Ok(Arc::new(TableFacts {
        columns,
        split: needs_insert || other_unique,
    }))
}

/// Has `t` a unique index other than the mapping's key (an unmapped auto-increment column
/// alone never collides)?
async fn other_unique_index(
    conn: &mut Conn,
    ep: &str,
    t: &TargetTable,
    auto: &[String],
) -> Result<bool> {
    let idx: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (&t.namespace, &t.name),
        )
        .await
        .map_err(|e| Error::mysql(ep, e))?;
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    for (index, column) in idx {
        match keys.last_mut() {
            Some((name, cols)) if *name == index => cols.push(column.to_lowercase()),
            _ => keys.push((index, vec![column.to_lowercase()])),
        }
    }
    let key: Vec<String> = t.key.iter().map(|&i| t.columns[i].to_lowercase()).collect();
    let mapped = |c: &String| t.columns.iter().any(|m| m.eq_ignore_ascii_case(c));
    Ok(keys.iter().any(|(_, cols)| {
        let is_key = cols.len() == key.len() && cols.iter().all(|c| key.contains(c));
        let lone_auto = cols.len() == 1 && auto.contains(&cols[0]) && !mapped(&cols[0]);
        !is_key && !lone_auto
    }))
}

#[allow(clippy::too_many_arguments)]
fn kind(
    data_type: &str,
    column_type: &str,
    max_chars: Option<u64>,
    max_bytes: Option<u64>,
    precision: Option<u64>,
    scale: Option<u64>,
    fsp: Option<u64>,
    charset: String,
) -> Kind {
    let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
    let fsp = fsp.unwrap_or(0) as u32;
    match data_type.to_ascii_lowercase().as_str() {
        "tinyint" => Kind::Int { bits: 8, unsigned },
        "smallint" => Kind::Int { bits: 16, unsigned },
        "mediumint" => Kind::Int { bits: 24, unsigned },
        "int" | "integer" => Kind::Int { bits: 32, unsigned },
        "bigint" => Kind::Int { bits: 64, unsigned },
        "decimal" | "numeric" => Kind::Decimal {
            precision: precision.unwrap_or(65) as u32,
            scale: scale.unwrap_or(0) as u32,
            unsigned,
        },
        "float" => Kind::Float { single: true },
        "double" | "real" => Kind::Float { single: false },
        "char" | "varchar" => Kind::Text {
            max_chars,
            max_bytes: None,
            charset: Charset::of(&charset),
            fixed: data_type.eq_ignore_ascii_case("char"),
        },
        "tinytext" | "text" | "mediumtext" | "longtext" => Kind::Text {
            max_chars: None,
            max_bytes,
            charset: Charset::of(&charset),
            fixed: false,
        },
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Kind::Binary {
            max_bytes: max_bytes.unwrap_or(u64::MAX),
            fixed: data_type.eq_ignore_ascii_case("binary"),
        },
        "bit" => Kind::Bit {
            width: precision.unwrap_or(1) as u32,
        },
        "enum" => Kind::Enum(members(column_type)),
        "set" => Kind::Set(members(column_type)),
        "date" => Kind::Date,
        "datetime" => Kind::DateTime { fsp },
        "timestamp" => Kind::Timestamp { fsp },
        "time" => Kind::Time { fsp },
        "year" => Kind::Year,
        _ => Kind::Other,
    }
}

/// The members of `enum('a','b''c')` / `set(...)`.
fn members(column_type: &str) -> Vec<String> {
    let inner = column_type
        .find('(')
        .and_then(|a| column_type.rfind(')').map(|b| &column_type[a + 1..b]))
        .unwrap_or("");
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = inner.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '\'') => quoted = true,
            (true, '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
                cur.push('\'');
            }
            (true, '\'') => {
                quoted = false;
                out.push(std::mem::take(&mut cur));
            }
            (true, c) => cur.push(c),
            (false, _) => {}
        }
    }
    out
}

impl Column {
    /// The value to send for `v`, or why the column cannot hold it exactly (never quoting it).
    pub fn encode(&self, v: &Value) -> std::result::Result<My, String> {
        if v.is_null() {
            return Ok(My::NULL);
        }
        self.encode_value(v)
            .map_err(|why| format!("column '{}' {}: {why}", self.name, self.column_type))
    }

    fn encode_value(&self, v: &Value) -> std::result::Result<My, String> {
        match &self.kind {
            Kind::Int { bits, unsigned } => {
                let i = integer(v)?;
                exact::fits_int(i, *bits, *unsigned)?;
                Ok(int_value(i))
            }
            Kind::Decimal {
                precision,
                scale,
                unsigned,
            } => {
                let text = decimal_text(v)?;
                exact::fits_decimal(&text, *precision, *scale, *unsigned)?;
                Ok(My::Bytes(text.into_bytes()))
            }
            Kind::Float { single } => float(v, *single).map(My::Double),
            Kind::Text {
                max_chars,
                max_bytes,
                charset,
                fixed,
            } => {
                let s = text(v)?;
                check_text(&s, *max_chars, *max_bytes, charset, *fixed)?;
                Ok(My::Bytes(s.into_bytes()))
            }
            Kind::Binary { max_bytes, fixed } => {
                let b = match v {
                    Value::Bytes(b) => b.clone(),
                    other => text(other)?.into_bytes(),
                };
                if b.len() as u64 > *max_bytes {
                    return Err(format!("{} bytes, the column keeps {max_bytes}", b.len()));
                }
                if *fixed && (b.len() as u64) < *max_bytes {
                    return Err(format!(
                        "{} bytes; the column pads shorter values to {max_bytes} with zero bytes",
                        b.len()
                    ));
                }
                Ok(My::Bytes(b))
            }
            Kind::Bit { width } => bits(v, *width).map(My::UInt),
            Kind::Enum(members) => {
                let s = text(v)?;
                if !members.contains(&s) {
                    return Err("not one of the column's members".into());
                }
                Ok(My::Bytes(s.into_bytes()))
            }
            Kind::Set(members) => {
                let s = text(v)?;
                check_set(&s, members)?;
                Ok(My::Bytes(s.into_bytes()))
            }
            Kind::Date => date(v),
            Kind::DateTime { fsp } => datetime(v, *fsp, false),
            Kind::Timestamp { fsp } => datetime(v, *fsp, true),
            Kind::Time { fsp } => match v {
                Value::Time(t) => {
                    fraction_fits(t.nanosecond(), *fsp)?;
                    Ok(super::to_mysql(v))
                }
                _ => Ok(super::to_mysql(v)),
            },
            Kind::Year => {
                let i = integer(v)?;
                if i != 0 && !(1901..=2155).contains(&i) {
                    return Err("out of range 1901..=2155".into());
                }
                Ok(int_value(i))
            }
            Kind::Other => Ok(super::to_mysql(v)),
        }
    }

    /// The text `LOAD DATA` reads back as the value this encoder sends, or None when the value
    /// is refused or only the binary protocol carries it (the run is then upserted, where the
    /// refusal is isolated to its row).
    pub fn load_text(&self, v: &Value) -> Option<Option<Vec<u8>>> {
        if matches!(self.kind, Kind::Bit { .. }) && !v.is_null() {
            // Bits travel by number: LOAD DATA would read digits as the characters' bytes.
            return None;
        }
        match self.encode(v).ok()? {
            My::NULL => Some(None),
            My::Bytes(b) => Some(Some(b)),
            My::Int(i) => Some(Some(i.to_string().into_bytes())),
            My::UInt(u) => Some(Some(u.to_string().into_bytes())),
            _ => super::apply::load_text(v),
        }
    }
}

fn int_value(i: i128) -> My {
    match i64::try_from(i) {
        Ok(i) => My::Int(i),
        Err(_) => My::UInt(i as u64),
    }
}

fn integer(v: &Value) -> std::result::Result<i128, String> {
    match v {
        Value::Int(i) => Ok(*i as i128),
        Value::UInt(u) => Ok(*u as i128),
        Value::Bool(b) => Ok(*b as i128),
        Value::Float(f) => exact::float_integer(*f).ok_or_else(|| "not an integer".into()),
        Value::Decimal(s) | Value::Text(s) => exact::digits(s)
            .and_then(|d| d.integer())
            .ok_or_else(|| format!("a {} value that is not an integer", v.kind())),
        other => Err(format!("a {} value cannot be written here", other.kind())),
    }
}

fn decimal_text(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::Decimal(s) | Value::Text(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::UInt(u) => Ok(u.to_string()),
        Value::Bool(b) => Ok((*b as u8).to_string()),
        // Its shortest round-trip digits: what the source shows, and read back as the same float.
        Value::Float(f) if f.is_finite() => Ok(f.to_string()),
        Value::Float(_) => Err("not a finite number".into()),
        other => Err(format!("a {} value cannot be written here", other.kind())),
    }
}

fn float(v: &Value, single: bool) -> std::result::Result<f64, String> {
    let f = match v {
        Value::Float(f) => *f,
        Value::Int(_) | Value::UInt(_) | Value::Bool(_) => {
            exact::exact_f64(integer(v)?).ok_or("an integer a float cannot hold exactly")?
        }
        Value::Decimal(s) | Value::Text(s) => {
            let f: f64 = s
                .parse()
                .map_err(|_| format!("a {} value that is not a number", v.kind()))?;
            if !exact::same_number(&f.to_string(), s) {
                return Err("more digits than a float holds".into());
            }
            f
        }
        other => return Err(format!("a {} value cannot be written here", other.kind())),
    };
    if !f.is_finite() {
        return Err("not a finite number".into());
    }
    if single && !exact::fits_f32(f) {
        return Err("more digits than a single-precision float holds".into());
    }
    Ok(f)
}

fn text(v: &Value) -> std::result::Result<String, String> {
    Ok(match v {
        Value::Text(s) | Value::Json(s) | Value::Decimal(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Bool(b) => (*b as u8).to_string(),
        Value::Float(f) if f.is_finite() => f.to_string(),
        Value::Uuid(u) => u.hyphenated().to_string(),
        Value::Date(d) => iso::date(d),
        Value::Time(t) => iso::time(t),
        Value::Timestamp(ts) => iso::datetime(ts),
        Value::TimestampTz(ts) => iso::datetime(&ts.naive_utc()),
        Value::Bytes(b) => {
            String::from_utf8(b.clone()).map_err(|_| "bytes that are not UTF-8 text")?
        }
        other => return Err(format!("a {} value cannot be written here", other.kind())),
    })
}

fn check_text(
    s: &str,
    max_chars: Option<u64>,
    max_bytes: Option<u64>,
    charset: &Charset,
    fixed: bool,
) -> std::result::Result<(), String> {
    if let Some(n) = charset.unrepresentable(s) {
        return Err(format!(
            "character {n} is not representable in charset {}",
            charset.name()
        ));
    }
    // A string has at least as many UTF-8 bytes as characters: count only when it may not fit.
    if let Some(max) = max_chars.filter(|&max| s.len() as u64 > max) {
        let n = s.chars().count() as u64;
        if n > max {
            return Err(format!("{n} characters, the column keeps {max}"));
        }
    }
    if let Some(max) = max_bytes.filter(|&max| s.len() as u64 > max / 4) {
        let n = charset.bytes(s) as u64;
        if n > max {
            return Err(format!(
                "{n} bytes in {}, the column keeps {max}",
                charset.name()
            ));
        }
    }
    if fixed && s.ends_with(' ') {
        return Err("trailing spaces, which a CHAR column drops".into());
    }
    Ok(())
}

/// A SET value is read back with its members in definition order, each once: anything else
/// would come back changed.
fn check_set(s: &str, members: &[String]) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    let mut last = None;
    for part in s.split(',') {
        let Some(i) = members.iter().position(|m| m == part) else {
            return Err("not made of the column's members".into());
        };
        if last.is_some_and(|l| i <= l) {
            return Err("members repeated or not in the column's order".into());
        }
        last = Some(i);
    }
    Ok(())
}

fn bits(v: &Value, width: u32) -> std::result::Result<u64, String> {
    let n: u128 = match v {
        Value::Text(s) if !s.is_empty() && s.bytes().all(|b| b == b'0' || b == b'1') => {
            let significant = s.trim_start_matches('0');
            if significant.len() > width as usize {
                return Err(format!(
                    "{} bits, the column keeps {width}",
                    significant.len()
                ));
            }
            u128::from_str_radix(
                if significant.is_empty() {
                    "0"
                } else {
                    significant
                },
                2,
            )
            .map_err(|_| "not a bit string")?
        }
        Value::Bytes(b) if b.len() <= 8 => b.iter().fold(0u128, |n, x| n << 8 | *x as u128),
        Value::Text(_) | Value::Bytes(_) => return Err("not a bit string".into()),
        other => u128::try_from(integer(other)?).map_err(|_| "negative, a bit string is not")?,
    };
    if width < 64 && n >> width != 0 || n > u64::MAX as u128 {
        return Err(format!("more than {width} bits"));
    }
    Ok(n as u64)
}

fn fraction_fits(nanos: u32, fsp: u32) -> std::result::Result<(), String> {
    let need = exact::second_digits(nanos % 1_000_000_000);
    if need > fsp {
        return Err(format!(
            "{need} fractional second digits, the column keeps {fsp}"
        ));
    }
    Ok(())
}

fn date(v: &Value) -> std::result::Result<My, String> {
    let d = match v {
        Value::Date(d) => *d,
        Value::Timestamp(ts) => midnight(ts)?,
        Value::TimestampTz(ts) => midnight(&ts.naive_utc())?,
        _ => return Ok(super::to_mysql(v)),
    };
    if !(1..=9999).contains(&d.year()) {
        return Err("year outside 1..=9999".into());
    }
    Ok(super::to_mysql(&Value::Date(d)))
}

fn midnight(ts: &NaiveDateTime) -> std::result::Result<chrono::NaiveDate, String> {
    if ts.time() != chrono::NaiveTime::MIN {
        return Err("a time of day, the column keeps only the date".into());
    }
    Ok(ts.date())
}

/// DATETIME, or TIMESTAMP (an instant between 1970-01-01 00:00:01 and 2038-01-19 03:14:07.999999
/// UTC; the session's time zone is UTC, so a zoneless value is read as UTC).
fn datetime(v: &Value, fsp: u32, instant: bool) -> std::result::Result<My, String> {
    let ts = match v {
        Value::Timestamp(ts) => *ts,
        Value::TimestampTz(ts) => ts.naive_utc(),
        Value::Date(d) => d.and_time(chrono::NaiveTime::MIN),
        _ => return Ok(super::to_mysql(v)),
    };
    fraction_fits(ts.nanosecond(), fsp)?;
    let year_ok = (1..=9999).contains(&ts.year());
    if !year_ok {
        return Err("year outside 1..=9999".into());
    }
    if instant {
        let secs = ts.and_utc().timestamp();
        if !(1..=2_147_483_647).contains(&secs) {
            return Err("outside 1970-01-01 00:00:01..2038-01-19 03:14:07 UTC".into());
        }
    }
    Ok(super::to_mysql(&Value::Timestamp(ts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(column_type: &str, kind: Kind) -> Column {
        Column {
            name: "c".into(),
            column_type: column_type.into(),
            kind,
            required: false,
        }
    }

    fn text_col(column_type: &str, chars: Option<u64>, bytes: Option<u64>, cs: &str) -> Column {
        col(
            column_type,
            Kind::Text {
                max_chars: chars,
                max_bytes: bytes,
                charset: Charset::of(cs),
                fixed: column_type.starts_with("char"),
            },
        )
    }

    fn dec(s: &str) -> Value {
        Value::Decimal(s.into())
    }

    #[test]
    fn kinds_from_information_schema() {
        let k = |dt, ct, p, s| kind(dt, ct, None, None, p, s, None, String::new());
        assert_eq!(
            k("int", "int(10) unsigned", Some(10), Some(0)),
            Kind::Int {
                bits: 32,
                unsigned: true
            }
        );
        assert_eq!(
            k("decimal", "decimal(10,2)", Some(10), Some(2)),
            Kind::Decimal {
                precision: 10,
                scale: 2,
                unsigned: false
            }
        );
        assert_eq!(
            members("enum('a','b''c','')"),
            vec!["a".to_string(), "b'c".into(), "".into()]
        );
        assert_eq!(k("bit", "bit(5)", Some(5), None), Kind::Bit { width: 5 });
        assert_eq!(k("geometry", "geometry", None, None), Kind::Other);
    }

    #[test]
    fn decimals_are_exact_or_refused_naming_the_column() {
        let c = col(
            "decimal(10,2)",
            Kind::Decimal {
                precision: 10,
                scale: 2,
                unsigned: false,
            },
        );
        assert_eq!(c.encode(&dec("1.50")), Ok(My::Bytes(b"1.50".to_vec())));
        assert_eq!(
            c.encode(&dec("1.005")),
            Err("column 'c' decimal(10,2): 3 fractional digits, the column keeps 2".into())
        );
        let e = c.encode(&dec("12345678.1234")).unwrap_err();
        assert!(
            e.contains("4 fractional digits") && !e.contains("12345678"),
            "{e}"
        );
        assert!(c.encode(&dec("NaN")).is_err());
        assert!(c.encode(&Value::Float(0.125)).is_err());
        assert_eq!(
            c.encode(&Value::Float(0.25)),
            Ok(My::Bytes(b"0.25".to_vec()))
        );
        assert_eq!(
            c.encode(&Value::Int(99_999_999)),
            Ok(My::Bytes(b"99999999".to_vec()))
        );
        assert!(c.encode(&Value::Int(100_000_000)).is_err());
        assert_eq!(c.encode(&Value::Null), Ok(My::NULL));
    }

    #[test]
    fn integers_by_width_and_sign() {
        let small = col(
            "smallint(6)",
            Kind::Int {
                bits: 16,
                unsigned: false,
            },
        );
        assert_eq!(small.encode(&Value::Int(-32768)), Ok(My::Int(-32768)));
        assert!(small.encode(&Value::Int(32768)).is_err());
        assert!(small.encode(&dec("1.5")).is_err());
        assert_eq!(small.encode(&dec("7.000")), Ok(My::Int(7)));
        assert!(small.encode(&Value::Date(chrono::NaiveDate::MIN)).is_err());
        let ubig = col(
            "bigint(20) unsigned",
            Kind::Int {
                bits: 64,
                unsigned: true,
            },
        );
        assert_eq!(ubig.encode(&Value::UInt(u64::MAX)), Ok(My::UInt(u64::MAX)));
        assert!(ubig.encode(&Value::Int(-1)).is_err());
        let year = col("year(4)", Kind::Year);
        assert!(year.encode(&Value::Int(1900)).is_err());
        assert_eq!(year.encode(&Value::Int(2024)), Ok(My::Int(2024)));
    }

    #[test]
    fn floats_keep_their_digits_or_are_refused() {
        let single = col("float", Kind::Float { single: true });
        let double = col("double", Kind::Float { single: false });
        assert_eq!(single.encode(&Value::Float(1.5)), Ok(My::Double(1.5)));
        assert!(single.encode(&Value::Float(0.1234567891)).is_err());
        assert_eq!(
            double.encode(&Value::Float(0.1234567891)),
            Ok(My::Double(0.1234567891))
        );
        assert!(double.encode(&Value::Float(f64::NAN)).is_err());
        assert!(double.encode(&Value::Int((1 << 53) + 1)).is_err());
        assert!(double.encode(&dec("0.10000000000000000001")).is_err());
        assert_eq!(double.encode(&dec("0.1")), Ok(My::Double(0.1)));
    }

    #[test]
    fn text_by_length_and_charset() {
        let v = text_col("varchar(5)", Some(5), None, "utf8mb4");
        assert!(v.encode(&Value::Text("ééééé".into())).is_ok());
        assert_eq!(
            v.encode(&Value::Text("🎉🎉🎉🎉🎉🎉".into())),
            Err("column 'c' varchar(5): 6 characters, the column keeps 5".into())
        );
        let latin = text_col("varchar(50)", Some(50), None, "latin1");
        assert!(latin.encode(&Value::Text("café €".into())).is_ok());
        let e = latin.encode(&Value::Text("abc مرحبا".into())).unwrap_err();
        assert!(e.contains("charset latin1") && !e.contains("مرحبا"), "{e}");
        assert!(latin.encode(&Value::Text("🎉".into())).is_err());
        let mb3 = text_col("varchar(5)", Some(5), None, "utf8mb3");
        assert!(mb3.encode(&Value::Text("🎉".into())).is_err());
        assert!(mb3.encode(&Value::Text("مرحبا".into())).is_ok());
        let tiny = text_col("tinytext", None, Some(255), "utf8mb4");
        assert!(tiny.encode(&Value::Text("é".repeat(127))).is_ok());
        assert!(tiny.encode(&Value::Text("é".repeat(128))).is_err());
        let ch = text_col("char(3)", Some(3), None, "utf8mb4");
        assert!(ch.encode(&Value::Text("a ".into())).is_err());
        assert!(ch.encode(&Value::Bytes(vec![0xff])).is_err());
    }

    #[test]
    fn bytes_bits_members_and_times() {
        let bin = col(
            "binary(4)",
            Kind::Binary {
                max_bytes: 4,
                fixed: true,
            },
        );
        assert!(bin.encode(&Value::Bytes(vec![1, 2, 3, 4])).is_ok());
        assert!(bin.encode(&Value::Bytes(vec![1, 2, 3])).is_err());
        let vb = col(
            "varbinary(3)",
            Kind::Binary {
                max_bytes: 3,
                fixed: false,
            },
        );
        assert!(vb.encode(&Value::Bytes(vec![1, 2, 3, 4])).is_err());
        let bit = col("bit(5)", Kind::Bit { width: 5 });
        assert_eq!(bit.encode(&Value::Text("010101".into())), Ok(My::UInt(21)));
        assert!(bit.encode(&Value::Text("100000".into())).is_err());
        assert!(bit.encode(&Value::Int(32)).is_err());
        assert!(bit.load_text(&Value::Int(3)).is_none());
        let en = col("enum('a','b')", Kind::Enum(vec!["a".into(), "b".into()]));
        assert!(en.encode(&Value::Text("a".into())).is_ok());
        assert!(en.encode(&Value::Text("A".into())).is_err());
        let set = col("set('x','y')", Kind::Set(vec!["x".into(), "y".into()]));
        assert!(set.encode(&Value::Text("x,y".into())).is_ok());
        assert!(set.encode(&Value::Text("".into())).is_ok());
        assert!(set.encode(&Value::Text("y,x".into())).is_err());
        let ts = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_micro_opt(3, 4, 5, 120_000)
            .unwrap();
        let dt2 = col("datetime(2)", Kind::DateTime { fsp: 2 });
        assert!(dt2.encode(&Value::Timestamp(ts)).is_ok());
        let dt0 = col("datetime", Kind::DateTime { fsp: 0 });
        assert!(dt0.encode(&Value::Timestamp(ts)).is_err());
        let stamp = col("timestamp(6)", Kind::Timestamp { fsp: 6 });
        assert!(stamp.encode(&Value::Timestamp(ts)).is_ok());
        let late = chrono::NaiveDate::from_ymd_opt(2038, 1, 20)
            .unwrap()
            .and_time(chrono::NaiveTime::MIN);
        assert!(stamp.encode(&Value::Timestamp(late)).is_err());
        let d = col("date", Kind::Date);
        assert!(d.encode(&Value::Timestamp(ts)).is_err());
        assert!(d.encode(&Value::Timestamp(late)).is_ok());
        let far = chrono::NaiveDate::from_ymd_opt(10000, 1, 1).unwrap();
        assert!(d.encode(&Value::Date(far)).is_err());
        let t0 = col("time", Kind::Time { fsp: 0 });
        assert!(t0.encode(&Value::Time(ts.time())).is_err());
    }
}
