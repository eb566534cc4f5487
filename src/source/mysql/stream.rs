//! One binlog session: events in, whole transactions out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::binlog::events::{
    Event, EventData, OptionalMetaExtractor, OptionalMetadataField, RowsEventData, TableMapEvent,
};
use mysql_async::binlog::EventType;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest};
use tokio_util::sync::CancellationToken;

use super::charset::Charset;
use super::decode::{self, ColumnInfo};
use super::gtid::{self, GtidState};
use super::rows;
use crate::config::{EndpointConfig, Secret};
use crate::error::{Error, Result};
use crate::model::{ColumnSchema, Op, RowChange, RowImage, TableSchema, Transaction};
use crate::position::Position;
use crate::source::{Outbox, SourceEvent};

pub struct MysqlSource {
    pub endpoint: String,
    pub cfg: EndpointConfig,
    pub password: Secret,
    /// `(database, table)` of mapped tables, lower-cased (MySQL names compare case-insensitively).
    pub tables: HashSet<(String, String)>,
    /// Server heartbeat period while the binlog is idle.
    pub heartbeat: Duration,
    /// A transaction with more row changes than this is handed on in chunks.
    pub chunk_rows: usize,
}

/// A mapped table as the latest table map event describes it.
#[derive(Debug, PartialEq)]
struct TableInfo {
    schema: Arc<TableSchema>,
    columns: Vec<ColumnInfo>,
}

/// `LOG_EVENT_SKIP_REPLICATION_F`: the event was written with `skip_replication = 1`, which is
/// how rowbridge's MariaDB sink marks its own writes.
const SKIP_REPLICATION_FLAG: u16 = 0x8000;

struct OpenTxn {
    /// Written by rowbridge (marked): an echo the pipeline must not apply back.
    own: bool,
    gtid: Option<gtid::Gtid>,
    standalone: bool,
    changes: Vec<RowChange>,
}

impl MysqlSource {
    /// Stream from `start` until an error or `shutdown`.
    pub async fn run(
        &self,
        start: Position,
        out: Outbox,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let mut stream = self.open(&start).await?;
        tracing::info!(endpoint = %self.endpoint, start = %start, "binlog streaming started");
        let (gtid_state, file) = match &start {
            Position::Gtid { gtid, file, .. } => (
                GtidState::parse(gtid).map_err(|m| self.protocol(m))?,
                file.clone(),
            ),
            Position::File { file, .. } => (GtidState::default(), file.clone()),
            Position::Lsn(_) => {
                return Err(self.protocol("a PostgreSQL position for a binlog source".into()))
            }
        };
        let by_name = self.known_tables().await?;
        let mut state = State {
            source: self,
            file,
            gtid: gtid_state,
            by_gtid: matches!(start, Position::Gtid { .. }),
            open: None,
            tables: HashMap::new(),
            by_name,
            after: start.clone(),
        };
        loop {
            let event = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Err(Error::Shutdown),
                ev = stream.next() => ev,
            };
            let event = match event {
                Some(Ok(ev)) => ev,
                Some(Err(e)) => return Err(self.stream_error(e, &state.after)),
                None => return Err(self.protocol("binlog stream ended".into())),
            };
            if let Some(ev) = state.handle(&event, &stream)? {
                out.send(ev).await?;
            }
        }
    }

    /// Column names and keys of the mapped tables from information_schema, so a statement such
    /// as TRUNCATE that arrives before any row event of its table still names its columns. The
    /// first table map event of a table replaces this description.
    async fn known_tables(&self) -> Result<HashMap<(String, String), Arc<TableInfo>>> {
        let opts = crate::sink::mysql::opts(&self.cfg, &self.password);
        let mut conn = crate::sink::mysql::connect_conn(&self.endpoint, &self.cfg, opts).await?;
        let mut out = HashMap::new();
        for (db, table) in &self.tables {
            let cols: Vec<(String, String, String, String)> = conn
                .exec(
                    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_KEY FROM information_schema.COLUMNS \
                     WHERE LOWER(TABLE_SCHEMA) = ? AND LOWER(TABLE_NAME) = ? ORDER BY ORDINAL_POSITION",
                    (db, table),
                )
                .await
                .map_err(|e| Error::mysql(&self.endpoint, e))?;
            let Some((real_db, real_table, ..)) = cols.first().cloned() else {
                continue;
            };
            let schema = TableSchema {
                namespace: real_db,
                name: real_table,
                columns: cols
                    .iter()
                    .map(|(_, _, name, key)| ColumnSchema {
                        name: name.clone(),
                        type_name: String::new(),
                        key: key == "PRI",
                    })
                    .collect(),
            };
            let columns = cols
                .into_iter()
                .map(|(_, _, name, _)| ColumnInfo {
                    name,
                    ..ColumnInfo::default()
                })
                .collect();
            out.insert(
                (db.clone(), table.clone()),
                Arc::new(TableInfo {
                    schema: Arc::new(schema),
                    columns,
                }),
            );
        }
        let _ = conn.disconnect().await;
        Ok(out)
    }

    async fn open(&self, start: &Position) -> Result<BinlogStream> {
        let opts = crate::sink::mysql::opts(&self.cfg, &self.password);
        let mut conn = crate::sink::mysql::connect_conn(&self.endpoint, &self.cfg, opts).await?;
        let period_ns = self.heartbeat.as_nanos().min(4_294_967_000_000_000) as u64;
        let mut setup = vec![format!("SET @master_heartbeat_period = {period_ns}")];
        let request = BinlogStreamRequest::new(self.cfg.server_id());
        let request = match start {
            Position::Gtid { gtid, .. } => {
                setup.push("SET @mariadb_slave_capability = 4".into());
                setup.push(format!(
                    "SET @slave_connect_state = '{}'",
                    gtid.replace('\'', "")
                ));
                setup.push("SET @slave_gtid_strict_mode = 0".into());
                request
            }
            Position::File { file, offset } => {
                // Borrowed for the request's lifetime only: the request is sent right away.
                let file: &'static [u8] = Box::leak(file.clone().into_bytes().into_boxed_slice());
                request.with_filename(file).with_pos(*offset)
            }
            Position::Lsn(_) => {
                return Err(self.protocol("a PostgreSQL position for a binlog source".into()))
            }
        };
        for sql in setup {
            conn.query_drop(sql)
                .await
                .map_err(|e| Error::mysql(&self.endpoint, e))?;
        }
        conn.get_binlog_stream(request)
            .await
            .map_err(|e| self.stream_error(e, start))
    }

    fn protocol(&self, message: String) -> Error {
        Error::Protocol {
            endpoint: self.endpoint.clone(),
            message,
        }
    }

    /// A purged binlog (1236) stops the flow with the way out; other errors keep their class.
    fn stream_error(&self, e: mysql_async::Error, at: &Position) -> Error {
        if let mysql_async::Error::Server(se) = &e {
            if se.code == 1236 {
                return Error::setup(
                    &self.endpoint,
                    format!("the binlog at the stored position ({at}) is no longer on the server: {}", se.message),
                    "run `rowbridge checkpoint reset` for this flow and `rowbridge resync` the mapped tables",
                );
            }
            // The login has already worked on this connection, so an access error here is the
            // missing replication privilege, although MariaDB words it as a failed login (1045).
            if matches!(se.code, 1045 | 1227) {
                return Error::setup(
                    &self.endpoint,
                    format!("the server refused to send its binlog: {}", se.message),
                    "GRANT REPLICATION SLAVE ON *.* TO the rowbridge user (docs/security.md), then reload rowbridge",
                );
            }
        }
        Error::mysql(&self.endpoint, e)
    }
}

struct State<'a> {
    source: &'a MysqlSource,
    file: String,
    gtid: GtidState,
    by_gtid: bool,
    open: Option<OpenTxn>,
    /// Mapped tables by table id (None: seen, not mapped).
    tables: HashMap<u64, Option<Arc<TableInfo>>>,
    /// Mapped tables by (database, table), for statements such as TRUNCATE.
    by_name: HashMap<(String, String), Arc<TableInfo>>,
    /// Position after the last committed group.
    after: Position,
}

impl State<'_> {
    fn handle(&mut self, event: &Event, stream: &BinlogStream) -> Result<Option<SourceEvent>> {
        let header = event.header();
        let raw_type = header.event_type_raw();
        if raw_type == gtid::MARIADB_GTID {
            let ev = gtid::decode_gtid_event(event.data(), header.server_id())
                .map_err(|m| self.err(m))?;
            self.open = Some(OpenTxn {
                own: header.flags_raw() & SKIP_REPLICATION_FLAG != 0,
                gtid: Some(ev.gtid),
                standalone: ev.standalone(),
                changes: Vec::new(),
            });
            return Ok(None);
        }
        if raw_type == gtid::MARIADB_GTID_LIST || raw_type == gtid::MARIADB_BINLOG_CHECKPOINT {
            return Ok(None);
        }
        let offset = header.log_pos() as u64;
        if header.event_type() == Ok(EventType::HEARTBEAT_EVENT) {
            return Ok(self.heartbeat(offset));
        }
        let data = match event.read_data() {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.err(format!("cannot read a binlog event: {e}"))),
        };
        match data {
            EventData::RotateEvent(r) => {
                self.file = rotate_name(r.name_raw());
                Ok(None)
            }
            EventData::TableMapEvent(tme) => {
                self.table_map(&tme)?;
                Ok(None)
            }
            EventData::RowsEvent(rows) => {
                if header.flags_raw() & SKIP_REPLICATION_FLAG != 0 {
                    if let Some(t) = self.open.as_mut() {
                        t.own = true;
                    }
                }
                self.rows(&rows, stream)?;
                Ok(self.chunk())
            }
            EventData::XidEvent(_) => Ok(self.commit(offset, header.timestamp())),
            EventData::QueryEvent(q) => {
                let sql = q.query();
                let upper = sql.trim_start().get(..8).unwrap_or("").to_ascii_uppercase();
                if upper.starts_with("BEGIN") {
                    if self.open.is_none() {
                        self.open = Some(OpenTxn {
                            own: header.flags_raw() & SKIP_REPLICATION_FLAG != 0,
                            gtid: None,
                            standalone: false,
                            changes: Vec::new(),
                        });
                    }
                    return Ok(None);
                }
                if upper.starts_with("COMMIT") {
                    return Ok(self.commit(offset, header.timestamp()));
                }
                if upper.starts_with("TRUNCATE") {
                    self.truncate(&q.schema(), &sql)?;
                }
                // A standalone statement (DDL) is a group of its own.
                let standalone = self.open.as_ref().is_none_or(|t| t.standalone);
                if standalone {
                    return Ok(self.commit(offset, header.timestamp()));
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    fn err(&self, message: String) -> Error {
        Error::Protocol {
            endpoint: self.source.endpoint.clone(),
            message,
        }
    }

    fn position(&self, offset: u64) -> Position {
        if self.by_gtid {
            Position::Gtid {
                gtid: self.gtid.to_string(),
                file: self.file.clone(),
                offset,
            }
        } else {
            Position::File {
                file: self.file.clone(),
                offset,
            }
        }
    }

    fn heartbeat(&mut self, offset: u64) -> Option<SourceEvent> {
        if self.open.is_some() || offset == 0 {
            return None;
        }
        let pos = self.position(offset);
        let ahead = pos.compare(&self.after).is_some_and(|o| o.is_gt());
        ahead.then(|| {
            self.after = pos.clone();
            SourceEvent::Heartbeat(pos)
        })
    }

    /// Hand on the open group's changes so far when it has grown past the chunk size; the chunk
    /// stands at the previous group's end, where a restart would read the group again.
    fn chunk(&mut self) -> Option<SourceEvent> {
        let chunk_rows = self.source.chunk_rows;
        let t = self
            .open
            .as_mut()
            .filter(|t| t.changes.len() >= chunk_rows)?;
        Some(SourceEvent::Txn(Transaction {
            endpoint: self.source.endpoint.clone(),
            position: self.after.clone(),
            commit_time_us: chrono::Utc::now().timestamp_micros(),
            origin: t.own.then(|| crate::model::ORIGIN_PREFIX.to_string()),
            changes: std::mem::take(&mut t.changes),
            partial: true,
        }))
    }

    fn commit(&mut self, offset: u64, timestamp: u32) -> Option<SourceEvent> {
        let txn = self.open.take()?;
        if let Some(g) = txn.gtid {
            self.gtid.apply(g);
        }
        let position = self.position(offset);
        self.after = position.clone();
        if txn.changes.is_empty() {
            return Some(SourceEvent::Heartbeat(position));
        }
        Some(SourceEvent::Txn(Transaction {
            endpoint: self.source.endpoint.clone(),
            position,
            commit_time_us: timestamp as i64 * 1_000_000,
            origin: txn.own.then(|| crate::model::ORIGIN_PREFIX.to_string()),
            changes: txn.changes,
            partial: false,
        }))
    }

    fn table_map(&mut self, tme: &TableMapEvent<'_>) -> Result<()> {
        let key = (
            tme.database_name().to_lowercase(),
            tme.table_name().to_lowercase(),
        );
        if !self.source.tables.contains(&key) {
            self.tables.insert(tme.table_id(), None);
            return Ok(());
        }
        let info = table_info(tme).map_err(|m| {
            Error::setup(
                &self.source.endpoint,
                format!("table {}.{}: {m}", key.0, key.1),
                "set binlog_row_metadata = FULL on the server (column names and keys come from it)",
            )
        })?;
        // Keep the same Arc while the table is unchanged: bindings are cached per schema.
        let info = match self.by_name.get(&key) {
            Some(old) if **old == info => old.clone(),
            _ => Arc::new(info),
        };
        self.by_name.insert(key, info.clone());
        self.tables.insert(tme.table_id(), Some(info));
        Ok(())
    }

    fn rows(&mut self, rows: &RowsEventData<'_>, stream: &BinlogStream) -> Result<()> {
        let Some(Some(info)) = self.tables.get(&rows.table_id()).cloned() else {
            return Ok(());
        };
        let tme = stream.get_tme(rows.table_id()).ok_or_else(|| {
            self.err(format!(
                "rows event for unknown table id {}",
                rows.table_id()
            ))
        })?;
        let op = match rows {
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_) => Op::Insert,
            RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_) => Op::Update,
            RowsEventData::PartialUpdateRowsEvent(_) => Op::Update,
            RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => Op::Delete,
        };
        let Some(open) = self.open.as_mut() else {
            return Err(Error::Protocol {
                endpoint: self.source.endpoint.clone(),
                message: "row event outside a transaction".into(),
            });
        };
        let undecodable = |e: String| Error::Protocol {
            endpoint: self.source.endpoint.clone(),
            message: format!("cannot decode a row of {}: {e}", info.schema),
        };
        let schema = &info.schema;
        let mut push = |before, after, invalid| {
            open.changes.push(RowChange {
                table: schema.clone(),
                op,
                before,
                after,
                invalid,
            })
        };
        if let RowsEventData::PartialUpdateRowsEvent(_) = rows {
            // MySQL 8's partial JSON updates: mysql_common's iterator knows the shared image.
            for row in rows.rows(tme) {
                let (before, after) = row.map_err(|e| undecodable(e.to_string()))?;
                let mut invalid = Vec::new();
                let before = before.map(|r| image(&info, r, &mut invalid));
                let after = after.map(|r| image(&info, r, &mut invalid));
                push(before, after, invalid);
            }
            return Ok(());
        }
        let bits = |b: Option<&bitvec::slice::BitSlice<u8>>| {
            b.map(|b| b.iter().map(|x| *x).collect::<Vec<bool>>())
        };
        let (before, after) = (
            bits(rows.columns_before_image()),
            bits(rows.columns_after_image()),
        );
        rows::decode_rows(
            &info.columns,
            rows.rows_data(),
            before.as_deref(),
            after.as_deref(),
            |before, after| {
                let mut invalid = Vec::new();
                let mut take = |d: Option<rows::Decoded>| {
                    d.map(|(image, bad)| {
                        invalid.extend(bad);
                        image
                    })
                };
                let (before, after) = (take(before), take(after));
                push(before, after, invalid);
            },
        )
        .map_err(undecodable)
    }

    fn truncate(&mut self, default_db: &str, sql: &str) -> Result<()> {
        let Some((db, table)) = truncate_target(sql, default_db) else {
            return Ok(());
        };
        let key = (db.to_lowercase(), table.to_lowercase());
        if !self.source.tables.contains(&key) {
            return Ok(());
        }
        let Some(info) = self.by_name.get(&key).cloned() else {
            return Err(self.err(format!(
                "TRUNCATE of {db}.{table} before any row of it was seen; resync it after restart"
            )));
        };
        let change = RowChange {
            table: info.schema.clone(),
            op: Op::Truncate,
            before: None,
            after: None,
            invalid: Vec::new(),
        };
        match self.open.as_mut() {
            Some(t) => t.changes.push(change),
            None => {
                self.open = Some(OpenTxn {
                    own: false,
                    gtid: None,
                    standalone: true,
                    changes: vec![change],
                })
            }
        }
        Ok(())
    }
}

/// Convert one row image. A value that cannot be represented is left out and its reason
/// returned, so the pipeline dead-letters the change: never a silent NULL.
fn image(
    info: &TableInfo,
    mut row: mysql_async::binlog::row::BinlogRow,
    invalid: &mut Vec<(usize, String)>,
) -> RowImage {
    (0..info.columns.len())
        .map(|i| {
            let v = row.take(i)?;
            match decode::value(&info.columns[i], v) {
                Ok(v) => Some(v),
                Err(reason) => {
                    invalid.push((i, format!("column '{}': {reason}", info.columns[i].name)));
                    None
                }
            }
        })
        .collect()
}

fn table_info(tme: &TableMapEvent<'_>) -> std::result::Result<TableInfo, String> {
    let meta = OptionalMetaExtractor::new(tme.iter_optional_meta()).map_err(|e| e.to_string())?;
    let names: Vec<String> = meta
        .iter_column_name()
        .map(|n| n.map(|n| n.name().into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| e.to_string())?;
    let count = tme.columns_count() as usize;
    if names.len() != count {
        return Err(format!(
            "the binlog carries {} column names for {count} columns",
            names.len()
        ));
    }
    let keys: HashSet<u64> = meta.iter_primary_key().filter_map(|k| k.ok()).collect();
    let mut enums = Vec::new();
    let mut sets = Vec::new();
    for field in tme.iter_optional_meta() {
        match field.map_err(|e| e.to_string())? {
            OptionalMetadataField::EnumStrValue(v) => {
                for e in v.iter_values() {
                    let e = e.map_err(|e| e.to_string())?;
                    enums.push(
                        e.values()
                            .iter()
                            .map(|x| x.value_raw().to_vec())
                            .collect::<Vec<_>>(),
                    );
                }
            }
            OptionalMetadataField::SetStrValue(v) => {
                for s in v.iter_values() {
                    let s = s.map_err(|e| e.to_string())?;
                    sets.push(
                        s.values()
                            .iter()
                            .map(|x| x.value_raw().to_vec())
                            .collect::<Vec<_>>(),
                    );
                }
            }
            _ => {}
        }
    }
    let (mut enums, mut sets) = (enums.into_iter(), sets.into_iter());
    let mut unsigned = meta.iter_signedness();
    let mut charsets = meta.iter_charset();
    let mut enum_set_charsets = meta.iter_enum_and_set_charset();
    let mut columns = Vec::with_capacity(count);
    for (i, name) in names.iter().enumerate() {
        let ty = tme
            .get_column_type(i)
            .map_err(|e| e.to_string())?
            .ok_or("column without a type")?;
        let is_unsigned = ty.is_numeric_type() && unsigned.next().unwrap_or(false);
        // Character columns and ENUM/SET columns each have their own charset list, in column
        // order; a column without one (no metadata) decodes as Unknown and is refused. The
        // server counts GEOMETRY (a BLOB underneath) as a character column; mysql_common's
        // iterator does not, which shifted every later column's charset by one.
        let next = if ty.is_character_type() || ty.is_geometry_type() {
            charsets.next()
        } else if ty.is_enum_or_set_type() {
            enum_set_charsets.next()
        } else {
            None
        };
        let charset = next
            .transpose()
            .map_err(|e| e.to_string())?
            .map_or(Charset::Unknown(0), Charset::of_collation);
        let raw = match ty {
            mysql_async::consts::ColumnType::MYSQL_TYPE_ENUM => enums.next().unwrap_or_default(),
            mysql_async::consts::ColumnType::MYSQL_TYPE_SET => sets.next().unwrap_or_default(),
            _ => Vec::new(),
        };
        let variants = raw
            .iter()
            .map(|v| {
                charset
                    .decode(v)
                    .map_err(|e| format!("ENUM/SET member: {e}"))
            })
            .collect();
        columns.push(ColumnInfo {
            name: name.clone(),
            column_type: Some(ty),
            unsigned: is_unsigned,
            meta: tme.get_column_metadata(i).unwrap_or(&[]).to_vec(),
            charset,
            variants,
        });
    }
    let schema = TableSchema {
        namespace: tme.database_name().into_owned(),
        name: tme.table_name().into_owned(),
        columns: columns
            .iter()
            .enumerate()
            .map(|(i, c)| ColumnSchema {
                name: c.name.clone(),
                type_name: format!("{:?}", c.column_type.expect("set above")),
                key: keys.contains(&(i as u64)),
            })
            .collect(),
    };
    Ok(TableInfo {
        schema: Arc::new(schema),
        columns,
    })
}

/// The fake ROTATE at stream start carries 4 checksum bytes after the name; binlog names are
/// printable ASCII, so anything after the printable prefix is dropped.
fn rotate_name(raw: &[u8]) -> String {
    let end = raw
        .iter()
        .position(|b| !b.is_ascii_graphic())
        .unwrap_or(raw.len());
    let name = String::from_utf8_lossy(&raw[..end]).into_owned();
    // A checksum made only of printable bytes is still 4 bytes past the `.NNNNNN` suffix.
    match name.rsplit_once('.') {
        Some((base, num)) if num.len() > 6 && num[..6].bytes().all(|b| b.is_ascii_digit()) => {
            format!("{base}.{}", &num[..6])
        }
        _ => name,
    }
}

/// `TRUNCATE [TABLE] [db.]table` -> (db, table).
fn truncate_target(sql: &str, default_db: &str) -> Option<(String, String)> {
    let mut rest = sql.trim_start()[8..].trim_start();
    if rest.len() >= 5 && rest[..5].eq_ignore_ascii_case("table") {
        rest = rest[5..].trim_start();
    }
    let name = rest.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    let mut parts = Vec::new();
    let mut chars = name.chars().peekable();
    let mut cur = String::new();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                while let Some(c) = chars.next() {
                    if c == '`' {
                        if chars.peek() == Some(&'`') {
                            chars.next();
                            cur.push('`');
                        } else {
                            break;
                        }
                    } else {
                        cur.push(c);
                    }
                }
            }
            '.' => parts.push(std::mem::take(&mut cur)),
            c if c.is_whitespace() => break,
            c => cur.push(c),
        }
    }
    parts.push(cur);
    match parts.as_slice() {
        [t] if !t.is_empty() => Some((default_db.to_string(), t.clone())),
        [d, t] if !t.is_empty() => Some((d.clone(), t.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_targets() {
        assert_eq!(
            truncate_target("TRUNCATE TABLE `erp`.`my``t`", "x"),
            Some(("erp".into(), "my`t".into()))
        );
        assert_eq!(
            truncate_target("truncate items", "erp"),
            Some(("erp".into(), "items".into()))
        );
        assert_eq!(
            truncate_target("TRUNCATE  table  stock ;", "erp"),
            Some(("erp".into(), "stock".into()))
        );
    }

    #[test]
    fn rotate_names_lose_checksum_bytes() {
        assert_eq!(rotate_name(b"binlog.000003"), "binlog.000003");
        assert_eq!(
            rotate_name(b"binlog.000003\x01\xa2\x00\x10"),
            "binlog.000003"
        );
        assert_eq!(rotate_name(b"binlog.000003abcd"), "binlog.000003");
    }
}
