//! Hostile and faulty input against a real server on real sockets: nesting bombs on every
//! transport, per-user quotas, throttles under parallel attack, pre-authentication floods,
//! and the protocol details that used to hang or lose data.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use minidom::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use bridgehead::config::Config;

use crate::support::client::{
    plain_auth, raw_login, raw_next, raw_session, raw_tls, CLIENT_NS, SASL,
};
use crate::support::component;
use crate::support::https::{basic, EventChannel, EVENTS};
use crate::support::server::{http_get, Setup, BRIDGE, BRIDGE_SECRET};

const DOMAIN: &str = "localhost";
const ANN: &str = "ann@localhost";
use bridgehead::xmpp::ns::SM;
const ACTIONS: &str = "/com.broadsoft.xsi-actions/v2.0";

async fn start_with(adjust: impl FnOnce(&mut Config) + 'static) -> Setup {
    Setup::builder()
        .bridge()
        .config(|config| config.xmpp.auth_failure_delay_ms = 50)
        .config(adjust)
        .xmpp_users(&[(ANN, "Ann")])
        .start()
        .await
}

impl Setup {
    /// The node still serves: `/healthz` answers and a bridge logs in.
    async fn assert_alive(&self) {
        let (status, body) = http_get(self.server.addrs.admin.unwrap(), "/healthz").await;
        assert_eq!((status, body.trim()), (200, "ok"));
        let bridge =
            component::connect(self.component_addr(), &self.ca, BRIDGE, BRIDGE_SECRET).await;
        assert!(bridge.is_ok(), "a bridge still logs in");
    }
}

/// A message whose body nests `depth` elements.
fn nested_message(depth: usize, ns: &str) -> String {
    format!(
        "<message xmlns='{ns}' to='{ANN}'>{}{}</message>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    )
}

/// Writes `bytes` and reads whatever comes back until the peer closes (bounded in time).
async fn send_and_drain<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    io: &mut S,
    bytes: &[u8],
) -> String {
    // A write may fail once the server closed for the part it already read.
    let _ = io.write_all(bytes).await;
    let _ = io.flush().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), io.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn deep_nesting_is_refused_on_every_transport_and_the_server_lives() {
    let setup = start_with(|_| {}).await;
    for depth in [10_000, 100_000] {
        // c2s, after login and bind.
        let stream = raw_session(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass", "deep").await;
        let mut io = stream.into_inner();
        let answer = send_and_drain(&mut io, nested_message(depth, CLIENT_NS).as_bytes()).await;
        assert!(answer.contains("policy-violation"), "c2s {depth}: {answer}");

        // A component.
        let bridge = component::connect(setup.component_addr(), &setup.ca, BRIDGE, BRIDGE_SECRET)
            .await
            .unwrap();
        let mut io = bridge.into_inner();
        let stanza = nested_message(depth, component::COMPONENT_NS)
            .replace("<message ", &format!("<message from='x@{BRIDGE}' "));
        let answer = send_and_drain(&mut io, stanza.as_bytes()).await;
        assert!(
            answer.contains("policy-violation"),
            "component {depth}: {answer}"
        );

        // WebSocket, after login.
        let mut ws = websocket_session(&setup).await;
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            nested_message(depth, CLIENT_NS),
        ))
        .await
        .unwrap();
        let mut seen = String::new();
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(10), ws.next()).await
        {
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                seen.push_str(text.as_str());
            }
        }
        assert!(
            seen.contains("policy-violation"),
            "websocket {depth}: {seen}"
        );

        // An XSI body, in XML and in JSON.
        let https = setup.https();
        let auth = basic(ANN, "ann-pass");
        let xml = format!(
            "<DoNotDisturb xmlns='http://schema.broadsoft.com/xsi'><active>true</active>{}{}</DoNotDisturb>",
            "<x>".repeat(depth),
            "</x>".repeat(depth)
        );
        let path = format!("{ACTIONS}/user/{ANN}/services/DoNotDisturb");
        let reply = https.put_xml(&path, &auth, &xml).await;
        assert!(
            (reply.status == 400 && reply.body.contains("ErrorInfo")) || reply.status == 413,
            "XSI XML {depth}: {} {}",
            reply.status,
            reply.body
        );
        let json = format!(
            "{{\"DoNotDisturb\":{{\"active\":{{\"$\":\"true\"}},\"x\":{}{}}}}}",
            "{\"x\":".repeat(depth.min(20_000)),
            "{}".to_owned() + &"}".repeat(depth.min(20_000))
        );
        let reply = https
            .request(
                hyper::Method::PUT,
                &path,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                Some(json.as_str()),
            )
            .await;
        assert!(
            reply.status == 400 || reply.status == 413,
            "XSI JSON {depth}: {} {}",
            reply.status,
            reply.body
        );
        setup.assert_alive().await;
    }
    // Within the limit a nested payload still routes.
    let mut ok = raw_session(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass", "ok").await;
    let iq = Element::builder("iq", CLIENT_NS)
        .attr(rxml::xml_ncname!("type").to_owned(), "get")
        .attr(rxml::xml_ncname!("id").to_owned(), "p1")
        .attr(rxml::xml_ncname!("to").to_owned(), DOMAIN)
        .append(Element::bare("ping", "urn:xmpp:ping"))
        .build();
    ok.send(&iq).await.unwrap();
    assert_eq!(
        raw_next(&mut ok).await.unwrap().attr("type"),
        Some("result")
    );
    setup.server.stop().await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

async fn websocket_session(setup: &Setup) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut request = "wss://localhost/xmpp-websocket"
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "xmpp".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, setup.https().tls_stream().await)
        .await
        .unwrap();
    let open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
    ws.send(Message::text(open)).await.unwrap();
    let mut texts = 0;
    while texts < 2 {
        if let Some(Ok(Message::Text(_))) = ws.next().await {
            texts += 1;
        }
    }
    ws.send(Message::text(String::from(&plain_auth("ann", "ann-pass"))))
        .await
        .unwrap();
    loop {
        if let Some(Ok(Message::Text(text))) = ws.next().await {
            assert!(text.as_str().contains("success"), "{text}");
            break;
        }
    }
    ws
}

/// A raw TLS login on c2s with PLAIN: `Ok` success, `Err(condition)` failure.
async fn plain_login(addr: SocketAddr, ca: &std::path::Path, password: &str) -> Result<(), String> {
    let (mut stream, _) = raw_tls(addr, ca, DOMAIN).await;
    stream.send(&plain_auth("ann", password)).await.unwrap();
    let answer = raw_next(&mut stream).await.unwrap();
    if answer.is("success", SASL) {
        return Ok(());
    }
    Err(answer
        .children()
        .next()
        .map(|c| c.name().to_owned())
        .unwrap_or_default())
}

#[tokio::test]
async fn parallel_wrong_passwords_get_at_most_the_budget_checked() {
    let setup = start_with(|c| {
        c.limits.max_preauth_connections_per_address = std::num::NonZeroUsize::new(1000).unwrap();
        c.xmpp.failed_logins_per_address_per_minute = 1000.try_into().unwrap();
        c.xsi.failed_logins_per_address_per_minute = 1000.try_into().unwrap();
        c.xmpp.failed_handshakes_per_minute = 5;
    })
    .await;
    let limit = 5; // xmpp.failed_logins_per_account_per_minute

    // SASL: 200 at once.
    let attempts = (0..200).map(|_| plain_login(setup.c2s(), &setup.ca, "wrong"));
    let results = futures::future::join_all(attempts).await;
    let checked = results
        .iter()
        .filter(|r| r.as_ref().err().map(String::as_str) == Some("not-authorized"))
        .count();
    let throttled = results
        .iter()
        .filter(|r| r.as_ref().err().map(String::as_str) == Some("temporary-auth-failure"))
        .count();
    assert!(checked <= limit, "{checked} passwords were checked");
    assert_eq!(checked + throttled, 200, "{results:?}");

    // XSI Basic: 300 at once against 10.
    let https = Arc::new(setup.https());
    let path = format!("{ACTIONS}/user/{ANN}/profile");
    let requests = (0..300).map(|_| {
        let https = Arc::clone(&https);
        let path = path.clone();
        async move { https.get(&path, &basic(ANN, "wrong")).await.status }
    });
    let statuses = futures::future::join_all(requests).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(checked <= 10, "{checked} XSI passwords were checked");
    assert_eq!(
        checked + statuses.iter().filter(|s| **s == 429).count(),
        300
    );

    // Component handshakes: 200 at once against 5.
    let handshakes =
        (0..200).map(|_| component::connect(setup.component_addr(), &setup.ca, BRIDGE, "wrong"));
    let refused = futures::future::join_all(handshakes).await;
    assert!(refused.iter().all(Result::is_err));
    setup.server.stop().await;
}

#[tokio::test]
async fn a_stranger_cannot_lock_the_owner_out_from_elsewhere() {
    let setup = start_with(|_| {}).await;
    let https = setup.https();
    let path = format!("{ACTIONS}/user/{ANN}/profile");
    // The stranger, from 127.0.0.1, exhausts the per-address budget for ann.
    for _ in 0..12 {
        https.get(&path, &basic(ANN, "wrong")).await;
    }
    assert_eq!(https.get(&path, &basic(ANN, "ann-pass")).await.status, 429);
    // Ann, from another address, still gets in.
    let from = SocketAddr::from(([127, 0, 0, 2], 0));
    let status = https_from(&setup, from, &path, &basic(ANN, "ann-pass")).await;
    assert_eq!(status, 200);
    setup.server.stop().await;
}

/// One GET over a TLS connection bound to the local address `from`.
async fn https_from(setup: &Setup, from: SocketAddr, path: &str, auth: &str) -> u16 {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(from).unwrap();
    let tcp = socket
        .connect(setup.server.addrs.https.unwrap())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(crate::support::https::client_tls(
        &setup.ca,
        &[b"http/1.1"],
    ))
    .connect(
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
        tcp,
    )
    .await
    .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    let mut tls = tls;
    let answer = send_and_drain(&mut tls, request.as_bytes()).await;
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_bridge_logs_in_at_once_while_idle_sockets_flood_the_port() {
    let setup = start_with(|_| {}).await;
    // 1,100 connections that never send a byte, from 110 other loopback addresses.
    let mut idle = Vec::new();
    for i in 0..1100u32 {
        let socket = TcpSocket::new_v4().unwrap();
        let host = IpAddr::from([127, 0, 1 + (i / 250) as u8, 2 + (i % 110) as u8]);
        socket.bind(SocketAddr::new(host, 0)).unwrap();
        if let Ok(stream) = socket.connect(setup.component_addr()).await {
            idle.push(stream);
        }
    }
    assert!(idle.len() >= 1000, "{} idle sockets", idle.len());
    let started = Instant::now();
    let bridge = component::connect(setup.component_addr(), &setup.ca, BRIDGE, BRIDGE_SECRET).await;
    assert!(bridge.is_ok(), "the bridge logs in");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "it took {:?}",
        started.elapsed()
    );
    // One address gets no more than its share of unauthenticated connections: the rest
    // are closed at once, the admitted ones wait in their TLS handshake.
    let mut from_one = Vec::new();
    for _ in 0..64 {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from(([127, 0, 9, 9], 0))).unwrap();
        from_one.push(socket.connect(setup.component_addr()).await.unwrap());
    }
    let reads = from_one.iter_mut().map(|stream| async move {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte)).await;
        read.is_ok_and(|r| matches!(r, Ok(0) | Err(_)))
    });
    let closed = futures::future::join_all(reads).await;
    assert_eq!(
        closed.iter().filter(|c| **c).count(),
        64 - 32,
        "max_preauth_connections_per_address = 32"
    );
    drop(idle);
    setup.server.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_half_open_tls() {
    let setup = start_with(|_| {}).await;
    let mut idle = Vec::new();
    for addr in [
        setup.server.addrs.https.unwrap(),
        setup.server.addrs.cti.unwrap(),
        setup.component_addr(),
        setup.c2s(),
    ] {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Let every connection reach its handshake.
    let (status, _) = http_get(setup.server.addrs.admin.unwrap(), "/healthz").await;
    assert_eq!(status, 200);
    let started = Instant::now();
    setup.server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn c2s_garbage_gets_a_header_and_the_stream_error() {
    let setup = start_with(|_| {}).await;
    for (input, condition) in [
        ("\u{1}garbage", "not-well-formed"),
        (
            "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
            "not-well-formed",
        ),
        (
            "<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='localhost'>",
            "invalid-namespace",
        ),
    ] {
        let mut tcp = TcpStream::connect(setup.c2s()).await.unwrap();
        let answer = send_and_drain(&mut tcp, input.as_bytes()).await;
        assert!(answer.contains("<stream:stream"), "{input}: {answer}");
        assert!(answer.contains(condition), "{input}: {answer}");
    }
    setup.server.stop().await;
}

#[tokio::test]
async fn a_refused_bind_is_answered_at_once() {
    let setup = start_with(|c| c.xmpp.login_timeout_secs = 30.try_into().unwrap()).await;
    let (mut stream, _) = raw_login(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass").await;
    let bind = Element::builder("iq", CLIENT_NS)
        .attr(rxml::xml_ncname!("type").to_owned(), "get")
        .attr(rxml::xml_ncname!("id").to_owned(), "b1")
        .append(Element::bare("bind", "urn:ietf:params:xml:ns:xmpp-bind"))
        .build();
    let started = Instant::now();
    stream.send(&bind).await.unwrap();
    let answer = raw_next(&mut stream).await.unwrap();
    assert_eq!(answer.attr("type"), Some("error"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    setup.server.stop().await;
}

fn sm(name: &str, attrs: &[(&str, &str)]) -> Element {
    let mut builder = Element::builder(name, SM);
    for (k, v) in attrs {
        builder = builder.attr(rxml::NcName::try_from(*k).unwrap(), *v);
    }
    builder.build()
}

#[tokio::test]
async fn a_malformed_resume_leaves_the_parked_session_for_a_good_one() {
    let setup = start_with(|c| c.xmpp.sm_resume_timeout_secs = 30).await;
    let mut ann = raw_session(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass", "phone").await;
    ann.send(&sm("enable", &[("resume", "true")]))
        .await
        .unwrap();
    let enabled = raw_next(&mut ann).await.unwrap();
    let id = enabled.attr("id").unwrap().to_owned();
    drop(ann);
    let parked = crate::support::wait_until(Duration::from_secs(5), || {
        setup.server.router.is_online(ANN)
    })
    .await;
    assert!(parked);

    for bad in [
        vec![("previd", id.as_str())],
        vec![("previd", id.as_str()), ("h", "x")],
    ] {
        let (mut again, _) = raw_login(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass").await;
        again.send(&sm("resume", &bad)).await.unwrap();
        let failed = raw_next(&mut again).await.unwrap();
        assert!(failed.is("failed", SM), "{failed:?}");
        assert!(setup.server.router.is_online(ANN), "still parked");
    }
    let (mut again, _) = raw_login(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass").await;
    again
        .send(&sm("resume", &[("previd", &id), ("h", "0")]))
        .await
        .unwrap();
    let resumed = raw_next(&mut again).await.unwrap();
    assert!(resumed.is("resumed", SM), "{resumed:?}");
    setup.server.stop().await;
}

#[tokio::test]
async fn a_personal_directory_post_is_all_or_nothing_and_bounded() {
    let setup =
        start_with(|c| c.quotas.max_personal_entries = std::num::NonZeroUsize::new(3).unwrap())
            .await;
    let https = setup.https();
    let auth = basic(ANN, "ann-pass");
    let path = format!("{ACTIONS}/user/{ANN}/directories/Personal");
    let post = |entries: &[(&str, &str)]| {
        let body = format!(
            "<Personal xmlns='http://schema.broadsoft.com/xsi'>{}</Personal>",
            entries
                .iter()
                .map(|(n, num)| format!("<entry><name>{n}</name><number>{num}</number></entry>"))
                .collect::<String>()
        );
        let https = &https;
        let (path, auth) = (path.clone(), auth.clone());
        async move {
            https
                .request(
                    hyper::Method::POST,
                    &path,
                    &[
                        ("authorization", &auth),
                        ("content-type", "application/xml"),
                    ],
                    Some(body.as_str()),
                )
                .await
                .status
        }
    };
    let count = || async {
        let reply = https.get(&path, &auth).await;
        reply.body.matches("<entry>").count()
    };
    assert_eq!(
        post(&[("a", "100"), ("", "101")]).await,
        400,
        "one invalid entry"
    );
    assert_eq!(count().await, 0, "nothing stored");
    assert_eq!(
        post(&[("a", "100"), ("a", "101")]).await,
        409,
        "a duplicate"
    );
    assert_eq!(count().await, 0, "not even the first copy");
    assert_eq!(post(&[("a", "100"), ("b", "101"), ("c", "102")]).await, 201);
    assert_eq!(post(&[("d", "103")]).await, 403, "just past the quota");
    assert_eq!(count().await, 3);
    setup.server.stop().await;
}

/// A roster set for `jid` with `groups`; the answer's `type` and error condition.
async fn roster_set(
    stream: &mut crate::support::client::Raw,
    jid: &str,
    name: &str,
    groups: &[String],
) -> (String, Option<String>) {
    let mut item = Element::builder("item", "jabber:iq:roster")
        .attr(rxml::xml_ncname!("jid").to_owned(), jid)
        .attr(rxml::xml_ncname!("name").to_owned(), name);
    for group in groups {
        item = item.append(
            Element::builder("group", "jabber:iq:roster")
                .append(group.as_str())
                .build(),
        );
    }
    let iq = Element::builder("iq", CLIENT_NS)
        .attr(rxml::xml_ncname!("type").to_owned(), "set")
        .attr(rxml::xml_ncname!("id").to_owned(), format!("r-{jid}"))
        .append(
            Element::builder("query", "jabber:iq:roster")
                .append(item.build())
                .build(),
        )
        .build();
    stream.send(&iq).await.unwrap();
    loop {
        let answer = raw_next(stream).await.unwrap();
        if answer.attr("id") == Some(format!("r-{jid}").as_str()) {
            let condition = answer
                .get_child("error", CLIENT_NS)
                .and_then(|e| e.children().next())
                .map(|c| c.name().to_owned());
            return (
                answer.attr("type").unwrap_or_default().to_owned(),
                condition,
            );
        }
    }
}

#[tokio::test]
async fn roster_quotas_hold_at_and_just_past_their_limits() {
    let setup = start_with(|c| {
        c.quotas.max_roster_items = std::num::NonZeroUsize::new(3).unwrap();
        c.quotas.max_roster_groups_per_item = std::num::NonZeroUsize::new(2).unwrap();
        c.quotas.max_roster_text_bytes = std::num::NonZeroUsize::new(16).unwrap();
    })
    .await;
    let mut ann = raw_session(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass", "r").await;
    let two = vec!["g1".to_owned(), "g2".to_owned()];
    let three = vec!["g1".to_owned(), "g2".to_owned(), "g3".to_owned()];
    assert_eq!(
        roster_set(&mut ann, "c1@x.test", "one", &two).await.0,
        "result"
    );
    assert_eq!(
        roster_set(&mut ann, "c2@x.test", "two", &three)
            .await
            .1
            .as_deref(),
        Some("not-acceptable")
    );
    assert_eq!(
        roster_set(&mut ann, "c2@x.test", &"n".repeat(17), &two)
            .await
            .1
            .as_deref(),
        Some("not-acceptable")
    );
    assert_eq!(
        roster_set(&mut ann, "c2@x.test", &"n".repeat(16), &two)
            .await
            .0,
        "result"
    );
    assert_eq!(
        roster_set(&mut ann, "c3@x.test", "three", &[]).await.0,
        "result"
    );
    assert_eq!(
        roster_set(&mut ann, "c4@x.test", "four", &[])
            .await
            .1
            .as_deref(),
        Some("resource-constraint")
    );
    assert_eq!(
        roster_set(&mut ann, "c1@x.test", "renamed", &[]).await.0,
        "result",
        "changing an item of a full roster is fine"
    );
    setup.server.stop().await;
}

#[tokio::test]
async fn event_quotas_hold_at_and_just_past_their_limits() {
    let setup = start_with(|c| {
        c.quotas.max_subscriptions_per_user = std::num::NonZeroUsize::new(2).unwrap();
        c.quotas.max_channels_per_user = std::num::NonZeroUsize::new(2).unwrap();
        c.quotas.max_channel_sets_per_user = std::num::NonZeroUsize::new(1).unwrap();
        c.quotas.max_event_id_bytes = std::num::NonZeroUsize::new(32).unwrap();
    })
    .await;
    let https = setup.https();
    let auth = basic(ANN, "ann-pass");
    let channel = |set: &str| {
        format!(
            "<channelSetId>{set}</channelSetId><priority>1</priority><weight>100</weight><expires>3600</expires>"
        )
    };
    let first = EventChannel::open(https, &auth, &channel("set-a"))
        .await
        .unwrap();
    let second = EventChannel::open(https, &auth, &channel("set-a"))
        .await
        .unwrap();
    let third = EventChannel::open(https, &auth, &channel("set-a")).await;
    assert_eq!(
        third.err().map(|r| r.status),
        Some(403),
        "max_channels_per_user"
    );
    drop(second);
    let other_set = EventChannel::open(https, &auth, &channel("set-b")).await;
    assert_eq!(
        other_set.err().map(|r| r.status),
        Some(403),
        "max_channel_sets_per_user"
    );
    let long = EventChannel::open(https, &auth, &channel(&"s".repeat(33))).await;
    assert_eq!(
        long.err().map(|r| r.status),
        Some(400),
        "max_event_id_bytes"
    );

    let subscribe = || async {
        let body = "<Subscription xmlns='http://schema.broadsoft.com/xsi'><event>Do Not Disturb</event><expires>3600</expires><channelSetId>set-a</channelSetId><applicationId>app</applicationId></Subscription>".to_owned();
        https
            .request(
                hyper::Method::POST,
                &format!("{EVENTS}/user/{ANN}"),
                &[
                    ("authorization", &auth),
                    ("content-type", "application/xml"),
                ],
                Some(body.as_str()),
            )
            .await
            .status
    };
    assert!((200..300).contains(&subscribe().await));
    assert!((200..300).contains(&subscribe().await));
    assert_eq!(subscribe().await, 403, "max_subscriptions_per_user");
    drop(first);
    setup.server.stop().await;
}
