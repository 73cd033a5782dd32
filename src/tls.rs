//! The only place that builds rustls configurations, and the start-up checks of the server
//! certificate.
//!
//! At start, [`ServerIdentity::load`] reads the configured full chain, key and trust bundle
//! and runs the PKI toolkit's `xmpp-server` checks on them: the key must match, the chain
//! must verify against the trust bundle, and the certificate must name both the XMPP domain
//! and the host FQDN. Any failure refuses the start with the toolkit's own words. The
//! listeners then get an `Arc<rustls::ServerConfig>` from [`ServerIdentity::server_config`].

pub mod cti;
mod probe;

pub use probe::{probe_client_config, ProbeConfig};

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::pki::{self, Finding, Profile, Status, VerifyInput};

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// The certificate checks failed.
    #[error("the server certificate {cert} is not usable:\n{}", list(.reasons))]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// Each failed check, in plain words.
        reasons: Vec<String>,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration error: {0}")]
    Rustls(#[from] rustls::Error),
}

fn list(reasons: &[String]) -> String {
    reasons
        .iter()
        .map(|r| format!("  - {r}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where the server's certificate material lives.
#[derive(Debug, Clone)]
pub struct IdentityFiles {
    /// Full chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
    /// Password file of an encrypted key.
    pub key_password: Option<PathBuf>,
    /// Trust bundle; `None` = system roots.
    pub trust: Option<PathBuf>,
}

/// What the server certificate must satisfy.
#[derive(Debug, Clone)]
pub struct IdentityRequirements {
    /// The XMPP domain.
    pub domain: String,
    /// The host FQDN.
    pub fqdn: String,
    /// Expiry warning window.
    pub warn_days: u32,
}

/// A checked server certificate chain and key.
#[derive(Debug)]
pub struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// Warnings found by the checks (the caller logs them).
    pub warnings: Vec<Finding>,
    /// What the leaf certificate is, for the admin API and the expiry gauge.
    pub summary: CertificateSummary,
}

/// The served leaf certificate in a few fields.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertificateSummary {
    /// The file it was read from.
    pub file: PathBuf,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, colon-separated hex.
    pub serial: String,
    /// End of validity (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: time::OffsetDateTime,
    /// SHA-256 of the DER, colon-separated hex (as `openssl x509 -fingerprint -sha256`).
    pub sha256: String,
}

impl ServerIdentity {
    /// Reads and checks the identity; refuses it with every failed check's reason.
    pub fn load(files: &IdentityFiles, wanted: &IdentityRequirements) -> Result<Self, TlsError> {
        let certificates = pki::input::read_certificates(&files.cert)?;
        let password = files
            .key_password
            .as_deref()
            .map(pki::input::read_password)
            .transpose()?;
        let key = pki::input::read_private_key(&files.key, password.as_deref())?;
        let trust = pki::load_trust(files.trust.as_deref())?;
        let report = pki::verify(&VerifyInput {
            certificates: certificates.clone(),
            key: Some(key.clone_key()),
            intermediates: Vec::new(),
            trust,
            at: time::OffsetDateTime::now_utc(),
            names: Vec::new(),
            profile: Some(Profile::XmppServer),
            xmpp_domain: Some(wanted.domain.clone()),
            fqdn: Some(wanted.fqdn.clone()),
            cti_allowed_cns: Vec::new(),
            warn_days: i64::from(wanted.warn_days),
            strict: false,
        });
        let reasons: Vec<String> = report.failures().map(|f| f.reason.clone()).collect();
        let Some(leaf) = certificates.first() else {
            return Err(TlsError::Rejected {
                cert: files.cert.clone(),
                reasons: vec!["the file holds no certificate".to_owned()],
            });
        };
        let summary = CertificateSummary {
            file: files.cert.clone(),
            subject: leaf.subject.clone(),
            issuer: leaf.issuer.clone(),
            serial: leaf.serial.clone(),
            not_after: leaf.not_after,
            sha256: pki::sha256_fingerprint(leaf.der.as_ref()),
        };
        if !reasons.is_empty() {
            return Err(TlsError::Rejected {
                cert: files.cert.clone(),
                reasons,
            });
        }
        let warnings = report
            .findings
            .into_iter()
            .filter(|f| f.status == Status::Warn)
            .collect();
        Ok(ServerIdentity {
            chain: certificates.into_iter().map(|c| c.der).collect(),
            key,
            warnings,
            summary,
        })
    }

    /// A TLS 1.2+ server configuration presenting this identity, offering `alpn`.
    #[allow(clippy::disallowed_methods)] // this is the one place that builds TLS configs
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl ServerIdentity {
    /// The CTI listener's configuration: this identity, and a mandatory client certificate
    /// that chains to `trust` and passes the CTI rules with `allowed` CNs.
    #[allow(clippy::disallowed_methods)] // this is the one place that builds TLS configs
    pub fn cti_server_config(
        &self,
        trust: &[CertificateDer<'static>],
        allowed: Vec<String>,
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let webpki = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(root_store(trust)?),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        let verifier = Arc::new(cti::CtiClientVerifier::new(webpki, allowed));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// A TLS 1.2+ client configuration trusting `roots` and presenting `chain` with `key`
/// (a CTI application; tests and tools).
#[allow(clippy::disallowed_methods)] // this is the one place that builds TLS configs
pub fn client_config_with_identity(
    roots: &[CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(root_store(roots)?)
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// A TLS 1.2+ client configuration trusting `roots` (for Bridgehead's own clients and tests).
#[allow(clippy::disallowed_methods)] // this is the one place that builds TLS configs
pub fn client_config(
    roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(root_store(roots)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS 1.2+ client configuration trusting the certificates of the PEM bundle at
/// `trust`, or the system's roots without one (Bridgehead's connection to PostgreSQL).
pub fn client_config_trusting(
    trust: Option<&std::path::Path>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots: Vec<CertificateDer<'static>> =
        pki::load_trust(trust)?.into_iter().map(|c| c.der).collect();
    client_config(&roots)
}

/// A root store holding `roots`.
fn root_store(roots: &[CertificateDer<'static>]) -> Result<rustls::RootCertStore, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    Ok(store)
}
