//! The XSP edge: XSI-Actions ([`actions`]) and XSI-Events ([`events`]) over the shared
//! HTTPS front, and the same two over mutual TLS on the CTI listener (where the client
//! certificate, not a password, names the application).
//!
//! A request to `/com.broadsoft.xsi-actions/v2.0/…` goes through [`actions::XsiActions`]:
//!
//! ```text
//! path → Resource (unknown → 404 ErrorInfo, after authentication)
//!   versions: answered without credentials
//!   Authorization: Basic ── auth::Authenticator (cache, throttle) ── 401 / 429
//!   method allowed? ── 405 + Allow
//!   target user: self, or within the caller's role (group / enterprise / system admin) ── 403 / 404
//!   GET  → Telephony → model document (services: the catalogue's fields) → codec (XML or
//!          BadgerFish JSON)
//!   PUT  → http::read_body (size, time) → codec (root, namespace, depth) → the catalogue's
//!          fields laid over the current settings → Telephony::set_service (validate, store,
//!          publish event) → 200
//! every error → error::ApiError → status + ErrorInfo in the request's representation
//! ```
//!
//! `xsi` never imports `xmpp` or `pki`: it reaches the model through the
//! [`crate::telephony::Telephony`] handle that `server.rs` creates.

pub mod actions;
pub mod auth;
pub mod codec;
pub mod error;
pub mod events;
pub mod json;
pub mod model;
mod response;
mod services;

pub use actions::XsiActions;
pub use error::ApiError;
pub use events::XsiEvents;

/// The percent-decoded segments of `path` below `root` (empty segments skipped), or `None`
/// when `path` is not below `root` or a segment is not UTF-8.
fn path_segments(path: &str, root: &str) -> Option<Vec<String>> {
    let rest = path
        .strip_prefix(root)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))?;
    rest.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })
        .collect()
}
