//! Child processes that die with the test process.
//!
//! Every server (and anything a test wants reaped when the test process dies, such as a
//! `rowbridge` daemon) is spawned from ONE dedicated thread that never exits, with
//! `prctl(PR_SET_PDEATHSIG)` set in `pre_exec`. The parent-death signal fires when the
//! *thread* that forked the child exits, which is why a dedicated never-ending thread does
//! the forking. std applies `uid`/`gid` before running `pre_exec` closures, and the kernel
//! clears the death signal on a credential change, so setting it in `pre_exec` keeps it in
//! force for children that drop to `nobody`.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

struct SpawnRequest {
    cmd: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("rowbridge-test-spawner".into())
            .spawn(move || {
                while let Ok(mut req) = rx.recv() {
                    let res = req.cmd.spawn();
                    let _ = req.reply.send(res);
                }
                // The sender lives in a static, so this is unreachable in practice; never
                // exit anyway, or every child would receive its death signal.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawn the child-spawner thread");
        tx
    })
}

/// Spawns `cmd` so that the child receives `death_signal` (e.g. `libc::SIGKILL`) when the
/// test process dies, however it dies.
pub fn spawn_tied(mut cmd: Command, death_signal: libc::c_int) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                death_signal as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would kill us.
            if libc::getppid() != parent {
                return Err(io::Error::other("test process died during spawn"));
            }
            Ok(())
        });
    }
    let (reply, rx) = mpsc::channel();
    spawner()
        .send(SpawnRequest { cmd, reply })
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("spawner thread dropped the request"))?
}

/// Runs `cmd` to completion as a tied child with its output appended to `log`.
/// Returns an error carrying the log tail when it fails or outlives `timeout`.
pub fn run_logged(mut cmd: Command, log: &Path, timeout: Duration) -> Result<(), String> {
    let what = format!("{:?}", cmd.get_program());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("open {}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(file).stderr(err);
    let mut child = spawn_tied(cmd, libc::SIGKILL).map_err(|e| format!("spawn {what}: {e}"))?;
    match wait_child(&mut child, timeout) {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!(
            "{what} failed ({status}); log {}:\n{}",
            log.display(),
            super::log_tail(log)
        )),
        None => {
            kill9(&mut child);
            Err(format!(
                "{what} did not finish within {timeout:?}; log:\n{}",
                super::log_tail(log)
            ))
        }
    }
}

/// Waits for `child` to exit, up to `timeout`. `None` if it is still running.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
    }
}

/// Sends `signal` to a running child (no-op if it has already been reaped).
pub fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: plain kill(2) on a pid we own and have not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
}

/// SIGKILLs `child` and reaps it.
pub fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs a command to completion (not tied; for short tools such as the `rowbridge` CLI)
/// and returns its output. Panics if it cannot be spawned.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

/// Like [`run`] but panics, with stdout and stderr, unless the command exits 0.
/// Returns stdout as a string.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
