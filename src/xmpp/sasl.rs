//! SASL for client streams (RFC 6120 §6): the server side of SCRAM-SHA-256 and SCRAM-SHA-1
//! (RFC 5802, RFC 7677) over the store's verifiers, and PLAIN (RFC 4616) message parsing.
//!
//! ```text
//! client                                           server
//!   <auth mechanism='SCRAM-SHA-256'>b64(n,,n=alice,r=CNONCE)</auth>
//!                                                  <challenge>b64(r=CNONCE+SNONCE,s=SALT,i=4096)</challenge>
//!   <response>b64(c=biws,r=CNONCE+SNONCE,p=PROOF)</response>
//!                                                  <success>b64(v=SERVER-SIGNATURE)</success>
//! ```
//!
//! The server keeps only StoredKey and ServerKey, so a SCRAM login costs it two HMACs and a
//! hash, never PBKDF2. An account that does not exist gets a decoy exchange: a salt derived
//! from a per-process key and the name (the same salt every time, as a real account's is)
//! and the configured iteration count, then `not-authorized` at the end, exactly like a
//! wrong password.
//!
//! Channel binding: on TLS 1.3 the -PLUS variants are offered with `tls-exporter`
//! (RFC 9266: 32 bytes exported with the label `EXPORTER-Channel-Binding`), advertised
//! with XEP-0440. The client's `c=` must then carry the GS2 header and those bytes, so a
//! man in the middle who terminates TLS cannot replay the exchange. A client that sends the
//! `y` flag (it supports binding but believes the server does not) while -PLUS was offered
//! is refused: that is a downgrade (RFC 5802 §6). Without binding (TLS 1.2, WebSocket,
//! clear text) only the plain variants are offered, and `y` is accepted.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::credentials::{digest, hmac, ScramHash, ScramVerifier};

/// The channel-binding type Bridgehead supports (RFC 9266).
pub const TLS_EXPORTER: &str = "tls-exporter";
/// The exporter label RFC 9266 defines.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";
pub use super::ns::SASL_CB;

/// SASL mechanisms Bridgehead speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// SCRAM-SHA-256-PLUS (with `tls-exporter` binding).
    ScramSha256Plus,
    /// SCRAM-SHA-1-PLUS (with `tls-exporter` binding).
    ScramSha1Plus,
    /// SCRAM-SHA-256.
    ScramSha256,
    /// SCRAM-SHA-1.
    ScramSha1,
    /// PLAIN (only over TLS).
    Plain,
}

impl Mechanism {
    /// Every mechanism, strongest first.
    pub const ALL: [Mechanism; 5] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::Plain => "PLAIN",
        }
    }

    /// The mechanism called `name`, if Bridgehead speaks it.
    pub fn parse(name: &str) -> Option<Self> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The SCRAM hash, for the SCRAM mechanisms.
    pub fn scram_hash(self) -> Option<ScramHash> {
        match self {
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Some(ScramHash::Sha256),
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Some(ScramHash::Sha1),
            Mechanism::Plain => None,
        }
    }

    /// Whether the mechanism binds the exchange to the TLS channel.
    pub fn is_plus(self) -> bool {
        matches!(self, Mechanism::ScramSha256Plus | Mechanism::ScramSha1Plus)
    }
}

/// RFC 6120 §6.5 SASL failure conditions Bridgehead sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The client sent `<abort/>`.
    Aborted,
    /// PLAIN without TLS.
    EncryptionRequired,
    /// Not base64.
    IncorrectEncoding,
    /// An authorization identity other than the authenticated one.
    InvalidAuthzid,
    /// A mechanism not offered.
    InvalidMechanism,
    /// A message that does not parse.
    MalformedRequest,
    /// Wrong credentials (or an unknown account: the same answer).
    NotAuthorized,
    /// Too many failures, or the checking component did not answer.
    TemporaryAuthFailure,
}

impl Failure {
    /// The condition element's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Aborted => "aborted",
            Failure::EncryptionRequired => "encryption-required",
            Failure::IncorrectEncoding => "incorrect-encoding",
            Failure::InvalidAuthzid => "invalid-authzid",
            Failure::InvalidMechanism => "invalid-mechanism",
            Failure::MalformedRequest => "malformed-request",
            Failure::NotAuthorized => "not-authorized",
            Failure::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }
}

/// Decodes the base64 text of `<auth/>` or `<response/>` (`=` is an empty message).
pub fn decode(text: &str) -> Result<Vec<u8>, Failure> {
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Ok(Vec::new());
    }
    BASE64.decode(text).map_err(|_| Failure::IncorrectEncoding)
}

/// Encodes a challenge or success payload.
pub fn encode(data: &[u8]) -> String {
    BASE64.encode(data)
}

/// PLAIN's message: `[authzid] NUL authcid NUL password`.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// The authorization identity, if one was sent.
    pub authzid: Option<String>,
    /// The account name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Parses PLAIN's message.
pub fn parse_plain(message: &[u8]) -> Result<PlainCredentials, Failure> {
    let text = std::str::from_utf8(message).map_err(|_| Failure::MalformedRequest)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(username), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Failure::MalformedRequest);
    };
    if username.is_empty() || password.is_empty() {
        return Err(Failure::MalformedRequest);
    }
    Ok(PlainCredentials {
        authzid: (!authzid.is_empty()).then(|| authzid.to_owned()),
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// The SCRAM client-first message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// `n,,`, `y,,` or `n,a=…,` as sent (part of the channel-binding check).
    pub gs2_header: String,
    /// `a=`, if sent.
    pub authzid: Option<String>,
    /// `n=`, unescaped.
    pub username: String,
    /// Everything after the GS2 header.
    bare: String,
    nonce: String,
}

/// Undoes SCRAM's `=2C` / `=3D` escaping; any other `=` is malformed.
fn unescape_name(value: &str) -> Result<String, Failure> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(Failure::MalformedRequest),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses SCRAM's client-first message for `mechanism`; `binding_offered` says whether
/// the -PLUS variants were offered on this stream (see the module docs for the rules).
pub fn parse_client_first(
    message: &[u8],
    mechanism: Mechanism,
    binding_offered: bool,
) -> Result<ClientFirst, Failure> {
    let text = std::str::from_utf8(message).map_err(|_| Failure::MalformedRequest)?;
    let mut parts = text.splitn(3, ',');
    let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Failure::MalformedRequest);
    };
    match (flag, mechanism.is_plus()) {
        ("n", false) => {}
        // The client can bind but thinks we cannot: a downgrade if we offered binding.
        ("y", false) if !binding_offered => {}
        ("y", false) => return Err(Failure::NotAuthorized),
        (flag, true) if flag.strip_prefix("p=") == Some(TLS_EXPORTER) => {}
        _ => return Err(Failure::MalformedRequest),
    }
    let gs2_header = format!("{flag},{authzid},");
    let authzid = match authzid {
        "" => None,
        a => Some(unescape_name(
            a.strip_prefix("a=").ok_or(Failure::MalformedRequest)?,
        )?),
    };
    let mut username = None;
    let mut nonce = None;
    for (index, attribute) in bare.split(',').enumerate() {
        match (index, attribute.split_at_checked(2)) {
            (0, Some(("n=", value))) => username = Some(unescape_name(value)?),
            (1, Some(("r=", value))) => nonce = Some(value.to_owned()),
            // Mandatory extensions are not supported.
            (_, Some(("m=", _))) => return Err(Failure::MalformedRequest),
            (0 | 1, _) => return Err(Failure::MalformedRequest),
            _ => {}
        }
    }
    let (Some(username), Some(nonce)) = (username, nonce) else {
        return Err(Failure::MalformedRequest);
    };
    if username.is_empty()
        || nonce.is_empty()
        || !nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(Failure::MalformedRequest);
    }
    Ok(ClientFirst {
        gs2_header,
        authzid,
        username,
        bare: bare.to_owned(),
        nonce,
    })
}

/// A SCRAM exchange after the server-first message.
#[derive(Debug)]
pub struct ScramExchange {
    hash: ScramHash,
    /// What `c=` must decode to: the GS2 header, then the channel's binding data for `p=`.
    expected_binding: Vec<u8>,
    first: ClientFirst,
    server_first: String,
    nonce: String,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
    /// False for the decoy exchange of an unknown account: it always fails.
    genuine: bool,
}

impl ScramExchange {
    /// Starts an exchange for `first` with the account's `verifier`, or a decoy (`None`)
    /// whose salt is derived from `decoy_key` and the name so it repeats like a real one.
    /// `binding` is the channel's `tls-exporter` data, checked when the client asked for
    /// binding (`p=`).
    pub fn start(
        hash: ScramHash,
        first: ClientFirst,
        binding: Option<&[u8]>,
        verifier: Option<&ScramVerifier>,
        decoy_key: &[u8],
        decoy_iterations: u32,
    ) -> (Self, String) {
        let server_nonce = encode(&rand::random::<[u8; 18]>());
        let nonce = format!("{}{}", first.nonce, server_nonce);
        let (salt, iterations, stored_key, server_key, genuine) = match verifier {
            Some(v) => (
                v.salt.clone(),
                v.iterations,
                v.stored_key.clone(),
                v.server_key.clone(),
                true,
            ),
            None => {
                let salt = hmac(ScramHash::Sha256, decoy_key, first.username.as_bytes());
                (
                    salt[..16].to_vec(),
                    decoy_iterations,
                    Vec::new(),
                    Vec::new(),
                    false,
                )
            }
        };
        let server_first = format!("r={nonce},s={},i={iterations}", encode(&salt));
        let message = server_first.clone();
        let mut expected_binding = first.gs2_header.as_bytes().to_vec();
        if first.gs2_header.starts_with("p=") {
            expected_binding.extend_from_slice(binding.unwrap_or_default());
        }
        (
            ScramExchange {
                hash,
                expected_binding,
                first,
                server_first,
                nonce,
                stored_key,
                server_key,
                genuine,
            },
            message,
        )
    }

    /// Checks the client-final message; on success returns the server-final message.
    pub fn finish(&self, message: &[u8]) -> Result<String, Failure> {
        let text = std::str::from_utf8(message).map_err(|_| Failure::MalformedRequest)?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(Failure::MalformedRequest)?;
        let mut binding = None;
        let mut nonce = None;
        for (index, attribute) in without_proof.split(',').enumerate() {
            match (index, attribute.split_at_checked(2)) {
                (0, Some(("c=", value))) => binding = Some(value),
                (1, Some(("r=", value))) => nonce = Some(value),
                (0 | 1, _) => return Err(Failure::MalformedRequest),
                _ => {}
            }
        }
        let (Some(binding), Some(nonce)) = (binding, nonce) else {
            return Err(Failure::MalformedRequest);
        };
        let binding_matches: bool = decode(binding)?.ct_eq(&self.expected_binding).into();
        if !binding_matches || nonce != self.nonce {
            return Err(Failure::NotAuthorized);
        }
        let proof = decode(proof)?;
        if !self.genuine || proof.len() != self.stored_key.len() {
            return Err(Failure::NotAuthorized);
        }
        let auth_message = format!("{},{},{without_proof}", self.first.bare, self.server_first);
        let client_signature = hmac(self.hash, &self.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !bool::from(digest(self.hash, &client_key).ct_eq(&self.stored_key)) {
            return Err(Failure::NotAuthorized);
        }
        let server_signature = hmac(self.hash, &self.server_key, auth_message.as_bytes());
        Ok(format!("v={}", encode(&server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 7677 §3 exchange, replayed against a verifier made from "pencil".
    #[test]
    fn rfc7677_exchange_succeeds_with_the_right_proof() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = ScramVerifier::with_salt(ScramHash::Sha256, "pencil", &salt, 4096);
        let first = parse_client_first(
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            Mechanism::ScramSha256,
            true,
        )
        .unwrap();
        let (mut exchange, _) =
            ScramExchange::start(ScramHash::Sha256, first, None, Some(&verifier), b"k", 4096);
        // Pin the server nonce to the RFC's, as the proof covers it.
        exchange.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into();
        exchange.server_first = format!("r={},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", exchange.nonce);
        let server_final = exchange
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(
            server_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let wrong = exchange.finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAAZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        assert_eq!(wrong, Err(Failure::NotAuthorized));
        let other_nonce = exchange.finish(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqOxx,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        );
        assert_eq!(other_nonce, Err(Failure::NotAuthorized));
    }

    #[test]
    fn unknown_accounts_get_a_stable_decoy_salt_and_fail() {
        let first =
            || parse_client_first(b"n,,n=nobody,r=abc", Mechanism::ScramSha256, false).unwrap();
        let (a, server_first_a) =
            ScramExchange::start(ScramHash::Sha256, first(), None, None, b"k", 4096);
        let (_, server_first_b) =
            ScramExchange::start(ScramHash::Sha256, first(), None, None, b"k", 4096);
        let salt = |m: &str| m.split(',').nth(1).unwrap().to_owned();
        assert_eq!(salt(&server_first_a), salt(&server_first_b));
        assert!(server_first_a.ends_with(",i=4096"));
        let nonce = &a.nonce;
        let final_message = format!("c=biws,r={nonce},p={}", encode(&[0u8; 32]));
        assert_eq!(
            a.finish(final_message.as_bytes()),
            Err(Failure::NotAuthorized)
        );
    }

    #[test]
    fn client_first_parsing() {
        let first = parse_client_first(
            b"y,a=al=2Cice,n=a=3Db,r=xyz,ext=1",
            Mechanism::ScramSha256,
            false,
        )
        .unwrap();
        assert_eq!(first.username, "a=b");
        assert_eq!(first.authzid.as_deref(), Some("al,ice"));
        assert_eq!(first.gs2_header, "y,a=al=2Cice,");
        for bad in [
            &b"p=tls-exporter,,n=a,r=x"[..],
            b"n,,r=x,n=a",
            b"n,,n=a",
            b"n,,n=a=,r=x",
            b"n,,m=ext,n=a,r=x",
            b"n,,n=,r=x",
            b"\xff",
        ] {
            assert_eq!(
                parse_client_first(bad, Mechanism::ScramSha256, false),
                Err(Failure::MalformedRequest),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn channel_binding_rules() {
        use Mechanism::*;
        let plus = b"p=tls-exporter,,n=a,r=x";
        assert!(parse_client_first(plus, ScramSha256Plus, true).is_ok());
        assert_eq!(
            parse_client_first(b"p=tls-unique,,n=a,r=x", ScramSha256Plus, true),
            Err(Failure::MalformedRequest),
            "only tls-exporter"
        );
        assert_eq!(
            parse_client_first(b"n,,n=a,r=x", ScramSha256Plus, true),
            Err(Failure::MalformedRequest),
            "-PLUS needs p="
        );
        assert_eq!(
            parse_client_first(b"y,,n=a,r=x", ScramSha256, true),
            Err(Failure::NotAuthorized),
            "y while binding was offered is a downgrade"
        );
        assert!(parse_client_first(b"y,,n=a,r=x", ScramSha256, false).is_ok());

        // c= must carry the GS2 header and this channel's exporter bytes.
        let verifier = ScramVerifier::with_salt(ScramHash::Sha256, "pencil", b"salt", 4096);
        let channel = [7u8; 32];
        let proof_for = |exchange: &ScramExchange, binding: &[u8]| {
            let without_proof = format!("c={},r={}", encode(binding), exchange.nonce);
            let salted = {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"pencil", b"salt", 4096, &mut out);
                out
            };
            let client_key = hmac(ScramHash::Sha256, &salted, b"Client Key");
            let auth = format!(
                "{},{},{without_proof}",
                exchange.first.bare, exchange.server_first
            );
            let signature = hmac(
                ScramHash::Sha256,
                &digest(ScramHash::Sha256, &client_key),
                auth.as_bytes(),
            );
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&signature)
                .map(|(k, s)| k ^ s)
                .collect();
            format!("{without_proof},p={}", encode(&proof))
        };
        let first = parse_client_first(plus, ScramSha256Plus, true).unwrap();
        let (exchange, _) = ScramExchange::start(
            ScramHash::Sha256,
            first,
            Some(&channel),
            Some(&verifier),
            b"k",
            4096,
        );
        let mut good = b"p=tls-exporter,,".to_vec();
        good.extend_from_slice(&channel);
        assert!(exchange
            .finish(proof_for(&exchange, &good).as_bytes())
            .is_ok());
        let mut other_channel = b"p=tls-exporter,,".to_vec();
        other_channel.extend_from_slice(&[8u8; 32]);
        assert_eq!(
            exchange.finish(proof_for(&exchange, &other_channel).as_bytes()),
            Err(Failure::NotAuthorized),
            "another TLS channel (a man in the middle) is refused"
        );
    }

    #[test]
    fn plain_parsing() {
        let c = parse_plain(b"\0alice\0secret").unwrap();
        assert_eq!(
            (c.authzid, c.username.as_str(), c.password.as_str()),
            (None, "alice", "secret")
        );
        assert_eq!(
            parse_plain(b"alice\0secret"),
            Err(Failure::MalformedRequest)
        );
        assert_eq!(parse_plain(b"\0alice\0"), Err(Failure::MalformedRequest));
        assert_eq!(decode("!!"), Err(Failure::IncorrectEncoding));
        assert_eq!(decode("="), Ok(Vec::new()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever a client sends, the SASL parsers answer with a value or a failure.
        #[test]
        fn any_bytes_are_parsed_or_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..96)) {
            let _ = parse_plain(&bytes);
            for mechanism in [Mechanism::ScramSha256, Mechanism::ScramSha1Plus] {
                let _ = parse_client_first(&bytes, mechanism, true);
            }
            let _ = decode(&String::from_utf8_lossy(&bytes));
        }

        /// Client-first messages with any user name round-trip SCRAM's escaping.
        #[test]
        fn escaped_user_names_come_back(name in "[a-z=,@.]{1,16}", nonce in "[!-+--~]{1,24}") {
            let escaped = name.replace('=', "=3D").replace(',', "=2C");
            let message = format!("n,,n={escaped},r={nonce}");
            let first = parse_client_first(message.as_bytes(), Mechanism::ScramSha256, false).unwrap();
            proptest::prop_assert_eq!(first.username, name);
        }

        /// PLAIN messages come apart into what was put in.
        #[test]
        fn plain_round_trips(user in "[^\\x00]{1,16}", password in "[^\\x00]{1,16}") {
            let credentials = parse_plain(format!("\0{user}\0{password}").as_bytes()).unwrap();
            proptest::prop_assert_eq!((credentials.username, credentials.password), (user, password));
        }
    }
}
