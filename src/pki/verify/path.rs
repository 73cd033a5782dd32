//! The certification path: walking it from the leaf by issuer names and signatures
//! (anchors first, then the file, then `--intermediates`), rustls-webpki's verdict on it,
//! the diagnosis of a refused chain in plain words, and the serving order of the file.

use std::time::Duration;

use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;

use super::{day, Finding, Purpose, Status, VerifyInput};
use crate::pki::certificate::Certificate;
use crate::pki::oid;

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

pub(super) fn is_anchor(c: &Certificate, trust: &[Certificate]) -> bool {
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

pub(super) fn unix_time(at: OffsetDateTime) -> UnixTime {
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

pub(super) fn check_chain(
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
            // rustls-webpki is stricter than RFC 5280 §6 in three places (see
            // `rfc_divergence`); its most specific error may then be another same-named
            // candidate's signature. When the path shows one of those, our walk reaches the
            // anchor with every signature verified and finds nothing else, the verdict is
            // the RFC's: valid, but peers on rustls-webpki (Bridgehead among them) refuse
            // it, so a warning.
            let divergence = matches!(walk.end, PathEnd::Anchor)
                .then(|| rfc_divergence(walk, &error))
                .flatten();
            let mut findings = diagnose(input, walk, purpose);
            if let (Some(divergence), true) = (divergence, findings.is_empty()) {
                let route: Vec<String> = walk.path.iter().map(Certificate::label).collect();
                return vec![Finding::new(
                    "chain",
                    Status::Warn,
                    format!(
                        "the chain verifies for {} under RFC 5280 §6: {} ({}); \
                         rustls-webpki, and so every peer built on it, Bridgehead included, \
                         refuses it ({}){}",
                        purpose.name(),
                        route.join(" <- "),
                        divergence.words(),
                        webpki_words(&error),
                        if divergence == Divergence::SelfIssuedNames {
                            ""
                        } else {
                            "; name constraints were not checked"
                        }
                    ),
                )
                .about(leaf)];
            }
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

/// Whether the DNS name `name` is within the dNSName subtree `base` (RFC 5280 §4.2.1.10:
/// the name itself, or the name with labels added to its left).
fn within(name: &str, base: &str) -> bool {
    let (name, base) = (name.to_ascii_lowercase(), base.to_ascii_lowercase());
    name == base || name.ends_with(&format!(".{base}"))
}

/// Whether the leaf's DNS names satisfy every DNS name constraint of the CAs above it, the
/// only form Bridgehead evaluates itself (`None` when another form is constrained).
fn leaf_within_dns_constraints(walk: &PathWalk) -> Option<bool> {
    let names: Vec<&str> = walk.path[0]
        .alt_names
        .iter()
        .flatten()
        .filter_map(|n| match n {
            crate::pki::AltName::Dns(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let mut ok = true;
    for constraints in walk.path[1..]
        .iter()
        .filter_map(|c| c.name_constraints.as_ref())
    {
        if constraints.other_forms {
            return None;
        }
        let permitted = |n: &str| {
            constraints.permitted_dns.is_empty()
                || constraints.permitted_dns.iter().any(|b| within(n, b))
        };
        let excluded = |n: &str| constraints.excluded_dns.iter().any(|b| within(n, b));
        ok &= names.iter().all(|n| permitted(n) && !excluded(n));
    }
    Some(ok)
}

/// Where RFC 5280 §6 accepts what rustls-webpki refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Divergence {
    /// A CA certificate with the right EKU and names as the leaf.
    CaLeaf,
    /// §6.1.4 (l): a self-issued intermediate does not count toward pathLenConstraint.
    SelfIssuedPathLength,
    /// §6.1.3 (b), (c): a self-issued intermediate's names are not checked against name
    /// constraints; the leaf's are (and are within them).
    SelfIssuedNames,
}

impl Divergence {
    fn words(self) -> &'static str {
        match self {
            Divergence::CaLeaf => "a CA certificate may be the leaf",
            Divergence::SelfIssuedPathLength => {
                "a self-issued intermediate does not count toward pathLenConstraint"
            }
            Divergence::SelfIssuedNames => {
                "name constraints do not apply to a self-issued intermediate, and the leaf's \
                 names are within them"
            }
        }
    }
}

/// The intermediates of `walk.path` between the leaf and `path[i]` that count toward
/// `path[i]`'s pathLenConstraint (RFC 5280 §6.1.4 (l): not the self-issued ones).
fn counted_below(walk: &PathWalk, i: usize) -> usize {
    walk.path[1..i]
        .iter()
        .filter(|c| !c.is_self_issued())
        .count()
}

/// Where `walk` relies on RFC 5280 §6 where rustls-webpki (refusing with `error`) is
/// stricter.
fn rfc_divergence(walk: &PathWalk, error: &webpki::Error) -> Option<Divergence> {
    if walk.path[0].is_ca() {
        return Some(Divergence::CaLeaf);
    }
    let constrained = walk.path.iter().any(|c| c.name_constraints.is_some());
    // The intermediates: neither the leaf nor the anchor (a path may be the leaf alone).
    let intermediates = walk.path.len().saturating_sub(2);
    let self_issued_intermediate = walk
        .path
        .iter()
        .skip(1)
        .take(intermediates)
        .any(|c| c.is_self_issued() && c.alt_names.as_ref().is_some_and(|n| !n.is_empty()));
    // (With a rollover, webpki's most specific error may be the other same-named
    // candidate's signature instead; our walk verified every signature of the path.)
    let constraint_refusal = matches!(
        error,
        webpki::Error::NameConstraintViolation | webpki::Error::InvalidSignatureForPublicKey
    );
    if constraint_refusal
        && constrained
        && self_issued_intermediate
        && leaf_within_dns_constraints(walk) == Some(true)
    {
        return Some(Divergence::SelfIssuedNames);
    }
    let counted_differently = walk.path.iter().enumerate().skip(1).any(|(i, cert)| {
        let all = i - 1;
        cert.basic_constraints
            .and_then(|bc| bc.path_len)
            .is_some_and(|limit| counted_below(walk, i) <= limit as usize && all > limit as usize)
    });
    counted_differently.then_some(Divergence::SelfIssuedPathLength)
}

/// Explains why a chain does not verify, link by link.
pub(super) fn diagnose(input: &VerifyInput, walk: &PathWalk, purpose: Purpose) -> Vec<Finding> {
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
        let below = counted_below(walk, i);
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
            if last.is_ca() {
                reason.push_str(&format!(
                    "; if \"{issuer}\" is your root CA, the trust bundle does not hold it: is it \
                     the right bundle? Give the root as the trust bundle (--trust, or [tls] \
                     trust_file)"
                ));
            } else if ca_issuer_urls.is_empty() {
                reason.push_str(
                    "; add the intermediate to the chain (after the leaf) or pass it with \
                     --intermediates",
                );
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

pub(super) fn trust_label(input: &VerifyInput) -> String {
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

pub(super) fn check_order(input: &VerifyInput, leaf_index: usize, walk: &PathWalk) -> Vec<Finding> {
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
