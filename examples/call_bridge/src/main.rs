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
//! 4. serves: disco#info (a `gateway/sip` identity), XEP-0199 pings, and echoes every chat
//!    or normal message back to its sender; other requests get `service-unavailable`;
//! 5. when the connection drops, reconnects with a capped exponential back-off.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::disco::{DiscoInfoQuery, DiscoInfoResult, Identity};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::message::{Message, MessageType};
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::ping::Ping;
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use tokio_xmpp::xmlstream::{initiate_stream, PendingFeaturesRecv, StreamHeader, Timeouts};
use tokio_xmpp::{Component, Stanza};

use bridgehead::dns::{Discovery, Endpoint, XMPP_COMPONENT_SERVICE};

/// The XEP-0114 port call bridges use by default.
const DEFAULT_COMPONENT_PORT: u16 = 5223;

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
}

/// Connects over direct TLS to the first reachable endpoint, trusting our CA.
#[derive(Clone)]
struct BridgeConnector {
    domain: String,
    server: Option<String>,
    discovery: Discovery,
    tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

impl std::fmt::Debug for BridgeConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeConnector")
            .field("domain", &self.domain)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl BridgeConnector {
    async fn endpoints(&self) -> std::io::Result<Vec<Endpoint>> {
        if let Some(server) = &self.server {
            let (host, port) = server
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse().ok()?)))
                .ok_or_else(|| {
                    std::io::Error::other(format!("--server {server}: want HOST:PORT"))
                })?;
            return Ok(vec![Endpoint {
                host: host.to_owned(),
                port,
            }]);
        }
        self.discovery
            .endpoints(XMPP_COMPONENT_SERVICE, &self.domain, DEFAULT_COMPONENT_PORT)
            .await
            .map_err(std::io::Error::other)
    }

    async fn tcp(&self) -> std::io::Result<TcpStream> {
        let mut last_error = std::io::Error::other("no endpoint to try");
        for endpoint in self.endpoints().await? {
            let addresses = self
                .discovery
                .addresses(&endpoint.host)
                .await
                .map_err(std::io::Error::other)?;
            for ip in addresses {
                let addr = SocketAddr::new(ip, endpoint.port);
                match TcpStream::connect(addr).await {
                    Ok(tcp) => {
                        tcp.set_nodelay(true)?;
                        tracing::info!(%addr, host = %endpoint.host, "connected");
                        return Ok(tcp);
                    }
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "cannot connect, trying the next");
                        last_error = e;
                    }
                }
            }
        }
        Err(last_error)
    }
}

impl ServerConnector for BridgeConnector {
    type Stream = BufStream<TlsStream<TcpStream>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<
        (
            PendingFeaturesRecv<Self::Stream>,
            sasl::common::ChannelBinding,
        ),
        tokio_xmpp::Error,
    > {
        let tcp = self.tcp().await?;
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(self.domain.clone())
            .map_err(std::io::Error::other)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await?;
        let header = StreamHeader {
            to: Some(jid.domain().as_str().to_owned().into()),
            from: None,
            id: None,
        };
        let stream = initiate_stream(BufStream::new(tls), ns, header, timeouts).await?;
        Ok((stream, sasl::common::ChannelBinding::None))
    }
}

#[derive(serde::Deserialize)]
struct CredentialsFile {
    #[serde(default)]
    components: Vec<ComponentCredentials>,
}

#[derive(serde::Deserialize)]
struct ComponentCredentials {
    name: String,
    secret: String,
}

fn secret(args: &Args) -> Result<String, String> {
    if let Some(secret) = &args.secret {
        return Ok(secret.clone());
    }
    let path = args
        .credentials
        .as_ref()
        .ok_or("give --secret (or BRIDGE_SECRET) or --credentials FILE")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: CredentialsFile =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    file.components
        .into_iter()
        .find(|c| c.name == args.name)
        .map(|c| c.secret)
        .ok_or_else(|| format!("{} has no secret for {}", path.display(), args.name))
}

fn connector(args: &Args) -> Result<BridgeConnector, String> {
    let domain = match &args.domain {
        Some(domain) => domain.clone(),
        None => args
            .name
            .split_once('.')
            .map(|(_, rest)| rest.to_owned())
            .ok_or("--name has no domain part; give --domain")?,
    };
    let roots: Vec<_> = bridgehead::pki::input::read_certificates(&args.ca)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|c| c.der)
        .collect();
    let tls = bridgehead::tls::client_config(&roots).map_err(|e| e.to_string())?;
    let discovery = if args.dns_servers.is_empty() {
        Discovery::system()
    } else {
        Discovery::with_name_servers(&args.dns_servers)
    }
    .map_err(|e| e.to_string())?;
    Ok(BridgeConnector {
        domain,
        server: args.server.clone(),
        discovery,
        tls,
    })
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
                    features: [ns::DISCO_INFO, ns::PING]
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

/// One connection: log in, then answer stanzas until the stream ends.
async fn session(connector: BridgeConnector, name: &str, secret: &str) -> Result<(), String> {
    let mut component = Component::new_with_connector(name, secret, connector, Timeouts::default())
        .await
        .map_err(|e| format!("login failed: {e}"))?;
    let me = Jid::from(component.jid.clone());
    tracing::info!(component = %me, "registered with the XMPP server");
    while let Some(stanza) = component.next().await {
        if let Some(reply) = answer(&me, stanza) {
            component
                .send(reply)
                .await
                .map_err(|e| format!("send failed: {e}"))?;
        }
    }
    Ok(())
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
    let (secret, connector) = match secret(&args).and_then(|s| Ok((s, connector(&args)?))) {
        Ok(ready) => ready,
        Err(e) => {
            eprintln!("call_bridge: {e}");
            std::process::exit(2);
        }
    };
    let mut backoff = Duration::from_millis(500);
    let mut sessions = 0u32;
    loop {
        let outcome = tokio::select! {
            outcome = session(connector.clone(), &args.name, &secret) => outcome,
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("stopping");
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
