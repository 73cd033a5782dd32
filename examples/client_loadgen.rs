//! Load generator for XMPP client sessions: logins per second, idle session memory, and
//! message throughput client → client and client → component. Run with:
//!
//! ```sh
//! cargo build --release --bin bridgehead --examples
//! target/release/bridgehead serve -c examples/bench/bridgehead-bench.toml &
//! PID=$(pgrep -f 'bridgehead serve -c examples/bench')
//! target/release/examples/xsi_events_loadgen users --count 10000   # load0..load9999@localhost
//! L=target/release/examples/client_loadgen
//! $L logins --concurrency 32 --secs 10 --server-pid $PID
//! $L idle --count 10000 --hold-secs 30 --server-pid $PID
//! $L messages --clients 10 --in-flight 10 --secs 10 --target client --server-pid $PID
//! $L messages --clients 10 --in-flight 10 --secs 10 --target component --server-pid $PID
//! $L roundtrips --clients 1 --secs 10            # tokio-xmpp's Client, Nagle on, XEP-0198 on
//! $L roundtrips --clients 10 --in-flight 10 --secs 10
//! ```
//!
//! Every login is the whole thing a client does: TCP, `<starttls/>`, the TLS handshake, a
//! new stream, SCRAM-SHA-256 at the store's iteration count, a new stream, resource
//! binding. The generator keeps SCRAM's SaltedPassword per salt, as real clients do, so
//! its own PBKDF2 does not bound the rate; the server never runs PBKDF2 for SCRAM. Server
//! CPU is read from `/proc/PID/stat`, so the per-core figure holds even though generator
//! and server share the machine. The client streams are written and read with
//! Bridgehead's own stream module, which speaks both sides.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bridgehead::credentials::{digest, hmac, ScramHash};
use bridgehead::xmpp::stanza::element;
use bridgehead::xmpp::stream::{StreamReader, StreamWriter};
use clap::{Parser, Subcommand};
use minidom::Element;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

#[path = "bench/starttls.rs"]
mod starttls;
#[path = "bench/support.rs"]
mod support;

const CLIENT: &str = "jabber:client";
const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const PASSWORD: &str = "load-pass";

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "examples/bench/bridgehead-bench.toml")]
    config: PathBuf,
    #[arg(long, default_value = "127.0.0.1:5222")]
    addr: SocketAddr,
    #[arg(long, default_value = "localhost")]
    domain: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Log in and out as fast as possible.
    Logins {
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        #[arg(long)]
        server_pid: u32,
    },
    /// Hold many idle authenticated sessions; report server memory per session.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        #[arg(long, default_value_t = 30)]
        hold_secs: u64,
        #[arg(long)]
        server_pid: u32,
    },
    /// Message throughput between clients, or between clients and a component.
    Messages {
        #[arg(long, default_value_t = 10)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        in_flight: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        #[arg(long, default_value = "client")]
        target: String,
        #[arg(long, default_value = "127.0.0.1:5223")]
        component_addr: SocketAddr,
        #[arg(long)]
        server_pid: u32,
    },
    /// Ping round trips to the server from tokio-xmpp's own `Client`, as an application
    /// built on it meets the server: Nagle on, XEP-0198 enabled because it is offered.
    Roundtrips {
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Turn Nagle's algorithm off on the clients' sockets.
        #[arg(long)]
        nodelay: bool,
    },
}

type Reader<S> = StreamReader<BufReader<ReadHalf<S>>>;
type Writer<S> = StreamWriter<WriteHalf<S>>;
type Tls = tokio_rustls::client::TlsStream<TcpStream>;

struct Session {
    reader: Reader<Tls>,
    writer: Writer<Tls>,
    full: String,
}

fn streams<S: AsyncRead + AsyncWrite + Unpin>(io: S, ns: &str) -> (Reader<S>, Writer<S>) {
    let (r, w) = tokio::io::split(io);
    (
        StreamReader::new(
            BufReader::new(r),
            bridgehead::xmpp::stream::ElementLimits {
                max_bytes: 1 << 20,
                max_depth: 64,
            },
        ),
        StreamWriter::new(w, ns),
    )
}

async fn next<S: AsyncRead + Unpin>(reader: &mut Reader<S>) -> Result<Element, String> {
    reader
        .read_element()
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "stream closed".to_owned())
}

async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    reader: &mut Reader<S>,
    writer: &mut Writer<S>,
    domain: &str,
) -> Result<Element, String> {
    writer
        .initiating_header(domain)
        .map_err(|e| e.to_string())?;
    writer.flush().await.map_err(|e| e.to_string())?;
    reader.read_header().await.map_err(|e| e.to_string())?;
    next(reader).await
}

async fn send<S: AsyncWrite + Unpin>(
    writer: &mut Writer<S>,
    element: &Element,
) -> Result<(), String> {
    writer.element(element).map_err(|e| e.to_string())?;
    writer.flush().await.map_err(|e| e.to_string())
}

/// SaltedPassword by salt and iterations.
type SaltCache = Arc<Mutex<HashMap<(Vec<u8>, u32), Vec<u8>>>>;

struct Target {
    addr: SocketAddr,
    domain: String,
    tls: tokio_rustls::TlsConnector,
    salts: SaltCache,
}

impl Target {
    async fn login(&self, user: &str, resource: &str) -> Result<Session, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let (mut reader, mut writer) = streams(tcp, CLIENT);
        open(&mut reader, &mut writer, &self.domain).await?;
        send(
            &mut writer,
            &Element::bare("starttls", "urn:ietf:params:xml:ns:xmpp-tls"),
        )
        .await?;
        next(&mut reader).await?;
        let tcp = reader
            .into_inner()
            .into_inner()
            .unsplit(writer.into_inner());
        let name = rustls_pki_types::ServerName::try_from(self.domain.clone())
            .map_err(|e| e.to_string())?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (mut reader, mut writer) = streams(tls, CLIENT);
        open(&mut reader, &mut writer, &self.domain).await?;

        let nonce = BASE64.encode(rand::random::<[u8; 18]>());
        let first_bare = format!("n={},r={nonce}", user.split('@').next().unwrap_or(user));
        send(
            &mut writer,
            &element("auth", SASL, &[("mechanism", "SCRAM-SHA-256")])
                .append(BASE64.encode(format!("n,,{first_bare}")))
                .build(),
        )
        .await?;
        let challenge = next(&mut reader).await?;
        let server_first =
            String::from_utf8(BASE64.decode(challenge.text()).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let field = |key: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(key))
                .map(str::to_owned)
                .ok_or_else(|| format!("no {key} in {server_first}"))
        };
        let (full_nonce, salt, iterations) = (field("r=")?, field("s=")?, field("i=")?);
        let salt = BASE64.decode(salt).map_err(|e| e.to_string())?;
        let iterations: u32 = iterations.parse().map_err(|_| "bad i=")?;
        let salted = {
            let cached = self
                .salts
                .lock()
                .unwrap()
                .get(&(salt.clone(), iterations))
                .cloned();
            match cached {
                Some(salted) => salted,
                None => {
                    let mut out = [0u8; 32];
                    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                        PASSWORD.as_bytes(),
                        &salt,
                        iterations,
                        &mut out,
                    );
                    self.salts
                        .lock()
                        .unwrap()
                        .insert((salt, iterations), out.to_vec());
                    out.to_vec()
                }
            }
        };
        let without_proof = format!("c=biws,r={full_nonce}");
        let auth_message = format!("{first_bare},{server_first},{without_proof}");
        let client_key = hmac(ScramHash::Sha256, &salted, b"Client Key");
        let signature = hmac(
            ScramHash::Sha256,
            &digest(ScramHash::Sha256, &client_key),
            auth_message.as_bytes(),
        );
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        send(
            &mut writer,
            &Element::builder("response", SASL)
                .append(BASE64.encode(format!("{without_proof},p={}", BASE64.encode(proof))))
                .build(),
        )
        .await?;
        let outcome = next(&mut reader).await?;
        if !outcome.is("success", SASL) {
            return Err(format!("login refused: {}", String::from(&outcome)));
        }
        reader.reset();
        writer.reset();
        open(&mut reader, &mut writer, &self.domain).await?;
        let bind = "urn:ietf:params:xml:ns:xmpp-bind";
        send(
            &mut writer,
            &element("iq", CLIENT, &[("type", "set"), ("id", "bind")])
                .append(
                    Element::builder("bind", bind)
                        .append(Element::builder("resource", bind).append(resource).build())
                        .build(),
                )
                .build(),
        )
        .await?;
        let bound = next(&mut reader).await?;
        let full = bound
            .get_child("bind", bind)
            .and_then(|b| b.get_child("jid", bind))
            .map(|j| j.text())
            .ok_or("no bound JID")?;
        Ok(Session {
            reader,
            writer,
            full,
        })
    }
}

/// Server CPU seconds so far (user + system), from /proc/PID/stat.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn user(n: usize) -> String {
    format!("load{n}@localhost")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut config = bridgehead::config::Config::load(&args.config).expect("bench config");
    config.validate().expect("valid bench config");
    let mut tls = support::bench_tls(&config);
    tls.alpn_protocols.clear();
    let target = Arc::new(Target {
        addr: args.addr,
        domain: args.domain.clone(),
        tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        salts: Arc::default(),
    });
    match args.mode {
        Mode::Roundtrips {
            clients,
            in_flight,
            secs,
            nodelay,
        } => {
            let mut tls = support::bench_tls(&config);
            tls.alpn_protocols.clear();
            roundtrips(&target, Arc::new(tls), (clients, in_flight, secs, nodelay)).await;
        }
        Mode::Logins {
            concurrency,
            secs,
            server_pid,
        } => {
            let deadline = Instant::now() + Duration::from_secs(secs);
            let cpu_before = cpu_secs(server_pid);
            let started = Instant::now();
            let mut workers = tokio::task::JoinSet::new();
            for worker in 0..concurrency {
                let target = Arc::clone(&target);
                workers.spawn(async move {
                    let (mut latencies, mut failures) = (Vec::new(), 0u64);
                    let mut n = worker;
                    while Instant::now() < deadline {
                        let begun = Instant::now();
                        match target.login(&user(n % 10_000), "login").await {
                            Ok(mut session) => {
                                latencies.push(begun.elapsed());
                                let _ = session.writer.footer();
                                let _ = session.writer.flush().await;
                            }
                            Err(e) => {
                                failures += 1;
                                if failures < 3 {
                                    eprintln!("login failed: {e}");
                                }
                            }
                        }
                        n += concurrency;
                    }
                    (latencies, failures)
                });
            }
            let (mut latencies, mut failures) = (Vec::new(), 0);
            while let Some(Ok((l, f))) = workers.join_next().await {
                latencies.extend(l);
                failures += f;
            }
            let wall = started.elapsed().as_secs_f64();
            let cpu = cpu_secs(server_pid) - cpu_before;
            latencies.sort();
            println!(
                "logins: {} in {wall:.1} s = {:.0}/s, {failures} failed; latency p50 {:.2} ms p99 {:.2} ms; server CPU {cpu:.2} s = {:.2} ms per login, {:.0} logins per server core-second",
                latencies.len(),
                latencies.len() as f64 / wall,
                support::percentile_ms(&latencies, 0.5),
                support::percentile_ms(&latencies, 0.99),
                cpu * 1e3 / latencies.len().max(1) as f64,
                latencies.len() as f64 / cpu.max(1e-9),
            );
        }
        Mode::Idle {
            count,
            hold_secs,
            server_pid,
        } => {
            let before = support::rss_kib(server_pid);
            let semaphore = Arc::new(tokio::sync::Semaphore::new(64));
            let mut opening = tokio::task::JoinSet::new();
            for n in 0..count {
                let (target, semaphore) = (Arc::clone(&target), Arc::clone(&semaphore));
                opening.spawn(async move {
                    let _permit = semaphore.acquire().await;
                    target.login(&user(n), "idle").await
                });
            }
            let mut sessions = Vec::with_capacity(count);
            let mut failed = 0;
            while let Some(result) = opening.join_next().await {
                match result {
                    Ok(Ok(session)) => sessions.push(session),
                    other => {
                        failed += 1;
                        if failed < 3 {
                            eprintln!(
                                "session failed: {:?}",
                                other
                                    .err()
                                    .map(|e| e.to_string())
                                    .or_else(|| Some("login".into()))
                            );
                        }
                    }
                }
            }
            println!(
                "{} sessions bound, {failed} failed; holding {hold_secs} s",
                sessions.len()
            );
            tokio::time::sleep(Duration::from_secs(hold_secs)).await;
            let after = support::rss_kib(server_pid);
            // Every session must still answer a ping.
            let mut alive = 0;
            for session in &mut sessions {
                let ping = element("iq", CLIENT, &[("type", "get"), ("id", "still")])
                    .append(Element::bare("ping", "urn:xmpp:ping"))
                    .build();
                if send(&mut session.writer, &ping).await.is_ok()
                    && tokio::time::timeout(Duration::from_secs(5), next(&mut session.reader))
                        .await
                        .is_ok_and(|r| r.is_ok())
                {
                    alive += 1;
                }
            }
            println!(
                "server RSS {before} KiB → {after} KiB: {:.1} KiB per idle session; {alive} of {} answered a ping after {hold_secs} s",
                (after.saturating_sub(before)) as f64 / sessions.len().max(1) as f64,
                sessions.len()
            );
        }
        Mode::Messages {
            clients,
            in_flight,
            secs,
            target: to,
            component_addr,
            server_pid,
        } => {
            let mut sessions = Vec::new();
            for n in 0..clients {
                sessions.push(target.login(&user(n), "bench").await.expect("login"));
            }
            let component = if to == "component" {
                Some(echo_component(component_addr, &config).await)
            } else {
                None
            };
            let peers: Vec<String> = (0..clients)
                .map(|n| match &component {
                    Some(_) => format!("echo{n}@bench-a.localhost"),
                    None => sessions[(n + 1) % clients].full.clone(),
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(secs);
            let cpu_before = cpu_secs(server_pid);
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for (session, peer) in sessions.into_iter().zip(peers) {
                tasks.spawn(async move {
                    let Session {
                        mut reader,
                        mut writer,
                        ..
                    } = session;
                    let message = element("message", CLIENT, &[("to", &peer), ("type", "chat")])
                        .append(Element::builder("body", CLIENT).append("load").build())
                        .build();
                    for _ in 0..in_flight {
                        writer.element(&message).unwrap();
                    }
                    writer.flush().await.unwrap();
                    let mut received = 0u64;
                    while Instant::now() < deadline {
                        let Ok(Ok(element)) =
                            tokio::time::timeout(Duration::from_secs(2), next(&mut reader)).await
                        else {
                            break;
                        };
                        if element.name() == "message" {
                            received += 1;
                            writer.element(&message).unwrap();
                            writer.flush().await.unwrap();
                        }
                    }
                    received
                });
            }
            let mut received = 0;
            while let Some(Ok(n)) = tasks.join_next().await {
                received += n;
            }
            let wall = started.elapsed().as_secs_f64();
            let cpu = cpu_secs(server_pid) - cpu_before;
            let routed = if component.is_some() {
                received * 2
            } else {
                received
            };
            println!(
                "{to}: {received} messages received in {wall:.1} s = {:.0}/s ({routed} routed stanzas = {:.0}/s); server CPU {cpu:.2} s = {:.1} µs per routed stanza",
                received as f64 / wall,
                routed as f64 / wall,
                cpu * 1e6 / routed.max(1) as f64
            );
        }
    }
}

/// Whether an iq was answered within 5 s, with the time its request was sent.
async fn timed(sent: Instant, token: tokio_xmpp::IqResponseToken) -> (Instant, bool) {
    let answer = tokio::time::timeout(Duration::from_secs(5), token).await;
    (sent, matches!(answer, Ok(Ok(_))))
}

/// `clients` tokio-xmpp clients, each keeping `in_flight` pings to the server in flight for
/// `secs`; prints round trips per second and their latency.
async fn roundtrips(
    target: &Target,
    tls: Arc<rustls::ClientConfig>,
    (clients, in_flight, secs, nodelay): (usize, usize, u64, bool),
) {
    use futures::StreamExt;
    use tokio_xmpp::{Client, Event, IqRequest};
    let connector = starttls::StartTlsConnector {
        addr: target.addr,
        tls,
        nodelay,
        binding: starttls::Binding::None,
    };
    let mut online = Vec::new();
    for n in 0..clients {
        let jid = tokio_xmpp::parsers::jid::BareJid::new(&user(n)).expect("a JID");
        let mut client = Client::new_with_connector(
            jid,
            PASSWORD,
            connector.clone(),
            tokio_xmpp::xmlstream::Timeouts::default(),
        );
        loop {
            match client.next().await {
                Some(Event::Online { .. }) => break,
                Some(Event::Disconnected(e)) => panic!("login failed: {e}"),
                Some(_) => {}
                None => panic!("the client ended"),
            }
        }
        let sm = client
            .get_stream_features()
            .is_some_and(|f| f.stream_management.is_some());
        online.push((client, sm));
    }
    let server: tokio_xmpp::parsers::jid::Jid = target.domain.parse().expect("a domain JID");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let sm = online.iter().all(|(_, sm)| *sm);
    for (client, _) in online {
        let server = server.clone();
        tasks.spawn(async move {
            // The receiving half is drained on its own task, so that the client's worker
            // never waits for us while we wait for an answer.
            let (sender, mut receiver) = client.split();
            let drain = tokio::spawn(async move { while receiver.next().await.is_some() {} });
            let (mut latencies, mut lost) = (Vec::new(), 0u64);
            let mut pending = futures::stream::FuturesUnordered::new();
            let ping = || IqRequest::Get(Element::bare("ping", "urn:xmpp:ping"));
            for _ in 0..in_flight {
                let sent = Instant::now();
                let token = sender.send_iq(Some(server.clone()), ping()).await;
                pending.push(timed(sent, token));
            }
            while let Some((sent, answered)) = pending.next().await {
                if answered {
                    latencies.push(sent.elapsed());
                } else {
                    lost += 1;
                }
                if Instant::now() < deadline {
                    let sent = Instant::now();
                    let token = sender.send_iq(Some(server.clone()), ping()).await;
                    pending.push(timed(sent, token));
                }
            }
            drain.abort();
            (latencies, lost)
        });
    }
    let (mut latencies, mut lost) = (Vec::new(), 0);
    while let Some(Ok((l, n))) = tasks.join_next().await {
        latencies.extend(l);
        lost += n;
    }
    let wall = started.elapsed().as_secs_f64();
    let mean =
        latencies.iter().sum::<Duration>().as_secs_f64() * 1e3 / latencies.len().max(1) as f64;
    latencies.sort();
    println!(
        "round trips ({clients} clients × {in_flight} in flight, Nagle {}, XEP-0198 {}): {} in {wall:.1} s = {:.0}/s, {lost} unanswered after 5 s; latency mean {mean:.3} ms p50 {:.3} ms p99 {:.3} ms max {:.3} ms",
        if nodelay { "off" } else { "on" },
        if sm { "on" } else { "off" },
        latencies.len(),
        latencies.len() as f64 / wall,
        support::percentile_ms(&latencies, 0.5),
        support::percentile_ms(&latencies, 0.99),
        support::percentile_ms(&latencies, 1.0),
    );
}

/// Connects as `bench-a.localhost` and echoes every message back to its sender.
async fn echo_component(
    addr: SocketAddr,
    config: &bridgehead::config::Config,
) -> tokio::task::JoinHandle<()> {
    use sha1::Digest as _;
    const NS: &str = "jabber:component:accept";
    let tcp = TcpStream::connect(addr).await.expect("component listener");
    tcp.set_nodelay(true).unwrap();
    let mut tls = support::bench_tls(config);
    tls.alpn_protocols.clear();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("TLS to the component listener");
    let (mut reader, mut writer) = streams(tls, NS);
    writer.initiating_header("bench-a.localhost").unwrap();
    writer.flush().await.unwrap();
    let header = reader.read_header().await.expect("stream header");
    let id = header.id.expect("stream id");
    let handshake = hex::encode(sha1::Sha1::digest(format!("{id}bench-secret-a").as_bytes()));
    send(
        &mut writer,
        &Element::builder("handshake", NS).append(handshake).build(),
    )
    .await
    .unwrap();
    next(&mut reader).await.expect("handshake answer");
    tokio::spawn(async move {
        while let Ok(mut element) = next(&mut reader).await {
            if element.name() != "message" {
                continue;
            }
            let (from, to) = (
                element.attr("from").unwrap_or_default().to_owned(),
                element.attr("to").unwrap_or_default().to_owned(),
            );
            bridgehead::xmpp::stanza::set_address(&mut element, "to", &from);
            bridgehead::xmpp::stanza::set_address(&mut element, "from", &to);
            if writer.element(&element).is_err() || writer.flush().await.is_err() {
                break;
            }
        }
    })
}
