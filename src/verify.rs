//! `rowbridge verify`: compare a mapping's source rows, mapped, with the target's rows.
//!
//! Both tables are read in key order, by key ranges (keyset chunks); each source row goes through
//! the mapping as an insert would (filters, conversions, references through the key map), and
//! the columns it would write are compared, as normalised fingerprints, with the target row of
//! the same key. Columns the target owns (`owner`, written on insert only) are not compared, nor
//! target rows whose key is NULL (not this mapping's rows). Memory: one fingerprint per source
//! row.
//!
//! The comparison is a point-in-time one: on a table changing while it runs, a row changed
//! between the two reads shows as differing. `--repair` therefore never writes what verify
//! read: the flow re-reads each drifted source row between its batches (see `pipeline::resync`)
//! and deletes target rows whose key the source does not have.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value as Json};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::mapping::{BoundMapping, KeyLookup, Mapped, Mapping, TableRef, TargetOp};
use crate::model::{Op, RowChange, Value};
use crate::pipeline::echo::{norm, value_hash};
use crate::pipeline::resync::{read_schema, source_columns, Read, SourceReader, CHUNK_ROWS};
use crate::store::Store;

/// Keys listed per kind in a report (the counts are always complete).
const LISTED: usize = 1_000;

/// The key map, read-only.
struct StoreKeys<'a>(&'a Store);

impl KeyLookup for StoreKeys<'_> {
    fn target_key(&self, mapping: &str, source_key: &str) -> Result<Option<Vec<Value>>> {
        self.0.key_map(mapping, source_key)
    }
}

/// What verify found, and what a repair needs.
#[derive(Debug, Default)]
pub struct Drift {
    pub source_rows: u64,
    pub target_rows: u64,
    /// Source keys of rows missing on the target, or differing.
    pub missing: Vec<Vec<Value>>,
    pub differing: Vec<Vec<Value>>,
    /// Target keys the source has no row for.
    pub extra: Vec<Vec<Value>>,
    /// Source rows the mapping cannot write (would be dead letters) or that wait for a parent.
    pub unmapped: u64,
}

fn key_text(key: &[Value]) -> String {
    key.iter().map(norm).collect::<Vec<_>>().join(",")
}

impl Drift {
    pub fn to_json(&self, mapping: &str) -> Json {
        let list = |v: &[Vec<Value>]| {
            v.iter()
                .take(LISTED)
                .map(|k| Json::String(key_text(k)))
                .collect::<Vec<_>>()
        };
        json!({
            "mapping": mapping,
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "missing": self.missing.len(),
            "differing": self.differing.len(),
            "extra": self.extra.len(),
            "unmapped": self.unmapped,
            "missing_keys": list(&self.missing),
            "differing_keys": list(&self.differing),
            "extra_keys": list(&self.extra),
            "in_sync": self.missing.is_empty() && self.differing.is_empty() && self.extra.is_empty(),
        })
    }
}

/// Compare one mapping's two sides.
pub async fn verify(config: &Config, mapping: &Arc<Mapping>, store: &Store) -> Result<Drift> {
    let columns = source_columns(mapping);
    let schema = Arc::new(read_schema(mapping, &columns));
    let bound = BoundMapping::bind(mapping.clone(), schema.clone())?;
    let target = bound.target.clone();
    let keys = StoreKeys(store);

    // The source, mapped: target key -> (fingerprint of the compared columns, which columns,
    // source key).
    let mut expected: HashMap<String, (u64, u128, Vec<Value>)> = HashMap::new();
    let mut drift = Drift::default();
    let mut reader = SourceReader::connect(config, &mapping.source.endpoint).await?;
    let mut after: Option<Vec<Value>> = None;
    loop {
        let rows = reader
            .chunk(Read {
                table: &mapping.source,
                key: &mapping.key,
                columns: &columns,
                after: after.as_deref(),
                keys: None,
                filter: None,
                limit: CHUNK_ROWS,
            })
            .await?;
        let n = rows.len();
        after = rows.last().map(|r| r[..mapping.key.len()].to_vec());
        for row in rows {
            drift.source_rows += 1;
            let source_key = row[..mapping.key.len()].to_vec();
            let change = RowChange {
                table: schema.clone(),
                op: Op::Insert,
                before: None,
                after: Some(row.into_iter().map(Some).collect()),
                invalid: Vec::new(),
            };
            let mut ops = Vec::new();
            match bound.apply_with(&change, &mut ops, &keys) {
                Ok(Mapped::Done) => {}
                Ok(Mapped::Waiting { .. }) | Err(Error::Row { .. }) => {
                    drift.unmapped += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            for op in ops {
                if let TargetOp::Upsert { row, .. } = &op {
                    let (hash, mask) = fingerprint(row, &target.insert_only);
                    expected.insert(key_text(&op.key_values()), (hash, mask, source_key.clone()));
                }
            }
        }
        if n < CHUNK_ROWS {
            break;
        }
    }
    drop(reader);

    // The target, by key ranges.
    let tref = TableRef {
        endpoint: target.endpoint.clone(),
        namespace: target.namespace.clone(),
        table: target.name.clone(),
        line: 0,
    };
    let mut tcols: Vec<String> = target
        .key
        .iter()
        .map(|&i| target.columns[i].clone())
        .collect();
    let tkey = tcols.clone();
    let rest: Vec<usize> = (0..target.columns.len())
        .filter(|i| !target.key.contains(i))
        .collect();
    tcols.extend(rest.iter().map(|&i| target.columns[i].clone()));
    // Position of each target column in the read row.
    let mut at = vec![0; target.columns.len()];
    for (pos, &i) in target.key.iter().chain(rest.iter()).enumerate() {
        at[i] = pos;
    }
    let mut reader = SourceReader::connect(config, &target.endpoint).await?;
    let mut after: Option<Vec<Value>> = None;
    loop {
        let rows = reader
            .chunk(Read {
                table: &tref,
                key: &tkey,
                columns: &tcols,
                after: after.as_deref(),
                keys: None,
                filter: None,
                limit: CHUNK_ROWS,
            })
            .await?;
        let n = rows.len();
        after = rows.last().map(|r| r[..tkey.len()].to_vec());
        for read in rows {
            let key = read[..tkey.len()].to_vec();
            if key.iter().any(Value::is_null) {
                continue;
            }
            drift.target_rows += 1;
            let row: Vec<Option<Value>> = (0..target.columns.len())
                .map(|i| Some(read[at[i]].clone()))
                .collect();
            match expected.remove(&key_text(&key)) {
                None => drift.extra.push(key),
                Some((hash, mask, source_key)) => {
                    if masked(&row, mask) != hash {
                        drift.differing.push(source_key);
                    }
                }
            }
        }
        if n < CHUNK_ROWS {
            break;
        }
    }
    drift.missing = expected.into_values().map(|(_, _, k)| k).collect();
    drift.missing.sort_by_key(|k| key_text(k));
    Ok(drift)
}

/// Fingerprint of the columns an upsert writes (present, not insert-only), and which they are.
fn fingerprint(row: &[Option<Value>], insert_only: &[usize]) -> (u64, u128) {
    let mut mask = 0u128;
    for (i, v) in row.iter().enumerate().take(128) {
        if v.is_some() && !insert_only.contains(&i) {
            mask |= 1 << i;
        }
    }
    (masked(row, mask), mask)
}

fn masked(row: &[Option<Value>], mask: u128) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, v) in row.iter().enumerate().take(128) {
        if mask & (1 << i) == 0 {
            continue;
        }
        let x = v.as_ref().map(value_hash).unwrap_or(0);
        h ^= x;
        h = h.wrapping_mul(0x0100_0000_01b3).rotate_left(5);
    }
    h
}
