//! Command line: `rowbridge run | check | checkpoint show`.
//!
//! Exit codes: 0 ok, 1 failure, 2 usage (clap), 75 store locked, 78 configuration.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::position::Position;
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
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    Check {
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// The dead-letter queue (reads the store; the daemon must be stopped).
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
}

#[derive(Debug, Subcommand)]
pub enum CheckpointAction {
    /// Show every flow's checkpoint (reads the store; the daemon must be stopped).
    Show {
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Set a flow's checkpoint, backward or forward (dangerous: changes what is replayed or skipped).
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
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROWBRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Run a command; returns the process exit code.
pub fn main(args: Args) -> i32 {
    init_logging(args.log_format);
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
            tracing::error!(class = e.class().as_str(), "{e}");
            eprintln!("rowbridge: {e}");
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
            crate::daemon::run(config, shutdown).await?;
            Ok(0)
        }
        Command::Check { output } => check(&config, output).await,
        Command::Checkpoint { action } => checkpoint(&config, action),
        Command::Dlq {
            action: DlqAction::List { output },
        } => dlq_list(&config, output),
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
    let hub = crate::pipeline::conflict::Hub::for_config(store.clone(), mappings, config);
    let reply = crate::admin::Admin {
        store: store.clone(),
        hub,
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
            let actor = std::env::var("SUDO_USER")
                .or_else(|_| std::env::var("USER"))
                .unwrap_or_else(|_| "cli".into());
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

fn dlq_list(config: &Config, output: Output) -> Result<i32> {
    let store = Store::open(&config.store.path)?;
    let letters = store.dead_letters()?;
    match output {
        Output::Json => {
            let v: Vec<_> = letters
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "id": d.id, "flow": d.flow, "mapping": d.mapping, "table": d.table,
                        "key": d.key, "reason": d.reason, "class": d.class,
                        "op": d.change.op.as_str(), "position": d.position.to_arg(), "at_us": d.at_us,
                    })
                })
                .collect();
            println!("{}", serde_json::Value::Array(v));
        }
        Output::Table => {
            println!(
                "{:<6} {:<12} {:<20} {:<28} {:<16} REASON",
                "ID", "FLOW", "MAPPING", "TABLE", "KEY"
            );
            for d in letters {
                println!(
                    "{:<6} {:<12} {:<20} {:<28} {:<16} {}",
                    d.id, d.flow, d.mapping, d.table, d.key, d.reason
                );
            }
        }
    }
    Ok(0)
}

fn checkpoint(config: &Config, action: CheckpointAction) -> Result<i32> {
    let store = Store::open(&config.store.path)?;
    match action {
        CheckpointAction::Show { output } => {
            let rows = store.checkpoints()?;
            match output {
                Output::Json => {
                    let v: Vec<_> = rows
                        .iter()
                        .map(|(flow, pos)| {
                            serde_json::json!({"flow": flow, "position": pos.to_string(), "arg": pos.to_arg(), "lsn": pos.lsn()})
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(v));
                }
                Output::Table => {
                    println!("{:<24} POSITION", "FLOW");
                    for (flow, pos) in rows {
                        println!("{flow:<24} {pos}");
                    }
                }
            }
            Ok(0)
        }
        CheckpointAction::Set {
            flow,
            position,
            yes,
            dry_run,
        } => {
            let pos = Position::parse(&position)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "'{position}' is not a position (expected an LSN like 0/16B3748, GTID@file:offset or file:offset)"
                    ))
                })?;
            let old = store.checkpoint(&flow)?;
            let old = old.map(|p| p.to_string()).unwrap_or_else(|| "none".into());
            if dry_run {
                println!("would set {flow}: {old} -> {pos}");
                return Ok(0);
            }
            if !yes {
                return Err(Error::Usage(
                    "checkpoint set changes what is replayed or skipped: add --yes".into(),
                ));
            }
            store.reset_checkpoint(&flow, Some(&pos), "cli")?;
            println!("set {flow}: {old} -> {pos}");
            Ok(0)
        }
    }
}

async fn check(config: &Config, output: Output) -> Result<i32> {
    let findings = crate::daemon::check(config).await?;
    let errors: Vec<String> = findings.errors.iter().map(|e| e.to_string()).collect();
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"ok": errors.is_empty(), "errors": errors, "warnings": findings.warnings})
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
        Ok(Error::Invalid(String::new()).exit_code())
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
