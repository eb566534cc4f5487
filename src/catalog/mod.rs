//! Live schemas: what `check` and `run` compare the mappings against.
//!
//! Each endpoint kind describes a table as columns plus unique keys; the comparison is common.
//! Errors point at the mapping file line that named the table, column or key.

mod connection;
mod mysql;
mod postgres;
mod types;

pub use connection::Catalog;

use crate::error::Error;
use crate::mapping::Mapping;

pub use mysql::describe as describe_mysql;
pub use postgres::describe as describe_postgres;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveColumn {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    pub generated: bool,
    /// Has a default or is filled by the database (auto-increment, identity).
    pub has_default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveTable {
    pub columns: Vec<LiveColumn>,
    /// Primary key and unique indexes, each as its column names.
    pub unique_keys: Vec<Vec<String>>,
    /// Identifiers compare case-insensitively (MySQL/MariaDB column names).
    pub case_insensitive: bool,
}

impl LiveTable {
    pub fn column(&self, name: &str) -> Option<&LiveColumn> {
        self.columns.iter().find(|c| self.same(&c.name, name))
    }

    fn same(&self, a: &str, b: &str) -> bool {
        if self.case_insensitive {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    }

    fn is_unique_key(&self, cols: &[&str]) -> bool {
        self.unique_keys.iter().any(|k| {
            k.len() == cols.len() && k.iter().all(|kc| cols.iter().any(|c| self.same(kc, c)))
        })
    }
}

/// Problems found comparing a mapping with the live tables: errors stop startup, warnings are
/// printed by `check`.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<Error>,
    pub warnings: Vec<String>,
    /// Endpoints that could not be reached or refused the login (their mappings unchecked).
    pub unreachable: Vec<Error>,
    /// The names of those endpoints.
    pub unreachable_endpoints: Vec<String>,
}

pub fn compare(
    m: &Mapping,
    source: Option<&LiveTable>,
    target: Option<&LiveTable>,
    out: &mut Findings,
) {
    let Some(source) = source else {
        out.errors.push(m.error(
            m.source.line,
            format!("source table {} does not exist", m.source),
        ));
        return;
    };
    let Some(target) = target else {
        out.errors.push(m.error(
            m.target.line,
            format!("target table {} does not exist", m.target),
        ));
        return;
    };
    adopted_identity(m, target, out);
    for c in &m.columns {
        if let (Some(sc), Some(tc), None) = (
            source.column(&c.source),
            target.column(&c.target),
            &c.reference,
        ) {
            let from = types::after_steps(types::family(&sc.data_type), &c.steps);
            if !types::compatible(from, types::family(&tc.data_type)) {
                out.errors.push(m.error(c.line, format!(
                    "columns.{}: a {} value ({}) cannot be written to column '{}' of type {}; add a cast or a map",
                    c.source, format!("{from:?}").to_lowercase(), sc.data_type, c.target, tc.data_type
                )));
            }
        }
        if source.column(&c.source).is_none() {
            out.errors.push(m.error(
                c.line,
                format!(
                    "column '{}' does not exist in source table {}",
                    c.source, m.source
                ),
            ));
        }
        match target.column(&c.target) {
            None => out.errors.push(m.error(
                c.line,
                format!(
                    "column '{}' does not exist in target table {}",
                    c.target, m.target
                ),
            )),
            Some(tc) if tc.generated => out.errors.push(m.error(
                c.line,
                format!(
                    "column '{}' of {} is generated and cannot be written",
                    c.target, m.target
                ),
            )),
            Some(_) => {}
        }
    }
    for c in &m.computed {
        if let crate::mapping::Computed::Concat { sources, .. } = &c.kind {
            for src in sources {
                if source.column(src).is_none() {
                    out.errors.push(m.error(
                        c.line,
                        format!(
                            "computed.{}: column '{src}' does not exist in source table {}",
                            c.target, m.source
                        ),
                    ));
                }
            }
        }
        if target.column(&c.target).is_none() {
            out.errors.push(m.error(
                c.line,
                format!(
                    "computed column '{}' does not exist in target table {}",
                    c.target, m.target
                ),
            ));
        }
    }
    for f in &m.filters {
        if source.column(&f.column).is_none() {
            out.errors.push(m.error(
                f.line,
                format!(
                    "filter column '{}' does not exist in source table {}",
                    f.column, m.source
                ),
            ));
        }
    }
    if let crate::mapping::OnDelete::Set { column, .. } = &m.on_delete {
        if target.column(column).is_none() {
            out.errors.push(m.error(
                1,
                format!(
                    "on_delete: soft-delete column '{column}' does not exist in target table {}",
                    m.target
                ),
            ));
        }
    }
    let key = m.target_key();
    if !target.is_unique_key(&key) {
        out.errors.push(m.error(
            m.key_line,
            format!(
                "target key ({}) is not the primary key or a unique index of {}: upserts need one",
                key.join(", "),
                m.target
            ),
        ));
    }
    // Another unique key whose columns rowbridge writes can make an upsert hit the wrong row.
    let mut mapped: Vec<&str> = m.columns.iter().map(|c| c.target.as_str()).collect();
    mapped.extend(m.computed.iter().map(|c| c.target.as_str()));
    let others: Vec<String> = target
        .unique_keys
        .iter()
        .filter(|k| {
            !(k.len() == key.len() && k.iter().all(|kc| key.iter().any(|c| target.same(kc, c))))
        })
        .filter(|k| k.iter().all(|kc| mapped.iter().any(|c| target.same(kc, c))))
        .map(|k| k.join(", "))
        .collect();
    if !others.is_empty() && target.case_insensitive {
        out.warnings.push(format!(
            "{}: target {} has other unique keys ({}); rowbridge updates rows by key and inserts missing ones \
             separately there, so a row colliding on one of them goes to the dead-letter queue",
            m.file.display(), m.target, others.join("; ")
        ));
    }
    // A mapping that never inserts (`write = "update"`) never needs the insert-only columns.
    if m.update_only {
        return;
    }
    for tc in &target.columns {
        if !tc.nullable
            && !tc.generated
            && !tc.has_default
            && !mapped.iter().any(|c| target.same(c, &tc.name))
        {
            out.warnings.push(format!(
                "{}: column '{}' of {} is NOT NULL, has no default and is not mapped: inserts will fail \
                 (new rows go to the dead-letter queue; updates of existing rows still apply)",
                m.file.display(), tc.name, m.target
            ));
        }
    }
}

/// A mapping with `[match]` adopts existing target rows: such a row keeps its own identity. A
/// column of the target's primary key or of a unique index (other than the mapping's key and
/// the matched columns) that the mapping would overwrite on every write would rename the
/// adopted row (an ERP document name, which every link to the row holds): it must be written
/// on insert only (`owner` = the target endpoint).
fn adopted_identity(m: &Mapping, target: &LiveTable, out: &mut Findings) {
    if m.matching.is_empty() {
        return;
    }
    let key = m.target_key();
    let owned_by_target = |owner: &Option<String>| owner.as_ref() == Some(&m.target.endpoint);
    let matched: Vec<&str> = m
        .columns
        .iter()
        .filter(|c| m.matching.contains(&c.source))
        .map(|c| c.target.as_str())
        .collect();
    let written = m
        .columns
        .iter()
        .filter(|c| !owned_by_target(&c.owner))
        .map(|c| (format!("columns.{}", c.source), c.target.as_str(), c.line))
        .chain(
            m.computed
                .iter()
                .filter(|c| !owned_by_target(&c.owner))
                .map(|c| (format!("computed.{}", c.target), c.target.as_str(), c.line)),
        );
    for (field, column, line) in written {
        let exempt = key.iter().chain(&matched).any(|k| target.same(k, column));
        let identity = target
            .unique_keys
            .iter()
            .any(|k| k.iter().any(|kc| target.same(kc, column)));
        if identity && !exempt {
            out.errors.push(m.error(
                line,
                format!(
                    "{field}: column '{column}' is part of a unique key of {}; a row adopted by [match] keeps its own, so write it on insert only: owner = \"{}\"",
                    m.target, m.target.endpoint
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(extra: &str) -> Mapping {
        let config = crate::mapping::test_support::config();
        let text = format!(
            "key = [\"id\"]\n{extra}[source]\nendpoint = \"crm\"\ntable = \"items\"\n\
             [target]\nendpoint = \"erp\"\ntable = \"items\"\n[columns]\nid = \"id\"\nname = \"name\"\n"
        );
        crate::mapping::Mappings::parse_one(std::path::Path::new("m.toml"), &text, &config).unwrap()
    }

    fn column(name: &str, nullable: bool, has_default: bool) -> LiveColumn {
        LiveColumn {
            name: name.into(),
            data_type: "varchar(10)".into(),
            nullable,
            generated: false,
            has_default,
        }
    }

    fn tables() -> (LiveTable, LiveTable) {
        let source = LiveTable {
            columns: vec![column("id", false, false), column("name", true, false)],
            unique_keys: vec![vec!["id".into()]],
            case_insensitive: false,
        };
        let target = LiveTable {
            columns: vec![
                column("id", false, false),
                column("name", true, false),
                column("code", false, false),
                column("kind", false, true),
            ],
            unique_keys: vec![vec!["id".into()], vec!["name".into()]],
            case_insensitive: true,
        };
        (source, target)
    }

    #[test]
    fn insert_only_columns_warn_only_for_mappings_that_insert() {
        let (source, target) = tables();
        let mut out = Findings::default();
        compare(&mapping(""), Some(&source), Some(&target), &mut out);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let notnull: Vec<&String> = out
            .warnings
            .iter()
            .filter(|w| w.contains("inserts will fail"))
            .collect();
        assert_eq!(notnull.len(), 1, "{:?}", out.warnings);
        assert!(notnull[0].contains("column 'code'"), "{notnull:?}");
        assert!(
            out.warnings
                .iter()
                .any(|w| w.contains("other unique keys (name)") && w.contains("dead-letter")),
            "{:?}",
            out.warnings
        );
        let mut out = Findings::default();
        compare(
            &mapping("write = \"update\"\n"),
            Some(&source),
            Some(&target),
            &mut out,
        );
        assert!(
            !out.warnings.iter().any(|w| w.contains("inserts will fail")),
            "an update-only mapping never inserts: {:?}",
            out.warnings
        );
    }
}
