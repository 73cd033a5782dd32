//! The admin listener: plain HTTP/1.1 on a private address (default 127.0.0.1:9090).
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /healthz` | `ok` while the node serves; 503 with one line per reason while its PostgreSQL store or its cluster messaging (NATS) is down |
//! | `GET /metrics` | the metrics in Prometheus text format ([`crate::telemetry`]) |
//! | `GET /` | the status page ([`page`]) |
//! | `GET /api/node` | version, uptime, listeners, the served certificate, live counts |
//! | `GET /api/components` | component connections |
//! | `GET /api/sessions` | client sessions (c2s and WebSocket) |
//! | `GET /api/channels` | XSI-Events channels |
//! | `GET /api/subscriptions` | XSI-Events subscriptions |
//! | `GET /api/refusals` | the latest refusals, newest first |
//! | `POST /api/reload` | reload the configuration and certificates ([`crate::reload`]) |
//! | `POST /api/components/{name}/kick` | disconnect a component's connections |
//! | `POST /api/sessions/{jid}/kick` | disconnect a session (full JID) or an account's (bare) |
//! | `DELETE /api/channels/{id}` | end an event channel |
//!
//! Answers under `/api/` are JSON; errors are `{"error": "…"}` with 400, 401, 404 or
//! 405, and for a refused reload 409 (a restart-only key changed) or 422 (the new
//! configuration or certificates fail the start-up checks). With `[admin] token_file` (required off loopback)
//! every `/api/` request needs `Authorization: Bearer <token>`, compared in constant time;
//! `/healthz`, `/metrics` and the page itself (which asks for the token) do not. `/api/`
//! also refuses (403) a `Host` that is not an IP address, `localhost` or the node's FQDN,
//! and an `Origin` of another host, so that a web page elsewhere cannot reach it through
//! the operator's browser (DNS rebinding, cross-site POST).

mod api;
mod page;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use subtle::ConstantTimeEq;

use crate::net::listener::{Listener, PreAuthLimits};
use crate::reload::Reloader;
use crate::shutdown::Shutdown;
use crate::xmpp::router::Router;
use crate::xsi::events::hub::Hub;

pub use api::{ListenerView, NodeView};

/// Most admin connections at once.
const MAX_CONNECTIONS: usize = 64;

/// Binds the admin listener; the error names the address that failed.
pub fn bind(addrs: &[SocketAddr]) -> Result<Listener, (SocketAddr, std::io::Error)> {
    // Every connection counts as authenticated: the API checks its token per request.
    let preauth = PreAuthLimits {
        total: MAX_CONNECTIONS,
        per_address: MAX_CONNECTIONS,
    };
    Listener::bind("admin", addrs, MAX_CONNECTIONS, preauth)
}

/// What the admin listener reads and acts on.
pub struct AdminState {
    /// The Prometheus recorder's handle.
    pub metrics: Option<PrometheusHandle>,
    /// Components and client sessions.
    pub router: Router,
    /// Event channels and subscriptions.
    pub hub: Hub,
    /// What `/healthz` checks.
    pub health: Health,
    /// Reloads, the configuration in force and the served certificate.
    pub reloader: Arc<Reloader>,
    /// When the node started.
    pub started: time::OffsetDateTime,
    /// The listeners and their bound addresses.
    pub listeners: Vec<ListenerView>,
}

/// What the node needs from outside itself to serve: its store and, in a cluster, the
/// messaging between nodes.
pub struct Health {
    /// The store (PostgreSQL can be down; SQLite cannot).
    pub store: Arc<dyn crate::store::Store>,
    /// The cluster's messaging, with `[cluster]`.
    pub cluster: Option<crate::cluster::Cluster>,
}

impl Health {
    /// Every reason the node cannot serve fully now; empty when healthy.
    pub fn problems(&self) -> Vec<String> {
        let cluster = self.cluster.as_ref().map(crate::cluster::Cluster::health);
        [self.store.health()]
            .into_iter()
            .chain(cluster)
            .filter_map(Result::err)
            .collect()
    }
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").finish_non_exhaustive()
    }
}

/// Serves admin requests until shutdown (the listener says `listening` at once).
pub fn serve(
    listener: Listener,
    shutdown: Shutdown,
    state: Arc<AdminState>,
) -> impl std::future::Future<Output = ()> + Send {
    let for_connections = shutdown.clone();
    listener.serve(shutdown, move |stream, _peer, admission| {
        let shutdown = for_connections.clone();
        let state = Arc::clone(&state);
        async move {
            if admission.authenticated().is_err() {
                return tracing::debug!("too many admin connections");
            }
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(request, &state).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "admin connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        }
    })
}

/// An admin answer before it is encoded.
pub(crate) enum Answer {
    /// A JSON document with 200.
    Json(serde_json::Value),
    /// `{"error": …}` with this status.
    Error(StatusCode, String),
    /// Another body.
    Body(StatusCode, &'static str, Bytes),
}

impl Answer {
    fn into_response(self) -> Response<Full<Bytes>> {
        let (status, content_type, body) = match self {
            Answer::Json(value) => (
                StatusCode::OK,
                "application/json",
                Bytes::from(value.to_string()),
            ),
            Answer::Error(status, message) => (
                status,
                "application/json",
                Bytes::from(serde_json::json!({ "error": message }).to_string()),
            ),
            Answer::Body(status, content_type, body) => (status, content_type, body),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
            .headers_mut()
            .insert("cache-control", HeaderValue::from_static("no-store"));
        response
    }
}

async fn route(request: Request<Incoming>, state: &AdminState) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let readable = matches!(method, Method::GET | Method::HEAD);
    let answer = match path.as_str() {
        "/healthz" if readable => {
            let problems = state.health.problems();
            if problems.is_empty() {
                Answer::Body(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    Bytes::from_static(b"ok\n"),
                )
            } else {
                Answer::Body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    Bytes::from(problems.join("\n") + "\n"),
                )
            }
        }
        "/metrics" if readable => Answer::Body(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(metrics(state)),
        ),
        "/" if readable => page::page(),
        "/healthz" | "/metrics" | "/" => not_allowed(),
        api if api.starts_with("/api/") => {
            match same_origin(&request, state).and_then(|()| authorized(&request, state)) {
                Ok(()) => api::answer(&method, &api["/api/".len()..], state).await,
                Err(answer) => answer,
            }
        }
        _ => Answer::Error(StatusCode::NOT_FOUND, format!("no such resource: {path}")),
    };
    answer.into_response()
}

/// `/metrics`: the gauges read from the hub and the served certificate, then the text.
fn metrics(state: &AdminState) -> String {
    let channels = state.hub.channel_views();
    let sets: std::collections::HashSet<&str> = channels.iter().map(|c| c.set.as_str()).collect();
    crate::telemetry::xsi_state(
        channels.len(),
        sets.len(),
        state.hub.subscription_views().len(),
    );
    let not_after = state.reloader.certificate().not_after;
    for listener in &state.listeners {
        if listener.name != "admin" {
            crate::telemetry::certificate_expiry(listener.name, not_after);
        }
    }
    crate::telemetry::render(state.metrics.as_ref())
}

pub(crate) fn not_allowed() -> Answer {
    Answer::Error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into())
}

fn header(request: &Request<Incoming>, name: hyper::header::HeaderName) -> Option<&str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Browsers are kept out of the API unless they come from the page itself: the `Host` must
/// be an IP address, `localhost` or the node's FQDN (a DNS-rebinding page has its own
/// name), and an `Origin`, when a browser sends one, must be that same host (a page
/// elsewhere cannot POST a kick).
fn same_origin(request: &Request<Incoming>, state: &AdminState) -> Result<(), Answer> {
    let host = header(request, hyper::header::HOST).unwrap_or_default();
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let fqdn = state.reloader.config().server.fqdn();
    let known = name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.eq_ignore_ascii_case(&fqdn);
    let origin_ok = header(request, hyper::header::ORIGIN).is_none_or(|origin| {
        origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
    });
    if known && origin_ok {
        Ok(())
    } else {
        crate::telemetry::recent::record("admin", "request from another origin or host name");
        Err(Answer::Error(
            StatusCode::FORBIDDEN,
            "the admin API answers its own page and tools only (Host and Origin must name this listener)".into(),
        ))
    }
}

/// The bearer token check of `/api/` requests (a no-op without `[admin] token_file`).
fn authorized(request: &Request<Incoming>, state: &AdminState) -> Result<(), Answer> {
    let config = state.reloader.config();
    let Some(token) = &config.admin.token else {
        return Ok(());
    };
    let offered = header(request, AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(offered.as_bytes().ct_eq(token.expose().as_bytes())) {
        Ok(())
    } else {
        crate::telemetry::recent::record("admin", "missing or wrong bearer token");
        Err(Answer::Error(
            StatusCode::UNAUTHORIZED,
            "this admin API needs Authorization: Bearer <the token in [admin] token_file>".into(),
        ))
    }
}
