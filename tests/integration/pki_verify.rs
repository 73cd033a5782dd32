//! `bridgehead pki verify` against chains made by the openssl command line.

use crate::support::openssl::{openssl_in, xmpp_pki, Key, OpenSsl};
use crate::support::{run_in, Run};

fn verify(pki: &OpenSsl, args: &[&str]) -> Run {
    let mut all = vec!["pki", "verify"];
    all.extend_from_slice(args);
    run_in(pki.dir(), &all)
}

fn xmpp_args(cert: &str) -> Vec<&str> {
    vec![
        "--cert",
        cert,
        "--key",
        "server.key",
        "--trust",
        "root.crt",
        "--profile",
        "xmpp-server",
        "--xmpp-domain",
        "xmpp.example.com",
        "--fqdn",
        "host1.example.com",
    ]
}

/// The line of a check with the given status, or a panic showing the whole output.
fn line<'a>(run: &'a Run, status: &str, needle: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.starts_with(status) && l.contains(needle))
        .unwrap_or_else(|| panic!("no {status} line containing {needle:?}\n{run:?}"))
}

/// `lint_cert` breaks `rule` (a FAIL from `pki lint`), and so does the chain `chain`: a
/// WARN from `pki verify`, a FAIL (exit 2) with `--strict`.
fn breaks(pki: &OpenSsl, lint_cert: &str, chain: &str, rule: &str) {
    let id = format!("[{rule}]");
    let linted = run_in(pki.dir(), &["pki", "lint", lint_cert]);
    assert_eq!(linted.code, 2, "{lint_cert}: {linted:?}");
    line(&linted, "FAIL", &id);
    line(
        &verify(pki, &["--cert", chain, "--trust", "root.crt"]),
        "WARN",
        &id,
    );
    let strict = verify(pki, &["--cert", chain, "--trust", "root.crt", "--strict"]);
    assert_eq!(strict.code, 2, "{chain}: {strict:?}");
    line(&strict, "FAIL", &id);
}

#[test]
fn a_good_xmpp_server_chain_passes() {
    let pki = xmpp_pki();
    let run = verify(&pki, &xmpp_args("fullchain.pem"));
    assert_eq!(run.code, 0, "{run:?}");
    line(&run, "OK", "the private key matches");
    line(&run, "OK", "the full chain verifies for serverAuth");
    line(&run, "OK", "XMPP domain xmpp.example.com is covered");
    line(&run, "OK", "host FQDN host1.example.com is covered");
    assert!(run.stdout.contains("result: OK"), "{run:?}");
}

#[test]
fn a_leaf_last_chain_is_reported_and_fix_order_repairs_it() {
    let pki = xmpp_pki();
    pki.cat("reversed.pem", &["int.crt", "server.crt"]);
    let mut args = xmpp_args("reversed.pem");
    args.extend(["--fix-order", "fixed.pem"]);
    let run = verify(&pki, &args);
    assert_eq!(run.code, 2, "{run:?}");
    line(&run, "FAIL", "is #2 in");
    line(&run, "OK", "wrote 2 certificate(s)");
    let fixed = verify(&pki, &xmpp_args("fixed.pem"));
    assert_eq!(fixed.code, 0, "{fixed:?}");
    line(&fixed, "OK", "is in order");
}

#[test]
fn fix_order_drops_duplicates_roots_and_strangers() {
    let pki = xmpp_pki();
    pki.root("other", "Unrelated Root");
    pki.cat(
        "messy.pem",
        &["server.crt", "root.crt", "int.crt", "int.crt", "other.crt"],
    );
    let mut args = xmpp_args("messy.pem");
    args.extend(["--fix-order", "fixed.pem"]);
    let run = verify(&pki, &args);
    assert_eq!(run.code, 1, "warnings only: {run:?}");
    line(&run, "WARN", "repeats #3");
    line(&run, "WARN", "self-signed root CN=Test Root CA");
    line(&run, "WARN", "self-signed root CN=Unrelated Root");
    let fixed = std::fs::read_to_string(pki.path("fixed.pem")).unwrap();
    assert_eq!(fixed.matches("BEGIN CERTIFICATE").count(), 2);
}

#[test]
fn a_missing_intermediate_is_named_with_its_aia_url() {
    let pki = xmpp_pki();
    let run = verify(&pki, &xmpp_args("server.crt"));
    assert_eq!(run.code, 2, "{run:?}");
    let fail = line(&run, "FAIL", "missing issuer");
    assert!(fail.contains("CN=Test Intermediate CA"), "{fail}");
    assert!(fail.contains("http://pki.example.com/int.crt"), "{fail}");
    // The same intermediate handed over separately completes the chain.
    let mut args = xmpp_args("server.crt");
    args.extend(["--intermediates", "int.crt"]);
    let run = verify(&pki, &args);
    assert_eq!(run.code, 1, "{run:?}");
    line(&run, "OK", "the full chain verifies");
    line(
        &run,
        "WARN",
        "lacks the intermediate(s) CN=Test Intermediate CA",
    );
}

#[test]
fn a_wrong_trust_bundle_is_reported() {
    let pki = xmpp_pki();
    pki.root("other", "Some Other Root");
    let mut args = xmpp_args("fullchain.pem");
    args[5] = "other.crt";
    let run = verify(&pki, &args);
    assert_eq!(run.code, 2, "{run:?}");
    let fail = line(&run, "FAIL", "missing issuer");
    assert!(fail.contains("CN=Test Root CA"), "{fail}");
    assert!(fail.contains("is it the right bundle"), "{fail}");
    assert!(fail.contains("(--trust, or [tls] trust_file)"), "{fail}");
    assert!(
        !fail.contains("AIA"),
        "nowhere to download a root from: {fail}"
    );
}

#[test]
fn expired_and_not_yet_valid_are_reported_with_dates() {
    let pki = xmpp_pki();
    let mut args = xmpp_args("fullchain.pem");
    args.extend(["--at", "2040-01-01T00:00:00Z"]);
    let run = verify(&pki, &args);
    assert_eq!(run.code, 2, "{run:?}");
    let fail = line(&run, "FAIL", "expired on");
    assert!(fail.contains("CN=xmpp.example.com"), "{fail}");

    let mut args = xmpp_args("fullchain.pem");
    args.extend(["--at", "2001-01-01T00:00:00Z"]);
    let run = verify(&pki, &args);
    assert_eq!(run.code, 2, "{run:?}");
    line(&run, "FAIL", "is not valid yet");
}

#[test]
fn expiry_within_the_warning_window_warns_with_days_left() {
    let pki = xmpp_pki();
    let mut args = xmpp_args("fullchain.pem");
    args.extend(["--warn-days", "400"]);
    let run = verify(&pki, &args);
    assert_eq!(run.code, 1, "{run:?}");
    let warn = line(&run, "WARN", "expires on");
    assert!(warn.contains("day(s)"), "{warn}");
}

#[test]
fn key_mismatch_is_caught_for_rsa_ec_and_ed25519() {
    for kind in [Key::Rsa, Key::Ec, Key::Ed25519] {
        let pki = OpenSsl::new();
        pki.root("root", "Root");
        pki.sign(
            "leaf",
            "leaf.example.com",
            kind,
            "root",
            "subjectAltName=DNS:leaf.example.com\nextendedKeyUsage=serverAuth",
        );
        pki.key("other", kind);
        let good = verify(
            &pki,
            &[
                "--cert", "leaf.crt", "--key", "leaf.key", "--trust", "root.crt",
            ],
        );
        assert_eq!(good.code, 0, "{kind:?}: {good:?}");
        line(&good, "OK", "the private key matches");
        let bad = verify(
            &pki,
            &[
                "--cert",
                "leaf.crt",
                "--key",
                "other.key",
                "--trust",
                "root.crt",
            ],
        );
        assert_eq!(bad.code, 2, "{kind:?}: {bad:?}");
        line(
            &bad,
            "FAIL",
            "does not match the certificate CN=leaf.example.com",
        );
    }
}

#[test]
fn pkcs1_sec1_and_encrypted_keys_are_read() {
    let pki = xmpp_pki();
    pki.run(&[
        "pkcs8",
        "-topk8",
        "-in",
        "server.key",
        "-out",
        "server.enc.key",
        "-passout",
        "pass:hunter2",
        "-v2",
        "aes-256-cbc",
    ]);
    std::fs::write(pki.path("pass.txt"), "hunter2\n").unwrap();
    std::fs::write(pki.path("wrong.txt"), "hunter3\n").unwrap();
    pki.run(&["ec", "-in", "server.key", "-out", "server.sec1.key"]);
    let base = ["--cert", "fullchain.pem", "--trust", "root.crt"];

    let mut args = base.to_vec();
    args.extend(["--key", "server.enc.key", "--key-pass-file", "pass.txt"]);
    let run = verify(&pki, &args);
    assert_eq!(run.code, 0, "{run:?}");

    let mut args = base.to_vec();
    args.extend(["--key", "server.enc.key", "--key-pass-file", "wrong.txt"]);
    let run = verify(&pki, &args);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("wrong password"), "{run:?}");

    let mut args = base.to_vec();
    args.extend(["--key", "server.enc.key"]);
    let run = verify(&pki, &args);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("--key-pass-file"), "{run:?}");

    let sec1 = std::fs::read_to_string(pki.path("server.sec1.key")).unwrap();
    assert!(sec1.contains("EC PRIVATE KEY"), "openssl wrote SEC1");
    let mut args = base.to_vec();
    args.extend(["--key", "server.sec1.key"]);
    assert_eq!(verify(&pki, &args).code, 0);

    let rsa = OpenSsl::new();
    rsa.root("root", "Root");
    rsa.sign(
        "leaf",
        "leaf.example.com",
        Key::Rsa,
        "root",
        "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:leaf.example.com",
    );
    rsa.run(&[
        "rsa",
        "-in",
        "leaf.key",
        "-traditional",
        "-out",
        "leaf.pkcs1.key",
    ]);
    assert!(std::fs::read_to_string(rsa.path("leaf.pkcs1.key"))
        .unwrap()
        .contains("RSA PRIVATE KEY"));
    let run = verify(
        &rsa,
        &[
            "--cert",
            "leaf.crt",
            "--key",
            "leaf.pkcs1.key",
            "--trust",
            "root.crt",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn a_server_certificate_without_the_fqdn_fails_the_xmpp_profile() {
    let pki = xmpp_pki();
    let mut args = xmpp_args("fullchain.pem");
    let last = args.len() - 1;
    args[last] = "host2.example.com";
    let run = verify(&pki, &args);
    assert_eq!(run.code, 2, "{run:?}");
    let fail = line(&run, "FAIL", "host FQDN host2.example.com is not covered");
    assert!(
        fail.contains("DNS:host1.example.com"),
        "lists what the certificate has: {fail}"
    );
}

#[test]
fn names_are_checked_against_subject_alt_names() {
    let pki = xmpp_pki();
    let run = verify(
        &pki,
        &[
            "--cert",
            "fullchain.pem",
            "--trust",
            "root.crt",
            "--name",
            "host1.example.com",
            "--name",
            "nope.example.com",
        ],
    );
    assert_eq!(run.code, 2, "{run:?}");
    line(&run, "OK", "host1.example.com is covered");
    line(&run, "FAIL", "nope.example.com is not covered");
}

fn cti_pki(ext: &str) -> OpenSsl {
    let pki = OpenSsl::new();
    pki.root("root", "CTI Root");
    pki.sign("cti", "bwcticlient.example.com", Key::Ec, "root", ext);
    pki
}

fn cti_verify(pki: &OpenSsl) -> Run {
    verify(
        pki,
        &[
            "--cert",
            "cti.crt",
            "--key",
            "cti.key",
            "--trust",
            "root.crt",
            "--profile",
            "cti-client",
            "--cti-cn",
            "bwcticlient.example.com",
        ],
    )
}

#[test]
fn a_good_cti_client_certificate_passes() {
    let pki = cti_pki("extendedKeyUsage=clientAuth,1.3.6.1.4.1.6431.1.1.8.2.1.3");
    let run = cti_verify(&pki);
    assert_eq!(run.code, 0, "{run:?}");
    line(
        &run,
        "OK",
        "BroadWorks CTI client (1.3.6.1.4.1.6431.1.1.8.2.1.3)",
    );
    line(&run, "OK", "no subjectAltName extension");
    line(
        &run,
        "OK",
        "CN \"bwcticlient.example.com\" is in the allow-list",
    );
}

#[test]
fn cti_certificates_breaking_a_rule_are_refused_with_that_rule() {
    let cases = [
        ("extendedKeyUsage=clientAuth", "lacks BroadWorks CTI client (1.3.6.1.4.1.6431.1.1.8.2.1.3)"),
        ("extendedKeyUsage=1.3.6.1.4.1.6431.1.1.8.2.1.3", "lacks TLS Web Client Authentication"),
        (
            "extendedKeyUsage=clientAuth,1.3.6.1.4.1.6431.1.1.8.2.1.3\nsubjectAltName=DNS:bwcticlient.example.com",
            "has a subjectAltName extension (DNS:bwcticlient.example.com)",
        ),
    ];
    for (ext, expected) in cases {
        let pki = cti_pki(ext);
        let run = cti_verify(&pki);
        assert_eq!(run.code, 2, "{ext}: {run:?}");
        line(&run, "FAIL", expected);
    }
    let pki = cti_pki("extendedKeyUsage=clientAuth,1.3.6.1.4.1.6431.1.1.8.2.1.3");
    let run = verify(
        &pki,
        &[
            "--cert",
            "cti.crt",
            "--trust",
            "root.crt",
            "--profile",
            "cti-client",
            "--cti-cn",
            "someone.else",
        ],
    );
    assert_eq!(run.code, 2, "{run:?}");
    line(
        &run,
        "FAIL",
        "CN \"bwcticlient.example.com\" is not in the allow-list (someone.else)",
    );
}

#[test]
fn a_client_certificate_under_a_server_only_intermediate_is_refused() {
    let pki = OpenSsl::new();
    pki.root("root", "Root");
    pki.intermediate(
        "int",
        "Server-only Intermediate",
        "root",
        "extendedKeyUsage=serverAuth",
    );
    pki.sign(
        "client",
        "app.example.com",
        Key::Ec,
        "int",
        "extendedKeyUsage=clientAuth",
    );
    pki.cat("chain.pem", &["client.crt", "int.crt"]);
    let run = verify(
        &pki,
        &[
            "--cert",
            "chain.pem",
            "--trust",
            "root.crt",
            "--profile",
            "client",
        ],
    );
    assert_eq!(run.code, 2, "{run:?}");
    let fail = line(&run, "FAIL", "restricts its extended key usage");
    assert!(fail.contains("CN=Server-only Intermediate"), "{fail}");
    assert!(fail.contains("clientAuth"), "{fail}");
}

#[test]
fn an_issuer_that_is_not_a_ca_is_named() {
    let pki = OpenSsl::new();
    pki.root("root", "Root");
    pki.sign(
        "notca",
        "Not A CA",
        Key::Ec,
        "root",
        "basicConstraints=CA:FALSE",
    );
    pki.sign(
        "leaf",
        "leaf.example.com",
        Key::Ec,
        "notca",
        "subjectAltName=DNS:leaf.example.com",
    );
    pki.cat("chain.pem", &["leaf.crt", "notca.crt"]);
    let run = verify(&pki, &["--cert", "chain.pem", "--trust", "root.crt"]);
    assert_eq!(run.code, 2, "{run:?}");
    line(
        &run,
        "FAIL",
        "CN=Not A CA issued CN=leaf.example.com but is not a CA",
    );
}

#[test]
fn lints_warn_about_sha1_and_a_ca_as_leaf() {
    let pki = OpenSsl::new();
    pki.root("root", "Root");
    pki.key("leaf", Key::Rsa);
    std::fs::write(
        pki.path("leaf.ext"),
        "subjectAltName=DNS:leaf.example.com\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    pki.run(&[
        "req",
        "-new",
        "-key",
        "leaf.key",
        "-subj",
        "/CN=leaf.example.com",
        "-out",
        "leaf.csr",
    ]);
    pki.run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "root.crt",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-sha1",
        "-extfile",
        "leaf.ext",
        "-out",
        "leaf.crt",
    ]);
    let run = verify(
        &pki,
        &[
            "--cert",
            "leaf.crt",
            "--trust",
            "root.crt",
            "--at",
            "2000-01-01T00:00:00Z",
            "--warn-days",
            "0",
        ],
    );
    // SHA-1 is refused by webpki too, so this fails; the lint still explains it.
    line(&run, "WARN", "signed with SHA-1");
    let run = verify(&pki, &["--cert", "root.crt", "--trust", "root.crt"]);
    line(&run, "WARN", "is a CA certificate");
}

/// DER files, as `openssl … -outform DER` writes them, are read like PEM: the leaf
/// certificate, an intermediate, the trust anchor, and the key (PKCS#8 and SEC1).
#[test]
fn der_certificates_and_keys_are_read() {
    let pki = xmpp_pki();
    for (input, output) in [
        ("server.crt", "server.der"),
        ("int.crt", "int.der"),
        ("root.crt", "root.der"),
    ] {
        pki.run(&["x509", "-in", input, "-outform", "DER", "-out", output]);
    }
    pki.run(&[
        "pkey",
        "-in",
        "server.key",
        "-outform",
        "DER",
        "-out",
        "server.key.der",
    ]);
    pki.run(&[
        "ec",
        "-in",
        "server.key",
        "-outform",
        "DER",
        "-out",
        "server.sec1.der",
    ]);
    for key in ["server.key.der", "server.sec1.der"] {
        let run = verify(
            &pki,
            &[
                "--cert",
                "server.der",
                "--intermediates",
                "int.der",
                "--key",
                key,
                "--trust",
                "root.der",
                "--name",
                "xmpp.example.com",
            ],
        );
        // A lone leaf is deployment advice (serve the intermediate too), not a failure.
        assert_eq!(run.code, 1, "{key}: {run:?}");
        line(&run, "OK", "the private key matches");
        line(&run, "OK", "the full chain verifies");
        line(&run, "WARN", "server.der lacks the intermediate(s)");
    }
    // A key where a certificate belongs, and the other way round: exit 3, in words.
    let run = verify(&pki, &["--cert", "server.key.der", "--trust", "root.der"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("is it a key?"), "{run:?}");
    let run = verify(
        &pki,
        &[
            "--cert",
            "server.der",
            "--key",
            "int.der",
            "--trust",
            "root.der",
        ],
    );
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("is it a certificate?"), "{run:?}");
}

#[test]
fn unreadable_input_exits_3_with_a_clear_message() {
    let pki = xmpp_pki();
    std::fs::write(pki.path("empty.pem"), "").unwrap();
    std::fs::write(pki.path("garbage.pem"), "this is not a certificate\n").unwrap();
    pki.run(&[
        "pkey",
        "-in",
        "server.key",
        "-outform",
        "DER",
        "-out",
        "server.key.der",
    ]);
    let full = std::fs::read_to_string(pki.path("server.crt")).unwrap();
    std::fs::write(pki.path("truncated.pem"), &full[..full.len() / 2]).unwrap();
    let damaged = full.replacen("MII", "M!I", 1);
    std::fs::write(pki.path("damaged.pem"), damaged).unwrap();
    let cases = [
        ("empty.pem", "is empty"),
        ("garbage.pem", "no '-----BEGIN' line"),
        ("server.key.der", "binary DER that is not a certificate"),
        ("truncated.pem", "truncated"),
        ("damaged.pem", "damaged"),
        ("missing.pem", "cannot read"),
    ];
    for (file, expected) in cases {
        let run = verify(&pki, &["--cert", file, "--trust", "root.crt"]);
        assert_eq!(run.code, 3, "{file}: {run:?}");
        assert!(run.stderr.contains(expected), "{file}: {run:?}");
        assert!(!run.stderr.contains("panicked"), "{file}: {run:?}");
    }
    let run = verify(&pki, &["--cert", "fullchain.pem", "--key", "garbage.pem"]);
    assert_eq!(run.code, 3, "{run:?}");
    let run = verify(
        &pki,
        &["--cert", "fullchain.pem", "--trust", "truncated.pem"],
    );
    assert_eq!(run.code, 3, "{run:?}");
    let run = verify(&pki, &["--cert", "fullchain.pem", "--at", "yesterday"]);
    assert_eq!(run.code, 3, "{run:?}");
    let run = verify(
        &pki,
        &["--cert", "fullchain.pem", "--profile", "xmpp-server"],
    );
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("--xmpp-domain and --fqdn"), "{run:?}");
}

#[test]
fn json_output_has_every_check_with_status_reason_and_certificate() {
    let pki = xmpp_pki();
    let mut args = xmpp_args("fullchain.pem");
    args.push("--json");
    let run = verify(&pki, &args);
    assert_eq!(run.code, 0, "{run:?}");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("valid JSON");
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["exit_code"], 0);
    assert!(doc["validated_at"].as_str().unwrap().ends_with('Z'));
    let checks = doc["checks"].as_array().unwrap();
    for check in checks {
        assert!(
            check["check"].is_string() && check["reason"].is_string(),
            "{check}"
        );
        assert!(
            ["ok", "warn", "fail"].contains(&check["status"].as_str().unwrap()),
            "{check}"
        );
    }
    let key = checks.iter().find(|c| c["check"] == "key").unwrap();
    assert_eq!(key["certificate"]["subject"], "CN=xmpp.example.com");
    assert!(key["certificate"]["serial"].is_string());
    assert_eq!(key["certificate"]["source"]["position"], 1);
    let chain = doc["chain"].as_array().unwrap();
    let roles: Vec<&str> = chain.iter().map(|c| c["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["leaf", "intermediate", "root"]);

    let mut args = xmpp_args("server.crt");
    args.push("--json");
    let run = verify(&pki, &args);
    assert_eq!(run.code, 2);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["status"], "fail");
    assert_eq!(doc["exit_code"], 2);
}

#[test]
fn inspect_names_the_broadworks_oid_and_prints_xmpp_addrs() {
    let pki = cti_pki("extendedKeyUsage=clientAuth,1.3.6.1.4.1.6431.1.1.8.2.1.3\nauthorityInfoAccess=caIssuers;URI:http://pki.example.com/root.crt");
    let run = run_in(pki.dir(), &["pki", "inspect", "cti.crt", "root.crt"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("BroadWorks CTI client (1.3.6.1.4.1.6431.1.1.8.2.1.3)"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("AIA caIssuers        http://pki.example.com/root.crt"),
        "{run:?}"
    );
    assert!(run.stdout.contains("(self-signed)"), "{run:?}");
    let run = run_in(pki.dir(), &["pki", "inspect", "--json", "cti.crt"]);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let ekus = doc[0]["extended_key_usage"].as_array().unwrap();
    assert!(ekus.iter().any(
        |e| e["oid"] == "1.3.6.1.4.1.6431.1.1.8.2.1.3" && e["name"] == "BroadWorks CTI client"
    ));
    assert!(doc[0]["subject_alt_names"].is_null());

    let server = OpenSsl::new();
    server.root("root", "Root");
    server.sign("xmpp", "xmpp.example.com", Key::Ec, "root", "subjectAltName=DNS:xmpp.example.com,otherName:1.3.6.1.5.5.7.8.5;UTF8:xmpp.example.com,IP:192.0.2.7");
    let run = run_in(server.dir(), &["pki", "inspect", "xmpp.crt"]);
    assert!(
        run.stdout
            .contains("DNS:xmpp.example.com, xmppAddr:xmpp.example.com, IP:192.0.2.7"),
        "{run:?}"
    );
    // The fingerprints are openssl's, digit for digit.
    for (digest, label) in [
        ("-sha256", "SHA-256 fingerprint"),
        ("-sha1", "SHA-1 fingerprint"),
    ] {
        let theirs = openssl_in(
            server.dir(),
            &["x509", "-in", "xmpp.crt", "-noout", "-fingerprint", digest],
        );
        let fingerprint = theirs.trim().split_once('=').unwrap().1;
        assert!(
            run.stdout.contains(&format!("{label:<20} {fingerprint}")),
            "{fingerprint}: {run:?}"
        );
    }
}

#[test]
fn a_same_named_issuer_with_another_key_is_a_bad_signature() {
    let pki = OpenSsl::new();
    pki.root("real", "Shared Name Root");
    pki.sign(
        "leaf",
        "leaf.example.com",
        Key::Ec,
        "real",
        "subjectAltName=DNS:leaf.example.com",
    );
    pki.root("impostor", "Shared Name Root");
    let run = verify(&pki, &["--cert", "leaf.crt", "--trust", "impostor.crt"]);
    assert_eq!(run.code, 2, "{run:?}");
    line(
        &run,
        "FAIL",
        "bad signature: CN=leaf.example.com names CN=Shared Name Root",
    );
}

#[test]
fn an_exceeded_path_length_is_named() {
    let pki = OpenSsl::new();
    pki.root("root", "Root");
    pki.intermediate(
        "int1",
        "Int One",
        "root",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
    );
    pki.intermediate("int2", "Int Two", "int1", "");
    pki.sign(
        "leaf",
        "leaf.example.com",
        Key::Ec,
        "int2",
        "subjectAltName=DNS:leaf.example.com",
    );
    pki.cat("chain.pem", &["leaf.crt", "int2.crt", "int1.crt"]);
    let run = verify(&pki, &["--cert", "chain.pem", "--trust", "root.crt"]);
    assert_eq!(run.code, 2, "{run:?}");
    line(
        &run,
        "FAIL",
        "path length exceeded: CN=Int One allows 0 intermediate(s) below it, the chain has 1",
    );
}

#[test]
fn a_weak_rsa_key_is_a_warning() {
    let pki = OpenSsl::new();
    pki.root("root", "Root");
    pki.run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-out",
        "weak.key",
    ]);
    pki.sign_existing(
        "weak",
        "weak.example.com",
        "root",
        "subjectAltName=DNS:weak.example.com",
        365,
    );
    let run = verify(&pki, &["--cert", "weak.crt", "--trust", "root.crt"]);
    line(&run, "WARN", "weak RSA key of 1024 bits");
}

#[test]
fn fix_order_keeps_an_intermediate_that_sits_in_the_trust_bundle() {
    let pki = xmpp_pki();
    pki.cat("bundle.pem", &["root.crt", "int.crt"]);
    let run = verify(
        &pki,
        &[
            "--cert",
            "server.crt",
            "--trust",
            "bundle.pem",
            "--fix-order",
            "fixed.pem",
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    line(
        &run,
        "WARN",
        "lacks the intermediate(s) CN=Test Intermediate CA",
    );
    let fixed = std::fs::read_to_string(pki.path("fixed.pem")).unwrap();
    assert_eq!(
        fixed.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf and intermediate"
    );
}

/// RFC 5280 §6.1.4 (l): a self-issued intermediate (a CA's key rollover) does not count
/// toward pathLenConstraint, where another intermediate does; rustls-webpki counts both, so
/// the chain passes with a warning that says so.
#[test]
fn a_self_issued_intermediate_does_not_count_toward_path_length() {
    let pki = OpenSsl::new();
    pki.root("root", "Test Root CA");
    pki.intermediate(
        "ca0",
        "Test CA 0",
        "root",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
    );
    // The rollover: the same name, a new key, signed by the old one.
    pki.intermediate(
        "ca0new",
        "Test CA 0",
        "ca0",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
    );
    pki.intermediate("sub", "Test Sub CA", "ca0", "");
    let leaf = "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:leaf.example.com";
    pki.sign("leaf", "leaf.example.com", Key::Ec, "ca0new", leaf);
    pki.sign("subleaf", "leaf.example.com", Key::Ec, "sub", leaf);
    pki.cat("rollover.pem", &["leaf.crt", "ca0new.crt", "ca0.crt"]);
    pki.cat("too-long.pem", &["subleaf.crt", "sub.crt", "ca0.crt"]);
    let args = |cert| {
        vec![
            "--cert",
            cert,
            "--trust",
            "root.crt",
            "--name",
            "leaf.example.com",
        ]
    };
    let run = verify(&pki, &args("rollover.pem"));
    assert_eq!(run.code, 1, "{run:?}");
    let warn = line(&run, "WARN", "under RFC 5280");
    assert!(
        warn.contains("self-issued intermediate does not count"),
        "{warn}"
    );
    assert!(!run.stdout.contains("FAIL"), "{run:?}");
    let run = verify(&pki, &args("too-long.pem"));
    assert_eq!(run.code, 2, "{run:?}");
    let fail = line(&run, "FAIL", "path length exceeded");
    assert!(
        fail.contains("CN=Test CA 0 allows 0 intermediate(s) below it, the chain has 1"),
        "{fail}"
    );
    // pathLenConstraint in a leaf means nothing (RFC 5280 §4.2.1.9): ignored.
    pki.sign(
        "leafpl",
        "leaf.example.com",
        Key::Ec,
        "root",
        "basicConstraints=critical,CA:FALSE,pathlen:0\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:leaf.example.com",
    );
    let run = verify(&pki, &args("leafpl.crt"));
    assert_eq!(run.code, 0, "{run:?}");
    line(&run, "OK", "the full chain verifies");
}

/// RFC 5280 lets a CA certificate with the right EKU and names be the leaf; rustls-webpki
/// does not, so it passes with the warning (and the lint that it is a CA certificate).
#[test]
fn a_ca_certificate_with_the_right_eku_may_be_the_leaf() {
    let pki = OpenSsl::new();
    pki.root("root", "Test Root CA");
    pki.sign(
        "caleaf",
        "ca-leaf.example.com",
        Key::Ec,
        "root",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,digitalSignature,keyCertSign\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:ca-leaf.example.com",
    );
    let run = verify(
        &pki,
        &[
            "--cert",
            "caleaf.crt",
            "--trust",
            "root.crt",
            "--name",
            "ca-leaf.example.com",
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let warn = line(&run, "WARN", "under RFC 5280");
    assert!(warn.contains("a CA certificate may be the leaf"), "{warn}");
    assert!(!run.stdout.contains("FAIL"), "{run:?}");
}

/// RFC 5280 extension rules whatever the profile: an extension that cannot be parsed fails
/// the check naming it (exit 2, not an unreadable file), name constraints in a leaf fail,
/// and so does a DNS name constraint with a leading period.
#[test]
fn unparsable_extensions_and_misplaced_or_malformed_name_constraints_fail() {
    let pki = OpenSsl::new();
    pki.root("root", "Test Root CA");
    let leaf = "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:leaf.example.com";
    // A subjectAltName whose content is an INTEGER instead of GeneralNames.
    pki.sign(
        "garbled",
        "leaf.example.com",
        Key::Ec,
        "root",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n2.5.29.17=DER:3003020101",
    );
    pki.sign(
        "constrained",
        "leaf.example.com",
        Key::Ec,
        "root",
        &format!("{leaf}\nnameConstraints=permitted;DNS:example.com"),
    );
    pki.intermediate(
        "dotted",
        "Dotted CA",
        "root",
        "nameConstraints=critical,permitted;DNS:.example.com",
    );
    pki.sign("under-dotted", "leaf.example.com", Key::Ec, "dotted", leaf);
    pki.cat(
        "under-dotted-chain.pem",
        &["under-dotted.crt", "dotted.crt"],
    );
    let run = |cert: &str| {
        verify(
            &pki,
            &[
                "--cert",
                cert,
                "--trust",
                "root.crt",
                "--name",
                "leaf.example.com",
            ],
        )
    };

    let garbled = run("garbled.crt");
    assert_eq!(
        garbled.code, 2,
        "a failed check, not unreadable input: {garbled:?}"
    );
    line(
        &garbled,
        "FAIL",
        "its subjectAltName (2.5.29.17) extension cannot be parsed",
    );
    let constrained = run("constrained.crt");
    assert_eq!(constrained.code, 2, "{constrained:?}");
    line(
        &constrained,
        "FAIL",
        "carries name constraints, which only CA certificates may",
    );
    let dotted = run("under-dotted-chain.pem");
    assert_eq!(dotted.code, 2, "{dotted:?}");
    let fail = line(
        &dotted,
        "FAIL",
        "malformed DNS name constraint \".example.com\"",
    );
    assert!(fail.contains("CN=Dotted CA"), "{fail}");
}

/// The RFC 5280 and CA/B Forum rules: each violation carries its rule id; without
/// `--strict` it is a warning (exit 1), with it a failure (exit 2); `pki lint` judges
/// certificates without a chain, by their own role, and fails them.
#[test]
fn strict_rules_have_ids_warn_by_default_and_fail_with_strict_or_lint() {
    let pki = OpenSsl::new();
    pki.root("root", "Test Root CA");
    let server = "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth";
    let cases = [
        ("no-eku", "a.example.com", "basicConstraints=CA:FALSE\nsubjectAltName=DNS:a.example.com".to_owned(), "cabf.leaf.eku-missing"),
        ("any-eku", "a.example.com", "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,anyExtendedKeyUsage\nsubjectAltName=DNS:a.example.com".to_owned(), "cabf.leaf.eku-any"),
        ("critical-eku", "a.example.com", "basicConstraints=CA:FALSE\nextendedKeyUsage=critical,serverAuth\nsubjectAltName=DNS:a.example.com".to_owned(), "cabf.leaf.eku-critical"),
        ("cn-not-san", "b.example.com", format!("{server}\nsubjectAltName=DNS:a.example.com"), "cabf.cn.in-san"),
        ("underscore", "a_b.example.com", format!("{server}\nsubjectAltName=DNS:a_b.example.com"), "cabf.dns.underscore"),
        ("cert-sign", "a.example.com", format!("{server}\nkeyUsage=digitalSignature,keyCertSign\nsubjectAltName=DNS:a.example.com"), "rfc5280.leaf.key-cert-sign"),
        ("unknown-critical", "a.example.com", format!("{server}\nsubjectAltName=DNS:a.example.com\n1.3.6.1.4.1.99999.1=critical,DER:0500"), "rfc5280.extension.unknown-critical"),
        ("wildcard", "a.example.com", format!("{server}\nsubjectAltName=DNS:a.example.com,DNS:*.co.uk"), "cabf.dns.wildcard-public-suffix"),
    ];
    for (name, cn, ext, rule) in &cases {
        pki.sign(name, cn, Key::Ec, "root", ext);
        let cert = format!("{name}.crt");
        let plain = verify(
            &pki,
            &["--cert", &cert, "--trust", "root.crt", "--name", cn],
        );
        let warned = line(&plain, "WARN", &format!("[{rule}]"));
        assert!(warned.starts_with("WARN lint"), "{name}: {warned}");
        assert!(
            !plain.stdout.contains(&format!("FAIL lint      [{rule}]")),
            "{name}: {plain:?}"
        );
        let strict = verify(
            &pki,
            &[
                "--cert", &cert, "--trust", "root.crt", "--name", cn, "--strict",
            ],
        );
        assert_eq!(strict.code, 2, "{name}: {strict:?}");
        line(&strict, "FAIL", &format!("[{rule}]"));
        let linted = run_in(pki.dir(), &["pki", "lint", &cert]);
        assert_eq!(linted.code, 2, "{name}: {linted:?}");
        line(&linted, "FAIL", &format!("[{rule}]"));
    }
    // Serial numbers: zero, negative, longer than 20 octets.
    pki.key("serial", Key::Ec);
    let serial_ext = format!("{server}\nsubjectAltName=DNS:a.example.com");
    for (serial, rule) in [
        ("0", "rfc5280.serial.positive"),
        ("-5", "rfc5280.serial.positive"),
        (
            "0x112233445566778899AABBCCDDEEFF00112233445566",
            "rfc5280.serial.length",
        ),
    ] {
        pki.sign_raw(
            "serial",
            "serial",
            "/CN=a.example.com",
            "root",
            &serial_ext,
            &["-set_serial", serial],
        );
        let linted = run_in(pki.dir(), &["pki", "lint", "--json", "serial.crt"]);
        assert_eq!(linted.code, 2, "{serial}: {linted:?}");
        let doc: serde_json::Value = serde_json::from_str(&linted.stdout).unwrap();
        assert!(
            doc["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["rule"] == rule && c["status"] == "fail"),
            "{serial}: {doc}"
        );
    }
    // Keys: P-192 and DSA; an AKI with issuer and serial; an empty subject without a
    // critical SAN.
    pki.run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:prime192v1",
        "-out",
        "p192.key",
    ]);
    pki.run(&[
        "genpkey",
        "-genparam",
        "-algorithm",
        "DSA",
        "-pkeyopt",
        "dsa_paramgen_bits:2048",
        "-out",
        "dsa.param",
    ]);
    pki.run(&["genpkey", "-paramfile", "dsa.param", "-out", "dsa.key"]);
    pki.key("aki", Key::Ec);
    pki.key("nosubject", Key::Ec);
    let leaf_ext = format!("{server}\nsubjectAltName=DNS:a.example.com");
    for (name, subject, ext, rule) in [
        (
            "p192",
            "/CN=a.example.com",
            leaf_ext.clone(),
            "cabf.key.p192",
        ),
        ("dsa", "/CN=a.example.com", leaf_ext.clone(), "cabf.key.dsa"),
        (
            "aki",
            "/CN=a.example.com",
            format!("{leaf_ext}\nauthorityKeyIdentifier=keyid,issuer:always"),
            "cabf.aki.key-id-only",
        ),
        (
            "nosubject",
            "/",
            format!("{server}\nsubjectAltName=DNS:a.example.com"),
            "rfc5280.subject.empty-without-critical-san",
        ),
    ] {
        pki.sign_raw(name, name, subject, "root", &ext, &[]);
        let cert = format!("{name}.crt");
        breaks(&pki, &cert, &cert, rule);
    }
    // A root with an EKU; and a clean certificate, which lint passes.
    pki.key("ekuroot", Key::Ec);
    pki.run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "ekuroot.key",
        "-subj",
        "/CN=EKU Root",
        "-days",
        "365",
        "-out",
        "ekuroot.crt",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-addext",
        "extendedKeyUsage=serverAuth",
    ]);
    let linted = run_in(pki.dir(), &["pki", "lint", "ekuroot.crt"]);
    line(&linted, "FAIL", "[cabf.root.eku]");
    pki.sign(
        "clean",
        "a.example.com",
        Key::Ec,
        "root",
        &format!("{server}\nsubjectAltName=DNS:a.example.com"),
    );
    let linted = run_in(pki.dir(), &["pki", "lint", "clean.crt", "root.crt"]);
    assert_eq!(linted.code, 0, "{linted:?}");
    line(&linted, "OK", "breaks none of the rules");
}

/// A PKCS#12 bundle made by `openssl pkcs12 -export` (its key, leaf and intermediate) is
/// read with the passphrase from --key-pass-file; a wrong passphrase is an unreadable
/// input (3), in words.
#[test]
fn a_pkcs12_bundle_is_read_with_its_passphrase() {
    let pki = xmpp_pki();
    std::fs::write(pki.path("pass.txt"), "bundle-pass\n").unwrap();
    std::fs::write(pki.path("wrong.txt"), "nope\n").unwrap();
    pki.run(&[
        "pkcs12",
        "-export",
        "-in",
        "server.crt",
        "-inkey",
        "server.key",
        "-certfile",
        "int.crt",
        "-passout",
        "file:pass.txt",
        "-out",
        "bundle.p12",
    ]);
    let mut args = xmpp_args("bundle.p12");
    args.splice(2..4, ["--key-pass-file", "pass.txt"]);
    let run = verify(&pki, &args);
    assert_eq!(run.code, 0, "{run:?}");
    line(&run, "OK", "the private key matches");
    line(&run, "OK", "the full chain verifies");
    let wrong = verify(
        &pki,
        &[
            "--cert",
            "bundle.p12",
            "--key-pass-file",
            "wrong.txt",
            "--trust",
            "root.crt",
        ],
    );
    assert_eq!(wrong.code, 3, "{wrong:?}");
    assert!(wrong.stderr.contains("a wrong passphrase"), "{wrong:?}");
}

/// RFC 5280 §6.1.3: name constraints bind the leaf, not a self-issued intermediate (the
/// rollover of a constrained CA whose own SAN is outside them); rustls-webpki checks both,
/// so the chain passes with the warning. A leaf outside the constraints still fails.
#[test]
fn name_constraints_do_not_apply_to_a_self_issued_intermediate() {
    let pki = OpenSsl::new();
    pki.root("root", "Test Root CA");
    pki.intermediate(
        "ca",
        "Constrained CA",
        "root",
        "nameConstraints=critical,permitted;DNS:example.com",
    );
    pki.intermediate(
        "rollover",
        "Constrained CA",
        "ca",
        "subjectAltName=DNS:ca.other.test",
    );
    let leaf = |san: &str| {
        format!("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:{san}")
    };
    pki.sign(
        "inside",
        "a.example.com",
        Key::Ec,
        "rollover",
        &leaf("a.example.com"),
    );
    pki.sign(
        "outside",
        "a.other.test",
        Key::Ec,
        "rollover",
        &leaf("a.other.test"),
    );
    pki.cat(
        "inside-chain.pem",
        &["inside.crt", "rollover.crt", "ca.crt"],
    );
    pki.cat(
        "outside-chain.pem",
        &["outside.crt", "rollover.crt", "ca.crt"],
    );
    let run = verify(
        &pki,
        &[
            "--cert",
            "inside-chain.pem",
            "--trust",
            "root.crt",
            "--name",
            "a.example.com",
        ],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let warn = line(&run, "WARN", "under RFC 5280");
    assert!(
        warn.contains("name constraints do not apply to a self-issued intermediate"),
        "{warn}"
    );
    let run = verify(
        &pki,
        &[
            "--cert",
            "outside-chain.pem",
            "--trust",
            "root.crt",
            "--name",
            "a.other.test",
        ],
    );
    assert_eq!(run.code, 2, "{run:?}");
    line(&run, "FAIL", "chain");
}

/// The rest of the rules, each on a certificate made to break it: lint fails it with its
/// id, verify warns (or fails with --strict) where a chain is given.
#[test]
fn every_other_strict_rule_is_caught_with_its_id() {
    let pki = OpenSsl::new();
    pki.root("root", "Test Root CA");
    let server =
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:a.example.com";
    // Made with openssl x509 -req under root: (name, subject, key, extensions, rule).
    pki.run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2052",
        "-out",
        "odd.key",
    ]);
    for name in ["noski", "noaki", "critski", "critaki", "causage", "caempty"] {
        pki.key(name, Key::Ec);
    }
    let ca = "basicConstraints=critical,CA:TRUE";
    for (name, subject, ext, rule) in [
        (
            "noski",
            "/CN=No SKI CA",
            format!("{ca}\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=none"),
            "rfc5280.ski.missing",
        ),
        (
            "noaki",
            "/CN=a.example.com",
            format!("{server}\nauthorityKeyIdentifier=none"),
            "rfc5280.aki.missing",
        ),
        (
            "critski",
            "/CN=a.example.com",
            format!("{server}\nsubjectKeyIdentifier=critical,hash"),
            "rfc5280.ski.critical",
        ),
        (
            "critaki",
            "/CN=a.example.com",
            format!("{server}\nauthorityKeyIdentifier=critical,keyid"),
            "rfc5280.aki.critical",
        ),
        (
            "causage",
            "/CN=Signing CA",
            format!("{ca}\nkeyUsage=critical,digitalSignature"),
            "rfc5280.ca.key-usage",
        ),
        (
            "caempty",
            "/",
            format!("{ca}\nkeyUsage=critical,keyCertSign,cRLSign"),
            "rfc5280.ca.subject-empty",
        ),
        (
            "odd",
            "/CN=a.example.com",
            server.to_owned(),
            "cabf.key.rsa-modulus-multiple-of-8",
        ),
    ] {
        pki.sign_raw(name, name, subject, "root", &ext, &[]);
        // On a chain, a CA is judged above a leaf it issued.
        let cert = if subject.starts_with("/CN=a.") {
            format!("{name}.crt")
        } else {
            let leaf = format!("{name}-leaf");
            pki.key(&leaf, Key::Ec);
            pki.sign_raw(&leaf, &leaf, "/CN=a.example.com", name, server, &[]);
            pki.cat(
                &format!("{name}-chain.pem"),
                &[&format!("{leaf}.crt"), &format!("{name}.crt")],
            );
            format!("{name}-chain.pem")
        };
        breaks(&pki, &format!("{name}.crt"), &cert, rule);
    }
    // A root whose authorityKeyIdentifier is not its own subjectKeyIdentifier: the root's
    // key re-signs its own subject with another SKI (the AKI comes from the old SKI).
    pki.sign_raw(
        "mismatch",
        "root",
        "/CN=Test Root CA",
        "root",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=0A0B0C0D\nauthorityKeyIdentifier=keyid:always",
        &[],
    );
    line(
        &run_in(pki.dir(), &["pki", "lint", "mismatch.crt"]),
        "FAIL",
        "[rfc5280.aki.root-mismatch]",
    );
    // A root whose basicConstraints is not critical.
    pki.key("softroot", Key::Ec);
    pki.run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "softroot.key",
        "-subj",
        "/CN=Soft Root",
        "-days",
        "365",
        "-out",
        "softroot.crt",
        "-addext",
        "basicConstraints=CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    line(
        &run_in(pki.dir(), &["pki", "lint", "softroot.crt"]),
        "FAIL",
        "[rfc5280.root.basic-constraints]",
    );
    // An expired trust anchor (made by pki issue, back-dated): the chain verifies (anchors'
    // dates are not checked), the rule warns, and fails with --strict.
    let issued = run_in(
        pki.dir(),
        &[
            "pki",
            "issue",
            "ca",
            "--cn",
            "Old Root",
            "--not-before",
            "2020-01-01T00:00:00Z",
            "--days",
            "30",
            "--out",
            "old",
        ],
    );
    assert_eq!(issued.code, 0, "{issued:?}");
    let issued = run_in(
        pki.dir(),
        &[
            "pki",
            "issue",
            "server",
            "--name",
            "a.example.com",
            "--issuer-cert",
            "old.crt",
            "--issuer-key",
            "old.key",
            "--out",
            "young",
        ],
    );
    assert_eq!(issued.code, 0, "{issued:?}");
    let args = [
        "--cert",
        "young-chain.pem",
        "--trust",
        "old.crt",
        "--name",
        "a.example.com",
    ];
    let run = verify(&pki, &args);
    line(&run, "WARN", "[rfc5280.anchor.expired]");
    let mut strict = args.to_vec();
    strict.push("--strict");
    let run = verify(&pki, &strict);
    assert_eq!(run.code, 2, "{run:?}");
    line(&run, "FAIL", "[rfc5280.anchor.expired]");
}

/// A self-signed leaf trusted as its own anchor but refused by rustls-webpki (its EKU
/// does not allow the purpose): a failed chain, not a panic on the one-certificate path.
#[test]
fn a_self_signed_leaf_refused_by_webpki_is_a_failure_not_a_panic() {
    let pki = OpenSsl::new();
    pki.key("self", Key::Ec);
    pki.run(&[
        "req",
        "-x509",
        "-new",
        "-key",
        "self.key",
        "-subj",
        "/CN=self.example.com",
        "-days",
        "30",
        "-out",
        "self.crt",
        "-addext",
        "basicConstraints=CA:FALSE",
        "-addext",
        "extendedKeyUsage=clientAuth",
        "-addext",
        "subjectAltName=DNS:self.example.com",
    ]);
    let run = verify(
        &pki,
        &[
            "--cert",
            "self.crt",
            "--trust",
            "self.crt",
            "--profile",
            "server",
        ],
    );
    assert_eq!(run.code, 2, "{run:?}");
    line(&run, "FAIL", "does not verify");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
}
