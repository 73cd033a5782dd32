//! The user, component and check-config commands, and `--help` everywhere.

use crate::support::{run_in, run_with_stdin};

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["check-config", "--help"],
        vec!["pki", "verify", "--help"],
        vec!["pki", "inspect", "--help"],
        vec!["pki", "issue", "server", "--help"],
        vec!["user", "add", "--help"],
        vec!["component", "add", "--help"],
    ] {
        let run = run_in(dir.path(), &args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(run.stdout.contains("Usage:"), "{args:?}: {run:?}");
    }
    let run = run_in(dir.path(), &["pki", "frobnicate"]);
    assert_eq!(run.code, 3, "{run:?}");
}

#[test]
fn users_are_added_listed_changed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = run_with_stdin(
        d,
        &[
            "user",
            "add",
            "carol@example.com",
            "--first-name",
            "Carol",
            "--last-name",
            "Chen",
            "--extension",
            "200",
            "--enterprise",
            "acme",
            "--group",
            "sales",
            "--role",
            "group-admin",
            "--password-stdin",
            "--data-dir",
            "data",
        ],
        "pässword\n",
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = run_with_stdin(
        d,
        &[
            "user",
            "add",
            "carol@example.com",
            "--password-stdin",
            "--data-dir",
            "data",
        ],
        "x\n",
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("already exists"), "{run:?}");
    let run = run_in(d, &["user", "add", "dave", "--data-dir", "data"]);
    assert_eq!(run.code, 3, "{run:?}");

    let run = run_in(d, &["user", "list", "--json", "--data-dir", "data"]);
    let users: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(users[0]["id"], "carol@example.com");
    assert_eq!(users[0]["group"], "sales");
    assert_eq!(users[0]["role"], "group-admin");
    assert!(!run.stdout.contains("verifier"), "no secrets in listings");

    std::fs::write(d.join("pw"), "new password\n").unwrap();
    let run = run_in(
        d,
        &[
            "user",
            "passwd",
            "carol@example.com",
            "--password-file",
            "pw",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");

    let device = |args: &[&str]| {
        let mut all = vec!["device"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--data-dir", "data"]);
        run_in(d, &all)
    };
    let run = device(&["add", "carol@example.com", "carol-pc"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = device(&["add", "carol@example.com", "carol-pc"]);
    assert_eq!(run.code, 1, "a second device of that name: {run:?}");
    let run = device(&["add", "nobody@example.com", "x"]);
    assert_eq!(run.code, 1, "an unknown user: {run:?}");
    let run = device(&["list", "carol@example.com"]);
    assert!(
        run.stdout.contains("carol-pc") && run.stdout.contains("carol-pc@example.com"),
        "{run:?}"
    );
    let run = device(&["remove", "carol@example.com", "carol-pc"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = device(&["remove", "carol@example.com", "carol-pc"]);
    assert_eq!(run.code, 1, "{run:?}");

    let run = run_in(
        d,
        &["user", "remove", "carol@example.com", "--data-dir", "data"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = run_in(
        d,
        &["user", "remove", "carol@example.com", "--data-dir", "data"],
    );
    assert_eq!(run.code, 1, "{run:?}");
}

#[test]
fn components_come_from_the_store_and_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bridgehead.toml"),
        "[server]\ndata_dir = \"data\"\n[[components]]\nname = \"bridge1.example.com\"\nsecret = \"s\"\n",
    )
    .unwrap();
    let run = run_in(
        d,
        &[
            "component",
            "add",
            "bridge2.example.com",
            "--max-connections",
            "3",
            "--on-conflict",
            "balance",
            "--hold-secs",
            "5",
            "-c",
            "bridgehead.toml",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("secret: "),
        "a generated secret is shown once: {run:?}"
    );
    let run = run_in(
        d,
        &[
            "component",
            "add",
            "bridge1.example.com",
            "-c",
            "bridgehead.toml",
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("declared in the configuration file"),
        "{run:?}"
    );
    let run = run_in(
        d,
        &[
            "component",
            "add",
            "bridge3.example.com",
            "--on-conflict",
            "balance",
            "--max-connections",
            "1",
            "-c",
            "bridgehead.toml",
        ],
    );
    assert_eq!(run.code, 3, "balance needs two connections: {run:?}");

    let run = run_in(d, &["component", "list", "--json", "-c", "bridgehead.toml"]);
    let list: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(list[0]["name"], "bridge1.example.com");
    assert_eq!(list[0]["source"], "config");
    assert_eq!(list[1]["name"], "bridge2.example.com");
    assert_eq!(list[1]["on_conflict"], "balance");
    assert_eq!(list[1]["hold_secs"], 5);
    assert!(!run.stdout.contains("secret"), "{run:?}");

    let run = run_in(
        d,
        &[
            "component",
            "remove",
            "bridge2.example.com",
            "-c",
            "bridgehead.toml",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn check_config_rejects_an_unknown_key_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[admin]\nlisten = \"127.0.0.1:9090\"\nlisten_port = 1\n",
    )
    .unwrap();
    let run = run_in(dir.path(), &["check-config", "-c", "c.toml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("admin.listen_port"), "{run:?}");
    assert!(run.stderr.contains("unknown field"), "{run:?}");
}

#[test]
fn check_config_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[server]\ndomain = \"-bad-\"\n[tls]\nkey_file = \"/nope.key\"\n[[components]]\nname = \"b.example.com\"\n",
    )
    .unwrap();
    let run = run_in(dir.path(), &["check-config", "-c", "c.toml"]);
    assert_eq!(run.code, 2, "{run:?}");
    for key in [
        "server.domain",
        "tls.cert_file",
        "tls.key_file",
        "components[0].secret",
    ] {
        assert!(run.stderr.contains(key), "{key}: {run:?}");
    }
}

#[test]
fn the_production_example_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bridgehead.toml");
    let config =
        bridgehead::config::Config::load(std::path::Path::new(path)).expect("example parses");
    assert_eq!(config.server.domain, "example.com");
    assert!(config.tls.cert_file.is_some());
    assert!(!config.components.is_empty());
    assert_eq!(config.xmpp.login_notify, ["bridge1.example.com"]);
    assert!(
        config.cti_enabled(),
        "a trust file turns the CTI listener on"
    );
}

/// A port in use: the error names the listener, the address and the key to change, and
/// says the OS's reason once.
#[test]
fn serve_on_a_taken_port_says_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "[server]\ndata_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [xmpp]\ncomponent_listen = \"127.0.0.1:0\"\nclient_listen = \"127.0.0.1:{port}\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\n[cti]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let run = run_in(dir.path(), &["serve", "-c", "c.toml"]);
    assert_eq!(run.code, 1, "{run:?}");
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        error.contains(&format!("cannot bind the c2s listener to 127.0.0.1:{port}")),
        "{run:?}"
    );
    assert!(error.contains("set xmpp.client_listen"), "{error}");
    assert_eq!(error.matches("(os error 98)").count(), 1, "{error}");
}
