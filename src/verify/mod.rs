//! `rowbridge verify`: compare a mapping's source rows, mapped, with the target's rows.
//!
//! Both tables are read in key order, by key ranges (keyset chunks); each source row goes through
//! the mapping as an insert would (filters, conversions, references through the key map), and
//! the columns it would write are compared, value by value and by meaning ([`compare`]), with
//! the target row of the same key. Only the columns this mapping writes are read and compared
//! (several mappings may write different columns of one table); columns the target owns
//! (`owner`, written on insert only) are not compared, nor target rows whose key is NULL (not
//! this mapping's rows). Memory: the mapped row of each source row.
//!
//! Findings per key: missing, differing, extra (a target row without source row, only for a
//! mapping that owns the existence of its rows: [`plan`]), held in the dead-letter queue (not
//! missing: the queue has the row and says why), and unreadable (a value neither side's reader
//! can represent, e.g. PostgreSQL `infinity` or a BC date: a finding for that key, the run goes
//! on).
//!
//! The comparison is a point-in-time one: on a table changing while it runs, a row changed
//! between the two reads shows as differing. `--repair` therefore never writes what verify
//! read: the flow re-reads each drifted source row between its batches (see `pipeline::resync`)
//! and deletes target rows whose key the source does not have.

mod compare;
mod plan;

pub use plan::{not_owner, MASS_DELETE_SHARE};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Value as Json};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::mapping::{BoundMapping, KeyLookup, Mapped, Mapping, TableRef, TargetOp, TargetTable};
use crate::model::{Op, RowChange, TableSchema, Value};
use crate::pipeline::echo::norm;
use crate::pipeline::resync::{read_schema, source_columns, Cell, Read, SourceReader, CHUNK_ROWS};
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

/// A value verify could not read: which key, on which side, which column.
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub key: String,
    pub endpoint: String,
    pub column: String,
}

/// What verify found, and what a repair needs.
#[derive(Debug, Default)]
pub struct Drift {
    pub source_rows: u64,
    pub target_rows: u64,
    /// Source keys of rows missing on the target, or differing.
    pub missing: Vec<Vec<Value>>,
    pub differing: Vec<Vec<Value>>,
    /// Target keys the source has no row for, of a mapping that owns its target rows.
    pub extra: Vec<Vec<Value>>,
    /// Source rows the mapping cannot write (would be dead letters) or that wait for a parent.
    pub unmapped: u64,
    /// Source keys of rows held in the dead-letter queue (not compared, not repaired).
    pub held: Vec<Vec<Value>>,
    pub unreadable: Vec<Unreadable>,
    /// Why the mapping does not own the existence of its target rows (`None`: it does).
    pub not_owner: Option<String>,
    /// Target rows without a source row that the mapping does not own (left alone).
    pub not_owned: u64,
    /// Source rows of an update-only mapping whose target row does not exist (left alone).
    pub not_created: u64,
}

fn key_text(key: &[Value]) -> String {
    key.iter().map(norm).collect::<Vec<_>>().join(",")
}

impl Drift {
    pub fn in_sync(&self) -> bool {
        self.missing.is_empty()
            && self.differing.is_empty()
            && self.extra.is_empty()
            && self.unreadable.is_empty()
    }

    pub fn to_json(&self, mapping: &str) -> Json {
        let list = |v: &[Vec<Value>]| {
            v.iter()
                .take(LISTED)
                .map(|k| Json::String(key_text(k)))
                .collect::<Vec<_>>()
        };
        let unreadable: Vec<Json> = self
            .unreadable
            .iter()
            .take(LISTED)
            .map(|u| json!({"key": u.key, "endpoint": u.endpoint, "column": u.column}))
            .collect();
        json!({
            "mapping": mapping,
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "missing": self.missing.len(),
            "differing": self.differing.len(),
            "extra": self.extra.len(),
            "unmapped": self.unmapped,
            "dead_letters": self.held.len(),
            "unreadable": self.unreadable.len(),
            "owns_rows": self.not_owner.is_none(),
            "not_owned": self.not_owned,
            "missing_keys": list(&self.missing),
            "differing_keys": list(&self.differing),
            "extra_keys": list(&self.extra),
            "dead_letter_keys": list(&self.held),
            "unreadable_keys": unreadable,
            "in_sync": self.in_sync(),
            "plan": self.plan(),
        })
    }
}

/// What the target row of one key should hold.
enum Expected {
    /// The mapped row (target column order) and the source key.
    Row(Vec<Option<Value>>, Vec<Value>),
    /// Not compared: held in the dead-letter queue, or unreadable on the source.
    Skip,
}

/// Compare one mapping's two sides. `all` is every loaded mapping (for ownership of rows).
pub async fn verify(
    config: &Config,
    mapping: &Arc<Mapping>,
    all: &[Arc<Mapping>],
    store: &Store,
) -> Result<Drift> {
    let mut drift = Drift {
        not_owner: not_owner(mapping, all),
        ..Drift::default()
    };
    let (expected, target) = read_source(config, mapping, store, &mut drift).await?;
    compare_target(config, &target, expected, &mut drift).await?;
    Ok(drift)
}

/// Source keys (normalised text) of this mapping's rows in the dead-letter queue.
fn held_keys(store: &Store, mapping: &Mapping) -> Result<HashSet<String>> {
    let mut held = HashSet::new();
    for d in store.dead_letters()? {
        if d.mapping != mapping.name {
            continue;
        }
        let change = &d.change;
        let Some(image) = change.after.as_ref().or(change.before.as_ref()) else {
            continue;
        };
        let key: Option<Vec<Value>> = mapping
            .key
            .iter()
            .map(|k| {
                let i = change.table.columns.iter().position(|c| &c.name == k)?;
                image.get(i).cloned().flatten()
            })
            .collect();
        if let Some(key) = key {
            held.insert(key_text(&key));
        }
    }
    Ok(held)
}

/// The source side of one verify: the mapping bound to the rows as read.
struct SourceSide<'a> {
    mapping: &'a Mapping,
    bound: BoundMapping,
    schema: Arc<TableSchema>,
    columns: Vec<String>,
    /// Source keys held in the dead-letter queue.
    held: HashSet<String>,
    keys: StoreKeys<'a>,
}

impl SourceSide<'_> {
    /// Map one source row as read into `expected` (by target key), or record why not.
    fn take(
        &self,
        row: Vec<Cell>,
        expected: &mut HashMap<String, Expected>,
        drift: &mut Drift,
    ) -> Result<()> {
        let nkey = self.mapping.key.len();
        drift.source_rows += 1;
        let source_key = readable_key(&row[..nkey]).ok_or_else(|| unreadable_key(self.mapping))?;
        let skip = if let Some(i) = row.iter().position(Result::is_err) {
            drift.unreadable.push(Unreadable {
                key: key_text(&source_key),
                endpoint: self.mapping.source.endpoint.clone(),
                column: self.columns[i].clone(),
            });
            true
        } else if self.held.contains(&key_text(&source_key)) {
            drift.held.push(source_key.clone());
            true
        } else {
            false
        };
        let row: Vec<Value> = row.into_iter().map(|c| c.unwrap_or(Value::Null)).collect();
        let ops = match map_row(&self.bound, &self.schema, row, &self.keys) {
            Ok(Some(ops)) => ops,
            // A row not compared needs no reason why it cannot be mapped.
            Ok(None) | Err(_) if skip => return Ok(()),
            Ok(None) => {
                drift.unmapped += 1;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let target = &self.bound.target;
        for op in ops {
            if let TargetOp::Upsert { row, .. } = op {
                let key: Vec<Value> = target
                    .key
                    .iter()
                    .map(|&i| row[i].clone().unwrap_or(Value::Null))
                    .collect();
                let entry = match skip {
                    true => Expected::Skip,
                    false => Expected::Row(row, source_key.clone()),
                };
                expected.insert(key_text(&key), entry);
            }
        }
        Ok(())
    }
}

/// Read the source and map each row: target key -> what the target row should hold.
async fn read_source(
    config: &Config,
    mapping: &Arc<Mapping>,
    store: &Store,
    drift: &mut Drift,
) -> Result<(HashMap<String, Expected>, Arc<TargetTable>)> {
    let columns = source_columns(mapping);
    let schema = Arc::new(read_schema(mapping, &columns));
    let side = SourceSide {
        mapping,
        bound: BoundMapping::bind(mapping.clone(), schema.clone())?,
        schema,
        held: held_keys(store, mapping)?,
        keys: StoreKeys(store),
        columns,
    };
    let mut expected = HashMap::new();
    let mut reader = SourceReader::connect(config, &mapping.source.endpoint).await?;
    let mut after: Option<Vec<Value>> = None;
    loop {
        let rows = reader
            .chunk_cells(Read {
                table: &mapping.source,
                key: &mapping.key,
                columns: &side.columns,
                after: after.as_deref(),
                keys: None,
                filter: None,
                limit: CHUNK_ROWS,
            })
            .await?;
        let n = rows.len();
        if let Some(r) = rows.last() {
            let last = readable_key(&r[..mapping.key.len()]);
            after = Some(last.ok_or_else(|| unreadable_key(mapping))?);
        }
        for row in rows {
            side.take(row, &mut expected, drift)?;
        }
        if n < CHUNK_ROWS {
            break;
        }
    }
    Ok((expected, side.bound.target.clone()))
}

fn readable_key(cells: &[Cell]) -> Option<Vec<Value>> {
    cells.iter().map(|c| c.as_ref().ok().cloned()).collect()
}

fn unreadable_key(mapping: &Mapping) -> Error {
    Error::Usage(format!(
        "{}: a key value of {} cannot be read; verify needs readable keys",
        mapping.name, mapping.source
    ))
}

/// The target ops of one source row mapped as an insert; `None`: it cannot be written now.
fn map_row(
    bound: &BoundMapping,
    schema: &Arc<TableSchema>,
    row: Vec<Value>,
    keys: &StoreKeys<'_>,
) -> Result<Option<Vec<TargetOp>>> {
    let change = RowChange {
        table: schema.clone(),
        op: Op::Insert,
        before: None,
        after: Some(row.into_iter().map(Some).collect()),
        invalid: Vec::new(),
    };
    let mut ops = Vec::new();
    match bound.apply_with(&change, &mut ops, keys) {
        Ok(Mapped::Done) => Ok(Some(ops)),
        Ok(Mapped::Waiting { .. }) | Err(Error::Row { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The target columns read: the key first, then the rest; `at[i]` is where target column `i`
/// is in a read row.
struct Layout {
    columns: Vec<String>,
    key: Vec<String>,
    at: Vec<usize>,
}

impl Layout {
    fn of(target: &TargetTable) -> Layout {
        let rest = (0..target.columns.len()).filter(|i| !target.key.contains(i));
        let order: Vec<usize> = target.key.iter().copied().chain(rest).collect();
        let mut at = vec![0; target.columns.len()];
        for (pos, &i) in order.iter().enumerate() {
            at[i] = pos;
        }
        Layout {
            columns: order.iter().map(|&i| target.columns[i].clone()).collect(),
            key: target
                .key
                .iter()
                .map(|&i| target.columns[i].clone())
                .collect(),
            at,
        }
    }
}

/// Read the target by key ranges (only the columns the mapping writes) and compare.
async fn compare_target(
    config: &Config,
    target: &TargetTable,
    mut expected: HashMap<String, Expected>,
    drift: &mut Drift,
) -> Result<()> {
    let tref = TableRef {
        endpoint: target.endpoint.clone(),
        namespace: target.namespace.clone(),
        table: target.name.clone(),
        line: 0,
    };
    let layout = Layout::of(target);
    let unreadable = || {
        Error::Usage(format!(
            "a key value of {tref} cannot be read; verify needs readable keys"
        ))
    };
    let mut reader = SourceReader::connect(config, &target.endpoint).await?;
    let mut after: Option<Vec<Value>> = None;
    loop {
        let rows = reader
            .chunk_cells(Read {
                table: &tref,
                key: &layout.key,
                columns: &layout.columns,
                after: after.as_deref(),
                keys: None,
                filter: None,
                limit: CHUNK_ROWS,
            })
            .await?;
        let n = rows.len();
        if let Some(r) = rows.last() {
            after = Some(readable_key(&r[..layout.key.len()]).ok_or_else(unreadable)?);
        }
        for read in rows {
            let key = readable_key(&read[..layout.key.len()]).ok_or_else(unreadable)?;
            if key.iter().any(Value::is_null) {
                continue;
            }
            drift.target_rows += 1;
            let wanted = expected.remove(&key_text(&key));
            compare_row(target, &layout, key, wanted, &read, drift);
        }
        if n < CHUNK_ROWS {
            break;
        }
    }
    for left in expected.into_values() {
        if let Expected::Row(_, source_key) = left {
            if target.update_only {
                drift.not_created += 1;
            } else {
                drift.missing.push(source_key);
            }
        }
    }
    drift.missing.sort_by_key(|k| key_text(k));
    Ok(())
}

/// One target row (`read`, in `layout` order) against what the mapping would write there.
fn compare_row(
    target: &TargetTable,
    layout: &Layout,
    key: Vec<Value>,
    wanted: Option<Expected>,
    read: &[Cell],
    drift: &mut Drift,
) {
    let bad = read.iter().position(Result::is_err);
    match (wanted, bad) {
        (Some(Expected::Skip), _) => {}
        (_, Some(pos)) => drift.unreadable.push(Unreadable {
            key: key_text(&key),
            endpoint: target.endpoint.clone(),
            column: layout.columns[pos].clone(),
        }),
        (None, None) if drift.not_owner.is_some() => drift.not_owned += 1,
        (None, None) => drift.extra.push(key),
        (Some(Expected::Row(want, source_key)), None) => {
            // Only the columns this mapping writes on an update (not those it writes on insert
            // only, nor those it leaves out of this row).
            let differs = (0..target.columns.len()).any(|i| match &want[i] {
                Some(w) if !target.insert_only.contains(&i) => match &read[layout.at[i]] {
                    Ok(held) => !compare::same(w, held),
                    Err(_) => true,
                },
                _ => false,
            });
            if differs {
                drift.differing.push(source_key);
            }
        }
    }
}
