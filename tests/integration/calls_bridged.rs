//! Calls end to end through the real example bridge (`examples/call_bridge`, a process on
//! a real TLS component connection): users place, answer, hold, retrieve and release
//! calls over XSI-Actions and watch them on real streaming XSI-Events channels. Every
//! document is validated against `schemas/`.

use std::process::Stdio;
use std::time::Duration;

use hyper::Method;

use crate::support::acme::{auth, url, ALICE};
use crate::support::events::event;
use crate::support::https::{assert_valid, between, EventChannel, Reply};
use crate::support::server::{bridge_binary, Setup, BRIDGE, BRIDGE_SECRET};

const BOB: &str = "bob@acme.test";
const CAROL: &str = "carol@acme.test";

/// The server with the acme users and the example bridge connected (`extra` arguments).
pub async fn start(extra: &[&str]) -> (Setup, tokio::process::Child) {
    start_with(|_| {}, extra).await
}

/// [`start`] with a changed configuration.
async fn start_with(
    adjust: impl FnOnce(&mut bridgehead::config::Config) + 'static,
    extra: &[&str],
) -> (Setup, tokio::process::Child) {
    let setup = Setup::builder()
        .acme()
        .bridge()
        .config(adjust)
        .start()
        .await;
    let bridge = tokio::process::Command::new(bridge_binary())
        .args(["--name", BRIDGE, "--max-sessions", "1", "--ca"])
        .arg(&setup.ca)
        .arg("--server")
        .arg(setup.component_addr().to_string())
        .args(extra)
        .env("BRIDGE_SECRET", BRIDGE_SECRET)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the example bridge");
    let router = &setup.server.router;
    let online = crate::support::wait_until(Duration::from_secs(10), || {
        router.connection_count(BRIDGE) == 1
    })
    .await;
    assert!(online, "the example bridge did not register");
    (setup, bridge)
}

/// A user's open channel with an Advanced Call subscription on it (its first event, the
/// CallSubscriptionEvent, read and acknowledged).
pub struct Watcher {
    user: &'static str,
    channel: EventChannel,
}

impl Watcher {
    /// Opens `user`'s channel and subscribes it.
    pub async fn open(setup: &Setup, user: &'static str) -> Watcher {
        let set = format!("{user}-set");
        let mut channel = setup.open(user, &set).await;
        let subscribed = setup
            .subscribe(
                user,
                &format!("user/{user}"),
                &set,
                "<event>Advanced Call</event>",
            )
            .await;
        assert_eq!(subscribed.status, 200, "{subscribed:?}");
        let first = event(&mut channel).await;
        assert!(first.contains("CallSubscriptionEvent"), "{first}");
        assert_eq!(setup.ack(user, &first, 200).await.status, 200);
        Watcher { user, channel }
    }

    /// The next event, validated, acknowledged (and kept under `XSI_EVENT_DUMP=DIR`, for
    /// `examples/check-broadworks-xsd.sh`).
    async fn next(&mut self, setup: &Setup) -> String {
        // Generous under a loaded CI machine (a SIP peer answering, a bridge restarting).
        let document = self
            .channel
            .next_within(Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("{}: no event within 20 s", self.user));
        assert_valid(&document);
        assert_eq!(setup.ack(self.user, &document, 200).await.status, 200);
        if let Some(dir) = std::env::var_os("XSI_EVENT_DUMP") {
            let kind = between(&document, "<xsi:eventData xsi1:type=\"xsi:", "\"");
            let name = between(&document, "<xsi:eventID>", "</xsi:eventID>");
            let _ = std::fs::write(
                std::path::Path::new(&dir).join(format!("{kind}-{name}.xml")),
                &document,
            );
        }
        document
    }

    /// The next event, which must be `kind` (`CallReceivedEvent` …).
    pub async fn expect(&mut self, setup: &Setup, kind: &str) -> String {
        let document = self.next(setup).await;
        assert!(
            document.contains(&format!("xsi1:type=\"xsi:{kind}\"")),
            "{}: expected {kind}, got {document}",
            self.user
        );
        document
    }

    /// The next event, which must be `kind` and contain `part`.
    async fn expect_with(&mut self, setup: &Setup, kind: &str, part: &str) -> String {
        let document = self.expect(setup, kind).await;
        assert!(
            document.contains(part),
            "{}: {part} not in {document}",
            self.user
        );
        document
    }

    /// A call from `caller` rings: CallReceivedEvent naming the caller, then the hook
    /// status; the call's id.
    async fn receives_from(&mut self, setup: &Setup, caller: &str) -> String {
        let received = self
            .expect_with(
                setup,
                "CallReceivedEvent",
                &format!("<xsi:userId>{caller}</xsi:userId>"),
            )
            .await;
        self.expect(setup, "HookStatusEvent").await;
        call_id(&received)
    }

    /// The next event that is not a HookStatusEvent, which must be `kind`.
    async fn expect_call_event(&mut self, setup: &Setup, kind: &str) -> String {
        loop {
            let document = self.next(setup).await;
            if !document.contains("xsi1:type=\"xsi:HookStatusEvent\"") {
                assert!(
                    document.contains(&format!("xsi1:type=\"xsi:{kind}\"")),
                    "{}: expected {kind}, got {document}",
                    self.user
                );
                return document;
            }
        }
    }
}

/// `caller` calls `callee` at `address`, who answers: both calls' ids, once both sides saw
/// CallAnswered (hook status events on the way are read).
async fn connected(
    setup: &Setup,
    caller: &mut Watcher,
    callee: &mut Watcher,
    address: &str,
) -> (String, String) {
    expect_status(
        setup,
        Method::POST,
        caller.user,
        &format!("calls/new?address={address}"),
        201,
    )
    .await;
    let caller_call = call_id(&caller.expect_call_event(setup, "CallOriginatedEvent").await);
    let callee_call = call_id(&callee.expect_call_event(setup, "CallReceivedEvent").await);
    expect_status(
        setup,
        Method::PUT,
        callee.user,
        &format!("calls/{callee_call}/Talk"),
        200,
    )
    .await;
    callee.expect_call_event(setup, "CallAnsweredEvent").await;
    caller.expect_call_event(setup, "CallAnsweredEvent").await;
    (caller_call, callee_call)
}

/// The first `callId` in an event.
pub fn call_id(event: &str) -> String {
    between(event, "<xsi:callId>", "</xsi:callId>").to_owned()
}

/// `method` on `user`'s `path` as that user, which must answer `status`.
async fn expect_status(
    setup: &Setup,
    method: Method,
    user: &str,
    path: &str,
    status: u16,
) -> Reply {
    let reply = act(setup, method, user, path).await;
    assert_eq!(reply.status, status, "{user} {path}: {reply:?}");
    reply
}

/// `method` on `user`'s `path` as that user.
pub async fn act(setup: &Setup, method: Method, user: &str, path: &str) -> Reply {
    setup
        .https()
        .request(
            method,
            &url(user, path),
            &[("authorization", &auth(user))],
            None,
        )
        .await
}

/// Whether `user`'s `kind` call log shows a number starting with `number` (polled for 5 s).
pub async fn call_logs_show(setup: &Setup, user: &str, kind: &str, number: &str) -> bool {
    crate::support::wait_until_async(Duration::from_secs(5), || async {
        let logs = setup
            .https()
            .get(
                &url(user, &format!("directories/CallLogs/{kind}")),
                &auth(user),
            )
            .await;
        logs.body.contains(&format!("<phoneNumber>{number}"))
    })
    .await
}

#[tokio::test]
async fn alice_calls_bob_through_the_example_bridge() {
    let (setup, _bridge) = start(&[]).await;
    let mut alice = Watcher::open(&setup, ALICE).await;
    let mut bob = Watcher::open(&setup, BOB).await;

    let placed = act(&setup, Method::POST, ALICE, "calls/new?address=102").await;
    assert_eq!(placed.status, 201, "{placed:?}");
    assert_valid(&placed.body);
    let tracking = between(
        &placed.body,
        "<externalTrackingId>",
        "</externalTrackingId>",
    )
    .to_owned();

    let originated = alice.expect(&setup, "CallOriginatedEvent").await;
    assert!(
        originated.contains(
            "<xsi:personality>Originator</xsi:personality><xsi:state>Alerting</xsi:state>"
        ),
        "{originated}"
    );
    let alice_call = call_id(&originated);
    alice
        .expect_with(&setup, "HookStatusEvent", "Off-Hook")
        .await;
    let received = bob.expect(&setup, "CallReceivedEvent").await;
    for part in [
        "<xsi:personality>Terminator</xsi:personality><xsi:state>Alerting</xsi:state>",
        "<xsi:userId>alice@acme.test</xsi:userId><xsi:callType>Group</xsi:callType>",
        "<xsi:allowAnswer/>",
        &format!("<xsi:extTrackingId>{tracking}</xsi:extTrackingId>"),
    ] {
        assert!(received.contains(part), "{part}: {received}");
    }
    let bob_call = call_id(&received);
    bob.expect(&setup, "HookStatusEvent").await;

    // Holding a ringing call is refused with the model's ErrorInfo; nothing changes.
    let refused = act(&setup, Method::PUT, BOB, &format!("calls/{bob_call}/Hold")).await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused.body.contains("<errorCode>120402</errorCode>"),
        "{}",
        refused.body
    );

    let answered = act(&setup, Method::PUT, BOB, &format!("calls/{bob_call}/Talk")).await;
    assert_eq!(answered.status, 200, "{answered:?}");
    bob.expect_with(&setup, "CallAnsweredEvent", "<xsi:state>Active</xsi:state>")
        .await;
    alice
        .expect_with(&setup, "CallAnsweredEvent", "<xsi:answerTime>")
        .await;

    expect_status(
        &setup,
        Method::PUT,
        ALICE,
        &format!("calls/{alice_call}/Hold"),
        200,
    )
    .await;
    alice
        .expect_with(&setup, "CallHeldEvent", "<xsi:state>Held</xsi:state>")
        .await;
    bob.expect_with(
        &setup,
        "CallUpdatedEvent",
        "<xsi:state>Remote Held</xsi:state>",
    )
    .await;
    expect_status(
        &setup,
        Method::PUT,
        ALICE,
        &format!("calls/{alice_call}/Talk"),
        200,
    )
    .await;
    alice
        .expect_with(&setup, "CallRetrievedEvent", "<xsi:totalHeldTime>")
        .await;
    bob.expect_with(&setup, "CallUpdatedEvent", "<xsi:state>Active</xsi:state>")
        .await;

    let call = act(&setup, Method::GET, BOB, &format!("calls/{bob_call}")).await;
    assert_valid(&call.body);

    expect_status(
        &setup,
        Method::DELETE,
        ALICE,
        &format!("calls/{alice_call}"),
        200,
    )
    .await;
    alice
        .expect_with(
            &setup,
            "CallReleasedEvent",
            "<xsi:releasingParty>localRelease</xsi:releasingParty>",
        )
        .await;
    alice
        .expect_with(&setup, "HookStatusEvent", "On-Hook")
        .await;
    bob.expect_with(
        &setup,
        "CallReleasedEvent",
        "<xsi:releasingParty>remoteRelease</xsi:releasingParty>",
    )
    .await;
    bob.expect_with(&setup, "HookStatusEvent", "On-Hook").await;
    assert!(call_logs_show(&setup, ALICE, "Placed", "+15550102").await);
    assert!(call_logs_show(&setup, BOB, "Received", "+15550101").await);
    setup.server.stop().await;
}

/// Bob hands alice on to carol (blind transfer); alice joins her two calls (transfer with
/// consultation); bob deflects a ringing call to carol.
#[tokio::test]
async fn calls_are_transferred_blind_deflected_and_with_consultation() {
    let (setup, _bridge) = start(&[]).await;
    let mut alice = Watcher::open(&setup, ALICE).await;
    let mut bob = Watcher::open(&setup, BOB).await;
    let mut carol = Watcher::open(&setup, CAROL).await;

    // alice → bob, answered; bob transfers alice to carol (extension 103).
    let (alice_call, bob_call) = connected(&setup, &mut alice, &mut bob, "102").await;
    let transfer = format!("calls/{bob_call}/BlindTransfer");
    expect_status(&setup, Method::PUT, BOB, &transfer, 400).await; // the address is required
    expect_status(
        &setup,
        Method::PUT,
        BOB,
        &format!("{transfer}?address=103"),
        200,
    )
    .await;
    bob.expect(&setup, "CallReleasedEvent").await;
    bob.expect(&setup, "HookStatusEvent").await;
    let transferred = alice.expect(&setup, "CallTransferredEvent").await;
    assert!(
        transferred.contains("<xsi:userId>carol@acme.test</xsi:userId>"),
        "{transferred}"
    );
    let carol_call = carol.receives_from(&setup, ALICE).await;
    expect_status(
        &setup,
        Method::PUT,
        CAROL,
        &format!("calls/{carol_call}/Talk"),
        200,
    )
    .await;
    carol.expect(&setup, "CallAnsweredEvent").await;

    // alice holds carol and calls bob, who answers; alice joins bob and carol.
    expect_status(
        &setup,
        Method::PUT,
        ALICE,
        &format!("calls/{alice_call}/Hold"),
        200,
    )
    .await;
    alice.expect(&setup, "CallHeldEvent").await;
    carol.expect(&setup, "CallUpdatedEvent").await;
    expect_status(&setup, Method::POST, ALICE, "calls/new?address=102", 201).await;
    let second = call_id(&alice.expect(&setup, "CallOriginatedEvent").await);
    let bob_call = bob.receives_from(&setup, ALICE).await;
    expect_status(
        &setup,
        Method::PUT,
        BOB,
        &format!("calls/{bob_call}/Talk"),
        200,
    )
    .await;
    bob.expect(&setup, "CallAnsweredEvent").await;
    alice.expect(&setup, "CallAnsweredEvent").await;
    expect_status(
        &setup,
        Method::PUT,
        ALICE,
        &format!("calls/{alice_call}/ConsultTransfer/{second}"),
        200,
    )
    .await;
    alice.expect(&setup, "CallReleasedEvent").await;
    alice.expect(&setup, "CallReleasedEvent").await;
    alice.expect(&setup, "HookStatusEvent").await;
    bob.expect_with(
        &setup,
        "CallTransferredEvent",
        "<xsi:userId>carol@acme.test</xsi:userId>",
    )
    .await;
    carol
        .expect_with(
            &setup,
            "CallTransferredEvent",
            "<xsi:userId>bob@acme.test</xsi:userId>",
        )
        .await;
    // bob and carol are joined at the bridge: bob hangs up, carol's call ends.
    expect_status(
        &setup,
        Method::DELETE,
        BOB,
        &format!("calls/{bob_call}"),
        200,
    )
    .await;
    bob.expect(&setup, "CallReleasedEvent").await;
    bob.expect(&setup, "HookStatusEvent").await;
    carol
        .expect_with(&setup, "CallReleasedEvent", "remoteRelease")
        .await;
    carol.expect(&setup, "HookStatusEvent").await;

    // A ringing call is deflected: alice calls bob, bob sends it to carol.
    expect_status(&setup, Method::POST, ALICE, "calls/new?address=102", 201).await;
    alice.expect(&setup, "CallOriginatedEvent").await;
    alice.expect(&setup, "HookStatusEvent").await;
    let bob_call = bob.receives_from(&setup, ALICE).await;
    expect_status(
        &setup,
        Method::PUT,
        BOB,
        &format!("calls/{bob_call}/BlindTransfer?address=103"),
        200,
    )
    .await;
    bob.expect_with(
        &setup,
        "CallRedirectedEvent",
        "<xsi:reason>deflection</xsi:reason>",
    )
    .await;
    bob.expect(&setup, "CallDetachedEvent").await;
    bob.expect_with(&setup, "HookStatusEvent", "On-Hook").await;
    carol.receives_from(&setup, ALICE).await;
    setup.server.stop().await;
}

/// Bob's Do Not Disturb refuses the call (busy, a missed call nowhere); his Call
/// Forwarding Always sends it to Carol, and he is told (CallRedirected); so does his Call
/// Forwarding No Answer once the call rang its rings.
#[tokio::test]
async fn do_not_disturb_refuses_and_call_forwarding_redirects() {
    let (setup, _bridge) =
        start_with(|config| config.calls.ring_secs = 1.try_into().unwrap(), &[]).await;
    let mut alice = Watcher::open(&setup, ALICE).await;
    let mut bob = Watcher::open(&setup, BOB).await;
    let mut carol = Watcher::open(&setup, CAROL).await;

    setup.set_dnd(BOB, true).await;
    expect_status(&setup, Method::POST, ALICE, "calls/new?address=102", 201).await;
    alice.expect(&setup, "CallOriginatedEvent").await;
    alice.expect(&setup, "HookStatusEvent").await;
    let released = alice.expect(&setup, "CallReleasedEvent").await;
    assert!(
        released.contains("<xsi:internalReleaseCause>Busy</xsi:internalReleaseCause>"),
        "{released}"
    );
    alice.expect(&setup, "HookStatusEvent").await;
    setup.set_dnd(BOB, false).await;

    let cfa = setup
        .https()
        .put_xml(
            &url(BOB, "services/CallForwardingAlways"),
            &auth(BOB),
            "<CallForwardingAlways xmlns=\"http://schema.broadsoft.com/xsi\"><active>true</active><forwardToPhoneNumber>103</forwardToPhoneNumber><ringSplash>false</ringSplash></CallForwardingAlways>",
        )
        .await;
    assert_eq!(cfa.status, 200, "{cfa:?}");
    expect_status(&setup, Method::POST, ALICE, "calls/new?address=102", 201).await;
    alice.expect(&setup, "CallOriginatedEvent").await;
    alice.expect(&setup, "HookStatusEvent").await;
    let redirected = bob.expect(&setup, "CallRedirectedEvent").await;
    for part in [
        "<xsi:state>Detached</xsi:state>",
        "<xsi:redirect><xsi:address>sip:carol@acme.test</xsi:address><xsi:reason>unconditional</xsi:reason>",
    ] {
        assert!(redirected.contains(part), "{part}: {redirected}");
    }
    bob.expect(&setup, "CallDetachedEvent").await;
    let carol_call = carol.receives_from(&setup, ALICE).await;
    expect_status(
        &setup,
        Method::DELETE,
        CAROL,
        &format!("calls/{carol_call}"),
        200,
    )
    .await;
    carol.expect(&setup, "CallReleasedEvent").await;
    carol.expect(&setup, "HookStatusEvent").await;

    // No answer: after two one-second rings the call goes to carol.
    for (service, body) in [
        ("CallForwardingAlways", "<CallForwardingAlways xmlns=\"http://schema.broadsoft.com/xsi\"><active>false</active></CallForwardingAlways>"),
        ("CallForwardingNoAnswer", "<CallForwardingNoAnswer xmlns=\"http://schema.broadsoft.com/xsi\"><active>true</active><forwardToPhoneNumber>103</forwardToPhoneNumber><numberOfRings>2</numberOfRings></CallForwardingNoAnswer>"),
    ] {
        let put = setup
            .https()
            .put_xml(&url(BOB, &format!("services/{service}")), &auth(BOB), body)
            .await;
        assert_eq!(put.status, 200, "{put:?}");
    }
    expect_status(&setup, Method::POST, ALICE, "calls/new?address=102", 201).await;
    bob.expect(&setup, "CallReceivedEvent").await;
    bob.expect(&setup, "HookStatusEvent").await;
    let started = std::time::Instant::now();
    bob.expect_with(
        &setup,
        "CallRedirectedEvent",
        "<xsi:reason>no-answer</xsi:reason>",
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it rang first"
    );
    bob.expect(&setup, "CallDetachedEvent").await;
    carol.expect(&setup, "CallReceivedEvent").await;
    setup.server.stop().await;
}

/// The bridge killed mid-call: both users' calls are released within a bound.
#[tokio::test]
async fn a_bridge_killed_mid_call_releases_both_sides() {
    let (setup, mut bridge) = start(&[]).await;
    let mut alice = Watcher::open(&setup, ALICE).await;
    let mut bob = Watcher::open(&setup, BOB).await;
    let (_, bob_call) = connected(&setup, &mut alice, &mut bob, "102").await;
    // A new call subscription (monitoring, a second application) gets the call in progress.
    let subscribed = setup
        .subscribe(
            BOB,
            &format!("user/{BOB}"),
            &format!("{BOB}-set"),
            "<event>Basic Call</event>",
        )
        .await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");
    let current = bob.expect(&setup, "CallSubscriptionEvent").await;
    for part in [
        &format!("<xsi:calls><xsi:call><xsi:callId>{bob_call}</xsi:callId>"),
        "<xsi:state>Active</xsi:state>",
        "</xsi:calls><xsi:hookStatus>Off-Hook</xsi:hookStatus>",
    ] {
        assert!(current.contains(part), "{part}: {current}");
    }

    bridge.start_kill().expect("kill the bridge");
    let started = std::time::Instant::now();
    for watcher in [&mut alice, &mut bob] {
        let released = watcher.expect(&setup, "CallReleasedEvent").await;
        assert!(released.contains("Temporarily Unavailable"), "{released}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "released in {:?}",
        started.elapsed()
    );
    setup.server.stop().await;
}

/// A CTI application subscribed at system level sees every call; it and a group admin
/// control the calls of users they may reach, and a user cannot touch another's calls.
#[tokio::test]
async fn a_system_cti_subscription_sees_every_call_and_admins_control_calls() {
    let (setup, _bridge) = start(&[]).await;
    let cti = crate::cti::cti_client(&setup);
    let mut channel = crate::cti::system_channel(&cti, "Basic Call").await;

    // The application places a call for alice: it goes to bob.
    let placed = cti
        .request(
            Method::POST,
            &url(ALICE, "calls/new?address=102"),
            &[],
            None,
        )
        .await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let document = channel
            .next_within(Duration::from_secs(20))
            .await
            .expect("call events reach the CTI channel");
        assert_valid(&document);
        if document.contains("CallOriginatedEvent") || document.contains("CallReceivedEvent") {
            seen.push((
                between(&document, "<xsi:targetId>", "</xsi:targetId>").to_owned(),
                call_id(&document),
            ));
        }
    }
    seen.sort();
    assert_eq!(
        seen.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        [ALICE, BOB],
        "both sides of the call"
    );
    let bob_call = &seen[1].1;
    // alice may not answer bob's call; bob's group admin may.
    let denied = setup
        .https()
        .request(
            Method::PUT,
            &url(BOB, &format!("calls/{bob_call}/Talk")),
            &[("authorization", &auth(ALICE))],
            None,
        )
        .await;
    assert_eq!(denied.status, 403, "{denied:?}");
    let answered = setup
        .https()
        .request(
            Method::PUT,
            &url(BOB, &format!("calls/{bob_call}/Talk")),
            &[("authorization", &auth("gadmin@acme.test"))],
            None,
        )
        .await;
    assert_eq!(answered.status, 200, "{answered:?}");
    let released = cti
        .request(
            Method::DELETE,
            &url(BOB, &format!("calls/{bob_call}")),
            &[],
            None,
        )
        .await;
    assert_eq!(released.status, 200, "{released:?}");
    setup.server.stop().await;
}

/// wxcadm 4.6 (PyPI) places a call with its own XSI call control, and holds, retrieves
/// and releases it once bob answers (`tests/interop/wxcadm_calls.py`).
#[tokio::test]
async fn wxcadm_places_holds_and_releases_a_call() {
    let (setup, _bridge) = start(&[]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/wxcadm_calls.py");
    let endpoint = format!(
        "https://localhost:{}/com.broadsoft.xsi-actions",
        setup.server.addrs.https.unwrap().port()
    );
    let wxcadm = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&endpoint)
        .arg(ALICE)
        .arg("alice-pass")
        .arg("102")
        .env("REQUESTS_CA_BUNDLE", &setup.ca)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (tests/run installs wxcadm)");
    // bob answers as soon as the call rings.
    let setup_ref = &setup;
    let ringing = crate::support::wait_until_async(Duration::from_secs(20), move || async move {
        act(setup_ref, Method::GET, BOB, "calls")
            .await
            .body
            .contains("<callId>")
    })
    .await;
    let calls = act(&setup, Method::GET, BOB, "calls").await;
    let bob_call = between(&calls.body, "<callId>", "</callId>").to_owned();
    assert!(ringing, "bob's phone rang");
    expect_status(
        &setup,
        Method::PUT,
        BOB,
        &format!("calls/{bob_call}/Talk"),
        200,
    )
    .await;
    let output = tokio::time::timeout(Duration::from_secs(60), wxcadm.wait_with_output())
        .await
        .expect("wxcadm finished")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "placed: callhalf-",
        "answered: tel:+15550102",
        "held",
        "retrieved",
        "released",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    let released = crate::support::wait_until_async(Duration::from_secs(5), || async {
        act(&setup, Method::GET, BOB, "calls/HookStatus")
            .await
            .body
            .contains("On-Hook")
    })
    .await;
    assert!(released, "bob's side ended with alice's");
    setup.server.stop().await;
}

/// A call released before it is answered is in the callee's missed calls; one nobody
/// answers ends when `[calls] ringing_timeout_secs` runs out (Request Timeout); a bridge
/// at `[calls] max_calls_per_bridge` takes no more calls.
#[tokio::test]
async fn unanswered_calls_are_missed_and_timers_and_limits_hold() {
    let (setup, _bridge) = start_with(
        |config| {
            config.calls.ringing_timeout_secs = 1.try_into().unwrap();
            config.calls.max_calls_per_bridge = 2.try_into().unwrap();
        },
        &[],
    )
    .await;
    let mut alice = Watcher::open(&setup, ALICE).await;
    let mut bob = Watcher::open(&setup, BOB).await;

    // alice gives up before bob answers.
    expect_status(&setup, Method::POST, ALICE, "calls/new?address=102", 201).await;
    let alice_call = call_id(&alice.expect(&setup, "CallOriginatedEvent").await);
    alice.expect(&setup, "HookStatusEvent").await;
    bob.expect(&setup, "CallReceivedEvent").await;
    bob.expect(&setup, "HookStatusEvent").await;
    expect_status(
        &setup,
        Method::DELETE,
        ALICE,
        &format!("calls/{alice_call}"),
        200,
    )
    .await;
    bob.expect(&setup, "CallReleasedEvent").await;
    assert!(
        call_logs_show(&setup, BOB, "Missed", "+15550101").await,
        "a missed call"
    );

    // Nobody answers: the ringing timer ends bob's side, and the bridge ends alice's.
    expect_status(&setup, Method::POST, ALICE, "calls/new?address=102", 201).await;
    bob.expect(&setup, "HookStatusEvent").await;
    bob.expect(&setup, "CallReceivedEvent").await;
    bob.expect(&setup, "HookStatusEvent").await;
    let timed_out = bob.expect(&setup, "CallReleasedEvent").await;
    assert!(
        timed_out.contains("<xsi:internalReleaseCause>Request Timeout</xsi:internalReleaseCause>"),
        "{timed_out}"
    );
    let ended = crate::support::wait_until_async(Duration::from_secs(5), || async {
        act(&setup, Method::GET, ALICE, "calls/HookStatus")
            .await
            .body
            .contains("On-Hook")
    })
    .await;
    assert!(ended, "alice's side ended with bob's");

    // One call between two local users is two Rayo calls (alice's and bob's): with
    // max_calls_per_bridge = 2 it fills the only bridge, and the next call is refused.
    expect_status(&setup, Method::POST, ALICE, "calls/new?address=102", 201).await;
    bob.expect(&setup, "HookStatusEvent").await;
    bob.expect(&setup, "CallReceivedEvent").await;
    let refused = act(&setup, Method::POST, ALICE, "calls/new?address=103").await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(
        refused.body.contains("<errorCode>120401</errorCode>"),
        "{}",
        refused.body
    );
    setup.server.stop().await;
}
