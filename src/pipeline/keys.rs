//! The key map as the apply loop sees it: store entries plus what the batch in flight writes,
//! and the set of rows whose changes wait for a referenced row.
//!
//! Why waiting loses nothing and reorders nothing: a parked change is written to the store
//! before the batch's checkpoint moves past it, and every later change of the same row is
//! parked behind it, so the row's changes are applied in source order once the reference
//! resolves.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::mapping::KeyLookup;
use crate::model::Value;
use crate::store::Store;

pub(super) struct KeyState {
    store: Store,
    /// Key-map writes of the batch in flight: `None` is a removal.
    pending: HashMap<(String, String), Option<Vec<Value>>>,
    /// (mapping, source key) of rows with parked changes.
    waiting_rows: HashSet<(String, String)>,
}

impl KeyState {
    pub fn load(store: Store) -> Result<KeyState> {
        let waiting_rows = store
            .waiting()?
            .into_iter()
            .map(|w| (w.mapping, w.key))
            .collect();
        Ok(KeyState {
            store,
            pending: HashMap::new(),
            waiting_rows,
        })
    }

    pub fn is_waiting(&self, mapping: &str, key: &str) -> bool {
        self.waiting_rows
            .contains(&(mapping.to_string(), key.to_string()))
    }

    pub fn mark_waiting(&mut self, mapping: &str, key: &str) {
        self.waiting_rows
            .insert((mapping.to_string(), key.to_string()));
    }

    pub fn clear_waiting(&mut self) {
        self.waiting_rows.clear();
    }

    /// Rebuild the waiting set from the store, leaving out entries already consumed.
    pub fn reset_waiting_except(&mut self, consumed: &HashSet<u64>) -> Result<()> {
        self.waiting_rows = self
            .store
            .waiting()?
            .into_iter()
            .filter(|w| !consumed.contains(&w.id))
            .map(|w| (w.mapping, w.key))
            .collect();
        Ok(())
    }

    pub fn reset_waiting(&mut self) -> Result<()> {
        self.waiting_rows = self
            .store
            .waiting()?
            .into_iter()
            .map(|w| (w.mapping, w.key))
            .collect();
        Ok(())
    }

    pub fn record(&mut self, mapping: &str, source_key: String, target_key: Option<Vec<Value>>) {
        self.pending
            .insert((mapping.to_string(), source_key), target_key);
    }

    /// Drop a pending write whose operation failed (it went to the dead-letter queue).
    pub fn forget(&mut self, mapping: &str, source_key: &str) {
        self.pending
            .remove(&(mapping.to_string(), source_key.to_string()));
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Write the committed batch's entries to the store.
    pub fn commit(&mut self) -> Result<()> {
        for ((mapping, key), target) in self.pending.drain() {
            match target {
                Some(t) => self.store.set_key_map(&mapping, &key, &t)?,
                None => self.store.remove_key_map(&mapping, &key)?,
            }
        }
        Ok(())
    }
}

impl KeyLookup for KeyState {
    fn target_key(&self, mapping: &str, source_key: &str) -> Result<Option<Vec<Value>>> {
        if let Some(p) = self
            .pending
            .get(&(mapping.to_string(), source_key.to_string()))
        {
            return Ok(p.clone());
        }
        self.store.key_map(mapping, source_key)
    }
}
