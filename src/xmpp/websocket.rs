//! XMPP over WebSocket (RFC 7395) on the shared HTTPS front, and its XEP-0156 discovery.
//!
//! ```text
//! GET /xmpp-websocket  Upgrade: websocket  Sec-WebSocket-Protocol: xmpp
//!                                        ◀── 101 Switching Protocols  Sec-WebSocket-Protocol: xmpp
//! <open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>
//!                                        ◀── <open … from='example.com' id=…/>  <stream:features>…
//! SASL, then a new <open/>, bind, stanzas: exactly as on c2s (see `client`)
//! <close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>
//!                                        ◀── <close/>, then the WebSocket close
//! ```
//!
//! One WebSocket text message carries one element, each with its namespace declared. A
//! message over `max_stanza_bytes` ends the connection (the WebSocket layer refuses it); a
//! message nested deeper than `[limits] max_xml_depth` ends it with `policy-violation`
//! while it is parsed, before any tree that deep exists.
//! The transport is always TLS, so PLAIN is offered as on c2s after STARTTLS. Only
//! HTTP/1.1 upgrades are served (no RFC 8441 over HTTP/2).
//!
//! `/.well-known/host-meta` (XRD) and `/.well-known/host-meta.json` (JRD) name the
//! WebSocket endpoint as `wss://<the Host the client used>/xmpp-websocket`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use minidom::Element;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::client::{ClientService, Transport};
use super::error::{StreamCondition, XmppError};
use super::ns;
use super::stanza;
use super::stream::{parse_element, ElementLimits, StreamHeader};
use crate::http::{full, text, Handler, RequestContext, ResponseBody};

/// Where the WebSocket endpoint is mounted.
pub const PATH: &str = "/xmpp-websocket";
/// Where XEP-0156 discovery is mounted (`host-meta` and `host-meta.json`).
pub const HOST_META: &str = "/.well-known/host-meta";
use super::ns::ALT_CONNECTION_WEBSOCKET as ALT_CONNECTION;
pub use super::ns::FRAMING;
const XRD: &str = "http://docs.oasis-open.org/ns/xri/xrd-1.0";

fn header_has_token(request: &Request<Incoming>, name: &str, token: &str) -> bool {
    request.headers().get_all(name).iter().any(|value| {
        value
            .to_str()
            .unwrap_or_default()
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// The `/xmpp-websocket` handler.
pub struct WebSocketEndpoint {
    clients: Arc<ClientService>,
    max_message_bytes: usize,
    write_timeout: Duration,
}

impl std::fmt::Debug for WebSocketEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketEndpoint").finish_non_exhaustive()
    }
}

impl WebSocketEndpoint {
    /// An endpoint running sessions on `clients` under the `[xmpp]` limits.
    pub fn new(clients: Arc<ClientService>, settings: &crate::config::XmppConfig) -> Self {
        WebSocketEndpoint {
            clients,
            max_message_bytes: settings.max_stanza_bytes.get(),
            write_timeout: Duration::from_secs(settings.write_timeout_secs.get()),
        }
    }
}

#[async_trait]
impl Handler for WebSocketEndpoint {
    async fn handle(
        &self,
        mut request: Request<Incoming>,
        context: &RequestContext,
    ) -> Response<ResponseBody> {
        if request.uri().path() != PATH {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        if request.method() != hyper::Method::GET {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET with a WebSocket upgrade\n",
            );
        }
        let is_upgrade = header_has_token(&request, "upgrade", "websocket")
            && header_has_token(&request, "connection", "upgrade")
            && request.version() == hyper::Version::HTTP_11;
        if !is_upgrade {
            let mut response = text(
                StatusCode::UPGRADE_REQUIRED,
                "XMPP over WebSocket needs an HTTP/1.1 WebSocket upgrade\n",
            );
            response
                .headers_mut()
                .insert(UPGRADE, HeaderValue::from_static("websocket"));
            return response;
        }
        if request
            .headers()
            .get("sec-websocket-version")
            .map(|v| v.as_bytes())
            != Some(b"13")
        {
            return text(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Version must be 13\n",
            );
        }
        if !header_has_token(&request, "sec-websocket-protocol", "xmpp") {
            return text(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Protocol must offer xmpp (RFC 7395)\n",
            );
        }
        let Some(key) = request.headers().get("sec-websocket-key") else {
            return text(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing\n");
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let upgrade = hyper::upgrade::on(&mut request);
        let clients = Arc::clone(&self.clients);
        let (peer, shutdown) = (context.peer, context.shutdown.clone());
        let write_timeout = self.write_timeout;
        let config = WebSocketConfig::default()
            .max_message_size(Some(self.max_message_bytes))
            .max_frame_size(Some(self.max_message_bytes));
        context.shutdown.spawn(async move {
            let upgraded = match upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => return tracing::info!(error = %e, "WebSocket upgrade failed"),
            };
            let ws = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            let transport = WebSocketTransport::new(ws, write_timeout, clients.element_limits());
            clients.handle_websocket(transport, peer, shutdown).await;
        });
        let mut response = Response::new(full(""));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert("sec-websocket-protocol", HeaderValue::from_static("xmpp"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert("sec-websocket-accept", accept);
        }
        response
    }
}

/// One XMPP session on a WebSocket.
struct WebSocketTransport<S> {
    ws: WebSocketStream<S>,
    queued: VecDeque<String>,
    write_timeout: Duration,
    limits: ElementLimits,
    /// The server's `<open/>` of the current stream was written.
    opened: bool,
}

impl<S> WebSocketTransport<S> {
    fn new(ws: WebSocketStream<S>, write_timeout: Duration, limits: ElementLimits) -> Self {
        WebSocketTransport {
            ws,
            queued: VecDeque::new(),
            write_timeout,
            limits,
            opened: false,
        }
    }
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> XmppError {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Io(e) => XmppError::Io(e),
        Error::ConnectionClosed | Error::AlreadyClosed => XmppError::Closed,
        Error::Capacity(e) => XmppError::stream(StreamCondition::PolicyViolation, e.to_string()),
        other => XmppError::stream(StreamCondition::NotWellFormed, other.to_string()),
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> WebSocketTransport<S> {
    /// The next element, skipping control frames.
    async fn next_element(&mut self) -> Result<Element, XmppError> {
        loop {
            let message = match self.ws.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(ws_error(e)),
                None => return Err(XmppError::Closed),
            };
            match message {
                // Whitespace between elements is allowed on every transport (RFC 6120
                // §11.7); RFC 7395 needs no keep-alives, but some clients send them.
                Message::Text(text) if text.as_str().trim_ascii().is_empty() => continue,
                Message::Text(text) => return parse_element(text.as_str(), &self.limits),
                Message::Binary(_) => {
                    return Err(XmppError::stream(
                        StreamCondition::UnsupportedStanzaType,
                        "a binary WebSocket message",
                    ))
                }
                Message::Close(_) => return Err(XmppError::Closed),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
        }
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Transport
    for WebSocketTransport<S>
{
    const NAME: &'static str = "websocket";

    async fn read_open(&mut self) -> Result<StreamHeader, XmppError> {
        let open = self.next_element().await?;
        if !open.is("open", FRAMING) {
            return Err(XmppError::stream(
                StreamCondition::BadFormat,
                format!("expected <open/>, got <{}> in {}", open.name(), open.ns()),
            ));
        }
        Ok(StreamHeader {
            default_ns: Some(ns::CLIENT.to_owned()),
            to: open.attr("to").map(str::to_owned),
            from: open.attr("from").map(str::to_owned),
            id: None,
            version: open.attr("version").map(str::to_owned),
        })
    }

    fn write_open(&mut self, from: &str, id: &str) -> Result<(), XmppError> {
        self.opened = true;
        let open = stanza::element(
            "open",
            FRAMING,
            &[("from", from), ("id", id), ("version", "1.0")],
        )
        .build();
        self.write(&open)
    }

    fn write(&mut self, element: &Element) -> Result<(), XmppError> {
        let mut out = Vec::new();
        element
            .write_to(&mut out)
            .map_err(|e| XmppError::stream(StreamCondition::InternalServerError, e.to_string()))?;
        let text = String::from_utf8(out)
            .map_err(|e| XmppError::stream(StreamCondition::InternalServerError, e.to_string()))?;
        self.queued.push_back(text);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), XmppError> {
        let limit = self.write_timeout;
        let written = tokio::time::timeout(limit, async {
            while let Some(text) = self.queued.pop_front() {
                self.ws.feed(Message::text(text)).await.map_err(ws_error)?;
            }
            self.ws.flush().await.map_err(ws_error)
        })
        .await;
        written.unwrap_or(Err(XmppError::Io(super::stream::stalled(limit))))
    }

    async fn read(&mut self) -> Result<Option<Element>, XmppError> {
        let element = self.next_element().await?;
        if element.is("close", FRAMING) {
            return Ok(None);
        }
        if element.is("open", FRAMING) {
            return Err(XmppError::stream(
                StreamCondition::BadFormat,
                "<open/> inside a stream",
            ));
        }
        Ok(Some(element))
    }

    fn restart(&mut self) {
        self.opened = false;
    }

    async fn close(&mut self, condition: Option<StreamCondition>) {
        let result = tokio::time::timeout(Duration::from_secs(5), async {
            if !self.opened {
                self.write_open("error", &hex::encode(rand::random::<[u8; 8]>()))?;
            }
            if let Some(condition) = condition {
                let error = Element::builder("error", ns::STREAM)
                    .append(Element::bare(condition.as_str(), ns::STREAMS_ERRORS))
                    .build();
                self.write(&error)?;
            }
            self.write(&Element::bare("close", FRAMING))?;
            self.flush().await?;
            self.ws.close(None).await.map_err(ws_error)
        })
        .await;
        if let Ok(Err(e)) = result {
            tracing::debug!(error = %e, "closing the WebSocket failed");
        }
    }

    fn is_secure(&self) -> bool {
        true
    }
}

/// XEP-0156 discovery: `host-meta` (XRD) and `host-meta.json`.
#[derive(Debug, Default)]
pub struct HostMeta;

/// The WebSocket URL for a request's `Host`, if it is a plausible host[:port].
fn websocket_url(request: &Request<Incoming>) -> Option<String> {
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))?;
    let plausible = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    plausible.then(|| format!("wss://{host}{PATH}"))
}

#[async_trait]
impl Handler for HostMeta {
    async fn handle(
        &self,
        request: Request<Incoming>,
        _context: &RequestContext,
    ) -> Response<ResponseBody> {
        let json = match request.uri().path() {
            HOST_META => false,
            p if p == format!("{HOST_META}.json") => true,
            _ => return text(StatusCode::NOT_FOUND, "not found\n"),
        };
        let Some(url) = websocket_url(&request) else {
            return text(StatusCode::BAD_REQUEST, "a Host header is required\n");
        };
        let (body, content_type) = if json {
            let document = serde_json::json!({
                "links": [{ "rel": ALT_CONNECTION, "href": url }]
            });
            (document.to_string(), "application/json")
        } else {
            let link =
                stanza::element("Link", XRD, &[("rel", ALT_CONNECTION), ("href", &url)]).build();
            let mut out = Vec::new();
            if let Err(e) = Element::builder("XRD", XRD)
                .append(link)
                .build()
                .write_to_decl(&mut out)
            {
                tracing::error!(error = %e, "cannot write host-meta");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
            }
            (
                String::from_utf8_lossy(&out).into_owned(),
                "application/xrd+xml",
            )
        };
        let mut response = Response::new(full(body));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
        response
    }
}
