//! `bridgehead doctor`: the precall test of a deployment (see [`crate::doctor`]). Exit 0
//! all green, 1 amber, 2 red, 3 usage.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;

use super::usage;
use crate::doctor::{self, ComponentLogin, Options, Service, UserLogin};

/// `doctor`'s arguments.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The domain: the XMPP domain, where the SRV records are looked up.
    #[arg(long)]
    pub domain: String,
    /// Also check KIND=HOST:PORT (KIND: component, c2s, c2s-tls, xsi). Repeatable.
    #[arg(long = "target", value_name = "KIND=HOST:PORT", value_parser = parse_target)]
    pub targets: Vec<(Service, String, u16)>,
    /// Look up only these services' SRV records (component, c2s, c2s-tls, xsi).
    /// Repeatable. Default: all four.
    #[arg(long = "service", value_enum, value_name = "KIND")]
    pub services: Vec<Service>,
    /// Check only the --target list, without looking up SRV records.
    #[arg(long, requires = "targets", conflicts_with = "services")]
    pub no_srv: bool,
    /// Ask these name servers (IP:PORT) instead of the system's. Repeatable.
    #[arg(long = "dns", value_name = "IP:PORT")]
    pub name_servers: Vec<SocketAddr>,
    /// Trust bundle (PEM) the served chains must lead to. Default: the system's roots.
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// The component name for an XEP-0114 handshake.
    #[arg(long, requires = "secret_file")]
    pub component: Option<String>,
    /// The file holding that component's secret (first line).
    #[arg(long, requires = "component")]
    pub secret_file: Option<PathBuf>,
    /// An XSI user for the profile GET and the event channel.
    #[arg(long, requires = "password_file")]
    pub user: Option<String>,
    /// The file holding that user's password (first line).
    #[arg(long, requires = "user")]
    pub password_file: Option<PathBuf>,
    /// Heartbeats sent on the test channel.
    #[arg(long, default_value_t = 3)]
    pub heartbeats: u32,
    /// Milliseconds between them.
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_every_ms: u64,
    /// Milliseconds each step (connect, TLS, an answer) may take: the Webex app's 2 s rule.
    #[arg(long, default_value_t = 2000)]
    pub step_timeout_ms: u64,
    /// The cookie that names the node (Bridgehead's `[http] affinity_cookie`).
    #[arg(long, default_value = "bridgehead-node")]
    pub affinity_cookie: String,
    /// Amber when a certificate expires within this many days.
    #[arg(long, default_value_t = 30)]
    pub warn_days: u32,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_target(s: &str) -> Result<(Service, String, u16), String> {
    use clap::ValueEnum as _;
    let (kind, address) = s
        .split_once('=')
        .ok_or("expected KIND=HOST:PORT, e.g. xsi=xsp1.example.com:443")?;
    let service = Service::from_str(kind, true)
        .map_err(|_| format!("{kind}: the kinds are component, c2s, c2s-tls and xsi"))?;
    let (host, port) = address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse().ok()?)))
        .ok_or_else(|| format!("{address}: expected HOST:PORT"))?;
    Ok((service, host.to_owned(), port))
}

/// Runs the checks and prints the report; the exit code follows its verdict.
pub(super) async fn doctor_command(args: DoctorArgs) -> anyhow::Result<u8> {
    crate::config::check_domain(&args.domain).map_err(|e| usage(format!("--domain: {e}")))?;
    let discovery = if args.name_servers.is_empty() {
        crate::dns::Discovery::system()
    } else {
        crate::dns::Discovery::with_name_servers(&args.name_servers)
    }
    .map_err(|e| anyhow!(e))?;
    let trust = crate::pki::load_trust(args.trust.as_deref())?;
    let mut options = Options::new(&args.domain, discovery, trust);
    if args.no_srv {
        options.services.clear();
    } else if !args.services.is_empty() {
        options.services = args.services;
    }
    options.targets = args.targets;
    options.warn_days = i64::from(args.warn_days);
    options.step_timeout = Duration::from_millis(args.step_timeout_ms.max(1));
    options.heartbeats = args.heartbeats;
    options.heartbeat_every = Duration::from_millis(args.heartbeat_every_ms);
    options.affinity_cookie = args.affinity_cookie;
    options.target_timeout = options.step_timeout * 8
        + options.heartbeat_every * args.heartbeats
        + options.step_timeout * args.heartbeats;
    if let (Some(name), Some(file)) = (args.component, &args.secret_file) {
        let secret = crate::config::read_secret_file(file).map_err(usage)?;
        options.component = Some(ComponentLogin { name, secret });
    }
    if let (Some(user), Some(file)) = (args.user, &args.password_file) {
        let password = crate::config::read_secret_file(file).map_err(usage)?;
        options.user = Some(UserLogin { user, password });
    }
    let report = doctor::run(&options).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", doctor::text(&report));
    }
    Ok(report.exit_code())
}
