//! `volcanion`: parse the command line, load config, start telemetry, serve until a signal.
//!
//! Errors are printed here, as one `error: …` line with their causes, never as a Rust
//! debug dump or a backtrace: a configuration mistake exits 2, any other failure 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use std::sync::Arc;
use uuid::Uuid;

use volcanion::Application;
use volcanion::config::Config;
use volcanion::enrich::Enricher;
use volcanion::manage::{self, rollups::RollupRange};
use volcanion::store::cassandra::migrate::{self, MigrationReport};
use volcanion::store::embedded::EmbeddedStore;
use volcanion::telemetry::Metrics;

// Every event is a handful of short-lived allocations; mimalloc's thread-local free lists
// cost a fraction of glibc's malloc/free, which led the ingest profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The exit status of a configuration that does not load or validate.
const CONFIG_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "volcanion",
    version,
    about = "Volcanion Tracking: event ingestion, storage and reports"
)]
struct Cli {
    /// A TOML file overriding config/default.toml (environment variables override both).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Load and validate the configuration as `serve` would, print it as TOML that
    /// `--config` accepts (secrets left out), and exit.
    CheckConfig,
    /// Create or update the Cassandra keyspace and tables from `cql/` (idempotent), using
    /// the `[cassandra]` settings, then exit.
    Migrate,
    /// Recount report rollups from raw events (`rebuild`), or compare them with a recount
    /// (`verify`: exit status 1 when any hour differs).
    Rollups {
        #[command(subcommand)]
        action: RollupsAction,
    },
    /// Compact the embedded store's file, giving the space that deletions (retention,
    /// erasures) freed back to the file system. Needs the data dir to itself: stop `serve`
    /// first. Without it, freed space is reused by later writes.
    Compact,
}

#[derive(Subcommand)]
enum RollupsAction {
    Rebuild(RollupArgs),
    Verify(RollupArgs),
}

#[derive(clap::Args)]
struct RollupArgs {
    /// One partner's id (default: every partner).
    #[arg(long)]
    partner: Option<Uuid>,
    /// RFC 3339 instant; whole hours from the one it falls in.
    #[arg(long, default_value = "2000-01-01T00:00:00Z")]
    from: DateTime<Utc>,
    /// RFC 3339 instant; whole hours up to the one it falls in (default: now).
    #[arg(long)]
    to: Option<DateTime<Utc>>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            print!("{}", config.to_toml());
            ExitCode::SUCCESS
        }
        Command::Rollups { action } => run_rollups(&config, action),
        Command::Compact => match EmbeddedStore::compact(&config.store.data_dir) {
            Ok((before, after)) => {
                println!("compacted: {before} bytes before, {after} after");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Migrate => match run_migrations(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(error) => {
                    eprintln!("error: cannot start the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let telemetry =
                match volcanion::telemetry::init(&config.telemetry, runtime.handle().clone()) {
                    Ok(telemetry) => telemetry,
                    Err(error) => {
                        eprintln!("error: {error:#}");
                        return ExitCode::FAILURE;
                    }
                };
            let code = runtime.block_on(serve(config));
            // The last spans go out on the runtime, so it outlives the flush.
            telemetry.shutdown();
            code
        }
    }
}

fn run_migrations(config: &Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = runtime
        .block_on(migrate::run(&config.cassandra))
        .context("migration failed")?;
    println!(
        "keyspace {}: {}; schema in agreement",
        config.cassandra.keyspace,
        describe(&report)
    );
    if let Some(mismatch) = &report.replication_mismatch {
        eprintln!("warning: {mismatch}");
    }
    Ok(())
}

fn run_rollups(config: &Config, action: RollupsAction) -> ExitCode {
    let outcome = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(rollups(config, action)));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn rollups(config: &Config, action: RollupsAction) -> anyhow::Result<ExitCode> {
    let store = volcanion::open_store(config).await?;
    let (RollupsAction::Rebuild(args) | RollupsAction::Verify(args)) = &action;
    let range = RollupRange {
        partner: args.partner,
        from: args.from,
        to: args.to.unwrap_or_else(Utc::now),
    };
    match action {
        RollupsAction::Rebuild(_) => {
            let metrics = Arc::new(Metrics::new());
            let enricher = Enricher::new(&config.enrich, metrics)?;
            for rebuilt in manage::rollups::rebuild(store.as_ref(), &enricher, &range).await? {
                println!(
                    "partner {}: {} events stored without enrichment enriched; rollups rebuilt from {} events",
                    rebuilt.partner, rebuilt.enriched, rebuilt.recounted
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RollupsAction::Verify(_) => {
            let differences = manage::rollups::verify(store.as_ref(), &range).await?;
            for difference in &differences.breakdowns {
                println!(
                    "partner {}, {} starting {}: breakdown cell {:?} disagrees with the raw events: {:?}",
                    difference.partner_id,
                    if difference.hours == 1 {
                        "hour"
                    } else {
                        "UTC day"
                    },
                    difference.hour.start().to_rfc3339(),
                    difference.cell,
                    difference.disagreements
                );
            }
            for (partner, difference) in &differences.counts {
                let span = if difference.hours == 1 {
                    "hour"
                } else {
                    "UTC day"
                };
                println!(
                    "partner {partner}, {span} starting {}: rollups count {} events, the raw events {}",
                    difference.hour.start().to_rfc3339(),
                    difference.stored.total(),
                    difference.recounted.total()
                );
            }
            if differences.is_empty() {
                println!("rollups agree with the raw events");
                return Ok(ExitCode::SUCCESS);
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn describe(report: &MigrationReport) -> String {
    if report.keyspace_created {
        return format!("created, with {}", tables(report.tables_created));
    }
    match (report.tables_created, report.tables_already_present()) {
        (0, present) => format!("up to date, {} already present", tables(present)),
        (created, present) => format!("{} created, {present} already present", tables(created)),
    }
}

fn tables(count: usize) -> String {
    match count {
        1 => "1 table".to_string(),
        _ => format!("{count} tables"),
    }
}

async fn serve(config: Config) -> ExitCode {
    let application = match Application::build(config).await {
        Ok(application) => application,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "cannot start");
            return ExitCode::FAILURE;
        }
    };
    match application.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "shutdown incomplete");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("cannot install the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
