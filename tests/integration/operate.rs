//! Operating a node: reload (SIGHUP, `bridgehead reload`, the certificate watch) without
//! dropping anyone, the admin API through the CLI (`status`, lists, kick), all against the
//! real binary, with `openssl s_client` as the judge of the served certificate.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures::SinkExt;
use minidom::Element;
use tokio_xmpp::Stanza;

use crate::support::client;
use crate::support::component::{self, stanza, stream_error, COMPONENT_NS};
use crate::support::events::channel_body;
use crate::support::https::{basic, EventChannel, Https, EVENTS};
use crate::support::node::{ephemeral_config, Node};
use crate::support::openssl::{Key, OpenSsl};
use crate::support::wait_until_async;

/// The SHA-256 fingerprint of the certificate `addr` serves, as `openssl s_client` sees
/// it (`starttls` = `xmpp` for c2s).
fn served_fingerprint(addr: std::net::SocketAddr, starttls: bool) -> String {
    let mut connect = format!("openssl s_client -connect {addr} -servername localhost");
    if starttls {
        connect.push_str(" -starttls xmpp -xmpphost localhost");
    }
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{connect} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .rsplit('=')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn fingerprint_of(pem: &Path) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .to_owned()
}

/// A new CA and a server certificate for `localhost` and `bridgehead.test` from it.
fn new_pki() -> OpenSsl {
    let pki = OpenSsl::new();
    pki.root("root2", "Renewal Root CA");
    sign_server(&pki);
    pki
}

/// `server.crt` and `server.key` for `localhost` and `bridgehead.test`, from `root2`.
fn sign_server(pki: &OpenSsl) {
    pki.sign(
        "server",
        "localhost",
        Key::Ec,
        "root2",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost,DNS:bridgehead.test",
    );
}

/// The config with the certificate of `pki`, whose CA the CTI listener trusts too.
fn configured_tls(pki: &OpenSsl, extra: &str) -> String {
    ephemeral_config(&format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\ntrust_file = \"{}\"\n{extra}\n\
         [cti]\nlisten = \"127.0.0.1:0\"\ntrust_file = \"{}\"\n\
         allowed_client_ids = [\"cti-client.localhost\"]\n",
        pki.p("server.crt"),
        pki.p("server.key"),
        pki.p("root2.crt"),
        pki.p("root2.crt"),
    ))
    // The [cti] section above replaces the ephemeral one.
    .replacen("[cti]\nlisten = \"127.0.0.1:0\"\n", "", 1)
}

fn message(from: &str, to: &str, body: &str) -> Element {
    stanza(
        "message",
        &[("from", from), ("to", to)],
        vec![Element::builder("body", COMPONENT_NS).append(body).build()],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_swaps_the_certificate_and_keeps_every_session_component_and_channel() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bridgehead.toml"),
        ephemeral_config("[tls]\nwatch_secs = 0\n"),
    )
    .unwrap();
    let node = Node::start(dir.path()).await;
    let (password, secret) = node.demo();
    let ca = node.ca();
    let dev = fingerprint_of(&dir.path().join("data/pki/server.crt"));
    assert_eq!(served_fingerprint(node.addr("https"), false), dev);
    // The renewal comes from another CA; the XSI client (a new TLS connection per
    // request) trusts both.
    let pki = new_pki();
    let both = dir.path().join("both-cas.pem");
    std::fs::write(
        &both,
        std::fs::read_to_string(&ca).unwrap()
            + &std::fs::read_to_string(pki.path("root2.crt")).unwrap(),
    )
    .unwrap();

    // A component, a c2s session and an event channel, all connected before the reload.
    let mut bridge = component::connect(node.addr("component"), &ca, "bridge.localhost", &secret)
        .await
        .expect("the bridge connects");
    let (mut alice, jid) = client::login(node.addr("c2s"), &ca, "alice@localhost", &password).await;
    let mut desk = client::raw_session(
        node.addr("c2s"),
        &ca,
        "localhost",
        "alice@localhost",
        &password,
        "desk",
    )
    .await;
    let https = Https::new(node.addr("https"), &both);
    let auth = basic("alice@localhost", &password);
    let mut channel = EventChannel::open(&https, &auth, &channel_body("ops-set", ""))
        .await
        .unwrap_or_else(|r| panic!("channel refused: {r:?}"));
    let subscribed = https
        .request(
            hyper::Method::POST,
            &format!("{EVENTS}/user/alice@localhost"),
            &[("authorization", &auth), ("content-type", "application/xml")],
            Some("<Subscription xmlns=\"http://schema.broadsoft.com/xsi\"><event>Do Not Disturb</event><expires>3600</expires><channelSetId>ops-set</channelSetId><applicationId>ops</applicationId></Subscription>"),
        )
        .await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");

    // The CLI sees them.
    let sessions = node.cli(&["sessions", "list"]);
    assert_eq!(sessions.code, 0, "{sessions:?}");
    assert!(sessions.stdout.contains(&jid.to_string()), "{sessions:?}");
    assert!(sessions.stdout.contains("c2s"), "{sessions:?}");
    let components = node.cli(&["components", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&components.stdout).unwrap();
    assert_eq!(listed[0]["name"], "bridge.localhost", "{components:?}");
    let channels = node.cli(&["channels", "list"]);
    assert!(channels.stdout.contains(&channel.id), "{channels:?}");
    assert!(channels.stdout.contains("ops-set"), "{channels:?}");

    // SIGHUP with a configuration naming a new certificate.
    std::fs::write(
        dir.path().join("bridgehead.toml"),
        configured_tls(&pki, "watch_secs = 0"),
    )
    .unwrap();
    node.signal("HUP");
    assert!(
        node.wait_log("configuration reloaded", Duration::from_secs(20))
            .await,
        "{}",
        node.log_text()
    );
    let renewed = fingerprint_of(&pki.path("server.crt"));
    for (listener, starttls) in [("https", false), ("component", false), ("c2s", true)] {
        assert_eq!(
            served_fingerprint(node.addr(listener), starttls),
            renewed,
            "{listener} serves the new certificate"
        );
    }
    // The CTI listener presents it too.
    assert_eq!(served_fingerprint(node.addr("cti"), false), renewed);

    // Everyone is still there: the bridge reaches alice, alice's DND reaches her channel.
    bridge
        .send(&message(
            "bridge.localhost",
            &jid.to_string(),
            "after the reload",
        ))
        .await
        .unwrap();
    let body = client::wait_for(&mut alice, |stanza| match stanza {
        Stanza::Message(m) => m.bodies.values().next().cloned(),
        _ => None,
    })
    .await;
    assert_eq!(body, "after the reload");
    let dnd = https
        .put_xml(
            "/com.broadsoft.xsi-actions/v2.0/user/alice@localhost/services/DoNotDisturb",
            &auth,
            "<DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\"><active>true</active></DoNotDisturb>",
        )
        .await;
    assert_eq!(dnd.status, 200, "{dnd:?}");
    // (The subscription's first event is the state it found: inactive.)
    loop {
        let document = channel.next().await.expect("the channel still streams");
        if document.contains("DoNotDisturbEvent") && document.contains("<xsi:active>true") {
            break;
        }
    }

    // A reload with a certificate that fails the checks changes nothing and says why.
    pki.sign(
        "wrong",
        "elsewhere.example",
        Key::Ec,
        "root2",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:elsewhere.example",
    );
    std::fs::copy(pki.path("wrong.crt"), pki.path("server.crt")).unwrap();
    std::fs::copy(pki.path("wrong.key"), pki.path("server.key")).unwrap();
    let refused = node.cli(&["reload"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("localhost"),
        "the reason names the missing name: {refused:?}"
    );
    assert_eq!(served_fingerprint(node.addr("https"), false), renewed);

    // A listener address change needs a restart, and says so.
    let moved = configured_tls(&pki, "watch_secs = 0").replace(
        "[http]\nlisten = \"127.0.0.1:0\"",
        "[http]\nlisten = \"127.0.0.1:1\"",
    );
    std::fs::write(dir.path().join("bridgehead.toml"), moved).unwrap();
    let refused = node.cli(&["reload"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("needs a restart: http.listen"),
        "{refused:?}"
    );

    // Kick: the session, the component and the channel end with the protocol's own close.
    let kicked = node.cli(&["kick", "session", "alice@localhost/desk"]);
    assert_eq!(kicked.code, 0, "{kicked:?}");
    let error = client::raw_next(&mut desk).await.expect("a stream error");
    assert_eq!(
        stream_error(&error).as_deref(),
        Some("policy-violation"),
        "{error:?}"
    );
    let kicked = node.cli(&["kick", "component", "bridge.localhost"]);
    assert_eq!(kicked.code, 0, "{kicked:?}");
    let error = component::next(&mut bridge).await.expect("a stream error");
    assert_eq!(stream_error(&error).as_deref(), Some("policy-violation"));
    let kicked = node.cli(&["kick", "channel", &channel.id]);
    assert_eq!(kicked.code, 0, "{kicked:?}");
    let terminated = channel.next().await.expect("the termination event");
    assert!(
        terminated.contains("ChannelTerminatedEvent"),
        "{terminated}"
    );
    assert!(
        wait_until_async(Duration::from_secs(10), || async {
            let listed = node.cli(&["components", "list", "--json"]);
            listed.stdout.trim() == "[]"
        })
        .await
    );
    let unknown = node.cli(&["kick", "session", "nobody@localhost/x"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(
        unknown.stderr.contains("no connected session"),
        "{unknown:?}"
    );

    let status = node.cli(&["status", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        status["certificate"]["sha256"]
            .as_str()
            .unwrap()
            .replace(':', ""),
        renewed.replace(':', "")
    );
    assert_eq!(status["certificate_status"], "green");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_replaced_on_disk_is_picked_up_by_the_watch() {
    let first = new_pki();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bridgehead.toml"),
        configured_tls(&first, "watch_secs = 1"),
    )
    .unwrap();
    let node = Node::start(dir.path()).await;
    let before = fingerprint_of(&first.path("server.crt"));
    assert_eq!(served_fingerprint(node.addr("https"), false), before);

    // A renewal from the same CA, written over the files the way certbot replaces them.
    let renewal = OpenSsl::new();
    std::fs::copy(first.path("root2.crt"), renewal.path("root2.crt")).unwrap();
    std::fs::copy(first.path("root2.key"), renewal.path("root2.key")).unwrap();
    sign_server(&renewal);
    let after = fingerprint_of(&renewal.path("server.crt"));
    assert_ne!(before, after);
    for file in ["server.key", "server.crt"] {
        let staged = first.path(&format!("{file}.new"));
        std::fs::copy(renewal.path(file), &staged).unwrap();
        std::fs::rename(&staged, first.path(file)).unwrap();
    }
    assert!(
        wait_until_async(Duration::from_secs(20), || async {
            served_fingerprint(node.addr("https"), false) == after
        })
        .await,
        "the renewed certificate is served: {}",
        node.log_text()
    );
    assert!(node.count("certificates reloaded") >= 1);
}

/// A fake service manager: the datagrams the node sends to `NOTIFY_SOCKET`.
struct Notifications {
    socket: std::os::unix::net::UnixDatagram,
    seen: String,
}

impl Notifications {
    fn bind(path: &Path) -> Self {
        let socket = std::os::unix::net::UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Notifications {
            socket,
            seen: String::new(),
        }
    }

    /// Reads datagrams until one holds `line` (at most 20 s).
    fn wait_for(&mut self, line: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut buffer = [0u8; 4096];
        while std::time::Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
                self.seen.push_str(&message);
                if message.lines().any(|l| l == line) {
                    return true;
                }
            }
        }
        false
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn systemd_hears_ready_reloading_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bridgehead.toml"), ephemeral_config("")).unwrap();
    let socket = dir.path().join("notify.sock");
    let mut manager = Notifications::bind(&socket);
    let node = Node::start_with(
        dir.path(),
        &[
            ("NOTIFY_SOCKET", socket.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    )
    .await;
    assert!(manager.wait_for("READY=1"), "{}", manager.seen);
    assert!(manager.wait_for("WATCHDOG=1"), "{}", manager.seen);
    node.signal("HUP");
    assert!(manager.wait_for("RELOADING=1"), "{}", manager.seen);
    assert!(manager.seen.contains("MONOTONIC_USEC="), "{}", manager.seen);
    assert!(manager.wait_for("READY=1"), "{}", manager.seen);
    node.signal("TERM");
    assert!(manager.wait_for("STOPPING=1"), "{}", manager.seen);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_wants_its_token_when_one_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), "s3cret-admin-token\n").unwrap();
    std::fs::write(
        dir.path().join("bridgehead.toml"),
        ephemeral_config("").replace(
            "[admin]\nlisten = \"127.0.0.1:0\"\n",
            "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n",
        ),
    )
    .unwrap();
    let node = Node::start(dir.path()).await;
    let admin = node.addr("admin");
    let (status, body) = crate::support::server::http_get(admin, "/api/node").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Bearer"), "{body}");
    // /healthz, /metrics and the page need no token.
    for path in ["/healthz", "/metrics", "/"] {
        assert_eq!(
            crate::support::server::http_get(admin, path).await.0,
            200,
            "{path}"
        );
    }
    // The CLI reads the token from the configuration.
    let url = format!("http://{admin}");
    let status = crate::support::run_in(
        dir.path(),
        &["status", "-c", "bridgehead.toml", "--admin-url", &url],
    );
    assert_eq!(status.code, 0, "{status:?}");
    assert!(status.stdout.contains("certificate GREEN"), "{status:?}");
    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "nope\n").unwrap();
    let refused = node.cli(&["status", "--token-file", wrong.to_str().unwrap()]);
    assert_eq!(refused.code, 1, "{refused:?}");

    // A browser on another site, or a rebound DNS name, is kept out even with the token.
    for (name, value) in [
        ("host", "evil.example:80"),
        ("origin", "http://evil.example"),
    ] {
        let headers = [
            ("authorization", "Bearer s3cret-admin-token"),
            (name, value),
        ];
        let refused =
            crate::support::server::admin_call(admin, hyper::Method::GET, "/api/node", &headers)
                .await;
        assert_eq!(refused, 403, "{name}: {value}");
    }

    // Off loopback the token is required.
    std::fs::write(
        dir.path().join("open.toml"),
        "[admin]\nlisten = \"0.0.0.0:9999\"\n",
    )
    .unwrap();
    let check = crate::support::run_in(
        dir.path(),
        &["check-config", "--syntax-only", "-c", "open.toml"],
    );
    assert_eq!(check.code, 2, "{check:?}");
    assert!(check.stderr.contains("admin.token_file"), "{check:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_changes_the_cti_allow_list_for_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let config = |allowed: &str| {
        ephemeral_config("").replace(
            "[cti]\nlisten = \"127.0.0.1:0\"\n",
            &format!("[cti]\nlisten = \"127.0.0.1:0\"\nallowed_client_ids = [\"{allowed}\"]\n"),
        )
    };
    std::fs::write(
        dir.path().join("bridgehead.toml"),
        config("cti-client.localhost"),
    )
    .unwrap();
    let node = Node::start(dir.path()).await;
    let pki = dir.path().join("data/pki");
    let tls = || {
        crate::cti::client(
            &pki.join("ca.crt"),
            &pki.join("cti-client-chain.pem"),
            &pki.join("cti-client.key"),
        )
    };
    assert!(
        crate::cti::served_for(node.addr("cti"), tls(), "alice@localhost").await,
        "admitted at first"
    );

    std::fs::write(
        dir.path().join("bridgehead.toml"),
        config("other-app.example.com"),
    )
    .unwrap();
    let reload = node.cli(&["reload"]);
    assert_eq!(reload.code, 0, "{reload:?}");
    assert!(reload.stdout.contains("cti"), "{reload:?}");
    assert!(
        !crate::cti::served_for(node.addr("cti"), tls(), "alice@localhost").await,
        "refused after the reload"
    );
    let (_, refusals) = crate::support::server::http_get(node.addr("admin"), "/api/refusals").await;
    assert!(refusals.contains("\"kind\":\"cti\""), "{refusals}");

    std::fs::write(
        dir.path().join("bridgehead.toml"),
        config("cti-client.localhost"),
    )
    .unwrap();
    assert_eq!(node.cli(&["reload"]).code, 0);
    assert!(
        crate::cti::served_for(node.addr("cti"), tls(), "alice@localhost").await,
        "admitted again"
    );
}
