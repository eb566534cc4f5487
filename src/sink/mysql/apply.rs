//! Statement building and batched execution for the MySQL/MariaDB sink.
//!
//! Consecutive operations of the same kind on the same table (and, for upserts, the same set of
//! present columns) form a run, written with multi-row statements. Statement sizes are a power of
//! two (at most [`MAX_ROWS`]) so the prepared-statement cache sees few distinct shapes.

use chrono::{Datelike, Timelike};
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value as My};

use crate::error::{Error, ErrorClass, Result};
use crate::mapping::{TargetOp, TargetTable};
use crate::model::{iso, Value};
use std::collections::HashMap;
use std::sync::Arc;

use super::columns::TableFacts;
use crate::sink::{bulk_lines, bulk_run, last_per_key, run_end, Applied, Bulk};

/// Most rows in one statement.
const MAX_ROWS: usize = 1024;
/// MySQL's limit on placeholders in one prepared statement.
const MAX_PARAMS: usize = 65_535;

pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn qualified(t: &TargetTable) -> String {
    format!("{}.{}", quote_ident(&t.namespace), quote_ident(&t.name))
}

/// The facts of every table the sink has written, by (database, table, the columns written in
/// that order): facts are per column position, and several mappings may write one table with
/// different columns.
pub(super) type Tables = HashMap<(String, String, String), Arc<TableFacts>>;

/// One operation ready to send: its index in the batch and its encoded parameters (the present
/// columns of an upsert, the key of a delete).
struct Row {
    idx: usize,
    params: Vec<My>,
}

/// How a run of upserts is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `INSERT ... ON DUPLICATE KEY UPDATE`: one statement, for tables whose only unique key
    /// is the mapping's and whose insert needs nothing the mapping does not carry.
    Upsert,
    /// `UPDATE ... JOIN` the rows whose key exists, then `INSERT ... SELECT` those whose key
    /// does not (no ON DUPLICATE KEY): a write never reaches a row with another key, and an
    /// update never needs the columns only an insert needs.
    Split,
    /// `write = "update"`: the update half only.
    Update,
}

pub(super) async fn apply_runs(
    conn: &mut Conn,
    ep: &str,
    bulk: &mut Bulk,
    tables: &Tables,
    ops: &[TargetOp],
) -> Result<Applied> {
    let mut applied = Applied::default();
    let mut start = 0;
    while start < ops.len() {
        let end = run_end(ops, start);
        let run = &ops[start..end];
        let facts = &tables[&table_key(run[0].table())];
        // A value the column cannot hold exactly fails its row before anything is sent.
        let mut rows = Vec::with_capacity(run.len());
        for (idx, op) in ops.iter().enumerate().take(end).skip(start) {
            match encode(op, facts) {
                Ok(params) => rows.push(Row { idx, params }),
                Err(e) => applied.failed.push((idx, e)),
            }
        }
        start = end;
        if rows.is_empty() {
            continue;
        }
        if bulk_run(*bulk, run) {
            if load_data(conn, ep, facts, ops, &rows).await? {
                applied.rows += rows.len();
                continue;
            }
            *bulk = Bulk::Refused;
        }
        let idx: Vec<usize> = rows.iter().map(|r| r.idx).collect();
        let mode = mode(&ops[idx[0]], facts.split);
        match exec_run(conn, ep, ops, rows, mode).await {
            Ok(()) => applied.rows += idx.len(),
            Err(e) if e.class() == ErrorClass::Row => {
                // InnoDB undid only the failed statement; redo this run row by row (idempotent)
                // to find the rows at fault, keeping the rest. Upserts go the split way here,
                // so a row that exists is updated even when inserting it would fail (a NOT NULL
                // column the mapping does not carry, error 1364).
                let mode = match mode {
                    Mode::Upsert => Mode::Split,
                    m => m,
                };
                for i in idx {
                    let row = Row {
                        idx: i,
                        params: encode(&ops[i], facts)?,
                    };
                    match exec_run(conn, ep, ops, vec![row], mode).await {
                        Ok(()) => applied.rows += 1,
                        Err(e) if e.class() == ErrorClass::Row => applied.failed.push((i, e)),
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(applied)
}

pub(super) fn table_key(t: &TargetTable) -> (String, String, String) {
    (t.namespace.clone(), t.name.clone(), t.columns.join("\u{0}"))
}

fn mode(op: &TargetOp, split: bool) -> Mode {
    match op.table() {
        t if t.update_only => Mode::Update,
        _ if split => Mode::Split,
        _ => Mode::Upsert,
    }
}

/// The parameters of one operation: every present value through its column's encoder.
fn encode(op: &TargetOp, facts: &TableFacts) -> Result<Vec<My>> {
    match op {
        TargetOp::Upsert { table, row } => row
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| facts.columns[i].encode(v)))
            .collect::<std::result::Result<Vec<My>, String>>()
            .map_err(|reason| Error::Row {
                table: format!("{}:{}", table.endpoint, table),
                key: String::new(),
                reason,
            }),
        TargetOp::Delete { key, .. } => Ok(key.iter().map(to_mysql).collect()),
        TargetOp::Truncate { .. } => Ok(Vec::new()),
    }
}

/// Keep the last row per key, in order (an `UPDATE ... JOIN` picks any of several rows for one
/// key, and the split's insert would add a key twice).
fn last_rows(ops: &[TargetOp], rows: Vec<Row>) -> Vec<Row> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Row> = rows
        .into_iter()
        .rev()
        .filter(|r| seen.insert(format!("{:?}", ops[r.idx].key_values())))
        .collect();
    out.reverse();
    out
}

async fn exec_run(
    conn: &mut Conn,
    ep: &str,
    ops: &[TargetOp],
    rows: Vec<Row>,
    mode: Mode,
) -> Result<()> {
    let first = &ops[rows[0].idx];
    let table = first.table().clone();
    let rows = match first {
        TargetOp::Upsert { .. } if mode != Mode::Upsert => last_rows(ops, rows),
        _ => rows,
    };
    let present: Vec<usize> = match first {
        TargetOp::Upsert { row, .. } => (0..row.len()).filter(|&i| row[i].is_some()).collect(),
        _ => Vec::new(),
    };
    if mode == Mode::Split && matches!(first, TargetOp::Upsert { .. }) {
        return exec_split(conn, ep, &table, &present, rows).await;
    }
    let width = rows[0].params.len();
    let total = rows.len();
    let mut params = rows.into_iter().map(|r| r.params);
    // The statements of rows done..done + n, and their parameters.
    let mut build = |done: usize| {
        let n = chunk_len(total - done, width);
        let p: Vec<My> = params.by_ref().take(n).flatten().collect();
        let sqls = match first {
            TargetOp::Upsert { .. } => match mode {
                Mode::Upsert => vec![upsert_sql(&table, &present, n)],
                Mode::Update => vec![update_sql(&table, &present, n)],
                Mode::Split => unreachable!("split runs go through exec_split"),
            },
            TargetOp::Delete { .. } => vec![delete_sql(&table, n)],
            TargetOp::Truncate { .. } => vec![format!("DELETE FROM {}", qualified(&table))],
        };
        (sqls, p, done + n)
    };
    let mut next = Some(build(0));
    while let Some((sqls, params, done)) = next.take() {
        let send = async {
            let (last, mut params) = (sqls.len() - 1, params);
            for (k, sql) in sqls.into_iter().enumerate() {
                if params.is_empty() {
                    conn.query_drop(sql).await?;
                } else if k == last {
                    conn.exec_drop(sql, std::mem::take(&mut params)).await?;
                } else {
                    conn.exec_drop(sql, params.clone()).await?;
                }
            }
            Ok::<(), mysql_async::Error>(())
        };
        // The server works on this statement while the next one is built: the send is polled
        // first (its packet goes out), then the build runs.
        let (result, built) = tokio::join!(send, async { (done < total).then(|| build(done)) });
        result.map_err(|e| row_context(ep, &table, e))?;
        next = built;
    }
    Ok(())
}

/// The split write of a run of upserts (deduplicated by key), chunk by chunk: lock and read
/// which keys exist (`FOR UPDATE`, so no other session inserts one meanwhile), update those
/// through a join by key, insert the others with a plain `INSERT`. MariaDB checks an
/// `INSERT ... SELECT`'s NOT NULL columns even when it selects no row, hence the read.
async fn exec_split(
    conn: &mut Conn,
    ep: &str,
    table: &TargetTable,
    present: &[usize],
    rows: Vec<Row>,
) -> Result<()> {
    let key_pos: Vec<usize> = table
        .key
        .iter()
        .map(|k| {
            present
                .iter()
                .position(|c| c == k)
                .expect("key columns are present")
        })
        .collect();
    let width = present.len();
    let mut rest = rows.into_iter().map(|r| r.params).collect::<Vec<_>>();
    let err = |e| row_context(ep, table, e);
    while !rest.is_empty() {
        let n = chunk_len(rest.len(), width);
        let chunk: Vec<Vec<My>> = rest.drain(..n).collect();
        let mut probe = Vec::with_capacity(n * (key_pos.len() + 1));
        for (i, params) in chunk.iter().enumerate() {
            probe.push(My::Int(i as i64));
            probe.extend(key_pos.iter().map(|&p| params[p].clone()));
        }
        let found: Vec<i64> = conn
            .exec(existing_sql(table, n), probe)
            .await
            .map_err(err)?;
        let mut exists = vec![false; n];
        for i in found {
            exists[i as usize] = true;
        }
        let (old, new): (Vec<_>, Vec<_>) = chunk.into_iter().zip(exists).partition(|(_, e)| *e);
        if !old.is_empty() {
            let sql = update_sql(table, present, old.len());
            let params: Vec<My> = old.into_iter().flat_map(|(p, _)| p).collect();
            conn.exec_drop(sql, params).await.map_err(err)?;
        }
        if !new.is_empty() {
            let sql = insert_sql(table, present, new.len());
            let params: Vec<My> = new.into_iter().flat_map(|(p, _)| p).collect();
            conn.exec_drop(sql, params).await.map_err(err)?;
        }
    }
    Ok(())
}

/// Bulk load a run of upserts with `LOAD DATA LOCAL INFILE` inside a savepoint. With LOCAL the
/// server turns a duplicate key or a value it must alter into a warning and goes on, so the
/// load only counts if every row was inserted without a warning; otherwise it is undone and
/// false returned (as when the server refuses it, e.g. `local_infile` off).
async fn load_data(
    conn: &mut Conn,
    ep: &str,
    facts: &TableFacts,
    ops: &[TargetOp],
    encoded: &[Row],
) -> Result<bool> {
    let table = ops[encoded[0].idx].table();
    let idx: Vec<usize> = encoded.iter().map(|r| r.idx).collect();
    let rows = last_per_key(ops, &idx);
    let Some((present, data)) = bulk_lines(&rows, |c, v| facts.columns[c].load_text(v)) else {
        return Ok(false);
    };
    let cols: Vec<String> = present
        .iter()
        .map(|&i| quote_ident(&table.columns[i]))
        .collect();
    let sql = format!(
        "LOAD DATA LOCAL INFILE 'rowbridge-bulk' INTO TABLE {} CHARACTER SET utf8mb4 ({})",
        qualified(table),
        cols.join(",")
    );
    conn.query_drop("SAVEPOINT rowbridge_bulk")
        .await
        .map_err(|e| Error::mysql(ep, e))?;
    let body = bytes::Bytes::from(data);
    conn.set_infile_handler(async move {
        Ok(futures_util::stream::once(async move { Ok(body) }).boxed())
    });
    let loaded = match conn.query_drop(sql).await {
        Ok(()) => {
            let (inserted, warnings) = (conn.affected_rows(), conn.get_warnings());
            let complete = inserted == rows.len() as u64 && warnings == 0;
            if !complete && tracing::enabled!(tracing::Level::DEBUG) {
                // Warning codes only: their messages quote values.
                let codes: Vec<u16> = conn
                    .query_map("SHOW WARNINGS", |(_, code, _): (String, u16, String)| code)
                    .await
                    .unwrap_or_default();
                tracing::debug!(endpoint = ep, table = %table, rows = rows.len(), inserted, ?codes, "bulk load incomplete; writing with upserts");
            }
            complete
        }
        Err(mysql_async::Error::Server(e)) => {
            tracing::debug!(endpoint = ep, table = %table, code = e.code, "bulk load refused; writing with upserts");
            false
        }
        Err(e) => return Err(Error::mysql(ep, e)),
    };
    let end = if loaded {
        "RELEASE SAVEPOINT rowbridge_bulk"
    } else {
        "ROLLBACK TO SAVEPOINT rowbridge_bulk"
    };
    conn.query_drop(end)
        .await
        .map_err(|e| Error::mysql(ep, e))?;
    Ok(loaded)
}

/// The text `LOAD DATA` reads back as `v` (session time zone UTC), or None when only the
/// binary protocol can carry it exactly (NaN, a year outside 0..9999).
pub(super) fn load_text(v: &Value) -> Option<Option<Vec<u8>>> {
    let in_range = |y: i32| (0..=9999).contains(&y);
    Some(Some(match v {
        Value::Null => return Some(None),
        Value::Bool(b) => vec![if *b { b'1' } else { b'0' }],
        Value::Int(i) => i.to_string().into_bytes(),
        Value::UInt(u) => u.to_string().into_bytes(),
        Value::Float(f) if f.is_finite() => f.to_string().into_bytes(),
        Value::Float(_) => return None,
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.clone(),
        Value::Uuid(u) => u.hyphenated().to_string().into_bytes(),
        Value::Date(d) if in_range(d.year()) => iso::date(d).into_bytes(),
        Value::Time(t) => iso::time(t).into_bytes(),
        Value::Timestamp(ts) if in_range(ts.year()) => iso::datetime(ts).into_bytes(),
        Value::TimestampTz(ts) if in_range(ts.year()) => {
            iso::datetime(&ts.naive_utc()).into_bytes()
        }
        Value::Date(_) | Value::Timestamp(_) | Value::TimestampTz(_) => return None,
    }))
}

/// Rows in the next statement: a power of two, bounded by the placeholder limit.
fn chunk_len(remaining: usize, width: usize) -> usize {
    let cap = (MAX_PARAMS / width.max(1)).clamp(1, MAX_ROWS);
    let cap = 1usize << (usize::BITS - 1 - cap.leading_zeros());
    let rem = 1usize << (usize::BITS - 1 - remaining.leading_zeros());
    cap.min(rem)
}

/// A plain multi-row insert of the `present` columns.
fn insert_sql(table: &TargetTable, present: &[usize], n: usize) -> String {
    let cols: Vec<String> = present
        .iter()
        .map(|&i| quote_ident(&table.columns[i]))
        .collect();
    let placeholders = format!("({})", vec!["?"; present.len()].join(","));
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        qualified(table),
        cols.join(",")
    );
    sql.push_str(&vec![placeholders.as_str(); n].join(","));
    sql
}

fn upsert_sql(table: &TargetTable, present: &[usize], n: usize) -> String {
    let mut sql = insert_sql(table, present, n);
    let updates: Vec<String> = present
        .iter()
        .filter(|i| !table.key.contains(i) && !table.insert_only.contains(i))
        .map(|&i| {
            let c = quote_ident(&table.columns[i]);
            format!("{c}=VALUES({c})")
        })
        .collect();
    sql.push_str(" ON DUPLICATE KEY UPDATE ");
    if updates.is_empty() {
        let k = quote_ident(&table.columns[table.key[0]]);
        sql.push_str(&format!("{k}={k}"));
    } else {
        sql.push_str(&updates.join(","));
    }
    sql
}

/// Which of `n` keys (parameters: row number, then the key values) exist, locked until the
/// transaction ends; compared by the server, with the column's own collation.
fn existing_sql(table: &TargetTable, n: usize) -> String {
    let first: Vec<String> = std::iter::once("? AS `n`".to_string())
        .chain(table.key.iter().map(|i| format!("? AS `c{i}`")))
        .collect();
    let other = format!("SELECT {}", vec!["?"; table.key.len() + 1].join(", "));
    let mut values = format!("SELECT {}", first.join(", "));
    for _ in 1..n {
        values.push_str(" UNION ALL ");
        values.push_str(&other);
    }
    let conds: Vec<String> = table
        .key
        .iter()
        .map(|&i| format!("t.{} = v.`c{i}`", quote_ident(&table.columns[i])))
        .collect();
    format!(
        "SELECT v.`n` FROM {} AS t JOIN ({values}) AS v ON {} FOR UPDATE",
        qualified(table),
        conds.join(" AND ")
    )
}

/// The rows of a statement as a derived table `v` with columns `c<i>` (i: table column index).
fn values_table(present: &[usize], n: usize) -> String {
    let first: Vec<String> = present.iter().map(|i| format!("? AS `c{i}`")).collect();
    let other = format!("SELECT {}", vec!["?"; present.len()].join(", "));
    let mut values = format!("(SELECT {}", first.join(", "));
    for _ in 1..n {
        values.push_str(" UNION ALL ");
        values.push_str(&other);
    }
    values.push_str(") AS v");
    values
}

/// Update the rows that exist through a join with the values by key; insert nothing.
fn update_sql(table: &TargetTable, present: &[usize], n: usize) -> String {
    let mut sets = Vec::new();
    let mut conds = Vec::new();
    for &i in present {
        let c = quote_ident(&table.columns[i]);
        if table.key.contains(&i) {
            conds.push(format!("t.{c} = v.`c{i}`"));
        } else if !table.insert_only.contains(&i) {
            sets.push(format!("t.{c} = v.`c{i}`"));
        }
    }
    if sets.is_empty() {
        let k = quote_ident(&table.columns[table.key[0]]);
        sets.push(format!("t.{k} = t.{k}"));
    }
    format!(
        "UPDATE {} AS t JOIN {} ON {} SET {}",
        qualified(table),
        values_table(present, n),
        conds.join(" AND "),
        sets.join(", ")
    )
}

fn delete_sql(table: &TargetTable, n: usize) -> String {
    let key_cols: Vec<String> = table
        .key
        .iter()
        .map(|&i| quote_ident(&table.columns[i]))
        .collect();
    let cond = if key_cols.len() == 1 {
        format!("{} IN ({})", key_cols[0], vec!["?"; n].join(","))
    } else {
        let one = format!(
            "({})",
            key_cols
                .iter()
                .map(|c| format!("{c}=?"))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        vec![one.as_str(); n].join(" OR ")
    };
    format!("DELETE FROM {} WHERE {cond}", qualified(table))
}

/// Convert a value for the binary protocol. Instants are written as UTC (session time zone).
pub fn to_mysql(v: &Value) -> My {
    match v {
        Value::Null => My::NULL,
        Value::Bool(b) => My::Int(*b as i64),
        Value::Int(i) => My::Int(*i),
        Value::UInt(u) => My::UInt(*u),
        Value::Float(f) => My::Double(*f),
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) => My::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) => My::Bytes(b.clone()),
        Value::Uuid(u) => My::Bytes(u.hyphenated().to_string().into_bytes()),
        Value::Date(d) => My::Date(d.year() as u16, d.month() as u8, d.day() as u8, 0, 0, 0, 0),
        Value::Time(t) => My::Time(
            false,
            0,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
            t.nanosecond() / 1000,
        ),
        Value::Timestamp(ts) => datetime(ts),
        Value::TimestampTz(ts) => datetime(&ts.naive_utc()),
    }
}

/// A value read back with the binary protocol, in the form the binlog source gives it (so
/// fingerprints of both compare).
pub fn from_mysql(v: My, col: &mysql_async::Column) -> Value {
    use mysql_async::consts::{ColumnFlags, ColumnType as T};
    let ty = col.column_type();
    match v {
        My::NULL => Value::Null,
        My::Int(i) => Value::Int(i),
        My::UInt(u) => Value::UInt(u),
        My::Float(f) => Value::Float(f.to_string().parse().unwrap_or(f as f64)),
        My::Double(d) => Value::Float(d),
        My::Date(y, mo, d, h, mi, s, us) => {
            let date = chrono::NaiveDate::from_ymd_opt(y as i32, mo as u32, d as u32);
            match (ty, date) {
                (T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE, Some(date)) => Value::Date(date),
                (_, Some(date)) => date
                    .and_hms_micro_opt(h as u32, mi as u32, s as u32, us)
                    .map(Value::Timestamp)
                    .unwrap_or(Value::Null),
                (_, None) => Value::Null,
            }
        }
        My::Time(neg, days, h, mi, s, us) => {
            match chrono::NaiveTime::from_hms_micro_opt(h as u32, mi as u32, s as u32, us) {
                Some(t) if !neg && days == 0 => Value::Time(t),
                _ => Value::Text(format!(
                    "{}{}:{mi:02}:{s:02}.{us:06}",
                    if neg { "-" } else { "" },
                    days * 24 + h as u32
                )),
            }
        }
        My::Bytes(b) => match ty {
            T::MYSQL_TYPE_BIT => crate::source::mysql::bit_text(&b),
            T::MYSQL_TYPE_NEWDECIMAL | T::MYSQL_TYPE_DECIMAL => {
                Value::Decimal(String::from_utf8_lossy(&b).into_owned())
            }
            T::MYSQL_TYPE_JSON => Value::Json(String::from_utf8_lossy(&b).into_owned()),
            _ if col.character_set() == 63 && col.flags().contains(ColumnFlags::BINARY_FLAG) => {
                Value::Bytes(b)
            }
            _ => match String::from_utf8(b) {
                Ok(s) => Value::Text(s),
                Err(e) => Value::Bytes(e.into_bytes()),
            },
        },
    }
}

fn datetime(ts: &chrono::NaiveDateTime) -> My {
    My::Date(
        ts.year() as u16,
        ts.month() as u8,
        ts.day() as u8,
        ts.hour() as u8,
        ts.minute() as u8,
        ts.second() as u8,
        ts.nanosecond() / 1000,
    )
}

/// A row error says which table and, from the server's message, which column, index or
/// constraint; never the values.
fn row_context(ep: &str, table: &TargetTable, e: mysql_async::Error) -> Error {
    match &e {
        mysql_async::Error::Server(se)
            if crate::error::classify_mysql_code(se.code) == ErrorClass::Row =>
        {
            Error::Row {
                table: format!("{}:{}", table.endpoint, table),
                key: String::new(),
                reason: server_reason(se.code, &se.message),
            }
        }
        _ => Error::mysql(ep, e),
    }
}

/// The reason for a row the server refused, rebuilt from the error code and the identifiers in
/// its message: MariaDB quotes the value in many messages ("Duplicate entry 'a@x' for key
/// 'email'", "Incorrect string value: '\xF0...' for column ..."), so the message itself is
/// never kept.
fn server_reason(code: u16, message: &str) -> String {
    let what = match code {
        1048 | 1263 => "NULL into a NOT NULL column",
        1062 | 1169 | 1586 | 1859 => "duplicate value in a unique index",
        1364 => "an insert needs this NOT NULL column without a default, which the mapping does not carry",
        1366 | 1367 | 1300 => "a value the column cannot hold (type or charset)",
        1406 => "value too long for the column",
        1264 | 1690 => "value out of the column's range",
        1265 => "value would be truncated",
        1292 | 1411 | 1525 | 1918 | 1441 => "incorrect value for the column's type",
        1451 | 1217 => "foreign key: the row is referenced",
        1452 | 1216 => "foreign key: no parent row",
        3819 | 4025 => "check constraint failed",
        1526 | 1748 => "no partition for the row",
        1906 => "a value for a generated column",
        _ => "row refused",
    };
    let mut reason = format!("ERROR {code}: {what}");
    if let Some(name) = identifier_after(message, " for key ") {
        reason.push_str(&format!(" (unique index '{name}')"));
    } else if let Some(name) = identifier_after(message, "for column ")
        .or_else(|| identifier_after(message, "Field "))
        .or_else(|| identifier_after(message, "Column "))
    {
        reason.push_str(&format!(" (column '{name}')"));
    } else if let Some(name) = identifier_after(message, "CONSTRAINT ") {
        reason.push_str(&format!(" (constraint '{name}')"));
    }
    reason
}

/// The identifier quoted right after the last `marker` in `message` (the last part of a
/// qualified `db`.`t`.`c`), if any.
fn identifier_after(message: &str, marker: &str) -> Option<String> {
    let rest = &message[message.rfind(marker)? + marker.len()..];
    let mut name = None;
    let mut chars = rest.chars();
    loop {
        let open = chars.next()?;
        if open != '`' && open != '\'' {
            return name;
        }
        let part: String = chars.by_ref().take_while(|&c| c != open).collect();
        name = Some(part);
        match chars.next() {
            Some('.') => continue,
            _ => return name,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn table() -> Arc<TargetTable> {
        Arc::new(TargetTable {
            endpoint: "erp".into(),
            namespace: "erp".into(),
            name: "cust`omers".into(),
            columns: vec!["id".into(), "name".into(), "note".into()],
            key: vec![0],
            update_only: false,
            insert_only: vec![],
        })
    }

    #[test]
    fn load_data_text_forms() {
        use chrono::{NaiveDate, TimeZone, Utc};
        let text = |v: Value| load_text(&v).map(|t| t.map(|b| String::from_utf8(b).unwrap()));
        assert_eq!(text(Value::Null), Some(None));
        assert_eq!(text(Value::Bool(true)), Some(Some("1".into())));
        assert_eq!(
            text(Value::UInt(u64::MAX)),
            Some(Some(u64::MAX.to_string()))
        );
        assert_eq!(
            text(Value::Float(-2.5e300)),
            Some(Some((-2.5e300f64).to_string()))
        );
        assert_eq!(
            text(Value::Float(f64::NAN)),
            None,
            "NaN goes the binary way (and fails there)"
        );
        let ts = NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 5)
            .unwrap();
        assert_eq!(
            text(Value::Timestamp(ts)),
            Some(Some("2024-02-29 23:59:59.000005".into()))
        );
        let tz = Utc.with_ymd_and_hms(2024, 6, 1, 10, 0, 0).unwrap();
        assert_eq!(
            text(Value::TimestampTz(tz)),
            Some(Some("2024-06-01 10:00:00.000000".into()))
        );
        let far = NaiveDate::from_ymd_opt(12345, 1, 1).unwrap();
        assert_eq!(text(Value::Date(far)), None);
        assert_eq!(
            load_text(&Value::Bytes(vec![0, 9, 255])),
            Some(Some(vec![0, 9, 255]))
        );
    }

    #[test]
    fn chunks_are_powers_of_two_within_limits() {
        assert_eq!(chunk_len(1, 3), 1);
        assert_eq!(chunk_len(37, 3), 32);
        assert_eq!(chunk_len(5000, 3), 1024);
        assert_eq!(chunk_len(5000, 100), 512);
        assert_eq!(chunk_len(10, 70_000), 1);
    }

    #[test]
    fn upsert_leaves_absent_columns_alone() {
        let t = table();
        assert_eq!(
            upsert_sql(&t, &[0, 1], 2),
            "INSERT INTO `erp`.`cust``omers` (`id`,`name`) VALUES (?,?),(?,?) ON DUPLICATE KEY UPDATE `name`=VALUES(`name`)"
        );
    }

    #[test]
    fn split_updates_by_key_and_inserts_only_missing_keys() {
        let t = table();
        assert_eq!(
            update_sql(&t, &[0, 2], 2),
            "UPDATE `erp`.`cust``omers` AS t JOIN (SELECT ? AS `c0`, ? AS `c2` UNION ALL SELECT ?, ?) AS v \
             ON t.`id` = v.`c0` SET t.`note` = v.`c2`"
        );
        assert_eq!(
            existing_sql(&t, 2),
            "SELECT v.`n` FROM `erp`.`cust``omers` AS t JOIN (SELECT ? AS `n`, ? AS `c0` UNION ALL SELECT ?, ?) AS v \
             ON t.`id` = v.`c0` FOR UPDATE"
        );
        assert_eq!(
            insert_sql(&t, &[0, 2], 1),
            "INSERT INTO `erp`.`cust``omers` (`id`,`note`) VALUES (?,?)"
        );
    }

    #[test]
    fn server_reasons_name_the_index_or_column_never_the_value() {
        let cases = [
            (1062, "Duplicate entry 'a@x' for key 'email'", "ERROR 1062: duplicate value in a unique index (unique index 'email')"),
            (1062, "Duplicate entry 'x' for key 'y' for key 'uq'", "ERROR 1062: duplicate value in a unique index (unique index 'uq')"),
            (1366, "Incorrect string value: '\\xF0\\x9F' for column `e`.`t`.`a` at row 1", "ERROR 1366: a value the column cannot hold (type or charset) (column 'a')"),
            (1292, "Incorrect datetime value: '2020-13-01' for column `e`.`t`.`m` at row 1", "ERROR 1292: incorrect value for the column's type (column 'm')"),
            (1265, "Data truncated for column 'g' at row 1", "ERROR 1265: value would be truncated (column 'g')"),
            (1364, "Field 'req' doesn't have a default value", "ERROR 1364: an insert needs this NOT NULL column without a default, which the mapping does not carry (column 'req')"),
            (4025, "CONSTRAINT `positive` failed for `e`.`t`", "ERROR 4025: check constraint failed (constraint 'positive')"),
            (1918, "Encountered illegal value 'secret' when converting to DECIMAL", "ERROR 1918: incorrect value for the column's type"),
        ];
        for (code, message, want) in cases {
            assert_eq!(server_reason(code, message), want);
        }
    }

    #[test]
    fn runs_split_on_shape() {
        let t = table();
        let up = |note: Option<Value>| TargetOp::Upsert {
            table: t.clone(),
            row: vec![Some(Value::Int(1)), Some(Value::Null), note],
        };
        let del = TargetOp::Delete {
            table: t.clone(),
            key: vec![Value::Int(1)],
        };
        let ops = vec![
            up(Some(Value::Null)),
            up(Some(Value::Null)),
            up(None),
            del.clone(),
            del,
        ];
        assert_eq!(run_end(&ops, 0), 2);
        assert_eq!(run_end(&ops, 2), 3);
        assert_eq!(run_end(&ops, 3), 5);
        assert_eq!(
            delete_sql(&t, 2),
            "DELETE FROM `erp`.`cust``omers` WHERE `id` IN (?,?)"
        );
    }
}
