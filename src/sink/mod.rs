//! Sinks: apply a batch of target operations in one target transaction.
//!
//! Contract shared by every sink:
//! - every statement is idempotent (upsert by key, delete by key), so applying a batch twice
//!   leaves the same state: replay after a crash between target commit and checkpoint is safe;
//! - operations are applied in the order given (source commit order);
//! - a row-class error isolates only the offending operations: the rest of the batch commits
//!   and the failures come back as [`Applied::failed`] for the dead-letter queue;
//! - any other error rolls the whole batch back and is returned, for the caller to retry.

mod exact;
pub mod mysql;
pub mod postgres;

use std::collections::HashSet;
use std::sync::Arc;

use crate::error::Error;
use crate::mapping::TargetOp;

/// The table (in the target database's default schema) where a flow carrying mappings with
/// conflicts records, in each batch's own transaction, the source position the batch reaches.
/// After a crash the flow skips what the target already committed instead of replaying it: a
/// replayed old change could overwrite a newer edit made on the target meanwhile, which a
/// one-way replica never has but a row edited on both sides does.
pub const PROGRESS_TABLE: &str = "rowbridge_progress";

/// Result of one applied batch.
#[derive(Debug, Default)]
pub struct Applied {
    /// Operations written.
    pub rows: usize,
    /// Indexes (into the batch) of operations rejected with a row error, and why.
    pub failed: Vec<(usize, Error)>,
}

/// End (exclusive) of the run starting at `start`.
pub(crate) fn run_end(ops: &[TargetOp], start: usize) -> usize {
    let first = &ops[start];
    let mut end = start + 1;
    while end < ops.len() && same_shape(first, &ops[end]) {
        end += 1;
    }
    end
}

fn same_shape(a: &TargetOp, b: &TargetOp) -> bool {
    match (a, b) {
        (TargetOp::Upsert { table: ta, row: ra }, TargetOp::Upsert { table: tb, row: rb }) => {
            Arc::ptr_eq(ta, tb) && ra.iter().zip(rb).all(|(x, y)| x.is_some() == y.is_some())
        }
        (TargetOp::Delete { table: ta, .. }, TargetOp::Delete { table: tb, .. }) => {
            Arc::ptr_eq(ta, tb)
        }
        _ => false,
    }
}

/// Keep only the last upsert per key, in order.
pub(crate) fn last_per_key<'a>(ops: &'a [TargetOp], idx: &[usize]) -> Vec<&'a TargetOp> {
    let mut seen = HashSet::new();
    let mut out: Vec<&TargetOp> = idx
        .iter()
        .rev()
        .map(|&i| &ops[i])
        .filter(|op| seen.insert(format!("{:?}", op.key_values())))
        .collect();
    out.reverse();
    out
}

/// Outcome of matching a new source row with an existing target row by natural key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// No target row without an external key matches: the upsert inserts a new row.
    Nothing,
    /// Exactly one matched: its external key columns now hold the source key.
    One,
    /// Several rows match: a row error, never a guess.
    Ambiguous(u64),
}

/// Bulk load for resync chunks. While `Try`, a run of inserts-or-updates of one table is
/// written with the database's own bulk load (`COPY ... FROM STDIN`, `LOAD DATA LOCAL INFILE`),
/// which is two to three times cheaper per row than upsert statements but only inserts. A run
/// the database does not take whole (a key already present, a value it would refuse or alter)
/// is rolled back to a savepoint and written with upserts instead, and the state becomes
/// `Refused`: the caller stops trying for that job (the target is evidently not empty).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Bulk {
    #[default]
    Off,
    Try,
    Refused,
}

/// Whether a run can be bulk loaded: inserts-or-updates (not `write = "update"`).
pub(crate) fn bulk_run(bulk: Bulk, run: &[TargetOp]) -> bool {
    bulk == Bulk::Try && matches!(&run[0], TargetOp::Upsert { table, .. } if !table.update_only)
}

/// The body of a bulk load of the upserts `rows`: which columns it carries (those present in the
/// first row; a run shares its shape) and one tab-separated line per row, each value spelled by
/// `text(column, value)`. None when `text` says a value cannot travel that way (the run is then
/// upserted, where the value is handled or isolated as usual).
pub(crate) fn bulk_lines(
    rows: &[&TargetOp],
    mut text: impl FnMut(usize, &crate::model::Value) -> Option<Option<Vec<u8>>>,
) -> Option<(Vec<usize>, Vec<u8>)> {
    let TargetOp::Upsert { row: shape, .. } = rows.first()? else {
        return None;
    };
    let present: Vec<usize> = (0..shape.len()).filter(|&i| shape[i].is_some()).collect();
    let mut data = Vec::with_capacity(rows.len() * 256);
    for op in rows {
        let TargetOp::Upsert { row, .. } = op else {
            return None;
        };
        for (n, &c) in present.iter().enumerate() {
            if n > 0 {
                data.push(b'\t');
            }
            let v = row[c].as_ref().unwrap_or(&crate::model::Value::Null);
            push_field(&mut data, text(c, v)?.as_deref());
        }
        data.push(b'\n');
    }
    Some((present, data))
}

/// Append `field` to a tab-separated bulk-load line, escaped the way both `COPY` text format and
/// `LOAD DATA` read it back (backslash escapes; `\N` stands for NULL).
fn push_field(line: &mut Vec<u8>, field: Option<&[u8]>) {
    let Some(bytes) = field else {
        line.extend_from_slice(b"\\N");
        return;
    };
    let special = |b: &u8| matches!(b, b'\\' | b'\t' | b'\n' | b'\r' | 0);
    let mut rest = bytes;
    // Runs of ordinary bytes are copied whole.
    while let Some(i) = rest.iter().position(special) {
        line.extend_from_slice(&rest[..i]);
        line.extend_from_slice(match rest[i] {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => b"\\0",
        });
        rest = &rest[i + 1..];
    }
    line.extend_from_slice(rest);
}

/// A connected sink of any kind.
pub enum Sink {
    Mysql(mysql::MysqlSink),
    Postgres(Box<postgres::PgSink>),
}

impl Sink {
    /// Connect to `endpoint` as the writer of the flow whose source is `flow_source`.
    pub async fn connect(
        endpoint: &str,
        cfg: &crate::config::EndpointConfig,
        password: &crate::config::Secret,
        flow_source: &str,
        mark_writes: bool,
    ) -> crate::error::Result<Sink> {
        Ok(match cfg.kind {
            crate::config::EndpointKind::Mysql => {
                Sink::Mysql(mysql::MysqlSink::connect(endpoint, cfg, password, mark_writes).await?)
            }
            crate::config::EndpointKind::Postgres => Sink::Postgres(Box::new(
                postgres::PgSink::connect(
                    endpoint,
                    cfg,
                    password,
                    mark_writes.then_some(flow_source),
                )
                .await?,
            )),
        })
    }

    /// Give the one target row whose `match_cols` equal `match_vals` and whose key columns are
    /// NULL the key `key_vals` (its own transaction, before the batch that upserts it).
    pub async fn adopt(
        &mut self,
        table: &crate::mapping::TargetTable,
        match_cols: &[usize],
        match_vals: &[crate::model::Value],
        key_vals: &[crate::model::Value],
    ) -> crate::error::Result<Adopted> {
        match self {
            Sink::Mysql(s) => s.adopt(table, match_cols, match_vals, key_vals).await,
            Sink::Postgres(s) => s.adopt(table, match_cols, match_vals, key_vals).await,
        }
    }

    /// Begin a transaction whose locked reads and writes see one snapshot: a row another
    /// session commits after the first read makes the transaction fail (and the batch retry)
    /// instead of being overwritten unseen. (InnoDB's default; `REPEATABLE READ` on
    /// PostgreSQL.)
    pub async fn begin_checked(&mut self) -> crate::error::Result<()> {
        match self {
            Sink::Mysql(s) => s.begin().await,
            Sink::Postgres(s) => s.begin_repeatable_read().await,
        }
    }

    pub async fn commit(&mut self) -> crate::error::Result<()> {
        match self {
            Sink::Mysql(s) => s.commit().await,
            Sink::Postgres(s) => s.commit().await,
        }
    }

    pub async fn rollback(&mut self) {
        match self {
            Sink::Mysql(s) => s.rollback().await,
            Sink::Postgres(s) => s.rollback().await,
        }
    }

    /// Turn bulk load on (`Try`) or off for the next batches (see [`Bulk`]).
    pub fn set_bulk(&mut self, on: bool) {
        let b = if on { Bulk::Try } else { Bulk::Off };
        match self {
            Sink::Mysql(s) => s.bulk = b,
            Sink::Postgres(s) => s.bulk = b,
        }
    }

    pub fn bulk(&self) -> Bulk {
        match self {
            Sink::Mysql(s) => s.bulk,
            Sink::Postgres(s) => s.bulk,
        }
    }

    /// [`Sink::apply`] inside a transaction the caller began.
    pub async fn apply_in_txn(
        &mut self,
        ops: &[crate::mapping::TargetOp],
    ) -> crate::error::Result<Applied> {
        match self {
            Sink::Mysql(s) => s.apply_in_txn(ops).await,
            Sink::Postgres(s) => s.apply_in_txn(ops).await,
        }
    }

    /// Inside a transaction: the rows with these keys, locked until it ends, in the table's
    /// column order and the source decoder's representation.
    pub async fn read_rows(
        &mut self,
        table: &crate::mapping::TargetTable,
        keys: &[Vec<crate::model::Value>],
    ) -> crate::error::Result<Vec<Vec<crate::model::Value>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Sink::Mysql(s) => s.read_rows(table, keys).await,
            Sink::Postgres(s) => s.read_rows(table, keys).await,
        }
    }

    /// Inside a transaction: a position of this database's change stream that every
    /// transaction committed so far is at or before.
    ///
    /// With `mark` (PostgreSQL), the transaction also writes a marked WAL record after it, so
    /// the database's source reads past the position as soon as the transaction commits.
    pub async fn position(
        &mut self,
        mark: bool,
    ) -> crate::error::Result<crate::position::Position> {
        match self {
            Sink::Mysql(s) => s.position().await,
            Sink::Postgres(s) => s.position(mark).await,
        }
    }

    pub async fn ensure_progress(&mut self) -> crate::error::Result<()> {
        match self {
            Sink::Mysql(s) => s.ensure_progress().await,
            Sink::Postgres(s) => s.ensure_progress().await,
        }
    }

    pub async fn write_progress(&mut self, flow: &str, position: &str) -> crate::error::Result<()> {
        match self {
            Sink::Mysql(s) => s.write_progress(flow, position).await,
            Sink::Postgres(s) => s.write_progress(flow, position).await,
        }
    }

    pub async fn read_progress(&mut self, flow: &str) -> crate::error::Result<Option<String>> {
        match self {
            Sink::Mysql(s) => s.read_progress(flow).await,
            Sink::Postgres(s) => s.read_progress(flow).await,
        }
    }

    /// Apply a batch in one target transaction (the contract above).
    pub async fn apply(
        &mut self,
        ops: &[crate::mapping::TargetOp],
    ) -> crate::error::Result<Applied> {
        match self {
            Sink::Mysql(s) => s.apply(ops).await,
            Sink::Postgres(s) => s.apply(ops).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_fields_escape_what_the_loaders_unescape() {
        let mut line = Vec::new();
        push_field(&mut line, Some(b"a\tb\nc\rd\\e\0f \xf0\x9f\x8e\x89"));
        line.push(b'\t');
        push_field(&mut line, None);
        line.push(b'\t');
        push_field(&mut line, Some(b"\\N"));
        assert_eq!(
            line,
            b"a\\tb\\nc\\rd\\\\e\\0f \xf0\x9f\x8e\x89\t\\N\t\\\\N".to_vec(),
            "{}",
            String::from_utf8_lossy(&line)
        );
    }

    #[test]
    fn bulk_lines_carry_the_present_columns_or_nothing() {
        use crate::model::Value;
        let table = Arc::new(crate::mapping::TargetTable {
            endpoint: "erp".into(),
            namespace: "erp".into(),
            name: "t".into(),
            columns: vec!["id".into(), "skipped".into(), "note".into()],
            key: vec![0],
            update_only: false,
            insert_only: vec![],
        });
        let up = |id, note: Value| TargetOp::Upsert {
            table: table.clone(),
            row: vec![Some(Value::Int(id)), None, Some(note)],
        };
        let text = |_: usize, v: &Value| match v {
            Value::Null => Some(None),
            Value::Int(i) => Some(Some(i.to_string().into_bytes())),
            Value::Text(s) => Some(Some(s.clone().into_bytes())),
            _ => None,
        };
        let (a, b) = (up(1, Value::Text("a\tb".into())), up(2, Value::Null));
        let (present, data) = bulk_lines(&[&a, &b], text).unwrap();
        assert_eq!(present, vec![0, 2]);
        assert_eq!(data, b"1\ta\\tb\n2\t\\N\n".to_vec());
        let c = up(3, Value::Float(1.0));
        assert!(
            bulk_lines(&[&a, &c], text).is_none(),
            "a value that cannot travel"
        );
    }

    #[test]
    fn only_insertable_upserts_are_bulk_loaded() {
        let t = |update_only| {
            Arc::new(crate::mapping::TargetTable {
                endpoint: "erp".into(),
                namespace: "erp".into(),
                name: "t".into(),
                columns: vec!["id".into()],
                key: vec![0],
                update_only,
                insert_only: vec![],
            })
        };
        let up = |table| TargetOp::Upsert {
            table,
            row: vec![Some(crate::model::Value::Int(1))],
        };
        let del = TargetOp::Delete {
            table: t(false),
            key: vec![crate::model::Value::Int(1)],
        };
        assert!(bulk_run(Bulk::Try, &[up(t(false))]));
        assert!(
            !bulk_run(Bulk::Try, &[up(t(true))]),
            "write = update never inserts"
        );
        assert!(!bulk_run(Bulk::Try, &[del]));
        assert!(!bulk_run(Bulk::Off, &[up(t(false))]));
        assert!(!bulk_run(Bulk::Refused, &[up(t(false))]));
    }
}
