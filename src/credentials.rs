//! Password verifiers: user passwords are never stored, only salted SCRAM verifiers
//! (RFC 5802, RFC 7677) for SHA-1 and SHA-256. One record serves SASL SCRAM-SHA-1,
//! SCRAM-SHA-256, PLAIN and HTTP Basic:
//!
//! ```text
//! SaltedPassword = PBKDF2-HMAC-H(SASLprep(password), salt, iterations)
//! ClientKey      = HMAC-H(SaltedPassword, "Client Key")
//! StoredKey      = H(ClientKey)                      -- stored
//! ServerKey      = HMAC-H(SaltedPassword, "Server Key") -- stored
//! ```
//!
//! A plain password (PLAIN, Basic) is checked by recomputing StoredKey and comparing in
//! constant time.

mod throttle;

pub use throttle::{LoginBudgets, LoginLimiter, Reservation, Throttled, MAX_TRACKED_KEYS};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The minimum PBKDF2 iteration count RFC 7677 asks for.
pub const MIN_ITERATIONS: u32 = 4096;

/// The hash a SCRAM verifier is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    /// SCRAM-SHA-1.
    Sha1,
    /// SCRAM-SHA-256.
    Sha256,
}

/// One SCRAM verifier.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramVerifier {
    /// The random salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why a password cannot be turned into a verifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// SASLprep refused the password (prohibited or unassigned characters).
    #[error("the password contains characters SASLprep (RFC 4013) prohibits")]
    Prohibited,
    /// Empty password.
    #[error("the password is empty")]
    Empty,
}

/// Normalises a password with SASLprep, as SCRAM requires.
pub fn saslprep(password: &str) -> Result<String, CredentialError> {
    if password.is_empty() {
        return Err(CredentialError::Empty);
    }
    stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .map_err(|_| CredentialError::Prohibited)
}

fn salted_password(hash: ScramHash, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => {
            let mut out = [0u8; 20];
            pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out);
            out.to_vec()
        }
        ScramHash::Sha256 => {
            let mut out = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
            out.to_vec()
        }
    }
}

/// HMAC-H(key, message).
pub fn hmac(hash: ScramHash, key: &[u8], message: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => {
            let mut mac =
                <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        ScramHash::Sha256 => {
            let mut mac =
                <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// H(data).
pub fn digest(hash: ScramHash, data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => Sha1::digest(data).to_vec(),
        ScramHash::Sha256 => Sha256::digest(data).to_vec(),
    }
}

impl ScramVerifier {
    /// Makes a verifier from a SASLprepped password with a fresh random salt.
    fn derive(hash: ScramHash, prepared: &str, iterations: u32) -> Self {
        let salt: [u8; 16] = rand::random();
        Self::with_salt(hash, prepared, &salt, iterations)
    }

    pub(crate) fn with_salt(hash: ScramHash, prepared: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = salted_password(hash, prepared.as_bytes(), salt, iterations);
        let client_key = hmac(hash, &salted, b"Client Key");
        ScramVerifier {
            salt: salt.to_vec(),
            iterations,
            stored_key: digest(hash, &client_key),
            server_key: hmac(hash, &salted, b"Server Key"),
        }
    }

    /// Checks a plain password (already SASLprepped) in constant time.
    fn matches(&self, hash: ScramHash, prepared: &str) -> bool {
        let candidate = Self::with_salt(hash, prepared, &self.salt, self.iterations);
        candidate.stored_key.ct_eq(&self.stored_key).into()
    }
}

/// The SHA-1 and SHA-256 verifiers of one password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordVerifiers {
    /// For SCRAM-SHA-1.
    pub sha1: ScramVerifier,
    /// For SCRAM-SHA-256, PLAIN and Basic.
    pub sha256: ScramVerifier,
}

impl PasswordVerifiers {
    /// Derives both verifiers; `iterations` is raised to [`MIN_ITERATIONS`] if lower.
    pub fn new(password: &str, iterations: u32) -> Result<Self, CredentialError> {
        let prepared = saslprep(password)?;
        let iterations = iterations.max(MIN_ITERATIONS);
        Ok(PasswordVerifiers {
            sha1: ScramVerifier::derive(ScramHash::Sha1, &prepared, iterations),
            sha256: ScramVerifier::derive(ScramHash::Sha256, &prepared, iterations),
        })
    }

    /// Verifiers of a random password nobody knows: checking a password against them costs
    /// what a real check costs, so an unknown account answers as slowly as a known one.
    pub fn decoy(iterations: u32) -> Self {
        let password = hex::encode(rand::random::<[u8; 16]>());
        Self::new(&password, iterations).expect("a hex string is a valid SASLprep password")
    }

    /// The verifier for `hash`.
    pub fn for_hash(&self, hash: ScramHash) -> &ScramVerifier {
        match hash {
            ScramHash::Sha1 => &self.sha1,
            ScramHash::Sha256 => &self.sha256,
        }
    }

    /// Checks a plain password (PLAIN, HTTP Basic) against the SHA-256 verifier.
    pub fn verify_plain(&self, password: &str) -> bool {
        match saslprep(password) {
            Ok(prepared) => self.sha256.matches(ScramHash::Sha256, &prepared),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3 test vector: user "user", password "pencil", 4096 iterations.
    #[test]
    fn sha256_verifier_matches_rfc7677_vector() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = ScramVerifier::with_salt(ScramHash::Sha256, "pencil", &salt, 4096);
        // ServerSignature for the RFC's AuthMessage is HMAC(ServerKey, AuthMessage).
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let server_signature = hmac(ScramHash::Sha256, &v.server_key, auth_message.as_bytes());
        assert_eq!(
            b64.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    /// RFC 5802 §5 test vector for SCRAM-SHA-1.
    #[test]
    fn sha1_verifier_matches_rfc5802_vector() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode("QSXCR+Q6sek8bf92").unwrap();
        let v = ScramVerifier::with_salt(ScramHash::Sha1, "pencil", &salt, 4096);
        let auth_message = "n=user,r=fyko+d2lbbFgONRv9qkxdawL,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        let server_signature = hmac(ScramHash::Sha1, &v.server_key, auth_message.as_bytes());
        assert_eq!(b64.encode(server_signature), "rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    }

    #[test]
    fn plain_password_checks_against_the_verifier() {
        let v = PasswordVerifiers::new("pässwörd ✓", 4096).unwrap();
        assert!(v.verify_plain("pässwörd ✓"));
        assert!(!v.verify_plain("passwort"));
        assert_ne!(v.sha1.salt, v.sha256.salt);
    }

    #[test]
    fn iterations_never_drop_below_the_minimum() {
        let v = PasswordVerifiers::new("x", 10).unwrap();
        assert_eq!(v.sha256.iterations, MIN_ITERATIONS);
    }

    #[test]
    fn empty_and_prohibited_passwords_are_refused() {
        assert_eq!(
            PasswordVerifiers::new("", 4096).unwrap_err(),
            CredentialError::Empty
        );
        assert_eq!(
            PasswordVerifiers::new("a\u{0007}b", 4096).unwrap_err(),
            CredentialError::Prohibited
        );
    }
}
