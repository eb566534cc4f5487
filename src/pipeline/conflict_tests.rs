//! `resolve` against hand-built pairs and conflicts: every policy, per field and for the whole
//! row, and the operator's choices. No store, no database.
//!
//! The pair is `crm:customers` (side a) <-> `erp:customer` (side b) with three fields: `id`
//! (the key, never differing), `name` and `email`. Commit times are microseconds around `T`.

use super::*;
use crate::mapping::{ConflictRules, PairField, TableRef};

const CRM: &str = "crm";
const ERP: &str = "erp";
const SEC: i64 = 1_000_000;
/// A whole second.
const T: i64 = 1_700_000_000 * SEC;
/// When every test conflict was found.
const DETECTED: i64 = T + 10 * SEC;

fn table(endpoint: &str, name: &str) -> TableRef {
    TableRef {
        endpoint: endpoint.into(),
        namespace: "public".into(),
        table: name.into(),
        line: 1,
    }
}

/// Every field under `policy`, no owners, no winner, fallback `last_writer_wins`, ties to crm.
fn pair(policy: Policy) -> Pair {
    let field = |a: &str, b: &str| PairField {
        a: a.into(),
        b: b.into(),
        policy,
        owner: None,
    };
    Pair {
        name: "customers".into(),
        a: table(CRM, "customers"),
        b: table(ERP, "customer"),
        fields: vec![
            field("id", "customer_id"),
            field("name", "full_name"),
            field("email", "mail"),
        ],
        key: vec![0],
        rules: ConflictRules {
            policy,
            winner: None,
            fallback: Policy::LastWriterWins,
            priority: vec![CRM.into(), ERP.into()],
        },
    }
}

fn row(name: &str, email: &str) -> Option<Vec<Value>> {
    Some(vec![
        Value::Int(7),
        Value::Text(name.into()),
        Value::Text(email.into()),
    ])
}

fn version(endpoint: &str, row: Option<Vec<Value>>, commit_us: i64) -> Version {
    Version {
        endpoint: endpoint.into(),
        row,
        commit_us: Some(commit_us),
        until: None,
    }
}

/// crm's version `a` committed at `a_at` against erp's `b` at `b_at`; `base` is the row both
/// sides last agreed on (`None`: no sync state).
fn conflict(
    a: Option<Vec<Value>>,
    a_at: i64,
    b: Option<Vec<Value>>,
    b_at: i64,
    base: Option<Vec<Value>>,
) -> Conflict {
    Conflict {
        id: 1,
        pair: "customers".into(),
        entity: "7".into(),
        base: base.map(|r| SyncState {
            fields: Some(hashes(&r)),
            at_us: T - SEC,
            barriers: vec![],
        }),
        a: version(CRM, a, a_at),
        b: version(ERP, b, b_at),
        detected_us: DETECTED,
        detected_by: "crm->erp".into(),
        state: ConflictState::Open,
    }
}

fn by_policy(p: &Pair, c: &Conflict) -> Option<Outcome> {
    resolve(p, c, &Choice::Policy, false).expect("the policy decides without error")
}

#[track_caller]
fn decided(p: &Pair, c: &Conflict) -> Outcome {
    by_policy(p, c).expect("decided, not parked")
}

fn outcome(row: Option<Vec<Value>>, resolution: &'static str, taken: &str) -> Outcome {
    Outcome {
        row,
        resolution,
        taken: taken.into(),
    }
}

fn take(endpoint: &str) -> Choice {
    Choice::Take(endpoint.into())
}

fn merged(prefer: Option<&str>) -> Choice {
    Choice::Merged {
        prefer: prefer.map(String::from),
    }
}

// ---- last_writer_wins --------------------------------------------------------------------

#[test]
fn lww_the_later_commit_wins_the_whole_row() {
    let p = pair(Policy::LastWriterWins);
    let c = conflict(row("Ann", "a@crm"), T, row("Annie", "a@erp"), T + 1, None);
    assert_eq!(
        decided(&p, &c),
        outcome(row("Annie", "a@erp"), "last_writer_wins", ERP)
    );
    let c = conflict(row("Ann", "a@crm"), T + 1, row("Annie", "a@erp"), T, None);
    assert_eq!(
        decided(&p, &c),
        outcome(row("Ann", "a@crm"), "last_writer_wins", CRM)
    );
}

#[test]
fn lww_a_tie_goes_to_the_endpoint_first_in_priority() {
    let mut p = pair(Policy::LastWriterWins);
    let c = conflict(row("Ann", "a@crm"), T, row("Annie", "a@erp"), T, None);
    assert_eq!(decided(&p, &c).row, row("Ann", "a@crm"));
    assert_eq!(decided(&p, &c).taken, CRM);
    p.rules.priority = vec![ERP.into(), CRM.into()];
    assert_eq!(decided(&p, &c).row, row("Annie", "a@erp"));
    assert_eq!(decided(&p, &c).taken, ERP);
}

#[test]
fn lww_coarse_commit_times_compare_whole_seconds() {
    let mut p = pair(Policy::LastWriterWins);
    p.rules.priority = vec![ERP.into(), CRM.into()];
    let taken = |c: &Conflict, coarse: bool| {
        resolve(&p, c, &Choice::Policy, coarse)
            .unwrap()
            .expect("decided")
            .taken
    };
    // crm 0.7 s into the second, erp 0.3 s: crm is later, but not by a whole second.
    let c = conflict(
        row("Ann", "a@crm"),
        T + 700_000,
        row("Annie", "a@erp"),
        T + 300_000,
        None,
    );
    assert_eq!(taken(&c, false), CRM);
    assert_eq!(taken(&c, true), ERP, "a tie at whole seconds: erp is first");
    // 0.2 s apart across a second boundary: the later second wins.
    let c = conflict(
        row("Ann", "a@crm"),
        T + SEC + 100_000,
        row("Annie", "a@erp"),
        T + 900_000,
        None,
    );
    assert_eq!(taken(&c, true), CRM);
}

#[test]
fn lww_a_version_without_commit_time_counts_as_written_when_detected() {
    let p = pair(Policy::LastWriterWins);
    let mut c = conflict(
        row("Ann", "a@crm"),
        0,
        row("Annie", "a@erp"),
        DETECTED - SEC,
        None,
    );
    c.a.commit_us = None;
    assert_eq!(decided(&p, &c).taken, CRM);
    c.b.commit_us = Some(DETECTED + SEC);
    assert_eq!(decided(&p, &c).taken, ERP);
}

// ---- source_wins -------------------------------------------------------------------------

#[test]
fn source_wins_each_column_to_its_owner_the_rest_to_the_winner() {
    let mut p = pair(Policy::SourceWins);
    p.rules.winner = Some(ERP.into());
    p.fields[1].owner = Some(CRM.into());
    // erp is later and the winner; crm owns the name.
    let c = conflict(row("Ann", "a@crm"), T, row("Annie", "a@erp"), T + SEC, None);
    assert_eq!(
        decided(&p, &c),
        outcome(row("Ann", "a@erp"), "source_wins", "merged")
    );
}

#[test]
fn source_wins_ignores_commit_times() {
    let mut p = pair(Policy::SourceWins);
    p.rules.winner = Some(ERP.into());
    // crm is later; only the unowned email differs, so the whole row is erp's.
    let c = conflict(row("Ann", "a@crm"), T + SEC, row("Ann", "a@erp"), T, None);
    assert_eq!(
        decided(&p, &c),
        outcome(row("Ann", "a@erp"), "source_wins", ERP)
    );
}

// ---- merge -------------------------------------------------------------------------------

#[test]
fn merge_keeps_a_change_from_each_side() {
    let p = pair(Policy::Merge);
    let c = conflict(
        row("Anna", "ann@old"),
        T + SEC,
        row("Ann", "ann@new"),
        T,
        row("Ann", "ann@old"),
    );
    assert_eq!(
        decided(&p, &c),
        outcome(row("Anna", "ann@new"), "merge", "merged")
    );
}

#[test]
fn merge_overlap_falls_back_to_last_writer_wins() {
    let p = pair(Policy::Merge);
    let base = row("Ann", "ann@old");
    // Both changed the name, erp alone the email; erp is later.
    let c = conflict(
        row("Anna", "ann@old"),
        T,
        row("Annie", "ann@new"),
        T + SEC,
        base.clone(),
    );
    assert_eq!(
        decided(&p, &c),
        outcome(row("Annie", "ann@new"), "merge", ERP)
    );
    // crm later: its name, erp's email.
    let c = conflict(
        row("Anna", "ann@old"),
        T + 2 * SEC,
        row("Annie", "ann@new"),
        T + SEC,
        base,
    );
    assert_eq!(
        decided(&p, &c),
        outcome(row("Anna", "ann@new"), "merge", "merged")
    );
}

#[test]
fn merge_overlap_falls_back_to_source_wins_owner_then_winner() {
    let mut p = pair(Policy::Merge);
    p.rules.fallback = Policy::SourceWins;
    p.rules.winner = Some(CRM.into());
    p.fields[2].owner = Some(ERP.into());
    // Both changed both fields; erp is later, which must not matter.
    let c = conflict(
        row("Anna", "a@crm"),
        T,
        row("Annie", "a@erp"),
        T + SEC,
        row("Ann", "ann@old"),
    );
    assert_eq!(
        decided(&p, &c),
        outcome(row("Anna", "a@erp"), "merge", "merged")
    );
}

#[test]
fn merge_overlap_with_manual_fallback_parks_the_conflict() {
    let mut p = pair(Policy::Merge);
    p.rules.fallback = Policy::Manual;
    let base = row("Ann", "ann@old");
    let c = conflict(
        row("Anna", "ann@old"),
        T,
        row("Annie", "ann@new"),
        T + SEC,
        base.clone(),
    );
    assert_eq!(by_policy(&p, &c), None);
    // Without the overlap nothing waits for an operator.
    let c = conflict(
        row("Anna", "ann@old"),
        T,
        row("Ann", "ann@new"),
        T + SEC,
        base,
    );
    assert_eq!(
        by_policy(&p, &c).and_then(|o| o.row),
        row("Anna", "ann@new")
    );
}

#[test]
fn merge_without_a_sync_state_counts_every_difference_as_both_changed() {
    let mut p = pair(Policy::Merge);
    p.rules.fallback = Policy::Manual;
    let c = conflict(
        row("Anna", "ann@old"),
        T,
        row("Ann", "ann@new"),
        T + SEC,
        None,
    );
    assert_eq!(by_policy(&p, &c), None);
    p.rules.fallback = Policy::LastWriterWins;
    assert_eq!(
        decided(&p, &c),
        outcome(row("Ann", "ann@new"), "merge", ERP)
    );
}

#[test]
fn a_field_both_sides_changed_to_the_same_value_is_no_conflict() {
    let mut p = pair(Policy::Merge);
    p.rules.fallback = Policy::Manual;
    let c = conflict(
        row("Anna", "ann@new"),
        T,
        row("Ann", "ann@new"),
        T + SEC,
        row("Ann", "ann@old"),
    );
    // Only crm's name differs: nothing of erp's is taken.
    assert_eq!(
        decided(&p, &c),
        outcome(row("Anna", "ann@new"), "merge", CRM)
    );
    // Same under manual: the one differing field parks, an equal one never does.
    let p = pair(Policy::Manual);
    assert_eq!(by_policy(&p, &c), None);
    let c = conflict(
        row("Ann", "ann@new"),
        T,
        row("Ann", "ann@new"),
        T + SEC,
        row("Ann", "ann@old"),
    );
    assert_eq!(by_policy(&p, &c).and_then(|o| o.row), row("Ann", "ann@new"));
}

// ---- a column's own policy ---------------------------------------------------------------

#[test]
fn a_column_policy_overrides_the_mappings() {
    let mut p = pair(Policy::LastWriterWins);
    p.fields[2].policy = Policy::SourceWins;
    p.fields[2].owner = Some(CRM.into());
    let c = conflict(row("Ann", "a@crm"), T, row("Annie", "a@erp"), T + SEC, None);
    assert_eq!(
        decided(&p, &c),
        outcome(row("Annie", "a@crm"), "last_writer_wins", "merged")
    );
}

#[test]
fn a_merge_column_keeps_a_one_sided_change_against_the_later_side() {
    let mut p = pair(Policy::LastWriterWins);
    p.fields[1].policy = Policy::Merge;
    // Only crm changed the name; erp is later and changed the email.
    let c = conflict(
        row("Anna", "ann@old"),
        T,
        row("Ann", "ann@new"),
        T + SEC,
        row("Ann", "ann@old"),
    );
    assert_eq!(
        decided(&p, &c),
        outcome(row("Anna", "ann@new"), "last_writer_wins", "merged")
    );
}

#[test]
fn a_manual_column_parks_only_when_it_differs() {
    let mut p = pair(Policy::LastWriterWins);
    p.fields[2].policy = Policy::Manual;
    let c = conflict(row("Ann", "a@crm"), T, row("Annie", "a@erp"), T + SEC, None);
    assert_eq!(by_policy(&p, &c), None);
    let c = conflict(row("Ann", "a@x"), T, row("Annie", "a@x"), T + SEC, None);
    assert_eq!(
        decided(&p, &c),
        outcome(row("Annie", "a@x"), "last_writer_wins", ERP)
    );
}

// ---- a delete against an update ----------------------------------------------------------

#[test]
fn lww_delete_against_update_goes_to_the_later() {
    let p = pair(Policy::LastWriterWins);
    let c = conflict(None, T + SEC, row("Annie", "a@erp"), T, None);
    assert_eq!(decided(&p, &c), outcome(None, "last_writer_wins", CRM));
    let c = conflict(None, T, row("Annie", "a@erp"), T + SEC, None);
    assert_eq!(
        decided(&p, &c),
        outcome(row("Annie", "a@erp"), "last_writer_wins", ERP)
    );
}

#[test]
fn source_wins_delete_against_update_goes_to_the_winner_whatever_the_owners() {
    let mut p = pair(Policy::SourceWins);
    p.fields[1].owner = Some(CRM.into());
    p.fields[2].owner = Some(CRM.into());
    p.rules.winner = Some(ERP.into());
    let c = conflict(row("Ann", "a@crm"), T + SEC, None, T, None);
    assert_eq!(decided(&p, &c), outcome(None, "source_wins", ERP));
    p.rules.winner = Some(CRM.into());
    assert_eq!(
        decided(&p, &c),
        outcome(row("Ann", "a@crm"), "source_wins", CRM)
    );
}

#[test]
fn manual_delete_against_update_parks() {
    let p = pair(Policy::Manual);
    let c = conflict(None, T + SEC, row("Annie", "a@erp"), T, None);
    assert_eq!(by_policy(&p, &c), None);
    let c = conflict(row("Ann", "a@crm"), T + SEC, None, T, None);
    assert_eq!(by_policy(&p, &c), None);
}

#[test]
fn merge_delete_against_update_uses_the_fallback() {
    let mut p = pair(Policy::Merge);
    let base = row("Ann", "ann@old");
    let c = conflict(None, T + SEC, row("Annie", "ann@old"), T, base);
    assert_eq!(decided(&p, &c), outcome(None, "merge", CRM));
    p.rules.fallback = Policy::SourceWins;
    p.rules.winner = Some(ERP.into());
    assert_eq!(
        decided(&p, &c),
        outcome(row("Annie", "ann@old"), "merge", ERP)
    );
    p.rules.fallback = Policy::Manual;
    assert_eq!(by_policy(&p, &c), None);
}

#[test]
fn both_deleted_ends_deleted_under_every_policy() {
    for policy in [
        Policy::LastWriterWins,
        Policy::SourceWins,
        Policy::Merge,
        Policy::Manual,
    ] {
        let mut p = pair(policy);
        p.rules.winner = Some(ERP.into());
        p.rules.fallback = Policy::Manual;
        let c = conflict(None, T, None, T + SEC, row("Ann", "ann@old"));
        let o = by_policy(&p, &c).unwrap_or_else(|| panic!("{policy:?}: parked"));
        assert_eq!(o.row, None, "{policy:?}");
        assert_eq!(o.resolution, policy.as_str());
    }
}

// ---- an operator's choice ----------------------------------------------------------------

#[test]
fn taking_a_side_returns_its_version_as_manual() {
    // Policy would take erp (later), or park (manual): the operator's side wins either way.
    for policy in [Policy::LastWriterWins, Policy::Manual] {
        let p = pair(policy);
        let c = conflict(row("Ann", "a@crm"), T, row("Annie", "a@erp"), T + SEC, None);
        let o = resolve(&p, &c, &take(CRM), false).unwrap();
        assert_eq!(o, Some(outcome(row("Ann", "a@crm"), "manual", CRM)));
    }
    let p = pair(Policy::LastWriterWins);
    let c = conflict(row("Ann", "a@crm"), T + SEC, None, T, None);
    let o = resolve(&p, &c, &take(ERP), false).unwrap();
    assert_eq!(o, Some(outcome(None, "manual", ERP)));
}

#[test]
fn taking_an_unknown_endpoint_is_an_error() {
    let p = pair(Policy::Manual);
    let c = conflict(row("Ann", "a@crm"), T, row("Annie", "a@erp"), T + SEC, None);
    let err = resolve(&p, &c, &take("sales"), false).unwrap_err();
    assert!(err.contains("'sales'"), "{err}");
    assert!(err.contains("crm") && err.contains("erp"), "{err}");
}

#[test]
fn merged_without_prefer_lists_the_fields_both_sides_changed() {
    let p = pair(Policy::LastWriterWins);
    let base = row("Ann", "ann@old");
    let c = conflict(
        row("Anna", "a@crm"),
        T,
        row("Annie", "a@erp"),
        T + SEC,
        base.clone(),
    );
    let err = resolve(&p, &c, &merged(None), false).unwrap_err();
    assert!(err.contains("both sides changed name, email:"), "{err}");
    assert!(err.contains("--prefer crm|erp"), "{err}");
    // Only the field changed on both sides is listed.
    let c = conflict(
        row("Anna", "ann@old"),
        T,
        row("Annie", "a@erp"),
        T + SEC,
        base.clone(),
    );
    let err = resolve(&p, &c, &merged(None), false).unwrap_err();
    assert!(err.contains("both sides changed name:"), "{err}");
    // No overlap: no prefer needed.
    let c = conflict(
        row("Anna", "ann@old"),
        T,
        row("Ann", "a@erp"),
        T + SEC,
        base,
    );
    assert_eq!(
        resolve(&p, &c, &merged(None), false).unwrap(),
        Some(outcome(row("Anna", "a@erp"), "manual", "merged"))
    );
}

#[test]
fn merged_with_prefer_takes_that_side_for_overlaps_whatever_the_policies() {
    // Every field manual: the policy would park; an operator's merge does not.
    let p = pair(Policy::Manual);
    // Both changed the name, crm alone the email.
    let c = conflict(
        row("Anna", "a@crm"),
        T + SEC,
        row("Annie", "ann@old"),
        T,
        row("Ann", "ann@old"),
    );
    assert_eq!(by_policy(&p, &c), None);
    assert_eq!(
        resolve(&p, &c, &merged(Some(ERP)), false).unwrap(),
        Some(outcome(row("Annie", "a@crm"), "manual", "merged"))
    );
    assert_eq!(
        resolve(&p, &c, &merged(Some(CRM)), false).unwrap(),
        Some(outcome(row("Anna", "a@crm"), "manual", CRM))
    );
    let err = resolve(&p, &c, &merged(Some("sales")), false).unwrap_err();
    assert!(err.contains("'sales'"), "{err}");
}

#[test]
fn merged_delete_against_update_needs_prefer() {
    let p = pair(Policy::Merge);
    let c = conflict(
        None,
        T + SEC,
        row("Annie", "a@erp"),
        T,
        row("Ann", "ann@old"),
    );
    let err = resolve(&p, &c, &merged(None), false).unwrap_err();
    assert!(err.contains("one side deleted the row"), "{err}");
    assert_eq!(
        resolve(&p, &c, &merged(Some(ERP)), false).unwrap(),
        Some(outcome(row("Annie", "a@erp"), "manual", ERP))
    );
    assert_eq!(
        resolve(&p, &c, &merged(Some(CRM)), false).unwrap(),
        Some(outcome(None, "manual", CRM))
    );
}
