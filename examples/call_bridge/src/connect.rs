//! Finding the XMPP server and connecting to it: an explicit `--server`, else the SRV
//! records of `_xmpp-component._tcp.<domain>` in RFC 2782 order (Bridgehead's own `dns`
//! module), else `<domain>:5223`; TLS from the first byte, the certificate checked against
//! `--ca` for the XMPP domain (not the SRV target: the certificate names the domain).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::xmlstream::{initiate_stream, PendingFeaturesRecv, StreamHeader, Timeouts};

use bridgehead::dns::{Discovery, Endpoint, XMPP_COMPONENT_SERVICE};

use crate::Args;

/// The XEP-0114 port call bridges use by default.
const DEFAULT_COMPONENT_PORT: u16 = 5223;

/// Connects over direct TLS to the first reachable endpoint, trusting our CA.
#[derive(Clone)]
pub struct BridgeConnector {
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
    /// The XMPP domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

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

pub fn secret(args: &Args) -> Result<String, String> {
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

pub fn connector(args: &Args) -> Result<BridgeConnector, String> {
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
