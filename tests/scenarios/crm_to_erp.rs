//! CRM (PostgreSQL) -> ERP (MariaDB) end to end, against the real databases.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::bridge::{tail, Bridge};
use crate::support::pg;

const CRM_ACCOUNTS: &str = "
CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    balance numeric(18,4),
    counter integer NOT NULL DEFAULT 0,
    note text,
    updated timestamptz
);
CREATE TABLE scratch (id bigserial PRIMARY KEY, payload text);";

const ERP_ACCOUNTS: &str = "
CREATE TABLE accounts (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    balance DECIMAL(18,4),
    counter INT NOT NULL,
    note LONGTEXT,
    updated DATETIME(6)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;";

const ACCOUNTS_MAPPING: &str = r#"
key = ["id"]
[source]
endpoint = "crm"
table = "accounts"
[target]
endpoint = "erp"
table = "accounts"
[columns]
id = "id"
name = "name"
balance = "balance"
counter = "counter"
note = "note"
updated = "updated"
"#;

const CRM_SELECT: &str = "SELECT id::text, name, balance::text, counter::text, note, \
    to_char(updated AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM accounts ORDER BY accounts.id";
const ERP_SELECT: &str = "SELECT id, name, balance, counter, note, \
    DATE_FORMAT(updated, '%Y-%m-%d %H:%i:%s.%f') FROM accounts ORDER BY id";

async fn accounts_bridge(prefix: &str) -> Bridge {
    Bridge::new(
        prefix,
        CRM_ACCOUNTS,
        ERP_ACCOUNTS,
        &[("accounts", ACCOUNTS_MAPPING)],
    )
    .await
}

async fn converge(b: &Bridge, timeout: Duration) {
    b.wait_equal(CRM_SELECT, ERP_SELECT, timeout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_erp_within_a_second() {
    let mut b = accounts_bridge("steady").await;
    b.start_ready().await;
    // Warm up: the first change also proves the slot and publication exist.
    b.crm_exec("INSERT INTO accounts VALUES (1, 'warm', 1, 0, NULL, now())")
        .await;
    converge(&b, Duration::from_secs(30)).await;

    let steps = [
        "INSERT INTO accounts VALUES (2, 'Acme', 10.5, 0, 'n', '2024-01-02 03:04:05.678901+00')",
        "UPDATE accounts SET name = 'Acme GmbH', counter = counter + 1 WHERE id = 2",
        "DELETE FROM accounts WHERE id = 1",
        "INSERT INTO accounts VALUES (3, 'x', NULL, 0, NULL, NULL), (4, 'y', NULL, 0, NULL, NULL)",
        "TRUNCATE accounts",
        "INSERT INTO accounts VALUES (5, 'after truncate', 0.0001, 7, NULL, NULL)",
    ];
    for sql in steps {
        let started = Instant::now();
        b.crm_exec(sql).await;
        converge(&b, Duration::from_secs(1)).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{sql} took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        b.erp_rows("SELECT count(*) FROM accounts").await,
        vec![vec![Some("1".into())]]
    );
    assert!(
        b.metric("rowbridge_changes_applied_total")
            .await
            .unwrap_or(0.0)
            >= 7.0
    );
    assert_eq!(
        b.stop(),
        Some(0),
        "clean shutdown; log:\n{}",
        tail(&b.log(), 20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_transaction_and_many_small_ones_match_row_for_row() {
    let mut b = accounts_bridge("volume").await;
    // Small chunks and a small queue: the 10 000-row transaction crosses in chunks, with the
    // memory bound in force.
    b.write_config("chunk_rows = 1000\nqueue_rows = 3000");
    b.start_ready().await;
    b.crm_exec(
        "INSERT INTO accounts SELECT g, 'name ' || g, g * 1.0001, 0, repeat('x', g % 50), \
         timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 10000) g",
    )
    .await;
    converge(&b, Duration::from_secs(60)).await;
    b.crm_exec(
        "DO $$ BEGIN FOR i IN 10001..20000 LOOP \
           INSERT INTO accounts VALUES (i, 'small ' || i, i, 0, NULL, now()); COMMIT; \
         END LOOP; END $$",
    )
    .await;
    converge(&b, Duration::from_secs(120)).await;
    assert_eq!(
        b.erp_rows("SELECT count(*) FROM accounts").await,
        vec![vec![Some("20000".into())]]
    );
}

/// A workload of inserts, counter increments and deletes in 5-statement transactions.
/// "Applied twice in effect" would show up as a counter or balance that differs.
async fn workload(crm: String, txns: usize, seed: u64, done: Arc<AtomicUsize>) {
    let client = pg().local_client(&crm).await;
    let mut rng = seed;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for t in 0..txns {
        let mut sql = String::from("BEGIN;");
        for _ in 0..5 {
            let id = (next() % 3000) as i64;
            match next() % 10 {
                0..=5 => sql.push_str(&format!(
                    "UPDATE accounts SET counter = counter + 1, balance = balance + 0.0001, \
                     updated = now() WHERE id = {id};"
                )),
                6..=8 => sql.push_str(&format!(
                    "INSERT INTO accounts VALUES ({id}, 'w{t}', 1, 0, NULL, now()) \
                     ON CONFLICT (id) DO UPDATE SET counter = accounts.counter + 1;"
                )),
                _ => sql.push_str(&format!("DELETE FROM accounts WHERE id = {id};")),
            }
        }
        sql.push_str("COMMIT;");
        client
            .batch_execute(&sql)
            .await
            .expect("workload transaction");
        done.store(t + 1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_workload_loses_and_duplicates_nothing() {
    let mut b = accounts_bridge("kill9").await;
    b.start_ready().await;
    b.crm_exec(
        "INSERT INTO accounts SELECT g, 'seed', 0, 0, NULL, now() FROM generate_series(0, 2999) g",
    )
    .await;
    converge(&b, Duration::from_secs(60)).await;
    // 10 000 transactions x 5 statements = 50 000 changes; SIGKILL at 5 random points of it.
    const TXNS: usize = 10_000;
    let done = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn(workload(
        b.crm.clone(),
        TXNS,
        0x9E37_79B9_7F4A_7C15,
        done.clone(),
    ));
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..5 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = round * TXNS / 5 + (rng as usize) % (TXNS / 5);
        let done2 = done.clone();
        crate::support::wait_until("workload progress", Duration::from_secs(120), || {
            let d = done2.clone();
            async move { d.load(Ordering::Relaxed) >= at }
        })
        .await;
        b.kill9();
        let stored = b.checkpoint_lsn();
        let confirmed = b.confirmed_flush_lsn().await;
        if let (Some(c), Some(s)) = (confirmed, stored) {
            assert!(
                c <= s,
                "round {round}: slot confirmed_flush_lsn {c:X} passed stored checkpoint {s:X}"
            );
        }
        assert!(stored.is_some(), "round {round}: no checkpoint stored");
        b.start_ready().await;
    }
    load.await.expect("workload");
    converge(&b, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_an_applied_range_changes_nothing() {
    let mut b = accounts_bridge("replay").await;
    b.start_ready().await;
    b.crm_exec(
        "INSERT INTO accounts SELECT g, 'r', 1, 0, NULL, now() FROM generate_series(1, 500) g",
    )
    .await;
    converge(&b, Duration::from_secs(30)).await;
    b.stop();
    let rewind_to = b.checkpoint_lsn().expect("checkpoint after first batch");
    // A copy of the slot keeps the WAL from here on, so the range can be streamed again.
    let copy = format!("{}_copy", b.slot);
    pg().exec(
        &b.crm,
        &format!(
            "SELECT pg_copy_logical_replication_slot('{}', '{copy}')",
            b.slot
        ),
    )
    .await;
    b.start_ready().await;
    b.crm_exec("UPDATE accounts SET counter = counter + 1, name = 'updated' WHERE id % 2 = 0")
        .await;
    b.crm_exec("DELETE FROM accounts WHERE id % 5 = 0").await;
    b.crm_exec(
        "INSERT INTO accounts SELECT g, 'new', 2, 0, NULL, now() FROM generate_series(501, 700) g",
    )
    .await;
    converge(&b, Duration::from_secs(30)).await;
    b.stop();
    let applied_to = b.checkpoint_lsn().unwrap();
    let before = b.erp_rows(ERP_SELECT).await;

    let out = b.cli(&[
        "checkpoint",
        "set",
        "crm->erp",
        &format!("{:X}/{:X}", rewind_to >> 32, rewind_to & 0xFFFF_FFFF),
        "--yes",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.checkpoint_lsn(), Some(rewind_to));
    b.slot = copy;
    b.write_config("");
    b.start_ready().await;
    let port_metric = || async {
        b.metric("rowbridge_changes_applied_total")
            .await
            .unwrap_or(0.0)
    };
    crate::support::wait_until(
        "the whole replayed range (250 updates, 100 deletes, 200 inserts) is applied again",
        Duration::from_secs(30),
        || async { port_metric().await >= 550.0 },
    )
    .await;
    // The first run's checkpoint also moved with the server's keepalives past the last change:
    // the replay's gets there once it has read as far (not necessarily with its last change).
    let running_lsn = || {
        let out = b.cli(&["status", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["flows"][0]["position_arg"]
            .as_str()
            .map(crate::support::parse_lsn)
            .unwrap_or(0)
    };
    crate::support::wait_until(
        "the replay's checkpoint reaches the first run's",
        Duration::from_secs(30),
        || async { running_lsn() >= applied_to },
    )
    .await;
    b.stop();
    assert!(b.checkpoint_lsn().unwrap() >= applied_to);
    assert_eq!(
        b.erp_rows(ERP_SELECT).await,
        before,
        "replay changed the ERP"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_mapped_tables_do_not_retain_wal() {
    let mut b = accounts_bridge("wal").await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO accounts VALUES (1, 'a', 1, 0, NULL, now())")
        .await;
    converge(&b, Duration::from_secs(30)).await;
    let start = b.confirmed_flush_lsn().await.unwrap();
    // 100 000 changes to a table no mapping reads, in 100 transactions.
    b.crm_exec(
        "DO $$ BEGIN FOR i IN 1..100 LOOP \
           INSERT INTO scratch (payload) SELECT 'p' FROM generate_series(1, 1000); COMMIT; \
         END LOOP; END $$",
    )
    .await;
    let end: String = pg()
        .query_scalar(&b.crm, "SELECT pg_current_wal_lsn()::text")
        .await;
    let end = crate::support::parse_lsn(&end);
    assert!(end > start);
    crate::support::wait_until(
        "confirmed_flush_lsn passes the unpublished changes",
        Duration::from_secs(60),
        || async { b.confirmed_flush_lsn().await.is_some_and(|c| c >= end) },
    )
    .await;
    b.stop();
    assert!(b.checkpoint_lsn().unwrap() >= end);
}
