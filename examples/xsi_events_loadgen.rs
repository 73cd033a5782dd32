//! Load generator for XSI-Events: many open channels with heartbeats, and event latency
//! from a settings change to its event on the channel. Run with:
//!
//! ```sh
//! cargo build --release --bin bridgehead --examples
//! target/release/bridgehead serve -c examples/bench/bridgehead-bench.toml &
//! L=target/release/examples/xsi_events_loadgen
//! $L users --count 20000                                   # load0..load19999@localhost
//! $L channels --count 19000 --heartbeat-secs 15 --hold-secs 60 --server-pid $(pgrep -f 'bridgehead serve -c examples/bench')
//! $L latency --channels 10000 --rate 1000 --secs 20
//! ```
//!
//! Against a cluster (docs/performance.md has the whole setup), `--other-addr` names a
//! second node: channels open on `--addr`, while heartbeats (`channels`) or settings PUTs
//! (`latency`) go to the other node, so that every heartbeat is forwarded to the channel's
//! node and every event crosses nodes.
//!
//! `users` adds load users straight to the bench store (SQLite or PostgreSQL), all with the password
//! `load-pass`; the server sees them through the store's users generation. `channels` opens
//! one channel per user, each on its own TLS connection. It heartbeats every channel every
//! `--heartbeat-secs` over a pool of keep-alive connections (heartbeats travel apart from
//! the stream, as the protocol asks), and reports the server's resident memory per open
//! channel. `latency` opens `--channels` channels, subscribes each one to its user's Do Not
//! Disturb, then changes the settings of random users at `--rate` per second over
//! XSI-Actions. It measures the time from sending the PUT to the event arriving on the
//! user's channel, and acknowledges every event.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rand::Rng;
use tokio::sync::Semaphore;

#[path = "bench/support.rs"]
mod support;
#[path = "bench/xsi.rs"]
mod xsi;
use xsi::{
    basic, call, open_many, open_many_h2, request, text_between, user, Client, PASSWORD, XSI_NS,
};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "examples/bench/bridgehead-bench.toml")]
    config: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8443")]
    addr: SocketAddr,
    /// Another node of the same cluster: heartbeats and settings changes go there.
    #[arg(long)]
    other_addr: Option<SocketAddr>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Add load users to the bench store.
    Users {
        #[arg(long, default_value_t = 20_000)]
        count: usize,
    },
    /// Hold many channels open with heartbeats; report server memory per channel.
    Channels {
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// The first load user (`load<first>`): several generators take distinct users.
        #[arg(long, default_value_t = 0)]
        first: usize,
        /// Open the channels over HTTP/2, this many per connection (each on a TLS
        /// connection of its own without it).
        #[arg(long)]
        h2: Option<usize>,
        #[arg(long, default_value_t = 15)]
        heartbeat_secs: u64,
        #[arg(long, default_value_t = 60)]
        hold_secs: u64,
        #[arg(long)]
        server_pid: u32,
    },
    /// Event latency: settings change → event on the channel.
    Latency {
        #[arg(long, default_value_t = 10_000)]
        channels: usize,
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 20)]
        secs: u64,
    },
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut config = bridgehead::config::Config::load(&args.config).expect("bench config");
    config.validate().expect("valid bench config");
    if let Mode::Users { count } = args.mode {
        add_users(&config, count).await;
        return;
    }
    let tls = tokio_rustls::TlsConnector::from(Arc::new(support::bench_tls(&config)));
    let client = Arc::new(Client {
        addr: args.addr,
        tls: tls.clone(),
    });
    // Where heartbeats and settings changes go: the same node, or another one.
    let other = Arc::new(Client {
        addr: args.other_addr.unwrap_or(args.addr),
        tls,
    });
    match args.mode {
        Mode::Users { .. } => {}
        Mode::Channels {
            count,
            first,
            h2,
            heartbeat_secs,
            hold_secs,
            server_pid,
        } => {
            let before = support::rss_kib(server_pid);
            let opened = match h2 {
                Some(per_connection) => {
                    let mut h2_tls = support::bench_tls(&config);
                    h2_tls.alpn_protocols = vec![b"h2".to_vec()];
                    let h2_tls = tokio_rustls::TlsConnector::from(Arc::new(h2_tls));
                    open_many_h2(&client, first..first + count, per_connection, &h2_tls).await
                }
                None => open_many(&client, first..first + count, None).await,
            };
            let ids: Arc<Vec<(String, String)>> = Arc::new(
                opened
                    .iter()
                    .enumerate()
                    .map(|(n, o)| (o.channel_id.clone(), basic(&user(first + n))))
                    .collect(),
            );
            // Heartbeats: every channel once per period, spread evenly, over 32 connections.
            let failures = Arc::new(Mutex::new(0u64));
            let sent = Arc::new(Mutex::new(0u64));
            let times: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
            let deadline = Instant::now() + Duration::from_secs(hold_secs);
            let mut beaters = tokio::task::JoinSet::new();
            let lanes = 32;
            for lane in 0..lanes {
                let (client, ids, failures, sent, times) = (
                    Arc::clone(&other),
                    Arc::clone(&ids),
                    Arc::clone(&failures),
                    Arc::clone(&sent),
                    Arc::clone(&times),
                );
                beaters.spawn(async move {
                    let mut sender = client.connect().await;
                    let mine: Vec<&(String, String)> =
                        ids.iter().skip(lane).step_by(lanes).collect();
                    let gap = Duration::from_secs(heartbeat_secs).div_f64(mine.len().max(1) as f64);
                    let mut next = Instant::now();
                    'outer: loop {
                        for (id, auth) in &mine {
                            if Instant::now() >= deadline {
                                break 'outer;
                            }
                            tokio::time::sleep_until(next.into()).await;
                            next += gap;
                            let path =
                                format!("/com.broadsoft.xsi-events/v2.0/channel/{id}/heartbeat");
                            let started = Instant::now();
                            let (status, _) =
                                call(&mut sender, request("PUT", &path, auth, String::new())).await;
                            times.lock().expect("lock").push(started.elapsed());
                            *sent.lock().expect("lock") += 1;
                            if status != 200 {
                                *failures.lock().expect("lock") += 1;
                            }
                        }
                    }
                });
            }
            let mut peak = 0;
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_secs(5)).await;
                peak = peak.max(support::rss_kib(server_pid));
            }
            while beaters.join_next().await.is_some() {}
            let after = support::rss_kib(server_pid);
            println!(
                "{count} channels held {hold_secs} s with heartbeats every {heartbeat_secs} s: {} heartbeats, {} failed; server RSS {before} KiB before, {after} KiB after (peak {peak} KiB): {:.1} KiB per channel",
                sent.lock().expect("lock"),
                failures.lock().expect("lock"),
                (peak.max(after).saturating_sub(before)) as f64 / count as f64
            );
            let mut times = std::mem::take(&mut *times.lock().expect("lock"));
            times.sort();
            println!(
                "heartbeat answered ({}): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                if other.addr == client.addr {
                    "on the channel's node"
                } else {
                    "through another node"
                },
                support::percentile_ms(&times, 0.50),
                support::percentile_ms(&times, 0.90),
                support::percentile_ms(&times, 0.99),
                times.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
            );
        }
        Mode::Latency {
            channels,
            rate,
            secs,
        } => latency(&client, &other, channels, rate, secs).await,
    }
}

/// Channels (and their subscriptions) on `client`'s node, settings changes through `changes`.
async fn latency(
    client: &Arc<Client>,
    changes: &Arc<Client>,
    channels: usize,
    rate: u64,
    secs: u64,
) {
    let (documents, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let _opened = open_many(client, 0..channels, Some(documents)).await;
    // Subscribe every channel set to its user's Do Not Disturb (64 at a time).
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..channels {
        let (client, gate) = (Arc::clone(client), Arc::clone(&gate));
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("gate");
            let mut sender = client.connect().await;
            let body = format!("<Subscription xmlns=\"{XSI_NS}\"><event>Do Not Disturb</event><expires>3600</expires><channelSetId>load-set-{n}</channelSetId></Subscription>");
            let path = format!("/com.broadsoft.xsi-events/v2.0/user/{}", user(n));
            let (status, answer) = call(&mut sender, request("POST", &path, &basic(&user(n)), body)).await;
            assert_eq!(status, 200, "subscription refused: {answer}");
            let id = text_between(&answer, "<subscriptionId>", "</subscriptionId>").map(str::to_owned);
            (n, id)
        });
    }
    // Subscriptions are persisted: the run deletes its own at the end, so runs repeat.
    let mut subscriptions = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok((n, Some(id))) = done {
            subscriptions.push((n, id));
        }
    }
    // Acknowledge the initial-state events and wait for them to drain.
    let mut pool = Vec::new();
    for _ in 0..16 {
        pool.push(tokio::sync::Mutex::new(client.connect().await));
    }
    let acks = Arc::new(pool);
    tokio::time::sleep(Duration::from_secs(2)).await;
    while arrivals.try_recv().is_ok() {}

    // Changes at `rate`/s over 32 keep-alive connections; arrivals matched by user.
    let sent_at: Arc<Mutex<HashMap<usize, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let put_times: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let lanes = 32u64;
    let mut changers = tokio::task::JoinSet::new();
    for _ in 0..lanes {
        let (client, sent_at, put_times) = (
            Arc::clone(changes),
            Arc::clone(&sent_at),
            Arc::clone(&put_times),
        );
        changers.spawn(async move {
            let mut sender = client.connect().await;
            let gap = Duration::from_secs_f64(lanes as f64 / rate as f64);
            let mut next = Instant::now() + gap.mul_f64(rand::thread_rng().gen_range(0.0..1.0));
            let mut active = false;
            while Instant::now() < deadline {
                tokio::time::sleep_until(next.into()).await;
                next += gap;
                let n = rand::thread_rng().gen_range(0..channels);
                active = !active;
                let body = format!(
                    "<DoNotDisturb xmlns=\"{XSI_NS}\"><active>{active}</active></DoNotDisturb>"
                );
                let path = format!(
                    "/com.broadsoft.xsi-actions/v2.0/user/{}/services/DoNotDisturb",
                    user(n)
                );
                let sent = Instant::now();
                sent_at.lock().expect("lock").insert(n, sent);
                let (status, _) =
                    call(&mut sender, request("PUT", &path, &basic(&user(n)), body)).await;
                assert_eq!(status, 200);
                put_times.lock().expect("lock").push(sent.elapsed());
            }
        });
    }
    let mut latencies = Vec::new();
    let mut lane = 0usize;
    let stop = deadline + Duration::from_secs(3);
    while Instant::now() < stop {
        let Ok(Some((n, document, at))) =
            tokio::time::timeout(Duration::from_millis(500), arrivals.recv()).await
        else {
            continue;
        };
        if !document.contains("xsi:SubscriptionEvent") {
            continue;
        }
        if let Some(sent) = sent_at.lock().expect("lock").remove(&n) {
            latencies.push(at.duration_since(sent));
        }
        if let Some(event_id) = text_between(&document, "<xsi:eventID>", "</xsi:eventID>") {
            let body = format!("<EventResponse xmlns=\"{XSI_NS}\"><eventID>{event_id}</eventID><statusCode>200</statusCode><reason>OK</reason></EventResponse>");
            let acks = Arc::clone(&acks);
            let auth = basic(&user(n));
            lane = (lane + 1) % 16;
            let chosen = lane;
            tokio::spawn(async move {
                let mut sender = acks[chosen].lock().await;
                let _ = call(
                    &mut sender,
                    request(
                        "POST",
                        "/com.broadsoft.xsi-events/v2.0/channel/eventresponse",
                        &auth,
                        body,
                    ),
                )
                .await;
            });
        }
    }
    while changers.join_next().await.is_some() {}
    let gate = Arc::new(Semaphore::new(64));
    let mut cleanup = tokio::task::JoinSet::new();
    for (n, id) in subscriptions {
        let (client, gate) = (Arc::clone(client), Arc::clone(&gate));
        cleanup.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("gate");
            let mut sender = client.connect().await;
            let path = format!("/com.broadsoft.xsi-events/v2.0/subscription/{id}");
            call(
                &mut sender,
                request("DELETE", &path, &basic(&user(n)), String::new()),
            )
            .await;
        });
    }
    while cleanup.join_next().await.is_some() {}
    let mut puts = std::mem::take(&mut *put_times.lock().expect("lock"));
    puts.sort();
    println!(
        "settings PUT answered: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        support::percentile_ms(&puts, 0.50),
        support::percentile_ms(&puts, 0.90),
        support::percentile_ms(&puts, 0.99)
    );
    latencies.sort();
    println!(
        "{channels} channels, {rate} changes/s for {secs} s: {} events matched; settings PUT → event on the channel p50 {:.2} ms, p90 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        support::percentile_ms(&latencies, 0.50),
        support::percentile_ms(&latencies, 0.90),
        support::percentile_ms(&latencies, 0.95),
        support::percentile_ms(&latencies, 0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
}

async fn add_users(config: &bridgehead::config::Config, count: usize) {
    use bridgehead::store::StoreError;
    use bridgehead::telephony::{Enterprise, Group, Role, User};
    let (store, _) = bridgehead::store::open(config).await.expect("bench store");
    store
        .put_enterprise(&Enterprise {
            id: "load".into(),
            name: "Load".into(),
        })
        .await
        .expect("enterprise");
    store
        .put_group(&Group {
            id: "load".into(),
            enterprise_id: "load".into(),
            name: "Load".into(),
        })
        .await
        .expect("group");
    // One verifier for every user: the same password, so the same hash work is not repeated.
    let verifiers =
        bridgehead::credentials::PasswordVerifiers::new(PASSWORD, config.store.scram_iterations)
            .expect("verifiers");
    let mut added = 0;
    for n in 0..count {
        let result = store
            .add_user(&User {
                id: user(n),
                first_name: "Load".into(),
                last_name: format!("User {n}"),
                number: None,
                extension: None,
                enterprise_id: "load".into(),
                group_id: "load".into(),
                role: Role::User,
                verifiers: verifiers.clone(),
            })
            .await;
        match result {
            Ok(()) => added += 1,
            Err(StoreError::Exists(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    println!("{added} load users added ({count} wanted)");
}
