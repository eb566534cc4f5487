//! The private PostgreSQL 15 server of a test process.

use super::process::{run_logged, spawn_tied};
use super::server::{await_ready, ServerProcess, StartError};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tokio_postgres::{Config, NoTls};

const NOBODY: u32 = 65534;
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Server settings besides port and socket directory. fsync is off for speed, but
/// synchronous_commit stays on: off would lose acknowledged commits on `crash_restart`
/// (WAL still in shared buffers), which tests would misread as product data loss.
const SETTINGS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "wal_level=logical",
    "max_replication_slots=64",
    "max_wal_senders=64",
    "wal_sender_timeout=10s",
    "fsync=off",
    "synchronous_commit=on",
    "full_page_writes=off",
    "shared_buffers=256MB",
    "max_connections=300",
    "log_min_messages=warning",
];

pub struct PgServer {
    pub host: String,
    pub port: u16,
    pub superuser: String,
    pub password: String,
    /// Server directory: holds `data/`, the unix socket and `postgres.log`.
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    process: ServerProcess,
    overrides: Vec<String>,
}

/// The shared PostgreSQL server, started (blocking) on first call.
pub fn pg() -> &'static PgServer {
    static PG: OnceLock<Result<PgServer, String>> = OnceLock::new();
    match PG.get_or_init(|| PgServer::boot("pg", &[])) {
        Ok(server) => server,
        Err(e) => panic!("private PostgreSQL failed to start: {e}"),
    }
}

fn bin(name: &str) -> PathBuf {
    let p = Path::new(PG_BIN).join(name);
    if p.exists() {
        p
    } else {
        PathBuf::from(name)
    }
}

/// Drops to `nobody` when root (PostgreSQL refuses to run as root) and isolates the
/// command from the caller's PG* environment.
fn command(name: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(bin(name));
    cmd.current_dir(dir).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    if super::is_root() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

fn chown_nobody(path: &Path) {
    if super::is_root() {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

impl PgServer {
    /// A separate server of its own (not shared), with `overrides` (`name=value`) applied after
    /// the standard settings: for tests that need a misconfigured server.
    pub fn start_custom(name: &str, overrides: &[&str]) -> PgServer {
        Self::boot(name, overrides)
            .unwrap_or_else(|e| panic!("PostgreSQL {name} failed to start: {e}"))
    }

    fn boot(name: &str, overrides: &[&str]) -> Result<PgServer, String> {
        let dir = super::server_dir(name);
        chown_nobody(&dir);
        super::set_mode(&dir, 0o700);
        let data_dir = dir.join("data");
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, "postgres\n").map_err(|e| e.to_string())?;
        chown_nobody(&pwfile);
        let mut initdb = command("initdb", &dir);
        initdb.arg("-D").arg(&data_dir);
        initdb.args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ]);
        initdb.arg(format!("--pwfile={}", pwfile.display()));
        initdb.args(["--encoding=UTF8", "--locale=C", "--no-sync"]);
        run_logged(initdb, &dir.join("initdb.log"), Duration::from_secs(120))?;
        let _ = std::fs::remove_file(&pwfile);

        let hba_path = data_dir.join("pg_hba.conf");
        let hba = std::fs::read_to_string(&hba_path).map_err(|e| e.to_string())?;
        let line = "host replication all 127.0.0.1/32 scram-sha-256";
        let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
        if !hba.lines().any(|l| norm(l) == line) {
            std::fs::write(&hba_path, format!("{hba}\n{line}\n")).map_err(|e| e.to_string())?;
        }

        let mut server = PgServer {
            host: "127.0.0.1".into(),
            port: 0,
            superuser: "postgres".into(),
            password: "postgres".into(),
            log_path: dir.join("postgres.log"),
            data_dir,
            dir,
            process: ServerProcess::new("PostgreSQL"),
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
        };
        server.port = server.process.boot(|port| server.launch(port))?;
        Ok(server)
    }

    /// Spawns postgres on `port` and waits until a password login over TCP works.
    fn launch(&self, port: u16) -> Result<Child, StartError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| StartError::Fatal(format!("open log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| StartError::Fatal(e.to_string()))?;
        let mut cmd = command("postgres", &self.dir);
        cmd.arg("-D").arg(&self.data_dir).stdout(log).stderr(log2);
        let socket_dir = format!("unix_socket_directories={}", self.dir.display());
        cmd.args(["-c", &format!("port={port}"), "-c", &socket_dir]);
        for setting in SETTINGS
            .iter()
            .copied()
            .chain(self.overrides.iter().map(String::as_str))
        {
            cmd.arg("-c").arg(setting);
        }
        // SIGQUIT = immediate shutdown: the postmaster takes its backends down with it.
        let child = spawn_tied(cmd, libc::SIGQUIT)
            .map_err(|e| StartError::Fatal(format!("spawn postgres: {e}")))?;
        let config = self.config_on(port, "postgres");
        let probe = || {
            let config = config.clone();
            async move {
                let (client, conn) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
                let conn = tokio::spawn(conn);
                client
                    .simple_query("SELECT 1")
                    .await
                    .map_err(|e| e.to_string())?;
                drop(client);
                let _ = conn.await;
                Ok(())
            }
        };
        await_ready(child, libc::SIGQUIT, &self.log_path, "postgres", probe)
    }

    /// Connection settings for `db` over TCP with the superuser password.
    pub fn config(&self, db: &str) -> Config {
        self.config_on(self.port, db)
    }

    fn config_on(&self, port: u16, db: &str) -> Config {
        let mut c = Config::new();
        c.host(&self.host)
            .port(port)
            .user(&self.superuser)
            .password(&self.password)
            .dbname(db)
            .connect_timeout(Duration::from_secs(5));
        c
    }

    /// libpq-style `key=value` connection string for `db` (contains the password).
    pub fn conn_string(&self, db: &str) -> String {
        format!(
            "host={} port={} user={} password={} dbname={db}",
            self.host, self.port, self.superuser, self.password
        )
    }

    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// The last ~8 KiB of the server log.
    pub fn log_tail(&self) -> String {
        super::log_tail(&self.log_path)
    }

    /// Fast shutdown (SIGINT) and wait for exit; SIGKILL after 60 s. No-op if stopped.
    pub fn stop(&self) {
        self.process.stop_with(libc::SIGINT);
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

    /// Immediate shutdown (SIGQUIT: no checkpoint, crash recovery on start), then start.
    pub fn crash_restart(&self) {
        self.process.stop_with(libc::SIGQUIT);
        self.start();
    }
}
