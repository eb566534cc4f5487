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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    pending: Arc<Pending>,
}

impl Outbox {
    pub fn new(
        capacity_events: usize,
        max_rows: usize,
        pending: Arc<Pending>,
    ) -> (Outbox, mpsc::Receiver<SourceEvent>, Arc<Semaphore>) {
        let (tx, rx) = mpsc::channel(capacity_events);
        let rows = Arc::new(Semaphore::new(max_rows));
        pending.new_session();
        (
            Outbox {
                tx,
                rows: rows.clone(),
                max_rows,
                pending,
            },
            rx,
            rows,
        )
    }

    pub async fn send(&self, ev: SourceEvent) -> Result<()> {
        let n = ev.rows().min(self.max_rows) as u32;
        if let SourceEvent::Txn(t) = &ev {
            self.pending.received(t.commit_time_us);
        }
        let permit = self
            .rows
            .acquire_many(n)
            .await
            .map_err(|_| Error::Shutdown)?;
        permit.forget();
        self.tx.send(ev).await.map_err(|_| Error::Shutdown)
    }
}

/// What a flow has received and not applied yet, for its replication lag: the age of the
/// oldest such change, whatever holds it up (a slow or frozen target, a full queue, a
/// session that ended and is replaying). Kept by the flow across its sessions.
#[derive(Default)]
pub struct Pending {
    state: Mutex<PendingState>,
}

#[derive(Default)]
struct PendingState {
    /// Commit times (µs) of the transactions received and not yet applied, oldest first.
    received: VecDeque<i64>,
    /// The oldest unapplied commit time of a session that ended: its changes are read again
    /// by the next one, and count until a batch is applied.
    carried: Option<i64>,
    /// When the statement the target is working on was sent.
    busy_since: Option<Instant>,
}

impl Pending {
    fn with<R>(&self, f: impl FnOnce(&mut PendingState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn received(&self, commit_us: i64) {
        self.with(|s| s.received.push_back(commit_us));
    }

    /// A new session reads again from the checkpoint: what the last one held still counts.
    fn new_session(&self) {
        self.with(|s| {
            let front = s.received.front().copied();
            s.carried = match (s.carried, front) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            s.received.clear();
            s.busy_since = None;
        });
    }

    /// `n` transactions (the oldest received) are applied.
    pub fn applied(&self, n: usize) {
        self.with(|s| {
            let n = n.min(s.received.len());
            s.received.drain(..n);
            if n > 0 {
                s.carried = None;
            }
        });
    }

    /// The target is working on a write from now until [`Self::idle`].
    pub fn busy(&self) {
        self.with(|s| s.busy_since = Some(Instant::now()));
    }

    pub fn idle(&self) {
        self.with(|s| s.busy_since = None);
    }

    /// Seconds since the oldest unapplied change committed; 0 when nothing waits.
    pub fn lag_seconds(&self, now_us: i64) -> f64 {
        self.with(|s| {
            let oldest = match (s.carried, s.received.front().copied()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            oldest
                .filter(|&t| t > 0)
                .map(|t| (now_us - t).max(0) as f64 / 1e6)
                .unwrap_or(0.0)
        })
    }

    /// How long the current write has been running, if one is.
    pub fn busy_for(&self) -> Option<Duration> {
        self.with(|s| s.busy_since.map(|t| t.elapsed()))
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
