//! Echoes: which changes a mapping carries, and which it leaves because they would only send
//! values back to where they came from.
//!
//! The model in one paragraph. For every mapping whose source table rowbridge also writes (some
//! mapping's target: only there can a change be rowbridge's own), the store keeps the *synced
//! state* of each source row: the versions of it (per source column the mapping reads, the
//! value's fingerprint) that its target is known to agree with. It moves two ways: when the
//! mapping carries a row version (every column it reads; older versions are dropped), and when
//! rowbridge writes that source row itself through a mapping going the other way, which adds a
//! version: the last one with the columns that mapping filled from exactly the target column
//! this one fills from them (an [`Inverse`] pair: that value agrees with the target by
//! construction). A change is carried when it is none of those versions, and then whole; one
//! that is a version is skipped, and the versions before it are dropped (their echoes, in
//! stream order, came before it). So an echo is never inferred from a subset of the
//! columns or from the table: rowbridge's own write comes back changing nothing the mapping
//! carries and is skipped (counted in `rowbridge_echo_skipped_total` when its origin marks it
//! as rowbridge's), while a user's edit of any column the mapping reads differs and passes,
//! whatever rowbridge wrote to the same row before. A value rowbridge wrote from some *other*
//! column is, for every mapping that carries it, a change like a user's (an ERP status that
//! rowbridge set from the CRM stage still reaches the CRM's delivery-status column); loops
//! through such columns end because each hop carries only a state that moved. Several mappings
//! may share a table pair: each keeps its own state and writes its own target columns (one
//! writer per target column, checked when the mappings load).
//!
//! Safety of the state. What a mapping carried is stored only after the target committed it: a
//! batch that fails and is replayed finds the old state and carries its changes again (never
//! skips them). What rowbridge writes into a source row is stored before that write commits,
//! so its echo can never overtake it; if the write then fails, the states it set are forgotten,
//! and a row without state is always carried. Resync and dead-letter replay carry without
//! looking (they rewrite on purpose). A truncate forgets the mapping's states.
//!
//! Values are compared by [`norm`], the text both databases' representations of one value
//! share (decimal trailing zeros, booleans as 0/1, instants as UTC).

use std::collections::HashMap;

use crate::error::Result;
use crate::mapping::{convert, BoundMapping, Inverse, Mappings, TargetOp};
use crate::model::{Op, RowChange, Value};
use crate::store::{Store, Synced};

/// Normalised text of a value for comparison across databases.
pub(crate) fn norm(v: &Value) -> String {
    match v {
        Value::Null => "\u{0}".into(),
        Value::Bool(b) => (if *b { "1" } else { "0" }).into(),
        Value::Decimal(d) if d.contains('.') => {
            d.trim_end_matches('0').trim_end_matches('.').into()
        }
        Value::TimestampTz(t) => crate::model::iso::datetime(&t.naive_utc()),
        Value::Timestamp(t) => crate::model::iso::datetime(t),
        Value::Float(f) => format!("{f:e}"),
        other => convert::text_form(other).unwrap_or_default(),
    }
}

/// FNV-1a of one value's normalised text.
pub(crate) fn value_hash(v: &Value) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in norm(v).bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Store key of a mapping's state of one source row.
fn state_key(mapping: &str, key: &[Value]) -> String {
    let mut k = String::with_capacity(mapping.len() + 16);
    k.push_str(mapping);
    k.push('\u{0}');
    for v in key {
        k.push_str(&norm(v));
        k.push('\u{1f}');
    }
    k
}

fn prefix(mapping: &str) -> String {
    format!("{mapping}\u{0}")
}

/// Versions kept per row: writes of rowbridge into one source row whose echoes have not come
/// back yet (several writes of one row in one batch come back as several changes).
const VERSIONS: usize = 8;

/// One version of a source row as a mapping reads it.
type Version = Option<Vec<(String, u64)>>;

enum Staged {
    Set(Synced),
    Forget,
}

/// The synced states of one flow's batch in flight (what its mappings carried, stored after the
/// commit), over the store's.
pub(super) struct Tracker {
    store: Store,
    staged: HashMap<String, Staged>,
}

impl Tracker {
    pub fn new(store: Store) -> Tracker {
        Tracker {
            store,
            staged: HashMap::new(),
        }
    }

    /// The state key of `change` for `b`, when `b` keeps states (rowbridge writes its source
    /// table) and the change carries the source key.
    pub fn key_of(mappings: &Mappings, b: &BoundMapping, change: &RowChange) -> Option<String> {
        let s = &b.mapping.source;
        if !mappings.is_read_back(&s.endpoint, &s.namespace, &s.table) {
            return None;
        }
        let image = change.after.as_ref().or(change.before.as_ref())?;
        let key = b.source_key(image)?;
        Some(state_key(&b.mapping.name, &key))
    }

    fn current(&self, key: &str) -> Result<Synced> {
        match self.staged.get(key) {
            Some(Staged::Set(s)) => Ok(s.clone()),
            Some(Staged::Forget) => Ok(Vec::new()),
            None => Ok(self.store.synced(key)?.unwrap_or_default()),
        }
    }

    /// Whether `change` is a version of the row its target already agrees with: nothing to
    /// carry (an echo of rowbridge's own write, or an edit of columns `b` does not read). The
    /// versions before the matched one are done with (their echoes came earlier).
    pub fn unchanged(&mut self, b: &BoundMapping, change: &RowChange, key: &str) -> Result<bool> {
        let versions = self.current(key)?;
        let Some(hit) = versions.iter().position(|v| matches(b, change, v)) else {
            return Ok(false);
        };
        if hit > 0 {
            // At once, not after the commit: the other flow may be adding versions meanwhile,
            // and a replay of this batch still finds the matched version.
            let rest = versions[hit..].to_vec();
            match self.staged.get_mut(key) {
                Some(staged) => *staged = Staged::Set(rest),
                None => self.store.set_synced(key, &rest)?,
            }
        }
        Ok(true)
    }

    /// `b` carried `change`: its target now agrees with every column it read, and with nothing
    /// older.
    pub fn carried(&mut self, b: &BoundMapping, change: &RowChange, key: String) -> Result<()> {
        let version = match change.op {
            Op::Delete => None,
            Op::Insert | Op::Update => {
                let Some(after) = change.after.as_ref() else {
                    self.staged.insert(key, Staged::Forget);
                    return Ok(());
                };
                let previous = self.current(&key)?.pop().flatten().unwrap_or_default();
                let schema = &change.table;
                let mut cols = Vec::with_capacity(b.reads().len());
                for &i in b.reads() {
                    let name = schema.columns[i].name.to_lowercase();
                    match after.get(i) {
                        Some(Some(v)) => cols.push((name, value_hash(v))),
                        // Not sent: unchanged since the last version, whose state stands.
                        _ => {
                            if let Some(p) = previous.iter().find(|(c, _)| *c == name) {
                                cols.push(p.clone());
                            }
                        }
                    }
                }
                Some(cols)
            }
            Op::Truncate => return self.clear(&b.mapping.name),
        };
        self.staged.insert(key, Staged::Set(vec![version]));
        Ok(())
    }

    /// The target no longer agrees with what `key`'s state says (a refused change).
    pub fn forget(&mut self, key: String) {
        self.staged.insert(key, Staged::Forget);
    }

    /// Forget every state of a mapping (its source or target was truncated).
    pub fn clear(&mut self, mapping: &str) -> Result<()> {
        let p = prefix(mapping);
        self.staged.retain(|k, _| !k.starts_with(&p));
        self.store.forget_synced_prefix(&p)
    }

    /// Before `ops` commit (`writer(i)` names the mapping that produced op `i`): the mappings
    /// that read the written rows back gain the written version, in the columns each would
    /// carry back to where they came from (stored at once). Returns per op the state keys it
    /// set, to forget if the op fails.
    pub fn writing(
        &mut self,
        mappings: &Mappings,
        ops: &[TargetOp],
        writer: impl Fn(usize) -> Option<String>,
    ) -> Result<Vec<Vec<String>>> {
        let mut set = vec![Vec::new(); ops.len()];
        if !mappings.has_inverse() {
            return Ok(set);
        }
        for (i, op) in ops.iter().enumerate() {
            let Some(w) = writer(i) else { continue };
            for inv in mappings.inverse_of(&w) {
                if let Some(k) = self.read_back(inv, op)? {
                    set[i].push(k);
                }
            }
        }
        Ok(set)
    }

    /// What one written op adds to `inv.reader`'s versions; the state key it set.
    fn read_back(&mut self, inv: &Inverse, op: &TargetOp) -> Result<Option<String>> {
        let table = op.table();
        let col = |name: &str| {
            table
                .columns
                .iter()
                .position(|c| c.eq_ignore_ascii_case(name))
        };
        let (key, version) = match op {
            TargetOp::Truncate { .. } => {
                self.clear(&inv.reader)?;
                return Ok(None);
            }
            TargetOp::Delete { key, .. } => {
                let values: Option<Vec<Value>> = inv
                    .key
                    .iter()
                    .map(|k| {
                        let c = col(k)?;
                        let n = table.key.iter().position(|&x| x == c)?;
                        key.get(n).cloned()
                    })
                    .collect();
                let Some(values) = values else {
                    return Ok(None);
                };
                (state_key(&inv.reader, &values), None)
            }
            TargetOp::Upsert { row, .. } => {
                let values: Option<Vec<Value>> =
                    inv.key.iter().map(|k| row.get(col(k)?)?.clone()).collect();
                let Some(values) = values else {
                    return Ok(None);
                };
                let k = state_key(&inv.reader, &values);
                let mut cols = self
                    .store
                    .synced(&k)?
                    .and_then(|v| v.last().cloned().flatten())
                    .unwrap_or_default();
                for name in &inv.columns {
                    let Some(Some(v)) = col(name).and_then(|c| row.get(c)) else {
                        continue;
                    };
                    let name = name.to_lowercase();
                    let h = value_hash(v);
                    match cols.iter_mut().find(|(c, _)| *c == name) {
                        Some(entry) => entry.1 = h,
                        None => cols.push((name, h)),
                    }
                }
                (k, Some(cols))
            }
        };
        let mut versions = self.store.synced(&key)?.unwrap_or_default();
        versions.push(version);
        if versions.len() > VERSIONS {
            versions.remove(0);
        }
        self.store.set_synced(&key, &versions)?;
        Ok(Some(key))
    }

    /// After the target commit: store what the batch's mappings carried.
    pub fn flush(&mut self) -> Result<()> {
        for (k, s) in self.staged.drain() {
            match s {
                Staged::Set(state) => self.store.set_synced(&k, &state)?,
                Staged::Forget => self.store.forget_synced(&k)?,
            }
        }
        Ok(())
    }

    /// After the commit: the states a failed op set before it no longer hold.
    pub fn undo(&mut self, keys: &[String]) -> Result<()> {
        for k in keys {
            self.store.forget_synced(k)?;
        }
        Ok(())
    }

    /// Drop what was staged (a batch that did not commit: it is replayed).
    pub fn discard(&mut self) {
        self.staged.clear();
    }
}

/// Whether `change` is `version` in every column `b` reads.
fn matches(b: &BoundMapping, change: &RowChange, version: &Version) -> bool {
    match (change.op, version) {
        (Op::Delete, None) => true,
        (Op::Insert | Op::Update, Some(cols)) => {
            let Some(after) = change.after.as_ref() else {
                return false;
            };
            let schema = &change.table;
            b.reads().iter().all(|&i| {
                let name = schema.columns[i].name.to_lowercase();
                let synced = cols.iter().find(|(c, _)| *c == name).map(|(_, h)| *h);
                match (after.get(i), synced) {
                    (Some(Some(v)), Some(h)) => value_hash(v) == h,
                    // Not sent (an unchanged TOAST value): as it was when last synced.
                    (Some(None), Some(_)) => true,
                    _ => false,
                }
            })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_compare_across_representations() {
        assert_eq!(
            norm(&Value::Decimal("1.5000".into())),
            norm(&Value::Decimal("1.5".into()))
        );
        assert_eq!(
            norm(&Value::Decimal("10.000".into())),
            norm(&Value::Decimal("10".into()))
        );
        assert_eq!(norm(&Value::Bool(true)), norm(&Value::Int(1)));
        let t = chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .unwrap()
            .and_hms_micro_opt(3, 4, 5, 6)
            .unwrap();
        assert_eq!(
            norm(&Value::TimestampTz(t.and_utc())),
            norm(&Value::Timestamp(t))
        );
        assert_ne!(norm(&Value::Null), norm(&Value::Text(String::new())));
    }

    #[test]
    fn state_keys_are_per_mapping_and_representation_free() {
        assert_eq!(
            state_key("m", &[Value::Int(7)]),
            state_key("m", &[Value::UInt(7)])
        );
        assert_ne!(
            state_key("m", &[Value::Int(7)]),
            state_key("n", &[Value::Int(7)])
        );
        assert!(state_key("m", &[Value::Int(7)]).starts_with(&prefix("m")));
        assert!(!state_key("mm", &[Value::Int(7)]).starts_with(&prefix("m")));
    }
}
