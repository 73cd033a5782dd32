//! `pki verify`: every check an admin runs on a key, a certificate chain and a trust bundle,
//! each with a verdict in plain words.
//!
//! The verdict on the chain is rustls-webpki's (`verify_for_usage`), the same code that
//! checks peers at run time. webpki reports a missing intermediate and a wrong trust bundle
//! alike as `UnknownIssuer`, so when it refuses a chain we walk the path ourselves
//! ([`walk_path`]) and say which link is broken and why: the issuer that is missing (with
//! its AIA caIssuers URL), the expired certificate and its dates, the bad signature, the
//! issuer that is not a CA, the exceeded path length, or the intermediate whose EKU does not
//! allow the purpose.
//!
//! The files: this one holds the report types and the order of the checks (key, path,
//! names, purpose, profile, validity); `verify/path.rs` the path and its diagnosis;
//! `verify/rules.rs` the leaf's rules and lint.

mod path;
mod rules;
mod strict;

use rustls_pki_types::PrivateKeyDer;
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

pub use path::{walk_path, webpki_verify, webpki_words, PathEnd, PathWalk};
pub use rules::cti_client_rules;

use path::{check_chain, check_order};
use rules::{check_extensions, check_names, check_profile, check_validity, lint};

use super::certificate::{Certificate, Origin};
use super::oid;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to report.
    Ok,
    /// Works, but an admin should look.
    Warn,
    /// Broken.
    Fail,
}

impl Status {
    /// The upper-case word printed in reports.
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// The certificate a finding is about.
#[derive(Debug, Clone, Serialize)]
pub struct Subject {
    /// Subject DN.
    pub subject: String,
    /// Serial number.
    pub serial: String,
    /// Where it was read from.
    pub source: Origin,
}

impl From<&Certificate> for Subject {
    fn from(c: &Certificate) -> Self {
        Subject {
            subject: c.subject.clone(),
            serial: c.serial.clone(),
            source: c.origin.clone(),
        }
    }
}

/// One line of a report.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Which check: `key`, `chain`, `order`, `name`, `profile`, `validity`, `extension`,
    /// `lint`, `fix-order` (and `tls`, `connect` from `pki probe`).
    pub check: &'static str,
    /// Its verdict.
    pub status: Status,
    /// Plain words.
    pub reason: String,
    /// The certificate concerned, if one.
    pub certificate: Option<Subject>,
    /// The stable id of the RFC 5280 or CA/B Forum rule broken (`rfc5280.serial.positive`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
}

impl Finding {
    /// A finding about no certificate in particular.
    pub fn new(check: &'static str, status: Status, reason: impl Into<String>) -> Self {
        Finding {
            check,
            status,
            reason: reason.into(),
            certificate: None,
            rule: None,
        }
    }

    fn about(mut self, cert: &Certificate) -> Self {
        self.certificate = Some(cert.into());
        self
    }
}

/// What a certificate is for: decides the EKU and the names required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// XMPP server: serverAuth, and both the XMPP domain and the host FQDN as SANs.
    XmppServer,
    /// XSI (HTTPS) server: serverAuth and every `--name`.
    XsiServer,
    /// BroadWorks-style CTI client: EKU with the BroadWorks OID and clientAuth, no SAN,
    /// CN in the allow-list.
    CtiClient,
    /// Any TLS server: serverAuth.
    Server,
    /// Any TLS client: clientAuth.
    Client,
}

/// The TLS purpose a chain is verified for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// id-kp-serverAuth.
    ServerAuth,
    /// id-kp-clientAuth.
    ClientAuth,
}

impl Purpose {
    fn oid(self) -> &'static str {
        match self {
            Purpose::ServerAuth => oid::SERVER_AUTH,
            Purpose::ClientAuth => oid::CLIENT_AUTH,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Purpose::ServerAuth => "serverAuth",
            Purpose::ClientAuth => "clientAuth",
        }
    }

    fn key_usage(self) -> webpki::KeyUsage {
        match self {
            Purpose::ServerAuth => webpki::KeyUsage::server_auth(),
            Purpose::ClientAuth => webpki::KeyUsage::client_auth(),
        }
    }
}

/// Everything `verify` looks at.
#[derive(Debug)]
pub struct VerifyInput {
    /// The certificate file: a leaf, or a full chain in any order.
    pub certificates: Vec<Certificate>,
    /// The private key, if it should be matched.
    pub key: Option<PrivateKeyDer<'static>>,
    /// Extra intermediates, any order, extras allowed.
    pub intermediates: Vec<Certificate>,
    /// Trust anchors.
    pub trust: Vec<Certificate>,
    /// Validation time.
    pub at: OffsetDateTime,
    /// Names each of which must be covered by a SAN.
    pub names: Vec<String>,
    /// What the certificate is for.
    pub profile: Option<Profile>,
    /// For `xmpp-server`: the XMPP domain.
    pub xmpp_domain: Option<String>,
    /// For `xmpp-server`: the host FQDN.
    pub fqdn: Option<String>,
    /// For `cti-client`: allowed CNs (empty = not checked, with a warning).
    pub cti_allowed_cns: Vec<String>,
    /// Warn when a certificate expires within this many days.
    pub warn_days: i64,
    /// RFC 5280 and CA/B Forum violations are failures, not warnings (`--strict`).
    pub strict: bool,
}

/// The result of `verify`.
#[derive(Debug)]
pub struct Report {
    /// Every finding, in the order the checks ran.
    pub findings: Vec<Finding>,
    /// The certificate taken as the leaf.
    pub leaf: Certificate,
    /// The path from the leaf towards a trust anchor, as far as it could be built.
    pub path: Vec<Certificate>,
    /// The chain a server should send: the leaf, then each intermediate, no root.
    pub served_chain: Vec<Certificate>,
    /// When the path ends short of a trust anchor, why.
    pub path_end: PathEnd,
    /// The validation time.
    pub at: OffsetDateTime,
}

impl Report {
    /// The worst status of all findings.
    pub fn status(&self) -> Status {
        super::report::verdict(&self.findings).0
    }

    /// 0 all OK, 1 warnings only, 2 any FAIL.
    pub fn exit_code(&self) -> u8 {
        super::report::verdict(&self.findings).1
    }

    /// Findings with FAIL status.
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.status == Status::Fail)
    }

    /// Adds a finding (used by callers that act on the report, e.g. writing a fixed chain).
    pub fn push(&mut self, check: &'static str, status: Status, reason: impl Into<String>) {
        self.findings.push(Finding::new(check, status, reason));
    }
}

/// Runs every check. Needs at least one certificate in `input.certificates`.
pub fn verify(input: &VerifyInput) -> Report {
    let mut findings = Vec::new();
    let key_spki = input.key.as_ref().map(public_key_of);
    let leaf_index = select_leaf(input, key_spki.as_ref().and_then(|r| r.as_ref().ok()));
    let leaf = input.certificates[leaf_index].clone();

    if let Some(spki) = &key_spki {
        findings.push(check_key(input, &leaf, spki));
    }

    let purpose = purpose_for(input.profile, &leaf);
    let walk = walk_path(
        &leaf,
        &input.certificates,
        &input.intermediates,
        &input.trust,
    );
    findings.extend(check_chain(input, &leaf, &walk, purpose));
    findings.extend(check_order(input, leaf_index, &walk));
    findings.extend(check_names(input, &leaf));
    findings.extend(check_profile(input, &leaf));
    findings.extend(check_validity(input, &walk));
    findings.extend(check_extensions(&walk.path, &leaf));
    findings.extend(lint(&walk.path, &leaf));
    let last = walk.path.len() - 1;
    for (i, cert) in walk.path.iter().enumerate() {
        let role = match i {
            0 => strict::Role::Leaf,
            _ if i == last && cert.is_self_signed() => strict::Role::Root,
            _ => strict::Role::Intermediate,
        };
        let anchor = i > 0 && path::is_anchor(cert, &input.trust);
        findings.extend(strict_findings(cert, role, anchor, input.at, input.strict));
    }

    // Only self-signed roots are left out: an intermediate that happens to sit in the trust
    // bundle must still be sent to peers that do not have it.
    let served_chain = walk
        .path
        .iter()
        .filter(|c| !c.is_self_signed())
        .cloned()
        .collect();
    Report {
        findings,
        leaf,
        served_chain,
        path: walk.path,
        path_end: walk.end,
        at: input.at,
    }
}

/// The strict rules `cert` breaks in `role`, as findings (check `lint`): warnings, or
/// failures when `strict`.
fn strict_findings(
    cert: &Certificate,
    role: strict::Role,
    anchor: bool,
    at: OffsetDateTime,
    strict: bool,
) -> Vec<Finding> {
    let status = if strict { Status::Fail } else { Status::Warn };
    strict::violations(cert, role, anchor, at)
        .into_iter()
        .map(|v| Finding {
            rule: Some(v.rule),
            ..Finding::new("lint", status, v.reason).about(cert)
        })
        .collect()
}

/// `pki lint`: the strict rules on each certificate by its own role (a self-signed root, a
/// CA, or a leaf), as failures.
pub fn lint_certificates(certificates: &[Certificate], at: OffsetDateTime) -> Vec<Finding> {
    let mut findings = Vec::new();
    for cert in certificates {
        let role = strict::Role::of(cert);
        let broken = strict_findings(cert, role, false, at, true);
        if broken.is_empty() {
            findings.push(
                Finding::new(
                    "lint",
                    Status::Ok,
                    format!("{} breaks none of the rules", cert.label()),
                )
                .about(cert),
            );
        }
        findings.extend(broken);
    }
    findings
}

/// The leaf: the certificate matching the key if one was given; otherwise the certificate
/// in the file that issued none of the others, preferring a non-CA; otherwise the first.
fn select_leaf(input: &VerifyInput, key_spki: Option<&PublicKeyBits>) -> usize {
    let certs = &input.certificates;
    if let Some(key) = key_spki {
        if let Some(i) = certs.iter().position(|c| key.matches(&c.spki)) {
            return i;
        }
    }
    let pool: Vec<&Certificate> = certs.iter().chain(&input.intermediates).collect();
    let issues_another = |c: &Certificate| {
        pool.iter()
            .any(|other| other.der != c.der && !other.is_self_signed() && other.names_as_issuer(c))
    };
    let candidates: Vec<usize> = (0..certs.len())
        .filter(|&i| !issues_another(&certs[i]))
        .collect();
    candidates
        .iter()
        .copied()
        .find(|&i| !certs[i].is_ca())
        .or_else(|| candidates.first().copied())
        .unwrap_or(0)
}

fn purpose_for(profile: Option<Profile>, leaf: &Certificate) -> Purpose {
    match profile {
        Some(Profile::XmppServer | Profile::XsiServer | Profile::Server) => Purpose::ServerAuth,
        Some(Profile::CtiClient | Profile::Client) => Purpose::ClientAuth,
        None => match (
            leaf.eku_allows(oid::SERVER_AUTH),
            leaf.eku_allows(oid::CLIENT_AUTH),
        ) {
            (Some(false), Some(true)) => Purpose::ClientAuth,
            _ => Purpose::ServerAuth,
        },
    }
}

/// The public key of a private key, as algorithm OID + key bits, for comparing with a
/// certificate's SubjectPublicKeyInfo regardless of encoding details.
#[derive(Debug, Clone)]
struct PublicKeyBits {
    algorithm: String,
    bits: Vec<u8>,
}

impl PublicKeyBits {
    fn from_spki(spki: &[u8]) -> Option<Self> {
        let (_, parsed) = SubjectPublicKeyInfo::from_der(spki).ok()?;
        Some(PublicKeyBits {
            algorithm: parsed.algorithm.algorithm.to_id_string(),
            bits: parsed.subject_public_key.data.to_vec(),
        })
    }

    fn matches(&self, spki: &[u8]) -> bool {
        PublicKeyBits::from_spki(spki)
            .is_some_and(|c| c.algorithm == self.algorithm && c.bits == self.bits)
    }
}

fn public_key_of(key: &PrivateKeyDer<'static>) -> Result<PublicKeyBits, String> {
    let signing_key = rustls::crypto::aws_lc_rs::sign::any_supported_type(key)
        .map_err(|e| format!("the private key cannot be used: {e}"))?;
    let spki = signing_key
        .public_key()
        .ok_or_else(|| "the public key cannot be derived from the private key".to_owned())?;
    PublicKeyBits::from_spki(spki.as_ref())
        .ok_or_else(|| "the private key's public half cannot be read".to_owned())
}

fn check_key(
    input: &VerifyInput,
    leaf: &Certificate,
    key: &Result<PublicKeyBits, String>,
) -> Finding {
    let key = match key {
        Ok(key) => key,
        Err(reason) => return Finding::new("key", Status::Fail, reason.clone()),
    };
    if key.matches(&leaf.spki) {
        return Finding::new(
            "key",
            Status::Ok,
            format!(
                "the private key matches the certificate {} ({})",
                leaf.label(),
                leaf.key
            ),
        )
        .about(leaf);
    }
    let elsewhere = input
        .certificates
        .iter()
        .chain(&input.intermediates)
        .find(|c| key.matches(&c.spki))
        .map(|c| format!("; it belongs to {} ({})", c.label(), c.origin))
        .unwrap_or_default();
    Finding::new(
        "key",
        Status::Fail,
        format!(
            "the private key does not match the certificate {} (certificate key: {}){elsewhere}",
            leaf.label(),
            leaf.key
        ),
    )
    .about(leaf)
}

fn with_check(mut finding: Finding, check: &'static str) -> Finding {
    finding.check = check;
    finding
}

/// A time in RFC 3339, for JSON.
pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A date as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn day(t: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| t.to_string())
}
