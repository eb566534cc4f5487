//! The embedded store (sled), the only module that touches sled and bincode.
//!
//! Every value is `[FORMAT_VERSION] ++ bincode(value)`, so a later release can read or migrate
//! what an older one wrote. Trees: `checkpoints` (per flow), `dead_letters`, `audit`, the key
//! map and parked changes, echo fingerprints, and for rows mapped both ways their sync state,
//! conflicts and the writes conflict resolutions owe.
//!
//! Checkpoints are written after the target commit and only move forward. sled buffers writes
//! in memory and makes them durable on `flush`; the pipeline therefore reports to a source only
//! positions returned by [`Store::flush`], so a position acknowledged to a server (PostgreSQL's
//! confirmed_flush_lsn) is never ahead of what a restart after `kill -9` will read back.

mod records;

use std::cmp::Ordering;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::position::Position;

pub use records::{
    AuditEntry, Conflict, ConflictState, DeadLetter, PendingWrite, ResyncEnd, ResyncJob, SyncState,
    Synced, Version, Waiting,
};

/// Bumped when a stored record changes shape.
pub const FORMAT_VERSION: u8 = 1;

const CHECKPOINTS: &str = "checkpoints";
const DEAD_LETTERS: &str = "dead_letters";
const AUDIT: &str = "audit";
const KEYMAP: &str = "keymap";
const WAITING: &str = "waiting";
const WAITING_INDEX: &str = "waiting_index";
/// The echo state before format 2 of it (fingerprints of rowbridge's writes): dropped at open.
const WRITTEN_OLD: &str = "written";
const SYNCED: &str = "synced";
const FRESH: &str = "fresh_start";
const SYNC: &str = "sync";
const CONFLICTS: &str = "conflicts";
const CONFLICT_OPEN: &str = "conflict_open";
const PENDING: &str = "pending";
const RESYNC: &str = "resync";
const RESYNC_END: &str = "resync_end";

/// The store: one sled database, shared by the daemon's flows and its admin API. A write that
/// fails on an I/O error (the filesystem full) leaves sled failed for good, so the store marks
/// itself unwritable (`rowbridge_store_writable` 0) and [`Store::recover`] reopens it once space
/// has returned. Nothing is lost by that: a checkpoint moves only after its batch committed on
/// the target and the store flushed, so what the failed database had not made durable is
/// replayed from the sources.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    path: std::path::PathBuf,
    /// None while the database is being reopened.
    trees: RwLock<Option<Arc<Trees>>>,
    writable: AtomicBool,
}

struct Trees {
    db: sled::Db,
    checkpoints: sled::Tree,
    dead_letters: sled::Tree,
    audit: sled::Tree,
    keymap: sled::Tree,
    waiting: sled::Tree,
    /// (mapping, key, position) of parked changes: a replayed change is not parked twice.
    waiting_index: sled::Tree,
    /// What each mapping last synced of each source row it reads, where rowbridge also writes
    /// that table (mapping \0 row key; see `pipeline::echo`).
    synced: sled::Tree,
    /// Flows an operator told to start as new (`checkpoint reset`): no checkpoint is expected.
    fresh: sled::Tree,
    /// Last agreed state of each row mapped both ways (pair \0 row key).
    sync: sled::Tree,
    /// Every conflict by id (open, parked and resolved: the record of both versions).
    conflicts: sled::Tree,
    /// Unresolved conflict id per row (pair \0 row key).
    conflict_open: sled::Tree,
    /// Writes owed by conflict resolutions, by id.
    pending: sled::Tree,
    /// Resync jobs by mapping.
    resync: sled::Tree,
    /// How a mapping's last resync ended, when it failed or was cancelled.
    resync_end: sled::Tree,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Open (or create) the store. Fails with [`Error::StoreLocked`] when another process has it.
    pub fn open(path: &Path) -> Result<Store> {
        let trees = open_trees(path)?;
        Ok(Store {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                trees: RwLock::new(Some(Arc::new(trees))),
                writable: AtomicBool::new(true),
            }),
        })
    }

    fn t(&self) -> Result<Arc<Trees>> {
        let guard = self.shared.trees.read().unwrap_or_else(|e| e.into_inner());
        guard
            .clone()
            .ok_or_else(|| Error::Store("the store is being reopened".into()))
    }

    /// A sled error; an I/O error leaves the database failed, so the store is unwritable until
    /// [`Store::recover`].
    fn fail(&self, e: sled::Error) -> Error {
        if matches!(e, sled::Error::Io(_))
            && self.shared.writable.swap(false, AtomicOrdering::SeqCst)
        {
            metrics::gauge!(crate::metrics::STORE_WRITABLE).set(0.0);
            tracing::error!(store = %self.shared.path.display(), error = %e, "the store cannot write; flows stop until it can (is its filesystem full?)");
        }
        store_err(e)
    }

    /// Whether the last writes succeeded.
    pub fn writable(&self) -> bool {
        self.shared.writable.load(AtomicOrdering::SeqCst)
    }

    /// After a failed write: reopen the database once its filesystem has room again, and check
    /// that it takes a write. Ok(true) when the store is writable (again).
    pub fn recover(&self) -> Result<bool> {
        if self.writable() {
            return Ok(true);
        }
        if free_bytes(&self.shared.path).is_some_and(|b| b < MIN_FREE_BYTES) {
            return Ok(false);
        }
        let mut guard = self.shared.trees.write().unwrap_or_else(|e| e.into_inner());
        // Closing the failed database releases its lock (an in-flight reader may hold it a
        // moment longer: open waits for that).
        drop(guard.take());
        let trees = open_trees(&self.shared.path)?;
        let probe = trees
            .db
            .insert("rowbridge.probe", &[1u8][..])
            .and_then(|_| trees.db.flush().map(|_| ()));
        *guard = Some(Arc::new(trees));
        drop(guard);
        match probe {
            Ok(()) => {
                self.shared.writable.store(true, AtomicOrdering::SeqCst);
                metrics::gauge!(crate::metrics::STORE_WRITABLE).set(1.0);
                tracing::info!(store = %self.shared.path.display(), "the store writes again");
                Ok(true)
            }
            Err(e) => Err(self.fail(e)),
        }
    }
}

/// Largest dead letter kept whole (see [`Store::add_dead_letter`]).
pub const MAX_DEAD_LETTER_BYTES: usize = 64 * 1024;

/// Free space below which a full store is not reopened yet.
const MIN_FREE_BYTES: u64 = 4 * 1024 * 1024;

/// Bytes free for unprivileged writers on the filesystem holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

fn open_trees(path: &Path) -> Result<Trees> {
    {
        std::fs::create_dir_all(path)
            .map_err(|e| Error::Store(format!("cannot create {}: {e}", path.display())))?;
        // sled closes its files from background I/O threads, so a store dropped a moment ago
        // in this process can still hold the lock briefly: wait a bounded time before calling
        // the store locked (another process holding it keeps it far longer).
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
        let db = loop {
            let opened = sled::Config::new()
                .path(path)
                .mode(sled::Mode::HighThroughput)
                .flush_every_ms(Some(200))
                .open();
            match opened {
                Ok(db) => break db,
                Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(Error::StoreLocked(path.display().to_string()));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(other) => {
                    return Err(Error::Store(format!(
                        "cannot open {}: {other}",
                        path.display()
                    )))
                }
            }
        };
        let tree = |name: &str| db.open_tree(name).map_err(store_err);
        db.drop_tree(WRITTEN_OLD).map_err(store_err)?;
        Ok(Trees {
            checkpoints: tree(CHECKPOINTS)?,
            dead_letters: tree(DEAD_LETTERS)?,
            audit: tree(AUDIT)?,
            keymap: tree(KEYMAP)?,
            waiting: tree(WAITING)?,
            waiting_index: tree(WAITING_INDEX)?,
            synced: tree(SYNCED)?,
            fresh: tree(FRESH)?,
            sync: tree(SYNC)?,
            conflicts: tree(CONFLICTS)?,
            conflict_open: tree(CONFLICT_OPEN)?,
            pending: tree(PENDING)?,
            resync: tree(RESYNC)?,
            resync_end: tree(RESYNC_END)?,
            db,
        })
    }
}

impl Store {
    pub fn checkpoint(&self, flow: &str) -> Result<Option<Position>> {
        self.t()?
            .checkpoints
            .get(flow)
            .map_err(|e| self.fail(e))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Move a flow's checkpoint forward. A position behind the stored one is refused: replaying
    /// is harmless, but moving backward silently would hide a bug.
    pub fn advance_checkpoint(&self, flow: &str, pos: &Position) -> Result<()> {
        if let Some(current) = self.checkpoint(flow)? {
            match current.compare(pos) {
                Some(Ordering::Greater) => {
                    return Err(Error::Store(format!(
                        "checkpoint of {flow} would move backward from {current} to {pos}"
                    )))
                }
                Some(Ordering::Equal) => return Ok(()),
                Some(Ordering::Less) => {}
                None => {
                    return Err(Error::Store(format!(
                        "checkpoint of {flow} changes kind from {current} to {pos}"
                    )))
                }
            }
        }
        self.t()?
            .checkpoints
            .insert(flow, encode(pos)?)
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Operator override: set or clear a checkpoint in any direction, audit-logged.
    pub fn reset_checkpoint(&self, flow: &str, pos: Option<&Position>, actor: &str) -> Result<()> {
        let old = self.checkpoint(flow)?;
        match pos {
            Some(p) => self.t()?.checkpoints.insert(flow, encode(p)?).map(|_| ()),
            None => self.t()?.checkpoints.remove(flow).map(|_| ()),
        }
        .map_err(|e| self.fail(e))?;
        // Without a position the flow starts as new, and the operator said so.
        self.set_fresh_start(flow, pos.is_none())?;
        self.audit(AuditEntry::new(
            actor,
            "checkpoint.reset",
            format!(
                "{flow}: {} -> {}",
                old.map(|p| p.to_string()).unwrap_or_else(|| "none".into()),
                pos.map(|p| p.to_string()).unwrap_or_else(|| "none".into())
            ),
        ))?;
        self.flush()
    }

    /// Whether an operator told this flow to start as new (see [`Self::reset_checkpoint`]).
    pub fn fresh_start(&self, flow: &str) -> Result<bool> {
        self.t()?.fresh.contains_key(flow).map_err(|e| self.fail(e))
    }

    /// Where a first start of a flow from MariaDB begins, taken before it knows whether the
    /// flow ran before (see `pipeline::first_start`): kept until its first checkpoint.
    pub fn first_position(&self, flow: &str) -> Result<Option<Position>> {
        self.t()?
            .fresh
            .get(format!("position\u{0}{flow}"))
            .map_err(|e| self.fail(e))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn set_first_position(&self, flow: &str, pos: Option<&Position>) -> Result<()> {
        let key = format!("position\u{0}{flow}");
        match pos {
            Some(p) => self.t()?.fresh.insert(key, encode(p)?).map(|_| ()),
            None => self.t()?.fresh.remove(key).map(|_| ()),
        }
        .map_err(|e| self.fail(e))
    }

    pub fn set_fresh_start(&self, flow: &str, on: bool) -> Result<()> {
        match on {
            true => self.t()?.fresh.insert(flow, &[1u8][..]).map(|_| ()),
            false => self.t()?.fresh.remove(flow).map(|_| ()),
        }
        .map_err(|e| self.fail(e))
    }

    pub fn checkpoints(&self) -> Result<Vec<(String, Position)>> {
        let mut out = Vec::new();
        for item in self.t()?.checkpoints.iter() {
            let (k, v) = item.map_err(|e| self.fail(e))?;
            out.push((String::from_utf8_lossy(&k).into_owned(), decode(&v)?));
        }
        Ok(out)
    }

    /// Make everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.t()?.db.flush().map(|_| ()).map_err(|e| self.fail(e))
    }

    /// Keep a dead letter. One whose row images are larger than [`MAX_DEAD_LETTER_BYTES`] is
    /// kept without them (its key, mapping, position and reason stay), so dead letters cannot
    /// fill the store's disk; the reason says so, and a resync of the key carries the row.
    pub fn add_dead_letter(&self, mut dl: DeadLetter) -> Result<u64> {
        let id = self.t()?.db.generate_id().map_err(|e| self.fail(e))? + 1;
        dl.id = id;
        let mut bytes = encode(&dl)?;
        if bytes.len() > MAX_DEAD_LETTER_BYTES {
            let size = bytes.len();
            dl.change.before = None;
            dl.change.after = None;
            dl.reason = format!(
                "{} (row not kept: {size} bytes, over the {} KiB limit; resync this key to carry it)",
                dl.reason,
                MAX_DEAD_LETTER_BYTES / 1024
            );
            bytes = encode(&dl)?;
        }
        self.t()?
            .dead_letters
            .insert(id.to_be_bytes(), bytes)
            .map_err(|e| self.fail(e))?;
        Ok(id)
    }

    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        self.t()?
            .dead_letters
            .iter()
            .map(|item| decode(&item.map_err(|e| self.fail(e))?.1))
            .collect()
    }

    pub fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>> {
        self.t()?
            .dead_letters
            .get(id.to_be_bytes())
            .map_err(|e| self.fail(e))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn remove_dead_letter(&self, id: u64) -> Result<bool> {
        Ok(self
            .t()?
            .dead_letters
            .remove(id.to_be_bytes())
            .map_err(|e| self.fail(e))?
            .is_some())
    }

    pub fn dead_letter_count(&self) -> usize {
        self.t().map(|t| t.dead_letters.len()).unwrap_or(0)
    }

    /// The target key a mapping's source key was written to (or matched with).
    pub fn key_map(
        &self,
        mapping: &str,
        source_key: &str,
    ) -> Result<Option<Vec<crate::model::Value>>> {
        self.t()?
            .keymap
            .get(keymap_key(mapping, source_key))
            .map_err(|e| self.fail(e))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn set_key_map(
        &self,
        mapping: &str,
        source_key: &str,
        target_key: &[crate::model::Value],
    ) -> Result<()> {
        let v = encode(&target_key)?;
        self.t()?
            .keymap
            .insert(keymap_key(mapping, source_key), v)
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    pub fn remove_key_map(&self, mapping: &str, source_key: &str) -> Result<()> {
        self.t()?
            .keymap
            .remove(keymap_key(mapping, source_key))
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Park a change whose reference is not there yet; returns its id (order of arrival). A
    /// change already parked (the same row at the same source position, replayed after a
    /// restart) is not parked again.
    pub fn add_waiting(&self, mut w: Waiting) -> Result<Option<u64>> {
        let index = waiting_index_key(&w);
        if self
            .t()?
            .waiting_index
            .contains_key(&index)
            .map_err(|e| self.fail(e))?
        {
            return Ok(None);
        }
        let id = self.t()?.db.generate_id().map_err(|e| self.fail(e))? + 1;
        w.id = id;
        self.t()?
            .waiting
            .insert(id.to_be_bytes(), encode(&w)?)
            .map_err(|e| self.fail(e))?;
        self.t()?
            .waiting_index
            .insert(index, &id.to_be_bytes())
            .map_err(|e| self.fail(e))?;
        Ok(Some(id))
    }

    /// Let the same change be parked again (it is being retried now).
    pub fn unindex_waiting(&self, w: &Waiting) -> Result<()> {
        self.t()?
            .waiting_index
            .remove(waiting_index_key(w))
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Parked changes in arrival order.
    pub fn waiting(&self) -> Result<Vec<Waiting>> {
        self.t()?
            .waiting
            .iter()
            .map(|item| decode(&item.map_err(|e| self.fail(e))?.1))
            .collect()
    }

    pub fn remove_waiting(&self, id: u64) -> Result<()> {
        if let Some(old) = self
            .t()?
            .waiting
            .remove(id.to_be_bytes())
            .map_err(|e| self.fail(e))?
        {
            let w: Waiting = decode(&old)?;
            let index = waiting_index_key(&w);
            // Only this entry's own index: a re-parked copy has its own id.
            let own = self
                .t()?
                .waiting_index
                .get(&index)
                .map_err(|e| self.fail(e))?;
            if own.as_deref() == Some(&id.to_be_bytes()[..]) {
                self.t()?
                    .waiting_index
                    .remove(index)
                    .map_err(|e| self.fail(e))?;
            }
        }
        Ok(())
    }

    /// Parked changes of one flow.
    pub fn waiting_count_for(&self, flow: &str) -> Result<usize> {
        Ok(self.waiting()?.iter().filter(|w| w.flow == flow).count())
    }

    pub fn waiting_count(&self) -> usize {
        self.t().map(|t| t.waiting.len()).unwrap_or(0)
    }

    /// A mapping's synced state of one source row (see `pipeline::echo`): per column read, its
    /// value fingerprint; `Some(None)` once the row was deleted in sync.
    pub fn synced(&self, key: &str) -> Result<Option<Synced>> {
        self.t()?
            .synced
            .get(key)
            .map_err(|e| self.fail(e))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn set_synced(&self, key: &str, state: &Synced) -> Result<()> {
        self.t()?
            .synced
            .insert(key, encode(state)?)
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    pub fn forget_synced(&self, key: &str) -> Result<()> {
        self.t()?
            .synced
            .remove(key)
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Forget every synced state under a prefix (a mapping's, after a truncate).
    pub fn forget_synced_prefix(&self, prefix: &str) -> Result<()> {
        for k in self.t()?.synced.scan_prefix(prefix).keys() {
            self.t()?
                .synced
                .remove(k.map_err(|e| self.fail(e))?)
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    pub fn sync_state(&self, pair: &str, entity: &str) -> Result<Option<SyncState>> {
        self.t()?
            .sync
            .get(keymap_key(pair, entity))
            .map_err(|e| self.fail(e))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn set_sync_state(&self, pair: &str, entity: &str, state: &SyncState) -> Result<()> {
        self.t()?
            .sync
            .insert(keymap_key(pair, entity), encode(state)?)
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    pub fn forget_sync_state(&self, pair: &str, entity: &str) -> Result<()> {
        self.t()?
            .sync
            .remove(keymap_key(pair, entity))
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Record a new conflict (its id is assigned here) as the row's unresolved one.
    pub fn add_conflict(&self, mut c: Conflict) -> Result<u64> {
        let id = self.t()?.db.generate_id().map_err(|e| self.fail(e))? + 1;
        c.id = id;
        self.put_conflict(&c)?;
        Ok(id)
    }

    /// Store a conflict's new state; a resolved one stops being the row's open conflict.
    pub fn put_conflict(&self, c: &Conflict) -> Result<()> {
        self.t()?
            .conflicts
            .insert(c.id.to_be_bytes(), encode(c)?)
            .map_err(|e| self.fail(e))?;
        let row = keymap_key(&c.pair, &c.entity);
        match c.state {
            ConflictState::Resolved { .. } => {
                let own = self
                    .t()?
                    .conflict_open
                    .get(&row)
                    .map_err(|e| self.fail(e))?;
                if own.as_deref() == Some(&c.id.to_be_bytes()[..]) {
                    self.t()?
                        .conflict_open
                        .remove(row)
                        .map_err(|e| self.fail(e))?;
                }
            }
            _ => {
                self.t()?
                    .conflict_open
                    .insert(row, &c.id.to_be_bytes())
                    .map_err(|e| self.fail(e))?;
            }
        }
        Ok(())
    }

    pub fn conflict(&self, id: u64) -> Result<Option<Conflict>> {
        self.t()?
            .conflicts
            .get(id.to_be_bytes())
            .map_err(|e| self.fail(e))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// The unresolved conflict of a row, if any.
    pub fn open_conflict(&self, pair: &str, entity: &str) -> Result<Option<Conflict>> {
        let Some(id) = self
            .t()?
            .conflict_open
            .get(keymap_key(pair, entity))
            .map_err(|e| self.fail(e))?
        else {
            return Ok(None);
        };
        let id = u64::from_be_bytes(
            id.as_ref()
                .try_into()
                .map_err(|_| Error::Store("conflict index entry is not an id".into()))?,
        );
        self.conflict(id)
    }

    /// Unresolved conflicts, oldest first.
    pub fn open_conflicts(&self) -> Result<Vec<Conflict>> {
        let mut v = Vec::new();
        for item in self.t()?.conflict_open.iter() {
            let (_, id) = item.map_err(|e| self.fail(e))?;
            let id = u64::from_be_bytes(
                id.as_ref()
                    .try_into()
                    .map_err(|_| Error::Store("conflict index entry is not an id".into()))?,
            );
            v.extend(self.conflict(id)?);
        }
        v.sort_by_key(|c| c.id);
        Ok(v)
    }

    /// Every recorded conflict, oldest first.
    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        self.t()?
            .conflicts
            .iter()
            .map(|item| decode(&item.map_err(|e| self.fail(e))?.1))
            .collect()
    }

    pub fn open_conflict_count(&self) -> usize {
        self.t().map(|t| t.conflict_open.len()).unwrap_or(0)
    }

    pub fn add_pending(&self, mut w: PendingWrite) -> Result<u64> {
        let id = self.t()?.db.generate_id().map_err(|e| self.fail(e))? + 1;
        w.id = id;
        self.t()?
            .pending
            .insert(id.to_be_bytes(), encode(&w)?)
            .map_err(|e| self.fail(e))?;
        Ok(id)
    }

    /// Writes owed to one endpoint, in the order they were decided.
    pub fn pending_for(&self, endpoint: &str) -> Result<Vec<PendingWrite>> {
        let mut v = Vec::new();
        for item in self.t()?.pending.iter() {
            let w: PendingWrite = decode(&item.map_err(|e| self.fail(e))?.1)?;
            if w.endpoint == endpoint {
                v.push(w);
            }
        }
        Ok(v)
    }

    pub fn remove_pending(&self, id: u64) -> Result<()> {
        self.t()?
            .pending
            .remove(id.to_be_bytes())
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    pub fn resync_jobs(&self) -> Result<Vec<ResyncJob>> {
        self.t()?
            .resync
            .iter()
            .map(|item| decode(&item.map_err(|e| self.fail(e))?.1))
            .collect()
    }

    pub fn put_resync(&self, job: &ResyncJob) -> Result<()> {
        self.t()?
            .resync
            .insert(job.mapping.as_bytes(), encode(job)?)
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Store a new job of a mapping (forgetting how the previous one ended).
    pub fn start_resync(&self, job: &ResyncJob) -> Result<()> {
        self.t()?
            .resync_end
            .remove(job.mapping.as_bytes())
            .map_err(|e| self.fail(e))?;
        self.put_resync(job)
    }

    /// End a mapping's job as failed or cancelled: it is done, with the reason kept.
    pub fn end_resync(&self, job: &ResyncJob, end: &ResyncEnd) -> Result<()> {
        let mut job = job.clone();
        job.done = true;
        job.updated_us = end.at_us;
        self.t()?
            .resync_end
            .insert(job.mapping.as_bytes(), encode(end)?)
            .map_err(|e| self.fail(e))?;
        self.put_resync(&job)
    }

    pub fn resync_end(&self, mapping: &str) -> Result<Option<ResyncEnd>> {
        self.t()?
            .resync_end
            .get(mapping.as_bytes())
            .map_err(|e| self.fail(e))?
            .map(|v| decode(&v))
            .transpose()
    }

    pub fn audit(&self, entry: AuditEntry) -> Result<()> {
        let id = self.t()?.db.generate_id().map_err(|e| self.fail(e))?;
        self.t()?
            .audit
            .insert(id.to_be_bytes(), encode(&entry)?)
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    pub fn audit_log(&self) -> Result<Vec<AuditEntry>> {
        self.t()?
            .audit
            .iter()
            .map(|item| decode(&item.map_err(|e| self.fail(e))?.1))
            .collect()
    }
}

fn waiting_index_key(w: &Waiting) -> Vec<u8> {
    format!(
        "{}\0{}\0{}\0{}",
        w.flow,
        w.mapping,
        w.key,
        w.position.to_arg()
    )
    .into_bytes()
}

fn keymap_key(mapping: &str, source_key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(mapping.len() + 1 + source_key.len());
    k.extend_from_slice(mapping.as_bytes());
    k.push(0);
    k.extend_from_slice(source_key.as_bytes());
    k
}

fn store_err(e: sled::Error) -> Error {
    Error::Store(e.to_string())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serialize_into(&mut out, value).map_err(|e| Error::Store(format!("encode: {e}")))?;
    Ok(out)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => {
            bincode::deserialize(rest).map_err(|e| Error::Store(format!("decode: {e}")))
        }
        Some((v, _)) => Err(Error::Store(format!(
            "record format {v} is not readable by this version (expects {FORMAT_VERSION})"
        ))),
        None => Err(Error::Store("empty record".into())),
    }
}

#[cfg(test)]
mod tests;
