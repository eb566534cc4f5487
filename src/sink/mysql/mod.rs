//! MySQL/MariaDB sink: multi-row `INSERT ... ON DUPLICATE KEY UPDATE` and deletes by key.
//!
//! Exact or refused: every value goes through its column's encoder (`columns`), which sends it
//! as it is or refuses the row naming the column and why. `ON DUPLICATE KEY UPDATE` fires on
//! any unique index and needs every NOT NULL column without default even for a row that
//! exists, so a table with another unique index than the mapping's key, or with such a column
//! the mapping does not carry, is written the split way: lock and read which keys exist, update
//! those by key, plain-insert the rest. A write then never reaches a row with another key (a
//! collision on the other index is a dead letter naming it) and updates need only the mapped
//! columns. The information is read once per table from information_schema.
//!
//! The session runs in strict mode (`STRICT_ALL_TABLES`, no zero dates) so a value that does not
//! fit is an error for that row instead of a silent truncation, and with `time_zone = '+00:00'`:
//! instants (PostgreSQL `timestamptz`) are written as UTC wall-clock time, which a `TIMESTAMP`
//! column stores exactly and a `DATETIME` column holds as UTC.

mod apply;
mod columns;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use crate::config::{EndpointConfig, Secret};
use crate::error::{Error, Result};
use crate::mapping::TargetOp;
use crate::sink::Applied;

pub use apply::{from_mysql, quote_ident, to_mysql};

const SESSION_SETUP: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
    "SET SESSION time_zone = '+00:00'",
];

pub struct MysqlSink {
    pub endpoint: String,
    conn: Conn,
    pub(crate) bulk: crate::sink::Bulk,
    /// Column facts of the tables written so far (read once per table and session).
    tables: apply::Tables,
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
        .prefer_socket(false)
        .ssl_opts(crate::tls::mysql_opts(cfg));
    if !password.expose().is_empty() {
        b = b.pass(Some(password.expose().to_string()));
    }
    b
}

/// Open a connection; a failed TLS handshake becomes an error saying what to fix.
pub async fn connect_conn(
    endpoint: &str,
    cfg: &EndpointConfig,
    opts: impl Into<mysql_async::Opts>,
) -> Result<Conn> {
    Conn::new(opts).await.map_err(|e| {
        let server_error = matches!(e, mysql_async::Error::Server(_));
        match crate::tls::explain(&crate::tls::chain_text(&e), cfg) {
            Some(message) if !server_error => Error::Tls {
                endpoint: endpoint.to_string(),
                message,
            },
            _ => Error::mysql(endpoint, e),
        }
    })
}

impl MysqlSink {
    pub async fn connect(
        endpoint: &str,
        cfg: &EndpointConfig,
        password: &Secret,
        mark_writes: bool,
    ) -> Result<Self> {
        let opts = opts(cfg, password).init(SESSION_SETUP.iter().map(|s| s.to_string()).collect());
        let mut conn = connect_conn(endpoint, cfg, opts).await?;
        // MariaDB marks every event of this session (flag 0x8000): the binlog source of the
        // other direction recognises rowbridge's own writes by it and drops them.
        if !mark_writes {
            tracing::info!(
                endpoint,
                "writes are not marked (pipeline.mark_writes = false)"
            );
        } else if let Err(e) = conn.query_drop("SET SESSION skip_replication = 1").await {
            tracing::warn!(endpoint, error = %e, "cannot mark rowbridge's writes (not MariaDB?): echo suppression is off for this endpoint");
        }
        // MariaDB writes each row statement's text into the binlog before its rows (an
        // Annotate_rows event): for a 1 024-row upsert that is the whole statement with every
        // value spelled out, about a tenth of the server's work per row. The rows themselves
        // are what the other direction and any replica read; the text only helps a human
        // reading `mariadb-binlog`. Not MariaDB, or not allowed: keep the server's setting.
        if let Err(e) = conn
            .query_drop("SET SESSION binlog_annotate_row_events = 0")
            .await
        {
            tracing::debug!(endpoint, error = %e, "binlog annotations stay on for rowbridge's writes");
        }
        Ok(MysqlSink {
            endpoint: endpoint.to_string(),
            conn,
            bulk: crate::sink::Bulk::Off,
            tables: apply::Tables::new(),
        })
    }

    /// See [`crate::sink::Sink::adopt`].
    pub async fn adopt(
        &mut self,
        table: &crate::mapping::TargetTable,
        match_cols: &[usize],
        match_vals: &[crate::model::Value],
        key_vals: &[crate::model::Value],
    ) -> Result<crate::sink::Adopted> {
        let q = |i: &usize| apply::quote_ident(&table.columns[*i]);
        let cond: Vec<String> = match_cols
            .iter()
            .map(|i| format!("{} = ?", q(i)))
            .chain(table.key.iter().map(|i| format!("{} IS NULL", q(i))))
            .collect();
        let name = format!(
            "{}.{}",
            apply::quote_ident(&table.namespace),
            apply::quote_ident(&table.name)
        );
        let params: Vec<mysql_async::Value> = match_vals.iter().map(apply::to_mysql).collect();
        let ep = self.endpoint.clone();
        let count: Option<u64> = self
            .conn
            .exec_first(
                format!("SELECT COUNT(*) FROM {name} WHERE {}", cond.join(" AND ")),
                params.clone(),
            )
            .await
            .map_err(|e| Error::mysql(&ep, e))?;
        match count.unwrap_or(0) {
            0 => Ok(crate::sink::Adopted::Nothing),
            1 => {
                let sets: Vec<String> = table.key.iter().map(|i| format!("{} = ?", q(i))).collect();
                let mut all: Vec<mysql_async::Value> =
                    key_vals.iter().map(apply::to_mysql).collect();
                all.extend(params);
                let sql = format!(
                    "UPDATE {name} SET {} WHERE {}",
                    sets.join(", "),
                    cond.join(" AND ")
                );
                self.conn
                    .exec_drop(sql, all)
                    .await
                    .map_err(|e| Error::mysql(&ep, e))?;
                Ok(crate::sink::Adopted::One)
            }
            n => Ok(crate::sink::Adopted::Ambiguous(n)),
        }
    }

    /// Apply `ops` in one transaction; see the sink contract in [`crate::sink`].
    pub async fn apply(&mut self, ops: &[TargetOp]) -> Result<Applied> {
        self.begin().await?;
        match self.apply_in_txn(ops).await {
            Ok(applied) => {
                self.commit().await?;
                Ok(applied)
            }
            Err(e) => {
                self.rollback().await;
                Err(e)
            }
        }
    }

    pub async fn begin(&mut self) -> Result<()> {
        self.exec("START TRANSACTION").await
    }

    pub async fn commit(&mut self) -> Result<()> {
        self.exec("COMMIT").await
    }

    pub async fn rollback(&mut self) {
        let _ = self.conn.query_drop("ROLLBACK").await;
    }

    pub async fn apply_in_txn(&mut self, ops: &[TargetOp]) -> Result<Applied> {
        for op in ops {
            let key = apply::table_key(op.table());
            if !self.tables.contains_key(&key) {
                let facts = columns::load(&mut self.conn, &self.endpoint, op.table()).await?;
                self.tables.insert(key, facts);
            }
        }
        let applied = apply::apply_runs(
            &mut self.conn,
            &self.endpoint,
            &mut self.bulk,
            &self.tables,
            ops,
        )
        .await?;
        // A refusal may come from a table changed since its facts were read (an operator
        // widening the column before replaying the dead letters): read them again next time.
        for (i, _) in &applied.failed {
            self.tables.remove(&apply::table_key(ops[*i].table()));
        }
        Ok(applied)
    }

    async fn exec(&mut self, sql: &str) -> Result<()> {
        let ep = &self.endpoint;
        self.conn
            .query_drop(sql)
            .await
            .map_err(|e| Error::mysql(ep, e))
    }

    /// The current rows with these keys, locked until the transaction ends (`FOR UPDATE`),
    /// as `(key values, row)` in the table's column order.
    pub async fn read_rows(
        &mut self,
        table: &crate::mapping::TargetTable,
        keys: &[Vec<crate::model::Value>],
    ) -> Result<Vec<Vec<crate::model::Value>>> {
        let q = |i: &usize| apply::quote_ident(&table.columns[*i]);
        let cols: Vec<String> = (0..table.columns.len()).map(|i| q(&i)).collect();
        let key_cols: Vec<String> = table.key.iter().map(q).collect();
        let name = format!(
            "{}.{}",
            apply::quote_ident(&table.namespace),
            apply::quote_ident(&table.name)
        );
        let mut out = Vec::new();
        for chunk in keys.chunks(500) {
            let one = format!("({})", vec!["?"; key_cols.len()].join(", "));
            let sql = format!(
                "SELECT {} FROM {name} WHERE ({}) IN ({}) FOR UPDATE",
                cols.join(", "),
                key_cols.join(", "),
                vec![one.as_str(); chunk.len()].join(", ")
            );
            let params: Vec<mysql_async::Value> =
                chunk.iter().flatten().map(apply::to_mysql).collect();
            let ep = self.endpoint.clone();
            let rows: Vec<mysql_async::Row> = self
                .conn
                .exec(sql, params)
                .await
                .map_err(|e| Error::mysql(&ep, e))?;
            for row in rows {
                let columns = row.columns();
                let values = row.unwrap();
                out.push(
                    values
                        .into_iter()
                        .zip(columns.iter())
                        .map(|(v, c)| apply::from_mysql(v, c))
                        .collect(),
                );
            }
        }
        Ok(out)
    }

    /// Create the progress table if it is missing (see [`crate::sink::PROGRESS_TABLE`]).
    pub async fn ensure_progress(&mut self) -> Result<()> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (flow VARCHAR(190) PRIMARY KEY, position VARCHAR(1000) NOT NULL)",
            crate::sink::PROGRESS_TABLE
        );
        self.exec(&sql).await
    }

    /// Inside the batch's transaction: the source position this commit reaches.
    pub async fn write_progress(&mut self, flow: &str, position: &str) -> Result<()> {
        let ep = self.endpoint.clone();
        self.conn
            .exec_drop(
                format!(
                    "INSERT INTO {} (flow, position) VALUES (?, ?) ON DUPLICATE KEY UPDATE position = VALUES(position)",
                    crate::sink::PROGRESS_TABLE
                ),
                (flow, position),
            )
            .await
            .map_err(|e| Error::mysql(&ep, e))
    }

    pub async fn read_progress(&mut self, flow: &str) -> Result<Option<String>> {
        let ep = self.endpoint.clone();
        self.conn
            .exec_first(
                format!(
                    "SELECT position FROM {} WHERE flow = ?",
                    crate::sink::PROGRESS_TABLE
                ),
                (flow,),
            )
            .await
            .map_err(|e| Error::mysql(&ep, e))
    }

    /// The end of the binary log now: every transaction committed before is at or before it.
    pub async fn position(&mut self) -> Result<crate::position::Position> {
        let ep = self.endpoint.clone();
        let row: Option<mysql_async::Row> = self
            .conn
            .query_first("SHOW MASTER STATUS")
            .await
            .map_err(|e| Error::mysql(&ep, e))?;
        let row = row.ok_or_else(|| {
            Error::setup(
                &ep,
                "the binary log is off, so conflicts cannot be ordered",
                "set log_bin (rowbridge check lists the settings)",
            )
        })?;
        let file: String = row.get(0).unwrap_or_default();
        let offset: u64 = row.get(1).unwrap_or_default();
        Ok(crate::position::Position::File { file, offset })
    }
}
