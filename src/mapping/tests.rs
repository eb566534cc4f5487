//! Mapping files: defaults, every malformed case with its exact `file:line:`, the mapping set,
//! and the pure transform from row changes to target operations.
//!
//! Fixture text starts on the line after `r#"` (the helper drops that first newline), so the
//! first line of each fixture is line 1.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::error::ErrorClass;
use crate::model::{ColumnSchema, Op, RowChange, RowImage, TableSchema, Value};

use super::test_support::{fails_at, parse, parse_at, FILE};

const VALID: &str = r#"
key = ["id"]

[source]
endpoint = "crm"
table = "customers"

[target]
endpoint = "erp"
table = "customer"

[columns]
id = "customer_id"
name = "full_name"
email = { to = "mail" }
"#;

// ---- valid files -------------------------------------------------------------------------

#[test]
fn valid_mapping_fills_defaults() {
    let m = parse(VALID).unwrap();
    assert_eq!(m.name, "customers", "name defaults to the file stem");
    assert_eq!(m.file, Path::new(FILE));
    assert_eq!(
        m.source,
        TableRef {
            endpoint: "crm".into(),
            namespace: "public".into(),
            table: "customers".into(),
            line: 5,
        }
    );
    assert_eq!(
        m.target,
        TableRef {
            endpoint: "erp".into(),
            namespace: "erp".into(),
            table: "customer".into(),
            line: 9,
        }
    );
    assert_eq!(m.source.to_string(), "crm:public.customers");
    assert_eq!(m.key, vec!["id"]);
    assert_eq!(m.key_line, 1);
}

#[test]
fn columns_are_sorted_by_source_with_their_lines() {
    let m = parse(VALID).unwrap();
    let col = |source: &str, target: &str, line| ColumnMap {
        source: source.into(),
        target: target.into(),
        line,
        steps: Vec::new(),
        reference: None,
        owner: None,
        conflict: None,
    };
    assert_eq!(
        m.columns,
        vec![
            col("email", "mail", 14),
            col("id", "customer_id", 12),
            col("name", "full_name", 13),
        ]
    );
    assert_eq!(m.target_key(), vec!["customer_id"]);
}

#[test]
fn explicit_name_and_schemas_override_defaults() {
    let m = parse(
        r#"
name = "crm-customers"
key = ["id", "region"]

[source]
endpoint = "crm"
schema = "sales"
table = "customers"

[target]
endpoint = "erp"
schema = "erp_archive"
table = "customer"

[columns]
id = "id"
region = { to = "region_code" }
"#,
    )
    .unwrap();
    assert_eq!(m.name, "crm-customers");
    assert_eq!(m.source.namespace, "sales");
    assert_eq!(m.target.namespace, "erp_archive");
    assert_eq!(m.key, vec!["id", "region"]);
    assert_eq!(m.target_key(), vec!["id", "region_code"]);
}

#[test]
fn mysql_source_defaults_to_its_database_and_postgres_target_to_public() {
    let m = parse(
        r#"
key = ["id"]
[source]
endpoint = "erp"
table = "customer"
[target]
endpoint = "crm"
table = "customers"
[columns]
id = "id"
"#,
    )
    .unwrap();
    assert_eq!(m.source.namespace, "erp");
    assert_eq!(m.target.namespace, "public");
}

// ---- malformed files ---------------------------------------------------------------------

#[test]
fn unknown_top_level_key() {
    fails_at(
        r#"
key = ["id"]
owner = "sales"
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
        "unknown field `owner`",
    );
}

#[test]
fn unknown_key_in_source() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
schema_name = "sales"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        4,
        "unknown field `schema_name`",
    );
}

#[test]
fn key_must_be_an_array() {
    fails_at(
        r#"
key = "id"
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        1,
        "invalid type: string \"id\", expected a sequence",
    );
}

#[test]
fn key_items_must_be_strings() {
    fails_at(
        r#"
key = [
  "id",
  7,
]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        3,
        "invalid type: integer `7`",
    );
}

#[test]
fn missing_target() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[columns]
id = "id"
"#,
        1,
        "missing field `target`",
    );
}

#[test]
fn missing_key() {
    fails_at(
        r#"
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        1,
        "missing field `key`",
    );
}

#[test]
fn missing_table_in_target() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
[columns]
id = "id"
"#,
        5,
        "missing field `table`",
    );
}

#[test]
fn empty_key_list() {
    fails_at(
        r#"
key = []
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        1,
        "key: name at least one source key column",
    );
}

#[test]
fn key_column_not_mapped() {
    fails_at(
        r#"
key = [
  "id",
  "code",
]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        3,
        "key: column 'code' must also be mapped in [columns]",
    );
}

#[test]
fn key_column_listed_twice() {
    fails_at(
        r#"
key = [
  "id",
  "id",
]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        3,
        "key: column 'id' is listed twice",
    );
}

#[test]
fn unknown_source_endpoint_lists_configured_ones() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "billing"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        3,
        "source.endpoint: unknown endpoint 'billing' (configured: crm, erp)",
    );
}

#[test]
fn unknown_target_endpoint() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "ERP"
table = "customer"
[columns]
id = "id"
"#,
        6,
        "target.endpoint: unknown endpoint 'ERP'",
    );
}

#[test]
fn source_and_target_on_the_same_endpoint() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "crm"
table = "customers_copy"
[columns]
id = "id"
"#,
        6,
        "target.endpoint: 'crm' is also the source endpoint",
    );
}

#[test]
fn empty_table_name() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = ""
[columns]
id = "id"
"#,
        7,
        "target.table: must not be empty",
    );
}

#[test]
fn empty_columns_table() {
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
"#,
        9,
        "columns: map at least one column",
    );
}

#[test]
fn two_columns_into_one_target_names_both_lines() {
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
title = { to = "label" }
"#,
        11,
        "columns.title: target column 'label' is already mapped on line 10",
    );
}

#[test]
fn empty_target_column_name() {
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
name = ""
"#,
        10,
        "columns: column names must not be empty",
    );
}

#[test]
fn empty_source_column_name() {
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
"" = "x"
id = "id"
"#,
        9,
        "columns: column names must not be empty",
    );
}

#[test]
fn empty_name() {
    fails_at(
        r#"
key = ["id"]
name = "  "
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
        "name: must not be empty",
    );
}

#[test]
fn column_table_form_with_unknown_key() {
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
email = { to = "mail", type = "text" }
"#,
        10,
        "unknown field `type`, expected one of `to`",
    );
}

#[test]
fn column_of_wrong_type() {
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
id = 1
"#,
        9,
        "invalid type: integer `1`, expected a target column name or a table with `to`",
    );
}

#[test]
fn invalid_toml_syntax() {
    fails_at(
        r#"
key = ["id"]
[source]
endpoint = "crm"
table = "customers
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "id"
"#,
        4,
        "invalid basic string",
    );
}

#[test]
fn duplicate_toml_key() {
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
id = "other"
"#,
        10,
        "duplicate key",
    );
}

// ---- the mapping set ---------------------------------------------------------------------

fn simple(path: &str, source: &str, target: &str, name: Option<&str>) -> Mapping {
    let name = name
        .map(|n| format!("name = \"{n}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "{name}key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"{source}\"\n\
         [target]\nendpoint = \"erp\"\ntable = \"{target}\"\n[columns]\nid = \"id\"\n"
    );
    parse_at(path, &text).unwrap()
}

#[test]
fn duplicate_mapping_names_are_an_error() {
    let a = simple("mappings/a.toml", "customers", "customer", Some("same"));
    let b = simple("mappings/b.toml", "orders", "order", Some("same"));
    let err = Mappings::from_list(vec![a, b]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mappings/b.toml:1: mapping name 'same' is also used by mappings/a.toml"
    );
    assert_eq!(err.class(), ErrorClass::Config);
}

#[test]
fn for_source_finds_mappings_of_a_table() {
    let set = Mappings::from_list(vec![
        simple("mappings/customers.toml", "customers", "customer", None),
        simple("mappings/orders.toml", "orders", "order", None),
        simple("mappings/audit.toml", "customers", "customer_audit", None),
    ])
    .unwrap();
    let names: Vec<&str> = set
        .for_source("crm", "public", "customers")
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, vec!["customers", "audit"]);
    let orders: Vec<_> = set.for_source("crm", "public", "orders").collect();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].target.table, "order");
    assert_eq!(set.for_source("crm", "sales", "orders").count(), 0);
    assert_eq!(set.for_source("erp", "public", "customers").count(), 0);
}

#[test]
fn flows_are_distinct_endpoint_pairs() {
    let set = Mappings::from_list(vec![
        simple("mappings/customers.toml", "customers", "customer", None),
        simple("mappings/orders.toml", "orders", "order", None),
    ])
    .unwrap();
    assert_eq!(set.flows(), vec![("crm".to_string(), "erp".to_string())]);
    let tables: Vec<&str> = set
        .source_tables("crm")
        .iter()
        .map(|t| t.table.as_str())
        .collect();
    assert_eq!(tables, vec!["customers", "orders"]);
    assert!(Mappings::default().flows().is_empty());
}

// ---- transform ---------------------------------------------------------------------------

/// Source columns in stream order, deliberately not the mapping's (sorted) order, plus one
/// column the mapping does not use.
fn schema() -> Arc<TableSchema> {
    let col = |name: &str, key| ColumnSchema {
        name: name.into(),
        type_name: "text".into(),
        key,
    };
    Arc::new(TableSchema {
        namespace: "public".into(),
        name: "customers".into(),
        columns: vec![
            col("id", true),
            col("name", false),
            col("email", false),
            col("notes", false),
        ],
    })
}

fn bound() -> BoundMapping {
    BoundMapping::bind(Arc::new(parse(VALID).unwrap()), schema()).unwrap()
}

fn t(s: &str) -> Option<Value> {
    Some(Value::Text(s.into()))
}

fn int(i: i64) -> Option<Value> {
    Some(Value::Int(i))
}

fn change(op: Op, before: Option<RowImage>, after: Option<RowImage>) -> RowChange {
    RowChange {
        table: schema(),
        op,
        before,
        after,
        invalid: Vec::new(),
    }
}

fn apply(b: &BoundMapping, c: &RowChange) -> Result<Vec<TargetOp>> {
    let mut out = Vec::new();
    b.apply(c, &mut out)?;
    Ok(out)
}

fn upsert(b: &BoundMapping, row: Vec<Option<Value>>) -> TargetOp {
    TargetOp::Upsert {
        table: b.target.clone(),
        row,
    }
}

fn delete(b: &BoundMapping, key: Vec<Value>) -> TargetOp {
    TargetOp::Delete {
        table: b.target.clone(),
        key,
    }
}

#[test]
fn bind_orders_target_columns_as_the_mapping() {
    let b = bound();
    assert_eq!(
        *b.target,
        TargetTable {
            endpoint: "erp".into(),
            namespace: "erp".into(),
            name: "customer".into(),
            columns: vec!["mail".into(), "customer_id".into(), "full_name".into()],
            key: vec![1],
            update_only: false,
            insert_only: vec![],
        }
    );
    assert_eq!(b.target.to_string(), "erp.customer");
}

#[test]
fn bind_fails_naming_file_and_line_of_a_missing_column() {
    let mut s = (*schema()).clone();
    s.columns.retain(|c| c.name != "name");
    let err = BoundMapping::bind(Arc::new(parse(VALID).unwrap()), Arc::new(s)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mappings/customers.toml:13: column 'name' does not exist in source table \
         crm:public.customers"
    );
    assert_eq!(err.class(), ErrorClass::Config);
}

#[test]
fn insert_is_one_upsert_in_mapping_order() {
    let b = bound();
    let after = vec![int(1), t("Ana"), t("ana@example.com"), t("vip")];
    let ops = apply(&b, &change(Op::Insert, None, Some(after))).unwrap();
    assert_eq!(
        ops,
        vec![upsert(&b, vec![t("ana@example.com"), int(1), t("Ana")])]
    );
    assert_eq!(ops[0].key_values(), vec![Value::Int(1)]);
}

#[test]
fn update_keeps_unchanged_columns_unset() {
    let b = bound();
    let after = vec![int(1), None, t("new@example.com"), None];
    let ops = apply(&b, &change(Op::Update, None, Some(after))).unwrap();
    assert_eq!(
        ops,
        vec![upsert(&b, vec![t("new@example.com"), int(1), None])]
    );
}

#[test]
fn update_with_same_key_in_before_image_is_one_upsert() {
    let b = bound();
    let before = vec![int(1), t("Ana"), t("a@example.com"), None];
    let after = vec![int(1), t("Bea"), t("a@example.com"), None];
    let ops = apply(&b, &change(Op::Update, Some(before), Some(after))).unwrap();
    assert_eq!(
        ops,
        vec![upsert(&b, vec![t("a@example.com"), int(1), t("Bea")])]
    );
}

#[test]
fn update_that_changes_the_key_deletes_the_old_row_first() {
    let b = bound();
    let before = vec![int(1), None, None, None];
    let after = vec![int(2), t("Ana"), t("a@example.com"), None];
    let ops = apply(&b, &change(Op::Update, Some(before), Some(after))).unwrap();
    assert_eq!(
        ops,
        vec![
            delete(&b, vec![Value::Int(1)]),
            upsert(&b, vec![t("a@example.com"), int(2), t("Ana")]),
        ]
    );
}

#[test]
fn delete_with_key_only_before_image() {
    let b = bound();
    let before = vec![int(7), None, None, None];
    let ops = apply(&b, &change(Op::Delete, Some(before), None)).unwrap();
    assert_eq!(ops, vec![delete(&b, vec![Value::Int(7)])]);
    assert_eq!(ops[0].key_values(), vec![Value::Int(7)]);
}

#[test]
fn truncate_is_truncate() {
    let b = bound();
    let ops = apply(&b, &change(Op::Truncate, None, None)).unwrap();
    assert_eq!(
        ops,
        vec![TargetOp::Truncate {
            table: b.target.clone()
        }]
    );
    assert!(ops[0].key_values().is_empty());
}

#[track_caller]
fn assert_row_error(result: Result<Vec<TargetOp>>, needle: &str) {
    let err = result.expect_err("change without a usable key was mapped");
    assert!(matches!(err, Error::Row { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Row);
    let msg = err.to_string();
    assert!(msg.starts_with("table crm:public.customers"), "{msg}");
    assert!(msg.contains(needle), "{msg}");
}

#[test]
fn null_key_in_update_or_delete_is_a_row_error() {
    let b = bound();
    let null_key = vec![Some(Value::Null), t("Ana"), None, None];
    assert_row_error(
        apply(&b, &change(Op::Update, None, Some(null_key.clone()))),
        "key column 'id' is NULL or missing",
    );
    assert_row_error(
        apply(&b, &change(Op::Delete, Some(null_key), None)),
        "key column 'id' is NULL or missing",
    );
    let unsent_key = vec![None, None, None, None];
    assert_row_error(
        apply(&b, &change(Op::Delete, Some(unsent_key), None)),
        "key column 'id' is NULL or missing",
    );
}

#[test]
fn null_key_in_insert_is_a_row_error() {
    let b = bound();
    let after = vec![Some(Value::Null), t("Ana"), t("a@example.com"), None];
    assert_row_error(
        apply(&b, &change(Op::Insert, None, Some(after))),
        "key column 'id' is NULL or missing",
    );
}

#[test]
fn change_without_its_image_is_a_row_error() {
    let b = bound();
    assert_row_error(
        apply(&b, &change(Op::Insert, None, None)),
        "change carries no row image",
    );
    assert_row_error(
        apply(&b, &change(Op::Delete, None, None)),
        "change carries no row image",
    );
}

#[test]
fn direction_both_adds_the_reverse_mapping() {
    let text = r#"
direction = "both"
key = ["id"]
[source]
endpoint = "crm"
table = "customers"
[target]
endpoint = "erp"
table = "customer"
[columns]
id = "customer_id"
email = "mail"
"#;
    let m = parse(text).unwrap();
    assert!(m.both);
    let r = m.reversed().unwrap();
    assert_eq!(r.name, format!("{}.reverse", m.name));
    assert_eq!(
        (r.source.endpoint.as_str(), r.target.endpoint.as_str()),
        ("erp", "crm")
    );
    assert_eq!(r.key, vec!["customer_id".to_string()]);
    let pairs: Vec<(&str, &str)> = r
        .columns
        .iter()
        .map(|c| (c.source.as_str(), c.target.as_str()))
        .collect();
    assert_eq!(pairs, vec![("mail", "email"), ("customer_id", "id")]);
    let with_step = text.replace(
        "email = \"mail\"",
        "email = { to = \"mail\", transform = [\"lower\"] }",
    );
    let err = parse(&with_step)
        .unwrap()
        .reversed()
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs plain column renames only"), "{err}");
}
