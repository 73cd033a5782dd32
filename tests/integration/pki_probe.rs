//! `bridgehead pki probe`: the binary connects to a running server's listeners and judges
//! the chain each one actually sends (c2s with XMPP STARTTLS, components and HTTPS with
//! direct TLS, CTI with a client certificate), with the same checks and exit codes as
//! `pki verify`.

use std::net::SocketAddr;

use crate::support::server::Setup;

/// Runs `pki probe` with `args`: exit code, and standard output then standard error.
async fn probe(args: &[&str]) -> (i32, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_bridgehead"))
        .args(["pki", "probe"])
        .args(args)
        .env("BRIDGEHEAD_LOG", "warn")
        .output()
        .await
        .expect("run bridgehead");
    let mut out = String::from_utf8_lossy(&output.stdout).into_owned();
    out.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), out)
}

fn target(addr: Option<SocketAddr>) -> String {
    format!("127.0.0.1:{}", addr.expect("listener").port())
}

#[tokio::test]
async fn every_listener_serves_a_chain_that_passes_and_a_wrong_name_fails() {
    let setup = Setup::builder().start().await;
    let addrs = &setup.server.addrs;
    let ca = setup.ca.to_str().unwrap().to_owned();
    let pki = setup.dir.path().join("pki");
    let (cti_cert, cti_key) = (
        pki.join("cti-client-chain.pem")
            .to_str()
            .unwrap()
            .to_owned(),
        pki.join("cti-client.key").to_str().unwrap().to_owned(),
    );
    let c2s = target(addrs.client);
    let component = target(addrs.component);
    let https = target(addrs.https);
    let cti = target(addrs.cti);
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "c2s",
            vec![&c2s, "--starttls", "xmpp", "--xmpp-domain", "localhost"],
            "TLSv1_3",
        ),
        (
            "component",
            vec![&component, "--xmpp-component", "--server-name", "localhost"],
            "TLSv1_3",
        ),
        (
            "https",
            vec![&https, "--https", "--server-name", "localhost"],
            "ALPN h2",
        ),
        (
            "cti",
            vec![
                &cti,
                "--https",
                "--server-name",
                "localhost",
                "--client-cert",
                &cti_cert,
                "--client-key",
                &cti_key,
            ],
            "TLSv1_3",
        ),
    ];
    for (listener, args, expected) in cases {
        let mut args = args.clone();
        args.extend(["--trust", &ca, "--name", "localhost"]);
        let (code, out) = probe(&args).await;
        assert_eq!(code, 0, "{listener}: {out}");
        assert!(out.contains("OK   tls"), "{listener}: {out}");
        assert!(out.contains(expected), "{listener}: {out}");
        assert!(out.contains("OK   chain"), "{listener}: {out}");
        assert_eq!(
            out.contains("asks for a client certificate; one was given"),
            listener == "cti",
            "{listener}: {out}"
        );
    }

    // Without its client certificate the CTI port ends the session after its chain was
    // sent: the chain is still judged.
    let (code, out) = probe(&[
        &cti,
        "--server-name",
        "localhost",
        "--trust",
        &ca,
        "--name",
        "localhost",
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the server asks for a client certificate; none was given"),
        "{out}"
    );

    // The chain does not name what the client asked for: FAIL (2), in words and in JSON.
    let mut wrong_name = vec![
        https.as_str(),
        "--server-name",
        "localhost",
        "--trust",
        &ca,
        "--name",
        "xsi.example.com",
    ];
    let (code, out) = probe(&wrong_name).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("FAIL name"), "{out}");
    assert!(out.contains("xsi.example.com"), "{out}");
    wrong_name.push("--json");
    let (code, json) = probe(&wrong_name).await;
    assert_eq!(code, 2);
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(report["status"], "fail");
    assert!(
        report["chain"][0]["source"]
            .as_str()
            .unwrap()
            .ends_with("(served) #1"),
        "{json}"
    );

    // STARTTLS where there is none, and a port nobody listens on: FAIL, with the step.
    let (code, out) = probe(&[&https, "--starttls", "xmpp", "--timeout-secs", "3"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("FAIL connect"), "{out}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (code, out) = probe(&[&format!("127.0.0.1:{port}")]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("connect: "), "{out}");
    setup.server.stop().await;
}

/// A misconfigured server (`openssl s_server` serving its leaf without the intermediate):
/// the probe fails the chain and says which issuer is missing and where to get it.
#[tokio::test]
async fn a_server_that_omits_its_intermediate_is_reported() {
    let pki = crate::support::openssl::xmpp_pki();
    // s_server picks its own port and says which (no free-port race under load).
    let (server, port) = crate::support::peers::s_server(
        pki.dir(),
        &pki.path("server.crt"),
        &pki.path("server.key"),
        None,
    );
    let trust = pki.path("root.crt");
    let (code, out) = probe(&[
        &format!("127.0.0.1:{port}"),
        "--server-name",
        "xmpp.example.com",
        "--trust",
        trust.to_str().unwrap(),
        "--name",
        "xmpp.example.com",
    ])
    .await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("FAIL chain"), "{out}");
    assert!(out.contains("missing issuer"), "{out}");
    assert!(
        out.contains("http://pki.example.com/int.crt"),
        "the AIA URL: {out}"
    );
    drop(server);
}
