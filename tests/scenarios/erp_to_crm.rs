//! ERP (MariaDB) -> CRM (PostgreSQL) end to end, against the real databases.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::support::bridge::{tail, Bridge};
use crate::support::{mariadb, wait_until};

const ERP_ITEMS: &str = "
CREATE TABLE items (
    id BIGINT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    price DECIMAL(18,9),
    counter INT NOT NULL DEFAULT 0,
    note LONGTEXT,
    updated DATETIME(6)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
CREATE TABLE scratch (id BIGINT AUTO_INCREMENT PRIMARY KEY, payload TEXT);";

const CRM_ITEMS: &str = "
CREATE TABLE items (
    id bigint PRIMARY KEY,
    name varchar(100) NOT NULL,
    price numeric(18,9),
    counter integer NOT NULL,
    note text,
    updated timestamp
);
CREATE TABLE short_items (id bigint PRIMARY KEY, name varchar(5), updated timestamp);";

const ITEMS_MAPPING: &str = r#"
key = ["id"]
[source]
endpoint = "erp"
table = "items"
[target]
endpoint = "crm"
table = "items"
[columns]
id = "id"
name = "name"
price = "price"
counter = "counter"
note = "note"
updated = "updated"
"#;

const ERP_SELECT: &str = "SELECT id, name, price, counter, note, \
    DATE_FORMAT(updated, '%Y-%m-%d %H:%i:%s.%f') FROM items ORDER BY id";
const CRM_SELECT: &str = "SELECT id::text, name, price::text, counter::text, note, \
    to_char(updated, 'YYYY-MM-DD HH24:MI:SS.US') FROM items ORDER BY items.id";

async fn items_bridge(prefix: &str) -> Bridge {
    Bridge::new(prefix, CRM_ITEMS, ERP_ITEMS, &[("items", ITEMS_MAPPING)]).await
}

async fn converge(b: &Bridge, timeout: Duration) {
    b.wait_equal(CRM_SELECT, ERP_SELECT, timeout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erp_changes_reach_crm_within_a_second() {
    let mut b = items_bridge("e2c_steady").await;
    b.start_ready().await;
    b.erp_exec("INSERT INTO items VALUES (1, 'warm', 1, 0, NULL, NOW(6))")
        .await;
    converge(&b, Duration::from_secs(30)).await;
    let steps = [
        "INSERT INTO items VALUES (2, 'Bolt M6', 0.125000000, 0, 'n', '2024-01-02 03:04:05.678901')",
        "UPDATE items SET name = 'Bolt M6 zinc', counter = counter + 1 WHERE id = 2",
        "DELETE FROM items WHERE id = 1",
        "INSERT INTO items VALUES (3, 'x', NULL, 0, NULL, NULL), (4, 'y', NULL, 0, NULL, NULL)",
        "TRUNCATE TABLE items",
        "INSERT INTO items VALUES (5, 'after truncate', 99999999.999999999, 7, NULL, NULL)",
    ];
    for sql in steps {
        let started = Instant::now();
        b.erp_exec(sql).await;
        converge(&b, Duration::from_secs(1)).await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{sql} took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        b.crm_rows("SELECT count(*) FROM items").await,
        vec![vec![Some("1".into())]]
    );
    assert_eq!(
        b.stop(),
        Some(0),
        "clean shutdown; log:\n{}",
        tail(&b.log(), 20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erp_big_transaction_and_many_small_ones_match() {
    let mut b = items_bridge("e2c_volume").await;
    // Small chunks and a small queue: the 10 000-row transaction crosses in chunks, with the
    // memory bound in force.
    b.write_config("chunk_rows = 1000\nqueue_rows = 3000");
    b.start_ready().await;
    b.erp_exec(
        "INSERT INTO items SELECT seq, CONCAT('name ', seq), seq * 1.000000001, 0, REPEAT('x', seq % 50), \
         TIMESTAMP('2024-01-01') + INTERVAL seq SECOND FROM seq_1_to_10000",
    )
    .await;
    converge(&b, Duration::from_secs(60)).await;
    let mut conn = mariadb().conn(&b.erp).await;
    for i in 10_001..=20_000 {
        conn.query_drop(format!(
            "INSERT INTO items VALUES ({i}, 'small {i}', {i}, 0, NULL, NOW(6))"
        ))
        .await
        .unwrap();
    }
    drop(conn);
    converge(&b, Duration::from_secs(120)).await;
    assert_eq!(
        b.crm_rows("SELECT count(*) FROM items").await,
        vec![vec![Some("20000".into())]]
    );
}

async fn erp_workload(erp: String, txns: usize, seed: u64, done: Arc<AtomicUsize>) {
    let mut conn = mariadb().conn(&erp).await;
    let mut rng = seed;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for t in 0..txns {
        let mut sql = String::from("START TRANSACTION;");
        for _ in 0..5 {
            let id = next() % 3000;
            match next() % 10 {
                0..=5 => sql.push_str(&format!(
                    "UPDATE items SET counter = counter + 1, price = price + 0.000000001, updated = NOW(6) WHERE id = {id};"
                )),
                6..=8 => sql.push_str(&format!(
                    "INSERT INTO items VALUES ({id}, 'w{t}', 1, 0, NULL, NOW(6)) ON DUPLICATE KEY UPDATE counter = counter + 1;"
                )),
                _ => sql.push_str(&format!("DELETE FROM items WHERE id = {id};")),
            }
        }
        sql.push_str("COMMIT;");
        conn.query_drop(sql).await.expect("workload transaction");
        done.store(t + 1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erp_sigkill_and_binlog_rotation_lose_and_duplicate_nothing() {
    let mut b = items_bridge("e2c_kill9").await;
    b.start_ready().await;
    b.erp_exec("INSERT INTO items SELECT seq, 'seed', 0, 0, NULL, NOW(6) FROM seq_0_to_2999")
        .await;
    converge(&b, Duration::from_secs(60)).await;
    const TXNS: usize = 10_000;
    let done = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn(erp_workload(
        b.erp.clone(),
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
        let d = done.clone();
        wait_until("workload progress", Duration::from_secs(120), || {
            let d = d.clone();
            async move { d.load(Ordering::Relaxed) >= at }
        })
        .await;
        // Rotate the binlog while the daemon is down and while it runs.
        mariadb().flush_binary_logs().await;
        b.kill9();
        mariadb().flush_binary_logs().await;
        b.start_ready().await;
    }
    load.await.expect("workload");
    converge(&b, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erp_replaying_an_applied_range_changes_nothing() {
    let mut b = items_bridge("e2c_replay").await;
    b.start_ready().await;
    b.erp_exec("INSERT INTO items SELECT seq, 'r', 1, 0, NULL, NULL FROM seq_1_to_500")
        .await;
    converge(&b, Duration::from_secs(30)).await;
    b.stop();
    let rewind_to = b.checkpoint_arg("erp->crm").expect("checkpoint");
    b.start_ready().await;
    b.erp_exec("UPDATE items SET counter = counter + 1, name = 'updated' WHERE id % 2 = 0")
        .await;
    b.erp_exec("DELETE FROM items WHERE id % 5 = 0").await;
    b.erp_exec("INSERT INTO items SELECT seq, 'new', 2, 0, NULL, NULL FROM seq_501_to_700")
        .await;
    converge(&b, Duration::from_secs(30)).await;
    b.stop();
    let before = b.crm_rows(CRM_SELECT).await;
    let out = b.cli(&["checkpoint", "set", "erp->crm", &rewind_to, "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.start_ready().await;
    wait_until(
        "the whole replayed range (250 updates, 100 deletes, 200 inserts) is applied again",
        Duration::from_secs(30),
        || async {
            b.metric("rowbridge_changes_applied_total")
                .await
                .unwrap_or(0.0)
                >= 550.0
        },
    )
    .await;
    b.stop();
    assert_eq!(
        b.crm_rows(CRM_SELECT).await,
        before,
        "replay changed the CRM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_go_to_dead_letters_and_the_rest_flows() {
    let short = r#"
key = ["id"]
[source]
endpoint = "erp"
table = "items"
[target]
endpoint = "crm"
table = "short_items"
[columns]
id = "id"
name = "name"
updated = "updated"
"#;
    let mut b = Bridge::new("e2c_dlq", CRM_ITEMS, ERP_ITEMS, &[("short", short)]).await;
    b.start_ready().await;
    b.erp_exec("INSERT INTO items (id, name) VALUES (1, 'ok'), (2, 'much too long'), (3, 'fine')")
        .await;
    b.erp_exec("SET SESSION sql_mode = ''; INSERT INTO items (id, name, updated) VALUES (4, 'zero', '0000-00-00 00:00:00')").await;
    b.erp_exec("INSERT INTO items (id, name) VALUES (5, 'after')")
        .await;
    let want: Vec<Vec<Option<String>>> = [("1", "ok"), ("3", "fine"), ("5", "after")]
        .iter()
        .map(|(i, n)| vec![Some(i.to_string()), Some(n.to_string())])
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while b
        .crm_rows("SELECT id::text, name FROM short_items ORDER BY id")
        .await
        != want
    {
        assert!(
            Instant::now() < deadline,
            "rows after the bad one did not flow\n{}",
            tail(&b.log(), 20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.stop();
    let out = b.cli(&["dlq", "list", "-o", "json"]);
    let dlq: serde_json::Value = serde_json::from_slice(&out.stdout).expect("dlq json");
    let mut dlq = dlq.as_array().unwrap().clone();
    dlq.sort_by_key(|d| d["key"].as_str().unwrap_or_default().to_string());
    assert_eq!(dlq.len(), 2, "{dlq:?}");
    assert_eq!(dlq[0]["key"], "2");
    assert_eq!(dlq[0]["table"], format!("erp:{}.items", b.erp));
    let reason = |i: usize| dlq[i]["reason"].as_str().unwrap().to_string();
    assert!(
        reason(0).contains("column 'name' character varying(5): 13 characters, the column keeps 5"),
        "{dlq:?}"
    );
    assert_eq!(dlq[1]["key"], "4");
    assert!(
        reason(1).contains("column 'updated'") && reason(1).contains("zero date"),
        "{dlq:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_right_after_a_restart_is_applied() {
    let mut b = items_bridge("e2c_trunc").await;
    b.start_ready().await;
    b.erp_exec("INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b')")
        .await;
    converge(&b, Duration::from_secs(30)).await;
    b.stop();
    // The first event of the new session is the TRUNCATE: no row of the table seen yet.
    b.erp_exec("TRUNCATE TABLE items").await;
    b.start_ready().await;
    converge(&b, Duration::from_secs(30)).await;
    assert_eq!(
        b.crm_rows("SELECT count(*) FROM items").await,
        vec![vec![Some("0".to_string())]]
    );
    b.stop();
}
