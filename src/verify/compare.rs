//! Comparing a value the mapping would write with the value the target holds, by meaning.
//!
//! The sink sends values as text and the target's input functions convert them (see the
//! README, "How changes are applied"), so what the target holds is the same value in the
//! target's own form: jsonb re-orders keys and re-spaces, a `numeric(18,4)` pads 1.5 to 1.5000,
//! a DATETIME holds the UTC wall-clock time of a `timestamptz`, a `boolean` becomes
//! `TINYINT(1)` 0/1. Verify therefore compares per type, as the sink writes: JSON as parsed
//! documents, numbers as numbers, instants as instants, booleans against 0/1; text and bytes
//! exactly. Anything else falls back to the normalised text the echo tracker compares.

use crate::mapping::convert::text_form;
use crate::model::Value;
use crate::pipeline::echo::norm;

/// Whether the target value `held` is what writing `want` leaves there.
pub fn same(want: &Value, held: &Value) -> bool {
    use Value as V;
    match (want, held) {
        (V::Null, V::Null) => true,
        (V::Null, _) | (_, V::Null) => false,
        (V::Json(_), _) | (_, V::Json(_)) => same_json(want, held),
        (V::Float(a), V::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
        (V::Float(f), other) | (other, V::Float(f)) => match number(other) {
            Some(n) => n.parse::<f64>().ok() == Some(*f),
            None => false,
        },
        (V::Bool(a), V::Bool(b)) => a == b,
        (V::Bool(b), other) | (other, V::Bool(b)) => number(other).as_deref() == Some(bit(*b)),
        (V::Timestamp(a), V::TimestampTz(b)) | (V::TimestampTz(b), V::Timestamp(a)) => {
            *a == b.naive_utc()
        }
        (V::Uuid(u), V::Text(t)) | (V::Text(t), V::Uuid(u)) => {
            t.parse::<uuid::Uuid>().ok() == Some(*u)
        }
        (V::Text(a), V::Text(b)) => a == b,
        (V::Bytes(a), V::Bytes(b)) => a == b,
        _ => match (number(want), number(held)) {
            (Some(a), Some(b)) => a == b,
            _ => norm(want) == norm(held),
        },
    }
}

fn bit(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// An exact number in canonical decimal text (no trailing fraction zeros, no `-0`).
fn number(v: &Value) -> Option<String> {
    let text = match v {
        Value::Int(i) => return Some(i.to_string()),
        Value::UInt(u) => return Some(u.to_string()),
        Value::Decimal(d) => d.as_str(),
        _ => return None,
    };
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if int == "0" && frac.is_empty() {
        return Some("0".into());
    }
    Some(match frac.is_empty() {
        true => format!("{sign}{int}"),
        false => format!("{sign}{int}.{frac}"),
    })
}

/// Both sides as JSON documents (key order and whitespace free); a side that is not JSON
/// compares as text.
fn same_json(a: &Value, b: &Value) -> bool {
    let parse =
        |v: &Value| text_form(v).and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => json_eq(&x, &y),
        _ => text_form(a) == text_form(b),
    }
}

/// JSON equality with numbers compared by value (jsonb keeps `1.50` as written, MariaDB may
/// not).
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => {
            let d = |n: &serde_json::Number| number(&Value::Decimal(n.to_string()));
            x == y || x.as_f64() == y.as_f64() || d(x) == d(y)
        }
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Value {
        Value::Decimal(s.into())
    }

    #[test]
    fn json_by_meaning() {
        let a = Value::Text(r#"{"b":[1,2],"a":{"x":1.50}}"#.into());
        let b = Value::Json(r#"{"a": {"x": 1.5}, "b": [1, 2]}"#.into());
        assert!(same(&a, &b));
        assert!(!same(
            &a,
            &Value::Json(r#"{"a": {"x": 1.5}, "b": [2, 1]}"#.into())
        ));
    }

    #[test]
    fn numbers_by_value() {
        assert!(same(&dec("1.50"), &dec("1.500000000")));
        assert!(same(&Value::Int(1), &dec("1.0000")));
        assert!(same(&dec("-0.00"), &Value::Int(0)));
        assert!(!same(&dec("1.5"), &dec("1.05")));
        assert!(same(&dec("1.25"), &Value::Float(1.25)));
        assert!(same(&Value::Bool(true), &Value::Int(1)));
        assert!(!same(&Value::Bool(false), &Value::Int(1)));
    }

    #[test]
    fn instants_and_text() {
        let tz = chrono::DateTime::parse_from_rfc3339("2024-06-01T12:00:00+02:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let naive = chrono::NaiveDate::from_ymd_opt(2024, 6, 1)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap();
        assert!(same(&Value::TimestampTz(tz), &Value::Timestamp(naive)));
        assert!(!same(&Value::Text("a".into()), &Value::Text("a ".into())));
        assert!(!same(&Value::Text("A".into()), &Value::Text("a".into())));
        assert!(!same(&Value::Null, &Value::Text(String::new())));
    }
}
