//! Integration-test harness for rowbridge.
//!
//! Each test binary (`tests/*.rs` doing `mod support;`) gets ONE private PostgreSQL 15 and
//! ONE private MariaDB, started lazily by the first call to [`pg()`] / [`mariadb()`] and
//! shared by every test in that binary. They live under
//! `$TMPDIR/rowbridge-test-<pid>-<rand>/`, listen on free 127.0.0.1 ports, and die with the
//! test process (parent-death signal, plus an `atexit` hook that stops them and removes the
//! directory). Directories left by dead test processes are removed at harness start.
//! Set `ROWBRIDGE_TEST_KEEP=1` to keep the directory (server logs) after the run.
//!
//! Tests share the servers, so each test should work in its own database
//! (`create_database`) and its own slot/publication names. Tests that stop or restart a
//! server affect every test of their binary: put them in a binary of their own.
#![allow(dead_code)]

pub mod bridge;
pub mod mariadb;
pub mod pg;
pub mod pg_sql;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod roles;
pub mod server;
pub mod wait;

#[allow(unused_imports)]
pub use mariadb::{mariadb, MariaServer};
#[allow(unused_imports)]
pub use pg::{pg, PgServer};
#[allow(unused_imports)]
pub use pg_sql::parse_lsn;
#[allow(unused_imports)]
pub use process::{kill9, run, run_ok, spawn_tied};
#[allow(unused_imports)]
pub use wait::{block_on, wait_until, wait_until_blocking};

use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

const DIR_PREFIX: &str = "rowbridge-test-";

/// True when the test runs as root (as CI does).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A random 64-bit value from std's per-process random hasher keys.
pub fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u64(now.map_or(0, |d| d.as_nanos() as u64));
    h.finish()
}

/// A name unique to this run: `<prefix>_<n>_<8 hex>`, lowercase, usable unquoted as a
/// PostgreSQL/MariaDB database, slot or publication name.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    assert!(
        !prefix.is_empty()
            && prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && prefix.len() <= 40,
        "name prefix must be 1-40 chars of [a-z0-9_]: {prefix:?}"
    );
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{n}_{:08x}", random_u64() as u32)
}

/// A loopback TCP port that was free a moment ago (bind 127.0.0.1:0). Callers retry on a
/// bind failure since another process may take it in between.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The last ~8 KiB of a log file, for failure messages.
pub fn log_tail(path: &Path) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(8192)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// This process's scratch directory (created on first use, mode 0755 so that an
/// unprivileged server user can traverse it).
pub fn root_dir() -> &'static Path {
    ROOT.get_or_init(|| {
        let base = std::env::temp_dir();
        remove_stale_dirs(&base);
        let dir = base.join(format!(
            "{DIR_PREFIX}{}-{:08x}",
            std::process::id(),
            random_u64() as u32
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        set_mode(&dir, 0o755);
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe {
            libc::atexit(at_exit);
        }
        dir
    })
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Removes `rowbridge-test-<pid>-*` directories whose process is gone.
fn remove_stale_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || pid == 0 || pid > i32::MAX as u32 {
            continue;
        }
        // SAFETY: signal 0 only checks whether the pid exists.
        let dead = unsafe { libc::kill(pid as libc::pid_t, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if dead {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Server processes to stop at exit: (pid, signal).
static LIVE: Mutex<Vec<(u32, libc::c_int)>> = Mutex::new(Vec::new());

pub(crate) fn register_live(pid: u32, stop_signal: libc::c_int) {
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((pid, stop_signal));
}

pub(crate) fn unregister_live(pid: u32) {
    LIVE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|(p, _)| *p != pid);
}

extern "C" fn at_exit() {
    // Never panic here: we are inside exit(3).
    let _ = std::panic::catch_unwind(|| {
        if let Ok(live) = LIVE.try_lock() {
            for &(pid, sig) in live.iter() {
                // SAFETY: our own, unreaped children; waitpid reaps them so the data
                // directory is no longer written to when we delete it.
                unsafe {
                    libc::kill(pid as libc::pid_t, sig);
                    libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
                }
            }
        }
        let keep = std::env::var_os("ROWBRIDGE_TEST_KEEP").is_some_and(|v| v != "0");
        if let Some(dir) = ROOT.get() {
            if keep {
                eprintln!("rowbridge test harness: kept {}", dir.display());
            } else {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    });
}

/// Creates `root_dir()/<name>` (fresh) and returns it.
pub(crate) fn server_dir(name: &str) -> PathBuf {
    let dir = root_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}

/// A `Command` for the `rowbridge` binary built for this test run. Spawn it with
/// [`spawn_tied`] so that a daemon dies with the test process.
pub fn rowbridge_command() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_rowbridge"))
}
