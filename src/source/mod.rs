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

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

use crate::error::{Error, Result};

/// Where a source sends its events: a channel bounded by the number of row changes waiting in
/// it (not by transactions), so memory stays bounded whatever the transaction sizes. The apply
/// loop gives the rows back ([`Outbox::release`]) once it has applied them.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<SourceEvent>,
    rows: Arc<Semaphore>,
    max_rows: usize,
}

impl Outbox {
    pub fn new(
        capacity_events: usize,
        max_rows: usize,
    ) -> (Outbox, mpsc::Receiver<SourceEvent>, Arc<Semaphore>) {
        let (tx, rx) = mpsc::channel(capacity_events);
        let rows = Arc::new(Semaphore::new(max_rows));
        (
            Outbox {
                tx,
                rows: rows.clone(),
                max_rows,
            },
            rx,
            rows,
        )
    }

    pub async fn send(&self, ev: SourceEvent) -> Result<()> {
        let n = ev.rows().min(self.max_rows) as u32;
        let permit = self
            .rows
            .acquire_many(n)
            .await
            .map_err(|_| Error::Shutdown)?;
        permit.forget();
        self.tx.send(ev).await.map_err(|_| Error::Shutdown)
    }
}

#[derive(Debug)]
pub enum SourceEvent {
    Txn(Transaction),
    /// Everything before this position has been sent; nothing mapped is in flight.
    Heartbeat(Position),
}

impl SourceEvent {
    /// Row changes it carries, as counted against the outbox bound (at least 1 for a
    /// transaction, 0 for a heartbeat).
    pub fn rows(&self) -> usize {
        match self {
            SourceEvent::Txn(t) => t.changes.len().max(1),
            SourceEvent::Heartbeat(_) => 0,
        }
    }
}
