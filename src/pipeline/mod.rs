//! Flows: one ordered apply loop per (source endpoint -> target endpoint).
//!
//! A session connects the source and the sink, streams from the stored checkpoint and applies
//! batches until an error or shutdown. Transient errors end the session and a new one starts
//! after exponential backoff (1 s, 2 s, 4 s ... capped at 60 s, with jitter), from the stored
//! checkpoint: whatever was in memory is read again from the source, and sinks tolerate the
//! replay. Endpoint-fatal and configuration errors stop the flow without a retry loop.

mod apply;
pub mod conflict;
pub(crate) mod echo;
pub mod first_start;
mod keys;
pub(crate) mod resync;
mod waiting;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, EndpointKind};
use crate::error::{Error, ErrorClass, Result};
use crate::mapping::Mappings;
use crate::metrics::{self as m, Health};
use crate::position::Position;
use crate::sink::Sink;
use crate::source::mysql::{self, MysqlSource};
use crate::source::postgres::{self, PgConn, PgSource};
use crate::source::Outbox;

type SourceTask = tokio::task::JoinHandle<Result<()>>;
use crate::store::Store;

pub use apply::Applier;

/// A session that ran this long without error resets the backoff.
const HEALTHY_SESSION: Duration = Duration::from_secs(60);

pub struct Flow {
    pub name: String,
    pub source: String,
    pub target: String,
    pub config: Arc<Config>,
    pub mappings: Arc<Mappings>,
    pub store: Store,
    pub health: Health,
    pub hub: Arc<conflict::Hub>,
    /// What the flow received and has not applied yet (its lag), across sessions.
    pub pending: Arc<crate::source::Pending>,
}

/// A write the target has been working on for this long counts against the target endpoint
/// (`rowbridge_endpoint_up` 0, `status` says why) until it completes.
const STALLED_AFTER: Duration = Duration::from_secs(10);

pub fn flow_name(source: &str, target: &str) -> String {
    format!("{source}->{target}")
}

/// The retry schedule for transient errors: 1 s, 2 s, 4 s, 8 s ... capped at 60 s, never giving up.
pub fn retry_policy() -> ExponentialBackoff {
    ExponentialBackoff {
        initial_interval: Duration::from_secs(1),
        multiplier: 2.0,
        randomization_factor: 0.1,
        max_interval: Duration::from_secs(60),
        max_elapsed_time: None,
        ..ExponentialBackoff::default()
    }
}

impl Flow {
    pub fn new(
        source: &str,
        target: &str,
        config: Arc<Config>,
        mappings: Arc<Mappings>,
        store: Store,
        health: Health,
        hub: Arc<conflict::Hub>,
    ) -> Flow {
        Flow {
            name: flow_name(source, target),
            source: source.to_string(),
            target: target.to_string(),
            config,
            mappings,
            store,
            health,
            hub,
            pending: Default::default(),
        }
    }

    /// Every second: the lag (age of the oldest change received and not applied, 0 when
    /// nothing waits), and whether a write to the target has stalled.
    fn monitor(&self) -> tokio::task::JoinHandle<()> {
        let (flow, target) = (self.name.clone(), self.target.clone());
        let (pending, board) = (self.pending.clone(), self.health.board.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut stalled = false;
            loop {
                tick.tick().await;
                let lag = pending.lag_seconds(chrono::Utc::now().timestamp_micros());
                metrics::gauge!(m::LAG_SECONDS, "flow" => flow.clone()).set(lag);
                board.flow_lag(&flow, lag);
                match pending.busy_for() {
                    Some(d) if d >= STALLED_AFTER => {
                        let why = format!("a write has been waiting for {} s", d.as_secs());
                        if !stalled {
                            tracing::warn!(flow = %flow, endpoint = %target, waited_s = d.as_secs(), "the target has not completed a write");
                        }
                        stalled = true;
                        metrics::gauge!(m::ENDPOINT_UP, "endpoint" => target.clone()).set(0.0);
                        board.endpoint(&target, false, Some(why));
                    }
                    _ if stalled => {
                        stalled = false;
                        tracing::info!(flow = %flow, endpoint = %target, "the target completes writes again");
                        metrics::gauge!(m::ENDPOINT_UP, "endpoint" => target.clone()).set(1.0);
                        board.endpoint(&target, true, None);
                    }
                    _ => {}
                }
            }
        })
    }

    /// Run until shutdown (Ok) or an error that retrying cannot fix (Err).
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let monitor = self.monitor();
        let result = self.run_sessions(shutdown).await;
        monitor.abort();
        result
    }

    async fn run_sessions(&self, shutdown: CancellationToken) -> Result<()> {
        let mut policy = retry_policy();
        let flow = self.name.clone();
        let board = self.health.board.clone();
        loop {
            let started = Instant::now();
            board.flow_state(&flow, "connecting");
            let err = match self.session(&shutdown).await {
                Ok(()) | Err(Error::Shutdown) => {
                    board.flow_state(&flow, "stopped");
                    return Ok(());
                }
                Err(Error::Restart) => continue,
                Err(e) => e,
            };
            metrics::gauge!(m::FLOW_UP, "flow" => flow.clone()).set(0.0);
            self.health.set_flow(&flow, false);
            board.flow_error(&flow, &err);
            metrics::counter!(m::ERRORS, "flow" => flow.clone(), "class" => err.class().as_str())
                .increment(1);
            if matches!(err.class(), ErrorClass::EndpointFatal | ErrorClass::Config) {
                // No retry loop against bad credentials or a missing slot: stopped until the
                // operator fixes it and reloads (SIGHUP) or restarts the daemon.
                tracing::error!(flow = %flow, class = err.class().as_str(), error = %err, "flow stopped; fix the cause, then reload (systemctl reload rowbridge) or restart");
                board.flow_state(&flow, "stopped");
                let wake = board.waker(&flow);
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(err),
                    _ = self.health.reload.notified() => {
                        tracing::info!(flow = %flow, "reload: trying the flow again");
                    }
                    _ = wake.notified() => {
                        tracing::info!(flow = %flow, "an operator changed where the flow starts: trying it again");
                    }
                }
                policy.reset();
                continue;
            }
            board.flow_state(&flow, "retrying");
            if started.elapsed() > HEALTHY_SESSION {
                policy.reset();
            }
            let delay = policy.next_backoff().unwrap_or(Duration::from_secs(60));
            tracing::warn!(flow = %flow, error = %err, retry_in_ms = delay.as_millis() as u64, "flow interrupted, retrying");
            metrics::counter!(m::RETRIES, "flow" => flow.clone()).increment(1);
            let wake = board.waker(&flow);
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
                _ = wake.notified() => {}
            }
        }
    }

    async fn session(&self, shutdown: &CancellationToken) -> Result<()> {
        let cfg = &self.config;
        let dst_cfg = &cfg.endpoints[&self.target];
        let (tx, rx, rows) = Outbox::new(
            cfg.pipeline.queue_txns,
            cfg.pipeline.queue_rows,
            self.pending.clone(),
        );
        let token = shutdown.child_token();
        let (checkpoint, durable_tx, mut src_task) = self.start_source(tx, token.clone()).await?;
        let password = cfg.password(&self.target)?;
        let mark = cfg.pipeline.mark_writes;
        let sink = Sink::connect(&self.target, dst_cfg, &password, &self.source, mark).await;
        metrics::gauge!(m::ENDPOINT_UP, "endpoint" => self.target.clone())
            .set(sink.is_ok() as u8 as f64);
        self.health.board.endpoint(
            &self.target,
            sink.is_ok(),
            sink.as_ref().err().map(|e| e.to_string()),
        );
        let mut sink = match sink {
            Ok(s) => s,
            Err(e) => {
                token.cancel();
                let _ = src_task.await;
                return Err(e);
            }
        };
        metrics::gauge!(m::FLOW_UP, "flow" => self.name.clone()).set(1.0);
        // The source's position exists on the server now: whatever commits from here on will
        // be streamed.
        self.health.set_flow(&self.name, true);
        self.health.board.flow_state(&self.name, "streaming");

        let interval = Duration::from_millis(cfg.pipeline.status_interval_ms);
        let mut applier = Applier::new(self, checkpoint)?;
        let applied = applier
            .run(rx, rows, &mut sink, durable_tx, interval, shutdown)
            .await;
        token.cancel();
        let sourced = (&mut src_task).await.unwrap_or_else(|e| {
            Err(Error::Protocol {
                endpoint: self.source.clone(),
                message: format!("source task failed: {e}"),
            })
        });
        // When the apply loop ended because the source stopped, the source's error is the cause.
        match (applied, sourced) {
            (Err(Error::Shutdown), Err(src)) if !matches!(src, Error::Shutdown) => Err(src),
            (applied, _) => applied,
        }
    }

    /// Prepare the source's server side (slot, or the binlog start position) and start reading.
    async fn start_source(
        &self,
        tx: Outbox,
        token: CancellationToken,
    ) -> Result<(
        Option<Position>,
        watch::Sender<Option<Position>>,
        SourceTask,
    )> {
        let cfg = &self.config;
        let src_cfg = &cfg.endpoints[&self.source];
        let password = cfg.password(&self.source)?;
        let tables = self.mappings.source_tables(&self.source);
        let flow = (self.source.as_str(), self.target.as_str());
        let mut checkpoint = self.store.checkpoint(&self.name)?;
        let up = |result: std::result::Result<(), String>| {
            metrics::gauge!(m::ENDPOINT_UP, "endpoint" => self.source.clone())
                .set(result.is_ok() as u8 as f64);
            self.health
                .board
                .endpoint(&self.source, result.is_ok(), result.err());
        };
        let interval = Duration::from_millis(cfg.pipeline.status_interval_ms);
        let task: SourceTask = match src_cfg.kind {
            EndpointKind::Postgres => {
                let conn = PgConn::connect(&self.source, src_cfg, &password).await;
                up(conn.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                let conn = conn?;
                // Before the slot is created or used as a first start: did the flow run before?
                first_start::check(cfg, &self.mappings, &self.store, flow, Some(&conn), false)
                    .await?;
                let slot = postgres::prepare(&conn, src_cfg, &tables, checkpoint.as_ref()).await?;
                if let (None, Some(p)) = (&checkpoint, slot) {
                    // First start: the slot's position is stored at once, so a crash before
                    // the first batch is not taken for a lost store next time.
                    self.store.advance_checkpoint(&self.name, &p)?;
                    self.store.set_fresh_start(&self.name, false)?;
                    self.store.flush()?;
                    checkpoint = Some(p);
                }
                let (durable_tx, durable_rx) = watch::channel(checkpoint.clone());
                let source = PgSource {
                    endpoint: self.source.clone(),
                    cfg: src_cfg.clone(),
                    password,
                    tables: tables
                        .iter()
                        .map(|t| (t.namespace.clone(), t.table.clone()))
                        .collect(),
                    status_interval: interval,
                    chunk_rows: cfg.pipeline.chunk_rows,
                };
                let start = checkpoint.clone();
                let task =
                    tokio::spawn(async move { source.run(start, tx, durable_rx, token).await });
                return Ok((checkpoint, durable_tx, task));
            }
            EndpointKind::Mysql => {
                let opts = crate::sink::mysql::opts(src_cfg, &password);
                let conn = crate::sink::mysql::connect_conn(&self.source, src_cfg, opts).await;
                up(conn.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                let mut conn = conn?;
                let flavor = mysql::verify_settings(&mut conn, &self.source).await?;
                let start = match checkpoint.clone() {
                    Some(p) => p,
                    None => {
                        // First start: begin at the binlog's end, stored before anything is read
                        // (unless the flow ran before and lost its store).
                        let p = match self.store.first_position(&self.name)? {
                            Some(p) => p,
                            None => {
                                let p = mysql::current_position(&mut conn, &self.source, flavor)
                                    .await?;
                                self.store.set_first_position(&self.name, Some(&p))?;
                                self.store.flush()?;
                                p
                            }
                        };
                        first_start::check(cfg, &self.mappings, &self.store, flow, None, true)
                            .await?;
                        self.store.set_first_position(&self.name, None)?;
                        self.store.advance_checkpoint(&self.name, &p)?;
                        self.store.set_fresh_start(&self.name, false)?;
                        self.store.flush()?;
                        checkpoint = Some(p.clone());
                        p
                    }
                };
                let _ = conn.disconnect().await;
                let source = MysqlSource {
                    endpoint: self.source.clone(),
                    cfg: src_cfg.clone(),
                    password,
                    tables: tables
                        .iter()
                        .map(|t| (t.namespace.to_lowercase(), t.table.to_lowercase()))
                        .collect(),
                    heartbeat: interval.max(Duration::from_millis(100)),
                    chunk_rows: cfg.pipeline.chunk_rows,
                };
                tokio::spawn(async move { source.run(start, tx, token).await })
            }
        };
        let (durable_tx, _) = watch::channel(checkpoint.clone());
        Ok((checkpoint, durable_tx, task))
    }
}
