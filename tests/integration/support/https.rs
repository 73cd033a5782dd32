//! A real HTTPS client for the XSI tests: rustls trusting the test CA, hyper's HTTP/1.1
//! or HTTP/2 client (chosen by ALPN), one connection per request unless asked otherwise.
//! Every reply is checked for the affinity cookie, so every test asserts it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

pub const XSI: &str = "/com.broadsoft.xsi-actions/v2.0";

#[derive(Clone)]
pub struct Https {
    pub addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    pub version: hyper::Version,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A TLS client configuration trusting `ca_pem`, offering `alpn`.
pub fn client_tls(ca_pem: &Path, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let roots: Vec<_> = bridgehead::pki::input::read_certificates(ca_pem)
        .unwrap()
        .into_iter()
        .map(|c| c.der)
        .collect();
    let mut config = (*bridgehead::tls::client_config(&roots).unwrap()).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

impl Https {
    /// HTTP/1.1 to `addr`, trusting `ca_pem`.
    pub fn new(addr: SocketAddr, ca_pem: &Path) -> Self {
        Https {
            addr,
            tls: client_tls(ca_pem, &[b"http/1.1"]),
        }
    }

    /// HTTP/1.1 to `addr` with a TLS configuration of the test's own (e.g. a client
    /// certificate for the CTI listener).
    pub fn with_tls(addr: SocketAddr, mut tls: rustls::ClientConfig) -> Self {
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Https {
            addr,
            tls: Arc::new(tls),
        }
    }

    /// The same, negotiating HTTP/2.
    pub fn h2(addr: SocketAddr, ca_pem: &Path) -> Self {
        Https {
            addr,
            tls: client_tls(ca_pem, &[b"h2"]),
        }
    }

    pub async fn tls_stream(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        self.try_tls_stream()
            .await
            .expect("TLS handshake with the HTTPS front")
    }

    pub async fn try_tls_stream(
        &self,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        self.try_request(method, path, headers, body)
            .await
            .unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`Https::request`], with a connection that fails (a node that dies under it) as
    /// an error rather than a panic.
    pub async fn try_request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Reply, String> {
        let failed = |what: &str, e: &dyn std::fmt::Display| format!("{what} {path}: {e}");
        let tls = self
            .try_tls_stream()
            .await
            .map_err(|e| failed("TLS handshake with the HTTPS front for", &e))?;
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let mut builder = Request::builder().method(method).uri(path);
        if !h2 {
            builder = builder.header("host", "localhost");
        } else {
            builder = builder.uri(format!("https://localhost{path}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
            .unwrap();
        let response = if h2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                    .await
                    .map_err(|e| failed("HTTP/2 handshake for", &e))?;
            tokio::spawn(connection);
            sender.send_request(request).await
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| failed("HTTP/1.1 handshake for", &e))?;
            tokio::spawn(connection);
            sender.send_request(request).await
        }
        .map_err(|e| failed("no answer to", &e))?;
        let status = response.status().as_u16();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failed("the body of", &e))?
            .to_bytes();
        let reply = Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            version,
        };
        let cookie = reply.header("set-cookie").unwrap_or_default();
        assert!(
            cookie.starts_with("bridgehead-node=")
                && cookie.contains("Secure")
                && cookie.contains("HttpOnly")
                && cookie.contains("Path=/"),
            "every response carries the affinity cookie: {reply:?}"
        );
        Ok(reply)
    }

    pub async fn get(&self, path: &str, auth: &str) -> Reply {
        self.request(Method::GET, path, &[("authorization", auth)], None)
            .await
    }

    pub async fn put_xml(&self, path: &str, auth: &str, body: &str) -> Reply {
        self.request(
            Method::PUT,
            path,
            &[("authorization", auth), ("content-type", "application/xml")],
            Some(body),
        )
        .await
    }
}

/// Validates `xml` against `schemas/xsi.xsd` (Actions and Events) with xmllint (libxml2).
pub fn assert_valid(xml: &str) {
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/xsi.xsd");
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, xml.as_bytes()).unwrap();
    let output = std::process::Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema", schema])
        .arg(file.path())
        .output()
        .expect("xmllint runs (Debian package libxml2-utils)");
    assert!(
        output.status.success(),
        "{xml}\ndoes not validate: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub const EVENTS: &str = "/com.broadsoft.xsi-events/v2.0";
pub const ASYNC_EVENTS: &str = "/com.broadsoft.async/com.broadsoft.xsi-events/v2.0";

/// An open XSI-Events channel: its own connection, read one chunk at a time.
pub struct EventChannel {
    pub id: String,
    pub expires: u64,
    /// The affinity cookie the answer set (`name=value`).
    pub cookie: String,
    body: hyper::body::Incoming,
    /// What was read past the last whole document (a chunk may arrive in pieces).
    buffered: Vec<u8>,
    _sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

/// The first whole document in `buffered`, taken out of it: up to its root element's end
/// tag, or its start tag when that is self-closing.
fn take_document(buffered: &mut Vec<u8>) -> Option<String> {
    let text = std::str::from_utf8(buffered).ok()?;
    let root_at = text.find("?>")? + text[text.find("?>")?..].find('<')?;
    let name_len = text[root_at + 1..].find([' ', '>', '/'])?;
    let name = &text[root_at + 1..root_at + 1 + name_len];
    let start_tag_end = root_at + text[root_at..].find('>')?;
    let end = if text[..start_tag_end].ends_with('/') {
        start_tag_end + 1
    } else {
        let close = format!("</{name}>");
        text.find(&close)? + close.len()
    };
    let document = text[..end].to_owned();
    buffered.drain(..end);
    assert!(
        document.starts_with("<?xml") && !document.contains('\n'),
        "one single-line document per chunk: {document:?}"
    );
    Some(document)
}

impl EventChannel {
    /// POSTs a `Channel` request and reads the first chunk, the `Channel` answer.
    pub async fn open(https: &Https, auth: &str, channel: &str) -> Result<EventChannel, Reply> {
        let tls = https.tls_stream().await;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::post(format!("{ASYNC_EVENTS}/channel"))
            .header("host", "localhost")
            .header("authorization", auth)
            .header("content-type", "application/xml")
            .body(Full::new(Bytes::from(format!(
                "<Channel xmlns=\"http://schema.broadsoft.com/xsi\">{channel}</Channel>"
            ))))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if status != 200 {
            let body = response.into_body().collect().await.unwrap().to_bytes();
            return Err(Reply {
                status,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                version: hyper::Version::HTTP_11,
            });
        }
        let cookie = headers
            .get("set-cookie")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .expect("the affinity cookie")
            .to_owned();
        let mut channel = EventChannel {
            id: String::new(),
            expires: 0,
            cookie,
            body: response.into_body(),
            buffered: Vec::new(),
            _sender: sender,
        };
        let first = channel.next().await.expect("the Channel document");
        assert_valid(&first);
        channel.id = between(&first, "<channelId>", "</channelId>").to_owned();
        channel.expires = between(&first, "<expires>", "</expires>").parse().unwrap();
        Ok(channel)
    }

    /// The next document (a chunk, read in as many pieces as it came in), or `None` when
    /// the stream ended or stayed silent for 5 s.
    pub async fn next(&mut self) -> Option<String> {
        self.next_within(std::time::Duration::from_secs(5)).await
    }

    pub async fn next_within(&mut self, limit: std::time::Duration) -> Option<String> {
        loop {
            if let Some(document) = take_document(&mut self.buffered) {
                return Some(document);
            }
            let frame = tokio::time::timeout(limit, self.body.frame())
                .await
                .ok()??
                .ok()?;
            if let Ok(data) = frame.into_data() {
                self.buffered.extend_from_slice(&data);
            }
        }
    }

    /// True when the server ended the stream (within 5 s).
    pub async fn ended(&mut self) -> bool {
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(5), self.body.frame()).await,
            Ok(None) | Ok(Some(Err(_)))
        )
    }
}

/// The text between `start` and `end` in `document` (first occurrence).
pub fn between<'a>(document: &'a str, start: &str, end: &str) -> &'a str {
    document
        .split(start)
        .nth(1)
        .and_then(|rest| rest.split(end).next())
        .unwrap_or_else(|| panic!("no {start} in {document}"))
}
