//! One replication session: pgoutput messages in, whole transactions out.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::protocol::{self, Datum, Message, Relation, Tuple};
use super::values;
use crate::config::{EndpointConfig, Secret};
use crate::error::{Error, Result};
use crate::model::{ColumnSchema, Op, RowChange, RowImage, TableSchema, Transaction, Value};
use crate::position::Position;
use crate::source::{Outbox, SourceEvent};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Startup options of the replication session: fixed text forms for [`values::from_text`].
const SESSION_OPTIONS: &str =
    "-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3 -c bytea_output=hex -c IntervalStyle=postgres";

pub struct PgSource {
    pub endpoint: String,
    pub cfg: EndpointConfig,
    pub password: Secret,
    /// `(schema, table)` of mapped tables; changes to others are skipped undecoded.
    pub tables: HashSet<(String, String)>,
    pub status_interval: Duration,
    /// A transaction with more row changes than this is handed on in chunks.
    pub chunk_rows: usize,
}

struct RelationInfo {
    schema: Arc<TableSchema>,
    oids: Vec<u32>,
    mapped: bool,
}

struct OpenTxn {
    /// LSN of the commit record (from Begin): where a chunk of this transaction stands.
    final_lsn: u64,
    commit_time_us: i64,
    origin: Option<String>,
    changes: Vec<RowChange>,
}

impl PgSource {
    /// Stream from `start` (the stored checkpoint) until an error or `shutdown`.
    /// `durable` carries checkpoints the store has flushed; only those are acknowledged.
    pub async fn run(
        &self,
        start: Option<Position>,
        out: Outbox,
        mut durable: watch::Receiver<Option<Position>>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let start_lsn = start.as_ref().and_then(Position::lsn).unwrap_or(0);
        // Acknowledge only what is durable; 0 means "nothing new" to the server.
        let ack = durable
            .borrow()
            .as_ref()
            .and_then(Position::lsn)
            .unwrap_or(0);
        let rc = ReplicationConfig::new(
            self.cfg.host.clone(),
            self.cfg.user.clone(),
            self.password.expose().to_string(),
            self.cfg.database.clone(),
            self.cfg.slot().to_string(),
            self.cfg.publication().to_string(),
        )
        .with_port(self.cfg.port())
        .with_tls(crate::tls::replication_config(&self.cfg))
        .with_start_lsn(Lsn::from_u64(start_lsn))
        .with_ack_lsn(Lsn::from_u64(ack.min(start_lsn)))
        .with_status_interval(self.status_interval)
        .with_wakeup_interval(self.status_interval)
        .with_options(SESSION_OPTIONS)
        .with_application_name("rowbridge");
        let mut client =
            ReplicationClient::connect(rc).await.map_err(|e| {
                match crate::tls::explain(&e.to_string(), &self.cfg) {
                    Some(message) if e.is_tls() => Error::Tls {
                        endpoint: self.endpoint.clone(),
                        message,
                    },
                    _ => self.err(e),
                }
            })?;
        tracing::info!(endpoint = %self.endpoint, start = %Position::Lsn(start_lsn), "replication started");
        let mut state = StreamState {
            source: self,
            relations: HashMap::new(),
            open: None,
            skip_through: start_lsn,
        };
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    client.stop();
                    return Err(Error::Shutdown);
                }
                changed = durable.changed() => {
                    if changed.is_err() {
                        return Err(Error::Shutdown);
                    }
                    if let Some(lsn) = durable.borrow_and_update().as_ref().and_then(Position::lsn) {
                        client.update_applied_lsn(Lsn::from_u64(lsn));
                    }
                }
                ev = client.recv() => {
                    let ev = ev.map_err(|e| self.err(e))?.ok_or_else(|| Error::Protocol {
                        endpoint: self.endpoint.clone(),
                        message: "replication stream ended".into(),
                    })?;
                    if let Some(ev) = state.handle(ev)? {
                        out.send(ev).await?;
                    }
                }
            }
        }
    }

    fn err(&self, e: pgwire_replication::PgWireError) -> Error {
        Error::Replication {
            endpoint: self.endpoint.clone(),
            source: e,
        }
    }
}

struct StreamState<'a> {
    source: &'a PgSource,
    relations: HashMap<u32, RelationInfo>,
    open: Option<OpenTxn>,
    /// Commits ending at or before this position were applied already.
    skip_through: u64,
}

impl StreamState<'_> {
    fn handle(&mut self, ev: ReplicationEvent) -> Result<Option<SourceEvent>> {
        match ev {
            ReplicationEvent::Begin {
                final_lsn,
                commit_time_micros,
                ..
            } => {
                self.open = Some(OpenTxn {
                    final_lsn: final_lsn.as_u64(),
                    commit_time_us: commit_time_micros + PG_EPOCH_OFFSET_US,
                    origin: None,
                    changes: Vec::new(),
                });
            }
            ReplicationEvent::Commit {
                end_lsn,
                commit_time_micros,
                ..
            } => {
                let Some(txn) = self.open.take() else {
                    return Err(self.protocol("commit without begin"));
                };
                let end = end_lsn.as_u64();
                tracing::trace!(end = %Position::Lsn(end), changes = txn.changes.len(), "commit");
                if end <= self.skip_through {
                    return Ok(None);
                }
                return Ok(Some(SourceEvent::Txn(Transaction {
                    endpoint: self.source.endpoint.clone(),
                    position: Position::Lsn(end),
                    commit_time_us: commit_time_micros + PG_EPOCH_OFFSET_US,
                    origin: txn.origin,
                    changes: txn.changes,
                    partial: false,
                })));
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                let lsn = wal_end.as_u64();
                if self.open.is_none() && lsn > self.skip_through {
                    return Ok(Some(SourceEvent::Heartbeat(Position::Lsn(lsn))));
                }
            }
            ReplicationEvent::XLogData { data, .. } => {
                let msg = protocol::decode(&data).map_err(|e| self.protocol(&e.to_string()))?;
                self.message(msg)?;
                return Ok(self.chunk());
            }
            ReplicationEvent::Message {
                transactional: true,
                prefix,
                ..
            } if crate::model::is_own_write(Some(&prefix)) => {
                if let Some(t) = self.open.as_mut() {
                    t.origin = Some(prefix);
                }
            }
            ReplicationEvent::Message { .. } | ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(None)
    }

    fn protocol(&self, message: &str) -> Error {
        Error::Protocol {
            endpoint: self.source.endpoint.clone(),
            message: message.to_string(),
        }
    }

    fn message(&mut self, msg: Message) -> Result<()> {
        match msg {
            Message::Relation(rel) => {
                tracing::debug!(endpoint = %self.source.endpoint, relation = rel.id, namespace = %rel.namespace, table = %rel.name, "relation");
                let info = self.relation_info(rel);
                let id = info.0;
                self.relations.insert(id, info.1);
            }
            Message::Origin { name, .. } => {
                if let Some(t) = self.open.as_mut() {
                    t.origin = Some(name);
                }
            }
            Message::Insert { relation, new } => {
                if let Some(info) = self.mapped(relation)? {
                    let after = image(info, &new, None);
                    let change = change(info, Op::Insert, None, Some(after));
                    self.push(change)?;
                }
            }
            Message::Update { relation, old, new } => {
                if let Some(info) = self.mapped(relation)? {
                    let before = old.as_ref().map(|o| old_image(info, o));
                    let full_old = old.as_ref().filter(|o| !o.key_only).map(|o| &o.tuple);
                    let after = image(info, &new, full_old);
                    let change = change(info, Op::Update, before, Some(after));
                    self.push(change)?;
                }
            }
            Message::Delete { relation, old } => {
                if let Some(info) = self.mapped(relation)? {
                    let before = old_image(info, &old);
                    let change = change(info, Op::Delete, Some(before), None);
                    self.push(change)?;
                }
            }
            Message::Truncate { relations, .. } => {
                for id in relations {
                    if let Some(info) = self.mapped(id)? {
                        let change = change(info, Op::Truncate, None, None);
                        self.push(change)?;
                    }
                }
            }
            Message::Begin { .. } | Message::Commit { .. } => {}
            Message::Type { .. } | Message::Message { .. } => {}
        }
        Ok(())
    }

    fn relation_info(&self, rel: Relation) -> (u32, RelationInfo) {
        let mapped = self
            .source
            .tables
            .contains(&(rel.namespace.clone(), rel.name.clone()));
        let oids = rel.columns.iter().map(|c| c.type_oid).collect();
        let schema = TableSchema {
            namespace: rel.namespace,
            name: rel.name,
            columns: rel
                .columns
                .into_iter()
                .map(|c| ColumnSchema {
                    type_name: values::type_name(c.type_oid).to_string(),
                    name: c.name,
                    key: c.key,
                })
                .collect(),
        };
        (
            rel.id,
            RelationInfo {
                schema: Arc::new(schema),
                oids,
                mapped,
            },
        )
    }

    fn mapped(&self, relation: u32) -> Result<Option<&RelationInfo>> {
        match self.relations.get(&relation) {
            Some(info) if info.mapped => Ok(Some(info)),
            Some(_) => Ok(None),
            None => Err(self.protocol(&format!("change for unknown relation {relation}"))),
        }
    }

    /// Hand on the open transaction's changes so far when it has grown past the chunk size.
    fn chunk(&mut self) -> Option<SourceEvent> {
        let t = self
            .open
            .as_mut()
            .filter(|t| t.changes.len() >= self.source.chunk_rows)?;
        Some(SourceEvent::Txn(Transaction {
            endpoint: self.source.endpoint.clone(),
            position: Position::Lsn(t.final_lsn),
            commit_time_us: t.commit_time_us,
            origin: t.origin.clone(),
            changes: std::mem::take(&mut t.changes),
            partial: true,
        }))
    }

    fn push(&mut self, change: RowChange) -> Result<()> {
        match self.open.as_mut() {
            Some(t) => {
                t.changes.push(change);
                Ok(())
            }
            None => Err(self.protocol("row change outside a transaction")),
        }
    }
}

fn change(
    info: &RelationInfo,
    op: Op,
    before: Option<RowImage>,
    after: Option<RowImage>,
) -> RowChange {
    RowChange {
        table: info.schema.clone(),
        op,
        before,
        after,
        invalid: Vec::new(),
    }
}

/// Convert a tuple. An unchanged TOAST value is taken from a full old row when there is one,
/// otherwise left out (`None`). A value that does not parse travels as its text, so the target
/// either stores it or rejects the row into the dead-letter queue; it is never dropped.
fn image(info: &RelationInfo, tuple: &Tuple, full_old: Option<&Tuple>) -> RowImage {
    tuple
        .0
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Datum::Unchanged => full_old
                .and_then(|o| o.0.get(i))
                .and_then(|d| datum(info, i, d)),
            d => datum(info, i, d),
        })
        .collect()
}

fn old_image(info: &RelationInfo, old: &protocol::OldTuple) -> RowImage {
    let img = image(info, &old.tuple, None);
    if !old.key_only {
        return img;
    }
    // A key-only old tuple sends NULL for every non-key column: those are unknown, not NULL.
    img.into_iter()
        .enumerate()
        .map(|(i, v)| {
            if info.schema.columns.get(i).is_some_and(|c| c.key) {
                v
            } else {
                None
            }
        })
        .collect()
}

fn datum(info: &RelationInfo, i: usize, d: &Datum) -> Option<Value> {
    let oid = info.oids.get(i).copied().unwrap_or(0);
    match d {
        Datum::Null => Some(Value::Null),
        Datum::Unchanged => None,
        Datum::Text(b) | Datum::Binary(b) => Some(
            values::from_text(oid, b)
                .unwrap_or_else(|_| Value::Text(String::from_utf8_lossy(b).into_owned())),
        ),
    }
}
