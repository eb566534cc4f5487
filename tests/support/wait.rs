//! Waiting for conditions with a deadline. Sleeping is only ever the poll interval between
//! checks of a real condition, never a synchronisation on its own.

use std::future::Future;
use std::time::{Duration, Instant};

/// Poll interval of [`wait_until`] and [`wait_until_blocking`].
pub const POLL: Duration = Duration::from_millis(25);

/// Polls `f` every 25 ms until it returns `true`; panics naming `what` when `timeout`
/// passes first. `f` is always called at least once, and once more at the deadline.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Like [`wait_until`] for synchronous conditions; blocks the calling thread.
pub fn wait_until_blocking<F>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> bool,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// Runs `fut` to completion on a fresh single-threaded runtime in a scoped thread, so it
/// works whether or not the caller is itself inside a tokio runtime.
pub fn block_on<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a tokio runtime")
                .block_on(fut)
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
