//! One catalog connection per endpoint, whatever its kind.

use mysql_async::Conn;

use super::LiveTable;
use crate::config::{EndpointConfig, EndpointKind, Secret};
use crate::error::Result;
use crate::mapping::TableRef;
use crate::source::postgres::PgConn;

pub enum Catalog {
    Postgres(PgConn),
    Mysql { endpoint: String, conn: Conn },
}

impl Catalog {
    pub async fn connect(
        endpoint: &str,
        cfg: &EndpointConfig,
        password: &Secret,
    ) -> Result<Catalog> {
        Ok(match cfg.kind {
            EndpointKind::Postgres => {
                Catalog::Postgres(PgConn::connect(endpoint, cfg, password).await?)
            }
            EndpointKind::Mysql => {
                let opts = crate::sink::mysql::opts(cfg, password);
                let conn = crate::sink::mysql::connect_conn(endpoint, cfg, opts).await?;
                Catalog::Mysql {
                    endpoint: endpoint.to_string(),
                    conn,
                }
            }
        })
    }

    pub async fn describe(&mut self, t: &TableRef) -> Result<Option<LiveTable>> {
        match self {
            Catalog::Postgres(conn) => super::describe_postgres(conn, &t.namespace, &t.table).await,
            Catalog::Mysql { endpoint, conn } => {
                super::describe_mysql(conn, endpoint, &t.namespace, &t.table).await
            }
        }
    }

    /// Settings a source of this kind needs (wal_level and replica identity; binlog settings).
    pub async fn verify_source(&mut self, tables: &[&TableRef]) -> Result<()> {
        match self {
            Catalog::Postgres(conn) => crate::source::postgres::verify_settings(conn, tables).await,
            Catalog::Mysql { endpoint, conn } => {
                crate::source::mysql::verify_settings(conn, endpoint)
                    .await
                    .map(|_| ())
            }
        }
    }

    pub async fn close(self) {
        if let Catalog::Mysql { conn, .. } = self {
            let _ = conn.disconnect().await;
        }
    }
}
