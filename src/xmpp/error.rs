//! Errors of the XMPP subsystem, and the RFC 6120 stream-error conditions they become at the
//! stream edge.

use std::fmt;

/// RFC 6120 §4.9.3 stream-error conditions Bridgehead sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCondition {
    /// The stream header is not acceptable (wrong element, missing attributes).
    BadFormat,
    /// A second connection took this name (`on_conflict` policies).
    Conflict,
    /// The peer was silent too long.
    ConnectionTimeout,
    /// `to` names no domain served here.
    HostUnknown,
    /// A stanza's `from` is not at the peer's domain.
    InvalidFrom,
    /// The stream or stanza namespace is wrong.
    InvalidNamespace,
    /// The handshake failed, or a stanza came before it.
    NotAuthorized,
    /// The XML is not well-formed (including DTDs and entities, which are refused).
    NotWellFormed,
    /// A limit was exceeded (stanza size).
    PolicyViolation,
    /// The peer cannot keep up (send queue full).
    ResourceConstraint,
    /// The server is stopping.
    SystemShutdown,
    /// Something the server did not expect on its side.
    InternalServerError,
    /// An element that is not a stanza where a stanza was expected.
    UnsupportedStanzaType,
    /// A protocol error no other condition names (an XEP-0198 count too high).
    UndefinedCondition,
}

impl StreamCondition {
    /// The element name of the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamCondition::BadFormat => "bad-format",
            StreamCondition::Conflict => "conflict",
            StreamCondition::ConnectionTimeout => "connection-timeout",
            StreamCondition::HostUnknown => "host-unknown",
            StreamCondition::InvalidFrom => "invalid-from",
            StreamCondition::InvalidNamespace => "invalid-namespace",
            StreamCondition::NotAuthorized => "not-authorized",
            StreamCondition::NotWellFormed => "not-well-formed",
            StreamCondition::PolicyViolation => "policy-violation",
            StreamCondition::ResourceConstraint => "resource-constraint",
            StreamCondition::SystemShutdown => "system-shutdown",
            StreamCondition::InternalServerError => "internal-server-error",
            StreamCondition::UnsupportedStanzaType => "unsupported-stanza-type",
            StreamCondition::UndefinedCondition => "undefined-condition",
        }
    }
}

impl fmt::Display for StreamCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 6120 §8.3.3 stanza-error conditions Bridgehead sends, each with its error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StanzaCondition {
    /// The request is malformed.
    BadRequest,
    /// A resource or item of that name exists (a bind to a taken resource).
    Conflict,
    /// No such item (XEP-0198: no session to resume).
    ItemNotFound,
    /// An address is not a valid JID.
    JidMalformed,
    /// The request breaks a rule of the resource (a roster item too large).
    NotAcceptable,
    /// The action is not allowed (a roster change to another user's roster).
    NotAllowed,
    /// The recipient is not online now.
    RecipientUnavailable,
    /// No server or component of that name.
    RemoteServerNotFound,
    /// The node that holds the addressee did not answer in time (a cluster).
    RemoteServerTimeout,
    /// A queue or quota is full.
    ResourceConstraint,
    /// The addressee does not offer this.
    ServiceUnavailable,
    /// The request is not expected now (XEP-0198 before it is enabled).
    UnexpectedRequest,
}

impl StanzaCondition {
    /// The element name of the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            StanzaCondition::BadRequest => "bad-request",
            StanzaCondition::Conflict => "conflict",
            StanzaCondition::ItemNotFound => "item-not-found",
            StanzaCondition::JidMalformed => "jid-malformed",
            StanzaCondition::NotAcceptable => "not-acceptable",
            StanzaCondition::NotAllowed => "not-allowed",
            StanzaCondition::RecipientUnavailable => "recipient-unavailable",
            StanzaCondition::RemoteServerNotFound => "remote-server-not-found",
            StanzaCondition::RemoteServerTimeout => "remote-server-timeout",
            StanzaCondition::ResourceConstraint => "resource-constraint",
            StanzaCondition::ServiceUnavailable => "service-unavailable",
            StanzaCondition::UnexpectedRequest => "unexpected-request",
        }
    }

    /// The error type RFC 6120 §8.3.3 gives the condition (`type` of `<error/>`).
    pub fn error_type(self) -> &'static str {
        match self {
            StanzaCondition::ResourceConstraint
            | StanzaCondition::RecipientUnavailable
            | StanzaCondition::RemoteServerTimeout => "wait",
            StanzaCondition::BadRequest | StanzaCondition::JidMalformed => "modify",
            // RFC 6120's example gives not-acceptable `modify`; Bridgehead has always sent
            // `cancel`, and the refactor keeps the wire as it was.
            _ => "cancel",
        }
    }
}

impl fmt::Display for StanzaCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an XMPP stream ended or could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum XmppError {
    /// The transport failed or the peer went away.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection without closing the stream.
    #[error("the peer closed the connection")]
    Closed,
    /// The peer violated the protocol; the stream ends with this condition.
    #[error("{condition}: {detail}")]
    Stream {
        /// The stream error to send.
        condition: StreamCondition,
        /// What happened, for the log.
        detail: String,
    },
    /// The peer sent a stream error.
    #[error("the peer sent a stream error: {0}")]
    Received(String),
    /// The handshake phase took too long.
    #[error("the handshake did not finish within {0} s")]
    HandshakeTimeout(u64),
    /// TLS failed.
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
}

impl XmppError {
    /// A protocol violation that ends the stream with `condition`.
    pub fn stream(condition: StreamCondition, detail: impl Into<String>) -> Self {
        XmppError::Stream {
            condition,
            detail: detail.into(),
        }
    }

    /// The error of a pre-authentication phase that did not finish within `timeout_secs`
    /// (or was ended by shutdown or eviction).
    pub fn unfinished(end: crate::net::listener::PhaseEnd, timeout_secs: u64) -> Self {
        use crate::net::listener::PhaseEnd;
        match end {
            PhaseEnd::TimedOut => XmppError::HandshakeTimeout(timeout_secs),
            PhaseEnd::Shutdown => {
                XmppError::stream(StreamCondition::SystemShutdown, "the server is stopping")
            }
            PhaseEnd::Evicted => XmppError::stream(
                StreamCondition::ResourceConstraint,
                "too many connections are negotiating",
            ),
        }
    }

    /// The stream error to send before closing, if one applies.
    pub fn condition(&self) -> Option<StreamCondition> {
        match self {
            XmppError::Stream { condition, .. } => Some(*condition),
            XmppError::HandshakeTimeout(_) => Some(StreamCondition::ConnectionTimeout),
            _ => None,
        }
    }
}
