//! Third-party clients against a default server, and the byte-level habits of theirs that
//! broke it: go-sendxmpp (Debian) logging in, whitespace at every point of a c2s stream
//! and before a component's header.

use std::time::Duration;

use base64::Engine as _;
use futures::SinkExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_xmpp::parsers::presence::Presence;

use bridgehead::config::Config;

use crate::support::client::{login, raw_next, raw_session, wait_for, CLIENT_NS};
use crate::support::server::Setup;

const ANN: &str = "ann@localhost";
const BEN: &str = "ben@localhost";

/// A default server with users ann and ben (passwords `ann-pass`, `ben-pass`).
pub async fn start_with(adjust: impl FnOnce(&mut Config) + 'static) -> Setup {
    Setup::builder()
        .config(adjust)
        .xmpp_users(&[(ANN, "Ann"), (BEN, "Ben")])
        .start()
        .await
}

/// Bytes on a stream, read until a marker shows up.
struct Wire<S> {
    io: S,
    seen: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    async fn send(&mut self, bytes: &str) {
        self.io.write_all(bytes.as_bytes()).await.unwrap();
        self.io.flush().await.unwrap();
    }

    /// Everything up to and including `marker`; panics with what came when it never does.
    async fn until(&mut self, marker: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = String::from_utf8_lossy(&self.seen).into_owned();
            if let Some(at) = text.find(marker) {
                let end = at + marker.len();
                self.seen.drain(..end);
                return text[..end].to_owned();
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout_at(deadline, self.io.read(&mut chunk)).await;
            match read {
                Ok(Ok(n)) if n > 0 => self.seen.extend_from_slice(&chunk[..n]),
                _ => panic!("no {marker:?} from the server; it sent {text:?}"),
            }
        }
    }
}

fn c2s_header() -> &'static str {
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
     xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
}

/// Whitespace before the first header, between header and stanzas, after `</auth>` (go-xmpp's
/// newline), as a keep-alive at the restart and before the restarted `<?xml`: all ignored.
#[tokio::test]
async fn whitespace_anywhere_between_top_level_elements_is_ignored() {
    let setup = start_with(|_| {}).await;
    let tcp = TcpStream::connect(setup.c2s()).await.unwrap();
    let mut wire = Wire {
        io: tcp,
        seen: Vec::new(),
    };
    wire.send(&format!("\n \r\n{}\n", c2s_header())).await;
    wire.until("</stream:features>").await;
    wire.send(" <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n")
        .await;
    wire.until("<proceed").await;
    wire.until(">").await;
    let tls = tokio_rustls::TlsConnector::from(crate::support::client::client_tls(&setup.ca))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            wire.io,
        )
        .await
        .unwrap();
    let mut wire = Wire {
        io: tls,
        seen: Vec::new(),
    };
    wire.send(&format!("\n{}", c2s_header())).await;
    wire.until("</stream:features>").await;
    let plain = base64::engine::general_purpose::STANDARD.encode("\0ann\0ann-pass");
    wire.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>\n"
    ))
    .await;
    wire.until("<success").await;
    wire.send(" ").await; // a whitespace keep-alive at the restart
    wire.send(&format!("\t\n{}", c2s_header())).await;
    let features = wire.until("</stream:features>").await;
    assert!(
        features.contains("urn:ietf:params:xml:ns:xmpp-bind"),
        "{features}"
    );
    wire.send(
        "\n<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>raw</resource></bind></iq>\n \n",
    )
    .await;
    let bound = wire.until("</iq>").await;
    assert!(bound.contains("ann@localhost/raw"), "{bound}");
    setup.server.stop().await;
}

/// Bad XML still gets its stream error before the stream closes, at the restart too.
#[tokio::test]
async fn a_stream_closed_for_bad_xml_gets_not_well_formed_first() {
    let setup = start_with(|_| {}).await;
    let tcp = TcpStream::connect(setup.c2s()).await.unwrap();
    let mut wire = Wire {
        io: tcp,
        seen: Vec::new(),
    };
    wire.send("x<?xml version='1.0'?>").await;
    let error = wire.until("</stream:stream>").await;
    assert!(error.contains("<not-well-formed"), "{error}");
    setup.server.stop().await;
}

/// A component's header after a newline is read like any other.
#[tokio::test]
async fn a_component_header_after_whitespace_is_answered() {
    let setup = start_with(|_| {}).await;
    let tls =
        crate::support::component::tls(setup.server.addrs.component.unwrap(), &setup.ca).await;
    let mut wire = Wire {
        io: tls,
        seen: Vec::new(),
    };
    wire.send(
        "\r\n <?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='bridge.localhost'>",
    )
    .await;
    // A wrong handshake gets not-authorized: the header itself was accepted.
    wire.send("<handshake>00</handshake>").await;
    let answer = wire.until("</stream:stream>").await;
    assert!(
        answer.contains("<not-authorized") && !answer.contains("not-well-formed"),
        "{answer}"
    );
    setup.server.stop().await;
}

/// Debian's go-sendxmpp (go-xmpp) logs in over STARTTLS, checking the certificate against
/// the development CA, and delivers a message. It writes `</auth>\n`, which once made the
/// restarted stream fail.
#[tokio::test]
async fn go_sendxmpp_sends_a_message() {
    let setup = start_with(|_| {}).await;
    let (mut ben, _) = login(setup.c2s(), &setup.ca, BEN, "ben-pass").await;
    ben.send_stanza(Presence::available().into()).await.unwrap();
    let mut child = tokio::process::Command::new("go-sendxmpp")
        .args(["-u", ANN, "-p", "ann-pass", "-j"])
        .arg(setup.c2s().to_string())
        .arg(BEN)
        .env("SSL_CERT_FILE", &setup.ca)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("go-sendxmpp is installed (Debian package go-sendxmpp; tests/run installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello from go-sendxmpp\n").await.unwrap();
    drop(stdin);
    let body = wait_for(&mut ben, |stanza| match stanza {
        tokio_xmpp::Stanza::Message(m) => m.bodies.values().next().cloned(),
        _ => None,
    })
    .await;
    assert_eq!(body.trim_end(), "hello from go-sendxmpp");
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("go-sendxmpp ends")
        .unwrap();
    assert!(
        output.status.success(),
        "go-sendxmpp: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    ben.send_end().await.unwrap();
    setup.server.stop().await;
}

use bridgehead::xmpp::ns::SM;

fn ping(id: &str) -> minidom::Element {
    minidom::Element::builder("iq", CLIENT_NS)
        .attr(rxml::xml_ncname!("type").to_owned(), "get")
        .attr(rxml::xml_ncname!("id").to_owned(), id)
        .attr(rxml::xml_ncname!("to").to_owned(), "localhost")
        .append(minidom::Element::bare("ping", "urn:xmpp:ping"))
        .build()
}

/// XEP-0198 with a client whose `h` lags, as xmpp.js 0.14's does (it never counts iq
/// results): `<r/>` comes after `sm_request_after_stanzas` stanzas or when one waited
/// `sm_request_after_secs`, never in answer to the client's `<a/>`, one at a time.
#[tokio::test]
async fn acks_are_requested_by_count_or_time_never_in_answer_to_an_ack() {
    let setup = start_with(|c| {
        c.xmpp.sm_request_after_stanzas = 3.try_into().unwrap();
        c.xmpp.sm_request_after_secs = 2.try_into().unwrap();
    })
    .await;
    let mut ann = raw_session(setup.c2s(), &setup.ca, "localhost", "ann", "ann-pass", "js").await;
    ann.send(&minidom::Element::bare("enable", SM))
        .await
        .unwrap();
    assert!(raw_next(&mut ann).await.unwrap().is("enabled", SM));

    for n in 0..3 {
        ann.send(&ping(&n.to_string())).await.unwrap();
    }
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(raw_next(&mut ann).await.unwrap().name().to_owned());
    }
    assert_eq!(
        names,
        ["iq", "iq", "iq", "r"],
        "one request after three stanzas"
    );

    // The lagging answer: no new request comes back for it.
    ann.send(
        &minidom::Element::builder("a", SM)
            .attr(rxml::xml_ncname!("h").to_owned(), "0")
            .build(),
    )
    .await
    .unwrap();
    ann.send(&ping("after-ack")).await.unwrap();
    let next = raw_next(&mut ann).await.unwrap();
    assert_eq!(next.attr("id"), Some("after-ack"), "{next:?}");

    // That one result waits; the timer asks for it.
    let asked = raw_next(&mut ann).await.unwrap();
    assert!(asked.is("r", SM), "{asked:?}");
    setup.server.stop().await;
}

/// Runs xmpp.js's idle script against `service`; its JSON report.
async fn xmppjs_idle(setup: &Setup, service: &str, idle_ms: u64) -> serde_json::Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/xmppjs");
    assert!(
        std::path::Path::new(dir)
            .join("node_modules/@xmpp/client")
            .is_dir(),
        "@xmpp/client is not installed: tests/run installs it (npm ci in {dir})"
    );
    let output = tokio::process::Command::new("node")
        .current_dir(dir)
        .args(["idle_acks.mjs", service, "localhost", "ann", "ann-pass"])
        .arg(idle_ms.to_string())
        .env("NODE_EXTRA_CA_CERTS", &setup.ca)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (tests/run installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "xmpp.js: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

/// xmpp.js 0.14 (npm `@xmpp/client`) over STARTTLS and over WebSocket: it logs in, enables
/// XEP-0198, makes five requests and idles for three seconds. The server asks for acks
/// by count or after `sm_request_after_secs` (30 s), so an idle session sees none; before,
/// a lagging `h` drew about 160 `<r/>` a second.
#[tokio::test]
async fn xmppjs_over_tcp_and_websocket_is_not_asked_for_acks_while_idle() {
    let setup = start_with(|_| {}).await;
    let tcp = format!("xmpp://127.0.0.1:{}", setup.c2s().port());
    let https = setup.server.addrs.https.expect("the HTTPS listener is on");
    let ws = format!("wss://localhost:{}/xmpp-websocket", https.port());
    for service in [tcp, ws] {
        let report = xmppjs_idle(&setup, &service, 3000).await;
        assert_eq!(report["jid"], "ann@localhost/xmppjs", "{service}: {report}");
        assert_eq!(report["sm"], true, "{service}: {report}");
        assert!(
            report["idleRequests"].as_u64().unwrap() <= 1,
            "{service}: {report}"
        );
    }
    setup.server.stop().await;
}

/// The default listeners take both families: `https://[::1]:…/` (the development
/// certificate names `::1`) and `https://127.0.0.1:…/` reach the same listener.
#[tokio::test]
async fn the_https_listener_answers_on_ipv6_and_ipv4() {
    let setup = start_with(|c| {
        c.http.listen = bridgehead::config::Listen::any(0);
    })
    .await;
    let port = setup.server.addrs.https.unwrap().port();
    for ip in [
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        std::net::IpAddr::from([127, 0, 0, 1]),
    ] {
        let https = crate::support::https::Https::new((ip, port).into(), &setup.ca);
        let reply = https
            .request(hyper::Method::GET, "/.well-known/host-meta", &[], None)
            .await;
        assert_eq!(reply.status, 200, "{ip}: {}", reply.body);
    }
    setup.server.stop().await;
}
