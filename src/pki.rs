//! The PKI toolkit: reading, checking, explaining and issuing the certificates Bridgehead
//! depends on. Synchronous code, no tokio: the CLI, `serve` start-up and the TLS verifiers
//! all call the same functions.
//!
//! - [`input`] reads PEM certificates and keys (PKCS#8, PKCS#1, SEC1, encrypted PKCS#8),
//!   with plain-words errors for DER, empty and truncated files.
//! - [`Certificate`] is a certificate parsed once with x509-parser.
//! - [`verify()`] runs every check (key match, chain, order, names, profile, validity, lints)
//!   and returns a [`Report`]; rustls-webpki gives the verdict on the chain and our own path
//!   walk explains a refusal.
//! - [`inspect`] describes certificates; [`issue`] makes development and test certificates.

mod certificate;
mod error;
pub mod input;
pub mod inspect;
pub mod issue;
pub mod oid;
pub mod report;
mod verify;

use std::path::Path;

pub use certificate::{
    sha256_fingerprint, AltName, BasicConstraints, Certificate, KeyKind, NameConstraints, Origin,
};
pub use error::PkiError;
pub use verify::{
    cti_client_rules, day, lint_certificates, verify, walk_path, webpki_verify, webpki_words,
    Finding, PathEnd, PathWalk, Profile, Purpose, Report, Status, Subject, VerifyInput,
};

/// Loads a trust bundle from `path`, or the system's trusted roots when `path` is `None`.
pub fn load_trust(path: Option<&Path>) -> Result<Vec<Certificate>, PkiError> {
    match path {
        Some(path) => input::read_certificates(path),
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            if loaded.certs.is_empty() {
                let detail = loaded
                    .errors
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "no certificates found".to_owned());
                return Err(PkiError::SystemRoots(detail));
            }
            Ok(loaded
                .certs
                .into_iter()
                .enumerate()
                .filter_map(|(i, der)| {
                    let origin = Origin {
                        file: "system roots".to_owned(),
                        position: i + 1,
                    };
                    Certificate::from_der(der.into_owned(), origin).ok()
                })
                .collect())
        }
    }
}

/// Writes PEM certificates, leaf first, to `path`.
pub fn write_chain(path: &Path, chain: &[Certificate], force: bool) -> Result<(), PkiError> {
    let pem: String = chain
        .iter()
        .map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.der.to_vec())))
        .collect();
    issue::write_file(path, pem.as_bytes(), false, force)
}
