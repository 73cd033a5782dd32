//! `[http]`, `[xsi]`, `[xsi_events]` and `[cti]`: the HTTPS front and the XSP edge on it.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};

use std::path::PathBuf;

use super::Listen;
use serde::Deserialize;

/// `[http]`: the HTTPS listener and the limits it enforces on clients.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve the HTTPS listener. Default `true`.
    pub enabled: bool,
    /// Addresses of the HTTPS listener. Default `[::]:8443`, both families (443 in
    /// production).
    pub listen: Listen,
    /// Connections open at once. Default 10000.
    pub max_connections: NonZeroUsize,
    /// Deadline for the TLS handshake. Default 10 s.
    pub handshake_timeout_secs: NonZeroU64,
    /// Deadline for a request's headers once it has started (slowloris). Default 10 s.
    pub header_read_timeout_secs: NonZeroU64,
    /// Deadline for a whole request body. Default 30 s.
    pub body_read_timeout_secs: NonZeroU64,
    /// A connection with no request in flight and no traffic for this long is closed.
    /// Default 60 s.
    pub idle_timeout_secs: NonZeroU64,
    /// Largest request head (request line and headers), in bytes. Default 16384.
    pub max_header_bytes: usize,
    /// Largest request body, in bytes; larger gets 413. Default 1048576.
    pub max_body_bytes: NonZeroUsize,
    /// Requests served on one HTTP/1.1 connection before it is closed. Default 10000.
    pub max_requests_per_connection: NonZeroUsize,
    /// Concurrent HTTP/2 streams per connection. Default 100.
    pub max_concurrent_streams: NonZeroU32,
    /// Name of the cookie that names this node for load-balancer affinity.
    /// Default `bridgehead-node`.
    pub affinity_cookie: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: Listen::any(8443),
            max_connections: nonzero!(10_000),
            handshake_timeout_secs: nonzero!(10),
            header_read_timeout_secs: nonzero!(10),
            body_read_timeout_secs: nonzero!(30),
            idle_timeout_secs: nonzero!(60),
            max_header_bytes: 16 * 1024,
            max_body_bytes: nonzero!(1024 * 1024),
            max_requests_per_connection: nonzero!(10_000),
            max_concurrent_streams: nonzero!(100),
            affinity_cookie: "bridgehead-node".to_owned(),
        }
    }
}

/// `[xsi]`: XSI-Actions authentication and behaviour.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XsiConfig {
    /// The HTTP Basic realm. Default `BroadWorks`.
    pub realm: String,
    /// The country code of the users' numbers, as the Profile reports it (E.164 digits,
    /// no `+`). Default `1`.
    pub country_code: String,
    /// How long a verified password is remembered (so a request does not pay the password
    /// hash each time). 0 turns the cache off. Default 300 s.
    pub auth_cache_secs: u64,
    /// Most remembered credentials. Default 100000.
    pub auth_cache_entries: NonZeroUsize,
    /// Failed logins allowed for one user from one address per minute before further
    /// attempts from there get 429. Default 10.
    pub failed_logins_per_user_per_minute: NonZeroU32,
    /// Failed logins allowed per client address per minute, whatever the user, before
    /// further attempts get 429. Default 30.
    pub failed_logins_per_address_per_minute: NonZeroU32,
    /// Failed logins allowed for one user from all addresses together per minute before
    /// further attempts get 429 everywhere. Default 100.
    pub failed_logins_per_user_all_addresses_per_minute: NonZeroU32,
    /// Page size of directory searches without `results`. Default 50.
    pub directory_page_size: NonZeroUsize,
    /// Largest page a directory search may ask for. Default 1000.
    pub directory_max_page_size: NonZeroUsize,
    /// Events the telephony bus holds for its slowest subscriber. Default 4096.
    pub event_bus_capacity: NonZeroUsize,
}

impl Default for XsiConfig {
    fn default() -> Self {
        XsiConfig {
            realm: "BroadWorks".to_owned(),
            country_code: "1".to_owned(),
            auth_cache_secs: 300,
            auth_cache_entries: nonzero!(100_000),
            failed_logins_per_user_per_minute: nonzero!(10),
            failed_logins_per_address_per_minute: nonzero!(30),
            failed_logins_per_user_all_addresses_per_minute: nonzero!(100),
            directory_page_size: nonzero!(50),
            directory_max_page_size: nonzero!(1000),
            event_bus_capacity: nonzero!(4096),
        }
    }
}

/// `[cti]`: the CTI listener (XSI-Events and XSI-Actions over mutual TLS).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CtiConfig {
    /// Serve the CTI listener. Default: on with the development PKI or when `trust_file`
    /// is set, off otherwise.
    pub enabled: Option<bool>,
    /// Addresses of the CTI listener. Default `[::]:8012` (both families).
    pub listen: Listen,
    /// The CAs a client certificate must chain to. Required with a configured `[tls]`
    /// certificate; with the development PKI, its CA.
    pub trust_file: Option<PathBuf>,
    /// The CNs admitted (each one application identity, e.g. `bwcticlient.webex.com`).
    /// Required with a configured `[tls]` certificate; with the development PKI,
    /// `cti-client.<domain>` (its CTI client certificate).
    pub allowed_client_ids: Vec<String>,
    /// Connections open at once. Default 1000.
    pub max_connections: usize,
}

impl Default for CtiConfig {
    fn default() -> Self {
        CtiConfig {
            enabled: None,
            listen: Listen::any(8012),
            trust_file: None,
            allowed_client_ids: Vec::new(),
            max_connections: 1000,
        }
    }
}

/// `[xsi_events]`: event channels, subscriptions and acknowledged delivery.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XsiEventsConfig {
    /// Smallest channel or subscription lifetime granted; shorter requests get this.
    /// Default 3600 s.
    pub min_expires_secs: u64,
    /// Largest lifetime granted (2147483647 asks for no expiry and gets it). Default 86400 s.
    pub max_expires_secs: u64,
    /// A channel without a heartbeat for this long is ended. Default 60 s.
    pub event_timeout_secs: NonZeroU64,
    /// An event not acknowledged within this is sent again. Default 10 s.
    pub ack_timeout_secs: NonZeroU64,
    /// Sends of one event before its channel counts as unresponsive. Default 3.
    pub max_delivery_attempts: NonZeroU32,
    /// Documents queued for one channel's stream; a channel whose queue is full is ended
    /// as too slow. Default 256.
    pub channel_queue_len: NonZeroUsize,
    /// Channels one channel set may hold. Default 4.
    pub max_channels_per_set: NonZeroUsize,
    /// Events kept for a channel set with no open channel (oldest dropped first).
    /// Default 1000.
    pub backlog_max_events: NonZeroUsize,
    /// How long such events are kept. Default 3600 s.
    pub backlog_max_age_secs: u64,
}

impl Default for XsiEventsConfig {
    fn default() -> Self {
        XsiEventsConfig {
            min_expires_secs: 3600,
            max_expires_secs: 86_400,
            event_timeout_secs: nonzero!(60),
            ack_timeout_secs: nonzero!(10),
            max_delivery_attempts: nonzero!(3),
            channel_queue_len: nonzero!(256),
            max_channels_per_set: nonzero!(4),
            backlog_max_events: nonzero!(1000),
            backlog_max_age_secs: 3600,
        }
    }
}
