//! `volcanion`: parse the command line, load config, start telemetry, serve until a signal.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use volcanion::Application;
use volcanion::config::Config;

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
    /// Load and validate the configuration, print it (secrets redacted) and exit.
    CheckConfig,
    /// Create or update the Cassandra keyspace and tables from `cql/` (idempotent), using
    /// the `[cassandra]` settings, then exit.
    Migrate,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            println!("{config:#?}");
            Ok(())
        }
        Command::Migrate => {
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let keyspace = config.cassandra.keyspace.clone();
            let applied = runtime
                .block_on(volcanion::store::cassandra::CassandraStore::migrate(
                    &config.cassandra,
                ))
                .context("migration failed")?;
            println!("keyspace {keyspace}: {applied} statements applied, schema in agreement");
            Ok(())
        }
        Command::Serve => {
            volcanion::telemetry::init_logging(&config.telemetry)?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(serve(config))
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let application = Application::build(config).await?;
    application
        .run_until(shutdown_signal())
        .await
        .inspect_err(|error| {
            tracing::error!(error = %format!("{error:#}"), "shutdown incomplete");
        })
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
