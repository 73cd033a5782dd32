//! `pki issue`: development and test certificates made with rcgen, shaped so that each passes
//! `pki verify` with its matching profile: CAs (root or intermediate), TLS servers (SANs,
//! serverAuth, optional xmppAddr, or the key and names of a CSR), and BroadWorks CTI clients
//! (BroadWorks OID + clientAuth, CN only, no SAN). `pki csr`: a key and a certificate
//! signing request with the names a public CA is to certify.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, OtherNameValue, RsaKeySize,
    SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::{oid, PkiError};

/// Key algorithm of a new certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 (the default).
    #[default]
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384,
    /// RSA 2048 with SHA-256.
    Rsa2048,
    /// RSA 3072 with SHA-256.
    Rsa3072,
    /// RSA 4096 with SHA-256.
    Rsa4096,
    /// Ed25519.
    Ed25519,
}

impl KeyType {
    fn generate(self) -> Result<KeyPair, rcgen::Error> {
        match self {
            KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeyType::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
            }
            KeyType::Rsa3072 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)
            }
            KeyType::Rsa4096 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096)
            }
            KeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        }
    }
}

/// What to issue.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A CA: a root when there is no issuer, an intermediate otherwise.
    Ca {
        /// Subject CN.
        common_name: String,
        /// pathLenConstraint.
        path_len: Option<u8>,
    },
    /// A TLS server certificate.
    Server {
        /// SANs: DNS names or IP addresses; the first is also the CN.
        names: Vec<String>,
        /// Domains to add as id-on-xmppAddr otherNames.
        xmpp_addrs: Vec<String>,
    },
    /// A TLS server certificate for the key and names of a CSR (PEM).
    FromCsr {
        /// The request.
        csr_pem: String,
    },
    /// A BroadWorks-style CTI client certificate.
    CtiClient {
        /// Subject CN: the application identity.
        common_name: String,
    },
}

/// The CA that signs: its certificate (first in the PEM; the rest is its chain) and key.
#[derive(Debug, Clone)]
pub struct IssuerMaterial {
    /// The issuer's certificate, optionally followed by its own chain.
    pub cert_pem: String,
    /// The issuer's private key.
    pub key_pem: String,
}

/// A request for one certificate.
#[derive(Debug, Clone)]
pub struct Request {
    /// What kind.
    pub kind: Kind,
    /// Key algorithm.
    pub key_type: KeyType,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// Validity in days from `not_before`.
    pub days: u32,
    /// Organisation name in the subject.
    pub organization: String,
    /// Signed by this CA; self-signed when `None` (only for [`Kind::Ca`]).
    pub issuer: Option<IssuerMaterial>,
}

/// What was issued, in PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The new private key (PKCS#8); empty when a CSR brought the key.
    pub key_pem: String,
    /// The new certificate.
    pub cert_pem: String,
    /// The certificate followed by the issuer's chain, without self-signed roots.
    pub chain_pem: String,
}

impl Issued {
    /// This certificate as the issuer of the next one.
    pub fn as_issuer(&self) -> IssuerMaterial {
        IssuerMaterial {
            cert_pem: self.chain_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

fn issue_error(context: &str) -> impl Fn(rcgen::Error) -> PkiError + '_ {
    move |e| PkiError::Issue(format!("{context}: {e}"))
}

/// The SAN entry of `name`: an IP address or a DNS name.
fn san(name: &str) -> Result<SanType, PkiError> {
    Ok(match name.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(
            name.to_owned()
                .try_into()
                .map_err(|_| PkiError::Issue(format!("\"{name}\" is not a valid DNS name")))?,
        ),
    })
}

/// A new key of `key_type` and a CSR (both PEM) for a TLS server named `names` (the first
/// is also the CN), as a public CA expects it.
pub fn csr(
    names: &[String],
    key_type: KeyType,
    organization: &str,
) -> Result<(String, String), PkiError> {
    let first = names
        .first()
        .ok_or_else(|| PkiError::Issue("a CSR needs at least one name".to_owned()))?;
    let key = key_type
        .generate()
        .map_err(issue_error("key generation failed"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, organization);
    params
        .distinguished_name
        .push(DnType::CommonName, first.as_str());
    params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
    let request = params
        .serialize_request(&key)
        .map_err(issue_error("the request cannot be signed"))?;
    let csr_pem = request
        .pem()
        .map_err(issue_error("the request cannot be written"))?;
    Ok((key.serialize_pem(), csr_pem))
}

/// Issues one certificate.
pub fn issue(request: &Request) -> Result<Issued, PkiError> {
    if let Kind::FromCsr { csr_pem } = &request.kind {
        // The CSR brings the key and the names.
        return issue_from_csr(request, csr_pem);
    }
    let key = request
        .key_type
        .generate()
        .map_err(issue_error("key generation failed"))?;
    let mut params = CertificateParams::default();
    params.not_before = request.not_before;
    params.not_after = request.not_before + Duration::days(i64::from(request.days));
    params.serial_number = Some(random_serial());
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, request.organization.as_str());
    match &request.kind {
        Kind::Ca {
            common_name,
            path_len,
        } => {
            params
                .distinguished_name
                .push(DnType::CommonName, common_name.as_str());
            params.is_ca = IsCa::Ca(match path_len {
                Some(n) => BasicConstraints::Constrained(*n),
                None => BasicConstraints::Unconstrained,
            });
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        }
        Kind::Server { names, xmpp_addrs } => {
            let first = names
                .first()
                .ok_or_else(|| PkiError::Issue("a server certificate needs a --name".to_owned()))?;
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
            for name in names {
                params.subject_alt_names.push(san(name)?);
            }
            for addr in xmpp_addrs {
                params.subject_alt_names.push(SanType::OtherName((
                    oid_arcs(oid::XMPP_ADDR),
                    OtherNameValue::Utf8String(addr.clone()),
                )));
            }
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.key_usages = leaf_key_usages(request.key_type);
        }
        Kind::CtiClient { common_name } => {
            params
                .distinguished_name
                .push(DnType::CommonName, common_name.as_str());
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::Other(oid::BROADWORKS_CTI_ARCS.to_vec()),
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            params.key_usages = leaf_key_usages(request.key_type);
        }
        Kind::FromCsr { .. } => {}
    }

    let (cert, issuer_chain) = match &request.issuer {
        None => {
            if !matches!(request.kind, Kind::Ca { .. }) {
                return Err(PkiError::Issue(
                    "only a CA can be self-signed; give --issuer-cert and --issuer-key".to_owned(),
                ));
            }
            let cert = params
                .self_signed(&key)
                .map_err(issue_error("self-signing failed"))?;
            (cert, String::new())
        }
        Some(issuer) => {
            let (signer, chain) = signer(issuer)?;
            params.use_authority_key_identifier_extension = true;
            let cert = params
                .signed_by(&key, &signer)
                .map_err(issue_error("signing failed"))?;
            (cert, chain)
        }
    };
    let cert_pem = cert.pem();
    let chain_pem = match &request.kind {
        Kind::Ca { .. } if request.issuer.is_none() => cert_pem.clone(),
        _ => format!("{cert_pem}{issuer_chain}"),
    };
    Ok(Issued {
        key_pem: key.serialize_pem(),
        cert_pem,
        chain_pem,
    })
}

/// The CA that signs, and its chain without self-signed roots (PEM).
fn signer(issuer: &IssuerMaterial) -> Result<(Issuer<'static, KeyPair>, String), PkiError> {
    let issuer_key =
        KeyPair::from_pem(&issuer.key_pem).map_err(issue_error("the issuer key cannot be read"))?;
    let blocks = pem::parse_many(&issuer.cert_pem)
        .map_err(|e| PkiError::Issue(format!("the issuer certificate cannot be read: {e}")))?;
    let first = blocks
        .iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .ok_or_else(|| PkiError::Issue("the issuer file holds no certificate".to_owned()))?;
    let issuer_der = rustls_pki_types::CertificateDer::from(first.contents().to_vec());
    let signer = Issuer::from_ca_cert_der(&issuer_der, issuer_key)
        .map_err(issue_error("the issuer certificate cannot be used"))?;
    let chain = blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE" && !is_self_signed(b.contents()))
        .map(pem::encode)
        .collect();
    Ok((signer, chain))
}

/// A server certificate for a CSR's key and names: its signature checked, its subject and
/// SANs kept, and the rest (validity, serial, serverAuth, key usage) set here.
fn issue_from_csr(request: &Request, csr_pem: &str) -> Result<Issued, PkiError> {
    let issuer = request.issuer.as_ref().ok_or_else(|| {
        PkiError::Issue("signing a CSR needs --issuer-cert and --issuer-key".to_owned())
    })?;
    let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(issue_error(
        "the CSR cannot be read (or its signature does not verify)",
    ))?;
    if csr.params.subject_alt_names.is_empty() {
        return Err(PkiError::Issue(
            "the CSR names no subjectAltName; a server certificate needs one".to_owned(),
        ));
    }
    let params = &mut csr.params;
    params.not_before = request.not_before;
    params.not_after = request.not_before + Duration::days(i64::from(request.days));
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let (signer, chain) = signer(issuer)?;
    let cert = csr
        .signed_by(&signer)
        .map_err(issue_error("signing failed"))?;
    let cert_pem = cert.pem();
    Ok(Issued {
        key_pem: String::new(),
        chain_pem: format!("{cert_pem}{chain}"),
        cert_pem,
    })
}

fn leaf_key_usages(key_type: KeyType) -> Vec<KeyUsagePurpose> {
    match key_type {
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
        _ => vec![KeyUsagePurpose::DigitalSignature],
    }
}

fn oid_arcs(dotted: &str) -> Vec<u64> {
    dotted
        .split('.')
        .filter_map(|arc| arc.parse().ok())
        .collect()
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

fn is_self_signed(der: &[u8]) -> bool {
    let origin = super::Origin {
        file: "issuer".to_owned(),
        position: 1,
    };
    super::Certificate::from_der(rustls_pki_types::CertificateDer::from(der.to_vec()), origin)
        .is_ok_and(|c| c.is_self_signed())
}

/// Writes `contents` to `path`: private files with mode 0600, never replacing an existing
/// file unless `force`.
pub fn write_file(
    path: &Path,
    contents: &[u8],
    private: bool,
    force: bool,
) -> Result<(), PkiError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let write_error = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    if path.exists() && !force {
        return Err(PkiError::Exists {
            path: path.to_owned(),
        });
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(write_error)?;
    }
    let mode = if private { 0o600 } else { 0o644 };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(write_error)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(write_error)?;
    file.write_all(contents).map_err(write_error)?;
    file.sync_all().map_err(write_error)
}

/// Writes an issued certificate as `PREFIX.key` (0600; not when a CSR brought the key),
/// `PREFIX.crt` and `PREFIX-chain.pem`. Returns the three paths.
pub fn write_issued(
    prefix: &Path,
    issued: &Issued,
    force: bool,
) -> Result<[std::path::PathBuf; 3], PkiError> {
    let with = |suffix: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    let paths = [with(".key"), with(".crt"), with("-chain.pem")];
    let has_key = !issued.key_pem.is_empty();
    if !force {
        if let Some(existing) = paths
            .iter()
            .skip(usize::from(!has_key))
            .find(|p| p.exists())
        {
            return Err(PkiError::Exists {
                path: existing.clone(),
            });
        }
    }
    if has_key {
        write_file(&paths[0], issued.key_pem.as_bytes(), true, force)?;
    }
    write_file(&paths[1], issued.cert_pem.as_bytes(), false, force)?;
    write_file(&paths[2], issued.chain_pem.as_bytes(), false, force)?;
    Ok(paths)
}
