//! `serve`: the embedded default, start-up certificate checks, and a clean stop.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::openssl::{xmpp_pki, Key};
use crate::support::server::{embedded_config, http_get, TestServer};
use crate::support::{bin, run_in};

#[tokio::test]
async fn the_embedded_default_starts_twice_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(embedded_config(dir.path())).await;
    let (status, body) = http_get(server.addrs.admin.unwrap(), "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _) = http_get(server.addrs.admin.unwrap(), "/nope").await;
    assert_eq!(status, 404);
    let users = server.store.users().await.unwrap();
    let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["alice@localhost", "bob@localhost"]);
    server.stop().await;

    let credentials = std::fs::read_to_string(dir.path().join("demo-credentials.toml")).unwrap();
    let server_key = std::fs::read(dir.path().join("pki/server.key")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("demo-credentials.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let parsed: toml::Value = toml::from_str(&credentials).unwrap();
    let alice_password = parsed["users"][0]["password"].as_str().unwrap().to_owned();
    assert_eq!(
        parsed["components"][0]["name"].as_str(),
        Some("bridge.localhost")
    );

    let server = TestServer::start(embedded_config(dir.path())).await;
    let (status, _) = http_get(server.addrs.admin.unwrap(), "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("demo-credentials.toml")).unwrap(),
        credentials
    );
    assert_eq!(
        std::fs::read(dir.path().join("pki/server.key")).unwrap(),
        server_key
    );
    let alice = server.store.user("alice@localhost").await.unwrap().unwrap();
    assert!(
        alice.verifiers.verify_plain(&alice_password),
        "the demo password works"
    );
    assert_eq!(server.store.components().await.unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn serve_uses_a_configured_certificate_that_passes_the_checks() {
    let pki = xmpp_pki();
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    config.server.domain = "xmpp.example.com".into();
    config.server.fqdn = Some("host1.example.com".into());
    config.tls.cert_file = Some(pki.path("fullchain.pem"));
    config.tls.key_file = Some(pki.path("server.key"));
    config.tls.trust_file = Some(pki.path("root.crt"));
    config.validate().unwrap();
    let server = TestServer::start(config).await;
    assert_eq!(
        http_get(server.addrs.admin.unwrap(), "/healthz").await.0,
        200
    );
    assert!(
        !dir.path().join("pki").exists(),
        "no development PKI with a configured certificate"
    );
    server.stop().await;
}

fn write_config(
    dir: &std::path::Path,
    pki: &crate::support::openssl::OpenSsl,
    key: &str,
    fqdn: &str,
) {
    std::fs::write(
        dir.join("bridgehead.toml"),
        format!(
            "[server]\ndomain = \"xmpp.example.com\"\nfqdn = \"{fqdn}\"\ndata_dir = \"data\"\n\
             [tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\ntrust_file = \"{}\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[xmpp]\ncomponent_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
            pki.p("fullchain.pem"),
            pki.p(key),
            pki.p("root.crt")
        ),
    )
    .unwrap();
}

#[test]
fn serve_refuses_a_key_that_does_not_match() {
    let pki = xmpp_pki();
    pki.key("other", Key::Ec);
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &pki, "other.key", "host1.example.com");
    let run = run_in(dir.path(), &["serve", "-c", "bridgehead.toml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("the private key does not match the certificate CN=xmpp.example.com"),
        "{run:?}"
    );
}

#[test]
fn serve_refuses_a_certificate_without_the_host_fqdn() {
    let pki = xmpp_pki();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &pki, "server.key", "host9.example.com");
    let run = run_in(dir.path(), &["serve", "-c", "bridgehead.toml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("host FQDN host9.example.com is not covered"),
        "{run:?}"
    );
    let run = run_in(dir.path(), &["check-config", "-c", "bridgehead.toml"]);
    assert_eq!(run.code, 2, "an unusable certificate is an error: {run:?}");
    assert!(
        run.stderr
            .contains("host FQDN host9.example.com is not covered"),
        "{run:?}"
    );
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bridgehead.toml"),
        // Every listener on an ephemeral port: the README test holds the default ones.
        "[server]\ndemo_data = true\n[admin]\nlisten = \"127.0.0.1:0\"\n[xmpp]\ncomponent_listen = \"127.0.0.1:0\"\nclient_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n[cti]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut child = bin()
        .current_dir(dir.path())
        .env("BRIDGEHEAD_LOG", "info")
        .args(["serve", "-c", "bridgehead.toml"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = String::new();
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        log.push_str(&line);
        log.push('\n');
        if line.contains("listening") {
            break;
        }
    }
    assert!(log.contains("listening"), "{log}");
    assert!(
        log.contains("data/pki/ca.crt"),
        "the log says where the dev CA is: {log}"
    );
    let credentials =
        std::fs::read_to_string(dir.path().join("data/demo-credentials.toml")).unwrap();
    let parsed: toml::Value = toml::from_str(&credentials).unwrap();
    let password = parsed["users"][0]["password"].as_str().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    for line in lines.map_while(Result::ok) {
        log.push_str(&line);
        log.push('\n');
    }
    assert!(status.success(), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains(password), "credentials never reach the log");
}
