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
