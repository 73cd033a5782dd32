//! Reading certificates and private keys from files, with plain-words errors for the inputs
//! admins actually hand us: empty files, DER where PEM was expected, truncated PEM, keys in
//! PKCS#8, PKCS#1 or SEC1, and encrypted PKCS#8.

use std::path::Path;

use pkcs8::der::Decode;
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

use super::certificate::{Certificate, Origin};
use super::PkiError;

/// Reads a file that must hold one or more PEM certificates.
pub fn read_certificates(path: &Path) -> Result<Vec<Certificate>, PkiError> {
    let bytes = read(path)?;
    parse_certificates(path, &path.display().to_string(), &bytes)
}

/// Parses PEM certificates from bytes already read; `label` names them in reports.
pub fn parse_certificates(
    path: &Path,
    label: &str,
    bytes: &[u8],
) -> Result<Vec<Certificate>, PkiError> {
    let blocks = pem_blocks(path, bytes)?;
    let mut certificates = Vec::new();
    for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
        let position = certificates.len() + 1;
        let der = CertificateDer::from(block.contents().to_vec());
        let origin = Origin {
            file: label.to_owned(),
            position,
        };
        let certificate =
            Certificate::from_der(der, origin).map_err(|failure| PkiError::Certificate {
                path: path.to_owned(),
                position,
                reason: failure.0,
            })?;
        certificates.push(certificate);
    }
    if certificates.is_empty() {
        let found: Vec<&str> = blocks.iter().map(|b| b.tag()).collect();
        return Err(format_error(
            path,
            format!(
                "no CERTIFICATE block found (the file holds: {})",
                found.join(", ")
            ),
        ));
    }
    Ok(certificates)
}

/// Reads a private key: PKCS#8, PKCS#1 (RSA), SEC1 (EC), or encrypted PKCS#8 with `password`.
pub fn read_private_key(
    path: &Path,
    password: Option<&[u8]>,
) -> Result<PrivateKeyDer<'static>, PkiError> {
    let bytes = read(path)?;
    let blocks = pem_blocks(path, &bytes)?;
    let key_error = |reason: String| PkiError::Key {
        path: path.to_owned(),
        reason,
    };
    for block in &blocks {
        let contents = block.contents().to_vec();
        match block.tag() {
            "PRIVATE KEY" => return Ok(PrivatePkcs8KeyDer::from(contents).into()),
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" if block.headers().get("Proc-Type").is_some() => {
                return Err(key_error(
                    "the key is encrypted in the legacy OpenSSL format, which is not supported; \
                     convert it with `openssl pkcs8 -topk8 -in OLD -out NEW` (add -nocrypt to \
                     store it unencrypted)"
                        .to_owned(),
                ))
            }
            "RSA PRIVATE KEY" => return Ok(PrivatePkcs1KeyDer::from(contents).into()),
            "EC PRIVATE KEY" => return Ok(PrivateSec1KeyDer::from(contents).into()),
            "ENCRYPTED PRIVATE KEY" => {
                let Some(password) = password else {
                    return Err(key_error(
                        "the key is encrypted; give its password with --key-pass-file".to_owned(),
                    ));
                };
                let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&contents)
                    .map_err(|e| key_error(format!("malformed encrypted key: {e}")))?;
                let document = info.decrypt(password).map_err(|e| {
                    key_error(format!(
                        "cannot decrypt the key: wrong password or unsupported cipher ({e})"
                    ))
                })?;
                return Ok(PrivatePkcs8KeyDer::from(document.as_bytes().to_vec()).into());
            }
            _ => {}
        }
    }
    let found: Vec<&str> = blocks.iter().map(|b| b.tag()).collect();
    Err(key_error(format!(
        "no private key found (the file holds: {})",
        found.join(", ")
    )))
}

/// Reads a password file: its first line, without the line ending.
pub fn read_password(path: &Path) -> Result<Vec<u8>, PkiError> {
    let bytes = std::fs::read(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })?;
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    let bytes = std::fs::read(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PkiError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

fn format_error(path: &Path, reason: String) -> PkiError {
    PkiError::Format {
        path: path.to_owned(),
        reason,
    }
}

fn pem_blocks(path: &Path, bytes: &[u8]) -> Result<Vec<pem::Pem>, PkiError> {
    // DER certificates and keys are SEQUENCEs: 0x30 followed by a length.
    let has_pem_header = bytes.windows(11).any(|w| w == b"-----BEGIN ");
    if bytes.first() == Some(&0x30) && !has_pem_header {
        let hint = if x509_parser::parse_x509_certificate(bytes).is_ok() {
            "openssl x509 -inform DER -in FILE -out FILE.pem"
        } else {
            "openssl pkey -inform DER -in FILE -out FILE.pem (or openssl x509 for a certificate)"
        };
        return Err(format_error(
            path,
            format!("this is binary DER, not PEM; convert it with `{hint}`"),
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| format_error(path, "not a PEM file (binary content)".to_owned()))?;
    let begins = text.matches("-----BEGIN ").count();
    let ends = text.matches("-----END ").count();
    if begins == 0 {
        return Err(format_error(
            path,
            "not a PEM file: no '-----BEGIN' line found".to_owned(),
        ));
    }
    if ends < begins {
        return Err(format_error(
            path,
            "the PEM data is truncated: a '-----BEGIN' block has no matching '-----END' line"
                .to_owned(),
        ));
    }
    pem::parse_many(bytes).map_err(|e| {
        format_error(
            path,
            format!("the PEM data is damaged ({e}); was the file cut or edited?"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any bytes, raw or in PEM armour, give certificates or a `PkiError`, never a
        /// panic: what a damaged file does to `pki verify`.
        #[test]
        fn any_input_is_read_or_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let path = Path::new("input.pem");
            let _ = parse_certificates(path, "input", &bytes);
            let mut der = bytes.clone();
            der.insert(0, 0x30);
            let _ = parse_certificates(path, "input", &der);
            let armoured = format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                base64::engine::general_purpose::STANDARD.encode(&der)
            );
            let _ = parse_certificates(path, "input", armoured.as_bytes());
        }
    }
}
