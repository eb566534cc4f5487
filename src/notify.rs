//! The systemd notify protocol (`sd_notify`): READY, RELOADING, STOPPING, WATCHDOG and STATUS
//! as datagrams to `$NOTIFY_SOCKET`. Without that variable (not under systemd) every call is a
//! no-op, so the daemon never needs to know how it was started.
//!
//! The protocol is a handful of `KEY=value` lines per datagram; the socket path may be in the
//! abstract namespace (`@name`). See sd_notify(3).

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where to send notifications; `None` when not started by systemd with `Type=notify`.
pub struct Notifier {
    target: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.target.is_some() {
            "Notifier(systemd)"
        } else {
            "Notifier(off)"
        })
    }
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; an unusable value is logged once and notifications are off.
    pub fn from_env() -> Notifier {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier { target: None };
        };
        match Self::connect(&path) {
            Ok(target) => Notifier {
                target: Some(target),
            },
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable; systemd will not hear from the daemon");
                Notifier { target: None }
            }
        }
    }

    fn connect(
        path: &std::ffi::OsStr,
    ) -> std::io::Result<(UnixDatagram, std::os::unix::net::SocketAddr)> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(&bytes[1..])?
            }
            Some(b'/') => std::os::unix::net::SocketAddr::from_pathname(path)?,
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "NOTIFY_SOCKET must be an absolute path or start with @",
                ))
            }
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok((socket, addr))
    }

    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    fn send(&self, message: &str) {
        if let Some((socket, addr)) = &self.target {
            if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
                tracing::debug!(error = %e, "sd_notify failed");
            }
        }
    }

    /// Startup finished: flows have loaded their checkpoints and tried their endpoints.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// A reload (SIGHUP) begins; `ready` ends it. systemd wants the monotonic time with it.
    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    /// Shutdown begins.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// The service is alive and not stuck.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// Free text shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }
}

/// The watchdog period systemd expects pings within (`WatchdogSec=`), if it is meant for us.
pub fn watchdog_timeout() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            target: Some(Notifier::connect(path.as_os_str()).unwrap()),
        };
        n.ready("2 flows streaming");
        n.reloading();
        n.stopping();
        let mut buf = [0u8; 256];
        let mut got = Vec::new();
        for _ in 0..3 {
            let len = listener.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
        }
        assert_eq!(got[0], "READY=1\nSTATUS=2 flows streaming");
        assert!(
            got[1].starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{}",
            got[1]
        );
        let usec: u64 = got[1].rsplit('=').next().unwrap().parse().unwrap();
        assert!(usec > 0);
        assert_eq!(got[2], "STOPPING=1\nSTATUS=stopping");
    }

    #[test]
    fn abstract_socket_names_work() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("rowbridge-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier {
            target: Some(Notifier::connect(std::ffi::OsStr::new(&format!("@{name}"))).unwrap()),
        };
        n.watchdog();
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }

    #[test]
    fn relative_paths_are_refused() {
        assert!(Notifier::connect(std::ffi::OsStr::new("notify.sock")).is_err());
    }
}
