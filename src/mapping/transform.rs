//! Turning one source row change into target operations.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{Op, RowChange, RowImage, TableSchema, Value};

use super::{convert, Computed, FilterTest, Mapping, OnDelete};

/// A target table as the sink writes it: column order fixed by the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetTable {
    pub endpoint: String,
    pub namespace: String,
    pub name: String,
    pub columns: Vec<String>,
    /// Indexes into `columns` of the key the sink upserts and deletes by.
    pub key: Vec<usize>,
    /// Update existing rows only, never insert (`write = "update"`).
    pub update_only: bool,
    /// Columns written when a row is inserted but never updated: the other endpoint owns them.
    pub insert_only: Vec<usize>,
}

impl std::fmt::Display for TargetTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// One idempotent write.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetOp {
    /// Insert or update by key. `None` leaves that column as it is on the target (an unchanged
    /// TOAST value on the source).
    Upsert {
        table: Arc<TargetTable>,
        row: Vec<Option<Value>>,
    },
    /// Delete by key; deleting a missing row is not an error.
    Delete {
        table: Arc<TargetTable>,
        key: Vec<Value>,
    },
    /// Remove every row (as a transactional DELETE, never DDL).
    Truncate { table: Arc<TargetTable> },
}

impl TargetOp {
    pub fn table(&self) -> &Arc<TargetTable> {
        match self {
            TargetOp::Upsert { table, .. }
            | TargetOp::Delete { table, .. }
            | TargetOp::Truncate { table } => table,
        }
    }

    /// The key values, for dead-letter records.
    pub fn key_values(&self) -> Vec<Value> {
        match self {
            TargetOp::Upsert { table, row } => table
                .key
                .iter()
                .map(|&i| row[i].clone().unwrap_or(Value::Null))
                .collect(),
            TargetOp::Delete { key, .. } => key.clone(),
            TargetOp::Truncate { .. } => Vec::new(),
        }
    }
}

/// Where references are translated: a mapping's source key -> the target key it was written to.
pub trait KeyLookup {
    fn target_key(&self, mapping: &str, source_key: &str) -> Result<Option<Vec<Value>>>;
}

/// No key map: every reference is unresolved (for mappings without references, and tests).
pub struct NoKeys;

impl KeyLookup for NoKeys {
    fn target_key(&self, _: &str, _: &str) -> Result<Option<Vec<Value>>> {
        Ok(None)
    }
}

/// What mapping one change produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// Zero or more operations were pushed.
    Done,
    /// A referenced row is not written yet: the change must wait for it.
    Waiting { mapping: String, key: String },
}

/// A mapping bound to the columns of one version of its source table.
#[derive(Debug, Clone)]
pub struct BoundMapping {
    pub mapping: Arc<Mapping>,
    pub target: Arc<TargetTable>,
    pub schema: Arc<TableSchema>,
    /// For each mapped column (in `mapping.columns` order), the source column index.
    src_idx: Vec<usize>,
    /// For each key column, the source column index.
    key_src: Vec<usize>,
    /// For each computed concat, its source column indexes.
    concat_src: Vec<Vec<usize>>,
    /// Filter tests with their source column index.
    filters: Vec<(usize, FilterTest)>,
    /// Target column of a soft delete, when the mapping has one.
    soft_delete: Option<(usize, Value)>,
    /// Every source column the mapping reads (mapped, key, computed, filter), ascending.
    reads: Vec<usize>,
}

impl BoundMapping {
    /// Fails (naming the mapping file and line) when the source table lacks a used column.
    pub fn bind(mapping: Arc<Mapping>, schema: Arc<TableSchema>) -> Result<BoundMapping> {
        let find = |name: &str, line: usize| {
            schema.column_index(name).ok_or_else(|| {
                mapping.error(
                    line,
                    format!(
                        "column '{name}' does not exist in source table {}",
                        mapping.source
                    ),
                )
            })
        };
        let src_idx = mapping
            .columns
            .iter()
            .map(|c| find(&c.source, c.line))
            .collect::<Result<Vec<_>>>()?;
        let key_src = mapping
            .key
            .iter()
            .map(|k| find(k, mapping.key_line))
            .collect::<Result<Vec<_>>>()?;
        let mut concat_src = Vec::new();
        for c in &mapping.computed {
            if let Computed::Concat { sources, .. } = &c.kind {
                concat_src.push(
                    sources
                        .iter()
                        .map(|s| find(s, c.line))
                        .collect::<Result<Vec<_>>>()?,
                );
            }
        }
        let filters = mapping
            .filters
            .iter()
            .map(|f| Ok((find(&f.column, f.line)?, f.test.clone())))
            .collect::<Result<Vec<_>>>()?;
        let mut columns: Vec<String> = mapping.columns.iter().map(|c| c.target.clone()).collect();
        columns.extend(mapping.computed.iter().map(|c| c.target.clone()));
        let soft_delete = match &mapping.on_delete {
            OnDelete::Set { column, value } => {
                columns.push(column.clone());
                Some((columns.len() - 1, value.clone()))
            }
            _ => None,
        };
        let key = mapping
            .target_key()
            .iter()
            .map(|k| columns.iter().position(|c| c == k).expect("key is mapped"))
            .collect();
        // In a `direction = "both"` mapping the owner decides conflicts, not the direction.
        let insert_only = mapping
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                mapping.conflict.is_none()
                    && c.owner
                        .as_ref()
                        .is_some_and(|o| *o != mapping.source.endpoint)
            })
            .map(|(i, _)| i)
            .chain(
                mapping
                    .computed
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| {
                        c.owner
                            .as_ref()
                            .is_some_and(|o| *o != mapping.source.endpoint)
                    })
                    .map(|(j, _)| mapping.columns.len() + j),
            )
            .collect();
        let target = Arc::new(TargetTable {
            endpoint: mapping.target.endpoint.clone(),
            namespace: mapping.target.namespace.clone(),
            name: mapping.target.table.clone(),
            columns,
            key,
            update_only: mapping.update_only,
            insert_only,
        });
        let mut reads: Vec<usize> = src_idx
            .iter()
            .chain(&key_src)
            .chain(concat_src.iter().flatten())
            .chain(filters.iter().map(|(i, _)| i))
            .copied()
            .collect();
        reads.sort_unstable();
        reads.dedup();
        Ok(BoundMapping {
            mapping,
            target,
            schema,
            src_idx,
            key_src,
            concat_src,
            filters,
            soft_delete,
            reads,
        })
    }

    /// Map one change. A change without a usable key, or a value a conversion rejects, is a
    /// row error (the change goes to the dead-letter queue).
    pub fn apply(&self, change: &RowChange, out: &mut Vec<TargetOp>) -> Result<()> {
        match self.apply_with(change, out, &NoKeys)? {
            Mapped::Done => Ok(()),
            Mapped::Waiting { mapping, .. } => Err(self.row_error(format!(
                "reference into mapping '{mapping}' is not resolved"
            ))),
        }
    }

    /// Map one change, translating references through `keys`. Nothing is pushed when the
    /// change has to wait for a referenced row.
    pub fn apply_with(
        &self,
        change: &RowChange,
        out: &mut Vec<TargetOp>,
        keys: &dyn KeyLookup,
    ) -> Result<Mapped> {
        let before = out.len();
        let mut waiting = None;
        let res = self.apply_inner(change, out, keys, &mut waiting);
        if let Some(w) = waiting {
            out.truncate(before);
            return Ok(w);
        }
        res.map(|_| Mapped::Done)
    }

    fn apply_inner(
        &self,
        change: &RowChange,
        out: &mut Vec<TargetOp>,
        keys: &dyn KeyLookup,
        waiting: &mut Option<Mapped>,
    ) -> Result<()> {
        let table = self.target.clone();
        match change.op {
            Op::Truncate if self.mapping.apply_truncate => out.push(TargetOp::Truncate { table }),
            Op::Truncate => {}
            Op::Insert => {
                let after = self.image(change.after.as_ref())?;
                if self.passes(after) {
                    let row = self.target_row(after, keys, waiting)?;
                    self.key_of(&row)?;
                    out.push(TargetOp::Upsert { table, row });
                }
            }
            Op::Update => {
                let after = self.image(change.after.as_ref())?;
                if !self.passes(after) {
                    // Left the filter (or never in it): deleting a missing row is harmless.
                    if self.mapping.delete_on_filter_leave {
                        self.delete(self.key_from_image(after)?, out);
                    }
                    return Ok(());
                }
                let row = self.target_row(after, keys, waiting)?;
                let new_key = self.key_of(&row)?;
                if let Some(before) = change.before.as_ref() {
                    let old_key = self.key_from_image(before)?;
                    if old_key != new_key {
                        self.delete(old_key, out);
                    }
                }
                out.push(TargetOp::Upsert { table, row });
            }
            Op::Delete => {
                let before = self.image(change.before.as_ref())?;
                self.delete(self.key_from_image(before)?, out);
            }
        }
        Ok(())
    }

    /// A delete as the mapping's `on_delete` says: by key, not at all, or a soft delete.
    fn delete(&self, key: Vec<Value>, out: &mut Vec<TargetOp>) {
        let table = self.target.clone();
        match (&self.mapping.on_delete, &self.soft_delete) {
            (OnDelete::Ignore, _) => {}
            (OnDelete::Set { .. }, Some((col, value))) => {
                let mut row = vec![None; table.columns.len()];
                for (k, v) in table.key.iter().zip(key) {
                    row[*k] = Some(v);
                }
                row[*col] = Some(value.clone());
                out.push(TargetOp::Upsert { table, row });
            }
            _ => out.push(TargetOp::Delete { table, key }),
        }
    }

    fn passes(&self, image: &RowImage) -> bool {
        self.filters.iter().all(|(i, test)| match image.get(*i) {
            // Not sent (unchanged TOAST): the value did not change, so neither did the verdict
            // of the row's last version; let it through and let the upsert be idempotent.
            None | Some(None) => true,
            Some(Some(v)) => match test {
                FilterTest::IsNull(want) => v.is_null() == *want,
                FilterTest::In(values) => {
                    convert::text_form(v).is_some_and(|t| values.contains(&t))
                }
                FilterTest::NotIn(values) => {
                    convert::text_form(v).is_none_or(|t| !values.contains(&t))
                }
            },
        })
    }

    /// Whether this mapping reads source column `i`.
    pub fn uses_column(&self, i: usize) -> bool {
        self.reads.binary_search(&i).is_ok()
    }

    /// Every source column this mapping reads, ascending.
    pub fn reads(&self) -> &[usize] {
        &self.reads
    }

    /// The source key's values in an image (as the source sent them), if it carries them all.
    pub fn source_key(&self, image: &RowImage) -> Option<Vec<Value>> {
        self.key_src
            .iter()
            .map(|&i| image.get(i).cloned().flatten())
            .collect()
    }

    /// The change's key as text for a dead-letter record, as far as the images carry it.
    pub fn key_text(&self, change: &RowChange) -> String {
        let image = change.after.as_ref().or(change.before.as_ref());
        let values: Vec<Value> = self
            .key_src
            .iter()
            .map(|&i| {
                image
                    .and_then(|img| img.get(i).cloned().flatten())
                    .unwrap_or(Value::Null)
            })
            .collect();
        describe_key(&values)
    }

    fn image<'a>(&self, image: Option<&'a RowImage>) -> Result<&'a RowImage> {
        image.ok_or_else(|| self.row_error("change carries no row image".into()))
    }

    /// The target row: each column converted; `None` where the source did not send the value.
    fn target_row(
        &self,
        image: &RowImage,
        keys: &dyn KeyLookup,
        waiting: &mut Option<Mapped>,
    ) -> Result<Vec<Option<Value>>> {
        let m = &self.mapping;
        let mut row = Vec::with_capacity(self.target.columns.len());
        for (c, &i) in m.columns.iter().zip(&self.src_idx) {
            let v = match (image.get(i).cloned().flatten(), &c.reference) {
                (Some(v), Some(r)) if !v.is_null() => {
                    let k = describe_key(std::slice::from_ref(&v));
                    match keys.target_key(r, &k)? {
                        Some(mut target) if target.len() == 1 => Some(target.remove(0)),
                        _ => {
                            waiting.get_or_insert(Mapped::Waiting {
                                mapping: r.clone(),
                                key: k,
                            });
                            Some(Value::Null)
                        }
                    }
                }
                (v, _) => v,
            };
            row.push(match v {
                Some(v) => Some(self.convert(&c.steps, v, &c.source)?),
                None => None,
            });
        }
        let mut concats = self.concat_src.iter();
        for c in &m.computed {
            row.push(match &c.kind {
                Computed::Constant(v) => Some(self.convert(&c.steps, v.clone(), &c.target)?),
                Computed::Concat { separator, .. } => {
                    let idx = concats.next().expect("bound per concat");
                    let parts: Option<Vec<Value>> = idx
                        .iter()
                        .map(|&i| image.get(i).cloned().flatten())
                        .collect();
                    match parts {
                        Some(parts) => {
                            let joined = convert::concat(&parts, separator)
                                .map_err(|e| self.column_error(&c.target, e))?;
                            Some(self.convert(&c.steps, joined, &c.target)?)
                        }
                        None => None,
                    }
                }
            });
        }
        if self.soft_delete.is_some() {
            row.push(None);
        }
        Ok(row)
    }

    fn convert(&self, steps: &[convert::Step], v: Value, column: &str) -> Result<Value> {
        if steps.is_empty() {
            return Ok(v);
        }
        convert::apply(steps, v).map_err(|e| self.column_error(column, e))
    }

    fn column_error(&self, column: &str, reason: String) -> Error {
        self.row_error(format!("column '{column}': {reason}"))
    }

    /// The target key from a source image, converting only the key columns.
    fn key_from_image(&self, image: &RowImage) -> Result<Vec<Value>> {
        let m = &self.mapping;
        let mut key = Vec::with_capacity(self.key_src.len());
        for (name, &i) in m.key.iter().zip(&self.key_src) {
            let steps = m
                .columns
                .iter()
                .find(|c| &c.source == name)
                .map(|c| c.steps.as_slice());
            let v = match image.get(i).cloned().flatten() {
                Some(v) if !v.is_null() => self.convert(steps.unwrap_or_default(), v, name)?,
                _ => return Err(self.row_error(format!("key column '{name}' is NULL or missing"))),
            };
            if v.is_null() {
                return Err(self.row_error(format!("key column '{name}' is NULL or missing")));
            }
            key.push(v);
        }
        Ok(key)
    }

    fn key_of(&self, row: &[Option<Value>]) -> Result<Vec<Value>> {
        let mut key = Vec::with_capacity(self.target.key.len());
        for (n, &i) in self.target.key.iter().enumerate() {
            match row.get(i) {
                Some(Some(v)) if !v.is_null() => key.push(v.clone()),
                _ => {
                    return Err(self.row_error(format!(
                        "key column '{}' is NULL or missing",
                        self.mapping.key[n]
                    )))
                }
            }
        }
        Ok(key)
    }

    fn row_error(&self, reason: String) -> Error {
        Error::Row {
            table: self.mapping.source.to_string(),
            key: String::new(),
            reason,
        }
    }
}

/// Key values as text for dead-letter records (never logged).
pub fn describe_key(values: &[Value]) -> String {
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::Text(s) | Value::Decimal(s) | Value::Json(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Uuid(u) => u.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    parts.join(",")
}
