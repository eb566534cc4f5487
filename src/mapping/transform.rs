//! Turning one source row change into target operations.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{Op, RowChange, RowImage, TableSchema, Value};

use super::Mapping;

/// A target table as the sink writes it: column order fixed by the mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetTable {
    pub endpoint: String,
    pub namespace: String,
    pub name: String,
    pub columns: Vec<String>,
    /// Indexes into `columns` of the key the sink upserts and deletes by.
    pub key: Vec<usize>,
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

/// A mapping bound to the columns of one version of its source table.
#[derive(Debug, Clone)]
pub struct BoundMapping {
    pub mapping: Arc<Mapping>,
    pub target: Arc<TargetTable>,
    pub schema: Arc<TableSchema>,
    /// For each target column, the source column index.
    src_idx: Vec<usize>,
    /// For each key column, the source column index.
    key_src: Vec<usize>,
}

impl BoundMapping {
    /// Fails (naming the mapping file and line) when the source table lacks a mapped column.
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
        let mut src_idx = Vec::with_capacity(mapping.columns.len());
        for c in &mapping.columns {
            src_idx.push(find(&c.source, c.line)?);
        }
        let mut key_src = Vec::with_capacity(mapping.key.len());
        for k in &mapping.key {
            key_src.push(find(k, mapping.key_line)?);
        }
        let columns: Vec<String> = mapping.columns.iter().map(|c| c.target.clone()).collect();
        let key = mapping
            .target_key()
            .iter()
            .map(|k| columns.iter().position(|c| c == k).expect("key is mapped"))
            .collect();
        let target = Arc::new(TargetTable {
            endpoint: mapping.target.endpoint.clone(),
            namespace: mapping.target.namespace.clone(),
            name: mapping.target.table.clone(),
            columns,
            key,
        });
        Ok(BoundMapping {
            mapping,
            target,
            schema,
            src_idx,
            key_src,
        })
    }

    /// Map one change. A change without a usable key is a row error.
    pub fn apply(&self, change: &RowChange, out: &mut Vec<TargetOp>) -> Result<()> {
        match change.op {
            Op::Truncate => out.push(TargetOp::Truncate {
                table: self.target.clone(),
            }),
            Op::Insert => {
                let after = self.image(change.after.as_ref())?;
                self.key_of(after)?;
                out.push(self.upsert(after));
            }
            Op::Update => {
                let after = self.image(change.after.as_ref())?;
                let new_key = self.key_of(after)?;
                if let Some(before) = change.before.as_ref() {
                    let old_key = self.key_of(before)?;
                    if old_key != new_key {
                        out.push(TargetOp::Delete {
                            table: self.target.clone(),
                            key: old_key,
                        });
                    }
                }
                out.push(self.upsert(after));
            }
            Op::Delete => {
                let before = self.image(change.before.as_ref())?;
                let key = self.key_of(before)?;
                out.push(TargetOp::Delete {
                    table: self.target.clone(),
                    key,
                });
            }
        }
        Ok(())
    }

    /// Whether this mapping reads source column `i`.
    pub fn uses_column(&self, i: usize) -> bool {
        self.src_idx.contains(&i) || self.key_src.contains(&i)
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
        image.ok_or_else(|| self.row_error(String::new(), "change carries no row image"))
    }

    fn upsert(&self, image: &RowImage) -> TargetOp {
        let row = self
            .src_idx
            .iter()
            .map(|&i| image.get(i).cloned().flatten())
            .collect();
        TargetOp::Upsert {
            table: self.target.clone(),
            row,
        }
    }

    fn key_of(&self, image: &RowImage) -> Result<Vec<Value>> {
        let mut key = Vec::with_capacity(self.key_src.len());
        for (n, &i) in self.key_src.iter().enumerate() {
            match image.get(i) {
                Some(Some(v)) if !v.is_null() => key.push(v.clone()),
                _ => {
                    return Err(self.row_error(
                        String::new(),
                        format!("key column '{}' is NULL or missing", self.mapping.key[n]),
                    ))
                }
            }
        }
        Ok(key)
    }

    fn row_error(&self, key: String, reason: impl Into<String>) -> Error {
        Error::Row {
            table: self.mapping.source.to_string(),
            key,
            reason: reason.into(),
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
