//! Checks and creates what logical replication needs on a PostgreSQL endpoint.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::config::{EndpointConfig, Secret};
use crate::error::{Error, Result};
use crate::mapping::TableRef;
use crate::position::Position;

/// A plain (non-replication) connection to a PostgreSQL endpoint.
pub struct PgConn {
    pub endpoint: String,
    pub client: Client,
}

impl PgConn {
    pub async fn connect(
        endpoint: &str,
        cfg: &EndpointConfig,
        password: &Secret,
    ) -> Result<PgConn> {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&cfg.host)
            .port(cfg.port())
            .user(&cfg.user)
            .dbname(&cfg.database)
            .application_name("rowbridge")
            .connect_timeout(Duration::from_secs(10))
            .keepalives_idle(Duration::from_secs(30));
        if !password.expose().is_empty() {
            pg.password(password.expose());
        }
        let name = endpoint.to_string();
        let failed = |e: tokio_postgres::Error| match crate::tls::explain(
            &crate::tls::chain_text(&e),
            cfg,
        ) {
            Some(message) if e.as_db_error().is_none() => Error::Tls {
                endpoint: endpoint.to_string(),
                message,
            },
            _ => Error::pg(endpoint, e),
        };
        let client = match crate::tls::client_config(endpoint, cfg)? {
            None => {
                let (client, connection) = pg.connect(NoTls).await.map_err(failed)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(endpoint = %name, error = %e, "postgres connection closed");
                    }
                });
                client
            }
            Some(tls) => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
                let (client, connection) = pg.connect(tls).await.map_err(failed)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(endpoint = %name, error = %e, "postgres connection closed");
                    }
                });
                client
            }
        };
        Ok(PgConn {
            endpoint: endpoint.to_string(),
            client,
        })
    }

    fn err(&self, e: tokio_postgres::Error) -> Error {
        Error::pg(&self.endpoint, e)
    }

    pub async fn setting(&self, name: &str) -> Result<String> {
        let row = self
            .client
            .query_one("SELECT current_setting($1)", &[&name])
            .await
            .map_err(|e| self.err(e))?;
        Ok(row.get(0))
    }
}

/// Quote an identifier for PostgreSQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn qualified(ns: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(ns), quote_ident(table))
}

/// Validate settings and tables, then make sure publication and slot exist.
/// Returns where the slot stands (its `confirmed_flush_lsn`, or where it was just created):
/// the start of a flow that has no checkpoint yet.
pub async fn prepare(
    conn: &PgConn,
    cfg: &EndpointConfig,
    tables: &[&TableRef],
    checkpoint: Option<&Position>,
) -> Result<Option<Position>> {
    verify_settings(conn, tables).await?;
    ensure_publication(conn, cfg.publication(), tables).await?;
    ensure_slot(conn, cfg.slot(), checkpoint).await
}

/// Where an existing slot stands (`confirmed_flush_lsn`); None when there is no such slot.
pub async fn slot_position(conn: &PgConn, slot: &str) -> Result<Option<Position>> {
    let row = conn
        .client
        .query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| conn.err(e))?;
    Ok(row.map(|r| {
        let lsn: Option<String> = r.get(0);
        lsn.as_deref()
            .and_then(Position::parse)
            .unwrap_or(Position::Lsn(0))
    }))
}

/// Settings and table properties logical replication needs; changes nothing.
pub async fn verify_settings(conn: &PgConn, tables: &[&TableRef]) -> Result<()> {
    let ep = conn.endpoint.as_str();
    let wal_level = conn.setting("wal_level").await?;
    if wal_level != "logical" {
        return Err(Error::setup(
            ep,
            format!("wal_level is '{wal_level}', logical replication needs 'logical'"),
            "run ALTER SYSTEM SET wal_level = logical (or set it in postgresql.conf) and restart PostgreSQL",
        ));
    }
    for t in tables {
        check_replica_identity(conn, t).await?;
    }
    Ok(())
}

async fn check_replica_identity(conn: &PgConn, t: &TableRef) -> Result<()> {
    let sql = "SELECT c.relreplident::text, \
                      EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')";
    let rows = conn
        .client
        .query(sql, &[&t.namespace, &t.table])
        .await
        .map_err(|e| conn.err(e))?;
    // A missing table is reported against its mapping file line by the catalog check.
    let Some(row) = rows.first() else {
        return Ok(());
    };
    let ident: String = row.get(0);
    let has_pk: bool = row.get(1);
    let name = qualified(&t.namespace, &t.table);
    let usable = match ident.as_str() {
        "f" | "i" => true,
        "d" => has_pk,
        _ => false,
    };
    if !usable {
        return Err(Error::setup(
            &conn.endpoint,
            format!(
                "table {name} has REPLICA IDENTITY {} and {}: updates and deletes would carry no key",
                if ident == "n" { "NOTHING" } else { "DEFAULT" },
                if has_pk { "a primary key" } else { "no primary key" }
            ),
            format!("add a primary key, or run ALTER TABLE {name} REPLICA IDENTITY FULL"),
        ));
    }
    Ok(())
}

async fn ensure_publication(conn: &PgConn, publication: &str, tables: &[&TableRef]) -> Result<()> {
    let c = &conn.client;
    let exists = c
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| conn.err(e))?;
    let names: Vec<String> = tables
        .iter()
        .map(|t| qualified(&t.namespace, &t.table))
        .collect();
    match exists {
        None => {
            let sql = format!(
                "CREATE PUBLICATION {} FOR TABLE {}",
                quote_ident(publication),
                names.join(", ")
            );
            c.batch_execute(&sql).await.map_err(|e| {
                Error::setup(
                    &conn.endpoint,
                    format!("cannot create publication: {}", db_message(&e)),
                    owner_must_run(&sql),
                )
            })?;
            tracing::info!(endpoint = %conn.endpoint, publication, "created publication");
        }
        Some(row) if row.get::<_, bool>(0) => {}
        Some(_) => {
            let mut missing = Vec::new();
            for (t, name) in tables.iter().zip(&names) {
                let present = c
                    .query_opt(
                        "SELECT 1 FROM pg_publication_tables \
                         WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                        &[&publication, &t.namespace, &t.table],
                    )
                    .await
                    .map_err(|e| conn.err(e))?;
                if present.is_none() {
                    missing.push(name.clone());
                }
            }
            if !missing.is_empty() {
                let sql = format!(
                    "ALTER PUBLICATION {} ADD TABLE {}",
                    quote_ident(publication),
                    missing.join(", ")
                );
                c.batch_execute(&sql).await.map_err(|e| {
                    Error::setup(
                        &conn.endpoint,
                        format!("cannot extend publication: {}", db_message(&e)),
                        owner_must_run(&sql),
                    )
                })?;
                tracing::info!(endpoint = %conn.endpoint, publication, added = missing.len(), "extended publication");
            }
        }
    }
    Ok(())
}

async fn ensure_slot(
    conn: &PgConn,
    slot: &str,
    checkpoint: Option<&Position>,
) -> Result<Option<Position>> {
    let c = &conn.client;
    let row = c
        .query_opt(
            "SELECT plugin, database = current_database() FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| conn.err(e))?;
    match row {
        Some(r) => {
            let plugin: Option<String> = r.get(0);
            let same_db: Option<bool> = r.get(1);
            if plugin.as_deref() != Some("pgoutput") || same_db != Some(true) {
                return Err(Error::setup(
                    &conn.endpoint,
                    format!("replication slot '{slot}' exists but is not a pgoutput slot of this database"),
                    "choose another slot name in the endpoint config, or drop that slot",
                ));
            }
        }
        None if checkpoint.is_some() => {
            return Err(Error::setup(
                &conn.endpoint,
                format!(
                    "replication slot '{slot}' is gone but the store has a checkpoint ({}); changes made since are lost",
                    checkpoint.map(|p| p.to_string()).unwrap_or_default()
                ),
                "run `rowbridge checkpoint reset` for this flow and `rowbridge resync` the mapped tables",
            ));
        }
        None => {
            c.query(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&slot],
            )
            .await
            .map_err(|e| {
                Error::setup(
                    &conn.endpoint,
                    format!(
                        "cannot create replication slot '{slot}': {}",
                        db_message(&e)
                    ),
                    "grant the rowbridge role REPLICATION and raise max_replication_slots if full",
                )
            })?;
            tracing::info!(endpoint = %conn.endpoint, slot, "created replication slot");
        }
    }
    slot_position(conn, slot).await
}

/// PostgreSQL 15 lets only a table's owner add it to a publication, and a least-privilege role
/// owns no mapped table (docs/security.md): an administrator runs the statement once, then
/// `systemctl reload rowbridge` makes the stopped flow try again.
fn owner_must_run(sql: &str) -> String {
    format!("as the owner of the tables (or a superuser) run: {sql}; then reload rowbridge")
}

fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}
