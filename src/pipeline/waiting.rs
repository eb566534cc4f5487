//! Key-map work of the apply loop: matching new rows with existing target rows by natural key,
//! recording where rows were written, and parking changes whose referenced row is not written
//! yet (and applying them once it is).

use std::collections::HashSet;

use std::sync::Arc;

use super::apply::{Applier, Origin};
use crate::error::{Error, Result};
use crate::mapping::{BoundMapping, KeyLookup, TargetOp};
use crate::metrics as m;
use crate::model::{RowChange, Transaction};
use crate::sink::{Adopted, Sink};
use crate::store::Waiting;

impl Applier {
    /// Park `change` of `mapping` until `reference` (mapping, key) is written; with no
    /// reference it queues behind an earlier parked change of the same row.
    pub(super) fn park(
        &mut self,
        txn: &Transaction,
        change: &RowChange,
        mapping: &str,
        key: String,
        reference: Option<(String, String)>,
    ) -> Result<()> {
        let (ref_mapping, ref_key) = reference.unwrap_or_default();
        if self.store.waiting_count() >= self.max_waiting {
            let err = Error::Row {
                table: format!("{}:{}", txn.endpoint, change.table),
                key: key.clone(),
                reason: format!(
                    "waiting queue full ({} changes): reference into '{ref_mapping}' not resolved",
                    self.max_waiting
                ),
            };
            return self.dead_letter(&txn.endpoint, &txn.position, change, mapping, key, &err);
        }
        self.store.add_waiting(Waiting {
            id: 0,
            flow: self.flow_name().to_string(),
            mapping: mapping.to_string(),
            key: key.clone(),
            ref_mapping,
            ref_key,
            endpoint: txn.endpoint.clone(),
            position: txn.position.clone(),
            commit_time_us: txn.commit_time_us,
            at_us: chrono::Utc::now().timestamp_micros(),
            change: change.clone(),
        })?;
        self.keys.mark_waiting(mapping, &key);
        self.publish_waiting()
    }

    /// Before the batch: a new source row of a mapping with `[match]` adopts the one target row
    /// with the same natural key and no external key yet. Several candidates: a row error.
    pub(super) async fn adopt_matches(
        &mut self,
        txns: &[Transaction],
        ops: &mut Vec<TargetOp>,
        origins: &mut Vec<Origin>,
        sink: &mut Sink,
    ) -> Result<()> {
        let mut drop = HashSet::new();
        for (idx, (op, o)) in ops.iter().zip(origins.iter()).enumerate() {
            let TargetOp::Upsert { table, row } = op else {
                continue;
            };
            let change = &txns[o.txn].changes[o.change];
            let Some(b) = self.binding(change, o.binding) else {
                continue;
            };
            let m = b.mapping.clone();
            // The committed key map: this batch has already recorded its own upserts.
            if m.matching.is_empty() || self.store.key_map(&m.name, &o.source_key)?.is_some() {
                continue;
            }
            let cols: Vec<usize> = m
                .matching
                .iter()
                .filter_map(|c| m.columns.iter().position(|col| &col.source == c))
                .collect();
            let vals: Option<Vec<_>> = cols
                .iter()
                .map(|&i| row[i].clone().filter(|v| !v.is_null()))
                .collect();
            let Some(vals) = vals else { continue };
            match sink.adopt(table, &cols, &vals, &op.key_values()).await? {
                Adopted::Nothing | Adopted::One => {}
                Adopted::Ambiguous(n) => {
                    let t = &txns[o.txn];
                    let err = Error::Row {
                        table: format!("{}:{}", t.endpoint, change.table),
                        key: o.source_key.clone(),
                        reason: format!(
                            "{n} rows of {table} match on ({}) and none has a key yet; refusing to guess",
                            m.matching.join(", ")
                        ),
                    };
                    self.dead_letter(
                        &t.endpoint,
                        &t.position,
                        change,
                        &m.name,
                        o.source_key.clone(),
                        &err,
                    )?;
                    drop.insert(idx);
                }
            }
        }
        if !drop.is_empty() {
            let mut i = 0;
            ops.retain(|_| (!drop.contains(&i), i += 1).0);
            let mut j = 0;
            origins.retain(|_| (!drop.contains(&j), j += 1).0);
        }
        Ok(())
    }

    /// Map the parked changes that can go now into the batch in flight, in arrival order,
    /// until nothing more resolves (a released parent can release its own children). Each pass
    /// maps every parked change again through the normal path: those still unresolved are
    /// parked anew (behind each other, in order); the rest joins the batch, so a parent and the
    /// children it releases commit in one target transaction. The consumed entries are removed
    /// only after that commit ([`Self::finish_waiting`]): a crash in between leaves a parked
    /// change twice (harmless, upserts are idempotent), never loses one.
    pub(super) fn collect_waiting(
        &mut self,
        txns: &mut Vec<Transaction>,
        ops: &mut Vec<TargetOp>,
        origins: &mut Vec<Origin>,
    ) -> Result<Vec<u64>> {
        let mut consumed: HashSet<u64> = HashSet::new();
        loop {
            if !self.keys.has_pending() || self.store.waiting_count() == 0 {
                break;
            }
            let entries: Vec<Waiting> = self
                .store
                .waiting()?
                .into_iter()
                .filter(|w| !consumed.contains(&w.id))
                .collect();
            let mut any = false;
            for w in entries.iter().filter(|w| !w.ref_mapping.is_empty()) {
                if self.keys.target_key(&w.ref_mapping, &w.ref_key)?.is_some() {
                    any = true;
                    break;
                }
            }
            if !any {
                break;
            }
            self.keys.clear_waiting();
            let before = self.store.waiting_count();
            for w in &entries {
                consumed.insert(w.id);
                self.store.unindex_waiting(w)?;
                txns.push(Transaction {
                    endpoint: w.endpoint.clone(),
                    position: w.position.clone(),
                    commit_time_us: w.commit_time_us,
                    origin: None,
                    changes: vec![w.change.clone()],
                    partial: false,
                });
                let ti = txns.len() - 1;
                let change = txns[ti].changes[0].clone();
                self.map_change(txns, ti, 0, &change, ops, origins)?;
            }
            // Still-waiting rows were parked anew; mark them (and only them) as waiting.
            let reparked = self.store.waiting_count() - before;
            self.keys.reset_waiting_except(&consumed)?;
            if reparked == entries.len() {
                break;
            }
        }
        Ok(consumed.into_iter().collect())
    }

    /// After the batch committed: drop the consumed entries and the bindings made for them.
    pub(super) fn finish_waiting(
        &mut self,
        consumed: &[u64],
        synthetic: &[Transaction],
    ) -> Result<()> {
        for id in consumed {
            self.store.remove_waiting(*id)?;
        }
        for t in synthetic {
            self.bound
                .remove(&(Arc::as_ptr(&t.changes[0].table) as usize));
        }
        if !consumed.is_empty() {
            self.keys.reset_waiting()?;
            self.publish_waiting()?;
        }
        Ok(())
    }

    /// The waiting gauge counts this flow's parked changes only.
    pub(super) fn publish_waiting(&self) -> Result<()> {
        let n = self.store.waiting_count_for(self.flow_name())?;
        metrics::gauge!(m::WAITING, "flow" => self.flow_name().to_string()).set(n as f64);
        Ok(())
    }

    pub(super) fn binding(&self, change: &RowChange, binding: usize) -> Option<&BoundMapping> {
        self.bound
            .get(&(Arc::as_ptr(&change.table) as usize))
            .and_then(|v| v.get(binding))
    }
}
