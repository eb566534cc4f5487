//! Key-map work of the apply loop: matching new rows with existing target rows by natural key,
//! recording where rows were written, and parking changes whose referenced row is not written
//! yet (and applying them once it is).

use std::collections::HashSet;

use std::sync::Arc;

use super::apply::{Applier, Origin};
use crate::error::{Error, Result};
use crate::mapping::{describe_key, BoundMapping, KeyLookup, TargetOp};
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
        metrics::gauge!(m::WAITING, "flow" => self.flow_name().to_string())
            .set(self.store.waiting_count() as f64);
        Ok(())
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

    /// Apply parked changes whose reference now resolves, in arrival order, until nothing more
    /// resolves (a resolved parent can release its own children). Each pass maps every parked
    /// change again through the normal path: those still unresolved are parked anew (behind
    /// each other, in order), the rest is applied in one target transaction, and only then are
    /// the old entries removed, so a crash in between duplicates a parked change (harmless:
    /// upserts are idempotent) but never loses one.
    pub(super) async fn resolve_waiting(&mut self, sink: &mut Sink) -> Result<()> {
        loop {
            let entries = self.store.waiting()?;
            // Rewrite the queue only when some parked change can go now.
            let mut any = false;
            for w in entries.iter().filter(|w| !w.ref_mapping.is_empty()) {
                if self.keys.target_key(&w.ref_mapping, &w.ref_key)?.is_some() {
                    any = true;
                    break;
                }
            }
            if !any {
                return Ok(());
            }
            let txns: Vec<Transaction> = entries
                .iter()
                .map(|w| Transaction {
                    endpoint: w.endpoint.clone(),
                    position: w.position.clone(),
                    commit_time_us: w.commit_time_us,
                    origin: None,
                    changes: vec![w.change.clone()],
                })
                .collect();
            self.keys.clear_waiting();
            let (mut ops, mut origins) = (Vec::new(), Vec::new());
            let before = self.store.waiting_count();
            for (ti, txn) in txns.iter().enumerate() {
                self.map_change(&txns, ti, 0, &txn.changes[0], &mut ops, &mut origins)?;
            }
            let reparked = self.store.waiting_count() - before;
            self.adopt_matches(&txns, &mut ops, &mut origins, sink)
                .await?;
            if !ops.is_empty() {
                let applied = sink.apply(&ops).await?;
                for (idx, err) in applied.failed {
                    let o = &origins[idx];
                    let t = &txns[o.txn];
                    let mapping = entries[o.txn].mapping.clone();
                    self.keys.forget(&mapping, &o.source_key);
                    let key = describe_key(&ops[idx].key_values());
                    self.dead_letter(&t.endpoint, &t.position, &t.changes[0], &mapping, key, &err)?;
                }
            }
            self.keys.commit()?;
            for w in &entries {
                self.store.remove_waiting(w.id)?;
            }
            self.keys.reset_waiting()?;
            metrics::gauge!(m::WAITING, "flow" => self.flow_name().to_string())
                .set(self.store.waiting_count() as f64);
            if reparked == entries.len() {
                return Ok(());
            }
        }
    }

    pub(super) fn binding(&self, change: &RowChange, binding: usize) -> Option<&BoundMapping> {
        self.bound
            .get(&(Arc::as_ptr(&change.table) as usize))
            .and_then(|v| v.get(binding))
    }
}
