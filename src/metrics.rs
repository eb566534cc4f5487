//! Metric names (defined once, described once) and the HTTP endpoint that exports them.
//!
//! Labels are bounded: `flow` (source->target endpoint pair), `endpoint`, `class` (error
//! class), `mapping` and `resolution` (conflicts, resync). Never a table key or a value.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

pub const CHANGES_CAPTURED: &str = "rowbridge_changes_captured_total";
pub const CHANGES_APPLIED: &str = "rowbridge_changes_applied_total";
pub const CHANGES_FAILED: &str = "rowbridge_changes_failed_total";
pub const TRANSACTIONS_APPLIED: &str = "rowbridge_transactions_applied_total";
pub const DEAD_LETTERS: &str = "rowbridge_dead_letters";
pub const LAG_SECONDS: &str = "rowbridge_replication_lag_seconds";
pub const QUEUE_DEPTH: &str = "rowbridge_queue_depth";
pub const BATCH_ROWS: &str = "rowbridge_batch_rows";
pub const APPLY_SECONDS: &str = "rowbridge_apply_duration_seconds";
pub const CHECKPOINT_TIME: &str = "rowbridge_last_checkpoint_timestamp_seconds";
pub const ENDPOINT_UP: &str = "rowbridge_endpoint_up";
pub const FLOW_UP: &str = "rowbridge_flow_up";
pub const ERRORS: &str = "rowbridge_errors_total";
pub const RETRIES: &str = "rowbridge_retries_total";
pub const WAITING: &str = "rowbridge_waiting_changes";
pub const ECHO_SKIPPED: &str = "rowbridge_echo_skipped_total";
pub const CONFLICTS: &str = "rowbridge_conflicts_total";
pub const CONFLICTS_OPEN: &str = "rowbridge_conflicts_open";
pub const RESYNC_ROWS: &str = "rowbridge_resync_rows_total";
pub const RELOAD_SUCCESS: &str = "rowbridge_config_reload_success";
pub const STORE_WRITABLE: &str = "rowbridge_store_writable";
pub const RELOAD_TIME: &str = "rowbridge_config_reload_timestamp_seconds";

fn describe() {
    describe_counter!(
        CHANGES_CAPTURED,
        Unit::Count,
        "Row changes read from a source for a flow."
    );
    describe_counter!(
        CHANGES_APPLIED,
        Unit::Count,
        "Target operations committed, by flow and mapping."
    );
    describe_counter!(
        CHANGES_FAILED,
        Unit::Count,
        "Row changes sent to the dead-letter queue."
    );
    describe_counter!(
        TRANSACTIONS_APPLIED,
        Unit::Count,
        "Source transactions checkpointed."
    );
    describe_gauge!(
        DEAD_LETTERS,
        Unit::Count,
        "Entries in the dead-letter queue."
    );
    describe_gauge!(
        STORE_WRITABLE,
        "1 while the store takes writes; 0 after a write failed (filesystem full): flows wait until it is reopened."
    );
    describe_gauge!(
        LAG_SECONDS,
        Unit::Seconds,
        "Age of the oldest source change received and not yet applied (0 when nothing waits)."
    );
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Source transactions waiting for the apply loop."
    );
    describe_histogram!(
        BATCH_ROWS,
        Unit::Count,
        "Target operations per target transaction."
    );
    describe_histogram!(
        APPLY_SECONDS,
        Unit::Seconds,
        "Time to apply and commit one batch."
    );
    describe_gauge!(
        CHECKPOINT_TIME,
        Unit::Seconds,
        "Unix time of the last stored checkpoint."
    );
    describe_gauge!(
        ENDPOINT_UP,
        Unit::Count,
        "1 when the last connection to an endpoint worked."
    );
    describe_gauge!(
        FLOW_UP,
        Unit::Count,
        "1 while a flow is streaming, 0 when it is stopped or retrying."
    );
    describe_counter!(
        ERRORS,
        Unit::Count,
        "Errors by class (transient, row, endpoint_fatal, config)."
    );
    describe_counter!(RETRIES, Unit::Count, "Retries after transient errors.");
    describe_counter!(
        CONFLICTS,
        Unit::Count,
        "Conflicts decided or parked, by mapping and resolution (last_writer_wins, source_wins, merge, manual)."
    );
    describe_gauge!(
        CONFLICTS_OPEN,
        Unit::Count,
        "Conflicts not resolved yet (waiting for both versions, or parked for an operator)."
    );
    describe_gauge!(
        RELOAD_SUCCESS,
        Unit::Count,
        "1 when the last reload (SIGHUP) of the configuration and mappings succeeded (or none was asked for), 0 when it was rejected and the previous configuration keeps running."
    );
    describe_gauge!(
        RELOAD_TIME,
        Unit::Seconds,
        "Unix time the running configuration was loaded (start or last successful reload)."
    );
    describe_counter!(
        RESYNC_ROWS,
        Unit::Count,
        "Rows copied by online resyncs, by mapping."
    );
    describe_counter!(
        ECHO_SKIPPED,
        Unit::Count,
        "rowbridge's own writes coming back, dropped: marked transactions, and changes recognised by their fingerprint."
    );
    describe_gauge!(
        WAITING,
        Unit::Count,
        "Changes parked until the row they reference is written."
    );
}

/// Install the global recorder. Safe to call more than once in a process (tests).
pub fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(APPLY_SECONDS.to_string()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )
        .ok()?
        .set_buckets_for_metric(
            Matcher::Full(BATCH_ROWS.to_string()),
            &[
                1.0, 10.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 20000.0, 50000.0,
            ],
        )
        .ok()?;
    let handle = builder.install_recorder().ok()?;
    describe();
    Some(handle)
}

/// Readiness: every flow has loaded its checkpoint, connected, and its source position exists
/// on the server (so a change committed from now on will be replicated).
#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<HealthInner>,
    /// What each flow is doing (for `rowbridge status`) and how to reach it.
    pub board: crate::board::Board,
    /// Notified on reload (SIGHUP): stopped flows try again.
    pub reload: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct HealthInner {
    started: AtomicBool,
    flows: Mutex<HashMap<String, bool>>,
}

impl Health {
    /// Register the flows that must be streaming before the daemon is ready (replacing an
    /// earlier configuration's).
    pub fn expect_flows<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        let mut flows = self.inner.flows.lock().unwrap_or_else(|p| p.into_inner());
        flows.clear();
        for n in names {
            flows.entry(n.to_string()).or_insert(false);
        }
        self.inner.started.store(true, Ordering::Relaxed);
    }

    pub fn set_flow(&self, name: &str, streaming: bool) {
        let mut flows = self.inner.flows.lock().unwrap_or_else(|p| p.into_inner());
        flows.insert(name.to_string(), streaming);
    }

    pub fn is_ready(&self) -> bool {
        let flows = self.inner.flows.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.started.load(Ordering::Relaxed) && flows.values().all(|&up| up)
    }
}

/// Serve `/metrics`, `/healthz` and `/readyz` until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    handle: Option<PrometheusHandle>,
    health: Health,
    shutdown: CancellationToken,
) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::ConfigFile {
            path: "admin.http".into(),
            message: format!("cannot listen on {addr}: {e}"),
        })?;
    tracing::info!(%addr, "metrics endpoint listening");
    loop {
        let (mut sock, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => { tracing::warn!(error = %e, "metrics accept failed"); continue; }
            },
        };
        let handle = handle.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match sock.read(&mut buf).await {
                Ok(n) => n,
                Err(_) => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, ctype, body) = match path {
                "/metrics" => (
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    handle.map(|h| h.render()).unwrap_or_default(),
                ),
                "/healthz" => ("200 OK", "text/plain; charset=utf-8", "ok\n".to_string()),
                "/readyz" if health.is_ready() => {
                    ("200 OK", "text/plain; charset=utf-8", "ready\n".into())
                }
                "/readyz" => (
                    "503 Service Unavailable",
                    "text/plain; charset=utf-8",
                    "not ready\n".into(),
                ),
                _ => (
                    "404 Not Found",
                    "text/plain; charset=utf-8",
                    "not found\n".into(),
                ),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}
