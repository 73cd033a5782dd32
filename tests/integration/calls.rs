//! Call control through a call bridge over Rayo (XEP-0327). The bridge here is a scripted
//! XEP-0114 component on a real TLS connection: it answers the server's disco#info with
//! the Rayo feature and every `dial` with a call reference, or refuses it.

use std::time::Duration;

use futures::SinkExt;
use hyper::Method;
use minidom::Element;

use bridgehead::telephony::OnConflict;

use crate::support::acme::{auth, url, ALICE};
use crate::support::component::{self, next, stanza, COMPONENT_NS};
use crate::support::https::assert_valid;
use crate::support::server::{component_config, Setup};

const RAYO: &str = "urn:xmpp:rayo:1";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const BRIDGE: &str = "rayo.localhost";

/// What the scripted bridge does with a `dial`.
#[derive(Clone, Copy)]
pub(crate) enum OnDial {
    Accept,
    Refuse,
}

/// Runs the bridge: answers disco#info (with Rayo) and dials (its calls' references are
/// at its own address); sends each dial's `(to, from)` on `dials`; sends what comes on
/// `send` (its call events).
pub(crate) async fn run_bridge(
    mut stream: component::Stream,
    on_dial: OnDial,
    dials: tokio::sync::mpsc::UnboundedSender<(String, String)>,
    mut send: tokio::sync::mpsc::UnboundedReceiver<Element>,
) {
    let mut n = 0;
    loop {
        let element = tokio::select! {
            element = next(&mut stream) => match element {
                Some(element) => element,
                None => return,
            },
            event = send.recv() => match event {
                // Dropping the sender disconnects the bridge.
                None => return,
                Some(event) => {
                    if stream.send(&event).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
        };
        if !element.is("iq", COMPONENT_NS) {
            continue;
        }
        let (from, to, id) = (
            element.attr("from").unwrap_or_default().to_owned(),
            element.attr("to").unwrap_or_default().to_owned(),
            element.attr("id").unwrap_or_default().to_owned(),
        );
        let answer = |kind: &str, children: Vec<Element>| {
            stanza(
                "iq",
                &[("type", kind), ("id", &id), ("from", &to), ("to", &from)],
                children,
            )
        };
        let reply = if element.get_child("query", DISCO_INFO).is_some() {
            let feature = |var: &str| {
                Element::builder("feature", DISCO_INFO)
                    .attr(rxml::xml_ncname!("var").to_owned(), var)
                    .build()
            };
            answer(
                "result",
                vec![Element::builder("query", DISCO_INFO)
                    .append(feature(DISCO_INFO))
                    .append(feature(RAYO))
                    .build()],
            )
        } else if element.get_child("hangup", RAYO).is_some() {
            let _ = dials.send(("hangup".to_owned(), to.clone()));
            answer("result", Vec::new())
        } else if let Some(dial) = element.get_child("dial", RAYO) {
            let _ = dials.send((
                dial.attr("to").unwrap_or_default().to_owned(),
                dial.attr("from").unwrap_or_default().to_owned(),
            ));
            n += 1;
            match on_dial {
                OnDial::Accept => answer(
                    "result",
                    vec![Element::builder("ref", RAYO)
                        .attr(
                            rxml::xml_ncname!("uri").to_owned(),
                            format!("xmpp:call{n}@{to}"),
                        )
                        .build()],
                ),
                OnDial::Refuse => answer(
                    "error",
                    vec![Element::builder("error", COMPONENT_NS)
                        .attr(rxml::xml_ncname!("type").to_owned(), "cancel")
                        .append(
                            Element::builder(
                                "service-unavailable",
                                "urn:ietf:params:xml:ns:xmpp-stanzas",
                            )
                            .build(),
                        )
                        .build()],
                ),
            }
        } else {
            continue;
        };
        if stream.send(&reply).await.is_err() {
            return;
        }
    }
}

/// What a scripted bridge received (its dials), and a way to make it send.
type Scripted = (
    tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    tokio::sync::mpsc::UnboundedSender<Element>,
);

/// Logs in the scripted bridge `name` and runs it.
async fn connect_bridge(setup: &Setup, name: &str, on_dial: OnDial) -> Scripted {
    let stream = component::connect(setup.component_addr(), &setup.ca, name, "rayo-secret")
        .await
        .expect("the bridge logs in");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (send, to_send) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(run_bridge(stream, on_dial, tx, to_send));
    (rx, send)
}

/// The server (bridges `names` registered, `[calls]` changed by `calls`) with the scripted
/// bridge [`BRIDGE`] logged in.
async fn start_with_bridges(
    on_dial: OnDial,
    names: &'static [&'static str],
    calls: fn(&mut bridgehead::config::CallsConfig),
) -> (Setup, Scripted) {
    let setup = Setup::builder()
        .acme()
        .config(move |c| {
            for name in names {
                c.components.push(component_config(
                    name,
                    "rayo-secret",
                    1,
                    OnConflict::Replace,
                ));
            }
            c.quotas.max_calls_per_user = 3.try_into().unwrap();
            calls(&mut c.calls);
        })
        .start()
        .await;
    let bridge = connect_bridge(&setup, BRIDGE, on_dial).await;
    (setup, bridge)
}

/// The server with the scripted bridge logged in: the dials it receives, and a way to
/// make it send.
async fn start(
    on_dial: OnDial,
) -> (
    Setup,
    tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    tokio::sync::mpsc::UnboundedSender<Element>,
) {
    let (setup, (rx, send)) = start_with_bridges(on_dial, &[BRIDGE], |_| {}).await;
    (setup, rx, send)
}

/// `POST calls/new?address=…` as alice. (No waiting: the bridge is attached before its
/// handshake is answered, and it is asked disco#info by the first dial.)
async fn place(setup: &Setup, address: &str) -> crate::support::https::Reply {
    setup
        .https()
        .request(
            Method::POST,
            &url(ALICE, &format!("calls/new?address={address}")),
            &[("authorization", &auth(ALICE))],
            None,
        )
        .await
}

#[tokio::test]
async fn a_rayo_bridge_dials_a_new_call() {
    let (setup, mut dials, bridge) = start(OnDial::Accept).await;
    let placed = place(&setup, "102").await;
    assert_eq!(placed.status, 201, "{placed:?}");
    assert_valid(&placed.body);
    let tracking = placed
        .body
        .split("<externalTrackingId>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("an externalTrackingId");
    assert!(tracking.ends_with(":1"), "{tracking}");
    let location = placed.header("location").expect("a Location").to_owned();
    assert!(
        location.starts_with("/v2.0/user/alice@acme.test/calls/callhalf-"),
        "{location}"
    );
    assert_eq!(
        dials.recv().await.unwrap(),
        (
            "sip:bob@acme.test".to_owned(),
            "sip:alice@acme.test".to_owned()
        ),
        "extension 102 is bob, dialled as his SIP address"
    );
    // The caller's call is kept: listed, and the caller is off hook.
    let alice = auth(ALICE);
    let calls = setup.https().get(&url(ALICE, "calls"), &alice).await;
    assert_valid(&calls.body);
    let call_id = location.rsplit('/').next().unwrap();
    assert!(
        calls.body.contains(&format!("<callId>{call_id}</callId>")),
        "{}",
        calls.body
    );
    let hook = setup
        .https()
        .get(&url(ALICE, "calls/HookStatus"), &alice)
        .await;
    assert!(
        hook.body.contains("<hookStatus>Off-Hook</hookStatus>"),
        "{}",
        hook.body
    );
    // The bridge reports the far end answering, then hanging up: the call becomes
    // Active, then leaves the list for alice's placed calls log.
    let event = |child: Element| {
        stanza(
            "presence",
            &[("from", "call1@rayo.localhost"), ("to", "localhost")],
            vec![child],
        )
    };
    let call = |id: String| {
        let https = setup.https();
        let alice = auth(ALICE);
        async move { https.get(&url(ALICE, &format!("calls/{id}")), &alice).await }
    };
    let alerting = call(call_id.to_owned()).await;
    assert_valid(&alerting.body);
    for part in [
        "<personality>Originator</personality><state>Alerting</state>",
        "<userId>bob@acme.test</userId><callType>Group</callType>",
    ] {
        assert!(alerting.body.contains(part), "{}", alerting.body);
    }
    bridge
        .send(event(Element::builder("answered", RAYO).build()))
        .unwrap();
    let active = crate::support::wait_until_async(Duration::from_secs(5), || async {
        call(call_id.to_owned())
            .await
            .body
            .contains("<state>Active</state><remoteParty>")
    })
    .await;
    assert!(active, "the far end answered");
    assert!(call(call_id.to_owned()).await.body.contains("<answerTime>"));
    bridge
        .send(event(
            Element::builder("end", RAYO)
                .append(Element::builder("hungup", RAYO).build())
                .build(),
        ))
        .unwrap();
    let ended = crate::support::wait_until_async(Duration::from_secs(5), || async {
        let hook = setup
            .https()
            .get(&url(ALICE, "calls/HookStatus"), &auth(ALICE))
            .await;
        hook.body.contains("On-Hook")
    })
    .await;
    assert!(ended, "the call ended");
    let logs = crate::support::wait_until_async(Duration::from_secs(5), || async {
        let placed = setup
            .https()
            .get(&url(ALICE, "directories/CallLogs/Placed"), &auth(ALICE))
            .await;
        placed.body.contains("<phoneNumber>+15550102</phoneNumber>")
    })
    .await;
    assert!(logs, "the call is in alice's placed calls");
    // A number off the directory goes to the bridge as a tel: URI.
    let network = place(&setup, "%2B4930123456").await;
    assert_eq!(network.status, 201, "{network:?}");
    assert_eq!(dials.recv().await.unwrap().0, "tel:+4930123456");
    // Calls in progress are bounded per user ([quotas] max_calls_per_user, here 3; the
    // first call ended): the next one is refused before anything is dialled.
    for _ in 0..2 {
        assert_eq!(place(&setup, "103").await.status, 201);
        assert_eq!(dials.recv().await.unwrap().0, "sip:carol@acme.test");
    }
    let over = place(&setup, "103").await;
    assert!(
        over.body.contains("<errorCode>120205</errorCode>"),
        "{}",
        over.body
    );
    // The caller releases one: the bridge is told to hang up, the call is gone. Declining
    // is for a ringing incoming call only.
    let calls = setup.https().get(&url(ALICE, "calls"), &alice).await;
    let id = calls
        .body
        .split("<callId>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_owned();
    let delete = |query: &str| {
        let https = setup.https();
        let path = url(ALICE, &format!("calls/{id}{query}"));
        async move {
            https
                .request(
                    Method::DELETE,
                    &path,
                    &[("authorization", &auth(ALICE))],
                    None,
                )
                .await
        }
    };
    let declined = delete("?decline=true").await;
    assert_eq!(declined.status, 400, "{declined:?}");
    assert!(
        declined.body.contains("<errorCode>120402</errorCode>"),
        "{}",
        declined.body
    );
    assert_eq!(delete("").await.status, 200);
    let (hangup, to) = dials.recv().await.unwrap();
    assert_eq!(hangup, "hangup");
    assert!(to.ends_with("@rayo.localhost"), "{to}");
    let again = delete("").await;
    assert!(
        again.body.contains("<errorCode>120203</errorCode>"),
        "{}",
        again.body
    );
    assert!(dials.try_recv().is_err(), "nothing was dialled");
    // The bridge disconnects mid-call: its three calls are released, none is left behind.
    drop(bridge);
    let released = crate::support::wait_until_async(Duration::from_secs(5), || async {
        let calls = setup.https().get(&url(ALICE, "calls"), &auth(ALICE)).await;
        calls
            .body
            .contains("<Calls xmlns=\"http://schema.broadsoft.com/xsi\"/>")
    })
    .await;
    assert!(released, "the bridge's calls were released");
    setup.server.stop().await;
}

#[tokio::test]
async fn a_refused_dial_is_the_documented_error() {
    let (setup, mut dials, _bridge) = start(OnDial::Refuse).await;
    let refused = place(&setup, "102").await;
    dials.recv().await.expect("the bridge was asked to dial");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(
        refused.body.contains("<errorCode>120401</errorCode>"),
        "{}",
        refused.body
    );
    let hook = setup
        .https()
        .get(&url(ALICE, "calls/HookStatus"), &auth(ALICE))
        .await;
    assert!(
        hook.body.contains("On-Hook"),
        "no call was kept: {}",
        hook.body
    );
    setup.server.stop().await;
}

/// A bridge that refuses a dial passes it to the next one, and new calls are spread over
/// the bridges in turn.
#[tokio::test]
async fn a_refused_dial_goes_to_the_next_bridge_and_calls_are_spread() {
    const OTHER: &str = "rayo2.localhost";
    let (setup, (mut refusing, _keep)) =
        start_with_bridges(OnDial::Refuse, &[BRIDGE, OTHER], |_| {}).await;
    let (mut accepting, _keep_other) = connect_bridge(&setup, OTHER, OnDial::Accept).await;
    let online = crate::support::wait_until(Duration::from_secs(5), || {
        setup.server.router.connection_count(OTHER) == 1
    })
    .await;
    assert!(online, "the second bridge is connected");
    // The first call tries rayo.localhost first (name order), which refuses.
    let first = place(&setup, "102").await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(refusing.recv().await.unwrap().0, "sip:bob@acme.test");
    assert_eq!(accepting.recv().await.unwrap().0, "sip:bob@acme.test");
    // The next call starts with the other bridge.
    let second = place(&setup, "103").await;
    assert_eq!(second.status, 201, "{second:?}");
    assert_eq!(accepting.recv().await.unwrap().0, "sip:carol@acme.test");
    assert!(
        refusing.try_recv().is_err(),
        "the refusing bridge was not asked first"
    );
    setup.server.stop().await;
}

/// A placed call the far end never answers ends when `[calls] dial_timeout_secs` runs out
/// (Request Timeout, in the caller's placed calls), and its bridge is told to hang up.
#[tokio::test]
async fn an_unanswered_outgoing_call_ends_at_the_dial_timeout() {
    let (setup, (mut dials, _bridge)) = start_with_bridges(OnDial::Accept, &[BRIDGE], |calls| {
        calls.dial_timeout_secs = 2.try_into().unwrap()
    })
    .await;
    let started = std::time::Instant::now();
    assert_eq!(place(&setup, "%2B4930123456").await.status, 201);
    assert_eq!(dials.recv().await.unwrap().0, "tel:+4930123456");
    let (hangup, to) = tokio::time::timeout(Duration::from_secs(10), dials.recv())
        .await
        .expect("the bridge is told to hang up")
        .unwrap();
    assert_eq!(hangup, "hangup");
    assert!(to.ends_with("@rayo.localhost"), "{to}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "ended after {waited:?}"
    );
    let hook = setup
        .https()
        .get(&url(ALICE, "calls/HookStatus"), &auth(ALICE))
        .await;
    assert!(hook.body.contains("On-Hook"), "{}", hook.body);
    let logged = crate::support::wait_until_async(Duration::from_secs(5), || async {
        setup
            .https()
            .get(&url(ALICE, "directories/CallLogs/Placed"), &auth(ALICE))
            .await
            .body
            .contains("<phoneNumber>+4930123456</phoneNumber>")
    })
    .await;
    assert!(logged, "the call is in alice's placed calls");
    setup.server.stop().await;
}
