//! Errors and the one place that classifies them.
//!
//! Every failure is sorted into one of four classes, and the class alone decides what happens:
//! transient errors are retried with exponential backoff, row errors send that row to the
//! dead-letter queue while the rest keeps flowing, endpoint-fatal errors stop the flow without a
//! hot retry loop, and configuration errors stop the process with exit code 78.

use std::path::PathBuf;

use thiserror::Error;

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Network, timeout, deadlock, too many connections: retry with backoff.
    Transient,
    /// This row cannot be applied (constraint, type, mapping): dead-letter it, keep going.
    Row,
    /// Authentication, privilege, slot dropped, binlog purged: stop the flow, alert.
    EndpointFatal,
    /// Bad configuration or mapping: exit 78.
    Config,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Row => "row",
            ErrorClass::EndpointFatal => "endpoint_fatal",
            ErrorClass::Config => "config",
        }
    }
}

#[derive(Debug, Error)]
pub enum Error {
    #[error("{path}: {message}")]
    ConfigFile { path: PathBuf, message: String },

    #[error("{file}:{line}: {message}")]
    Mapping {
        file: PathBuf,
        line: usize,
        message: String,
    },

    /// A database setting that CDC needs is wrong; `hint` says how to fix it.
    #[error("endpoint {endpoint}: {message}; fix: {hint}")]
    EndpointSetup {
        endpoint: String,
        message: String,
        hint: String,
    },

    #[error("endpoint {endpoint}: {}", pg_text(source))]
    Postgres {
        endpoint: String,
        #[source]
        source: tokio_postgres::Error,
    },

    #[error("endpoint {endpoint}: replication: {source}")]
    Replication {
        endpoint: String,
        #[source]
        source: pgwire_replication::PgWireError,
    },

    #[error("endpoint {endpoint}: {source}")]
    Mysql {
        endpoint: String,
        #[source]
        source: mysql_async::Error,
    },

    /// A TLS handshake failed (untrusted or misnamed certificate, no TLS on the server).
    #[error("endpoint {endpoint}: {message}")]
    Tls { endpoint: String, message: String },

    #[error("endpoint {endpoint}: protocol: {message}")]
    Protocol { endpoint: String, message: String },

    /// A row that cannot be mapped or applied. Never carries the row's values.
    #[error("table {table}, key {key}: {reason}")]
    Row {
        table: String,
        key: String,
        reason: String,
    },

    #[error("store: {0}")]
    Store(String),

    #[error(
        "store {0} is locked by another process (is the daemon running? use its admin socket)"
    )]
    StoreLocked(String),

    #[error("{0}")]
    Io(#[from] std::io::Error),

    /// A command used wrongly (exit 2).
    #[error("{0}")]
    Usage(String),

    /// Several configuration problems, one per line.
    #[error("{0}")]
    Invalid(String),

    #[error("shutting down")]
    Shutdown,

    /// An ops command the daemon refused or failed, with the exit code it chose.
    #[error("{message}")]
    Command { message: String, exit: i32 },

    /// An ops command needs the running daemon and none answers on the admin socket.
    #[error("{0}")]
    Unreachable(String),

    /// An operator moved the checkpoint: the flow's session restarts from it at once.
    #[error("restarting from a new checkpoint")]
    Restart,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A server error's SQLSTATE and message (never its detail, which can quote row values).
fn pg_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl Error {
    pub fn mapping(file: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        Error::Mapping {
            file: file.into(),
            line,
            message: message.into(),
        }
    }

    pub fn setup(endpoint: &str, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::EndpointSetup {
            endpoint: endpoint.to_string(),
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn pg(endpoint: &str, source: tokio_postgres::Error) -> Self {
        Error::Postgres {
            endpoint: endpoint.to_string(),
            source,
        }
    }

    pub fn mysql(endpoint: &str, source: mysql_async::Error) -> Self {
        Error::Mysql {
            endpoint: endpoint.to_string(),
            source,
        }
    }

    /// The single classifier: every retry / dead-letter / stop decision goes through here.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::ConfigFile { .. } | Error::Mapping { .. } | Error::Invalid(_) => {
                ErrorClass::Config
            }
            Error::EndpointSetup { .. } => ErrorClass::Config,
            Error::Postgres { source, .. } => classify_pg(source),
            Error::Replication { source, .. } => classify_replication(source),
            Error::Mysql { source, .. } => classify_mysql(source),
            Error::Protocol { .. } => ErrorClass::Transient,
            // Retrying cannot make a certificate trusted: stop, alert, wait for a reload.
            Error::Tls { .. } => ErrorClass::EndpointFatal,
            Error::Row { .. } => ErrorClass::Row,
            Error::Store(_) | Error::StoreLocked(_) => ErrorClass::EndpointFatal,
            Error::Io(_) => ErrorClass::Transient,
            Error::Shutdown
            | Error::Restart
            | Error::Usage(_)
            | Error::Unreachable(_)
            | Error::Command { .. } => ErrorClass::Transient,
        }
    }

    /// The database refused a transaction because another session's write got in the way
    /// (serialization failure, deadlock, lock wait timeout): retrying it is the fix.
    pub fn is_lock_conflict(&self) -> bool {
        match self {
            Error::Postgres { source, .. } => source
                .as_db_error()
                .is_some_and(|db| matches!(db.code().code(), "40001" | "40P01")),
            Error::Mysql {
                source: mysql_async::Error::Server(se),
                ..
            } => matches!(se.code, 1205 | 1213),
            _ => false,
        }
    }

    /// Exit code for the binary: 78 (EX_CONFIG) for configuration errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::StoreLocked(_) => return 75,
            // EX_UNAVAILABLE
            Error::Unreachable(_) => return 69,
            Error::Command { exit, .. } => return *exit,
            Error::Usage(_) => return 2,
            _ => {}
        }
        match self.class() {
            ErrorClass::Config => 78,
            _ => 1,
        }
    }
}

/// PostgreSQL SQLSTATE classes: 08 connection, 40 rollback (deadlock, serialization), 53
/// resources, 57 operator intervention (shutdown), 28 auth, 42501 privilege, 22/23 data.
fn classify_pg(err: &tokio_postgres::Error) -> ErrorClass {
    let Some(db) = err.as_db_error() else {
        return ErrorClass::Transient;
    };
    classify_sqlstate(db.code().code())
}

pub(crate) fn classify_sqlstate(code: &str) -> ErrorClass {
    match &code[..2.min(code.len())] {
        "08" | "40" | "53" | "57" | "55" | "58" | "XX" => ErrorClass::Transient,
        "28" => ErrorClass::EndpointFatal,
        // Data exceptions, integrity constraints, a trigger raising for this row, an index
        // row too large for its page.
        "22" | "23" | "2B" | "44" => ErrorClass::Row,
        "P0" if code == "P0001" => ErrorClass::Row,
        "54" if code == "54000" => ErrorClass::Row,
        "42" if code == "42501" => ErrorClass::EndpointFatal,
        "42" => ErrorClass::EndpointFatal,
        _ => ErrorClass::EndpointFatal,
    }
}

fn classify_replication(err: &pgwire_replication::PgWireError) -> ErrorClass {
    use pgwire_replication::PgWireError as E;
    match err {
        E::Auth(_) => ErrorClass::EndpointFatal,
        E::Server(text) => {
            if text.contains("28P01") || text.contains("28000") || text.contains("42501") {
                ErrorClass::EndpointFatal
            } else if text.contains("does not exist") {
                // Slot or publication dropped behind our back: resync, not a hot retry.
                ErrorClass::EndpointFatal
            } else {
                ErrorClass::Transient
            }
        }
        _ => ErrorClass::Transient,
    }
}

/// MySQL/MariaDB server error numbers, by what retrying would achieve.
fn classify_mysql(err: &mysql_async::Error) -> ErrorClass {
    match err {
        mysql_async::Error::Server(se) => classify_mysql_code(se.code),
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => ErrorClass::Transient,
        mysql_async::Error::Url(_) => ErrorClass::Config,
        _ => ErrorClass::Transient,
    }
}

pub(crate) fn classify_mysql_code(code: u16) -> ErrorClass {
    match code {
        // Lock wait timeout, deadlock, too many connections, server shutdown, gone away, lost.
        // 4052: another replica connected with our server id and the server dropped us (also
        // what a restarted daemon does to its own leftover session): retry with backoff.
        1205 | 1213 | 1040 | 1053 | 2006 | 2013 | 1159 | 1161 | 1317 | 3024 | 4052 => {
            ErrorClass::Transient
        }
        // Access denied, no such grant, command denied, account locked.
        1044 | 1045 | 1142 | 1143 | 1227 | 1370 | 3118 | 4151 => ErrorClass::EndpointFatal,
        // Binlog purged / slave fatal read error: needs a resync, never a silent restart.
        1236 => ErrorClass::EndpointFatal,
        // Unknown table/column/database: the schema moved under the mapping.
        1146 | 1054 | 1049 => ErrorClass::EndpointFatal,
        // Row refusals: this row cannot be written, the next one may. Duplicate key on a
        // second unique index (1062, 1169, 1586, 1859), NULL into NOT NULL (1048, 1263), a NOT
        // NULL column without default left out of an insert (1364), too long (1406), out of
        // range (1264, 1690), truncated or bad value (1265, 1292, 1300, 1366, 1367, 1411, 1441,
        // 1525, 1918), division by zero in a value (1365), foreign keys (1216, 1217, 1451,
        // 1452, 1557), check constraints (3819, 4025), invalid JSON (3140), no partition for
        // the value (1526, 1748), a value for a generated column (1906).
        1022 | 1048 | 1062 | 1169 | 1216 | 1217 | 1251 | 1263 | 1264 | 1265 | 1292 | 1300
        | 1364 | 1365 | 1366 | 1367 | 1406 | 1411 | 1441 | 1451 | 1452 | 1525 | 1526 | 1557
        | 1586 | 1690 | 1748 | 1859 | 1906 | 1918 | 3140 | 3819 | 4025 => ErrorClass::Row,
        _ => ErrorClass::EndpointFatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_codes_classify() {
        assert_eq!(classify_mysql_code(1213), ErrorClass::Transient);
        assert_eq!(classify_mysql_code(1205), ErrorClass::Transient);
        assert_eq!(classify_mysql_code(1045), ErrorClass::EndpointFatal);
        assert_eq!(classify_mysql_code(1406), ErrorClass::Row);
        assert_eq!(classify_mysql_code(1292), ErrorClass::Row);
        assert_eq!(classify_mysql_code(1236), ErrorClass::EndpointFatal);
        for row in [1364, 1062, 1366, 1048, 1452, 4025, 3819, 1918] {
            assert_eq!(classify_mysql_code(row), ErrorClass::Row, "{row}");
        }
    }

    #[test]
    fn sqlstates_classify() {
        assert_eq!(classify_sqlstate("08006"), ErrorClass::Transient);
        assert_eq!(classify_sqlstate("40P01"), ErrorClass::Transient);
        assert_eq!(classify_sqlstate("28P01"), ErrorClass::EndpointFatal);
        assert_eq!(classify_sqlstate("23505"), ErrorClass::Row);
        assert_eq!(classify_sqlstate("22001"), ErrorClass::Row);
        assert_eq!(classify_sqlstate("42501"), ErrorClass::EndpointFatal);
        assert_eq!(classify_sqlstate("23502"), ErrorClass::Row);
        assert_eq!(classify_sqlstate("22003"), ErrorClass::Row);
        assert_eq!(classify_sqlstate("P0001"), ErrorClass::Row);
        assert_eq!(classify_sqlstate("P0002"), ErrorClass::EndpointFatal);
    }

    #[test]
    fn config_errors_exit_78() {
        let e = Error::mapping("mappings/x.toml", 3, "unknown column");
        assert_eq!(e.exit_code(), 78);
        assert_eq!(e.to_string(), "mappings/x.toml:3: unknown column");
    }
}
