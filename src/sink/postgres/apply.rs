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
        let text = exact::target_text(v, &types[&table.columns[c]]).ok()?;
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
            arrays[n].push(
                exact::target_text(v, &types[&t.columns[c]]).map_err(|reason| Error::Row {
                    table: format!("{}:{}", t.endpoint, t),
                    key: String::new(),
                    reason: format!("column '{}': {reason}", t.columns[c]),
                })?,
            );
        }
    }
    Ok(arrays)
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
