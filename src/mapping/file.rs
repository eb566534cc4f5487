//! Mapping files as written: parsed with spans so every error names its file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::line_of;
use crate::error::{Error, Result};

/// One `mappings/*.toml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MappingFile {
    /// Unique mapping name; default: the file stem.
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    pub source: Spanned<TableSpec>,
    pub target: Spanned<TableSpec>,
    /// Source key columns; their mapped names must be a unique key of the target table.
    pub key: Spanned<Vec<Spanned<String>>>,
    /// Source column -> target column (a name, or a table with `to`).
    pub columns: Spanned<BTreeMap<Spanned<String>, Spanned<ColumnSpec>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TableSpec {
    pub endpoint: Spanned<String>,
    /// PostgreSQL schema (default `public`) or MySQL database (default: the endpoint's).
    #[serde(default)]
    pub schema: Option<Spanned<String>>,
    pub table: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ColumnSpec {
    Rename(String),
    Full(ColumnTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ColumnTable {
    pub to: String,
}

impl ColumnSpec {
    pub fn target(&self) -> &str {
        match self {
            ColumnSpec::Rename(t) => t,
            ColumnSpec::Full(c) => &c.to,
        }
    }
}

/// A parsed file with its text, to turn spans into line numbers.
pub(crate) struct Parsed {
    pub path: PathBuf,
    pub text: String,
    pub file: MappingFile,
}

impl Parsed {
    pub fn read(path: &Path) -> Result<Parsed> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::mapping(path, 0, format!("cannot read: {e}")))?;
        Self::parse(path, text)
    }

    pub fn parse(path: &Path, text: String) -> Result<Parsed> {
        let file = toml::from_str::<MappingFile>(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start)).unwrap_or(0);
            Error::mapping(path, line, e.message().trim().to_string())
        })?;
        Ok(Parsed {
            path: path.to_path_buf(),
            text,
            file,
        })
    }

    pub fn line<T>(&self, spanned: &Spanned<T>) -> usize {
        line_of(&self.text, spanned.span().start)
    }

    pub fn err<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> Error {
        Error::mapping(&self.path, self.line(at), message)
    }
}
