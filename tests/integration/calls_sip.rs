//! The example bridge's SIP side against SIPp (Debian `sip-tester`), a real SIP phone:
//! an outgoing call to a number rings and is answered by a SIPp UAS, and an incoming call
//! placed by a SIPp UAC is answered by a Bridgehead user through XSI. SIPp exits 0 only
//! when its scenario (INVITE, 180, 200, ACK, BYE, 200) completed.

use std::process::Stdio;
use std::time::Duration;

use hyper::Method;

use crate::calls_bridged::{act, call_id, call_logs_show, start, Watcher};
use crate::support::acme::ALICE;

/// A UDP port free on loopback now.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// SIPp with `args`, stopping after one call or 30 s.
fn sipp(args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new("sipp")
        .args(["-m", "1", "-timeout", "30s", "-nostdin", "-i", "127.0.0.1"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run sipp (Debian sip-tester; tests/run installs it)")
}

async fn finished(mut sipp: tokio::process::Child) -> std::process::ExitStatus {
    tokio::time::timeout(Duration::from_secs(40), sipp.wait())
        .await
        .expect("sipp finished")
        .expect("sipp ran")
}

#[tokio::test]
async fn a_call_to_a_number_is_answered_by_a_sipp_phone() {
    let sipp_port = free_udp_port().to_string();
    let phone = sipp(&["-sn", "uas", "-p", &sipp_port]);
    let peer = format!("127.0.0.1:{sipp_port}");
    let (setup, _bridge) = start(&["--sip-peer", &peer, "--sip-listen", "127.0.0.1:0"]).await;
    let mut alice = Watcher::open(&setup, ALICE).await;

    let placed = act(
        &setup,
        Method::POST,
        ALICE,
        "calls/new?address=%2B4930123456",
    )
    .await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let originated = alice.expect(&setup, "CallOriginatedEvent").await;
    assert!(
        originated.contains(
            "<xsi:address>tel:+4930123456</xsi:address><xsi:callType>Network</xsi:callType>"
        ),
        "{originated}"
    );
    let call = call_id(&originated);
    alice.expect(&setup, "HookStatusEvent").await;
    // The phone rings, then answers (SIPp's uas scenario: 180, then 200).
    alice.expect(&setup, "CallAnsweredEvent").await;
    assert_eq!(
        act(&setup, Method::DELETE, ALICE, &format!("calls/{call}"))
            .await
            .status,
        200
    );
    alice.expect(&setup, "CallReleasedEvent").await;
    assert!(
        finished(phone).await.success(),
        "SIPp saw the whole call, BYE included"
    );
    assert!(call_logs_show(&setup, ALICE, "Placed", "+4930123456").await);
    setup.server.stop().await;
}

#[tokio::test]
async fn a_call_from_a_sipp_phone_is_answered_through_xsi() {
    let bridge_port = free_udp_port();
    let listen = format!("127.0.0.1:{bridge_port}");
    let (setup, _bridge) = start(&["--sip-listen", &listen]).await;
    let mut bob = Watcher::open(&setup, "bob@acme.test").await;

    // SIPp calls bob's number, waits for the answer, holds the call 1 s and hangs up.
    let phone = sipp(&["-sn", "uac", "-s", "+15550102", "-d", "1000", &listen]);
    let received = bob.expect(&setup, "CallReceivedEvent").await;
    assert!(
        received.contains("<xsi:callType>Network</xsi:callType>"),
        "{received}"
    );
    assert!(
        received.contains("<xsi:address>sip:sipp@127.0.0.1"),
        "{received}"
    );
    let call = call_id(&received);
    bob.expect(&setup, "HookStatusEvent").await;
    assert_eq!(
        act(
            &setup,
            Method::PUT,
            "bob@acme.test",
            &format!("calls/{call}/Talk")
        )
        .await
        .status,
        200
    );
    bob.expect(&setup, "CallAnsweredEvent").await;
    let released = bob.expect(&setup, "CallReleasedEvent").await;
    assert!(
        released.contains("<xsi:releasingParty>remoteRelease</xsi:releasingParty>"),
        "{released}"
    );
    assert!(
        finished(phone).await.success(),
        "SIPp's call was answered and ended"
    );
    assert!(call_logs_show(&setup, "bob@acme.test", "Received", "sip:sipp@127.0.0.1").await);
    setup.server.stop().await;
}
