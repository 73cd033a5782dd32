//! A tokio-xmpp `ServerConnector`: STARTTLS to a fixed address, trusting a given CA, with
//! Nagle's algorithm on or off and a chosen channel binding. The load generators use it
//! (Nagle on, as tokio-xmpp leaves it; real tokio-xmpp clients also enable XEP-0198 whenever
//! it is offered), and the integration tests include this same file (`#[path]`) for their
//! tokio-xmpp clients.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::parsers::jid::Jid;
use tokio_xmpp::parsers::starttls;
use tokio_xmpp::xmlstream::{
    initiate_stream, PendingFeaturesRecv, ReadError, StreamHeader, Timeouts, XmppStreamElement,
};

/// What channel binding the client claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // the load generators claim none
pub(crate) enum Binding {
    /// None: the client picks plain SCRAM (`n`).
    None,
    /// RFC 9266 `tls-exporter`, computed the way tokio-xmpp's own connector does.
    Exporter,
    /// `tls-exporter` with bytes of another channel (a man in the middle).
    Forged,
}

/// STARTTLS to `addr`, trusting what `tls` trusts.
#[derive(Clone, Debug)]
pub(crate) struct StartTlsConnector {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// `TCP_NODELAY` on the client's socket (tokio-xmpp's default: off, Nagle on).
    pub(crate) nodelay: bool,
    pub(crate) binding: Binding,
}

/// The stream header of a client stream to `domain`.
pub(crate) fn header(domain: &str) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(domain.into()),
        from: None,
        id: None,
    }
}

impl ServerConnector for StartTlsConnector {
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
        let domain = jid.domain().as_str();
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(self.nodelay)?;
        let pending = initiate_stream(BufStream::new(tcp), ns, header(domain), timeouts).await?;
        let (features, mut stream) = pending.recv_features::<XmppStreamElement>().await?;
        if !features.can_starttls() {
            return Err(std::io::Error::other("the server does not offer STARTTLS").into());
        }
        stream
            .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
                starttls::Request,
            )))
            .await?;
        loop {
            match stream.next().await {
                Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)))) => break,
                Some(Ok(_)) | Some(Err(ReadError::SoftTimeout)) => {}
                _ => return Err(tokio_xmpp::Error::Disconnected),
            }
        }
        let tcp = stream.into_inner().into_inner();
        let name = rustls_pki_types::ServerName::try_from(domain.to_owned())
            .map_err(std::io::Error::other)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await?;
        let binding = match self.binding {
            Binding::None => sasl::common::ChannelBinding::None,
            Binding::Exporter | Binding::Forged => {
                let exported = tls
                    .get_ref()
                    .1
                    .export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
                    .map_err(std::io::Error::other)?;
                let bytes = if self.binding == Binding::Forged {
                    vec![0u8; 32]
                } else {
                    exported
                };
                sasl::common::ChannelBinding::TlsExporter(bytes)
            }
        };
        let pending = initiate_stream(BufStream::new(tls), ns, header(domain), timeouts).await?;
        Ok((pending, binding))
    }
}
