//! The commands that operate a running node through its admin API: `status`, `reload`,
//! `components|sessions|channels list`, `kick component|session|channel`.
//!
//! The API's address is the configuration's first `[admin] listen` address (or
//! `--admin-url`), its token the first line of `[admin] token_file` (or `--token-file`).
//! Lists print a table, or the API's JSON with `--json`.
//!
//! Exit codes: 0 done; 1 the node refused (no such session, a reload refused …);
//! 3 bad usage; 4 the admin API cannot be reached. `status` exits 0 when the served
//! certificate is green, 1 amber, 2 red (as `pki verify`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;

use super::ConfigArgs;

/// Exit code when the admin API cannot be reached.
pub(super) const EXIT_UNREACHABLE: u8 = 4;

/// Commands that talk to a running node.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// The node: version, uptime, listeners, certificate expiry, live counts.
    Status(AdminArgs),
    /// Reload the configuration and certificates (as SIGHUP does) and print what changed.
    Reload(AdminArgs),
    /// Live component connections.
    #[command(subcommand)]
    Components(ListCommand),
    /// Live client sessions (c2s and WebSocket).
    #[command(subcommand)]
    Sessions(ListCommand),
    /// Open XSI-Events channels.
    #[command(subcommand)]
    Channels(ListCommand),
    /// Disconnect a component or a client session, or end an event channel.
    #[command(subcommand)]
    Kick(KickCommand),
}

/// `list`.
#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// List them.
    List(AdminArgs),
}

/// What to kick.
#[derive(Debug, Subcommand)]
pub enum KickCommand {
    /// Every connection of a component (`policy-violation`).
    Component {
        /// The component's name.
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// A client session (full JID), or every session of an account (bare JID).
    Session {
        /// The JID.
        jid: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// An event channel (the client opens a new one).
    Channel {
        /// The channel id.
        id: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// Which node, and how to answer.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// The node's configuration (for the admin address and token).
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The admin API, e.g. `http://127.0.0.1:9090` (default: from the configuration).
    #[arg(long, env = "BRIDGEHEAD_ADMIN_URL")]
    pub admin_url: Option<String>,
    /// A file whose first line is the admin token (default: `[admin] token_file`).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn admin_command(command: AdminCommand) -> anyhow::Result<u8> {
    let (args, method, path) = match &command {
        AdminCommand::Status(args) => (args, "GET", "/api/node".to_owned()),
        AdminCommand::Reload(args) => (args, "POST", "/api/reload".to_owned()),
        AdminCommand::Components(ListCommand::List(args)) => {
            (args, "GET", "/api/components".into())
        }
        AdminCommand::Sessions(ListCommand::List(args)) => (args, "GET", "/api/sessions".into()),
        AdminCommand::Channels(ListCommand::List(args)) => (args, "GET", "/api/channels".into()),
        AdminCommand::Kick(KickCommand::Component { name, admin }) => (
            admin,
            "POST",
            format!("/api/components/{}/kick", escape(name)),
        ),
        AdminCommand::Kick(KickCommand::Session { jid, admin }) => {
            (admin, "POST", format!("/api/sessions/{}/kick", escape(jid)))
        }
        AdminCommand::Kick(KickCommand::Channel { id, admin }) => {
            (admin, "DELETE", format!("/api/channels/{}", escape(id)))
        }
    };
    let (ok, body) = match call(args, method, &path).await {
        Ok(answer) => answer,
        Err(error) => {
            eprintln!("error: {}", super::report(&error));
            return Ok(EXIT_UNREACHABLE);
        }
    };
    if !ok {
        let message = body["error"].as_str().unwrap_or("the node refused");
        eprintln!("error: {message}");
        return Ok(1);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        match &command {
            AdminCommand::Status(_) => print_status(&body),
            AdminCommand::Reload(_) => print_reload(&body),
            AdminCommand::Components(_) | AdminCommand::Sessions(_) => table(
                &body,
                &[
                    "name",
                    "transport",
                    "remote",
                    "since",
                    "stanzas_in",
                    "stanzas_out",
                    "queue_depth",
                    "sm",
                ],
            ),
            AdminCommand::Channels(_) => table(
                &body,
                &[
                    "owner",
                    "set",
                    "channel",
                    "since",
                    "heartbeat_age_secs",
                    "pending_acks",
                    "set_backlog",
                ],
            ),
            AdminCommand::Kick(_) => println!("{body}"),
        }
    }
    Ok(match (&command, body["certificate_status"].as_str()) {
        (AdminCommand::Status(_), Some("amber")) => 1,
        (AdminCommand::Status(_), Some("red")) => 2,
        _ => 0,
    })
}

fn escape(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Sends one request; `(answered 2xx, the JSON body)`.
async fn call(args: &AdminArgs, method: &str, path: &str) -> anyhow::Result<(bool, Value)> {
    let config = args.config.source().load(crate::config::Files::Skip)?;
    let base = match &args.admin_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let addr = config
                .admin
                .listen
                .addrs()
                .first()
                .copied()
                .ok_or_else(|| anyhow!("[admin] listen has no address"))?;
            let host = match addr.ip() {
                ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
                ip if ip.is_unspecified() => "[::1]".to_owned(),
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            };
            format!("http://{host}:{}", addr.port())
        }
    };
    let token = match args
        .token_file
        .as_ref()
        .or(config.admin.token_file.as_ref())
    {
        Some(file) => Some(crate::config::read_secret_file(file).map_err(|e| anyhow!(e))?),
        None => None,
    };
    let url = format!("{base}{path}");
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(&url)
        .header("accept", "application/json");
    if let Some(token) = &token {
        request = request.header("authorization", format!("Bearer {}", token.expose()));
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .with_context(|| format!("{url} is not a usable URL"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .map_err(|_| anyhow!("{url}: no answer within 30 s"))?
        .with_context(|| format!("cannot reach the admin API at {base} (is the node running?)"))?;
    let ok = response.status().is_success();
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .with_context(|| format!("{url}: the answer broke off"))?
        .to_bytes();
    let value = serde_json::from_slice(&body)
        .with_context(|| format!("{url} answered {status} without JSON"))?;
    Ok((ok, value))
}

/// The strings of a JSON array (none when it is not one).
fn texts(value: &Value) -> Vec<String> {
    value.as_array().into_iter().flatten().map(text).collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Prints an array of objects as aligned columns.
fn table(rows: &Value, columns: &[&str]) {
    let rows = rows.as_array().cloned().unwrap_or_default();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| text(&row[*c])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_uppercase()).collect());
    for row in cells {
        line(row);
    }
    if rows.is_empty() {
        println!("(none)");
    }
}

fn print_status(node: &Value) {
    println!(
        "bridgehead {} node {} ({})",
        text(&node["version"]),
        text(&node["node"]),
        text(&node["domain"])
    );
    println!(
        "uptime      {} s since {}",
        text(&node["uptime_secs"]),
        text(&node["started"])
    );
    let certificate = &node["certificate"];
    println!(
        "certificate {} ({} days left, until {}) {}",
        text(&node["certificate_status"]).to_uppercase(),
        text(&node["certificate_days_left"]),
        text(&certificate["not_after"]),
        text(&certificate["subject"]),
    );
    for listener in node["listeners"].as_array().into_iter().flatten() {
        let addrs = texts(&listener["addrs"]);
        println!(
            "listener    {:<10} {}",
            text(&listener["name"]),
            addrs.join(", ")
        );
    }
    println!(
        "live        {} component connection(s), {} session(s), {} channel(s), {} subscription(s)",
        text(&node["components"]),
        text(&node["sessions"]),
        text(&node["channels"]),
        text(&node["subscriptions"]),
    );
}

fn print_reload(report: &Value) {
    let changed = texts(&report["changed"]);
    println!(
        "reloaded: {}",
        if changed.is_empty() {
            "nothing changed".to_owned()
        } else {
            changed.join(", ")
        }
    );
    for name in report["components_removed"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "component {} is no longer configured: disconnected",
            text(name)
        );
    }
    let certificate = &report["certificate"];
    println!(
        "certificate {} until {}",
        text(&certificate["sha256"]),
        text(&certificate["not_after"])
    );
}
