use std::sync::Arc;

use super::*;
use crate::model::{ColumnSchema, Op, RowChange, TableSchema, Value};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

#[test]
fn checkpoint_moves_forward_only() {
    let (_d, s) = open();
    assert_eq!(s.checkpoint("crm->erp").unwrap(), None);
    s.advance_checkpoint("crm->erp", &Position::Lsn(100))
        .unwrap();
    s.advance_checkpoint("crm->erp", &Position::Lsn(100))
        .unwrap();
    s.advance_checkpoint("crm->erp", &Position::Lsn(200))
        .unwrap();
    let err = s
        .advance_checkpoint("crm->erp", &Position::Lsn(150))
        .unwrap_err();
    assert!(err.to_string().contains("backward"), "{err}");
    assert_eq!(s.checkpoint("crm->erp").unwrap(), Some(Position::Lsn(200)));
}

#[test]
fn reset_is_audited_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        s.advance_checkpoint("f", &Position::Lsn(500)).unwrap();
        s.reset_checkpoint("f", Some(&Position::Lsn(10)), "test")
            .unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.checkpoint("f").unwrap(), Some(Position::Lsn(10)));
    let log = s.audit_log().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].action, "checkpoint.reset");
    assert!(log[0].detail.contains("->"));
}

#[test]
fn second_open_reports_locked() {
    let (dir, _s) = open();
    match Store::open(dir.path()) {
        Err(Error::StoreLocked(_)) => {}
        other => panic!("expected StoreLocked, got {other:?}"),
    }
}

#[test]
fn dead_letters_round_trip() {
    let (_d, s) = open();
    let table = Arc::new(TableSchema {
        namespace: "public".into(),
        name: "companies".into(),
        columns: vec![ColumnSchema {
            name: "id".into(),
            type_name: "int4".into(),
            key: true,
        }],
    });
    let dl = DeadLetter {
        id: 0,
        flow: "crm->erp".into(),
        mapping: "company".into(),
        table: "crm:public.companies".into(),
        key: "7".into(),
        reason: "Data too long for column 'name'".into(),
        class: "row".into(),
        at_us: 1,
        position: Position::Lsn(42),
        change: RowChange {
            table,
            op: Op::Insert,
            before: None,
            after: Some(vec![Some(Value::Int(7))]),
            invalid: Vec::new(),
        },
    };
    let id = s.add_dead_letter(dl.clone()).unwrap();
    let back = s.dead_letter(id).unwrap().unwrap();
    assert_eq!(back.change, dl.change);
    assert_eq!(s.dead_letter_count(), 1);
    assert!(s.remove_dead_letter(id).unwrap());
    assert_eq!(s.dead_letters().unwrap().len(), 0);
}

#[test]
fn foreign_format_version_is_refused() {
    let err = decode::<Position>(&[99, 0, 0]).unwrap_err();
    assert!(err.to_string().contains("format 99"), "{err}");
}
