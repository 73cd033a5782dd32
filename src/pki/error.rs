//! Errors of the PKI toolkit: everything that stops a check from running at all. A check that
//! runs and finds a problem is not an error, it is a [`super::Finding`].

use std::path::PathBuf;

/// Why certificates or keys could not be read, written or made.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Refusing to replace an existing file.
    #[error("{path} exists; pass --force to overwrite it")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file is empty.
    #[error("{path} is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The input is not usable PEM.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, in plain words.
        reason: String,
    },
    /// A PEM block decoded but its content is not a certificate.
    #[error("{path}: certificate #{position} cannot be read: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// 1-based position in the file.
        position: usize,
        /// What is wrong.
        reason: String,
    },
    /// The private key cannot be used.
    #[error("{path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The system trust store could not be loaded.
    #[error("cannot load the system trust store: {0}")]
    SystemRoots(String),
    /// A certificate could not be generated.
    #[error("cannot issue the certificate: {0}")]
    Issue(String),
}
