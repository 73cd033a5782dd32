//! Load generator for Bridgehead's XEP-0114 component path. Run with:
//!
//! ```sh
//! cargo build --release --examples
//! target/release/bridgehead serve -c examples/bench/bridgehead-bench.toml &
//! target/release/examples/loadgen handshake --count 500
//! target/release/examples/loadgen route --secs 10 --window 100
//! target/release/examples/loadgen route --secs 10 --rate 20000
//! # two nodes of a cluster (examples/bench/cluster-n1.toml, -n2.toml): across nodes
//! target/release/examples/loadgen --addr 127.0.0.1:5233 --ca data-bench-n1/pki/ca.crt \
//!     route --secs 10 --window 200 --echo-addr 127.0.0.1:5243
//! target/release/examples/loadgen idle --count 1000 --server-pid $(pgrep -f 'bridgehead serve')
//! ```
//!
//! Components are tokio-xmpp `xmlstream` clients over direct TLS trusting the server's dev
//! CA (`--ca`). `route` runs two components: the sender sends messages to the echo
//! component, which sends each one back, so every round trip is two routed stanzas. With
//! `--window N` it keeps N in flight and reports the saturated rate; with `--rate R` it
//! paces sends at R round trips per second and reports round-trip latency percentiles.
//! Figures and the machine they were measured on go in `docs/performance.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

#[path = "bench/support.rs"]
mod support;
use futures::{SinkExt, StreamExt};
use minidom::Element;
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio_xmpp::xmlstream::{initiate_stream, StreamHeader, Timeouts, XmlStream};
use xmpp_parsers::component::Handshake;

const NS: &str = "jabber:component:accept";

type Stream = XmlStream<BufStream<tokio_rustls::client::TlsStream<TcpStream>>, Element>;

#[derive(Parser)]
struct Args {
    /// The component listener.
    #[arg(long, default_value = "127.0.0.1:5223")]
    addr: SocketAddr,
    /// The CA that issued the server certificate.
    #[arg(long, default_value = "data-bench/pki/ca.crt")]
    ca: PathBuf,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Sequential handshakes (TLS + stream + XEP-0114), latency percentiles.
    Handshake {
        #[arg(long, default_value_t = 500)]
        count: usize,
    },
    /// Routed stanzas between two components.
    Route {
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Round trips kept in flight (saturation mode).
        #[arg(long, default_value_t = 100)]
        window: usize,
        /// Paced round trips per second (latency mode); overrides --window.
        #[arg(long)]
        rate: Option<u64>,
        /// Where the echo component logs in (another node of a cluster: every stanza
        /// then crosses nodes); the sender's `--addr` by default.
        #[arg(long)]
        echo_addr: Option<SocketAddr>,
    },
    /// Hold N idle component connections and report the server's resident memory.
    Idle {
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// The server's process id (for /proc/PID/status).
        #[arg(long)]
        server_pid: u32,
    },
}

fn tls_config(ca: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let roots: Vec<_> = bridgehead::pki::input::read_certificates(ca)
        .expect("read the CA")
        .into_iter()
        .map(|c| c.der)
        .collect();
    bridgehead::tls::client_config(&roots).expect("TLS client config")
}

async fn login(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    name: &str,
    secret: &str,
) -> Stream {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let server_name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let io = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(server_name, tcp)
        .await
        .expect("TLS");
    let header = StreamHeader {
        from: None,
        to: Some(name.to_owned().into()),
        id: None,
    };
    let mut pending = initiate_stream(BufStream::new(io), NS, header, Timeouts::tight())
        .await
        .expect("stream");
    let id = pending.take_header().id.expect("stream id").into_owned();
    let mut stream: Stream = pending.skip_features();
    stream
        .send(&Handshake::from_stream_id_and_password(id, secret))
        .await
        .expect("send handshake");
    let reply = stream.next().await.expect("reply").expect("element");
    assert!(reply.is("handshake", NS), "handshake refused: {reply:?}");
    stream
}

/// The stream with an owned-item `Sink`, so it can be split into a sender and a receiver
/// (xmlstream's `Sink<&Element>` would tie every sent element to the split's lifetime).
struct Owned(Stream);

impl futures::Stream for Owned {
    type Item = <Stream as futures::Stream>::Item;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_next(cx)
    }
}

impl futures::Sink<Element> for Owned {
    type Error = std::io::Error;

    fn poll_ready(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        futures::Sink::<&Element>::poll_ready(std::pin::Pin::new(&mut self.get_mut().0), cx)
    }

    fn start_send(self: std::pin::Pin<&mut Self>, item: Element) -> Result<(), Self::Error> {
        futures::Sink::<&Element>::start_send(std::pin::Pin::new(&mut self.get_mut().0), &item)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        futures::Sink::<&Element>::poll_flush(std::pin::Pin::new(&mut self.get_mut().0), cx)
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        futures::Sink::<&Element>::poll_close(std::pin::Pin::new(&mut self.get_mut().0), cx)
    }
}

fn message(from: &str, to: &str, id: u64) -> Element {
    Element::builder("message", NS)
        .attr(rxml::xml_ncname!("from").to_owned(), from)
        .attr(rxml::xml_ncname!("to").to_owned(), to)
        .attr(rxml::xml_ncname!("id").to_owned(), id.to_string())
        .append(Element::builder("body", NS).append("load").build())
        .build()
}

fn report(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label}: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
        samples.len(),
        support::percentile_ms(&samples, 0.50),
        support::percentile_ms(&samples, 0.99),
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let tls = tls_config(&args.ca);
    match args.mode {
        Mode::Handshake { count } => {
            let mut samples = Vec::with_capacity(count);
            for _ in 0..count {
                let started = Instant::now();
                let stream = login(args.addr, &tls, "bench-a.localhost", "bench-secret-a").await;
                samples.push(started.elapsed());
                drop(stream);
            }
            report("component handshake (TCP+TLS+stream+XEP-0114)", samples);
        }
        Mode::Route {
            secs,
            window,
            rate,
            echo_addr,
        } => {
            let echo_addr = echo_addr.unwrap_or(args.addr);
            route(args.addr, echo_addr, &tls, secs, window, rate).await
        }
        Mode::Idle { count, server_pid } => {
            let before = support::rss_kib(server_pid);
            let mut held = Vec::with_capacity(count);
            for _ in 0..count {
                held.push(login(args.addr, &tls, "idle.localhost", "bench-secret-idle").await);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = support::rss_kib(server_pid);
            println!(
                "idle: {count} TLS component connections; server RSS {before} KiB before, {after} KiB after: {:.1} KiB per connection",
                (after.saturating_sub(before)) as f64 / count as f64
            );
            drop(held);
        }
    }
}

async fn route(
    addr: SocketAddr,
    echo_addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    secs: u64,
    window: usize,
    rate: Option<u64>,
) {
    let sender = login(addr, tls, "bench-a.localhost", "bench-secret-a").await;
    let mut echo = login(echo_addr, tls, "bench-b.localhost", "bench-secret-b").await;
    // The echo component answers every message to its sender.
    tokio::spawn(async move {
        while let Some(Ok(stanza)) = echo.next().await {
            if stanza.name() != "message" {
                continue;
            }
            let id: u64 = stanza
                .attr("id")
                .and_then(|id| id.parse().ok())
                .unwrap_or(0);
            let reply = message(
                "echo@bench-b.localhost",
                stanza.attr("from").unwrap_or_default(),
                id,
            );
            if echo.send(&reply).await.is_err() {
                break;
            }
        }
    });
    let (mut tx, mut rx) = Owned(sender).split();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let sent_at = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        u64,
        Instant,
    >::new()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(
        rate.map_or(window, |_| 100_000),
    ));
    let sending = {
        let sent_at = Arc::clone(&sent_at);
        let in_flight = Arc::clone(&in_flight);
        tokio::spawn(async move {
            let mut id = 0u64;
            let pace = rate.map(|r| Duration::from_secs_f64(1.0 / r as f64));
            let mut next_send = Instant::now();
            while Instant::now() < deadline {
                let permit = in_flight.acquire().await.expect("semaphore");
                permit.forget();
                if let Some(pace) = pace {
                    next_send += pace;
                    tokio::time::sleep_until(next_send.into()).await;
                }
                id += 1;
                sent_at.lock().expect("lock").insert(id, Instant::now());
                if tx
                    .send(message(
                        "load@bench-a.localhost",
                        "echo@bench-b.localhost",
                        id,
                    ))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            id
        })
    };
    let mut latencies = Vec::new();
    let mut received = 0u64;
    while let Ok(Some(Ok(stanza))) = tokio::time::timeout(Duration::from_secs(2), rx.next()).await {
        if stanza.name() != "message" {
            continue;
        }
        received += 1;
        in_flight.add_permits(1);
        if let Some(at) = stanza
            .attr("id")
            .and_then(|id| id.parse::<u64>().ok())
            .and_then(|id| sent_at.lock().expect("lock").remove(&id))
        {
            latencies.push(at.elapsed());
        }
        if Instant::now() >= deadline
            && sending.is_finished()
            && sent_at.lock().expect("lock").is_empty()
        {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64().min(secs as f64).max(0.001);
    let sent = sending.await.unwrap_or(0);
    println!(
        "route: {sent} sent, {received} echoed in {elapsed:.1} s: {:.0} round trips/s = {:.0} routed stanzas/s ({})",
        received as f64 / elapsed,
        2.0 * received as f64 / elapsed,
        match rate { Some(r) => format!("paced at {r}/s"), None => format!("window {window}") }
    );
    report(
        "round trip (sender → server → echo → server → sender)",
        latencies,
    );
}
