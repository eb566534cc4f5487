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
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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
}

/// What the handler needs: the store and the conflict hub (the daemon's, or one over the store
/// the CLI opened).
#[derive(Clone)]
pub struct Admin {
    pub store: Store,
    pub hub: Arc<Hub>,
}

impl Admin {
    pub async fn handle(&self, req: Request) -> Result<Json> {
        match req {
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

/// Serve the admin API until shutdown.
pub async fn serve(path: &Path, admin: Admin, shutdown: CancellationToken) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("admin socket folder {}: {e}", dir.display()),
            ))
        })?;
    }
    // A socket left by a killed daemon: the store lock proves no other daemon runs.
    let _ = std::fs::remove_file(path);
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
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = listener.accept() => s,
        };
        let Ok((stream, _)) = stream else { continue };
        let admin = admin.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &admin).await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

async fn answer(stream: UnixStream, admin: &Admin) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
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
        Err(Error::Usage(
            v["error"].as_str().unwrap_or("request failed").to_string(),
        ))
    }
}
