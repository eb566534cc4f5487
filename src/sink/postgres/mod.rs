//! PostgreSQL sink: `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE` and deletes by
//! key, one target transaction per batch.
//!
//! Every value travels as text and is cast to the target column's base type in SQL, so
//! PostgreSQL's own input functions do the conversion (exact for numeric, timestamps, json...).
//! Casting to the base type (not `varchar(20)`) makes an over-long value an error instead of a
//! silent truncation; a decimal with more fractional digits than a `numeric(p,s)` column keeps
//! is refused here for the same reason. The session runs with `TimeZone = UTC`, so a MySQL
//! DATETIME (no zone) written to a `timestamptz` column is read as UTC, the mirror of the sink
//! rule for MySQL.

mod apply;
mod exact;

use std::collections::HashMap;
use std::sync::Arc;

use tokio_postgres::Statement;

use crate::config::{EndpointConfig, Secret};
use crate::error::{Error, Result};
use crate::mapping::TargetOp;
use crate::sink::Applied;
use crate::source::postgres::PgConn;

/// A target column: base type for the cast, numeric scale when it has one.
#[derive(Debug, Clone)]
pub(crate) struct ColumnType {
    pub base: String,
    pub numeric_scale: Option<i32>,
    /// Type OID (a domain's base type), to read values back as the source decoder does.
    pub oid: u32,
    /// Fraction digits a timestamp/timestamptz/time column keeps (`timestamp(3)`), if limited.
    pub fraction_digits: Option<i32>,
    /// The type modifier (-1 when none): numeric precision and scale, character length,
    /// fractional second digits.
    pub typmod: i32,
    /// The full type (`numeric(10,2)`, `character varying(20)`), for reasons.
    pub display: String,
    /// NOT NULL, no default, not identity or generated: an insert must carry it.
    pub required: bool,
}

pub struct PgSink {
    pub endpoint: String,
    conn: PgConn,
    types: HashMap<(String, String), Arc<HashMap<String, ColumnType>>>,
    statements: HashMap<String, Statement>,
    pub(crate) bulk: crate::sink::Bulk,
}

/// Tag every transaction of this session with a replication origin, so the PostgreSQL source
/// of this database drops rowbridge's own writes. The origin name is unique per target
/// database (origins are cluster-wide and one session may hold an origin at a time).
async fn mark_origin(conn: &PgConn, cfg: &EndpointConfig, flow_source: &str) -> Result<()> {
    let name = origin_name(&cfg.database, flow_source);
    let sql = format!(
        "SELECT pg_replication_origin_create('{name}') WHERE pg_replication_origin_oid('{name}') IS NULL; \
         SELECT pg_replication_origin_session_setup('{name}')"
    );
    conn.client.batch_execute(&sql).await.map_err(|e| match e.as_db_error() {
        Some(db) if db.code().code() == "42501" => Error::setup(
            &conn.endpoint,
            "the rowbridge role may not tag its writes with a replication origin",
            "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_oid(text), \
             pg_replication_origin_session_setup(text) TO the rowbridge role",
        ),
        _ => Error::pg(&conn.endpoint, e),
    })
}

/// `rowbridge_<database>_<source endpoint>` (hex-encoded when a name has other characters),
/// at most 63 bytes: one origin per flow into this database, since only one session may hold
/// an origin at a time.
pub fn origin_name(database: &str, flow_source: &str) -> String {
    let part = |s: &str| {
        if s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            s.to_string()
        } else {
            s.bytes().map(|b| format!("{b:02x}")).collect()
        }
    };
    let tail = format!("{}_{}", part(database), part(flow_source));
    let mut name = format!("{}_{tail}", crate::model::ORIGIN_PREFIX);
    name.truncate(63);
    name
}

impl PgSink {
    /// Connect and, with a `flow_source`, tag the session as the writer of that flow.
    pub async fn connect(
        endpoint: &str,
        cfg: &EndpointConfig,
        password: &Secret,
        flow_source: Option<&str>,
    ) -> Result<PgSink> {
        let conn = PgConn::connect(endpoint, cfg, password).await?;
        conn.client
            .batch_execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET bytea_output = 'hex'")
            .await
            .map_err(|e| Error::pg(endpoint, e))?;
        if let Some(source) = flow_source {
            mark_origin(&conn, cfg, source).await?;
        }
        Ok(PgSink {
            endpoint: endpoint.to_string(),
            conn,
            types: HashMap::new(),
            statements: HashMap::new(),
            bulk: crate::sink::Bulk::Off,
        })
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
        self.exec("BEGIN").await
    }

    pub async fn begin_repeatable_read(&mut self) -> Result<()> {
        self.exec("BEGIN ISOLATION LEVEL REPEATABLE READ").await
    }

    pub async fn commit(&mut self) -> Result<()> {
        self.exec("COMMIT").await
    }

    pub async fn rollback(&mut self) {
        let _ = self.conn.client.batch_execute("ROLLBACK").await;
    }

    async fn exec(&mut self, sql: &str) -> Result<()> {
        self.conn
            .client
            .batch_execute(sql)
            .await
            .map_err(|e| Error::pg(&self.endpoint, e))
    }

    pub async fn apply_in_txn(&mut self, ops: &[TargetOp]) -> Result<Applied> {
        for op in ops {
            self.load_types(op).await?;
        }
        let applied = apply::apply_runs(self, ops).await?;
        // A refusal may come from a table changed since its types were read: read them again
        // next time (the replay after an operator's fix sees the new column).
        for (i, _) in &applied.failed {
            let t = ops[*i].table();
            self.types.remove(&(t.namespace.clone(), t.name.clone()));
        }
        Ok(applied)
    }

    /// The current rows with these keys, locked until the transaction ends (`FOR UPDATE`), in
    /// the table's column order, each value as the pgoutput decoder would give it.
    pub async fn read_rows(
        &mut self,
        t: &crate::mapping::TargetTable,
        keys: &[Vec<crate::model::Value>],
    ) -> Result<Vec<Vec<crate::model::Value>>> {
        self.load_table_types(t).await?;
        let types = self.types[&(t.namespace.clone(), t.name.clone())].clone();
        let q = crate::source::postgres::quote_ident;
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("{}::text", q(c)))
            .collect();
        let key_cols: Vec<String> = t.key.iter().map(|&i| q(&t.columns[i])).collect();
        let casts: Vec<String> = t
            .key
            .iter()
            .enumerate()
            .map(|(n, &i)| format!("u.k{n}::{}", types[&t.columns[i]].base))
            .collect();
        let params: Vec<String> = (1..=t.key.len()).map(|n| format!("${n}::text[]")).collect();
        let aliases: Vec<String> = (0..t.key.len()).map(|n| format!("k{n}")).collect();
        let sql = format!(
            "SELECT {} FROM {}.{} WHERE ({}) IN (SELECT {} FROM unnest({}) AS u({})) FOR UPDATE",
            cols.join(", "),
            q(&t.namespace),
            q(&t.name),
            key_cols.join(", "),
            casts.join(", "),
            params.join(", "),
            aliases.join(", ")
        );
        let mut arrays: Vec<Vec<Option<String>>> = vec![Vec::new(); t.key.len()];
        for key in keys {
            for (n, v) in key.iter().enumerate() {
                arrays[n].push(apply::to_text(v, None).map_err(|r| self.row(t, r))?);
            }
        }
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = arrays
            .iter()
            .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let ep = self.endpoint.clone();
        let rows = self
            .conn
            .client
            .query(&sql, &refs)
            .await
            .map_err(|e| Error::pg(&ep, e))?;
        let oids: Vec<u32> = t.columns.iter().map(|c| types[c].oid).collect();
        rows.iter()
            .map(|r| {
                (0..t.columns.len())
                    .map(|i| match r.get::<_, Option<&str>>(i) {
                        None => Ok(crate::model::Value::Null),
                        Some(text) => {
                            crate::source::postgres::values::from_text(oids[i], text.as_bytes())
                                .map_err(|reason| self.row(t, reason))
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Create the progress table if it is missing (see [`crate::sink::PROGRESS_TABLE`]).
    pub async fn ensure_progress(&mut self) -> Result<()> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (flow text PRIMARY KEY, position text NOT NULL)",
            crate::sink::PROGRESS_TABLE
        );
        self.exec(&sql).await
    }

    /// Inside the batch's transaction: the source position this commit reaches.
    pub async fn write_progress(&mut self, flow: &str, position: &str) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (flow, position) VALUES ($1, $2) ON CONFLICT (flow) DO UPDATE SET position = EXCLUDED.position",
            crate::sink::PROGRESS_TABLE
        );
        self.conn
            .client
            .execute(&sql, &[&flow, &position])
            .await
            .map(|_| ())
            .map_err(|e| Error::pg(&self.endpoint, e))
    }

    pub async fn read_progress(&mut self, flow: &str) -> Result<Option<String>> {
        let sql = format!(
            "SELECT position FROM {} WHERE flow = $1",
            crate::sink::PROGRESS_TABLE
        );
        let row = self
            .conn
            .client
            .query_opt(&sql, &[&flow])
            .await
            .map_err(|e| Error::pg(&self.endpoint, e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// The WAL insert position now, and a marked WAL record after it in this transaction, so
    /// the source of this database reads past the position as soon as the transaction commits.
    pub async fn position(&mut self, mark: bool) -> Result<crate::position::Position> {
        let ep = self.endpoint.clone();
        let row = if mark {
            self.conn
                .client
                .query_one(
                    "SELECT pg_current_wal_insert_lsn()::text, \
                            pg_logical_emit_message(true, $1, 'conflict')::text",
                    &[&crate::model::ORIGIN_PREFIX],
                )
                .await
        } else {
            self.conn
                .client
                .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
                .await
        }
        .map_err(|e| Error::pg(&ep, e))?;
        let lsn: String = row.get(0);
        crate::position::Position::parse(&lsn).ok_or_else(|| Error::Protocol {
            endpoint: ep,
            message: format!("unreadable WAL position '{lsn}'"),
        })
    }

    /// See [`crate::sink::Sink::adopt`].
    pub async fn adopt(
        &mut self,
        t: &crate::mapping::TargetTable,
        match_cols: &[usize],
        match_vals: &[crate::model::Value],
        key_vals: &[crate::model::Value],
    ) -> Result<crate::sink::Adopted> {
        self.load_table_types(t).await?;
        let types = self.types[&(t.namespace.clone(), t.name.clone())].clone();
        let q = crate::source::postgres::quote_ident;
        let mut params: Vec<Option<String>> = Vec::new();
        let mut cond = Vec::new();
        for (i, v) in match_cols.iter().zip(match_vals) {
            params.push(apply::to_text(v, None).map_err(|r| self.row(t, r))?);
            cond.push(format!(
                "{} = ${}::text::{}",
                q(&t.columns[*i]),
                params.len(),
                types[&t.columns[*i]].base
            ));
        }
        cond.extend(
            t.key
                .iter()
                .map(|i| format!("{} IS NULL", q(&t.columns[*i]))),
        );
        let name = format!("{}.{}", q(&t.namespace), q(&t.name));
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let ep = self.endpoint.clone();
        let row = self
            .conn
            .client
            .query_one(
                &format!("SELECT count(*) FROM {name} WHERE {}", cond.join(" AND ")),
                &refs,
            )
            .await
            .map_err(|e| Error::pg(&ep, e))?;
        match row.get::<_, i64>(0) {
            0 => Ok(crate::sink::Adopted::Nothing),
            1 => {
                let mut all = params.clone();
                let mut sets = Vec::new();
                for (i, v) in t.key.iter().zip(key_vals) {
                    all.push(apply::to_text(v, None).map_err(|r| self.row(t, r))?);
                    sets.push(format!(
                        "{} = ${}::text::{}",
                        q(&t.columns[*i]),
                        all.len(),
                        types[&t.columns[*i]].base
                    ));
                }
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = all
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let sql = format!(
                    "UPDATE {name} SET {} WHERE {}",
                    sets.join(", "),
                    cond.join(" AND ")
                );
                self.conn
                    .client
                    .execute(&sql, &refs)
                    .await
                    .map_err(|e| Error::pg(&ep, e))?;
                Ok(crate::sink::Adopted::One)
            }
            n => Ok(crate::sink::Adopted::Ambiguous(n as u64)),
        }
    }

    fn row(&self, t: &crate::mapping::TargetTable, reason: String) -> Error {
        Error::Row {
            table: format!("{}:{}", t.endpoint, t),
            key: String::new(),
            reason,
        }
    }

    async fn load_types(&mut self, op: &TargetOp) -> Result<()> {
        self.load_table_types(op.table()).await
    }

    async fn load_table_types(&mut self, t: &crate::mapping::TargetTable) -> Result<()> {
        let key = (t.namespace.clone(), t.name.clone());
        if self.types.contains_key(&key) {
            return Ok(());
        }
        let map = column_types(&self.conn, &t.namespace, &t.name).await?;
        for c in &t.columns {
            if !map.contains_key(c) {
                return Err(Error::setup(
                    &self.endpoint,
                    format!("column '{c}' of {t} does not exist"),
                    "fix the mapping or the table, then restart",
                ));
            }
        }
        self.types.insert(key, Arc::new(map));
        Ok(())
    }
}

/// The columns of a table: base type (for casts), numeric scale and type OID (to read values
/// as the pgoutput decoder does). Shared by the sink and the resync/verify reader.
pub(crate) async fn column_types(
    conn: &PgConn,
    namespace: &str,
    table: &str,
) -> Result<HashMap<String, ColumnType>> {
    let rows = conn
        .client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, NULL), \
                    CASE WHEN a.atttypid = 'numeric'::regtype AND a.atttypmod >= 4 \
                         THEN (a.atttypmod - 4) & 65535 END, \
                    CASE WHEN ty.typbasetype <> 0 THEN ty.typbasetype ELSE a.atttypid END, \
                    CASE WHEN a.atttypid IN ('timestamp'::regtype, 'timestamptz'::regtype, \
                         'time'::regtype, 'timetz'::regtype) AND a.atttypmod >= 0 \
                         THEN a.atttypmod END, \
                    CASE WHEN ty.typbasetype <> 0 THEN ty.typtypmod ELSE a.atttypmod END, \
                    format_type(a.atttypid, a.atttypmod), \
                    a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_type ty ON ty.oid = a.atttypid \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&namespace, &table],
        )
        .await
        .map_err(|e| Error::pg(&conn.endpoint, e))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                ColumnType {
                    base: r.get(1),
                    numeric_scale: r.get(2),
                    oid: r.get(3),
                    fraction_digits: r.get(4),
                    typmod: r.get(5),
                    display: r.get(6),
                    required: r.get(7),
                },
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::origin_name;

    #[test]
    fn origin_names_are_per_flow_and_fit() {
        assert_eq!(origin_name("crm", "erp"), "rowbridge_crm_erp");
        assert_ne!(origin_name("crm", "erp"), origin_name("crm", "shop"));
        assert_eq!(origin_name("my-db", "erp"), "rowbridge_6d792d6462_erp");
        assert!(origin_name(&"x".repeat(100), "erp").len() <= 63);
        assert!(crate::model::is_own_write(Some(&origin_name("crm", "erp"))));
    }
}
