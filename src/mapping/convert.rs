//! Per-value conversions a mapping file can ask for, applied in order to one column value.
//!
//! Every step is pure and total: any input gives a value or an `Err`, never a panic, and nothing
//! changes silently. Numbers go through exact decimal arithmetic ([`rust_decimal`], 28 digits):
//! a result that cannot be held exactly is an error, not a rounded value, unless the mapping asks
//! for rounding with [`Step::Round`]. A cast never truncates: `12.5` does not become an integer,
//! a timestamp with a time of day does not become a date, an integer above 2^53 does not become
//! a float. So a row either arrives on the target with the meaning it had on the source, or it is
//! a row error that names the step.
//!
//! Errors name the step and the kind of value ([`Value::kind`]), never the value itself: they
//! end up in logs and dead-letter reasons, where row values must not.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::model::Value;

/// Bounds of i64 and u64 as floats; both are exact powers of two.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808_u64 as f64;
const TWO_POW_64: f64 = 18_446_744_073_709_551_616_u128 as f64;

/// Digits rust_decimal keeps; also the largest scale [`Step::Round`] accepts.
const MAX_SCALE: u32 = 28;

/// One step of a column's conversion pipeline. NULL passes through every step except
/// `NullAsEmpty` and `IfNull`.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Strip leading and trailing (Unicode) whitespace from text.
    Trim,
    /// Lowercase text (Unicode rules).
    Lower,
    /// Uppercase text (Unicode rules).
    Upper,
    /// `''` -> NULL; every other value passes (whitespace is not empty: trim first).
    EmptyAsNull,
    /// NULL -> `''`; the other direction of the CRM/ERP "empty" convention.
    NullAsEmpty,
    /// Replace NULL with a constant.
    IfNull(Value),
    /// Exact product of an Int, UInt, Decimal or numeric Text (`[+-]digits[.digits]`) and the
    /// factor, as `Value::Decimal` whose scale is the sum of both scales (`1.5 * 1000000` is
    /// `1500000.0`; trailing zeros are dropped only where 28 digits would not hold them); follow
    /// with `Cast(Integer)` for an Int. A product that needs more than 28 significant digits is
    /// an error. Floats are refused: cast them to decimal first.
    Multiply(Decimal),
    /// Exact quotient, like `Multiply`; its scale is the dividend's plus the places the division
    /// needs (`10.00 / 4 = 2.50`, `1234567 / 1000000 = 1.234567`). A quotient that does not terminate within 28 digits
    /// (`1 / 3`) is an error, except when the next step is `Round(n)`: then the true quotient is
    /// rounded to `n` places, and only a quotient too close to a rounding midpoint to decide
    /// from 28 digits is an error.
    Divide(Decimal),
    /// Round half away from zero to `n` decimal places (currencies) and keep exactly `n` places:
    /// `12.3` -> `12.30`, `2.345` -> `2.35`, `-2.345` -> `-2.35`. At most 28 places.
    Round(u32),
    /// Wall-clock conversion between zones. `Timestamp` (no zone) is read as wall-clock time in
    /// `from` and becomes `Timestamp` wall-clock time in `to`. `TimestampTz` (an instant) becomes
    /// `Timestamp` wall-clock time in `to`; `from` is not used. A local time in a DST gap (it
    /// never happened in `from`) is an error; one in a DST overlap (it happened twice) takes the
    /// earlier instant. Other kinds are an error.
    TimeZone {
        from: Tz,
        to: Tz,
    },
    Cast(CastTo),
    /// Replace a value by the entry under its [`text_form`]. NULL always passes through.
    Map(ValueMap),
    /// Keep part `index` (0-based) of a text split on `separator`; a missing part is NULL, an
    /// empty part is `''`. With `rest`, the part is everything from `index` on, separators
    /// included: "Ada King Lovelace" split on " ", index 1, rest -> "King Lovelace".
    Split {
        separator: String,
        index: usize,
        rest: bool,
    },
}

/// A cast target; see `cast` for which kinds each one accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastTo {
    Text,
    Integer,
    Decimal,
    Float,
    Boolean,
    Date,
    Timestamp,
    TimestampTz,
    Json,
    Uuid,
}

/// A value map: keys are [`text_form`]s (decimals keep their scale: `12.50` is not `12.5`).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueMap {
    pub entries: HashMap<String, Value>,
    pub unmapped: Unmapped,
}

/// What a value map does with a value that has no entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Unmapped {
    /// Row error.
    Error,
    /// Write this constant instead.
    Default(Value),
    /// Keep the value as it is.
    Pass,
}

impl CastTo {
    pub fn name(self) -> &'static str {
        match self {
            CastTo::Text => "text",
            CastTo::Integer => "integer",
            CastTo::Decimal => "decimal",
            CastTo::Float => "float",
            CastTo::Boolean => "boolean",
            CastTo::Date => "date",
            CastTo::Timestamp => "timestamp",
            CastTo::TimestampTz => "timestamptz",
            CastTo::Json => "json",
            CastTo::Uuid => "uuid",
        }
    }
}

impl Step {
    /// The step as a mapping file names it, for error messages.
    pub fn name(&self) -> String {
        let name = match self {
            Step::Trim => "trim",
            Step::Lower => "lower",
            Step::Upper => "upper",
            Step::EmptyAsNull => "empty_as_null",
            Step::NullAsEmpty => "null_as_empty",
            Step::IfNull(_) => "if_null",
            Step::Multiply(_) => "multiply",
            Step::Divide(_) => "divide",
            Step::Round(_) => "round",
            Step::TimeZone { .. } => "time_zone",
            Step::Cast(to) => return format!("cast to {}", to.name()),
            Step::Map(_) => "map",
            Step::Split { .. } => "split",
        };
        name.to_string()
    }
}

/// Parse a step name with no argument ("trim", "lower", "upper", "empty_as_null",
/// "null_as_empty"); None if unknown.
pub fn simple_step(name: &str) -> Option<Step> {
    Some(match name {
        "trim" => Step::Trim,
        "lower" => Step::Lower,
        "upper" => Step::Upper,
        "empty_as_null" => Step::EmptyAsNull,
        "null_as_empty" => Step::NullAsEmpty,
        _ => return None,
    })
}

/// Parse a cast target name ("text", "integer", "decimal", "float", "boolean", "date",
/// "timestamp", "timestamptz", "json", "uuid").
pub fn cast_to(name: &str) -> Option<CastTo> {
    Some(match name {
        "text" => CastTo::Text,
        "integer" => CastTo::Integer,
        "decimal" => CastTo::Decimal,
        "float" => CastTo::Float,
        "boolean" => CastTo::Boolean,
        "date" => CastTo::Date,
        "timestamp" => CastTo::Timestamp,
        "timestamptz" => CastTo::TimestampTz,
        "json" => CastTo::Json,
        "uuid" => CastTo::Uuid,
        _ => return None,
    })
}

/// A TOML literal from a mapping file as a Value: string -> Text, integer -> Int, float ->
/// Float, bool -> Bool, and a datetime as TOML says: local date -> Date, local time -> Time,
/// local date-time -> Timestamp, offset date-time -> TimestampTz. Arrays and tables are errors.
pub fn value_from_toml(v: &toml::Value) -> Result<Value, String> {
    match v {
        toml::Value::String(s) => Ok(Value::Text(s.clone())),
        toml::Value::Integer(i) => Ok(Value::Int(*i)),
        toml::Value::Float(f) => Ok(Value::Float(*f)),
        toml::Value::Boolean(b) => Ok(Value::Bool(*b)),
        toml::Value::Datetime(dt) => datetime_from_toml(dt),
        toml::Value::Array(_) => Err("an array is not a column value".into()),
        toml::Value::Table(_) => Err("a table is not a column value".into()),
    }
}

fn datetime_from_toml(dt: &toml::value::Datetime) -> Result<Value, String> {
    let date = match dt.date {
        Some(d) => Some(
            NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())
                .ok_or("not a valid date")?,
        ),
        None => None,
    };
    let time = match dt.time {
        Some(t) => Some(
            NaiveTime::from_hms_nano_opt(
                t.hour.into(),
                t.minute.into(),
                t.second.into(),
                t.nanosecond,
            )
            .ok_or("not a valid time of day")?,
        ),
        None => None,
    };
    match (date, time, dt.offset) {
        (Some(d), None, None) => Ok(Value::Date(d)),
        (None, Some(t), None) => Ok(Value::Time(t)),
        (Some(d), Some(t), None) => Ok(Value::Timestamp(d.and_time(t))),
        (Some(d), Some(t), Some(offset)) => {
            let minutes = match offset {
                toml::value::Offset::Z => 0,
                toml::value::Offset::Custom { minutes } => minutes,
            };
            FixedOffset::east_opt(i32::from(minutes) * 60)
                .and_then(|o| o.from_local_datetime(&d.and_time(t)).single())
                .map(|x| Value::TimestampTz(x.with_timezone(&Utc)))
                .ok_or_else(|| "date-time out of range".to_string())
        }
        _ => Err("a datetime with an offset needs a date and a time".into()),
    }
}

/// Apply the steps in order. An error names the failing step and never the value.
pub fn apply(steps: &[Step], v: Value) -> Result<Value, String> {
    let mut v = v;
    let mut i = 0;
    while let Some(step) = steps.get(i) {
        i += 1;
        v = match (step, steps.get(i)) {
            (Step::Divide(d), Some(Step::Round(places))) => {
                i += 1;
                divide_rounded(&v, *d, *places).map_err(|e| format!("divide then round: {e}"))?
            }
            _ => apply_one(step, v).map_err(|e| format!("{}: {e}", step.name()))?,
        };
    }
    Ok(v)
}

fn apply_one(step: &Step, v: Value) -> Result<Value, String> {
    if v.is_null() {
        return Ok(match step {
            Step::NullAsEmpty => Value::Text(String::new()),
            Step::IfNull(c) => c.clone(),
            _ => Value::Null,
        });
    }
    match step {
        Step::Trim => text_step(v, |s| s.trim().to_string()),
        Step::Lower => text_step(v, str::to_lowercase),
        Step::Upper => text_step(v, str::to_uppercase),
        Step::EmptyAsNull => Ok(match v {
            Value::Text(s) if s.is_empty() => Value::Null,
            v => v,
        }),
        Step::NullAsEmpty | Step::IfNull(_) => Ok(v),
        Step::Multiply(m) => exact_product(decimal_of(&v)?, *m).map(decimal_value),
        Step::Divide(d) => exact_quotient(decimal_of(&v)?, *d).map(decimal_value),
        Step::Round(places) => round_to(decimal_of(&v)?, *places).map(decimal_value),
        Step::TimeZone { from, to } => time_zone(v, *from, *to),
        Step::Cast(to) => cast(v, *to),
        Step::Map(map) => map_value(v, map),
        Step::Split {
            separator,
            index,
            rest,
        } => split(v, separator, *index, *rest),
    }
}

/// Text steps apply to text, and to a UUID through its canonical text form (a UUID key often
/// becomes part of a document name).
fn text_step(v: Value, f: impl Fn(&str) -> String) -> Result<Value, String> {
    match v {
        Value::Text(s) => Ok(Value::Text(f(&s))),
        Value::Uuid(u) => Ok(Value::Text(f(&u.hyphenated().to_string()))),
        other => Err(format!("applies to text, not {}", other.kind())),
    }
}

fn map_value(v: Value, map: &ValueMap) -> Result<Value, String> {
    let key = text_form(&v).ok_or_else(|| no_text_form(&v))?;
    match (map.entries.get(&key), &map.unmapped) {
        (Some(to), _) => Ok(to.clone()),
        (None, Unmapped::Error) => Err(format!("{} value has no entry in the map", v.kind())),
        (None, Unmapped::Default(d)) => Ok(d.clone()),
        (None, Unmapped::Pass) => Ok(v),
    }
}

fn split(v: Value, separator: &str, index: usize, rest: bool) -> Result<Value, String> {
    let Value::Text(s) = v else {
        return Err(format!("applies to text, not {}", v.kind()));
    };
    if separator.is_empty() {
        return Err("the separator must not be empty".into());
    }
    let part = if rest {
        s.splitn(index.saturating_add(1), separator).nth(index)
    } else {
        s.split(separator).nth(index)
    };
    Ok(part.map_or(Value::Null, |p| Value::Text(p.to_string())))
}

/// Several source values joined into one text (NULLs skipped; all NULL -> NULL). Each value
/// contributes its [`text_form`]; one without a text form is an error.
pub fn concat(values: &[Value], separator: &str) -> Result<Value, String> {
    let mut parts = Vec::with_capacity(values.len());
    for v in values.iter().filter(|v| !v.is_null()) {
        parts.push(text_form(v).ok_or_else(|| format!("concat: {}", no_text_form(v)))?);
    }
    Ok(if parts.is_empty() {
        Value::Null
    } else {
        Value::Text(parts.join(separator))
    })
}

/// The text form used for value-map keys, `concat` and `Cast(Text)`: text, decimal and JSON as
/// they are; integers, `true`/`false` and floats (shortest round-trip digits, `NaN`,
/// `Infinity`, `-Infinity`) as Rust prints them; bytes only when valid UTF-8; dates and times
/// ISO 8601 with a space before the time and fractional seconds only when present; timestamptz
/// in UTC with `+00:00`; UUIDs hyphenated lowercase. None for NULL and non-UTF-8 bytes.
pub fn text_form(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) => s.clone(),
        Value::Float(f) => float_text(*f),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.to_string(),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::Time(t) => t.format("%H:%M:%S%.f").to_string(),
        Value::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
        Value::TimestampTz(t) => t.format("%Y-%m-%d %H:%M:%S%.f+00:00").to_string(),
        Value::Uuid(u) => u.hyphenated().to_string(),
    })
}

fn float_text(f: f64) -> String {
    match f {
        f if f.is_nan() => "NaN".into(),
        f if f == f64::INFINITY => "Infinity".into(),
        f if f == f64::NEG_INFINITY => "-Infinity".into(),
        f => f.to_string(),
    }
}

fn no_text_form(v: &Value) -> String {
    match v {
        Value::Bytes(_) => "bytes are not valid UTF-8".into(),
        other => format!("{} has no text form", other.kind()),
    }
}

// ---- exact numbers ----

/// `[+-]digits[.digits]` in canonical form: no `+`, no leading zeros, no sign on zero,
/// fractional digits (the scale) kept. Not bounded to 28 digits. None if not that syntax.
fn canonical_decimal(s: &str) -> Option<String> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    let int = match int.trim_start_matches('0') {
        "" => "0",
        i => i,
    };
    let zero = int == "0" && frac.is_none_or(|f| f.bytes().all(|b| b == b'0'));
    let mut out = String::with_capacity(s.len());
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int);
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    Some(out)
}

/// The exact number an Int, UInt, Decimal or numeric Text stands for.
fn decimal_of(v: &Value) -> Result<Decimal, String> {
    let text = match v {
        Value::Int(i) => return Ok(Decimal::from(*i)),
        Value::UInt(u) => return Ok(Decimal::from(*u)),
        Value::Decimal(s) | Value::Text(s) => s,
        Value::Float(_) => return Err("a float is not exact; cast it to decimal first".into()),
        other => return Err(format!("{} is not a number", other.kind())),
    };
    let canonical = canonical_decimal(text)
        .ok_or_else(|| format!("{} value is not a plain number", v.kind()))?;
    Decimal::from_str_exact(&canonical)
        .map_err(|_| "number has more digits than exact arithmetic holds (28)".to_string())
}

fn decimal_value(mut d: Decimal) -> Value {
    if d.is_zero() {
        d.set_sign_positive(true);
    }
    Value::Decimal(d.to_string())
}

/// `a * b` with the full scale (`0.20 * 2.5 = 0.500`), or an error when holding it would
/// drop a non-zero digit. Computed on the mantissas, so rust_decimal never rounds behind our back.
fn exact_product(a: Decimal, b: Decimal) -> Result<Decimal, String> {
    const TOO_BIG: &str = "product cannot be held exactly in 28 digits";
    let mut m = a.mantissa().checked_mul(b.mantissa()).ok_or(TOO_BIG)?;
    let mut scale = a.scale() + b.scale();
    loop {
        if let Ok(p) = Decimal::try_from_i128_with_scale(m, scale) {
            return Ok(p);
        }
        // Too many digits or too large: only trailing fractional zeros may go.
        if scale == 0 || m % 10 != 0 {
            return Err(TOO_BIG.into());
        }
        m /= 10;
        scale -= 1;
    }
}

/// `a / b` exactly, or an error. Decided by number theory, not by trusting a rounded quotient:
/// with `a = ma/10^sa`, `b = mb/10^sb` and `n/d = ma/mb` in lowest terms, the quotient
/// terminates iff `d = 2^x 5^y`, and then equals `n * 2^(k-x) * 5^(k-y) / 10^(sa+k-sb)` with
/// `k = max(x, y)`. That is also the scale of the result: the dividend's scale plus the places
/// the division needs (`10.00 / 4 = 2.50`, `1234567 / 1000000 = 1.234567`).
fn exact_quotient(a: Decimal, b: Decimal) -> Result<Decimal, String> {
    if b.is_zero() {
        return Err("division by zero".into());
    }
    let not_exact = || "quotient is not exact within 28 digits".to_string();
    let (ma, mb) = (a.mantissa().unsigned_abs(), b.mantissa().unsigned_abs());
    let g = gcd(ma, mb);
    let (n, mut d) = (ma / g, mb / g);
    let (mut twos, mut fives) = (0u32, 0u32);
    while d % 2 == 0 {
        d /= 2;
        twos += 1;
    }
    while d % 5 == 0 {
        d /= 5;
        fives += 1;
    }
    if d != 1 {
        return Err(not_exact());
    }
    let k = twos.max(fives);
    let mut num = 2u128
        .checked_pow(k - twos)
        .zip(5u128.checked_pow(k - fives))
        .and_then(|(p2, p5)| n.checked_mul(p2)?.checked_mul(p5))
        .ok_or_else(not_exact)?;
    let mut scale = i64::from(a.scale()) + i64::from(k) - i64::from(b.scale());
    if scale < 0 {
        let up = u32::try_from(-scale)
            .ok()
            .and_then(|e| 10u128.checked_pow(e));
        num = up.and_then(|f| num.checked_mul(f)).ok_or_else(not_exact)?;
        scale = 0;
    }
    while scale > i64::from(MAX_SCALE) && num % 10 == 0 {
        num /= 10;
        scale -= 1;
    }
    let signed = i128::try_from(num).map_err(|_| not_exact())?;
    let signed = if a.is_sign_negative() != b.is_sign_negative() {
        -signed
    } else {
        signed
    };
    u32::try_from(scale)
        .ok()
        .and_then(|s| Decimal::try_from_i128_with_scale(signed, s).ok())
        .ok_or_else(not_exact)
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `Divide` fused with the `Round` after it, for quotients that `exact_quotient` refuses.
/// rust_decimal's 28-digit quotient `q` lies within one unit in its last place (`ulp`) of the
/// true quotient `t`, so `t` is strictly between `q - ulp` and `q + ulp`. Rounding is monotone
/// and jumps only at midpoints, so if both bounds round to the same value, every number between
/// them does, `t` included; if they do not, a midpoint may separate `t` from `q`, and we refuse
/// rather than guess.
fn divide_rounded(v: &Value, divisor: Decimal, places: u32) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let a = decimal_of(v)?;
    match exact_quotient(a, divisor) {
        Ok(q) => return round_to(q, places).map(decimal_value),
        Err(e) if divisor.is_zero() => return Err(e),
        Err(_) => {}
    }
    let q = a
        .checked_div(divisor)
        .ok_or("quotient out of range for exact arithmetic")?;
    let ulp = Decimal::try_new(1, q.scale()).map_err(|e| e.to_string())?;
    let lo = q.checked_sub(ulp).map(|x| round_to(x, places));
    let hi = q.checked_add(ulp).map(|x| round_to(x, places));
    match (lo, hi) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo == hi => Ok(decimal_value(lo)),
        (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e),
        _ => Err("quotient is too close to a rounding midpoint to round exactly".into()),
    }
}

fn round_to(d: Decimal, places: u32) -> Result<Decimal, String> {
    if places > MAX_SCALE {
        return Err(format!("at most {MAX_SCALE} decimal places"));
    }
    let mut r = d.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(places);
    if r.scale() != places {
        return Err(format!("number too large to keep {places} decimal places"));
    }
    Ok(r)
}

// ---- time zones ----

/// Keeps a year of margin to chrono's limits, so a zone offset (under a day) cannot overflow.
fn in_tz_range(t: &NaiveDateTime) -> Result<(), String> {
    if t.year() > NaiveDate::MIN.year() && t.year() < NaiveDate::MAX.year() {
        Ok(())
    } else {
        Err("timestamp out of range for a time zone conversion".into())
    }
}

fn time_zone(v: Value, from: Tz, to: Tz) -> Result<Value, String> {
    let instant = match v {
        Value::Timestamp(t) => {
            in_tz_range(&t)?;
            match from.from_local_datetime(&t) {
                chrono::LocalResult::Single(x) => x.with_timezone(&Utc),
                chrono::LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
                chrono::LocalResult::None => {
                    return Err(format!(
                        "local time does not exist in {from} (daylight saving gap)"
                    ))
                }
            }
        }
        Value::TimestampTz(t) => t,
        other => {
            return Err(format!(
                "applies to timestamp or timestamptz, not {}",
                other.kind()
            ))
        }
    };
    in_tz_range(&instant.naive_utc())?;
    Ok(Value::Timestamp(instant.with_timezone(&to).naive_local()))
}

// ---- casts ----

/// Casting NULL gives NULL; casting to a value's own kind keeps it.
fn cast(v: Value, to: CastTo) -> Result<Value, String> {
    match to {
        CastTo::Text => text_form(&v)
            .map(Value::Text)
            .ok_or_else(|| no_text_form(&v)),
        CastTo::Integer => to_integer(&v).map(Value::Int),
        CastTo::Decimal => to_decimal_text(&v).map(Value::Decimal),
        CastTo::Float => to_float(&v).map(Value::Float),
        CastTo::Boolean => to_bool(&v).map(Value::Bool),
        CastTo::Date => to_date(v),
        CastTo::Timestamp => to_timestamp(v).map(Value::Timestamp),
        CastTo::TimestampTz => to_timestamptz(v).map(Value::TimestampTz),
        CastTo::Json => to_json(v),
        CastTo::Uuid => to_uuid(v),
    }
}

fn cannot(v: &Value) -> String {
    format!("{} cannot be cast to this type", v.kind())
}

/// Int, UInt in range, Bool (0/1), and Decimal, numeric Text or Float without a fractional
/// part. Never truncates.
fn to_integer(v: &Value) -> Result<i64, String> {
    const RANGE: &str = "number out of range for a 64-bit integer";
    let text = match v {
        Value::Int(i) => return Ok(*i),
        Value::UInt(u) => return i64::try_from(*u).map_err(|_| RANGE.into()),
        Value::Bool(b) => return Ok(i64::from(*b)),
        Value::Float(f) if !f.is_finite() => return Err("float is not finite".into()),
        Value::Float(f) if f.fract() != 0.0 => return Err("number has a fractional part".into()),
        // 2^63 is exact as f64; everything below it converts without saturating.
        Value::Float(f) if *f >= -TWO_POW_63 && *f < TWO_POW_63 => return Ok(*f as i64),
        Value::Float(_) => return Err(RANGE.into()),
        Value::Decimal(s) | Value::Text(s) => s,
        other => return Err(cannot(other)),
    };
    let canonical =
        canonical_decimal(text).ok_or_else(|| format!("{} value is not a number", v.kind()))?;
    let (int, frac) = canonical.split_once('.').unwrap_or((&canonical, ""));
    if frac.bytes().any(|b| b != b'0') {
        return Err("number has a fractional part".into());
    }
    int.parse().map_err(|_| RANGE.into())
}

/// Canonical decimal text from Int, UInt, Decimal, numeric Text, or a finite Float (its
/// shortest round-trip digits: 0.1 -> "0.1").
fn to_decimal_text(v: &Value) -> Result<String, String> {
    match v {
        Value::Int(i) => Ok(i.to_string()),
        Value::UInt(u) => Ok(u.to_string()),
        Value::Float(f) if !f.is_finite() => Err("float is not finite".into()),
        Value::Float(f) => canonical_decimal(&f.to_string()).ok_or_else(|| cannot(v)),
        Value::Decimal(s) | Value::Text(s) => {
            canonical_decimal(s).ok_or_else(|| format!("{} value is not a plain number", v.kind()))
        }
        other => Err(cannot(other)),
    }
}

/// Float only where it is exact: integers up to 2^53 in magnitude (or otherwise exactly
/// representable), decimals whose shortest float text reads back as the same number.
fn to_float(v: &Value) -> Result<f64, String> {
    const INEXACT: &str = "number cannot be held exactly as a float";
    match v {
        Value::Float(f) => Ok(*f),
        // i64 -> f64 rounds; the round trip must give the integer back, without saturation.
        Value::Int(i) => {
            let f = *i as f64;
            (f < TWO_POW_63 && f as i64 == *i)
                .then_some(f)
                .ok_or_else(|| INEXACT.into())
        }
        Value::UInt(u) => {
            let f = *u as f64;
            (f < TWO_POW_64 && f as u64 == *u)
                .then_some(f)
                .ok_or_else(|| INEXACT.into())
        }
        Value::Decimal(_) | Value::Text(_) => {
            let canonical = to_decimal_text(v)?;
            let f: f64 = canonical.parse().map_err(|_| INEXACT)?;
            let back = canonical_decimal(&f.to_string()).unwrap_or_default();
            (f.is_finite() && strip_fraction_zeros(&back) == strip_fraction_zeros(&canonical))
                .then_some(f)
                .ok_or_else(|| INEXACT.into())
        }
        other => Err(cannot(other)),
    }
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Bool; Int/UInt 0 or 1; Text true/false, t/f, yes/no, 1/0 in any case.
fn to_bool(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Int(0) | Value::UInt(0) => Ok(false),
        Value::Int(1) | Value::UInt(1) => Ok(true),
        Value::Int(_) | Value::UInt(_) => Err("integer is neither 0 nor 1".into()),
        Value::Text(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "1" => Ok(true),
            "false" | "f" | "no" | "0" => Ok(false),
            _ => Err("text is not a boolean (true/false, t/f, yes/no, 1/0)".into()),
        },
        other => Err(cannot(other)),
    }
}

/// Date; Timestamp at exactly midnight; Text `YYYY-MM-DD`.
fn to_date(v: Value) -> Result<Value, String> {
    match v {
        Value::Date(d) => Ok(Value::Date(d)),
        Value::Timestamp(t) if t.time() == NaiveTime::MIN => Ok(Value::Date(t.date())),
        Value::Timestamp(_) => {
            Err("timestamp has a time of day; only midnight becomes a date".into())
        }
        Value::TimestampTz(_) => {
            Err("timestamptz has no date without a zone; use time_zone first".into())
        }
        Value::Text(s) => NaiveDate::parse_from_str(&s, "%Y-%m-%d")
            .map(Value::Date)
            .map_err(|_| "text is not a date (YYYY-MM-DD)".into()),
        other => Err(cannot(&other)),
    }
}

/// Timestamp; Date at midnight; TimestampTz as UTC wall-clock time; Text
/// `YYYY-MM-DD HH:MM:SS[.f]` (or with `T`).
fn to_timestamp(v: Value) -> Result<NaiveDateTime, String> {
    match v {
        Value::Timestamp(t) => Ok(t),
        Value::Date(d) => Ok(d.and_time(NaiveTime::MIN)),
        Value::TimestampTz(t) => Ok(t.naive_utc()),
        Value::Text(s) => ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(&s, f).ok())
            .ok_or_else(|| "text is not a timestamp (YYYY-MM-DD HH:MM:SS)".into()),
        other => Err(cannot(&other)),
    }
}

/// TimestampTz; Timestamp read as UTC; Text with an offset (RFC 3339, or a space before the
/// time and `+HH` / `+HH:MM`).
fn to_timestamptz(v: Value) -> Result<DateTime<Utc>, String> {
    match v {
        Value::TimestampTz(t) => Ok(t),
        Value::Timestamp(t) => Ok(t.and_utc()),
        Value::Text(s) => DateTime::parse_from_rfc3339(&s)
            .or_else(|_| DateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f%#z"))
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| "text is not a timestamp with an offset (RFC 3339)".into()),
        other => Err(cannot(&other)),
    }
}

/// Json; Text that parses as JSON (kept as written).
fn to_json(v: Value) -> Result<Value, String> {
    match v {
        Value::Json(s) => Ok(Value::Json(s)),
        Value::Text(s) => match serde_json::from_str::<serde::de::IgnoredAny>(&s) {
            Ok(_) => Ok(Value::Json(s)),
            Err(_) => Err("text is not valid JSON".into()),
        },
        other => Err(cannot(&other)),
    }
}

/// Uuid; Text in any form `uuid` parses; Bytes of length 16 (MySQL `BINARY(16)`).
fn to_uuid(v: Value) -> Result<Value, String> {
    match v {
        Value::Uuid(u) => Ok(Value::Uuid(u)),
        Value::Text(s) => uuid::Uuid::parse_str(&s)
            .map(Value::Uuid)
            .map_err(|_| "text is not a UUID".into()),
        Value::Bytes(b) => uuid::Uuid::from_slice(&b)
            .map(Value::Uuid)
            .map_err(|_| "bytes are not 16 long".into()),
        other => Err(cannot(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America::New_York, Europe::Berlin, UTC};

    fn run(steps: &[Step], v: Value) -> Result<Value, String> {
        apply(steps, v)
    }
    fn run1(step: &Step, v: Value) -> Result<Value, String> {
        apply(std::slice::from_ref(step), v)
    }
    fn dec(s: &str) -> Value {
        Value::Decimal(s.into())
    }
    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }
    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }
    fn ts(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }
    fn tstz(s: &str) -> DateTime<Utc> {
        ts(s).and_utc()
    }
    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn cast_of(to: CastTo, v: Value) -> Result<Value, String> {
        apply(&[Step::Cast(to)], v)
    }
    /// The error, checked not to quote the secret input.
    fn err_without(steps: &[Step], v: Value, secret: &str) -> String {
        let e = apply(steps, v).expect_err("expected an error");
        assert!(!e.contains(secret), "error {e:?} quotes the value");
        e
    }
    fn map(entries: &[(&str, Value)], unmapped: Unmapped) -> Step {
        let entries = entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Step::Map(ValueMap { entries, unmapped })
    }
    fn split(sep: &str, index: usize, rest: bool) -> Step {
        Step::Split {
            separator: sep.into(),
            index,
            rest,
        }
    }

    #[test]
    fn trim_lower_upper_on_text() {
        assert_eq!(run(&[Step::Trim], text("  Ada \t")), Ok(text("Ada")));
        assert_eq!(run(&[Step::Lower], text("ÄDA")), Ok(text("äda")));
        assert_eq!(run(&[Step::Upper], text("straße")), Ok(text("STRASSE")));
        assert_eq!(run(&[Step::Trim, Step::Upper], text(" x ")), Ok(text("X")));
    }

    #[test]
    fn text_steps_pass_null() {
        for step in [Step::Trim, Step::Lower, Step::Upper, split(" ", 0, false)] {
            assert_eq!(run(&[step], Value::Null), Ok(Value::Null));
        }
    }

    #[test]
    fn text_steps_on_other_kinds_name_the_step() {
        let e = err_without(&[Step::Trim], Value::Int(4711), "4711");
        assert_eq!(e, "trim: applies to text, not int");
        let e = err_without(&[Step::Upper], Value::Bytes(b"abc".to_vec()), "abc");
        assert!(e.starts_with("upper:"), "{e}");
        assert!(run(&[Step::Lower], Value::Bool(true)).is_err());
    }

    #[test]
    fn text_steps_take_a_uuid_as_its_text() {
        let u: uuid::Uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".parse().unwrap();
        assert_eq!(
            run(&[Step::Upper], Value::Uuid(u)),
            Ok(text("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"))
        );
    }

    #[test]
    fn empty_as_null_and_null_as_empty() {
        assert_eq!(run(&[Step::EmptyAsNull], text("")), Ok(Value::Null));
        assert_eq!(run(&[Step::EmptyAsNull], text(" ")), Ok(text(" ")));
        assert_eq!(run(&[Step::EmptyAsNull], Value::Int(0)), Ok(Value::Int(0)));
        assert_eq!(run(&[Step::NullAsEmpty], Value::Null), Ok(text("")));
        assert_eq!(run(&[Step::NullAsEmpty], text("x")), Ok(text("x")));
        assert_eq!(
            run(&[Step::Trim, Step::EmptyAsNull], text("   ")),
            Ok(Value::Null)
        );
    }

    #[test]
    fn if_null_replaces_only_null() {
        let step = Step::IfNull(Value::Int(7));
        assert_eq!(run1(&step, Value::Null), Ok(Value::Int(7)));
        assert_eq!(run(&[step], Value::Int(1)), Ok(Value::Int(1)));
    }

    #[test]
    fn no_steps_is_identity() {
        assert_eq!(run(&[], text("x")), Ok(text("x")));
    }

    #[test]
    fn micros_to_decimal_seconds() {
        let step = Step::Divide(Decimal::from(1_000_000));
        assert_eq!(run1(&step, Value::Int(1_234_567)), Ok(dec("1.234567")));
        assert_eq!(run1(&step, Value::Int(-5)), Ok(dec("-0.000005")));
        assert_eq!(
            run(&[step], Value::UInt(u64::MAX)),
            Ok(dec("18446744073709.551615"))
        );
    }

    #[test]
    fn decimal_seconds_to_micros() {
        let steps = [
            Step::Multiply(Decimal::from(1_000_000)),
            Step::Cast(CastTo::Integer),
        ];
        assert_eq!(run(&steps, dec("1.5")), Ok(Value::Int(1_500_000)));
        assert_eq!(run(&steps[..1], dec("1.5")), Ok(dec("1500000.0")));
        let e = err_without(&steps, dec("1.0000005"), "1.0000005");
        assert!(e.contains("fractional"), "{e}");
    }

    #[test]
    fn multiply_accepts_numeric_text_and_uint() {
        let step = Step::Multiply(d("2.5"));
        assert_eq!(run1(&step, text("-4")), Ok(dec("-10.0")));
        assert_eq!(run1(&step, text("+0.20")), Ok(dec("0.500")));
        assert_eq!(run(&[step], Value::UInt(3)), Ok(dec("7.5")));
        assert_eq!(
            run(&[Step::Multiply(d("-1"))], dec("0.00")),
            Ok(dec("0.00"))
        );
    }

    #[test]
    fn multiply_refuses_non_numbers_and_floats() {
        let m = Step::Multiply(d("2"));
        let e = err_without(std::slice::from_ref(&m), text("12 apples"), "apples");
        assert_eq!(e, "multiply: text value is not a plain number");
        assert!(err_without(std::slice::from_ref(&m), text("1e5"), "1e5")
            .contains("not a plain number"));
        assert!(run1(&m, Value::Float(1.5))
            .unwrap_err()
            .contains("cast it to decimal"));
        assert!(run1(&m, Value::Bool(true)).is_err());
        assert!(run(&[m], dec("NaN")).is_err());
    }

    #[test]
    fn multiply_overflow_is_an_error() {
        let big = dec("79228162514264337593543950335");
        let e = err_without(&[Step::Multiply(d("2"))], big, "7922816251");
        assert!(e.contains("28 digits"), "{e}");
        let tiny = dec("0.0000000000000000000000000001");
        assert!(run(&[Step::Multiply(d("0.1"))], tiny).is_err());
    }

    #[test]
    fn multiply_accepts_dropped_trailing_zeros() {
        let a = dec("0.00000000000000000010");
        let r = run(&[Step::Multiply(d("1.0000000000"))], a).unwrap();
        let Value::Decimal(s) = r else { panic!() };
        assert_eq!(d(&s), d("0.0000000000000000001"));
    }

    #[test]
    fn too_many_digits_for_exact_arithmetic() {
        let long = dec("123456789012345678901234567890.5");
        let e = err_without(&[Step::Multiply(d("1"))], long, "1234567890");
        assert!(e.contains("28"), "{e}");
    }

    #[test]
    fn divide_exact_results() {
        assert_eq!(run(&[Step::Divide(d("4"))], dec("10.00")), Ok(dec("2.50")));
        assert_eq!(
            run(&[Step::Divide(d("0.25"))], Value::Int(3)),
            Ok(dec("12"))
        );
        assert_eq!(
            run(&[Step::Divide(d("-8"))], Value::Int(1)),
            Ok(dec("-0.125"))
        );
        assert_eq!(run(&[Step::Divide(d("7"))], Value::Int(0)), Ok(dec("0")));
        let q = run(&[Step::Divide(d("1024"))], Value::Int(1)).unwrap();
        assert_eq!(q, dec("0.0009765625"));
    }

    #[test]
    fn divide_not_exact_or_by_zero_is_an_error() {
        let e = err_without(&[Step::Divide(d("3"))], Value::Int(1000), "1000");
        assert_eq!(e, "divide: quotient is not exact within 28 digits");
        let e = err_without(&[Step::Divide(d("0"))], Value::Int(1000), "1000");
        assert_eq!(e, "divide: division by zero");
        let e = run(&[Step::Divide(d("0")), Step::Round(2)], Value::Int(1));
        assert_eq!(e, Err("divide then round: division by zero".into()));
        // Terminates, but only at 2^-100: beyond 28 digits.
        let two_pow_96 = dec("79228162514264337593543950336");
        assert!(run(&[Step::Divide(d("0.0001"))], two_pow_96).is_err());
    }

    #[test]
    fn divide_then_round_rounds_the_true_quotient() {
        let steps = |n: i64, p| [Step::Divide(Decimal::from(n)), Step::Round(p)];
        assert_eq!(run(&steps(3, 2), Value::Int(1)), Ok(dec("0.33")));
        assert_eq!(run(&steps(3, 2), Value::Int(2)), Ok(dec("0.67")));
        assert_eq!(run(&steps(3, 2), Value::Int(-2)), Ok(dec("-0.67")));
        assert_eq!(run(&steps(3, 0), Value::Int(100)), Ok(dec("33")));
        assert_eq!(run(&steps(8, 2), Value::Int(1)), Ok(dec("0.13")));
        assert_eq!(run(&steps(4, 3), Value::Int(1)), Ok(dec("0.250")));
        assert_eq!(run(&steps(7, 2), Value::Null), Ok(Value::Null));
        let rate = [Step::Divide(d("1.0825")), Step::Round(2)];
        assert_eq!(run(&rate, dec("100.00")), Ok(dec("92.38")));
        // 28 places cannot be decided from a 28-digit quotient.
        assert!(run(&steps(3, 28), Value::Int(1)).is_err());
    }

    /// Divide-then-round against integer arithmetic: round(a / b, n) half away from zero.
    #[test]
    fn divide_then_round_matches_integer_reference() {
        for a in -60i128..=60 {
            for b in [
                -7i128, -3, 1, 3, 6, 7, 9, 11, 12, 13, 14, 17, 19, 21, 23, 29, 31, 49,
            ] {
                for n in 0..4u32 {
                    let scaled = a * 10i128.pow(n);
                    let (q, r) = (scaled / b, scaled % b);
                    let away = 2 * r.abs() >= b.abs();
                    let sign = if (a < 0) != (b < 0) { -1 } else { 1 };
                    let want = Decimal::from_i128_with_scale(q + if away { sign } else { 0 }, n);
                    let steps = [Step::Divide(Decimal::from(b as i64)), Step::Round(n)];
                    let got = run(&steps, Value::Int(a as i64)).unwrap();
                    assert_eq!(got, decimal_value(want), "{a} / {b} to {n} places");
                }
            }
        }
    }

    #[test]
    fn round_half_away_from_zero() {
        let r = Step::Round(2);
        assert_eq!(run1(&r, dec("2.345")), Ok(dec("2.35")));
        assert_eq!(run1(&r, dec("-2.345")), Ok(dec("-2.35")));
        assert_eq!(run1(&r, dec("2.344999")), Ok(dec("2.34")));
        assert_eq!(run1(&r, dec("0.005")), Ok(dec("0.01")));
        assert_eq!(run(&[Step::Round(0)], dec("-0.5")), Ok(dec("-1")));
        assert_eq!(run(&[r], text("1.125")), Ok(dec("1.13")));
    }

    #[test]
    fn round_keeps_exactly_n_places() {
        let r = Step::Round(2);
        assert_eq!(run1(&r, dec("12.3")), Ok(dec("12.30")));
        assert_eq!(run1(&r, Value::Int(12)), Ok(dec("12.00")));
        assert_eq!(run1(&r, dec("-0.001")), Ok(dec("0.00")));
        assert_eq!(run(&[r], Value::Null), Ok(Value::Null));
        assert!(run(&[Step::Round(29)], dec("1")).is_err());
        let big = dec("79228162514264337593543950335");
        assert!(err_without(&[Step::Round(2)], big, "79228").contains("too large"));
    }

    #[test]
    fn time_zone_plain_conversion() {
        let berlin_to_utc = Step::TimeZone {
            from: Berlin,
            to: UTC,
        };
        let summer = Value::Timestamp(ts("2024-07-01 12:00:00"));
        assert_eq!(
            run1(&berlin_to_utc, summer.clone()),
            Ok(Value::Timestamp(ts("2024-07-01 10:00:00")))
        );
        let winter = Value::Timestamp(ts("2024-01-15 12:00:00"));
        assert_eq!(
            run(&[berlin_to_utc], winter),
            Ok(Value::Timestamp(ts("2024-01-15 11:00:00")))
        );
        let to_ny = Step::TimeZone {
            from: Berlin,
            to: New_York,
        };
        assert_eq!(
            run(&[to_ny], summer),
            Ok(Value::Timestamp(ts("2024-07-01 06:00:00")))
        );
    }

    #[test]
    fn time_zone_gap_is_an_error() {
        let step = Step::TimeZone {
            from: Berlin,
            to: UTC,
        };
        let gap = Value::Timestamp(ts("2024-03-31 02:30:00"));
        let e = err_without(&[step], gap, "02:30");
        assert!(e.starts_with("time_zone:") && e.contains("gap"), "{e}");
    }

    #[test]
    fn time_zone_overlap_takes_earlier_instant() {
        let step = Step::TimeZone {
            from: Berlin,
            to: UTC,
        };
        let overlap = Value::Timestamp(ts("2024-10-27 02:30:00"));
        // 02:30 CEST (+02:00) comes before 02:30 CET (+01:00).
        assert_eq!(
            run(&[step], overlap),
            Ok(Value::Timestamp(ts("2024-10-27 00:30:00")))
        );
    }

    #[test]
    fn time_zone_of_timestamptz_gives_wall_clock() {
        let step = Step::TimeZone {
            from: New_York,
            to: Berlin,
        };
        let instant = Value::TimestampTz(tstz("2024-10-27 00:30:00"));
        assert_eq!(
            run1(&step, instant),
            Ok(Value::Timestamp(ts("2024-10-27 02:30:00")))
        );
        let later = Value::TimestampTz(tstz("2024-10-27 01:30:00"));
        assert_eq!(
            run1(&step, later),
            Ok(Value::Timestamp(ts("2024-10-27 02:30:00")))
        );
        assert_eq!(run1(&step, Value::Null), Ok(Value::Null));
        let e = run(&[step], Value::Date(date("2024-01-01"))).unwrap_err();
        assert_eq!(
            e,
            "time_zone: applies to timestamp or timestamptz, not date"
        );
    }

    #[test]
    fn time_zone_at_chrono_limits_does_not_panic() {
        let step = Step::TimeZone {
            from: Berlin,
            to: New_York,
        };
        for t in [NaiveDateTime::MAX, NaiveDateTime::MIN] {
            assert!(run1(&step, Value::Timestamp(t)).is_err());
        }
        let max = DateTime::<Utc>::MAX_UTC;
        assert!(run(&[step], Value::TimestampTz(max)).is_err());
    }

    #[test]
    fn cast_boolean_from_integers() {
        assert_eq!(
            cast_of(CastTo::Boolean, Value::Int(0)),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            cast_of(CastTo::Boolean, Value::Int(1)),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            cast_of(CastTo::Boolean, Value::UInt(1)),
            Ok(Value::Bool(true))
        );
        let e = err_without(&[Step::Cast(CastTo::Boolean)], Value::Int(2), "2");
        assert_eq!(e, "cast to boolean: integer is neither 0 nor 1");
        assert!(cast_of(CastTo::Boolean, Value::Int(-1)).is_err());
    }

    #[test]
    fn cast_boolean_from_text() {
        for t in ["true", "TRUE", "t", "T", "yes", "Yes", "1"] {
            assert_eq!(
                cast_of(CastTo::Boolean, text(t)),
                Ok(Value::Bool(true)),
                "{t}"
            );
        }
        for t in ["false", "False", "f", "F", "no", "NO", "0"] {
            assert_eq!(
                cast_of(CastTo::Boolean, text(t)),
                Ok(Value::Bool(false)),
                "{t}"
            );
        }
        for t in ["maybe", "", " true", "2", "on"] {
            assert!(cast_of(CastTo::Boolean, text(t)).is_err(), "{t}");
        }
        let e = err_without(&[Step::Cast(CastTo::Boolean)], text("perhaps"), "perhaps");
        assert!(e.contains("not a boolean"), "{e}");
        assert!(cast_of(CastTo::Boolean, dec("1")).is_err());
    }

    #[test]
    fn cast_integer_from_decimal_never_truncates() {
        assert_eq!(cast_of(CastTo::Integer, dec("12.000")), Ok(Value::Int(12)));
        assert_eq!(cast_of(CastTo::Integer, dec("-7")), Ok(Value::Int(-7)));
        assert_eq!(cast_of(CastTo::Integer, dec("-0.0")), Ok(Value::Int(0)));
        let e = err_without(&[Step::Cast(CastTo::Integer)], dec("12.5"), "12.5");
        assert_eq!(e, "cast to integer: number has a fractional part");
        let huge = dec("9223372036854775808.00");
        assert!(err_without(&[Step::Cast(CastTo::Integer)], huge, "922337").contains("range"));
        assert_eq!(
            cast_of(CastTo::Integer, dec("-9223372036854775808")),
            Ok(Value::Int(i64::MIN))
        );
    }

    #[test]
    fn cast_integer_from_text_bool_uint_float() {
        assert_eq!(cast_of(CastTo::Integer, text("0042")), Ok(Value::Int(42)));
        assert_eq!(cast_of(CastTo::Integer, text("-17")), Ok(Value::Int(-17)));
        assert_eq!(
            cast_of(CastTo::Integer, Value::Bool(true)),
            Ok(Value::Int(1))
        );
        assert_eq!(
            cast_of(CastTo::Integer, Value::Bool(false)),
            Ok(Value::Int(0))
        );
        assert_eq!(cast_of(CastTo::Integer, Value::UInt(5)), Ok(Value::Int(5)));
        assert!(cast_of(CastTo::Integer, Value::UInt(u64::MAX)).is_err());
        assert_eq!(
            cast_of(CastTo::Integer, Value::Float(3.0)),
            Ok(Value::Int(3))
        );
        assert!(cast_of(CastTo::Integer, Value::Float(3.5)).is_err());
        assert!(cast_of(CastTo::Integer, Value::Float(f64::NAN)).is_err());
        assert!(cast_of(CastTo::Integer, Value::Float(9.3e18)).is_err());
        let e = err_without(&[Step::Cast(CastTo::Integer)], text("12a"), "12a");
        assert_eq!(e, "cast to integer: text value is not a number");
        assert!(cast_of(CastTo::Integer, text("")).is_err());
        assert!(cast_of(CastTo::Integer, Value::Date(date("2024-01-01"))).is_err());
    }

    #[test]
    fn cast_decimal_from_numbers() {
        assert_eq!(cast_of(CastTo::Decimal, Value::Int(-12)), Ok(dec("-12")));
        assert_eq!(
            cast_of(CastTo::Decimal, Value::UInt(u64::MAX)),
            Ok(dec("18446744073709551615"))
        );
        assert_eq!(cast_of(CastTo::Decimal, Value::Float(0.1)), Ok(dec("0.1")));
        assert_eq!(cast_of(CastTo::Decimal, Value::Float(-0.0)), Ok(dec("0")));
        assert_eq!(
            cast_of(CastTo::Decimal, Value::Float(1e-7)),
            Ok(dec("0.0000001"))
        );
        assert_eq!(
            cast_of(CastTo::Decimal, Value::Float(2.5e20)),
            Ok(dec("250000000000000000000"))
        );
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(cast_of(CastTo::Decimal, Value::Float(f)).is_err());
        }
        assert!(cast_of(CastTo::Decimal, Value::Bool(true)).is_err());
    }

    #[test]
    fn cast_decimal_from_text_is_canonical_and_unbounded() {
        assert_eq!(cast_of(CastTo::Decimal, text("+007.50")), Ok(dec("7.50")));
        assert_eq!(cast_of(CastTo::Decimal, text("-0.00")), Ok(dec("0.00")));
        let long = "123456789012345678901234567890.123456789";
        assert_eq!(cast_of(CastTo::Decimal, text(long)), Ok(dec(long)));
        for bad in ["", "-", ".5", "5.", "1e3", "1,5", " 1", "NaN", "--1"] {
            assert!(cast_of(CastTo::Decimal, text(bad)).is_err(), "{bad:?}");
        }
        let e = err_without(&[Step::Cast(CastTo::Decimal)], text("twelve"), "twelve");
        assert_eq!(e, "cast to decimal: text value is not a plain number");
    }

    #[test]
    fn cast_float_only_when_exact() {
        assert_eq!(
            cast_of(CastTo::Float, Value::Int(1 << 53)),
            Ok(Value::Float(9007199254740992.0))
        );
        assert!(cast_of(CastTo::Float, Value::Int((1 << 53) + 1)).is_err());
        assert!(cast_of(CastTo::Float, Value::Int(i64::MAX)).is_err());
        assert_eq!(
            cast_of(CastTo::Float, Value::Int(i64::MIN)),
            Ok(Value::Float(-TWO_POW_63))
        );
        assert!(cast_of(CastTo::Float, Value::UInt(u64::MAX)).is_err());
        assert_eq!(cast_of(CastTo::Float, dec("0.10")), Ok(Value::Float(0.1)));
        assert_eq!(cast_of(CastTo::Float, text("-2.5")), Ok(Value::Float(-2.5)));
        assert_eq!(cast_of(CastTo::Float, dec("100")), Ok(Value::Float(100.0)));
        let e = err_without(
            &[Step::Cast(CastTo::Float)],
            dec("0.1000000000000000000001"),
            "0.1000",
        );
        assert_eq!(e, "cast to float: number cannot be held exactly as a float");
        assert!(cast_of(CastTo::Float, text("1e400")).is_err());
    }

    #[test]
    fn cast_text_from_every_kind() {
        let uuid = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let nanos = ts("2024-03-31 02:30:00") + chrono::Duration::microseconds(120);
        let cases = [
            (Value::Bool(true), "true"),
            (Value::Int(-3), "-3"),
            (Value::UInt(u64::MAX), "18446744073709551615"),
            (dec("12.50"), "12.50"),
            (Value::Float(0.1), "0.1"),
            (Value::Float(f64::NAN), "NaN"),
            (Value::Bytes("grüß".as_bytes().to_vec()), "grüß"),
            (Value::Date(date("2024-03-31")), "2024-03-31"),
            (
                Value::Time(NaiveTime::from_hms_opt(7, 5, 0).unwrap()),
                "07:05:00",
            ),
            (
                Value::Timestamp(ts("2024-03-31 02:30:00")),
                "2024-03-31 02:30:00",
            ),
            (Value::Timestamp(nanos), "2024-03-31 02:30:00.000120"),
            (
                Value::TimestampTz(tstz("2024-03-31 02:30:00")),
                "2024-03-31 02:30:00+00:00",
            ),
            (Value::Json("{\"a\":1}".into()), "{\"a\":1}"),
            (Value::Uuid(uuid), "01234567-89ab-cdef-0123-456789abcdef"),
        ];
        for (v, want) in cases {
            assert_eq!(cast_of(CastTo::Text, v), Ok(text(want)), "{want}");
        }
        assert_eq!(cast_of(CastTo::Text, Value::Null), Ok(Value::Null));
    }

    #[test]
    fn cast_text_of_invalid_utf8_is_an_error() {
        let e = cast_of(CastTo::Text, Value::Bytes(vec![0xff, 0xfe])).unwrap_err();
        assert_eq!(e, "cast to text: bytes are not valid UTF-8");
    }

    #[test]
    fn cast_date() {
        let midnight = Value::Timestamp(ts("2024-03-31 00:00:00"));
        assert_eq!(
            cast_of(CastTo::Date, midnight),
            Ok(Value::Date(date("2024-03-31")))
        );
        let e = err_without(
            &[Step::Cast(CastTo::Date)],
            Value::Timestamp(ts("2024-03-31 00:00:01")),
            "2024",
        );
        assert!(e.contains("time of day"), "{e}");
        assert_eq!(
            cast_of(CastTo::Date, text("2024-02-29")),
            Ok(Value::Date(date("2024-02-29")))
        );
        assert!(cast_of(CastTo::Date, text("2023-02-29")).is_err());
        assert!(cast_of(
            CastTo::Date,
            Value::TimestampTz(tstz("2024-01-01 00:00:00"))
        )
        .is_err());
        assert!(cast_of(CastTo::Date, Value::Int(20240101)).is_err());
    }

    #[test]
    fn cast_timestamp() {
        let want = Value::Timestamp(ts("2024-03-31 00:00:00"));
        assert_eq!(
            cast_of(CastTo::Timestamp, Value::Date(date("2024-03-31"))),
            Ok(want)
        );
        let tz = Value::TimestampTz(tstz("2024-03-31 02:30:00"));
        assert_eq!(
            cast_of(CastTo::Timestamp, tz),
            Ok(Value::Timestamp(ts("2024-03-31 02:30:00")))
        );
        assert_eq!(
            cast_of(CastTo::Timestamp, text("2024-03-31T02:30:00")),
            Ok(Value::Timestamp(ts("2024-03-31 02:30:00")))
        );
        let frac = ts("2024-03-31 02:30:00") + chrono::Duration::microseconds(500_000);
        assert_eq!(
            cast_of(CastTo::Timestamp, text("2024-03-31 02:30:00.5")),
            Ok(Value::Timestamp(frac))
        );
        assert!(cast_of(CastTo::Timestamp, text("2024-03-31")).is_err());
        assert!(cast_of(CastTo::Timestamp, Value::Int(0)).is_err());
    }

    #[test]
    fn cast_timestamptz() {
        let naive = Value::Timestamp(ts("2024-03-31 02:30:00"));
        let want = Value::TimestampTz(tstz("2024-03-31 02:30:00"));
        assert_eq!(cast_of(CastTo::TimestampTz, naive), Ok(want.clone()));
        assert_eq!(
            cast_of(CastTo::TimestampTz, text("2024-03-31T04:30:00+02:00")),
            Ok(want.clone())
        );
        assert_eq!(
            cast_of(CastTo::TimestampTz, text("2024-03-31 02:30:00Z")),
            Ok(want.clone())
        );
        assert_eq!(
            cast_of(CastTo::TimestampTz, text("2024-03-31 04:30:00+02")),
            Ok(want.clone())
        );
        assert_eq!(cast_of(CastTo::TimestampTz, want.clone()), Ok(want));
        assert!(cast_of(CastTo::TimestampTz, text("2024-03-31 02:30:00")).is_err());
        assert!(cast_of(CastTo::TimestampTz, Value::Date(date("2024-03-31"))).is_err());
    }

    #[test]
    fn cast_json() {
        let j = "{\"a\": [1, 2]}";
        assert_eq!(cast_of(CastTo::Json, text(j)), Ok(Value::Json(j.into())));
        assert_eq!(
            cast_of(CastTo::Json, text("42")),
            Ok(Value::Json("42".into()))
        );
        let e = err_without(&[Step::Cast(CastTo::Json)], text("{secret: 1}"), "secret");
        assert_eq!(e, "cast to json: text is not valid JSON");
        assert!(cast_of(CastTo::Json, Value::Int(1)).is_err());
    }

    #[test]
    fn cast_uuid() {
        let s = "01234567-89ab-cdef-0123-456789abcdef";
        let u = uuid::Uuid::parse_str(s).unwrap();
        assert_eq!(cast_of(CastTo::Uuid, text(s)), Ok(Value::Uuid(u)));
        assert_eq!(
            cast_of(CastTo::Uuid, text(&s.to_uppercase())),
            Ok(Value::Uuid(u))
        );
        assert_eq!(
            cast_of(CastTo::Uuid, Value::Bytes(u.as_bytes().to_vec())),
            Ok(Value::Uuid(u))
        );
        assert!(cast_of(CastTo::Uuid, Value::Bytes(vec![1, 2, 3])).is_err());
        let e = err_without(&[Step::Cast(CastTo::Uuid)], text("0123-nope"), "nope");
        assert_eq!(e, "cast to uuid: text is not a UUID");
    }

    #[test]
    fn cast_null_and_same_kind() {
        let targets = [
            CastTo::Text,
            CastTo::Integer,
            CastTo::Decimal,
            CastTo::Float,
            CastTo::Boolean,
            CastTo::Date,
            CastTo::Timestamp,
            CastTo::TimestampTz,
            CastTo::Json,
            CastTo::Uuid,
        ];
        for to in targets {
            assert_eq!(cast_of(to, Value::Null), Ok(Value::Null));
        }
        assert_eq!(cast_of(CastTo::Integer, Value::Int(5)), Ok(Value::Int(5)));
        assert_eq!(cast_of(CastTo::Decimal, dec("1.50")), Ok(dec("1.50")));
        assert_eq!(
            cast_of(CastTo::Boolean, Value::Bool(true)),
            Ok(Value::Bool(true))
        );
    }

    #[test]
    fn map_unmapped_error() {
        let m = map(&[("A", text("active"))], Unmapped::Error);
        assert_eq!(run1(&m, text("A")), Ok(text("active")));
        let e = err_without(&[m], text("Zq"), "Zq");
        assert_eq!(e, "map: text value has no entry in the map");
    }

    #[test]
    fn map_unmapped_default_and_pass() {
        let m = map(&[("A", text("active"))], Unmapped::Default(text("other")));
        assert_eq!(run1(&m, text("A")), Ok(text("active")));
        assert_eq!(run(&[m], text("B")), Ok(text("other")));
        let m = map(&[("A", text("active"))], Unmapped::Pass);
        assert_eq!(run(&[m], text("B")), Ok(text("B")));
    }

    #[test]
    fn map_keys_are_text_forms() {
        let m = map(
            &[
                ("1", text("one")),
                ("true", Value::Int(1)),
                ("12.50", text("price")),
            ],
            Unmapped::Error,
        );
        assert_eq!(run1(&m, Value::Int(1)), Ok(text("one")));
        assert_eq!(run1(&m, Value::UInt(1)), Ok(text("one")));
        assert_eq!(run1(&m, Value::Bool(true)), Ok(Value::Int(1)));
        assert_eq!(run1(&m, dec("12.50")), Ok(text("price")));
        assert!(run1(&m, dec("12.5")).is_err());
        assert_eq!(run1(&m, Value::Null), Ok(Value::Null));
        let e = run(&[m], Value::Bytes(vec![0xff])).unwrap_err();
        assert_eq!(e, "map: bytes are not valid UTF-8");
    }

    #[test]
    fn split_parts() {
        let name = text("Ada Lovelace");
        assert_eq!(run(&[split(" ", 0, false)], name.clone()), Ok(text("Ada")));
        assert_eq!(
            run(&[split(" ", 1, false)], name.clone()),
            Ok(text("Lovelace"))
        );
        assert_eq!(run(&[split(" ", 2, false)], name), Ok(Value::Null));
        assert_eq!(run(&[split(" ", 1, false)], text("Ada")), Ok(Value::Null));
        assert_eq!(run(&[split(" ", 1, false)], text("Ada ")), Ok(text("")));
        assert_eq!(
            run(&[split(", ", 1, false)], text("a, b, c")),
            Ok(text("b"))
        );
    }

    #[test]
    fn split_rest_keeps_the_separators() {
        let name = text("Ada King Lovelace");
        assert_eq!(
            run(&[split(" ", 1, true)], name.clone()),
            Ok(text("King Lovelace"))
        );
        assert_eq!(run(&[split(" ", 0, true)], name.clone()), Ok(name.clone()));
        assert_eq!(
            run(&[split(" ", 2, true)], name.clone()),
            Ok(text("Lovelace"))
        );
        assert_eq!(run(&[split(" ", 3, true)], name.clone()), Ok(Value::Null));
        assert_eq!(run(&[split(" ", usize::MAX, true)], name), Ok(Value::Null));
    }

    #[test]
    fn split_unicode_and_bad_input() {
        let v = text("Zoë→Ångström→日本");
        assert_eq!(
            run(&[split("→", 1, false)], v.clone()),
            Ok(text("Ångström"))
        );
        assert_eq!(
            run(&[split("→", 1, true)], v.clone()),
            Ok(text("Ångström→日本"))
        );
        assert_eq!(run(&[split("→", 2, false)], v.clone()), Ok(text("日本")));
        assert!(run(&[split("", 0, false)], v).is_err());
        let e = run(&[split(" ", 0, false)], Value::Int(1)).unwrap_err();
        assert_eq!(e, "split: applies to text, not int");
    }

    #[test]
    fn concat_skips_nulls() {
        let vals = [text("Ada"), Value::Null, text("Lovelace")];
        assert_eq!(concat(&vals, " "), Ok(text("Ada Lovelace")));
        assert_eq!(concat(&[Value::Null, Value::Null], " "), Ok(Value::Null));
        assert_eq!(concat(&[], " "), Ok(Value::Null));
        let mixed = [Value::Int(12), dec("3.50"), Value::Bool(false)];
        assert_eq!(concat(&mixed, "/"), Ok(text("12/3.50/false")));
        assert_eq!(concat(&[text("")], "-"), Ok(text("")));
    }

    #[test]
    fn concat_of_invalid_bytes_is_an_error() {
        let e = concat(&[text("a"), Value::Bytes(b"se\xffcret".to_vec())], " ").unwrap_err();
        assert_eq!(e, "concat: bytes are not valid UTF-8");
    }

    #[test]
    fn value_from_toml_scalars() {
        let t: toml::Table = toml::from_str(
            "s = 'x'\ni = -3\nf = 1.5\nb = true\nd = 2024-03-31\nt = 02:30:00\n\
             ts = 2024-03-31T02:30:00\ntz = 2024-03-31T04:30:00+02:00\nz = 2024-03-31T02:30:00Z\n\
             a = [1]\ntab = { k = 1 }",
        )
        .unwrap();
        let v = |k: &str| value_from_toml(&t[k]);
        assert_eq!(v("s"), Ok(text("x")));
        assert_eq!(v("i"), Ok(Value::Int(-3)));
        assert_eq!(v("f"), Ok(Value::Float(1.5)));
        assert_eq!(v("b"), Ok(Value::Bool(true)));
        assert_eq!(v("d"), Ok(Value::Date(date("2024-03-31"))));
        assert_eq!(
            v("t"),
            Ok(Value::Time(NaiveTime::from_hms_opt(2, 30, 0).unwrap()))
        );
        assert_eq!(v("ts"), Ok(Value::Timestamp(ts("2024-03-31 02:30:00"))));
        assert_eq!(v("tz"), Ok(Value::TimestampTz(tstz("2024-03-31 02:30:00"))));
        assert_eq!(v("z"), Ok(Value::TimestampTz(tstz("2024-03-31 02:30:00"))));
        assert!(v("a").is_err());
        assert!(v("tab").is_err());
    }

    #[test]
    fn step_and_cast_names() {
        assert_eq!(simple_step("trim"), Some(Step::Trim));
        assert_eq!(simple_step("lower"), Some(Step::Lower));
        assert_eq!(simple_step("upper"), Some(Step::Upper));
        assert_eq!(simple_step("empty_as_null"), Some(Step::EmptyAsNull));
        assert_eq!(simple_step("null_as_empty"), Some(Step::NullAsEmpty));
        assert_eq!(simple_step("round"), None);
        assert_eq!(simple_step("Trim"), None);
        let names = [
            "text",
            "integer",
            "decimal",
            "float",
            "boolean",
            "date",
            "timestamp",
            "timestamptz",
            "json",
            "uuid",
        ];
        for name in names {
            let to = cast_to(name).unwrap();
            assert_eq!(to.name(), name);
        }
        assert_eq!(cast_to("int"), None);
        assert_eq!(Step::Cast(CastTo::Uuid).name(), "cast to uuid");
    }

    #[test]
    fn pipeline_of_several_steps() {
        let steps = [
            Step::Trim,
            Step::EmptyAsNull,
            Step::Cast(CastTo::Decimal),
            Step::Multiply(d("100")),
            Step::Cast(CastTo::Integer),
            Step::IfNull(Value::Int(0)),
        ];
        assert_eq!(run(&steps, text(" 12.34 ")), Ok(Value::Int(1234)));
        assert_eq!(run(&steps, text("   ")), Ok(Value::Int(0)));
        let e = err_without(&steps, text(" 12.345 "), "12.345");
        assert_eq!(e, "cast to integer: number has a fractional part");
    }

    #[test]
    fn errors_never_quote_the_value() {
        let secret = "Secret-4711";
        let all = [
            Step::Multiply(d("2")),
            Step::Divide(d("3")),
            Step::Round(2),
            Step::Cast(CastTo::Integer),
            Step::Cast(CastTo::Decimal),
            Step::Cast(CastTo::Float),
            Step::Cast(CastTo::Boolean),
            Step::Cast(CastTo::Date),
            Step::Cast(CastTo::Timestamp),
            Step::Cast(CastTo::TimestampTz),
            Step::Cast(CastTo::Json),
            Step::Cast(CastTo::Uuid),
            map(&[], Unmapped::Error),
        ];
        for step in all {
            err_without(&[step], text(secret), secret);
        }
        let tz = Step::TimeZone {
            from: Berlin,
            to: UTC,
        };
        err_without(&[tz], text(secret), secret);
    }

    #[test]
    fn odd_inputs_never_panic() {
        let values = [
            Value::Null,
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::UInt(u64::MAX),
            dec("79228162514264337593543950335"),
            dec("-0.0000000000000000000000000001"),
            dec("99999999999999999999999999999999999999999.9"),
            dec(""),
            Value::Float(f64::MIN_POSITIVE),
            Value::Float(f64::MAX),
            Value::Float(f64::NAN),
            text("ß\u{0}"),
            Value::Bytes(vec![0xc3]),
            Value::Timestamp(NaiveDateTime::MAX),
            Value::TimestampTz(DateTime::<Utc>::MIN_UTC),
        ];
        let steps = [
            Step::Multiply(Decimal::MAX),
            Step::Multiply(d("0.0000000000000000000000000001")),
            Step::Divide(Decimal::MAX),
            Step::Divide(d("0.0000000000000000000000000001")),
            Step::Divide(d("3")),
            Step::Round(28),
            Step::Round(u32::MAX),
            Step::TimeZone {
                from: Berlin,
                to: New_York,
            },
            split("ß", 1, true),
        ];
        for v in &values {
            for step in &steps {
                let _ = apply(std::slice::from_ref(step), v.clone());
                let fused = [step.clone(), Step::Round(2)];
                let _ = apply(&fused, v.clone());
            }
            for name in [
                "text",
                "integer",
                "decimal",
                "float",
                "boolean",
                "date",
                "timestamp",
                "timestamptz",
                "json",
                "uuid",
            ] {
                let _ = apply(&[Step::Cast(cast_to(name).unwrap())], v.clone());
            }
        }
    }
}
