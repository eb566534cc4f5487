//! A rowbridge daemon between a fresh CRM database (PostgreSQL) and a fresh ERP database
//! (MariaDB), run as a real child process so tests can SIGKILL and restart it.

use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{free_port, roles, rowbridge_command, spawn_tied, wait_until, MariaServer, PgServer};

pub struct Bridge {
    pub pg: &'static PgServer,
    pub my: &'static MariaServer,
    pub crm: String,
    pub erp: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub http_port: u16,
    pub slot: String,
    pub publication: String,
    /// Unique per bridge: replicas of one MariaDB need distinct server ids.
    pub server_id: u32,
    child: Option<Child>,
    starts: usize,
    /// Ports the daemon is told to use instead of the servers' own (a proxy in between).
    pub crm_port: Option<u16>,
    pub erp_port: Option<u16>,
    /// The daemon's own least-privilege accounts (see `support::roles`), not the superusers.
    pub crm_user: String,
    pub crm_password: String,
    pub erp_user: String,
    pub erp_password: String,
    /// `ROWBRIDGE_LOG` for the daemon.
    pub log_filter: String,
}

/// Rows as text, NULL as None, for side-by-side comparison.
pub type Rows = Vec<Vec<Option<String>>>;

impl Bridge {
    /// Fresh databases with `crm_sql` and `erp_sql` applied, mapping files written, not started.
    pub async fn new(
        prefix: &str,
        crm_sql: &str,
        erp_sql: &str,
        mappings: &[(&str, &str)],
    ) -> Bridge {
        Self::with_servers(
            super::pg(),
            super::mariadb(),
            prefix,
            crm_sql,
            erp_sql,
            mappings,
        )
        .await
    }

    /// Like [`Bridge::new`] with the CRM on another PostgreSQL server.
    pub async fn with_pg(
        pg: &'static PgServer,
        prefix: &str,
        crm_sql: &str,
        erp_sql: &str,
        mappings: &[(&str, &str)],
    ) -> Bridge {
        Self::with_servers(pg, super::mariadb(), prefix, crm_sql, erp_sql, mappings).await
    }

    /// Like [`Bridge::new`] on the given servers.
    pub async fn with_servers(
        pg: &'static PgServer,
        my: &'static MariaServer,
        prefix: &str,
        crm_sql: &str,
        erp_sql: &str,
        mappings: &[(&str, &str)],
    ) -> Bridge {
        let crm = pg.create_database(&format!("{prefix}_crm")).await;
        let erp = my.create_database(&format!("{prefix}_erp")).await;
        pg.exec(&crm, crm_sql).await;
        my.exec(&erp, erp_sql).await;
        let dir = super::root_dir().join(format!("bridge_{crm}"));
        std::fs::create_dir_all(dir.join("mappings")).unwrap();
        for (name, text) in mappings {
            std::fs::write(dir.join("mappings").join(format!("{name}.toml")), text).unwrap();
        }
        let slot = format!("rb_{}", crm.to_lowercase());
        let (crm_user, erp_user) = (format!("rbd_{crm}"), format!("rbd_{erp}"));
        let crm_password = format!("crm-{:016x}", super::random_u64());
        let erp_password = format!("erp-{:016x}", super::random_u64());
        let plan = roles::Plan::from_mappings(&dir.join("mappings"), &erp);
        roles::create_pg_role(pg, &crm, &crm_user, &crm_password, &plan, &slot).await;
        roles::create_maria_user(my, &erp, &erp_user, &erp_password, &plan).await;
        let bridge = Bridge {
            pg,
            my,
            config: dir.join("rowbridge.toml"),
            crm,
            erp,
            dir,
            http_port: free_port(),
            publication: slot.clone(),
            server_id: 1000 + (super::random_u64() % 4_000_000_000) as u32,
            slot,
            child: None,
            starts: 0,
            crm_port: None,
            erp_port: None,
            crm_user,
            crm_password,
            erp_user,
            erp_password,
            log_filter: "info,rowbridge=trace".into(),
        };
        bridge.write_password_files();
        bridge.write_config("");
        bridge
    }

    fn write_password_files(&self) {
        std::fs::write(
            self.dir.join("crm.password"),
            format!("{}\n", self.crm_password),
        )
        .unwrap();
        std::fs::write(
            self.dir.join("erp.password"),
            format!("{}\n", self.erp_password),
        )
        .unwrap();
    }

    /// New passwords for the daemon's accounts, on the servers and in the password files.
    pub async fn set_passwords(&mut self, crm: &str, erp: &str) {
        let crm_user = (self.crm_user.as_str(), crm);
        roles::set_passwords(self.pg, self.my, crm_user, (&self.erp_user, erp)).await;
        self.crm_password = crm.to_string();
        self.erp_password = erp.to_string();
        self.write_password_files();
    }

    /// (Re)write the config; `extra` is appended to the `[pipeline]` section.
    pub fn write_config(&self, extra: &str) {
        let (p, m) = (self.pg, self.my);
        let text = format!(
            r#"
[store]
path = "store"

[admin]
http = "127.0.0.1:{http}"

[pipeline]
status_interval_ms = 200
{extra}

[endpoints.crm]
kind = "postgres"
host = "{ph}"
port = {pp}
user = "{pu}"
database = "{crm}"
password_file = "crm.password"
slot = "{slot}"
publication = "{publication}"

[endpoints.erp]
kind = "mysql"
host = "{mh}"
port = {mp}
user = "{mu}"
database = "{erp}"
password_file = "erp.password"
server_id = {server_id}
"#,
            http = self.http_port,
            ph = p.host,
            pp = self.crm_port.unwrap_or(p.port),
            pu = self.crm_user,
            crm = self.crm,
            slot = self.slot,
            publication = self.publication,
            mh = m.host,
            mp = self.erp_port.unwrap_or(m.port),
            mu = self.erp_user,
            erp = self.erp,
            server_id = self.server_id,
        );
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("daemon-{}.log", self.starts))
    }

    /// Start `rowbridge run`; does not wait.
    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// Start `rowbridge run` with extra environment variables; does not wait.
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "daemon already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut cmd = rowbridge_command();
        cmd.arg("-c").arg(&self.config).arg("run");
        cmd.env("ROWBRIDGE_LOG", &self.log_filter);
        cmd.envs(env.iter().copied());
        cmd.stdout(Stdio::null()).stderr(log);
        self.child = Some(spawn_tied(cmd, libc::SIGKILL).expect("spawn rowbridge"));
    }

    /// Start and wait until `/readyz` answers 200.
    pub async fn start_ready(&mut self) {
        self.start();
        self.wait_ready().await;
    }

    /// Wait until the running daemon's `/readyz` answers 200 (after a start or a reload).
    pub async fn wait_ready(&self) {
        let port = self.http_port;
        let log = self.log_path();
        wait_until(
            &format!("rowbridge ready (log {})", log.display()),
            Duration::from_secs(60),
            || async move {
                http_get(port, "/readyz")
                    .await
                    .is_some_and(|(code, _)| code == 200)
            },
        )
        .await;
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Send a signal to the running daemon (SIGHUP: reload).
    pub fn signal(&self, sig: i32) {
        if let Some(child) = self.child.as_ref() {
            unsafe {
                libc::kill(child.id() as libc::pid_t, sig);
            }
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        child.wait().ok().and_then(|s| s.code())
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Run a rowbridge command against this bridge's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = rowbridge_command();
        cmd.arg("-c").arg(&self.config).args(args);
        cmd.output().expect("run rowbridge")
    }

    /// The stored checkpoint LSN of the crm->erp flow (the daemon must be stopped).
    pub fn checkpoint_lsn(&self) -> Option<u64> {
        let out = self.cli(&["checkpoint", "show", "-o", "json"]);
        assert!(
            out.status.success(),
            "checkpoint show: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v.as_array()?
            .iter()
            .find(|f| f["flow"] == "crm->erp")
            .and_then(|f| f["lsn"].as_u64())
    }

    /// A flow's stored checkpoint in its command-line form (the daemon must be stopped).
    pub fn checkpoint_arg(&self, flow: &str) -> Option<String> {
        let out = self.cli(&["checkpoint", "show", "-o", "json"]);
        assert!(
            out.status.success(),
            "checkpoint show: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v.as_array()?
            .iter()
            .find(|f| f["flow"] == flow)
            .and_then(|f| f["arg"].as_str().map(str::to_string))
    }

    /// A metric's value summed over its label sets, from the running daemon.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        metric_on(self.http_port, name).await
    }

    /// The slot's confirmed_flush_lsn.
    pub async fn confirmed_flush_lsn(&self) -> Option<u64> {
        let rows = self
            .pg
            .query_rows(
                "postgres",
                &format!("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{}'", self.slot),
            )
            .await;
        rows.first()
            .and_then(|r| r.get::<_, Option<String>>(0))
            .map(|s| super::parse_lsn(&s))
    }

    pub async fn crm_exec(&self, sql: &str) {
        self.pg.exec(&self.crm, sql).await;
    }

    pub async fn erp_exec(&self, sql: &str) {
        self.my.exec(&self.erp, sql).await;
    }

    pub async fn crm_rows(&self, sql: &str) -> Rows {
        let client = self.pg.local_client(&self.crm).await;
        let msgs = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        msgs.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    }

    pub async fn erp_rows(&self, sql: &str) -> Rows {
        let mut conn = self.my.conn(&self.erp).await;
        let rows: Vec<mysql_async::Row> = conn
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.disconnect().await;
        rows.into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => None,
                        mysql_async::Value::Bytes(b) => {
                            Some(String::from_utf8_lossy(&b).into_owned())
                        }
                        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
                    })
                    .collect()
            })
            .collect()
    }

    /// Wait until `erp_sql` returns exactly what `crm_sql` returns.
    pub async fn wait_equal(&self, crm_sql: &str, erp_sql: &str, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let (c, e) = (self.crm_rows(crm_sql).await, self.erp_rows(erp_sql).await);
            if c == e {
                return;
            }
            if std::time::Instant::now() >= deadline {
                let diff = first_difference(&c, &e);
                panic!(
                    "ERP != CRM after {timeout:?}: {} CRM rows, {} ERP rows; first difference: {diff}\nlog tail:\n{}",
                    c.len(),
                    e.len(),
                    tail(&self.log(), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn first_difference(a: &Rows, b: &Rows) -> String {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x != y {
            return format!("row {i}: CRM {x:?} vs ERP {y:?}");
        }
    }
    format!("row count {} vs {}", a.len(), b.len())
}

/// A metric's value summed over its label sets, from the daemon serving on `port`.
pub async fn metric_on(port: u16, name: &str) -> Option<f64> {
    let (_, body) = http_get(port, "/metrics").await?;
    let mut total = None;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        total = Some(total.unwrap_or(0.0) + value);
    }
    total
}

/// Start a resync of `mapping` (the flow's only job) and wait until it is done.
pub async fn resync_and_wait(b: &Bridge, mapping: &str) {
    let out = b.cli(&["resync", mapping, "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = b.cli(&["status", "-o", "json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let jobs = status["flows"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| f["resync"].as_array().cloned().unwrap_or_default());
        if jobs
            .filter(|j| j["mapping"] == mapping)
            .any(|j| j["done"] == true)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "resync of {mapping} did not finish\n{}",
            tail(&b.log(), 20)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Minimal HTTP GET on loopback: (status, body).
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_response(port, path)
        .await
        .map(|(code, _, body)| (code, body))
}

/// Minimal HTTP/1.1 GET on loopback: (status, header block, body; chunked bodies decoded).
pub async fn http_response(port: u16, path: &str) -> Option<(u16, String, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some((code, head.to_string(), body))
}

fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}
