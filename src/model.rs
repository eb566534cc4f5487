//! The change model shared by every connector.
//!
//! A source turns its replication stream into [`Transaction`]s of [`RowChange`]s; mapping turns a
//! `RowChange` into target operations; a sink applies those. Nothing here knows which database a
//! change came from, so a third endpoint kind only has to produce and consume these types.
//!
//! Values are lossless: exact decimals stay decimal text, unsigned 64-bit integers keep their full
//! range, timestamps keep microseconds and say whether they carry a zone. A value that the target
//! cannot hold exactly is a row error raised by the sink, never a silent conversion here.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::position::Position;

pub mod iso;

/// Prefix of the replication origin (PostgreSQL) or marker that tags every transaction
/// rowbridge writes, so no source streams rowbridge's own writes back (echo suppression).
pub const ORIGIN_PREFIX: &str = "rowbridge";

/// Whether a transaction's origin marks it as written by rowbridge.
pub fn is_own_write(origin: Option<&str>) -> bool {
    origin.is_some_and(|o| o.starts_with(ORIGIN_PREFIX))
}

/// One column value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    /// Exact decimal in canonical text form (`-12.3400`), scale preserved.
    Decimal(String),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    /// Date and time with no zone (PostgreSQL `timestamp`, MySQL `DATETIME`).
    Timestamp(NaiveDateTime),
    /// An instant (PostgreSQL `timestamptz`, MySQL `TIMESTAMP`), kept in UTC.
    TimestampTz(DateTime<Utc>),
    /// JSON document as text.
    Json(String),
    Uuid(uuid::Uuid),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The name of the variant, for error messages that must not show the value itself.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::UInt(_) => "uint",
            Value::Decimal(_) => "decimal",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::Timestamp(_) => "timestamp",
            Value::TimestampTz(_) => "timestamptz",
            Value::Json(_) => "json",
            Value::Uuid(_) => "uuid",
        }
    }
}

/// A table as its source describes it: qualified name and column names in stream order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Schema (PostgreSQL) or database (MySQL).
    pub namespace: String,
    pub name: String,
    pub columns: Vec<ColumnSchema>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSchema {
    pub name: String,
    /// Source type name or id, for diagnostics.
    pub type_name: String,
    /// Part of the key the source identifies rows by (replica identity / primary key).
    pub key: bool,
}

impl TableSchema {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

impl fmt::Display for TableSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// A row image aligned with [`TableSchema::columns`]. `None` marks a column the source did not
/// send (an unchanged TOAST value): it must be left as it is on the target, never written as NULL.
pub type RowImage = Vec<Option<Value>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Insert,
    Update,
    Delete,
    Truncate,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Truncate => "truncate",
        }
    }
}

/// One row change. `before` holds the old key (or the whole old row under REPLICA IDENTITY FULL /
/// binlog_row_image=FULL) for updates and deletes; `after` the new row for inserts and updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowChange {
    pub table: Arc<TableSchema>,
    pub op: Op,
    pub before: Option<RowImage>,
    pub after: Option<RowImage>,
    /// Columns (index, reason) the source could not decode; their values are left out. A
    /// mapping that uses one of them dead-letters the change instead of applying it.
    #[serde(default)]
    pub invalid: Vec<(usize, String)>,
}

/// A committed source transaction, in commit order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Source endpoint name.
    pub endpoint: String,
    /// Position just past this transaction's commit: resuming from it replays nothing of it.
    pub position: Position,
    /// Source commit time, microseconds since the Unix epoch.
    pub commit_time_us: i64,
    /// Replication origin or marker that tagged this transaction, if any.
    pub origin: Option<String>,
    pub changes: Vec<RowChange>,
    /// A chunk of a transaction too large to hold in memory at once: applied in its own target
    /// transaction(s), never moving the checkpoint. `position` is then where the transaction
    /// starts (its commit LSN on PostgreSQL, the previous group's end on MySQL): a restart
    /// replays the whole transaction from the checkpoint, and every statement is idempotent.
    #[serde(default)]
    pub partial: bool,
}
