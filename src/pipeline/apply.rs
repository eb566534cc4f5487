//! The apply loop: group source transactions into target transactions, apply, checkpoint.
//!
//! Why this loses nothing and duplicates nothing in effect: a batch's end position is stored
//! only after the sink committed the batch; a crash before that replays the batch from the
//! previous checkpoint, and every target statement is idempotent. Positions reported to the
//! source (and so to the server) are only those the store has flushed to disk.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;

use super::keys::KeyState;
use super::Flow;
use crate::board::{Control, Replayed};
use crate::error::{Error, Result};
use crate::mapping::{describe_key, BoundMapping, Mapped, Mappings, TargetOp};
use crate::metrics as m;
use crate::model::{Op, RowChange, Transaction};
use crate::position::Position;
use crate::sink::Sink;
use crate::source::SourceEvent;
use crate::store::{DeadLetter, Store};

pub struct Applier {
    flow: String,
    pub(super) source: String,
    pub(super) target: String,
    pub(super) hub: Arc<super::conflict::Hub>,
    /// Whether this flow carries mappings with conflicts: its batches take turns with the
    /// opposite flow and check the target's rows first.
    pub(super) guarded: bool,
    pub(super) side_tables: HashMap<String, Arc<crate::mapping::TargetTable>>,
    board: crate::board::Board,
    /// Source transactions waiting when the current batch was gathered.
    queue_len: usize,
    /// Dead letters written since last cleared (id, reason): a replay's outcome.
    new_dead_letters: Vec<(u64, String)>,
    pub(super) config: Arc<crate::config::Config>,
    /// Source connection for resync reads, opened when one runs.
    pub(super) reader: Option<super::resync::SourceReader>,
    pub(super) resync_schema: HashMap<String, Arc<crate::model::TableSchema>>,
    /// While a resync chunk is mapped: only this mapping.
    pub(super) resync_only: Option<String>,
    /// Whether a resync may be waiting (checked when idle).
    resync_pending: bool,
    /// The next resync chunk, read while the previous one was written. Only valid while no
    /// other write happened since the read (anything else clears it).
    pub(super) prefetched: Option<super::resync::Prefetched>,
    /// Mappings whose resync found rows already in the target: written with upserts only.
    pub(super) bulk_refused: std::collections::HashSet<String>,
    pub(super) mappings: Arc<Mappings>,
    pub(super) store: Store,
    max_rows: usize,
    max_txns: usize,
    queue_rows: usize,
    /// Last stored checkpoint.
    pub(super) checkpoint: Option<Position>,
    /// Last checkpoint flushed and handed to the source.
    durable: Option<Position>,
    /// What the flow received and has not applied (lag), and whether the target is busy.
    pending: Arc<crate::source::Pending>,
    /// Bindings per source table version (keyed by the schema's address, kept alive here).
    pub(super) bound: HashMap<usize, Vec<BoundMapping>>,
    /// Key map (with the batch's pending writes) and the rows waiting for a reference.
    pub(super) keys: KeyState,
    pub(super) max_waiting: usize,
    /// What each mapping last synced of the rows it reads back (echoes, see `echo`).
    pub(super) echo: super::echo::Tracker,
    /// A dead-letter replay is running: its changes are carried whatever the synced state.
    replaying: bool,
    /// Per op of the guarded batch in flight, the read-back states its write set.
    guarded_read_back: Vec<Vec<String>>,
    /// Per (transaction, source table, binding) of the batch in flight: the last change of
    /// each row, by synced-state key.
    last_change: HashMap<(usize, usize, usize), HashMap<String, usize>>,
}

/// Whether a later change of the same source transaction carries this row's final version in
/// every column `b` reads, so this one need not be carried: the row's versions in between were
/// never visible outside the transaction. Matters for rows rowbridge wrote through several
/// mappings in one transaction (an insert by one, an update by another): only the final
/// version of each is one of the versions the readers agree with. A key change is never
/// skipped (it deletes the old key).
fn superseded(
    cache: &mut HashMap<(usize, usize, usize), HashMap<String, usize>>,
    mappings: &Mappings,
    txns: &[Transaction],
    (ti, ci, bi): (usize, usize, usize),
    b: &BoundMapping,
    key: &str,
) -> bool {
    let changes = &txns[ti].changes;
    let change = &changes[ci];
    if changes.len() < 2 || !matches!(change.op, Op::Insert | Op::Update) {
        return false;
    }
    if let (Some(before), Some(after)) = (&change.before, &change.after) {
        if b.source_key(before)
            .is_some_and(|k| Some(k) != b.source_key(after))
        {
            return false;
        }
    }
    let table = Arc::as_ptr(&change.table) as usize;
    let last = cache.entry((ti, table, bi)).or_insert_with(|| {
        let mut last = HashMap::new();
        for (j, c) in changes.iter().enumerate() {
            if Arc::as_ptr(&c.table) as usize == table {
                if let Some(k) = super::echo::Tracker::key_of(mappings, b, c) {
                    last.insert(k, j);
                }
            }
        }
        last
    });
    let Some(&j) = last.get(key).filter(|&&j| j > ci) else {
        return false;
    };
    let later = &changes[j];
    matches!(later.op, Op::Insert | Op::Update)
        && later
            .after
            .as_ref()
            .is_some_and(|a| b.reads().iter().all(|&i| matches!(a.get(i), Some(Some(_)))))
}

/// Where a target operation came from, to dead-letter the right source change.
#[derive(Clone)]
pub(super) struct Origin {
    pub txn: usize,
    pub change: usize,
    pub binding: usize,
    /// The source row's key as text (key map and waiting rows are indexed by it).
    pub source_key: String,
    /// The mapping's synced-state key of the source row, when it keeps one.
    pub sync_key: Option<String>,
}

impl Applier {
    pub fn new(flow: &Flow, checkpoint: Option<Position>) -> Result<Applier> {
        Ok(Applier {
            flow: flow.name.clone(),
            source: flow.source.clone(),
            target: flow.target.clone(),
            hub: flow.hub.clone(),
            guarded: flow.hub.guards(&flow.source, &flow.target),
            side_tables: HashMap::new(),
            board: flow.health.board.clone(),
            queue_len: 0,
            new_dead_letters: Vec::new(),
            config: flow.config.clone(),
            reader: None,
            resync_schema: HashMap::new(),
            resync_only: None,
            resync_pending: true,
            prefetched: None,
            bulk_refused: Default::default(),
            mappings: flow.mappings.clone(),
            store: flow.store.clone(),
            max_rows: flow.config.pipeline.batch_max_rows,
            max_txns: flow.config.pipeline.batch_max_txns,
            queue_rows: flow.config.pipeline.queue_rows,
            durable: checkpoint.clone(),
            checkpoint,
            pending: flow.pending.clone(),
            bound: HashMap::new(),
            keys: KeyState::load(flow.store.clone())?,
            max_waiting: flow.config.pipeline.max_waiting,
            echo: super::echo::Tracker::new(flow.store.clone()),
            replaying: false,
            guarded_read_back: Vec::new(),
            last_change: HashMap::new(),
        })
    }

    pub async fn run(
        &mut self,
        mut rx: mpsc::Receiver<SourceEvent>,
        rows: Arc<Semaphore>,
        sink: &mut Sink,
        durable_tx: watch::Sender<Option<Position>>,
        flush_every: Duration,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let mut tick = tokio::time::interval(flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (ctl_tx, mut ctl_rx) = mpsc::channel(8);
        self.board.register(&self.flow, ctl_tx);
        let owed = self.hub.waker(&self.target);
        if self.guarded {
            self.skip_committed(sink).await?;
            // What this flow has read, for conflicts waiting on this side's stream.
            if let Some(c) = &self.checkpoint {
                self.hub.read_up_to(&self.source, c);
            }
            // Writes owed from before a restart.
            owed.notify_one();
        }
        let result = loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break Err(Error::Shutdown),
                _ = tick.tick() => {
                    self.board.beat(&self.flow);
                    self.publish_durable(&durable_tx)?
                }
                Some(cmd) = ctl_rx.recv() => {
                    self.pending.busy();
                    let done = self.control(cmd, sink).await;
                    self.pending.idle();
                    if let Err(e) = done {
                        break Err(e);
                    }
                }
                // Idle: the next chunk of a resync.
                _ = std::future::ready(()), if self.resync_pending && rx.is_empty() => {
                    self.pending.busy();
                    let step = self.resync_step(sink).await;
                    self.pending.idle();
                    match step {
                        Ok(more) => self.resync_pending = more,
                        Err(e) => break Err(e),
                    }
                }
                _ = owed.notified(), if self.guarded => {
                    if let Err(e) = self.apply_batch(Vec::new(), sink).await {
                        break Err(e);
                    }
                }
                first = rx.recv() => {
                    let Some(first) = first else { break Err(Error::Shutdown) };
                    let batch = self.gather(first, &mut rx);
                    self.queue_len = rx.len();
                    let taken: usize = batch.iter().map(|ev| ev.rows().min(self.queue_rows)).sum();
                    metrics::gauge!(m::QUEUE_DEPTH, "flow" => self.flow.clone()).set(rx.len() as f64);
                    let result = self.apply_batch(batch, sink).await;
                    // These rows are out of the queue: let the source send more.
                    rows.add_permits(taken);
                    if let Err(e) = result {
                        break Err(e);
                    }
                }
            }
        };
        // Whatever ended the loop, what was committed is checkpointed: make it durable.
        self.publish_durable(&durable_tx)?;
        result
    }

    fn gather(&self, first: SourceEvent, rx: &mut mpsc::Receiver<SourceEvent>) -> Vec<SourceEvent> {
        let mut rows = first.rows();
        let mut batch = vec![first];
        while batch.len() < self.max_txns && rows < self.max_rows {
            match rx.try_recv() {
                Ok(ev) => {
                    rows += ev.rows();
                    batch.push(ev);
                }
                Err(_) => break,
            }
        }
        batch
    }

    fn publish_durable(&mut self, durable_tx: &watch::Sender<Option<Position>>) -> Result<()> {
        if self.durable == self.checkpoint {
            return Ok(());
        }
        self.store.flush()?;
        self.durable = self.checkpoint.clone();
        let _ = durable_tx.send(self.durable.clone());
        Ok(())
    }

    async fn apply_batch(&mut self, batch: Vec<SourceEvent>, sink: &mut Sink) -> Result<()> {
        let received = batch
            .iter()
            .filter(|ev| matches!(ev, SourceEvent::Txn(_)))
            .count();
        self.pending.busy();
        let result = self.apply_events(batch, sink).await;
        self.pending.idle();
        if result.is_ok() {
            self.pending.applied(received);
        }
        result
    }

    async fn apply_events(&mut self, batch: Vec<SourceEvent>, sink: &mut Sink) -> Result<()> {
        // A resync chunk read before this batch may be older than what it writes.
        self.prefetched = None;
        // The batch's checkpoint: the last complete transaction or heartbeat. A chunk of a
        // transaction still in progress moves nothing.
        let end = batch.iter().rev().find_map(|ev| match ev {
            SourceEvent::Txn(t) if t.partial => None,
            SourceEvent::Txn(t) => Some(t.position.clone()),
            SourceEvent::Heartbeat(p) => Some(p.clone()),
        });
        let end = end.filter(|e| !self.is_applied(e));
        let txns: Vec<Transaction> = batch
            .into_iter()
            .filter_map(|ev| match ev {
                SourceEvent::Txn(t) => Some(t),
                SourceEvent::Heartbeat(_) => None,
            })
            .filter(|t| {
                if t.partial {
                    // A chunk of a transaction the checkpoint has passed was applied already.
                    let passed = self.checkpoint.as_ref().and_then(|c| t.position.compare(c));
                    passed != Some(std::cmp::Ordering::Less)
                } else {
                    !self.is_applied(&t.position)
                }
            })
            .collect();
        if end.is_none() && txns.is_empty() && !self.guarded {
            return Ok(());
        }
        self.apply_txns(txns, end, sink).await
    }

    /// Map, apply and (with `end`) checkpoint source transactions. Without `end` nothing moves
    /// the checkpoint (a chunk of a large transaction, or a replayed dead letter).
    pub(super) async fn apply_txns(
        &mut self,
        mut txns: Vec<Transaction>,
        end: Option<Position>,
        sink: &mut Sink,
    ) -> Result<()> {
        // Batches of the two directions of rows mapped both ways take turns.
        let hub = self.hub.clone();
        let _turn = match self.guarded {
            true => Some(hub.turn.lock().await),
            false => None,
        };
        // A batch that fails before its commit is replayed: what it staged does not hold.
        self.echo.discard();
        self.last_change.clear();
        let mut ops = Vec::new();
        let mut origins = Vec::new();
        let mut captured = 0u64;
        for (ti, txn) in txns.iter().enumerate() {
            captured += txn.changes.len() as u64;
            for (ci, change) in txn.changes.iter().enumerate() {
                self.map_change(&txns, ti, ci, change, &mut ops, &mut origins)?;
            }
        }
        let source_txns = txns.len();
        // Parked children whose parent this batch writes go in the same target transaction.
        let consumed = self.collect_waiting(&mut txns, &mut ops, &mut origins)?;
        let flow = self.flow.clone();
        metrics::counter!(m::CHANGES_CAPTURED, "flow" => flow.clone()).increment(captured);
        self.adopt_matches(&txns, &mut ops, &mut origins, sink)
            .await?;
        let mut guarded = None;
        let mut failed_idx = Vec::new();
        let mut written = 0u64;
        let mut read_back: Vec<Vec<String>> = Vec::new();
        if !ops.is_empty() || self.guarded {
            let started = Instant::now();
            let applied = if self.guarded {
                let (g, applied) = self
                    .apply_guarded(&txns, &mut ops, &mut origins, end.as_ref(), sink)
                    .await?;
                guarded = Some(g);
                applied
            } else {
                // Before the commit: the echo can reach the other flow as soon as the target
                // commits.
                read_back = self.echo_writing(&txns, &ops, &origins)?;
                sink.apply(&ops).await?
            };
            failed_idx = applied.failed.iter().map(|(i, _)| *i).collect();
            if self.guarded {
                read_back = std::mem::take(&mut self.guarded_read_back);
            }
            metrics::histogram!(m::APPLY_SECONDS, "flow" => flow.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::histogram!(m::BATCH_ROWS, "flow" => flow.clone()).record(ops.len() as f64);
            self.count_applied(&txns, &origins, &failed_idx);
            written = applied.rows as u64;
            for (idx, err) in applied.failed {
                let o = &origins[idx];
                let op = &ops[idx];
                // The target does not agree with what this op carried or wrote.
                if let Some(k) = &o.sync_key {
                    self.echo.forget(k.clone());
                }
                if let Some(keys) = read_back.get(idx) {
                    self.echo.undo(keys)?;
                }
                let mapping = self.binding_name(&txns[o.txn].changes[o.change], o.binding);
                let t = &txns[o.txn];
                self.keys.forget(&mapping, &o.source_key);
                self.dead_letter(
                    &t.endpoint,
                    &t.position,
                    &t.changes[o.change],
                    &mapping,
                    describe_key(&op.key_values()),
                    &err,
                )?;
            }
        }
        self.keys.commit()?;
        self.echo.flush()?;
        self.finish_waiting(&consumed, &txns[source_txns..])?;
        txns.truncate(source_txns);
        if let Some(g) = guarded {
            self.guarded_commit(g, &failed_idx, end.as_ref())?;
        }
        let Some(end) = end else {
            tracing::debug!(flow = %self.flow, ops = ops.len(), "chunk of a large transaction applied");
            return Ok(());
        };
        tracing::debug!(flow = %self.flow, txns = txns.len(), ops = ops.len(), position = %end, "batch applied");
        self.store.advance_checkpoint(&self.flow, &end)?;
        let now_us = chrono::Utc::now().timestamp_micros();
        // The lag itself is measured by the flow's monitor (see `Flow::monitor`).
        self.board
            .flow_progress(&flow, Some(&end), None, written, self.queue_len);
        self.checkpoint = Some(end);
        metrics::counter!(m::TRANSACTIONS_APPLIED, "flow" => flow.clone())
            .increment(txns.len() as u64);
        metrics::gauge!(m::CHECKPOINT_TIME, "flow" => flow).set(now_us as f64 / 1e6);
        Ok(())
    }

    fn is_applied(&self, pos: &Position) -> bool {
        self.checkpoint
            .as_ref()
            .and_then(|c| pos.compare(c))
            .is_some_and(|o| o != std::cmp::Ordering::Greater)
    }

    pub(super) fn map_change(
        &mut self,
        txns: &[Transaction],
        ti: usize,
        ci: usize,
        change: &RowChange,
        ops: &mut Vec<TargetOp>,
        origins: &mut Vec<Origin>,
    ) -> Result<()> {
        let key = self.ensure_bindings(&txns[ti].endpoint, change)?;
        let bindings = &self.bound[&key];
        let mut failures = Vec::new();
        let mut parks = Vec::new();
        for (bi, b) in bindings.iter().enumerate() {
            if self
                .resync_only
                .as_ref()
                .is_some_and(|only| only != &b.mapping.name)
            {
                continue;
            }
            let source_key = b.key_text(change);
            if let Some((_, reason)) = change.invalid.iter().find(|(i, _)| b.uses_column(*i)) {
                let table = b.mapping.source.to_string();
                let err = Error::Row {
                    table,
                    key: source_key,
                    reason: reason.clone(),
                };
                failures.push((b.mapping.name.clone(), err));
                continue;
            }
            let sync_key = super::echo::Tracker::key_of(&self.mappings, b, change);
            if change.op == Op::Truncate {
                self.echo.clear(&b.mapping.name)?;
            }
            if let Some(k) = &sync_key {
                if superseded(
                    &mut self.last_change,
                    &self.mappings,
                    txns,
                    (ti, ci, bi),
                    b,
                    k,
                ) {
                    continue;
                }
                let force = self.replaying || self.resync_only.is_some();
                let unchanged = !force && self.echo.unchanged(b, change, k)?;
                tracing::trace!(flow = %self.flow, mapping = %b.mapping.name, op = ?change.op, unchanged, own = crate::model::is_own_write(txns[ti].origin.as_deref()), "synced-state check");
                if unchanged {
                    if crate::model::is_own_write(txns[ti].origin.as_deref()) {
                        metrics::counter!(m::ECHO_SKIPPED, "flow" => self.flow.clone())
                            .increment(1);
                    }
                    continue;
                }
            }
            if self.keys.is_waiting(&b.mapping.name, &source_key) {
                // An earlier change of this row waits: this one queues behind it.
                parks.push((b.mapping.name.clone(), source_key, None));
                continue;
            }
            let before = ops.len();
            match b.apply_with(change, ops, &self.keys) {
                Ok(Mapped::Done) => {
                    // Record at once, so a child later in this batch finds its parent.
                    let m = &b.mapping;
                    if self.mappings.referenced.contains(&m.name) || !m.matching.is_empty() {
                        for op in &ops[before..] {
                            match (change.op, op) {
                                (Op::Delete, _) => {
                                    self.keys.record(&m.name, source_key.clone(), None)
                                }
                                (_, TargetOp::Upsert { .. }) => self.keys.record(
                                    &m.name,
                                    source_key.clone(),
                                    Some(op.key_values()),
                                ),
                                _ => {}
                            }
                        }
                    }
                    if let Some(k) = &sync_key {
                        self.echo.carried(b, change, k.clone())?;
                    }
                    origins.extend((before..ops.len()).map(|_| Origin {
                        txn: ti,
                        change: ci,
                        binding: bi,
                        source_key: source_key.clone(),
                        sync_key: sync_key.clone(),
                    }))
                }
                Ok(Mapped::Waiting { mapping, key }) => {
                    parks.push((b.mapping.name.clone(), source_key, Some((mapping, key))));
                }
                Err(Error::Row { table, reason, .. }) => {
                    if let Some(k) = sync_key {
                        self.echo.forget(k);
                    }
                    failures.push((
                        b.mapping.name.clone(),
                        Error::Row {
                            table,
                            key: source_key,
                            reason,
                        },
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        let t = &txns[ti];
        for (mapping, key, reference) in parks {
            self.park(t, change, &mapping, key, reference)?;
        }
        for (mapping, err) in failures {
            let key = match &err {
                Error::Row { key, .. } => key.clone(),
                _ => String::new(),
            };
            self.dead_letter(&t.endpoint, &t.position, change, &mapping, key, &err)?;
        }
        Ok(())
    }

    /// Bind the mappings of this source table version (once); returns the cache key.
    pub(super) fn ensure_bindings(&mut self, endpoint: &str, change: &RowChange) -> Result<usize> {
        let key = Arc::as_ptr(&change.table) as usize;
        if !self.bound.contains_key(&key) {
            let t = &change.table;
            let mut v = Vec::new();
            for mapping in self.mappings.for_source(endpoint, &t.namespace, &t.name) {
                if mapping.target.endpoint == self.target {
                    v.push(BoundMapping::bind(mapping.clone(), t.clone())?);
                }
            }
            self.bound.insert(key, v);
        }
        Ok(key)
    }

    /// Before a batch commits: the synced states its writes establish for the mappings that
    /// read those rows back (per op, the keys set).
    pub(super) fn echo_writing(
        &mut self,
        txns: &[Transaction],
        ops: &[TargetOp],
        origins: &[Origin],
    ) -> Result<Vec<Vec<String>>> {
        if !self.mappings.has_inverse() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = origins
            .iter()
            .map(|o| self.binding_name(&txns[o.txn].changes[o.change], o.binding))
            .collect();
        let mappings = self.mappings.clone();
        self.echo.writing(&mappings, ops, |i| names.get(i).cloned())
    }

    pub(super) fn flow_name(&self) -> &str {
        &self.flow
    }

    /// An operator's command. Replies go back on the command's channel; an error ends the
    /// session as any apply error would.
    async fn control(&mut self, cmd: Control, sink: &mut Sink) -> Result<()> {
        self.prefetched = None;
        match cmd {
            Control::Replay { ids, reply } => {
                let result = self.replay(&ids, sink).await;
                let failed = result.as_ref().err().and_then(|e| self.ends_session(e));
                let _ = reply.send(result);
                match failed {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
            Control::Resync => {
                self.resync_pending = true;
                Ok(())
            }
            Control::ResyncCancel {
                mapping,
                actor,
                reply,
            } => {
                let _ = reply.send(self.cancel_resync(&mapping, &actor));
                Ok(())
            }
            Control::Repair {
                mapping,
                source_keys,
                extra_keys,
                reply,
            } => {
                let result = self.repair(&mapping, &source_keys, &extra_keys, sink).await;
                let failed = result.as_ref().err().and_then(|e| self.ends_session(e));
                let _ = reply.send(result);
                match failed {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
            Control::SetCheckpoint {
                position,
                actor,
                reply,
            } => {
                let result = self
                    .store
                    .reset_checkpoint(&self.flow, position.as_ref(), &actor)
                    .and_then(|()| self.store.flush());
                // A flow with conflicts skips what its target's progress record says was
                // committed: the record follows the operator's position, or it would undo it.
                let result = match (result, self.guarded) {
                    (Ok(()), true) => {
                        let arg = position.as_ref().map(|p| p.to_arg()).unwrap_or_default();
                        sink.write_progress(&self.flow, &arg).await
                    }
                    (r, _) => r,
                };
                let ok = result.is_ok();
                let _ = reply.send(result);
                if ok {
                    tracing::warn!(flow = %self.flow, actor, position = ?position.as_ref().map(|p| p.to_string()), "checkpoint set by an operator; restarting the flow from it");
                    // The session restarts from the stored checkpoint.
                    return Err(Error::Restart);
                }
                Ok(())
            }
        }
    }

    /// Whether an operator command's error ends the session: a refused command (an unknown
    /// id, a source read the database refuses) left no batch half-applied, so the flow streams
    /// on and only the operator hears of it; any other error is handled as an apply error.
    fn ends_session(&self, e: &Error) -> Option<Error> {
        match e {
            Error::Usage(_) => None,
            other => Some(Error::Protocol {
                endpoint: self.target.clone(),
                message: other.to_string(),
            }),
        }
    }

    /// Re-run the current mapping on dead letters of this flow, each in its own target
    /// transaction. A letter that fails again is replaced by one with the new reason.
    async fn replay(&mut self, ids: &[u64], sink: &mut Sink) -> Result<Vec<Replayed>> {
        let mut out = Vec::new();
        for &id in ids {
            let Some(dl) = self.store.dead_letter(id)? else {
                return Err(Error::Usage(format!("no dead letter {id}")));
            };
            if dl.flow != self.flow {
                return Err(Error::Usage(format!(
                    "dead letter {id} belongs to flow {}",
                    dl.flow
                )));
            }
            let txn = Transaction {
                endpoint: self.source.clone(),
                position: dl.position.clone(),
                commit_time_us: chrono::Utc::now().timestamp_micros(),
                origin: None,
                changes: vec![dl.change.clone()],
                partial: false,
            };
            self.new_dead_letters.clear();
            self.replaying = true;
            let result = self.apply_txns(vec![txn], None, sink).await;
            self.replaying = false;
            result?;
            let again = std::mem::take(&mut self.new_dead_letters);
            self.store.remove_dead_letter(id)?;
            out.push(match again.first() {
                None => Replayed {
                    id,
                    outcome: "applied",
                    new_id: None,
                    reason: None,
                },
                Some((new_id, reason)) => Replayed {
                    id,
                    outcome: "failed",
                    new_id: Some(*new_id),
                    reason: Some(reason.clone()),
                },
            });
        }
        metrics::gauge!(m::DEAD_LETTERS).set(self.store.dead_letter_count() as f64);
        Ok(out)
    }

    /// A flow with conflicts does not replay what the target committed before a crash (see
    /// [`crate::sink::PROGRESS_TABLE`]): the checkpoint moves up to the target's record.
    async fn skip_committed(&mut self, sink: &mut Sink) -> Result<()> {
        sink.ensure_progress().await?;
        let Some(text) = sink.read_progress(&self.flow).await? else {
            return Ok(());
        };
        let Some(pos) = Position::parse(&text) else {
            tracing::warn!(flow = %self.flow, "unreadable position in the target's progress table; replaying from the checkpoint");
            return Ok(());
        };
        let ahead = match &self.checkpoint {
            None => true,
            Some(c) => pos.compare(c) == Some(std::cmp::Ordering::Greater),
        };
        if ahead {
            tracing::info!(flow = %self.flow, from = ?self.checkpoint.as_ref().map(|c| c.to_string()), to = %pos, "the target committed past the checkpoint: not replaying that");
            self.store.advance_checkpoint(&self.flow, &pos)?;
            self.checkpoint = Some(pos);
        }
        Ok(())
    }

    /// A batch of a flow with conflicts, in one target transaction: owed writes, the guard,
    /// the progress record, the batch. Two sessions locking the same rows (a user's and this
    /// one) can make the database refuse the transaction (serialization failure, deadlock):
    /// it is retried here at once, from the same operations, not after a reconnect.
    async fn apply_guarded(
        &mut self,
        txns: &[Transaction],
        ops: &mut Vec<TargetOp>,
        origins: &mut Vec<Origin>,
        end: Option<&Position>,
        sink: &mut Sink,
    ) -> Result<(super::conflict::Guarded, crate::sink::Applied)> {
        let (ops0, origins0) = (ops.clone(), origins.clone());
        let mut attempt = 0u32;
        loop {
            sink.begin_checked().await?;
            let result = self.guarded_txn(txns, ops, origins, end, sink).await;
            match result {
                Ok(done) => return Ok(done),
                Err(e) => {
                    sink.rollback().await;
                    if !e.is_lock_conflict() || attempt >= 50 {
                        return Err(e);
                    }
                    attempt += 1;
                    tracing::debug!(flow = %self.flow, attempt, "target transaction refused by a concurrent write; retrying");
                    *ops = ops0.clone();
                    *origins = origins0.clone();
                    let ms = rand::random_range(1..=5 * u64::from(attempt.min(20)));
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
        }
    }

    async fn guarded_txn(
        &mut self,
        txns: &[Transaction],
        ops: &mut Vec<TargetOp>,
        origins: &mut Vec<Origin>,
        end: Option<&Position>,
        sink: &mut Sink,
    ) -> Result<(super::conflict::Guarded, crate::sink::Applied)> {
        let g = self.guard_batch(txns, ops, origins, sink).await?;
        // Before the commit: the echo can reach the other flow as soon as the target commits.
        self.guarded_read_back = self.echo_writing(txns, ops, origins)?;
        // Only batches that write: a heartbeat's move needs no record.
        if let Some(end) = end.filter(|_| !ops.is_empty()) {
            sink.write_progress(&self.flow, &end.to_arg()).await?;
        }
        let applied = sink.apply_in_txn(ops).await?;
        sink.commit().await?;
        Ok((g, applied))
    }

    /// Inside the target transaction: owed writes first, then the guard over the batch.
    async fn guard_batch(
        &mut self,
        txns: &[Transaction],
        ops: &mut Vec<TargetOp>,
        origins: &mut Vec<Origin>,
        sink: &mut Sink,
    ) -> Result<super::conflict::Guarded> {
        let (done, written) = self.apply_pending(sink).await?;
        let mut g = self.guard(txns, ops, origins, sink).await?;
        g.pending_done = done;
        g.pending_written = written;
        // Where this target's stream stands after every locked read: its changes of these rows
        // up to here are accounted for by what this transaction writes.
        if !ops.is_empty() || !g.pending_written.is_empty() {
            g.written_at = Some(sink.position(false).await?);
        }
        Ok(g)
    }

    /// `rowbridge_changes_applied_total{flow, mapping}`: the batch's operations that committed,
    /// by mapping (looked up once per source table and binding, not per row).
    fn count_applied(&self, txns: &[Transaction], origins: &[Origin], failed: &[usize]) {
        let mut counts: HashMap<(usize, usize), u64> = HashMap::new();
        let mut failed = failed.to_vec();
        failed.sort_unstable();
        let mut failed = failed.into_iter().peekable();
        for (i, o) in origins.iter().enumerate() {
            if failed.peek() == Some(&i) {
                failed.next();
                continue;
            }
            let table = Arc::as_ptr(&txns[o.txn].changes[o.change].table) as usize;
            *counts.entry((table, o.binding)).or_default() += 1;
        }
        for ((table, binding), n) in counts {
            let mapping = self.mapping_name(table, binding);
            metrics::counter!(m::CHANGES_APPLIED, "flow" => self.flow.clone(), "mapping" => mapping)
                .increment(n);
        }
    }

    pub(super) fn binding_name(&self, change: &RowChange, binding: usize) -> String {
        self.mapping_name(Arc::as_ptr(&change.table) as usize, binding)
    }

    /// The name of the mapping bound to a source table (by schema pointer) at `binding`.
    fn mapping_name(&self, table: usize, binding: usize) -> String {
        self.bound
            .get(&table)
            .and_then(|v| v.get(binding))
            .map(|b| b.mapping.name.clone())
            .unwrap_or_default()
    }

    pub(super) fn dead_letter(
        &mut self,
        endpoint: &str,
        position: &Position,
        change: &RowChange,
        mapping: &str,
        key: String,
        err: &Error,
    ) -> Result<()> {
        let reason = match err {
            Error::Row { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        let table = format!("{}:{}", endpoint, change.table);
        // The reason can quote row values (server messages do): log only its leading code.
        let code = reason.split(':').next().unwrap_or_default();
        tracing::warn!(flow = %self.flow, mapping, table = %table, code, "row sent to dead-letter queue");
        let id = self.store.add_dead_letter(DeadLetter {
            id: 0,
            flow: self.flow.clone(),
            mapping: mapping.to_string(),
            table,
            key,
            reason: reason.clone(),
            class: err.class().as_str().to_string(),
            at_us: chrono::Utc::now().timestamp_micros(),
            position: position.clone(),
            change: change.clone(),
        })?;
        self.new_dead_letters.push((id, reason));
        metrics::counter!(m::CHANGES_FAILED, "flow" => self.flow.clone()).increment(1);
        metrics::gauge!(m::DEAD_LETTERS).set(self.store.dead_letter_count() as f64);
        Ok(())
    }
}
