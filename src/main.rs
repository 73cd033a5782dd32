//! The `bridgehead` binary: parse the command line, set up logging, run the command.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer};

use bridgehead::cli::{self, Cli, LogFormat, EXIT_USAGE};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let filter = match EnvFilter::try_new(cli.log.as_deref().unwrap_or("info")) {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!(
                "error: --log {:?} is not a log filter: {error} (examples: info, debug, \
                 bridgehead=debug,info)",
                cli.log.as_deref().unwrap_or_default()
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let (filter, handle) = reload::Layer::new(filter);
    let output = match cli.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();
    // The config's `[log] filter` applies unless --log (or BRIDGEHEAD_LOG) pinned one.
    let log_control: Option<bridgehead::reload::LogControl> = match cli.log {
        Some(_) => None,
        None => Some(Arc::new(move |spec: &str| {
            let filter = EnvFilter::try_new(spec).map_err(|e| e.to_string())?;
            handle.reload(filter).map_err(|e| e.to_string())
        })),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(cli::run(cli, log_control))
}
