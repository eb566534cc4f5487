//! Proves the test harness works: private servers configured as rowbridge needs them.

mod support;

use std::time::Duration;
use support::{mariadb, pg, wait_until};

#[tokio::test]
async fn postgres_is_configured_for_logical_replication() {
    let server = pg();
    assert_eq!(server.show("wal_level").await, "logical");
    assert_eq!(server.show("server_encoding").await, "UTF8");
    let port: String = server.show("port").await;
    assert_eq!(port, server.port.to_string());

    // A password login over TCP works (the product's path) and a logical slot can be made.
    let db = server.create_database("selftest").await;
    let client = server.client(&db).await;
    let slot = support::unique_name("slot");
    client
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .expect("create logical slot");
    let lsn = server.slot_confirmed_flush_lsn(&slot).await;
    assert!(
        lsn.is_some_and(|l| l > 0),
        "slot has a confirmed_flush_lsn: {lsn:?}"
    );
    assert_eq!(server.slot_active(&slot).await, Some(false));
    assert!(server.current_wal_lsn().await >= lsn.unwrap());
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .expect("drop slot");
    assert_eq!(server.slot_confirmed_flush_lsn(&slot).await, None);
    assert_eq!(support::parse_lsn("16/B374D848"), 0x16_B374_D848);
}

#[tokio::test]
async fn mariadb_has_row_binlog_with_full_metadata() {
    let server = mariadb();
    assert_eq!(server.variable("log_bin").await, "ON");
    assert_eq!(server.variable("binlog_format").await, "ROW");
    assert_eq!(server.variable("binlog_row_metadata").await, "FULL");
    assert_eq!(server.variable("binlog_row_image").await, "FULL");
    assert_eq!(server.variable("character_set_server").await, "utf8mb4");
    assert_eq!(server.variable("gtid_strict_mode").await, "ON");

    // Writes get a GTID, and flushing rotates the binlog.
    let db = server.create_database("selftest").await;
    server
        .exec(
            &db,
            "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)",
        )
        .await;
    let gtid = server.gtid_binlog_pos().await;
    assert!(gtid.starts_with("0-1-"), "GTID binlog position: {gtid:?}");
    let before = server.binlog_files().await;
    server.flush_binary_logs().await;
    let after = server.binlog_files().await;
    assert_eq!(after.len(), before.len() + 1, "{before:?} -> {after:?}");
    let n: Option<i64> = server.query_first(&db, "SELECT COUNT(*) FROM t").await;
    assert_eq!(n, Some(1));
}

#[tokio::test]
async fn create_database_gives_distinct_databases() {
    let (a, b) = (
        pg().create_database("dup").await,
        pg().create_database("dup").await,
    );
    assert_ne!(a, b);
    let (c, d) = (
        mariadb().create_database("dup").await,
        mariadb().create_database("dup").await,
    );
    assert_ne!(c, d);
    // Both exist and are separate: a table in one is not visible in the other.
    pg().exec(&a, "CREATE TABLE only_here (x int)").await;
    let n: i64 = pg()
        .query_scalar(
            &b,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'",
        )
        .await;
    assert_eq!(n, 0);
    mariadb().exec(&c, "CREATE TABLE only_here (x INT)").await;
    let tables: Vec<String> = mariadb().query(&d, "SHOW TABLES").await;
    assert!(tables.is_empty(), "{tables:?}");
    // wait_until returns once the condition holds.
    let db = a.clone();
    wait_until("table visible", Duration::from_secs(5), || {
        let db = db.clone();
        async move {
            pg().query_scalar::<i64>(&db, "SELECT count(*) FROM only_here")
                .await
                == 0
        }
    })
    .await;
}
