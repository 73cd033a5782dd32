//! `[limits]` and `[quotas]`: the bounds on what any peer, authenticated or not, can make
//! the server hold in memory or on disk. Every value is a non-zero integer with a default
//! sized for a production node; `docs/configuration.md` lists them all.

use std::num::{NonZeroU64, NonZeroUsize};

use serde::Deserialize;

/// `[limits]`: input shapes and connections before authentication.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Deepest element nesting accepted in a stanza (every XMPP transport) or an XSI
    /// request body; deeper input is refused (`policy-violation`, or 400). At most 1000.
    /// Default 64.
    pub max_xml_depth: NonZeroUsize,
    /// Connections per listener that have not authenticated yet (TLS handshake, stream
    /// negotiation, SASL or the component handshake). When full, the oldest such
    /// connection is closed to make room. Default 1024.
    pub max_preauth_connections: NonZeroUsize,
    /// Connections from one address that have not authenticated yet, per listener; more
    /// are closed at once. Default 32.
    pub max_preauth_connections_per_address: NonZeroUsize,
    /// Deadline for a TLS handshake on every TLS listener (also bounded by each listener's
    /// own handshake or login timeout). Default 5 s.
    pub tls_handshake_timeout_secs: NonZeroU64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_xml_depth: nz(64),
            max_preauth_connections: nz(1024),
            max_preauth_connections_per_address: nz(32),
            tls_handshake_timeout_secs: NonZeroU64::new(5).unwrap_or(NonZeroU64::MIN),
        }
    }
}

impl LimitsConfig {
    /// The TLS handshake deadline of a listener whose whole pre-authentication phase may
    /// take `phase_secs`: `tls_handshake_timeout_secs`, never longer than the phase.
    pub fn tls_handshake_within(&self, phase_secs: u64) -> std::time::Duration {
        std::time::Duration::from_secs(self.tls_handshake_timeout_secs.get().min(phase_secs.max(1)))
    }
}

/// The largest `max_xml_depth` accepted: deep enough for any real document, shallow
/// enough that walking a tree recursively stays far from a thread's stack size.
pub const MAX_XML_DEPTH_CEILING: usize = 1000;

/// `[quotas]`: what one user may store or hold open.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasConfig {
    /// Contacts in one XMPP roster; a roster set adding more gets `resource-constraint`.
    /// Default 1000.
    pub max_roster_items: NonZeroUsize,
    /// Groups of one roster item; more gets `not-acceptable`. Default 32.
    pub max_roster_groups_per_item: NonZeroUsize,
    /// Bytes of one roster group name or item name; longer gets `not-acceptable`.
    /// Default 256.
    pub max_roster_text_bytes: NonZeroUsize,
    /// XSI-Events subscriptions one user (or CTI application) owns; more get 403.
    /// Default 100.
    pub max_subscriptions_per_user: NonZeroUsize,
    /// Bytes of a `channelSetId` or `applicationId`; longer gets 400. Default 256.
    pub max_event_id_bytes: NonZeroUsize,
    /// Channel sets one user (or CTI application) holds channels in; a channel in one
    /// more gets 403. Default 8.
    pub max_channel_sets_per_user: NonZeroUsize,
    /// Open event channels of one user (or CTI application); more get 403. Default 16.
    pub max_channels_per_user: NonZeroUsize,
    /// Entries in one personal directory; a POST that would pass it gets 403. Default 1000.
    pub max_personal_entries: NonZeroUsize,
    /// Calls in progress of one user; `POST calls/new` past it gets 403. Default 8.
    pub max_calls_per_user: NonZeroUsize,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        QuotasConfig {
            max_roster_items: nz(1000),
            max_roster_groups_per_item: nz(32),
            max_roster_text_bytes: nz(256),
            max_subscriptions_per_user: nz(100),
            max_event_id_bytes: nz(256),
            max_channel_sets_per_user: nz(8),
            max_channels_per_user: nz(16),
            max_personal_entries: nz(1000),
            max_calls_per_user: nz(8),
        }
    }
}

fn nz(value: usize) -> NonZeroUsize {
    NonZeroUsize::new(value).unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
mod tests {
    #[test]
    fn zero_is_refused_with_the_key_path() {
        let error = crate::config::Config::from_toml(
            std::path::Path::new("t.toml"),
            "[quotas]\nmax_roster_items = 0\n",
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("quotas.max_roster_items"),
            "{error}"
        );
    }
}
