//! Mapping files as written: parsed with spans so every error names its file and line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
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
    /// `source->target` endpoint names, checked against [source] and [target] when given.
    #[serde(default)]
    pub direction: Option<Spanned<String>>,
    pub source: Spanned<TableSpec>,
    pub target: Spanned<TableSpec>,
    /// Source key columns; their mapped names must be a unique key of the target table.
    pub key: Spanned<Vec<Spanned<String>>>,
    /// Source column -> target column (a name, or a table with `to` and conversions).
    pub columns: Spanned<BTreeMap<Spanned<String>, Spanned<ColumnSpec>>>,
    /// Target columns computed from constants or several source columns.
    #[serde(default)]
    pub computed: Option<Spanned<BTreeMap<Spanned<String>, Spanned<ComputedSpec>>>>,
    /// Only rows whose source columns pass every test are replicated.
    #[serde(default)]
    pub filter: Option<Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>>,
    /// What a row that stops passing the filter does to the target: `delete` (default) or `keep`.
    #[serde(default)]
    pub on_filter_leave: Option<Spanned<String>>,
    /// What a source delete does: `delete` (default), `ignore`, or `{ set = "column", value = ... }`.
    #[serde(default)]
    pub on_delete: Option<Spanned<toml::Value>>,
    /// What a source TRUNCATE does: `truncate` (default) or `ignore`.
    #[serde(default)]
    pub on_truncate: Option<Spanned<String>>,
    /// `upsert` (default) or `update`: only update rows that exist on the target.
    #[serde(default)]
    pub write: Option<Spanned<String>>,
    /// Match an existing target row by natural key the first time a source row is written.
    #[serde(default, rename = "match")]
    pub matching: Option<Spanned<MatchSpec>>,
    /// How concurrent edits of one row on both sides are resolved (`direction = "both"` only).
    #[serde(default)]
    pub conflict: Option<Spanned<ConflictSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConflictSpec {
    /// `last_writer_wins` (default), `source_wins`, `merge` or `manual`.
    #[serde(default)]
    pub policy: Option<String>,
    /// `source_wins`: the endpoint that wins the columns without an owner.
    #[serde(default)]
    pub winner: Option<String>,
    /// `merge`: the policy for a column both sides changed (default `last_writer_wins`).
    #[serde(default)]
    pub fallback: Option<String>,
    /// `last_writer_wins`: the endpoint listed first wins a tie.
    #[serde(default)]
    pub priority: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchSpec {
    /// Source columns whose mapped target columns identify an existing target row.
    pub on: Vec<String>,
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

/// A column: `source = "target"` or `source = { to = "target", ...conversions }`.
#[derive(Debug)]
pub(crate) struct ColumnSpec(pub ColumnTable);

/// The conversions of one column, applied in this order: if_null, transform (in list order),
/// split, map, multiply, divide, round, timezone, cast.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ColumnTable {
    pub to: String,
    /// The value is another mapping's source key: written as that mapping's target key, and
    /// the change waits until that row has been written.
    #[serde(default)]
    pub reference: Option<String>,
    /// Endpoint that owns the column (source of truth).
    #[serde(default)]
    pub owner: Option<String>,
    /// Conflict policy for this column (`direction = "both"`), overriding the mapping's.
    #[serde(default)]
    pub conflict: Option<String>,
    #[serde(default)]
    pub if_null: Option<toml::Value>,
    #[serde(default)]
    pub transform: Vec<String>,
    #[serde(default)]
    pub split: Option<SplitSpec>,
    #[serde(default)]
    pub map: Option<BTreeMap<String, toml::Value>>,
    /// `error` (default: the row goes to the dead-letter queue), `default`, or `pass`.
    #[serde(default)]
    pub unmapped: Option<String>,
    /// The value for unmapped values when `unmapped = "default"`.
    #[serde(default)]
    pub default: Option<toml::Value>,
    #[serde(default)]
    pub multiply: Option<toml::Value>,
    #[serde(default)]
    pub divide: Option<toml::Value>,
    #[serde(default)]
    pub round: Option<i64>,
    #[serde(default)]
    pub timezone: Option<TimezoneSpec>,
    #[serde(default)]
    pub cast: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitSpec {
    pub separator: String,
    pub part: i64,
    #[serde(default)]
    pub rest: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimezoneSpec {
    pub from: String,
    pub to: String,
}

/// A computed target column: a constant, or source columns joined.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ComputedSpec {
    #[serde(default)]
    pub constant: Option<toml::Value>,
    #[serde(default)]
    pub concat: Option<Vec<String>>,
    #[serde(default)]
    pub separator: Option<String>,
    #[serde(default)]
    pub transform: Vec<String>,
    #[serde(default)]
    pub cast: Option<String>,
    /// The endpoint that owns the value: when it is the target, the column is written when a
    /// row is inserted and never overwritten (a document name made for new rows).
    #[serde(default)]
    pub owner: Option<String>,
}

impl<'de> Deserialize<'de> for ColumnSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ColumnSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a target column name or a table with `to`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<ColumnSpec, E> {
                Ok(ColumnSpec(ColumnTable {
                    to: s.to_string(),
                    ..ColumnTable::default()
                }))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<ColumnSpec, A::Error> {
                ColumnTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(ColumnSpec)
            }
        }
        d.deserialize_any(V)
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
