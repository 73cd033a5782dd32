//! XEP-0114 components against the real server over real TLS, with a tokio-xmpp
//! `xmlstream` client.

use futures::SinkExt;
use minidom::Element;

use bridgehead::config::{ComponentConfig, Config};
use bridgehead::telephony::OnConflict;

use crate::support::component::{
    self, connect, next, raw_exchange, stanza, stanza_error, stream_error, COMPONENT_NS,
};
use crate::support::server::{component_config, Setup};

fn component(name: &str, max: u32, on_conflict: OnConflict) -> ComponentConfig {
    component_config(name, &format!("secret-of-{name}"), max, on_conflict)
}

async fn start_with(adjust: impl FnOnce(&mut Config) + 'static) -> Setup {
    Setup::builder()
        .config(|config| {
            config.components = vec![
                component("bridge1.localhost", 1, OnConflict::Replace),
                component("bridge2.localhost", 1, OnConflict::Replace),
                component("strict.localhost", 1, OnConflict::Reject),
                component("cluster.localhost", 2, OnConflict::Balance),
                component("offline.localhost", 1, OnConflict::Replace),
            ];
        })
        .config(adjust)
        .start()
        .await
}

async fn start() -> Setup {
    start_with(|_| {}).await
}

impl Setup {
    async fn component_login(&self, name: &str) -> component::Stream {
        connect(
            self.component_addr(),
            &self.ca,
            name,
            &format!("secret-of-{name}"),
        )
        .await
        .unwrap_or_else(|e| panic!("{name} refused: {e:?}"))
    }
}

fn message(from: &str, to: &str, body: &str) -> Element {
    stanza(
        "message",
        &[("from", from), ("to", to), ("id", "m1")],
        vec![Element::builder("body", COMPONENT_NS).append(body).build()],
    )
}

fn iq_get(from: &str, to: &str, id: &str, payload: Element) -> Element {
    stanza(
        "iq",
        &[("from", from), ("to", to), ("id", id), ("type", "get")],
        vec![payload],
    )
}

#[tokio::test]
async fn a_component_handshakes_over_tls() {
    let setup = start().await;
    let stream = setup.component_login("bridge1.localhost").await;
    drop(stream);
    // The demo component from the store works as well as configured ones.
    let credentials: toml::Value = toml::from_str(
        &std::fs::read_to_string(setup.dir.path().join("demo-credentials.toml")).unwrap(),
    )
    .unwrap();
    let secret = credentials["components"][0]["secret"].as_str().unwrap();
    connect(
        setup.component_addr(),
        &setup.ca,
        "bridge.localhost",
        secret,
    )
    .await
    .expect("store component");
}

#[tokio::test]
async fn a_bad_secret_gets_not_authorized_and_an_unknown_name_host_unknown() {
    let setup = start().await;
    let refused = connect(
        setup.component_addr(),
        &setup.ca,
        "bridge1.localhost",
        "wrong",
    )
    .await
    .err()
    .unwrap();
    assert_eq!(stream_error(&refused).as_deref(), Some("not-authorized"));
    let refused = connect(setup.component_addr(), &setup.ca, "nobody.localhost", "x")
        .await
        .err()
        .unwrap();
    assert_eq!(stream_error(&refused).as_deref(), Some("host-unknown"));
}

#[tokio::test]
async fn repeated_bad_secrets_are_throttled_per_address() {
    let setup = start_with(|c| c.xmpp.failed_handshakes_per_minute = 2).await;
    for _ in 0..2 {
        let refused = connect(
            setup.component_addr(),
            &setup.ca,
            "bridge1.localhost",
            "wrong",
        )
        .await
        .err()
        .unwrap();
        assert_eq!(stream_error(&refused).as_deref(), Some("not-authorized"));
    }
    // Now even the right secret is refused from this address for the rest of the minute.
    let refused = connect(
        setup.component_addr(),
        &setup.ca,
        "bridge1.localhost",
        "secret-of-bridge1.localhost",
    )
    .await
    .err()
    .unwrap();
    assert_eq!(stream_error(&refused).as_deref(), Some("not-authorized"));
}

#[tokio::test]
async fn stanzas_flow_between_components() {
    let setup = start().await;
    let mut one = setup.component_login("bridge1.localhost").await;
    let mut two = setup.component_login("bridge2.localhost").await;
    one.send(&message(
        "conf@bridge1.localhost/a",
        "room@bridge2.localhost/b",
        "hello & <welcome>",
    ))
    .await
    .unwrap();
    let received = next(&mut two).await.unwrap();
    assert!(received.is("message", COMPONENT_NS), "{received:?}");
    assert_eq!(received.attr("from"), Some("conf@bridge1.localhost/a"));
    assert_eq!(received.attr("to"), Some("room@bridge2.localhost/b"));
    assert_eq!(
        received.get_child("body", COMPONENT_NS).unwrap().text(),
        "hello & <welcome>"
    );
}

#[tokio::test]
async fn the_server_answers_ping_disco_and_version() {
    let setup = start().await;
    let mut one = setup.component_login("bridge1.localhost").await;
    let _two = setup.component_login("bridge2.localhost").await;
    one.send(&iq_get(
        "bridge1.localhost",
        "localhost",
        "p1",
        Element::bare("ping", "urn:xmpp:ping"),
    ))
    .await
    .unwrap();
    let pong = next(&mut one).await.unwrap();
    assert_eq!(
        (pong.attr("type"), pong.attr("id"), pong.attr("from")),
        (Some("result"), Some("p1"), Some("localhost"))
    );

    one.send(&iq_get(
        "bridge1.localhost",
        "localhost",
        "d1",
        Element::bare("query", "http://jabber.org/protocol/disco#items"),
    ))
    .await
    .unwrap();
    let items = next(&mut one).await.unwrap();
    let query = items
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .unwrap();
    let jids: Vec<&str> = query.children().filter_map(|i| i.attr("jid")).collect();
    assert_eq!(jids, ["bridge1.localhost", "bridge2.localhost"]);

    one.send(&iq_get(
        "bridge1.localhost",
        "localhost",
        "d2",
        Element::bare("query", "http://jabber.org/protocol/disco#info"),
    ))
    .await
    .unwrap();
    let info = next(&mut one).await.unwrap();
    let features: Vec<&str> = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap()
        .children()
        .filter_map(|f| f.attr("var"))
        .collect();
    assert!(
        features.contains(&"urn:xmpp:ping") && features.contains(&"jabber:iq:version"),
        "{features:?}"
    );

    one.send(&iq_get(
        "bridge1.localhost",
        "localhost",
        "v1",
        Element::bare("query", "jabber:iq:version"),
    ))
    .await
    .unwrap();
    let version = next(&mut one).await.unwrap();
    assert_eq!(
        version
            .get_child("query", "jabber:iq:version")
            .unwrap()
            .get_child("name", "jabber:iq:version")
            .unwrap()
            .text(),
        "Bridgehead"
    );

    one.send(&iq_get(
        "bridge1.localhost",
        "localhost",
        "t1",
        Element::bare("time", "urn:xmpp:time"),
    ))
    .await
    .unwrap();
    let time = next(&mut one).await.unwrap();
    assert!(time
        .get_child("time", "urn:xmpp:time")
        .unwrap()
        .has_child("utc", "urn:xmpp:time"));

    one.send(&iq_get(
        "bridge1.localhost",
        "localhost",
        "x1",
        Element::bare("query", "urn:example:unknown"),
    ))
    .await
    .unwrap();
    let unknown = next(&mut one).await.unwrap();
    assert_eq!(
        stanza_error(&unknown).as_deref(),
        Some("service-unavailable")
    );
}

#[tokio::test]
async fn unroutable_stanzas_get_errors_never_silence() {
    let setup = start().await;
    let mut one = setup.component_login("bridge1.localhost").await;
    one.send(&iq_get(
        "bridge1.localhost",
        "call@offline.localhost",
        "q1",
        Element::bare("ping", "urn:xmpp:ping"),
    ))
    .await
    .unwrap();
    let bounce = next(&mut one).await.unwrap();
    assert_eq!(
        stanza_error(&bounce).as_deref(),
        Some("service-unavailable"),
        "{bounce:?}"
    );
    assert_eq!(bounce.attr("id"), Some("q1"));
    assert_eq!(bounce.attr("from"), Some("call@offline.localhost"));

    one.send(&message(
        "bridge1.localhost",
        "user@elsewhere.example",
        "hi",
    ))
    .await
    .unwrap();
    let bounce = next(&mut one).await.unwrap();
    assert_eq!(
        stanza_error(&bounce).as_deref(),
        Some("remote-server-not-found")
    );

    // An error is never answered with an error: nothing comes back, and the session lives.
    let mut error = message("bridge1.localhost", "user@elsewhere.example", "x");
    error.set_attr(
        rxml::Namespace::NONE,
        rxml::NcName::try_from("type".to_owned()).unwrap(),
        "error",
    );
    one.send(&error).await.unwrap();
    one.send(&iq_get(
        "bridge1.localhost",
        "localhost",
        "p2",
        Element::bare("ping", "urn:xmpp:ping"),
    ))
    .await
    .unwrap();
    assert_eq!(next(&mut one).await.unwrap().attr("id"), Some("p2"));
}

#[tokio::test]
async fn replace_moves_the_name_to_the_new_connection() {
    let setup = start().await;
    let mut old = setup.component_login("bridge1.localhost").await;
    let _new = setup.component_login("bridge1.localhost").await;
    let closed = next(&mut old).await.unwrap();
    assert_eq!(stream_error(&closed).as_deref(), Some("conflict"));
    assert_eq!(setup.server.router.connection_count("bridge1.localhost"), 1);
}

#[tokio::test]
async fn reject_refuses_the_second_connection() {
    let setup = start().await;
    let _first = setup.component_login("strict.localhost").await;
    let refused = connect(
        setup.component_addr(),
        &setup.ca,
        "strict.localhost",
        "secret-of-strict.localhost",
    )
    .await
    .err()
    .unwrap();
    assert_eq!(stream_error(&refused).as_deref(), Some("conflict"));
}

#[tokio::test]
async fn balance_spreads_stanzas_and_fails_over() {
    let setup = start().await;
    let mut a = setup.component_login("cluster.localhost").await;
    let mut b = setup.component_login("cluster.localhost").await;
    let refused = connect(
        setup.component_addr(),
        &setup.ca,
        "cluster.localhost",
        "secret-of-cluster.localhost",
    )
    .await
    .err()
    .unwrap();
    assert_eq!(
        stream_error(&refused).as_deref(),
        Some("conflict"),
        "max_connections = 2"
    );
    let mut sender = setup.component_login("bridge1.localhost").await;
    for i in 0..2 {
        sender
            .send(&message(
                "bridge1.localhost",
                &format!("call{i}@cluster.localhost"),
                "x",
            ))
            .await
            .unwrap();
    }
    let (first, second) = (next(&mut a).await.unwrap(), next(&mut b).await.unwrap());
    assert_ne!(first.attr("to"), second.attr("to"), "one each");
    drop(a);
    // Wait until the server has noticed the drop, then everything goes to b.
    let router = &setup.server.router;
    assert!(
        crate::support::wait_until(std::time::Duration::from_secs(5), || {
            router.connection_count("cluster.localhost") == 1
        })
        .await
    );
    for i in 0..3 {
        sender
            .send(&message(
                "bridge1.localhost",
                &format!("more{i}@cluster.localhost"),
                "x",
            ))
            .await
            .unwrap();
    }
    for _ in 0..3 {
        assert!(
            next(&mut b).await.is_some(),
            "failed over to the remaining connection"
        );
    }
}

#[tokio::test]
async fn a_spoofed_from_ends_the_stream_with_invalid_from() {
    let setup = start().await;
    let mut one = setup.component_login("bridge1.localhost").await;
    one.send(&message(
        "someone@bridge2.localhost",
        "x@bridge2.localhost",
        "spoof",
    ))
    .await
    .unwrap();
    let closed = next(&mut one).await.unwrap();
    assert_eq!(stream_error(&closed).as_deref(), Some("invalid-from"));
}

/// A component that stops reading is disconnected once its bounded send queue is full; the
/// sender gets errors back instead of the server buffering without bound.
#[tokio::test]
async fn a_component_that_stops_reading_is_disconnected() {
    let setup = start_with(|c| c.xmpp.send_queue_len = 4.try_into().unwrap()).await;
    let _stalled = setup.component_login("bridge2.localhost").await; // never read from again
    let mut sender = setup.component_login("bridge1.localhost").await;
    let body = "x".repeat(100_000);
    let mut bounced = None;
    'flood: for batch in 0..200 {
        for n in 0..10 {
            let id = format!("flood-{batch}-{n}");
            let flood = stanza(
                "message",
                &[
                    ("from", "a@bridge1.localhost"),
                    ("to", "b@bridge2.localhost"),
                    ("id", &id),
                ],
                vec![Element::builder("body", COMPONENT_NS)
                    .append(body.as_str())
                    .build()],
            );
            sender.send(&flood).await.unwrap();
        }
        while let Ok(Some(Ok(reply))) = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            futures::StreamExt::next(&mut sender),
        )
        .await
        {
            if let Some(condition) = stanza_error(&reply) {
                bounced = Some(condition);
                break 'flood;
            }
        }
    }
    let condition = bounced.expect("the flood is bounced once the stalled queue is full");
    assert!(
        ["resource-constraint", "service-unavailable"].contains(&condition.as_str()),
        "{condition}"
    );
    wait_for_connections(&setup, "bridge2.localhost", 0).await;
    // The sender is unaffected and the name is free again.
    setup.component_login("bridge2.localhost").await;
}

#[tokio::test]
async fn an_oversized_stanza_is_a_policy_violation() {
    let setup = start_with(|c| c.xmpp.max_stanza_bytes = 10_000.try_into().unwrap()).await;
    let mut one = setup.component_login("bridge1.localhost").await;
    one.send(&message(
        "bridge1.localhost",
        "x@bridge2.localhost",
        &"x".repeat(20_000),
    ))
    .await
    .unwrap();
    let closed = next(&mut one).await.unwrap();
    assert_eq!(stream_error(&closed).as_deref(), Some("policy-violation"));
    // Other sessions are unaffected.
    setup.component_login("bridge2.localhost").await;
}

#[tokio::test]
async fn malformed_input_and_entity_bombs_get_stream_errors() {
    let setup = start().await;
    let open = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='bridge1.localhost'>";
    let cases = [
        ("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>".to_owned(), "not-well-formed"),
        (format!("{open}<handshake>0</handshake><message><body></message>"), "not-authorized"),
        (format!("{open}<message from='x@bridge1.localhost'/>"), "not-authorized"),
        (format!("{open}<a><b></a>"), "not-well-formed"),
        ("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='bridge1.localhost'>".to_owned(), "invalid-namespace"),
    ];
    for (input, condition) in cases {
        let reply = raw_exchange(setup.component_addr(), &setup.ca, input.as_bytes()).await;
        assert!(
            reply.contains(&format!("<{condition}")),
            "{condition}: {reply}"
        );
        assert!(
            reply.contains("</stream:stream>"),
            "the stream is closed: {reply}"
        );
    }
    setup.component_login("bridge1.localhost").await;
}

#[tokio::test]
async fn garbage_instead_of_tls_and_half_open_connections_do_no_harm() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let setup = start_with(|c| c.xmpp.handshake_timeout_secs = 1.try_into().unwrap()).await;
    let mut garbage = tokio::net::TcpStream::connect(setup.component_addr())
        .await
        .unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        garbage.read_to_end(&mut sink),
    )
    .await;
    // A connection that never speaks is dropped after the handshake deadline.
    let mut silent = tokio::net::TcpStream::connect(setup.component_addr())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        silent.read_to_end(&mut sink),
    )
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "closed by the deadline"
    );
    setup.component_login("bridge1.localhost").await;
}

#[tokio::test]
async fn shutdown_closes_streams_with_system_shutdown() {
    let setup = start().await;
    let mut one = setup.component_login("bridge1.localhost").await;
    let Setup { server, dir, .. } = setup;
    let stopping = tokio::spawn(server.stop());
    let closed = next(&mut one).await.unwrap();
    assert_eq!(stream_error(&closed).as_deref(), Some("system-shutdown"));
    stopping.await.unwrap();
    drop(dir);
}

async fn wait_for_connections(setup: &Setup, name: &str, count: usize) {
    let router = &setup.server.router;
    let reached = crate::support::wait_until(std::time::Duration::from_secs(2), || {
        router.connection_count(name) == count
    })
    .await;
    assert!(reached, "{name} never reached {count} connection(s)");
}

#[tokio::test]
async fn an_idle_component_is_pinged_and_dropped_when_silent() {
    let setup = start_with(|c| {
        c.xmpp.component_ping_interval_secs = 1.try_into().unwrap();
        c.xmpp.component_ping_timeout_secs = 1.try_into().unwrap();
    })
    .await;
    // One answers its pings and stays; the other stays silent and is dropped.
    let mut lively = setup.component_login("bridge1.localhost").await;
    let mut silent = setup.component_login("bridge2.localhost").await;
    let answering = tokio::spawn(async move {
        for _ in 0..3 {
            let ping = next(&mut lively).await.unwrap();
            assert_eq!(ping.attr("type"), Some("get"), "{ping:?}");
            let pong = stanza(
                "iq",
                &[
                    ("type", "result"),
                    ("id", ping.attr("id").unwrap()),
                    ("from", "bridge1.localhost"),
                    ("to", "localhost"),
                ],
                vec![],
            );
            lively.send(&pong).await.unwrap();
        }
        lively
    });
    let ping = next(&mut silent).await.unwrap();
    assert!(ping.has_child("ping", "urn:xmpp:ping"), "{ping:?}");
    assert_eq!(ping.attr("from"), Some("localhost"));
    let closed = next(&mut silent).await.unwrap();
    assert_eq!(stream_error(&closed).as_deref(), Some("connection-timeout"));
    let _lively = answering.await.unwrap();
    assert_eq!(
        setup.server.router.connection_count("bridge1.localhost"),
        1,
        "still connected"
    );
}

#[tokio::test]
async fn a_restarting_component_with_hold_loses_nothing() {
    let setup = start_with(|c| {
        let mut held = component("held.localhost", 1, OnConflict::Replace);
        held.hold_secs = 30;
        let mut brief = component("brief.localhost", 1, OnConflict::Replace);
        brief.hold_secs = 1;
        c.components.extend([held, brief]);
    })
    .await;
    let mut sender = setup.component_login("bridge1.localhost").await;
    let first = setup.component_login("held.localhost").await;
    drop(first);
    wait_for_connections(&setup, "held.localhost", 0).await;
    sender
        .send(&message(
            "bridge1.localhost",
            "call@held.localhost",
            "while you were away",
        ))
        .await
        .unwrap();
    sender
        .send(&iq_get(
            "bridge1.localhost",
            "localhost",
            "p1",
            Element::bare("ping", "urn:xmpp:ping"),
        ))
        .await
        .unwrap();
    assert_eq!(
        next(&mut sender).await.unwrap().attr("id"),
        Some("p1"),
        "no bounce came first"
    );
    let mut back = setup.component_login("held.localhost").await;
    let delivered = next(&mut back).await.unwrap();
    assert_eq!(
        delivered.get_child("body", COMPONENT_NS).unwrap().text(),
        "while you were away"
    );

    // A hold that runs out is answered with recipient-unavailable.
    let gone = setup.component_login("brief.localhost").await;
    drop(gone);
    wait_for_connections(&setup, "brief.localhost", 0).await;
    sender
        .send(&message(
            "bridge1.localhost",
            "call@brief.localhost",
            "too late",
        ))
        .await
        .unwrap();
    let bounce = next(&mut sender).await.unwrap();
    assert_eq!(
        stanza_error(&bounce).as_deref(),
        Some("recipient-unavailable"),
        "{bounce:?}"
    );
}

#[tokio::test]
async fn metrics_count_handshakes_routing_and_bounces() {
    let setup = start().await;
    let mut one = setup.component_login("bridge1.localhost").await;
    let mut two = setup.component_login("bridge2.localhost").await;
    let _ = connect(
        setup.component_addr(),
        &setup.ca,
        "bridge1.localhost",
        "wrong",
    )
    .await;
    one.send(&message(
        "bridge1.localhost",
        "bridge2.localhost",
        "counted",
    ))
    .await
    .unwrap();
    next(&mut two).await.unwrap();
    one.send(&message(
        "bridge1.localhost",
        "x@nowhere.example",
        "bounced",
    ))
    .await
    .unwrap();
    next(&mut one).await.unwrap();
    let (status, body) =
        crate::support::server::http_get(setup.server.addrs.admin.unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        "bridgehead_component_handshakes_total{result=\"ok\"}",
        "bridgehead_component_handshakes_total{result=\"failed\"}",
        "bridgehead_component_connections",
        "bridgehead_stanzas_routed_total{component=\"bridge2.localhost\"}",
        "bridgehead_stanzas_bounced_total{component=\"unknown\",condition=\"remote-server-not-found\"}",
    ] {
        assert!(body.contains(expected), "{expected} missing from:\n{body}");
    }
    assert!(
        !body.contains("nowhere.example"),
        "made-up domains never become labels"
    );
}

/// slixmpp (an independent XEP-0114 implementation, as a separate process) and a tokio-xmpp
/// component exchange messages through Bridgehead over plain TCP on loopback.
#[tokio::test]
async fn slixmpp_and_tokio_xmpp_components_talk_through_bridgehead() {
    let setup = start_with(|c| {
        c.xmpp.component_tls = false;
        c.components
            .push(component("slix.localhost", 1, OnConflict::Replace));
    })
    .await;
    let mut ours = component::connect_plain(
        setup.component_addr(),
        "bridge1.localhost",
        "secret-of-bridge1.localhost",
    )
    .await
    .expect("tokio-xmpp component over plain TCP");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/slixmpp_component.py"
    );
    let python = tokio::process::Command::new("python3")
        .args([
            script,
            "slix.localhost",
            "secret-of-slix.localhost",
            "127.0.0.1",
            &setup.component_addr().port().to_string(),
            "echo@bridge1.localhost",
        ])
        .kill_on_drop(true)
        .output();
    let answering = async {
        let hello = next(&mut ours).await.expect("slixmpp's message arrives");
        assert_eq!(
            hello.get_child("body", COMPONENT_NS).unwrap().text(),
            "hello from slixmpp"
        );
        assert_eq!(hello.attr("to"), Some("echo@bridge1.localhost"));
        let reply_to = hello.attr("from").unwrap().to_owned();
        assert!(reply_to.ends_with("@slix.localhost"), "{reply_to}");
        ours.send(&message(
            "echo@bridge1.localhost",
            &reply_to,
            "hello from tokio-xmpp",
        ))
        .await
        .unwrap();
    };
    let (output, ()) = tokio::join!(python, answering);
    let output = output.expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("answer: hello from tokio-xmpp"),
        "slixmpp: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The component listener presents the full chain (leaf and intermediate), and an
/// independent TLS client (`openssl s_client`) verifies it against the CA for the domain.
#[tokio::test]
async fn openssl_s_client_verifies_the_component_listener_chain() {
    let setup = start().await;
    let addr = setup.component_addr().to_string();
    let ca = setup.ca.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-servername", "localhost"])
            .args(["-verify_hostname", "localhost", "-showcerts", "-CAfile"])
            .arg(&ca)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run openssl s_client")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("Verify return code: 0 (ok)"),
        "s_client: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "leaf and intermediate are served: {stdout}"
    );
}
