//! `run` and `check`: load and validate everything, then start one flow per endpoint pair.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::catalog::{self, Catalog, Findings};
use crate::config::Config;
use crate::error::{Error, ErrorClass, Result};
use crate::mapping::Mappings;
use crate::metrics::{self as m, Health};
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

/// The daemon: runs until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<()> {
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
    metrics::gauge!(m::DEAD_LETTERS).set(store.dead_letter_count() as f64);
    metrics::gauge!(m::CONFLICTS_OPEN).set(store.open_conflict_count() as f64);
    preflight(&config, &mappings).await?;
    let mut tasks = tokio::task::JoinSet::new();
    let flows = mappings.flows();
    let names: Vec<String> = flows
        .iter()
        .map(|(s, t)| crate::pipeline::flow_name(s, t))
        .collect();
    health.expect_flows(names.iter().map(String::as_str));
    let hub = crate::pipeline::conflict::Hub::for_config(store.clone(), mappings.clone(), &config);
    let admin = crate::admin::Admin {
        store: store.clone(),
        hub: hub.clone(),
        board: Some(health.board.clone()),
        config: config.clone(),
        flows: mappings
            .flows()
            .iter()
            .map(|(s, t)| crate::pipeline::flow_name(s, t))
            .collect(),
    };
    let socket = config.admin_socket();
    let admin_shutdown = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::admin::serve(&socket, admin, admin_shutdown).await {
            tracing::error!(error = %e, "admin socket failed; operator commands need the daemon stopped");
        }
    });
    for (source, target) in flows {
        let (c, m, s, h) = (
            config.clone(),
            mappings.clone(),
            store.clone(),
            health.clone(),
        );
        let flow = Flow::new(&source, &target, c, m, s, h, hub.clone());
        tracing::info!(flow = %flow.name, "starting flow");
        tasks.spawn(flow.run(shutdown.clone()));
    }
    // SIGHUP: flows stopped by an endpoint error (credentials, privileges, a dropped slot)
    // try again, reading the credential files anew.
    {
        let health = health.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = hup.recv() => {
                        tracing::info!("reload requested (SIGHUP): stopped flows try again");
                        health.reload.notify_waiters();
                    }
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::error!(error = %e, "a flow stopped; the others keep running");
        }
    }
    // Stopped flows stay visible (metrics, health) until the operator acts; no restart loop.
    shutdown.cancelled().await;
    store.flush()?;
    tracing::info!("stopped");
    Ok(())
}

/// Refuse to start on configuration problems the databases reveal (missing tables or columns,
/// wal_level). Unreachable databases are not a reason to refuse: the flows retry them.
async fn preflight(config: &Config, mappings: &Mappings) -> Result<()> {
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
        Ok(())
    } else {
        Err(combine(findings.errors))
    }
}

/// `rowbridge check`: everything `run` validates, reported in full. Returns the problems.
pub async fn check(config: &Config) -> Result<Findings> {
    let mappings = load(config)?;
    check_live(config, &mappings).await
}
