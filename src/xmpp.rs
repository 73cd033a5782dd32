//! The XMPP server: call bridges as XEP-0114 components ([`component`]), clients over c2s
//! with STARTTLS and SASL ([`client`]) and over WebSocket ([`websocket`]), with rosters,
//! presence and XEP-0198 stream management, all joined by one [`router`].
//!
//! Stanzas are handled namespace-agnostically (xmpp-parsers fixes one stanza namespace per
//! build): a session reads minidom elements from its stream ([`stream`]), the router looks
//! only at `to`/`from`/`type`/`id`, and the receiving session moves the stanza into its own
//! stream namespace before writing it.

pub mod client;
pub mod component;
pub mod error;
pub mod keepalive;
pub mod roster;
pub mod router;
pub mod sasl;
pub mod services;
pub mod sm;
pub mod stanza;
pub mod stream;
pub mod websocket;

/// Namespaces the XMPP server speaks.
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
}
