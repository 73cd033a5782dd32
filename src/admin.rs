//! The admin listener: plain HTTP/1.1 on a private address (default 127.0.0.1:9090).
//! `GET /healthz` answers `ok` while the node serves; later issues add `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::net::listener::Listener;
use crate::shutdown::Shutdown;

/// Most admin connections at once.
const MAX_CONNECTIONS: usize = 64;

/// Binds the admin listener.
pub fn bind(addr: SocketAddr) -> std::io::Result<Listener> {
    Listener::bind("admin", addr, MAX_CONNECTIONS)
}

/// Serves admin requests until shutdown.
pub async fn serve(listener: Listener, shutdown: Shutdown) {
    let for_connections = shutdown.clone();
    listener
        .serve(shutdown, move |stream, _peer| {
            let shutdown = for_connections.clone();
            async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(route));
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

async fn route(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => (StatusCode::OK, "ok\n"),
        (_, "/healthz") => (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => (StatusCode::NOT_FOUND, "not found\n"),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}
