//! Fixtures shared by the mapping test modules: a config with a `crm` (postgres) and an `erp`
//! (mysql, database `erp`) endpoint, parsing helpers, and the `file:line:` error assertion.

use std::path::Path;

use super::{Mapping, Mappings};
use crate::config::Config;
use crate::error::{ErrorClass, Result};

pub const CONFIG: &str = r#"
[store]
path = "state"

[endpoints.crm]
kind = "postgres"
host = "127.0.0.1"
user = "rowbridge"
database = "crm"

[endpoints.erp]
kind = "mysql"
host = "127.0.0.1"
user = "rowbridge"
database = "erp"
"#;

pub const FILE: &str = "mappings/customers.toml";

pub fn config() -> Config {
    let c: Config = toml::from_str(CONFIG).unwrap();
    c.validate().unwrap();
    c
}

/// Parse fixture text as the file `path`; the newline right after `r#"` is dropped, so the
/// fixture's first line is line 1.
pub fn parse_at(path: &str, text: &str) -> Result<Mapping> {
    let text = text.strip_prefix('\n').unwrap_or(text);
    Mappings::parse_one(Path::new(path), text, &config())
}

pub fn parse(text: &str) -> Result<Mapping> {
    parse_at(FILE, text)
}

/// The error's text starts with `{file}:{line}: ` and contains `needle`.
#[track_caller]
pub fn assert_error(err: crate::error::Error, file: &str, line: usize, needle: &str) {
    let msg = err.to_string();
    let prefix = format!("{file}:{line}: ");
    assert!(msg.starts_with(&prefix), "expected {prefix:?}, got {msg:?}");
    assert!(msg.contains(needle), "{msg:?} does not contain {needle:?}");
    assert_eq!(err.class(), ErrorClass::Config);
}

/// Parsing `text` as [`FILE`] fails at `line` with a message containing `needle`.
#[track_caller]
pub fn fails_at(text: &str, line: usize, needle: &str) {
    let err = parse(text).expect_err("malformed mapping was accepted");
    assert_error(err, FILE, line, needle);
}
