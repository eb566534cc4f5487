//! Mappings: which source table feeds which target table, with which columns and key.
//!
//! Mapping is pure: `(RowChange, Mapping) -> Vec<TargetOp>`. Files are loaded and validated at
//! startup; every error names the file and line. The live-schema check (tables, columns, unique
//! target key) lives in [`crate::catalog`] and reports against the same file positions.

mod compile;
pub mod convert;
mod file;
mod transform;

use compile::compile;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::error::{Error, Result};

pub use transform::{describe_key, BoundMapping, KeyLookup, Mapped, NoKeys, TargetOp, TargetTable};

/// A qualified table on one endpoint, with the line that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub endpoint: String,
    /// Schema (PostgreSQL) or database (MySQL), defaults filled in.
    pub namespace: String,
    pub table: String,
    pub line: usize,
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}.{}", self.endpoint, self.namespace, self.table)
    }
}

/// A source column written to a target column, through conversion steps.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnMap {
    pub source: String,
    pub target: String,
    pub line: usize,
    pub steps: Vec<convert::Step>,
    /// Name of the mapping whose key map translates this value (a foreign key).
    pub reference: Option<String>,
    /// The endpoint that is the source of truth for this column. In a one-way mapping, when
    /// it is not the source, the column is written on insert only, never overwritten; in a
    /// `direction = "both"` mapping the column flows both ways and the owner wins conflicts.
    pub owner: Option<String>,
    /// Conflict policy of this column, overriding the mapping's (`direction = "both"`).
    pub conflict: Option<Policy>,
}

/// How a conflicting edit of a row (or of one column) is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Policy {
    /// The later source commit wins; a tie goes to the endpoint first in `priority`.
    LastWriterWins,
    /// The column's owner (else the mapping's `winner`) wins.
    SourceWins,
    /// A column changed on one side only keeps that change; one changed on both sides is
    /// resolved by the fallback policy.
    Merge,
    /// Park both versions; an operator resolves.
    Manual,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        Some(match s {
            "last_writer_wins" => Policy::LastWriterWins,
            "source_wins" => Policy::SourceWins,
            "merge" => Policy::Merge,
            "manual" => Policy::Manual,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::LastWriterWins => "last_writer_wins",
            Policy::SourceWins => "source_wins",
            Policy::Merge => "merge",
            Policy::Manual => "manual",
        }
    }
}

/// The `[conflict]` table of a `direction = "both"` mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictRules {
    pub policy: Policy,
    /// `source_wins`: the endpoint that wins columns without an owner.
    pub winner: Option<String>,
    /// `merge`: how a column changed on both sides is resolved (never `merge`).
    pub fallback: Policy,
    /// Endpoints in tie-break order (first wins).
    pub priority: Vec<String>,
}

/// Both directions of one `direction = "both"` mapping: side `a` is the file's source, `b`
/// its target. Fields are the mapped column pairs in the forward mapping's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub name: String,
    pub a: TableRef,
    pub b: TableRef,
    pub fields: Vec<PairField>,
    /// Indexes into `fields` of the key.
    pub key: Vec<usize>,
    pub rules: ConflictRules,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PairField {
    pub a: String,
    pub b: String,
    pub policy: Policy,
    pub owner: Option<String>,
}

impl Pair {
    fn of(m: &Mapping) -> Option<Pair> {
        let rules = m.conflict.clone()?;
        let fields: Vec<PairField> = m
            .columns
            .iter()
            .map(|c| PairField {
                a: c.source.clone(),
                b: c.target.clone(),
                policy: c.conflict.unwrap_or(rules.policy),
                owner: c.owner.clone(),
            })
            .collect();
        let key = m
            .key
            .iter()
            .filter_map(|k| fields.iter().position(|f| &f.a == k))
            .collect();
        Some(Pair {
            name: m.name.clone(),
            a: m.source.clone(),
            b: m.target.clone(),
            fields,
            key,
            rules,
        })
    }

    /// The side (`true` = a) an endpoint is.
    pub fn is_a(&self, endpoint: &str) -> bool {
        self.a.endpoint == endpoint
    }

    /// Column names of one side, in field order.
    pub fn columns(&self, a_side: bool) -> Vec<&str> {
        self.fields
            .iter()
            .map(|f| if a_side { f.a.as_str() } else { f.b.as_str() })
            .collect()
    }
}

/// A target column that no single source column feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputedColumn {
    pub target: String,
    /// The endpoint that owns the value; the target endpoint: written on insert only.
    pub owner: Option<String>,
    pub line: usize,
    pub kind: Computed,
    pub steps: Vec<convert::Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Computed {
    Constant(crate::model::Value),
    Concat {
        sources: Vec<String>,
        separator: String,
    },
}

/// One filter test on a source column; a row passes when every test passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: String,
    pub line: usize,
    pub test: FilterTest,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterTest {
    /// The value's text form is one of these.
    In(Vec<String>),
    NotIn(Vec<String>),
    IsNull(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum OnDelete {
    Delete,
    Ignore,
    /// Soft delete: set this target column to this value.
    Set {
        column: String,
        value: crate::model::Value,
    },
}

/// One validated mapping file.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub name: String,
    pub file: PathBuf,
    pub source: TableRef,
    pub target: TableRef,
    /// Mapped columns, sorted by source name.
    pub columns: Vec<ColumnMap>,
    /// Source key columns (each also in `columns`).
    pub key: Vec<String>,
    pub key_line: usize,
    pub computed: Vec<ComputedColumn>,
    pub filters: Vec<Filter>,
    /// A row leaving the filter deletes its target row (else it is left as it is).
    pub delete_on_filter_leave: bool,
    pub on_delete: OnDelete,
    pub apply_truncate: bool,
    /// Update existing target rows only (`write = "update"`); a missing row is left missing.
    pub update_only: bool,
    /// Source columns matched against the target the first time a row is written.
    pub matching: Vec<String>,
    pub match_line: usize,
    /// `direction = "both"`: the same columns also flow from target to source.
    pub both: bool,
    /// Conflict rules of a `direction = "both"` mapping (both directions carry them).
    pub conflict: Option<ConflictRules>,
}

impl Mapping {
    /// The other direction of a `direction = "both"` mapping: target and source swapped,
    /// columns inverted (owners and conflict policies kept). Only plain column renames can be
    /// inverted, so anything else (a conversion, a computed column, a filter, a match, a
    /// reference) is an error.
    pub fn reversed(&self) -> Result<Mapping> {
        let plain = self
            .columns
            .iter()
            .all(|c| c.steps.is_empty() && c.reference.is_none());
        if !plain
            || !self.computed.is_empty()
            || !self.filters.is_empty()
            || !self.matching.is_empty()
            || self.update_only
            || matches!(self.on_delete, OnDelete::Set { .. })
        {
            return Err(self.error(1, "direction = \"both\" needs plain column renames only (no conversions, computed columns, filters, match, references or write = \"update\"); write two mapping files instead"));
        }
        let columns = self
            .columns
            .iter()
            .map(|c| ColumnMap {
                source: c.target.clone(),
                target: c.source.clone(),
                line: c.line,
                steps: vec![],
                reference: None,
                owner: c.owner.clone(),
                conflict: c.conflict,
            })
            .collect();
        Ok(Mapping {
            name: format!("{}.reverse", self.name),
            file: self.file.clone(),
            source: self.target.clone(),
            target: self.source.clone(),
            columns,
            key: self.target_key().iter().map(|k| k.to_string()).collect(),
            key_line: self.key_line,
            computed: vec![],
            filters: vec![],
            delete_on_filter_leave: self.delete_on_filter_leave,
            on_delete: self.on_delete.clone(),
            apply_truncate: self.apply_truncate,
            update_only: false,
            matching: vec![],
            match_line: 0,
            both: false,
            conflict: self.conflict.clone(),
        })
    }
}

impl Mapping {
    pub fn target_key(&self) -> Vec<&str> {
        self.key
            .iter()
            .map(|k| {
                let c = self.columns.iter().find(|c| &c.source == k);
                c.map(|c| c.target.as_str()).unwrap_or(k)
            })
            .collect()
    }

    pub fn error(&self, line: usize, message: impl Into<String>) -> Error {
        Error::mapping(&self.file, line, message)
    }
}

/// A mapping (`reader`) that reads back the table another mapping (the writer) writes, into
/// the writer's own source table. Where the writer fills column `c` from the target column
/// `d` that the reader fills from `c`, the value the writer wrote to `c` agrees with `d` by
/// construction: carrying it back would only echo it.
#[derive(Debug, Clone, PartialEq)]
pub struct Inverse {
    pub reader: String,
    /// The reader's source key columns.
    pub key: Vec<String>,
    /// Columns of the written table (reader's source, writer's target) in such pairs.
    pub columns: Vec<String>,
}

impl Inverse {
    fn of(writer: &Mapping, reader: &Mapping) -> Option<Inverse> {
        if reader.source != writer.target || reader.target != writer.source {
            return None;
        }
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let columns: Vec<String> = reader
            .columns
            .iter()
            .filter(|rc| {
                writer
                    .columns
                    .iter()
                    .any(|wc| same(&wc.source, &rc.target) && same(&wc.target, &rc.source))
            })
            .map(|rc| rc.source.clone())
            .collect();
        (!columns.is_empty()).then(|| Inverse {
            reader: reader.name.clone(),
            key: reader.key.clone(),
            columns,
        })
    }
}

/// Several mappings may write one target table (each its own columns: "the ERP owns the
/// address, both edit the name"), but never the same column: two writers of one column would
/// overwrite each other and echo without end. Key columns are shared: they name the row.
fn check_written_columns(list: &[Arc<Mapping>]) -> Result<()> {
    let mut writers: HashMap<(String, String), &Mapping> = HashMap::new();
    for m in list {
        let key: Vec<String> = m.target_key().iter().map(|k| k.to_lowercase()).collect();
        let written = m
            .columns
            .iter()
            .map(|c| (c.target.as_str(), c.line))
            .chain(m.computed.iter().map(|c| (c.target.as_str(), c.line)))
            .chain(match &m.on_delete {
                OnDelete::Set { column, .. } => Some((column.as_str(), m.target.line)),
                _ => None,
            });
        for (column, line) in written {
            let lower = column.to_lowercase();
            if key.contains(&lower) {
                continue;
            }
            let id = (m.target.to_string(), lower);
            match writers.get(&id) {
                // One mapping may name a column twice (a soft-delete flag it also maps):
                // compile reports that.
                Some(other) if other.name != m.name => {
                    return Err(m.error(
                        line,
                        format!(
                            "column {column} of {} is also written by mapping '{}' ({}): each target column has one writer; map it in one of them",
                            m.target,
                            other.name,
                            other.file.display()
                        ),
                    ));
                }
                _ => {
                    writers.insert(id, m);
                }
            }
        }
    }
    Ok(())
}

/// All mappings, indexed by source table.
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    pub list: Vec<Arc<Mapping>>,
    /// Names of mappings other mappings reference: their writes are recorded in the key map.
    pub referenced: std::collections::HashSet<String>,
    by_source: HashMap<(String, String, String), Vec<usize>>,
    /// Tables that are both a mapping's target and a mapping's source: rows rowbridge writes
    /// there can come back, so only they need echo fingerprints.
    read_back: std::collections::HashSet<(String, String, String)>,
    /// The pair of each `direction = "both"` mapping, under both directions' names.
    pub pairs: HashMap<String, Arc<Pair>>,
    /// Per writing mapping, the mappings that read its target table back into its source table.
    inverse: HashMap<String, Vec<Inverse>>,
    /// Hash of the mapping files' names and contents: whether a reload changed anything.
    fingerprint: u64,
}

impl Mappings {
    /// Load every `*.toml` in the config's mapping folder, in name order.
    pub fn load(config: &Config) -> Result<Mappings> {
        let dir = &config.mappings;
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::mapping(dir, 0, format!("cannot read mapping folder: {e}")))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut list = Vec::new();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for path in paths {
            use std::hash::Hash;
            path.hash(&mut hasher);
            std::fs::read(&path).unwrap_or_default().hash(&mut hasher);
            let parsed = file::Parsed::read(&path)?;
            let mapping = compile(&parsed, config)?;
            if mapping.both {
                list.push(mapping.reversed()?);
            }
            list.push(mapping);
        }
        let mut mappings = Self::from_list(list)?;
        mappings.fingerprint = std::hash::Hasher::finish(&hasher);
        Ok(mappings)
    }

    /// Changes when a mapping file is added, removed or edited.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Parse one mapping from text (tests and `check` of a single file).
    pub fn parse_one(path: &Path, text: &str, config: &Config) -> Result<Mapping> {
        let parsed = file::Parsed::parse(path, text.to_string())?;
        compile(&parsed, config)
    }

    pub fn from_list(list: Vec<Mapping>) -> Result<Mappings> {
        let mut out = Mappings::default();
        let mut names: HashMap<String, PathBuf> = HashMap::new();
        for m in list {
            if let Some(other) = names.insert(m.name.clone(), m.file.clone()) {
                return Err(m.error(
                    1,
                    format!(
                        "mapping name '{}' is also used by {}",
                        m.name,
                        other.display()
                    ),
                ));
            }
            if m.source == m.target {
                return Err(m.error(m.target.line, "a table cannot feed itself"));
            }
            let key = (
                m.source.endpoint.clone(),
                m.source.namespace.clone(),
                m.source.table.clone(),
            );
            out.by_source.entry(key).or_default().push(out.list.len());
            out.list.push(Arc::new(m));
        }
        check_written_columns(&out.list)?;
        for m in &out.list {
            for c in m.columns.iter().filter(|c| c.reference.is_some()) {
                let name = c.reference.as_deref().unwrap_or_default();
                let Some(r) = out.list.iter().find(|o| o.name == name) else {
                    return Err(m.error(
                        c.line,
                        format!(
                            "columns.{}: reference to unknown mapping '{name}'",
                            c.source
                        ),
                    ));
                };
                if r.source.endpoint != m.source.endpoint || r.target.endpoint != m.target.endpoint
                {
                    return Err(m.error(
                        c.line,
                        format!(
                            "columns.{}: mapping '{name}' runs {} -> {}, not {} -> {}",
                            c.source,
                            r.source.endpoint,
                            r.target.endpoint,
                            m.source.endpoint,
                            m.target.endpoint
                        ),
                    ));
                }
                if r.key.len() != 1 {
                    return Err(m.error(c.line, format!(
                        "columns.{}: mapping '{name}' has a composite key; a reference needs a single-column key", c.source
                    )));
                }
                out.referenced.insert(name.to_string());
            }
        }
        for m in &out.list {
            if let Some(pair) = m.both.then(|| Pair::of(m)).flatten() {
                let pair = Arc::new(pair);
                out.pairs
                    .insert(format!("{}.reverse", m.name), pair.clone());
                out.pairs.insert(m.name.clone(), pair);
            }
        }
        let table = |t: &TableRef| (t.endpoint.clone(), t.namespace.clone(), t.table.clone());
        let targets: std::collections::HashSet<_> =
            out.list.iter().map(|m| table(&m.target)).collect();
        out.read_back = out
            .list
            .iter()
            .map(|m| table(&m.source))
            .filter(|t| targets.contains(t))
            .collect();
        for writer in &out.list {
            let inverse: Vec<Inverse> = out
                .list
                .iter()
                .filter_map(|reader| Inverse::of(writer, reader))
                .collect();
            if !inverse.is_empty() {
                out.inverse.insert(writer.name.clone(), inverse);
            }
        }
        Ok(out)
    }

    /// Whether any mapping reads back, in agreement, what another writes.
    pub fn has_inverse(&self) -> bool {
        !self.inverse.is_empty()
    }

    /// The mappings that read back, in agreement, what `writer` writes (see [`Inverse`]).
    pub fn inverse_of(&self, writer: &str) -> &[Inverse] {
        self.inverse
            .get(writer)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Whether rowbridge both writes and reads this table (see `read_back`).
    pub fn is_read_back(&self, endpoint: &str, namespace: &str, table: &str) -> bool {
        !self.read_back.is_empty()
            && self.read_back.contains(&(
                endpoint.to_string(),
                namespace.to_string(),
                table.to_string(),
            ))
    }

    /// Mappings whose source is this table.
    pub fn for_source<'a>(
        &'a self,
        endpoint: &str,
        namespace: &str,
        table: &str,
    ) -> impl Iterator<Item = &'a Arc<Mapping>> + 'a {
        let idx = self.by_source.get(&(
            endpoint.to_string(),
            namespace.to_string(),
            table.to_string(),
        ));
        idx.into_iter().flatten().map(move |&i| &self.list[i])
    }

    /// The distinct (source endpoint, target endpoint) pairs: one flow each.
    pub fn flows(&self) -> Vec<(String, String)> {
        let mut flows: Vec<(String, String)> = self
            .list
            .iter()
            .map(|m| (m.source.endpoint.clone(), m.target.endpoint.clone()))
            .collect();
        flows.sort();
        flows.dedup();
        flows
    }

    /// Source tables read from one endpoint.
    pub fn source_tables(&self, endpoint: &str) -> Vec<&TableRef> {
        let mut v: Vec<&TableRef> = self
            .list
            .iter()
            .filter(|m| m.source.endpoint == endpoint)
            .map(|m| &m.source)
            .collect();
        v.sort_by(|a, b| (&a.namespace, &a.table).cmp(&(&b.namespace, &b.table)));
        v.dedup_by(|a, b| a.namespace == b.namespace && a.table == b.table);
        v
    }
}

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
