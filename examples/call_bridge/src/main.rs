//! An example call bridge for Bridgehead: a XEP-0114 component on tokio-xmpp's
//! `Component`, over direct TLS. Run with (from the repository root, with a default
//! `cargo run --release -- serve` running in another terminal):
//!
//! ```sh
//! cargo run --manifest-path examples/call_bridge/Cargo.toml -- \
//!     --name bridge.localhost --credentials data/demo-credentials.toml --ca data/pki/ca.crt
//! ```
//!
//! What it does, in the order a real bridge does it (see `docs/ARCHITECTURE.md`):
//!
//! 1. finds the XMPP server: `--server HOST:PORT` when given, else the SRV records of
//!    `_xmpp-component._tcp.<domain>` in RFC 2782 order (Bridgehead's own `dns` module),
//!    else `<domain>:5223`;
//! 2. connects with TLS from the first byte, checking the server certificate against `--ca`
//!    for the XMPP domain (not the SRV target: the certificate names the domain);
//! 3. opens a `jabber:component:accept` stream to its name and proves its secret with the
//!    XEP-0114 handshake (tokio-xmpp does this part);
//! 4. serves: disco#info (a `gateway/sip` identity and the Rayo feature), XEP-0199 pings,
//!    Rayo call control (`rayo`: calls between Bridgehead users are joined here, every
//!    other call goes over SIP, `sip`), and echoes every chat or normal message back to its
//!    sender; other requests get `service-unavailable`;
//! 5. when the connection drops, ends its calls and reconnects with a capped exponential
//!    back-off.

mod connect;
mod rayo;
mod sip;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::disco::{DiscoInfoQuery, DiscoInfoResult, Identity};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::{Message, MessageType};
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Component, Stanza};

use connect::BridgeConnector;
use sip::{Sip, SipEvent};

#[derive(Parser, Debug)]
#[command(about = "Example Bridgehead call bridge (XEP-0114 component over direct TLS)")]
struct Args {
    /// The component name registered with Bridgehead, e.g. bridge.localhost.
    #[arg(long)]
    name: String,
    /// The component secret.
    #[arg(long, env = "BRIDGE_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Read the secret of `--name` from a credentials file such as
    /// data/demo-credentials.toml.
    #[arg(long, conflicts_with = "secret")]
    credentials: Option<PathBuf>,
    /// The XMPP domain: checked against the server certificate and used for the SRV
    /// lookup. Default: the part of --name after the first dot.
    #[arg(long)]
    domain: Option<String>,
    /// Connect here instead of looking up SRV records.
    #[arg(long)]
    server: Option<String>,
    /// Ask these DNS servers instead of the system's (repeatable).
    #[arg(long = "dns-server")]
    dns_servers: Vec<SocketAddr>,
    /// The CA certificate(s) to trust for the server certificate.
    #[arg(long, default_value = "data/pki/ca.crt")]
    ca: PathBuf,
    /// Stop after this many connections have ended (default: reconnect forever).
    #[arg(long)]
    max_sessions: Option<u32>,
    /// Listen for SIP (UDP) here: incoming INVITEs become calls for Bridgehead users.
    /// Without it (and --sip-peer) the bridge joins calls between Bridgehead users only.
    #[arg(long)]
    sip_listen: Option<SocketAddr>,
    /// Send outgoing calls (to numbers and SIP addresses that are not Bridgehead users)
    /// to this SIP peer (UDP), e.g. a SIP trunk or PBX.
    #[arg(long)]
    sip_peer: Option<SocketAddr>,
}

/// What the bridge answers to one stanza, if anything.
fn answer(me: &Jid, stanza: Stanza) -> Option<Stanza> {
    match stanza {
        Stanza::Iq(Iq::Get {
            from: Some(from),
            id,
            payload,
            ..
        }) => {
            let reply = if DiscoInfoQuery::try_from(payload.clone()).is_ok() {
                let info = DiscoInfoResult {
                    node: None,
                    identities: vec![Identity::new(
                        "gateway",
                        "sip",
                        "en",
                        "Bridgehead example call bridge",
                    )],
                    features: [ns::DISCO_INFO, ns::PING, rayo::RAYO]
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    extensions: Vec::new(),
                };
                Iq::from_result(id, Some(info))
            } else if Ping::try_from(payload).is_ok() {
                Iq::from_result(id, None::<DiscoInfoResult>)
            } else {
                unavailable(id)
            };
            Some(Stanza::Iq(reply.with_to(from).with_from(me.clone())))
        }
        Stanza::Iq(Iq::Set {
            from: Some(from),
            id,
            ..
        }) => Some(Stanza::Iq(
            unavailable(id).with_to(from).with_from(me.clone()),
        )),
        Stanza::Message(message)
            if matches!(message.type_, MessageType::Chat | MessageType::Normal) =>
        {
            // Clients tag bodies with a language (slixmpp sends `xml:lang='en'` on every
            // message): the best body is echoed in its own language, whatever it is.
            let (lang, body) = message.get_best_body_cloned(Vec::new())?;
            for ignored in message.bodies.keys().filter(|other| **other != lang) {
                tracing::debug!(lang = %ignored, "a body in another language is not echoed");
            }
            let from = message.from?;
            let mut echo = Message::new(Some(from));
            echo.type_ = message.type_;
            echo.id = message.id;
            echo.from = message.to.or_else(|| Some(me.clone()));
            echo.bodies.insert(lang, body);
            Some(Stanza::Message(echo))
        }
        _ => None,
    }
}

fn unavailable(id: String) -> Iq {
    Iq::from_error(
        id,
        StanzaError::new(
            ErrorType::Cancel,
            DefinedCondition::ServiceUnavailable,
            "en",
            "the example bridge does not offer this",
        ),
    )
}

/// One connection: log in, then answer stanzas and carry calls until the stream ends.
async fn session(
    connector: BridgeConnector,
    name: &str,
    secret: &str,
    sip: Option<(&Arc<Sip>, &mut mpsc::Receiver<SipEvent>)>,
) -> Result<(), String> {
    let server = Jid::new(connector.domain()).map_err(|e| e.to_string())?;
    let mut component = Component::new_with_connector(name, secret, connector, Timeouts::default())
        .await
        .map_err(|e| format!("login failed: {e}"))?;
    let me = Jid::from(component.jid.clone());
    tracing::info!(component = %me, "registered with the XMPP server");
    let (sip, mut sip_events) = match sip {
        Some((sip, events)) => (Some(Arc::clone(sip)), Some(events)),
        None => (None, None),
    };
    let mut bridge = rayo::Bridge::new(me.clone(), server, sip);
    let outcome = 'session: loop {
        let out: Vec<Stanza> = tokio::select! {
            stanza = component.next() => match stanza {
                None => break Ok(()),
                Some(Stanza::Iq(iq)) => match bridge.command(&iq) {
                    Some(out) => out,
                    None => answer(&me, Stanza::Iq(iq)).into_iter().collect(),
                },
                Some(stanza) => answer(&me, stanza).into_iter().collect(),
            },
            Some(event) = async {
                match sip_events.as_mut() {
                    Some(events) => events.recv().await,
                    None => std::future::pending().await,
                }
            } => bridge.sip_event(event),
        };
        for stanza in out {
            if let Err(e) = component.send(stanza).await {
                break 'session Err(format!("send failed: {e}"));
            }
        }
    };
    bridge.close_all();
    outcome
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let (secret, connector) =
        match connect::secret(&args).and_then(|s| Ok((s, connect::connector(&args)?))) {
            Ok(ready) => ready,
            Err(e) => {
                eprintln!("call_bridge: {e}");
                std::process::exit(2);
            }
        };
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut sip = None;
    if args.sip_listen.is_some() || args.sip_peer.is_some() {
        let listen = args
            .sip_listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        match Sip::start(listen, args.sip_peer, cancel.clone()).await {
            Ok(started) => sip = Some(started),
            Err(e) => {
                eprintln!("call_bridge: {e}");
                std::process::exit(2);
            }
        }
    }
    let mut backoff = Duration::from_millis(500);
    let mut sessions = 0u32;
    loop {
        let sip = sip.as_mut().map(|(sip, events)| (&*sip, events));
        let outcome = tokio::select! {
            outcome = session(connector.clone(), &args.name, &secret, sip) => outcome,
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("stopping");
                cancel.cancel();
                return;
            }
        };
        match outcome {
            Ok(()) => {
                tracing::warn!("the server closed the stream");
                backoff = Duration::from_millis(500);
            }
            Err(e) => tracing::warn!(error = %e, "session ended"),
        }
        sessions += 1;
        if args.max_sessions.is_some_and(|max| sessions >= max) {
            std::process::exit(1);
        }
        tracing::info!(in_ms = backoff.as_millis() as u64, "reconnecting");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
