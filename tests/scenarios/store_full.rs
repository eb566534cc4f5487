//! The store's filesystem fills up: the flows stop cleanly, metrics, status, dead-letter lists and
//! SIGTERM keep answering, an alert metric says why, and when space returns the flows resume by
//! themselves with nothing lost.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::bridge::{http_get, tail, Bridge};
use crate::support::wait_until;

const CRM: &str = "CREATE TABLE parts (code text PRIMARY KEY, name text);";
// Names longer than 40 characters are refused by the ERP: dead letters, which the store keeps.
const ERP: &str = "CREATE TABLE parts (code VARCHAR(40) PRIMARY KEY, name VARCHAR(40));";
const PARTS: &str = "key = [\"code\"]\n[source]\nendpoint = \"crm\"\ntable = \"parts\"\n[target]\n\
                     endpoint = \"erp\"\ntable = \"parts\"\n[columns]\ncode = \"code\"\nname = \"name\"\n";
const PARTS_SQL: &str = "SELECT code, name FROM parts ORDER BY code";

/// A small tmpfs, unmounted when dropped.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(dir: &Path) -> Option<SmallFs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallFs(dir.to_path_buf()))
    }

    /// Write a file until the filesystem is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn answers_quickly(b: &Bridge) {
    let started = Instant::now();
    let metrics = tokio::time::timeout(Duration::from_secs(5), http_get(b.http_port, "/metrics"))
        .await
        .expect("/metrics answers while the store is full");
    assert!(metrics.is_some_and(|(code, _)| code == 200));
    for args in [
        &["status", "-o", "json"][..],
        &["dlq", "list", "-o", "json"][..],
    ] {
        let out = b.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "ops commands answer promptly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "open (issue 15 item 5): after its flusher hits ENOSPC, sled can spin inside a write \
            instead of returning the error, wedging the flow; run with --ignored to reproduce"]
async fn a_full_store_disk_stops_flows_cleanly_and_they_resume() {
    let mut b = Bridge::new("store_full", CRM, ERP, &[("parts", PARTS)]).await;
    let Some(fs) = SmallFs::mount(&b.dir.join("smallfs")) else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root and mount rights)");
        return;
    };
    let config = std::fs::read_to_string(&b.config)
        .unwrap()
        .replace("path = \"store\"", "path = \"smallfs/store\"");
    std::fs::write(&b.config, config).unwrap();
    b.start_ready().await;
    b.crm_exec("INSERT INTO parts VALUES ('p1', 'before')")
        .await;
    b.wait_equal(PARTS_SQL, PARTS_SQL, Duration::from_secs(30))
        .await;

    let filler = fs.fill();
    b.crm_exec(
        "INSERT INTO parts SELECT 'f' || g, repeat('x', 2000) FROM generate_series(1, 3000) g",
    )
    .await;
    b.crm_exec("INSERT INTO parts VALUES ('p2', 'after the refused ones')")
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.metric("rowbridge_store_writable").await != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "the store did not report full: metric {:?}, ERP rows {}\n{}",
            b.metric("rowbridge_store_writable").await,
            b.erp_rows(PARTS_SQL).await.len(),
            tail(&b.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    answers_quickly(&b).await;
    let status: serde_json::Value =
        serde_json::from_slice(&b.cli(&["status", "-o", "json"]).stdout).unwrap();
    assert!(
        status.to_string().contains("No space left") || status.to_string().contains("no space"),
        "{status}"
    );

    // Space returns: the flow resumes by itself and nothing is lost.
    std::fs::remove_file(&filler).unwrap();
    wait_until(
        "the store writable again",
        Duration::from_secs(30),
        || async { b.metric("rowbridge_store_writable").await == Some(1.0) },
    )
    .await;
    wait_until(
        "every refused row in the queue",
        Duration::from_secs(90),
        || async { dead_letter_keys(&b) == 3000 },
    )
    .await;
    assert_eq!(
        b.erp_rows("SELECT name FROM parts WHERE code = 'p2'")
            .await
            .len(),
        1
    );

    // Full again, then SIGTERM: a clean exit; after a restart with space, nothing is lost.
    let filler = fs.fill();
    b.crm_exec(
        "INSERT INTO parts SELECT 'g' || g, repeat('y', 2000) FROM generate_series(1, 3000) g",
    )
    .await;
    b.crm_exec("INSERT INTO parts VALUES ('p3', 'after a restart')")
        .await;
    wait_until(
        "the store reported full again",
        Duration::from_secs(60),
        || async { b.metric("rowbridge_store_writable").await == Some(0.0) },
    )
    .await;
    let stopped = Instant::now();
    let code = b.stop();
    assert!(
        stopped.elapsed() < Duration::from_secs(30),
        "SIGTERM is answered while the store is full\n{}",
        tail(&b.log(), 30)
    );
    assert_eq!(code, Some(0), "{}", tail(&b.log(), 30));
    std::fs::remove_file(&filler).unwrap();
    b.start_ready().await;
    wait_until(
        "every refused row in the queue",
        Duration::from_secs(90),
        || async { dead_letter_keys(&b) == 6000 },
    )
    .await;
    assert_eq!(
        b.erp_rows("SELECT name FROM parts WHERE code = 'p3'")
            .await
            .len(),
        1
    );
    assert_eq!(b.erp_rows(PARTS_SQL).await.len(), 3);
    b.stop();
    drop(fs);
}

/// Distinct keys in the dead-letter queue (a batch replayed after the store failed may have
/// recorded some twice).
fn dead_letter_keys(b: &Bridge) -> usize {
    let out = b.cli(&["dlq", "list", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: std::collections::HashSet<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap_or_default().to_string())
        .collect();
    keys.len()
}
