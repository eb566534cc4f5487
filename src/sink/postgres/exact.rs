//! Exact or refused, on the PostgreSQL side.
//!
//! PostgreSQL takes some values by changing them without an error: a double written to `real`
//! is rounded to single precision, fraction digits beyond `timestamp(3)` / `time(0)` are
//! rounded away. [`target_text`] refuses those before anything is sent, so the row goes to the
//! dead-letter queue instead. A value PostgreSQL itself refuses comes back as an error whose
//! message often quotes the value and never names the column: [`redact`] drops the quoted value
//! and [`blame_column`] finds the column by writing each value alone (only on that error path).

use super::{apply, ColumnType, PgSink};
use crate::error::{Error, Result};
use crate::mapping::TargetOp;
use crate::model::Value;
use crate::source::postgres::quote_ident;
use chrono::Timelike;

/// The text PostgreSQL's input function gets for `v` in a column of type `ty`, or why the column
/// would not hold it exactly.
pub(crate) fn target_text(
    v: &Value,
    ty: &ColumnType,
) -> std::result::Result<Option<String>, String> {
    match v {
        // real keeps the shortest decimal form of a single-precision number: exact when that is
        // the double's own shortest form (0.1, 1.5), changed otherwise (0.123456789, 1e300).
        Value::Float(f)
            if ty.base == "real" && !f.is_nan() && (*f as f32).to_string() != f.to_string() =>
        {
            return Err("value has no exact real (single precision) form".into());
        }
        // jsonb keeps the last of duplicate keys and drops the others without a word.
        Value::Json(j) | Value::Text(j) if ty.base == "jsonb" && has_duplicate_keys(j) => {
            return Err("JSON object has duplicate keys (jsonb would keep only the last)".into());
        }
        Value::Timestamp(t) => fraction_fits(t.nanosecond(), ty)?,
        Value::TimestampTz(t) => fraction_fits(t.nanosecond(), ty)?,
        Value::Time(t) => fraction_fits(t.nanosecond(), ty)?,
        _ => {}
    }
    apply::to_text(v, ty.numeric_scale)
}

fn fraction_fits(nanos: u32, ty: &ColumnType) -> std::result::Result<(), String> {
    let Some(digits) = ty.fraction_digits.filter(|d| (0..6).contains(d)) else {
        return Ok(());
    };
    if !(nanos / 1000).is_multiple_of(10u32.pow(6 - digits as u32)) {
        return Err(format!(
            "more fraction digits than {} keeps",
            ty.base_with_digits()
        ));
    }
    Ok(())
}

/// Whether some JSON object in `text` repeats a key (invalid JSON: false, PostgreSQL says why).
fn has_duplicate_keys(text: &str) -> bool {
    use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

    /// Any JSON value whose objects never repeat a key.
    struct Unique;
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Unique, D::Error> {
            d.deserialize_any(UniqueVisitor)
        }
    }
    struct UniqueVisitor;
    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Unique, A::Error> {
            let mut keys = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !keys.insert(key) {
                    return Err(A::Error::custom("duplicate key"));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_bool<E>(self, _: bool) -> std::result::Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> std::result::Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> std::result::Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> std::result::Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> std::result::Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> std::result::Result<Unique, E> {
            Ok(Unique)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match Unique::deserialize(&mut de) {
        Ok(_) => false,
        Err(e) => e.to_string().starts_with("duplicate key"),
    }
}

impl ColumnType {
    fn base_with_digits(&self) -> String {
        match self.fraction_digits {
            Some(d) => format!("{}({d})", self.base),
            None => self.base.clone(),
        }
    }
}

/// A PostgreSQL error message without the values it quotes: what follows the first ": " goes
/// (`invalid input syntax for type integer: "x"`), and so does any other double-quoted text
/// unless it is an identifier (`column "c"`, `constraint "k"`, `type "t"`, `encoding "UTF8"`).
pub(crate) fn redact(message: &str) -> String {
    const NAMES: [&str; 7] = [
        "column",
        "relation",
        "constraint",
        "type",
        "table",
        "encoding",
        "index",
    ];
    let head = message.split(": ").next().unwrap_or_default();
    let mut out = String::with_capacity(head.len());
    let mut rest = head;
    while let Some(open) = rest.find('"') {
        let Some(len) = rest[open + 1..].find('"') else {
            break;
        };
        let before = &rest[..open];
        let quoted = &rest[open..open + len + 2];
        let named = NAMES.contains(&before.split_whitespace().last().unwrap_or_default());
        out.push_str(if named { before } else { before.trim_end() });
        if named {
            out.push_str(quoted);
        }
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    out.trim().to_string()
}

/// A single upsert PostgreSQL refused: name the column whose value it refuses (each present
/// value is written alone, inside a savepoint that is always rolled back). The error is returned
/// unchanged when no single value is to blame (a constraint over several columns).
pub(super) async fn blame_column(sink: &mut PgSink, op: &TargetOp, e: Error) -> Result<Error> {
    let (TargetOp::Upsert { row, .. }, Error::Row { table, key, reason }) = (op, &e) else {
        return Ok(e);
    };
    if reason.starts_with("column '") {
        return Ok(e);
    }
    let t = op.table();
    let types = sink.types[&(t.namespace.clone(), t.name.clone())].clone();
    let client = &sink.conn.client;
    let pg = |e| Error::pg(&sink.endpoint, e);
    for (c, v) in row.iter().enumerate() {
        let Some(v) = v else { continue };
        let ty = &types[&t.columns[c]];
        let Ok(text) = target_text(v, ty) else {
            continue;
        };
        let sql = format!(
            "INSERT INTO {}.{} ({}) VALUES ($1::text::{})",
            quote_ident(&t.namespace),
            quote_ident(&t.name),
            quote_ident(&t.columns[c]),
            ty.base
        );
        client
            .batch_execute("SAVEPOINT rowbridge_blame")
            .await
            .map_err(pg)?;
        let refused = client.execute(sql.as_str(), &[&text]).await.err();
        client
            .batch_execute("ROLLBACK TO SAVEPOINT rowbridge_blame")
            .await
            .map_err(pg)?;
        let data_error = refused
            .as_ref()
            .and_then(|r| r.as_db_error())
            .is_some_and(|db| db.code().code().starts_with("22"));
        if data_error {
            return Ok(Error::Row {
                table: table.clone(),
                key: key.clone(),
                reason: format!("column '{}': {reason}", t.columns[c]),
            });
        }
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(base: &str, digits: Option<i32>) -> ColumnType {
        ColumnType {
            base: base.into(),
            numeric_scale: None,
            oid: 0,
            fraction_digits: digits,
            typmod: -1,
            display: base.into(),
            required: false,
        }
    }

    #[test]
    fn real_takes_only_doubles_it_shows_the_same() {
        let real = ty("real", None);
        for ok in [0.1, 0.5, 1.1, -2.5e10, f64::INFINITY] {
            assert!(target_text(&Value::Float(ok), &real).is_ok(), "{ok}");
        }
        for bad in [0.123456789, 1e300, 16777217.0] {
            assert!(target_text(&Value::Float(bad), &real).is_err(), "{bad}");
        }
        let double = ty("double precision", None);
        assert!(target_text(&Value::Float(0.123456789), &double).is_ok());
    }

    #[test]
    fn jsonb_refuses_duplicate_keys_only() {
        let jsonb = ty("jsonb", None);
        let json = |s: &str| Value::Json(s.into());
        assert!(target_text(&json(r#"{"a": 1, "b": {"a": 2}}"#), &jsonb).is_ok());
        assert!(target_text(&json(r#"[{"a": 1}, {"a": 2}, 1.5e400, null]"#), &jsonb).is_ok());
        assert!(
            target_text(&json("not json"), &jsonb).is_ok(),
            "PostgreSQL says why"
        );
        let err = target_text(&json(r#"{"x": [{"a": 1, "a": 2}]}"#), &jsonb).unwrap_err();
        assert!(err.contains("duplicate keys"), "{err}");
        assert!(target_text(&json(r#"{"a": 1, "a": 2}"#), &ty("json", None)).is_ok());
    }

    #[test]
    fn fraction_digits_beyond_the_column_are_refused() {
        let ts = |us| {
            Value::Timestamp(
                chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
                    .unwrap()
                    .and_hms_micro_opt(0, 0, 0, us)
                    .unwrap(),
            )
        };
        let t3 = ty("timestamp without time zone", Some(3));
        assert!(target_text(&ts(123_000), &t3).is_ok());
        let err = target_text(&ts(123_400), &t3).unwrap_err();
        assert!(err.contains("(3)") && !err.contains("123"), "{err}");
        assert!(target_text(&ts(1), &ty("timestamp", Some(6))).is_ok());
        assert!(target_text(&ts(1), &ty("timestamp", None)).is_ok());
        assert!(target_text(&ts(500_000), &ty("timestamp", Some(0))).is_err());
    }

    #[test]
    fn redacted_messages_keep_names_and_lose_values() {
        let cases = [
            (
                "invalid input syntax for type boolean: \"2\"",
                "invalid input syntax for type boolean",
            ),
            (
                "value \"2147483648\" is out of range for type integer",
                "value is out of range for type integer",
            ),
            (
                "\"1e300\" is out of range for type real",
                "is out of range for type real",
            ),
            (
                "invalid byte sequence for encoding \"UTF8\": 0x00",
                "invalid byte sequence for encoding \"UTF8\"",
            ),
            (
                "null value in column \"name\" of relation \"items\" violates not-null constraint",
                "null value in column \"name\" of relation \"items\" violates not-null constraint",
            ),
            (
                "value too long for type character varying(10)",
                "value too long for type character varying(10)",
            ),
        ];
        for (message, want) in cases {
            assert_eq!(redact(message), want);
        }
    }
}
