//! What a TLS server actually sends: `pki probe` connects to `HOST:PORT`, completes a
//! handshake that accepts any chain (`tls::probe_client_config`), and returns the served
//! chain with the negotiated protocol version, cipher suite and ALPN, for `pki verify`'s
//! checks to judge.
//!
//! ```text
//! direct TLS (components on 5223, HTTPS, CTI)   TCP → TLS (SNI = the server name)
//! XMPP STARTTLS (c2s on 5222)                   TCP → <stream:stream to=domain> → features
//!                                               must offer <starttls/> → <starttls/> →
//!                                               <proceed/> → TLS
//! ```
//!
//! Every step (connect, STARTTLS, TLS handshake) has the deadline given, and a timeout
//! names its step: a port that accepts TCP but never answers TLS reads as such. [`probe`]
//! sends nothing after the handshake; [`open`] hands the TLS stream on for a protocol check
//! (`bridgehead doctor`'s component handshake and SASL listing).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::BufReader;
use tokio::net::TcpStream;

use crate::pki::{Certificate, Origin};
use crate::xmpp::ns;
use crate::xmpp::stream::{ElementLimits, StreamReader, StreamWriter};

/// How the TLS session starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// TLS from the first byte.
    Direct,
    /// XMPP client stream to `domain`, then STARTTLS (RFC 6120 §5).
    XmppStartTls {
        /// The XMPP domain the stream is opened to.
        domain: String,
    },
}

/// What to probe.
pub struct ProbeTarget {
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The name sent in SNI (and the stream's `to` for STARTTLS).
    pub server_name: String,
    /// How TLS starts.
    pub start: Start,
    /// ALPN protocols offered (`h2`, `http/1.1` for HTTPS).
    pub alpn: Vec<Vec<u8>>,
    /// A client certificate chain and key to present (a CTI port).
    pub identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// Deadline of each step.
    pub timeout: Duration,
}

/// What the server sent and agreed.
#[derive(Debug, Clone)]
pub struct Probed {
    /// The address connected to.
    pub addr: SocketAddr,
    /// The chain as served, leaf first.
    pub certificates: Vec<Certificate>,
    /// `TLSv1_3`, `TLSv1_2`.
    pub protocol: String,
    /// The cipher suite.
    pub cipher: String,
    /// The ALPN protocol agreed, if any.
    pub alpn: Option<String>,
    /// Whether the server asked for a client certificate.
    pub client_certificate_asked: bool,
    /// How long the TCP connection took.
    pub connect_time: Duration,
    /// How long the TLS handshake took (after STARTTLS, if any).
    pub handshake_time: Duration,
}

/// What a probe accepts from the server in one XMPP element (features, an answer).
pub const PEER_LIMITS: ElementLimits = ElementLimits {
    max_bytes: 65_536,
    max_depth: 16,
};

/// The TLS stream [`open`] hands on.
pub type ProbedStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Why a probe did not get a chain.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Connecting, the stream or the handshake failed.
    #[error("{step}: {detail}")]
    Failed {
        /// Which step.
        step: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// A step took longer than its deadline.
    #[error("{step}: no answer within {after:?}")]
    Timeout {
        /// Which step.
        step: &'static str,
        /// The deadline.
        after: Duration,
    },
}

fn failed(step: &'static str) -> impl Fn(&dyn std::fmt::Display) -> ProbeError {
    move |e| ProbeError::Failed {
        step,
        detail: e.to_string(),
    }
}

/// Connects, starts TLS as `target` says, and returns the served chain.
pub async fn probe(target: ProbeTarget) -> Result<Probed, ProbeError> {
    open(target).await.map(|(probed, _)| probed)
}

/// `future` under `timeout`, a timeout naming `step`.
async fn step<T>(
    step: &'static str,
    timeout: Duration,
    future: impl std::future::Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| ProbeError::Timeout {
            step,
            after: timeout,
        })?
}

/// [`probe`], keeping the TLS stream for what comes after the handshake.
pub async fn open(target: ProbeTarget) -> Result<(Probed, ProbedStream), ProbeError> {
    let timeout = target.timeout;
    let started = tokio::time::Instant::now();
    let mut tcp = step("connect", timeout, async {
        TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| failed("connect")(&e))
    })
    .await?;
    let connect_time = started.elapsed();
    let addr = tcp.peer_addr().map_err(|e| failed("connect")(&e))?;
    if let Start::XmppStartTls { domain } = &target.start {
        step("XMPP STARTTLS", timeout, start_tls(&mut tcp, domain)).await?;
    }
    let alpn: Vec<&[u8]> = target.alpn.iter().map(Vec::as_slice).collect();
    let probe = crate::tls::probe_client_config(target.identity, &alpn)
        .map_err(|e| failed("TLS configuration")(&e))?;
    let name =
        ServerName::try_from(target.server_name.clone()).map_err(|e| failed("server name")(&e))?;
    let handshake_started = tokio::time::Instant::now();
    let tls = step("TLS handshake", timeout, async {
        tokio_rustls::TlsConnector::from(Arc::clone(&probe.config))
            .connect(name, tcp)
            .await
            .map_err(|e| failed("TLS handshake")(&e))
    })
    .await?;
    let handshake_time = handshake_started.elapsed();
    let (_, session) = tls.get_ref();
    let origin = format!("{}:{} (served)", target.host, target.port);
    let certificates = session
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, der)| {
            Certificate::from_der(
                der.clone().into_owned(),
                Origin {
                    file: origin.clone(),
                    position: i + 1,
                },
            )
            .map_err(|e| failed("the served certificate")(&e.0))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if certificates.is_empty() {
        return Err(failed("TLS handshake")(&"the server sent no certificate"));
    }
    let probed = Probed {
        addr,
        certificates,
        protocol: session
            .protocol_version()
            .map_or_else(|| "unknown".to_owned(), |v| format!("{v:?}")),
        cipher: session
            .negotiated_cipher_suite()
            .map_or_else(|| "unknown".to_owned(), |s| format!("{:?}", s.suite())),
        alpn: session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        client_certificate_asked: probe
            .client_certificate_asked
            .load(std::sync::atomic::Ordering::Relaxed),
        connect_time,
        handshake_time,
    };
    Ok((probed, tls))
}

/// RFC 6120 STARTTLS on a client stream to `domain`, up to `<proceed/>`.
async fn start_tls(tcp: &mut TcpStream, domain: &str) -> Result<(), ProbeError> {
    let step = failed("XMPP STARTTLS");
    let (read, write) = tcp.split();
    let mut reader = StreamReader::new(BufReader::new(read), PEER_LIMITS);
    let mut writer = StreamWriter::new(write, ns::CLIENT);
    writer.initiating_header(domain).map_err(|e| step(&e))?;
    writer.flush().await.map_err(|e| step(&e))?;
    reader.read_header().await.map_err(|e| step(&e))?;
    let features = reader
        .read_element()
        .await
        .map_err(|e| step(&e))?
        .ok_or_else(|| step(&"the server closed the stream"))?;
    if features.get_child("starttls", ns::TLS).is_none() {
        return Err(step(&"the server does not offer STARTTLS"));
    }
    writer
        .element(&minidom::Element::builder("starttls", ns::TLS).build())
        .map_err(|e| step(&e))?;
    writer.flush().await.map_err(|e| step(&e))?;
    let answer = reader
        .read_element()
        .await
        .map_err(|e| step(&e))?
        .ok_or_else(|| step(&"the server closed the stream"))?;
    if !answer.is("proceed", ns::TLS) {
        return Err(step(&format!("the server answered <{}/>", answer.name())));
    }
    Ok(())
}
