//! Reading certificates and private keys from files, with plain-words errors for the inputs
//! admins actually hand us: empty files, truncated or damaged PEM, keys in PKCS#8, PKCS#1
//! or SEC1, and encrypted PKCS#8. A file is PEM (any number of blocks) or binary DER (one
//! certificate, or one key in any of those forms); a `.p12`/`.pfx` file is a PKCS#12
//! bundle (certificates and a key, under a passphrase).

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

/// Parses PEM certificates (or one DER certificate) from bytes already read; `label`
/// names them in reports.
pub fn parse_certificates(
    path: &Path,
    label: &str,
    bytes: &[u8],
) -> Result<Vec<Certificate>, PkiError> {
    let blocks = match contents(path, bytes)? {
        Contents::Pem(blocks) => blocks,
        Contents::Der(der) => {
            let origin = Origin {
                file: label.to_owned(),
                position: 1,
            };
            let certificate = Certificate::from_der(CertificateDer::from(der.to_vec()), origin)
                .map_err(|failure| {
                    format_error(
                        path,
                        format!(
                            "binary DER that is not a certificate ({}); is it a key?",
                            failure.0
                        ),
                    )
                })?;
            return Ok(vec![certificate]);
        }
    };
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

/// Whether `path` names a PKCS#12 bundle (`.p12` or `.pfx`).
pub fn is_pkcs12(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"))
}

/// Reads a PKCS#12 bundle with `password` (none: the empty passphrase): its certificates
/// in the order stored, and its private key when it holds one.
pub fn read_pkcs12(
    path: &Path,
    password: Option<&[u8]>,
) -> Result<(Vec<Certificate>, Option<PrivateKeyDer<'static>>), PkiError> {
    let bytes = read(path)?;
    let password = std::str::from_utf8(password.unwrap_or_default())
        .map_err(|_| format_error(path, "the passphrase is not UTF-8".to_owned()))?;
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&bytes, password).map_err(|e| {
        format_error(
            path,
            format!(
                "cannot open the PKCS#12 bundle ({e}): a wrong passphrase (give it with \
                 --key-pass-file), or not a PKCS#12 file"
            ),
        )
    })?;
    let label = path.display().to_string();
    let mut certificates = Vec::new();
    for (i, bag) in archive.certs.iter().enumerate() {
        let origin = Origin {
            file: label.clone(),
            position: i + 1,
        };
        let der = CertificateDer::from(bag.cert.as_der().to_vec());
        certificates.push(Certificate::from_der(der, origin).map_err(|failure| {
            PkiError::Certificate {
                path: path.to_owned(),
                position: i + 1,
                reason: failure.0,
            }
        })?);
    }
    if certificates.is_empty() {
        return Err(format_error(
            path,
            "the PKCS#12 bundle holds no certificate".to_owned(),
        ));
    }
    let key = archive
        .keys
        .first()
        .map(|bag| PrivatePkcs8KeyDer::from(bag.key.as_der().to_vec()).into());
    Ok((certificates, key))
}

/// Reads a private key: PKCS#8, PKCS#1 (RSA), SEC1 (EC), or encrypted PKCS#8 with `password`.
pub fn read_private_key(
    path: &Path,
    password: Option<&[u8]>,
) -> Result<PrivateKeyDer<'static>, PkiError> {
    let bytes = read(path)?;
    let key_error = |reason: String| PkiError::Key {
        path: path.to_owned(),
        reason,
    };
    let blocks = match contents(path, &bytes)? {
        Contents::Pem(blocks) => blocks,
        Contents::Der(der) => {
            if pkcs8::EncryptedPrivateKeyInfo::from_der(der).is_ok() {
                let label = "ENCRYPTED PRIVATE KEY";
                return read_private_key_block(&pem::Pem::new(label, der.to_vec()), password)
                    .unwrap_or_else(|| Err("unreadable encrypted key".to_owned()))
                    .map_err(key_error);
            }
            return PrivateKeyDer::try_from(der.to_vec()).map_err(|_| {
                key_error(
                    "binary DER that is not a private key (PKCS#8, PKCS#1 or SEC1); is it a \
                     certificate?"
                        .to_owned(),
                )
            });
        }
    };
    for block in &blocks {
        if let Some(key) = read_private_key_block(block, password) {
            return key.map_err(key_error);
        }
    }
    let found: Vec<&str> = blocks.iter().map(|b| b.tag()).collect();
    Err(key_error(format!(
        "no private key found (the file holds: {})",
        found.join(", ")
    )))
}

/// The key in one PEM block (`None` when the block holds no key), or why it is unusable.
fn read_private_key_block(
    block: &pem::Pem,
    password: Option<&[u8]>,
) -> Option<Result<PrivateKeyDer<'static>, String>> {
    let contents = block.contents().to_vec();
    Some(match block.tag() {
        "PRIVATE KEY" => Ok(PrivatePkcs8KeyDer::from(contents).into()),
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" if block.headers().get("Proc-Type").is_some() => Err(
            "the key is encrypted in the legacy OpenSSL format, which is not supported; \
                 convert it with `openssl pkcs8 -topk8 -in OLD -out NEW` (add -nocrypt to \
                 store it unencrypted)"
                .to_owned(),
        ),
        "RSA PRIVATE KEY" => Ok(PrivatePkcs1KeyDer::from(contents).into()),
        "EC PRIVATE KEY" => Ok(PrivateSec1KeyDer::from(contents).into()),
        "ENCRYPTED PRIVATE KEY" => {
            let Some(password) = password else {
                return Some(Err(
                    "the key is encrypted; give its password with --key-pass-file".to_owned(),
                ));
            };
            pkcs8::EncryptedPrivateKeyInfo::from_der(&contents)
                .map_err(|e| format!("malformed encrypted key: {e}"))
                .and_then(|info| {
                    info.decrypt(password).map_err(|e| {
                        format!(
                            "cannot decrypt the key: wrong password or unsupported cipher ({e})"
                        )
                    })
                })
                .map(|document| PrivatePkcs8KeyDer::from(document.as_bytes().to_vec()).into())
        }
        _ => return None,
    })
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

/// What a file holds: PEM blocks, or one binary DER object.
enum Contents<'a> {
    Pem(Vec<pem::Pem>),
    Der(&'a [u8]),
}

fn contents<'a>(path: &Path, bytes: &'a [u8]) -> Result<Contents<'a>, PkiError> {
    // DER certificates and keys are SEQUENCEs: 0x30 followed by a length.
    let has_pem_header = bytes.windows(11).any(|w| w == b"-----BEGIN ");
    if bytes.first() == Some(&0x30) && !has_pem_header {
        return Ok(Contents::Der(bytes));
    }
    pem_blocks(path, bytes).map(Contents::Pem)
}

fn pem_blocks(path: &Path, bytes: &[u8]) -> Result<Vec<pem::Pem>, PkiError> {
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
