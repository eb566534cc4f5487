//! What an operator's mistakes must not do: a lost store must not make flows skip changes, and
//! a path in the config must never be removed or replaced.

use std::time::Duration;

use crate::support::bridge::Bridge;

const CRM: &str = "CREATE TABLE parts (code text PRIMARY KEY, name text);
                   CREATE TABLE items (id bigint PRIMARY KEY, name text);";
const ERP: &str = "CREATE TABLE parts (code VARCHAR(40) PRIMARY KEY, name TEXT);
                   CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT);";
const PARTS: &str = "key = [\"code\"]\n[source]\nendpoint = \"crm\"\ntable = \"parts\"\n[target]\n\
                     endpoint = \"erp\"\ntable = \"parts\"\n[columns]\ncode = \"code\"\nname = \"name\"\n";
const ITEMS: &str = "key = [\"id\"]\n[source]\nendpoint = \"erp\"\ntable = \"items\"\n[target]\n\
                     endpoint = \"crm\"\ntable = \"items\"\n[columns]\nid = \"id\"\nname = \"name\"\n";
const PARTS_SQL: &str = "SELECT code, name FROM parts ORDER BY code";
const ITEMS_SQL: &str = "SELECT id::text, name FROM items ORDER BY id";
const ITEMS_ERP: &str = "SELECT id, name FROM items ORDER BY id";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stop, change both databases, delete the store, start: both flows refuse (exit 78) and name
/// what they found and the commands that choose; the commands then recover every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptied_store_refuses_to_start_and_names_the_commands() {
    let mut b = Bridge::new(
        "lost_store",
        CRM,
        ERP,
        &[("parts", PARTS), ("items", ITEMS)],
    )
    .await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO parts VALUES ('p1', 'one')").await;
    b.erp_exec("INSERT INTO items VALUES (1, 'one')").await;
    b.wait_equal(PARTS_SQL, PARTS_SQL, Duration::from_secs(30))
        .await;
    b.wait_equal(ITEMS_SQL, ITEMS_ERP, Duration::from_secs(30))
        .await;
    assert_eq!(b.stop(), Some(0));
    b.crm_exec("INSERT INTO parts VALUES ('p2', 'while stopped')")
        .await;
    b.erp_exec("INSERT INTO items VALUES (2, 'while stopped')")
        .await;
    std::fs::remove_dir_all(b.dir.join("store")).unwrap();

    for cmd in [&["run"][..], &["run"][..]] {
        // Twice: a refusal changes nothing, so the second start refuses the same way.
        let out = b.cli(cmd);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{err}");
        assert!(err.contains("flow crm->erp has no checkpoint"), "{err}");
        assert!(
            err.contains(&format!("replication slot '{}' exists on crm", b.slot)),
            "{err}"
        );
        assert!(err.contains("flow erp->crm has no checkpoint"), "{err}");
        assert!(err.contains("replication origin 'rowbridge_"), "{err}");
        assert!(err.contains("at the end of the binlog"), "{err}");
        assert!(
            err.contains("rowbridge checkpoint reset 'erp->crm' --yes"),
            "{err}"
        );
        assert!(err.contains("rowbridge resync items"), "{err}");
    }
    // Nothing was written while refusing.
    assert_eq!(
        b.erp_rows("SELECT code FROM parts ORDER BY code")
            .await
            .len(),
        1
    );

    // Follow the printed commands: the CRM flow continues from the slot's position, the ERP
    // flow starts as new and its table is copied again.
    let err = stderr(&b.cli(&["run"]));
    let line = err
        .lines()
        .find(|l| l.contains("rowbridge checkpoint set 'crm->erp'"))
        .unwrap_or_else(|| panic!("no continue command: {err}"));
    let pos = line
        .split('\'')
        .nth(3)
        .expect("quoted position")
        .to_string();
    let set = b.cli(&["checkpoint", "set", "crm->erp", &pos, "--yes"]);
    assert!(set.status.success(), "{}", stderr(&set));
    let reset = b.cli(&["checkpoint", "reset", "erp->crm", "--yes"]);
    assert!(reset.status.success(), "{}", stderr(&reset));
    b.start_ready().await;
    crate::support::bridge::resync_and_wait(&b, "items").await;
    b.wait_equal(PARTS_SQL, PARTS_SQL, Duration::from_secs(30))
        .await;
    b.wait_equal(ITEMS_SQL, ITEMS_ERP, Duration::from_secs(30))
        .await;
    assert_eq!(
        b.erp_rows("SELECT code FROM parts ORDER BY code")
            .await
            .len(),
        2,
        "the change made while stopped arrived through the slot"
    );
    assert_eq!(b.crm_rows(ITEMS_SQL).await.len(), 2);
    // Started as new on purpose: a later restart is an ordinary one.
    assert_eq!(b.stop(), Some(0));
    b.start_ready().await;
    b.erp_exec("INSERT INTO items VALUES (3, 'after')").await;
    b.wait_equal(ITEMS_SQL, ITEMS_ERP, Duration::from_secs(30))
        .await;
    b.stop();
}

/// An admin socket or store path that names something else is refused, and whatever is there
/// is left as it was; the socket rowbridge made is removed at exit only if it is still its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_paths_are_never_removed_or_replaced() {
    let mut b = Bridge::new("paths", CRM, ERP, &[("parts", PARTS)]).await;
    let good = std::fs::read_to_string(&b.config).unwrap();
    let victim = b.dir.join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let folder = b.dir.join("not-a-store");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("notes.txt"), "mine").unwrap();
    let cases = [
        (
            good.replace("[admin]\n", "[admin]\nsocket = \"victim.txt\"\n"),
            "admin.socket: ",
        ),
        (
            good.replace("path = \"store\"", "path = \"victim.txt\""),
            "store.path: ",
        ),
        (
            good.replace("path = \"store\"", "path = \"not-a-store\""),
            "is a folder with other files, not a rowbridge store",
        ),
    ];
    for (config, want) in &cases {
        std::fs::write(&b.config, config).unwrap();
        for cmd in [&["check"][..], &["run"][..]] {
            let out = b.cli(cmd);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(78), "{cmd:?}: {err}");
            assert!(err.contains(want), "{cmd:?}: {err}");
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(
            std::fs::read_to_string(folder.join("notes.txt")).unwrap(),
            "mine"
        );
        assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 1);
    }

    // The daemon's own socket: removed at exit, unless something else took its place.
    std::fs::write(&b.config, &good).unwrap();
    let socket = b.dir.join("store.sock");
    b.start_ready().await;
    assert!(socket.exists());
    assert_eq!(b.stop(), Some(0));
    assert!(!socket.exists(), "its own socket is removed at exit");
    b.start_ready().await;
    std::fs::remove_file(&socket).unwrap();
    std::fs::write(&socket, "someone else's").unwrap();
    assert_eq!(b.stop(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&socket).unwrap(),
        "someone else's",
        "a file that replaced the socket is left alone"
    );
    // And the next start refuses it rather than replacing it.
    let out = b.cli(&["run"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "someone else's");
}

/// With the target frozen (SIGSTOP), the lag is the age of the change waiting for it and grows;
/// the stalled write counts against the endpoint. Idle, the lag is zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_grows_while_the_target_is_frozen_and_is_zero_when_idle() {
    // A MariaDB of its own: freezing the shared one would stall other tests.
    let server: &'static crate::support::MariaServer = Box::leak(Box::new(
        crate::support::MariaServer::start_custom("mariadb_freeze"),
    ));
    let mut b = Bridge::with_servers(
        crate::support::pg(),
        server,
        "lag_frozen",
        CRM,
        ERP,
        &[("parts", PARTS)],
    )
    .await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO parts VALUES ('p1', 'one')").await;
    b.wait_equal(PARTS_SQL, PARTS_SQL, Duration::from_secs(30))
        .await;
    let lag = || async {
        b.metric("rowbridge_replication_lag_seconds")
            .await
            .unwrap_or(-1.0)
    };
    crate::support::wait_until("lag zero when idle", Duration::from_secs(10), || async {
        lag().await == 0.0
    })
    .await;

    server.freeze();
    b.crm_exec("INSERT INTO parts VALUES ('p2', 'waits')").await;
    crate::support::wait_until("lag grows past 12 s", Duration::from_secs(40), || async {
        lag().await >= 12.0
    })
    .await;
    // Both endpoints report; the frozen one is down while its write waits.
    assert_eq!(b.metric("rowbridge_endpoint_up").await, Some(1.0));
    let status: serde_json::Value =
        serde_json::from_slice(&b.cli(&["status", "-o", "json"]).stdout).unwrap();
    let flow = &status["flows"][0];
    assert!(
        flow["lag_seconds"].as_f64().unwrap_or(0.0) >= 12.0,
        "{status}"
    );
    assert!(
        status.to_string().contains("a write has been waiting for"),
        "{status}"
    );

    server.thaw();
    b.wait_equal(PARTS_SQL, PARTS_SQL, Duration::from_secs(60))
        .await;
    crate::support::wait_until("lag back to zero", Duration::from_secs(10), || async {
        lag().await == 0.0
    })
    .await;
    crate::support::wait_until("endpoint up again", Duration::from_secs(10), || async {
        b.metric("rowbridge_endpoint_up").await == Some(2.0)
    })
    .await;
    b.stop();
    server.stop();
}
