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

pub(super) async fn apply_runs(
    conn: &mut Conn,
    ep: &str,
    bulk: &mut Bulk,
    ops: &[TargetOp],
) -> Result<Applied> {
    let mut applied = Applied::default();
    let mut start = 0;
    while start < ops.len() {
        let end = run_end(ops, start);
        let run = &ops[start..end];
        if bulk_run(*bulk, run) {
            if load_data(conn, ep, run).await? {
                applied.rows += run.len();
                start = end;
                continue;
            }
            *bulk = Bulk::Refused;
        }
        match exec_run(conn, ep, run).await {
            Ok(()) => applied.rows += run.len(),
            Err(e) if e.class() == ErrorClass::Row => {
                // InnoDB undid only the failed statement; redo this run row by row (idempotent)
                // to find the rows at fault, keeping the rest.
                for (j, op) in run.iter().enumerate() {
                    match exec_run(conn, ep, std::slice::from_ref(op)).await {
                        Ok(()) => applied.rows += 1,
                        Err(e) if e.class() == ErrorClass::Row => {
                            applied.failed.push((start + j, e))
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

async fn exec_run(conn: &mut Conn, ep: &str, run: &[TargetOp]) -> Result<()> {
    let table = run[0].table().clone();
    // An UPDATE ... JOIN picks any of several rows for one key: keep the last.
    let deduped: Vec<TargetOp>;
    let run = if table.update_only {
        let idx: Vec<usize> = (0..run.len()).collect();
        deduped = last_per_key(run, &idx).into_iter().cloned().collect();
        &deduped[..]
    } else {
        run
    };
    let width = match &run[0] {
        TargetOp::Upsert { row, .. } => row.iter().filter(|v| v.is_some()).count(),
        TargetOp::Delete { key, .. } => key.len(),
        TargetOp::Truncate { .. } => 0,
    };
    // The statement of rows done..done + n.
    let build = |done: usize| {
        let n = chunk_len(run.len() - done, width);
        let chunk = &run[done..done + n];
        let (sql, params) = match &run[0] {
            TargetOp::Upsert { row, .. } if table.update_only => update_sql(&table, row, chunk),
            TargetOp::Upsert { row, .. } => upsert_sql(&table, row, chunk),
            TargetOp::Delete { .. } => delete_sql(&table, chunk),
            TargetOp::Truncate { .. } => (format!("DELETE FROM {}", qualified(&table)), Vec::new()),
        };
        (sql, params, done + n)
    };
    let mut next = Some(build(0));
    while let Some((sql, params, done)) = next.take() {
        let send = async {
            if params.is_empty() {
                conn.query_drop(sql).await
            } else {
                conn.exec_drop(sql, params).await
            }
        };
        // The server works on this statement while the next one is built: the send is polled
        // first (its packet goes out), then the build runs.
        let (result, built) = tokio::join!(send, async { (done < run.len()).then(|| build(done)) });
        result.map_err(|e| row_context(ep, &table, e))?;
        next = built;
    }
    Ok(())
}

/// Bulk load a run of upserts with `LOAD DATA LOCAL INFILE` inside a savepoint. With LOCAL the
/// server turns a duplicate key or a value it must alter into a warning and goes on, so the
/// load only counts if every row was inserted without a warning; otherwise it is undone and
/// false returned (as when the server refuses it, e.g. `local_infile` off).
async fn load_data(conn: &mut Conn, ep: &str, run: &[TargetOp]) -> Result<bool> {
    let table = run[0].table();
    let idx: Vec<usize> = (0..run.len()).collect();
    let rows = last_per_key(run, &idx);
    let Some((present, data)) = bulk_lines(&rows, |_, v| load_text(v)) else {
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
fn load_text(v: &Value) -> Option<Option<Vec<u8>>> {
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

fn upsert_sql(
    table: &TargetTable,
    shape: &[Option<Value>],
    chunk: &[TargetOp],
) -> (String, Vec<My>) {
    let present: Vec<usize> = (0..shape.len()).filter(|&i| shape[i].is_some()).collect();
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
    sql.push_str(&vec![placeholders.as_str(); chunk.len()].join(","));
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
    let mut params = Vec::with_capacity(chunk.len() * present.len());
    for op in chunk {
        if let TargetOp::Upsert { row, .. } = op {
            params.extend(row.iter().flatten().map(to_mysql));
        }
    }
    (sql, params)
}

/// `write = "update"`: update the rows that exist through a join with the values, insert
/// nothing.
fn update_sql(
    table: &TargetTable,
    shape: &[Option<Value>],
    chunk: &[TargetOp],
) -> (String, Vec<My>) {
    let present: Vec<usize> = (0..shape.len()).filter(|&i| shape[i].is_some()).collect();
    let first: Vec<String> = present.iter().map(|i| format!("? AS `c{i}`")).collect();
    let other = format!("SELECT {}", vec!["?"; present.len()].join(", "));
    let mut values = format!("SELECT {}", first.join(", "));
    for _ in 1..chunk.len() {
        values.push_str(" UNION ALL ");
        values.push_str(&other);
    }
    let mut sets = Vec::new();
    let mut conds = Vec::new();
    for &i in &present {
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
    let sql = format!(
        "UPDATE {} AS t JOIN ({values}) AS v ON {} SET {}",
        qualified(table),
        conds.join(" AND "),
        sets.join(", ")
    );
    let mut params = Vec::with_capacity(chunk.len() * present.len());
    for op in chunk {
        if let TargetOp::Upsert { row, .. } = op {
            params.extend(row.iter().flatten().map(to_mysql));
        }
    }
    (sql, params)
}

fn delete_sql(table: &TargetTable, chunk: &[TargetOp]) -> (String, Vec<My>) {
    let key_cols: Vec<String> = table
        .key
        .iter()
        .map(|&i| quote_ident(&table.columns[i]))
        .collect();
    let cond = if key_cols.len() == 1 {
        format!("{} IN ({})", key_cols[0], vec!["?"; chunk.len()].join(","))
    } else {
        let one = format!(
            "({})",
            key_cols
                .iter()
                .map(|c| format!("{c}=?"))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        vec![one.as_str(); chunk.len()].join(" OR ")
    };
    let sql = format!("DELETE FROM {} WHERE {cond}", qualified(table));
    let mut params = Vec::with_capacity(chunk.len() * key_cols.len());
    for op in chunk {
        if let TargetOp::Delete { key, .. } = op {
            params.extend(key.iter().map(to_mysql));
        }
    }
    (sql, params)
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

/// Keep the server's message (it names the column) but say which table; never the values.
fn row_context(ep: &str, table: &TargetTable, e: mysql_async::Error) -> Error {
    match &e {
        mysql_async::Error::Server(se)
            if crate::error::classify_mysql_code(se.code) == ErrorClass::Row =>
        {
            Error::Row {
                table: format!("{}:{}", table.endpoint, table),
                key: String::new(),
                reason: format!("ERROR {}: {}", se.code, se.message),
            }
        }
        _ => Error::mysql(ep, e),
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
        let op = TargetOp::Upsert {
            table: t.clone(),
            row: vec![Some(Value::Int(1)), Some(Value::Text("a".into())), None],
        };
        let (sql, params) = upsert_sql(
            &t,
            match &op {
                TargetOp::Upsert { row, .. } => row,
                _ => unreachable!(),
            },
            &[op.clone(), op.clone()],
        );
        assert_eq!(
            sql,
            "INSERT INTO `erp`.`cust``omers` (`id`,`name`) VALUES (?,?),(?,?) ON DUPLICATE KEY UPDATE `name`=VALUES(`name`)"
        );
        assert_eq!(params.len(), 4);
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
        let (sql, params) = delete_sql(&t, &ops[3..5]);
        assert_eq!(sql, "DELETE FROM `erp`.`cust``omers` WHERE `id` IN (?,?)");
        assert_eq!(params.len(), 2);
    }
}
