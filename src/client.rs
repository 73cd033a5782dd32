//! The XSI client library: what a softphone embeds to reach an XSP farm the way the Webex
//! app does (and what `bridgehead doctor` and the example softphone use).
//!
//! What it does now:
//!
//! - **Addresses**: given in order, or discovered with [`XsiClient::discover`] from
//!   `_xsi-client._tcp.<domain>` (priority, then weight, RFC 2782) with the domain's own
//!   address as the fallback ([`crate::dns`]).
//! - **One selected address** for every request, and the cookies the XSP sets (its node
//!   affinity cookie among them) sent back on every later request, so a load balancer
//!   keeps the client on one node.
//! - **Failover** ([`failover`]): each request is tried up to `tries` times (3); a network
//!   or TLS error or no answer within `attempt_timeout` (2 s) moves on to the next address
//!   at once; a 5xx also blocks the address for `block_for`; when every address is
//!   blocked, one is picked at random and unblocked when it answers; the list wraps.
//! - **An event channel** kept alive ([`XsiClient::run_channel`]): heartbeats, a new
//!   channel in the same set after two failed heartbeats in a row (or when the server ends
//!   it), every event acknowledged.
//! - **Status per interface**: [`XsiClient::status`] says green or red for XSI-Actions
//!   (the last request's outcome) and XSI-Events (a channel is open), for an app to show.
//!
//! Requests go through a [`Transport`]: [`HttpsTransport`] over rustls and hyper in
//! production, a scripted one in the unit tests (on paused time).
//!

mod actions;
mod events;
pub mod failover;
mod http;
mod subscriptions;

pub use events::{ChannelError, ChannelOptions, Notice, OpenChannel};
pub use http::HttpsTransport;
pub use subscriptions::Granted;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;

use failover::{Failure, Selector};

/// One address of the farm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name (also the TLS server name and the `Host` header).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Where to connect, when already resolved (by [`crate::dns::Discovery`]); `None`
    /// resolves `host` with the system's resolver at each connection.
    pub addr: Option<std::net::IpAddr>,
}

impl Target {
    /// `host:port`, resolved at each connection.
    pub fn new(host: &str, port: u16) -> Self {
        Target {
            host: host.to_owned(),
            port,
            addr: None,
        }
    }

    /// This target, connecting to `addr` (TLS still checks `host`).
    pub fn at(mut self, addr: std::net::IpAddr) -> Self {
        self.addr = Some(addr);
        self
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)?;
        if let Some(addr) = self.addr {
            write!(f, " ({addr})")?;
        }
        Ok(())
    }
}

/// A request, relative to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XsiRequest {
    /// `GET`, `PUT`, `POST`, `DELETE`.
    pub method: String,
    /// Path and query, e.g. `/com.broadsoft.xsi-actions/v2.0/user/alice@example.com/profile`.
    pub path: String,
    /// Headers besides `Cookie` (the client adds its cookies).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// A streamed answer (an event channel): the response comes back after its headers,
    /// with the body's chunks in [`XsiResponse::stream`].
    pub streamed: bool,
}

/// An answer.
#[derive(Debug)]
pub struct XsiResponse {
    /// The HTTP status.
    pub status: u16,
    /// `Set-Cookie` values.
    pub set_cookies: Vec<String>,
    /// The body (empty when streamed).
    pub body: Vec<u8>,
    /// A streamed body's chunks, as they arrive; closed when the stream ends.
    pub stream: Option<tokio::sync::mpsc::Receiver<Vec<u8>>>,
}

/// Why one attempt got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

/// Sends one request to one target (see the module docs).
#[async_trait]
pub trait Transport: Send + Sync {
    /// One attempt: an HTTP answer, whatever its status, or why there was none.
    async fn send(
        &self,
        target: &Target,
        request: &XsiRequest,
    ) -> Result<XsiResponse, TransportError>;
}

/// The timings of the failover rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// An attempt without an answer in this long failed. Default 2 s.
    pub attempt_timeout: Duration,
    /// Attempts per request. Default 3.
    pub tries: u32,
    /// How long a 5xx blocks an address. Default 5 min.
    pub block_for: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            attempt_timeout: Duration::from_secs(2),
            tries: 3,
            block_for: Duration::from_secs(300),
        }
    }
}

/// What went wrong with a request, after every attempt.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Every attempt failed; the last reason.
    #[error("no XSP answered after {tries} attempts; the last, at {target}: {reason}")]
    Exhausted {
        /// Attempts made.
        tries: u32,
        /// The last address tried.
        target: String,
        /// Why it failed.
        reason: String,
    },
    /// Discovery found nothing.
    #[error(transparent)]
    Discovery(#[from] crate::dns::DnsError),
    /// The XSP answered with an error (its `ErrorInfo` summary, when it sent one).
    #[error("the XSP answered HTTP {status}: {summary}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// What the XSP said.
        summary: String,
    },
    /// The answer was not the document asked for.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// Green or red, for an app to show per interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Nothing tried yet.
    Unknown,
    /// The last request was answered.
    Green,
    /// The last request failed on every attempt.
    Red,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Green => "green",
            Health::Red => "red",
        })
    }
}

/// The status of each interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// XSI-Actions: the last request was answered (green) or failed on every attempt.
    pub actions: Health,
    /// XSI-Events: green while a channel is open, red while it is being rebuilt.
    pub events: Health,
    /// The credentials: red after a 401, green after any other answer below 400.
    pub authentication: Health,
}

struct State {
    selector: Selector,
    cookies: Vec<(String, String)>,
}

/// The client (see the module docs).
pub struct XsiClient<T> {
    targets: Vec<Target>,
    transport: T,
    timings: Timings,
    state: Mutex<State>,
    status: tokio::sync::watch::Sender<Status>,
}

impl<T> std::fmt::Debug for XsiClient<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XsiClient")
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> XsiClient<T> {
    /// A client over `targets` (in the order to try; at least one) through `transport`.
    pub fn new(targets: Vec<Target>, transport: T, timings: Timings) -> Self {
        let count = targets.len();
        XsiClient {
            targets,
            transport,
            timings,
            state: Mutex::new(State {
                selector: Selector::new(count, timings.block_for),
                cookies: Vec::new(),
            }),
            status: tokio::sync::watch::Sender::new(Status {
                actions: Health::Unknown,
                events: Health::Unknown,
                authentication: Health::Unknown,
            }),
        }
    }

    /// A client over the `_xsi-client._tcp.<domain>` targets (or `domain:443`), each
    /// address of each target (A/AAAA, asked of the same resolver) one entry of the
    /// list; a target whose addresses cannot be resolved now is resolved at connection.
    pub async fn discover(
        discovery: &crate::dns::Discovery,
        domain: &str,
        transport: T,
        timings: Timings,
    ) -> Result<Self, ClientError> {
        let endpoints = discovery.endpoints("_xsi-client._tcp", domain, 443).await?;
        let mut targets = Vec::new();
        for endpoint in endpoints {
            let target = Target::new(&endpoint.host, endpoint.port);
            match discovery.addresses(&endpoint.host).await {
                Ok(addresses) if !addresses.is_empty() => {
                    targets.extend(addresses.into_iter().map(|addr| target.clone().at(addr)))
                }
                _ => targets.push(target),
            }
        }
        Ok(XsiClient::new(targets, transport, timings))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The addresses, in order.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The address requests go to now.
    pub fn selected(&self) -> &Target {
        let index = self
            .state()
            .selector
            .current(tokio::time::Instant::now(), |n| {
                rand::thread_rng().gen_range(0..n)
            });
        &self.targets[index]
    }

    /// The interfaces' status now.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// The interfaces' status, told on every change (what an app shows).
    pub fn watch_status(&self) -> tokio::sync::watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// Changes the status with `change`, telling watchers when it changed.
    fn update_status(&self, change: impl FnOnce(&mut Status)) {
        self.status.send_if_modified(|status| {
            let before = *status;
            change(status);
            *status != before
        });
    }

    /// Sends `request` under the failover rules, with the cookies kept so far.
    pub async fn request(&self, mut request: XsiRequest) -> Result<XsiResponse, ClientError> {
        let mut last = None;
        for _ in 0..self.timings.tries.max(1) {
            let (index, cookie) = {
                let mut state = self.state();
                let index = state.selector.current(tokio::time::Instant::now(), |n| {
                    rand::thread_rng().gen_range(0..n)
                });
                let cookie = state
                    .cookies
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                (index, cookie)
            };
            request
                .headers
                .retain(|(name, _)| !name.eq_ignore_ascii_case("cookie"));
            if !cookie.is_empty() {
                request.headers.push(("cookie".into(), cookie));
            }
            let target = &self.targets[index];
            let attempt = tokio::time::timeout(
                self.timings.attempt_timeout,
                self.transport.send(target, &request),
            )
            .await;
            let failure = match attempt {
                Ok(Ok(response)) if response.status < 500 => {
                    {
                        let mut state = self.state();
                        state.selector.succeeded(index);
                        remember_cookies(&mut state.cookies, &response.set_cookies);
                    }
                    let status = response.status;
                    self.update_status(|s| {
                        s.actions = Health::Green;
                        match status {
                            401 => s.authentication = Health::Red,
                            0..=399 => s.authentication = Health::Green,
                            _ => {}
                        }
                    });
                    return Ok(response);
                }
                Ok(Ok(response)) => (Failure::ServerError, format!("HTTP {}", response.status)),
                Ok(Err(e)) => (Failure::Network, e.0),
                Err(_) => (
                    Failure::Timeout,
                    format!("no answer within {:?}", self.timings.attempt_timeout),
                ),
            };
            tracing::debug!(%target, reason = %failure.1, "XSI attempt failed; moving on");
            self.state()
                .selector
                .failed(index, failure.0, tokio::time::Instant::now());
            last = Some((target.to_string(), failure.1));
        }
        self.update_status(|s| s.actions = Health::Red);
        let (target, reason) = last.unwrap_or_default();
        Err(ClientError::Exhausted {
            tries: self.timings.tries.max(1),
            target,
            reason,
        })
    }
}

impl XsiRequest {
    /// A request carrying `authorization` and, when not empty, an XML `body`.
    pub fn xml(method: &str, path: String, authorization: &str, body: Vec<u8>) -> Self {
        let mut headers = vec![("authorization".to_owned(), authorization.to_owned())];
        if !body.is_empty() {
            headers.push(("content-type".to_owned(), "application/xml".to_owned()));
        }
        XsiRequest {
            method: method.to_owned(),
            path,
            headers,
            body,
            streamed: false,
        }
    }
}

/// `response` when its status is `expected`; otherwise [`ClientError::Refused`] with the
/// `ErrorInfo` summary the XSP sent.
fn expect(response: XsiResponse, expected: u16) -> Result<XsiResponse, ClientError> {
    #[derive(serde::Deserialize)]
    struct ErrorInfo {
        summary: Option<String>,
    }
    if response.status == expected {
        return Ok(response);
    }
    let summary = decode::<ErrorInfo>(&response.body)
        .ok()
        .and_then(|e| e.summary)
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&response.body)
                .trim()
                .chars()
                .take(200)
                .collect()
        });
    Err(ClientError::Refused {
        status: response.status,
        summary,
    })
}

/// Reads an XSI document into `T`.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    let text = std::str::from_utf8(body).map_err(|e| ClientError::Unexpected(e.to_string()))?;
    quick_xml::de::from_str(text).map_err(|e| ClientError::Unexpected(e.to_string()))
}

/// A user id as one URI path segment.
pub fn path_segment(user: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
        .add(b' ')
        .add(b'"')
        .add(b'#')
        .add(b'%')
        .add(b'/')
        .add(b'?');
    percent_encoding::utf8_percent_encode(user, SEGMENT).to_string()
}

/// The `Authorization` value of HTTP Basic for `user` and `password` (UTF-8, as the XSP
/// decodes it).
pub fn basic_authorization(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// The value of cookie `name` among `set_cookies`, if one sets it (the last one wins).
pub fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    let mut jar = Vec::new();
    remember_cookies(&mut jar, set_cookies);
    jar.into_iter()
        .find(|(known, _)| known == name)
        .map(|(_, value)| value)
}

/// Keeps `name=value` of each `Set-Cookie` (a later one of the same name replaces it).
fn remember_cookies(jar: &mut Vec<(String, String)>, set_cookies: &[String]) {
    for header in set_cookies {
        let pair = header.split(';').next().unwrap_or_default().trim();
        if let Some((name, value)) = pair.split_once('=') {
            jar.retain(|(known, _)| known != name);
            jar.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
}

#[cfg(test)]
mod tests;
