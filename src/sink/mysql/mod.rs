//! MySQL/MariaDB sink: multi-row `INSERT ... ON DUPLICATE KEY UPDATE` and deletes by key.
//!
//! The session runs in strict mode (`STRICT_ALL_TABLES`, no zero dates) so a value that does not
//! fit is an error for that row instead of a silent truncation, and with `time_zone = '+00:00'`:
//! instants (PostgreSQL `timestamptz`) are written as UTC wall-clock time, which a `TIMESTAMP`
//! column stores exactly and a `DATETIME` column holds as UTC.

mod apply;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use crate::config::{EndpointConfig, Secret};
use crate::error::{Error, Result};
use crate::mapping::TargetOp;
use crate::sink::Applied;

pub use apply::quote_ident;

const SESSION_SETUP: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
    "SET SESSION time_zone = '+00:00'",
];

pub struct MysqlSink {
    pub endpoint: String,
    conn: Conn,
}

/// Connection options for an endpoint (shared with the binlog source and the catalog).
pub fn opts(cfg: &EndpointConfig, password: &Secret) -> OptsBuilder {
    let mut b = OptsBuilder::default()
        .ip_or_hostname(cfg.host.clone())
        .tcp_port(cfg.port())
        .user(Some(cfg.user.clone()))
        .db_name(Some(cfg.database.clone()))
        .stmt_cache_size(256)
        .conn_ttl(None::<Duration>)
        .prefer_socket(false);
    if !password.expose().is_empty() {
        b = b.pass(Some(password.expose().to_string()));
    }
    b
}

impl MysqlSink {
    pub async fn connect(endpoint: &str, cfg: &EndpointConfig, password: &Secret) -> Result<Self> {
        let opts = opts(cfg, password).init(SESSION_SETUP.iter().map(|s| s.to_string()).collect());
        let conn = Conn::new(opts)
            .await
            .map_err(|e| Error::mysql(endpoint, e))?;
        Ok(MysqlSink {
            endpoint: endpoint.to_string(),
            conn,
        })
    }

    /// Apply `ops` in one transaction; see the sink contract in [`crate::sink`].
    pub async fn apply(&mut self, ops: &[TargetOp]) -> Result<Applied> {
        let ep = self.endpoint.clone();
        let err = |e| Error::mysql(&ep, e);
        self.conn
            .query_drop("START TRANSACTION")
            .await
            .map_err(err)?;
        let result = apply::apply_runs(&mut self.conn, &ep, ops).await;
        match result {
            Ok(applied) => {
                self.conn.query_drop("COMMIT").await.map_err(err)?;
                Ok(applied)
            }
            Err(e) => {
                let _ = self.conn.query_drop("ROLLBACK").await;
                Err(e)
            }
        }
    }
}
