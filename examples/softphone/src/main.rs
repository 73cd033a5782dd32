//! An example softphone on Bridgehead's XSI client library (`bridgehead::client`): the
//! part of a softphone that talks to the XSP. Run with (from the repository root, with a
//! default `cargo run --release -- serve` running in another terminal):
//!
//! ```sh
//! cargo run --manifest-path examples/softphone/Cargo.toml -- \
//!     --user alice@localhost --credentials data/demo-credentials.toml
//! ```
//!
//! What it does, in the order an app does it:
//!
//! 1. finds the XSPs: `--target HOST:PORT` (repeatable) when given, else the SRV records of
//!    `_xsi-client._tcp.<domain>` with `--domain` (priority, then weight; A/AAAA of the
//!    domain when there are none), else `localhost:8443`; every request then follows the
//!    library's failover rules and keeps the node's affinity cookie;
//! 2. keeps an event channel open in its channel set, with heartbeats, rebuilt in the same
//!    set after two failed heartbeats (the library's `run_channel`); every event is
//!    acknowledged and told once;
//! 3. subscribes the user to Do Not Disturb and Advanced Call for that set, renews at half
//!    the granted lifetime, and subscribes again when the XSP no longer knows the
//!    subscription or no XSP answered;
//! 4. prints one line whenever XSI-Actions, XSI-Events or authentication turns green or
//!    red, and one line per event;
//! 5. reads commands on stdin (`help` lists them): DND, calls, status, quit.
//!
//! Its output lines are stable, one fact each (tests read them):
//!
//! ```text
//! status actions=green events=green authentication=green target=localhost:8443
//! channel opened CHANNEL-ID
//! channel rebuilding: REASON
//! subscribed Do Not Disturb, Advanced Call: SUBSCRIPTION-ID for 3600 s
//! event SEQUENCE KIND [call=CALL-ID]
//! dnd on | dnd off
//! call CALL-ID
//! error: WHAT WENT WRONG
//! ```

mod commands;
mod subscription;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bridgehead::client::{
    basic_authorization, ChannelOptions, HttpsTransport, Status, Target, Timings, XsiClient,
};
use clap::Parser;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use commands::{Flow, Phone};

/// The client this app embeds.
pub type Client = XsiClient<HttpsTransport>;

#[derive(Parser, Debug)]
#[command(about = "Example Bridgehead softphone on the XSI client library")]
struct Args {
    /// The user to log in as, e.g. alice@localhost.
    #[arg(long)]
    user: String,
    /// The user's password.
    #[arg(long, env = "SOFTPHONE_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Read the password of `--user` from a credentials file such as
    /// data/demo-credentials.toml.
    #[arg(long, conflicts_with = "password")]
    credentials: Option<PathBuf>,
    /// An XSP to use, in the order given (repeatable); instead of discovery.
    #[arg(long = "target", value_name = "HOST:PORT")]
    targets: Vec<String>,
    /// Discover the XSPs by the SRV records of `_xsi-client._tcp.<DOMAIN>`.
    #[arg(long, conflicts_with = "targets")]
    domain: Option<String>,
    /// Ask these DNS servers instead of the system's (repeatable).
    #[arg(long = "dns-server")]
    dns_servers: Vec<SocketAddr>,
    /// The CA certificate(s) to trust for the XSPs' certificates.
    #[arg(long, default_value = "data/pki/ca.crt")]
    ca: PathBuf,
    /// Seconds between heartbeats (fractions allowed).
    #[arg(long, default_value_t = 15.0)]
    heartbeat: f64,
    /// Seconds to wait for an answer before moving on to the next XSP.
    #[arg(long, default_value_t = 2.0)]
    attempt_timeout: f64,
    /// Seconds a failed XSP stays blocked.
    #[arg(long, default_value_t = 300.0)]
    block_for: f64,
    /// The channel set (default: softphone-USER).
    #[arg(long)]
    channel_set: Option<String>,
    /// The channel and subscription lifetime asked for, in seconds.
    #[arg(long, default_value_t = 3600)]
    expires: u64,
}

#[derive(serde::Deserialize)]
struct CredentialsFile {
    #[serde(default)]
    users: Vec<UserCredentials>,
}

#[derive(serde::Deserialize)]
struct UserCredentials {
    id: String,
    password: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("softphone: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let authorization = basic_authorization(&args.user, &password(&args)?);
    let client = Arc::new(client(&args).await?);
    let mut options = ChannelOptions::new(
        &args
            .channel_set
            .clone()
            .unwrap_or_else(|| format!("softphone-{}", args.user)),
        &authorization,
    );
    options.heartbeat_every = seconds(args.heartbeat, "--heartbeat")?;
    options.expires_secs = args.expires;
    let targets: Vec<String> = client.targets().iter().map(Target::to_string).collect();
    println!("targets {}", targets.join(", "));

    let stop = CancellationToken::new();
    let (notices_sender, mut notices) = mpsc::channel(64);
    let channel = tokio::spawn({
        let (client, options, stop) = (client.clone(), options.clone(), stop.clone());
        async move { client.run_channel(options, notices_sender, stop).await }
    });
    let subscriptions = tokio::spawn(subscription::keep(
        client.clone(),
        args.user.clone(),
        options,
        stop.clone(),
    ));

    let mut status = client.watch_status();
    print_status(&status.borrow_and_update(), &client);
    let mut phone = Phone::new(client.clone(), args.user, authorization);
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => break,
            changed = status.changed() => {
                if changed.is_err() {
                    break;
                }
                print_status(&status.borrow_and_update(), &client);
            }
            notice = notices.recv() => match notice {
                Some(notice) => phone.notice(notice),
                None => break,
            },
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    if phone.command(&line).await == Flow::Quit {
                        break;
                    }
                }
                // End of input (Ctrl-D) ends the app, as any shell does.
                Ok(None) | Err(_) => break,
            },
        }
    }
    stop.cancel();
    let _ = subscriptions.await;
    let _ = channel.await;
    Ok(())
}

fn print_status(status: &Status, client: &Client) {
    println!(
        "status actions={} events={} authentication={} target={}",
        status.actions,
        status.events,
        status.authentication,
        client.selected()
    );
}

fn seconds(value: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{flag} takes a positive number of seconds"))
}

fn password(args: &Args) -> Result<String, String> {
    if let Some(password) = &args.password {
        return Ok(password.clone());
    }
    let path = args
        .credentials
        .as_ref()
        .ok_or("give --password (or SOFTPHONE_PASSWORD) or --credentials FILE")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: CredentialsFile =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    file.users
        .into_iter()
        .find(|u| u.id == args.user)
        .map(|u| u.password)
        .ok_or_else(|| format!("{} has no password for {}", path.display(), args.user))
}

/// The client over `--target`s, discovered ones, or `localhost:8443`, trusting `--ca`.
async fn client(args: &Args) -> Result<Client, String> {
    let roots: Vec<_> = bridgehead::pki::input::read_certificates(&args.ca)
        .map_err(|e| format!("{}: {e}", args.ca.display()))?
        .into_iter()
        .map(|c| c.der)
        .collect();
    let tls = bridgehead::tls::client_config(&roots).map_err(|e| e.to_string())?;
    let transport = HttpsTransport::new(tls);
    let timings = Timings {
        attempt_timeout: seconds(args.attempt_timeout, "--attempt-timeout")?,
        block_for: seconds(args.block_for, "--block-for")?,
        ..Timings::default()
    };
    if let Some(domain) = &args.domain {
        let discovery = if args.dns_servers.is_empty() {
            bridgehead::dns::Discovery::system()
        } else {
            bridgehead::dns::Discovery::with_name_servers(&args.dns_servers)
        }
        .map_err(|e| e.to_string())?;
        return XsiClient::discover(&discovery, domain, transport, timings)
            .await
            .map_err(|e| e.to_string());
    }
    let mut targets = Vec::new();
    for target in &args.targets {
        let (host, port) = target
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host.trim_matches(['[', ']']), port.parse().ok()?)))
            .ok_or_else(|| format!("--target {target}: give HOST:PORT"))?;
        targets.push(Target::new(host, port));
    }
    if targets.is_empty() {
        targets.push(Target::new("localhost", 8443));
    }
    Ok(XsiClient::new(targets, transport, timings))
}
