//! The admin listener: plain HTTP/1.1 on a private address (default 127.0.0.1:9090).
//! `GET /healthz` answers `ok` while the node serves; `GET /metrics` renders the metrics
//! in Prometheus text format (see [`crate::telemetry`]).

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::net::listener::{Listener, PreAuthLimits};
use crate::shutdown::Shutdown;

/// Most admin connections at once.
const MAX_CONNECTIONS: usize = 64;

/// Binds the admin listener; the error names the address that failed.
pub fn bind(addrs: &[SocketAddr]) -> Result<Listener, (SocketAddr, std::io::Error)> {
    // The admin port has no authentication: every connection counts as authenticated.
    let preauth = PreAuthLimits {
        total: MAX_CONNECTIONS,
        per_address: MAX_CONNECTIONS,
    };
    Listener::bind("admin", addrs, MAX_CONNECTIONS, preauth)
}

/// Serves admin requests until shutdown.
pub async fn serve(listener: Listener, shutdown: Shutdown, metrics: Option<PrometheusHandle>) {
    let for_connections = shutdown.clone();
    listener
        .serve(shutdown, move |stream, _peer, admission| {
            let shutdown = for_connections.clone();
            let metrics = metrics.clone();
            async move {
                if admission.authenticated().is_err() {
                    return tracing::debug!("too many admin connections");
                }
                let service = hyper::service::service_fn(move |request| {
                    let metrics = metrics.clone();
                    async move { route(request, metrics.as_ref()) }
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
        .await;
}

fn route(
    request: Request<Incoming>,
    metrics: Option<&PrometheusHandle>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let readable = matches!(request.method(), &Method::GET | &Method::HEAD);
    let (status, content_type, body) = match (readable, request.uri().path()) {
        (true, "/healthz") => (
            StatusCode::OK,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"ok\n"),
        ),
        (true, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Bytes::from(metrics.map(PrometheusHandle::render).unwrap_or_default()),
        ),
        (false, "/healthz" | "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"method not allowed\n"),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"not found\n"),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    Ok(response)
}
