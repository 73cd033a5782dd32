//! HTTP Basic authentication for XSI, as BroadWorks clients send it.
//!
//! 1. The header is `Basic base64(user:password)`. The decoded bytes are read as UTF-8,
//!    and as Latin-1 when they are not valid UTF-8 (RFC 7617 §2.1).
//! 2. While the user or the client address is over its failed-login budget for the current
//!    minute, the attempt is refused with 429 before any password is checked.
//! 3. The user is loaded from the store (ids are case-insensitive). An unknown user costs
//!    the same password hash as a known one, and gets the same 401.
//! 4. A verified password is remembered under a keyed hash (HMAC-SHA-256 with a key drawn
//!    at start) of user id and password, together with the user record and the store's
//!    users generation at the time it was read. A later request with the same credentials
//!    touches neither PBKDF2 nor the store while the generation is unchanged. When the
//!    generation moves (a user was added, removed or given a new password, here at once
//!    or by another process within a fraction of a second), the user is read again. The
//!    entry survives only if its stored verifier is still the same. So a password change
//!    drops the remembered login. Entries expire after `xsi.auth_cache_secs`. The cache
//!    is moka's: at most `xsi.auth_cache_entries`, and when full it evicts the entries
//!    least likely to be used again (TinyLFU), so a burst of new logins never empties it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hmac::Mac;

use crate::config::XsiConfig;
use crate::credentials::{LoginBudgets, LoginLimiter, PasswordVerifiers};
use crate::telephony::Telephony;
use crate::telephony::User;

use super::error::ApiError;

/// Checks credentials; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    telephony: Telephony,
    key: Arc<[u8; 32]>,
    /// Verified logins; `None` when `xsi.auth_cache_secs` is 0.
    cache: Option<moka::sync::Cache<[u8; 32], Entry>>,
    failures: Arc<LoginLimiter>,
    dummy: Arc<PasswordVerifiers>,
    iterations: u32,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

/// A remembered login.
#[derive(Clone)]
struct Entry {
    user: Arc<User>,
    generation: u64,
}

/// What the cache knows of some credentials.
enum Remembered {
    /// Verified, and no user has changed since.
    Fresh(Box<User>),
    /// Verified, but users have changed since: still good if the stored verifier is this.
    Stale(Vec<u8>),
    /// Not verified (recently).
    Unknown,
}

/// The credentials of a Basic header.
#[derive(Debug)]
struct Basic {
    user: String,
    password: String,
}

fn parse_basic(header: &[u8]) -> Option<Basic> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = match String::from_utf8(raw) {
        Ok(utf8) => utf8,
        Err(e) => e.into_bytes().into_iter().map(char::from).collect(),
    };
    let (user, password) = decoded.split_once(':')?;
    Some(Basic {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

impl Authenticator {
    /// An authenticator over the telephony directory; `scram_iterations` is the cost of
    /// the stored verifiers, which an unknown user's attempt pays as well.
    pub fn new(telephony: Telephony, config: Arc<XsiConfig>, scram_iterations: u32) -> Self {
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut key[..]);
        // A verifier no password matches, for the same work on unknown users.
        let dummy = PasswordVerifiers::decoy(scram_iterations);
        let failures = Arc::new(LoginLimiter::new(LoginBudgets {
            per_account_per_address: config.failed_logins_per_user_per_minute.get(),
            per_address: config.failed_logins_per_address_per_minute.get(),
            per_account: config.failed_logins_per_user_all_addresses_per_minute.get(),
        }));
        // An absurdly long configured lifetime means "until the process ends".
        let ttl = Duration::from_secs(config.auth_cache_secs.min(100 * 365 * 86_400));
        let cache = (config.auth_cache_secs > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.auth_cache_entries.get() as u64)
                .time_to_live(ttl)
                .build()
        });
        Authenticator {
            telephony,
            key: Arc::new(key),
            cache,
            failures,
            dummy: Arc::new(dummy),
            iterations: scram_iterations,
        }
    }

    /// The PBKDF2 iterations of new password verifiers.
    pub fn scram_iterations(&self) -> u32 {
        self.iterations
    }

    /// The user the `Authorization` header proves, or why not.
    pub async fn authenticate(
        &self,
        header: Option<&[u8]>,
        peer: IpAddr,
    ) -> Result<User, ApiError> {
        let header = header.ok_or(ApiError::AuthenticationRequired)?;
        let Some(basic) = parse_basic(header) else {
            self.failures.fail_unnamed(peer);
            crate::telemetry::xsi_login("failed");
            return Err(ApiError::BadCredentials);
        };
        let user_key = basic.user.to_lowercase();
        let attempt = match self.failures.reserve(Some(&user_key), peer) {
            Ok(attempt) => attempt,
            Err(throttled) => {
                crate::telemetry::xsi_login("throttled");
                crate::telemetry::throttled_attempt("xsi");
                return Err(ApiError::Throttled {
                    retry_after_secs: throttled.retry_after_secs,
                });
            }
        };
        let cache_key = self.cache_key(&user_key, &basic.password);
        // Read before the user, so a change that races this request is seen next time.
        let generation = self.telephony.users_generation();
        match self.remembered(&cache_key, generation) {
            Remembered::Fresh(user) => {
                crate::telemetry::xsi_login("cached");
                return Ok(*user);
            }
            Remembered::Stale(stored_key) => {
                if let Some(user) = self.telephony.user(&basic.user).await? {
                    if subtle::ConstantTimeEq::ct_eq(
                        user.verifiers.sha256.stored_key.as_slice(),
                        stored_key.as_slice(),
                    )
                    .into()
                    {
                        self.remember(cache_key, &user, generation);
                        crate::telemetry::xsi_login("cached");
                        return Ok(user);
                    }
                }
            }
            Remembered::Unknown => {}
        }
        let user = self.telephony.user(&basic.user).await?;
        let verifiers = user.as_ref().map_or_else(
            || Arc::clone(&self.dummy),
            |u| Arc::new(u.verifiers.clone()),
        );
        let password = basic.password.clone();
        let matches = tokio::task::spawn_blocking(move || verifiers.verify_plain(&password))
            .await
            .unwrap_or(false);
        match user {
            Some(user) if matches => {
                self.remember(cache_key, &user, generation);
                crate::telemetry::xsi_login("ok");
                Ok(user)
            }
            _ => {
                tracing::info!(user = %basic.user, peer = %peer, "XSI login failed");
                attempt.failed();
                crate::telemetry::xsi_login("failed");
                Err(ApiError::BadCredentials)
            }
        }
    }

    fn cache_key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key[..])
            .expect("HMAC takes a key of any length");
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn remembered(&self, key: &[u8; 32], generation: u64) -> Remembered {
        match self.cache.as_ref().and_then(|cache| cache.get(key)) {
            Some(entry) if entry.generation == generation => {
                Remembered::Fresh(Box::new(User::clone(&entry.user)))
            }
            Some(entry) => Remembered::Stale(entry.user.verifiers.sha256.stored_key.clone()),
            None => Remembered::Unknown,
        }
    }

    fn remember(&self, key: [u8; 32], user: &User, generation: u64) {
        if let Some(cache) = &self.cache {
            let user = Arc::new(user.clone());
            cache.insert(key, Entry { user, generation });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user_password: &[u8]) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
        .into_bytes()
    }

    #[test]
    fn basic_is_utf8_with_a_latin1_fallback() {
        let utf8 = parse_basic(&header("zoë@example.com:pässwörd".as_bytes())).unwrap();
        assert_eq!(
            (utf8.user.as_str(), utf8.password.as_str()),
            ("zoë@example.com", "pässwörd")
        );
        let latin1 = parse_basic(&header(b"zoe@example.com:p\xe4ss")).unwrap();
        assert_eq!(latin1.password, "päss");
        let colon = parse_basic(&header(b"a@b:x:y")).unwrap();
        assert_eq!(colon.password, "x:y");
        assert!(parse_basic(b"Bearer abc").is_none());
        assert!(parse_basic(b"Basic !!!").is_none());
        assert!(parse_basic(&header(b"no-colon")).is_none());
    }
}
