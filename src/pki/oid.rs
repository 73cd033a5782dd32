//! Object identifiers Bridgehead checks for, and their names for humans.
//!
//! OIDs are rendered by x509-parser (rustls-webpki 0.103 prints large arcs such as 6431
//! wrongly in its errors), and named here where an admin would recognise the name.

/// BroadWorks CTI client purpose, required in the EKU of CTI client certificates.
pub const BROADWORKS_CTI: &str = "1.3.6.1.4.1.6431.1.1.8.2.1.3";
/// The BroadWorks CTI OID as encoded DER content (for rustls-webpki's `KeyUsage`).
pub const BROADWORKS_CTI_DER: &[u8] = &[
    0x2b, 0x06, 0x01, 0x04, 0x01, 0xb2, 0x1f, 0x01, 0x01, 0x08, 0x02, 0x01, 0x03,
];
/// The BroadWorks CTI OID as arcs (for rcgen).
pub const BROADWORKS_CTI_ARCS: &[u64] = &[1, 3, 6, 1, 4, 1, 6431, 1, 1, 8, 2, 1, 3];
/// id-kp-serverAuth.
pub const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
/// id-kp-clientAuth.
pub const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
/// id-kp-codeSigning.
pub const CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
/// id-kp-emailProtection.
pub const EMAIL_PROTECTION: &str = "1.3.6.1.5.5.7.3.4";
/// id-kp-timeStamping.
pub const TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";
/// id-kp-OCSPSigning.
pub const OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";
/// anyExtendedKeyUsage.
pub const ANY_EKU: &str = "2.5.29.37.0";
/// id-on-xmppAddr (RFC 6120).
pub const XMPP_ADDR: &str = "1.3.6.1.5.5.7.8.5";
/// id-on-dnsSRV (RFC 4985).
pub const SRV_NAME: &str = "1.3.6.1.5.5.7.8.7";
/// AIA caIssuers.
pub const AIA_CA_ISSUERS: &str = "1.3.6.1.5.5.7.48.2";
/// AIA OCSP.
pub const AIA_OCSP: &str = "1.3.6.1.5.5.7.48.1";
/// Ed25519 public keys.
pub const KEY_ED25519: &str = "1.3.101.112";
/// Ed448 public keys.
pub const KEY_ED448: &str = "1.3.101.113";

/// Name of an extended key usage purpose, if it has a well-known one.
pub fn eku_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        BROADWORKS_CTI => "BroadWorks CTI client",
        SERVER_AUTH => "TLS Web Server Authentication",
        CLIENT_AUTH => "TLS Web Client Authentication",
        CODE_SIGNING => "Code Signing",
        EMAIL_PROTECTION => "E-mail Protection",
        TIME_STAMPING => "Time Stamping",
        OCSP_SIGNING => "OCSP Signing",
        ANY_EKU => "Any Extended Key Usage",
        _ => return None,
    })
}

/// `name (oid)` or just the OID.
pub fn describe(oid: &str) -> String {
    match eku_name(oid).or_else(|| registry_name(oid)) {
        Some(name) => format!("{name} ({oid})"),
        None => oid.to_owned(),
    }
}

fn registry_name(oid: &str) -> Option<&'static str> {
    let parsed: x509_parser::der_parser::oid::Oid<'static> = oid.parse().ok()?;
    let registry = x509_parser::objects::oid_registry();
    registry.get(&parsed).map(|entry| entry.sn())
}

/// Readable name of a signature algorithm OID.
pub fn signature_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption".to_owned(),
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption".to_owned(),
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption".to_owned(),
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption".to_owned(),
        "1.2.840.113549.1.1.10" => "RSASSA-PSS".to_owned(),
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1".to_owned(),
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256".to_owned(),
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384".to_owned(),
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512".to_owned(),
        "1.3.101.112" => "Ed25519".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        other => registry_name(other)
            .map(str::to_owned)
            .unwrap_or_else(|| other.to_owned()),
    }
}

/// True for the SHA-1 signature algorithms (RSA, ECDSA, DSA).
pub fn is_sha1_signature(oid: &str) -> bool {
    matches!(
        oid,
        "1.2.840.113549.1.1.5" | "1.2.840.10045.4.1" | "1.2.840.10040.4.3" | "1.3.14.3.2.29"
    )
}

/// Name of a named elliptic curve.
pub fn curve_name(oid: &str) -> String {
    match oid {
        "1.2.840.10045.3.1.1" => "P-192".to_owned(),
        "1.3.132.0.33" => "P-224".to_owned(),
        "1.2.840.10045.3.1.7" => "P-256".to_owned(),
        "1.3.132.0.34" => "P-384".to_owned(),
        "1.3.132.0.35" => "P-521".to_owned(),
        "1.3.132.0.10" => "secp256k1".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadworks_oid_der_matches_its_dotted_form() {
        let parsed: x509_parser::der_parser::oid::Oid<'static> = BROADWORKS_CTI.parse().unwrap();
        assert_eq!(parsed.as_bytes(), BROADWORKS_CTI_DER);
        let arcs: Vec<u64> = parsed.iter().unwrap().collect();
        assert_eq!(arcs, BROADWORKS_CTI_ARCS);
    }

    #[test]
    fn names_the_broadworks_purpose() {
        assert_eq!(
            describe(BROADWORKS_CTI),
            "BroadWorks CTI client (1.3.6.1.4.1.6431.1.1.8.2.1.3)"
        );
    }
}
