//! The admin API: operator commands served by the running daemon over a Unix socket.
//!
//! sled allows one process per store, so while the daemon runs, every command that reads or
//! changes the store goes through it. The protocol is one JSON request line and one JSON
//! response line per connection: `{"cmd": "conflicts", ...}` ->
//! `{"ok": true, "data": ...}` or `{"ok": false, "error": "..."}`. The socket is created
//! with mode 0660 (owner and group: the service user and its operators).
//!
//! When no daemon answers, the CLI opens the store itself and runs the same handler, so a
//! decision taken while the daemon is stopped is applied when it starts.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::mapping::convert;
use crate::pipeline::conflict::{resolve, Choice, Hub};
use crate::store::{AuditEntry, Conflict, ConflictState, Store, Version};

/// One operator request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Conflicts: unresolved ones, or all with `all`.
    Conflicts {
        all: bool,
    },
    ConflictShow {
        id: u64,
    },
    /// Decide a conflict: `take` is an endpoint name or `merged`.
    ConflictResolve {
        id: u64,
        take: String,
        prefer: Option<String>,
        dry_run: bool,
        actor: String,
    },
    /// Per flow and per endpoint: what the daemon is doing.
    Status,
    DlqList,
    DlqShow {
        id: u64,
    },
    /// Re-run the current mapping on dead letters (the daemon must run).
    DlqReplay {
        ids: Vec<u64>,
        all: bool,
        dry_run: bool,
        actor: String,
    },
    DlqDrop {
        ids: Vec<u64>,
        all: bool,
        dry_run: bool,
        actor: String,
    },
    CheckpointShow,
    /// Set (`position`) or clear (`None`: the flow starts over as on its first run) a checkpoint.
    CheckpointSet {
        flow: String,
        position: Option<String>,
        dry_run: bool,
        actor: String,
    },
    Audit,
    /// Compare a mapping's two sides; with `repair`, fix what differs.
    Verify {
        mapping: String,
        repair: bool,
        /// With `repair`: report the plan, change nothing.
        #[serde(default)]
        dry_run: bool,
        /// With `repair`: carry out a plan that deletes more than `MASS_DELETE_SHARE` of
        /// the target's rows.
        #[serde(default)]
        allow_mass_delete: bool,
        actor: String,
    },
    /// Copy a mapping's source rows to the target while streaming continues.
    Resync {
        mapping: String,
        filter: Option<String>,
        /// Only these source keys; a composite key's values joined by `|`.
        keys: Vec<String>,
        /// Start over even if a resync of this mapping is unfinished.
        restart: bool,
        dry_run: bool,
        actor: String,
    },
    /// Cancel a mapping's unfinished resync (rows already copied stay).
    ResyncCancel {
        mapping: String,
        dry_run: bool,
        actor: String,
    },
}

/// What `verify` does after comparing.
#[derive(Debug, Clone, Copy)]
enum Repair {
    /// Report the plan only.
    DryRun,
    Apply {
        allow_mass_delete: bool,
    },
}

/// What the handler needs: the store and the conflict hub (the daemon's, or one over the store
/// the CLI opened).
#[derive(Clone)]
pub struct Admin {
    pub store: Store,
    pub hub: Arc<Hub>,
    /// The running daemon's flows; `None` when the CLI works on a stopped daemon's store.
    pub board: Option<crate::board::Board>,
    /// Flow names the mappings define.
    pub flows: Vec<String>,
    pub config: Arc<crate::config::Config>,
}

impl Admin {
    pub async fn handle(&self, req: Request) -> Result<Json> {
        match req {
            Request::Status => self.status().await,
            Request::DlqList => Ok(Json::Array(
                self.store
                    .dead_letters()?
                    .iter()
                    .map(|d| Self::letter_json(d, false))
                    .collect(),
            )),
            Request::DlqShow { id } => {
                let d = self
                    .store
                    .dead_letter(id)?
                    .ok_or_else(|| Error::Usage(format!("no dead letter {id}")))?;
                Ok(Self::letter_json(&d, true))
            }
            Request::DlqReplay {
                ids,
                all,
                dry_run,
                actor,
            } => self.replay(&ids, all, dry_run, &actor).await,
            Request::DlqDrop {
                ids,
                all,
                dry_run,
                actor,
            } => self.drop_letters(&ids, all, dry_run, &actor),
            Request::CheckpointShow => Ok(Json::Array(
                self.store
                    .checkpoints()?
                    .iter()
                    .map(|(flow, pos)| {
                        json!({"flow": flow, "position": pos.to_string(), "arg": pos.to_arg(), "lsn": pos.lsn()})
                    })
                    .collect(),
            )),
            Request::CheckpointSet {
                flow,
                position,
                dry_run,
                actor,
            } => {
                self.set_checkpoint(&flow, position.as_deref(), dry_run, &actor)
                    .await
            }
            Request::Verify {
                mapping,
                repair,
                dry_run,
                allow_mass_delete,
                actor,
            } => {
                let repair = match (repair, dry_run) {
                    (false, _) => None,
                    (true, true) => Some(Repair::DryRun),
                    (true, false) => Some(Repair::Apply { allow_mass_delete }),
                };
                self.verify(&mapping, repair, &actor).await
            }
            Request::Resync {
                mapping,
                filter,
                keys,
                restart,
                dry_run,
                actor,
            } => {
                self.resync(&mapping, filter, keys, restart, dry_run, &actor)
                    .await
            }
            Request::ResyncCancel {
                mapping,
                dry_run,
                actor,
            } => self.resync_cancel(&mapping, dry_run, &actor).await,
            Request::Audit => Ok(Json::Array(
                self.store
                    .audit_log()?
                    .iter()
                    .map(|a| json!({"at_us": a.at_us, "actor": a.actor, "action": a.action, "detail": a.detail}))
                    .collect(),
            )),
            Request::Conflicts { all } => {
                let list = if all {
                    self.store.conflicts()?
                } else {
                    self.store.open_conflicts()?
                };
                Ok(Json::Array(
                    list.iter().map(|c| self.conflict_json(c)).collect(),
                ))
            }
            Request::ConflictShow { id } => {
                let c = self.find(id)?;
                Ok(self.conflict_json(&c))
            }
            Request::ConflictResolve {
                id,
                take,
                prefer,
                dry_run,
                actor,
            } => {
                // Decisions and the flows' batches take turns.
                let _turn = self.hub.turn.lock().await;
                let mut c = self.find(id)?;
                if matches!(c.state, ConflictState::Resolved { .. }) {
                    return Err(Error::Usage(format!("conflict {id} is already resolved")));
                }
                if c.a.until.is_some() || c.b.until.is_some() {
                    // The other side's stream still carries changes of the row that belong to
                    // this conflict; deciding now could be overtaken by them.
                    return Err(Error::Usage(format!(
                        "conflict {id} is still collecting the versions of both sides; try again shortly"
                    )));
                }
                let choice = match take.as_str() {
                    "merged" => Choice::Merged { prefer },
                    side => Choice::Take(side.to_string()),
                };
                let pair = self
                    .hub
                    .pair(&c.pair)
                    .ok_or_else(|| Error::Usage(format!("mapping '{}' is not loaded", c.pair)))?
                    .clone();
                let outcome = resolve(&pair, &c, &choice, false)
                    .map_err(Error::Usage)?
                    .ok_or_else(|| Error::Usage("a manual choice always decides".into()))?;
                let fields = pair.columns(true);
                let row = outcome.row.as_ref().map(|r| row_json(&fields, r));
                if dry_run {
                    return Ok(
                        json!({"id": id, "dry_run": true, "taken": outcome.taken, "row": row}),
                    );
                }
                self.hub
                    .decide(&mut c, &choice, &format!("operator:{actor}"))?;
                self.store.audit(AuditEntry::new(
                    &actor,
                    "conflict resolve",
                    format!("conflict {id} ({}): took {}", c.pair, outcome.taken),
                ))?;
                self.store.flush()?;
                Ok(json!({"id": id, "taken": outcome.taken, "row": row}))
            }
        }
    }

    fn board(&self, what: &str) -> Result<&crate::board::Board> {
        self.board.as_ref().ok_or_else(|| {
            Error::Unreachable(format!(
                "{what} needs the running daemon (its admin socket does not answer)"
            ))
        })
    }

    async fn status(&self) -> Result<Json> {
        let letters = self.store.dead_letters()?;
        let open = self.store.open_conflicts()?;
        let jobs = self.store.resync_jobs()?;
        let checkpoints: std::collections::HashMap<String, crate::position::Position> =
            self.store.checkpoints()?.into_iter().collect();
        let (live, endpoints) = match &self.board {
            Some(b) => b.snapshot(),
            None => (Vec::new(), Json::Array(Vec::new())),
        };
        let mut flows = Vec::new();
        for name in &self.flows {
            let mut f = live
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, j)| j.clone())
                .unwrap_or_else(|| {
                    let pos = checkpoints.get(name);
                    json!({
                        "flow": name,
                        "state": if self.board.is_some() { "starting" } else { "stopped" },
                        "position": pos.map(|p| p.to_string()),
                        "position_arg": pos.map(|p| p.to_arg()),
                        "lag_seconds": null, "changes_per_second": 0.0, "changes_applied": 0,
                        "queue_depth": 0, "last_error": null,
                    })
                });
            let (source, target) = name.split_once("->").unwrap_or((name.as_str(), ""));
            let conflicts = open
                .iter()
                .filter(|c| {
                    let ends = [c.a.endpoint.as_str(), c.b.endpoint.as_str()];
                    ends.contains(&source) && ends.contains(&target)
                })
                .count();
            let now = chrono::Utc::now().timestamp_micros();
            let resyncs: Vec<Json> = jobs
                .iter()
                .filter(|j| &j.flow == name)
                .map(|j| {
                    let secs = ((j.updated_us - j.started_us) as f64 / 1e6).max(0.001);
                    let rate = j.rows as f64 / secs;
                    let eta = match (j.done, j.total) {
                        (true, _) => Some(0.0),
                        (false, Some(t)) if rate > 0.0 => {
                            Some((t.saturating_sub(j.rows) as f64 / rate).round())
                        }
                        _ => None,
                    };
                    let end = self.store.resync_end(&j.mapping).ok().flatten();
                    let state = match (&end, j.done) {
                        (Some(e), _) => e.state.clone(),
                        (None, true) => "done".to_string(),
                        (None, false) => "running".to_string(),
                    };
                    json!({
                        "mapping": j.mapping, "rows": j.rows, "total": j.total,
                        "done": state == "done", "state": state, "error": end.as_ref().filter(|e| e.state == "failed").map(|e| e.reason.clone()),
                        "where": j.filter,
                        "rows_per_second": rate.round(), "eta_seconds": eta,
                        "started_us": j.started_us, "updated_us": j.updated_us,
                        "idle_seconds": ((now - j.updated_us) as f64 / 1e6).round(),
                    })
                })
                .collect();
            f["resync"] = Json::Array(resyncs);
            f["dead_letters"] = json!(letters.iter().filter(|d| &d.flow == name).count());
            f["open_conflicts"] = json!(conflicts);
            flows.push(f);
        }
        Ok(json!({
            "daemon": if self.board.is_some() { "running" } else { "stopped" },
            "flows": flows,
            "endpoints": endpoints,
        }))
    }

    fn letter_json(d: &crate::store::DeadLetter, full: bool) -> Json {
        let mut v = json!({
            "id": d.id, "flow": d.flow, "mapping": d.mapping, "table": d.table,
            "key": d.key, "reason": d.reason, "class": d.class,
            "op": d.change.op.as_str(), "position": d.position.to_arg(), "at_us": d.at_us,
        });
        if full {
            let names: Vec<&str> = d
                .change
                .table
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            let image = |img: &Option<crate::model::RowImage>| {
                img.as_ref().map(|r| {
                    let mut m = serde_json::Map::new();
                    for (i, v) in r.iter().enumerate() {
                        let name = names.get(i).map(|s| s.to_string()).unwrap_or(i.to_string());
                        m.insert(
                            name,
                            match v {
                                None => json!({"unchanged": true}),
                                Some(crate::model::Value::Null) => Json::Null,
                                Some(v) => Json::String(convert::text_form(v).unwrap_or_default()),
                            },
                        );
                    }
                    Json::Object(m)
                })
            };
            v["before"] = json!(image(&d.change.before));
            v["after"] = json!(image(&d.change.after));
        }
        v
    }

    /// The dead letters a replay or drop names: `ids`, or every one with `all`.
    fn pick_letters(&self, ids: &[u64], all: bool) -> Result<Vec<crate::store::DeadLetter>> {
        if all {
            return self.store.dead_letters();
        }
        if ids.is_empty() {
            return Err(Error::Usage("name dead letter ids, or --all".into()));
        }
        ids.iter()
            .map(|&id| {
                self.store
                    .dead_letter(id)?
                    .ok_or_else(|| Error::Usage(format!("no dead letter {id}")))
            })
            .collect()
    }

    async fn replay(&self, ids: &[u64], all: bool, dry_run: bool, actor: &str) -> Result<Json> {
        let letters = self.pick_letters(ids, all)?;
        if dry_run {
            return Ok(
                json!({"dry_run": true, "would_replay": letters.iter().map(|d| d.id).collect::<Vec<_>>()}),
            );
        }
        let board = self.board("dlq replay")?;
        let mut by_flow: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        for d in &letters {
            by_flow.entry(d.flow.clone()).or_default().push(d.id);
        }
        let mut results = Vec::new();
        for (flow, ids) in by_flow {
            let ctl = board.control(&flow).ok_or_else(|| {
                Error::Unreachable(format!("flow {flow} is not running; its dead letters wait"))
            })?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            ctl.send(crate::board::Control::Replay {
                ids: ids.clone(),
                reply: tx,
            })
            .await
            .map_err(|_| Error::Unreachable(format!("flow {flow} is restarting; try again")))?;
            let replayed = rx.await.map_err(|_| {
                Error::Unreachable(format!("flow {flow} stopped during the replay"))
            })??;
            results.extend(replayed);
        }
        self.store.audit(AuditEntry::new(
            actor,
            "dlq replay",
            format!(
                "{} dead letters: {}",
                results.len(),
                results
                    .iter()
                    .map(|r| format!("{} {}", r.id, r.outcome))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))?;
        self.store.flush()?;
        Ok(serde_json::to_value(&results).unwrap_or(Json::Null))
    }

    fn drop_letters(&self, ids: &[u64], all: bool, dry_run: bool, actor: &str) -> Result<Json> {
        let letters = self.pick_letters(ids, all)?;
        let ids: Vec<u64> = letters.iter().map(|d| d.id).collect();
        if dry_run {
            return Ok(json!({"dry_run": true, "would_drop": ids}));
        }
        for d in &letters {
            self.store.remove_dead_letter(d.id)?;
            self.store.audit(AuditEntry::new(
                actor,
                "dlq drop",
                format!(
                    "dead letter {} ({}, {}, key {})",
                    d.id, d.flow, d.mapping, d.key
                ),
            ))?;
        }
        self.store.flush()?;
        metrics::gauge!(crate::metrics::DEAD_LETTERS).set(self.store.dead_letter_count() as f64);
        Ok(json!({"dropped": ids}))
    }

    async fn set_checkpoint(
        &self,
        flow: &str,
        position: Option<&str>,
        dry_run: bool,
        actor: &str,
    ) -> Result<Json> {
        if !self.flows.iter().any(|f| f == flow) {
            return Err(Error::Usage(format!(
                "no flow '{flow}' (flows: {})",
                self.flows.join(", ")
            )));
        }
        let pos = match position {
            None => None,
            Some(text) => Some(crate::position::Position::parse(text).ok_or_else(|| {
                Error::Usage(format!(
                    "'{text}' is not a position (expected an LSN like 0/16B3748, GTID@file:offset or file:offset)"
                ))
            })?),
        };
        let old = self.store.checkpoint(flow)?;
        let describe = |p: Option<&crate::position::Position>| {
            p.map(|p| p.to_string()).unwrap_or_else(|| "none".into())
        };
        let change =
            json!({"flow": flow, "from": describe(old.as_ref()), "to": describe(pos.as_ref())});
        if dry_run {
            return Ok(json!({"dry_run": true, "change": change}));
        }
        let sent = match self.board.as_ref().and_then(|b| b.control(flow)) {
            Some(ctl) => {
                // A streaming flow stores it itself, between batches, and restarts from it.
                let (tx, rx) = tokio::sync::oneshot::channel();
                let cmd = crate::board::Control::SetCheckpoint {
                    position: pos.clone(),
                    actor: actor.to_string(),
                    reply: tx,
                };
                match ctl.send(cmd).await {
                    Ok(()) => match rx.await {
                        Ok(result) => result.map(|_| true)?,
                        // The flow ended before it took the command: it is not streaming now.
                        Err(_) => false,
                    },
                    Err(_) => false,
                }
            }
            None => false,
        };
        if !sent {
            // Stopped, retrying or no daemon: nothing reads the store's checkpoint until the
            // flow starts again, which it does now (a running daemon's stopped flow wakes).
            self.store.reset_checkpoint(flow, pos.as_ref(), actor)?;
            self.store.flush()?;
            if let Some(b) = &self.board {
                b.waker(flow).notify_one();
            }
        }
        Ok(change)
    }

    async fn verify(&self, name: &str, repair: Option<Repair>, actor: &str) -> Result<Json> {
        let m = self
            .hub
            .mapping(name)
            .ok_or_else(|| Error::Usage(format!("no mapping '{name}'")))?
            .clone();
        let flow = crate::pipeline::flow_name(&m.source.endpoint, &m.target.endpoint);
        if matches!(repair, Some(Repair::Apply { .. })) {
            // Checked first: a repair needs the flow, and verify alone can take a while.
            self.board("verify --repair")?;
        }
        let drift =
            crate::verify::verify(&self.config, &m, self.hub.mappings(), &self.store).await?;
        let mut report = drift.to_json(name);
        let allow_mass_delete = match repair {
            None => return Ok(report),
            Some(Repair::DryRun) => {
                report["dry_run"] = json!(true);
                return Ok(report);
            }
            Some(Repair::Apply { allow_mass_delete }) => allow_mass_delete,
        };
        let plan = format!(
            "{} missing to write, {} differing to rewrite, {} extra to delete",
            drift.missing.len(),
            drift.differing.len(),
            drift.extra.len()
        );
        if drift.mass_delete() && !allow_mass_delete {
            return Err(Error::Usage(format!(
                "{name}: repair refused: the plan ({plan}) deletes {} of {} target rows, more than {:.0} %; \
                 check it with --dry-run and add --allow-mass-delete if it is right",
                drift.extra.len(),
                drift.target_rows,
                crate::verify::MASS_DELETE_SHARE * 100.0
            )));
        }
        let mut source_keys = drift.missing.clone();
        source_keys.extend(drift.differing.iter().cloned());
        let ctl = self
            .board("verify --repair")?
            .control(&flow)
            .ok_or_else(|| Error::Unreachable(format!("flow {flow} is not running")))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        ctl.send(crate::board::Control::Repair {
            mapping: name.to_string(),
            source_keys,
            extra_keys: drift.extra.clone(),
            reply: tx,
        })
        .await
        .map_err(|_| Error::Unreachable(format!("flow {flow} is restarting; try again")))?;
        let (written, deleted) = rx
            .await
            .map_err(|_| Error::Unreachable(format!("flow {flow} stopped during the repair")))??;
        report["repaired"] = json!({"written": written, "deleted": deleted});
        self.store.audit(AuditEntry::new(
            actor,
            "verify repair",
            format!(
                "{name}: plan {plan}{}; {written} rows written, {deleted} deleted",
                if allow_mass_delete {
                    " (mass delete allowed)"
                } else {
                    ""
                }
            ),
        ))?;
        self.store.flush()?;
        Ok(report)
    }

    async fn resync(
        &self,
        mapping: &str,
        filter: Option<String>,
        keys: Vec<String>,
        restart: bool,
        dry_run: bool,
        actor: &str,
    ) -> Result<Json> {
        let pair = self.hub.pair(mapping).cloned();
        let m = self
            .hub
            .mapping(mapping)
            .ok_or_else(|| Error::Usage(format!("no mapping '{mapping}'")))?;
        let _ = pair;
        let flow = crate::pipeline::flow_name(&m.source.endpoint, &m.target.endpoint);
        if let Some(j) = self
            .store
            .resync_jobs()?
            .into_iter()
            .find(|j| j.mapping == mapping && !j.done)
        {
            if !restart {
                return Err(Error::Usage(format!(
                    "a resync of {mapping} is under way ({} rows copied); add --restart to start over",
                    j.rows
                )));
            }
        }
        let keys = match keys.is_empty() {
            true => None,
            false => {
                let mut parsed = Vec::new();
                for k in &keys {
                    let parts: Vec<crate::model::Value> = k
                        .split('|')
                        .map(|p| crate::model::Value::Text(p.to_string()))
                        .collect();
                    if parts.len() != m.key.len() {
                        return Err(Error::Usage(format!(
                            "key '{k}' has {} values; {mapping}'s key ({}) has {} (join them with |)",
                            parts.len(),
                            m.key.join(", "),
                            m.key.len()
                        )));
                    }
                    parsed.push(parts);
                }
                Some(parsed)
            }
        };
        if let Some(filter) = &filter {
            // Refused now, with the database's reason, rather than failing the job later.
            crate::pipeline::resync::check_filter(&self.config, m, filter).await?;
        }
        let now = chrono::Utc::now().timestamp_micros();
        let job = crate::store::ResyncJob {
            mapping: mapping.to_string(),
            flow: flow.clone(),
            keys,
            filter,
            last_key: None,
            rows: 0,
            total: None,
            started_us: now,
            updated_us: now,
            done: false,
            actor: actor.to_string(),
        };
        let view = json!({"mapping": mapping, "flow": flow, "where": job.filter, "keys": job.keys.as_ref().map(Vec::len)});
        if dry_run {
            return Ok(json!({"dry_run": true, "resync": view}));
        }
        self.store.start_resync(&job)?;
        self.store.audit(AuditEntry::new(
            actor,
            "resync",
            format!(
                "{mapping} ({flow}){}",
                job.filter
                    .as_ref()
                    .map(|w| format!(" where {w}"))
                    .unwrap_or_default()
            ),
        ))?;
        self.store.flush()?;
        if let Some(b) = &self.board {
            match b.control(&flow) {
                Some(ctl) => {
                    let _ = ctl.send(crate::board::Control::Resync).await;
                }
                // A stopped flow tries again now; the job runs once it streams.
                None => b.waker(&flow).notify_one(),
            }
        }
        Ok(json!({"started": view, "running": self.board.is_some()}))
    }

    async fn resync_cancel(&self, mapping: &str, dry_run: bool, actor: &str) -> Result<Json> {
        let m = self
            .hub
            .mapping(mapping)
            .ok_or_else(|| Error::Usage(format!("no mapping '{mapping}'")))?;
        let flow = crate::pipeline::flow_name(&m.source.endpoint, &m.target.endpoint);
        let job = self
            .store
            .resync_jobs()?
            .into_iter()
            .find(|j| j.mapping == mapping && !j.done)
            .ok_or_else(|| Error::Usage(format!("no resync of {mapping} is under way")))?;
        let view = json!({"mapping": mapping, "flow": flow, "rows": job.rows, "total": job.total});
        if dry_run {
            return Ok(json!({"dry_run": true, "would_cancel": view}));
        }
        let job = match self.board.as_ref().and_then(|b| b.control(&flow)) {
            // The flow ends it between two chunks, so no chunk stores progress over it.
            Some(ctl) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                ctl.send(crate::board::Control::ResyncCancel {
                    mapping: mapping.to_string(),
                    actor: actor.to_string(),
                    reply: tx,
                })
                .await
                .map_err(|_| Error::Unreachable(format!("flow {flow} is restarting; try again")))?;
                rx.await
                    .map_err(|_| Error::Unreachable(format!("flow {flow} stopped meanwhile")))??
            }
            None => crate::pipeline::resync::cancel(&self.store, mapping, actor)?,
        };
        self.store.audit(AuditEntry::new(
            actor,
            "resync cancel",
            format!("{mapping} ({flow}): {} rows copied", job.rows),
        ))?;
        self.store.flush()?;
        Ok(
            json!({"cancelled": {"mapping": mapping, "flow": flow, "rows": job.rows, "total": job.total}}),
        )
    }

    fn find(&self, id: u64) -> Result<Conflict> {
        self.store
            .conflict(id)?
            .ok_or_else(|| Error::Usage(format!("no conflict {id}")))
    }

    fn conflict_json(&self, c: &Conflict) -> Json {
        let pair = self.hub.pair(&c.pair);
        let version = |v: &Version, a: bool| {
            let names: Vec<&str> = pair.map(|p| p.columns(a)).unwrap_or_default();
            json!({
                "endpoint": v.endpoint,
                "row": v.row.as_ref().map(|r| row_json(&names, r)),
                "deleted": v.row.is_none(),
                "commit_us": v.commit_us,
                "complete": v.until.is_none(),
            })
        };
        let (state, resolution, taken, by, resolved_us) = match &c.state {
            ConflictState::Open => ("open", None, None, None, None),
            ConflictState::Parked => ("parked", None, None, None, None),
            ConflictState::Resolved {
                resolution,
                taken,
                by,
                at_us,
            } => (
                "resolved",
                Some(resolution.clone()),
                Some(taken.clone()),
                Some(by.clone()),
                Some(*at_us),
            ),
        };
        json!({
            "id": c.id,
            "mapping": c.pair,
            "key": c.entity.replace('\u{1f}', ","),
            "state": state,
            "detected_us": c.detected_us,
            "detected_by": c.detected_by,
            "a": version(&c.a, true),
            "b": version(&c.b, false),
            "resolution": resolution,
            "taken": taken,
            "by": by,
            "resolved_us": resolved_us,
        })
    }
}

fn row_json(names: &[&str], row: &[crate::model::Value]) -> Json {
    let mut m = serde_json::Map::new();
    for (i, v) in row.iter().enumerate() {
        let name = names.get(i).map(|s| s.to_string()).unwrap_or(i.to_string());
        let text = match v {
            crate::model::Value::Null => Json::Null,
            v => Json::String(convert::text_form(v).unwrap_or_default()),
        };
        m.insert(name, text);
    }
    Json::Object(m)
}

/// Serve the admin API until shutdown; each request sees the configuration running when it
/// arrives (`admin` changes on reload).
pub async fn serve(
    path: &Path,
    admin: tokio::sync::watch::Receiver<Admin>,
    shutdown: CancellationToken,
) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("admin socket folder {}: {e}", dir.display()),
            ))
        })?;
    }
    // A socket left by a killed daemon: the store lock proves no other daemon runs. Anything
    // that is not a socket is never removed (the config check refuses it too).
    remove_stale_socket(path)?;
    let listener = UnixListener::bind(path).map_err(|e| {
        Error::Io(std::io::Error::new(
            e.kind(),
            format!("admin socket {}: {e}", path.display()),
        ))
    })?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
    }
    tracing::info!(socket = %path.display(), "admin socket listening");
    let created = socket_identity(path);
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = listener.accept() => s,
        };
        let Ok((stream, _)) = stream else { continue };
        let admin = admin.borrow().clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &admin).await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
    // Only the socket this daemon made: if the path was replaced meanwhile, it stays.
    if created.is_some() && socket_identity(path) == created {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Device and inode of a socket at `path` (None when it is missing or not a socket).
fn socket_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type()
        .is_socket()
        .then(|| (meta.dev(), meta.ino()))
}

/// Remove a socket left at `path` by a daemon that is gone; refuse anything else there.
fn remove_stale_socket(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(_) if socket_identity(path).is_some() => {
            let _ = std::fs::remove_file(path);
            Ok(())
        }
        Ok(_) => Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "admin socket {}: the path exists and is not a socket; rowbridge never replaces it",
                path.display()
            ),
        ))),
    }
}

async fn answer(stream: UnixStream, admin: &Admin) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    // One request line, bounded in size and time: a stuck or oversized client is dropped.
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(1 << 20));
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        reader.read_line(&mut line),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "admin request timed out"))??;
    let reply = match serde_json::from_str::<Request>(&line) {
        Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        Ok(req) => match admin.handle(req).await {
            Ok(data) => json!({"ok": true, "data": data}),
            Err(e) => json!({"ok": false, "error": e.to_string(), "exit": e.exit_code()}),
        },
    };
    let mut out = reply.to_string();
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    write.shutdown().await
}

/// Send one request to a running daemon. `Ok(None)`: no daemon listens there.
pub async fn request(path: &Path, req: &Request) -> Result<Option<Json>> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(Error::Io(e)),
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(req).map_err(|e| Error::Usage(e.to_string()))?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut reply = String::new();
    BufReader::new(read).read_line(&mut reply).await?;
    let v: Json = serde_json::from_str(&reply)
        .map_err(|e| Error::Usage(format!("unreadable reply from the daemon: {e}")))?;
    if v["ok"].as_bool() == Some(true) {
        Ok(Some(v["data"].clone()))
    } else {
        Err(Error::Command {
            message: v["error"].as_str().unwrap_or("request failed").to_string(),
            exit: v["exit"].as_i64().unwrap_or(1) as i32,
        })
    }
}
