//! Checks what binlog replication needs on a MySQL/MariaDB endpoint.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::error::{Error, Result};
use crate::position::Position;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    Mysql,
}

/// Verify the binlog settings; returns the server flavor.
pub async fn verify_settings(conn: &mut Conn, endpoint: &str) -> Result<Flavor> {
    let err = |e| Error::mysql(endpoint, e);
    let version: String = conn
        .query_first("SELECT @@version")
        .await
        .map_err(err)?
        .unwrap_or_default();
    let flavor = if version.contains("MariaDB") {
        Flavor::MariaDb
    } else {
        Flavor::Mysql
    };
    let settings: Vec<(String, String)> = conn
        .query(
            "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES \
             WHERE VARIABLE_NAME IN ('LOG_BIN', 'BINLOG_FORMAT', 'BINLOG_ROW_IMAGE', 'BINLOG_ROW_METADATA')",
        )
        .await
        .or_else(|_| Ok::<_, mysql_async::Error>(Vec::new()))
        .map_err(err)?;
    let settings = if settings.is_empty() {
        show_variables(conn, endpoint).await?
    } else {
        settings
    };
    let get = |name: &str| {
        settings
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_uppercase())
            .unwrap_or_default()
    };
    let want = [
        ("log_bin", "ON"),
        ("binlog_format", "ROW"),
        ("binlog_row_image", "FULL"),
        ("binlog_row_metadata", "FULL"),
    ];
    for (name, value) in want {
        let got = get(name);
        if got != value {
            let shown = if got.is_empty() {
                "unset".to_string()
            } else {
                format!("'{got}'")
            };
            return Err(Error::setup(
                endpoint,
                format!("{name} is {shown}, row replication needs {value}"),
                format!("set {name} = {value} in the [mysqld] section of the server configuration and restart the server"),
            ));
        }
    }
    Ok(flavor)
}

async fn show_variables(conn: &mut Conn, endpoint: &str) -> Result<Vec<(String, String)>> {
    conn.query("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', 'binlog_row_image', 'binlog_row_metadata')")
        .await
        .map_err(|e| Error::mysql(endpoint, e))
}

/// Where the binlog ends now: where a flow with no checkpoint starts. The GTID state is read
/// before the file offset, so a commit in between is streamed again (harmless), never skipped.
pub async fn current_position(conn: &mut Conn, endpoint: &str, flavor: Flavor) -> Result<Position> {
    let err = |e| Error::mysql(endpoint, e);
    let gtid: Option<String> = match flavor {
        Flavor::MariaDb => conn
            .query_first("SELECT @@gtid_binlog_pos")
            .await
            .map_err(err)?,
        Flavor::Mysql => None,
    };
    let status: Option<mysql_async::Row> =
        conn.query_first("SHOW MASTER STATUS").await.map_err(err)?;
    let Some(row) = status else {
        return Err(Error::setup(
            endpoint,
            "the server writes no binary log",
            "enable log_bin and restart the server",
        ));
    };
    let file: String = row.get(0).unwrap_or_default();
    let offset: u64 = row.get(1).unwrap_or(4);
    Ok(match gtid {
        Some(gtid) => Position::Gtid { gtid, file, offset },
        None => Position::File { file, offset },
    })
}
