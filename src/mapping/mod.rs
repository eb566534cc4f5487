//! Mappings: which source table feeds which target table, with which columns and key.
//!
//! Mapping is pure: `(RowChange, Mapping) -> Vec<TargetOp>`. Files are loaded and validated at
//! startup; every error names the file and line. The live-schema check (tables, columns, unique
//! target key) lives in [`crate::catalog`] and reports against the same file positions.

pub mod convert;
mod file;
mod transform;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, EndpointKind};
use crate::error::{Error, Result};

pub use transform::{describe_key, BoundMapping, TargetOp, TargetTable};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMap {
    pub source: String,
    pub target: String,
    pub line: usize,
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

/// All mappings, indexed by source table.
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    pub list: Vec<Arc<Mapping>>,
    by_source: HashMap<(String, String, String), Vec<usize>>,
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
        for path in paths {
            let parsed = file::Parsed::read(&path)?;
            list.push(compile(&parsed, config)?);
        }
        Self::from_list(list)
    }

    /// Parse one mapping from text (tests and `check` of a single file).
    pub fn parse_one(path: &Path, text: &str, config: &Config) -> Result<Mapping> {
        let parsed = file::Parsed::parse(path, text.to_string())?;
        compile(&parsed, config)
    }

    pub fn from_list(list: Vec<Mapping>) -> Result<Mappings> {
        let mut out = Mappings::default();
        let mut names: HashMap<String, PathBuf> = HashMap::new();
        let mut targets: HashMap<String, String> = HashMap::new();
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
            let t = m.target.to_string();
            if let Some(other) = targets.get(&t) {
                if m.source.to_string() == t || other == &m.source.to_string() {
                    return Err(m.error(m.target.line, "a table cannot feed itself"));
                }
            }
            targets.insert(t, m.source.to_string());
            let key = (
                m.source.endpoint.clone(),
                m.source.namespace.clone(),
                m.source.table.clone(),
            );
            out.by_source.entry(key).or_default().push(out.list.len());
            out.list.push(Arc::new(m));
        }
        Ok(out)
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

fn compile(p: &file::Parsed, config: &Config) -> Result<Mapping> {
    let f = &p.file;
    let stem = p.path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let name = match &f.name {
        Some(n) if n.get_ref().trim().is_empty() => return Err(p.err(n, "name: must not be empty")),
        Some(n) => n.get_ref().clone(),
        None => stem.unwrap_or_default(),
    };
    let source = table_ref(p, &f.source, config, "source")?;
    let target = table_ref(p, &f.target, config, "target")?;
    if source.endpoint == target.endpoint {
        return Err(p.err(
            &f.target.get_ref().endpoint,
            format!(
            "target.endpoint: '{}' is also the source endpoint; a mapping connects two endpoints",
            target.endpoint
        ),
        ));
    }
    let mut columns = Vec::new();
    let mut seen_targets: HashMap<String, usize> = HashMap::new();
    if f.columns.get_ref().is_empty() {
        return Err(p.err(&f.columns, "columns: map at least one column"));
    }
    for (src, spec) in f.columns.get_ref() {
        let line = p.line(src);
        let to = spec.get_ref().target();
        if src.get_ref().is_empty() || to.is_empty() {
            return Err(p.err(src, "columns: column names must not be empty"));
        }
        if let Some(prev) = seen_targets.insert(to.to_string(), line) {
            return Err(p.err(
                src,
                format!(
                    "columns.{}: target column '{to}' is already mapped on line {prev}",
                    src.get_ref()
                ),
            ));
        }
        columns.push(ColumnMap {
            source: src.get_ref().clone(),
            target: to.to_string(),
            line,
        });
    }
    let key_items = f.key.get_ref();
    if key_items.is_empty() {
        return Err(p.err(&f.key, "key: name at least one source key column"));
    }
    let mut key = Vec::new();
    for k in key_items {
        if !columns.iter().any(|c| &c.source == k.get_ref()) {
            return Err(p.err(
                k,
                format!(
                    "key: column '{}' must also be mapped in [columns]",
                    k.get_ref()
                ),
            ));
        }
        if key.contains(k.get_ref()) {
            return Err(p.err(k, format!("key: column '{}' is listed twice", k.get_ref())));
        }
        key.push(k.get_ref().clone());
    }
    Ok(Mapping {
        name,
        file: p.path.clone(),
        source,
        target,
        columns,
        key,
        key_line: p.line(&f.key),
    })
}

fn table_ref(
    p: &file::Parsed,
    spec: &toml::Spanned<file::TableSpec>,
    config: &Config,
    side: &str,
) -> Result<TableRef> {
    let s = spec.get_ref();
    let endpoint = s.endpoint.get_ref();
    let Some(ep) = config.endpoints.get(endpoint) else {
        let known: Vec<&str> = config.endpoints.keys().map(String::as_str).collect();
        return Err(p.err(
            &s.endpoint,
            format!(
                "{side}.endpoint: unknown endpoint '{endpoint}' (configured: {})",
                known.join(", ")
            ),
        ));
    };
    if s.table.get_ref().is_empty() {
        return Err(p.err(&s.table, format!("{side}.table: must not be empty")));
    }
    let namespace = match (&s.schema, ep.kind) {
        (Some(ns), _) => ns.get_ref().clone(),
        (None, EndpointKind::Postgres) => "public".to_string(),
        (None, EndpointKind::Mysql) => ep.database.clone(),
    };
    Ok(TableRef {
        endpoint: endpoint.clone(),
        namespace,
        table: s.table.get_ref().clone(),
        line: p.line(&s.table),
    })
}

#[cfg(test)]
mod tests;
