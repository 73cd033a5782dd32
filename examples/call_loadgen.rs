//! Load generator for call control: calls between pairs of load users through the example
//! call bridge, each set up (`POST calls/new`), answered (`PUT …/Talk`) and released
//! (`DELETE`) over XSI-Actions, with both users watching Basic Call on their own streaming
//! channel and acknowledging every event. Run with:
//!
//! ```sh
//! cargo build --release --bin bridgehead --examples
//! cargo build --release --manifest-path examples/call_bridge/Cargo.toml
//! target/release/bridgehead serve -c examples/bench/bridgehead-bench.toml &
//! examples/call_bridge/target/release/call_bridge --name calls.localhost \
//!     --secret bench-secret-calls --ca data-bench/pki/ca.crt --server 127.0.0.1:5223 &
//! target/release/examples/xsi_events_loadgen users --count 2000     # load0..load1999@localhost
//! target/release/examples/call_loadgen --pairs 400 --rate 2000 --secs 20   # the most it sustains
//! target/release/examples/call_loadgen --pairs 400 --rate 500 --secs 20    # latency at a set rate
//! ```
//!
//! Pair `k` is caller `load{2k}` and callee `load{2k+1}`; a pair places one call at a time,
//! taking a permit from a shared budget of `--rate` calls per second. The setup latency is
//! the time from sending `POST calls/new` to the callee's CallReceivedEvent arriving on
//! the callee's channel; a call counts as done when both users saw CallReleasedEvent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use tokio::sync::mpsc;
use tokio::sync::Semaphore;

#[path = "bench/support.rs"]
mod support;
#[path = "bench/xsi.rs"]
mod xsi;
use xsi::{basic, call, open_many, request, text_between, user, Client, XSI_NS};

const ACTIONS: &str = "/com.broadsoft.xsi-actions/v2.0/user";
const EVENTS: &str = "/com.broadsoft.xsi-events/v2.0";

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "examples/bench/bridgehead-bench.toml")]
    config: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8443")]
    addr: SocketAddr,
    /// Pairs of users calling each other (one call in progress per pair).
    #[arg(long, default_value_t = 200)]
    pairs: usize,
    /// Calls set up per second, at most.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// How long to place calls.
    #[arg(long, default_value_t = 20)]
    secs: u64,
}

/// One user's side: its connection for actions and acknowledgements, and its events.
struct Side {
    n: usize,
    auth: String,
    sender: SendRequest<Full<Bytes>>,
    events: mpsc::UnboundedReceiver<(String, Instant)>,
}

impl Side {
    async fn act(&mut self, method: &str, path: &str) -> (u16, String) {
        let path = format!("{ACTIONS}/{}/{path}", user(self.n));
        call(
            &mut self.sender,
            request(method, &path, &self.auth, String::new()),
        )
        .await
    }

    /// Reads events (acknowledging each) until one of type `kind`; its text and arrival.
    async fn wait_for(&mut self, kind: &str) -> Option<(String, Instant)> {
        let wanted = format!("xsi1:type=\"xsi:{kind}\"");
        loop {
            let (document, at) = tokio::time::timeout(Duration::from_secs(10), self.events.recv())
                .await
                .ok()??;
            if let Some(event_id) = text_between(&document, "<xsi:eventID>", "</xsi:eventID>") {
                let body = format!("<EventResponse xmlns=\"{XSI_NS}\"><eventID>{event_id}</eventID><statusCode>200</statusCode><reason>OK</reason></EventResponse>");
                let path = format!("{EVENTS}/channel/eventresponse");
                call(&mut self.sender, request("POST", &path, &self.auth, body)).await;
            }
            if document.contains(&wanted) {
                return Some((document, at));
            }
        }
    }
}

#[derive(Default)]
struct Totals {
    done: AtomicU64,
    failed: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
}

/// One call of a pair: set up, answered, released. `None` when a step failed.
async fn one_call(caller: &mut Side, callee: &mut Side) -> Option<Duration> {
    let sent = Instant::now();
    let address = format!("new?address=sip:{}", user(callee.n));
    let (status, started) = caller.act("POST", &format!("calls/{address}")).await;
    if status != 201 {
        eprintln!("calls/new: {status} {started}");
        return None;
    }
    let caller_call = text_between(&started, "<callId>", "</callId>")?.to_owned();
    let (received, at) = callee.wait_for("CallReceivedEvent").await?;
    let latency = at.duration_since(sent);
    let callee_call = text_between(&received, "<xsi:callId>", "</xsi:callId>")?.to_owned();
    let (status, _) = callee
        .act("PUT", &format!("calls/{callee_call}/Talk"))
        .await;
    if status != 200 {
        return None;
    }
    caller.wait_for("CallAnsweredEvent").await?;
    let (status, _) = caller.act("DELETE", &format!("calls/{caller_call}")).await;
    if status != 200 {
        return None;
    }
    caller.wait_for("CallReleasedEvent").await?;
    callee.wait_for("CallReleasedEvent").await?;
    Some(latency)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut config = bridgehead::config::Config::load(&args.config).expect("bench config");
    config.validate().expect("valid bench config");
    let client = Arc::new(Client {
        addr: args.addr,
        tls: tokio_rustls::TlsConnector::from(Arc::new(support::bench_tls(&config))),
    });
    let users = args.pairs * 2;

    // Channels (documents routed to each user's side), then a Basic Call subscription each.
    let (documents, mut arrivals) = mpsc::unbounded_channel();
    let _channels = open_many(&client, 0..users, Some(documents)).await;
    let mut routes = HashMap::new();
    let mut sides = Vec::with_capacity(users);
    for n in 0..users {
        let (tx, rx) = mpsc::unbounded_channel();
        routes.insert(n, tx);
        sides.push(Side {
            n,
            auth: basic(&user(n)),
            sender: client.connect().await,
            events: rx,
        });
    }
    tokio::spawn(async move {
        while let Some((n, document, at)) = arrivals.recv().await {
            if let Some(route) = routes.get(&n) {
                let _ = route.send((document, at));
            }
        }
    });
    let gate = Arc::new(Semaphore::new(64));
    let mut subscribing = tokio::task::JoinSet::new();
    for mut side in sides {
        let gate = Arc::clone(&gate);
        subscribing.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("gate");
            let body = format!("<Subscription xmlns=\"{XSI_NS}\"><event>Basic Call</event><expires>3600</expires><channelSetId>load-set-{}</channelSetId></Subscription>", side.n);
            let path = format!("{EVENTS}/user/{}", user(side.n));
            let (status, answer) = call(&mut side.sender, request("POST", &path, &side.auth, body)).await;
            assert_eq!(status, 200, "subscription refused: {answer}");
            let id = text_between(&answer, "<subscriptionId>", "</subscriptionId>")
                .expect("subscriptionId")
                .to_owned();
            side.wait_for("CallSubscriptionEvent").await.expect("CallSubscriptionEvent");
            (side, id)
        });
    }
    let mut subscribed = Vec::with_capacity(users);
    while let Some(done) = subscribing.join_next().await {
        subscribed.push(done.expect("subscribe"));
    }
    subscribed.sort_by_key(|(side, _)| side.n);
    println!("{users} users subscribed to Basic Call");

    // The call budget: `rate` permits a second, in 10 ms slices, never more than 50 ms ahead.
    let (permits, budget) = mpsc::channel::<()>((args.rate as usize / 20).max(1));
    let budget = Arc::new(tokio::sync::Mutex::new(budget));
    let deadline = Instant::now() + Duration::from_secs(args.secs);
    let rate = args.rate;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut owed = 0.0f64;
        while Instant::now() < deadline {
            tick.tick().await;
            owed += rate as f64 / 100.0;
            while owed >= 1.0 {
                owed -= 1.0;
                if permits.try_send(()).is_err() {
                    break;
                }
            }
        }
    });

    let totals = Arc::new(Totals::default());
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    let mut subscriptions = Vec::new();
    let mut iter = subscribed.into_iter();
    while let (Some((mut caller, a)), Some((mut callee, b))) = (iter.next(), iter.next()) {
        subscriptions.push((caller.n, a));
        subscriptions.push((callee.n, b));
        let (budget, totals) = (Arc::clone(&budget), Arc::clone(&totals));
        workers.spawn(async move {
            while Instant::now() < deadline {
                let permit = tokio::time::timeout_at(deadline.into(), async {
                    budget.lock().await.recv().await
                })
                .await;
                if !matches!(permit, Ok(Some(()))) {
                    break;
                }
                match one_call(&mut caller, &mut callee).await {
                    Some(latency) => {
                        totals.done.fetch_add(1, Ordering::Relaxed);
                        totals.latencies.lock().expect("lock").push(latency);
                    }
                    None => {
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            (caller, callee)
        });
    }
    let mut sides = Vec::new();
    while let Some(done) = workers.join_next().await {
        let (caller, callee) = done.expect("worker");
        sides.push(caller);
        sides.push(callee);
    }
    let elapsed = started.elapsed().as_secs_f64();

    // Subscriptions are persisted: the run deletes its own, so runs repeat.
    for (n, id) in subscriptions {
        if let Some(side) = sides.iter_mut().find(|s| s.n == n) {
            let path = format!("{EVENTS}/subscription/{id}");
            call(
                &mut side.sender,
                request("DELETE", &path, &side.auth, String::new()),
            )
            .await;
        }
    }
    let done = totals.done.load(Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *totals.latencies.lock().expect("lock"));
    latencies.sort();
    println!(
        "{} pairs, budget {rate}/s for {} s: {done} calls set up, answered and released ({:.0}/s), {} failed; setup (POST calls/new → CallReceived on the callee's channel) p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.pairs,
        args.secs,
        done as f64 / elapsed,
        totals.failed.load(Ordering::Relaxed),
        support::percentile_ms(&latencies, 0.50),
        support::percentile_ms(&latencies, 0.90),
        support::percentile_ms(&latencies, 0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
}
