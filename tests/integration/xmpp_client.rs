//! XMPP clients against the real server: tokio-xmpp's `Client` over STARTTLS with SCRAM,
//! raw streams for what good clients never send, a WebSocket client, and components on
//! tokio-xmpp's `xmlstream`.

use std::time::{Duration, Instant};

use futures::SinkExt;
use minidom::Element;
use tokio_xmpp::parsers::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::{Lang, Message};
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::{Client, Stanza};

use bridgehead::config::Config;

use crate::support::client::{
    login, plain_auth, raw_login, raw_next, raw_open, raw_session, raw_tls, try_login, wait_for,
    Binding, CLIENT_NS, SASL,
};
use crate::support::component::{self, stanza_error, stream_error, COMPONENT_NS};
use crate::support::server::{Setup, BRIDGE, BRIDGE_SECRET};
use crate::support::wait_until;

const DOMAIN: &str = "localhost";
const ANN: &str = "ann@localhost";
const BEN: &str = "ben@localhost";

impl Setup {
    async fn login(&self, jid: &str) -> (Client, Jid) {
        let password = format!("{}-pass", jid.split('@').next().unwrap());
        login(self.c2s(), &self.ca, jid, &password).await
    }

    async fn bridge_login(&self) -> component::Stream {
        component::connect(
            self.server.addrs.component.unwrap(),
            &self.ca,
            BRIDGE,
            BRIDGE_SECRET,
        )
        .await
        .expect("the bridge connects")
    }
}

async fn start_with(adjust: impl FnOnce(&mut Config) + 'static) -> Setup {
    Setup::builder()
        .bridge()
        .config(|config| config.xmpp.auth_failure_delay_ms = 300)
        .config(adjust)
        .xmpp_users(&[(ANN, "Ann"), (BEN, "Ben")])
        .start()
        .await
}

fn element_of(stanza: &Stanza) -> Element {
    match stanza {
        Stanza::Message(m) => m.into(),
        Stanza::Presence(p) => p.into(),
        Stanza::Iq(i) => i.into(),
    }
}

fn chat(to: &str, body: &str) -> Stanza {
    Message::chat(Some(Jid::new(to).unwrap()))
        .with_body(Lang::default(), body.to_owned())
        .into()
}

fn body_of(element: &Element) -> Option<String> {
    element
        .children()
        .find(|c| c.name() == "body")
        .map(|b| b.text())
}

/// Waits for a message with `body` on a tokio-xmpp client; returns it.
async fn expect_message(client: &mut Client, body: &str) -> Element {
    wait_for(client, |s| {
        let e = element_of(s);
        (e.name() == "message" && body_of(&e).as_deref() == Some(body)).then_some(e)
    })
    .await
}

fn raw(name: &str, ns: &str, attrs: &[(&str, &str)], children: Vec<Element>) -> Element {
    let mut builder = Element::builder(name, ns);
    for (key, value) in attrs {
        builder = builder.attr(rxml::NcName::try_from(key.to_string()).unwrap(), *value);
    }
    for child in children {
        builder = builder.append(child);
    }
    builder.build()
}

fn body(text: &str, ns: &str) -> Element {
    Element::builder("body", ns).append(text).build()
}

/// The next element on a component stream that is a stanza of `name` (skipping pings).
async fn bridge_next(bridge: &mut component::Stream, name: &str) -> Element {
    loop {
        let element = component::next(bridge)
            .await
            .expect("a stanza for the bridge");
        if element.name() == name {
            return element;
        }
    }
}

#[tokio::test]
async fn scram_clients_exchange_messages_with_each_other_and_a_component() {
    let setup = start_with(|_| {}).await;
    let mut bridge = setup.bridge_login().await;
    let (mut ann, ann_jid) = setup.login(ANN).await;
    let (mut ben, ben_jid) = setup.login(BEN).await;
    assert_eq!(ann_jid.to_bare().as_str(), ANN);

    // Ben must be available to receive messages at his bare JID.
    ben.send_stanza(Presence::available().into()).await.unwrap();
    wait_for(&mut ben, |s| matches!(s, Stanza::Presence(_)).then_some(())).await;

    ann.send_stanza(chat(BEN, "to the bare JID")).await.unwrap();
    let got = expect_message(&mut ben, "to the bare JID").await;
    assert_eq!(got.attr("from"), Some(ann_jid.as_str()), "from is stamped");
    ann.send_stanza(chat(ben_jid.as_str(), "to the full JID"))
        .await
        .unwrap();
    expect_message(&mut ben, "to the full JID").await;

    // Client → component → client.
    ann.send_stanza(chat(&format!("room@{BRIDGE}"), "dial 100"))
        .await
        .unwrap();
    let at_bridge = bridge_next(&mut bridge, "message").await;
    assert_eq!(
        at_bridge.ns(),
        COMPONENT_NS,
        "moved into the component namespace"
    );
    assert_eq!(at_bridge.attr("from"), Some(ann_jid.as_str()));
    assert_eq!(body_of(&at_bridge).as_deref(), Some("dial 100"));
    bridge
        .send(&raw(
            "message",
            COMPONENT_NS,
            &[
                ("from", &format!("room@{BRIDGE}")),
                ("to", ann_jid.as_str()),
                ("type", "chat"),
            ],
            vec![body("ringing", COMPONENT_NS)],
        ))
        .await
        .unwrap();
    let back = expect_message(&mut ann, "ringing").await;
    assert_eq!(back.ns(), CLIENT_NS);

    // A message to an account with no available resource bounces.
    let (mut raw_client, _) = raw_tls(setup.c2s(), &setup.ca, DOMAIN).await;
    raw_client
        .send(&plain_auth("ann", "ann-pass"))
        .await
        .unwrap();
    assert!(raw_next(&mut raw_client).await.unwrap().is("success", SASL));
    drop(raw_client);
    ann.send_stanza(chat("nobody@localhost", "hello?"))
        .await
        .unwrap();
    let bounce = wait_for(&mut ann, |s| {
        let e = element_of(s);
        stanza_error(&e).filter(|_| e.name() == "message")
    })
    .await;
    assert_eq!(bounce, "service-unavailable");

    // XEP-0199 ping to the server and to the own account.
    let ping = raw(
        "iq",
        CLIENT_NS,
        &[("type", "get"), ("id", "p1"), ("to", DOMAIN)],
        vec![Element::bare("ping", "urn:xmpp:ping")],
    );
    ann.send_stanza(Stanza::Iq(ping.try_into().unwrap()))
        .await
        .unwrap();
    wait_for(&mut ann, |s| {
        let e = element_of(s);
        (e.name() == "iq" && e.attr("id") == Some("p1") && e.attr("type") == Some("result"))
            .then_some(())
    })
    .await;
    ann.send_end().await.unwrap();
    ben.send_end().await.unwrap();
    setup.server.stop().await;
}

#[tokio::test]
async fn roster_subscriptions_and_presence_between_two_users() {
    use tokio_xmpp::parsers::roster::{Roster, Subscription};
    let setup = start_with(|_| {}).await;
    let (mut ann, ann_jid) = setup.login(ANN).await;
    let (mut ben, ben_jid) = setup.login(BEN).await;
    for client in [&mut ann, &mut ben] {
        client
            .send_stanza(Presence::available().into())
            .await
            .unwrap();
    }
    let ben_bare = BareJid::new(BEN).unwrap();
    let ann_bare = BareJid::new(ANN).unwrap();

    // Ann asks to see Ben's presence; Ben approves and asks back; Ann approves.
    ann.send_stanza(Presence::subscribe().with_to(ben_bare.clone()).into())
        .await
        .unwrap();
    wait_for(&mut ben, |s| match s {
        Stanza::Presence(p) if p.type_ == PresenceType::Subscribe => {
            assert_eq!(p.from.as_ref().map(|f| f.to_bare()), Some(ann_bare.clone()));
            Some(())
        }
        _ => None,
    })
    .await;
    ben.send_stanza(Presence::subscribed().with_to(ann_bare.clone()).into())
        .await
        .unwrap();
    ben.send_stanza(Presence::subscribe().with_to(ann_bare.clone()).into())
        .await
        .unwrap();
    // Ann learns she was approved, then gets Ben's presence.
    wait_for(&mut ann, |s| match s {
        Stanza::Presence(p)
            if p.type_ == PresenceType::None && p.from.as_ref() == Some(&ben_jid) =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    ann.send_stanza(Presence::subscribed().with_to(ben_bare.clone()).into())
        .await
        .unwrap();
    wait_for(&mut ben, |s| match s {
        Stanza::Presence(p)
            if p.type_ == PresenceType::None && p.from.as_ref() == Some(&ann_jid) =>
        {
            Some(())
        }
        _ => None,
    })
    .await;

    // Both rosters say "both", as stored.
    let stored = setup.server.store.roster(ANN).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].subscription.as_str(), "both", "{stored:?}");
    let get = tokio_xmpp::parsers::iq::Iq::from_get(
        "r1",
        Roster {
            ver: None,
            items: vec![],
        },
    );
    ann.send_stanza(get.into()).await.unwrap();
    let roster = wait_for(&mut ann, |s| {
        let e = element_of(s);
        (e.name() == "iq" && e.attr("id") == Some("r1")).then_some(e)
    })
    .await;
    let roster = Roster::try_from(
        roster
            .get_child("query", "jabber:iq:roster")
            .unwrap()
            .clone(),
    )
    .unwrap();
    assert_eq!(roster.items.len(), 1);
    assert_eq!(roster.items[0].jid, ben_bare);
    assert_eq!(roster.items[0].subscription, Subscription::Both);

    // A second login of Ben gets Ann's current presence at once (the probe).
    let (mut ben2, _) = login(setup.c2s(), &setup.ca, &format!("{BEN}/second"), "ben-pass").await;
    ben2.send_stanza(Presence::available().into())
        .await
        .unwrap();
    wait_for(&mut ben2, |s| match s {
        Stanza::Presence(p) if p.from.as_ref() == Some(&ann_jid) => Some(()),
        _ => None,
    })
    .await;

    // Ben's first resource leaves: Ann sees it unavailable.
    ben.send_end().await.unwrap();
    wait_for(&mut ann, |s| match s {
        Stanza::Presence(p)
            if p.type_ == PresenceType::Unavailable && p.from.as_ref() == Some(&ben_jid) =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    ann.send_end().await.unwrap();
    ben2.send_end().await.unwrap();
    setup.server.stop().await;
}

#[tokio::test]
async fn wrong_passwords_are_refused_slowly_then_throttled() {
    let setup =
        start_with(|c| c.xmpp.failed_logins_per_account_per_minute = 2.try_into().unwrap()).await;
    for (user, password) in [("ann", "wrong"), ("nobody", "whatever")] {
        let (mut stream, _) = raw_tls(setup.c2s(), &setup.ca, DOMAIN).await;
        let started = Instant::now();
        stream.send(&plain_auth(user, password)).await.unwrap();
        let failure = raw_next(&mut stream).await.unwrap();
        assert!(failure.is("failure", SASL), "{failure:?}");
        assert!(
            failure.has_child("not-authorized", SASL),
            "same answer for {user}"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "answered after the delay"
        );
    }
    // A second wrong password for ann puts her over budget: even the right one is refused.
    let (mut stream, _) = raw_tls(setup.c2s(), &setup.ca, DOMAIN).await;
    stream.send(&plain_auth("ann", "wrong")).await.unwrap();
    assert!(raw_next(&mut stream)
        .await
        .unwrap()
        .has_child("not-authorized", SASL));
    stream.send(&plain_auth("ann", "ann-pass")).await.unwrap();
    let refused = raw_next(&mut stream).await.unwrap();
    assert!(
        refused.has_child("temporary-auth-failure", SASL),
        "{refused:?}"
    );
    // Ben is not affected.
    let (_ben, _) = setup.login(BEN).await;
    // tokio-xmpp without channel binding logged in with SCRAM-SHA-256.
    let (_, metrics) =
        crate::support::server::http_get(setup.server.addrs.admin.unwrap(), "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("bridgehead_client_logins_total")
                && l.contains("mechanism=\"SCRAM-SHA-256\"")
                && l.contains("result=\"ok\"")),
        "{metrics}"
    );
    let (status, metrics) =
        crate::support::server::http_get(setup.server.addrs.admin.unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("bridgehead_client_logins_total{result=\"failed\",mechanism=\"PLAIN\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bridgehead_client_sessions{transport=\"c2s\"}"),
        "{metrics}"
    );
    setup.server.stop().await;
}

#[tokio::test]
async fn plain_is_never_offered_or_accepted_without_tls() {
    let setup = start_with(|c| c.xmpp.require_tls = false).await;
    let tcp = tokio::net::TcpStream::connect(setup.c2s()).await.unwrap();
    let (mut stream, features) = raw_open(tokio::io::BufStream::new(tcp), DOMAIN).await;
    assert!(features.starttls.is_some());
    assert!(
        features.sasl_mechanisms.contains("SCRAM-SHA-256"),
        "{features:?}"
    );
    assert!(features.sasl_mechanisms.contains("SCRAM-SHA-1"));
    assert!(!features.sasl_mechanisms.contains("PLAIN"), "{features:?}");
    stream.send(&plain_auth("ann", "ann-pass")).await.unwrap();
    let failure = raw_next(&mut stream).await.unwrap();
    assert!(
        failure.has_child("encryption-required", SASL),
        "{failure:?}"
    );

    // With require_tls (the default) nothing but STARTTLS is possible in clear.
    let setup = start_with(|_| {}).await;
    let tcp = tokio::net::TcpStream::connect(setup.c2s()).await.unwrap();
    let (mut stream, features) = raw_open(tokio::io::BufStream::new(tcp), DOMAIN).await;
    assert!(features.sasl_mechanisms.is_empty(), "{features:?}");
    stream.send(&plain_auth("ann", "ann-pass")).await.unwrap();
    let error = raw_next(&mut stream).await.unwrap();
    assert_eq!(stream_error(&error).as_deref(), Some("not-authorized"));
    setup.server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_the_protocol_errors() {
    let setup = start_with(|_| {}).await;
    // A stanza before authentication.
    let (mut stream, _) = raw_tls(setup.c2s(), &setup.ca, DOMAIN).await;
    stream
        .send(&raw("message", CLIENT_NS, &[("to", BEN)], vec![]))
        .await
        .unwrap();
    let error = raw_next(&mut stream).await.unwrap();
    assert_eq!(stream_error(&error).as_deref(), Some("not-authorized"));

    // A spoofed from.
    let mut stream = raw_session(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass", "r1").await;
    stream
        .send(&raw(
            "message",
            CLIENT_NS,
            &[("to", BEN), ("from", "ben@localhost/x")],
            vec![],
        ))
        .await
        .unwrap();
    let error = raw_next(&mut stream).await.unwrap();
    assert_eq!(stream_error(&error).as_deref(), Some("invalid-from"));

    // Malformed XML after login.
    let stream = raw_session(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass", "r2").await;
    let mut io = stream.into_inner();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    io.write_all(b"<message><body></message>").await.unwrap();
    io.flush().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("not-well-formed"), "{out}");

    // An oversized stanza.
    let setup2 = start_with(|c| c.xmpp.max_stanza_bytes = 10_000.try_into().unwrap()).await;
    let mut stream = raw_session(setup2.c2s(), &setup2.ca, DOMAIN, "ann", "ann-pass", "r3").await;
    stream
        .send(&raw(
            "message",
            CLIENT_NS,
            &[("to", BEN)],
            vec![body(&"x".repeat(20_000), CLIENT_NS)],
        ))
        .await
        .unwrap();
    let error = raw_next(&mut stream).await.unwrap();
    assert_eq!(stream_error(&error).as_deref(), Some("policy-violation"));

    // A resource in use is taken over (resource_conflict = replace).
    let mut first = raw_session(setup.c2s(), &setup.ca, DOMAIN, "ben", "ben-pass", "same").await;
    let _second = raw_session(setup.c2s(), &setup.ca, DOMAIN, "ben", "ben-pass", "same").await;
    let error = raw_next(&mut first).await.unwrap();
    assert_eq!(stream_error(&error).as_deref(), Some("conflict"));
    setup.server.stop().await;
}

#[tokio::test]
async fn stanzas_over_the_rate_are_read_later() {
    let setup = start_with(|c| {
        c.xmpp.client_stanzas_per_second = 10.try_into().unwrap();
        c.xmpp.client_stanza_burst = 5.try_into().unwrap();
    })
    .await;
    let mut stream = raw_session(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass", "rate").await;
    let started = Instant::now();
    for i in 0..25 {
        let id = format!("ping{i}");
        stream
            .send(&raw(
                "iq",
                CLIENT_NS,
                &[("type", "get"), ("id", &id), ("to", DOMAIN)],
                vec![Element::bare("ping", "urn:xmpp:ping")],
            ))
            .await
            .unwrap();
    }
    let mut answered = 0;
    while answered < 25 {
        let answer = raw_next(&mut stream).await.unwrap();
        if answer.name() == "iq" && answer.attr("type") == Some("result") {
            answered += 1;
        }
    }
    // 5 at once, then 20 at 10 per second.
    assert!(
        started.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    setup.server.stop().await;
}

#[tokio::test]
async fn components_learn_of_logins_and_sessions_survive_their_restart() {
    let setup = start_with(|c| c.xmpp.login_notify = vec![BRIDGE.to_owned()]).await;
    let mut bridge = setup.bridge_login().await;
    let (mut ann, ann_jid) = setup.login(ANN).await;
    let available = bridge_next(&mut bridge, "presence").await;
    assert_eq!(available.attr("from"), Some(ann_jid.as_str()));
    assert_eq!(available.attr("to"), Some(BRIDGE));
    assert_eq!(available.attr("type"), None);

    // The bridge restarts; Ann's session lives on and reaches the new connection.
    drop(bridge);
    let router = &setup.server.router;
    assert!(
        wait_until(Duration::from_secs(5), || router.connection_count(BRIDGE)
            == 0)
        .await,
        "the server notices the bridge left"
    );
    let mut bridge = setup.bridge_login().await;
    ann.send_stanza(chat(BRIDGE, "still here")).await.unwrap();
    let message = bridge_next(&mut bridge, "message").await;
    assert_eq!(body_of(&message).as_deref(), Some("still here"));
    // The bridge can probe Ann (directed presence from a component is answered).
    ann.send_stanza(Presence::available().into()).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || !router
            .available_presences(ANN)
            .is_empty())
        .await,
        "Ann's presence reaches the router"
    );
    bridge
        .send(&raw(
            "presence",
            COMPONENT_NS,
            &[("from", BRIDGE), ("to", ANN), ("type", "probe")],
            vec![],
        ))
        .await
        .unwrap();
    let answer = bridge_next(&mut bridge, "presence").await;
    assert_eq!(answer.attr("from"), Some(ann_jid.as_str()));

    ann.send_end().await.unwrap();
    let unavailable = loop {
        let presence = bridge_next(&mut bridge, "presence").await;
        if presence.attr("type") == Some("unavailable") && presence.attr("to") == Some(BRIDGE) {
            break presence;
        }
    };
    assert_eq!(unavailable.attr("from"), Some(ann_jid.as_str()));
    setup.server.stop().await;
}

#[tokio::test]
async fn a_component_checks_credentials_of_accounts_the_store_does_not_know() {
    let setup = start_with(|c| {
        c.xmpp.auth_via_component = Some(BRIDGE.to_owned());
        c.xmpp.auth_via_component_timeout_secs = 1.try_into().unwrap();
    })
    .await;
    // Nobody answers yet: temporary-auth-failure after the timeout.
    let mut bridge = setup.bridge_login().await;
    let (mut stream, features) = raw_tls(setup.c2s(), &setup.ca, DOMAIN).await;
    assert_eq!(
        features.sasl_mechanisms.iter().collect::<Vec<_>>(),
        vec!["PLAIN"]
    );
    stream
        .send(&plain_auth("guest7", "one-time"))
        .await
        .unwrap();
    let request = bridge_next(&mut bridge, "iq").await;
    let query = request
        .get_child("query", "urn:bridgehead:auth:0")
        .expect("the auth query");
    assert_eq!(
        query
            .get_child("username", "urn:bridgehead:auth:0")
            .unwrap()
            .text(),
        "guest7"
    );
    assert_eq!(
        query
            .get_child("password", "urn:bridgehead:auth:0")
            .unwrap()
            .text(),
        "one-time"
    );
    let failure = raw_next(&mut stream).await.unwrap();
    assert!(
        failure.has_child("temporary-auth-failure", SASL),
        "{failure:?}"
    );

    // The bridge answers: a result admits, an error refuses.
    for (password, verdict) in [("one-time", "result"), ("stale", "error")] {
        let (mut stream, _) = raw_tls(setup.c2s(), &setup.ca, DOMAIN).await;
        stream.send(&plain_auth("guest7", password)).await.unwrap();
        let request = bridge_next(&mut bridge, "iq").await;
        let mut answer = raw(
            "iq",
            COMPONENT_NS,
            &[
                ("type", verdict),
                ("id", request.attr("id").unwrap()),
                ("from", BRIDGE),
                ("to", DOMAIN),
            ],
            vec![],
        );
        if verdict == "error" {
            answer.append_child(raw(
                "error",
                COMPONENT_NS,
                &[("type", "auth")],
                vec![Element::bare(
                    "not-authorized",
                    "urn:ietf:params:xml:ns:xmpp-stanzas",
                )],
            ));
        }
        bridge.send(&answer).await.unwrap();
        let outcome = raw_next(&mut stream).await.unwrap();
        if verdict == "result" {
            assert!(outcome.is("success", SASL), "{outcome:?}");
        } else {
            assert!(outcome.has_child("not-authorized", SASL), "{outcome:?}");
        }
    }
    // Store users are still checked locally.
    let (mut stream, _) = raw_tls(setup.c2s(), &setup.ca, DOMAIN).await;
    stream.send(&plain_auth("ann", "ann-pass")).await.unwrap();
    assert!(raw_next(&mut stream).await.unwrap().is("success", SASL));
    setup.server.stop().await;
}

mod websocket {
    use super::*;
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

    type Ws =
        tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

    async fn send(ws: &mut Ws, element: &Element) {
        ws.send(Message::text(String::from(element))).await.unwrap();
    }

    async fn receive(ws: &mut Ws) -> Option<Element> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("a WebSocket message in time")?
                .ok()?;
            match message {
                Message::Text(text) => {
                    return Some(text.as_str().parse().expect("one element per message"))
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    fn open() -> Element {
        raw(
            "open",
            FRAMING,
            &[("to", DOMAIN), ("version", "1.0")],
            vec![],
        )
    }

    #[tokio::test]
    async fn a_whole_websocket_session_from_open_to_close() {
        let setup = start_with(|_| {}).await;
        let https = crate::support::https::Https::new(setup.server.addrs.https.unwrap(), &setup.ca);

        // XEP-0156 discovery names the endpoint.
        let xrd = https
            .request(hyper::Method::GET, "/.well-known/host-meta", &[], None)
            .await;
        assert_eq!(xrd.status, 200);
        assert!(
            xrd.body.contains("urn:xmpp:alt-connections:websocket"),
            "{}",
            xrd.body
        );
        assert!(
            xrd.body.contains("wss://localhost/xmpp-websocket"),
            "{}",
            xrd.body
        );
        let jrd = https
            .request(hyper::Method::GET, "/.well-known/host-meta.json", &[], None)
            .await;
        assert_eq!(
            jrd.json()["links"][0]["href"],
            "wss://localhost/xmpp-websocket"
        );
        // A plain GET is not an upgrade.
        let refused = https
            .request(hyper::Method::GET, "/xmpp-websocket", &[], None)
            .await;
        assert_eq!(refused.status, 426);

        let (mut ben, ben_jid) = setup.login(BEN).await;
        ben.send_stanza(Presence::available().into()).await.unwrap();

        let mut request = "wss://localhost/xmpp-websocket"
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "xmpp".parse().unwrap());
        let (mut ws, response) = tokio_tungstenite::client_async(request, https.tls_stream().await)
            .await
            .expect("the upgrade succeeds");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.as_bytes()),
            Some(&b"xmpp"[..])
        );

        send(&mut ws, &open()).await;
        let opened = receive(&mut ws).await.unwrap();
        assert!(
            opened.is("open", FRAMING) && opened.attr("from") == Some(DOMAIN),
            "{opened:?}"
        );
        let features = receive(&mut ws).await.unwrap();
        let mechanisms: Vec<String> = features
            .get_child("mechanisms", SASL)
            .expect("SASL is offered")
            .children()
            .map(|m| m.text())
            .collect();
        assert_eq!(mechanisms, ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]);
        send(&mut ws, &plain_auth("ann", "ann-pass")).await;
        assert!(receive(&mut ws).await.unwrap().is("success", SASL));

        // Whitespace between elements is ignored here too.
        ws.send(Message::text(" \n")).await.unwrap();
        send(&mut ws, &open()).await;
        assert!(receive(&mut ws).await.unwrap().is("open", FRAMING));
        let features = receive(&mut ws).await.unwrap();
        assert!(
            features.has_child("bind", "urn:ietf:params:xml:ns:xmpp-bind"),
            "{features:?}"
        );
        send(
            &mut ws,
            &raw(
                "iq",
                CLIENT_NS,
                &[("type", "set"), ("id", "b1")],
                vec![Element::builder("bind", "urn:ietf:params:xml:ns:xmpp-bind")
                    .append(
                        Element::builder("resource", "urn:ietf:params:xml:ns:xmpp-bind")
                            .append("web")
                            .build(),
                    )
                    .build()],
            ),
        )
        .await;
        let bound = receive(&mut ws).await.unwrap();
        assert_eq!(bound.attr("type"), Some("result"), "{bound:?}");
        let full = "ann@localhost/web";

        send(&mut ws, &raw("presence", CLIENT_NS, &[], vec![])).await;
        send(
            &mut ws,
            &raw(
                "message",
                CLIENT_NS,
                &[("to", BEN), ("type", "chat")],
                vec![body("from the browser", CLIENT_NS)],
            ),
        )
        .await;
        let got = expect_message(&mut ben, "from the browser").await;
        assert_eq!(got.attr("from"), Some(full));
        ben.send_stanza(chat(full, "to the browser")).await.unwrap();
        let reply = loop {
            let element = receive(&mut ws).await.expect("the reply arrives");
            if element.name() == "message" {
                break element;
            }
        };
        assert_eq!(reply.ns(), CLIENT_NS);
        assert_eq!(body_of(&reply).as_deref(), Some("to the browser"));
        assert_eq!(reply.attr("from"), Some(ben_jid.as_str()));

        send(&mut ws, &Element::bare("close", FRAMING)).await;
        let closing = loop {
            match receive(&mut ws).await {
                Some(element) if element.is("close", FRAMING) => break true,
                Some(_) => continue,
                None => break false,
            }
        };
        assert!(closing, "the server answers <close/>");
        assert!(
            receive(&mut ws).await.is_none(),
            "then closes the WebSocket"
        );
        ben.send_end().await.unwrap();
        setup.server.stop().await;
    }
}

/// slixmpp's ClientXMPP (an independent implementation, as a separate process) logs in over
/// STARTTLS and exchanges a message with a tokio-xmpp client.
#[tokio::test]
async fn slixmpp_and_tokio_xmpp_clients_talk_through_bridgehead() {
    let setup = start_with(|_| {}).await;
    let (mut ben, _) = setup.login(BEN).await;
    ben.send_stanza(Presence::available().into()).await.unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/slixmpp_client.py"
    );
    let python = tokio::process::Command::new("python3")
        .arg(script)
        .arg("ann@localhost/slixmpp")
        .arg("ann-pass")
        .arg("127.0.0.1")
        .arg(setup.c2s().port().to_string())
        .arg(&setup.ca)
        .arg(BEN)
        .kill_on_drop(true)
        .output();
    let answering = async {
        let hello = expect_message(&mut ben, "hello from slixmpp").await;
        let from = hello.attr("from").unwrap().to_owned();
        assert_eq!(from, "ann@localhost/slixmpp");
        ben.send_stanza(chat(&from, "hello from tokio-xmpp"))
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
    ben.send_end().await.unwrap();
    setup.server.stop().await;
}

/// tokio-xmpp with RFC 9266 `tls-exporter` binding picks SCRAM-SHA-256-PLUS and logs in;
/// bytes of another channel (what a man in the middle would have) are refused; a client
/// that claims it cannot bind while -PLUS is offered is refused as a downgrade.
#[tokio::test]
async fn scram_plus_binds_the_login_to_the_tls_channel() {
    let setup = start_with(|_| {}).await;
    let (_, features) = raw_tls(setup.c2s(), &setup.ca, DOMAIN).await;
    for mechanism in [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
    ] {
        assert!(
            features.sasl_mechanisms.contains(mechanism),
            "{mechanism}: {features:?}"
        );
    }
    let (ann, _) = try_login(setup.c2s(), &setup.ca, ANN, "ann-pass", Binding::Exporter)
        .await
        .expect("a -PLUS login with the right binding");
    let forged = try_login(setup.c2s(), &setup.ca, BEN, "ben-pass", Binding::Forged).await;
    assert!(forged.is_err(), "a forged binding must not log in");
    let (_, metrics) =
        crate::support::server::http_get(setup.server.addrs.admin.unwrap(), "/metrics").await;
    let counted = |result: &str| {
        metrics.lines().any(|l| {
            l.starts_with("bridgehead_client_logins_total")
                && l.contains("mechanism=\"SCRAM-SHA-256-PLUS\"")
                && l.contains(&format!("result=\"{result}\""))
        })
    };
    assert!(counted("ok") && counted("failed"), "{metrics}");

    // The downgrade: "y" (client can bind, thinks the server cannot) while -PLUS was offered.
    let (mut stream, _) = raw_tls(setup.c2s(), &setup.ca, DOMAIN).await;
    use base64::Engine as _;
    let first = base64::engine::general_purpose::STANDARD.encode("y,,n=ann,r=abcdef");
    let auth = Element::builder("auth", SASL)
        .attr(rxml::xml_ncname!("mechanism").to_owned(), "SCRAM-SHA-256")
        .append(first)
        .build();
    stream.send(&auth).await.unwrap();
    let failure = raw_next(&mut stream).await.unwrap();
    assert!(failure.has_child("not-authorized", SASL), "{failure:?}");
    ann.send_end().await.unwrap();
    setup.server.stop().await;
}

use bridgehead::xmpp::ns::SM;

/// The next element on a raw stream that is not one of the server's `<r/>` requests.
async fn next_skipping_requests(stream: &mut crate::support::client::Raw) -> Element {
    loop {
        let element = raw_next(stream).await.expect("an element");
        if !element.is("r", SM) {
            return element;
        }
    }
}

/// XEP-0198: acknowledgements both ways; a broken connection parks the session, a new
/// connection resumes it and gets what was not acknowledged (and what came meanwhile);
/// an unknown id fails; a parked session that is not resumed in time ends.
#[tokio::test]
async fn stream_management_acks_and_resumes_a_broken_session() {
    let setup = start_with(|c| c.xmpp.sm_resume_timeout_secs = 2).await;
    let (mut ben, _) = setup.login(BEN).await;
    let full = "ann@localhost/phone";
    let (_, features) = raw_login(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass").await;
    assert!(features.stream_management.is_some(), "{features:?}");
    let mut ann = raw_session(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass", "phone").await;
    ann.send(&raw("enable", SM, &[("resume", "true")], vec![]))
        .await
        .unwrap();
    let enabled = raw_next(&mut ann).await.unwrap();
    assert!(enabled.is("enabled", SM), "{enabled:?}");
    assert_eq!(enabled.attr("resume"), Some("true"));
    let id = enabled.attr("id").expect("a resumption id").to_owned();

    for text in ["one", "two"] {
        ben.send_stanza(chat(full, text)).await.unwrap();
        let got = next_skipping_requests(&mut ann).await;
        assert_eq!(body_of(&got).as_deref(), Some(text));
    }
    // Ann acknowledges only the first, and asks for the server's count (she sent nothing).
    ann.send(&raw("a", SM, &[("h", "1")], vec![]))
        .await
        .unwrap();
    ann.send(&raw("r", SM, &[], vec![])).await.unwrap();
    let answer = next_skipping_requests(&mut ann).await;
    assert!(
        answer.is("a", SM) && answer.attr("h") == Some("0"),
        "{answer:?}"
    );
    ann.send(&raw(
        "iq",
        CLIENT_NS,
        &[("type", "get"), ("id", "p"), ("to", DOMAIN)],
        vec![Element::bare("ping", "urn:xmpp:ping")],
    ))
    .await
    .unwrap();
    next_skipping_requests(&mut ann).await;

    // The connection breaks (no stream end). The session waits; a message arrives meanwhile
    // (queued once the server has parked the session, or written to the dead connection
    // and left unacknowledged before that: both are sent again on resumption, in order).
    drop(ann);
    assert!(setup.server.router.is_online(ANN), "parked, still bound");
    ben.send_stanza(chat(full, "three")).await.unwrap();

    // Resumption with the wrong id fails; the right one gets two and three again, once the
    // server has noticed the broken connection and parked the session.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut again, resumed) = loop {
        let (mut again, _) = raw_login(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass").await;
        again
            .send(&raw(
                "resume",
                SM,
                &[("previd", "nonsense"), ("h", "0")],
                vec![],
            ))
            .await
            .unwrap();
        let failed = raw_next(&mut again).await.unwrap();
        assert!(failed.is("failed", SM), "{failed:?}");
        again
            .send(&raw("resume", SM, &[("previd", &id), ("h", "1")], vec![]))
            .await
            .unwrap();
        let answer = raw_next(&mut again).await.unwrap();
        if answer.is("resumed", SM) || Instant::now() >= deadline {
            break (again, answer);
        }
    };
    assert!(resumed.is("resumed", SM), "{resumed:?}");
    assert_eq!(
        resumed.attr("h"),
        Some("1"),
        "the server handled Ann's ping"
    );
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        let element = next_skipping_requests(&mut again).await;
        if element.name() == "message" {
            bodies.push(body_of(&element).unwrap());
        }
    }
    assert_eq!(bodies, ["two", "three"]);
    ben.send_stanza(chat(full, "four")).await.unwrap();
    loop {
        let element = next_skipping_requests(&mut again).await;
        if body_of(&element).as_deref() == Some("four") {
            break;
        }
    }

    // Broken again and never resumed: after the timeout the session ends.
    drop(again);
    assert!(
        wait_until(Duration::from_secs(10), || !setup
            .server
            .router
            .is_online(ANN))
        .await,
        "the parked session ended"
    );
    ben.send_end().await.unwrap();
    setup.server.stop().await;
}

/// A client that stops reading: its queue fills, the router drops it and bounces what it
/// could not queue (`resource-constraint`), and its blocked writes time out.
#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let setup = start_with(|c| {
        c.xmpp.send_queue_len = 16.try_into().unwrap();
        c.xmpp.write_timeout_secs = 1.try_into().unwrap();
        c.xmpp.client_stanzas_per_second = 100_000.try_into().unwrap();
        c.xmpp.client_stanza_burst = 100_000.try_into().unwrap();
    })
    .await;
    let (mut ben, _) = setup.login(BEN).await;
    let _deaf = raw_session(setup.c2s(), &setup.ca, DOMAIN, "ann", "ann-pass", "deaf").await;
    let big = "x".repeat(16 * 1024);
    for _ in 0..2000 {
        ben.send_stanza(chat("ann@localhost/deaf", &big))
            .await
            .unwrap();
        if !setup.server.router.is_online(ANN) {
            break;
        }
    }
    let bounced = wait_for(&mut ben, |s| {
        let e = element_of(s);
        stanza_error(&e).filter(|_| e.name() == "message")
    })
    .await;
    assert_eq!(bounced, "resource-constraint");
    assert!(
        !setup.server.router.is_online(ANN),
        "the deaf session was dropped"
    );
    ben.send_end().await.unwrap();
    setup.server.stop().await;
}
