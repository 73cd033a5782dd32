//! Session-level tests: a whole c2s session over `tokio::io::duplex`, logged in for real
//! (SASL PLAIN against a store user), then driven on paused time, so keep-alives, XEP-0198
//! acknowledgement requests and resumption timeouts are checked in milliseconds and
//! without sleeping.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::transport::TcpTransport;
use super::ClientService;
use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::store::SqliteStore;
use crate::telephony::{EventBus, Telephony, User};
use crate::xmpp::router::Router;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// The client end of a session: bytes in and out.
struct Peer {
    io: DuplexStream,
    seen: String,
}

impl Peer {
    async fn send(&mut self, text: &str) {
        self.io.write_all(text.as_bytes()).await.unwrap();
    }

    /// Everything up to and including `marker` (what came after stays for the next call);
    /// panics with what came when the stream ends first.
    async fn until(&mut self, marker: &str) -> String {
        loop {
            if let Some(at) = self.seen.find(marker) {
                let rest = self.seen.split_off(at + marker.len());
                return std::mem::replace(&mut self.seen, rest);
            }
            let mut buffer = [0u8; 4096];
            let n = self.io.read(&mut buffer).await.unwrap();
            assert!(
                n > 0,
                "the stream ended before {marker:?}; got {:?}",
                self.seen
            );
            self.seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    }

    /// Takes in what the server has written by now, without waiting for more.
    async fn drain_now(&mut self) -> &str {
        use futures::FutureExt;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let mut buffer = [0u8; 4096];
        while let Some(Ok(n @ 1..)) = self.io.read(&mut buffer).now_or_never() {
            self.seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
        &self.seen
    }

    /// Everything until the server closes its side.
    async fn closed(&mut self) -> String {
        let mut rest = String::new();
        let mut buffer = [0u8; 4096];
        loop {
            match self.io.read(&mut buffer).await {
                Ok(0) | Err(_) => return std::mem::take(&mut self.seen) + &rest,
                Ok(n) => rest.push_str(&String::from_utf8_lossy(&buffer[..n])),
            }
        }
    }
}

struct Node {
    service: Arc<ClientService>,
    router: Router,
    shutdown: Shutdown,
    _dir: tempfile::TempDir,
}

/// A c2s service for `localhost` with user ann (password `ann-pass`).
async fn node(adjust: impl FnOnce(&mut Config)) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded();
    config.server.domain = "localhost".into();
    adjust(&mut config);
    let store = SqliteStore::open(&dir.path().join("db.sqlite3")).unwrap();
    let telephony = Telephony::new(Arc::new(store), EventBus::new(16), config.quotas.clone());
    telephony
        .add_user(&User::test("ann@localhost", "e", "g"))
        .await
        .unwrap();
    let router = Router::new("localhost", 64, 16, Arc::new(|_: &str| false));
    let limits = crate::config::Live::new(config.limits.clone());
    let service = Arc::new(ClientService::new(
        &config,
        limits,
        None,
        router.clone(),
        telephony,
    ));
    Node {
        service,
        router,
        shutdown: Shutdown::new(),
        _dir: dir,
    }
}

impl Node {
    /// A session on a fresh duplex pipe (counted as encrypted, so PLAIN is offered).
    fn connect(&self) -> (Peer, tokio::task::JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let service = Arc::clone(&self.service);
        let shutdown = self.shutdown.clone();
        let task = tokio::spawn(async move {
            let transport = TcpTransport::new(server, &service, true);
            service
                .handle_websocket(transport, (Ipv4Addr::LOCALHOST, 5000).into(), shutdown)
                .await;
        });
        (
            Peer {
                io: client,
                seen: String::new(),
            },
            task,
        )
    }

    /// Logs ann in (SASL PLAIN, the restarted stream's features), in real time.
    async fn authenticate(&self) -> (Peer, tokio::task::JoinHandle<()>) {
        let (mut peer, task) = self.connect();
        peer.send(HEADER).await;
        peer.until("</stream:features>").await;
        let plain = base64::engine::general_purpose::STANDARD.encode("\0ann\0ann-pass");
        peer.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
        ))
        .await;
        peer.until("<success").await;
        peer.send(HEADER).await;
        peer.until("</stream:features>").await;
        (peer, task)
    }

    /// Logs ann in and binds `resource`; returns the pipe.
    async fn login(&self, resource: &str) -> (Peer, tokio::task::JoinHandle<()>) {
        let (mut peer, task) = self.authenticate().await;
        peer.send(&format!(
            "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{resource}</resource></bind></iq>"
        ))
        .await;
        peer.until("</iq>").await;
        (peer, task)
    }

    /// A chat message from the server's domain to ann's `resource`.
    fn message_to(&self, resource: &str, body: &str) {
        let to = format!("ann@localhost/{resource}");
        let message = crate::xmpp::stanza::element(
            "message",
            crate::xmpp::ns::CLIENT,
            &[("to", &to), ("from", "localhost"), ("type", "chat")],
        )
        .append(
            minidom::Element::builder("body", crate::xmpp::ns::CLIENT)
                .append(body)
                .build(),
        )
        .build();
        self.router.route(message);
    }
}

/// A silent client is pinged after `client_ping_interval_secs`, and the stream ends with
/// `connection-timeout` when the ping is not answered within `client_ping_timeout_secs`;
/// an answered ping keeps it.
#[tokio::test(flavor = "current_thread")]
async fn a_silent_client_is_pinged_then_timed_out() {
    let node = node(|c| {
        c.xmpp.client_ping_interval_secs = 300.try_into().unwrap();
        c.xmpp.client_ping_timeout_secs = 60.try_into().unwrap();
    })
    .await;
    let (mut peer, task) = node.login("phone").await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(299)).await;
    let early = peer.drain_now().await;
    assert!(early.is_empty(), "nothing before the interval: {early}");
    let ping = peer.until("</iq>").await;
    assert!(
        ping.contains("urn:xmpp:ping") && ping.contains("bh-keepalive-1"),
        "{ping}"
    );
    // Answered: the session stays, and the next ping comes a whole interval later.
    peer.send("<iq type='result' id='bh-keepalive-1' to='localhost'/>")
        .await;
    let ping = peer.until("</iq>").await;
    assert!(ping.contains("bh-keepalive-2"), "{ping}");
    // Not answered: connection-timeout.
    let end = peer.closed().await;
    assert!(end.contains("<connection-timeout"), "{end}");
    task.await.unwrap();
}

/// With XEP-0198 on, a stanza the client has not acknowledged brings an `<r/>` after
/// `sm_request_after_secs`, and only one; an `<a/>` is never answered with another.
#[tokio::test(flavor = "current_thread")]
async fn an_unacknowledged_stanza_brings_one_request_after_its_time() {
    let node = node(|c| {
        c.xmpp.sm_request_after_secs = 30.try_into().unwrap();
        c.xmpp.sm_request_after_stanzas = 100.try_into().unwrap();
    })
    .await;
    let (mut peer, _task) = node.login("phone").await;
    peer.send("<enable xmlns='urn:xmpp:sm:3'/>").await;
    peer.until("<enabled").await;
    peer.until(">").await;
    tokio::time::pause();
    node.message_to("phone", "one");
    peer.until("</message>").await;
    tokio::time::advance(Duration::from_secs(29)).await;
    let early = peer.drain_now().await;
    assert!(!early.contains("<r"), "no request before 30 s: {early}");
    let request = peer.until("</r>").await;
    assert!(request.contains("<r xmlns='urn:xmpp:sm:3'>"), "{request}");
    peer.send("<a xmlns='urn:xmpp:sm:3' h='1'/>").await;
    // The ack is in: until the keep-alive, nothing is left to acknowledge or sent …
    tokio::time::advance(Duration::from_secs(290)).await;
    let quiet = peer.drain_now().await;
    assert!(quiet.is_empty(), "{quiet}");
    // … then the keep-alive ping (itself a stanza) goes out as usual.
    let ping = peer.until("</iq>").await;
    assert!(ping.contains("urn:xmpp:ping"), "{ping}");
}

/// A resumable session that drops is parked for `sm_resume_timeout_secs`: a resumption
/// within it gets `<resumed/>` and the stanzas the client missed; after it the session is
/// gone (`item-not-found`).
#[tokio::test(flavor = "current_thread")]
async fn a_dropped_session_can_resume_until_its_timeout() {
    let node = node(|c| c.xmpp.sm_resume_timeout_secs = 300.try_into().unwrap()).await;
    let (mut peer, task) = node.login("phone").await;
    peer.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let enabled = peer.until(">").await;
    let id = enabled
        .split("id='")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no id in {enabled}"))
        .to_owned();
    drop(peer);
    task.await.unwrap();
    assert!(
        node.service.parked().contains_key(&id),
        "the dropped session is parked: {id} not in {:?}",
        node.service.parked().keys().collect::<Vec<_>>()
    );
    tokio::time::pause();
    node.message_to("phone", "while away");
    tokio::time::advance(Duration::from_secs(299)).await;
    tokio::time::resume();
    let (mut peer, task) = node.authenticate().await;
    peer.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>"
    ))
    .await;
    let resumed = peer.until("</message>").await;
    assert!(resumed.contains("<resumed"), "{resumed}");
    assert!(resumed.contains("while away"), "{resumed}");
    drop(peer);
    task.await.unwrap();

    // Parked again; this time the timeout passes first.
    assert!(node.service.parked().contains_key(&id));
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(301)).await;
    for _ in 0..100 {
        if !node.service.parked().contains_key(&id) {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(
        !node.service.parked().contains_key(&id),
        "the parked session timed out"
    );
    tokio::time::resume();
    let (mut peer, _task) = node.authenticate().await;
    peer.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='1'/>"
    ))
    .await;
    let failed = peer.until("</failed>").await;
    assert!(failed.contains("<item-not-found"), "{failed}");
    node.shutdown.trigger();
}
