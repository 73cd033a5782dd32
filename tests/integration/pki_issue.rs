//! `bridgehead pki issue`: what it issues passes `pki verify` with the matching profile,
//! and openssl reads it too.

use std::os::unix::fs::PermissionsExt;

use crate::support::openssl::openssl_in;
use crate::support::run_in;

fn ok(dir: &std::path::Path, args: &[&str]) -> String {
    let run = run_in(dir, args);
    assert_eq!(run.code, 0, "{args:?}: {run:?}");
    run.stdout
}

#[test]
fn issued_certificates_pass_verify_with_their_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &["pki", "issue", "ca", "--cn", "Issued Root", "--out", "root"],
    );
    ok(
        d,
        &[
            "pki",
            "issue",
            "ca",
            "--cn",
            "Issued Intermediate",
            "--path-len",
            "0",
            "--issuer-cert",
            "root.crt",
            "--issuer-key",
            "root.key",
            "--out",
            "int",
        ],
    );
    for key_type in ["ecdsa-p256", "ecdsa-p384", "rsa2048", "ed25519"] {
        let server = format!("server-{key_type}");
        ok(
            d,
            &[
                "pki",
                "issue",
                "server",
                "--name",
                "xmpp.example.com",
                "--name",
                "host1.example.com",
                "--name",
                "192.0.2.1",
                "--xmpp-addr",
                "xmpp.example.com",
                "--key-type",
                key_type,
                "--issuer-cert",
                "int-chain.pem",
                "--issuer-key",
                "int.key",
                "--out",
                &server,
            ],
        );
        let chain = format!("{server}-chain.pem");
        let key = format!("{server}.key");
        let out = ok(
            d,
            &[
                "pki",
                "verify",
                "--cert",
                &chain,
                "--key",
                &key,
                "--trust",
                "root.crt",
                "--profile",
                "xmpp-server",
                "--xmpp-domain",
                "xmpp.example.com",
                "--fqdn",
                "host1.example.com",
                "--name",
                "192.0.2.1",
            ],
        );
        assert!(out.contains("result: OK"), "{key_type}: {out}");
        let mode = std::fs::metadata(d.join(&key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key_type}: private key mode");
    }
    ok(
        d,
        &[
            "pki",
            "issue",
            "cti-client",
            "--cn",
            "bwcticlient.example.com",
            "--issuer-cert",
            "int-chain.pem",
            "--issuer-key",
            "int.key",
            "--out",
            "cti",
        ],
    );
    let out = ok(
        d,
        &[
            "pki",
            "verify",
            "--cert",
            "cti-chain.pem",
            "--key",
            "cti.key",
            "--trust",
            "root.crt",
            "--profile",
            "cti-client",
            "--cti-cn",
            "bwcticlient.example.com",
        ],
    );
    assert!(out.contains("result: OK"), "{out}");

    // An independent reader agrees.
    openssl_in(
        d,
        &[
            "verify",
            "-CAfile",
            "root.crt",
            "-untrusted",
            "int.crt",
            "-purpose",
            "sslclient",
            "cti.crt",
        ],
    );
    let text = openssl_in(d, &["x509", "-in", "cti.crt", "-noout", "-text"]);
    assert!(text.contains("1.3.6.1.4.1.6431.1.1.8.2.1.3"), "{text}");
    assert!(!text.contains("Subject Alternative Name"), "{text}");
}

#[test]
fn issue_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["pki", "issue", "ca", "--cn", "Root", "--out", "root"]);
    let before = std::fs::read(d.join("root.key")).unwrap();
    let run = run_in(d, &["pki", "issue", "ca", "--cn", "Root", "--out", "root"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("pass --force"), "{run:?}");
    assert_eq!(std::fs::read(d.join("root.key")).unwrap(), before);
    ok(
        d,
        &[
            "pki", "issue", "ca", "--cn", "Root", "--out", "root", "--force",
        ],
    );
    assert_ne!(std::fs::read(d.join("root.key")).unwrap(), before);
}

#[test]
fn a_leaf_needs_an_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_in(
        dir.path(),
        &[
            "pki",
            "issue",
            "server",
            "--name",
            "a.example.com",
            "--out",
            "a",
        ],
    );
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("--issuer-cert"), "{run:?}");
}

/// `pki csr` makes a key and a CSR for an XMPP server (the domain and the host) that openssl
/// verifies; `pki issue server --csr` certifies it; the result passes `pki verify` with the
/// CSR's key and the xmpp-server profile. A tampered CSR is refused.
#[test]
fn a_csr_is_verified_by_openssl_and_signed_by_pki_issue() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for key_type in ["ecdsa-p256", "rsa2048"] {
        let out = ok(
            d,
            &[
                "pki",
                "csr",
                "--xmpp-domain",
                "xmpp.example.com",
                "--fqdn",
                "host1.example.com",
                "--key-type",
                key_type,
                "--out",
                "req",
                "--force",
            ],
        );
        assert!(
            out.contains("for xmpp.example.com, host1.example.com"),
            "{out}"
        );
        let mode = std::fs::metadata(d.join("req.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is private");
        let text = openssl_in(d, &["req", "-verify", "-noout", "-text", "-in", "req.csr"]);
        assert!(
            text.contains("DNS:xmpp.example.com, DNS:host1.example.com"),
            "{text}"
        );
        assert!(text.contains("CN = xmpp.example.com"), "{text}");
    }
    let csr_json = ok(
        d,
        &[
            "pki",
            "csr",
            "--name",
            "xsi.example.com",
            "--out",
            "xsi",
            "--json",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&csr_json).expect("JSON");
    assert_eq!(
        doc["names"],
        serde_json::json!(["xsi.example.com"]),
        "{doc}"
    );
    assert_eq!(doc["written"].as_array().unwrap().len(), 2, "{doc}");
    let root_json = ok(
        d,
        &[
            "pki", "issue", "ca", "--cn", "CSR Root", "--out", "root", "--json",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&root_json).expect("JSON");
    assert_eq!(doc["written"].as_array().unwrap().len(), 3, "{doc}");
    assert!(doc["check"].is_null(), "{doc}");
    let out = ok(
        d,
        &[
            "pki",
            "issue",
            "server",
            "--csr",
            "req.csr",
            "--issuer-cert",
            "root.crt",
            "--issuer-key",
            "root.key",
            "--out",
            "signed",
        ],
    );
    assert!(
        !d.join("signed.key").exists(),
        "the key stays with the requester: {out}"
    );
    let verified = run_in(
        d,
        &[
            "pki",
            "verify",
            "--cert",
            "signed-chain.pem",
            "--key",
            "req.key",
            "--trust",
            "root.crt",
            "--profile",
            "xmpp-server",
            "--xmpp-domain",
            "xmpp.example.com",
            "--fqdn",
            "host1.example.com",
            "--strict",
        ],
    );
    assert_eq!(verified.code, 0, "{verified:?}");
    // One changed character in the request's base64 breaks its signature or its encoding.
    let csr = std::fs::read_to_string(d.join("req.csr")).unwrap();
    let line = csr.lines().nth(3).unwrap();
    let changed: String = line
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 10 {
                if c == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                c
            }
        })
        .collect();
    std::fs::write(d.join("bad.csr"), csr.replacen(line, &changed, 1)).unwrap();
    let refused = run_in(
        d,
        &[
            "pki",
            "issue",
            "server",
            "--csr",
            "bad.csr",
            "--issuer-cert",
            "root.crt",
            "--issuer-key",
            "root.key",
            "--out",
            "bad",
        ],
    );
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused.stderr.contains("the CSR cannot be read"),
        "{refused:?}"
    );
    assert!(!d.join("bad.crt").exists());
}
