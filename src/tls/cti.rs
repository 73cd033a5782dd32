//! The CTI listener's client-certificate verifier. A trusted application is admitted only
//! when, in the TLS handshake:
//!
//! 1. its chain verifies against the CTI trust bundle for TLS client authentication
//!    (rustls's WebPKI verifier, which this wraps);
//! 2. the leaf's Extended Key Usage holds the BroadWorks OID 1.3.6.1.4.1.6431.1.1.8.2.1.3
//!    and clientAuth, the leaf has no subjectAltName extension, and its CN is in the
//!    allow-list. These are the PKI toolkit's own `cti_client_rules`, the same rules
//!    `bridgehead pki verify --profile cti-client` applies.
//!
//! A refusal ends the handshake with a TLS alert. It is logged with the rule broken, the
//! certificate's subject and serial, and counted in `bridgehead_cti_refusals_total{rule}`.
//! The admitted application's identity is its CN (events carry it as `clientId`).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::pki::{self, Certificate, Origin, Status};

/// The rules of [`pki::cti_client_rules`], in the order it reports them.
const RULES: [&str; 4] = [
    "eku-broadworks-oid",
    "eku-client-auth",
    "subject-alt-name",
    "common-name",
];

/// Verifies CTI client certificates (see the module docs).
#[derive(Debug)]
pub struct CtiClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl CtiClientVerifier {
    /// Wraps `inner` (a WebPKI client verifier over the CTI trust bundle).
    pub fn new(inner: Arc<dyn ClientCertVerifier>, allowed: Vec<String>) -> Self {
        CtiClientVerifier { inner, allowed }
    }
}

fn refuse(rule: &'static str, leaf: Option<&Certificate>, reason: &str) -> rustls::Error {
    let (subject, serial) = leaf.map_or(("(unreadable)", "(unknown)"), |c| {
        (c.subject.as_str(), c.serial.as_str())
    });
    tracing::warn!(
        rule,
        subject,
        serial,
        reason,
        "CTI client certificate refused"
    );
    crate::telemetry::cti_refusal(rule);
    rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure)
}

/// The CN (application identity) of a DER certificate.
pub fn client_identity(der: &CertificateDer<'_>) -> Option<String> {
    Certificate::from_der(
        der.clone().into_owned(),
        Origin {
            file: "client certificate".into(),
            position: 1,
        },
    )
    .ok()
    .and_then(|c| c.common_name)
}

impl ClientCertVerifier for CtiClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let leaf = Certificate::from_der(
            end_entity.clone().into_owned(),
            Origin {
                file: "client certificate".into(),
                position: 1,
            },
        )
        .ok();
        if let Err(e) = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            return Err(refuse("chain", leaf.as_ref(), &e.to_string()));
        }
        let Some(leaf) = leaf else {
            return Err(refuse("chain", None, "the certificate cannot be parsed"));
        };
        let findings = pki::cti_client_rules(&leaf, &self.allowed);
        for (rule, finding) in RULES.iter().zip(&findings) {
            if finding.status == Status::Fail {
                return Err(refuse(rule, Some(&leaf), &finding.reason));
            }
        }
        tracing::debug!(subject = %leaf.subject, "CTI client certificate admitted");
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
