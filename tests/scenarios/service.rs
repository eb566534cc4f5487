//! The daemon as a monitored service: every metric the dashboard and the alert rules use is
//! exported by a running daemon, a real Prometheus scrapes it, and no password ever shows up in
//! its logs, metrics or command output.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::bridge::{http_get, http_response, tail, Bridge};
use crate::support::prometheus::Prometheus;

const CRM: &str = "CREATE TABLE parts (id integer PRIMARY KEY, name text, qty integer);
                   CREATE TABLE companies (id bigint PRIMARY KEY, name text NOT NULL);
                   CREATE TABLE orders (id bigint PRIMARY KEY, company_id bigint, total numeric(18,4));";
const ERP: &str = "CREATE TABLE parts (id INT PRIMARY KEY, name TEXT, qty INT);
                   CREATE TABLE customers (id BIGINT AUTO_INCREMENT PRIMARY KEY, crm_id BIGINT UNIQUE, name VARCHAR(10));
                   CREATE TABLE orders (crm_id BIGINT PRIMARY KEY, customer_crm_id BIGINT, total DECIMAL(21,9));";
/// Both ways, conflicts parked for an operator.
const PARTS: &str = "direction = \"both\"\nkey = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"parts\"\n\
                     [target]\nendpoint = \"erp\"\ntable = \"parts\"\n[columns]\nid = \"id\"\nname = \"name\"\n\
                     qty = \"qty\"\n[conflict]\npolicy = \"manual\"\n";
const COMPANIES: &str = "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"companies\"\n\
                         [target]\nendpoint = \"erp\"\ntable = \"customers\"\n[columns]\nid = \"crm_id\"\nname = \"name\"\n";
/// An order waits for its customer.
const ORDERS: &str = "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"orders\"\n\
                      [target]\nendpoint = \"erp\"\ntable = \"orders\"\n[columns]\nid = \"crm_id\"\n\
                      company_id = { to = \"customer_crm_id\", reference = \"companies\" }\ntotal = \"total\"\n";

async fn bridge(prefix: &str) -> Bridge {
    let mappings = [
        ("parts", PARTS),
        ("companies", COMPANIES),
        ("orders", ORDERS),
    ];
    Bridge::new(prefix, CRM, ERP, &mappings).await
}

async fn wait_metric(b: &Bridge, name: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.metric(name).await.unwrap_or(0.0) < at_least {
        assert!(
            Instant::now() < deadline,
            "{name} never reached {at_least}\n{}",
            tail(&b.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every `rowbridge_*` name in the dashboard, the alert rules and their tests (all files under
/// grafana/), found as scripts/check-observability finds them: a name not preceded by an
/// identifier character or a colon (so recording rules `rowbridge:...` are not metric names).
fn referenced_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                names.extend(metric_names(&text));
            }
        }
    }
    names
}

fn metric_names(text: &str) -> Vec<String> {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for (i, _) in text.match_indices("rowbridge_") {
        if i > 0 && ident(bytes[i - 1]) {
            continue;
        }
        let len = bytes[i..]
            .iter()
            .take_while(|&&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
            .count();
        out.push(text[i..i + len].to_string());
    }
    out
}

/// Names with at least one sample in an exposition, plus histogram families (`# TYPE`): prose
/// may name a histogram whose series are `_bucket`, `_sum` and `_count`.
fn exported_metrics(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(name), Some("histogram" | "summary")) = (it.next(), it.next()) {
                names.insert(name.to_string());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// A workload that makes every metric appear: changes both ways, a conflict parked for an
/// operator, a change waiting for its reference, a dead letter, a transient error and its
/// retry, an online resync and a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_rule_metric_is_exported() {
    let referenced = referenced_metrics();
    assert!(
        referenced.len() >= 10,
        "the grafana files name rowbridge metrics: {referenced:?}"
    );
    let mut b = bridge("svc_metrics").await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO parts VALUES (1, 'one', 1), (2, 'two', 2)")
        .await;
    b.erp_exec("INSERT INTO parts VALUES (10, 'ten', 10)").await;
    let (crm_parts, erp_parts) = (
        "SELECT id::text, name, qty::text FROM parts ORDER BY parts.id",
        "SELECT id, name, qty FROM parts ORDER BY id",
    );
    b.wait_equal(crm_parts, erp_parts, Duration::from_secs(30))
        .await;

    // Edited on both sides while the daemon is down: a conflict, parked (policy manual).
    assert_eq!(b.stop(), Some(0));
    b.crm_exec("UPDATE parts SET name = 'crm edit' WHERE id = 1")
        .await;
    b.erp_exec("UPDATE parts SET qty = 99 WHERE id = 1").await;
    b.start_ready().await;
    wait_metric(&b, "rowbridge_conflicts_total", 1.0).await;
    wait_metric(&b, "rowbridge_conflicts_open", 1.0).await;

    // More changes both ways (their echoes are skipped), an order waiting for its customer,
    // and a customer name too long for the ERP (a dead letter).
    b.crm_exec("INSERT INTO parts VALUES (3, 'three', 3)").await;
    b.erp_exec("INSERT INTO parts VALUES (11, 'eleven', 11)")
        .await;
    b.crm_exec("INSERT INTO orders VALUES (100, 7, 10.5)").await;
    b.crm_exec("INSERT INTO companies VALUES (8, 'a name much too long for the ERP')")
        .await;
    wait_metric(&b, "rowbridge_waiting_changes", 1.0).await;
    wait_metric(&b, "rowbridge_dead_letters", 1.0).await;
    wait_metric(&b, "rowbridge_echo_skipped_total", 1.0).await;

    // The daemon's sessions killed on the CRM: a transient error, retried.
    let role = b.crm_user.clone();
    b.crm_exec(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
    ))
    .await;
    wait_metric(&b, "rowbridge_retries_total", 1.0).await;
    b.wait_ready().await;

    // The customer arrives (the order follows), then an online resync of the customers.
    b.crm_exec("INSERT INTO companies VALUES (7, 'Acme')").await;
    b.wait_equal(
        "SELECT id::text, company_id::text FROM orders",
        "SELECT crm_id, customer_crm_id FROM orders",
        Duration::from_secs(30),
    )
    .await;
    let out = b.cli(&["resync", "companies", "--yes"]);
    assert!(
        out.status.success(),
        "resync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_metric(&b, "rowbridge_resync_rows_total", 1.0).await;
    b.signal(libc::SIGHUP);
    b.wait_ready().await;

    let (code, head, body) = http_response(b.http_port, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    assert!(
        ctype.starts_with("text/plain; version=0.0.4"),
        "Content-Type: {ctype:?}"
    );
    let exported = exported_metrics(&body);
    let missing: Vec<&String> = referenced.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "named in grafana/ but not exported: {missing:?}\nexported: {exported:?}"
    );
    assert_eq!(http_get(b.http_port, "/healthz").await.unwrap().0, 200);
    assert_eq!(http_get(b.http_port, "/readyz").await.unwrap().0, 200);
    assert_eq!(b.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_daemon() {
    let mut b = bridge("svc_prom").await;
    b.start_ready().await;
    b.crm_exec("INSERT INTO parts VALUES (1, 'one', 1)").await;
    wait_metric(&b, "rowbridge_changes_applied_total", 1.0).await;

    let prom = Prometheus::start(&b.dir.join("prometheus"), b.http_port).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // up{job="rowbridge"} and rowbridge_changes_applied_total
        let up = prom.query("up%7Bjob%3D%22rowbridge%22%7D").await;
        let applied = prom.query("rowbridge_changes_applied_total").await;
        let up_is_1 = up.first().is_some_and(|s| s["value"][1] == "1");
        if up_is_1 && !applied.is_empty() {
            assert!(
                applied.iter().all(|s| s["metric"]["job"] == "rowbridge"),
                "{applied:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw the daemon: up = {up:?}, applied = {applied:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(prom);
    assert_eq!(b.stop(), Some(0));
}

const CRM_PASSWORD: &str = "Pw-9f3c-CRM-secret";
const ERP_PASSWORD: &str = "Pw-4b1d-ERP-secret";
const WRONG: [&str; 2] = ["Pw-0a0a-CRM-wrong", "Pw-0b0b-ERP-wrong"];

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until every flow is stopped by an authentication failure; returns `status -o json`.
async fn wait_auth_stopped(b: &Bridge) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if b.dir.join("store.sock").exists() {
            let out = b.cli(&["status", "-o", "json"]);
            if let Ok(s) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                let flows = s["flows"].as_array().cloned().unwrap_or_default();
                let stopped = flows.iter().all(|f| {
                    f["state"] == "stopped" && f["last_error"]["class"] == "endpoint_fatal"
                });
                if flows.len() == 2 && stopped {
                    return output_text(&out);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "flows never stopped on the wrong passwords\n{}",
            tail(&b.log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Distinctive passwords on both endpoints, wrong ones first (the daemon, `check` and `status`
/// report the failures), then the right ones and a reload: no password appears in the daemon's
/// log (debug level everywhere), its metrics, or `status` and `check` output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_in_logs_or_metrics() {
    let items = "key = [\"id\"]\n[source]\nendpoint = \"crm\"\ntable = \"parts\"\n\
                 [target]\nendpoint = \"erp\"\ntable = \"parts\"\n[columns]\nid = \"id\"\nname = \"name\"\nqty = \"qty\"\n";
    let back = "key = [\"crm_id\"]\n[source]\nendpoint = \"erp\"\ntable = \"orders\"\n\
                [target]\nendpoint = \"crm\"\ntable = \"orders\"\n[columns]\ncrm_id = \"id\"\ntotal = \"total\"\n";
    let mut b = Bridge::new(
        "svc_secret",
        CRM,
        ERP,
        &[("parts", items), ("orders", back)],
    )
    .await;
    b.set_passwords(CRM_PASSWORD, ERP_PASSWORD).await;
    b.log_filter = "debug,rowbridge=trace".into();
    std::fs::write(b.dir.join("crm.password"), WRONG[0]).unwrap();
    std::fs::write(b.dir.join("erp.password"), WRONG[1]).unwrap();
    let mut seen = Vec::new();

    let check = b.cli(&["check"]);
    let text = output_text(&check);
    assert!(
        !check.status.success(),
        "check passes with wrong passwords: {text}"
    );
    assert!(
        text.contains("crm") && text.contains("password authentication failed"),
        "{text}"
    );
    seen.push(("check (wrong passwords)", text));

    b.start();
    seen.push(("status (stopped)", wait_auth_stopped(&b).await));
    seen.push((
        "metrics (stopped)",
        http_get(b.http_port, "/metrics").await.unwrap().1,
    ));
    let check = b.cli(&["check", "-o", "json"]);
    seen.push(("check -o json (wrong passwords)", output_text(&check)));

    std::fs::write(b.dir.join("crm.password"), format!("{CRM_PASSWORD}\n")).unwrap();
    std::fs::write(b.dir.join("erp.password"), format!("{ERP_PASSWORD}\n")).unwrap();
    b.signal(libc::SIGHUP);
    b.wait_ready().await;
    b.crm_exec("INSERT INTO parts SELECT g, 'p' || g, g FROM generate_series(1, 50) g")
        .await;
    b.erp_exec("INSERT INTO orders SELECT seq, NULL, seq FROM seq_1_to_50")
        .await;
    b.wait_equal(
        "SELECT id::text, name, qty::text FROM parts ORDER BY parts.id",
        "SELECT id, name, qty FROM parts ORDER BY id",
        Duration::from_secs(60),
    )
    .await;
    wait_metric(&b, "rowbridge_changes_applied_total", 100.0).await;
    let check = b.cli(&["check"]);
    assert!(check.status.success(), "{}", output_text(&check));
    seen.push(("check (fixed)", output_text(&check)));
    seen.push(("status", output_text(&b.cli(&["status", "-o", "json"]))));
    seen.push(("status table", output_text(&b.cli(&["status"]))));
    seen.push((
        "metrics",
        http_get(b.http_port, "/metrics").await.unwrap().1,
    ));
    assert_eq!(b.stop(), Some(0));
    let log = b.log();
    assert!(
        log.contains("password authentication failed") && log.contains("Access denied"),
        "the log shows both failed logins:\n{}",
        tail(&log, 40)
    );
    seen.push(("daemon log", log));

    for (what, text) in &seen {
        for secret in [CRM_PASSWORD, ERP_PASSWORD, WRONG[0], WRONG[1]] {
            assert!(
                !text.contains(secret),
                "{what} contains a password:\n{text}"
            );
        }
    }
}
