//! The error policy against real failures: the network to each database cut for 30 s while
//! both sides keep changing. The flows retry with backoff, resume by themselves, and nothing
//! is lost.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::bridge::Bridge;
use crate::support::proxy::Proxy;

const CRM: &str = "CREATE TABLE items (id integer PRIMARY KEY, name text);
                   CREATE TABLE stock (sku text PRIMARY KEY, qty integer);";
const ERP: &str = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40));
                   CREATE TABLE stock (sku VARCHAR(40) PRIMARY KEY, qty INT);";
const ITEMS: &str = "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"items\"\n\
                     [target]\nendpoint = \"erp\"\ntable = \"items\"\n[columns]\nid = \"id\"\nname = \"name\"\n";
const STOCK: &str = "key = [\"sku\"]\n[source]\nendpoint = \"erp\"\ntable = \"stock\"\n\
                     [target]\nendpoint = \"crm\"\ntable = \"stock\"\n[columns]\nsku = \"sku\"\nqty = \"qty\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_cuts_to_each_database_lose_nothing() {
    let cut_secs: u64 = std::env::var("ROWBRIDGE_CUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut b = Bridge::new("net_cut", CRM, ERP, &[("items", ITEMS), ("stock", STOCK)]).await;
    let crm_proxy = Proxy::start(&b.pg.host, b.pg.port).await;
    let erp_proxy = Proxy::start(&b.my.host, b.my.port).await;
    b.crm_port = Some(crm_proxy.port);
    b.erp_port = Some(erp_proxy.port);
    b.write_config("");
    b.start_ready().await;

    // Both sides keep changing for the whole test, straight into the databases.
    let stop = Arc::new(AtomicBool::new(false));
    let n = Arc::new(AtomicU32::new(0));
    let (crm, erp) = (b.pg.client(&b.crm).await, b.my.conn(&b.erp).await);
    let writer = {
        let (stop, n) = (stop.clone(), n.clone());
        tokio::spawn(async move {
            use mysql_async::prelude::Queryable;
            let mut erp = erp;
            while !stop.load(Ordering::Relaxed) {
                let i = n.fetch_add(1, Ordering::Relaxed);
                crm.execute(&format!("INSERT INTO items VALUES ({i}, 'item {i}')"), &[])
                    .await
                    .expect("crm insert");
                erp.query_drop(format!(
                    "INSERT INTO stock VALUES ('sku-{}', {i}) ON DUPLICATE KEY UPDATE qty = {i}",
                    i % 50
                ))
                .await
                .expect("erp upsert");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    for proxy in [&crm_proxy, &erp_proxy] {
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(cut_secs)).await;
        proxy.restore();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let written = n.load(Ordering::Relaxed);
    assert!(written > 100, "the load ran: {written}");

    // Resumed by themselves: every change made during the cuts arrives.
    b.wait_equal(
        "SELECT id::text, name FROM items ORDER BY items.id",
        "SELECT id, name FROM items ORDER BY id",
        Duration::from_secs(120),
    )
    .await;
    b.wait_equal(
        "SELECT sku, qty::text FROM stock ORDER BY sku COLLATE \"C\"",
        "SELECT sku, qty FROM stock ORDER BY sku COLLATE utf8mb4_bin",
        Duration::from_secs(120),
    )
    .await;
    assert!(b.metric("rowbridge_retries_total").await.unwrap_or(0.0) >= 2.0);
    let status: serde_json::Value =
        serde_json::from_slice(&b.cli(&["status", "-o", "json"]).stdout).unwrap();
    for f in status["flows"].as_array().unwrap() {
        assert_eq!(f["state"], "streaming", "{status}");
        assert!(f["last_error"]["class"] == "transient", "{status}");
    }
    assert_eq!(b.stop(), Some(0));
}

async fn access_denied(b: &Bridge) -> u64 {
    let rows = b
        .erp_rows("SHOW GLOBAL STATUS LIKE 'Access_denied_errors'")
        .await;
    rows[0][1].as_deref().unwrap().parse().unwrap()
}

/// A wrong password stops the flow (metric and status say why) without hammering the server;
/// after the credential is fixed, a reload (SIGHUP) resumes it and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_stops_the_flow_until_reload() {
    let mut b = Bridge::new("net_auth", CRM, ERP, &[("items", ITEMS)]).await;
    let good = std::fs::read_to_string(b.dir.join("erp.password")).unwrap();
    std::fs::write(b.dir.join("erp.password"), "not-the-password\n").unwrap();
    let denied_before = access_denied(&b).await;
    b.start();
    // The daemon stays up and says which flow stopped and why. (Ask only once its admin
    // socket is there: a command that finds no daemon opens the store itself.)
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !b.dir.join("store.sock").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no admin socket\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let out = b.cli(&["status", "-o", "json"]);
        if out.status.success() {
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let f = &s["flows"][0];
            if s["daemon"] == "running" && f["state"] == "stopped" {
                assert_eq!(f["last_error"]["class"], "endpoint_fatal", "{s}");
                assert!(
                    f["last_error"]["message"].as_str().unwrap().contains("erp"),
                    "the error names the endpoint: {s}"
                );
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flow never stopped\n{}",
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(b.metric("rowbridge_flow_up").await, Some(0.0));
    b.crm_exec("INSERT INTO items SELECT g, 'while down ' || g FROM generate_series(1, 200) g")
        .await;
    // No retry storm: a few seconds later, still only the first attempts.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let attempts = access_denied(&b).await - denied_before;
    assert!(attempts <= 3, "{attempts} failed logins\n{}", b.log());
    for pw in ["not-the-password", b.erp_password.as_str()] {
        assert!(!b.log().contains(pw), "no password in the log");
    }

    std::fs::write(b.dir.join("erp.password"), good).unwrap();
    b.signal(libc::SIGHUP);
    b.wait_equal(
        "SELECT id::text, name FROM items ORDER BY items.id",
        "SELECT id, name FROM items ORDER BY id",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(b.metric("rowbridge_flow_up").await, Some(1.0));
    assert_eq!(b.stop(), Some(0));
}

/// Each database restarted (PostgreSQL cleanly, MariaDB by SIGKILL) while changes are in
/// flight both ways: the flows reconnect by themselves and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restarts_lose_nothing() {
    use crate::support::{MariaServer, PgServer};
    let pg: &'static PgServer = Box::leak(Box::new(PgServer::start_custom("pg_restart", &[])));
    let my: &'static MariaServer =
        Box::leak(Box::new(MariaServer::start_custom("mariadb_restart")));
    let mut b = Bridge::with_servers(
        pg,
        my,
        "db_restart",
        CRM,
        ERP,
        &[("items", ITEMS), ("stock", STOCK)],
    )
    .await;
    b.start_ready().await;
    let stock = |from: u32, to: u32| {
        format!(
            "INSERT INTO stock SELECT CONCAT('sku-', seq), seq FROM seq_{from}_to_{to} \
             ON DUPLICATE KEY UPDATE qty = VALUES(qty) + 1"
        )
    };

    // In flight when PostgreSQL (the CRM: source of one flow, target of the other) goes down.
    b.crm_exec("INSERT INTO items SELECT g, 'before pg' FROM generate_series(1, 2000) g")
        .await;
    b.erp_exec(&stock(1, 500)).await;
    pg.restart();
    b.crm_exec("INSERT INTO items SELECT g, 'after pg' FROM generate_series(2001, 3000) g")
        .await;
    b.erp_exec(&stock(400, 800)).await;

    // In flight when MariaDB (the ERP) is killed.
    b.crm_exec("UPDATE items SET name = 'before mariadb' WHERE id % 3 = 0")
        .await;
    b.erp_exec(&stock(700, 1000)).await;
    my.crash_restart();
    b.crm_exec("INSERT INTO items SELECT g, 'after mariadb' FROM generate_series(3001, 4000) g")
        .await;
    b.erp_exec(&stock(900, 1200)).await;

    b.wait_equal(
        "SELECT id::text, name FROM items ORDER BY items.id",
        "SELECT id, name FROM items ORDER BY id",
        Duration::from_secs(180),
    )
    .await;
    b.wait_equal(
        "SELECT sku, qty::text FROM stock ORDER BY sku COLLATE \"C\"",
        "SELECT sku, qty FROM stock ORDER BY sku COLLATE utf8mb4_bin",
        Duration::from_secs(180),
    )
    .await;
    assert!(b.metric("rowbridge_retries_total").await.unwrap_or(0.0) >= 2.0);
    assert_eq!(b.stop(), Some(0));
}
