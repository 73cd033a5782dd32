//! Load generator for the XSI-Actions front, and the bare-hyper ceiling it is compared to.
//! Run with:
//!
//! ```sh
//! cargo build --release --examples
//! target/release/bridgehead serve -c examples/bench/bridgehead-bench.toml &
//! L=target/release/examples/xsi_loadgen
//! $L hello-server &                                   # bare hyper "hello" on :8444, same TLS
//! $L load --url https://localhost:8444/hello --secs 10
//! $L load --secs 10                                   # GET alice's profile on :8443
//! $L load --secs 10 --rate 10000                      # latency at a fixed rate
//! ```
//!
//! `load` opens `--connections` HTTP/1.1 keep-alive connections over TLS (trusting the
//! bench server's development CA), each with one request in flight, authenticated as a
//! demo user from `data-bench/demo-credentials.toml`. It reports requests per second and
//! latency percentiles. `hello-server` serves a fixed body with hyper-util's auto builder and
//! the same certificate and TLS configuration as the server: the ceiling for a TLS + HTTP
//! request on this machine. Figures go in `docs/performance.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::{Parser, Subcommand};

#[path = "bench/support.rs"]
mod support;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
struct Args {
    /// The bench configuration (its data dir holds the CA, the certificate and the demo
    /// credentials).
    #[arg(long, default_value = "examples/bench/bridgehead-bench.toml")]
    config: PathBuf,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Serve a bare hyper "hello" over TLS with the server's certificate.
    HelloServer {
        #[arg(long, default_value = "127.0.0.1:8444")]
        listen: SocketAddr,
    },
    /// Keep-alive load against a URL.
    Load {
        /// What to GET.
        #[arg(
            long,
            default_value = "https://localhost:8443/com.broadsoft.xsi-actions/v2.0/user/alice@localhost/profile"
        )]
        url: String,
        /// The demo user to authenticate as.
        #[arg(long, default_value = "alice@localhost")]
        user: String,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Requests per second over all connections (default: as fast as they answer).
        #[arg(long)]
        rate: Option<u64>,
    },
}

fn config(path: &std::path::Path) -> bridgehead::config::Config {
    let mut config = bridgehead::config::Config::load(path).expect("bench config");
    config.validate().expect("valid bench config");
    config
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let config = config(&args.config);
    match args.mode {
        Mode::HelloServer { listen } => hello_server(&config, listen).await,
        Mode::Load {
            url,
            user,
            connections,
            secs,
            rate,
        } => load(&config, &url, &user, connections, secs, rate).await,
    }
}

async fn hello_server(config: &bridgehead::config::Config, listen: SocketAddr) {
    let identity = bridgehead::tls::ServerIdentity::load(
        &bridgehead::server::identity_files(config),
        &bridgehead::server::identity_requirements(config),
    )
    .expect("the bench server's certificate (start bridgehead with the bench config once)");
    let tls = tokio_rustls::TlsAcceptor::from(
        identity
            .server_config(&[b"h2", b"http/1.1"])
            .expect("TLS config"),
    );
    let listener = TcpListener::bind(listen).await.expect("bind");
    println!("hello server on https://{listen}/hello");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        tokio::spawn(async move {
            let Ok(stream) = tls.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(|_request| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                    Bytes::from_static(b"hello\n"),
                )))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[derive(serde::Deserialize)]
struct Credentials {
    users: Vec<UserCredentials>,
}

#[derive(serde::Deserialize)]
struct UserCredentials {
    id: String,
    password: String,
}

async fn load(
    config: &bridgehead::config::Config,
    url: &str,
    user: &str,
    connections: usize,
    secs: u64,
    rate: Option<u64>,
) {
    let uri: hyper::Uri = url.parse().expect("--url");
    let host = uri.host().expect("a host in --url").to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .expect("resolve")
        .find(SocketAddr::is_ipv4)
        .expect("an IPv4 address");
    let credentials: Credentials = toml::from_str(
        &std::fs::read_to_string(config.server.data_dir.join("demo-credentials.toml"))
            .expect("demo credentials"),
    )
    .expect("credentials file");
    let password = credentials
        .users
        .iter()
        .find(|u| u.id == user)
        .map(|u| u.password.clone())
        .expect("that demo user");
    let authorization = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let tls = support::bench_tls(config);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let per_connection_gap =
        rate.map(|r| Duration::from_secs_f64(connections as f64 / r.max(1) as f64));
    let mut workers = tokio::task::JoinSet::new();
    for n in 0..connections {
        let connector = connector.clone();
        let (host, path, authorization) = (
            host.clone(),
            uri.path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            authorization.clone(),
        );
        workers.spawn(async move {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            tcp.set_nodelay(true).expect("nodelay");
            let name = rustls_pki_types::ServerName::try_from(host.clone()).expect("name");
            let stream = connector.connect(name, tcp).await.expect("TLS");
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("HTTP handshake");
            tokio::spawn(connection);
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            // Spread the paced connections over one gap so they do not fire together.
            let mut next = Instant::now()
                + per_connection_gap.map_or(Duration::ZERO, |gap| {
                    gap.mul_f64(n as f64 / connections as f64)
                });
            while Instant::now() < deadline {
                if let Some(gap) = per_connection_gap {
                    tokio::time::sleep_until(next.into()).await;
                    next += gap;
                }
                let request = hyper::Request::get(path.as_str())
                    .header("host", host.as_str())
                    .header("authorization", authorization.as_str())
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let sent = Instant::now();
                match sender.send_request(request).await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        let _ = response.into_body().collect().await;
                        if ok {
                            latencies.push(sent.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(done) = workers.join_next().await {
        let (l, e) = done.expect("worker");
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "{url}: {} ok, {errors} failed in {elapsed:.1} s over {connections} connections{}: {:.0} requests/s; p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        latencies.len(),
        rate.map(|r| format!(" paced at {r}/s")).unwrap_or_default(),
        latencies.len() as f64 / elapsed,
        support::percentile_ms(&latencies, 0.50),
        support::percentile_ms(&latencies, 0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
}
