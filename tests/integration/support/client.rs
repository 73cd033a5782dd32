//! XMPP clients for the c2s tests: tokio-xmpp's `Client` through a STARTTLS connector that
//! trusts the development CA (tokio-xmpp's own trusts only system roots), and a raw stream
//! on tokio-xmpp's `xmlstream` for what a well-behaved client never sends.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use minidom::Element;
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_xmpp::parsers::jid::Jid;
use tokio_xmpp::parsers::stream_features::StreamFeatures;
use tokio_xmpp::xmlstream::{initiate_stream, ReadError, Timeouts, XmlStream};
use tokio_xmpp::{Client, Event, Stanza};

pub const CLIENT_NS: &str = "jabber:client";
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";

/// The development CA as a rustls client config.
pub fn client_tls(ca_pem: &Path) -> Arc<rustls::ClientConfig> {
    let roots: Vec<_> = bridgehead::pki::input::read_certificates(ca_pem)
        .unwrap()
        .into_iter()
        .map(|c| c.der)
        .collect();
    bridgehead::tls::client_config(&roots).unwrap()
}

#[path = "../../../examples/bench/starttls.rs"]
mod starttls;
pub(crate) use starttls::{header, Binding, StartTlsConnector};

/// A logged-in tokio-xmpp client and the JID it was bound to.
pub async fn login(addr: SocketAddr, ca_pem: &Path, jid: &str, password: &str) -> (Client, Jid) {
    match try_login(addr, ca_pem, jid, password, Binding::None).await {
        Ok(online) => online,
        Err(why) => panic!("{why}"),
    }
}

/// A tokio-xmpp login claiming `binding`: the client online, or what happened instead.
pub async fn try_login(
    addr: SocketAddr,
    ca_pem: &Path,
    jid: &str,
    password: &str,
    binding: Binding,
) -> Result<(Client, Jid), String> {
    let connector = StartTlsConnector {
        addr,
        tls: client_tls(ca_pem),
        nodelay: true,
        binding,
    };
    let mut client = Client::new_with_connector(
        Jid::new(jid).unwrap(),
        password,
        connector,
        Timeouts::default(),
    );
    match tokio::time::timeout(Duration::from_secs(10), client.next()).await {
        Ok(Some(Event::Online { bound_jid, .. })) => Ok((client, bound_jid)),
        Ok(other) => Err(format!("expected Online, got {other:?}")),
        Err(_) => Err("no login within 10 s".to_owned()),
    }
}

/// The next stanza the client receives.
pub async fn next_stanza(client: &mut Client) -> Stanza {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("a stanza arrives in time")
            .expect("the client is running");
        match event {
            Event::Stanza(stanza) => return stanza,
            Event::Online { .. } => continue,
            Event::Disconnected(e) => panic!("disconnected: {e}"),
        }
    }
}

/// The next stanza that `accept` takes, skipping others.
pub async fn wait_for<T>(client: &mut Client, mut accept: impl FnMut(&Stanza) -> Option<T>) -> T {
    loop {
        let stanza = next_stanza(client).await;
        if let Some(found) = accept(&stanza) {
            return found;
        }
    }
}

pub type Raw = XmlStream<BufStream<TlsStream<TcpStream>>, Element>;

/// A raw client stream after STARTTLS, with the features of the encrypted stream.
pub async fn raw_tls(addr: SocketAddr, ca_pem: &Path, domain: &str) -> (Raw, StreamFeatures) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let pending = initiate_stream(
        BufStream::new(tcp),
        CLIENT_NS,
        header(domain),
        Timeouts::default(),
    )
    .await
    .unwrap();
    let (_, mut stream) = pending.recv_features::<Element>().await.unwrap();
    stream
        .send(&Element::bare("starttls", TLS_NS))
        .await
        .unwrap();
    let proceed = raw_next(&mut stream).await.expect("an answer to starttls");
    assert!(proceed.is("proceed", TLS_NS), "{proceed:?}");
    let tcp = stream.into_inner().into_inner();
    let tls = tokio_rustls::TlsConnector::from(client_tls(ca_pem))
        .connect(
            rustls_pki_types::ServerName::try_from(domain.to_owned()).unwrap(),
            tcp,
        )
        .await
        .unwrap();
    raw_open(BufStream::new(tls), domain).await
}

/// Opens a client stream on `io`; returns it with the features element.
pub async fn raw_open<Io: tokio::io::AsyncBufRead + tokio::io::AsyncWrite + Unpin>(
    io: Io,
    domain: &str,
) -> (XmlStream<Io, Element>, StreamFeatures) {
    let pending = initiate_stream(io, CLIENT_NS, header(domain), Timeouts::default())
        .await
        .unwrap();
    let (features, stream) = pending.recv_features::<Element>().await.unwrap();
    (stream, features)
}

/// The next element on a raw stream; `None` at the stream's end or on an error.
pub async fn raw_next<Io: tokio::io::AsyncBufRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut XmlStream<Io, Element>,
) -> Option<Element> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an element or the end in time")
        {
            Some(Ok(element)) => return Some(element),
            Some(Err(ReadError::SoftTimeout)) => continue,
            _ => return None,
        }
    }
}

/// `<auth mechanism='PLAIN'>` for `user` and `password`.
pub fn plain_auth(user: &str, password: &str) -> Element {
    let message = format!("\0{user}\0{password}");
    Element::builder("auth", SASL)
        .attr(rxml::xml_ncname!("mechanism").to_owned(), "PLAIN")
        .append(base64::engine::general_purpose::STANDARD.encode(message))
        .build()
}

/// Logs in with PLAIN on a raw TLS stream; returns the restarted stream and its features.
pub async fn raw_login(
    addr: SocketAddr,
    ca_pem: &Path,
    domain: &str,
    user: &str,
    password: &str,
) -> (Raw, StreamFeatures) {
    let (mut stream, _) = raw_tls(addr, ca_pem, domain).await;
    stream.send(&plain_auth(user, password)).await.unwrap();
    let answer = raw_next(&mut stream).await.unwrap();
    assert!(answer.is("success", SASL), "{answer:?}");
    raw_open(stream.into_inner(), domain).await
}

/// Logs in with PLAIN on a raw TLS stream and binds `resource`; returns the stream.
pub async fn raw_session(
    addr: SocketAddr,
    ca_pem: &Path,
    domain: &str,
    user: &str,
    password: &str,
    resource: &str,
) -> Raw {
    let (mut stream, features) = raw_login(addr, ca_pem, domain, user, password).await;
    assert!(features.bind.is_some(), "{features:?}");
    let bind = Element::builder("iq", CLIENT_NS)
        .attr(rxml::xml_ncname!("type").to_owned(), "set")
        .attr(rxml::xml_ncname!("id").to_owned(), "bind1")
        .append(
            Element::builder("bind", BIND)
                .append(Element::builder("resource", BIND).append(resource).build())
                .build(),
        )
        .build();
    stream.send(&bind).await.unwrap();
    let bound = raw_next(&mut stream).await.unwrap();
    assert_eq!(bound.attr("type"), Some("result"), "{bound:?}");
    stream
}
