//! The daemon runs as the least-privilege accounts of docs/security.md (the harness gives every
//! bridge exactly those grants). Here each grant is taken away in turn: the daemon says which
//! endpoint failed and what is missing, and never crashes.

use std::time::{Duration, Instant};

use crate::support::bridge::{tail, Bridge};

const CRM: &str = "CREATE TABLE items (id integer PRIMARY KEY, name text);";
const ERP: &str = "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40));";

fn mapping(from: &str, to: &str, extra: &str) -> String {
    format!(
        "{extra}key = [\"id\"]\n[source]\nendpoint = \"{from}\"\ntable = \"items\"\n\
         [target]\nendpoint = \"{to}\"\ntable = \"items\"\n[columns]\nid = \"id\"\nname = \"name\"\n"
    )
}

/// What the daemon reports when it cannot work: the stopped flow's error from `status`, or its
/// log when it refused to start.
async fn failure(b: &mut Bridge, source: &str) -> String {
    b.start();
    let mut written = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if !b.is_running() {
            return format!("exited: {}", b.log());
        }
        if b.dir.join("store.sock").exists() {
            let out = b.cli(&["status", "-o", "json"]);
            if out.status.success() {
                let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let stopped =
                    s["flows"].as_array().into_iter().flatten().find(|f| {
                        f["state"] == "stopped" && f["last_error"]["message"].is_string()
                    });
                let streaming = s["flows"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty() && f.iter().all(|f| f["state"] == "streaming"));
                if streaming && !written {
                    // A change to apply, for the privileges only a write needs.
                    let sql = "INSERT INTO items VALUES (1, 'one')";
                    if source == "crm" {
                        b.crm_exec(sql).await;
                    } else {
                        b.erp_exec(sql).await;
                    }
                    written = true;
                }
                if let Some(f) = stopped {
                    return format!(
                        "{} [{}]",
                        f["last_error"]["message"].as_str().unwrap(),
                        f["last_error"]["class"].as_str().unwrap_or("")
                    );
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "neither stopped nor exited\n{}",
            tail(&b.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh bridge whose mapping goes `from` -> `to`, with `revoke` (placeholders `{role}`,
/// `{user}`, `{db}`) run as superuser on the CRM or the ERP before the daemon starts.
async fn without(from: &str, to: &str, both: bool, crm_revoke: &str, erp_revoke: &str) -> Bridge {
    let extra = if both { "direction = \"both\"\n" } else { "" };
    let m = mapping(from, to, extra);
    let b = Bridge::new("priv", CRM, ERP, &[("items", &m)]).await;
    let sub = |s: &str| {
        s.replace("{role}", &format!("\"{}\"", b.crm_user))
            .replace("{user}", &format!("'{}'@'127.0.0.1'", b.erp_user))
            .replace("{db}", &b.erp)
    };
    if !crm_revoke.is_empty() {
        b.crm_exec(&sub(crm_revoke)).await;
    }
    if !erp_revoke.is_empty() {
        b.my.exec("", &sub(erp_revoke)).await;
    }
    b
}

/// The publication is the administrator's (PostgreSQL 15 lets only a table's owner add one): a
/// mapped table missing from it stops the flow with the statement to run; once it has been
/// run, a reload starts the flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_missing_from_the_publication_names_the_statement_to_run() {
    let pub_ = |b: &Bridge| format!("\"{}\"", b.publication);
    let mut b = without("crm", "erp", false, "", "").await;
    b.crm_exec(&format!("ALTER PUBLICATION {} DROP TABLE items", pub_(&b)))
        .await;
    let text = failure(&mut b, "crm").await;
    let fix = format!(
        "ALTER PUBLICATION {} ADD TABLE \"public\".\"items\"",
        pub_(&b)
    );
    assert!(text.contains("must be owner of publication"), "{text}");
    assert!(text.contains(&fix), "the error names the statement: {text}");
    assert!(b.is_running(), "the daemon stays up");

    b.crm_exec(&fix).await;
    b.signal(libc::SIGHUP);
    b.wait_ready().await;
    b.crm_exec("INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 100) g")
        .await;
    b.wait_equal(
        "SELECT id::text, name FROM items ORDER BY items.id",
        "SELECT id, name FROM items ORDER BY id",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(b.stop(), Some(0));
}

/// Each missing grant stops only its flow, with an error that names the endpoint and what is
/// missing (the table in docs/security.md); the daemon stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_missing_grant_stops_the_flow_and_names_it() {
    let origin = "REVOKE EXECUTE ON FUNCTION pg_replication_origin_session_setup(text) FROM {role}";
    let cases = [
        (
            without("erp", "crm", false, origin, "").await,
            "erp",
            "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text)",
        ),
        (
            without("erp", "crm", true, "DROP SCHEMA {role}", "").await,
            "erp",
            "endpoint crm: permission denied for schema public",
        ),
        (
            without(
                "erp",
                "crm",
                false,
                "",
                "REVOKE REPLICATION SLAVE ON *.* FROM {user}",
            )
            .await,
            "erp",
            "GRANT REPLICATION SLAVE ON *.*",
        ),
        (
            without(
                "crm",
                "erp",
                false,
                "",
                "REVOKE INSERT ON `{db}`.`items` FROM {user}",
            )
            .await,
            "crm",
            "INSERT command denied",
        ),
    ];
    for (mut b, source, want) in cases {
        let text = failure(&mut b, source).await;
        assert!(text.contains(want), "want {want:?} in: {text}");
        assert!(b.is_running(), "the daemon stays up: {text}");
        b.kill9();
    }
}
