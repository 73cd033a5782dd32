//! [`HttpsTransport`]: one attempt as a real HTTPS/1.1 request over rustls (the one TLS
//! builder's client configuration) and hyper. Each attempt opens its own connection, so
//! that a dead keep-alive connection can never be mistaken for a dead node.

use std::sync::Arc;

use async_trait::async_trait;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use super::{Target, Transport, TransportError, XsiRequest, XsiResponse};

/// HTTPS to the targets, trusting the roots of `tls`.
#[derive(Debug, Clone)]
pub struct HttpsTransport {
    tls: Arc<rustls::ClientConfig>,
}

impl HttpsTransport {
    /// A transport using `tls` (e.g. [`crate::tls::client_config`]).
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        HttpsTransport { tls }
    }
}

fn broken(what: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError(format!("{what}: {e}"))
}

#[async_trait]
impl Transport for HttpsTransport {
    async fn send(
        &self,
        target: &Target,
        request: &XsiRequest,
    ) -> Result<XsiResponse, TransportError> {
        let tcp = match target.addr {
            Some(addr) => tokio::net::TcpStream::connect((addr, target.port)).await,
            None => tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await,
        }
        .map_err(|e| broken("connect", e))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls_pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| broken("server name", e))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await
            .map_err(|e| broken("TLS", e))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| broken("HTTP", e))?;
        let driver = tokio::spawn(connection);
        let mut builder = hyper::Request::builder()
            .method(request.method.as_str())
            .uri(&request.path)
            .header("host", format!("{}:{}", target.host, target.port));
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let outgoing = builder
            .body(Full::new(Bytes::from(request.body.clone())))
            .map_err(|e| broken("request", e))?;
        let response = sender
            .send_request(outgoing)
            .await
            .map_err(|e| broken("HTTP", e))?;
        let status = response.status().as_u16();
        let set_cookies = response
            .headers()
            .get_all(hyper::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        if request.streamed {
            // The chunks go to the caller until the stream ends or the caller drops them;
            // the connection lives as long as the forwarding task.
            let (chunks, stream) = tokio::sync::mpsc::channel(64);
            let mut body = response.into_body();
            tokio::spawn(async move {
                let _connection = driver;
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        if chunks.send(data.to_vec()).await.is_err() {
                            break;
                        }
                    }
                }
                _connection.abort();
            });
            return Ok(XsiResponse {
                status,
                set_cookies,
                body: Vec::new(),
                stream: Some(stream),
            });
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| broken("body", e))?
            .to_bytes()
            .to_vec();
        driver.abort();
        Ok(XsiResponse {
            status,
            set_cookies,
            body,
            stream: None,
        })
    }
}
