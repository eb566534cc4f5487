//! Table descriptions from MySQL/MariaDB's information_schema.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::{LiveColumn, LiveTable};
use crate::error::{Error, Result};

pub async fn describe(
    conn: &mut Conn,
    endpoint: &str,
    schema: &str,
    table: &str,
) -> Result<Option<LiveTable>> {
    let err = |e| Error::mysql(endpoint, e);
    let cols: Vec<(String, String, String, String, Option<String>)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, EXTRA, COLUMN_DEFAULT FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(err)?;
    if cols.is_empty() {
        return Ok(None);
    }
    let idx: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (schema, table),
        )
        .await
        .map_err(err)?;
    let mut unique_keys: Vec<(String, Vec<String>)> = Vec::new();
    for (index, column) in idx {
        match unique_keys.last_mut() {
            Some((name, cols)) if *name == index => cols.push(column),
            _ => unique_keys.push((index, vec![column])),
        }
    }
    Ok(Some(LiveTable {
        columns: cols
            .into_iter()
            .map(|(name, data_type, nullable, extra, default)| {
                let extra = extra.to_ascii_uppercase();
                LiveColumn {
                    name,
                    data_type,
                    nullable: nullable == "YES",
                    generated: ["GENERATED", "VIRTUAL", "PERSISTENT", "STORED"]
                        .iter()
                        .any(|g| extra.contains(g)),
                    has_default: default.is_some() || extra.contains("AUTO_INCREMENT"),
                }
            })
            .collect(),
        unique_keys: unique_keys.into_iter().map(|(_, c)| c).collect(),
        case_insensitive: true,
    }))
}
