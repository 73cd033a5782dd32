//! The transports a client stream runs on: the `Transport` trait that c2s and WebSocket
//! share, the TCP transport (plain, then TLS after STARTTLS) with its header tracking, and
//! the RFC 9266 `tls-exporter` channel binding of a TLS 1.3 connection.

use std::time::Duration;

use minidom::Element;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadHalf, WriteHalf};

use super::{ClientService, READ_BUFFER};
use crate::xmpp::error::{StreamCondition, XmppError};
use crate::xmpp::ns;
use crate::xmpp::sasl;
use crate::xmpp::stream::{StreamHeader, StreamReader, StreamWriter};

/// One client stream transport: TCP (plain or TLS) or WebSocket.
pub(crate) trait Transport: Send {
    /// `c2s` or `websocket`, for logs and metrics.
    const NAME: &'static str;
    /// Reads the client's stream opening.
    async fn read_open(&mut self) -> Result<StreamHeader, XmppError>;
    /// Queues the server's stream opening.
    fn write_open(&mut self, from: &str, id: &str) -> Result<(), XmppError>;
    /// Queues one element.
    fn write(&mut self, element: &Element) -> Result<(), XmppError>;
    /// Sends what is queued.
    async fn flush(&mut self) -> Result<(), XmppError>;
    /// The next element; `None` when the client closed the stream.
    async fn read(&mut self) -> Result<Option<Element>, XmppError>;
    /// After SASL success the next stream is a new document.
    fn restart(&mut self);
    /// Sends the stream error (if any) and closes, bounded in time; the server's header
    /// goes first when it was not sent on the current stream.
    async fn close(&mut self, condition: Option<StreamCondition>);
    /// Whether the transport is encrypted.
    fn is_secure(&self) -> bool;
    /// The channel's `tls-exporter` binding data (TLS 1.3 only), for SCRAM -PLUS.
    fn channel_binding(&self) -> Option<&[u8]> {
        None
    }
}

/// c2s over TCP, before or after STARTTLS.
pub(crate) struct TcpTransport<S> {
    reader: StreamReader<BufReader<ReadHalf<S>>>,
    writer: StreamWriter<WriteHalf<S>>,
    secure: bool,
    /// The server's header of the current stream was written.
    opened: bool,
    pub(super) channel_binding: Option<Vec<u8>>,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> TcpTransport<S> {
    pub(super) fn new(io: S, service: &ClientService, secure: bool) -> Self {
        let (read_half, write_half) = tokio::io::split(io);
        TcpTransport {
            reader: StreamReader::new(
                BufReader::with_capacity(READ_BUFFER, read_half),
                service.element_limits(),
            ),
            writer: StreamWriter::new(write_half, ns::CLIENT).with_write_timeout(
                Duration::from_secs(service.settings.write_timeout_secs.get()),
            ),
            secure,
            opened: false,
            channel_binding: None,
        }
    }

    /// The connection back, for the TLS handshake.
    pub(super) fn into_io(self) -> S {
        let read_half = self.reader.into_inner().into_inner();
        read_half.unsplit(self.writer.into_inner())
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Transport for TcpTransport<S> {
    const NAME: &'static str = "c2s";

    async fn read_open(&mut self) -> Result<StreamHeader, XmppError> {
        self.reader.read_header().await
    }

    fn write_open(&mut self, from: &str, id: &str) -> Result<(), XmppError> {
        self.opened = true;
        self.writer.header(from, id, Some("1.0"))
    }

    fn write(&mut self, element: &Element) -> Result<(), XmppError> {
        self.writer.element(element)
    }

    async fn flush(&mut self) -> Result<(), XmppError> {
        self.writer.flush().await
    }

    async fn read(&mut self) -> Result<Option<Element>, XmppError> {
        self.reader.read_element().await
    }

    fn restart(&mut self) {
        self.reader.reset();
        self.writer.reset();
        self.opened = false;
    }

    async fn close(&mut self, condition: Option<StreamCondition>) {
        crate::xmpp::component::close(&mut self.writer, self.opened, condition).await;
    }

    fn is_secure(&self) -> bool {
        self.secure
    }

    fn channel_binding(&self) -> Option<&[u8]> {
        self.channel_binding.as_deref()
    }
}

/// RFC 9266 `tls-exporter` channel binding data of a TLS 1.3 connection (`None` before 1.3:
/// `tls-exporter` needs the extended master secret there, and -PLUS is then not offered).
pub(super) fn tls_exporter(connection: &rustls::ServerConnection) -> Option<Vec<u8>> {
    if connection.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return None;
    }
    connection
        .export_keying_material(vec![0u8; 32], sasl::EXPORTER_LABEL, None)
        .ok()
}
