//! The leaf's own rules: names (the XMPP domain, the host FQDN), extended key usages, the
//! CTI client profile, validity periods along the path, and the lint findings.

use rustls_pki_types::ServerName;

use super::path::is_anchor;
use super::{day, webpki_words, with_check, Finding, PathWalk, Profile, Status, VerifyInput};
use crate::pki::certificate::Certificate;
use crate::pki::oid;

pub(super) fn name_covered(leaf: &Certificate, name: &str) -> Result<bool, String> {
    let server_name = ServerName::try_from(name)
        .map_err(|_| format!("\"{name}\" is neither a DNS name nor an IP address"))?;
    let end_entity = webpki::EndEntityCert::try_from(&leaf.der).map_err(|e| {
        format!(
            "the leaf cannot be parsed for name checks: {}",
            webpki_words(&e)
        )
    })?;
    Ok(end_entity
        .verify_is_valid_for_subject_name(&server_name)
        .is_ok())
}

pub(super) fn name_finding(leaf: &Certificate, name: &str, what: &str) -> Finding {
    let presented: Vec<String> = leaf
        .alt_names
        .iter()
        .flatten()
        .map(ToString::to_string)
        .collect();
    let (status, reason) =
        match name_covered(leaf, name) {
            Ok(true) => (
                Status::Ok,
                format!("{what}{name} is covered by a subjectAltName"),
            ),
            Ok(false) => {
                (
                    Status::Fail,
                    format!(
                "{what}{name} is not covered by any subjectAltName (the certificate has: {})",
                if presented.is_empty() { "none".to_owned() } else { presented.join(", ") }
            ),
                )
            }
            Err(reason) => (Status::Fail, reason),
        };
    Finding::new("name", status, reason).about(leaf)
}

pub(super) fn check_names(input: &VerifyInput, leaf: &Certificate) -> Vec<Finding> {
    input
        .names
        .iter()
        .map(|name| name_finding(leaf, name, ""))
        .collect()
}

pub(super) fn eku_finding(leaf: &Certificate, purpose: &str, required: bool) -> Finding {
    let label = oid::describe(purpose);
    let (status, reason) = match leaf.eku_allows(purpose) {
        Some(true) => (Status::Ok, format!("extended key usage includes {label}")),
        Some(false) => (
            Status::Fail,
            format!(
                "extended key usage lacks {label} (it has: {})",
                leaf.extended_key_usage
                    .iter()
                    .flatten()
                    .map(|o| oid::describe(o))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        None if required => (
            Status::Fail,
            format!("there is no extendedKeyUsage extension; it must list {label}"),
        ),
        None => (
            Status::Warn,
            format!(
                "there is no extendedKeyUsage extension, so the key may be used for any purpose; \
                 list {label} explicitly"
            ),
        ),
    };
    Finding::new("profile", status, reason).about(leaf)
}

/// The CTI client rules on a leaf: EKU with the BroadWorks OID and clientAuth, no
/// subjectAltName extension, CN in `allowed` (skipped, with a warning, when `allowed` is
/// empty). Shared with the CTI listener's client-certificate verifier.
pub fn cti_client_rules(leaf: &Certificate, allowed: &[String]) -> Vec<Finding> {
    let mut findings = vec![
        eku_finding(leaf, oid::BROADWORKS_CTI, true),
        eku_finding(leaf, oid::CLIENT_AUTH, true),
    ];
    findings.push(
        match &leaf.alt_names {
            None => Finding::new("profile", Status::Ok, "no subjectAltName extension"),
            Some(names) => {
                Finding::new(
                    "profile",
                    Status::Fail,
                    format!(
                "the certificate has a subjectAltName extension ({}); CTI client certificates \
                 must have none",
                names.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
                )
            }
        }
        .about(leaf),
    );
    let cn = leaf.common_name.clone().unwrap_or_default();
    findings.push(
        if allowed.is_empty() {
            Finding::new(
                "profile",
                Status::Warn,
                format!("CN \"{cn}\" not checked: no allow-list given (--cti-cn)"),
            )
        } else if allowed.iter().any(|a| a == &cn) {
            Finding::new(
                "profile",
                Status::Ok,
                format!("CN \"{cn}\" is in the allow-list"),
            )
        } else {
            Finding::new(
                "profile",
                Status::Fail,
                format!(
                    "CN \"{cn}\" is not in the allow-list ({})",
                    allowed.join(", ")
                ),
            )
        }
        .about(leaf),
    );
    findings
}

pub(super) fn check_profile(input: &VerifyInput, leaf: &Certificate) -> Vec<Finding> {
    let Some(profile) = input.profile else {
        return Vec::new();
    };
    match profile {
        Profile::XmppServer => {
            let mut findings = vec![eku_finding(leaf, oid::SERVER_AUTH, false)];
            if let Some(domain) = &input.xmpp_domain {
                findings.push(with_check(
                    name_finding(leaf, domain, "XMPP domain "),
                    "profile",
                ));
            }
            if let Some(fqdn) = &input.fqdn {
                findings.push(with_check(
                    name_finding(leaf, fqdn, "host FQDN "),
                    "profile",
                ));
            }
            findings
        }
        Profile::XsiServer | Profile::Server => vec![eku_finding(leaf, oid::SERVER_AUTH, false)],
        Profile::Client => vec![eku_finding(leaf, oid::CLIENT_AUTH, false)],
        Profile::CtiClient => cti_client_rules(leaf, &input.cti_allowed_cns),
    }
}

pub(super) fn check_validity(input: &VerifyInput, walk: &PathWalk) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut any_invalid = false;
    for (i, cert) in walk.path.iter().enumerate() {
        let anchor = i > 0 && is_anchor(cert, &input.trust);
        let days_left = (cert.not_after - input.at).whole_days();
        if cert.not_after < input.at || cert.not_before > input.at {
            any_invalid = true;
            if anchor {
                findings.push(
                    Finding::new(
                        "validity",
                        Status::Warn,
                        format!(
                            "the trust anchor {} is outside its validity ({} to {}); some \
                             clients refuse expired anchors",
                            cert.label(),
                            day(cert.not_before),
                            day(cert.not_after)
                        ),
                    )
                    .about(cert),
                );
            }
        } else if days_left < input.warn_days {
            findings.push(
                Finding::new(
                    "validity",
                    Status::Warn,
                    format!(
                        "{} expires on {}, in {days_left} day(s) (warning window {} days)",
                        cert.label(),
                        day(cert.not_after),
                        input.warn_days
                    ),
                )
                .about(cert),
            );
        }
    }
    if findings.is_empty() && !any_invalid {
        let leaf = &walk.path[0];
        let soonest = walk
            .path
            .iter()
            .map(|c| c.not_after)
            .min()
            .unwrap_or(leaf.not_after);
        findings.push(
            Finding::new(
                "validity",
                Status::Ok,
                format!(
                    "the leaf is valid until {} ({} days left); nothing in the chain expires \
                     before {}",
                    day(leaf.not_after),
                    (leaf.not_after - input.at).whole_days(),
                    day(soonest)
                ),
            )
            .about(leaf),
        );
    }
    findings
}

/// Extensions every validator must be able to read and that RFC 5280 constrains whatever
/// the profile (check `extension`): one that cannot be parsed, name constraints in an
/// end-entity certificate (§4.2.1.10: CA certificates only), a dNSName constraint with a
/// leading period (malformed: a DNS constraint is a domain, `example.com` covers its
/// subdomains).
pub(super) fn check_extensions(path: &[Certificate], leaf: &Certificate) -> Vec<Finding> {
    let mut findings = Vec::new();
    let fail =
        |c: &Certificate, reason: String| Finding::new("extension", Status::Fail, reason).about(c);
    for cert in path {
        for (extension, why) in &cert.unparsable_extensions {
            findings.push(fail(
                cert,
                format!(
                    "{}: its {extension} extension cannot be parsed ({why})",
                    cert.label()
                ),
            ));
        }
        let Some(constraints) = &cert.name_constraints else {
            continue;
        };
        if cert.der == leaf.der && !leaf.is_ca() {
            findings.push(fail(
                cert,
                format!(
                    "the end-entity certificate {} carries name constraints, which only CA \
                     certificates may (RFC 5280 §4.2.1.10)",
                    cert.label()
                ),
            ));
        }
        for name in constraints
            .permitted_dns
            .iter()
            .chain(&constraints.excluded_dns)
            .filter(|n| n.starts_with('.'))
        {
            findings.push(fail(
                cert,
                format!(
                    "{} has a malformed DNS name constraint \"{name}\": a DNS constraint is a \
                     domain without a leading period (\"{}\" already covers its subdomains)",
                    cert.label(),
                    name.trim_start_matches('.')
                ),
            ));
        }
    }
    findings
}

pub(super) fn lint(path: &[Certificate], leaf: &Certificate) -> Vec<Finding> {
    let mut findings = Vec::new();
    let warn =
        |c: &Certificate, reason: String| Finding::new("lint", Status::Warn, reason).about(c);
    if leaf.is_ca() {
        findings.push(warn(
            leaf,
            format!(
                "the leaf {} is a CA certificate (basicConstraints cA=true); serve an end-entity \
                 certificate instead",
                leaf.label()
            ),
        ));
    }
    for cert in path {
        if cert.signature_uses_sha1() && !cert.is_self_signed() {
            findings.push(warn(
                cert,
                format!(
                    "{} is signed with SHA-1 ({}), which is broken; reissue it with SHA-256",
                    cert.label(),
                    cert.signature_name()
                ),
            ));
        }
    }
    findings
}
