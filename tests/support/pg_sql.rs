//! SQL helpers of the private PostgreSQL server: clients, databases, queries, WAL/slots.

use super::pg::PgServer;
use tokio_postgres::types::FromSqlOwned;
use tokio_postgres::{Client, Config, NoTls, Row};

/// Parses a PostgreSQL LSN (`16/B374D848`) into its 64-bit value.
pub fn parse_lsn(s: &str) -> u64 {
    let (hi, lo) = s
        .split_once('/')
        .unwrap_or_else(|| panic!("not an LSN: {s:?}"));
    let hi = u64::from_str_radix(hi, 16).unwrap_or_else(|_| panic!("not an LSN: {s:?}"));
    let lo = u64::from_str_radix(lo, 16).unwrap_or_else(|_| panic!("not an LSN: {s:?}"));
    (hi << 32) | lo
}

impl PgServer {
    /// A superuser client over TCP (SCRAM); the connection task runs on the caller's runtime.
    pub async fn client(&self, db: &str) -> Client {
        let (client, conn) = self
            .config(db)
            .connect(NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to PostgreSQL db {db}: {e}"));
        tokio::spawn(conn);
        client
    }

    /// A superuser client over the unix socket (trust auth: no SCRAM cost).
    pub async fn local_client(&self, db: &str) -> Client {
        let mut c = Config::new();
        c.host_path(&self.dir)
            .port(self.port)
            .user(&self.superuser)
            .dbname(db);
        let (client, conn) = c
            .connect(NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to PostgreSQL db {db} over the socket: {e}"));
        tokio::spawn(conn);
        client
    }

    /// Creates a fresh database `<prefix>_<n>_<rand>` and returns its name.
    pub async fn create_database(&self, prefix: &str) -> String {
        let name = super::unique_name(prefix);
        self.exec("postgres", &format!("CREATE DATABASE \"{name}\""))
            .await;
        name
    }

    /// Drops a database, terminating its sessions.
    pub async fn drop_database(&self, name: &str) {
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        self.exec("postgres", &sql).await;
    }

    /// Runs one or more statements (simple protocol); panics on error.
    pub async fn exec(&self, db: &str, sql: &str) {
        if let Err(e) = self.local_client(db).await.batch_execute(sql).await {
            panic!("PostgreSQL db {db}: {sql}\n-> {e}");
        }
    }

    /// Runs a query without parameters and returns its rows; panics on error.
    pub async fn query_rows(&self, db: &str, sql: &str) -> Vec<Row> {
        match self.local_client(db).await.query(sql, &[]).await {
            Ok(rows) => rows,
            Err(e) => panic!("PostgreSQL db {db}: {sql}\n-> {e}"),
        }
    }

    /// First column of the only row of `sql`.
    pub async fn query_scalar<T: FromSqlOwned>(&self, db: &str, sql: &str) -> T {
        match self.local_client(db).await.query_one(sql, &[]).await {
            Ok(row) => row.get(0),
            Err(e) => panic!("PostgreSQL db {db}: {sql}\n-> {e}"),
        }
    }

    /// `SHOW <setting>`.
    pub async fn show(&self, setting: &str) -> String {
        assert!(setting
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_'));
        self.query_scalar("postgres", &format!("SHOW {setting}"))
            .await
    }

    /// `pg_current_wal_lsn()`.
    pub async fn current_wal_lsn(&self) -> u64 {
        let s: String = self
            .query_scalar("postgres", "SELECT pg_current_wal_lsn()::text")
            .await;
        parse_lsn(&s)
    }

    /// `column` of the slot's row in `pg_replication_slots` (`None`: no such slot).
    async fn slot_row(&self, slot: &str, column: &str) -> Option<Row> {
        let sql = format!("SELECT {column} FROM pg_replication_slots WHERE slot_name = $1");
        let client = self.local_client("postgres").await;
        let rows = client.query(&sql, &[&slot]).await;
        rows.unwrap_or_else(|e| panic!("read slot {slot}: {e}"))
            .pop()
    }

    /// The slot's `confirmed_flush_lsn`; `None` if the slot does not exist (or has none).
    pub async fn slot_confirmed_flush_lsn(&self, slot: &str) -> Option<u64> {
        let row = self.slot_row(slot, "confirmed_flush_lsn::text").await?;
        row.get::<_, Option<String>>(0).map(|s| parse_lsn(&s))
    }

    /// Whether a walsender is attached to the slot (`None`: no such slot).
    pub async fn slot_active(&self, slot: &str) -> Option<bool> {
        Some(self.slot_row(slot, "active").await?.get(0))
    }
}
