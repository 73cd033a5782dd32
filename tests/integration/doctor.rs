//! `bridgehead doctor` against real servers found through a loopback DNS responder: real
//! Bridgehead nodes, `openssl s_server` with wrong certificates, a listener that never
//! speaks TLS, and two nodes behind a real HAProxy without affinity.

use std::path::Path;

use serde_json::Value;

use crate::support::dns::{a, dns_server, srv};
use crate::support::node::{ephemeral_config_with, Node};
use crate::support::openssl::xmpp_pki;
use crate::support::peers::{haproxy_round_robin, s_server, silent_listener};
use crate::support::{run_in, run_with_stdin, Run};

/// A node of the domain example.com on host xmpp.example.com, demo data included.
async fn node(dir: &Path, node_id: &str) -> Node {
    let server =
        format!("domain = \"example.com\"\nfqdn = \"xmpp.example.com\"\nnode_id = \"{node_id}\"\n");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("bridgehead.toml"),
        ephemeral_config_with(&server, ""),
    )
    .unwrap();
    Node::start(dir).await
}

/// The demo password and component secret of `node`, written to files in its directory.
fn credential_files(node: &Node) -> (String, String) {
    let (password, secret) = node.demo();
    std::fs::write(node.dir.join("password"), format!("{password}\n")).unwrap();
    std::fs::write(node.dir.join("secret"), format!("{secret}\n")).unwrap();
    std::fs::write(node.dir.join("wrong-secret"), "not-the-secret\n").unwrap();
    (
        node.dir.join("password").display().to_string(),
        node.dir.join("secret").display().to_string(),
    )
}

/// Runs `doctor` with `args` off the runtime, so that the DNS responder keeps answering.
async fn run_doctor(dir: &Path, args: Vec<String>) -> Run {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut all = vec!["doctor"];
        all.extend(args.iter().map(String::as_str));
        run_in(&dir, &all)
    })
    .await
    .unwrap()
}

/// `doctor --json` with `args`: the run and its report.
async fn doctor(dir: &Path, args: &[&str]) -> (Run, Value) {
    let mut all = vec!["--json".to_owned()];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    let run = run_doctor(dir, all).await;
    let report = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}): {run:?}"));
    (run, report)
}

/// The line of `interface` whose target contains `target`.
fn line<'a>(report: &'a Value, interface: &str, target: &str) -> &'a Value {
    report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["interface"] == interface && l["target"].as_str().unwrap().contains(target))
        .unwrap_or_else(|| panic!("no {interface} line for {target}: {report:#}"))
}

/// A JSON array of strings, one per line.
fn joined(list: &Value) -> String {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn problems(line: &Value) -> String {
    joined(&line["problems"])
}

fn recommendations(report: &Value) -> String {
    joined(&report["recommendations"])
}

#[tokio::test]
async fn a_default_server_is_all_green() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir.path().join("n1"), "node1").await;
    let (password, secret) = credential_files(&node);
    let dns = dns_server(vec![
        srv(
            "_xmpp-component._tcp.example.com.",
            0,
            100,
            node.addr("component").port(),
            "xmpp.example.com.",
        ),
        srv(
            "_xmpp-client._tcp.example.com.",
            0,
            100,
            node.addr("c2s").port(),
            "xmpp.example.com.",
        ),
        srv(
            "_xsi-client._tcp.example.com.",
            0,
            100,
            node.addr("https").port(),
            "xmpp.example.com.",
        ),
        a("xmpp.example.com.", [127, 0, 0, 1]),
    ])
    .await
    .to_string();
    let ca = node.ca().display().to_string();
    let (run, report) = doctor(
        &node.dir,
        &[
            "--domain",
            "example.com",
            "--dns",
            &dns,
            "--trust",
            &ca,
            "--component",
            "bridge.example.com",
            "--secret-file",
            &secret,
            "--user",
            "alice@example.com",
            "--password-file",
            &password,
            "--heartbeats",
            "3",
            "--heartbeat-every-ms",
            "200",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{report:#}");
    assert_eq!(report["verdict"], "green");
    assert!(report["recommendations"].as_array().unwrap().is_empty());
    for service in ["_xmpp-component", "_xmpp-client", "_xsi-client"] {
        assert_eq!(line(&report, "dns", service)["verdict"], "green");
    }
    assert_eq!(line(&report, "dns", "_xmpps-client")["verdict"], "skipped");
    let component = line(&report, "component", "xmpp.example.com");
    assert_eq!(component["verdict"], "green", "{component:#}");
    assert!(component["figures"]["handshake_ms"].as_f64().is_some());
    assert!(component["figures"]["connect_ms"].as_f64().is_some());
    assert!(component["figures"]["days_left"].as_f64().unwrap() > 30.0);
    let c2s = line(&report, "c2s", "xmpp.example.com");
    assert_eq!(c2s["verdict"], "green");
    assert!(c2s["summary"].as_str().unwrap().contains("SCRAM-SHA-256"));
    let actions = line(&report, "xsi-actions", "xmpp.example.com");
    assert_eq!(actions["verdict"], "green");
    assert!(actions["figures"]["profile_ms"].as_f64().is_some());
    let events = line(&report, "xsi-events", "xmpp.example.com");
    assert_eq!(events["verdict"], "green", "{events:#}");
    assert!(events["summary"]
        .as_str()
        .unwrap()
        .contains("all answered by node node1"));
    // Nothing else talked to the node but the doctor: its test channel is gone again.
    let channels = node.cli(&["channels", "list", "--json"]);
    assert_eq!(channels.code, 0, "{channels:?}");
    assert_eq!(channels.stdout.trim(), "[]");
}

#[tokio::test]
async fn a_wrong_srv_port_and_a_wrong_secret_are_red_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir.path().join("n1"), "node1").await;
    credential_files(&node);
    let component = node.addr("component").port().to_string();
    // The component record points at the c2s port: TLS from the first byte meets XMPP.
    let dns = dns_server(vec![
        srv(
            "_xmpp-component._tcp.example.com.",
            0,
            100,
            node.addr("c2s").port(),
            "xmpp.example.com.",
        ),
        a("xmpp.example.com.", [127, 0, 0, 1]),
    ])
    .await
    .to_string();
    let ca = node.ca().display().to_string();
    let target = format!("component=xmpp.example.com:{component}");
    let args = [
        "--domain",
        "example.com",
        "--dns",
        &dns,
        "--service",
        "component",
        "--target",
        &target,
        "--trust",
        &ca,
        "--component",
        "bridge.example.com",
        "--secret-file",
        "wrong-secret",
    ];
    let (run, report) = doctor(&node.dir, &args).await;
    assert_eq!(run.code, 2, "{report:#}");
    let wrong_port = line(
        &report,
        "component",
        &format!(":{}", node.addr("c2s").port()),
    );
    assert_eq!(wrong_port["verdict"], "red");
    assert!(
        problems(wrong_port).contains("TLS handshake"),
        "{wrong_port:#}"
    );
    let wrong_secret = line(&report, "component", &format!(":{component}"));
    assert_eq!(wrong_secret["verdict"], "red");
    assert!(
        problems(wrong_secret).contains("not-authorized"),
        "{wrong_secret:#}"
    );
    let advice = recommendations(&report);
    assert!(
        advice.contains("not with TLS") && advice.contains("_xmpp-component._tcp.example.com"),
        "{advice}"
    );
    assert!(
        advice.contains("refused the secret for bridge.example.com"),
        "{advice}"
    );

    // The same in words, for a terminal.
    let text = run_doctor(&node.dir, args.iter().map(|s| (*s).to_owned()).collect()).await;
    assert_eq!(text.code, 2);
    assert!(
        text.stdout.contains("bridgehead doctor: example.com: RED"),
        "{text:?}"
    );
    assert!(
        text.stdout.contains("\nRecommendations:\n  1. "),
        "{text:?}"
    );
    assert!(text.stdout.contains("  2. "), "{text:?}");
}

#[tokio::test]
async fn wrong_certificates_and_a_silent_port_are_red() {
    let pki = xmpp_pki();
    // A certificate that expired years ago, from the same CA.
    let issued = run_in(
        pki.dir(),
        &[
            "pki",
            "issue",
            "server",
            "--name",
            "xsp.example.com",
            "--issuer-cert",
            "int.crt",
            "--issuer-key",
            "int.key",
            "--not-before",
            "2020-01-01T00:00:00Z",
            "--days",
            "30",
            "--out",
            "expired",
        ],
    );
    assert_eq!(issued.code, 0, "{issued:?}");
    // The XMPP server's certificate names xmpp.example.com and host1.example.com, not the
    // XMPP domain example.com.
    let (_xmpp, xmpp_port) = s_server(
        pki.dir(),
        &pki.path("server.crt"),
        &pki.path("server.key"),
        Some(&pki.path("int.crt")),
    );
    let (_xsp, xsp_port) = s_server(
        pki.dir(),
        &pki.path("expired.crt"),
        &pki.path("expired.key"),
        Some(&pki.path("int.crt")),
    );
    let silent = silent_listener().await;
    let dns = dns_server(vec![
        srv(
            "_xmpp-component._tcp.example.com.",
            0,
            100,
            xmpp_port,
            "host1.example.com.",
        ),
        srv(
            "_xsi-client._tcp.example.com.",
            0,
            100,
            xsp_port,
            "xsp.example.com.",
        ),
        srv(
            "_xsi-client._tcp.example.com.",
            1,
            100,
            silent,
            "hang.example.com.",
        ),
        a("host1.example.com.", [127, 0, 0, 1]),
        a("xsp.example.com.", [127, 0, 0, 1]),
        a("hang.example.com.", [127, 0, 0, 1]),
    ])
    .await
    .to_string();
    let root = pki.p("root.crt");
    let (run, report) = doctor(
        pki.dir(),
        &[
            "--domain",
            "example.com",
            "--dns",
            &dns,
            "--service",
            "component",
            "--service",
            "xsi",
            "--trust",
            &root,
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{report:#}");
    let no_domain = line(&report, "component", "host1.example.com");
    assert_eq!(no_domain["verdict"], "red");
    assert!(problems(no_domain).contains("example.com"), "{no_domain:#}");
    let expired = line(&report, "xsi-actions", "xsp.example.com");
    assert_eq!(expired["verdict"], "red");
    assert!(problems(expired).contains("expired"), "{expired:#}");
    assert!(expired["figures"]["days_left"].as_f64().unwrap() < 0.0);
    let hung = line(&report, "xsi-actions", "hang.example.com");
    assert_eq!(hung["verdict"], "red");
    assert!(
        problems(hung).contains("accepts TCP but the TLS handshake got no answer within 2s"),
        "{hung:#}"
    );
    let advice = recommendations(&report);
    assert!(
        advice.contains("both the XMPP domain example.com and the server's FQDN host1.example.com"),
        "{advice}"
    );
    assert!(
        advice.contains("Renew the certificate served at xsp.example.com"),
        "{advice}"
    );
    assert!(advice.contains("never completes a handshake"), "{advice}");
    // Bounded: the silent port costs its 2 s, not a hang.
    assert!(
        report["elapsed_ms"].as_f64().unwrap() < 15_000.0,
        "{report:#}"
    );
}

#[tokio::test]
async fn heartbeats_through_a_load_balancer_without_affinity_are_red() {
    let dir = tempfile::tempdir().unwrap();
    let node1 = node(&dir.path().join("n1"), "node1").await;
    let node2 = node(&dir.path().join("n2"), "node2").await;
    let (password, _) = credential_files(&node1);
    // The same user with the same password on both nodes, as a farm has.
    let (alice, _) = node1.demo();
    let set = run_with_stdin(
        &node2.dir,
        &[
            "user",
            "passwd",
            "alice@example.com",
            "--password-stdin",
            "-c",
            "bridgehead.toml",
        ],
        &format!("{alice}\n"),
    );
    assert_eq!(set.code, 0, "{set:?}");
    let trust = dir.path().join("trust.pem");
    std::fs::write(
        &trust,
        [node1.ca(), node2.ca()]
            .iter()
            .map(|ca| std::fs::read_to_string(ca).unwrap())
            .collect::<String>(),
    )
    .unwrap();
    let (_haproxy, port) =
        haproxy_round_robin(dir.path(), &[node1.addr("https"), node2.addr("https")]).await;
    let dns = dns_server(vec![
        srv(
            "_xsi-client._tcp.example.com.",
            0,
            100,
            port,
            "xmpp.example.com.",
        ),
        a("xmpp.example.com.", [127, 0, 0, 1]),
    ])
    .await
    .to_string();
    let trust = trust.display().to_string();
    let (run, report) = doctor(
        dir.path(),
        &[
            "--domain",
            "example.com",
            "--dns",
            &dns,
            "--service",
            "xsi",
            "--trust",
            &trust,
            "--user",
            "alice@example.com",
            "--password-file",
            &password,
            "--heartbeats",
            "4",
            "--heartbeat-every-ms",
            "100",
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{report:#}");
    assert_eq!(
        line(&report, "xsi-actions", "xmpp.example.com")["verdict"],
        "green"
    );
    let events = line(&report, "xsi-events", "xmpp.example.com");
    assert_eq!(events["verdict"], "red", "{events:#}");
    let why = problems(events);
    assert!(
        why.contains("reached node node") && why.contains("that created the channel"),
        "{why}"
    );
    assert!(why.contains("does not keep affinity"), "{why}");
    assert!(
        recommendations(&report).contains("keep session affinity on the bridgehead-node cookie"),
        "{report:#}"
    );
}
