//! The XMPP server: call bridges as XEP-0114 components ([`component`]), clients over c2s
//! with STARTTLS and SASL ([`client`]) and over WebSocket ([`websocket`]), with rosters,
//! presence and XEP-0198 stream management, all joined by one [`router`].
//!
//! Stanzas are handled namespace-agnostically (xmpp-parsers fixes one stanza namespace per
//! build): a session reads minidom elements from its stream ([`stream`]), the router looks
//! only at `to`/`from`/`type`/`id`, and the receiving session moves the stanza into its own
//! stream namespace before writing it.
//!
//! With `[cluster]` the router also knows the other nodes' connections and sends stanzas
//! for them over NATS ([`cluster`]).

pub mod client;
pub mod cluster;
pub mod component;
pub mod error;
pub mod keepalive;
pub mod rayo;
pub mod roster;
pub mod router;
pub mod sasl;
pub mod services;
pub mod sm;
pub mod stanza;
pub mod stream;
pub mod websocket;

/// Every namespace the XMPP server speaks, in one place (modules re-export the ones they
/// are about, e.g. `sm::SM`).
pub mod ns {
    /// RFC 6120 stream namespace.
    pub const STREAM: &str = "http://etherx.jabber.org/streams";
    /// Stream error conditions.
    pub const STREAMS_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    /// Stanza error conditions.
    pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    /// XEP-0114 component streams.
    pub const COMPONENT: &str = "jabber:component:accept";
    /// Client streams.
    pub const CLIENT: &str = "jabber:client";
    /// STARTTLS (RFC 6120 §5).
    pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
    /// SASL (RFC 6120 §6).
    pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    /// XEP-0440 SASL channel-binding type capability.
    pub const SASL_CB: &str = "urn:xmpp:sasl-cb:0";
    /// Resource binding (RFC 6120 §7).
    pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
    /// The legacy session establishment (RFC 3921), answered for old clients.
    pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
    /// Bridgehead's credential check asked of `auth_via_component`.
    pub const COMPONENT_AUTH: &str = "urn:bridgehead:auth:0";
    /// XEP-0198 stream management.
    pub const SM: &str = "urn:xmpp:sm:3";
    /// RFC 6121 rosters.
    pub const ROSTER: &str = "jabber:iq:roster";
    /// RFC 7395 WebSocket framing.
    pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
    /// XEP-0156 alternative connection method: WebSocket.
    pub const ALT_CONNECTION_WEBSOCKET: &str = "urn:xmpp:alt-connections:websocket";
    /// XEP-0030 service discovery, info.
    pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
    /// XEP-0030 service discovery, items.
    pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
    /// XEP-0199 ping.
    pub const PING: &str = "urn:xmpp:ping";
    /// XEP-0092 software version.
    pub const VERSION: &str = "jabber:iq:version";
    /// XEP-0202 entity time.
    pub const TIME: &str = "urn:xmpp:time";
    /// XEP-0327 Rayo (call control over the component link).
    pub const RAYO: &str = "urn:xmpp:rayo:1";
    /// Bridgehead's Rayo extension (docs/call-control.md): `hold`, `unhold`, `transfer` and
    /// `dtmf` commands, `held` and `unheld` events.
    pub const RAYO_EXT: &str = "urn:bridgehead:rayo:1";
}
