//! Echo suppression, second line: what rowbridge last wrote to each target row, as a
//! fingerprint, so a change coming back from that row with the same content is recognised
//! even when the origin mark is missing (a MySQL 8 target, a replayed range, a session that
//! could not be tagged).
//!
//! Fingerprints compare values by a normalised text form (decimal trailing zeros dropped,
//! booleans as 0/1, instants as UTC wall-clock time), since a value comes back in the other
//! database's representation. A miss costs one extra round trip, never a wrong drop: only a
//! row whose every written column reads back equal is dropped.

use crate::mapping::{convert, TargetOp};
use crate::model::{RowImage, TableSchema, Value};

/// Store key of a row: endpoint, table and key column values.
pub(super) fn row_key(
    endpoint: &str,
    namespace: &str,
    table: &str,
    key: &[(String, Value)],
) -> String {
    let mut k = format!(
        "{endpoint}\u{0}{}.{}\u{0}",
        namespace.to_lowercase(),
        table.to_lowercase()
    );
    for (col, v) in key {
        k.push_str(&col.to_lowercase());
        k.push('=');
        k.push_str(&norm(v));
        k.push('\u{1f}');
    }
    k
}

/// Normalised text of a value for comparison across databases.
pub(crate) fn norm(v: &Value) -> String {
    match v {
        Value::Null => "\u{0}".into(),
        Value::Bool(b) => (if *b { "1" } else { "0" }).into(),
        Value::Decimal(d) if d.contains('.') => {
            d.trim_end_matches('0').trim_end_matches('.').into()
        }
        Value::TimestampTz(t) => crate::model::iso::datetime(&t.naive_utc()),
        Value::Timestamp(t) => crate::model::iso::datetime(t),
        Value::Float(f) => format!("{f:e}"),
        other => convert::text_form(other).unwrap_or_default(),
    }
}

/// FNV-1a of one value's normalised text.
pub(crate) fn value_hash(v: &Value) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in norm(v).bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a over `name=value` pairs in column-name order.
fn fingerprint(mut cols: Vec<(String, String)>) -> u64 {
    cols.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (c, v) in cols {
        for b in c.bytes().chain([b'=']).chain(v.bytes()).chain([0x1f]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// What an upsert writes: its row key, the columns written and their fingerprint.
pub(super) fn written(op: &TargetOp) -> Option<(String, Vec<String>, u64)> {
    let TargetOp::Upsert { table, row } = op else {
        return None;
    };
    let key: Vec<(String, Value)> = table
        .key
        .iter()
        .map(|&i| {
            (
                table.columns[i].clone(),
                row[i].clone().unwrap_or(Value::Null),
            )
        })
        .collect();
    let cols: Vec<(String, String)> = row
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            v.as_ref()
                .map(|v| (table.columns[i].to_lowercase(), norm(v)))
        })
        .collect();
    let names = cols.iter().map(|(c, _)| c.clone()).collect();
    Some((
        row_key(&table.endpoint, &table.namespace, &table.name, &key),
        names,
        fingerprint(cols),
    ))
}

/// The fingerprint of a source row image over `columns`, if the image has them all.
pub(super) fn image_fingerprint(
    schema: &TableSchema,
    image: &RowImage,
    columns: &[String],
) -> Option<u64> {
    let mut cols = Vec::with_capacity(columns.len());
    for name in columns {
        let i = schema
            .columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))?;
        let v = image.get(i)?.as_ref()?;
        cols.push((name.clone(), norm(v)));
    }
    Some(fingerprint(cols))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_across_representations() {
        assert_eq!(
            norm(&Value::Decimal("1.5000".into())),
            norm(&Value::Decimal("1.5".into()))
        );
        assert_eq!(
            norm(&Value::Decimal("10.000".into())),
            norm(&Value::Decimal("10".into()))
        );
        assert_eq!(norm(&Value::Bool(true)), norm(&Value::Int(1)));
        let t = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_micro_opt(3, 4, 5, 6)
            .unwrap();
        assert_eq!(
            norm(&Value::TimestampTz(t.and_utc())),
            norm(&Value::Timestamp(t))
        );
        assert_ne!(norm(&Value::Null), norm(&Value::Text(String::new())));
        let a = fingerprint(vec![("b".into(), "1".into()), ("a".into(), "2".into())]);
        let b = fingerprint(vec![("a".into(), "2".into()), ("b".into(), "1".into())]);
        assert_eq!(a, b);
        assert_ne!(
            a,
            fingerprint(vec![("a".into(), "2".into()), ("b".into(), "10".into())])
        );
    }
}
