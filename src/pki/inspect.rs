//! `pki inspect`: what is in a certificate, in the words admins search for — with EKU OIDs
//! printed correctly and named where known (the BroadWorks CTI OID by name).

use serde::Serialize;
use time::OffsetDateTime;

use sha2::Digest as _;

use super::certificate::{colon_hex, AltName, BasicConstraints, Certificate, KeyKind};
use super::oid;
use super::verify::{day, rfc3339};

/// One extended key usage purpose.
#[derive(Debug, Serialize)]
pub struct Purpose {
    /// Dotted OID.
    pub oid: String,
    /// Well-known name, if any.
    pub name: Option<&'static str>,
}

/// Everything `inspect` shows about one certificate.
#[derive(Debug, Serialize)]
pub struct Description {
    /// File and position.
    pub source: String,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial, colon-separated hex.
    pub serial: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Whole days until expiry (negative once expired).
    pub days_left: i64,
    /// Public key.
    pub key: KeyKind,
    /// Signature algorithm name.
    pub signature_algorithm: String,
    /// Self-signed.
    pub self_signed: bool,
    /// Subject alternative names (`null` = no extension).
    pub subject_alt_names: Option<Vec<AltName>>,
    /// keyUsage bits.
    pub key_usage: Option<Vec<String>>,
    /// extendedKeyUsage purposes.
    pub extended_key_usage: Option<Vec<Purpose>>,
    /// basicConstraints.
    pub basic_constraints: Option<BasicConstraints>,
    /// subjectKeyIdentifier.
    pub subject_key_id: Option<String>,
    /// authorityKeyIdentifier.
    pub authority_key_id: Option<String>,
    /// AIA caIssuers URLs.
    pub ca_issuer_urls: Vec<String>,
    /// AIA OCSP URLs.
    pub ocsp_urls: Vec<String>,
    /// SHA-256 of the DER, colon-separated hex (what browsers and `openssl x509
    /// -fingerprint -sha256` show).
    pub sha256_fingerprint: String,
    /// SHA-1 of the DER, colon-separated hex (what older tools show).
    pub sha1_fingerprint: String,
}

/// Describes `cert` as of `now`.
pub fn describe(cert: &Certificate, now: OffsetDateTime) -> Description {
    Description {
        source: cert.origin.to_string(),
        subject: cert.subject.clone(),
        issuer: cert.issuer.clone(),
        serial: cert.serial.clone(),
        not_before: rfc3339(cert.not_before),
        not_after: rfc3339(cert.not_after),
        days_left: (cert.not_after - now).whole_days(),
        key: cert.key.clone(),
        signature_algorithm: cert.signature_name(),
        self_signed: cert.is_self_signed(),
        subject_alt_names: cert.alt_names.clone(),
        key_usage: cert.key_usage.clone(),
        extended_key_usage: cert.extended_key_usage.as_ref().map(|ekus| {
            ekus.iter()
                .map(|o| Purpose {
                    oid: o.clone(),
                    name: oid::eku_name(o),
                })
                .collect()
        }),
        basic_constraints: cert.basic_constraints,
        subject_key_id: cert.subject_key_id.clone(),
        authority_key_id: cert.authority_key_id.clone(),
        ca_issuer_urls: cert.ca_issuer_urls.clone(),
        ocsp_urls: cert.ocsp_urls.clone(),
        sha256_fingerprint: super::certificate::sha256_fingerprint(cert.der.as_ref()),
        sha1_fingerprint: colon_hex(&sha1::Sha1::digest(cert.der.as_ref())),
    }
}

/// The human form of one certificate.
pub fn text(cert: &Certificate, now: OffsetDateTime) -> String {
    let d = describe(cert, now);
    let mut out = format!("certificate {}\n", d.source);
    let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<20} {v}\n"));
    line("subject", d.subject);
    line(
        "issuer",
        if cert.is_self_signed() {
            format!("{} (self-signed)", d.issuer)
        } else {
            d.issuer
        },
    );
    line("serial", d.serial);
    line("not before", day(cert.not_before));
    let left = if d.days_left < 0 {
        format!("expired {} days ago", -d.days_left)
    } else {
        format!("{} days left", d.days_left)
    };
    line("not after", format!("{} ({left})", day(cert.not_after)));
    line("public key", d.key.to_string());
    line("signature", d.signature_algorithm);
    line(
        "subject alt names",
        match &d.subject_alt_names {
            None => "(no extension)".to_owned(),
            Some(names) if names.is_empty() => "(empty)".to_owned(),
            Some(names) => names
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        },
    );
    line(
        "key usage",
        d.key_usage
            .map(|k| k.join(", "))
            .unwrap_or_else(|| "(no extension)".to_owned()),
    );
    line(
        "extended key usage",
        match &cert.extended_key_usage {
            None => "(no extension)".to_owned(),
            Some(ekus) => ekus
                .iter()
                .map(|o| oid::describe(o))
                .collect::<Vec<_>>()
                .join(", "),
        },
    );
    line(
        "basic constraints",
        match d.basic_constraints {
            None => "(no extension)".to_owned(),
            Some(BasicConstraints {
                ca: true,
                path_len: Some(n),
            }) => format!("CA, path length {n}"),
            Some(BasicConstraints {
                ca: true,
                path_len: None,
            }) => "CA".to_owned(),
            Some(BasicConstraints { ca: false, .. }) => "not a CA".to_owned(),
        },
    );
    line(
        "subject key id",
        d.subject_key_id.unwrap_or_else(|| "(none)".to_owned()),
    );
    line(
        "authority key id",
        d.authority_key_id.unwrap_or_else(|| "(none)".to_owned()),
    );
    if !d.ca_issuer_urls.is_empty() {
        line("AIA caIssuers", d.ca_issuer_urls.join(", "));
    }
    if !d.ocsp_urls.is_empty() {
        line("AIA OCSP", d.ocsp_urls.join(", "));
    }
    line("SHA-256 fingerprint", d.sha256_fingerprint);
    line("SHA-1 fingerprint", d.sha1_fingerprint);
    out
}
