//! Compilation of the newer mapping features: column conversions, computed columns, filters,
//! delete/truncate policies, direction, `[match]` and references, valid and malformed.
//!
//! Fixture text starts on the line after `r#"` (the helper drops that first newline), so the
//! first line of each fixture is line 1. Most fixtures open with the same nine lines (key,
//! [source], [target], [columns] with `id`), so the lines under test start at line 10.

use super::*;

use std::str::FromStr;
use std::sync::Arc;

use crate::mapping::{Mappings, PairField};
use crate::model::Value;
use convert::CastTo;

use crate::mapping::test_support::{assert_error, fails_at, parse, parse_at, FILE};

/// The steps of the column whose source name is `source`.
#[track_caller]
fn steps_of<'a>(m: &'a Mapping, source: &str) -> &'a [Step] {
    &m.columns
        .iter()
        .find(|c| c.source == source)
        .unwrap_or_else(|| panic!("no column {source}"))
        .steps
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---- valid: column conversions -----------------------------------------------------------

#[test]
fn every_step_runs_in_the_fixed_order_whatever_the_file_order() {
    // Written in reverse of the documented order, in the sub-table form.
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[columns.amount]
cast = "decimal"
timezone = { from = "Europe/Berlin", to = "UTC" }
round = 2
divide = "0.5"
multiply = 100
default = "none"
unmapped = "default"
map = { a = "b" }
split = { separator = "-", part = 1 }
transform = ["upper", "trim"]
if_null = 0
to = "total"
"#,
    )
    .unwrap();
    let col = m.columns.iter().find(|c| c.source == "amount").unwrap();
    assert_eq!(col.target, "total");
    assert_eq!(col.reference, None);
    let map = ValueMap {
        entries: HashMap::from([("a".to_string(), text("b"))]),
        unmapped: Unmapped::Default(text("none")),
    };
    assert_eq!(
        col.steps,
        vec![
            Step::IfNull(Value::Int(0)),
            Step::Upper,
            Step::Trim,
            Step::Split {
                separator: "-".into(),
                index: 1,
                rest: false,
            },
            Step::Map(map),
            Step::Multiply(dec("100")),
            Step::Divide(dec("0.5")),
            Step::Round(2),
            Step::TimeZone {
                from: chrono_tz::Europe::Berlin,
                to: chrono_tz::UTC,
            },
            Step::Cast(CastTo::Decimal),
        ]
    );
}

#[test]
fn inline_steps_in_scrambled_order_are_reordered() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
name = { cast = "text", transform = ["trim"], to = "full_name", if_null = "" }
price = { round = 4, to = "rate", multiply = "1.19" }
"#,
    )
    .unwrap();
    assert_eq!(
        steps_of(&m, "name"),
        [Step::IfNull(text("")), Step::Trim, Step::Cast(CastTo::Text)]
    );
    assert_eq!(
        steps_of(&m, "price"),
        [Step::Multiply(dec("1.19")), Step::Round(4)]
    );
    // A plain string column and a table with only `to` have no steps.
    assert!(steps_of(&m, "id").is_empty());
}

#[test]
fn transform_keeps_list_order_and_knows_every_name() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
note = { to = "note", transform = ["null_as_empty", "trim", "lower", "upper", "empty_as_null", "trim"] }
"#,
    )
    .unwrap();
    assert_eq!(
        steps_of(&m, "note"),
        [
            Step::NullAsEmpty,
            Step::Trim,
            Step::Lower,
            Step::Upper,
            Step::EmptyAsNull,
            Step::Trim,
        ]
    );
}

#[test]
fn split_with_rest_and_part_zero() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
first = { to = "first_name", split = { separator = " ", part = 0 } }
last = { to = "last_name", split = { separator = ", ", part = 2, rest = true } }
"#,
    )
    .unwrap();
    assert_eq!(
        steps_of(&m, "first"),
        [Step::Split {
            separator: " ".into(),
            index: 0,
            rest: false
        }]
    );
    assert_eq!(
        steps_of(&m, "last"),
        [Step::Split {
            separator: ", ".into(),
            index: 2,
            rest: true
        }]
    );
}

#[test]
fn map_without_unmapped_is_an_error_policy_and_values_keep_their_toml_type() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
stage = { to = "status", map = { won = "To Deliver and Bill", "1" = 2, lost = false } }
kind = { to = "kind", map = { a = "A" }, unmapped = "error" }
"#,
    )
    .unwrap();
    assert_eq!(
        steps_of(&m, "stage"),
        [Step::Map(ValueMap {
            entries: HashMap::from([
                ("won".to_string(), text("To Deliver and Bill")),
                ("1".to_string(), Value::Int(2)),
                ("lost".to_string(), Value::Bool(false)),
            ]),
            unmapped: Unmapped::Error,
        })]
    );
    assert_eq!(
        steps_of(&m, "kind"),
        [Step::Map(ValueMap {
            entries: HashMap::from([("a".to_string(), text("A"))]),
            unmapped: Unmapped::Error,
        })]
    );
}

#[test]
fn map_with_unmapped_pass_and_default() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
stage = { to = "status", map = { won = "Won" }, unmapped = "pass" }
state = { to = "state", map = { x = 1 }, unmapped = "default", default = 0 }
"#,
    )
    .unwrap();
    assert_eq!(
        steps_of(&m, "stage"),
        [Step::Map(ValueMap {
            entries: HashMap::from([("won".to_string(), text("Won"))]),
            unmapped: Unmapped::Pass,
        })]
    );
    assert_eq!(
        steps_of(&m, "state"),
        [Step::Map(ValueMap {
            entries: HashMap::from([("x".to_string(), Value::Int(1))]),
            unmapped: Unmapped::Default(Value::Int(0)),
        })]
    );
}

#[test]
fn exact_factors_round_bounds_and_time_zones() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
micros = { to = "amount", divide = 1000000, round = 0 }
cents = { to = "euros", multiply = "0.01", round = 28 }
seen = { to = "seen_at", timezone = { from = "UTC", to = "America/New_York" } }
"#,
    )
    .unwrap();
    assert_eq!(
        steps_of(&m, "micros"),
        [Step::Divide(dec("1000000")), Step::Round(0)]
    );
    assert_eq!(
        steps_of(&m, "cents"),
        [Step::Multiply(dec("0.01")), Step::Round(28)]
    );
    assert_eq!(
        steps_of(&m, "seen"),
        [Step::TimeZone {
            from: chrono_tz::UTC,
            to: chrono_tz::America::New_York,
        }]
    );
}

#[test]
fn every_cast_name_compiles() {
    let names = [
        ("text", CastTo::Text),
        ("integer", CastTo::Integer),
        ("decimal", CastTo::Decimal),
        ("float", CastTo::Float),
        ("boolean", CastTo::Boolean),
        ("date", CastTo::Date),
        ("timestamp", CastTo::Timestamp),
        ("timestamptz", CastTo::TimestampTz),
        ("json", CastTo::Json),
        ("uuid", CastTo::Uuid),
    ];
    for (name, cast) in names {
        let m = parse(&format!(
            "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"customers\"\n\
             [target]\nendpoint = \"erp\"\ntable = \"customer\"\n[columns]\n\
             id = {{ to = \"id\", cast = \"{name}\" }}\n"
        ))
        .unwrap_or_else(|e| panic!("cast {name}: {e}"));
        assert_eq!(steps_of(&m, "id"), [Step::Cast(cast)], "cast {name}");
    }
}

#[test]
fn if_null_takes_toml_dates_and_booleans() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
born = { to = "born_on", if_null = 1970-01-01 }
vip = { to = "vip", if_null = false }
"#,
    )
    .unwrap();
    assert_eq!(
        steps_of(&m, "born"),
        [Step::IfNull(Value::Date(
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
        ))]
    );
    assert_eq!(steps_of(&m, "vip"), [Step::IfNull(Value::Bool(false))]);
}

// ---- valid: computed columns -------------------------------------------------------------

#[test]
fn computed_constant_and_concat() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
source_system = { constant = "crm" }
full_name = { concat = ["first", "last"], separator = " ", transform = ["trim", "upper"], cast = "text" }
code = { concat = ["region", "id"] }
"#,
    )
    .unwrap();
    // Sorted by target name, as the TOML table is.
    assert_eq!(
        m.computed,
        vec![
            ComputedColumn {
                owner: None,
                target: "code".into(),
                line: 13,
                kind: Computed::Concat {
                    sources: texts(&["region", "id"]),
                    separator: String::new(),
                },
                steps: Vec::new(),
            },
            ComputedColumn {
                owner: None,
                target: "full_name".into(),
                line: 12,
                kind: Computed::Concat {
                    sources: texts(&["first", "last"]),
                    separator: " ".into(),
                },
                steps: vec![Step::Trim, Step::Upper, Step::Cast(CastTo::Text)],
            },
            ComputedColumn {
                owner: None,
                target: "source_system".into(),
                line: 11,
                kind: Computed::Constant(text("crm")),
                steps: Vec::new(),
            },
        ]
    );
}

#[test]
fn computed_constant_keeps_its_toml_type_and_takes_a_cast() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
active = { constant = true }
company = { constant = 1, cast = "text" }
"#,
    )
    .unwrap();
    assert_eq!(m.computed[0].kind, Computed::Constant(Value::Bool(true)));
    assert!(m.computed[0].steps.is_empty());
    assert_eq!(m.computed[1].kind, Computed::Constant(Value::Int(1)));
    assert_eq!(m.computed[1].steps, vec![Step::Cast(CastTo::Text)]);
}

// ---- valid: filters ----------------------------------------------------------------------

#[test]
fn every_filter_form_with_its_line() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[filter]
stage = "won"
kind = ["a", "b"]
status = { not = ["lost", "void"] }
deleted_at = { null = true }
owner = { null = false }
region = { not = "eu" }
"#,
    )
    .unwrap();
    let f = |column: &str, line, test| Filter {
        column: column.into(),
        line,
        test,
    };
    assert_eq!(
        m.filters,
        vec![
            f("deleted_at", 14, FilterTest::IsNull(true)),
            f("kind", 12, FilterTest::In(texts(&["a", "b"]))),
            f("owner", 15, FilterTest::IsNull(false)),
            f("region", 16, FilterTest::NotIn(texts(&["eu"]))),
            f("stage", 11, FilterTest::In(texts(&["won"]))),
            f("status", 13, FilterTest::NotIn(texts(&["lost", "void"]))),
        ]
    );
}

#[test]
fn filter_numbers_and_booleans_compare_by_text_form() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[filter]
active = true
priority = [1, 2, -3]
flags = { not = [false, 0] }
"#,
    )
    .unwrap();
    let tests: Vec<(&str, &FilterTest)> = m
        .filters
        .iter()
        .map(|f| (f.column.as_str(), &f.test))
        .collect();
    assert_eq!(
        tests,
        vec![
            ("active", &FilterTest::In(texts(&["true"]))),
            ("flags", &FilterTest::NotIn(texts(&["false", "0"]))),
            ("priority", &FilterTest::In(texts(&["1", "2", "-3"]))),
        ]
    );
}

// ---- valid: policies, direction, match ---------------------------------------------------

#[test]
fn policies_default_to_delete_delete_truncate_and_no_match() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
    )
    .unwrap();
    assert!(m.delete_on_filter_leave);
    assert_eq!(m.on_delete, OnDelete::Delete);
    assert!(m.apply_truncate);
    assert!(m.matching.is_empty());
    assert_eq!(m.match_line, 0);
    assert!(m.computed.is_empty());
    assert!(m.filters.is_empty());
}

#[test]
fn policies_written_out() {
    let m = parse(
        r#"
on_filter_leave = "keep"
on_delete = "ignore"
on_truncate = "ignore"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
    )
    .unwrap();
    assert!(!m.delete_on_filter_leave);
    assert_eq!(m.on_delete, OnDelete::Ignore);
    assert!(!m.apply_truncate);

    let m = parse(
        r#"
on_filter_leave = "delete"
on_delete = "delete"
on_truncate = "truncate"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
    )
    .unwrap();
    assert!(m.delete_on_filter_leave);
    assert_eq!(m.on_delete, OnDelete::Delete);
    assert!(m.apply_truncate);
}

#[test]
fn soft_delete_sets_a_column() {
    let m = parse(
        r#"
on_delete = { set = "deleted", value = true }
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
    )
    .unwrap();
    assert_eq!(
        m.on_delete,
        OnDelete::Set {
            column: "deleted".into(),
            value: Value::Bool(true),
        }
    );
}

#[test]
fn direction_matching_source_and_target_is_accepted_with_or_without_spaces() {
    for direction in ["crm->erp", "crm -> erp"] {
        let text = format!(
            "direction = \"{direction}\"\nkey = [\"id\"]\n[source]\nendpoint = \"crm\"\n\
             table = \"customers\"\n[target]\nendpoint = \"erp\"\ntable = \"customer\"\n\
             [columns]\nid = \"id\"\n"
        );
        let m = parse(&text).unwrap_or_else(|e| panic!("{direction}: {e}"));
        assert_eq!(m.source.endpoint, "crm");
    }
}

#[test]
fn match_on_mapped_columns_records_them_and_the_line() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
sku = "item_code"
region = "region"
[match]
on = ["sku", "region"]
"#,
    )
    .unwrap();
    assert_eq!(m.matching, texts(&["sku", "region"]));
    assert_eq!(m.match_line, 12, "the line of the [match] header");
}

// ---- valid: references -------------------------------------------------------------------

#[test]
fn reference_is_kept_on_the_column_and_resolved_into_the_referenced_set() {
    let parent = parse_at(
        "mappings/company.toml",
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "companies"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "crm_id"
"#,
    )
    .unwrap();
    let child = parse_at(
        "mappings/contact.toml",
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "contacts"
[target]
endpoint = "erp"
table = "contact"
[columns]
id = "crm_id"
company_id = { to = "customer", reference = "company" }
"#,
    )
    .unwrap();
    let col = child
        .columns
        .iter()
        .find(|c| c.source == "company_id")
        .unwrap();
    assert_eq!(col.reference.as_deref(), Some("company"));
    assert!(col.steps.is_empty());

    let set = Mappings::from_list(vec![child, parent]).unwrap();
    assert_eq!(
        set.referenced,
        std::collections::HashSet::from(["company".to_string()])
    );
    assert!(!set.referenced.contains("contact"));
}

#[test]
fn no_references_leave_the_referenced_set_empty() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
    )
    .unwrap();
    let set = Mappings::from_list(vec![m]).unwrap();
    assert!(set.referenced.is_empty());
}

// ---- malformed: column conversions -------------------------------------------------------

#[test]
fn unknown_transform_name() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
name = { to = "name", transform = ["trim", "capitalize"] }
"#,
        10,
        "columns.name: transform: 'capitalize' is not one of trim, lower, upper, empty_as_null, \
         null_as_empty",
    );
}

#[test]
fn unknown_cast() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
amount = { to = "amount", cast = "money" }
"#,
        10,
        "columns.amount: cast: 'money' is not one of text, integer, decimal",
    );
}

#[test]
fn unknown_unmapped_policy() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
stage = { to = "status", map = { won = "W" }, unmapped = "maybe" }
"#,
        10,
        "columns.stage: unmapped: 'maybe' is not one of error, default, pass",
    );
}

#[test]
fn unmapped_default_without_default() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
stage = { to = "status", map = { won = "W" }, unmapped = "default" }
"#,
        10,
        "columns.stage: unmapped = \"default\" needs a default",
    );
}

#[test]
fn default_without_map() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
stage = { to = "status", default = "Draft" }
"#,
        10,
        "columns.stage: unmapped and default only go with map",
    );
}

#[test]
fn unmapped_without_map() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
stage = { to = "status", unmapped = "pass" }
"#,
        10,
        "columns.stage: unmapped and default only go with map",
    );
}

#[test]
fn default_with_unmapped_error() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
stage = { to = "status", map = { won = "W" }, unmapped = "error", default = "Draft" }
"#,
        10,
        "columns.stage: default only goes with unmapped = \"default\"",
    );
}

#[test]
fn default_without_unmapped_is_refused_too() {
    // `unmapped` defaults to "error", so a lone `default` would silently never apply.
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
stage = { to = "status", map = { won = "W" }, default = "Draft" }
"#,
        10,
        "columns.stage: default only goes with unmapped = \"default\"",
    );
}

#[test]
fn multiply_by_a_float_is_refused() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
price = { to = "price", multiply = 1.5 }
"#,
        10,
        "columns.price: multiply: write the factor as an integer or a string (\"0.01\")",
    );
}

#[test]
fn multiply_by_text_that_is_not_a_number() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
price = { to = "price", multiply = "abc" }
"#,
        10,
        "columns.price: multiply: must be a decimal number",
    );
}

#[test]
fn multiply_by_a_boolean() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
price = { to = "price", multiply = true }
"#,
        10,
        "columns.price: multiply: must be a number",
    );
}

#[test]
fn divide_by_zero() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
price = { to = "price", divide = 0 }
"#,
        10,
        "columns.price: divide: must not be 0",
    );
}

#[test]
fn divide_by_zero_written_as_decimal_text() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
price = { to = "price", divide = "0.00" }
"#,
        10,
        "columns.price: divide: must not be 0",
    );
}

#[test]
fn round_above_28_places() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
price = { to = "price", round = 40 }
"#,
        10,
        "columns.price: round: decimal places must be 0 to 28",
    );
}

#[test]
fn round_to_negative_places() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
price = { to = "price", round = -1 }
"#,
        10,
        "columns.price: round: decimal places must be 0 to 28",
    );
}

#[test]
fn unknown_time_zone_in_from() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
seen = { to = "seen_at", timezone = { from = "Europe/Berln", to = "UTC" } }
"#,
        10,
        "columns.seen: timezone.from: 'Europe/Berln' is not an IANA time zone",
    );
}

#[test]
fn unknown_time_zone_in_to() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
seen = { to = "seen_at", timezone = { from = "UTC", to = "CEST" } }
"#,
        10,
        "columns.seen: timezone.to: 'CEST' is not an IANA time zone",
    );
}

#[test]
fn split_with_empty_separator() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
name = { to = "first_name", split = { separator = "", part = 0 } }
"#,
        10,
        "columns.name: split: separator must not be empty",
    );
}

#[test]
fn split_with_negative_part() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
name = { to = "last_name", split = { separator = " ", part = -1 } }
"#,
        10,
        "columns.name: split: separator must not be empty and part must be 0 or more",
    );
}

#[test]
fn map_value_that_is_an_array() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
stage = { to = "status", map = { won = ["W"] } }
"#,
        10,
        "columns.stage: map.won: an array is not a column value",
    );
}

#[test]
fn unknown_key_in_column_table_names_the_allowed_keys() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
name = { to = "x", tranform = [] }
"#,
        10,
        "unknown field `tranform`, expected one of `to`, ",
    );
    // Every documented key is in the list (compared key by key, so a new key does not break
    // this test).
    let msg = parse(
        "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"customers\"\n\
         [target]\nendpoint = \"erp\"\ntable = \"customer\"\n[columns]\n\
         id = \"id\"\nname = { to = \"x\", tranform = [] }\n",
    )
    .unwrap_err()
    .to_string();
    for key in [
        "to",
        "reference",
        "if_null",
        "transform",
        "split",
        "map",
        "unmapped",
        "default",
        "multiply",
        "divide",
        "round",
        "timezone",
        "cast",
    ] {
        assert!(
            msg.contains(&format!("`{key}`")),
            "{key} missing from {msg:?}"
        );
    }
}

#[test]
fn error_in_a_column_sub_table_names_its_header_line() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"

[columns.price]
to = "price"
round = 40
"#,
        11,
        "columns.price: round: decimal places must be 0 to 28",
    );
}

#[test]
fn error_in_a_multi_line_inline_column_names_its_first_line() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
price = {
  to = "price",
  divide = 0,
}
"#,
        10,
        "columns.price: divide: must not be 0",
    );
}

#[test]
fn if_null_that_is_an_array() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
name = { to = "name", if_null = ["x"] }
"#,
        10,
        "columns.name: if_null: an array is not a column value",
    );
}

// ---- malformed: computed columns ---------------------------------------------------------

#[test]
fn computed_with_both_constant_and_concat() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
label = { constant = "x", concat = ["a", "b"] }
"#,
        11,
        "computed.label: give exactly one of constant or concat",
    );
}

#[test]
fn computed_with_neither_constant_nor_concat() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
label = { transform = ["trim"] }
"#,
        11,
        "computed.label: give exactly one of constant or concat",
    );
}

#[test]
fn computed_concat_with_empty_list() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
label = { concat = [] }
"#,
        11,
        "computed.label: concat: name one or more source columns, none empty",
    );
}

#[test]
fn computed_concat_with_an_empty_column_name() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
label = { concat = ["first", ""] }
"#,
        11,
        "computed.label: concat:",
    );
}

#[test]
fn computed_separator_with_constant() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
label = { constant = "x", separator = " " }
"#,
        11,
        "computed.label: separator only goes with concat",
    );
}

#[test]
fn computed_target_already_mapped_in_columns() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
name = "label"
[computed]
label = { constant = "x" }
"#,
        12,
        "computed.label: target column 'label' is already mapped on line 10",
    );
}

#[test]
fn computed_with_unknown_transform_and_cast() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
label = { concat = ["a"], transform = ["titlecase"] }
"#,
        11,
        "computed.label: transform: 'titlecase' is not one of",
    );
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
label = { constant = 1, cast = "int" }
"#,
        11,
        "computed.label: cast: 'int' is not one of",
    );
}

#[test]
fn computed_unknown_key() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
label = { concat = ["a"], sep = " " }
"#,
        11,
        "unknown field `sep`, expected one of `constant`, `concat`, `separator`, `transform`, \
         `cast`",
    );
}

#[test]
fn computed_constant_that_is_a_table() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
label = { constant = { a = 1 } }
"#,
        11,
        "computed.label: constant: a table is not a column value",
    );
}

#[test]

fn computed_with_empty_target_name() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
"" = { constant = 1 }
"#,
        11,
        "computed",
    );
}

// ---- malformed: filters ------------------------------------------------------------------

#[test]
fn filter_not_with_empty_list() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[filter]
stage = "won"
status = { not = [] }
"#,
        12,
        "filter.status: list at least one value",
    );
}

#[test]
fn filter_with_empty_list() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[filter]
status = []
"#,
        11,
        "filter.status: list at least one value",
    );
}

#[test]
fn filter_table_with_unknown_key() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[filter]
status = { in = ["a"] }
"#,
        11,
        "filter.status: a table filter is { not = [...] } or { null = true|false }",
    );
}

#[test]
fn filter_table_with_both_not_and_null() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[filter]
status = { not = ["a"], null = false }
"#,
        11,
        "filter.status: a table filter is { not = [...] } or { null = true|false }",
    );
}

#[test]
fn filter_null_that_is_not_a_boolean() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[filter]
deleted_at = { null = "yes" }
"#,
        11,
        "filter.deleted_at: a table filter is { not = [...] } or { null = true|false }",
    );
}

#[test]
fn filter_value_that_is_a_table_inside_the_list() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[filter]
status = ["a", { not = "b" }]
"#,
        11,
        "filter.status: values must be strings, numbers or booleans",
    );
}

#[test]
fn filter_value_that_is_a_nested_list() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[filter]
status = { not = [["a"]] }
"#,
        11,
        "filter.status: values must be strings, numbers or booleans",
    );
}

#[test]

fn filter_on_empty_column_name() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[filter]
"" = "won"
"#,
        11,
        "filter",
    );
}

#[test]
fn filter_float_value_is_refused() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[filter]
price = 12.50
"#,
        11,
        "filter.price:",
    );
}

// ---- malformed: policies, direction, match -----------------------------------------------

#[test]
fn unknown_on_filter_leave() {
    fails_at(
        r#"
key = ["id"]
on_filter_leave = "sometimes"
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        2,
        "on_filter_leave: 'sometimes' is not one of delete, keep",
    );
}

#[test]
fn unknown_on_delete_word() {
    fails_at(
        r#"
key = ["id"]
on_delete = "purge"
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        2,
        "is not one of delete, ignore, { set = ..., value = ... }",
    );
    let msg = parse(
        "key = [\"id\"]\non_delete = \"purge\"\n[source]\nendpoint = \"crm\"\n\
         table = \"customers\"\n[target]\nendpoint = \"erp\"\ntable = \"customer\"\n\
         [columns]\nid = \"id\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("purge"), "{msg}");
}

#[test]
fn on_delete_of_the_wrong_type() {
    fails_at(
        r#"
key = ["id"]
on_delete = 5
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        2,
        "on_delete: 5 is not one of delete, ignore",
    );
}

#[test]
fn soft_delete_without_value() {
    fails_at(
        r#"
key = ["id"]
on_delete = { set = "x" }
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        2,
        "on_delete: a soft delete is { set = \"column\", value = ... }",
    );
}

#[test]
fn soft_delete_with_an_extra_key() {
    fails_at(
        r#"
key = ["id"]
on_delete = { set = "deleted", value = true, also = 1 }
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        2,
        "on_delete: a soft delete is { set = \"column\", value = ... }",
    );
}

#[test]
fn soft_delete_value_that_is_an_array() {
    fails_at(
        r#"
key = ["id"]
on_delete = { set = "deleted", value = [true] }
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        2,
        "on_delete: value: an array is not a column value",
    );
}

#[test]
fn soft_delete_column_also_mapped() {
    fails_at(
        r#"
key = ["id"]
on_delete = { set = "deleted", value = true }
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
is_deleted = "deleted"
"#,
        2,
        "on_delete: soft-delete column 'deleted' is also written from [columns] or [computed]",
    );
}

#[test]
fn soft_delete_column_also_computed() {
    fails_at(
        r#"
key = ["id"]
on_delete = { set = "deleted", value = true }
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[computed]
deleted = { constant = false }
"#,
        2,
        "on_delete: soft-delete column 'deleted' is also written from [columns] or [computed]",
    );
}

#[test]

fn soft_delete_column_with_empty_name() {
    fails_at(
        r#"
key = ["id"]
on_delete = { set = "", value = true }
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        2,
        "on_delete:",
    );
}

#[test]
fn unknown_on_truncate() {
    fails_at(
        r#"
key = ["id"]
on_truncate = "drop"
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        2,
        "on_truncate: 'drop' is not one of truncate, ignore",
    );
}

#[test]
fn direction_that_does_not_match() {
    fails_at(
        r#"
key = ["id"]
direction = "erp->crm"
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        2,
        "direction: 'erp->crm' does not match source and target (crm->erp)",
    );
}

#[test]
fn match_on_empty_list() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[match]
on = []
"#,
        10,
        "match.on: name at least one source column",
    );
}

#[test]
fn match_on_unmapped_column() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
sku = "item_code"
[match]
on = ["sku", "ean"]
"#,
        11,
        "match.on: column 'ean' must also be mapped in [columns]",
    );
}

#[test]
fn match_on_the_key_column() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
[match]
on = ["id"]
"#,
        10,
        "match.on: column 'id' is the key; match on other columns",
    );
}

#[test]

fn match_on_a_column_listed_twice() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
sku = "item_code"
[match]
on = ["sku", "sku"]
"#,
        11,
        "match.on: column 'sku'",
    );
}

// ---- malformed: references ---------------------------------------------------------------

#[test]
fn empty_reference() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
company_id = { to = "customer", reference = "" }
"#,
        10,
        "columns.company_id: reference: name a mapping",
    );
}

/// A one-column mapping `crm:public.{table} -> erp:erp.{table}` with the given extra lines
/// after `[columns]` / `id = "id"` (which is line 9).
fn with_columns(path: &str, table: &str, extra: &str) -> Mapping {
    let text = format!(
        "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"{table}\"\n\
         [target]\nendpoint = \"erp\"\ntable = \"{table}\"\n[columns]\nid = \"id\"\n{extra}"
    );
    parse_at(path, &text).unwrap()
}

#[test]
fn reference_to_an_unknown_mapping() {
    let a = with_columns("mappings/company.toml", "companies", "");
    let b = with_columns(
        "mappings/contact.toml",
        "contacts",
        "company_id = { to = \"customer\", reference = \"companys\" }\n",
    );
    let err = Mappings::from_list(vec![a, b]).unwrap_err();
    assert_error(
        err,
        "mappings/contact.toml",
        10,
        "columns.company_id: reference to unknown mapping 'companys'",
    );
}

#[test]
fn reference_to_a_mapping_with_a_composite_key() {
    let parent = parse_at(
        "mappings/company.toml",
        r#"
key = ["id", "region"]
[source]
endpoint = "crm"
table = "companies"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
region = "region"
"#,
    )
    .unwrap();
    let child = with_columns(
        "mappings/contact.toml",
        "contacts",
        "\ncompany_id = { to = \"customer\", reference = \"company\" }\n",
    );
    let err = Mappings::from_list(vec![parent, child]).unwrap_err();
    assert_error(
        err,
        "mappings/contact.toml",
        11,
        "columns.company_id: mapping 'company' has a composite key; a reference needs a \
         single-column key",
    );
}

#[test]
fn reference_to_a_mapping_on_other_endpoints() {
    let items = parse_at(
        "mappings/items.toml",
        r#"
key = ["id"]
[source]
endpoint = "erp"
table = "item"
[target]
endpoint = "crm"
table = "products"
[columns]
id = "id"
"#,
    )
    .unwrap();
    let lines = with_columns(
        "mappings/lines.toml",
        "order_lines",
        "item_id = { to = \"item\", reference = \"items\" }\n",
    );
    let err = Mappings::from_list(vec![items, lines]).unwrap_err();
    assert_error(
        err,
        "mappings/lines.toml",
        10,
        "columns.item_id: mapping 'items' runs erp -> crm, not crm -> erp",
    );
}

// ---- conflicts of direction = "both" mappings --------------------------------------------

/// A `direction = "both"` mapping crm:customers <-> erp:customer, ten lines ending with
/// `id = "customer_id"` under `[columns]`; `rest` (its leading newline dropped) starts on
/// line 11.
fn both(rest: &str) -> String {
    let rest = rest.strip_prefix('\n').unwrap_or(rest);
    format!(
        "direction = \"both\"\nkey = [\"id\"]\n[source]\nendpoint = \"crm\"\n\
         table = \"customers\"\n[target]\nendpoint = \"erp\"\ntable = \"customer\"\n\
         [columns]\nid = \"customer_id\"\n{rest}"
    )
}

/// The column whose source name is `source`.
#[track_caller]
fn column<'a>(m: &'a Mapping, source: &str) -> &'a ColumnMap {
    m.columns
        .iter()
        .find(|c| c.source == source)
        .unwrap_or_else(|| panic!("no column {source}"))
}

#[test]
fn conflict_defaults_for_a_both_mapping() {
    let m = parse(&both("email = \"mail\"\n")).unwrap();
    assert_eq!(
        m.conflict,
        Some(ConflictRules {
            policy: Policy::LastWriterWins,
            winner: None,
            fallback: Policy::LastWriterWins,
            priority: texts(&["crm", "erp"]),
        })
    );
    assert!(m.columns.iter().all(|c| c.conflict.is_none()));
    let one_way = with_columns(FILE, "customers", "email = \"mail\"\n");
    assert_eq!(one_way.conflict, None);
}

#[test]
fn conflict_table_written_out() {
    let m = parse(&both(
        r#"
email = { to = "mail", conflict = "manual" }
name = { to = "full_name", owner = "crm" }
[conflict]
policy = "merge"
fallback = "source_wins"
winner = "erp"
priority = ["erp", "crm"]
"#,
    ))
    .unwrap();
    assert_eq!(
        m.conflict,
        Some(ConflictRules {
            policy: Policy::Merge,
            winner: Some("erp".into()),
            fallback: Policy::SourceWins,
            priority: texts(&["erp", "crm"]),
        })
    );
    assert_eq!(column(&m, "email").conflict, Some(Policy::Manual));
    assert_eq!(column(&m, "name").conflict, None);
    assert_eq!(column(&m, "name").owner.as_deref(), Some("crm"));
}

#[test]
fn every_policy_name_compiles() {
    for (name, policy) in [
        ("last_writer_wins", Policy::LastWriterWins),
        ("source_wins", Policy::SourceWins),
        ("merge", Policy::Merge),
        ("manual", Policy::Manual),
    ] {
        let text = both(&format!(
            "email = {{ to = \"mail\", conflict = \"{name}\" }}\n\
             [conflict]\npolicy = \"{name}\"\nwinner = \"crm\"\n"
        ));
        let m = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            m.conflict.as_ref().map(|c| c.policy),
            Some(policy),
            "{name}"
        );
        assert_eq!(column(&m, "email").conflict, Some(policy), "{name}");
    }
}

#[test]
fn conflict_table_on_a_one_way_mapping() {
    for direction in ["", "direction = \"crm->erp\"\n"] {
        let text = format!(
            "{direction}key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"customers\"\n\
             [target]\nendpoint = \"erp\"\ntable = \"customer\"\n[columns]\nid = \"id\"\n\
             [conflict]\npolicy = \"manual\"\n"
        );
        let line = 10 + usize::from(!direction.is_empty());
        let err = parse(&text).expect_err("a one-way mapping with [conflict] was accepted");
        assert_error(
            err,
            FILE,
            line,
            "conflict: only a direction = \"both\" mapping has conflicts",
        );
    }
}

#[test]
fn column_conflict_on_a_one_way_mapping() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
email = { to = "mail", conflict = "manual" }
"#,
        10,
        "columns.email: conflict: only a direction = \"both\" mapping has conflicts",
    );
}

#[test]
fn column_conflict_in_a_sub_table_on_a_one_way_mapping_names_its_header_line() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"

[columns.email]
to = "mail"
conflict = "manual"
"#,
        11,
        "columns.email: conflict: only a direction = \"both\" mapping has conflicts",
    );
}

#[test]
fn unknown_conflict_policy_lists_the_allowed_ones() {
    let allowed = "is not one of last_writer_wins, source_wins, merge, manual";
    let text = both("email = \"mail\"\n[conflict]\npolicy = \"newest\"\n");
    assert_error(
        parse(&text).unwrap_err(),
        FILE,
        12,
        &format!("conflict.policy: 'newest' {allowed}"),
    );
    let text = both("email = \"mail\"\n[conflict]\npolicy = \"merge\"\nfallback = \"newest\"\n");
    assert_error(
        parse(&text).unwrap_err(),
        FILE,
        12,
        &format!("conflict.fallback: 'newest' {allowed}"),
    );
    let text = both("email = \"mail\"\nname = { to = \"full_name\", conflict = \"newest\" }\n");
    assert_error(
        parse(&text).unwrap_err(),
        FILE,
        12,
        &format!("columns.name: conflict: 'newest' {allowed}"),
    );
}

#[test]
fn fallback_merge_is_refused() {
    fails_at(
        &both("email = \"mail\"\n[conflict]\npolicy = \"merge\"\nfallback = \"merge\"\n"),
        12,
        "conflict.fallback: must be last_writer_wins, source_wins or manual",
    );
}

#[test]
fn winner_that_is_not_an_endpoint_of_the_mapping() {
    fails_at(
        &both("email = \"mail\"\n[conflict]\npolicy = \"source_wins\"\nwinner = \"sales\"\n"),
        12,
        "conflict.winner: 'sales' is neither endpoint of this mapping (crm, erp)",
    );
}

#[test]
fn priority_naming_an_unknown_endpoint() {
    fails_at(
        &both("email = \"mail\"\n[conflict]\npriority = [\"crm\", \"sales\"]\n"),
        12,
        "conflict.priority: 'sales' is neither endpoint of this mapping (crm, erp)",
    );
}

#[test]
fn priority_must_list_both_endpoints_once() {
    for list in [
        "[\"erp\"]",
        "[\"erp\", \"erp\"]",
        "[\"crm\", \"erp\", \"crm\"]",
        "[]",
    ] {
        let text = both(&format!(
            "email = \"mail\"\n[conflict]\npriority = {list}\n"
        ));
        let err = parse(&text).expect_err(list);
        assert_error(
            err,
            FILE,
            12,
            "conflict.priority: list both endpoints once, e.g. [\"erp\", \"crm\"]",
        );
    }
}

#[test]
fn source_wins_needs_a_winner_for_a_delete_against_an_update() {
    // Every column has an owner, but a delete against an update has no column to own it.
    fails_at(
        &both(
            r#"
email = { to = "mail", owner = "erp" }
[conflict]
policy = "source_wins"
"#,
        ),
        12,
        "conflict.winner: source_wins decides a delete against an update by the winner \
         endpoint; name it",
    );
    // The same under merge with a source_wins fallback.
    fails_at(
        &both(
            r#"
email = { to = "mail", owner = "erp" }
[conflict]
policy = "merge"
fallback = "source_wins"
"#,
        ),
        12,
        "conflict.winner: source_wins decides",
    );
}

#[test]
fn source_wins_without_owner_or_winner_names_the_column() {
    fails_at(
        &both(
            r#"
email = { to = "mail", owner = "erp" }
name = "full_name"
[conflict]
policy = "source_wins"
"#,
        ),
        12,
        "columns.name: source_wins needs an owner for this column or conflict.winner",
    );
    // A merge mapping reaches source_wins through its fallback.
    fails_at(
        &both(
            r#"
email = "mail"
[conflict]
policy = "merge"
fallback = "source_wins"
"#,
        ),
        11,
        "columns.email: source_wins needs an owner for this column or conflict.winner",
    );
}

#[test]
fn source_wins_with_a_winner_needs_no_owners() {
    let m = parse(&both(
        "email = \"mail\"\n[conflict]\npolicy = \"source_wins\"\nwinner = \"crm\"\n",
    ))
    .unwrap();
    assert_eq!(m.conflict.and_then(|c| c.winner).as_deref(), Some("crm"));
}

#[test]
fn column_source_wins_without_owner_or_winner_names_its_line() {
    let column_line = |policy: &str| {
        both(&format!(
            "email = \"mail\"\nphone = {{ to = \"tel\", conflict = \"{policy}\" }}\n"
        ))
    };
    fails_at(
        &column_line("source_wins"),
        12,
        "columns.phone: source_wins needs an owner for this column or conflict.winner",
    );
    // A merge column with a source_wins fallback needs one too.
    fails_at(
        &format!(
            "{}[conflict]\nfallback = \"source_wins\"\n",
            column_line("merge")
        ),
        12,
        "columns.phone: source_wins needs an owner for this column or conflict.winner",
    );
    // The mapping stays last_writer_wins, so no winner is needed once the column has an owner.
    let owned = both(
        "email = \"mail\"\nphone = { to = \"tel\", conflict = \"source_wins\", owner = \"erp\" }\n",
    );
    let m = parse(&owned).unwrap();
    assert_eq!(column(&m, "phone").conflict, Some(Policy::SourceWins));
    assert_eq!(column(&m, "phone").owner.as_deref(), Some("erp"));
    let with_winner = format!(
        "{}[conflict]\nwinner = \"crm\"\n",
        column_line("source_wins")
    );
    assert!(parse(&with_winner).is_ok());
}

#[test]
fn source_wins_fallback_of_a_last_writer_wins_mapping_needs_no_winner() {
    // Only the merge column uses the fallback, and it has an owner.
    let text = both(
        r#"
email = "mail"
phone = { to = "tel", conflict = "merge", owner = "erp" }
[conflict]
policy = "last_writer_wins"
fallback = "source_wins"
"#,
    );
    let m = parse(&text).unwrap_or_else(|e| panic!("refused: {e}"));
    assert_eq!(m.conflict.map(|c| c.fallback), Some(Policy::SourceWins));
}

#[test]
fn owner_in_a_both_mapping_is_kept_by_the_reverse_mapping() {
    let m = parse(&both(
        r#"
email = { to = "mail", owner = "erp" }
name = { to = "full_name", conflict = "manual" }
[conflict]
policy = "merge"
"#,
    ))
    .unwrap();
    assert_eq!(column(&m, "email").owner.as_deref(), Some("erp"));
    let r = m.reversed().unwrap();
    assert_eq!(column(&r, "mail").owner.as_deref(), Some("erp"));
    assert_eq!(column(&r, "mail").target, "email");
    assert_eq!(column(&r, "full_name").conflict, Some(Policy::Manual));
    assert_eq!(column(&r, "customer_id").owner, None);
    assert_eq!(r.conflict, m.conflict);
    assert!(r.conflict.is_some());
}

#[test]
fn owner_in_a_both_mapping_must_be_an_endpoint_and_not_on_the_key() {
    fails_at(
        &both("email = { to = \"mail\", owner = \"sales\" }\n"),
        11,
        "columns.email: owner 'sales' is neither endpoint of this mapping (crm, erp)",
    );
    let text = both("email = \"mail\"\n").replace(
        "id = \"customer_id\"",
        "id = { to = \"customer_id\", owner = \"crm\" }",
    );
    fails_at(&text, 10, "columns.id: a key column has no owner");
}

#[test]
fn both_directions_share_one_pair_in_forward_field_order() {
    let m = parse(&both(
        r#"
name = { to = "full_name", conflict = "manual" }
email = { to = "mail", owner = "erp" }
[conflict]
policy = "merge"
priority = ["erp", "crm"]
"#,
    ))
    .unwrap();
    let rules = m.conflict.clone().unwrap();
    let one_way = with_columns("mappings/orders.toml", "orders", "");
    let set = Mappings::from_list(vec![m.reversed().unwrap(), m, one_way]).unwrap();
    let mut names: Vec<&str> = set.pairs.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["customers", "customers.reverse"]);
    let (fwd, rev) = (&set.pairs["customers"], &set.pairs["customers.reverse"]);
    assert!(Arc::ptr_eq(fwd, rev), "one pair under both names");
    assert_eq!(fwd.name, "customers");
    assert_eq!(
        (fwd.a.endpoint.as_str(), fwd.a.table.as_str()),
        ("crm", "customers")
    );
    assert_eq!(
        (fwd.b.endpoint.as_str(), fwd.b.table.as_str()),
        ("erp", "customer")
    );
    let field = |a: &str, b: &str, policy, owner: Option<&str>| PairField {
        a: a.into(),
        b: b.into(),
        policy,
        owner: owner.map(String::from),
    };
    // Sorted by the forward source name; the key `id` is the second field.
    assert_eq!(
        fwd.fields,
        vec![
            field("email", "mail", Policy::Merge, Some("erp")),
            field("id", "customer_id", Policy::Merge, None),
            field("name", "full_name", Policy::Manual, None),
        ]
    );
    assert_eq!(fwd.key, vec![1]);
    assert_eq!(fwd.rules, rules);
    assert_eq!(fwd.columns(true), ["email", "id", "name"]);
    assert_eq!(fwd.columns(false), ["mail", "customer_id", "full_name"]);
}
