//! The command line: `serve`, `check-config`, `pki verify|inspect|issue`,
//! `user add|passwd|list|remove`, `component add|list|remove`.
//!
//! Exit codes: `pki verify` uses 0 (all OK), 1 (warnings only), 2 (any FAIL) and 3 (usage
//! error or unreadable input). The other commands use 0 for success, 1 for failure and 3
//! for bad usage or unreadable input; `main` maps clap's own usage errors to 3 as well.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use time::OffsetDateTime;

use crate::config::{Config, OnConflict};
use crate::credentials::PasswordVerifiers;
use crate::embedded::{random_secret, DevPki};
use crate::pki::issue::{IssuerMaterial, KeyType, Kind, Request};
use crate::pki::{self, Profile, VerifyInput};
use crate::server::{identity_files, identity_requirements, Server};
use crate::shutdown::{self, Shutdown};
use crate::store::{ComponentRecord, Enterprise, Group, Role, SqliteStore, Store, User};

/// Exit code for usage errors and unreadable input.
pub const EXIT_USAGE: u8 = 3;

/// Bridgehead: an edge server for business telephony — XMPP for call bridges and clients,
/// a BroadWorks-style XSP edge, and a PKI toolkit.
#[derive(Debug, Parser)]
#[command(name = "bridgehead", version, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `bridgehead=debug`.
    #[arg(long, global = true, env = "BRIDGEHEAD_LOG", default_value = "info")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (embedded defaults when no --config is given).
    Serve(ConfigArgs),
    /// Load and validate the configuration and check its certificates; nothing else.
    CheckConfig(ConfigArgs),
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

impl ConfigArgs {
    /// Loads and validates the configuration.
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::embedded(),
        };
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = dir.clone();
        }
        config.validate()?;
        Ok(config)
    }

    async fn open_store(&self) -> anyhow::Result<(Config, SqliteStore)> {
        let config = self.load()?;
        let store = SqliteStore::open(&config.store_path())?;
        Ok((config, store))
    }
}

/// `device` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Add a device to a user.
    Add {
        /// The user id, `user@domain`.
        user: String,
        /// Device name, unique per user (e.g. alice-pc).
        name: String,
        /// Device type.
        #[arg(long = "type", default_value = "Business Communicator - PC")]
        device_type: String,
        /// Line/port (SIP address of record). Default: `<name>@<user's domain>`.
        #[arg(long)]
        line_port: Option<String>,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List a user's devices.
    List {
        /// The user id.
        user: String,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Remove a device from a user.
    Remove {
        /// The user id.
        user: String,
        /// Device name.
        name: String,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// `pki` subcommands.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Check a key, a certificate chain and a trust bundle, one line per check.
    ///
    /// Exit codes: 0 all OK, 1 warnings only, 2 any FAIL, 3 usage error or unreadable input.
    Verify(VerifyArgs),
    /// Show every certificate in the given files.
    Inspect(InspectArgs),
    /// Issue development and test certificates.
    #[command(subcommand)]
    Issue(IssueCommand),
}

/// `pki verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The certificate: a leaf, or a full chain in any order.
    #[arg(long)]
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1, SEC1, or encrypted PKCS#8).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// File with the password of an encrypted key (first line).
    #[arg(long)]
    pub key_pass_file: Option<PathBuf>,
    /// Extra intermediate certificates, any order, extras allowed.
    #[arg(long)]
    pub intermediates: Option<PathBuf>,
    /// Trust bundle (PEM). Default: the system's trusted roots.
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// Validation time, RFC 3339 (e.g. 2027-01-01T00:00:00Z). Default: now.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<OffsetDateTime>,
    /// A name (DNS or IP) that a subjectAltName must cover. Repeatable.
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// What the certificate is for.
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// The XMPP domain (profile xmpp-server).
    #[arg(long)]
    pub xmpp_domain: Option<String>,
    /// The host FQDN (profile xmpp-server).
    #[arg(long)]
    pub fqdn: Option<String>,
    /// An allowed CTI client CN (profile cti-client). Repeatable.
    #[arg(long = "cti-cn")]
    pub cti_cns: Vec<String>,
    /// Warn when a certificate expires within this many days.
    #[arg(long, default_value_t = 30)]
    pub warn_days: u32,
    /// Write the chain in serving order (leaf, then each issuer, no root) to this file.
    #[arg(long, value_name = "OUT")]
    pub fix_order: Option<PathBuf>,
    /// Overwrite the --fix-order file if it exists.
    #[arg(long)]
    pub force: bool,
    /// One JSON object with every check instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `pki inspect` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// PEM files holding certificates.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Days left are counted from this time (RFC 3339). Default: now.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<OffsetDateTime>,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options every `pki issue` kind shares.
#[derive(Debug, Args)]
pub struct IssueCommon {
    /// Output prefix: writes PREFIX.key (mode 0600), PREFIX.crt and PREFIX-chain.pem.
    #[arg(long)]
    pub out: PathBuf,
    /// The issuing CA's certificate (its chain may follow it in the file).
    #[arg(long, requires = "issuer_key")]
    pub issuer_cert: Option<PathBuf>,
    /// The issuing CA's private key.
    #[arg(long, requires = "issuer_cert")]
    pub issuer_key: Option<PathBuf>,
    /// Key algorithm.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    pub key_type: KeyType,
    /// Validity in days.
    #[arg(long)]
    pub days: Option<u32>,
    /// Start of validity, RFC 3339. Default: now.
    #[arg(long, value_parser = parse_time)]
    pub not_before: Option<OffsetDateTime>,
    /// Organisation in the subject.
    #[arg(long, default_value = "Bridgehead")]
    pub org: String,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// `pki issue` kinds.
#[derive(Debug, Subcommand)]
pub enum IssueCommand {
    /// A CA: self-signed root, or an intermediate with --issuer-cert/--issuer-key.
    Ca {
        /// Subject CN.
        #[arg(long)]
        cn: String,
        /// pathLenConstraint (intermediates allowed below this CA).
        #[arg(long)]
        path_len: Option<u8>,
        /// Options shared by every kind.
        #[command(flatten)]
        common: IssueCommon,
    },
    /// A TLS server certificate (serverAuth) for the given names.
    Server {
        /// A DNS name or IP address for the SANs; the first is also the CN. Repeatable.
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Add an id-on-xmppAddr otherName for this XMPP domain. Repeatable.
        #[arg(long = "xmpp-addr")]
        xmpp_addrs: Vec<String>,
        /// Options shared by every kind.
        #[command(flatten)]
        common: IssueCommon,
    },
    /// A BroadWorks CTI client certificate: BroadWorks OID + clientAuth, CN, no SAN.
    CtiClient {
        /// The application identity (CN), e.g. bwcticlient.example.com.
        #[arg(long)]
        cn: String,
        /// Options shared by every kind.
        #[command(flatten)]
        common: IssueCommon,
    },
}

/// How a password is given.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of this file.
    #[arg(long, conflicts_with = "password_stdin")]
    pub password_file: Option<PathBuf>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (its enterprise and group are created if missing).
    Add {
        /// The user id, `user@domain`.
        id: String,
        /// First name.
        #[arg(long, default_value = "")]
        first_name: String,
        /// Last name.
        #[arg(long, default_value = "")]
        last_name: String,
        /// Phone number.
        #[arg(long)]
        number: Option<String>,
        /// Extension.
        #[arg(long)]
        extension: Option<String>,
        /// Enterprise id.
        #[arg(long, default_value = "default")]
        enterprise: String,
        /// Group id within the enterprise.
        #[arg(long, default_value = "default")]
        group: String,
        /// Role.
        #[arg(long, value_enum, default_value_t = Role::User)]
        role: Role,
        /// How the password is given.
        #[command(flatten)]
        password: PasswordArgs,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Set a user's password.
    Passwd {
        /// The user id.
        id: String,
        /// How the password is given.
        #[command(flatten)]
        password: PasswordArgs,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List users.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Remove a user.
    Remove {
        /// The user id.
        id: String,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// `component` subcommands.
#[derive(Debug, Subcommand)]
pub enum ComponentCommand {
    /// Add a component; without a secret option a random secret is generated and printed.
    Add {
        /// The component's domain, e.g. bridge1.example.com.
        name: String,
        /// Read the secret from the first line of this file.
        #[arg(long, conflicts_with = "secret_stdin")]
        secret_file: Option<PathBuf>,
        /// Read the secret from the first line of standard input.
        #[arg(long)]
        secret_stdin: bool,
        /// Live connections allowed under this name.
        #[arg(long, default_value_t = 1)]
        max_connections: u32,
        /// Policy when a second connection arrives.
        #[arg(long, value_enum, default_value_t = OnConflict::Replace)]
        on_conflict: OnConflict,
        /// Seconds to hold stanzas for the component after it drops.
        #[arg(long, default_value_t = 0)]
        hold_secs: u64,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List components from the config file and the store.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Remove a component from the store.
    Remove {
        /// The component's domain.
        name: String,
        /// Which store.
        #[command(flatten)]
        config: ConfigArgs,
    },
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time such as 2027-01-01T00:00:00Z ({e})"))
}

/// An error that maps to a particular exit code.
#[derive(Debug)]
pub struct Exit(pub u8, pub anyhow::Error);

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::CheckConfig(args) => check_config(args),
        Command::Pki(command) => pki_command(command),
        Command::User(command) => user_command(command).await,
        Command::Component(command) => component_command(command).await,
        Command::Device(command) => device_command(command).await,
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let code = match error.downcast_ref::<UsageError>() {
                Some(_) => EXIT_USAGE,
                None if error.downcast_ref::<pki::PkiError>().is_some() => EXIT_USAGE,
                None => 1,
            };
            eprintln!("error: {error:#}");
            ExitCode::from(code)
        }
    }
}

/// Bad usage that clap cannot catch.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

async fn serve(args: ConfigArgs) -> anyhow::Result<u8> {
    let config = args.load()?;
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let bound = Server::bind(config).await?;
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown::signal().await;
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

fn check_config(args: ConfigArgs) -> anyhow::Result<u8> {
    let config = args.load()?;
    println!("configuration: OK");
    if config.uses_dev_pki() && !DevPki::new(config.dev_pki_dir()).exists() {
        println!(
            "certificates: none configured; the development PKI will be generated in {} on \
             the first start",
            config.dev_pki_dir().display()
        );
        return Ok(0);
    }
    let files = identity_files(&config);
    let identity = crate::tls::ServerIdentity::load(&files, &identity_requirements(&config))?;
    for warning in &identity.warnings {
        println!("WARN {:<9} {}", warning.check, warning.reason);
    }
    println!("certificates: OK ({})", files.cert.display());
    Ok(if identity.warnings.is_empty() { 0 } else { 1 })
}

fn pki_command(command: PkiCommand) -> anyhow::Result<u8> {
    match command {
        PkiCommand::Verify(args) => pki_verify(args),
        PkiCommand::Inspect(args) => pki_inspect(args),
        PkiCommand::Issue(command) => pki_issue(command),
    }
}

fn pki_verify(args: VerifyArgs) -> anyhow::Result<u8> {
    match args.profile {
        Some(Profile::XmppServer) if args.xmpp_domain.is_none() || args.fqdn.is_none() => {
            return Err(usage(
                "--profile xmpp-server needs --xmpp-domain and --fqdn (the certificate must name both)",
            ))
        }
        Some(Profile::XsiServer) if args.names.is_empty() => {
            return Err(usage("--profile xsi-server needs at least one --name"))
        }
        _ => {}
    }
    let password = args
        .key_pass_file
        .as_deref()
        .map(pki::input::read_password)
        .transpose()?;
    let input = VerifyInput {
        certificates: pki::input::read_certificates(&args.cert)?,
        key: args
            .key
            .as_deref()
            .map(|k| pki::input::read_private_key(k, password.as_deref()))
            .transpose()?,
        intermediates: match &args.intermediates {
            Some(path) => pki::input::read_certificates(path)?,
            None => Vec::new(),
        },
        trust: pki::load_trust(args.trust.as_deref())?,
        at: args.at.unwrap_or_else(OffsetDateTime::now_utc),
        names: args.names,
        profile: args.profile,
        xmpp_domain: args.xmpp_domain,
        fqdn: args.fqdn,
        cti_allowed_cns: args.cti_cns,
        warn_days: i64::from(args.warn_days),
    };
    let mut report = pki::verify(&input);
    if let Some(out) = &args.fix_order {
        let complete = matches!(report.path_end, pki::PathEnd::Anchor);
        pki::write_chain(out, &report.served_chain, args.force)?;
        let (status, note) = if complete {
            (pki::Status::Ok, String::new())
        } else {
            (
                pki::Status::Warn,
                "; the chain is incomplete, add the missing issuer".to_owned(),
            )
        };
        report.push(
            "fix-order",
            status,
            format!(
                "wrote {} certificate(s) to {} in serving order{note}",
                report.served_chain.len(),
                out.display()
            ),
        );
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&pki::report::json(&report))?
        );
    } else {
        print!("{}", pki::report::text(&report));
    }
    Ok(report.exit_code())
}

fn pki_inspect(args: InspectArgs) -> anyhow::Result<u8> {
    let now = args.at.unwrap_or_else(OffsetDateTime::now_utc);
    let mut all = Vec::new();
    for file in &args.files {
        all.extend(pki::input::read_certificates(file)?);
    }
    if args.json {
        let described: Vec<_> = all.iter().map(|c| pki::inspect::describe(c, now)).collect();
        println!("{}", serde_json::to_string_pretty(&described)?);
    } else {
        let texts: Vec<String> = all.iter().map(|c| pki::inspect::text(c, now)).collect();
        print!("{}", texts.join("\n"));
    }
    Ok(0)
}

fn pki_issue(command: IssueCommand) -> anyhow::Result<u8> {
    let (kind, common, profile) = match command {
        IssueCommand::Ca {
            cn,
            path_len,
            common,
        } => (
            Kind::Ca {
                common_name: cn,
                path_len,
            },
            common,
            None,
        ),
        IssueCommand::Server {
            names,
            xmpp_addrs,
            common,
        } => (Kind::Server { names, xmpp_addrs }, common, Some("server")),
        IssueCommand::CtiClient { cn, common } => (
            Kind::CtiClient { common_name: cn },
            common,
            Some("cti-client"),
        ),
    };
    let issuer = match (&common.issuer_cert, &common.issuer_key) {
        (Some(cert), Some(key)) => Some(IssuerMaterial {
            cert_pem: read_text(cert)?,
            key_pem: read_text(key)?,
        }),
        _ if profile.is_some() => {
            return Err(usage(
                "a leaf certificate needs --issuer-cert and --issuer-key",
            ))
        }
        _ => None,
    };
    let default_days = if matches!(kind, Kind::Ca { .. }) {
        3650
    } else {
        365
    };
    let request = Request {
        kind,
        key_type: common.key_type,
        not_before: common
            .not_before
            .unwrap_or_else(|| OffsetDateTime::now_utc() - time::Duration::minutes(5)),
        days: common.days.unwrap_or(default_days),
        organization: common.org,
        issuer,
    };
    let issued = pki::issue::issue(&request)?;
    let paths = pki::issue::write_issued(&common.out, &issued, common.force)?;
    for path in &paths {
        println!("wrote {}", path.display());
    }
    if let Some(profile) = profile {
        println!(
            "check it with: bridgehead pki verify --cert {} --key {} --trust <root CA> --profile {profile}",
            paths[2].display(),
            paths[0].display()
        );
    }
    Ok(0)
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

#[derive(Debug, Serialize)]
struct UserRow<'a> {
    id: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    number: Option<&'a str>,
    extension: Option<&'a str>,
    enterprise: &'a str,
    group: &'a str,
    role: Role,
}

async fn user_command(command: UserCommand) -> anyhow::Result<u8> {
    match command {
        UserCommand::Add {
            id,
            first_name,
            last_name,
            number,
            extension,
            enterprise,
            group,
            role,
            password,
            config,
        } => {
            let (config, store) = config.open_store().await?;
            check_user_id(&id, &config.server.domain)?;
            if store.user(&id).await?.is_some() {
                bail!("user {id} already exists");
            }
            let secret = read_first_line(
                password.password_file.as_deref(),
                password.password_stdin,
                "password",
            )?;
            let verifiers = PasswordVerifiers::new(&secret, config.store.scram_iterations)?;
            if !store
                .enterprises()
                .await?
                .iter()
                .any(|e| e.id == enterprise)
            {
                store
                    .put_enterprise(&Enterprise {
                        id: enterprise.clone(),
                        name: enterprise.clone(),
                    })
                    .await?;
            }
            if !store
                .groups()
                .await?
                .iter()
                .any(|g| g.id == group && g.enterprise_id == enterprise)
            {
                store
                    .put_group(&Group {
                        id: group.clone(),
                        enterprise_id: enterprise.clone(),
                        name: group.clone(),
                    })
                    .await?;
            }
            store
                .add_user(&User {
                    id: id.clone(),
                    first_name,
                    last_name,
                    number,
                    extension,
                    enterprise_id: enterprise,
                    group_id: group,
                    role,
                    verifiers,
                })
                .await?;
            println!("added user {id}");
            Ok(0)
        }
        UserCommand::Passwd {
            id,
            password,
            config,
        } => {
            let (config, store) = config.open_store().await?;
            if store.user(&id).await?.is_none() {
                bail!("no user {id}");
            }
            let secret = read_first_line(
                password.password_file.as_deref(),
                password.password_stdin,
                "password",
            )?;
            let verifiers = PasswordVerifiers::new(&secret, config.store.scram_iterations)?;
            store.set_password(&id, &verifiers).await?;
            println!("password of {id} changed");
            Ok(0)
        }
        UserCommand::List { json, config } => {
            let (_, store) = config.open_store().await?;
            let users = store.users().await?;
            let rows: Vec<UserRow<'_>> = users
                .iter()
                .map(|u| UserRow {
                    id: &u.id,
                    first_name: &u.first_name,
                    last_name: &u.last_name,
                    number: u.number.as_deref(),
                    extension: u.extension.as_deref(),
                    enterprise: &u.enterprise_id,
                    group: &u.group_id,
                    role: u.role,
                })
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "{:<32} {:<24} {:<8} {:<24} ROLE",
                    "ID", "NAME", "EXT", "GROUP"
                )?;
                for r in rows {
                    writeln!(
                        out,
                        "{:<32} {:<24} {:<8} {:<24} {}",
                        r.id,
                        format!("{} {}", r.first_name, r.last_name).trim(),
                        r.extension.unwrap_or("-"),
                        format!("{}/{}", r.enterprise, r.group),
                        r.role
                    )?;
                }
            }
            Ok(0)
        }
        UserCommand::Remove { id, config } => {
            let (_, store) = config.open_store().await?;
            if !store.remove_user(&id).await? {
                bail!("no user {id}");
            }
            println!("removed user {id}");
            Ok(0)
        }
    }
}

fn check_user_id(id: &str, default_domain: &str) -> anyhow::Result<()> {
    let Some((local, domain)) = id.split_once('@') else {
        return Err(usage(format!(
            "a user id is user@domain (for example {id}@{default_domain})"
        )));
    };
    if local.is_empty() || local.contains(['/', ' ', '"', '&', '\'', ':', '<', '>', '@']) {
        return Err(usage(format!("\"{local}\" is not a valid user name")));
    }
    crate::config::check_domain(domain).map_err(|why| usage(format!("domain of {id}: {why}")))
}

#[derive(Debug, Serialize)]
struct ComponentRow<'a> {
    name: &'a str,
    source: &'static str,
    max_connections: u32,
    on_conflict: OnConflict,
    hold_secs: u64,
}

async fn device_command(command: DeviceCommand) -> anyhow::Result<u8> {
    match command {
        DeviceCommand::Add {
            user,
            name,
            device_type,
            line_port,
            config,
        } => {
            let (_, store) = config.open_store().await?;
            let domain = user.rsplit_once('@').map_or("", |(_, d)| d);
            let line_port = line_port.unwrap_or_else(|| format!("{name}@{domain}"));
            store
                .add_device(&crate::store::Device {
                    user_id: user.clone(),
                    name: name.clone(),
                    device_type,
                    line_port,
                })
                .await?;
            println!("added device {name} to {user}");
            Ok(0)
        }
        DeviceCommand::List { user, config } => {
            let (_, store) = config.open_store().await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{:<24} {:<32} LINE/PORT", "NAME", "TYPE")?;
            for d in store.devices(&user).await? {
                writeln!(out, "{:<24} {:<32} {}", d.name, d.device_type, d.line_port)?;
            }
            Ok(0)
        }
        DeviceCommand::Remove { user, name, config } => {
            let (_, store) = config.open_store().await?;
            if !store.remove_device(&user, &name).await? {
                bail!("{user} has no device {name}");
            }
            println!("removed device {name} from {user}");
            Ok(0)
        }
    }
}

async fn component_command(command: ComponentCommand) -> anyhow::Result<u8> {
    match command {
        ComponentCommand::Add {
            name,
            secret_file,
            secret_stdin,
            max_connections,
            on_conflict,
            hold_secs,
            config,
        } => {
            let (config, store) = config.open_store().await?;
            crate::config::check_domain(&name)
                .map_err(|why| usage(format!("component name: {why}")))?;
            if config
                .components
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&name))
            {
                bail!("component {name} is declared in the configuration file; change it there");
            }
            if on_conflict == OnConflict::Balance && max_connections < 2 {
                return Err(usage(
                    "--on-conflict balance needs --max-connections 2 or more",
                ));
            }
            let generated = secret_file.is_none() && !secret_stdin;
            let secret = if generated {
                random_secret()
            } else {
                read_first_line(secret_file.as_deref(), secret_stdin, "secret")?
            };
            store
                .add_component(&ComponentRecord {
                    name: name.clone(),
                    secret: secret.clone(),
                    max_connections,
                    on_conflict,
                    hold_secs,
                })
                .await?;
            println!("added component {name}");
            if generated {
                println!("secret: {secret}");
            }
            Ok(0)
        }
        ComponentCommand::List { json, config } => {
            let (config, store) = config.open_store().await?;
            let stored = store.components().await?;
            let mut rows: Vec<ComponentRow<'_>> = config
                .components
                .iter()
                .map(|c| ComponentRow {
                    name: &c.name,
                    source: "config",
                    max_connections: c.max_connections,
                    on_conflict: c.on_conflict,
                    hold_secs: c.hold_secs,
                })
                .collect();
            rows.extend(stored.iter().map(|c| ComponentRow {
                name: &c.name,
                source: "store",
                max_connections: c.max_connections,
                on_conflict: c.on_conflict,
                hold_secs: c.hold_secs,
            }));
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "{:<40} {:<7} {:>5} {:<8} HOLD",
                    "NAME", "SOURCE", "CONNS", "CONFLICT"
                )?;
                for r in rows {
                    writeln!(
                        out,
                        "{:<40} {:<7} {:>5} {:<8} {}s",
                        r.name,
                        r.source,
                        r.max_connections,
                        r.on_conflict.as_str(),
                        r.hold_secs
                    )?;
                }
            }
            Ok(0)
        }
        ComponentCommand::Remove { name, config } => {
            let (config, store) = config.open_store().await?;
            if !store.remove_component(&name).await? {
                if config
                    .components
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(&name))
                {
                    return Err(anyhow!(
                        "component {name} is declared in the configuration file; remove it there"
                    ));
                }
                bail!("no component {name}");
            }
            println!("removed component {name}");
            Ok(0)
        }
    }
}
