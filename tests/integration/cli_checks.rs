//! What a newcomer's first commands meet: `check-config`'s exit codes (0 OK, 1 warnings,
//! 2 errors, 3 unreadable) and `--syntax-only`, and the CLI's warnings and defaults.

use crate::support::{run_in, run_with_stdin};

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn check_config_exit_codes_follow_pki_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 3: the file cannot be read.
    let run = run_in(d, &["check-config", "-c", "missing.toml"]);
    assert_eq!(run.code, 3, "{run:?}");
    // 2: a syntax error, or a rule broken.
    write(d, "bad.toml", "[server\n");
    assert_eq!(run_in(d, &["check-config", "-c", "bad.toml"]).code, 2);
    write(d, "rule.toml", "[server]\ndomain = \"-bad-\"\n");
    assert_eq!(run_in(d, &["check-config", "-c", "rule.toml"]).code, 2);
    // 0: all good (the development PKI will be made on the first start).
    write(d, "ok.toml", "[server]\ndata_dir = \"data\"\n");
    let run = run_in(d, &["check-config", "-c", "ok.toml"]);
    assert_eq!(run.code, 0, "{run:?}");
    // 1: a warning — login_notify names a component nobody declared.
    write(
        d,
        "warn.toml",
        "[server]\ndata_dir = \"data\"\n[xmpp]\nlogin_notify = [\"bridge9.localhost\"]\n",
    );
    let run = run_in(d, &["check-config", "-c", "warn.toml"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("xmpp.login_notify: no component bridge9.localhost"),
        "{run:?}"
    );
    // …which a component added to the store answers.
    let run = run_in(
        d,
        &["component", "add", "bridge9.localhost", "-c", "warn.toml"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run_in(d, &["check-config", "-c", "warn.toml"]).code, 0);
}

/// A CTI trust file that is not PEM is refused naming `cti.trust_file` (serve refuses the
/// same); `--syntax-only` checks a configuration whose files are not in place yet.
#[test]
fn check_config_reads_the_files_unless_syntax_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "not-pem.crt", "this is not a certificate\n");
    let config = "[server]\ndata_dir = \"data\"\n[cti]\ntrust_file = \"not-pem.crt\"\n\
                  allowed_client_ids = [\"app.example.com\"]\n";
    write(d, "cti.toml", config);
    let run = run_in(d, &["check-config", "-c", "cti.toml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("cti.trust_file"), "{run:?}");
    assert!(run.stderr.contains("no PEM certificate"), "{run:?}");
    let serve = run_in(d, &["serve", "-c", "cti.toml"]);
    assert_ne!(serve.code, 0, "{serve:?}");
    assert!(serve.stderr.contains("cti.trust_file"), "{serve:?}");

    write(
        d,
        "later.toml",
        "[server]\ndomain = \"example.com\"\ndata_dir = \"data\"\n[tls]\n\
         cert_file = \"/etc/bridgehead/fullchain.pem\"\nkey_file = \"/etc/bridgehead/key.pem\"\n\
         [[components]]\nname = \"bridge1.example.com\"\nsecret_file = \"/etc/bridgehead/b1\"\n",
    );
    assert_eq!(run_in(d, &["check-config", "-c", "later.toml"]).code, 2);
    let run = run_in(d, &["check-config", "--syntax-only", "-c", "later.toml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("not checked (--syntax-only)"),
        "{run:?}"
    );
}

#[test]
fn cli_defaults_warnings_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // balance without --max-connections: two connections.
    let run = run_in(
        d,
        &[
            "component",
            "add",
            "bridge.localhost",
            "--on-conflict",
            "balance",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let list = run_in(d, &["component", "list", "--json", "--data-dir", "data"]);
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(rows[0]["max_connections"], 2, "{rows}");
    // A component outside the server's domain, a user of another domain: warned.
    let run = run_in(
        d,
        &[
            "component",
            "add",
            "bridge.example.net",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("not under the server's domain localhost"),
        "{run:?}"
    );
    let run = run_with_stdin(
        d,
        &[
            "user",
            "add",
            "erin@example.org",
            "--first-name",
            "Erin",
            "--last-name",
            "Eve",
            "--enterprise",
            "e",
            "--group",
            "g",
            "--password-stdin",
            "--data-dir",
            "data",
        ],
        "pw\n",
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("XMPP logins are only for users of localhost"),
        "{run:?}"
    );
    // device list --json.
    let run = run_in(
        d,
        &[
            "device",
            "add",
            "erin@example.org",
            "erin-pc",
            "--type",
            "PC",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let run = run_in(
        d,
        &[
            "device",
            "list",
            "erin@example.org",
            "--json",
            "--data-dir",
            "data",
        ],
    );
    let devices: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(devices[0]["name"], "erin-pc", "{devices}");
    // An invalid --log filter is a usage error, not a silent fallback.
    let run = run_in(d, &["--log", "bridgehead=loud", "check-config"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("not a log filter"), "{run:?}");
}
