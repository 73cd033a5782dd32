//! The HTTPS front that XSI-Actions, XSI-Events, XMPP over WebSocket and the admin pages
//! share: one listener (default 8443), TLS from the one builder, HTTP/1.1 and HTTP/2 chosen
//! by ALPN, limits on everything a client controls, the affinity cookie, and dispatch by
//! path prefix to the handlers the subsystems mount.
//!
//! One connection, in order:
//!
//! 1. `net::listener` accepts it into its pre-authentication budget;
//! 2. the TLS handshake runs under `[limits] tls_handshake_timeout_secs` (at most
//!    `http.handshake_timeout_secs`), ended early on shutdown; once it is done the
//!    connection counts against `http.max_connections` instead;
//! 3. hyper serves it, with headers capped (`max_header_bytes`) and due within
//!    `header_read_timeout_secs`, and HTTP/2 streams capped (`max_concurrent_streams`);
//! 4. each request goes to the handler mounted at the longest matching prefix. Unknown paths
//!    get a plain 404. Every response carries the affinity cookie naming this node. After
//!    `max_requests_per_connection` requests an HTTP/1.1 response says `Connection: close`;
//! 5. a connection with no request in flight and no bytes moving for `idle_timeout_secs`
//!    is closed, and on shutdown every connection is closed gracefully. In-flight responses
//!    finish, and streaming bodies must end on the shutdown signal themselves (see
//!    [`RequestContext::shutdown`]).
//!
//! Handlers read bodies through [`read_body`], which enforces `max_body_bytes` and
//! `body_read_timeout_secs` and leaves the error's wording to the handler's own protocol.

mod body;
mod tracked;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, SET_COOKIE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::config::{HttpConfig, LimitsConfig, Live};
use crate::net::listener::Admission;
use crate::shutdown::Shutdown;

pub use body::{read_body, BodyError};

/// The body type every handler answers with (full or streamed).
pub type ResponseBody = BoxBody<Bytes, Infallible>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).boxed()
}

/// A plain-text response with `status`.
pub fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// What a handler knows about the request besides the request itself.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's address.
    pub peer: SocketAddr,
    /// The limits in force (for [`read_body`]).
    pub limits: Arc<HttpConfig>,
    /// The deepest element nesting a request body may have (`[limits] max_xml_depth`).
    pub max_xml_depth: usize,
    /// Fires when the server stops: streaming bodies must end then.
    pub shutdown: Shutdown,
    /// On the CTI listener: the admitted application's identity (its certificate's CN).
    pub client_id: Option<String>,
}

/// A subsystem's request handler, mounted at a path prefix.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The route template of `path` for metrics: a fixed string per resource kind, never
    /// anything taken from the path.
    fn route(&self, _path: &str) -> &'static str {
        "other"
    }

    /// Answers one request.
    async fn handle(
        &self,
        request: Request<Incoming>,
        context: &RequestContext,
    ) -> Response<ResponseBody>;
}

/// Handlers by path prefix.
#[derive(Default, Clone)]
pub struct Routes {
    mounted: Vec<(&'static str, Arc<dyn Handler>)>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.mounted.iter().map(|(prefix, _)| prefix))
            .finish()
    }
}

impl Routes {
    /// Mounts `handler` for every path that starts with `prefix`.
    pub fn mount(mut self, prefix: &'static str, handler: Arc<dyn Handler>) -> Self {
        self.mounted.push((prefix, handler));
        // Longest prefix first, so `/a/b` wins over `/a`.
        self.mounted
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        self
    }

    /// The handler mounted for `path`, with its mount prefix.
    fn find(&self, path: &str) -> Option<(&'static str, &Arc<dyn Handler>)> {
        self.mounted
            .iter()
            .find(|(prefix, _)| path.starts_with(*prefix))
            .map(|(prefix, handler)| (*prefix, handler))
    }
}

/// The HTTPS front: TLS, hyper, limits, cookie, dispatch.
pub struct HttpsFront {
    /// `[limits]`, live: the TLS handshake deadline (`tls_handshake_timeout_secs`, at
    /// most `http.handshake_timeout_secs`) and `max_xml_depth` in force when a
    /// connection starts.
    input: Live<LimitsConfig>,
    /// The TLS configuration, live: a reload swaps the certificate for new handshakes.
    tls: Live<rustls::ServerConfig>,
    routes: Routes,
    limits: Arc<HttpConfig>,
    affinity_cookie: HeaderValue,
    /// `https` or `cti`, for metrics.
    listener: &'static str,
}

impl std::fmt::Debug for HttpsFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsFront")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

/// The `Set-Cookie` value that pins a client to `node_id` behind a load balancer.
pub fn affinity_cookie(name: &str, node_id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{name}={node_id}; Path=/; Secure; HttpOnly"))
        .unwrap_or_else(|_| HeaderValue::from_static("bridgehead-node=invalid; Path=/"))
}

impl HttpsFront {
    /// A front presenting `tls` (with ALPN `h2`, `http/1.1`), serving `routes` under
    /// the live `input` limits.
    pub fn new(
        listener: &'static str,
        tls: Live<rustls::ServerConfig>,
        routes: Routes,
        config: &crate::config::Config,
        input: Live<LimitsConfig>,
    ) -> Self {
        let limits = config.http.clone();
        let affinity_cookie = affinity_cookie(&limits.affinity_cookie, &config.node_id());
        HttpsFront {
            listener,
            input,
            tls,
            routes,
            limits: Arc::new(limits),
            affinity_cookie,
        }
    }

    /// Serves one accepted connection until it ends or the server stops.
    pub async fn handle(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        admission: Admission,
        shutdown: Shutdown,
    ) {
        let input = self.input.get();
        let handshake = input.tls_handshake_within(self.limits.handshake_timeout_secs.get());
        let accept = tokio_rustls::TlsAcceptor::from(self.tls.get()).accept(tcp);
        let tls = match admission.phase(handshake, accept).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                let no_certificate = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|e| matches!(e, rustls::Error::NoCertificatesPresented));
                if no_certificate {
                    tracing::warn!(
                        rule = "absent",
                        "CTI client refused: it presented no certificate"
                    );
                    crate::telemetry::cti_refusal("absent");
                } else {
                    tracing::debug!(error = %e, "TLS handshake failed");
                }
                return;
            }
            Err(end) => {
                tracing::debug!(%end, "TLS handshake did not finish");
                return;
            }
        };
        // HTTP authenticates each request; the connection leaves the pre-authentication
        // budget once its TLS handshake is done (the header read timeout bounds the rest).
        // At max_connections it waits there for a slot, as long as an idle connection lives.
        let idle = Duration::from_secs(self.limits.idle_timeout_secs.get());
        if let Err(end) = admission.phase(idle, admission.wait_for_slot()).await {
            tracing::debug!(%end, "no connection slot came free");
            return;
        }
        let client_id = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(crate::tls::cti::client_identity);
        let (io, activity) = tracked::Tracked::new(tls);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let context = RequestContext {
            peer,
            limits: Arc::clone(&self.limits),
            max_xml_depth: input.max_xml_depth.get(),
            shutdown: shutdown.clone(),
            client_id,
        };
        let front = Arc::clone(&self);
        let counter = Arc::clone(&in_flight);
        let service = hyper::service::service_fn(move |request| {
            let front = Arc::clone(&front);
            let context = context.clone();
            let in_flight = InFlight::enter(&counter);
            let number = served.fetch_add(1, Ordering::Relaxed) + 1;
            async move {
                Ok::<_, Infallible>(front.dispatch(request, &context, number, in_flight).await)
            }
        });

        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(
                self.limits.header_read_timeout_secs.get(),
            ))
            .max_buf_size(self.limits.max_header_bytes.max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.limits.max_concurrent_streams.get())
            .max_header_list_size(self.limits.max_header_bytes as u32);
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);

        let idle_limit = Duration::from_secs(self.limits.idle_timeout_secs.get());
        let mut idle_check = tokio::time::interval(Duration::from_secs(1).min(idle_limit));
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                    return;
                }
                _ = shutdown.cancelled(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = idle_check.tick(), if !closing => {
                    if in_flight.load(Ordering::Relaxed) == 0 && activity.idle_for() >= idle_limit {
                        tracing::debug!("closing an idle HTTP connection");
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }

    async fn dispatch(
        &self,
        request: Request<Incoming>,
        context: &RequestContext,
        number: usize,
        in_flight: InFlight,
    ) -> Response<ResponseBody> {
        let is_http1 = request.version() <= hyper::Version::HTTP_11;
        let started = std::time::Instant::now();
        let (route, mut response) = match self.routes.find(request.uri().path()) {
            Some((prefix, handler)) => (
                (prefix, handler.route(request.uri().path())),
                handler.handle(request, context).await,
            ),
            None => (
                ("none", "unknown"),
                text(StatusCode::NOT_FOUND, "not found\n"),
            ),
        };
        crate::telemetry::http_response(
            self.listener,
            route,
            response.status().as_u16(),
            started.elapsed(),
        );
        let headers = response.headers_mut();
        headers.append(SET_COOKIE, self.affinity_cookie.clone());
        if is_http1 && number >= self.limits.max_requests_per_connection.get() {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        // The request counts as in flight until its body has been sent or dropped.
        response.map(|body| {
            body.map_frame(move |frame| {
                let _held = &in_flight;
                frame
            })
            .boxed()
        })
    }
}

/// Counts a request as in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
