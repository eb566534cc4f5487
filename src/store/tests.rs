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

#[test]
fn a_replayed_change_is_parked_once_and_can_be_retried() {
    let (_d, s) = open();
    let table = Arc::new(TableSchema {
        namespace: "public".into(),
        name: "lines".into(),
        columns: vec![],
    });
    let w = Waiting {
        id: 0,
        flow: "crm->erp".into(),
        mapping: "lines".into(),
        key: "7".into(),
        ref_mapping: "orders".into(),
        ref_key: "1".into(),
        endpoint: "crm".into(),
        position: Position::Lsn(10),
        commit_time_us: 0,
        at_us: 0,
        change: RowChange {
            table,
            op: Op::Insert,
            before: None,
            after: Some(vec![]),
            invalid: Vec::new(),
        },
    };
    let first = s.add_waiting(w.clone()).unwrap().expect("parked");
    assert_eq!(
        s.add_waiting(w.clone()).unwrap(),
        None,
        "a replay is not parked twice"
    );
    assert_eq!(s.waiting_count_for("crm->erp").unwrap(), 1);
    // Retrying: the entry is unindexed, parked again, then the old one removed.
    let old = s.waiting().unwrap().remove(0);
    s.unindex_waiting(&old).unwrap();
    let second = s.add_waiting(w.clone()).unwrap().expect("re-parked");
    s.remove_waiting(first).unwrap();
    assert_eq!(
        s.waiting()
            .unwrap()
            .iter()
            .map(|w| w.id)
            .collect::<Vec<_>>(),
        vec![second]
    );
    assert_eq!(
        s.add_waiting(w).unwrap(),
        None,
        "the re-parked copy keeps its index"
    );
    assert_eq!(s.waiting_count_for("other").unwrap(), 0);
}

#[test]
fn key_map_round_trips() {
    let (_d, s) = open();
    assert_eq!(s.key_map("company", "1").unwrap(), None);
    s.set_key_map("company", "1", &[Value::Text("C-1".into())])
        .unwrap();
    assert_eq!(
        s.key_map("company", "1").unwrap(),
        Some(vec![Value::Text("C-1".into())])
    );
    assert_eq!(
        s.key_map("company", "10").unwrap(),
        None,
        "keys are exact, not prefixes"
    );
    s.remove_key_map("company", "1").unwrap();
    assert_eq!(s.key_map("company", "1").unwrap(), None);
}

#[test]
fn a_resync_ends_failed_or_cancelled_and_a_new_job_forgets_it() {
    let (_d, s) = open();
    let job = ResyncJob {
        mapping: "m".into(),
        flow: "crm->erp".into(),
        filter: None,
        keys: None,
        last_key: None,
        rows: 5,
        total: Some(10),
        started_us: 1,
        updated_us: 1,
        done: false,
        actor: "t".into(),
    };
    s.start_resync(&job).unwrap();
    let end = ResyncEnd {
        state: "failed".into(),
        reason: "why".into(),
        at_us: 2,
    };
    s.end_resync(&job, &end).unwrap();
    let stored = &s.resync_jobs().unwrap()[0];
    assert!(stored.done && stored.rows == 5);
    assert_eq!(s.resync_end("m").unwrap(), Some(end));
    s.start_resync(&job).unwrap();
    assert_eq!(s.resync_end("m").unwrap(), None);
    assert!(!s.resync_jobs().unwrap()[0].done);
}
