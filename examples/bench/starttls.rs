//! A tokio-xmpp `ServerConnector` for the load generators: STARTTLS to a fixed address,
//! trusting the bench server's development CA, with Nagle's algorithm left as tokio-xmpp
//! leaves it (on) unless asked otherwise. Real tokio-xmpp clients keep it on and enable
//! XEP-0198 whenever it is offered, so this is how they meet the server.

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

#[derive(Clone, Debug)]
pub(crate) struct BenchConnector {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// `TCP_NODELAY` on the client's socket (tokio-xmpp's default: off, Nagle on).
    pub(crate) nodelay: bool,
}

fn header(domain: &str) -> StreamHeader<'_> {
    StreamHeader {
        to: Some(domain.into()),
        from: None,
        id: None,
    }
}

impl ServerConnector for BenchConnector {
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
        let (_, mut stream) = pending.recv_features::<XmppStreamElement>().await?;
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
        let pending = initiate_stream(BufStream::new(tls), ns, header(domain), timeouts).await?;
        Ok((pending, sasl::common::ChannelBinding::None))
    }
}
