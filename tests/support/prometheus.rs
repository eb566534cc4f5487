//! A real Prometheus server (Debian's `prometheus` package) scraping a daemon under test.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::bridge::http_get;
use super::{free_port, spawn_tied};

/// A Prometheus server (Debian's `prometheus`) on a free loopback port; killed when dropped.
pub struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        super::kill9(&mut self.child);
    }
}

fn prometheus_binary() -> String {
    let found = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    match found {
        Some(p) => p.to_string(),
        None => panic!(
            "the prometheus server binary is missing: install the Debian package `prometheus` \
             (scripts/install-deps does)"
        ),
    }
}

impl Prometheus {
    /// Scrapes `target_port` every second as job `rowbridge`; tries a few ports.
    pub async fn start(dir: &Path, target_port: u16) -> Prometheus {
        let bin = prometheus_binary();
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: rowbridge\n    scrape_interval: 1s\n    \
                 scrape_timeout: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let mut last = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let log = dir.join(format!("prometheus-{attempt}.log"));
            let mut cmd = Command::new(&bin);
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            let mut child = spawn_tied(cmd, libc::SIGKILL).expect("spawn prometheus");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("exited {status}: {}", super::log_tail(&log));
                    break;
                }
                let ready = http_get(port, "/-/ready").await;
                if ready.is_some_and(|(code, _)| code == 200) {
                    return Prometheus { child, port };
                }
                if Instant::now() >= deadline {
                    super::kill9(&mut child);
                    panic!("prometheus not ready after 60 s: {}", super::log_tail(&log));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("prometheus did not start: {last}");
    }

    /// The `result` array of an instant query (`query` already URL-encoded).
    pub async fn query(&self, query: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={query}");
        let Some((200, body)) = http_get(self.port, &path).await else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}
