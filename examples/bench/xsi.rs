//! XSI over HTTPS for the load generators (included with `#[path]`; not an example itself):
//! the load users, keep-alive connections, one request at a time, and streaming channels.
#![allow(dead_code)] // not every generator uses every helper

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// The password of every load user.
pub(crate) const PASSWORD: &str = "load-pass";
pub(crate) const XSI_NS: &str = "http://schema.broadsoft.com/xsi";

pub(crate) fn user(n: usize) -> String {
    format!("load{n}@localhost")
}

pub(crate) fn basic(user: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{PASSWORD}"))
    )
}

pub(crate) struct Client {
    pub(crate) addr: SocketAddr,
    pub(crate) tls: tokio_rustls::TlsConnector,
}

/// An HTTP/2 connection: many channels, one stream each.
pub(crate) type H2 = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

impl Client {
    async fn tls_stream(
        &self,
        tls: &tokio_rustls::TlsConnector,
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        tls.connect(name, tcp).await.expect("TLS")
    }

    pub(crate) async fn connect(&self) -> SendRequest<Full<Bytes>> {
        let stream = self.tls_stream(&self.tls).await;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP");
        tokio::spawn(connection);
        sender
    }

    /// An HTTP/2 connection (`tls` offers ALPN h2).
    pub(crate) async fn connect_h2(&self, tls: &tokio_rustls::TlsConnector) -> H2 {
        let stream = self.tls_stream(tls).await;
        let (sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await
        .expect("HTTP/2");
        tokio::spawn(connection);
        sender
    }
}

pub(crate) fn request(
    method: &str,
    path: &str,
    auth: &str,
    body: String,
) -> hyper::Request<Full<Bytes>> {
    hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("authorization", auth)
        .header("content-type", "application/xml")
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

/// Sends one request on `sender` and reads the whole answer (status 0: connection gone).
pub(crate) async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    request: hyper::Request<Full<Bytes>>,
) -> (u16, String) {
    if sender.ready().await.is_err() {
        return (0, String::new());
    }
    let Ok(response) = sender.send_request(request).await else {
        return (0, String::new());
    };
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub(crate) fn text_between<'a>(document: &'a str, start: &str, end: &str) -> Option<&'a str> {
    document.split(start).nth(1)?.split(end).next()
}

/// An open channel: its id; its stream is read by a task that forwards documents.
pub(crate) struct Opened {
    pub(crate) channel_id: String,
}

fn channel_request(n: usize) -> hyper::Request<Full<Bytes>> {
    let body = format!(
        "<Channel xmlns=\"{XSI_NS}\"><channelSetId>load-set-{n}</channelSetId><priority>1</priority><weight>50</weight><expires>3600</expires></Channel>"
    );
    request(
        "POST",
        "/com.broadsoft.async/com.broadsoft.xsi-events/v2.0/channel",
        &basic(&user(n)),
        body,
    )
}

pub(crate) async fn open_channel(
    client: &Client,
    n: usize,
    documents: Option<tokio::sync::mpsc::UnboundedSender<(usize, String, Instant)>>,
) -> Opened {
    let mut sender = client.connect().await;
    let response = sender
        .send_request(channel_request(n))
        .await
        .expect("channel response");
    channel_opened(response, n, documents, sender).await
}

/// A channel on an HTTP/2 connection shared with others.
pub(crate) async fn open_channel_h2(mut sender: H2, n: usize) -> Opened {
    sender.ready().await.expect("HTTP/2 stream");
    let response = sender
        .send_request(channel_request(n))
        .await
        .expect("channel response");
    channel_opened(response, n, None, ()).await
}

/// Reads the `Channel` answer of channel `n`, then keeps reading its stream (and `keep`,
/// its connection) in a task, sending documents to `documents`.
async fn channel_opened<K: Send + 'static>(
    response: hyper::Response<hyper::body::Incoming>,
    n: usize,
    documents: Option<tokio::sync::mpsc::UnboundedSender<(usize, String, Instant)>>,
    keep: K,
) -> Opened {
    assert_eq!(response.status(), 200, "channel refused");
    let mut stream = response.into_body();
    let first = loop {
        match stream.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    break String::from_utf8_lossy(&data).into_owned();
                }
            }
            _ => panic!("channel stream ended early"),
        }
    };
    let channel_id = text_between(&first, "<channelId>", "</channelId>")
        .expect("channelId")
        .to_owned();
    tokio::spawn(async move {
        let _keep = keep;
        while let Some(Ok(frame)) = stream.frame().await {
            if let (Ok(data), Some(out)) = (frame.into_data(), documents.as_ref()) {
                let _ = out.send((
                    n,
                    String::from_utf8_lossy(&data).into_owned(),
                    Instant::now(),
                ));
            }
        }
    });
    Opened { channel_id }
}

pub(crate) async fn open_many(
    client: &Arc<Client>,
    users: std::ops::Range<usize>,
    documents: Option<tokio::sync::mpsc::UnboundedSender<(usize, String, Instant)>>,
) -> Vec<Opened> {
    let count = users.len();
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for n in users {
        let (client, gate, documents) = (Arc::clone(client), Arc::clone(&gate), documents.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("gate");
            (n, open_channel(&client, n, documents).await)
        });
    }
    gather(tasks, count, started, "").await
}

/// The opened channels in user order, once every task is done; reports the rate.
async fn gather(
    mut tasks: tokio::task::JoinSet<(usize, Opened)>,
    count: usize,
    started: Instant,
    how: &str,
) -> Vec<Opened> {
    let mut opened: Vec<(usize, Opened)> = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        opened.push(done.expect("open"));
    }
    opened.sort_by_key(|(n, _)| *n);
    println!(
        "opened {count} channels{how} in {:.1} s ({:.0}/s)",
        started.elapsed().as_secs_f64(),
        count as f64 / started.elapsed().as_secs_f64()
    );
    opened.into_iter().map(|(_, o)| o).collect()
}

/// [`open_many`] over HTTP/2: `per_connection` channels share each connection.
pub(crate) async fn open_many_h2(
    client: &Arc<Client>,
    users: std::ops::Range<usize>,
    per_connection: usize,
    tls: &tokio_rustls::TlsConnector,
) -> Vec<Opened> {
    let count = users.len();
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    let mut connection = None;
    for (i, n) in users.enumerate() {
        if i % per_connection.max(1) == 0 {
            connection = Some(client.connect_h2(tls).await);
        }
        let (sender, gate) = (connection.clone().expect("a connection"), Arc::clone(&gate));
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("gate");
            (n, open_channel_h2(sender, n).await)
        });
    }
    let how = format!(" over HTTP/2 ({per_connection} per connection)");
    gather(tasks, count, started, &how).await
}
