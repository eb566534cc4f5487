//! PostgreSQL source: logical replication with pgoutput.
//!
//! Setup (`prepare`) checks `wal_level`, the replica identity of every mapped table, and
//! creates or extends the publication and creates the slot. It refuses to recreate a slot when
//! the store already has a checkpoint for it: the changes in between would be lost silently, so
//! the operator is told to resync instead.
//!
//! Progress tracking: the slot's `confirmed_flush_lsn` is only ever set from the durable
//! checkpoint handed in by the pipeline (start `ack_lsn` and later `update_applied_lsn`). The
//! checkpoint is the end LSN of the last applied commit, or the WAL position of a keepalive that
//! arrived while no transaction was open and everything before it had been applied. Resuming
//! from it therefore replays at most what was applied but not yet checkpointed, and sinks
//! tolerate that replay.

mod protocol;
mod setup;
mod stream;
pub mod values;

pub use protocol::{decode, DecodeError, Message};
pub use setup::{prepare, quote_ident, slot_position, verify_settings, PgConn};
pub use stream::PgSource;
