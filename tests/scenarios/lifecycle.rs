//! The daemon as a systemd service: the notify protocol (READY, WATCHDOG, RELOADING,
//! STOPPING) against a test NOTIFY_SOCKET, and SIGHUP reloads of the configuration and
//! mappings (a bad one rejected while the running one goes on).

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::bridge::{http_get, tail, Bridge};
use crate::support::wait_until;

const CRM: &str = "CREATE TABLE parts (code text PRIMARY KEY, name text);
CREATE TABLE tools (code text PRIMARY KEY, name text);";
const ERP: &str = "CREATE TABLE parts (code VARCHAR(40) PRIMARY KEY, name TEXT);
CREATE TABLE tools (code VARCHAR(40) PRIMARY KEY, name TEXT);";

fn mapping(table: &str) -> String {
    format!(
        "key = [\"code\"]\n[source]\nendpoint = \"crm\"\ntable = \"{table}\"\n[target]\n\
         endpoint = \"erp\"\ntable = \"{table}\"\n[columns]\ncode = \"code\"\nname = \"name\"\n"
    )
}

/// Datagrams the daemon sent, in order.
struct NotifySocket {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(path: &std::path::Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        NotifySocket {
            socket,
            seen: Vec::new(),
        }
    }

    /// Wait (deadline) for a message that starts with `prefix`; returns it.
    fn expect(&mut self, prefix: &str, within: Duration, log: &dyn Fn() -> String) -> String {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(msg.clone());
                if msg.starts_with(prefix) {
                    return msg;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} within {within:?}; got {:?}\n{}",
                self.seen,
                tail(&log(), 30)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_protocol_and_reload_of_config_and_mappings() {
    let mut b = Bridge::new("lifecycle", CRM, ERP, &[("parts", &mapping("parts"))]).await;
    let sock_path = b.dir.join("notify.sock");
    let mut notify = NotifySocket::bind(&sock_path);
    b.start_with_env(&[
        ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "600000"),
    ]);
    let log = || b.log();

    // READY only once the flow streams: /readyz agrees at that moment.
    let ready = notify.expect("READY=1", Duration::from_secs(60), &log);
    assert!(ready.contains("STATUS=crm->erp streaming"), "{ready}");
    let readyz = http_get(b.http_port, "/readyz").await;
    assert_eq!(readyz.map(|r| r.0), Some(200));
    // The watchdog is fed (every 200 ms for a 600 ms timeout) while the flow is healthy.
    for _ in 0..3 {
        notify.expect("WATCHDOG=1", Duration::from_secs(5), &log);
    }
    assert_eq!(b.metric("rowbridge_config_reload_success").await, Some(1.0));
    b.crm_exec("INSERT INTO parts VALUES ('p1', 'first')").await;
    b.wait_equal(
        "SELECT code, name FROM parts ORDER BY code",
        "SELECT code, name FROM parts ORDER BY code",
        Duration::from_secs(30),
    )
    .await;

    // A broken mapping file: the reload is rejected naming file and line, the running
    // configuration keeps flowing, the metric says so.
    let tools = b.dir.join("mappings").join("tools.toml");
    std::fs::write(&tools, mapping("tools").replace("[columns]", "[colums]")).unwrap();
    b.signal(libc::SIGHUP);
    let reloading = notify.expect("RELOADING=1", Duration::from_secs(10), &log);
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC with RELOADING")
        .parse()
        .unwrap();
    assert!(usec > 0);
    let ready = notify.expect("READY=1", Duration::from_secs(30), &log);
    assert!(ready.contains("reload rejected"), "{ready}");
    let port = b.http_port;
    wait_until(
        "reload failure metric",
        Duration::from_secs(10),
        || async move {
            crate::support::bridge::metric_on(port, "rowbridge_config_reload_success").await
                == Some(0.0)
        },
    )
    .await;
    let text = b.log();
    assert!(
        text.contains("reload rejected") && text.contains("tools.toml:"),
        "{}",
        tail(&text, 20)
    );
    b.crm_exec("INSERT INTO parts VALUES ('p2', 'after a bad reload')")
        .await;
    b.wait_equal(
        "SELECT code, name FROM parts ORDER BY code",
        "SELECT code, name FROM parts ORDER BY code",
        Duration::from_secs(30),
    )
    .await;

    // The fixed file, after the DBA's part (the daemon's roles are least-privilege: the new
    // table joins the publication and gets its grants): the reload starts a flow with both
    // mappings.
    b.crm_exec(&format!(
        "ALTER PUBLICATION \"{}\" ADD TABLE tools; GRANT SELECT ON tools TO \"{}\"",
        b.publication, b.crm_user
    ))
    .await;
    b.erp_exec(&format!(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON tools TO '{}'@'127.0.0.1'",
        b.erp_user
    ))
    .await;
    std::fs::write(&tools, mapping("tools")).unwrap();
    b.signal(libc::SIGHUP);
    notify.expect("RELOADING=1", Duration::from_secs(10), &log);
    let ready = notify.expect("READY=1", Duration::from_secs(60), &log);
    assert!(ready.contains("crm->erp streaming"), "{ready}");
    assert_eq!(b.metric("rowbridge_config_reload_success").await, Some(1.0));
    b.crm_exec("INSERT INTO tools VALUES ('t1', 'new mapping')")
        .await;
    b.crm_exec("INSERT INTO parts VALUES ('p3', 'still flowing')")
        .await;
    for table in ["tools", "parts"] {
        let sql = format!("SELECT code, name FROM {table} ORDER BY code");
        b.wait_equal(&sql, &sql, Duration::from_secs(30)).await;
    }

    // A config file that does not parse: rejected, old one runs on.
    let good = std::fs::read_to_string(&b.config).unwrap();
    std::fs::write(&b.config, format!("{good}\n[pipeline\n")).unwrap();
    b.signal(libc::SIGHUP);
    notify.expect("RELOADING=1", Duration::from_secs(10), &log);
    let ready = notify.expect("READY=1", Duration::from_secs(30), &log);
    assert!(ready.contains("reload rejected"), "{ready}");
    std::fs::write(&b.config, good).unwrap();

    // SIGTERM: STOPPING, then a clean exit.
    assert_eq!(b.stop(), Some(0));
    notify.expect("STOPPING=1", Duration::from_secs(10), &|| String::new());
    // Nothing was applied twice or lost across the reloads.
    let rows = b.erp_rows("SELECT code FROM parts ORDER BY code").await;
    assert_eq!(rows.len(), 3, "{rows:?}");
}
