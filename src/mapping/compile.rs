//! From a parsed mapping file to a validated [`Mapping`]: every error names file and line.

use std::collections::HashMap;

use rust_decimal::Decimal;
use toml::Spanned;

use super::convert::{self, Step, Unmapped, ValueMap};
use super::file::{self, ColumnTable, Parsed};
use super::{
    ColumnMap, Computed, ComputedColumn, ConflictRules, Filter, FilterTest, Mapping, OnDelete,
    Policy, TableRef,
};
use crate::config::{Config, EndpointKind};
use crate::error::{Error, Result};

pub(super) fn compile(p: &Parsed, config: &Config) -> Result<Mapping> {
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
    let both = f
        .direction
        .as_ref()
        .is_some_and(|d| d.get_ref().trim() == "both");
    if let Some(d) = f.direction.as_ref().filter(|_| !both) {
        let want = format!("{}->{}", source.endpoint, target.endpoint);
        let given: Vec<&str> = d.get_ref().split("->").map(str::trim).collect();
        if given.join("->") != want {
            return Err(p.err(
                d,
                format!(
                    "direction: '{}' does not match source and target ({want})",
                    d.get_ref()
                ),
            ));
        }
    }
    let mut seen_targets: HashMap<String, usize> = HashMap::new();
    let columns = columns(p, &mut seen_targets)?;
    let computed = computed(p, &mut seen_targets)?;
    for c in &computed {
        if let Some(owner) = &c.owner {
            if owner != &source.endpoint && owner != &target.endpoint {
                return Err(Error::mapping(
                    &p.path,
                    c.line,
                    format!(
                        "computed.{}: owner '{owner}' is neither endpoint of this mapping ({}, {})",
                        c.target, source.endpoint, target.endpoint
                    ),
                ));
            }
        }
    }
    let key = key(p, &columns)?;
    let filters = filters(p)?;
    let delete_on_filter_leave = match &f.on_filter_leave {
        None => true,
        Some(s) => match s.get_ref().as_str() {
            "delete" => true,
            "keep" => false,
            other => {
                return Err(p.err(
                    s,
                    format!("on_filter_leave: '{other}' is not one of delete, keep"),
                ))
            }
        },
    };
    let apply_truncate = match &f.on_truncate {
        None => f.write.as_ref().is_none_or(|w| w.get_ref() != "update"),
        Some(s) => match s.get_ref().as_str() {
            "truncate" => true,
            "ignore" => false,
            other => {
                return Err(p.err(
                    s,
                    format!("on_truncate: '{other}' is not one of truncate, ignore"),
                ))
            }
        },
    };
    let update_only = match &f.write {
        None => false,
        Some(w) => match w.get_ref().as_str() {
            "upsert" => false,
            "update" => true,
            other => return Err(p.err(w, format!("write: '{other}' is not one of upsert, update"))),
        },
    };
    for (src, spec) in f.columns.get_ref() {
        if let Some(owner) = &spec.get_ref().0.owner {
            if owner != &source.endpoint && owner != &target.endpoint {
                return Err(p.err(
                    spec,
                    format!(
                        "columns.{}: owner '{owner}' is neither endpoint of this mapping ({}, {})",
                        src.get_ref(),
                        source.endpoint,
                        target.endpoint
                    ),
                ));
            }
            if key.contains(src.get_ref()) {
                return Err(p.err(
                    spec,
                    format!("columns.{}: a key column has no owner", src.get_ref()),
                ));
            }
        }
    }
    let on_delete = match (&f.on_delete, update_only) {
        // A mapping that only updates rows never deletes them unless it says so.
        (None, true) => OnDelete::Ignore,
        _ => on_delete(p, &seen_targets)?,
    };
    if update_only && on_delete == OnDelete::Delete {
        if let Some(d) = &f.on_delete {
            return Err(p.err(d, "on_delete: a write = \"update\" mapping does not delete target rows; use ignore or a soft delete"));
        }
    }
    let (matching, match_line) = match &f.matching {
        None => (Vec::new(), 0),
        Some(m) => {
            let on = &m.get_ref().on;
            if on.is_empty() {
                return Err(p.err(m, "match.on: name at least one source column"));
            }
            for c in on {
                if !columns.iter().any(|col| &col.source == c) {
                    return Err(p.err(
                        m,
                        format!("match.on: column '{c}' must also be mapped in [columns]"),
                    ));
                }
                if key.contains(c) {
                    return Err(p.err(
                        m,
                        format!("match.on: column '{c}' is the key; match on other columns"),
                    ));
                }
                if on.iter().filter(|x| *x == c).count() > 1 {
                    return Err(p.err(m, format!("match.on: column '{c}' is listed twice")));
                }
            }
            (on.clone(), p.line(m))
        }
    };
    let conflict = conflict_rules(p, both, &source, &target, &columns, &key)?;
    Ok(Mapping {
        name,
        file: p.path.clone(),
        source,
        target,
        columns,
        key,
        key_line: p.line(&f.key),
        computed,
        filters,
        delete_on_filter_leave,
        on_delete,
        apply_truncate,
        update_only,
        matching,
        match_line,
        both,
        conflict,
    })
}

fn columns(p: &Parsed, seen: &mut HashMap<String, usize>) -> Result<Vec<ColumnMap>> {
    let f = &p.file;
    if f.columns.get_ref().is_empty() {
        return Err(p.err(&f.columns, "columns: map at least one column"));
    }
    let mut out = Vec::new();
    for (src, spec) in f.columns.get_ref() {
        let line = p.line(src);
        let table = &spec.get_ref().0;
        let to = table.to.as_str();
        if src.get_ref().is_empty() || to.is_empty() {
            return Err(p.err(src, "columns: column names must not be empty"));
        }
        if let Some(prev) = seen.insert(to.to_string(), line) {
            return Err(p.err(
                src,
                format!(
                    "columns.{}: target column '{to}' is already mapped on line {prev}",
                    src.get_ref()
                ),
            ));
        }
        let steps =
            steps(table).map_err(|m| p.err(spec, format!("columns.{}: {m}", src.get_ref())))?;
        if table.reference.as_deref() == Some("") {
            return Err(p.err(
                spec,
                format!("columns.{}: reference: name a mapping", src.get_ref()),
            ));
        }
        out.push(ColumnMap {
            source: src.get_ref().clone(),
            target: to.to_string(),
            line,
            steps,
            reference: table.reference.clone(),
            owner: table.owner.clone(),
            conflict: match table.conflict.as_deref() {
                None => None,
                Some(c) => Some(Policy::parse(c).ok_or_else(|| {
                    p.err(
                        spec,
                        format!(
                            "columns.{}: conflict: '{c}' is not one of {POLICIES}",
                            src.get_ref()
                        ),
                    )
                })?),
            },
        });
    }
    Ok(out)
}

const POLICIES: &str = "last_writer_wins, source_wins, merge, manual";

/// The `[conflict]` table: only a `direction = "both"` mapping has one (with defaults when
/// it is left out); every column must have a winner under `source_wins`.
fn conflict_rules(
    p: &Parsed,
    both: bool,
    source: &TableRef,
    target: &TableRef,
    columns: &[ColumnMap],
    key: &[String],
) -> Result<Option<ConflictRules>> {
    let f = &p.file;
    if !both {
        if let Some(c) = &f.conflict {
            return Err(p.err(
                c,
                "conflict: only a direction = \"both\" mapping has conflicts",
            ));
        }
        if let Some(c) = columns.iter().find(|c| c.conflict.is_some()) {
            return Err(Error::mapping(
                &p.path,
                c.line,
                format!(
                    "columns.{}: conflict: only a direction = \"both\" mapping has conflicts",
                    c.source
                ),
            ));
        }
        return Ok(None);
    }
    let line = f.conflict.as_ref().map(|c| p.line(c)).unwrap_or(1);
    let err = |m: String| Error::mapping(&p.path, line, m);
    let spec = f.conflict.as_ref().map(|c| c.get_ref());
    let policy_of = |key: &str, v: Option<&String>, default: Policy| match v {
        None => Ok(default),
        Some(v) => Policy::parse(v)
            .ok_or_else(|| err(format!("conflict.{key}: '{v}' is not one of {POLICIES}"))),
    };
    let policy = policy_of(
        "policy",
        spec.and_then(|s| s.policy.as_ref()),
        Policy::LastWriterWins,
    )?;
    let fallback = policy_of(
        "fallback",
        spec.and_then(|s| s.fallback.as_ref()),
        Policy::LastWriterWins,
    )?;
    if fallback == Policy::Merge {
        return Err(err(
            "conflict.fallback: must be last_writer_wins, source_wins or manual".into(),
        ));
    }
    let endpoints = [source.endpoint.as_str(), target.endpoint.as_str()];
    let known = |key: &str, e: &str| {
        if endpoints.contains(&e) {
            Ok(())
        } else {
            Err(err(format!(
                "conflict.{key}: '{e}' is neither endpoint of this mapping ({}, {})",
                endpoints[0], endpoints[1]
            )))
        }
    };
    let winner = spec.and_then(|s| s.winner.clone());
    if let Some(w) = &winner {
        known("winner", w)?;
    }
    let priority = match spec.and_then(|s| s.priority.clone()) {
        None => endpoints.iter().map(|e| e.to_string()).collect(),
        Some(list) => {
            for e in &list {
                known("priority", e)?;
            }
            if list.len() != 2 || list[0] == list[1] {
                return Err(err(format!(
                    "conflict.priority: list both endpoints once, e.g. [\"{}\", \"{}\"]",
                    endpoints[1], endpoints[0]
                )));
            }
            list
        }
    };
    // Every column a source_wins decision can reach needs a winner.
    for c in columns.iter().filter(|c| !key.contains(&c.source)) {
        let own = c.conflict.unwrap_or(policy);
        let needs =
            own == Policy::SourceWins || (own == Policy::Merge && fallback == Policy::SourceWins);
        if needs && c.owner.is_none() && winner.is_none() {
            return Err(Error::mapping(
                &p.path,
                c.line,
                format!(
                    "columns.{}: source_wins needs an owner for this column or conflict.winner",
                    c.source
                ),
            ));
        }
    }
    // The policy that decides a delete against an update (merge hands it to its fallback).
    let row_level = if policy == Policy::Merge {
        fallback
    } else {
        policy
    };
    if row_level == Policy::SourceWins && winner.is_none() {
        // A delete against an update is decided for the whole row.
        return Err(err(
            "conflict.winner: source_wins decides a delete against an update by the winner endpoint; name it".into(),
        ));
    }
    Ok(Some(ConflictRules {
        policy,
        winner,
        fallback,
        priority,
    }))
}

/// The conversion steps of one column, in their fixed order.
fn steps(c: &ColumnTable) -> std::result::Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    if let Some(v) = &c.if_null {
        steps.push(Step::IfNull(
            convert::value_from_toml(v).map_err(|e| format!("if_null: {e}"))?,
        ));
    }
    steps.extend(simple_steps(&c.transform)?);
    if let Some(s) = &c.split {
        if s.separator.is_empty() || s.part < 0 {
            return Err("split: separator must not be empty and part must be 0 or more".into());
        }
        steps.push(Step::Split {
            separator: s.separator.clone(),
            index: s.part as usize,
            rest: s.rest,
        });
    }
    match (&c.map, &c.unmapped, &c.default) {
        (None, None, None) => {}
        (None, _, _) => return Err("unmapped and default only go with map".into()),
        (Some(map), unmapped, default) => {
            let mut entries = HashMap::new();
            for (k, v) in map {
                entries.insert(
                    k.clone(),
                    convert::value_from_toml(v).map_err(|e| format!("map.{k}: {e}"))?,
                );
            }
            let unmapped = match (unmapped.as_deref().unwrap_or("error"), default) {
                ("error", None) => Unmapped::Error,
                ("pass", None) => Unmapped::Pass,
                ("default", Some(d)) => Unmapped::Default(
                    convert::value_from_toml(d).map_err(|e| format!("default: {e}"))?,
                ),
                ("default", None) => return Err("unmapped = \"default\" needs a default".into()),
                ("error" | "pass", Some(_)) => {
                    return Err("default only goes with unmapped = \"default\"".into())
                }
                (other, _) => {
                    return Err(format!(
                        "unmapped: '{other}' is not one of error, default, pass"
                    ))
                }
            };
            steps.push(Step::Map(ValueMap { entries, unmapped }));
        }
    }
    if let Some(m) = &c.multiply {
        steps.push(Step::Multiply(
            decimal(m).map_err(|e| format!("multiply: {e}"))?,
        ));
    }
    if let Some(d) = &c.divide {
        let d = decimal(d).map_err(|e| format!("divide: {e}"))?;
        if d.is_zero() {
            return Err("divide: must not be 0".into());
        }
        steps.push(Step::Divide(d));
    }
    if let Some(r) = c.round {
        if !(0..=28).contains(&r) {
            return Err("round: decimal places must be 0 to 28".into());
        }
        steps.push(Step::Round(r as u32));
    }
    if let Some(tz) = &c.timezone {
        let parse = |name: &str, side: &str| {
            name.parse::<chrono_tz::Tz>()
                .map_err(|_| format!("timezone.{side}: '{name}' is not an IANA time zone"))
        };
        steps.push(Step::TimeZone {
            from: parse(&tz.from, "from")?,
            to: parse(&tz.to, "to")?,
        });
    }
    if let Some(cast) = &c.cast {
        steps.push(cast_step(cast)?);
    }
    Ok(steps)
}

fn simple_steps(names: &[String]) -> std::result::Result<Vec<Step>, String> {
    names
        .iter()
        .map(|n| {
            convert::simple_step(n).ok_or_else(|| {
                format!("transform: '{n}' is not one of trim, lower, upper, empty_as_null, null_as_empty")
            })
        })
        .collect()
}

fn cast_step(name: &str) -> std::result::Result<Step, String> {
    convert::cast_to(name).map(Step::Cast).ok_or_else(|| {
        format!("cast: '{name}' is not one of text, integer, decimal, float, boolean, date, timestamp, timestamptz, json, uuid")
    })
}

fn decimal(v: &toml::Value) -> std::result::Result<Decimal, String> {
    let text = match v {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::String(s) => s.clone(),
        toml::Value::Float(_) => {
            return Err(
                "write the factor as an integer or a string (\"0.01\") to keep it exact".into(),
            )
        }
        _ => return Err("must be a number".into()),
    };
    text.parse::<Decimal>()
        .map_err(|_| "must be a decimal number".into())
}

fn computed(p: &Parsed, seen: &mut HashMap<String, usize>) -> Result<Vec<ComputedColumn>> {
    let Some(table) = &p.file.computed else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (target, spec) in table.get_ref() {
        let line = p.line(target);
        let name = target.get_ref();
        if name.is_empty() {
            return Err(p.err(target, "computed: column names must not be empty"));
        }
        if let Some(prev) = seen.insert(name.clone(), line) {
            return Err(p.err(
                target,
                format!("computed.{name}: target column '{name}' is already mapped on line {prev}"),
            ));
        }
        let c = spec.get_ref();
        let err = |m: String| p.err(spec, format!("computed.{name}: {m}"));
        let kind = match (&c.constant, &c.concat) {
            (Some(v), None) => {
                if c.separator.is_some() {
                    return Err(err("separator only goes with concat".into()));
                }
                Computed::Constant(
                    convert::value_from_toml(v).map_err(|e| err(format!("constant: {e}")))?,
                )
            }
            (None, Some(cols)) if !cols.is_empty() && cols.iter().all(|c| !c.is_empty()) => {
                Computed::Concat {
                    sources: cols.clone(),
                    separator: c.separator.clone().unwrap_or_default(),
                }
            }
            (None, Some(_)) => {
                return Err(err(
                    "concat: name one or more source columns, none empty".into()
                ))
            }
            _ => return Err(err("give exactly one of constant or concat".into())),
        };
        let mut steps = simple_steps(&c.transform).map_err(err)?;
        if let Some(cast) = &c.cast {
            steps.push(cast_step(cast).map_err(err)?);
        }
        out.push(ComputedColumn {
            target: name.clone(),
            owner: c.owner.clone(),
            line,
            kind,
            steps,
        });
    }
    Ok(out)
}

fn key(p: &Parsed, columns: &[ColumnMap]) -> Result<Vec<String>> {
    let f = &p.file;
    let items = f.key.get_ref();
    if items.is_empty() {
        return Err(p.err(&f.key, "key: name at least one source key column"));
    }
    let mut key = Vec::new();
    for k in items {
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
    Ok(key)
}

/// `column = "won"`, `column = ["won", "closed"]`, `column = { not = [...] }`,
/// `column = { null = true }`.
fn filters(p: &Parsed) -> Result<Vec<Filter>> {
    let Some(table) = &p.file.filter else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (column, spec) in table.get_ref() {
        let err = |m: &str| p.err(column, format!("filter.{}: {m}", column.get_ref()));
        if column.get_ref().is_empty() {
            return Err(p.err(column, "filter: column names must not be empty"));
        }
        let texts = |v: &toml::Value| -> Result<Vec<String>> {
            let items: Vec<&toml::Value> = match v {
                toml::Value::Array(a) if !a.is_empty() => a.iter().collect(),
                toml::Value::Array(_) => return Err(err("list at least one value")),
                one => vec![one],
            };
            items
                .into_iter()
                .map(|i| {
                    if let toml::Value::Float(_) = i {
                        // 12.50 would compare as "12.5": the written scale is lost.
                        return Err(err(
                            "write decimal values as strings (\"12.50\") to keep them exact",
                        ));
                    }
                    convert::value_from_toml(i)
                        .ok()
                        .and_then(|v| convert::text_form(&v))
                        .ok_or_else(|| err("values must be strings, numbers or booleans"))
                })
                .collect()
        };
        let test = match spec.get_ref() {
            toml::Value::Table(t) => match (t.get("not"), t.get("null"), t.len()) {
                (Some(v), None, 1) => FilterTest::NotIn(texts(v)?),
                (None, Some(toml::Value::Boolean(b)), 1) => FilterTest::IsNull(*b),
                _ => {
                    return Err(err(
                        "a table filter is { not = [...] } or { null = true|false }",
                    ))
                }
            },
            v => FilterTest::In(texts(v)?),
        };
        out.push(Filter {
            column: column.get_ref().clone(),
            line: p.line(column),
            test,
        });
    }
    Ok(out)
}

fn on_delete(p: &Parsed, targets: &HashMap<String, usize>) -> Result<OnDelete> {
    let Some(spec) = &p.file.on_delete else {
        return Ok(OnDelete::Delete);
    };
    let err = |m: String| p.err(spec, format!("on_delete: {m}"));
    match spec.get_ref() {
        toml::Value::String(s) if s == "delete" => Ok(OnDelete::Delete),
        toml::Value::String(s) if s == "ignore" => Ok(OnDelete::Ignore),
        toml::Value::Table(t) => {
            let (Some(toml::Value::String(column)), Some(value), 2) =
                (t.get("set"), t.get("value"), t.len())
            else {
                return Err(err(
                    "a soft delete is { set = \"column\", value = ... }".into()
                ));
            };
            if column.is_empty() {
                return Err(err("set: name the soft-delete column".into()));
            }
            if targets.contains_key(column) {
                return Err(err(format!(
                    "soft-delete column '{column}' is also written from [columns] or [computed]"
                )));
            }
            let value = convert::value_from_toml(value).map_err(|e| err(format!("value: {e}")))?;
            Ok(OnDelete::Set {
                column: column.clone(),
                value,
            })
        }
        other => Err(err(format!(
            "{} is not one of delete, ignore, {{ set = ..., value = ... }}",
            other
        ))),
    }
}

fn table_ref(
    p: &Parsed,
    spec: &Spanned<file::TableSpec>,
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
#[path = "compile_tests.rs"]
mod tests;
