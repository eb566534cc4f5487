//! Operator commands against a running daemon (over the admin socket) and a stopped one (the
//! store directly): status, dead letters (list, show, replay, drop), checkpoints, audit log.

use std::time::{Duration, Instant};

use crate::support::bridge::{tail, Bridge};

const CRM: &str = "CREATE TABLE items (id integer PRIMARY KEY, name text);";
const ERP: &str = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(10));";
const MAPPING: &str = "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"items\"\n\
                       [target]\nendpoint = \"erp\"\ntable = \"items\"\n[columns]\nid = \"id\"\nname = \"name\"\n";

fn json(b: &Bridge, args: &[&str]) -> serde_json::Value {
    let out = b.cli(args);
    assert!(
        out.status.success(),
        "rowbridge {args:?}: exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "rowbridge {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

async fn erp_count(b: &Bridge) -> i64 {
    let rows = b.erp_rows("SELECT COUNT(*) FROM items").await;
    rows[0][0].as_deref().unwrap().parse().unwrap()
}

async fn wait_erp_count(b: &Bridge, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while erp_count(b).await != n {
        assert!(
            Instant::now() < deadline,
            "ERP never reached {n} rows\n{}",
            tail(&b.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A batch with 3 bad rows among 1 000: 997 applied, 3 dead letters with reasons; after the
/// target is fixed, replaying them applies them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_wait_in_the_dead_letter_queue_and_replay_after_the_fix() {
    let mut b = Bridge::new("ops_dlq", CRM, ERP, &[("items", MAPPING)]).await;
    b.start_ready().await;
    b.crm_exec(
        "INSERT INTO items SELECT g, CASE WHEN g IN (10, 500, 990) THEN 'much too long a name' ELSE 'n' || g END \
         FROM generate_series(1, 1000) g",
    )
    .await;
    wait_erp_count(&b, 997).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let letters = loop {
        let l = json(&b, &["dlq", "list", "-o", "json"]);
        if l.as_array().map(Vec::len) == Some(3) {
            break l;
        }
        assert!(Instant::now() < deadline, "3 dead letters expected: {l}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut keys: Vec<String> = letters
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, ["10", "500", "990"], "{letters}");
    for d in letters.as_array().unwrap() {
        assert_eq!(d["class"], "row");
        assert!(
            d["reason"].as_str().unwrap().contains("name"),
            "the reason names the column: {d}"
        );
        assert!(
            !d["reason"].as_str().unwrap().contains("much too long"),
            "the reason does not quote the value: {d}"
        );
    }
    let first = letters[0]["id"].as_u64().unwrap().to_string();
    let shown = json(&b, &["dlq", "show", &first, "-o", "json"]);
    assert_eq!(shown["after"]["name"], "much too long a name");
    assert_eq!(shown["op"], "insert");

    // Replaying before the fix fails again, with the reason, and the letter stays.
    let again = json(&b, &["dlq", "replay", &first, "--yes", "-o", "json"]);
    assert_eq!(again[0]["outcome"], "failed", "{again}");
    assert_eq!(
        json(&b, &["dlq", "list", "-o", "json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // A dry run changes nothing.
    let dry = json(&b, &["dlq", "replay", "--all", "--dry-run", "-o", "json"]);
    assert_eq!(dry["would_replay"].as_array().unwrap().len(), 3);
    // Refused without --yes.
    let refused = b.cli(&["dlq", "replay", "--all"]);
    assert_eq!(refused.status.code(), Some(2));

    b.erp_exec("ALTER TABLE items MODIFY name VARCHAR(40)")
        .await;
    let replayed = json(&b, &["dlq", "replay", "--all", "--yes", "-o", "json"]);
    let outcomes: Vec<&str> = replayed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["applied", "applied", "applied"], "{replayed}");
    assert_eq!(erp_count(&b).await, 1000);
    assert_eq!(
        b.erp_rows("SELECT name FROM items WHERE id = 500").await,
        vec![vec![Some("much too long a name".to_string())]]
    );
    assert!(json(&b, &["dlq", "list", "-o", "json"])
        .as_array()
        .unwrap()
        .is_empty());
    // The replay is in the audit log.
    let audit = json(&b, &["audit", "-o", "json"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "dlq replay"),
        "{audit}"
    );
    b.stop();
}

/// status, checkpoint and dlq work against the running daemon and, read-only, a stopped one;
/// a replay needs the daemon (exit 69).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_commands_answer_running_and_stopped() {
    let mut b = Bridge::new("ops_cmds", CRM, ERP, &[("items", MAPPING)]).await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 100) g")
        .await;
    wait_erp_count(&b, 100).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = json(&b, &["status", "-o", "json"]);
        let flow = &s["flows"][0];
        if flow["state"] == "streaming" && flow["changes_applied"].as_u64() >= Some(100) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed the flow streaming: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["daemon"], "running");
    let flow = &status["flows"][0];
    assert_eq!(flow["flow"], "crm->erp");
    assert!(flow["position"].as_str().is_some(), "{status}");
    assert_eq!(flow["dead_letters"], 0);
    assert_eq!(flow["open_conflicts"], 0);
    let endpoints = status["endpoints"].as_array().unwrap();
    assert!(
        endpoints.iter().all(|e| e["up"] == true) && endpoints.len() == 2,
        "{status}"
    );
    let table = b.cli(&["status"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("crm->erp"));

    // Checkpoints through the daemon; a set restarts the flow from it.
    let cps = json(&b, &["checkpoint", "show", "-o", "json"]);
    let pos = cps[0]["arg"].as_str().unwrap().to_string();
    let dry = b.cli(&["checkpoint", "set", "crm->erp", &pos, "--dry-run"]);
    assert!(dry.status.success());
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would set crm->erp"));
    let set = b.cli(&["checkpoint", "set", "crm->erp", &pos, "--yes"]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let bad = b.cli(&["checkpoint", "set", "nope->erp", &pos, "--yes"]);
    assert_eq!(bad.status.code(), Some(2));
    // The flow streams again after the restart.
    b.crm_exec("INSERT INTO items VALUES (101, 'after')").await;
    wait_erp_count(&b, 101).await;
    let audit = json(&b, &["audit", "-o", "json"]);
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["action"] == "checkpoint.reset"));

    assert_eq!(b.stop(), Some(0));
    // Stopped: read-only commands use the store.
    let status = json(&b, &["status", "-o", "json"]);
    assert_eq!(status["daemon"], "stopped");
    assert_eq!(status["flows"][0]["state"], "stopped");
    assert!(status["flows"][0]["position"].as_str().is_some());
    assert_eq!(
        json(&b, &["checkpoint", "show", "-o", "json"])[0]["flow"],
        "crm->erp"
    );
    assert!(json(&b, &["dlq", "list", "-o", "json"]).is_array());
    let replay = b.cli(&["dlq", "replay", "--all", "--yes"]);
    assert_eq!(replay.status.code(), Some(69), "a replay needs the daemon");
}

/// verify finds planted drift exactly (missing, differing and extra rows), `--repair` fixes it,
/// and a verify of a stopped daemon's databases works read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_planted_drift_and_repair_fixes_it() {
    let mut b = Bridge::new("ops_verify", CRM, ERP, &[("items", MAPPING)]).await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 1000) g")
        .await;
    wait_erp_count(&b, 1000).await;
    let clean = json(&b, &["verify", "items", "-o", "json"]);
    assert_eq!(clean["in_sync"], true, "{clean}");
    assert_eq!(
        (clean["source_rows"].as_u64(), clean["target_rows"].as_u64()),
        (Some(1000), Some(1000))
    );

    // Drift made behind rowbridge's back, on the ERP.
    b.erp_exec("DELETE FROM items WHERE id IN (7, 70, 700)")
        .await;
    b.erp_exec("UPDATE items SET name = 'drifted' WHERE id IN (5, 500)")
        .await;
    b.erp_exec("INSERT INTO items VALUES (5001, 'stray'), (5002, NULL)")
        .await;
    let out = b.cli(&["verify", "items", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "drift found: exit 1");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = |kind: &str| -> Vec<String> {
        let mut v: Vec<String> = report[format!("{kind}_keys")]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(keys("missing"), ["7", "70", "700"], "{report}");
    assert_eq!(keys("differing"), ["5", "500"], "{report}");
    assert_eq!(keys("extra"), ["5001", "5002"], "{report}");

    let repaired = json(&b, &["verify", "items", "--repair", "--yes", "-o", "json"]);
    assert_eq!(repaired["repaired"]["written"], 5, "{repaired}");
    assert_eq!(repaired["repaired"]["deleted"], 2, "{repaired}");
    let after = json(&b, &["verify", "items", "-o", "json"]);
    assert_eq!(after["in_sync"], true, "{after}");
    b.wait_equal(
        "SELECT id::text, name FROM items ORDER BY items.id",
        "SELECT id, name FROM items ORDER BY id",
        Duration::from_secs(10),
    )
    .await;

    // Stopped: verify still reads both sides; a repair needs the daemon.
    assert_eq!(b.stop(), Some(0));
    b.erp_exec("DELETE FROM items WHERE id = 1").await;
    let out = b.cli(&["verify", "items", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["missing"], 1, "{report}");
    let repair = b.cli(&["verify", "items", "--repair", "--yes"]);
    assert_eq!(repair.status.code(), Some(69));
}

/// `resync --keys` copies just those rows again; `--where` just the matching ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_of_chosen_keys_and_rows() {
    let mut b = Bridge::new("ops_resync_keys", CRM, ERP, &[("items", MAPPING)]).await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 100) g")
        .await;
    wait_erp_count(&b, 100).await;
    b.erp_exec("DELETE FROM items WHERE id IN (3, 4, 50, 60)")
        .await;
    let bad = b.cli(&["resync", "items", "--keys", "3|1", "--yes"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a key with too many values is refused"
    );
    let out = b.cli(&["resync", "items", "--keys", "3,4", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_erp_count(&b, 98).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while json(&b, &["status", "-o", "json"])["flows"][0]["resync"][0]["done"] != true {
        assert!(Instant::now() < deadline, "the keys resync never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = b.cli(&["resync", "items", "--where", "id >= 50", "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_erp_count(&b, 100).await;
    // Rows 51..100 were there: the bulk load is refused and the chunk upserted instead.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.log().contains("resync writes with upserts") {
        assert!(Instant::now() < deadline, "no fallback from the bulk load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let audit = json(&b, &["audit", "-o", "json"]);
    assert_eq!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["action"] == "resync")
            .count(),
        2
    );
    b.stop();
}
