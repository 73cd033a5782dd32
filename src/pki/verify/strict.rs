//! The RFC 5280 and CA/Browser Forum Baseline Requirements rules, each with a stable id
//! (`rfc5280.…`, `cabf.…`) in the report and its JSON. `pki verify` runs them on the path
//! (warnings; failures with `--strict`), `pki lint` on each certificate of its files
//! (failures). A certificate's role decides which apply: the leaf, an intermediate, or a
//! root (self-signed).
//!
//! Public suffixes come from the `psl` crate (Mozilla's Public Suffix List compiled in;
//! a Bridgehead release carries the list of its build).

use std::net::IpAddr;

use time::OffsetDateTime;

use crate::pki::certificate::{AltName, Certificate, KeyKind};
use crate::pki::oid;

/// Where a certificate sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The end-entity certificate.
    Leaf,
    /// A CA below the root.
    Intermediate,
    /// A self-signed root.
    Root,
}

impl Role {
    /// The role a certificate has on its own (for `pki lint`).
    pub(crate) fn of(cert: &Certificate) -> Self {
        if cert.is_self_signed() {
            Role::Root
        } else if cert.is_ca() {
            Role::Intermediate
        } else {
            Role::Leaf
        }
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// Its stable id.
    pub rule: &'static str,
    /// Plain words.
    pub reason: String,
}

const BASIC_CONSTRAINTS: &str = "2.5.29.19";
const SUBJECT_ALT_NAME: &str = "2.5.29.17";
const EXT_KEY_USAGE: &str = "2.5.29.37";
const SUBJECT_KEY_ID: &str = "2.5.29.14";
const AUTHORITY_KEY_ID: &str = "2.5.29.35";
const DSA: &str = "1.2.840.10040.4.1";

/// Every rule `cert` breaks in `role`; `anchor` when it is the trust anchor of a path
/// validated at `at`.
pub(crate) fn violations(
    cert: &Certificate,
    role: Role,
    anchor: bool,
    at: OffsetDateTime,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut broken = |rule: &'static str, reason: String| out.push(Violation { rule, reason });
    let label = cert.label();
    let encoding = &cert.encoding;
    let critical = |oid: &str| encoding.critical.iter().any(|c| c == oid);
    let is_ca_role = role != Role::Leaf;

    // Serial numbers (RFC 5280 §4.1.2.2).
    let serial = &encoding.serial_bytes;
    if serial.iter().all(|b| *b == 0) || serial.first().is_some_and(|b| b & 0x80 != 0) {
        broken(
            "rfc5280.serial.positive",
            format!(
                "{label} has a serial number that is zero or negative ({})",
                cert.serial
            ),
        );
    }
    if serial.len() > 20 {
        broken(
            "rfc5280.serial.length",
            format!(
                "{label} has a serial number of {} octets (at most 20)",
                serial.len()
            ),
        );
    }

    // Key identifiers (§4.2.1.1, §4.2.1.2).
    if is_ca_role && cert.subject_key_id.is_none() {
        broken(
            "rfc5280.ski.missing",
            format!("the CA {label} has no subjectKeyIdentifier"),
        );
    }
    if role != Role::Root && cert.authority_key_id.is_none() {
        broken(
            "rfc5280.aki.missing",
            format!(
                "{label} has no authorityKeyIdentifier, so clients cannot tell which issuer key \
                 signed it"
            ),
        );
    }
    for (oid, name) in [
        (SUBJECT_KEY_ID, "subjectKeyIdentifier"),
        (AUTHORITY_KEY_ID, "authorityKeyIdentifier"),
    ] {
        if critical(oid) {
            broken(
                if oid == SUBJECT_KEY_ID {
                    "rfc5280.ski.critical"
                } else {
                    "rfc5280.aki.critical"
                },
                format!("{label} marks its {name} critical, which it must not"),
            );
        }
    }
    if role == Role::Root {
        if let (Some(aki), Some(ski)) = (&cert.authority_key_id, &cert.subject_key_id) {
            if aki != ski {
                broken(
                    "rfc5280.aki.root-mismatch",
                    format!("the root {label} has an authorityKeyIdentifier ({aki}) that is not its own subjectKeyIdentifier ({ski})"),
                );
            }
        }
    }
    if encoding.aki_issuer_or_serial {
        broken(
            "cabf.aki.key-id-only",
            format!(
                "{label} has authorityCertIssuer or authorityCertSerialNumber in its \
                 authorityKeyIdentifier; only the keyIdentifier may be there"
            ),
        );
    }

    // Extensions nobody can process (§4.2).
    for unknown in &encoding.unknown_critical {
        broken(
            "rfc5280.extension.unknown-critical",
            format!("{label} has a critical extension {unknown} that validators do not know, so they must refuse it"),
        );
    }

    // CA extensions (§4.2.1.3, §4.2.1.9).
    let cert_sign = cert.key_usage.as_ref().is_some_and(|ku| {
        ku.iter()
            .any(|u| u == "Key Cert Sign" || u == "keyCertSign")
    });
    match role {
        Role::Root if !critical(BASIC_CONSTRAINTS) || !cert.is_ca() => broken(
            "rfc5280.root.basic-constraints",
            format!("the root {label} lacks a critical basicConstraints with cA=true"),
        ),
        Role::Leaf if cert_sign => broken(
            "rfc5280.leaf.key-cert-sign",
            format!("the leaf {label} has keyCertSign in its keyUsage"),
        ),
        _ => {}
    }
    if is_ca_role && cert.is_ca() && cert.key_usage.is_some() && !cert_sign {
        broken(
            "rfc5280.ca.key-usage",
            format!("the CA {label} has a keyUsage without keyCertSign"),
        );
    }

    // Extended key usage (BR §7.1.2).
    match (role, &cert.extended_key_usage) {
        (Role::Leaf, None) => broken(
            "cabf.leaf.eku-missing",
            format!("the leaf {label} has no extendedKeyUsage"),
        ),
        (Role::Leaf, Some(ekus)) if ekus.iter().any(|e| e == oid::ANY_EKU) => broken(
            "cabf.leaf.eku-any",
            format!("the leaf {label} allows anyExtendedKeyUsage"),
        ),
        (Role::Root, Some(_)) => broken(
            "cabf.root.eku",
            format!("the root {label} has an extendedKeyUsage, which roots must not"),
        ),
        _ => {}
    }
    if role == Role::Leaf && critical(EXT_KEY_USAGE) {
        broken(
            "cabf.leaf.eku-critical",
            format!("the leaf {label} marks its extendedKeyUsage critical"),
        );
    }

    // Subject and names (§4.1.2.6, §4.2.1.6; BR §7.1.4).
    if encoding.subject_empty && (is_ca_role || !critical(SUBJECT_ALT_NAME)) {
        broken(
            if is_ca_role {
                "rfc5280.ca.subject-empty"
            } else {
                "rfc5280.subject.empty-without-critical-san"
            },
            format!(
                "{label} has an empty subject{}",
                if is_ca_role {
                    ", which a CA must not"
                } else {
                    " and its subjectAltName is not critical"
                }
            ),
        );
    }
    // The Baseline Requirements' name rules are for TLS server certificates (a CTI
    // client certificate, clientAuth only, names its application in the CN and has no SAN).
    if role == Role::Leaf && cert.eku_allows(oid::SERVER_AUTH) != Some(false) {
        let sans = cert.alt_names.as_deref().unwrap_or_default();
        if let Some(cn) = &cert.common_name {
            if !sans.iter().any(|san| cn_matches(cn, san)) {
                broken(
                    "cabf.cn.in-san",
                    format!("the commonName \"{cn}\" of {label} is not one of its subjectAltNames"),
                );
            }
        }
        for san in sans {
            if let AltName::Dns(name) = san {
                if name.contains('_') {
                    broken(
                        "cabf.dns.underscore",
                        format!("{label} names \"{name}\", a DNS name with an underscore"),
                    );
                }
                if let Some(base) = name.strip_prefix("*.") {
                    if is_public_suffix(base) {
                        broken(
                            "cabf.dns.wildcard-public-suffix",
                            format!(
                                "{label} names \"{name}\", a wildcard over the public suffix \
                                 \"{base}\""
                            ),
                        );
                    }
                }
            }
        }
    }

    // Keys (BR §6.1.5).
    match &cert.key {
        KeyKind::Rsa { bits } if *bits < 2048 => broken(
            "cabf.key.rsa-min-2048",
            format!("{label} has a weak RSA key of {bits} bits (use at least 2048)"),
        ),
        KeyKind::Rsa { bits } if bits % 8 != 0 => broken(
            "cabf.key.rsa-modulus-multiple-of-8",
            format!("{label} has an RSA modulus of {bits} bits, not a multiple of 8"),
        ),
        KeyKind::Ec { curve, .. } if curve == "P-192" => broken(
            "cabf.key.p192",
            format!("{label} has a P-192 key, which is not allowed"),
        ),
        KeyKind::Other { oid } if oid == DSA => broken(
            "cabf.key.dsa",
            format!("{label} has a DSA key, which is not allowed"),
        ),
        _ => {}
    }

    // The anchor itself (a validator takes it as given; a strict one does not).
    if anchor && cert.not_after < at {
        broken(
            "rfc5280.anchor.expired",
            format!("the trust anchor {label} has expired"),
        );
    }
    out
}

/// Whether `name` is itself a public suffix (`co.uk`, `com`, `github.io`).
fn is_public_suffix(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    psl::suffix_str(&name) == Some(name.as_str())
}

/// Whether the commonName `cn` is the subjectAltName `san`: IP addresses in their
/// canonical form, DNS names without regard to case and U-labels against A-labels.
fn cn_matches(cn: &str, san: &AltName) -> bool {
    match san {
        AltName::Ip(ip) => cn.parse::<IpAddr>().is_ok_and(|a| a == *ip),
        AltName::Dns(name) => {
            let ascii =
                |n: &str| idna::domain_to_ascii(n).unwrap_or_else(|_| n.to_ascii_lowercase());
            cn.eq_ignore_ascii_case(name) || ascii(cn) == ascii(name)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_suffixes_are_known() {
        for suffix in ["com", "co.uk", "CO.UK", "github.io"] {
            assert!(is_public_suffix(suffix), "{suffix}");
        }
        for name in ["example.com", "example.co.uk", "xmpp.example.com"] {
            assert!(!is_public_suffix(name), "{name}");
        }
    }

    #[test]
    fn common_names_match_san_entries_in_their_canonical_forms() {
        assert!(cn_matches(
            "Host.Example.COM",
            &AltName::Dns("host.example.com".into())
        ));
        assert!(cn_matches(
            "bücher.example",
            &AltName::Dns("xn--bcher-kva.example".into())
        ));
        assert!(cn_matches(
            "2001:0db8:0:0::1",
            &AltName::Ip("2001:db8::1".parse().unwrap())
        ));
        assert!(!cn_matches(
            "host.example.com",
            &AltName::Dns("other.example.com".into())
        ));
        assert!(!cn_matches(
            "192.0.2.1",
            &AltName::Dns("192.0.2.1.example".into())
        ));
    }
}
