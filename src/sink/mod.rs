//! Sinks: apply a batch of target operations in one target transaction.
//!
//! Contract shared by every sink:
//! - every statement is idempotent (upsert by key, delete by key), so applying a batch twice
//!   leaves the same state: replay after a crash between target commit and checkpoint is safe;
//! - operations are applied in the order given (source commit order);
//! - a row-class error isolates only the offending operations: the rest of the batch commits
//!   and the failures come back as [`Applied::failed`] for the dead-letter queue;
//! - any other error rolls the whole batch back and is returned, for the caller to retry.

pub mod mysql;

use crate::error::Error;

/// Result of one applied batch.
#[derive(Debug, Default)]
pub struct Applied {
    /// Operations written.
    pub rows: usize,
    /// Indexes (into the batch) of operations rejected with a row error, and why.
    pub failed: Vec<(usize, Error)>,
}
