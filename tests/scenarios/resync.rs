//! Online resync: a table's existing rows copied while the stream keeps changing them, across
//! a SIGKILL halfway.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::support::bridge::{tail, Bridge};

const MAPPING: &str = "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"big\"\n\
                       [target]\nendpoint = \"erp\"\ntable = \"big\"\n[columns]\nid = \"id\"\nv = \"v\"\nnote = \"note\"\n";

fn status(b: &Bridge) -> serde_json::Value {
    let out = b.cli(&["status", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn resync_progress(b: &Bridge) -> Option<(u64, bool)> {
    let s = status(b);
    let r = &s["flows"][0]["resync"][0];
    Some((r["rows"].as_u64()?, r["done"].as_bool()?))
}

/// Rows that existed before rowbridge started are copied online while 500 row updates per
/// second hit the same table; the daemon is killed halfway and the copy continues where it
/// stopped; at the end both sides are equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_resync_copies_a_changing_table_across_a_kill() {
    let n: u64 = std::env::var("ROWBRIDGE_RESYNC_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let crm = format!(
        "CREATE TABLE big (id integer PRIMARY KEY, v integer NOT NULL, note text);
         INSERT INTO big SELECT g, 0, 'row ' || g FROM generate_series(1, {n}) g;"
    );
    let erp = "CREATE TABLE big (id INT PRIMARY KEY, v INT NOT NULL, note TEXT);";
    let mut b = Bridge::new("resync_big", &crm, erp, &[("big", MAPPING)]).await;
    b.start_ready().await;

    // 500 row updates per second on random rows, copied or not yet.
    let client = b.pg.client(&b.crm).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let load = tokio::spawn(async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut updates = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let ids: Vec<String> = (0..50)
                .map(|_| rng.random_range(1..=n).to_string())
                .collect();
            let sql = format!(
                "UPDATE big SET v = v + 1, note = 'changed' WHERE id IN ({})",
                ids.join(",")
            );
            updates += client.execute(&sql, &[]).await.expect("update");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        updates
    });

    let out = b.cli(&["resync", "big", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = b.cli(&["resync", "big", "--yes"]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "a second resync of the same mapping is refused"
    );

    // Kill halfway.
    let deadline = Instant::now() + Duration::from_secs(600);
    let killed_at = loop {
        if let Some((rows, _)) = resync_progress(&b) {
            if rows >= n / 2 {
                break rows;
            }
        }
        assert!(
            Instant::now() < deadline,
            "resync stalled\n{}",
            tail(&b.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    b.kill9();
    b.start_ready().await;
    let (resumed, _) = resync_progress(&b).expect("the job survives the restart");
    assert!(
        resumed >= killed_at,
        "the copy continues where it stopped: {resumed} rows after the restart, {killed_at} before"
    );

    let started = Instant::now();
    loop {
        if let Some((rows, true)) = resync_progress(&b) {
            assert!(
                rows >= n,
                "{rows} of {n} rows copied\n{}",
                tail(&b.log(), 30)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resync did not finish\n{}",
            tail(&b.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("resync: second half in {:?}", started.elapsed());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let updates = load.await.unwrap();
    assert!(
        updates > 1_000,
        "the table changed during the copy: {updates} updates"
    );
    b.wait_equal(
        "SELECT count(*)::text, sum(v)::text, count(*) FILTER (WHERE note = 'changed')::text FROM big",
        "SELECT CAST(COUNT(*) AS CHAR), CAST(SUM(v) AS CHAR), CAST(SUM(note = 'changed') AS CHAR) FROM big",
        Duration::from_secs(120),
    )
    .await;
    b.wait_equal(
        "SELECT id::text, v::text, note FROM big WHERE v > 0 ORDER BY big.id",
        "SELECT id, v, note FROM big WHERE v > 0 ORDER BY id",
        Duration::from_secs(60),
    )
    .await;
    b.stop();
}
