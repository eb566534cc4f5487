//! The private MariaDB server of a test process (binlog on, ROW format, full metadata).

use super::process::{run_logged, spawn_tied};
use super::server::{await_ready, ServerProcess, StartError};
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub struct MariaServer {
    pub host: String,
    pub port: u16,
    /// `root`, password-authenticated over TCP.
    pub user: String,
    pub password: String,
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    /// `--log-bin` base name: binlog files are `<binlog_basename>.000001`, ...
    pub binlog_basename: PathBuf,
    pub socket: PathBuf,
    pub log_path: PathBuf,
    process: ServerProcess,
    password_set: AtomicBool,
    /// Server options added after the standard ones (e.g. TLS certificates).
    extra_args: Vec<String>,
}

/// The shared MariaDB server, started (blocking) on first call.
pub fn mariadb() -> &'static MariaServer {
    static MARIA: OnceLock<Result<MariaServer, String>> = OnceLock::new();
    match MARIA.get_or_init(|| MariaServer::boot("mariadb", &[])) {
        Ok(server) => server,
        Err(e) => panic!("private MariaDB failed to start: {e}"),
    }
}

impl MariaServer {
    /// A separate server of its own (not shared), for tests that purge binlogs or restart it.
    pub fn start_custom(name: &str) -> MariaServer {
        Self::start_custom_with(name, &[])
    }

    /// A separate server with extra `--option=value` arguments.
    pub fn start_custom_with(name: &str, extra_args: &[&str]) -> MariaServer {
        Self::boot(name, extra_args)
            .unwrap_or_else(|e| panic!("MariaDB {name} failed to start: {e}"))
    }

    fn boot(name: &str, extra_args: &[&str]) -> Result<MariaServer, String> {
        let dir = super::server_dir(name);
        let data_dir = dir.join("data");
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data_dir.display()));
        install.args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]);
        if super::is_root() {
            install.arg("--user=root");
        }
        install.current_dir(&dir);
        run_logged(
            install,
            &dir.join("install-db.log"),
            Duration::from_secs(120),
        )?;

        let mut server = MariaServer {
            host: "127.0.0.1".into(),
            port: 0,
            user: "root".into(),
            password: "root".into(),
            binlog_basename: dir.join("binlog"),
            socket: dir.join("mysql.sock"),
            log_path: dir.join("mariadb.err"),
            data_dir,
            dir,
            process: ServerProcess::new("MariaDB"),
            password_set: AtomicBool::new(false),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        server.port = server.process.boot(|port| server.launch(port))?;
        Ok(server)
    }

    /// Spawns mariadbd on `port`; waits until root can log in over TCP. On the first
    /// start root has no password yet: it then gets the password `root`.
    fn launch(&self, port: u16) -> Result<Child, StartError> {
        let d = |p: &std::path::Path| p.display().to_string();
        let mut cmd = Command::new("mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", d(&self.data_dir)))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", d(&self.socket)))
            .arg(format!("--pid-file={}", d(&self.dir.join("mariadb.pid"))))
            .arg(format!("--tmpdir={}", d(&self.dir)))
            .arg(format!("--log-bin={}", d(&self.binlog_basename)))
            .arg(format!("--log-error={}", d(&self.log_path)))
            .args([
                "--server-id=1",
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL",
                "--log-slave-updates",
                "--gtid-strict-mode=1",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                "--innodb-flush-log-at-trx-commit=2",
                "--sync-binlog=0",
                "--innodb-buffer-pool-size=256M",
                "--max-connections=300",
                "--skip-name-resolve",
            ])
            .args(&self.extra_args);
        if super::is_root() {
            cmd.arg("--user=root");
        }
        cmd.current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_tied(cmd, libc::SIGKILL)
            .map_err(|e| StartError::Fatal(format!("spawn mariadbd: {e}")))?;
        let first = !self.password_set.load(Ordering::SeqCst);
        let mut opts = OptsBuilder::from_opts(self.opts("")).tcp_port(port);
        if first {
            opts = opts.pass(None::<String>);
        }
        let opts: Opts = opts.into();
        let password = self.password.clone();
        let probe = || {
            let opts = opts.clone();
            let password = password.clone();
            async move {
                let mut conn = Conn::new(opts).await.map_err(|e| e.to_string())?;
                if first {
                    let sql = format!(
                        "ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{password}';
                         ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}';
                         ALTER USER 'root'@'::1' IDENTIFIED BY '{password}'"
                    );
                    conn.query_drop(sql).await.map_err(|e| e.to_string())?;
                } else {
                    conn.query_drop("SELECT 1")
                        .await
                        .map_err(|e| e.to_string())?;
                }
                conn.disconnect().await.map_err(|e| e.to_string())
            }
        };
        let child = await_ready(child, libc::SIGKILL, &self.log_path, "mariadbd", probe)?;
        self.password_set.store(true, Ordering::SeqCst);
        Ok(child)
    }

    /// Connection options for `db` ("" for none) over TCP as root with password.
    pub fn opts(&self, db: &str) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .db_name((!db.is_empty()).then(|| db.to_string()))
            .prefer_socket(false)
            .into()
    }

    /// `mysql://root:root@127.0.0.1:<port>/<db>` (contains the password).
    pub fn url(&self, db: &str) -> String {
        format!(
            "mysql://{}:{}@{}:{}/{db}",
            self.user, self.password, self.host, self.port
        )
    }

    pub async fn conn(&self, db: &str) -> Conn {
        Conn::new(self.opts(db))
            .await
            .unwrap_or_else(|e| panic!("connect to MariaDB db {db:?}: {e}"))
    }

    /// Creates a fresh database `<prefix>_<n>_<rand>` and returns its name.
    pub async fn create_database(&self, prefix: &str) -> String {
        let name = super::unique_name(prefix);
        self.exec("", &format!("CREATE DATABASE `{name}`")).await;
        name
    }

    pub async fn drop_database(&self, name: &str) {
        self.exec("", &format!("DROP DATABASE IF EXISTS `{name}`"))
            .await;
    }

    /// Runs one or more `;`-separated statements (text protocol); panics on error.
    pub async fn exec(&self, db: &str, sql: &str) {
        let mut conn = self.conn(db).await;
        if let Err(e) = conn.query_drop(sql).await {
            panic!("MariaDB db {db:?}: {sql}\n-> {e}");
        }
        let _ = conn.disconnect().await;
    }

    /// All rows of `sql`, converted to `T`; panics on error.
    pub async fn query<T: FromRow + Send + 'static>(&self, db: &str, sql: &str) -> Vec<T> {
        let mut conn = self.conn(db).await;
        let rows = conn
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("MariaDB db {db:?}: {sql}\n-> {e}"));
        let _ = conn.disconnect().await;
        rows
    }

    /// The first row of `sql`, if any.
    pub async fn query_first<T: FromRow + Send + 'static>(&self, db: &str, sql: &str) -> Option<T> {
        self.query(db, sql).await.into_iter().next()
    }

    /// A global system variable as `SHOW GLOBAL VARIABLES` prints it (`ON`, `ROW`, ...).
    pub async fn variable(&self, name: &str) -> String {
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let sql = format!("SHOW GLOBAL VARIABLES WHERE Variable_name = '{name}'");
        match self.query_first::<(String, String)>("", &sql).await {
            Some((_, value)) => value,
            None => panic!("MariaDB has no variable {name}"),
        }
    }

    /// `@@gtid_current_pos`, e.g. `0-1-42` (empty before the first transaction).
    pub async fn gtid_current_pos(&self) -> String {
        self.variable("gtid_current_pos").await
    }

    /// `@@gtid_binlog_pos`.
    pub async fn gtid_binlog_pos(&self) -> String {
        self.variable("gtid_binlog_pos").await
    }

    /// `FLUSH BINARY LOGS`: rotates to a new binlog file.
    pub async fn flush_binary_logs(&self) {
        self.exec("", "FLUSH BINARY LOGS").await;
    }

    /// Names of the binlog files the server still has, oldest first.
    pub async fn binlog_files(&self) -> Vec<String> {
        let mut conn = self.conn("").await;
        let rows: Vec<mysql_async::Row> = conn
            .query("SHOW BINARY LOGS")
            .await
            .unwrap_or_else(|e| panic!("SHOW BINARY LOGS: {e}"));
        let _ = conn.disconnect().await;
        rows.into_iter()
            .map(|r| r.get::<String, _>(0).expect("binlog file name"))
            .collect()
    }

    /// `PURGE BINARY LOGS TO '<file>'`: deletes every binlog file before `file`.
    pub async fn purge_binary_logs_to(&self, file: &str) {
        self.exec("", &format!("PURGE BINARY LOGS TO '{file}'"))
            .await;
    }

    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// The last ~8 KiB of the error log.
    pub fn log_tail(&self) -> String {
        super::log_tail(&self.log_path)
    }

    /// Clean shutdown (SIGTERM) and wait for exit; SIGKILL after 60 s. No-op if stopped.
    pub fn stop(&self) {
        self.process.stop_with(libc::SIGTERM);
    }

    /// SIGSTOP: the server keeps its connections open and answers nothing.
    pub fn freeze(&self) {
        self.process.signal(libc::SIGSTOP);
    }

    pub fn thaw(&self) {
        self.process.signal(libc::SIGCONT);
    }

    /// Starts the server again on the same port and data; panics if it does not come up.
    pub fn start(&self) {
        self.process.start(self.port, |port| self.launch(port));
    }

    /// Clean stop, then start on the same port and data directory.
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// SIGKILL (no clean shutdown: InnoDB/binlog crash recovery on start), then start.
    pub fn crash_restart(&self) {
        self.process.stop_with(libc::SIGKILL);
        self.start();
    }
}
