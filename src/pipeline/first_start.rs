//! A flow without a checkpoint either runs for the first time, or has lost its store (deleted,
//! restored from an old backup, a new machine). Started as new, the second would skip every
//! change made while it was not running: a MariaDB source begins at the end of the binlog. So a
//! flow with no checkpoint first looks for traces of an earlier run on its databases:
//!
//! * its replication slot on a PostgreSQL source (created on the first run);
//! * its row in the target's progress table (flows of `direction = "both"` mappings);
//! * its replication origin on a PostgreSQL target (created when the flow first wrote there,
//!   after its first checkpoint was stored).
//!
//! Any trace, and the flow refuses to start until the operator chooses: continue from a
//! position, start as new and resync, or start as new on purpose (`checkpoint reset`, which
//! the store remembers until the flow has stored its first checkpoint).
//!
//! The check never costs changes itself: a PostgreSQL source's slot alone proves an earlier
//! run (a first start stores the new slot's position at once), and a MariaDB source's first
//! position is taken and kept before the target is asked, so changes made while the target
//! cannot be reached (a wrong password) are still read once it can.

use crate::config::{Config, EndpointKind};
use crate::error::{Error, Result};
use crate::mapping::Mappings;
use crate::store::Store;

/// One trace of an earlier run, with the position it proves when it has one.
struct Trace {
    what: String,
    position: Option<String>,
}

/// Ok when the flow has a checkpoint, was reset on purpose, or shows no trace of an earlier
/// run; otherwise the error says what was found and the commands that choose. `source_conn`:
/// the flow's own connection to a PostgreSQL source, when it has one open (no second login).
pub async fn check(
    config: &Config,
    mappings: &Mappings,
    store: &Store,
    (source, target): (&str, &str),
    source_conn: Option<&crate::source::postgres::PgConn>,
    with_target: bool,
) -> Result<()> {
    let flow = super::flow_name(source, target);
    if store.checkpoint(&flow)?.is_some() || store.fresh_start(&flow)? {
        return Ok(());
    }
    let mut traces = source_traces(config, source, source_conn).await?;
    if with_target {
        traces.extend(target_traces(config, source, target, &flow).await?);
    }
    if traces.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(refusal(
        config, mappings, &flow, source, &traces,
    )))
}

async fn source_traces(
    config: &Config,
    source: &str,
    conn: Option<&crate::source::postgres::PgConn>,
) -> Result<Vec<Trace>> {
    let cfg = &config.endpoints[source];
    if cfg.kind != EndpointKind::Postgres {
        return Ok(Vec::new());
    }
    let own;
    let conn = match conn {
        Some(c) => c,
        None => {
            own = crate::source::postgres::PgConn::connect(source, cfg, &config.password(source)?)
                .await?;
            &own
        }
    };
    let slot = cfg.slot();
    Ok(crate::source::postgres::slot_position(conn, slot)
        .await?
        .map(|p| Trace {
            what: format!("replication slot '{slot}' exists on {source}"),
            position: Some(p.to_arg()),
        })
        .into_iter()
        .collect())
}

async fn target_traces(
    config: &Config,
    source: &str,
    target: &str,
    flow: &str,
) -> Result<Vec<Trace>> {
    let cfg = &config.endpoints[target];
    let password = config.password(target)?;
    let progress = crate::sink::PROGRESS_TABLE;
    let mut traces = Vec::new();
    let recorded = match cfg.kind {
        EndpointKind::Postgres => {
            let conn = crate::source::postgres::PgConn::connect(target, cfg, &password).await?;
            let c = &conn.client;
            let origin = crate::sink::postgres::origin_name(&cfg.database, source);
            let has_origin = c
                .query_opt(
                    "SELECT 1 FROM pg_replication_origin WHERE roname = $1",
                    &[&origin],
                )
                .await
                .map_err(|e| Error::pg(target, e))?
                .is_some();
            if has_origin && config.pipeline.mark_writes {
                traces.push(Trace {
                    what: format!(
                        "replication origin '{origin}' exists on {target}: rowbridge wrote there from {source}"
                    ),
                    position: None,
                });
            }
            let exists: bool = c
                .query_one(
                    &format!("SELECT to_regclass('{progress}') IS NOT NULL"),
                    &[],
                )
                .await
                .map_err(|e| Error::pg(target, e))?
                .get(0);
            match exists {
                false => None,
                true => c
                    .query_opt(
                        &format!("SELECT position FROM {progress} WHERE flow = $1"),
                        &[&flow],
                    )
                    .await
                    .map_err(|e| Error::pg(target, e))?
                    .map(|r| r.get::<_, String>(0)),
            }
        }
        EndpointKind::Mysql => {
            use mysql_async::prelude::Queryable;
            let opts = crate::sink::mysql::opts(cfg, &password);
            let mut conn = crate::sink::mysql::connect_conn(target, cfg, opts).await?;
            let exists: Option<u8> = conn
                .exec_first(
                    "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
                    (progress,),
                )
                .await
                .map_err(|e| Error::mysql(target, e))?;
            let position: Option<String> = match exists {
                None => None,
                Some(_) => conn
                    .exec_first(
                        format!("SELECT position FROM {progress} WHERE flow = ?"),
                        (flow,),
                    )
                    .await
                    .map_err(|e| Error::mysql(target, e))?,
            };
            let _ = conn.disconnect().await;
            position
        }
    };
    if let Some(p) = recorded {
        traces.push(Trace {
            what: format!("{target}'s {progress} table records the flow at {p}"),
            position: Some(p),
        });
    }
    Ok(traces)
}

fn refusal(
    config: &Config,
    mappings: &Mappings,
    flow: &str,
    source: &str,
    traces: &[Trace],
) -> String {
    let found: Vec<&str> = traces.iter().map(|t| t.what.as_str()).collect();
    let as_new = match config.endpoints[source].kind {
        EndpointKind::Mysql => "at the end of the binlog",
        EndpointKind::Postgres => "from where the slot stands",
    };
    let resyncs: Vec<String> = mappings
        .list
        .iter()
        .filter(|m| {
            m.source.endpoint == source && super::flow_name(source, &m.target.endpoint) == flow
        })
        .map(|m| format!("rowbridge resync {}", m.name))
        .collect();
    let mut text = format!(
        "flow {flow} has no checkpoint in the store {}, but it has run before ({}). Started as new \
         it would begin {as_new} and skip every change made while it was not running. Choose one, \
         then start rowbridge again (add -c CONFIG to each command):",
        config.store.path.display(),
        found.join("; ")
    );
    if let Some(p) = traces.iter().find_map(|t| t.position.as_deref()) {
        text.push_str(&format!(
            "\n  continue from the last known position:  rowbridge checkpoint set '{flow}' '{p}' --yes"
        ));
    }
    text.push_str(&format!(
        "\n  start as new and copy the tables again:  rowbridge checkpoint reset '{flow}' --yes, start, then {}",
        resyncs.join("; ")
    ));
    text.push_str(&format!(
        "\n  start as new on purpose (skip what changed meanwhile):  rowbridge checkpoint reset '{flow}' --yes"
    ));
    text
}
