//! Stopping and restarting the private servers (own binary: restarts would disturb the
//! tests of any other binary sharing the servers).

mod support;

use support::{mariadb, pg};

#[tokio::test]
async fn servers_restart_on_the_same_port_keeping_data() {
    let db = pg().create_database("restart").await;
    pg().exec(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .await;
    let mdb = mariadb().create_database("restart").await;
    mariadb()
        .exec(&mdb, "CREATE TABLE t (x INT); INSERT INTO t VALUES (1)")
        .await;
    let (pg_port, maria_port) = (pg().port, mariadb().port);
    let gtid_before = mariadb().gtid_binlog_pos().await;

    pg().restart();
    mariadb().restart();
    assert!(pg().is_running() && mariadb().is_running());
    assert_eq!((pg().port, mariadb().port), (pg_port, maria_port));
    pg().exec(&db, "INSERT INTO t VALUES (2)").await;
    mariadb().exec(&mdb, "INSERT INTO t VALUES (2)").await;

    pg().crash_restart();
    mariadb().crash_restart();
    let n: i64 = pg().query_scalar(&db, "SELECT count(*) FROM t").await;
    assert_eq!(n, 2);
    let m: Option<i64> = mariadb().query_first(&mdb, "SELECT COUNT(*) FROM t").await;
    assert_eq!(m, Some(2));
    // GTIDs survive restarts and keep counting up in domain 0, server 1.
    let gtid_after = mariadb().gtid_binlog_pos().await;
    let seq = |g: &str| g.rsplit('-').next().unwrap().parse::<u64>().unwrap();
    assert!(
        seq(&gtid_after) > seq(&gtid_before),
        "{gtid_before} -> {gtid_after}"
    );

    // A stopped server refuses connections; start brings it back.
    pg().stop();
    assert!(!pg().is_running());
    let refused = tokio_postgres::connect(&pg().conn_string(&db), tokio_postgres::NoTls).await;
    assert!(
        refused.is_err(),
        "PostgreSQL still accepts connections after stop"
    );
    pg().start();
    assert_eq!(pg().show("wal_level").await, "logical");
}
