//! Lifecycle shared by the private servers: start on a free port with retries, readiness
//! with a deadline, stop, start again on the same port.

use super::process::{signal, wait_child};
use super::wait::block_on;
use std::future::Future;
use std::path::Path;
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a server start attempt failed.
pub(crate) enum StartError {
    /// The process exited before it became ready (e.g. the port was taken): worth a retry.
    Exited(String),
    /// Anything else: give up.
    Fatal(String),
}

/// The running server process of a `PgServer` / `MariaServer`.
pub(crate) struct ServerProcess {
    what: &'static str,
    child: Mutex<Option<Child>>,
}

impl ServerProcess {
    pub(crate) fn new(what: &'static str) -> Self {
        ServerProcess {
            what,
            child: Mutex::new(None),
        }
    }

    /// First start: tries up to 5 free ports (another process may grab a port between
    /// our probe bind and the server's bind). Returns the port the server listens on.
    pub(crate) fn boot<L>(&self, mut launch: L) -> Result<u16, String>
    where
        L: FnMut(u16) -> Result<Child, StartError>,
    {
        let mut last = String::new();
        for _ in 0..5 {
            let port = super::free_port();
            match launch(port) {
                Ok(child) => {
                    *self.child.lock().unwrap() = Some(child);
                    return Ok(port);
                }
                Err(StartError::Exited(e)) => last = e,
                Err(StartError::Fatal(e)) => return Err(e),
            }
        }
        Err(format!("gave up after 5 ports: {last}"))
    }

    /// Starts the server again (same port and data); panics if it does not come up.
    pub(crate) fn start<L>(&self, port: u16, launch: L)
    where
        L: FnOnce(u16) -> Result<Child, StartError>,
    {
        let mut guard = self.child.lock().unwrap();
        assert!(guard.is_none(), "{} is already running", self.what);
        match launch(port) {
            Ok(child) => *guard = Some(child),
            Err(StartError::Exited(e) | StartError::Fatal(e)) => {
                panic!("starting {} again on port {port}: {e}", self.what)
            }
        }
    }

    /// Sends `sig` and waits for exit; SIGKILL after 60 s. No-op if not running.
    pub(crate) fn stop_with(&self, sig: libc::c_int) {
        let mut guard = self.child.lock().unwrap();
        if let Some(mut child) = guard.take() {
            super::unregister_live(child.id());
            signal(&child, sig);
            if wait_child(&mut child, Duration::from_secs(60)).is_none() {
                super::kill9(&mut child);
            }
        }
    }

    /// Send a signal and return at once (SIGSTOP/SIGCONT to freeze and thaw the server).
    pub(crate) fn signal(&self, sig: libc::c_int) {
        if let Some(child) = self.child.lock().unwrap().as_ref() {
            signal(child, sig);
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        let mut guard = self.child.lock().unwrap();
        matches!(guard.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

/// Registers a just-spawned server for stopping at exit and waits until it is ready;
/// on failure kills it and returns why.
pub(crate) fn await_ready<P, Fut>(
    mut child: Child,
    stop_signal: libc::c_int,
    log: &Path,
    what: &str,
    probe: P,
) -> Result<Child, StartError>
where
    P: FnMut() -> Fut + Send,
    Fut: Future<Output = Result<(), String>> + Send,
{
    super::register_live(child.id(), stop_signal);
    match wait_ready(&mut child, log, what, probe) {
        Ok(()) => Ok(child),
        Err(e) => {
            super::unregister_live(child.id());
            super::kill9(&mut child);
            Err(e)
        }
    }
}

/// Waits (60 s deadline) until `probe` succeeds, checking between attempts that the
/// process is still alive. Backoff grows from 20 ms to 250 ms.
fn wait_ready<P, Fut>(
    child: &mut Child,
    log: &Path,
    what: &str,
    mut probe: P,
) -> Result<(), StartError>
where
    P: FnMut() -> Fut + Send,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let timeout = Duration::from_secs(60);
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_millis(20);
    let mut last_err = String::from("no attempt made");
    block_on(async {
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return Err(StartError::Exited(format!(
                        "{what} exited ({status}) before it was ready; log tail:\n{}",
                        super::log_tail(log)
                    )))
                }
                Ok(None) => {}
                Err(e) => return Err(StartError::Fatal(format!("try_wait {what}: {e}"))),
            }
            match tokio::time::timeout(Duration::from_secs(5), probe()).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last_err = e,
                Err(_) => last_err = "probe timed out after 5s".into(),
            }
            if Instant::now() >= deadline {
                return Err(StartError::Fatal(format!(
                    "{what} not ready after {timeout:?} (last error: {last_err}); log tail:\n{}",
                    super::log_tail(log)
                )));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(250));
        }
    })
}
