//! Table descriptions from PostgreSQL's catalog.

use super::{LiveColumn, LiveTable};
use crate::error::{Error, Result};
use crate::source::postgres::PgConn;

pub async fn describe(conn: &PgConn, namespace: &str, table: &str) -> Result<Option<LiveTable>> {
    let err = |e| Error::pg(&conn.endpoint, e);
    let cols = conn
        .client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, \
                    a.attgenerated <> '', a.atthasdef OR a.attidentity <> '' \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&namespace, &table],
        )
        .await
        .map_err(err)?;
    if cols.is_empty() {
        return Ok(None);
    }
    let keys = conn
        .client
        .query(
            "SELECT array_agg(a.attname::text ORDER BY k.ord) \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
             WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indpred IS NULL \
               AND i.indexprs IS NULL \
             GROUP BY i.indexrelid",
            &[&namespace, &table],
        )
        .await
        .map_err(err)?;
    Ok(Some(LiveTable {
        columns: cols
            .iter()
            .map(|r| LiveColumn {
                name: r.get(0),
                data_type: r.get(1),
                nullable: r.get(2),
                generated: r.get(3),
                has_default: r.get(4),
            })
            .collect(),
        unique_keys: keys.iter().map(|r| r.get(0)).collect(),
        case_insensitive: false,
    }))
}
