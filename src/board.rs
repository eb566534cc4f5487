//! What the daemon's flows are doing, for `rowbridge status`, and the channel an operator's
//! command reaches a running flow by.
//!
//! Flows write their state here as they go (cheap: a mutex and a few fields per batch); the
//! admin socket reads a snapshot. Rates are computed from the applied-change counter over the
//! last ten seconds.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use tokio::sync::{mpsc, oneshot};

use crate::position::Position;

/// How far back changes/s looks.
const RATE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    flows: HashMap<String, FlowState>,
    endpoints: HashMap<String, EndpointState>,
    controls: HashMap<String, mpsc::Sender<Control>>,
    /// Per flow: wakes it when it waits (stopped, or between retries) because an operator
    /// changed what it starts from (checkpoint, resync).
    wakers: HashMap<String, Arc<tokio::sync::Notify>>,
}

#[derive(Default)]
struct FlowState {
    state: &'static str,
    position: Option<Position>,
    lag_seconds: Option<f64>,
    queue_depth: usize,
    applied: u64,
    samples: VecDeque<(Instant, u64)>,
    last_error: Option<(String, &'static str, i64)>,
    since_us: i64,
    /// Last time the flow's apply loop went round (or started streaming): what the systemd
    /// watchdog looks at.
    last_beat: Option<Instant>,
}

#[derive(Default)]
struct EndpointState {
    up: bool,
    why: Option<String>,
    at_us: i64,
}

/// A command for a running flow, answered on `reply`.
pub enum Control {
    /// Re-run the current mapping on these dead letters (ids), as one target transaction.
    Replay {
        ids: Vec<u64>,
        reply: oneshot::Sender<crate::error::Result<Vec<Replayed>>>,
    },
    /// A resync job was stored for this flow.
    Resync,
    /// Cancel the unfinished resync of this mapping, between chunks. Replies the job.
    ResyncCancel {
        mapping: String,
        actor: String,
        reply: oneshot::Sender<crate::error::Result<crate::store::ResyncJob>>,
    },
    /// Re-copy these source rows (keys) of a mapping and delete these target rows (keys):
    /// what verify found drifted. Replies (rows written, rows deleted).
    Repair {
        mapping: String,
        source_keys: Vec<Vec<crate::model::Value>>,
        extra_keys: Vec<Vec<crate::model::Value>>,
        reply: oneshot::Sender<crate::error::Result<(u64, u64)>>,
    },
    /// Store this checkpoint (or none) and restart the session from it.
    SetCheckpoint {
        position: Option<Position>,
        actor: String,
        reply: oneshot::Sender<crate::error::Result<()>>,
    },
}

/// What replaying one dead letter did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replayed {
    pub id: u64,
    /// `applied`, or `failed` (a new dead letter `new_id` holds the new reason).
    pub outcome: &'static str,
    pub new_id: Option<u64>,
    pub reason: Option<String>,
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl Board {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut inner)
    }

    /// A flow's state: `connecting`, `streaming`, `retrying`, `stopped`.
    pub fn flow_state(&self, flow: &str, state: &'static str) {
        self.with(|i| {
            let f = i.flows.entry(flow.to_string()).or_default();
            if f.state != state {
                f.state = state;
                f.since_us = now_us();
                f.last_beat = Some(Instant::now());
            }
        });
    }

    /// The flow's apply loop is alive (called on every turn of it, at least once a second).
    pub fn beat(&self, flow: &str) {
        self.with(|i| {
            if let Some(f) = i.flows.get_mut(flow) {
                f.last_beat = Some(Instant::now());
            }
        });
    }

    /// Streaming flows whose apply loop has not gone round for `limit`: stuck (a call that
    /// never returns), which a restart would cure. Flows waiting to retry or stopped on an
    /// endpoint error are waiting for the world, not stuck.
    pub fn stuck_flows(&self, limit: Duration) -> Vec<String> {
        self.with(|i| {
            let mut stuck: Vec<String> = i
                .flows
                .iter()
                .filter(|(_, f)| {
                    f.state == "streaming" && f.last_beat.is_some_and(|t| t.elapsed() > limit)
                })
                .map(|(n, _)| n.clone())
                .collect();
            stuck.sort();
            stuck
        })
    }

    /// Every one of these flows has tried its endpoints once (streaming, retrying or stopped).
    pub fn settled<'a>(&self, flows: impl IntoIterator<Item = &'a str>) -> bool {
        self.with(|i| {
            flows.into_iter().all(|n| {
                i.flows
                    .get(n)
                    .is_some_and(|f| matches!(f.state, "streaming" | "retrying" | "stopped"))
            })
        })
    }

    /// One line for `systemctl status`: each flow's state.
    pub fn summary(&self) -> String {
        self.with(|i| {
            let mut parts: Vec<String> = i
                .flows
                .iter()
                .map(|(n, f)| {
                    let state = if f.state.is_empty() {
                        "starting"
                    } else {
                        f.state
                    };
                    format!("{n} {state}")
                })
                .collect();
            parts.sort();
            parts.join(", ")
        })
    }

    /// Forget flows (and their command channels) that a reloaded configuration no longer has,
    /// and restart the state of the ones it keeps.
    pub fn reset_flows(&self, keep: &[String]) {
        self.with(|i| {
            i.flows.retain(|n, _| keep.contains(n));
            for f in i.flows.values_mut() {
                f.state = "";
                f.last_beat = None;
            }
            i.controls.retain(|n, _| keep.contains(n));
        });
    }

    pub fn flow_error(&self, flow: &str, error: &crate::error::Error) {
        self.with(|i| {
            let f = i.flows.entry(flow.to_string()).or_default();
            f.last_error = Some((error.to_string(), error.class().as_str(), now_us()));
        });
    }

    /// After a batch: checkpoint, lag, changes written, queue depth.
    pub fn flow_progress(
        &self,
        flow: &str,
        position: Option<&Position>,
        lag_seconds: Option<f64>,
        applied: u64,
        queue_depth: usize,
    ) {
        self.with(|i| {
            let f = i.flows.entry(flow.to_string()).or_default();
            if let Some(p) = position {
                f.position = Some(p.clone());
            }
            if lag_seconds.is_some() {
                f.lag_seconds = lag_seconds;
            }
            f.applied += applied;
            f.queue_depth = queue_depth;
            let now = Instant::now();
            f.samples.push_back((now, f.applied));
            while f
                .samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
            {
                f.samples.pop_front();
            }
        });
    }

    /// The flow's replication lag as its monitor measured it.
    pub fn flow_lag(&self, flow: &str, lag_seconds: f64) {
        self.with(|i| {
            i.flows.entry(flow.to_string()).or_default().lag_seconds = Some(lag_seconds);
        });
    }

    pub fn endpoint(&self, name: &str, up: bool, why: Option<String>) {
        self.with(|i| {
            i.endpoints.insert(
                name.to_string(),
                EndpointState {
                    up,
                    why,
                    at_us: now_us(),
                },
            );
        });
    }

    /// Register a running flow's command channel (replacing an earlier session's).
    pub fn register(&self, flow: &str, tx: mpsc::Sender<Control>) {
        self.with(|i| {
            i.controls.insert(flow.to_string(), tx);
        });
    }

    /// The control channel of a flow that is streaming (None while it is stopped, connecting
    /// or waiting to retry: its apply loop is not there to answer).
    pub fn control(&self, flow: &str) -> Option<mpsc::Sender<Control>> {
        self.with(|i| i.controls.get(flow).filter(|c| !c.is_closed()).cloned())
    }

    /// Wake every flow that waits to start again (the store writes again).
    pub fn wake_all(&self) {
        self.with(|i| {
            let names: Vec<String> = i.flows.keys().cloned().collect();
            for n in names {
                i.wakers.entry(n).or_default().notify_one();
            }
        });
    }

    /// What a flow waiting to start again listens to (see [`Inner::wakers`]).
    pub fn waker(&self, flow: &str) -> Arc<tokio::sync::Notify> {
        self.with(|i| i.wakers.entry(flow.to_string()).or_default().clone())
    }

    /// The per-flow and per-endpoint part of `rowbridge status`.
    pub fn snapshot(&self) -> (Vec<(String, Json)>, Json) {
        self.with(|i| {
            let now = Instant::now();
            let mut flows: Vec<(String, Json)> = i
                .flows
                .iter()
                .map(|(name, f)| {
                    let rate = match (f.samples.front(), f.samples.back()) {
                        (Some((t0, n0)), Some((_, n1))) => {
                            let secs = now.duration_since(*t0).as_secs_f64().max(1.0);
                            (n1 - n0) as f64 / secs
                        }
                        _ => 0.0,
                    };
                    let state = if f.state.is_empty() { "starting" } else { f.state };
                    (
                        name.clone(),
                        json!({
                            "flow": name,
                            "state": state,
                            "since_us": f.since_us,
                            "position": f.position.as_ref().map(|p| p.to_string()),
                            "position_arg": f.position.as_ref().map(|p| p.to_arg()),
                            "lag_seconds": f.lag_seconds,
                            "changes_per_second": (rate * 10.0).round() / 10.0,
                            "changes_applied": f.applied,
                            "queue_depth": f.queue_depth,
                            "last_error": f.last_error.as_ref().map(|(m, c, at)| json!({"message": m, "class": c, "at_us": at})),
                        }),
                    )
                })
                .collect();
            flows.sort_by(|a, b| a.0.cmp(&b.0));
            let mut endpoints: Vec<(&String, &EndpointState)> = i.endpoints.iter().collect();
            endpoints.sort_by(|a, b| a.0.cmp(b.0));
            let endpoints = Json::Array(
                endpoints
                    .into_iter()
                    .map(|(n, e)| json!({"endpoint": n, "up": e.up, "why": e.why, "at_us": e.at_us}))
                    .collect(),
            );
            (flows, endpoints)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_streaming_flows_without_beats_are_stuck() {
        let b = Board::default();
        b.flow_state("crm->erp", "streaming");
        b.flow_state("erp->crm", "retrying");
        b.flow_state("x->y", "stopped");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(b.stuck_flows(Duration::from_millis(1)), vec!["crm->erp"]);
        assert!(b.stuck_flows(Duration::from_secs(3600)).is_empty());
        b.beat("crm->erp");
        assert!(b.stuck_flows(Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn settled_once_every_flow_tried() {
        let b = Board::default();
        b.flow_state("crm->erp", "connecting");
        assert!(!b.settled(["crm->erp"]));
        assert!(!b.settled(["erp->crm"]));
        b.flow_state("crm->erp", "retrying");
        assert!(b.settled(["crm->erp"]));
        b.reset_flows(&["crm->erp".to_string()]);
        assert!(!b.settled(["crm->erp"]));
        assert_eq!(b.summary(), "crm->erp starting");
    }
}
