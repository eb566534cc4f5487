//! Daemon configuration: plain serde structs, unknown keys rejected, secrets never printed.
//!
//! Relative paths in the file (store, mappings, password files) are resolved against the
//! directory of the configuration file, so a config and its mappings travel together.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

pub const DEFAULT_HTTP: &str = "127.0.0.1:9187";
pub const DEFAULT_BATCH_MAX_ROWS: usize = 20_000;
pub const DEFAULT_BATCH_MAX_TXNS: usize = 10_000;
pub const DEFAULT_QUEUE_TXNS: usize = 4_096;
pub const DEFAULT_MAX_WAITING: usize = 100_000;
/// Two batches: one being applied, the next one read ahead. More buys no speed (the source
/// reads far faster than a target applies) and costs about 1.5 KiB of memory per row change.
pub const DEFAULT_QUEUE_ROWS: usize = 40_000;
pub const DEFAULT_CHUNK_ROWS: usize = 20_000;
pub const DEFAULT_PG_PORT: u16 = 5432;
pub const DEFAULT_MYSQL_PORT: u16 = 3306;
pub const DEFAULT_SLOT: &str = "rowbridge";
pub const DEFAULT_PUBLICATION: &str = "rowbridge";
pub const DEFAULT_SERVER_ID: u32 = 4242;
pub const DEFAULT_STATUS_INTERVAL_MS: u64 = 1_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Embedded checkpoint store.
    pub store: StoreConfig,
    /// Metrics/health HTTP listener and admin socket.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Batching and queue bounds.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Folder of mapping files (`*.toml`), default `mappings` beside the config file.
    #[serde(default = "default_mappings")]
    pub mappings: PathBuf,
    /// Named database endpoints.
    pub endpoints: BTreeMap<String, EndpointConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the sled store; one daemon per store.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address for `/metrics`, `/healthz`, `/readyz`; loopback by default. Empty string disables.
    #[serde(default = "default_http")]
    pub http: String,
    /// Unix socket of the admin API.
    #[serde(default)]
    pub socket: Option<PathBuf>,
}

impl Config {
    /// The admin socket: `admin.socket`, else beside the store (`<store path>.sock`).
    pub fn admin_socket(&self) -> PathBuf {
        self.admin.socket.clone().unwrap_or_else(|| {
            let mut p = self.store.path.clone().into_os_string();
            p.push(".sock");
            PathBuf::from(p)
        })
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            http: default_http(),
            socket: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Most row changes grouped into one target transaction.
    #[serde(default = "default_batch_rows")]
    pub batch_max_rows: usize,
    /// Most source transactions grouped into one target transaction.
    #[serde(default = "default_batch_txns")]
    pub batch_max_txns: usize,
    /// Source transactions buffered between source and apply loop (backpressure bound).
    #[serde(default = "default_queue")]
    pub queue_txns: usize,
    /// Mark every transaction rowbridge writes (replication origin / skip_replication) so its
    /// own writes are not streamed back. Turning it off leaves only the content check.
    #[serde(default = "default_true")]
    pub mark_writes: bool,
    /// Row changes buffered between source and apply loop: the memory bound.
    #[serde(default = "default_queue_rows")]
    pub queue_rows: usize,
    /// A source transaction with more row changes is applied in chunks of this size (each in
    /// its own target transaction), so one huge transaction cannot exhaust memory.
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: usize,
    /// Most changes parked waiting for a referenced row (a child before its parent); beyond it
    /// such changes go to the dead-letter queue.
    #[serde(default = "default_max_waiting")]
    pub max_waiting: usize,
    /// How often a PostgreSQL source reports its flushed position, in milliseconds.
    #[serde(default = "default_status_interval")]
    pub status_interval_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_max_rows: DEFAULT_BATCH_MAX_ROWS,
            batch_max_txns: DEFAULT_BATCH_MAX_TXNS,
            queue_txns: DEFAULT_QUEUE_TXNS,
            queue_rows: DEFAULT_QUEUE_ROWS,
            mark_writes: true,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            max_waiting: DEFAULT_MAX_WAITING,
            status_interval_ms: DEFAULT_STATUS_INTERVAL_MS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    Postgres,
    Mysql,
}

impl EndpointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Postgres => "postgres",
            EndpointKind::Mysql => "mysql",
        }
    }
}

/// One database. The password comes from `password_file`, else from
/// `$CREDENTIALS_DIRECTORY/<endpoint>` (systemd LoadCredential); never from the config file
/// itself or the environment (both are too easy to leak: `ps e`, `/proc/*/environ`, backups).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// `postgres` or `mysql` (MySQL and MariaDB).
    pub kind: EndpointKind,
    pub host: String,
    /// Default 5432 (postgres) or 3306 (mysql).
    #[serde(default)]
    pub port: Option<u16>,
    pub user: String,
    pub database: String,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// TLS to the server; off unless configured.
    #[serde(default)]
    pub tls: TlsConfig,
    /// postgres: logical replication slot rowbridge owns (created when missing).
    #[serde(default)]
    pub slot: Option<String>,
    /// postgres: publication rowbridge reads (created when missing, extended with mapped tables).
    #[serde(default)]
    pub publication: Option<String>,
    /// mysql: server id rowbridge registers with to read the binlog; unique among replicas.
    #[serde(default)]
    pub server_id: Option<u32>,
}

impl EndpointConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.kind {
            EndpointKind::Postgres => DEFAULT_PG_PORT,
            EndpointKind::Mysql => DEFAULT_MYSQL_PORT,
        })
    }
    pub fn slot(&self) -> &str {
        self.slot.as_deref().unwrap_or(DEFAULT_SLOT)
    }
    pub fn publication(&self) -> &str {
        self.publication.as_deref().unwrap_or(DEFAULT_PUBLICATION)
    }
    pub fn server_id(&self) -> u32 {
        self.server_id.unwrap_or(DEFAULT_SERVER_ID)
    }
}

/// TLS settings of an endpoint (`[endpoints.NAME.tls]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub mode: TlsMode,
    /// PEM file of the certificate authorities to trust (required by verify-ca and
    /// verify-full; the system's roots are never used implicitly).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `disable`: plain TCP. `verify-ca`: encrypted, the server's certificate must chain to
/// `ca_file`. `verify-full`: that, and the certificate must name `host`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    #[default]
    Disable,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// A secret that never shows in Debug or Display output.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

fn default_mappings() -> PathBuf {
    PathBuf::from("mappings")
}
fn default_http() -> String {
    DEFAULT_HTTP.to_string()
}
fn default_batch_rows() -> usize {
    DEFAULT_BATCH_MAX_ROWS
}
fn default_batch_txns() -> usize {
    DEFAULT_BATCH_MAX_TXNS
}
fn default_queue() -> usize {
    DEFAULT_QUEUE_TXNS
}
fn default_true() -> bool {
    true
}
fn default_queue_rows() -> usize {
    DEFAULT_QUEUE_ROWS
}
fn default_chunk_rows() -> usize {
    DEFAULT_CHUNK_ROWS
}
fn default_max_waiting() -> usize {
    DEFAULT_MAX_WAITING
}
fn default_status_interval() -> u64 {
    DEFAULT_STATUS_INTERVAL_MS
}

impl Config {
    /// Read, parse and validate a config file; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            message: format_toml_error(&text, &e),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config
            .validate()
            .and_then(|()| config.check_paths())
            .map_err(|message| Error::ConfigFile {
                path: path.to_path_buf(),
                message,
            })?;
        for (name, ep) in &config.endpoints {
            if let Some(ca) = &ep.tls.ca_file {
                crate::tls::read_ca_file(name, ca)?;
            }
        }
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        join(&mut self.store.path);
        join(&mut self.mappings);
        if let Some(s) = self.admin.socket.as_mut() {
            join(s);
        }
        for ep in self.endpoints.values_mut() {
            if let Some(f) = ep.password_file.as_mut() {
                join(f);
            }
            if let Some(f) = ep.tls.ca_file.as_mut() {
                join(f);
            }
        }
    }

    /// What rowbridge creates at a configured path must never replace something else: the
    /// admin socket path holds nothing or a socket; the store path holds nothing, or a folder
    /// that is empty or a rowbridge store.
    fn check_paths(&self) -> std::result::Result<(), String> {
        use std::os::unix::fs::FileTypeExt;
        let socket = self.admin_socket();
        let field = match self.admin.socket {
            Some(_) => "admin.socket",
            None => "store.path (the admin socket beside it)",
        };
        if let Ok(meta) = std::fs::symlink_metadata(&socket) {
            if !meta.file_type().is_socket() {
                return Err(format!(
                    "{field}: {} exists and is not a socket; rowbridge never replaces it (choose a free path)",
                    socket.display()
                ));
            }
        }
        let store = &self.store.path;
        if let Ok(meta) = std::fs::symlink_metadata(store) {
            if !meta.is_dir() {
                return Err(format!(
                    "store.path: {} exists and is not a folder",
                    store.display()
                ));
            }
            let entries: Vec<String> = std::fs::read_dir(store)
                .map_err(|e| format!("store.path: cannot read {}: {e}", store.display()))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            let is_store = entries.iter().any(|e| e == "conf") && entries.iter().any(|e| e == "db");
            if !entries.is_empty() && !is_store {
                return Err(format!(
                    "store.path: {} is a folder with other files, not a rowbridge store; use an empty or new folder",
                    store.display()
                ));
            }
        }
        Ok(())
    }

    /// Checks that serde cannot express; the error names the field path.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.endpoints.is_empty() {
            return Err("endpoints: at least one endpoint is required".into());
        }
        if !self.admin.http.is_empty() && self.admin.http.parse::<SocketAddr>().is_err() {
            return Err(format!(
                "admin.http: '{}' is not an address:port",
                self.admin.http
            ));
        }
        let p = &self.pipeline;
        for (field, v) in [
            ("pipeline.batch_max_rows", p.batch_max_rows),
            ("pipeline.batch_max_txns", p.batch_max_txns),
            ("pipeline.queue_txns", p.queue_txns),
            ("pipeline.queue_rows", p.queue_rows),
            ("pipeline.chunk_rows", p.chunk_rows),
        ] {
            if v == 0 {
                return Err(format!("{field}: must be at least 1"));
            }
        }
        if p.chunk_rows > p.queue_rows {
            return Err("pipeline.chunk_rows: must not exceed pipeline.queue_rows".into());
        }
        for (name, ep) in &self.endpoints {
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                return Err(format!(
                    "endpoints.{name}: names use letters, digits, _ and -"
                ));
            }
            validate_endpoint(name, ep)?;
        }
        Ok(())
    }

    /// The password for an endpoint, from its file or the systemd credentials folder; empty
    /// when neither exists (trust or peer authentication).
    pub fn password(&self, endpoint: &str) -> Result<Secret> {
        let ep = self
            .endpoints
            .get(endpoint)
            .ok_or_else(|| Error::ConfigFile {
                path: PathBuf::from("config"),
                message: format!("unknown endpoint {endpoint}"),
            })?;
        let conn = ep;
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
                .map_err(|e| Error::ConfigFile {
                    path: path.to_path_buf(),
                    message: format!("endpoints.{endpoint}.password_file: cannot read: {e}"),
                })
        };
        if let Some(file) = &conn.password_file {
            return read(file);
        }
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let file = Path::new(&dir).join(endpoint);
            if file.exists() {
                return read(&file);
            }
        }
        Ok(Secret::default())
    }
}

fn validate_endpoint(name: &str, ep: &EndpointConfig) -> std::result::Result<(), String> {
    if ep.host.is_empty() || ep.user.is_empty() || ep.database.is_empty() {
        return Err(format!(
            "endpoints.{name}: host, user and database are required"
        ));
    }
    let misplaced = match ep.kind {
        EndpointKind::Postgres => ep.server_id.map(|_| "server_id"),
        EndpointKind::Mysql => ep
            .slot
            .as_ref()
            .map(|_| "slot")
            .or(ep.publication.as_ref().map(|_| "publication")),
    };
    if let Some(field) = misplaced {
        return Err(format!(
            "endpoints.{name}.{field}: not a setting of a {} endpoint",
            ep.kind.as_str()
        ));
    }
    let slot_ok = ep
        .slot()
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ep.slot().is_empty() || !slot_ok {
        return Err(format!(
            "endpoints.{name}.slot: use lower-case letters, digits and _"
        ));
    }
    if ep.publication().is_empty() {
        return Err(format!("endpoints.{name}.publication: must not be empty"));
    }
    if ep.server_id() == 0 {
        return Err(format!("endpoints.{name}.server_id: must not be 0"));
    }
    match (ep.tls.mode, &ep.tls.ca_file) {
        (TlsMode::Disable, Some(_)) => {
            return Err(format!(
                "endpoints.{name}.tls.ca_file: set, but tls.mode is disable (use verify-full)"
            ))
        }
        (TlsMode::VerifyCa | TlsMode::VerifyFull, None) => {
            return Err(format!(
                "endpoints.{name}.tls.ca_file: required by tls.mode = \"{}\"",
                ep.tls.mode.as_str()
            ))
        }
        _ => {}
    }
    Ok(())
}

/// toml's message plus the line number, as `line N: message`.
pub(crate) fn format_toml_error(text: &str, err: &toml::de::Error) -> String {
    match err.span() {
        Some(span) => format!("line {}: {}", line_of(text, span.start), err.message()),
        None => err.message().to_string(),
    }
}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[store]
path = "state"

[endpoints.crm]
kind = "postgres"
host = "127.0.0.1"
user = "rowbridge"
database = "crm"

[endpoints.erp]
kind = "mysql"
host = "127.0.0.1"
port = 3307
user = "rowbridge"
database = "erp"
"#;

    #[test]
    fn parses_and_resolves_relative_paths() {
        let mut c: Config = toml::from_str(SAMPLE).unwrap();
        c.resolve_paths(Path::new("/etc/rowbridge"));
        c.validate().unwrap();
        assert_eq!(c.store.path, Path::new("/etc/rowbridge/state"));
        assert_eq!(c.mappings, Path::new("/etc/rowbridge/mappings"));
        assert_eq!(c.endpoints["erp"].port(), 3307);
        assert_eq!(c.endpoints["crm"].port(), DEFAULT_PG_PORT);
        assert_eq!(c.endpoints["crm"].slot(), DEFAULT_SLOT);
    }

    #[test]
    fn unknown_keys_are_rejected_with_line() {
        let text = SAMPLE.replace("database = \"erp\"", "database = \"erp\"\npasword = \"x\"");
        let err = toml::from_str::<Config>(&text).unwrap_err();
        let msg = format_toml_error(&text, &err);
        assert!(msg.contains("pasword"), "{msg}");
        assert!(msg.starts_with("line 17:"), "{msg}");
    }

    #[test]
    fn kind_specific_fields_are_checked() {
        let text = SAMPLE.replace("port = 3307", "port = 3307\nslot = \"x\"");
        let c: Config = toml::from_str(&text).unwrap();
        assert_eq!(
            c.validate().unwrap_err(),
            "endpoints.erp.slot: not a setting of a mysql endpoint"
        );
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
    }

    #[test]
    fn tls_needs_a_ca_file_and_resolves_it() {
        let text = SAMPLE.replace(
            "port = 3307",
            "port = 3307\ntls = { mode = \"verify-full\" }",
        );
        let c: Config = toml::from_str(&text).unwrap();
        assert_eq!(
            c.validate().unwrap_err(),
            "endpoints.erp.tls.ca_file: required by tls.mode = \"verify-full\""
        );
        let text = SAMPLE.replace(
            "port = 3307",
            "port = 3307\ntls = { mode = \"verify-full\", ca_file = \"ca.pem\" }",
        );
        let mut c: Config = toml::from_str(&text).unwrap();
        c.resolve_paths(Path::new("/etc/rowbridge"));
        c.validate().unwrap();
        assert_eq!(
            c.endpoints["erp"].tls.ca_file.as_deref(),
            Some(Path::new("/etc/rowbridge/ca.pem"))
        );
        let bad = SAMPLE.replace("port = 3307", "port = 3307\ntls = { mode = \"require\" }");
        let err = toml::from_str::<Config>(&bad).unwrap_err();
        assert!(
            format_toml_error(&bad, &err).contains("verify-full"),
            "{err}"
        );
    }

    #[test]
    fn password_env_is_gone() {
        let text = SAMPLE.replace("port = 3307", "port = 3307\npassword_env = \"PW\"");
        let err = toml::from_str::<Config>(&text).unwrap_err();
        assert!(err.message().contains("password_env"), "{err}");
    }

    #[test]
    fn bad_http_address_names_field() {
        let mut c: Config = toml::from_str(SAMPLE).unwrap();
        c.admin.http = "localhost".into();
        assert!(c.validate().unwrap_err().starts_with("admin.http"));
    }
}
