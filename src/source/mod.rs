//! Sources: read a database's replication stream and yield whole committed transactions.
//!
//! Contract shared by every source:
//! - transactions arrive in commit order, each with the position just past its commit;
//! - a source never acknowledges to its server a position beyond the durable checkpoint it is
//!   handed (`durable`), so a crash can always resume from the store;
//! - when no transaction is open and nothing mapped is pending, it sends a `Heartbeat` so the
//!   checkpoint (and the server's retained WAL/binlog) moves on even when mapped tables are idle.

pub mod mysql;
pub mod postgres;

use crate::model::Transaction;
use crate::position::Position;

#[derive(Debug)]
pub enum SourceEvent {
    Txn(Transaction),
    /// Everything before this position has been sent; nothing mapped is in flight.
    Heartbeat(Position),
}
