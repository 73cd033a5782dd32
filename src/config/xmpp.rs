//! `[xmpp]` and `[[components]]`: the component and client listeners, their limits, and the
//! XEP-0114 components declared in the file.

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};

use std::path::PathBuf;

use super::Listen;
use serde::Deserialize;

use super::Secret;
use crate::telephony::OnConflict;

/// `[xmpp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XmppConfig {
    /// Serve the XEP-0114 component listener. Default `true`.
    pub component_enabled: bool,
    /// Addresses of the component listener. Default `[::]:5223` (both families).
    pub component_listen: Listen,
    /// Direct TLS on the component port. Default `true`; `false` is plain TCP (warned about
    /// unless bound to loopback).
    pub component_tls: bool,
    /// Deadline for TLS, stream header and handshake together. Default 10 s.
    pub handshake_timeout_secs: NonZeroU64,
    /// Largest stanza accepted, in bytes; larger gets `policy-violation`. Default 262144.
    pub max_stanza_bytes: NonZeroUsize,
    /// Component connections open at once (all names together). Default 1024.
    pub max_component_connections: NonZeroUsize,
    /// Stanzas queued for one connection before it counts as too slow and is
    /// disconnected. Default 1024.
    pub send_queue_len: NonZeroUsize,
    /// Failed handshakes allowed per source address per minute before further attempts
    /// from that address are refused at once. Default 10.
    pub failed_handshakes_per_minute: u32,
    /// Stanzas held at most per component while it is away (`hold_secs`). Default 1000.
    pub hold_max_stanzas: usize,
    /// A component silent this long gets an XEP-0199 ping. Default 60 s.
    pub component_ping_interval_secs: NonZeroU64,
    /// No traffic this long after a ping closes the connection (`connection-timeout`).
    /// Default 30 s.
    pub component_ping_timeout_secs: NonZeroU64,

    /// A peer (component or client) that accepts no bytes for this long while the server
    /// writes to it is disconnected. Default 30 s.
    pub write_timeout_secs: NonZeroU64,

    /// Serve the c2s listener for XMPP clients. Default `true`.
    pub client_enabled: bool,
    /// Addresses of the c2s listener. Default `[::]:5222` (both families).
    pub client_listen: Listen,
    /// Clients must STARTTLS before anything else. Default `true`; `false` allows plain
    /// streams (SCRAM only: PLAIN is never offered without TLS).
    pub require_tls: bool,
    /// Client connections open at once on the c2s listener. Default 20000.
    pub max_client_connections: NonZeroUsize,
    /// Deadline from connect (or WebSocket upgrade) to a bound resource. Default 30 s.
    pub login_timeout_secs: NonZeroU64,
    /// What binding a resource that is already in use does. Default `replace`.
    pub resource_conflict: ResourceConflict,
    /// A client silent this long gets an XEP-0199 ping. Default 300 s.
    pub client_ping_interval_secs: NonZeroU64,
    /// No traffic this long after that ping closes the session. Default 60 s.
    pub client_ping_timeout_secs: NonZeroU64,
    /// Stanzas a client session may send per second, sustained (token bucket refill).
    /// A client over it is slowed down: its stream is not read until tokens return.
    /// Default 100.
    pub client_stanzas_per_second: NonZeroU32,
    /// Stanzas a client may send in a burst (token bucket size). Default 200.
    pub client_stanza_burst: NonZeroU32,
    /// Failed logins for one account from one address per minute before further attempts
    /// from there are refused (`temporary-auth-failure`). Default 5.
    pub failed_logins_per_account_per_minute: NonZeroU32,
    /// Failed logins per source address per minute, whatever the account, before further
    /// attempts are refused. Default 20.
    pub failed_logins_per_address_per_minute: NonZeroU32,
    /// Failed logins for one account from all addresses together per minute before
    /// further attempts are refused everywhere (a distributed guess). Default 50.
    pub failed_logins_per_account_all_addresses_per_minute: NonZeroU32,
    /// A failed login is answered (`not-authorized`) only after this delay, known account
    /// or not. Default 1000 ms.
    pub auth_failure_delay_ms: u64,
    /// Components told of every client login: each gets an available presence from the
    /// user's full JID after resource binding, and an unavailable one when the session
    /// ends. Default none.
    pub login_notify: Vec<String>,
    /// A component that checks PLAIN credentials of accounts the store does not know
    /// (`urn:bridgehead:auth:0`, see docs/xmpp-clients.md). When set, PLAIN is the only
    /// mechanism offered. Default none.
    pub auth_via_component: Option<String>,
    /// How long that component has to answer; then `temporary-auth-failure`. Default 5 s.
    pub auth_via_component_timeout_secs: NonZeroU64,
    /// Serve XMPP over WebSocket (RFC 7395) at `/xmpp-websocket` on the HTTPS listener,
    /// with XEP-0156 host-meta. Default `true`.
    pub websocket_enabled: bool,
    /// XEP-0198: how long a session whose connection broke waits to be resumed; 0 offers
    /// acknowledgements only, no resumption. Default 300 s.
    pub sm_resume_timeout_secs: u64,
    /// XEP-0198: stanzas sent and not yet acknowledged (or queued for a parked session)
    /// before the session counts as stuck and ends. Default 1000.
    pub sm_max_unacked: NonZeroUsize,
    /// XEP-0198: an `<r/>` goes out once this many stanzas were sent since the last one.
    /// At most `sm_max_unacked`. Default 250.
    pub sm_request_after_stanzas: NonZeroUsize,
    /// XEP-0198: or once a stanza sent since the last `<r/>` waited this long. Default 30 s.
    pub sm_request_after_secs: NonZeroU64,
    /// Rayo: how long a call bridge has to answer a disco#info or a `dial` before the next
    /// bridge is tried. Default 10 s.
    pub rayo_timeout_secs: NonZeroU64,
}

/// What binding a resource that is already in use does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceConflict {
    /// The new session wins; the old one ends with the `conflict` stream error.
    #[default]
    Replace,
    /// The bind request gets the `conflict` stanza error.
    Reject,
}

impl Default for XmppConfig {
    fn default() -> Self {
        XmppConfig {
            component_enabled: true,
            component_listen: Listen::any(5223),
            component_tls: true,
            handshake_timeout_secs: nonzero!(10),
            max_stanza_bytes: nonzero!(256 * 1024),
            max_component_connections: nonzero!(1024),
            send_queue_len: nonzero!(1024),
            failed_handshakes_per_minute: 10,
            hold_max_stanzas: 1000,
            component_ping_interval_secs: nonzero!(60),
            component_ping_timeout_secs: nonzero!(30),
            write_timeout_secs: nonzero!(30),
            client_enabled: true,
            client_listen: Listen::any(5222),
            require_tls: true,
            max_client_connections: nonzero!(20_000),
            login_timeout_secs: nonzero!(30),
            resource_conflict: ResourceConflict::Replace,
            client_ping_interval_secs: nonzero!(300),
            client_ping_timeout_secs: nonzero!(60),
            client_stanzas_per_second: nonzero!(100),
            client_stanza_burst: nonzero!(200),
            failed_logins_per_account_per_minute: nonzero!(5),
            failed_logins_per_address_per_minute: nonzero!(20),
            failed_logins_per_account_all_addresses_per_minute: nonzero!(50),
            auth_failure_delay_ms: 1000,
            login_notify: Vec::new(),
            auth_via_component: None,
            auth_via_component_timeout_secs: nonzero!(5),
            websocket_enabled: true,
            sm_resume_timeout_secs: 300,
            sm_max_unacked: nonzero!(1000),
            sm_request_after_stanzas: nonzero!(250),
            sm_request_after_secs: nonzero!(30),
            rayo_timeout_secs: nonzero!(10),
        }
    }
}

/// `[[components]]`: one XEP-0114 component.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// The component's domain, e.g. `bridge1.example.com`.
    pub name: String,
    /// The shared secret (or use `secret_file`).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// A file whose first line is the shared secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Live connections allowed under this name. Default 1.
    #[serde(default = "one")]
    pub max_connections: u32,
    /// `replace` (default), `reject` or `balance`.
    #[serde(default)]
    pub on_conflict: OnConflict,
    /// Seconds to hold stanzas for this component after it drops. Default 0.
    #[serde(default)]
    pub hold_secs: u64,
}

fn one() -> u32 {
    1
}
