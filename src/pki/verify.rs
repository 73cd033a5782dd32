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

use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::certificate::{Certificate, KeyKind, Origin};
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
    /// Which check: `key`, `chain`, `order`, `name`, `profile`, `validity`, `lint`, `fix-order`.
    pub check: &'static str,
    /// Its verdict.
    pub status: Status,
    /// Plain words.
    pub reason: String,
    /// The certificate concerned, if one.
    pub certificate: Option<Subject>,
}

impl Finding {
    fn new(check: &'static str, status: Status, reason: impl Into<String>) -> Self {
        Finding {
            check,
            status,
            reason: reason.into(),
            certificate: None,
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
        self.findings
            .iter()
            .map(|f| f.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    /// 0 all OK, 1 warnings only, 2 any FAIL.
    pub fn exit_code(&self) -> u8 {
        match self.status() {
            Status::Ok => 0,
            Status::Warn => 1,
            Status::Fail => 2,
        }
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
    findings.extend(lint(&walk.path, &leaf));

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

/// How a path walk ended.
#[derive(Debug, Clone)]
pub enum PathEnd {
    /// At a certificate of the trust bundle.
    Anchor,
    /// At a self-signed certificate that is not in the trust bundle.
    UntrustedRoot,
    /// No certificate anywhere is named as the issuer of the last one.
    MissingIssuer {
        /// The issuer DN that was looked for.
        issuer: String,
        /// Where to download it, from the child's AIA.
        ca_issuer_urls: Vec<String>,
    },
    /// A certificate has the right name but its key does not verify the signature.
    BadSignature {
        /// The would-be issuer.
        candidate: Box<Certificate>,
    },
    /// The path is longer than any sane chain, or loops.
    TooLong,
}

/// A path from the leaf towards a trust anchor.
#[derive(Debug, Clone)]
pub struct PathWalk {
    /// leaf first; the anchor last when `end` is `Anchor`.
    pub path: Vec<Certificate>,
    /// How the walk ended.
    pub end: PathEnd,
}

const MAX_PATH: usize = 10;

fn is_anchor(c: &Certificate, trust: &[Certificate]) -> bool {
    trust
        .iter()
        .any(|t| t.subject_raw == c.subject_raw && t.spki == c.spki)
}

/// Builds the path from `leaf` by following issuer names and checking signatures, preferring
/// trust anchors, then the certificate file, then `--intermediates`.
pub fn walk_path(
    leaf: &Certificate,
    file: &[Certificate],
    intermediates: &[Certificate],
    trust: &[Certificate],
) -> PathWalk {
    let mut path = vec![leaf.clone()];
    loop {
        let current = path.last().cloned().expect("path starts with the leaf");
        if path.len() > 1 && is_anchor(&current, trust) {
            return PathWalk {
                path,
                end: PathEnd::Anchor,
            };
        }
        if current.is_self_signed() {
            let end = if is_anchor(&current, trust) {
                PathEnd::Anchor
            } else {
                PathEnd::UntrustedRoot
            };
            return PathWalk { path, end };
        }
        if path.len() >= MAX_PATH {
            return PathWalk {
                path,
                end: PathEnd::TooLong,
            };
        }
        let candidates: Vec<&Certificate> = trust
            .iter()
            .chain(file)
            .chain(intermediates)
            .filter(|c| current.names_as_issuer(c) && c.der != current.der)
            .filter(|c| !path.iter().any(|p| p.der == c.der))
            .collect();
        match candidates.iter().find(|c| current.is_signed_by(c)) {
            Some(issuer) => path.push((*issuer).clone()),
            None => {
                let end = match candidates.first() {
                    Some(candidate) => PathEnd::BadSignature {
                        candidate: Box::new((*candidate).clone()),
                    },
                    None => PathEnd::MissingIssuer {
                        issuer: current.issuer.clone(),
                        ca_issuer_urls: current.ca_issuer_urls.clone(),
                    },
                };
                return PathWalk { path, end };
            }
        }
    }
}

fn unix_time(at: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(at.unix_timestamp()).unwrap_or(0),
    ))
}

/// rustls-webpki's verdict on the chain for `purpose`.
pub fn webpki_verify(
    leaf: &Certificate,
    intermediates: &[CertificateDer<'_>],
    trust: &[Certificate],
    at: OffsetDateTime,
    purpose: Purpose,
) -> Result<(), webpki::Error> {
    let anchors: Vec<_> = trust
        .iter()
        .filter_map(|t| webpki::anchor_from_trusted_cert(&t.der).ok())
        .collect();
    let end_entity = webpki::EndEntityCert::try_from(&leaf.der)?;
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            unix_time(at),
            purpose.key_usage(),
            None,
            None,
        )
        .map(|_| ())
}

fn check_chain(
    input: &VerifyInput,
    leaf: &Certificate,
    walk: &PathWalk,
    purpose: Purpose,
) -> Vec<Finding> {
    if input.trust.is_empty() {
        return vec![Finding::new(
            "chain",
            Status::Fail,
            "the trust bundle holds no usable certificate",
        )];
    }
    let intermediates: Vec<CertificateDer<'_>> = input
        .certificates
        .iter()
        .chain(&input.intermediates)
        .filter(|c| c.der != leaf.der)
        .map(|c| c.der.clone())
        .collect();
    match webpki_verify(leaf, &intermediates, &input.trust, input.at, purpose) {
        Ok(()) => {
            let route: Vec<String> = walk.path.iter().map(Certificate::label).collect();
            vec![Finding::new(
                "chain",
                Status::Ok,
                format!(
                    "the full chain verifies for {}: {} (trust anchor from {})",
                    purpose.name(),
                    route.join(" <- "),
                    walk.path
                        .last()
                        .map(|c| c.origin.file.as_str())
                        .unwrap_or("the trust bundle"),
                ),
            )
            .about(leaf)]
        }
        Err(error) => {
            let mut findings = diagnose(input, walk, purpose);
            if findings.is_empty() {
                findings.push(
                    Finding::new(
                        "chain",
                        Status::Fail,
                        format!("the chain does not verify: {}", webpki_words(&error)),
                    )
                    .about(leaf),
                );
            }
            findings
        }
    }
}

/// Explains why a chain does not verify, link by link.
fn diagnose(input: &VerifyInput, walk: &PathWalk, purpose: Purpose) -> Vec<Finding> {
    let mut findings = Vec::new();
    let fail =
        |c: &Certificate, reason: String| Finding::new("chain", Status::Fail, reason).about(c);
    for (i, cert) in walk.path.iter().enumerate() {
        let anchor = i > 0 && is_anchor(cert, &input.trust);
        if !anchor {
            if cert.not_after < input.at {
                findings.push(fail(
                    cert,
                    format!(
                        "{} expired on {} ({} days before the validation time {})",
                        cert.label(),
                        day(cert.not_after),
                        (input.at - cert.not_after).whole_days(),
                        day(input.at)
                    ),
                ));
            } else if cert.not_before > input.at {
                findings.push(fail(
                    cert,
                    format!(
                        "{} is not valid yet: its validity starts {} ({} days after the \
                         validation time {})",
                        cert.label(),
                        day(cert.not_before),
                        (cert.not_before - input.at).whole_days(),
                        day(input.at)
                    ),
                ));
            }
        }
        if i == 0 {
            continue;
        }
        let child = &walk.path[i - 1];
        if !anchor && !cert.is_ca() {
            findings.push(fail(
                cert,
                format!(
                    "{} issued {} but is not a CA (basicConstraints cA is {})",
                    cert.label(),
                    child.label(),
                    if cert.basic_constraints.is_some() {
                        "false"
                    } else {
                        "absent"
                    }
                ),
            ));
        }
        let below = i.saturating_sub(1);
        if let Some(limit) = cert.basic_constraints.and_then(|bc| bc.path_len) {
            if !anchor && below > limit as usize {
                findings.push(fail(
                    cert,
                    format!(
                        "path length exceeded: {} allows {limit} intermediate(s) below it, the \
                         chain has {below}",
                        cert.label()
                    ),
                ));
            }
        }
        if !anchor && cert.eku_allows(purpose.oid()) == Some(false) {
            let allowed: Vec<String> = cert
                .extended_key_usage
                .iter()
                .flatten()
                .map(|o| oid::describe(o))
                .collect();
            findings.push(fail(
                cert,
                format!(
                    "the intermediate {} restricts its extended key usage to {}, so it cannot \
                     issue certificates for {} ({})",
                    cert.label(),
                    allowed.join(", "),
                    purpose.name(),
                    purpose.oid()
                ),
            ));
        }
    }
    let last = walk.path.last().expect("path has the leaf");
    match &walk.end {
        PathEnd::Anchor => {}
        PathEnd::UntrustedRoot => findings.push(fail(
            last,
            format!(
                "the chain ends at the root {}, which is not in the trust bundle ({}); the \
                 bundle may be the wrong one",
                last.label(),
                trust_label(input)
            ),
        )),
        PathEnd::MissingIssuer {
            issuer,
            ca_issuer_urls,
        } => {
            let mut reason = format!(
                "missing issuer: no certificate in the chain, the intermediates or the trust \
                 bundle ({}) is named \"{issuer}\", the issuer of {}",
                trust_label(input),
                last.label()
            );
            if ca_issuer_urls.is_empty() {
                reason.push_str("; the certificate names no AIA caIssuers URL to fetch it from");
            }
            if last.is_ca() {
                reason.push_str(&format!(
                    "; if \"{issuer}\" is your root CA, the trust bundle does not hold it: is it \
                     the right bundle?"
                ));
            } else {
                reason.push_str(&format!(
                    "; download it from its AIA caIssuers URL {} and add it to the chain or pass \
                     it with --intermediates",
                    ca_issuer_urls.join(", ")
                ));
            }
            findings.push(fail(last, reason));
        }
        PathEnd::BadSignature { candidate } => findings.push(fail(
            last,
            format!(
                "bad signature: {} names {} ({}) as its issuer, but that certificate's key does \
                 not verify its signature (a re-keyed CA or a forged certificate)",
                last.label(),
                candidate.label(),
                candidate.origin
            ),
        )),
        PathEnd::TooLong => findings.push(fail(
            last,
            format!("the chain is longer than {MAX_PATH} certificates or loops"),
        )),
    }
    findings
}

fn trust_label(input: &VerifyInput) -> String {
    input
        .trust
        .first()
        .map(|c| c.origin.file.clone())
        .unwrap_or_else(|| "empty".to_owned())
}

/// rustls-webpki errors in plain words (OIDs are not taken from its Debug output).
pub fn webpki_words(error: &webpki::Error) -> String {
    use webpki::Error as E;
    match error {
        E::UnknownIssuer => "no path to a trust anchor (unknown issuer)".to_owned(),
        E::CertExpired { .. } => "a certificate has expired".to_owned(),
        E::CertNotValidYet { .. } => "a certificate is not valid yet".to_owned(),
        E::InvalidSignatureForPublicKey => "a signature does not verify".to_owned(),
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "a certificate uses a signature algorithm that is not supported".to_owned()
        }
        E::CaUsedAsEndEntity => "the leaf is a CA certificate".to_owned(),
        E::EndEntityUsedAsCa => "an issuing certificate is not a CA".to_owned(),
        E::PathLenConstraintViolated => "a path length constraint is exceeded".to_owned(),
        E::RequiredEkuNotFoundContext(_) => {
            "a certificate's extended key usage does not allow this purpose".to_owned()
        }
        E::NameConstraintViolation => "a CA's name constraints forbid the leaf's names".to_owned(),
        E::UnsupportedCertVersion => "a certificate is not X.509 version 3".to_owned(),
        E::UnsupportedCriticalExtension => {
            "a certificate has a critical extension that is not supported".to_owned()
        }
        E::BadDer | E::BadDerTime => "a certificate is malformed (bad DER)".to_owned(),
        other => format!("{other:?}"),
    }
}

fn check_order(input: &VerifyInput, leaf_index: usize, walk: &PathWalk) -> Vec<Finding> {
    let file = &input.certificates;
    let file_name = file[0].origin.file.clone();
    let mut findings = Vec::new();
    let warn =
        |c: &Certificate, reason: String| Finding::new("order", Status::Warn, reason).about(c);
    if leaf_index != 0 {
        findings.push(
            Finding::new(
                "order",
                Status::Fail,
                format!(
                    "the leaf {} is #{} in {file_name}, not first: a server sends the first \
                     certificate as its own, so clients would see {} instead (fix with \
                     --fix-order OUT)",
                    file[leaf_index].label(),
                    leaf_index + 1,
                    file[0].label()
                ),
            )
            .about(&file[leaf_index]),
        );
    }
    let position_in_path = |c: &Certificate| walk.path.iter().position(|p| p.der == c.der);
    let mut last_position = 0;
    for (i, cert) in file.iter().enumerate() {
        if let Some(first) = file[..i].iter().position(|c| c.der == cert.der) {
            findings.push(warn(
                cert,
                format!(
                    "#{} in {file_name} repeats #{} ({})",
                    i + 1,
                    first + 1,
                    cert.label()
                ),
            ));
            continue;
        }
        if i == leaf_index {
            continue;
        }
        if cert.is_self_signed() {
            findings.push(warn(
                cert,
                format!(
                    "#{} in {file_name} is the self-signed root {}: a served chain should not \
                     include it, clients must already trust it",
                    i + 1,
                    cert.label()
                ),
            ));
            continue;
        }
        match position_in_path(cert) {
            None => findings.push(warn(
                cert,
                format!(
                    "#{} in {file_name} ({}) is not part of the leaf's chain: an unrelated extra \
                     certificate",
                    i + 1,
                    cert.label()
                ),
            )),
            Some(p) if p < last_position => findings.push(warn(
                cert,
                format!(
                    "#{} in {file_name} ({}) is out of order: each certificate should be followed \
                     by its issuer",
                    i + 1,
                    cert.label()
                ),
            )),
            Some(p) => last_position = p,
        }
    }
    let missing: Vec<String> = walk
        .path
        .iter()
        .skip(1)
        .filter(|c| !c.is_self_signed())
        .filter(|c| !file.iter().any(|f| f.der == c.der))
        .map(Certificate::label)
        .collect();
    if !missing.is_empty() {
        findings.push(Finding::new(
            "order",
            Status::Warn,
            format!(
                "{file_name} lacks the intermediate(s) {} found elsewhere; a server must send \
                 them (--fix-order OUT writes the complete chain)",
                missing.join(", ")
            ),
        ));
    }
    if findings.is_empty() {
        findings.push(Finding::new(
            "order",
            Status::Ok,
            format!(
                "{file_name} is in order: the leaf first, then each issuer ({} certificate(s))",
                file.len()
            ),
        ));
    }
    findings
}

fn name_covered(leaf: &Certificate, name: &str) -> Result<bool, String> {
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

fn name_finding(leaf: &Certificate, name: &str, what: &str) -> Finding {
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

fn check_names(input: &VerifyInput, leaf: &Certificate) -> Vec<Finding> {
    input
        .names
        .iter()
        .map(|name| name_finding(leaf, name, ""))
        .collect()
}

fn eku_finding(leaf: &Certificate, purpose: &str, required: bool) -> Finding {
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

fn check_profile(input: &VerifyInput, leaf: &Certificate) -> Vec<Finding> {
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

fn with_check(mut finding: Finding, check: &'static str) -> Finding {
    finding.check = check;
    finding
}

fn check_validity(input: &VerifyInput, walk: &PathWalk) -> Vec<Finding> {
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

fn lint(path: &[Certificate], leaf: &Certificate) -> Vec<Finding> {
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
        if let KeyKind::Rsa { bits } = cert.key {
            if bits < 2048 {
                findings.push(warn(
                    cert,
                    format!(
                        "{} has a weak RSA key of {bits} bits (use at least 2048)",
                        cert.label()
                    ),
                ));
            }
        }
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
        if cert.is_ca() && cert.subject_key_id.is_none() {
            findings.push(warn(
                cert,
                format!("the CA {} has no subjectKeyIdentifier", cert.label()),
            ));
        }
        if !cert.is_self_signed() && cert.authority_key_id.is_none() {
            findings.push(warn(
                cert,
                format!(
                    "{} has no authorityKeyIdentifier, so clients cannot tell which issuer key \
                     signed it",
                    cert.label()
                ),
            ));
        }
    }
    findings
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
