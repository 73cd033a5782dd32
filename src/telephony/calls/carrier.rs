//! The port to what carries calls: the call bridges, reached by the XMPP face over Rayo
//! (`xmpp::rayo`). `server.rs` hands the carrier to
//! [`Telephony::set_carrier`](crate::telephony::Telephony::set_carrier), so that neither
//! face imports the other; the XMPP face reports what the bridges say back through
//! `Telephony::offered_call` and `Telephony::call_event`.
//!
//! Two headers travel with a dial (Rayo `<header/>`, SIP headers on a bridge's SIP side)
//! so that a bridge can connect local users itself and both sides of a call share one id:
//!
//! | header | value |
//! |---|---|
//! | [`TRACKING_HEADER`] `X-Bridgehead-Tracking-Id` | the call's `extTrackingId`, given back on the offer of the other side |
//! | [`LOCAL_USER_HEADER`] `X-Bridgehead-User` | set when the destination is a Bridgehead user: the bridge offers the call back instead of sending it to SIP |
//! | [`REDIRECTS_HEADER`] `X-Bridgehead-Redirects` | on a redirect: how often the call was redirected; past [`MAX_REDIRECTS`] it is refused (forwarding loops end) |
//!
//! A bridge copies a dial's or redirect's headers onto the offer it makes for a local user.

/// The header carrying a call's `extTrackingId` between its sides.
pub const TRACKING_HEADER: &str = "X-Bridgehead-Tracking-Id";

/// The header naming the Bridgehead user a call is for, when it is for one.
pub const LOCAL_USER_HEADER: &str = "X-Bridgehead-User";

/// The header counting a call's redirections.
pub const REDIRECTS_HEADER: &str = "X-Bridgehead-Redirects";

/// How many times one call may be redirected before it is refused.
pub const MAX_REDIRECTS: u32 = 5;

/// The bridge of a call reference (`callid@bridge`: the component domain).
pub fn bridge_of(call_ref: &str) -> &str {
    call_ref
        .rsplit_once('@')
        .map_or(call_ref, |(_, bridge)| bridge)
}

/// What to dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialRequest {
    /// The caller: `sip:<user id>`.
    pub from: String,
    /// The destination: `sip:` or `tel:` URI.
    pub to: String,
    /// Headers for the bridge (see the module docs).
    pub headers: Vec<(String, String)>,
}

/// What to do with a call a bridge carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarrierCommand {
    /// Take an offered call: the user's devices ring (Rayo `accept`).
    Accept,
    /// Answer it (Rayo `answer`).
    Answer,
    /// Refuse an offered call (Rayo `reject`).
    Reject(RejectReason),
    /// Send an offered call elsewhere (Rayo `redirect`).
    Redirect(DialRequest),
    /// End it (Rayo `hangup`).
    Hangup,
    /// Hold it (Bridgehead's own Rayo extension).
    Hold,
    /// Take it back from hold (Bridgehead's own Rayo extension).
    Retrieve,
    /// Connect its far end to someone new, without the user (blind transfer).
    Transfer(DialRequest),
    /// Connect its far end to the far end of the user's other call `0` (its reference),
    /// without the user (transfer with consultation).
    ConsultTransfer(String),
    /// Play these DTMF tones to the far end.
    Dtmf(String),
}

impl CarrierCommand {
    /// How the command reads in a log line.
    pub fn as_str(&self) -> &'static str {
        match self {
            CarrierCommand::Accept => "accept",
            CarrierCommand::Answer => "answer",
            CarrierCommand::Reject(_) => "reject",
            CarrierCommand::Redirect(_) => "redirect",
            CarrierCommand::Hangup => "hangup",
            CarrierCommand::Hold => "hold",
            CarrierCommand::Retrieve => "unhold",
            CarrierCommand::Transfer(_) | CarrierCommand::ConsultTransfer(_) => "transfer",
            CarrierCommand::Dtmf(_) => "dtmf",
        }
    }
}

/// Why an offered call is refused (Rayo `reject` reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The user cannot take it (Do Not Disturb, too many calls).
    Busy,
    /// The user declined it.
    Decline,
    /// It cannot be delivered (no such user).
    Error,
}

impl RejectReason {
    /// The Rayo element name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Busy => "busy",
            RejectReason::Decline => "decline",
            RejectReason::Error => "error",
        }
    }
}

/// A call a bridge offers (Rayo `offer`): an incoming call for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The bridge's reference to the call (its JID).
    pub call_ref: String,
    /// Who is called: `sip:<user id>`, `tel:<number>`.
    pub to: String,
    /// Who calls.
    pub from: String,
    /// The offer's headers.
    pub headers: Vec<(String, String)>,
}

impl Offer {
    /// The value of header `name` (compared ASCII case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What carries calls.
#[async_trait::async_trait]
pub trait CallCarrier: Send + Sync {
    /// Asks a bridge to place a call. The first bridge that accepts answers with its
    /// reference to the call.
    async fn dial(&self, request: DialRequest) -> Result<Dialed, CarrierError>;

    /// Tells the bridge carrying the call `call_ref` to do `command`, and waits for it to
    /// confirm.
    async fn command(&self, call_ref: &str, command: CarrierCommand) -> Result<(), CarrierError>;
}

/// A call a bridge accepted to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialed {
    /// The bridge (its component domain).
    pub bridge: String,
    /// The bridge's reference to the call (Rayo: the call's JID).
    pub call_ref: String,
}

/// Why a bridge did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarrierError {
    /// No connected bridge carries calls.
    #[error("no call bridge is connected")]
    NoBridge,
    /// Every eligible bridge refused or did not answer a dial: `(bridge, why)` for each.
    #[error("every call bridge refused: {0:?}")]
    Refused(Vec<(String, String)>),
    /// The bridge refused or did not confirm a command on a call.
    #[error("the bridge {bridge} did not {command}: {why}")]
    Command {
        /// The bridge.
        bridge: String,
        /// The command.
        command: &'static str,
        /// Its error, or the missing answer.
        why: String,
    },
}
