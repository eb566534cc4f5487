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
