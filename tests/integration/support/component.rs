//! A component client on tokio-xmpp's `xmlstream` (an implementation independent of the
//! server's stream code): direct TLS trusting the dev CA, `initiate_stream` in
//! `jabber:component:accept`, and xmpp-parsers' `Handshake`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use minidom::Element;
use tokio::io::{AsyncBufRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_xmpp::xmlstream::{initiate_stream, ReadError, StreamHeader, Timeouts, XmlStream};
use xmpp_parsers::component::Handshake;

pub const STREAM_NS: &str = "http://etherx.jabber.org/streams";
pub const STREAMS_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
pub const COMPONENT_NS: &str = "jabber:component:accept";

pub type Stream = XmlStream<BufStream<TlsStream<TcpStream>>, Element>;

/// A TLS connection to `addr` trusting the CA in `ca_pem`, checking the name `localhost`.
pub async fn tls(addr: SocketAddr, ca_pem: &Path) -> TlsStream<TcpStream> {
    tls_named(addr, ca_pem, "localhost").await
}

/// A TLS connection to `addr` trusting the CA in `ca_pem`, checking `server_name`.
pub async fn tls_named(addr: SocketAddr, ca_pem: &Path, server_name: &str) -> TlsStream<TcpStream> {
    let roots: Vec<_> = bridgehead::pki::input::read_certificates(ca_pem)
        .unwrap()
        .into_iter()
        .map(|c| c.der)
        .collect();
    let config = bridgehead::tls::client_config(&roots).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    connector
        .connect(
            rustls_pki_types::ServerName::try_from(server_name.to_owned()).unwrap(),
            tcp,
        )
        .await
        .expect("TLS handshake with the server")
}

/// Opens a component stream to `name` over TLS; returns the stream and the server's stream id.
pub async fn open(addr: SocketAddr, ca_pem: &Path, name: &str) -> (Stream, Option<String>) {
    open_on(BufStream::new(tls(addr, ca_pem).await), name).await
}

/// Opens a component stream to `name` over any transport.
pub async fn open_on<Io: AsyncBufRead + AsyncWrite + Unpin>(
    io: Io,
    name: &str,
) -> (XmlStream<Io, Element>, Option<String>) {
    let header = StreamHeader {
        from: None,
        to: Some(name.to_owned().into()),
        id: None,
    };
    let mut pending = initiate_stream(io, COMPONENT_NS, header, Timeouts::tight())
        .await
        .unwrap();
    let theirs = pending.take_header();
    (pending.skip_features(), theirs.id.map(|id| id.into_owned()))
}

/// Connects over TLS and authenticates; `Err` carries the stream error (or other element).
pub async fn connect(
    addr: SocketAddr,
    ca_pem: &Path,
    name: &str,
    secret: &str,
) -> Result<Stream, Element> {
    let (stream, id) = open(addr, ca_pem, name).await;
    handshake(stream, id, secret).await
}

/// Connects over TLS to the server of XMPP domain `domain` and authenticates.
pub async fn connect_in_domain(
    addr: SocketAddr,
    ca_pem: &Path,
    domain: &str,
    name: &str,
    secret: &str,
) -> Result<Stream, Element> {
    let io = BufStream::new(tls_named(addr, ca_pem, domain).await);
    let (stream, id) = open_on(io, name).await;
    handshake(stream, id, secret).await
}

/// Connects over plain TCP and authenticates.
pub async fn connect_plain(
    addr: SocketAddr,
    name: &str,
    secret: &str,
) -> Result<XmlStream<BufStream<TcpStream>, Element>, Element> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (stream, id) = open_on(BufStream::new(tcp), name).await;
    handshake(stream, id, secret).await
}

async fn handshake<Io: AsyncBufRead + AsyncWrite + Unpin>(
    mut stream: XmlStream<Io, Element>,
    id: Option<String>,
    secret: &str,
) -> Result<XmlStream<Io, Element>, Element> {
    let Some(id) = id else {
        return Err(next(&mut stream)
            .await
            .expect("a stream error when there is no stream id"));
    };
    stream
        .send(&Handshake::from_stream_id_and_password(id, secret))
        .await
        .unwrap();
    let reply = next(&mut stream).await.expect("an answer to the handshake");
    if reply.is("handshake", COMPONENT_NS) {
        Ok(stream)
    } else {
        Err(reply)
    }
}

/// The next element, or `None` when the stream ended or stayed silent for 5 s.
pub async fn next<Io: AsyncBufRead + Unpin>(
    stream: &mut XmlStream<Io, Element>,
) -> Option<Element> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(element))) => return Some(element),
            Ok(Some(Err(ReadError::SoftTimeout))) => continue,
            Ok(Some(Err(ReadError::ParseError(e)))) => panic!("unparseable element: {e}"),
            _ => return None,
        }
    }
}

/// The stream error condition in `element`, if it is a stream error.
pub fn stream_error(element: &Element) -> Option<String> {
    if !element.is("error", STREAM_NS) {
        return None;
    }
    element
        .children()
        .find(|c| c.ns() == STREAMS_ERRORS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// The stanza error condition in `element`, if it is an error stanza.
pub fn stanza_error(element: &Element) -> Option<String> {
    if element.attr("type") != Some("error") {
        return None;
    }
    let error = element.children().find(|c| c.name() == "error")?;
    error
        .children()
        .find(|c| c.ns() == STANZAS)
        .map(|c| c.name().to_owned())
}

/// Builds a stanza in the component namespace.
pub fn stanza(name: &str, attrs: &[(&str, &str)], children: Vec<Element>) -> Element {
    let mut builder = Element::builder(name, COMPONENT_NS);
    for (key, value) in attrs {
        builder = builder.attr(rxml::NcName::try_from(key.to_string()).unwrap(), *value);
    }
    for child in children {
        builder = builder.append(child);
    }
    builder.build()
}

/// Sends raw bytes over TLS and returns everything the server sends until it closes.
pub async fn raw_exchange(addr: SocketAddr, ca_pem: &Path, bytes: &[u8]) -> String {
    let mut tls = tls(addr, ca_pem).await;
    tls.write_all(bytes).await.unwrap();
    tls.flush().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
