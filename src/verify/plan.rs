//! What `verify --repair` may change: the repair rules.
//!
//! Never destroy what you do not own. A repair writes what the mapping itself would write
//! (missing and differing rows) and deletes a target row only when the mapping owns the
//! existence of its target rows: it creates every row it maps and would itself delete the row
//! when its source row is gone. That excludes `write = "update"` (rows exist without it), a
//! `[filter]` (target rows of source rows outside it are not its own), a soft delete
//! (`on_delete = { set = ... }`: the row stays on purpose), `on_delete = "ignore"`, `[match]`
//! (adopted rows existed before), `direction = "both"` (a row only on the target is the other
//! direction's to copy), and a target table another mapping also creates rows in.
//!
//! A plan that would delete more than [`MASS_DELETE_SHARE`] of the target's rows is refused
//! unless the operator says `--allow-mass-delete`: a wrong key range or a source read from the
//! wrong database looks exactly like "everything is extra".

use serde_json::{json, Value as Json};

use super::Drift;
use crate::mapping::{Mapping, OnDelete};

/// Share of the target's rows a repair may delete without `--allow-mass-delete` (10 %).
pub const MASS_DELETE_SHARE: f64 = 0.10;

/// Why `m` does not own the existence of its target rows; `None` when it does.
pub fn not_owner(m: &Mapping, all: &[std::sync::Arc<Mapping>]) -> Option<String> {
    let why = if m.update_only {
        "write = \"update\": the mapping never creates target rows"
    } else if !m.filters.is_empty() {
        "[filter]: target rows of source rows outside the filter are not the mapping's"
    } else if matches!(m.on_delete, OnDelete::Set { .. }) {
        "soft delete: the mapping keeps target rows whose source row is gone"
    } else if matches!(m.on_delete, OnDelete::Ignore) {
        "on_delete = \"ignore\": the mapping never deletes target rows"
    } else if !m.matching.is_empty() {
        "[match]: adopted target rows existed before the mapping"
    } else if m.both || m.name.ends_with(".reverse") {
        "direction = \"both\": a row only on the target is the other direction's to copy"
    } else if let Some(other) = all.iter().find(|o| {
        o.name != m.name
            && !o.update_only
            && o.target.endpoint == m.target.endpoint
            && o.target.namespace == m.target.namespace
            && o.target.table == m.target.table
    }) {
        return Some(format!(
            "mapping '{}' also creates rows in {}",
            other.name, m.target
        ));
    } else {
        return None;
    };
    Some(why.to_string())
}

impl Drift {
    /// Whether the plan deletes more than [`MASS_DELETE_SHARE`] of the target's rows.
    pub fn mass_delete(&self) -> bool {
        !self.extra.is_empty()
            && self.extra.len() as f64 > MASS_DELETE_SHARE * self.target_rows.max(1) as f64
    }

    /// What a repair would do, and what it leaves alone and why.
    pub fn plan(&self) -> Json {
        let mut alone = Vec::new();
        let mut leave = |kind: &str, rows: u64, why: &str| {
            if rows > 0 {
                alone.push(json!({"kind": kind, "rows": rows, "why": why}));
            }
        };
        if let Some(why) = &self.not_owner {
            leave("target_only", self.not_owned, why);
            leave(
                "source_only",
                self.not_created,
                "write = \"update\": the mapping never creates target rows",
            );
        }
        leave(
            "dead_letter",
            self.held.len() as u64,
            "held in the dead-letter queue: replay or drop it there",
        );
        leave(
            "unreadable",
            self.unreadable.len() as u64,
            "a value verify cannot read: compare it by hand",
        );
        leave(
            "unmapped",
            self.unmapped,
            "the mapping cannot write it now (a dead letter, or waiting for its parent)",
        );
        json!({
            "write_missing": self.missing.len(),
            "rewrite_differing": self.differing.len(),
            "delete_extra": self.extra.len(),
            "delete_share": if self.target_rows == 0 { 0.0 } else {
                self.extra.len() as f64 / self.target_rows as f64
            },
            "mass_delete": self.mass_delete(),
            "left_alone": alone,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::model::Value;

    fn mapping(name: &str, extra: &str) -> Arc<Mapping> {
        let config = crate::mapping::test_support::config();
        let text = format!(
            "key = [\"id\"]\n{extra}\n[source]\nendpoint = \"crm\"\ntable = \"t\"\n\
             [target]\nendpoint = \"erp\"\ntable = \"t\"\n[columns]\nid = \"id\"\nname = \"name\"\n"
        );
        let text = match extra.contains("[match]") || extra.contains("[filter]") {
            // Tables go after the top-level keys.
            true => text.replacen(extra, "", 1) + extra,
            false => text,
        };
        Arc::new(
            Mappings::parse_one(Path::new(&format!("mappings/{name}.toml")), &text, &config)
                .unwrap(),
        )
    }

    use crate::mapping::Mappings;

    #[test]
    fn only_a_plain_creating_mapping_owns_its_rows() {
        let plain = mapping("plain", "");
        assert_eq!(not_owner(&plain, std::slice::from_ref(&plain)), None);
        for (extra, needle) in [
            ("write = \"update\"", "update"),
            ("on_delete = \"ignore\"", "ignore"),
            (
                "on_delete = { set = \"deleted\", value = 1 }",
                "soft delete",
            ),
            ("[filter]\nname = \"x\"", "filter"),
            ("[match]\non = [\"name\"]", "match"),
        ] {
            let m = mapping("m", extra);
            let why = not_owner(&m, std::slice::from_ref(&m)).unwrap_or_default();
            assert!(why.contains(needle), "{extra}: {why:?}");
        }
        // Another mapping creating rows in the same table.
        let other = mapping("other", "");
        let why = not_owner(&plain, &[plain.clone(), other]).unwrap_or_default();
        assert!(why.contains("'other'"), "{why}");
    }

    #[test]
    fn more_than_a_tenth_deleted_is_a_mass_delete() {
        let key = |i: i64| vec![Value::Int(i)];
        let mut d = Drift {
            target_rows: 100,
            extra: (0..10).map(key).collect(),
            ..Drift::default()
        };
        assert!(!d.mass_delete(), "10 of 100 is allowed");
        d.extra.push(key(11));
        assert!(d.mass_delete(), "11 of 100 is not");
        assert_eq!(d.plan()["delete_extra"], 11);
        assert_eq!(d.plan()["mass_delete"], true);
    }
}
