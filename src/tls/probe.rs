//! The client configuration of `pki probe`: it completes a handshake with any certificate
//! chain (checking only that the server holds the key it presents: the handshake
//! signature), so that the chain the server sends can be judged afterwards, in words, by
//! `pki verify`'s checks. Never used to trust a peer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::TlsError;

/// Accepts every chain; verifies the handshake signatures.
#[derive(Debug)]
struct Judged(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Judged {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Presents the identity when there is one, and remembers whether the server asked.
#[derive(Debug)]
struct Asked {
    identity: Option<Arc<CertifiedKey>>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for Asked {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.identity.clone()
    }

    fn has_certs(&self) -> bool {
        // Always: so that the server's request is seen even without an identity.
        true
    }
}

/// A probe's client configuration, and whether the server asked for a client certificate
/// (set during the handshake).
#[derive(Debug)]
pub struct ProbeConfig {
    /// The configuration.
    pub config: Arc<rustls::ClientConfig>,
    /// True once the server asked for a client certificate.
    pub client_certificate_asked: Arc<AtomicBool>,
}

/// A TLS 1.2+ client configuration for probing: any chain, `identity` presented when given
/// (a CTI port), `alpn` offered.
#[allow(clippy::disallowed_methods)] // the TLS builder module
pub fn probe_client_config(
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: &[&[u8]],
) -> Result<ProbeConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let identity = identity
        .map(|(chain, key)| {
            let key = provider.key_provider.load_private_key(key)?;
            Ok::<_, rustls::Error>(Arc::new(CertifiedKey::new(chain, key)))
        })
        .transpose()?;
    let asked = Arc::new(AtomicBool::new(false));
    let verifier = Arc::new(Judged(provider.signature_verification_algorithms));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(Asked {
            identity,
            asked: Arc::clone(&asked),
        }));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(ProbeConfig {
        config: Arc::new(config),
        client_certificate_asked: asked,
    })
}
