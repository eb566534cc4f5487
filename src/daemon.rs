//! `run` and `check`: load and validate everything, then start one flow per endpoint pair.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::catalog::{self, Catalog, Findings};
use crate::config::Config;
use crate::error::{Error, ErrorClass, Result};
use crate::mapping::Mappings;
use crate::metrics::{self as m, Health};
use crate::notify::Notifier;
use crate::pipeline::Flow;
use crate::store::Store;

/// Load the mappings and check the flows they imply.
pub fn load(config: &Config) -> Result<Mappings> {
    let mappings = Mappings::load(config)?;
    if mappings.list.is_empty() {
        return Err(Error::mapping(
            &config.mappings,
            0,
            "no mapping files (*.toml) found",
        ));
    }
    let mut sources: std::collections::HashMap<&str, &str> = Default::default();
    for mapping in &mappings.list {
        let (s, t) = (
            mapping.source.endpoint.as_str(),
            mapping.target.endpoint.as_str(),
        );
        if let Some(other) = sources.insert(s, t) {
            if other != t {
                return Err(mapping.error(mapping.target.line, format!(
                    "source endpoint '{s}' already feeds '{other}'; one source endpoint feeds one target endpoint"
                )));
            }
        }
    }
    Ok(mappings)
}

/// Compare settings and mappings with the live databases. An endpoint that cannot be reached
/// (or refuses the login) goes to `unreachable` and the mappings touching it are not compared;
/// mismatches are collected in the findings.
pub async fn check_live(config: &Config, mappings: &Mappings) -> Result<Findings> {
    let mut findings = Findings::default();
    let mut catalogs = std::collections::HashMap::new();
    for (name, ep) in &config.endpoints {
        let mut catalog = match Catalog::connect(name, ep, &config.password(name)?).await {
            Ok(c) => c,
            Err(e) if matches!(e.class(), ErrorClass::Transient | ErrorClass::EndpointFatal) => {
                findings.unreachable.push(e);
                findings.unreachable_endpoints.push(name.clone());
                continue;
            }
            Err(e) => return Err(e),
        };
        let tables = mappings.source_tables(name);
        if !tables.is_empty() {
            if let Err(e) = catalog.verify_source(&tables).await {
                findings.errors.push(e);
            }
        }
        catalogs.insert(name.clone(), catalog);
    }
    for mapping in &mappings.list {
        let (s, t) = (&mapping.source.endpoint, &mapping.target.endpoint);
        if !catalogs.contains_key(s) || !catalogs.contains_key(t) {
            continue;
        }
        let src = catalogs
            .get_mut(s)
            .expect("connected")
            .describe(&mapping.source)
            .await?;
        let dst = catalogs
            .get_mut(t)
            .expect("connected")
            .describe(&mapping.target)
            .await?;
        catalog::compare(mapping, src.as_ref(), dst.as_ref(), &mut findings);
    }
    for (_, c) in catalogs {
        c.close().await;
    }
    Ok(findings)
}

/// Join several configuration errors into one, keeping each on its own line.
fn combine(errors: Vec<Error>) -> Error {
    let mut it = errors.into_iter();
    let first = it.next().expect("at least one error");
    let rest: Vec<String> = it.map(|e| e.to_string()).collect();
    if rest.is_empty() {
        return first;
    }
    Error::Invalid(format!("{first}\n{}", rest.join("\n")))
}

/// A streaming flow whose apply loop has not gone round for this long is stuck, and the
/// systemd watchdog stops being fed. Generous: an apply may wait on a user's row lock.
const STUCK_AFTER: Duration = Duration::from_secs(300);
/// READY is sent once every flow has tried its endpoints, or after this long at the latest.
const READY_AFTER: Duration = Duration::from_secs(60);

/// The flows of one configuration; a reload stops them and starts the next generation.
struct Generation {
    config: Arc<Config>,
    mappings: Arc<Mappings>,
    token: CancellationToken,
    tasks: tokio::task::JoinSet<Result<()>>,
    flows: Vec<String>,
}

/// Everything that lives as long as the process, whatever the configuration.
struct Daemon {
    store: Store,
    health: Health,
    notifier: Arc<Notifier>,
    admin: watch::Sender<crate::admin::Admin>,
}

impl Daemon {
    fn start(
        &self,
        config: Arc<Config>,
        mappings: Arc<Mappings>,
        shutdown: &CancellationToken,
    ) -> Generation {
        let flows: Vec<String> = mappings
            .flows()
            .iter()
            .map(|(s, t)| crate::pipeline::flow_name(s, t))
            .collect();
        self.health.board.reset_flows(&flows);
        self.health.expect_flows(flows.iter().map(String::as_str));
        let hub = crate::pipeline::conflict::Hub::for_config(
            self.store.clone(),
            mappings.clone(),
            &config,
        );
        self.admin.send_replace(crate::admin::Admin {
            store: self.store.clone(),
            hub: hub.clone(),
            board: Some(self.health.board.clone()),
            config: config.clone(),
            flows: flows.clone(),
        });
        let token = shutdown.child_token();
        let mut tasks = tokio::task::JoinSet::new();
        for (source, target) in mappings.flows() {
            let flow = Flow::new(
                &source,
                &target,
                config.clone(),
                mappings.clone(),
                self.store.clone(),
                self.health.clone(),
                hub.clone(),
            );
            tracing::info!(flow = %flow.name, "starting flow");
            tasks.spawn(flow.run(token.clone()));
        }
        metrics::gauge!(m::RELOAD_TIME).set(chrono::Utc::now().timestamp() as f64);
        Generation {
            config,
            mappings,
            token,
            tasks,
            flows,
        }
    }

    /// Tell systemd the daemon is ready once every flow has tried its endpoints (or after
    /// READY_AFTER), whatever came of it: a database that is down is reported, not waited for.
    fn announce_ready(&self, flows: Vec<String>, what: &'static str) {
        let (board, notifier) = (self.health.board.clone(), self.notifier.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + READY_AFTER;
            while !board.settled(flows.iter().map(String::as_str))
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let summary = board.summary();
            tracing::info!(flows = %summary, "{what}");
            notifier.ready(&summary);
        });
    }
}

async fn stop(mut generation: Generation) {
    generation.token.cancel();
    while let Some(done) = generation.tasks.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::debug!(error = %e, "flow ended with an error while stopping");
        }
    }
}

/// The daemon: runs until `shutdown` is cancelled. SIGHUP reloads `config_path` and the
/// mappings: a valid new configuration replaces the flows (each stops after its current
/// batch and the new ones start from the stored checkpoints); an invalid one is logged and
/// the running one keeps going. Either way, flows stopped by an endpoint error try again.
pub async fn run(config: Config, config_path: PathBuf, shutdown: CancellationToken) -> Result<()> {
    // First: SIGHUP's default action would end the process while the start is still checking
    // the databases.
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).map_err(Error::Io)?;
    let config = Arc::new(config);
    let mappings = Arc::new(load(&config)?);
    let store = Store::open(&config.store.path)?;
    let health = Health::default();
    let handle = m::install();
    if !config.admin.http.is_empty() {
        let addr = config.admin.http.parse().expect("validated");
        let listener = m::serve(addr, handle, health.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = listener.await {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        });
    }
    metrics::gauge!(m::STORE_WRITABLE).set(1.0);
    recover_store(store.clone(), health.board.clone(), shutdown.clone());
    metrics::gauge!(m::DEAD_LETTERS).set(store.dead_letter_count() as f64);
    metrics::gauge!(m::CONFLICTS_OPEN).set(store.open_conflict_count() as f64);
    metrics::gauge!(m::RELOAD_SUCCESS).set(1.0);
    let unreachable = preflight(&config, &mappings).await?;
    first_starts(&config, &mappings, &store, &unreachable).await?;
    let notifier = Arc::new(Notifier::from_env());
    let (admin_tx, admin_rx) = watch::channel(crate::admin::Admin {
        store: store.clone(),
        hub: crate::pipeline::conflict::Hub::for_config(store.clone(), mappings.clone(), &config),
        board: Some(health.board.clone()),
        config: config.clone(),
        flows: Vec::new(),
    });
    let daemon = Daemon {
        store: store.clone(),
        health: health.clone(),
        notifier: notifier.clone(),
        admin: admin_tx,
    };
    let mut generation = daemon.start(config.clone(), mappings, &shutdown);
    let socket = config.admin_socket();
    let admin_shutdown = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::admin::serve(&socket, admin_rx, admin_shutdown).await {
            tracing::error!(error = %e, "admin socket failed; operator commands need the daemon stopped");
        }
    });
    daemon.announce_ready(generation.flows.clone(), "started");
    spawn_watchdog(&health, &notifier, &shutdown);
    {
        let notifier = notifier.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            notifier.stopping();
        });
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = generation.tasks.join_next() => {
                if let Ok(Err(e)) = done {
                    tracing::error!(error = %e, "a flow stopped; the others keep running");
                }
            }
            _ = hup.recv() => {
                notifier.reloading();
                generation = reload(&daemon, generation, &config_path, &shutdown).await;
            }
        }
    }
    stop(generation).await;
    store.flush()?;
    tracing::info!("stopped");
    Ok(())
}

/// What a SIGHUP does; returns the generation that runs afterwards.
async fn reload(
    daemon: &Daemon,
    generation: Generation,
    config_path: &Path,
    shutdown: &CancellationToken,
) -> Generation {
    tracing::info!(config = %config_path.display(), "reload requested (SIGHUP)");
    let loaded = async {
        let config = Config::load(config_path)?;
        let running = &generation.config;
        for (field, same) in [
            ("store.path", config.store.path == running.store.path),
            ("admin.http", config.admin.http == running.admin.http),
            (
                "admin.socket",
                config.admin_socket() == running.admin_socket(),
            ),
        ] {
            if !same {
                return Err(Error::ConfigFile {
                    path: config_path.to_path_buf(),
                    message: format!(
                        "{field}: cannot change while running; restart the daemon for it"
                    ),
                });
            }
        }
        let mappings = load(&config)?;
        preflight(&config, &mappings).await?;
        Ok((config, mappings))
    }
    .await;
    let (config, mappings) = match loaded {
        Ok(new) => new,
        Err(e) => {
            metrics::gauge!(m::RELOAD_SUCCESS).set(0.0);
            tracing::error!(error = %e, "reload rejected; the running configuration stays in force");
            // Stopped flows still try again: a fixed credential file needs no config change.
            daemon.health.reload.notify_waiters();
            daemon.notifier.ready(&format!("reload rejected: {e}"));
            return generation;
        }
    };
    metrics::gauge!(m::RELOAD_SUCCESS).set(1.0);
    let unchanged = format!("{:?}", config) == format!("{:?}", generation.config)
        && mappings.fingerprint() == generation.mappings.fingerprint();
    if unchanged {
        tracing::info!("reload: configuration and mappings unchanged; stopped flows try again");
        metrics::gauge!(m::RELOAD_TIME).set(chrono::Utc::now().timestamp() as f64);
        daemon.health.reload.notify_waiters();
        daemon.notifier.ready(&daemon.health.board.summary());
        return generation;
    }
    tracing::info!("reload: stopping the flows after their current batch");
    stop(generation).await;
    let next = daemon.start(Arc::new(config), Arc::new(mappings), shutdown);
    daemon.announce_ready(next.flows.clone(), "reloaded");
    next
}

/// Feed the systemd watchdog (when `WatchdogSec=` is set) while no streaming flow is stuck.
fn spawn_watchdog(health: &Health, notifier: &Arc<Notifier>, shutdown: &CancellationToken) {
    let Some(timeout) = crate::notify::watchdog_timeout() else {
        return;
    };
    if !notifier.enabled() {
        return;
    }
    let (board, notifier, shutdown) = (health.board.clone(), notifier.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(timeout / 3);
        let mut reported = Vec::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let stuck = board.stuck_flows(STUCK_AFTER);
            if stuck.is_empty() {
                notifier.watchdog();
            } else if stuck != reported {
                tracing::error!(flows = %stuck.join(", "), after_s = STUCK_AFTER.as_secs(), "flows made no progress; no longer feeding the systemd watchdog");
            }
            reported = stuck;
        }
    });
}

/// Refuse to start on configuration problems the databases reveal (missing tables or columns,
/// wal_level). Unreachable databases are not a reason to refuse: the flows retry them.
/// Returns the endpoints that could not be checked.
async fn preflight(config: &Config, mappings: &Mappings) -> Result<Vec<String>> {
    let findings = check_live(config, mappings).await?;
    for w in &findings.warnings {
        tracing::warn!(warning = %w, "check");
    }
    for e in &findings.unreachable {
        if e.class() == ErrorClass::Transient {
            tracing::warn!(error = %e, "cannot check an endpoint at startup; its flows will retry");
        } else {
            // Credentials, privileges, TLS: the daemon stays up (metrics, admin socket); the
            // flows of that endpoint stop on the same error and resume after a reload.
            tracing::error!(error = %e, "cannot check an endpoint at startup");
        }
    }
    if findings.errors.is_empty() {
        Ok(findings.unreachable_endpoints)
    } else {
        Err(combine(findings.errors))
    }
}

/// Every 2 s while the store cannot write (its filesystem full): reopen it once there is room,
/// then wake the flows it stopped.
fn recover_store(store: Store, board: crate::board::Board, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if store.writable() {
                continue;
            }
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.recover()).await {
                Ok(Ok(true)) => board.wake_all(),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "the store cannot be reopened yet"),
                Err(e) => tracing::warn!(error = %e, "store recovery task failed"),
            }
        }
    });
}

/// Refuse to start a flow that has no checkpoint but ran before (see `pipeline::first_start`).
/// An endpoint that cannot be reached now is checked again when its flow starts.
/// A flow whose endpoints could not be checked now (unreachable, or refusing the login: no
/// second try here) is checked when it starts.
async fn first_starts(
    config: &Config,
    mappings: &Mappings,
    store: &Store,
    unreachable: &[String],
) -> Result<()> {
    let mut refused = Vec::new();
    for (source, target) in mappings.flows() {
        if unreachable.contains(&source) || unreachable.contains(&target) {
            continue;
        }
        let flow = (source.as_str(), target.as_str());
        match crate::pipeline::first_start::check(config, mappings, store, flow, None, true).await {
            Ok(()) => {}
            Err(e) if e.class() == ErrorClass::Config => refused.push(e),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for an earlier run of a flow now; checked again when it starts")
            }
        }
    }
    match refused.is_empty() {
        true => Ok(()),
        false => Err(combine(refused)),
    }
}

/// `rowbridge check`: everything `run` validates, reported in full. Returns the problems.
pub async fn check(config: &Config) -> Result<Findings> {
    let mappings = load(config)?;
    check_live(config, &mappings).await
}
