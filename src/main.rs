//! `academy`: parses the command line, sets up logging, and hands over to the library.

use std::process::ExitCode;

use academy::cli::Cli;
use academy::config::LogFormat;
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    // a .env file is for development; its absence is normal
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    match academy::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("academy: {error:#}");
            ExitCode::FAILURE
        }
    }
}
