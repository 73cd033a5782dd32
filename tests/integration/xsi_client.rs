//! The XSI client library (`bridgehead::client`) against real servers: a closed port, an
//! HTTPS server that answers 503, and a real Bridgehead, in that order; a channel kept
//! across the end of its channel on the node; and a channel whose heartbeats fail behind
//! a real HAProxy whose only server is taken out and put back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bridgehead::client::{Health, HttpsTransport, Target, Timings, XsiClient, XsiRequest};

use crate::support::acme::{auth, url, ALICE};
use crate::support::server::Setup;

/// HTTPS through the one TLS builder, trusting the development CA of `setup`.
fn transport(setup: &Setup) -> HttpsTransport {
    let roots: Vec<_> = bridgehead::pki::input::read_certificates(&setup.ca)
        .unwrap()
        .into_iter()
        .map(|c| c.der)
        .collect();
    HttpsTransport::new(bridgehead::tls::client_config(&roots).unwrap())
}

/// An HTTPS server presenting the development certificate that answers 503 to everything;
/// its port, and how many requests it answered.
async fn unavailable(setup: &Setup) -> (u16, Arc<AtomicUsize>) {
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&answered);
    let pki = setup.dir.path().join("pki");
    let identity = bridgehead::tls::ServerIdentity::load(
        &bridgehead::tls::IdentityFiles {
            cert: pki.join("server-chain.pem"),
            key: pki.join("server.key"),
            key_password: None,
            trust: Some(pki.join("ca.crt")),
        },
        &bridgehead::tls::IdentityRequirements {
            domain: "localhost".into(),
            fqdn: "bridgehead.test".into(),
            warn_days: 0,
        },
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config(&[b"http/1.1"]).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    async {
                        let mut response = hyper::Response::new(http_body_util::Full::new(
                            hyper::body::Bytes::from_static(b"overloaded"),
                        ));
                        *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, answered)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_moves_past_a_refusal_and_a_503_and_keeps_the_node_cookie() {
    let setup = Setup::builder().acme().start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (busy, answered_503) = unavailable(&setup).await;
    let real = setup.server.addrs.https.unwrap().port();
    let targets = [closed, busy, real]
        .into_iter()
        .map(|port| Target::new("localhost", port))
        .collect();
    let client = XsiClient::new(targets, transport(&setup), Timings::default());
    let request = XsiRequest {
        method: "GET".into(),
        path: url(ALICE, "profile"),
        headers: vec![("authorization".into(), auth(ALICE))],
        body: vec![],
        streamed: false,
    };
    let response = client
        .request(request.clone())
        .await
        .expect("the third node answers");
    assert_eq!(response.status, 200);
    assert!(String::from_utf8_lossy(&response.body).contains("<Profile"));
    assert_eq!(client.selected().port, real);
    assert_eq!(
        answered_503.load(Ordering::Relaxed),
        1,
        "the 503 node was tried once"
    );
    assert!(
        response
            .set_cookies
            .iter()
            .any(|c| c.starts_with("bridgehead-node=")),
        "{:?}",
        response.set_cookies
    );
    assert_eq!(client.status().actions, Health::Green);
    // The next request goes straight to the node that answered.
    let again = client.request(request.clone()).await.unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(client.selected().port, real);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_keeps_its_channel_and_rebuilds_it_in_the_same_set() {
    use bridgehead::client::{ChannelOptions, Notice};
    let setup = Setup::builder().acme().start().await;
    let target = Target::new("localhost", setup.server.addrs.https.unwrap().port());
    let client = Arc::new(XsiClient::new(
        vec![target],
        transport(&setup),
        Timings::default(),
    ));
    let mut kept = keep_subscribed(
        &setup,
        &client,
        ChannelOptions::new("phone-set", &auth(ALICE)),
    )
    .await;
    // The subscription's first event (the state it found), acknowledged by the client.
    assert!(matches!(kept.first_event, Notice::Event { .. }));
    assert_eq!(client.status().events, Health::Green);

    // The channel is ended on the node: the client opens a new one in the same set, and
    // the subscription's events follow it.
    assert_eq!(
        crate::support::server::admin_call(
            setup.server.addrs.admin.unwrap(),
            hyper::Method::DELETE,
            &format!("/api/channels/{}", kept.first),
            &[],
        )
        .await,
        200
    );
    assert!(matches!(
        next(&mut kept.received).await,
        Notice::Rebuilding { .. }
    ));
    let Notice::Opened { channel_id: second } = next(&mut kept.received).await else {
        panic!("a new channel opens")
    };
    assert_ne!(kept.first, second);
    setup.set_dnd(ALICE, true).await;
    match next(&mut kept.received).await {
        Notice::Event { document, .. } => {
            assert!(document.contains("<xsi:active>true"), "{document}")
        }
        other => panic!("{other:?}"),
    }
    kept.stop.cancel();
    kept.keeper.await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_failed_heartbeats_behind_a_load_balancer_rebuild_the_channel_and_lose_no_event() {
    use std::num::{NonZeroU32, NonZeroU64};
    use std::time::Duration;

    use bridgehead::client::{ChannelOptions, Notice};

    use crate::support::peers::{haproxy_admin, haproxy_round_robin};
    // Unacknowledged events are sent again after 1 s; after two sends the channel counts
    // as unresponsive and its events wait in the set for the next channel.
    let setup = Setup::builder()
        .acme()
        .config(|config| {
            config.xsi_events.ack_timeout_secs = NonZeroU64::new(1).unwrap();
            config.xsi_events.max_delivery_attempts = NonZeroU32::new(2).unwrap();
        })
        .start()
        .await;
    let balancer = tempfile::tempdir().unwrap();
    let (_haproxy, port) =
        haproxy_round_robin(balancer.path(), &[setup.server.addrs.https.unwrap()]).await;
    let timings = Timings {
        attempt_timeout: Duration::from_secs(1),
        ..Timings::default()
    };
    let client = Arc::new(XsiClient::new(
        vec![Target::new("localhost", port)],
        transport(&setup),
        timings,
    ));
    let mut options = ChannelOptions::new("balanced-set", &auth(ALICE));
    options.heartbeat_every = Duration::from_millis(300);
    options.retry_after = Duration::from_millis(200);
    let mut kept = keep_subscribed(&setup, &client, options).await;
    let Notice::Event {
        sequence: Some(start),
        ..
    } = kept.first_event
    else {
        panic!("the subscription's first event, with its sequence number")
    };

    // The node leaves the balancer: the stream stays up, every new connection fails, so
    // the heartbeats fail.
    let answer = haproxy_admin(balancer.path(), "disable server nodes/node1").await;
    assert!(answer.trim().is_empty(), "HAProxy said {answer:?}");
    match next(&mut kept.received).await {
        Notice::Rebuilding { reason } => assert!(reason.contains("heartbeats"), "{reason}"),
        other => panic!("expected a rebuild, got {other:?}"),
    }
    assert_eq!(client.status().events, Health::Red);
    // Changes made on the node meanwhile go to the old channel, unacknowledged.
    for active in [true, false, true] {
        setup.set_dnd(ALICE, active).await;
    }
    let answer = haproxy_admin(balancer.path(), "enable server nodes/node1").await;
    assert!(answer.trim().is_empty(), "HAProxy said {answer:?}");

    // Back: a new channel in the same set, and every change, each told once, in order.
    let mut reopened = None;
    let mut events = Vec::new();
    while events.len() < 3 {
        match next(&mut kept.received).await {
            Notice::Opened { channel_id } => reopened = Some(channel_id),
            Notice::Rebuilding { .. } => {}
            Notice::Event {
                event_id,
                sequence,
                document,
                ..
            } => events.push((
                sequence.unwrap(),
                event_id,
                document.contains("<xsi:active>true"),
            )),
        }
    }
    let reopened = reopened.expect("a new channel opened");
    assert_ne!(reopened, kept.first);
    events.sort();
    let sequences: Vec<u32> = events.iter().map(|e| e.0).collect();
    assert_eq!(sequences, [start + 1, start + 2, start + 3], "{events:?}");
    let actives: Vec<bool> = events.iter().map(|e| e.2).collect();
    assert_eq!(actives, [true, false, true]);
    // Nothing is told twice: the next notice is the next change.
    setup.set_dnd(ALICE, false).await;
    match next(&mut kept.received).await {
        Notice::Event { sequence, .. } => assert_eq!(sequence, Some(start + 4)),
        other => panic!("expected the next event, got {other:?}"),
    }
    assert_eq!(client.status().events, Health::Green);
    kept.stop.cancel();
    kept.keeper.await.unwrap();
}

/// A channel `client` keeps in `options`' set, subscribed to Do Not Disturb on the node.
struct Kept {
    keeper: tokio::task::JoinHandle<()>,
    stop: tokio_util::sync::CancellationToken,
    received: tokio::sync::mpsc::Receiver<bridgehead::client::Notice>,
    /// The first channel's id.
    first: String,
    /// The subscription's first event.
    first_event: bridgehead::client::Notice,
}

async fn keep_subscribed(
    setup: &Setup,
    client: &Arc<XsiClient<HttpsTransport>>,
    options: bridgehead::client::ChannelOptions,
) -> Kept {
    use bridgehead::client::Notice;
    let set = options.channel_set_id.clone();
    let (notices, mut received) = tokio::sync::mpsc::channel(16);
    let stop = tokio_util::sync::CancellationToken::new();
    let keeper = {
        let (client, stop) = (Arc::clone(client), stop.clone());
        tokio::spawn(async move { client.run_channel(options, notices, stop).await })
    };
    let Notice::Opened { channel_id: first } = next(&mut received).await else {
        panic!("the channel opens first")
    };
    let subscribed = setup
        .subscribe(
            ALICE,
            &format!("user/{ALICE}"),
            &set,
            "<event>Do Not Disturb</event>",
        )
        .await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");
    let first_event = next(&mut received).await;
    Kept {
        keeper,
        stop,
        received,
        first,
        first_event,
    }
}

/// The next notice from the keeper (within 10 s).
async fn next(
    received: &mut tokio::sync::mpsc::Receiver<bridgehead::client::Notice>,
) -> bridgehead::client::Notice {
    tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
        .await
        .expect("a notice in time")
        .expect("the keeper runs")
}
