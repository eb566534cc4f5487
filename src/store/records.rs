//! Records kept in the store besides checkpoints.

use serde::{Deserialize, Serialize};

use crate::model::RowChange;
use crate::position::Position;

/// A source change that could not be applied, with why. Replay re-runs the current mapping on
/// `change`, so fixing the mapping or the target data and replaying loses nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: u64,
    pub flow: String,
    pub mapping: String,
    /// Source table, `endpoint:schema.table`.
    pub table: String,
    /// Key values as text.
    pub key: String,
    pub reason: String,
    /// Error class (`row`, ...).
    pub class: String,
    /// Unix microseconds when it was dead-lettered.
    pub at_us: i64,
    pub position: Position,
    pub change: RowChange,
}

/// A source change parked until the row it references has been written (a child before its
/// parent). It is applied, in arrival order, as soon as the reference resolves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    pub id: u64,
    pub flow: String,
    pub mapping: String,
    /// The child row's own source key, so its later changes wait behind it.
    pub key: String,
    /// The referenced mapping and source key that must be written first.
    pub ref_mapping: String,
    pub ref_key: String,
    pub endpoint: String,
    pub position: Position,
    pub commit_time_us: i64,
    pub at_us: i64,
    pub change: RowChange,
}

/// An operator action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at_us: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

impl AuditEntry {
    pub fn new(actor: &str, action: &str, detail: String) -> AuditEntry {
        AuditEntry {
            at_us: chrono::Utc::now().timestamp_micros(),
            actor: actor.to_string(),
            action: action.to_string(),
            detail,
        }
    }
}

/// What both sides of a row mapped both ways last agreed on: a fingerprint per field (pair
/// field order), or `None` when the row is absent on both sides. A side whose current row
/// differs from it has changed since rowbridge last synced the row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub fields: Option<Vec<u64>>,
    pub at_us: i64,
    /// Per endpoint, where its stream stood when rowbridge last wrote the row there (after
    /// the locked read): that side's changes of the row up to there were seen by that write,
    /// and the flow reading them skips them instead of carrying them over again.
    pub barriers: Vec<(String, Position)>,
}

impl SyncState {
    pub fn barrier(&self, endpoint: &str) -> Option<&Position> {
        self.barriers
            .iter()
            .find(|(e, _)| e == endpoint)
            .map(|(_, p)| p)
    }

    pub fn set_barrier(&mut self, endpoint: &str, pos: Position) {
        self.barriers.retain(|(e, _)| e != endpoint);
        self.barriers.push((endpoint.to_string(), pos));
    }
}

/// One side's version of a conflicting row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub endpoint: String,
    /// Field values (pair field order, this side's representation); `None`: deleted.
    pub row: Option<Vec<crate::model::Value>>,
    /// Source commit time of the change that produced it, once this side's flow read it.
    pub commit_us: Option<i64>,
    /// The version is complete when this side's flow has read up to here (the position of
    /// the side's database when the conflict was found); `None`: complete.
    pub until: Option<Position>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConflictState {
    /// Waiting for both versions to be complete, then resolved by policy.
    Open,
    /// `manual`: waits for an operator.
    Parked,
    Resolved {
        /// `last_writer_wins`, `source_wins`, `merge`, `manual` (operator).
        resolution: String,
        /// The side taken (an endpoint name) or `merged`.
        taken: String,
        /// `policy` or the operator.
        by: String,
        at_us: i64,
    },
}

/// Concurrent edits of one row on both sides, with both versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub id: u64,
    /// The `direction = "both"` mapping.
    pub pair: String,
    /// The row's key as text.
    pub entity: String,
    pub base: Option<SyncState>,
    /// Side a (the mapping file's source) and side b.
    pub a: Version,
    pub b: Version,
    pub detected_us: i64,
    pub detected_by: String,
    pub state: ConflictState,
}

/// A write a conflict resolution owes one side, applied by the flow that writes there. It is
/// skipped when that side's row is no longer the version the resolution decided against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingWrite {
    pub id: u64,
    pub conflict: u64,
    pub pair: String,
    pub entity: String,
    pub endpoint: String,
    /// Field values to write (pair field order); `None`: delete the row.
    pub row: Option<Vec<crate::model::Value>>,
    /// Key values (pair key order).
    pub key: Vec<crate::model::Value>,
    /// Fingerprints of the row the side must still hold (`None`: absent).
    pub expected: Option<Vec<u64>>,
}

/// An online resync of one mapping (see `pipeline::resync`), stored after each chunk so a
/// restart continues where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResyncJob {
    pub mapping: String,
    pub flow: String,
    /// Extra SQL condition on the source rows (`--where`).
    pub filter: Option<String>,
    /// Only these source keys (`--keys`), copied in this order; `rows` counts how many are done.
    pub keys: Option<Vec<Vec<crate::model::Value>>>,
    /// Key of the last row copied (`None`: not started).
    pub last_key: Option<Vec<crate::model::Value>>,
    pub rows: u64,
    /// Rows to copy, counted when the copy starts.
    pub total: Option<u64>,
    pub started_us: i64,
    pub updated_us: i64,
    pub done: bool,
    pub actor: String,
}

/// How a resync job ended other than by copying everything: it failed (its own error, the
/// flow goes on) or an operator cancelled it. Kept apart from [`ResyncJob`] so jobs stored by
/// an older release stay readable; cleared when a new job of the mapping is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResyncEnd {
    /// `failed` or `cancelled`.
    pub state: String,
    /// Why it failed (naming no row value), or who cancelled it.
    pub reason: String,
    pub at_us: i64,
}

/// What a mapping last synced of one source row, as the versions of it the target agreed with
/// whose echoes may still be on their way (oldest first, the current last): per source column
/// the mapping reads (lower case), the value's fingerprint; `None` for a row deleted in sync.
pub type Synced = Vec<Option<Vec<(String, u64)>>>;
