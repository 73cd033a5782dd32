//! A parsed certificate: every field the checks and the inspector need, read once with
//! x509-parser and kept as owned values next to the DER it came from.

use std::fmt;
use std::net::IpAddr;

use rustls_pki_types::CertificateDer;
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::{Any, FromDer};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::public_key::PublicKey;

use super::oid;

/// Where a certificate was read from: the file and its 1-based position in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The file as the user named it (or a label such as `system roots`).
    pub file: String,
    /// 1-based position of the certificate within that file.
    pub position: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} #{}", self.file, self.position)
    }
}

/// The public key of a certificate, as an admin wants to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum KeyKind {
    /// RSA with its modulus size in bits.
    Rsa {
        /// Modulus size in bits.
        bits: usize,
    },
    /// Elliptic curve (ECDSA) key on a named curve.
    Ec {
        /// Curve name, e.g. `P-256`.
        curve: String,
        /// Field size in bits.
        bits: usize,
    },
    /// Ed25519.
    Ed25519,
    /// Ed448.
    Ed448,
    /// Anything else, by algorithm OID.
    Other {
        /// Dotted algorithm OID.
        oid: String,
    },
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA {bits}"),
            KeyKind::Ec { curve, .. } => write!(f, "EC {curve}"),
            KeyKind::Ed25519 => f.write_str("Ed25519"),
            KeyKind::Ed448 => f.write_str("Ed448"),
            KeyKind::Other { oid } => write!(f, "unknown key type {oid}"),
        }
    }
}

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum AltName {
    /// dNSName.
    Dns(String),
    /// iPAddress.
    Ip(IpAddr),
    /// rfc822Name.
    Email(String),
    /// uniformResourceIdentifier.
    Uri(String),
    /// otherName id-on-xmppAddr (RFC 6120 §13.7.1.4).
    XmppAddr(String),
    /// otherName id-on-dnsSRV (RFC 4985).
    SrvName(String),
    /// Any other otherName, by OID.
    OtherName(String),
    /// directoryName.
    DirectoryName(String),
    /// A form this tool does not decode.
    Unsupported(String),
}

impl fmt::Display for AltName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AltName::Dns(v) => write!(f, "DNS:{v}"),
            AltName::Ip(v) => write!(f, "IP:{v}"),
            AltName::Email(v) => write!(f, "email:{v}"),
            AltName::Uri(v) => write!(f, "URI:{v}"),
            AltName::XmppAddr(v) => write!(f, "xmppAddr:{v}"),
            AltName::SrvName(v) => write!(f, "SRVName:{v}"),
            AltName::OtherName(v) => write!(f, "otherName:{v}"),
            AltName::DirectoryName(v) => write!(f, "dirName:{v}"),
            AltName::Unsupported(v) => f.write_str(v),
        }
    }
}

/// The basicConstraints extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BasicConstraints {
    /// cA flag.
    pub ca: bool,
    /// pathLenConstraint, if set.
    pub path_len: Option<u32>,
}

/// The encoding details RFC 5280 and the CA/Browser Forum constrain (`pki verify --strict`,
/// `pki lint`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoding {
    /// The serial number's DER INTEGER content (two's complement, big-endian).
    pub serial_bytes: Vec<u8>,
    /// OIDs of the critical extensions.
    pub critical: Vec<String>,
    /// Critical extensions Bridgehead (and most validators) do not know, by OID.
    pub unknown_critical: Vec<String>,
    /// The subject DN has no attributes.
    pub subject_empty: bool,
    /// The authorityKeyIdentifier carries authorityCertIssuer or authorityCertSerialNumber.
    pub aki_issuer_or_serial: bool,
}

/// The nameConstraints extension, as far as Bridgehead checks it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NameConstraints {
    /// Permitted dNSName subtrees.
    pub permitted_dns: Vec<String>,
    /// Excluded dNSName subtrees.
    pub excluded_dns: Vec<String>,
    /// Subtrees of other forms (IP, email, directory name, URI) are present too.
    pub other_forms: bool,
}

/// A certificate with everything Bridgehead checks about it, parsed once.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// The DER encoding, as read.
    pub der: CertificateDer<'static>,
    /// Where it was read from.
    pub origin: Origin,
    /// Subject DN in RFC 4514 style.
    pub subject: String,
    /// Issuer DN in RFC 4514 style.
    pub issuer: String,
    /// Encoded subject DN, for exact issuer matching.
    pub subject_raw: Vec<u8>,
    /// Encoded issuer DN, for exact issuer matching.
    pub issuer_raw: Vec<u8>,
    /// The first commonName of the subject.
    pub common_name: Option<String>,
    /// Serial number as colon-separated hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The public key.
    pub key: KeyKind,
    /// The encoded SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
    /// Dotted OID of the signature algorithm.
    pub signature_oid: String,
    /// basicConstraints, if present.
    pub basic_constraints: Option<BasicConstraints>,
    /// keyUsage bits by name, if the extension is present.
    pub key_usage: Option<Vec<String>>,
    /// extKeyUsage OIDs (dotted), if the extension is present.
    pub extended_key_usage: Option<Vec<String>>,
    /// subjectAltName entries, if the extension is present (it may be present and empty).
    pub alt_names: Option<Vec<AltName>>,
    /// subjectKeyIdentifier as hex.
    pub subject_key_id: Option<String>,
    /// authorityKeyIdentifier keyIdentifier as hex.
    pub authority_key_id: Option<String>,
    /// AIA caIssuers URLs.
    pub ca_issuer_urls: Vec<String>,
    /// AIA OCSP URLs.
    pub ocsp_urls: Vec<String>,
    /// nameConstraints, if present: the DNS subtrees, permitted then excluded.
    pub name_constraints: Option<NameConstraints>,
    /// Extensions that cannot be parsed: (name and OID, why). The certificate is still
    /// read; `verify` fails it, naming the extension.
    pub unparsable_extensions: Vec<(String, String)>,
    /// What the strict rules read besides.
    pub encoding: Encoding,
    /// Subject equals issuer and the certificate's own key verifies its signature; checked
    /// on first use (a trust store of 150 roots need not verify 150 signatures).
    self_signed: std::sync::OnceLock<bool>,
}

/// Why a DER blob is not a certificate we can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure(pub String);

impl Certificate {
    /// Parses one DER certificate.
    pub fn from_der(der: CertificateDer<'static>, origin: Origin) -> Result<Self, ParseFailure> {
        let (rest, x509) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| ParseFailure(format!("not a valid X.509 certificate ({e})")))?;
        if !rest.is_empty() {
            return Err(ParseFailure(format!(
                "{} bytes of trailing data after the certificate",
                rest.len()
            )));
        }
        let parsed = Parsed::read(&x509)?;
        let common_name = x509
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let certificate = Certificate {
            subject: display_name(x509.subject()),
            issuer: display_name(x509.issuer()),
            subject_raw: x509.subject().as_raw().to_vec(),
            issuer_raw: x509.issuer().as_raw().to_vec(),
            common_name,
            serial: x509.raw_serial_as_string(),
            not_before: x509.validity().not_before.to_datetime(),
            not_after: x509.validity().not_after.to_datetime(),
            key: key_kind(&x509),
            spki: x509.public_key().raw.to_vec(),
            signature_oid: x509.signature_algorithm.algorithm.to_id_string(),
            basic_constraints: parsed.basic_constraints,
            key_usage: parsed.key_usage,
            extended_key_usage: parsed.extended_key_usage,
            alt_names: parsed.alt_names,
            subject_key_id: parsed.subject_key_id,
            authority_key_id: parsed.authority_key_id,
            ca_issuer_urls: parsed.ca_issuer_urls,
            ocsp_urls: parsed.ocsp_urls,
            name_constraints: parsed.name_constraints,
            unparsable_extensions: parsed.unparsable_extensions,
            encoding: Encoding {
                serial_bytes: x509.raw_serial().to_vec(),
                critical: x509
                    .extensions()
                    .iter()
                    .filter(|e| e.critical)
                    .map(|e| e.oid.to_id_string())
                    .collect(),
                unknown_critical: parsed.unknown_critical,
                subject_empty: x509.subject().iter().next().is_none(),
                aki_issuer_or_serial: parsed.aki_issuer_or_serial,
            },
            self_signed: std::sync::OnceLock::new(),
            der: CertificateDer::from(Vec::new()),
            origin,
        };
        drop(x509);
        Ok(Certificate { der, ..certificate })
    }

    /// Subject equals issuer and the certificate's own key verifies its signature.
    pub fn is_self_signed(&self) -> bool {
        *self
            .self_signed
            .get_or_init(|| self.subject_raw == self.issuer_raw && self.is_signed_by(self))
    }

    /// Subject equals issuer (RFC 5280 §6.1: self-issued), whatever key signed it: a
    /// CA's key rollover or a re-issued CA.
    pub fn is_self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    /// Whether `issuer`'s key verifies this certificate's signature.
    pub fn is_signed_by(&self, issuer: &Certificate) -> bool {
        let (Ok((_, me)), Ok((_, them))) = (
            x509_parser::parse_x509_certificate(self.der.as_ref()),
            x509_parser::parse_x509_certificate(issuer.der.as_ref()),
        ) else {
            return false;
        };
        me.verify_signature(Some(them.public_key())).is_ok()
    }

    /// Whether the subject DN names this certificate's issuer DN (byte-exact, as RFC 5280
    /// path building compares them).
    pub fn names_as_issuer(&self, candidate: &Certificate) -> bool {
        self.issuer_raw == candidate.subject_raw
    }

    /// True when basicConstraints marks this a CA.
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.is_some_and(|bc| bc.ca)
    }

    /// True when the EKU extension is present and allows `purpose` (directly or through
    /// anyExtendedKeyUsage). An absent extension is reported as `None`: no restriction.
    pub fn eku_allows(&self, purpose: &str) -> Option<bool> {
        self.extended_key_usage
            .as_ref()
            .map(|ekus| ekus.iter().any(|e| e == purpose || e == oid::ANY_EKU))
    }

    /// Human name of the signature algorithm.
    pub fn signature_name(&self) -> String {
        oid::signature_name(&self.signature_oid)
    }

    /// True for SHA-1 based signatures.
    pub fn signature_uses_sha1(&self) -> bool {
        oid::is_sha1_signature(&self.signature_oid)
    }

    /// A short label: the CN if there is one, else the whole subject.
    pub fn label(&self) -> String {
        match &self.common_name {
            Some(cn) => format!("CN={cn}"),
            None if self.subject.is_empty() => format!("serial {}", self.serial),
            None => self.subject.clone(),
        }
    }
}

fn display_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    x509_parser::x509::X509Name::to_string_with_registry(name, x509_parser::objects::oid_registry())
        .unwrap_or_else(|_| name.to_string())
}

fn key_kind(x509: &X509Certificate<'_>) -> KeyKind {
    let spki = x509.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        oid::KEY_ED25519 => return KeyKind::Ed25519,
        oid::KEY_ED448 => return KeyKind::Ed448,
        _ => {}
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => KeyKind::Rsa {
            bits: modulus_bits(rsa.modulus),
        },
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| oid::curve_name(&o.to_id_string()))
                .unwrap_or_else(|| "unknown curve".to_owned());
            KeyKind::Ec {
                curve,
                bits: point.key_size(),
            }
        }
        _ => KeyKind::Other { oid: alg },
    }
}

/// The exact size of an RSA modulus in bits (x509-parser's `key_size` rounds to whole
/// bytes): its big-endian bytes without leading zeros.
fn modulus_bits(modulus: &[u8]) -> usize {
    let significant: &[u8] = match modulus.iter().position(|b| *b != 0) {
        Some(first) => &modulus[first..],
        None => return 0,
    };
    (significant.len() - 1) * 8 + (8 - significant[0].leading_zeros() as usize)
}

/// The extension-derived fields, gathered in one pass.
#[derive(Default)]
struct Parsed {
    basic_constraints: Option<BasicConstraints>,
    key_usage: Option<Vec<String>>,
    extended_key_usage: Option<Vec<String>>,
    alt_names: Option<Vec<AltName>>,
    subject_key_id: Option<String>,
    authority_key_id: Option<String>,
    ca_issuer_urls: Vec<String>,
    ocsp_urls: Vec<String>,
    name_constraints: Option<NameConstraints>,
    unparsable_extensions: Vec<(String, String)>,
    unknown_critical: Vec<String>,
    aki_issuer_or_serial: bool,
}

/// The dNSName bases of `subtrees`.
fn dns_subtrees(
    subtrees: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>,
) -> Vec<String> {
    subtrees
        .iter()
        .flatten()
        .filter_map(|subtree| match subtree.base {
            GeneralName::DNSName(name) => Some(name.to_owned()),
            _ => None,
        })
        .collect()
}

impl Parsed {
    fn read(x509: &X509Certificate<'_>) -> Result<Self, ParseFailure> {
        let mut out = Parsed::default();
        for ext in x509.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    out.basic_constraints = Some(BasicConstraints {
                        ca: bc.ca,
                        path_len: bc.path_len_constraint,
                    })
                }
                ParsedExtension::KeyUsage(ku) => {
                    out.key_usage = Some(
                        ku.to_string()
                            .split(", ")
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    )
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    let mut oids = Vec::new();
                    let named = [
                        (eku.any, oid::ANY_EKU),
                        (eku.server_auth, oid::SERVER_AUTH),
                        (eku.client_auth, oid::CLIENT_AUTH),
                        (eku.code_signing, oid::CODE_SIGNING),
                        (eku.email_protection, oid::EMAIL_PROTECTION),
                        (eku.time_stamping, oid::TIME_STAMPING),
                        (eku.ocsp_signing, oid::OCSP_SIGNING),
                    ];
                    oids.extend(
                        named
                            .iter()
                            .filter(|(on, _)| *on)
                            .map(|(_, o)| o.to_string()),
                    );
                    oids.extend(eku.other.iter().map(|o| o.to_id_string()));
                    out.extended_key_usage = Some(oids);
                }
                ParsedExtension::SubjectAlternativeName(san) => {
                    out.alt_names = Some(san.general_names.iter().map(alt_name).collect());
                }
                ParsedExtension::SubjectKeyIdentifier(id) => {
                    out.subject_key_id = Some(colon_hex(id.0));
                }
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    out.authority_key_id = aki.key_identifier.as_ref().map(|id| colon_hex(id.0));
                    out.aki_issuer_or_serial =
                        aki.authority_cert_issuer.is_some() || aki.authority_cert_serial.is_some();
                }
                ParsedExtension::UnsupportedExtension { .. } if ext.critical => {
                    out.unknown_critical.push(ext.oid.to_id_string());
                }
                ParsedExtension::AuthorityInfoAccess(aia) => {
                    for desc in &aia.accessdescs {
                        if let GeneralName::URI(uri) = desc.access_location {
                            match desc.access_method.to_id_string().as_str() {
                                oid::AIA_CA_ISSUERS => out.ca_issuer_urls.push(uri.to_owned()),
                                oid::AIA_OCSP => out.ocsp_urls.push(uri.to_owned()),
                                _ => {}
                            }
                        }
                    }
                }
                ParsedExtension::NameConstraints(nc) => {
                    let all = nc
                        .permitted_subtrees
                        .iter()
                        .chain(&nc.excluded_subtrees)
                        .flatten();
                    let other_forms = all
                        .clone()
                        .any(|subtree| !matches!(subtree.base, GeneralName::DNSName(_)));
                    out.name_constraints = Some(NameConstraints {
                        permitted_dns: dns_subtrees(&nc.permitted_subtrees),
                        excluded_dns: dns_subtrees(&nc.excluded_subtrees),
                        other_forms,
                    });
                }
                ParsedExtension::ParseError { error } => out
                    .unparsable_extensions
                    .push((oid::describe(&ext.oid.to_id_string()), error.to_string())),
                _ => {}
            }
        }
        Ok(out)
    }
}

fn alt_name(name: &GeneralName<'_>) -> AltName {
    match name {
        GeneralName::DNSName(v) => AltName::Dns((*v).to_owned()),
        GeneralName::RFC822Name(v) => AltName::Email((*v).to_owned()),
        GeneralName::URI(v) => AltName::Uri((*v).to_owned()),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => AltName::Ip(IpAddr::from(
                <[u8; 4]>::try_from(*bytes).unwrap_or_default(),
            )),
            16 => AltName::Ip(IpAddr::from(
                <[u8; 16]>::try_from(*bytes).unwrap_or_default(),
            )),
            _ => AltName::Unsupported(format!("IP:<{} bytes>", bytes.len())),
        },
        GeneralName::OtherName(type_id, value) => {
            let type_id = type_id.to_id_string();
            let text = other_name_text(value);
            match (type_id.as_str(), text) {
                (oid::XMPP_ADDR, Some(text)) => AltName::XmppAddr(text),
                (oid::SRV_NAME, Some(text)) => AltName::SrvName(text),
                (_, Some(text)) => AltName::OtherName(format!("{type_id};{text}")),
                (_, None) => AltName::OtherName(format!("{type_id};<{} bytes>", value.len())),
            }
        }
        GeneralName::DirectoryName(dn) => AltName::DirectoryName(display_name(dn)),
        other => AltName::Unsupported(other.to_string()),
    }
}

/// Reads `[0] EXPLICIT UTF8String / IA5String` as used by xmppAddr and SRVName.
fn other_name_text(value: &[u8]) -> Option<String> {
    let (_, explicit) = Any::from_der(value).ok()?;
    let (_, inner) = Any::from_der(explicit.data).ok()?;
    std::str::from_utf8(inner.data).ok().map(str::to_owned)
}

/// Bytes as upper-case colon-separated hex, the way openssl prints key identifiers.
/// The SHA-256 fingerprint of a DER certificate, colon-separated upper-case hex (as
/// `openssl x509 -fingerprint -sha256` prints it).
pub fn sha256_fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    colon_hex(&sha2::Sha256::digest(der))
}

pub(super) fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
