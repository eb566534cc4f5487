//! Command line: `rowbridge run | check | status | dlq | conflicts | checkpoint | audit`.
//!
//! Ops commands go to the running daemon over its admin socket; with no daemon running they
//! work on the store directly (a replay needs the daemon: exit 69).
//!
//! Exit codes: 0 ok, 1 failure, 2 usage (clap), 69 daemon needed but unreachable, 75 store
//! locked, 78 configuration.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;

pub const DEFAULT_CONFIG: &str = "/etc/rowbridge/rowbridge.toml";

#[derive(Debug, Parser)]
#[command(
    name = "rowbridge",
    version,
    about = "Keep a PostgreSQL CRM and a MySQL/MariaDB ERP in sync"
)]
pub struct Args {
    /// Configuration file.
    #[arg(short, long, env = "ROWBRIDGE_CONFIG", default_value = DEFAULT_CONFIG, global = true)]
    pub config: PathBuf,
    /// Log format: `auto` is journald's native fields when stderr goes to the journal (a
    /// systemd service), else text; `json` is one JSON object per line on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
    Journald,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run,
    /// Validate the config, the mapping files and the live databases; exit 78 on problems.
    /// A database that cannot be reached (or refuses the login) fails the check with exit 1.
    Check {
        /// Databases that cannot be reached or refuse the login are warnings, not failures
        /// (the daemon starts anyway and retries them): for ExecStartPre and ExecReload.
        #[arg(long)]
        if_reachable: bool,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// What each flow and endpoint is doing.
    Status {
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Compare a mapping's two sides by key ranges: missing, extra and differing keys.
    /// `--repair` (daemon running) prints its plan, re-copies the drifted rows and deletes
    /// the extra ones (only of a mapping that owns its target rows; see docs/ops.md).
    Verify {
        mapping: String,
        #[arg(long)]
        repair: bool,
        #[arg(long)]
        yes: bool,
        /// With --repair: print the plan only.
        #[arg(long)]
        dry_run: bool,
        /// With --repair: allow a plan that deletes more than 10 % of the target's rows.
        #[arg(long)]
        allow_mass_delete: bool,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Copy a mapping's source rows to the target while streaming continues (online, chunked
    /// by key, resumable); also the first load of a new mapping. Progress: `status`.
    /// `resync cancel MAPPING` ends an unfinished one.
    #[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
    Resync {
        #[arg(required = true)]
        mapping: Option<String>,
        #[command(subcommand)]
        action: Option<ResyncAction>,
        /// Only source rows matching this SQL condition.
        #[arg(long = "where")]
        filter: Option<String>,
        /// Only these source keys, comma-separated (a composite key's values joined by `|`).
        #[arg(long, value_delimiter = ',')]
        keys: Vec<String>,
        /// Start over even if a resync of this mapping is unfinished.
        #[arg(long)]
        restart: bool,
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        dry_run: bool,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// The operator actions recorded in the store.
    Audit {
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// The dead-letter queue.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Stored stream positions.
    Checkpoint {
        #[command(subcommand)]
        action: CheckpointAction,
    },
    /// Conflicting edits of rows mapped both ways (through the running daemon).
    Conflicts {
        #[command(subcommand)]
        action: ConflictsAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ResyncAction {
    /// End a mapping's unfinished resync between two chunks (rows already copied stay).
    Cancel {
        mapping: String,
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        dry_run: bool,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConflictsAction {
    /// Unresolved conflicts (open: waiting for both versions; parked: waiting for you).
    List {
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// One conflict with both versions.
    Show {
        id: u64,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Decide a conflict: the chosen version is written to every side that differs, once.
    Resolve {
        id: u64,
        /// An endpoint name (that side's version) or `merged` (each side's own changes).
        #[arg(long)]
        take: String,
        /// With `--take merged`: the endpoint whose value wins a field both sides changed.
        #[arg(long)]
        prefer: Option<String>,
        /// Required: confirms the writes.
        #[arg(long)]
        yes: bool,
        /// Show the row that would be written and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// List dead letters: id, flow, mapping, table, key, reason.
    List {
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// One dead letter with the stored change (row values: handle the output with care).
    Show {
        id: u64,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Re-run the current mapping on dead letters (after fixing the data or the mapping);
    /// applied ones leave the queue, failing ones come back with the new reason.
    Replay {
        ids: Vec<u64>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        dry_run: bool,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Remove dead letters without applying them.
    Drop {
        ids: Vec<u64>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        dry_run: bool,
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckpointAction {
    /// Show every flow's checkpoint.
    Show {
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Set a flow's checkpoint, backward or forward (dangerous: changes what is replayed or
    /// skipped); a running flow restarts from it.
    Set {
        /// Flow name, `source->target`.
        flow: String,
        /// PostgreSQL LSN (`0/16B3748`), MariaDB `GTIDS@file:offset` or MySQL `file:offset`.
        position: String,
        /// Required: confirms the change.
        #[arg(long)]
        yes: bool,
        /// Show what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Forget a flow's checkpoint: it starts as on its first run (PostgreSQL: the slot's
    /// position; MySQL/MariaDB: the binlog's end). Dangerous: `--yes`.
    Reset {
        flow: String,
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        dry_run: bool,
    },
}

/// Whether stderr is connected to the journal: systemd sets `$JOURNAL_STREAM` to the
/// `device:inode` of the stream it gave the service.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// Set up logging; returns the format in effect (`auto` resolved, journald fallen back).
fn init_logging(format: LogFormat) -> LogFormat {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("ROWBRIDGE_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    let format = match format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        other => other,
    };
    let mut journal_failed = None;
    if let LogFormat::Journald = format {
        match tracing_journald::layer() {
            Ok(layer) => {
                // Fields become journal fields by their upper-case names (FLOW=, ERROR=...).
                let layer = layer
                    .with_field_prefix(None)
                    .with_syslog_identifier("rowbridge".into());
                tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .init();
                return LogFormat::Journald;
            }
            Err(e) => journal_failed = Some(e),
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let format = match format {
        LogFormat::Text | LogFormat::Auto => {
            builder.with_target(false).init();
            LogFormat::Text
        }
        LogFormat::Json | LogFormat::Journald => {
            builder.json().flatten_event(true).init();
            LogFormat::Json
        }
    };
    if let Some(e) = journal_failed {
        tracing::warn!(error = %e, "cannot reach the journal socket; logging JSON lines to stderr");
    }
    format
}

/// Run a command; returns the process exit code.
pub fn main(args: Args) -> i32 {
    let format = init_logging(args.log_format);
    crate::tls::install_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rowbridge: cannot start runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(dispatch(args)) {
        Ok(code) => code,
        Err(e) => {
            // One report of the failure: a plain line for people, or a structured record
            // (JSON line, journal entry) for machines, never both interleaved.
            match format {
                LogFormat::Text | LogFormat::Auto => eprintln!("rowbridge: {e}"),
                LogFormat::Json | LogFormat::Journald => {
                    tracing::error!(class = e.class().as_str(), exit_code = e.exit_code(), "{e}")
                }
            }
            e.exit_code()
        }
    }
}

async fn dispatch(args: Args) -> Result<i32> {
    let config = Config::load(&args.config)?;
    match args.command {
        Command::Run => {
            let shutdown = CancellationToken::new();
            tokio::spawn(watch_signals(shutdown.clone()));
            crate::daemon::run(config, args.config.clone(), shutdown).await?;
            Ok(0)
        }
        Command::Check {
            output,
            if_reachable,
        } => check(&config, output, if_reachable).await,
        Command::Checkpoint { action } => checkpoint(&config, action).await,
        Command::Dlq { action } => dlq(&config, action).await,
        Command::Status { output } => {
            let reply = admin_request(&config, crate::admin::Request::Status).await?;
            print_reply(output, &reply, print_status);
            Ok(0)
        }
        Command::Verify {
            mapping,
            repair,
            yes,
            dry_run,
            allow_mass_delete,
            output,
        } => {
            if repair {
                confirm(yes, dry_run, "verify --repair writes to the target")?;
            }
            let req = crate::admin::Request::Verify {
                mapping,
                repair,
                dry_run,
                allow_mass_delete,
                actor: actor(),
            };
            let reply = admin_request(&config, req).await?;
            print_reply(output, &reply, |v| print_verify(v, repair));
            // Drift found and not repaired: exit 1, for scripts.
            let clean = reply["in_sync"].as_bool() == Some(true) || reply.get("repaired").is_some();
            Ok(if clean { 0 } else { 1 })
        }
        Command::Resync {
            action:
                Some(ResyncAction::Cancel {
                    mapping,
                    yes,
                    dry_run,
                    output,
                }),
            ..
        } => {
            confirm(yes, dry_run, "resync cancel stops the copy")?;
            let req = crate::admin::Request::ResyncCancel {
                mapping,
                dry_run,
                actor: actor(),
            };
            let reply = admin_request(&config, req).await?;
            print_reply(output, &reply, |v| {
                println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
            });
            Ok(0)
        }
        Command::Resync {
            mapping,
            action: None,
            filter,
            keys,
            restart,
            yes,
            dry_run,
            output,
        } => {
            confirm(yes, dry_run, "resync writes every source row to the target")?;
            let req = crate::admin::Request::Resync {
                mapping: mapping.ok_or_else(|| Error::Usage("name the mapping".into()))?,
                filter,
                keys,
                restart,
                dry_run,
                actor: actor(),
            };
            let reply = admin_request(&config, req).await?;
            print_reply(output, &reply, |v| {
                println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
            });
            Ok(0)
        }
        Command::Audit { output } => {
            let reply = admin_request(&config, crate::admin::Request::Audit).await?;
            print_reply(output, &reply, |v| {
                println!("{:<28} {:<12} {:<20} DETAIL", "AT", "ACTOR", "ACTION");
                for a in v.as_array().into_iter().flatten() {
                    let at =
                        chrono::DateTime::from_timestamp_micros(a["at_us"].as_i64().unwrap_or(0))
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_default();
                    println!(
                        "{at:<28} {:<12} {:<20} {}",
                        a["actor"].as_str().unwrap_or_default(),
                        a["action"].as_str().unwrap_or_default(),
                        a["detail"].as_str().unwrap_or_default()
                    );
                }
            });
            Ok(0)
        }
        Command::Conflicts { action } => conflicts(&config, action).await,
    }
}

/// Send an admin request to the running daemon, or (none running) handle it over the store.
async fn admin_request(config: &Config, req: crate::admin::Request) -> Result<serde_json::Value> {
    if let Some(reply) = crate::admin::request(&config.admin_socket(), &req).await? {
        return Ok(reply);
    }
    let store = Store::open(&config.store.path).map_err(|e| match e {
        Error::StoreLocked(p) => Error::Usage(format!(
            "the daemon holds the store {p} but its admin socket {} does not answer",
            config.admin_socket().display()
        )),
        e => e,
    })?;
    let mappings = std::sync::Arc::new(crate::mapping::Mappings::load(config)?);
    let flows = mappings
        .flows()
        .iter()
        .map(|(s, t)| crate::pipeline::flow_name(s, t))
        .collect();
    let hub = crate::pipeline::conflict::Hub::for_config(store.clone(), mappings, config);
    let reply = crate::admin::Admin {
        store: store.clone(),
        hub,
        board: None,
        flows,
        config: std::sync::Arc::new(config.clone()),
    }
    .handle(req)
    .await;
    store.flush()?;
    reply
}

async fn conflicts(config: &Config, action: ConflictsAction) -> Result<i32> {
    use crate::admin::Request;
    let (req, output) = match action {
        ConflictsAction::List { all, output } => (Request::Conflicts { all }, output),
        ConflictsAction::Show { id, output } => (Request::ConflictShow { id }, output),
        ConflictsAction::Resolve {
            id,
            take,
            prefer,
            yes,
            dry_run,
            output,
        } => {
            if !yes && !dry_run {
                return Err(Error::Usage(
                    "conflicts resolve writes to both databases: add --yes (or --dry-run)".into(),
                ));
            }
            let actor = actor();
            let req = Request::ConflictResolve {
                id,
                take,
                prefer,
                dry_run,
                actor,
            };
            (req, output)
        }
    };
    let reply = admin_request(config, req).await?;
    match output {
        Output::Json => println!("{reply}"),
        Output::Table => print_conflicts(&reply),
    }
    Ok(0)
}

fn print_conflicts(reply: &serde_json::Value) {
    let list = match reply {
        serde_json::Value::Array(v) => v.clone(),
        one if one.get("a").is_some() => vec![one.clone()],
        other => {
            // A resolution.
            let row = other.get("row").map(|r| r.to_string()).unwrap_or_default();
            let what = if other.get("dry_run").is_some() {
                "would take"
            } else {
                "took"
            };
            println!(
                "conflict {}: {what} {} {row}",
                other["id"],
                other["taken"].as_str().unwrap_or_default()
            );
            return;
        }
    };
    println!(
        "{:<6} {:<24} {:<20} {:<9} {:<10} VERSIONS",
        "ID", "MAPPING", "KEY", "STATE", "TAKEN"
    );
    for c in list {
        let side = |v: &serde_json::Value| {
            format!(
                "{}={}",
                v["endpoint"].as_str().unwrap_or_default(),
                if v["deleted"].as_bool() == Some(true) {
                    "deleted".to_string()
                } else {
                    v["row"].to_string()
                }
            )
        };
        println!(
            "{:<6} {:<24} {:<20} {:<9} {:<10} {}  {}",
            c["id"],
            c["mapping"].as_str().unwrap_or_default(),
            c["key"].as_str().unwrap_or_default(),
            c["state"].as_str().unwrap_or_default(),
            c["taken"].as_str().unwrap_or("-"),
            side(&c["a"]),
            side(&c["b"]),
        );
    }
}

fn actor() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "cli".into())
}

fn confirm(yes: bool, dry_run: bool, what: &str) -> Result<()> {
    if yes || dry_run {
        Ok(())
    } else {
        Err(Error::Usage(format!("{what}: add --yes (or --dry-run)")))
    }
}

fn print_reply(output: Output, reply: &serde_json::Value, table: impl Fn(&serde_json::Value)) {
    match output {
        Output::Json => println!("{reply}"),
        Output::Table => table(reply),
    }
}

fn print_status(v: &serde_json::Value) {
    println!("daemon: {}", v["daemon"].as_str().unwrap_or_default());
    println!(
        "{:<14} {:<11} {:>9} {:>9} {:>7} {:>5} {:>9} {:<34} LAST ERROR",
        "FLOW", "STATE", "LAG s", "CHANGES/s", "QUEUE", "DLQ", "CONFLICTS", "POSITION"
    );
    for f in v["flows"].as_array().into_iter().flatten() {
        let lag = f["lag_seconds"]
            .as_f64()
            .map(|l| format!("{l:.1}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<14} {:<11} {:>9} {:>9} {:>7} {:>5} {:>9} {:<34} {}",
            f["flow"].as_str().unwrap_or_default(),
            f["state"].as_str().unwrap_or_default(),
            lag,
            f["changes_per_second"],
            f["queue_depth"],
            f["dead_letters"],
            f["open_conflicts"],
            f["position"].as_str().unwrap_or("-"),
            f["last_error"]["message"].as_str().unwrap_or("-"),
        );
    }
    for f in v["flows"].as_array().into_iter().flatten() {
        for r in f["resync"].as_array().into_iter().flatten() {
            println!(
                "resync {:<24} {:<10} {}/{} rows, {} rows/s, eta {} s{}",
                r["mapping"].as_str().unwrap_or_default(),
                r["state"].as_str().unwrap_or_default(),
                r["rows"],
                r["total"],
                r["rows_per_second"],
                r["eta_seconds"],
                r["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
    }
    for e in v["endpoints"].as_array().into_iter().flatten() {
        println!(
            "endpoint {:<10} {:<5} {}",
            e["endpoint"].as_str().unwrap_or_default(),
            if e["up"].as_bool() == Some(true) {
                "up"
            } else {
                "down"
            },
            e["why"].as_str().unwrap_or("")
        );
    }
}

async fn dlq(config: &Config, action: DlqAction) -> Result<i32> {
    use crate::admin::Request;
    let (req, output) = match action {
        DlqAction::List { output } => (Request::DlqList, output),
        DlqAction::Show { id, output } => (Request::DlqShow { id }, output),
        DlqAction::Replay {
            ids,
            all,
            yes,
            dry_run,
            output,
        } => {
            confirm(yes, dry_run, "dlq replay writes to the target")?;
            let actor = actor();
            (
                Request::DlqReplay {
                    ids,
                    all,
                    dry_run,
                    actor,
                },
                output,
            )
        }
        DlqAction::Drop {
            ids,
            all,
            yes,
            dry_run,
            output,
        } => {
            confirm(yes, dry_run, "dlq drop discards changes")?;
            let actor = actor();
            (
                Request::DlqDrop {
                    ids,
                    all,
                    dry_run,
                    actor,
                },
                output,
            )
        }
    };
    let listing = matches!(req, Request::DlqList);
    let reply = admin_request(config, req).await?;
    print_reply(output, &reply, |v| match v.as_array() {
        Some(list) if listing => {
            println!(
                "{:<8} {:<12} {:<20} {:<28} {:<16} REASON",
                "ID", "FLOW", "MAPPING", "TABLE", "KEY"
            );
            for d in list {
                println!(
                    "{:<8} {:<12} {:<20} {:<28} {:<16} {}",
                    d["id"],
                    d["flow"].as_str().unwrap_or_default(),
                    d["mapping"].as_str().unwrap_or_default(),
                    d["table"].as_str().unwrap_or_default(),
                    d["key"].as_str().unwrap_or_default(),
                    d["reason"].as_str().unwrap_or_default()
                );
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
    });
    Ok(0)
}

async fn checkpoint(config: &Config, action: CheckpointAction) -> Result<i32> {
    use crate::admin::Request;
    let (req, output) = match action {
        CheckpointAction::Show { output } => (Request::CheckpointShow, output),
        CheckpointAction::Set {
            flow,
            position,
            yes,
            dry_run,
        } => {
            confirm(
                yes,
                dry_run,
                "checkpoint set changes what is replayed or skipped",
            )?;
            let req = Request::CheckpointSet {
                flow,
                position: Some(position),
                dry_run,
                actor: actor(),
            };
            (req, Output::Table)
        }
        CheckpointAction::Reset { flow, yes, dry_run } => {
            confirm(
                yes,
                dry_run,
                "checkpoint reset changes what is replayed or skipped",
            )?;
            let req = Request::CheckpointSet {
                flow,
                position: None,
                dry_run,
                actor: actor(),
            };
            (req, Output::Table)
        }
    };
    let reply = admin_request(config, req).await?;
    print_reply(output, &reply, |v| match v.as_array() {
        Some(list) => {
            println!("{:<24} POSITION", "FLOW");
            for c in list {
                println!(
                    "{:<24} {}",
                    c["flow"].as_str().unwrap_or_default(),
                    c["position"].as_str().unwrap_or_default()
                );
            }
        }
        None => {
            let c = if v.get("change").is_some() {
                &v["change"]
            } else {
                v
            };
            let verb = if v.get("dry_run").is_some() {
                "would set"
            } else {
                "set"
            };
            println!(
                "{verb} {}: {} -> {}",
                c["flow"].as_str().unwrap_or_default(),
                c["from"].as_str().unwrap_or_default(),
                c["to"].as_str().unwrap_or_default()
            );
        }
    });
    Ok(0)
}

async fn check(config: &Config, output: Output, if_reachable: bool) -> Result<i32> {
    let mut findings = crate::daemon::check(config).await?;
    let mut errors: Vec<String> = findings.errors.iter().map(|e| e.to_string()).collect();
    let unreachable: Vec<String> = findings.unreachable.iter().map(|e| e.to_string()).collect();
    if if_reachable {
        findings.warnings.extend(
            unreachable
                .iter()
                .map(|e| format!("{e} (not checked; the daemon retries it)")),
        );
    } else {
        errors.extend(unreachable.iter().cloned());
    }
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"ok": errors.is_empty(), "errors": errors, "warnings": findings.warnings, "unreachable": unreachable})
        ),
        Output::Table => {
            for w in &findings.warnings {
                println!("warning: {w}");
            }
            for e in &errors {
                println!("error: {e}");
            }
            if errors.is_empty() {
                println!("ok: configuration, mappings and databases are ready");
            }
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        for e in &errors {
            eprintln!("rowbridge: {e}");
        }
        // Configuration, mapping or schema problems: 78 (not retried by systemd); only
        // unreachable databases: 1.
        if findings.errors.is_empty() {
            Ok(1)
        } else {
            Ok(Error::Invalid(String::new()).exit_code())
        }
    }
}

async fn watch_signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}

/// verify's report as text: the counts, the keys, the plan (with `--repair`) and its outcome.
fn print_verify(v: &serde_json::Value, repair: bool) {
    println!(
        "{}: {} source rows, {} target rows: {} missing, {} differing, {} extra{}",
        v["mapping"].as_str().unwrap_or_default(),
        v["source_rows"],
        v["target_rows"],
        v["missing"],
        v["differing"],
        v["extra"],
        if v["unmapped"].as_u64().unwrap_or(0) > 0 {
            format!(", {} rows the mapping cannot write", v["unmapped"])
        } else {
            String::new()
        }
    );
    if v["dead_letters"].as_u64().unwrap_or(0) > 0 {
        println!("held in the dead-letter queue: {}", v["dead_letters"]);
    }
    for kind in ["missing", "differing", "extra", "dead_letter"] {
        for k in v[format!("{kind}_keys")].as_array().into_iter().flatten() {
            println!("  {kind:<11} {}", k.as_str().unwrap_or_default());
        }
    }
    for u in v["unreadable_keys"].as_array().into_iter().flatten() {
        println!(
            "  unreadable  {} ({}): column {}",
            u["key"].as_str().unwrap_or_default(),
            u["endpoint"].as_str().unwrap_or_default(),
            u["column"].as_str().unwrap_or_default()
        );
    }
    if repair {
        let p = &v["plan"];
        println!(
            "plan: {} missing to write, {} differing to rewrite, {} extra to delete{}",
            p["write_missing"],
            p["rewrite_differing"],
            p["delete_extra"],
            if v["dry_run"] == true {
                " (dry run: nothing changed)"
            } else {
                ""
            }
        );
        for a in p["left_alone"].as_array().into_iter().flatten() {
            println!(
                "  left alone: {} {} rows: {}",
                a["rows"],
                a["kind"].as_str().unwrap_or_default(),
                a["why"].as_str().unwrap_or_default()
            );
        }
    }
    if let Some(r) = v.get("repaired") {
        println!(
            "repaired: {} rows written, {} deleted",
            r["written"], r["deleted"]
        );
    }
}
