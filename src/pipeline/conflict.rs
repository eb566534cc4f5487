//! Conflicts between the two directions of a `direction = "both"` mapping.
//!
//! Every row mapped both ways has a sync state in the store: a fingerprint of each field as
//! both sides last agreed. Before a flow writes such a row, it reads the target's current row
//! inside the target transaction, locked (`FOR UPDATE`). When the target still holds the
//! agreed state (or already holds what is being written) the write goes ahead and the sync
//! state moves; otherwise the target changed since rowbridge last synced it and the incoming
//! change conflicts with it.
//!
//! A conflict holds both versions. The incoming side's version is complete (its row and source
//! commit time are known); the target side's row is known from the read, but not its commit
//! time, nor whether more changes of the row are on their way: the conflict records the
//! target database's stream position at the read, and the version is complete once the flow
//! reading that database has read up to there (attaching every change of the row it meets).
//! While a conflict is unresolved both flows hold back changes of the row and attach them as
//! newer versions, so nothing overtakes the decision.
//!
//! Once both versions are complete the mapping's policy decides, per field: the final row, the
//! side or sides that must be written, and the new sync state. The writes are owed to the
//! flows that write those sides ([`PendingWrite`]), which apply them before anything else,
//! locked and only if the side still holds the version the decision was taken against (a newer
//! edit on that side supersedes it, and flows on as a normal change). `manual` parks the
//! conflict until an operator takes a side.
//!
//! The two flows of a daemon take turns on rows mapped both ways (the [`Hub`] lock), so a
//! decision, the sync state and the pending writes are always seen whole by the other flow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::apply::{Applier, Origin};
use super::echo::value_hash;
use crate::error::{Error, Result};
use crate::mapping::{Mappings, Pair, Policy, TargetOp, TargetTable};
use crate::metrics as m;
use crate::model::{Transaction, Value};
use crate::position::Position;
use crate::sink::Sink;
use crate::store::{Conflict, ConflictState, PendingWrite, Store, SyncState, Version};

/// What the flows of one daemon share about rows mapped both ways.
pub struct Hub {
    /// Held by a flow for a whole batch that may touch rows mapped both ways.
    pub turn: tokio::sync::Mutex<()>,
    wake: Mutex<HashMap<String, Arc<Notify>>>,
    /// How far each source endpoint's flow has read (its last checkpoint).
    read: Mutex<HashMap<String, Position>>,
    store: Store,
    mappings: Arc<Mappings>,
    /// Endpoints whose commit times have whole-second precision (MySQL/MariaDB binlog).
    coarse: Vec<String>,
}

impl Hub {
    pub fn new(store: Store, mappings: Arc<Mappings>, coarse: Vec<String>) -> Arc<Hub> {
        Arc::new(Hub {
            turn: tokio::sync::Mutex::new(()),
            wake: Mutex::new(HashMap::new()),
            read: Mutex::new(HashMap::new()),
            store,
            mappings,
            coarse,
        })
    }

    /// The hub of a daemon (or of the CLI over a stopped daemon's store). MySQL/MariaDB
    /// binlog commit times have whole seconds: conflicts with such a side compare at that
    /// precision.
    pub fn for_config(
        store: Store,
        mappings: Arc<Mappings>,
        config: &crate::config::Config,
    ) -> Arc<Hub> {
        let coarse = config
            .endpoints
            .iter()
            .filter(|(_, e)| e.kind == crate::config::EndpointKind::Mysql)
            .map(|(n, _)| n.clone())
            .collect();
        Hub::new(store, mappings, coarse)
    }

    /// Whether a flow from `source` to `target` carries a mapping with conflicts.
    pub fn guards(&self, source: &str, target: &str) -> bool {
        self.mappings.pairs.values().any(|p| {
            (p.a.endpoint == source && p.b.endpoint == target)
                || (p.b.endpoint == source && p.a.endpoint == target)
        })
    }

    /// Notified when a write is owed to `endpoint`.
    pub fn waker(&self, endpoint: &str) -> Arc<Notify> {
        let mut w = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        w.entry(endpoint.to_string()).or_default().clone()
    }

    fn wake(&self, endpoint: &str) {
        self.waker(endpoint).notify_one();
    }

    pub(super) fn read_up_to(&self, source: &str, pos: &Position) {
        let mut r = self.read.lock().unwrap_or_else(|e| e.into_inner());
        r.insert(source.to_string(), pos.clone());
    }

    fn has_read(&self, endpoint: &str, mark: &Position) -> bool {
        let r = self.read.lock().unwrap_or_else(|e| e.into_inner());
        r.get(endpoint).is_some_and(|p| p.reached(mark))
    }

    /// Every loaded mapping.
    pub fn mappings(&self) -> &[Arc<crate::mapping::Mapping>] {
        &self.mappings.list
    }

    pub fn mapping(&self, name: &str) -> Option<&Arc<crate::mapping::Mapping>> {
        self.mappings.list.iter().find(|m| m.name == name)
    }

    pub fn pair(&self, name: &str) -> Option<&Arc<Pair>> {
        self.mappings.pairs.get(name)
    }

    /// Decide a conflict (by policy, or as an operator chose), record it and owe the writes.
    /// Called with the turn held.
    pub fn decide(&self, c: &mut Conflict, choice: &Choice, by: &str) -> Result<()> {
        let result = self.decide_inner(c, choice, by);
        metrics::gauge!(m::CONFLICTS_OPEN).set(self.store.open_conflict_count() as f64);
        result
    }

    fn decide_inner(&self, c: &mut Conflict, choice: &Choice, by: &str) -> Result<()> {
        let pair = self
            .pair(&c.pair)
            .ok_or_else(|| Error::Usage(format!("mapping '{}' is not loaded", c.pair)))?
            .clone();
        let coarse =
            self.coarse.contains(&pair.a.endpoint) || self.coarse.contains(&pair.b.endpoint);
        let outcome = resolve(&pair, c, choice, coarse).map_err(Error::Usage)?;
        let Some(outcome) = outcome else {
            if c.state != ConflictState::Parked {
                c.state = ConflictState::Parked;
                self.store.put_conflict(c)?;
                metrics::counter!(m::CONFLICTS, "mapping" => pair.name.clone(), "resolution" => "manual")
                    .increment(1);
                tracing::warn!(conflict = c.id, mapping = %pair.name, "conflict parked for an operator");
            }
            return Ok(());
        };
        let target = hashes_of(outcome.row.as_deref());
        for v in [&c.a, &c.b] {
            if hashes_of(v.row.as_deref()) == target {
                continue;
            }
            let key_row = outcome.row.as_ref().or(v.row.as_ref());
            let key = key_row
                .map(|r| pair.key.iter().map(|&i| r[i].clone()).collect())
                .unwrap_or_default();
            self.store.add_pending(PendingWrite {
                id: 0,
                conflict: c.id,
                pair: pair.name.clone(),
                entity: c.entity.clone(),
                endpoint: v.endpoint.clone(),
                row: outcome.row.clone(),
                key,
                expected: hashes_of(v.row.as_deref()),
            })?;
        }
        let now = chrono::Utc::now().timestamp_micros();
        let barriers = self
            .store
            .sync_state(&pair.name, &c.entity)?
            .map(|s| s.barriers)
            .unwrap_or_default();
        self.store.set_sync_state(
            &pair.name,
            &c.entity,
            &SyncState {
                fields: target.clone(),
                at_us: now,
                barriers,
            },
        )?;
        let counted = c.state != ConflictState::Parked;
        c.state = ConflictState::Resolved {
            resolution: outcome.resolution.to_string(),
            taken: outcome.taken.clone(),
            by: by.to_string(),
            at_us: now,
        };
        self.store.put_conflict(c)?;
        if counted {
            metrics::counter!(m::CONFLICTS, "mapping" => pair.name.clone(), "resolution" => outcome.resolution)
                .increment(1);
        }
        tracing::info!(conflict = c.id, mapping = %pair.name, resolution = outcome.resolution, taken = %outcome.taken, by, "conflict resolved");
        self.wake(&c.a.endpoint);
        self.wake(&c.b.endpoint);
        Ok(())
    }

    /// After a flow from `source` moved its checkpoint: complete the versions it has now read
    /// in full and decide the conflicts whose versions are both complete. Turn held.
    fn settle(&self, source: &str, pos: &Position) -> Result<()> {
        self.read_up_to(source, pos);
        for mut c in self.store.open_conflicts()? {
            if c.state != ConflictState::Open {
                continue;
            }
            let mut changed = false;
            for v in [&mut c.a, &mut c.b] {
                if v.until
                    .as_ref()
                    .is_some_and(|u| self.has_read(&v.endpoint, u))
                {
                    v.until = None;
                    changed = true;
                }
            }
            if c.a.until.is_none() && c.b.until.is_none() {
                self.decide(&mut c, &Choice::Policy, "policy")?;
            } else if changed {
                self.store.put_conflict(&c)?;
            }
        }
        metrics::gauge!(m::CONFLICTS_OPEN).set(self.store.open_conflict_count() as f64);
        Ok(())
    }
}

/// How a conflict is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The mapping's policy.
    Policy,
    /// An operator takes this endpoint's version.
    Take(String),
    /// An operator merges: fields changed on one side keep that change; a field changed on
    /// both needs `prefer` (an endpoint).
    Merged { prefer: Option<String> },
}

/// A decided conflict: the row both sides end with (`None`: deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub row: Option<Vec<Value>>,
    /// The policy that decided (`manual` for an operator).
    pub resolution: &'static str,
    /// The endpoint whose version won, `merged`, or `both` (both sides deleted the row).
    pub taken: String,
}

pub fn hashes(row: &[Value]) -> Vec<u64> {
    row.iter().map(value_hash).collect()
}

fn hashes_of(row: Option<&[Value]>) -> Option<Vec<u64>> {
    row.map(hashes)
}

/// Decide a conflict; `Ok(None)`: parked for an operator. Pure, so every policy is unit-tested.
pub fn resolve(
    pair: &Pair,
    c: &Conflict,
    choice: &Choice,
    coarse: bool,
) -> std::result::Result<Option<Outcome>, String> {
    let (a, b) = (&c.a, &c.b);
    let rules = &pair.rules;
    // The later source commit; a tie (at the coarser precision when one side is MySQL) goes
    // to the endpoint first in priority.
    let ts = |v: &Version| {
        let t = v.commit_us.unwrap_or(c.detected_us);
        if coarse {
            t.div_euclid(1_000_000)
        } else {
            t
        }
    };
    let later = match ts(a).cmp(&ts(b)) {
        std::cmp::Ordering::Greater => a,
        std::cmp::Ordering::Less => b,
        std::cmp::Ordering::Equal => {
            if rules.priority.first() == Some(&b.endpoint) {
                b
            } else {
                a
            }
        }
    };
    let side = |endpoint: &str| if endpoint == a.endpoint { a } else { b };
    let whole = |v: &Version, resolution: &'static str| Outcome {
        row: v.row.clone(),
        resolution,
        taken: v.endpoint.clone(),
    };
    match choice {
        Choice::Take(e) => {
            if e != &a.endpoint && e != &b.endpoint {
                return Err(format!(
                    "'{e}' is neither side of this conflict ({}, {})",
                    a.endpoint, b.endpoint
                ));
            }
            return Ok(Some(whole(side(e), "manual")));
        }
        Choice::Merged { prefer } => {
            if let Some(p) = prefer.as_deref() {
                if p != a.endpoint && p != b.endpoint {
                    return Err(format!("'{p}' is neither side of this conflict"));
                }
            }
        }
        Choice::Policy => {}
    }
    // A delete against an update is a whole-row decision.
    let (ra, rb) = match (&a.row, &b.row) {
        (None, None) => {
            return Ok(Some(Outcome {
                row: None,
                resolution: match choice {
                    Choice::Policy => rules.policy.as_str(),
                    _ => "manual",
                },
                taken: "both".into(),
            }))
        }
        (Some(ra), Some(rb)) => (ra, rb),
        _ => {
            let policy = match choice {
                Choice::Merged { prefer: Some(p) } => return Ok(Some(whole(side(p), "manual"))),
                Choice::Merged { prefer: None } => {
                    return Err(
                        "one side deleted the row: take a side, or merge with --prefer".into(),
                    )
                }
                _ => match rules.policy {
                    Policy::Merge => rules.fallback,
                    p => p,
                },
            };
            let label = rules.policy.as_str();
            return Ok(match policy {
                Policy::LastWriterWins => Some(whole(later, label)),
                Policy::SourceWins => {
                    let w = rules.winner.as_deref().unwrap_or(&a.endpoint);
                    Some(whole(side(w), label))
                }
                Policy::Manual | Policy::Merge => None,
            });
        }
    };
    let base = c.base.as_ref().and_then(|s| s.fields.as_ref());
    let mut row = Vec::with_capacity(ra.len());
    let (mut from_a, mut from_b) = (false, false);
    let mut overlap = Vec::new();
    for (i, field) in pair.fields.iter().enumerate() {
        let (va, vb) = (&ra[i], &rb[i]);
        let (ha, hb) = (value_hash(va), value_hash(vb));
        if ha == hb {
            row.push(va.clone());
            continue;
        }
        let changed_a = base.is_none_or(|s| s.get(i) != Some(&ha));
        let changed_b = base.is_none_or(|s| s.get(i) != Some(&hb));
        let mut policy = match choice {
            Choice::Merged { .. } => Policy::Merge,
            _ => field.policy,
        };
        if policy == Policy::Merge {
            if changed_a && !changed_b {
                from_a = true;
                row.push(va.clone());
                continue;
            }
            if changed_b && !changed_a {
                from_b = true;
                row.push(vb.clone());
                continue;
            }
            policy = match choice {
                Choice::Merged { prefer: Some(p) } => {
                    let v = side(p);
                    from_a |= v.endpoint == a.endpoint;
                    from_b |= v.endpoint == b.endpoint;
                    row.push(if v.endpoint == a.endpoint { va } else { vb }.clone());
                    continue;
                }
                Choice::Merged { prefer: None } => {
                    overlap.push(field.a.clone());
                    row.push(va.clone());
                    continue;
                }
                _ => rules.fallback,
            };
        }
        let winner = match policy {
            Policy::LastWriterWins => later,
            Policy::SourceWins => {
                let w = field
                    .owner
                    .as_deref()
                    .or(rules.winner.as_deref())
                    .unwrap_or(&a.endpoint);
                side(w)
            }
            Policy::Manual | Policy::Merge => return Ok(None),
        };
        let from_winner_a = winner.endpoint == a.endpoint;
        from_a |= from_winner_a;
        from_b |= !from_winner_a;
        row.push(if from_winner_a { va } else { vb }.clone());
    }
    if !overlap.is_empty() {
        return Err(format!(
            "both sides changed {}: merge with --prefer {}|{}",
            overlap.join(", "),
            a.endpoint,
            b.endpoint
        ));
    }
    let taken = match (from_a, from_b) {
        (true, true) => "merged".to_string(),
        (false, true) => b.endpoint.clone(),
        _ => a.endpoint.clone(),
    };
    let resolution = match choice {
        Choice::Policy => rules.policy.as_str(),
        _ => "manual",
    };
    Ok(Some(Outcome {
        row: Some(row),
        resolution,
        taken,
    }))
}

/// The key text of a row of a pair, the same from either side.
fn entity(key: &[Value]) -> String {
    key.iter()
        .map(super::echo::norm)
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// A written row's new agreed state: pair, row key, field fingerprints (`None`: deleted).
pub(super) type RowSync = (String, String, Option<Vec<u64>>);

/// What guarding a batch decided, applied after the target commit.
#[derive(Default)]
pub(super) struct Guarded {
    /// Per remaining op: the sync state its write establishes.
    pub sync: Vec<Option<RowSync>>,
    /// Pending writes done (or superseded).
    pub pending_done: Vec<u64>,
    /// Rows (pair, row key) an owed write was written to.
    pub pending_written: Vec<(String, String)>,
    /// The target's stream position after the transaction's locked reads.
    pub written_at: Option<Position>,
}

impl Applier {
    /// The table a pair's side is written to (for owed writes).
    fn side_table(&mut self, pair: &Pair, endpoint: &str) -> Arc<TargetTable> {
        let key = format!("{}\0{endpoint}", pair.name);
        self.side_tables
            .entry(key)
            .or_insert_with(|| {
                let a = pair.is_a(endpoint);
                let t = if a { &pair.a } else { &pair.b };
                Arc::new(TargetTable {
                    endpoint: t.endpoint.clone(),
                    namespace: t.namespace.clone(),
                    name: t.table.clone(),
                    columns: pair.columns(a).iter().map(|c| c.to_string()).collect(),
                    key: pair.key.clone(),
                    update_only: false,
                    insert_only: Vec::new(),
                })
            })
            .clone()
    }

    /// Inside the target transaction, first thing: apply the writes conflict decisions owe this
    /// target, each only if the row is still the version decided against.
    pub(super) async fn apply_pending(
        &mut self,
        sink: &mut Sink,
    ) -> Result<(Vec<u64>, Vec<(String, String)>)> {
        let pending = self.store.pending_for(&self.target)?;
        if pending.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut ops = Vec::new();
        let mut done = Vec::new();
        let mut written = Vec::new();
        let mut writers = Vec::new();
        for p in pending {
            done.push(p.id);
            let Some(pair) = self.hub.pair(&p.pair).cloned() else {
                tracing::warn!(conflict = p.conflict, mapping = %p.pair, "owed write dropped: its mapping is gone");
                continue;
            };
            let table = self.side_table(&pair, &p.endpoint);
            let current = sink.read_rows(&table, std::slice::from_ref(&p.key)).await?;
            let now = hashes_of(current.first().map(Vec::as_slice));
            if now != p.expected {
                tracing::info!(conflict = p.conflict, mapping = %p.pair, "owed write superseded by a newer edit of the row");
                continue;
            }
            written.push((p.pair.clone(), p.entity.clone()));
            // The mapping of the pair that writes this side.
            writers.push(match pair.is_a(&p.endpoint) {
                true => format!("{}.reverse", pair.name),
                false => pair.name.clone(),
            });
            ops.push(match p.row {
                Some(row) => TargetOp::Upsert {
                    table,
                    row: row.into_iter().map(Some).collect(),
                },
                None => TargetOp::Delete { table, key: p.key },
            });
        }
        if !ops.is_empty() {
            let mappings = self.mappings.clone();
            let read_back = self
                .echo
                .writing(&mappings, &ops, |i| writers.get(i).cloned())?;
            let applied = sink.apply_in_txn(&ops).await?;
            for (i, e) in applied.failed {
                self.echo.undo(&read_back[i])?;
                tracing::warn!(flow = %self.flow_name(), table = %ops[i].table(), error = %e, "a conflict decision could not be written");
            }
        }
        Ok((done, written))
    }

    /// Inside the target transaction, before the batch is written: hold back every write to a
    /// row with an unresolved conflict (attaching it as that side's newer version), and check
    /// every other write to a row mapped both ways against the target's current row.
    pub(super) async fn guard(
        &mut self,
        txns: &[Transaction],
        ops: &mut Vec<TargetOp>,
        origins: &mut Vec<Origin>,
        sink: &mut Sink,
    ) -> Result<Guarded> {
        // The pair of each op, with the row's key.
        let mut of_op: Vec<Option<(Arc<Pair>, Vec<Value>)>> = Vec::with_capacity(ops.len());
        let mut keys: HashMap<usize, (Arc<TargetTable>, Vec<Vec<Value>>)> = HashMap::new();
        for (op, o) in ops.iter().zip(origins.iter()) {
            let change = &txns[o.txn].changes[o.change];
            let name = self.binding_name(change, o.binding);
            let pair = self.hub.pair(&name).cloned();
            let guarded = match (pair, op) {
                (Some(p), TargetOp::Upsert { table, .. } | TargetOp::Delete { table, .. })
                    if table.columns.len() == p.fields.len() =>
                {
                    let key = op.key_values();
                    let entry = keys
                        .entry(Arc::as_ptr(table) as usize)
                        .or_insert_with(|| (table.clone(), Vec::new()));
                    entry.1.push(key.clone());
                    Some((p, key))
                }
                _ => None,
            };
            of_op.push(guarded);
        }
        // The target's current rows, by table and row key.
        let mut current: HashMap<(usize, String), Vec<Value>> = HashMap::new();
        for (ptr, (table, keys)) in keys {
            for row in sink.read_rows(&table, &keys).await? {
                let key: Vec<Value> = table.key.iter().map(|&i| row[i].clone()).collect();
                current.insert((ptr, entity(&key)), row);
            }
        }
        let mut out = Guarded::default();
        let mut keep = vec![true; ops.len()];
        // The row as the writes kept so far in this batch leave it.
        let mut sim: HashMap<(String, String), Option<Vec<Value>>> = HashMap::new();
        let mut agreed_sim: HashMap<(String, String), Option<Vec<u64>>> = HashMap::new();
        let mut mark: Option<Position> = None;
        for (i, guarded) in of_op.into_iter().enumerate() {
            let Some((pair, key)) = guarded else {
                out.sync.push(None);
                continue;
            };
            let id = (pair.name.clone(), entity(&key));
            let txn = &txns[origins[i].txn];
            let stored = match agreed_sim.contains_key(&id) {
                true => None,
                false => self.store.sync_state(&id.0, &id.1)?,
            };
            // rowbridge wrote this row on the source side after this change: that write saw
            // it, so it is not carried over again.
            if stored
                .as_ref()
                .and_then(|s| s.barrier(&txn.endpoint))
                .is_some_and(|b| b.reached(&txn.position))
            {
                keep[i] = false;
                continue;
            }
            let ptr = Arc::as_ptr(ops[i].table()) as usize;
            let target_row = match sim.get(&id) {
                Some(row) => row.clone(),
                None => current.get(&(ptr, id.1.clone())).cloned(),
            };
            let incoming: Option<Vec<Value>> = match &ops[i] {
                TargetOp::Upsert { row, .. } => Some(
                    row.iter()
                        .enumerate()
                        .map(|(f, v)| match v {
                            Some(v) => v.clone(),
                            // Not sent (an unchanged TOAST value): what the row holds.
                            None => target_row
                                .as_ref()
                                .map(|r| r[f].clone())
                                .unwrap_or(Value::Null),
                        })
                        .collect(),
                ),
                _ => None,
            };
            let in_hash = hashes_of(incoming.as_deref());
            if let Some(mut c) = self.store.open_conflict(&id.0, &id.1)? {
                // Held: this side's newer version.
                let v = if c.a.endpoint == txn.endpoint {
                    &mut c.a
                } else {
                    &mut c.b
                };
                // A column the source did not send (an unchanged TOAST value) keeps this
                // side's previous value, not the other side's.
                v.row = match &ops[i] {
                    TargetOp::Upsert { row, .. } => Some(
                        row.iter()
                            .enumerate()
                            .map(|(f, x)| match x {
                                Some(x) => x.clone(),
                                None => v.row.as_ref().map(|r| r[f].clone()).unwrap_or(Value::Null),
                            })
                            .collect(),
                    ),
                    _ => None,
                };
                v.commit_us = Some(txn.commit_time_us);
                if v.until.as_ref().is_some_and(|u| txn.position.reached(u)) {
                    v.until = None;
                }
                self.store.put_conflict(&c)?;
                keep[i] = false;
                continue;
            }
            let now = hashes_of(target_row.as_deref());
            let base = match agreed_sim.get(&id) {
                // A write earlier in this batch moves the agreed state when it commits.
                Some(fields) => Some(SyncState {
                    fields: fields.clone(),
                    at_us: 0,
                    barriers: Vec::new(),
                }),
                None => stored,
            };
            let agreed = base.as_ref().map(|s| s.fields.clone());
            let changed = match &agreed {
                None => now.is_some() && now != in_hash,
                Some(agreed) => &now != agreed && now != in_hash,
            };
            tracing::trace!(flow = %self.flow_name(), mapping = %pair.name, row = %id.1, changed, target = now.is_some(), incoming = in_hash.is_some(), synced = agreed.as_ref().map(|a| a.is_some()), "guard");
            if !changed {
                // A newer edit on the source side: what a decision still owes that side for
                // this row would undo it.
                for p in self.store.pending_for(&txn.endpoint)? {
                    if p.pair == id.0 && p.entity == id.1 {
                        self.store.remove_pending(p.id)?;
                    }
                }
                sim.insert(id.clone(), incoming.clone());
                agreed_sim.insert(id.clone(), in_hash.clone());
                out.sync.push(Some((id.0, id.1, in_hash)));
                continue;
            }
            let until = match &mark {
                Some(p) => p.clone(),
                None => {
                    let p = sink.position(true).await?;
                    mark = Some(p.clone());
                    p
                }
            };
            let ours = Version {
                endpoint: txn.endpoint.clone(),
                row: incoming,
                commit_us: Some(txn.commit_time_us),
                until: None,
            };
            let theirs = Version {
                endpoint: self.target.clone(),
                row: target_row,
                commit_us: None,
                until: Some(until),
            };
            let (a, b) = if pair.is_a(&txn.endpoint) {
                (ours, theirs)
            } else {
                (theirs, ours)
            };
            let cid = self.store.add_conflict(Conflict {
                id: 0,
                pair: id.0.clone(),
                entity: id.1.clone(),
                base,
                a,
                b,
                detected_us: chrono::Utc::now().timestamp_micros(),
                detected_by: self.flow_name().to_string(),
                state: ConflictState::Open,
            })?;
            tracing::info!(conflict = cid, flow = %self.flow_name(), mapping = %pair.name, "conflict: the target row changed since it was last synced");
            keep[i] = false;
        }
        let mut k = keep.iter();
        ops.retain(|_| *k.next().unwrap_or(&true));
        let mut k = keep.iter();
        origins.retain(|_| *k.next().unwrap_or(&true));
        Ok(out)
    }

    /// After the target commit: the sync states the written rows agree on now, and the owed
    /// writes that are done; then settle conflicts with what this flow has read.
    pub(super) fn guarded_commit(
        &self,
        guarded: Guarded,
        failed: &[usize],
        end: Option<&Position>,
    ) -> Result<()> {
        let now = chrono::Utc::now().timestamp_micros();
        let at = guarded.written_at;
        let barrier = |state: &mut SyncState| {
            if let Some(at) = &at {
                state.set_barrier(&self.target, at.clone());
            }
        };
        for (i, s) in guarded.sync.into_iter().enumerate() {
            let Some((pair, entity, fields)) = s else {
                continue;
            };
            if failed.contains(&i) {
                continue;
            }
            let mut state = self.store.sync_state(&pair, &entity)?.unwrap_or(SyncState {
                fields: None,
                at_us: now,
                barriers: Vec::new(),
            });
            state.fields = fields;
            state.at_us = now;
            barrier(&mut state);
            self.store.set_sync_state(&pair, &entity, &state)?;
        }
        for (pair, entity) in guarded.pending_written {
            if let Some(mut state) = self.store.sync_state(&pair, &entity)? {
                barrier(&mut state);
                self.store.set_sync_state(&pair, &entity, &state)?;
            }
        }
        for id in guarded.pending_done {
            self.store.remove_pending(id)?;
        }
        if let Some(end) = end {
            self.hub.settle(&self.source, end)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "conflict_tests.rs"]
mod tests;
