//! Statement building and batched execution for the PostgreSQL sink.
//!
//! A run (consecutive operations of one kind on one table, same present columns) becomes one
//! statement over arrays, inside a savepoint: a row error rolls back only that statement, and
//! the run is redone row by row to isolate the bad rows. Within an upsert run only the last
//! operation per key is kept, since `ON CONFLICT DO UPDATE` may not touch a row twice (the last
//! one carries the final state of every present column).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use futures_util::future::join_all;
use futures_util::{SinkExt, TryFutureExt};
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

use super::{exact, ColumnType, PgSink};
use crate::error::{Error, ErrorClass, Result};
use crate::mapping::{TargetOp, TargetTable};
use crate::model::{iso, Value};
use crate::sink::{bulk_lines, bulk_run, last_per_key, run_end, Applied, Bulk};
use crate::source::postgres::quote_ident;

/// Most rows in one statement.
const MAX_ROWS: usize = 5_000;

pub(super) async fn apply_runs(sink: &mut PgSink, ops: &[TargetOp]) -> Result<Applied> {
    let mut applied = Applied::default();
    let mut start = 0;
    while start < ops.len() {
        let end = run_end(ops, start);
        let run: Vec<usize> = (start..end).collect();
        if bulk_run(sink.bulk, &ops[start..end]) {
            if copy_guarded(sink, ops, &run).await? {
                applied.rows += run.len();
                start = end;
                continue;
            }
            sink.bulk = Bulk::Refused;
        }
        match exec_guarded(sink, ops, &run).await {
            Ok(()) => applied.rows += run.len(),
            Err(e) if e.class() == ErrorClass::Row => {
                for i in run {
                    match exec_guarded(sink, ops, &[i]).await {
                        Ok(()) => applied.rows += 1,
                        Err(e) if e.class() == ErrorClass::Row => {
                            let e = exact::blame_column(sink, &ops[i], e).await?;
                            applied.failed.push((i, e))
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
        start = end;
    }
    Ok(applied)
}

/// Bulk load a run of upserts with `COPY ... FROM STDIN` inside a savepoint. False (and
/// nothing written) when PostgreSQL refuses it: a key already there, a value it cannot take.
async fn copy_guarded(sink: &mut PgSink, ops: &[TargetOp], idx: &[usize]) -> Result<bool> {
    let table = ops[idx[0]].table().clone();
    let types = sink.types[&(table.namespace.clone(), table.name.clone())].clone();
    // A value PostgreSQL could not take: the upsert path isolates that row.
    let body = bulk_lines(&last_per_key(ops, idx), |c, v| {
        let ty = &types[&table.columns[c]];
        fits(v, ty).ok()?;
        let text = exact::target_text(v, ty).ok()?;
        Some(text.map(String::into_bytes))
    });
    let Some((present, data)) = body else {
        return Ok(false);
    };
    let cols: Vec<String> = present
        .iter()
        .map(|&i| quote_ident(&table.columns[i]))
        .collect();
    let sql = format!(
        "COPY {} ({}) FROM STDIN",
        qualified(&table),
        cols.join(", ")
    );
    let ep = sink.endpoint.clone();
    let client = &sink.conn.client;
    client
        .batch_execute("SAVEPOINT rowbridge_bulk")
        .await
        .map_err(|e| Error::pg(&ep, e))?;
    let copied = async {
        let copy = client.copy_in::<_, bytes::Bytes>(&sql).await?;
        futures_util::pin_mut!(copy);
        copy.send(bytes::Bytes::from(data)).await?;
        copy.finish().await
    }
    .await;
    match copied {
        Ok(_) => client
            .batch_execute("RELEASE SAVEPOINT rowbridge_bulk")
            .await
            .map(|_| true)
            .map_err(|e| Error::pg(&ep, e)),
        // The server said no (a duplicate key, a bad value): undo, and upsert instead.
        Err(e) if e.as_db_error().is_some() => {
            tracing::debug!(endpoint = %ep, table = %table, sqlstate = ?e.code().map(|c| c.code()), "bulk load refused; writing with upserts");
            client
                .batch_execute("ROLLBACK TO SAVEPOINT rowbridge_bulk")
                .await
                .map(|_| false)
                .map_err(|e| Error::pg(&ep, e))
        }
        Err(e) => Err(Error::pg(&ep, e)),
    }
}

/// A run ready to send: plain SQL, or a prepared statement with its parameter arrays per chunk.
enum Prepared {
    Sql(String),
    Statement(Statement, Vec<Vec<Vec<Option<String>>>>),
}

/// Execute the operations `idx` (one run) inside a savepoint. The SAVEPOINT, the run's
/// statements and the RELEASE are sent together (tokio-postgres pipelines requests that are
/// polled at once): one round trip per run instead of three or more. After a failure the server
/// refuses the rest of the pipeline, so the first error in send order is the run's own.
async fn exec_guarded(sink: &mut PgSink, ops: &[TargetOp], idx: &[usize]) -> Result<()> {
    let table = ops[idx[0]].table().clone();
    // A value PostgreSQL could not take (a row error) is found here, before anything is sent.
    let prepared = prepare_run(sink, ops, idx).await?;
    let ep = sink.endpoint.clone();
    let client = &sink.conn.client;
    let pg = |e| Error::pg(&ep, e);
    let row = |e| row_context(&ep, &table, e);
    let mut calls: Vec<Pin<Box<dyn Future<Output = Result<()>> + Send + '_>>> = Vec::new();
    calls.push(Box::pin(
        client.batch_execute("SAVEPOINT rowbridge_run").map_err(pg),
    ));
    match &prepared {
        Prepared::Sql(sql) => calls.push(Box::pin(client.batch_execute(sql).map_err(row))),
        Prepared::Statement(stmt, chunks) => {
            for arrays in chunks {
                calls.push(Box::pin(async move {
                    let params: Vec<&(dyn ToSql + Sync)> =
                        arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
                    client.execute(stmt, &params).await.map(|_| ()).map_err(row)
                }));
            }
        }
    }
    calls.push(Box::pin(
        client
            .batch_execute("RELEASE SAVEPOINT rowbridge_run")
            .map_err(pg),
    ));
    let first_error = join_all(calls).await.into_iter().find_map(|r| r.err());
    match first_error {
        None => Ok(()),
        Some(e) => {
            if e.class() == ErrorClass::Row {
                client
                    .batch_execute("ROLLBACK TO SAVEPOINT rowbridge_run")
                    .await
                    .map_err(|e| Error::pg(&ep, e))?;
            }
            Err(e)
        }
    }
}

async fn prepare_run(sink: &mut PgSink, ops: &[TargetOp], idx: &[usize]) -> Result<Prepared> {
    let first = &ops[idx[0]];
    let table = first.table().clone();
    let types = sink.types[&(table.namespace.clone(), table.name.clone())].clone();
    let ep = sink.endpoint.clone();
    let (sql, columns) = match first {
        TargetOp::Upsert { row, .. } => upsert_sql(&table, row, &types),
        TargetOp::Delete { .. } => delete_sql(&table, &types),
        TargetOp::Truncate { .. } => {
            return Ok(Prepared::Sql(format!("DELETE FROM {}", qualified(&table))));
        }
    };
    let rows: Vec<&TargetOp> = match first {
        TargetOp::Upsert { .. } => last_per_key(ops, idx),
        _ => idx.iter().map(|&i| &ops[i]).collect(),
    };
    if !sink.statements.contains_key(&sql) {
        let stmt = sink
            .conn
            .client
            .prepare(&sql)
            .await
            .map_err(|e| Error::pg(&ep, e))?;
        sink.statements.insert(sql.clone(), stmt);
    }
    let stmt = sink.statements[&sql].clone();
    let chunks = rows
        .chunks(MAX_ROWS)
        .map(|chunk| column_arrays(&table, &columns, &types, chunk))
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared::Statement(stmt, chunks))
}

fn qualified(t: &TargetTable) -> String {
    format!("{}.{}", quote_ident(&t.namespace), quote_ident(&t.name))
}

/// The statement and, for each parameter, the index of the table column it carries.
fn upsert_sql(
    t: &TargetTable,
    shape: &[Option<Value>],
    types: &HashMap<String, ColumnType>,
) -> (String, Vec<usize>) {
    let present: Vec<usize> = (0..shape.len()).filter(|&i| shape[i].is_some()).collect();
    let cols: Vec<String> = present
        .iter()
        .map(|&i| quote_ident(&t.columns[i]))
        .collect();
    let params: Vec<String> = (1..=present.len())
        .map(|n| format!("${n}::text[]"))
        .collect();
    let aliases: Vec<String> = (1..=present.len()).map(|n| format!("c{n}")).collect();
    let casts: Vec<String> = present
        .iter()
        .zip(&aliases)
        .map(|(&i, a)| format!("u.{a}::{}", types[&t.columns[i]].base))
        .collect();
    let keys: Vec<String> = t.key.iter().map(|&i| quote_ident(&t.columns[i])).collect();
    let updates: Vec<String> = present
        .iter()
        .filter(|i| !t.key.contains(i) && !t.insert_only.contains(i))
        .map(|&i| {
            let c = quote_ident(&t.columns[i]);
            format!("{c} = EXCLUDED.{c}")
        })
        .collect();
    if t.update_only {
        return (update_sql(t, &present, &casts, &params, &aliases), present);
    }
    // PostgreSQL checks NOT NULL before ON CONFLICT: with a column only an insert needs (not
    // carried by the mapping), rows that exist are updated and only missing ones inserted.
    let needs_insert = types
        .iter()
        .any(|(name, ty)| ty.required && !t.columns.contains(name));
    if needs_insert {
        return (split_sql(t, &present, &casts, &params, &aliases), present);
    }
    // A row that already holds these values is not written again: an update that changes
    // nothing would still be a new row version in the WAL, a trigger firing, and a change the
    // other flow has to look at. (Compared as text: json has no equality operator.)
    let changed: Vec<String> = present
        .iter()
        .filter(|i| !t.key.contains(i) && !t.insert_only.contains(i))
        .map(|&i| {
            let c = quote_ident(&t.columns[i]);
            format!("t.{c}::text IS DISTINCT FROM EXCLUDED.{c}::text")
        })
        .collect();
    let action = if updates.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!(
            "DO UPDATE SET {} WHERE {}",
            updates.join(", "),
            changed.join(" OR ")
        )
    };
    let sql = format!(
        "INSERT INTO {} AS t ({}) SELECT {} FROM unnest({}) AS u({}) ON CONFLICT ({}) {action}",
        qualified(t),
        cols.join(", "),
        casts.join(", "),
        params.join(", "),
        aliases.join(", "),
        keys.join(", "),
    );
    (sql, present)
}

/// One statement that updates the rows whose key exists (a data-modifying CTE) and inserts the
/// others: both parts see the same snapshot, so an updated row is not inserted again.
fn split_sql(
    t: &TargetTable,
    present: &[usize],
    casts: &[String],
    params: &[String],
    aliases: &[String],
) -> String {
    let typed: Vec<String> = casts
        .iter()
        .zip(aliases)
        .map(|(c, a)| format!("{c} AS {a}"))
        .collect();
    let mut sets = Vec::new();
    let mut conds = Vec::new();
    for (n, &i) in present.iter().enumerate() {
        let c = quote_ident(&t.columns[i]);
        if t.key.contains(&i) {
            conds.push((c, &aliases[n]));
        } else if !t.insert_only.contains(&i) {
            sets.push(format!("{c} = v.{}", aliases[n]));
        }
    }
    let matches = |alias: &str| {
        conds
            .iter()
            .map(|(c, a)| format!("{alias}.{c} = v.{a}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let update = if sets.is_empty() {
        String::new()
    } else {
        format!(
            ", up AS (UPDATE {} AS t SET {} FROM v WHERE {})",
            qualified(t),
            sets.join(", "),
            matches("t")
        )
    };
    let cols: Vec<String> = present
        .iter()
        .map(|&i| quote_ident(&t.columns[i]))
        .collect();
    let vals: Vec<String> = aliases.iter().map(|a| format!("v.{a}")).collect();
    format!(
        "WITH v AS (SELECT {} FROM unnest({}) AS u({})){update} \
         INSERT INTO {} ({}) SELECT {} FROM v WHERE NOT EXISTS (SELECT 1 FROM {} AS e WHERE {})",
        typed.join(", "),
        params.join(", "),
        aliases.join(", "),
        qualified(t),
        cols.join(", "),
        vals.join(", "),
        qualified(t),
        matches("e")
    )
}

/// `write = "update"`: update the rows that exist, insert nothing.
fn update_sql(
    t: &TargetTable,
    present: &[usize],
    casts: &[String],
    params: &[String],
    aliases: &[String],
) -> String {
    let mut sets = Vec::new();
    let mut conds = Vec::new();
    let mut changed = Vec::new();
    for (n, &i) in present.iter().enumerate() {
        let c = quote_ident(&t.columns[i]);
        if t.key.contains(&i) {
            conds.push(format!("t.{c} = {}", casts[n]));
        } else if !t.insert_only.contains(&i) {
            sets.push(format!("{c} = {}", casts[n]));
            changed.push(format!("t.{c}::text IS DISTINCT FROM ({})::text", casts[n]));
        }
    }
    if sets.is_empty() {
        // Nothing this mapping may change: a no-op that still validates the batch shape.
        sets.push(format!("{0} = t.{0}", quote_ident(&t.columns[t.key[0]])));
        changed.push("false".into());
    }
    // Rows that already hold the values are left alone (see `upsert_sql`).
    format!(
        "UPDATE {} AS t SET {} FROM unnest({}) AS u({}) WHERE {} AND ({})",
        qualified(t),
        sets.join(", "),
        params.join(", "),
        aliases.join(", "),
        conds.join(" AND "),
        changed.join(" OR ")
    )
}

fn delete_sql(t: &TargetTable, types: &HashMap<String, ColumnType>) -> (String, Vec<usize>) {
    let params: Vec<String> = (1..=t.key.len()).map(|n| format!("${n}::text[]")).collect();
    let aliases: Vec<String> = (1..=t.key.len()).map(|n| format!("k{n}")).collect();
    let conds: Vec<String> = t
        .key
        .iter()
        .zip(&aliases)
        .map(|(&i, a)| {
            format!(
                "t.{} = u.{a}::{}",
                quote_ident(&t.columns[i]),
                types[&t.columns[i]].base
            )
        })
        .collect();
    let sql = format!(
        "DELETE FROM {} AS t USING unnest({}) AS u({}) WHERE {}",
        qualified(t),
        params.join(", "),
        aliases.join(", "),
        conds.join(" AND ")
    );
    (sql, t.key.clone())
}

/// One text array per parameter column.
fn column_arrays(
    t: &TargetTable,
    columns: &[usize],
    types: &HashMap<String, ColumnType>,
    chunk: &[&TargetOp],
) -> Result<Vec<Vec<Option<String>>>> {
    let mut arrays: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(chunk.len()); columns.len()];
    for op in chunk {
        for (n, &c) in columns.iter().enumerate() {
            let v = match op {
                TargetOp::Upsert { row, .. } => row[c].as_ref().unwrap_or(&Value::Null),
                TargetOp::Delete { key, .. } => {
                    let k = t.key.iter().position(|&i| i == c).expect("key column");
                    &key[k]
                }
                TargetOp::Truncate { .. } => &Value::Null,
            };
            let ty = &types[&t.columns[c]];
            let text = fits(v, ty).and_then(|()| exact::target_text(v, ty));
            arrays[n].push(text.map_err(|why| Error::Row {
                table: format!("{}:{}", t.endpoint, t),
                key: String::new(),
                reason: format!("column '{}' {}: {why}", t.columns[c], ty.display),
            })?);
        }
    }
    Ok(arrays)
}

/// Whether the column holds `v` exactly, where PostgreSQL would alter it without an error or
/// refuse it naming no column: integer ranges, numeric precision, character length (PostgreSQL
/// cuts excess trailing spaces silently), float digits (its float input rounds), fractional
/// second digits (rounded). What PostgreSQL itself refuses with a clear error is left to it.
pub(crate) fn fits(v: &Value, ty: &ColumnType) -> std::result::Result<(), String> {
    use crate::sink::exact;
    if v.is_null() {
        return Ok(());
    }
    let (typmod, oid) = (ty.typmod, ty.oid);
    let number = |v: &Value| match v {
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Decimal(s) | Value::Text(s) => exact::digits(s).map(|_| s.clone()),
        Value::Float(f) if f.is_finite() => Some(f.to_string()),
        _ => None,
    };
    match oid {
        // int2, int4, int8
        21 | 23 | 20 => {
            let bits = match oid {
                21 => 16,
                23 => 32,
                _ => 64,
            };
            let i = number(v).and_then(|n| exact::digits(&n).and_then(|d| d.integer()));
            match i {
                Some(i) => exact::fits_int(i, bits, false),
                None if number(v).is_some() => Err("not an integer".into()),
                None => Ok(()),
            }
        }
        // numeric(p, s)
        1700 if typmod >= 4 => match number(v) {
            Some(n) => {
                let (p, s) = (((typmod - 4) >> 16) & 0xffff, (typmod - 4) & 0x7ff);
                exact::fits_decimal(&n, p as u32, s as u32, false)
            }
            None => Ok(()),
        },
        // float4, float8
        700 | 701 => {
            let f = match v {
                Value::Float(f) => *f,
                Value::Int(_) | Value::UInt(_) => {
                    let n = number(v).unwrap_or_default();
                    let i = exact::digits(&n).and_then(|d| d.integer()).unwrap_or(0);
                    exact::exact_f64(i).ok_or("an integer a float cannot hold exactly")?
                }
                Value::Decimal(s) => match s.parse::<f64>() {
                    Ok(f) if f.is_finite() && exact::same_number(&f.to_string(), s) => f,
                    Ok(f) if !f.is_finite() || exact::digits(s).is_none() => return Ok(()),
                    _ => return Err("more digits than a float holds".into()),
                },
                _ => return Ok(()),
            };
            if oid == 700 && f.is_finite() && !exact::fits_f32(f) {
                return Err("more digits than a single-precision float holds".into());
            }
            Ok(())
        }
        // varchar(n), char(n)
        1043 | 1042 if typmod >= 4 => match v {
            Value::Text(s) | Value::Json(s) | Value::Decimal(s) => {
                let (n, max) = (s.chars().count(), (typmod - 4) as usize);
                if n > max {
                    return Err(format!("{n} characters, the column keeps {max}"));
                }
                Ok(())
            }
            _ => Ok(()),
        },
        // time(p), timestamp(p), timestamptz(p)
        1083 | 1114 | 1184 if (0..6).contains(&typmod) => {
            use chrono::Timelike;
            let nanos = match v {
                Value::Time(t) => t.nanosecond(),
                Value::Timestamp(ts) => ts.nanosecond(),
                Value::TimestampTz(ts) => ts.nanosecond(),
                _ => return Ok(()),
            };
            let need = exact::second_digits(nanos % 1_000_000_000);
            if need > typmod as u32 {
                return Err(format!(
                    "{need} fractional second digits, the column keeps {typmod}"
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// PostgreSQL's text input form of a value. A decimal with more fractional digits than the
/// column's scale is refused rather than rounded.
pub(crate) fn to_text(
    v: &Value,
    numeric_scale: Option<i32>,
) -> std::result::Result<Option<String>, String> {
    Ok(Some(match v {
        Value::Null => return Ok(None),
        Value::Bool(b) => (if *b { "t" } else { "f" }).to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Decimal(d) => {
            if let (Some(scale), Some((_, frac))) = (numeric_scale, d.split_once('.')) {
                if frac.trim_end_matches('0').len() > scale.max(0) as usize {
                    return Err(format!("decimal has more than {scale} fractional digits"));
                }
            }
            d.clone()
        }
        Value::Float(f) if f.is_nan() => "NaN".to_string(),
        Value::Float(f) if f.is_infinite() => {
            (if *f > 0.0 { "Infinity" } else { "-Infinity" }).to_string()
        }
        Value::Float(f) => f.to_string(),
        Value::Text(s) | Value::Json(s) => s.clone(),
        Value::Bytes(b) => {
            let mut s = String::with_capacity(2 + b.len() * 2);
            s.push_str("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        Value::Date(d) => iso::date(d),
        Value::Time(t) => iso::time(t),
        Value::Timestamp(ts) => iso::datetime(ts),
        Value::TimestampTz(ts) => iso::datetime(&ts.naive_utc()) + "+00",
        Value::Uuid(u) => u.to_string(),
    }))
}

/// Data errors become row errors carrying SQLSTATE and message (for the dead-letter queue).
fn row_context(ep: &str, table: &TargetTable, e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) if crate::error::classify_sqlstate(db.code().code()) == ErrorClass::Row => {
            Error::Row {
                table: format!("{}:{}", table.endpoint, table),
                key: String::new(),
                reason: format!(
                    "SQLSTATE {}: {}",
                    db.code().code(),
                    exact::redact(db.message())
                ),
            }
        }
        _ => Error::pg(ep, e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn table() -> (TargetTable, HashMap<String, ColumnType>) {
        let t = TargetTable {
            endpoint: "crm".into(),
            namespace: "public".into(),
            name: "Products".into(),
            columns: vec!["id".into(), "name".into(), "price".into()],
            key: vec![0],
            update_only: false,
            insert_only: vec![],
        };
        let ty = |b: &str, s| ColumnType {
            base: b.into(),
            numeric_scale: s,
            oid: 0,
            fraction_digits: None,
            typmod: -1,
            display: b.into(),
            required: false,
        };
        let types = [
            ("id", ty("bigint", None)),
            ("name", ty("text", None)),
            ("price", ty("numeric", Some(4))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        (t, types)
    }

    #[test]
    fn upsert_statement_casts_to_base_types() {
        let (t, types) = table();
        let shape = vec![Some(Value::Int(1)), None, Some(Value::Decimal("1".into()))];
        let (sql, cols) = upsert_sql(&t, &shape, &types);
        assert_eq!(
            sql,
            "INSERT INTO \"public\".\"Products\" AS t (\"id\", \"price\") SELECT u.c1::bigint, u.c2::numeric \
             FROM unnest($1::text[], $2::text[]) AS u(c1, c2) ON CONFLICT (\"id\") DO UPDATE SET \"price\" = EXCLUDED.\"price\" \
             WHERE t.\"price\"::text IS DISTINCT FROM EXCLUDED.\"price\"::text"
        );
        assert_eq!(cols, vec![0, 2]);
        let (del, _) = delete_sql(&t, &types);
        assert!(
            del.contains("USING unnest($1::text[]) AS u(k1) WHERE t.\"id\" = u.k1::bigint"),
            "{del}"
        );
    }

    #[test]
    fn text_forms() {
        assert_eq!(
            to_text(&Value::Bytes(vec![0, 255]), None),
            Ok(Some("\\x00ff".into()))
        );
        assert_eq!(
            to_text(&Value::Float(f64::NEG_INFINITY), None),
            Ok(Some("-Infinity".into()))
        );
        assert_eq!(to_text(&Value::Null, None), Ok(None));
        assert_eq!(
            to_text(&Value::Decimal("1.230000000".into()), Some(4)),
            Ok(Some("1.230000000".into()))
        );
        assert!(to_text(&Value::Decimal("1.23456".into()), Some(4)).is_err());
        assert_eq!(
            to_text(&Value::UInt(u64::MAX), None),
            Ok(Some(u64::MAX.to_string()))
        );
    }

    fn typed(oid: u32, typmod: i32) -> ColumnType {
        ColumnType {
            base: String::new(),
            numeric_scale: None,
            oid,
            fraction_digits: None,
            typmod,
            display: String::new(),
            required: false,
        }
    }

    #[test]
    fn values_postgres_would_alter_or_refuse_unnamed_are_checked() {
        let numeric_10_2 = typed(1700, ((10 << 16) | 2) + 4);
        assert_eq!(
            fits(&Value::Decimal("99999999.99".into()), &numeric_10_2),
            Ok(())
        );
        assert_eq!(
            fits(&Value::Decimal("123456789".into()), &numeric_10_2),
            Err("9 integer digits, the column keeps 8".into())
        );
        assert!(
            fits(&Value::Decimal("NaN".into()), &numeric_10_2).is_ok(),
            "PostgreSQL's call"
        );
        let small = typed(21, -1);
        assert!(fits(&Value::Int(32767), &small).is_ok());
        assert!(fits(&Value::Int(32768), &small).is_err());
        assert!(fits(&Value::UInt(u64::MAX), &typed(20, -1)).is_err());
        assert!(fits(&Value::Decimal("4.5".into()), &typed(23, -1)).is_err());
        let varchar_3 = typed(1043, 7);
        assert!(fits(&Value::Text("🎉🎉🎉".into()), &varchar_3).is_ok());
        assert_eq!(
            fits(&Value::Text("ab   ".into()), &varchar_3),
            Err("5 characters, the column keeps 3".into()),
            "PostgreSQL would cut the spaces silently"
        );
        assert!(fits(&Value::Float(0.1234567891), &typed(700, -1)).is_err());
        assert!(fits(&Value::Float(0.1234567891), &typed(701, -1)).is_ok());
        assert!(fits(
            &Value::Decimal("0.10000000000000000001".into()),
            &typed(701, -1)
        )
        .is_err());
        let ts = chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
            .unwrap()
            .and_hms_micro_opt(0, 0, 0, 500)
            .unwrap();
        assert!(fits(&Value::Timestamp(ts), &typed(1114, 3)).is_err());
        assert!(fits(&Value::Timestamp(ts), &typed(1114, -1)).is_ok());
    }

    #[test]
    fn insert_only_columns_split_the_upsert() {
        let (t, mut types) = table();
        types.insert(
            "code".into(),
            ColumnType {
                required: true,
                ..typed(25, -1)
            },
        );
        let shape = vec![Some(Value::Int(1)), Some(Value::Text("n".into())), None];
        let (sql, _) = upsert_sql(&t, &shape, &types);
        assert_eq!(
            sql,
            "WITH v AS (SELECT u.c1::bigint AS c1, u.c2::text AS c2 FROM unnest($1::text[], $2::text[]) AS u(c1, c2)), \
             up AS (UPDATE \"public\".\"Products\" AS t SET \"name\" = v.c2 FROM v WHERE t.\"id\" = v.c1) \
             INSERT INTO \"public\".\"Products\" (\"id\", \"name\") SELECT v.c1, v.c2 FROM v \
             WHERE NOT EXISTS (SELECT 1 FROM \"public\".\"Products\" AS e WHERE e.\"id\" = v.c1)"
        );
    }

    #[test]
    fn last_upsert_per_key_wins() {
        let (t, _) = table();
        let t = Arc::new(t);
        let up = |id: i64, name: &str| TargetOp::Upsert {
            table: t.clone(),
            row: vec![
                Some(Value::Int(id)),
                Some(Value::Text(name.into())),
                Some(Value::Null),
            ],
        };
        let ops = vec![up(1, "a"), up(2, "b"), up(1, "c")];
        let kept = last_per_key(&ops, &[0, 1, 2]);
        assert_eq!(kept, vec![&ops[1], &ops[2]]);
    }
}
