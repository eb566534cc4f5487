//! Online resync: copy a mapping's source table to the target while the stream keeps flowing.
//!
//! The flow that owns the mapping does it itself, one chunk at a time between its stream
//! batches (a chunk only when no stream batch is waiting): it reads the next key range from the
//! source with a plain query, maps the rows as inserts, and writes them like any batch (filters,
//! references, dead letters, echo marks, conflict checks all apply).
//!
//! Why an older snapshot row never overwrites a newer change: a chunk is read after every
//! change the flow has applied so far was committed, so what it writes is at least as new as
//! anything already on the target. A change committed before the read but still on its way
//! in the stream is applied after the chunk; it is older than the read, but the stream also
//! carries every later change of that row up to the read, so the row ends in the state the chunk
//! read (or newer). The stream's order does for this flow what DBLog's watermarks do for a
//! separate snapshot reader, with no watermark table in the user's database.
//!
//! Progress (last key copied, rows) is stored after each chunk's target commit: a resync
//! interrupted by a restart continues after the last chunk written.
//!
//! Speed: the next chunk is read while the current one is written (kept only if nothing else
//! was applied in between, see [`Prefetched`]), and the sink bulk-loads a chunk into a target
//! that holds none of its keys ([`crate::sink::Bulk`]): a first copy runs at close to the
//! target's own load speed, a repair of a populated table falls back to upserts.

use std::sync::Arc;

use mysql_async::prelude::Queryable;

use super::apply::Applier;
use crate::error::{Error, Result};
use crate::mapping::{Mapping, TableRef};
use crate::model::{ColumnSchema, Op, RowChange, TableSchema, Transaction, Value};
use crate::sink::Sink;
use crate::store::{ResyncEnd, ResyncJob, Store};

/// Rows per chunk: a stream change arriving during a chunk waits for it (about 0.2 s).
pub const CHUNK_ROWS: usize = 10_000;

/// A keyset chunk read ahead, while the chunk before it was being written (source and target
/// are different servers, so both work at once). Written only if nothing else was applied
/// since the read: a stream batch in between may carry changes newer than this read, which
/// the read's older rows must not overwrite, so any batch or command clears it and the chunk
/// is read again.
pub(crate) struct Prefetched {
    mapping: String,
    after: Option<Vec<Value>>,
    filter: Option<String>,
    rows: Vec<Vec<Value>>,
}

/// One value as read: the value, or why it cannot be read (naming its type, never the value).
pub(crate) type Cell = std::result::Result<Value, String>;

/// One keyset read: the rows of `table` after `after` (or those whose key is in `keys`), in
/// key order, at most `limit`, with the `columns` (key columns first).
pub(crate) struct Read<'a> {
    pub table: &'a TableRef,
    pub key: &'a [String],
    pub columns: &'a [String],
    pub after: Option<&'a [Value]>,
    pub keys: Option<&'a [Vec<Value>]>,
    pub filter: Option<&'a str>,
    pub limit: usize,
}

/// A plain (non-replication) connection to the flow's source, for chunk reads.
pub(crate) enum SourceReader {
    Pg(crate::source::postgres::PgConn),
    My(mysql_async::Conn),
}

impl SourceReader {
    pub async fn connect(config: &crate::config::Config, source: &str) -> Result<SourceReader> {
        let cfg = &config.endpoints[source];
        let password = config.password(source)?;
        Ok(match cfg.kind {
            crate::config::EndpointKind::Postgres => {
                let conn = crate::source::postgres::PgConn::connect(source, cfg, &password).await?;
                conn.client
                    .batch_execute(
                        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET bytea_output = 'hex'",
                    )
                    .await
                    .map_err(|e| Error::pg(source, e))?;
                SourceReader::Pg(conn)
            }
            crate::config::EndpointKind::Mysql => {
                let opts = crate::sink::mysql::opts(cfg, &password).init(vec![
                    "SET NAMES utf8mb4".to_string(),
                    "SET SESSION time_zone = '+00:00'".to_string(),
                ]);
                let conn = crate::sink::mysql::connect_conn(source, cfg, opts).await?;
                SourceReader::My(conn)
            }
        })
    }

    /// How many source rows the job copies (for progress and ETA).
    async fn count(&mut self, mapping: &Mapping, job: &ResyncJob) -> Result<u64> {
        let t = &mapping.source;
        let cond = job
            .filter
            .as_ref()
            .map(|w| format!(" WHERE ({w})"))
            .unwrap_or_default();
        match self {
            SourceReader::Pg(conn) => {
                let q = crate::source::postgres::quote_ident;
                let sql = format!(
                    "SELECT count(*) FROM {}.{}{cond}",
                    q(&t.namespace),
                    q(&t.table)
                );
                let row = conn
                    .client
                    .query_one(&sql, &[])
                    .await
                    .map_err(|e| Error::pg(&conn.endpoint, e))?;
                Ok(row.get::<_, i64>(0) as u64)
            }
            SourceReader::My(conn) => {
                let q = crate::sink::mysql::quote_ident;
                let sql = format!(
                    "SELECT COUNT(*) FROM {}.{}{cond}",
                    q(&t.namespace),
                    q(&t.table)
                );
                let n: Option<u64> = conn
                    .query_first(sql)
                    .await
                    .map_err(|e| Error::mysql(&t.endpoint, e))?;
                Ok(n.unwrap_or(0))
            }
        }
    }

    /// The rows of `t` after `last_key` (or those whose key is one of `keys`), in key order:
    /// values in `columns` order (the key columns first). A value that cannot be read fails the
    /// read (a resync must not write a row it could not read whole).
    pub async fn chunk(&mut self, read: Read<'_>) -> Result<Vec<Vec<Value>>> {
        let table = format!("{}:{}", read.table.endpoint, read.table);
        let rows = self.chunk_cells(read).await?;
        rows.into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|cell| {
                        cell.map_err(|reason| Error::Row {
                            table: table.clone(),
                            key: String::new(),
                            reason,
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// Like [`SourceReader::chunk`], with each value read on its own: a value the reader
    /// cannot represent (PostgreSQL `infinity`, a BC date, year 10000) is an `Err` naming its
    /// type, never the value, and the rest of the row and the chunk are still read (verify
    /// reports such a value for its key and goes on).
    pub async fn chunk_cells(&mut self, read: Read<'_>) -> Result<Vec<Vec<Cell>>> {
        let Read {
            table: t,
            key,
            columns,
            after,
            keys,
            filter,
            limit,
        } = read;
        let key: Vec<&String> = key.iter().collect();
        match self {
            SourceReader::Pg(conn) => {
                let q = crate::source::postgres::quote_ident;
                let ep = conn.endpoint.clone();
                let types =
                    crate::sink::postgres::column_types(conn, &t.namespace, &t.table).await?;
                let ty = |c: &str| {
                    types
                        .get(c)
                        .map(|ct| (ct.base.clone(), ct.oid))
                        .ok_or_else(|| {
                            Error::setup(
                                &ep,
                                format!("column '{c}' of {t} does not exist"),
                                "fix the mapping",
                            )
                        })
                };
                let mut params: Vec<Option<String>> = Vec::new();
                let mut arrays: Vec<Vec<Option<String>>> = Vec::new();
                let mut conds = Vec::new();
                let cols: Vec<String> = key.iter().map(|k| q(k)).collect();
                if let Some(last) = after {
                    let mut casts = Vec::new();
                    for (k, v) in key.iter().zip(last) {
                        params.push(crate::mapping::convert::text_form(v));
                        casts.push(format!("${}::text::{}", params.len(), ty(k)?.0));
                    }
                    conds.push(format!("({}) > ({})", cols.join(", "), casts.join(", ")));
                }
                if let Some(keys) = keys {
                    let mut casts = Vec::new();
                    let first = params.len();
                    for (n, k) in key.iter().enumerate() {
                        arrays.push(
                            keys.iter()
                                .map(|row| crate::mapping::convert::text_form(&row[n]))
                                .collect(),
                        );
                        casts.push(format!("u.k{n}::{}", ty(k)?.0));
                    }
                    let ps: Vec<String> = (0..key.len())
                        .map(|n| format!("${}::text[]", first + n + 1))
                        .collect();
                    let aliases: Vec<String> = (0..key.len()).map(|n| format!("k{n}")).collect();
                    conds.push(format!(
                        "({}) IN (SELECT {} FROM unnest({}) AS u({}))",
                        cols.join(", "),
                        casts.join(", "),
                        ps.join(", "),
                        aliases.join(", ")
                    ));
                }
                if let Some(w) = filter {
                    conds.push(format!("({w})"));
                }
                // Aliased: ORDER BY must see the table's columns, not these texts.
                let texts: Vec<String> = columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{}::text AS rb_c{i}", q(c)))
                    .collect();
                let sql = select_sql(
                    &texts.join(", "),
                    &format!("{}.{}", q(&t.namespace), q(&t.table)),
                    &conds,
                    &cols.join(", "),
                    limit,
                );
                let oids: Vec<u32> = columns
                    .iter()
                    .map(|c| ty(c).map(|t| t.1))
                    .collect::<Result<_>>()?;
                let mut refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                refs.extend(
                    arrays
                        .iter()
                        .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync)),
                );
                let rows = conn
                    .client
                    .query(&sql, &refs)
                    .await
                    .map_err(|e| Error::pg(&ep, e))?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        (0..columns.len())
                            .map(|i| match r.get::<_, Option<&str>>(i) {
                                None => Ok(Value::Null),
                                Some(text) => crate::source::postgres::values::from_text(
                                    oids[i],
                                    text.as_bytes(),
                                ),
                            })
                            .collect()
                    })
                    .collect())
            }
            SourceReader::My(conn) => {
                let q = crate::sink::mysql::quote_ident;
                let mut params: Vec<mysql_async::Value> = Vec::new();
                let mut conds = Vec::new();
                let cols: Vec<String> = key.iter().map(|k| q(k)).collect();
                let tuple = format!("({})", vec!["?"; cols.len()].join(", "));
                if let Some(last) = after {
                    conds.push(format!("({}) > {tuple}", cols.join(", ")));
                    params.extend(last.iter().map(crate::sink::mysql::to_mysql));
                }
                if let Some(keys) = keys {
                    conds.push(format!(
                        "({}) IN ({})",
                        cols.join(", "),
                        vec![tuple.as_str(); keys.len().max(1)].join(", ")
                    ));
                    if keys.is_empty() {
                        params.extend(key.iter().map(|_| mysql_async::Value::NULL));
                    }
                    params.extend(keys.iter().flatten().map(crate::sink::mysql::to_mysql));
                }
                if let Some(w) = filter {
                    conds.push(format!("({w})"));
                }
                let names: Vec<String> = columns.iter().map(|c| q(c)).collect();
                let sql = select_sql(
                    &names.join(", "),
                    &format!("{}.{}", q(&t.namespace), q(&t.table)),
                    &conds,
                    &cols.join(", "),
                    limit,
                );
                let ep = t.endpoint.clone();
                let rows: Vec<mysql_async::Row> = conn
                    .exec(sql, params)
                    .await
                    .map_err(|e| Error::mysql(&ep, e))?;
                Ok(rows
                    .into_iter()
                    .map(|row| {
                        let cols = row.columns();
                        row.unwrap()
                            .into_iter()
                            .zip(cols.iter())
                            .map(|(v, c)| Ok(crate::sink::mysql::from_mysql(v, c)))
                            .collect()
                    })
                    .collect())
            }
        }
    }
}

/// The shape of rows read with `columns` from a mapping's source table.
pub(crate) fn read_schema(mapping: &Mapping, columns: &[String]) -> TableSchema {
    TableSchema {
        namespace: mapping.source.namespace.clone(),
        name: mapping.source.table.clone(),
        columns: columns
            .iter()
            .map(|c| ColumnSchema {
                name: c.clone(),
                type_name: String::new(),
                key: mapping.key.contains(c),
            })
            .collect(),
    }
}

/// `SELECT columns FROM table [WHERE conds] ORDER BY key LIMIT limit`.
fn select_sql(columns: &str, table: &str, conds: &[String], order: &str, limit: usize) -> String {
    let cond = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    format!("SELECT {columns} FROM {table}{cond} ORDER BY {order} LIMIT {limit}")
}

fn key_text(key: &[Value]) -> String {
    key.iter()
        .map(super::echo::norm)
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// The source columns a mapping reads, key first.
pub(crate) fn source_columns(m: &Mapping) -> Vec<String> {
    let mut cols: Vec<String> = m.key.clone();
    let mut add = |c: &String| {
        if !cols.contains(c) {
            cols.push(c.clone());
        }
    };
    for c in &m.columns {
        add(&c.source);
    }
    for c in &m.computed {
        if let crate::mapping::Computed::Concat { sources, .. } = &c.kind {
            sources.iter().for_each(&mut add);
        }
    }
    for f in &m.filters {
        add(&f.column);
    }
    cols
}

impl Applier {
    /// Read from this flow's source (connecting first if needed; a failed read drops the
    /// connection, so the next one reconnects).
    async fn read_source(&mut self, read: Read<'_>) -> Result<Vec<Vec<Value>>> {
        if self.reader.is_none() {
            self.reader = Some(SourceReader::connect(&self.config, &self.source).await?);
        }
        let reader = self.reader.as_mut().expect("connected");
        let rows = reader.chunk(read).await;
        if rows.is_err() {
            self.reader = None;
        }
        rows
    }

    /// What `verify --repair` found drifted: re-read those source rows now (between batches,
    /// as a resync chunk) and write them; delete the target rows the source has no row for.
    pub(super) async fn repair(
        &mut self,
        name: &str,
        source_keys: &[Vec<Value>],
        extra_keys: &[Vec<Value>],
        sink: &mut Sink,
    ) -> Result<(u64, u64)> {
        let mapping = self
            .mappings
            .list
            .iter()
            .find(|m| m.name == name)
            .cloned()
            .ok_or_else(|| Error::Usage(format!("no mapping '{name}'")))?;
        let columns = source_columns(&mapping);
        let schema = self.chunk_schema(&mapping, &columns);
        let mut written = 0u64;
        for keys in source_keys.chunks(CHUNK_ROWS) {
            let rows = self
                .read_source(Read {
                    table: &mapping.source,
                    key: &mapping.key,
                    columns: &columns,
                    after: None,
                    keys: Some(keys),
                    filter: None,
                    limit: keys.len(),
                })
                .await
                .map_err(|e| refused_read(name, e))?;
            written += rows.len() as u64;
            self.copy_rows(&mapping, &schema, rows, sink).await?;
        }
        // A row verify saw only on the target may have been inserted on the source since (and
        // streamed already): delete only keys the source still lacks.
        let mut absent = Vec::new();
        for keys in extra_keys.chunks(CHUNK_ROWS) {
            let found = self
                .read_source(Read {
                    table: &mapping.source,
                    key: &mapping.key,
                    columns: &mapping.key,
                    after: None,
                    keys: Some(keys),
                    filter: None,
                    limit: keys.len(),
                })
                .await
                .map_err(|e| refused_read(name, e))?;
            let found: std::collections::HashSet<String> =
                found.iter().map(|r| key_text(r)).collect();
            absent.extend(
                keys.iter()
                    .filter(|k| !found.contains(&key_text(k)))
                    .cloned(),
            );
        }
        // Defence in depth: only a mapping that owns its target rows deletes any (verify
        // reports no extra rows for the others).
        if let Some(why) = crate::verify::not_owner(&mapping, &self.mappings.list) {
            if !absent.is_empty() {
                tracing::warn!(flow = %self.flow_name(), mapping = %name, rows = absent.len(), why = %why, "repair deletes nothing: the mapping does not own its target rows");
            }
            absent.clear();
        }
        let extra_keys = &absent[..];
        let mut deleted = 0u64;
        if !extra_keys.is_empty() {
            let table = crate::mapping::BoundMapping::bind(mapping.clone(), schema.clone())?.target;
            let ops: Vec<crate::mapping::TargetOp> = extra_keys
                .iter()
                .map(|k| crate::mapping::TargetOp::Delete {
                    table: table.clone(),
                    key: k.clone(),
                })
                .collect();
            deleted = sink.apply(&ops).await?.rows as u64;
        }
        tracing::info!(flow = %self.flow_name(), mapping = %name, written, deleted, "repair applied");
        Ok((written, deleted))
    }

    fn chunk_schema(&mut self, mapping: &Mapping, columns: &[String]) -> Arc<TableSchema> {
        self.resync_schema
            .entry(mapping.name.clone())
            .or_insert_with(|| Arc::new(read_schema(mapping, columns)))
            .clone()
    }

    /// Write source rows read now as inserts of one mapping, like a batch that moves no
    /// checkpoint.
    async fn copy_rows(
        &mut self,
        mapping: &Mapping,
        schema: &Arc<TableSchema>,
        rows: Vec<Vec<Value>>,
        sink: &mut Sink,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let changes: Vec<RowChange> = rows
            .into_iter()
            .map(|r| RowChange {
                table: schema.clone(),
                op: Op::Insert,
                before: None,
                after: Some(r.into_iter().map(Some).collect()),
                invalid: Vec::new(),
            })
            .collect();
        let txn = Transaction {
            endpoint: mapping.source.endpoint.clone(),
            position: self
                .checkpoint
                .clone()
                .unwrap_or(crate::position::Position::Lsn(0)),
            commit_time_us: chrono::Utc::now().timestamp_micros(),
            origin: None,
            changes,
            partial: false,
        };
        // Only this mapping: the table's other mappings have their own resync.
        self.resync_only = Some(mapping.name.clone());
        let result = self.apply_txns(vec![txn], None, sink).await;
        self.resync_only = None;
        result
    }

    /// Copy the next chunk of the oldest unfinished resync of this flow, if any. Returns
    /// whether there is more to do. A job whose source read fails for a reason other than a
    /// transient one (its `--where` no longer fits the table, a value the read refuses) fails
    /// alone: it is ended as `failed` with its reason and the flow streams on. Errors writing
    /// the target are the flow's, as for any batch.
    pub(super) async fn resync_step(&mut self, sink: &mut Sink) -> Result<bool> {
        match self.copy_next_chunk(sink).await {
            Err(JobError::Read(job, e)) => self.fail_job(&job, e),
            Err(JobError::Flow(e)) => Err(e),
            Ok(more) => Ok(more),
        }
    }

    /// End `job` as failed by `e` (unless `e` is transient: the session retries, the job
    /// continues where it stopped).
    fn fail_job(&mut self, job: &ResyncJob, e: Error) -> Result<bool> {
        if e.class() == crate::error::ErrorClass::Transient {
            return Err(e);
        }
        self.reader = None;
        self.prefetched = None;
        let reason = job_reason(&e);
        tracing::warn!(flow = %self.flow_name(), mapping = %job.mapping, reason = %reason, "resync failed; the flow streams on");
        self.store.end_resync(
            job,
            &ResyncEnd {
                state: "failed".into(),
                reason,
                at_us: chrono::Utc::now().timestamp_micros(),
            },
        )?;
        self.store.flush()?;
        // The next job, if any.
        Ok(true)
    }

    /// An operator's `resync cancel`: between chunks, so no chunk in flight stores its
    /// progress over the cancellation.
    pub(super) fn cancel_resync(&mut self, mapping: &str, actor: &str) -> Result<ResyncJob> {
        self.prefetched = None;
        cancel(&self.store, mapping, actor)
    }

    async fn copy_next_chunk(&mut self, sink: &mut Sink) -> std::result::Result<bool, JobError> {
        let Some(mut job) = self
            .store
            .resync_jobs()
            .map_err(JobError::Flow)?
            .into_iter()
            .find(|j| j.flow == self.flow_name() && !j.done)
        else {
            return Ok(false);
        };
        let Some(mapping) = self
            .mappings
            .list
            .iter()
            .find(|m| m.name == job.mapping)
            .cloned()
        else {
            tracing::warn!(flow = %self.flow_name(), mapping = %job.mapping, "resync dropped: the mapping is gone");
            job.done = true;
            self.store.put_resync(&job).map_err(JobError::Flow)?;
            return Ok(true);
        };
        let columns = source_columns(&mapping);
        let schema = self.chunk_schema(&mapping, &columns);
        if let Some(keys) = job.keys.clone() {
            // Only the keys asked for, a chunk of them at a time; `rows` counts keys done.
            let start = job.rows as usize;
            let end = (start + CHUNK_ROWS).min(keys.len());
            job.total = Some(keys.len() as u64);
            let rows = self
                .read_source(Read {
                    table: &mapping.source,
                    key: &mapping.key,
                    columns: &columns,
                    after: None,
                    keys: Some(&keys[start..end]),
                    filter: job.filter.as_deref(),
                    limit: end - start,
                })
                .await
                .map_err(|e| JobError::Read(job.clone(), e))?;
            self.copy_rows(&mapping, &schema, rows, sink)
                .await
                .map_err(JobError::Flow)?;
            job.rows = end as u64;
            job.done = end >= keys.len();
            job.updated_us = chrono::Utc::now().timestamp_micros();
            self.store.put_resync(&job).map_err(JobError::Flow)?;
            self.store.flush().map_err(JobError::Flow)?;
            if job.done {
                tracing::info!(flow = %self.flow_name(), mapping = %job.mapping, keys = keys.len(), "resync of keys finished");
            }
            return Ok(true);
        }
        if job.total.is_none() {
            if self.reader.is_none() {
                let reader = SourceReader::connect(&self.config, &self.source)
                    .await
                    .map_err(JobError::Flow)?;
                self.reader = Some(reader);
            }
            let reader = self.reader.as_mut().expect("connected");
            match reader.count(&mapping, &job).await {
                Ok(n) => job.total = Some(n),
                Err(e) => {
                    self.reader = None;
                    return Err(JobError::Read(job, e));
                }
            }
            tracing::info!(flow = %self.flow_name(), mapping = %job.mapping, rows = job.total, "resync started");
        }
        let read = |after| Read {
            table: &mapping.source,
            key: &mapping.key,
            columns: &columns,
            after,
            keys: None,
            filter: job.filter.as_deref(),
            limit: CHUNK_ROWS,
        };
        let ahead = self.prefetched.take().filter(|p| {
            p.mapping == job.mapping && p.after == job.last_key && p.filter == job.filter
        });
        let rows = match ahead {
            Some(p) => p.rows,
            None => match self.read_source(read(job.last_key.as_deref())).await {
                Ok(rows) => rows,
                Err(e) => return Err(JobError::Read(job.clone(), e)),
            },
        };
        let started = std::time::Instant::now();
        let n = rows.len();
        let last_key = rows.last().map(|r| r[..mapping.key.len()].to_vec());
        let more = n == CHUNK_ROWS;
        // Write this chunk and read the next one at the same time. Into a table that holds
        // none of the chunk's keys (a first copy), the target's bulk load does the writing.
        let mut reader = self.reader.take();
        sink.set_bulk(!self.guarded && !self.bulk_refused.contains(&job.mapping));
        let (copied, next) = tokio::join!(self.copy_rows(&mapping, &schema, rows, sink), async {
            match (reader.as_mut(), more) {
                (Some(r), true) => Some(r.chunk(read(last_key.as_deref())).await),
                _ => None,
            }
        });
        if sink.bulk() == crate::sink::Bulk::Refused {
            tracing::info!(flow = %self.flow_name(), mapping = %job.mapping, "resync writes with upserts: the target already holds rows of it");
            self.bulk_refused.insert(job.mapping.clone());
        }
        sink.set_bulk(false);
        // A failed read ahead drops the connection; the next step reads (and reconnects) anew.
        if !matches!(next, Some(Err(_))) {
            self.reader = reader;
        }
        copied.map_err(JobError::Flow)?;
        self.prefetched = next.and_then(|r| r.ok()).map(|rows| Prefetched {
            mapping: job.mapping.clone(),
            after: last_key.clone(),
            filter: job.filter.clone(),
            rows,
        });
        job.rows += n as u64;
        job.last_key = last_key.or(job.last_key.take());
        job.done = !more;
        job.updated_us = chrono::Utc::now().timestamp_micros();
        self.store.put_resync(&job).map_err(JobError::Flow)?;
        // Durable with the chunk: a restart continues after it, not before.
        self.store.flush().map_err(JobError::Flow)?;
        metrics::counter!(crate::metrics::RESYNC_ROWS, "mapping" => job.mapping.clone())
            .increment(n as u64);
        tracing::debug!(flow = %self.flow_name(), mapping = %job.mapping, rows = job.rows, chunk_ms = started.elapsed().as_millis() as u64, "resync chunk copied");
        if job.done {
            tracing::info!(flow = %self.flow_name(), mapping = %job.mapping, rows = job.rows, "resync finished");
        }
        Ok(true)
    }
}

/// Why a resync step stopped: its own source read (the job fails alone) or the flow.
enum JobError {
    Read(ResyncJob, Error),
    Flow(Error),
}

/// A failed job's reason as stored and shown: the error, except a server message of the data
/// exception class (SQLSTATE 22), which can quote row values: then its code only.
fn job_reason(e: &Error) -> String {
    if let Error::Postgres { endpoint, source } = e {
        if let Some(db) = source.as_db_error() {
            let code = db.code().code();
            if code.starts_with("22") {
                return format!(
                    "endpoint {endpoint}: the source refused the read with a data exception (SQLSTATE {code}); run the resync's condition by hand to see the row"
                );
            }
        }
    }
    e.to_string()
}

/// A repair's source read that failed for a reason other than a transient one: the operator's
/// command is refused (the flow goes on); a transient error is the flow's to retry.
fn refused_read(mapping: &str, e: Error) -> Error {
    match e.class() {
        crate::error::ErrorClass::Transient => e,
        _ => Error::Usage(format!(
            "repair of {mapping} stopped: reading its source: {}",
            job_reason(&e)
        )),
    }
}

/// Cancel the unfinished resync of `mapping`: it ends as `cancelled` (rows already copied
/// stay; nothing is undone).
pub(crate) fn cancel(store: &Store, mapping: &str, actor: &str) -> Result<ResyncJob> {
    let job = store
        .resync_jobs()?
        .into_iter()
        .find(|j| j.mapping == mapping && !j.done)
        .ok_or_else(|| Error::Usage(format!("no resync of {mapping} is under way")))?;
    store.end_resync(
        &job,
        &ResyncEnd {
            state: "cancelled".into(),
            reason: format!("cancelled by {actor}"),
            at_us: chrono::Utc::now().timestamp_micros(),
        },
    )?;
    store.flush()?;
    Ok(job)
}

/// Check an operator's `--where` on the source before a job is stored: the chunk query with
/// it, `LIMIT 0`, in a read-only transaction (nothing is read or changed; the database parses
/// and plans it, so an unknown column, a syntax error or a type mismatch is refused now,
/// with the database's reason).
pub(crate) async fn check_filter(
    config: &crate::config::Config,
    mapping: &Mapping,
    filter: &str,
) -> Result<()> {
    let t = &mapping.source;
    let refused =
        |reason: String| Error::Usage(format!("--where refused: not a condition on {t}: {reason}"));
    match SourceReader::connect(config, &t.endpoint).await? {
        SourceReader::Pg(conn) => {
            let q = crate::source::postgres::quote_ident;
            let sql = format!(
                "SELECT 1 FROM {}.{} WHERE ({filter}) LIMIT 0",
                q(&t.namespace),
                q(&t.table)
            );
            conn.client
                .batch_execute("BEGIN READ ONLY")
                .await
                .map_err(|e| Error::pg(&t.endpoint, e))?;
            let result = conn.client.query(&sql, &[]).await;
            let _ = conn.client.batch_execute("ROLLBACK").await;
            match result {
                Ok(_) => Ok(()),
                Err(e) if e.as_db_error().is_some() => {
                    Err(refused(crate::error::Error::pg(&t.endpoint, e).to_string()))
                }
                Err(e) => Err(Error::pg(&t.endpoint, e)),
            }
        }
        SourceReader::My(mut conn) => {
            let q = crate::sink::mysql::quote_ident;
            let sql = format!(
                "SELECT 1 FROM {}.{} WHERE ({filter}) LIMIT 0",
                q(&t.namespace),
                q(&t.table)
            );
            conn.query_drop("START TRANSACTION READ ONLY")
                .await
                .map_err(|e| Error::mysql(&t.endpoint, e))?;
            let result: std::result::Result<Vec<mysql_async::Row>, _> = conn.exec(sql, ()).await;
            let _ = conn.query_drop("ROLLBACK").await;
            match result {
                Ok(_) => Ok(()),
                Err(mysql_async::Error::Server(se)) => Err(refused(format!(
                    "endpoint {}: {} ({})",
                    t.endpoint, se.message, se.code
                ))),
                Err(e) => Err(Error::mysql(&t.endpoint, e)),
            }
        }
    }
}
