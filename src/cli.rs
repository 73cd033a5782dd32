//! The command line: `serve`, `check-config`, `pki verify|inspect|issue`,
//! `user add|passwd|list|remove`, `component add|list|remove`.
//!
//! Exit codes: `pki verify` uses 0 (all OK), 1 (warnings only), 2 (any FAIL) and 3 (usage
//! error or unreadable input). The other commands use 0 for success, 1 for failure and 3
//! for bad usage or unreadable input; `main` maps clap's own usage errors to 3 as well.
//!
//! One file per command group beside this one: `cli/toolkit.rs` (pki), `cli/users.rs`,
//! `cli/devices.rs`, `cli/components.rs`; this file holds the top level, `serve`,
//! `check-config` and what the groups share.

mod admin;
mod components;
mod devices;
mod doctor;
mod generate;
mod toolkit;
mod users;

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::embedded::DevPki;
use crate::pki::{self};
use crate::server::{identity_files, identity_requirements, Server};
use crate::shutdown::{self, Shutdown};
use crate::store::Store;

pub use components::ComponentCommand;
pub use devices::DeviceCommand;
pub use toolkit::{InspectArgs, IssueCommand, IssueCommon, PkiCommand, VerifyArgs};
pub use users::{PasswordArgs, UserCommand};

use admin::{admin_command, AdminCommand};
use components::component_command;
use devices::device_command;
use doctor::{doctor_command, DoctorArgs};
use toolkit::pki_command;
use users::user_command;

/// The CLI spells roles and conflict policies as the store and the config do.
impl clap::ValueEnum for crate::telephony::Role {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

impl clap::ValueEnum for crate::telephony::OnConflict {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// Exit code for usage errors and unreadable input.
pub const EXIT_USAGE: u8 = 3;

/// Bridgehead: an edge server for business telephony — XMPP for call bridges and clients,
/// a BroadWorks-style XSP edge, and a PKI toolkit.
#[derive(Debug, Parser)]
#[command(name = "bridgehead", version, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `bridgehead=debug`. Wins over
    /// the configuration's `[log] filter` (default `info`), also on reload.
    #[arg(long, global = true, env = "BRIDGEHEAD_LOG")]
    pub log: Option<String>,
    /// Log lines as text or as one JSON object per line.
    #[arg(long, global = true, env = "BRIDGEHEAD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (embedded defaults when no --config is given).
    Serve(ConfigArgs),
    /// Load and validate the configuration and check its certificates; nothing else.
    /// Exit 0: OK; 1: warnings; 2: errors; 3: the file cannot be read.
    CheckConfig(CheckConfigArgs),
    /// Check, inspect and issue certificates.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Manage users in the store.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage XEP-0114 components in the store.
    #[command(subcommand)]
    Component(ComponentCommand),
    /// Manage users' devices (served as XSI `profile/Device`).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Operate a running node through its admin API: status, live lists, kick, reload.
    #[command(flatten)]
    Admin(AdminCommand),
    /// The precall test: find the deployment's servers by SRV and check each one (TCP,
    /// TLS, the certificate, the component handshake, SASL, XSI and heartbeat affinity).
    /// Exit 0: all green; 1: amber; 2: red; 3: usage.
    Doctor(DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (bridgehead.1 and one per command) into a directory.
    Man {
        /// Where to write them.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// Where the configuration comes from.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// The configuration file (TOML). Without it, the embedded defaults are used.
    #[arg(long, short = 'c', env = "BRIDGEHEAD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Override `server.data_dir`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `check-config`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct CheckConfigArgs {
    /// Which configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Check the syntax and the rules only, not the files the configuration names
    /// (certificates, keys, trust and secret files): for a configuration whose files are not
    /// in place yet.
    #[arg(long)]
    pub syntax_only: bool,
}

impl ConfigArgs {
    /// Loads and validates the configuration.
    pub fn load(&self) -> anyhow::Result<Config> {
        Ok(self.load_with(crate::config::Files::Check)?)
    }

    /// Where the configuration comes from, at start and on reload.
    pub fn source(&self) -> crate::reload::ConfigSource {
        crate::reload::ConfigSource {
            path: self.config.clone(),
            data_dir: self.data_dir.clone(),
        }
    }

    /// Loads the configuration (or the embedded one), applies `--data-dir`, and validates
    /// it with or without its files.
    fn load_with(&self, files: crate::config::Files) -> Result<Config, crate::config::ConfigError> {
        self.source().load(files)
    }

    async fn open_store(&self) -> anyhow::Result<(Config, std::sync::Arc<dyn Store>)> {
        let config = self.load()?;
        let (store, _) = crate::store::open(&config).await?;
        Ok((config, store))
    }
}

/// An error that maps to a particular exit code.
#[derive(Debug)]
pub struct Exit(pub u8, pub anyhow::Error);

/// Runs a parsed command line; `log` changes the log filter (absent when `--log` pins it).
pub async fn run(cli: Cli, log: Option<crate::reload::LogControl>) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(args, log).await,
        Command::CheckConfig(args) => check_config(args).await,
        Command::Pki(command) => pki_command(command).await,
        Command::User(command) => user_command(command).await,
        Command::Component(command) => component_command(command).await,
        Command::Device(command) => device_command(command).await,
        Command::Admin(command) => admin_command(command).await,
        Command::Doctor(args) => doctor_command(args).await,
        Command::Completions { shell } => generate::completions(shell),
        Command::Man { dir } => generate::man_pages(&dir),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let code = match error.downcast_ref::<UsageError>() {
                Some(_) => EXIT_USAGE,
                None if error.downcast_ref::<pki::PkiError>().is_some() => EXIT_USAGE,
                None => 1,
            };
            eprintln!("error: {}", report(&error));
            ExitCode::from(code)
        }
    }
}

/// The error and its causes on one line, each cause once: a cause whose text the message
/// already holds (an error that prints its source) is not repeated.
pub fn report(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Bad usage that clap cannot catch.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

async fn serve(args: ConfigArgs, log: Option<crate::reload::LogControl>) -> anyhow::Result<u8> {
    let config = args.load()?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %args.config.as_deref().map_or("(embedded defaults)".into(), |p| p.display().to_string()),
        "bridgehead starting"
    );
    if let Some(apply) = &log {
        apply(&config.log.filter).map_err(|e| anyhow::anyhow!("log.filter: {e}"))?;
    }
    let grace = Duration::from_secs(config.server.shutdown_grace_secs.get());
    // Before binding: once a listener is up, a SIGTERM must stop the server cleanly.
    let signal = shutdown::signal();
    let bound = Server::bind(config).await?.reload_from(args.source(), log);
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        signal.await;
        trigger.trigger();
    });
    bound.run(shutdown.clone()).await;
    if !shutdown.drain(grace).await {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "some connections did not finish in time"
        );
    }
    tracing::info!("stopped");
    Ok(0)
}

/// `check-config`'s exit codes, as `pki verify`'s.
const CHECK_WARNINGS: u8 = 1;
const CHECK_ERRORS: u8 = 2;
const CHECK_UNREADABLE: u8 = 3;

async fn check_config(args: CheckConfigArgs) -> anyhow::Result<u8> {
    let files = if args.syntax_only {
        crate::config::Files::Skip
    } else {
        crate::config::Files::Check
    };
    let config = match args.config.load_with(files) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(match error {
                crate::config::ConfigError::Read { .. } => CHECK_UNREADABLE,
                _ => CHECK_ERRORS,
            });
        }
    };
    println!("configuration: OK");
    let mut warnings = 0;
    for warning in notified_components_unknown(&config).await {
        println!("WARN {warning}");
        warnings += 1;
    }
    if args.syntax_only {
        println!("files: not checked (--syntax-only)");
    } else if config.uses_dev_pki() && !DevPki::new(config.dev_pki_dir()).exists() {
        println!(
            "certificates: none configured; the development PKI will be generated in {} on \
             the first start",
            config.dev_pki_dir().display()
        );
    } else {
        let files = identity_files(&config);
        match crate::tls::ServerIdentity::load(&files, &identity_requirements(&config)) {
            Ok(identity) => {
                for warning in &identity.warnings {
                    println!("WARN {:<9} {}", warning.check, warning.reason);
                    warnings += 1;
                }
                println!("certificates: OK ({})", files.cert.display());
            }
            Err(error) => {
                eprintln!("error: certificates: {}", report(&error.into()));
                return Ok(CHECK_ERRORS);
            }
        }
    }
    Ok(if warnings == 0 { 0 } else { CHECK_WARNINGS })
}

/// How long `config check` waits for the store to answer.
const STORE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `xmpp.login_notify` and `xmpp.auth_via_component` entries that name no component of the
/// configuration nor of the store (when it exists). A warning, not an error: a component
/// may be added with `component add` after the configuration is written.
async fn notified_components_unknown(config: &Config) -> Vec<String> {
    let mut known: Vec<String> = config
        .components
        .iter()
        .map(|c| c.name.to_ascii_lowercase())
        .collect();
    // SQLite only when its file exists (a check never creates it); PostgreSQL when it
    // answers within a few seconds.
    let stored = config.store.backend == crate::config::StoreBackend::Postgres
        || config.store_path().is_file();
    if stored {
        let open = tokio::time::timeout(STORE_CHECK_TIMEOUT, crate::store::open(config));
        if let Ok(Ok((store, _))) = open.await {
            if let Ok(records) = store.components().await {
                known.extend(records.into_iter().map(|r| r.name.to_ascii_lowercase()));
            }
        }
    }
    let named = config
        .xmpp
        .login_notify
        .iter()
        .map(|n| ("xmpp.login_notify", n))
        .chain(
            config
                .xmpp
                .auth_via_component
                .iter()
                .map(|n| ("xmpp.auth_via_component", n)),
        );
    named
        .filter(|(_, name)| !known.contains(&name.to_ascii_lowercase()))
        .map(|(key, name)| {
            format!(
                "{key}: no component {name} in [[components]] or the store (add it with \
                 `bridgehead component add {name}`)"
            )
        })
        .collect()
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|source| {
        pki::PkiError::Read {
            path: path.to_owned(),
            source,
        }
        .into()
    })
}

fn read_first_line(
    args_file: Option<&Path>,
    from_stdin: bool,
    what: &str,
) -> anyhow::Result<String> {
    let line = if let Some(path) = args_file {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    } else if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("{what}: "))?;
        let again = rpassword::prompt_password(format!("{what} (again): "))?;
        if first != again {
            bail!("the two entries differ");
        }
        first
    } else {
        return Err(usage(format!(
            "give the {what} with --{}-file or --{}-stdin",
            what, what
        )));
    };
    if line.is_empty() {
        return Err(usage(format!("the {what} is empty")));
    }
    Ok(line)
}
