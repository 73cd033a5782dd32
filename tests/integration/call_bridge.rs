//! The example call bridge (`examples/call_bridge`, tokio-xmpp's `Component`, built as its
//! own package) runs as a real process against the real server over TLS: it registers,
//! answers disco#info and pings, and echoes messages — found by an explicit address and
//! by `_xmpp-component._tcp` SRV records from a DNS server on loopback.

use std::process::Stdio;
use std::time::Duration;

use futures::SinkExt;
use minidom::Element;

use bridgehead::config::{ComponentConfig, Secret};
use bridgehead::telephony::OnConflict;

use crate::support::component::{self, next, stanza, COMPONENT_NS};
use crate::support::dns::{a, dns_server, srv};
use crate::support::server::{bridge_binary, Setup};

fn component(name: &str) -> ComponentConfig {
    ComponentConfig {
        name: name.to_owned(),
        secret: Some(Secret::new(format!("secret-of-{name}"))),
        secret_file: None,
        max_connections: 1,
        on_conflict: OnConflict::Replace,
        hold_secs: 0,
    }
}

/// A server for the XMPP domain `domain` (the development PKI names it and the FQDN).
async fn start(domain: &str) -> Setup {
    let domain = domain.to_owned();
    Setup::builder()
        .config(move |config| {
            config.server.fqdn = Some(format!("xmpp1.{domain}"));
            config.components = vec![
                component(&format!("bridge1.{domain}")),
                component(&format!("caller.{domain}")),
            ];
            config.server.domain = domain;
        })
        .start()
        .await
}

impl Setup {
    fn domain(&self) -> &str {
        self.server.router.domain()
    }

    fn bridge_name(&self) -> String {
        format!("bridge1.{}", self.domain())
    }

    /// The example bridge as a process, with `extra` arguments.
    fn bridge_command(&self, extra: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(bridge_binary());
        command
            .args(["--name", &self.bridge_name(), "--max-sessions", "1", "--ca"])
            .arg(&self.ca)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    fn run_bridge(&self, extra: &[&str]) -> tokio::process::Child {
        self.bridge_command(extra)
            .env("BRIDGE_SECRET", format!("secret-of-{}", self.bridge_name()))
            .spawn()
            .expect("start the example bridge")
    }

    /// Waits until the bridge's connection is registered with the router.
    async fn bridge_online(&self) {
        let (router, bridge) = (&self.server.router, self.bridge_name());
        let online = crate::support::wait_until(Duration::from_secs(10), || {
            router.connection_count(&bridge) == 1
        })
        .await;
        assert!(online, "the example bridge did not register");
    }

    /// Talks to the bridge from another component: disco#info, ping, an echoed message.
    async fn exercise_bridge(&self) {
        let caller_name = format!("caller.{}", self.domain());
        let alice = format!("alice@{caller_name}");
        let bridge = self.bridge_name();
        let room = format!("room7@{bridge}");
        let mut caller = component::connect_in_domain(
            self.server.addrs.component.unwrap(),
            &self.ca,
            self.domain(),
            &caller_name,
            &format!("secret-of-{caller_name}"),
        )
        .await
        .expect("the caller component logs in");
        let disco = Element::builder("query", "http://jabber.org/protocol/disco#info").build();
        caller
            .send(&stanza(
                "iq",
                &[
                    ("from", &caller_name),
                    ("to", &bridge),
                    ("id", "d1"),
                    ("type", "get"),
                ],
                vec![disco],
            ))
            .await
            .unwrap();
        let info = next(&mut caller).await.expect("disco#info answer");
        assert_eq!(info.attr("type"), Some("result"), "{info:?}");
        let query = info
            .get_child("query", "http://jabber.org/protocol/disco#info")
            .unwrap();
        let identity = query
            .get_child("identity", "http://jabber.org/protocol/disco#info")
            .unwrap();
        assert_eq!(identity.attr("category"), Some("gateway"));
        assert!(query
            .children()
            .any(|f| f.name() == "feature" && f.attr("var") == Some("urn:xmpp:ping")));

        let ping = Element::builder("ping", "urn:xmpp:ping").build();
        caller
            .send(&stanza(
                "iq",
                &[
                    ("from", &caller_name),
                    ("to", &bridge),
                    ("id", "p1"),
                    ("type", "get"),
                ],
                vec![ping],
            ))
            .await
            .unwrap();
        let pong = next(&mut caller).await.expect("ping answer");
        assert_eq!(
            (pong.attr("type"), pong.attr("id")),
            (Some("result"), Some("p1"))
        );

        caller
            .send(&stanza(
                "message",
                &[
                    ("from", &alice),
                    ("to", &room),
                    ("id", "m1"),
                    ("type", "chat"),
                ],
                vec![Element::builder("body", COMPONENT_NS)
                    .append("join room 7")
                    .build()],
            ))
            .await
            .unwrap();
        let echo = next(&mut caller).await.expect("echoed message");
        assert_eq!(echo.attr("to"), Some(alice.as_str()));
        assert_eq!(echo.attr("from"), Some(room.as_str()));
        assert_eq!(
            echo.get_child("body", COMPONENT_NS).map(Element::text),
            Some("join room 7".to_owned())
        );

        // A message in a language, as slixmpp and most clients send them, is echoed in it.
        let tagged = Element::builder("message", COMPONENT_NS)
            .attr(rxml::xml_ncname!("from").to_owned(), alice.as_str())
            .attr(rxml::xml_ncname!("to").to_owned(), room.as_str())
            .attr(rxml::xml_ncname!("type").to_owned(), "chat")
            .attr_ns(
                rxml::Namespace::XML,
                rxml::xml_ncname!("lang").to_owned(),
                "en",
            )
            .append(
                Element::builder("body", COMPONENT_NS)
                    .append("leave room 7")
                    .build(),
            )
            .build();
        caller.send(&tagged).await.unwrap();
        let echo = next(&mut caller).await.expect("echoed message in English");
        assert_eq!(
            echo.get_child("body", COMPONENT_NS).map(Element::text),
            Some("leave room 7".to_owned())
        );
    }
}

#[tokio::test]
async fn the_example_bridge_registers_over_tls_and_answers() {
    let setup = start("localhost").await;
    let server = format!("localhost:{}", setup.server.addrs.component.unwrap().port());
    let mut bridge = setup.run_bridge(&["--server", &server]);
    setup.bridge_online().await;
    setup.exercise_bridge().await;
    bridge.kill().await.unwrap();
}

#[tokio::test]
async fn the_example_bridge_finds_the_server_by_srv() {
    // Not under `localhost`: resolvers answer those names themselves (RFC 6761).
    let setup = start("example.test").await;
    let port = setup.server.addrs.component.unwrap().port();
    let dns = dns_server(vec![
        srv(
            "_xmpp-component._tcp.example.test.",
            10,
            0,
            port,
            "xmpp1.example.test.",
        ),
        a("xmpp1.example.test.", [127, 0, 0, 1]),
    ])
    .await;
    let mut bridge = setup.run_bridge(&["--dns-server", &dns.to_string()]);
    setup.bridge_online().await;
    setup.exercise_bridge().await;
    bridge.kill().await.unwrap();
}

#[tokio::test]
async fn the_example_bridge_gives_up_on_a_wrong_secret() {
    let setup = start("localhost").await;
    let server = format!("127.0.0.1:{}", setup.server.addrs.component.unwrap().port());
    let status = setup
        .bridge_command(&["--server", &server, "--secret", "wrong"])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(30), status)
        .await
        .expect("the bridge stops after one refused session")
        .unwrap();
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        setup.server.router.connection_count(&setup.bridge_name()),
        0
    );
}
