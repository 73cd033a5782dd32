//! Calls as the telephony model keeps them: each user's side of a call (BroadWorks calls it
//! the user's call, with its own `callId`), its personality, state, remote party, times and
//! release cause, and the one state machine that changes it.
//!
//! ```text
//!                 answer (Terminator, Click-to-Dial)
//!                 far end answers (Originator)
//!   Alerting ───────────────────────────────────────▶ Active ◀──── retrieve ──── Held
//!      │ │                                            │  ▲ │ ────── hold ────────▶ │
//!      │ │ redirect (Terminator)         far end holds│  │ │far end retrieves       │
//!      │ └──────▶ Detached                            ▼  │                          │
//!      │                                         Remote Held                        │
//!      └─────────────── release (any side, any state but Released) ──▶ Released ◀──┘
//! ```
//!
//! Every change goes through [`Call::apply`]; an action the state does not allow (answering
//! a released call, holding an alerting one, declining an answered one) is a
//! [`CallError`] that names the call, its state and the action, which XSI turns into its
//! `ErrorInfo`. Each change that reaches the user is one [`CallEventKind`] (the XSI call
//! events), published on the event bus by `telephony::call_control`.
//!
//! The files: this one holds the call and its state machine; `calls/registry.rs` the calls
//! in progress on this node; `calls/carrier.rs` the port to what carries calls (the bridges,
//! over Rayo, in the XMPP face).

mod carrier;
mod registry;
#[cfg(test)]
mod tests;

pub use carrier::{
    bridge_of, CallCarrier, CarrierCommand, CarrierError, DialRequest, Dialed, Offer, RejectReason,
    LOCAL_USER_HEADER, MAX_REDIRECTS, REDIRECTS_HEADER, TRACKING_HEADER,
};
pub use registry::{CallRegistry, Tracked};

use std::fmt;

use time::OffsetDateTime;

use super::UserScope;

/// A user's call id: unique on this node (`callhalf-<node>-<n>`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct CallId(String);

impl CallId {
    /// The `n`th call id of node `node_id`.
    pub fn new(node_id: &str, n: u64) -> Self {
        CallId(format!("callhalf-{node_id}-{n}"))
    }

    /// The id as XSI writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The node a call id names (`callhalf-<node>-<n>`), if it is one.
    pub fn node_of(id: &str) -> Option<&str> {
        let (node, n) = id.strip_prefix("callhalf-")?.rsplit_once('-')?;
        (!node.is_empty() && n.parse::<u64>().is_ok()).then_some(node)
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the user came to be on the call (XSD `Personality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Personality {
    /// The user placed the call.
    Originator,
    /// The call came to the user.
    Terminator,
    /// An application placed the call for the user: the user's devices ring first.
    ClickToDial,
}

impl Personality {
    /// The XSD spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Personality::Originator => "Originator",
            Personality::Terminator => "Terminator",
            Personality::ClickToDial => "Click-to-Dial",
        }
    }

    /// Whether this side answers the call itself (its devices ring).
    pub fn answers(self) -> bool {
        matches!(self, Personality::Terminator | Personality::ClickToDial)
    }
}

/// Where a user's call stands (XSD `CallState`, the states Bridgehead uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CallState {
    /// Ringing: not answered yet.
    Alerting,
    /// Connected.
    Active,
    /// Held by the user.
    Held,
    /// Held by the far end.
    RemoteHeld,
    /// Sent elsewhere before it was answered (Call Forwarding Always, Do Not Disturb): the
    /// user is no longer on it.
    Detached,
    /// Over.
    Released,
}

impl CallState {
    /// The XSD spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Alerting => "Alerting",
            CallState::Active => "Active",
            CallState::Held => "Held",
            CallState::RemoteHeld => "Remote Held",
            CallState::Detached => "Detached",
            CallState::Released => "Released",
        }
    }
}

/// What the remote party is to the user (XSD `CallType`, the kinds Bridgehead tells apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CallType {
    /// A user of the same group.
    Group,
    /// A user of the same enterprise, another group.
    Enterprise,
    /// Anyone else (through a bridge's SIP side).
    Network,
}

impl CallType {
    /// The XSD spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CallType::Group => "Group",
            CallType::Enterprise => "Enterprise",
            CallType::Network => "Network",
        }
    }
}

/// The party on the other side (XSD `PartyInformation`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteParty {
    /// Display name, when known.
    pub name: Option<String>,
    /// Address: `tel:+1555…` or `sip:…`.
    pub address: Option<String>,
    /// The user id, when the party is a local user.
    pub user_id: Option<String>,
    /// What the party is to the user.
    pub call_type: CallType,
}

/// Why a call failed (XSD `InternalReleaseCause`, the causes Bridgehead reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReleaseCause {
    /// The called party is busy.
    Busy,
    /// The call was refused (declined, or a policy).
    Forbidden,
    /// No route: no bridge could carry it, or the far end is unknown.
    RoutingFailure,
    /// The far end is temporarily unavailable (a bridge dropped, nobody answered).
    TemporarilyUnavailable,
    /// The called user does not exist.
    UserNotFound,
    /// A timer ran out (ringing, dialling).
    RequestTimeout,
    /// The carrying side failed.
    ServerFailure,
}

impl ReleaseCause {
    /// The XSD spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseCause::Busy => "Busy",
            ReleaseCause::Forbidden => "Forbidden",
            ReleaseCause::RoutingFailure => "Routing Failure",
            ReleaseCause::TemporarilyUnavailable => "Temporarily Unavailable",
            ReleaseCause::UserNotFound => "User Not Found",
            ReleaseCause::RequestTimeout => "Request Timeout",
            ReleaseCause::ServerFailure => "Server Failure",
        }
    }
}

/// Who ended the call, from the user's side (XSD `ReleasingParty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReleasingParty {
    /// The user (or an application for the user).
    Local,
    /// The far end, or the network.
    Remote,
}

impl ReleasingParty {
    /// The XSD spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleasingParty::Local => "localRelease",
            ReleasingParty::Remote => "remoteRelease",
        }
    }
}

/// Why a call was sent elsewhere (XSD `RedirectReason`, the reasons Bridgehead uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RedirectReason {
    /// Call Forwarding Always.
    Unconditional,
    /// Do Not Disturb (with Call Forwarding Busy's destination).
    DoNotDisturb,
    /// The user was at the call limit (Call Forwarding Busy).
    UserBusy,
    /// Nobody answered (Call Forwarding No Answer).
    NoAnswer,
    /// The user sent the ringing call on (blind transfer of an alerting call).
    Deflection,
}

impl RedirectReason {
    /// The XSD spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RedirectReason::Unconditional => "unconditional",
            RedirectReason::DoNotDisturb => "do-not-disturb",
            RedirectReason::UserBusy => "user-busy",
            RedirectReason::NoAnswer => "no-answer",
            RedirectReason::Deflection => "deflection",
        }
    }
}

/// Where a redirected call went (XSD `Redirect`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Redirect {
    /// The new destination, a `tel:` or `sip:` URI.
    pub address: String,
    /// Why.
    pub reason: RedirectReason,
    /// When.
    pub time: OffsetDateTime,
}

/// Something that happens to a user's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CallAction {
    /// The user answers a ringing call (Terminator or Click-to-Dial).
    Answer,
    /// The far end answers the user's outgoing call (Originator).
    RemoteAnswer,
    /// The user holds the call.
    Hold,
    /// The user takes a held call back.
    Retrieve,
    /// The far end holds the call.
    RemoteHold,
    /// The far end takes it back.
    RemoteRetrieve,
    /// The user ends the call; with `decline`, refuses a ringing incoming call.
    Release {
        /// Refuse a ringing call (Terminator only, Alerting only).
        decline: bool,
    },
    /// The far end (or the network) ends the call, with a cause when it failed.
    RemoteRelease(Option<ReleaseCause>),
    /// The ringing call is sent to another destination (Terminator only).
    Redirect(RedirectReason),
    /// The user hands the connected call to someone else and leaves it (blind or
    /// consultative transfer).
    Transfer,
    /// The user sends DTMF tones on the connected call (no change of state).
    SendDtmf,
}

impl CallAction {
    /// How the action reads in an error.
    pub fn as_str(self) -> &'static str {
        match self {
            CallAction::Answer => "answer",
            CallAction::RemoteAnswer => "far-end answer",
            CallAction::Hold => "hold",
            CallAction::Retrieve => "retrieve",
            CallAction::RemoteHold => "far-end hold",
            CallAction::RemoteRetrieve => "far-end retrieve",
            CallAction::Release { decline: false } => "release",
            CallAction::Release { decline: true } => "decline",
            CallAction::RemoteRelease(_) => "far-end release",
            CallAction::Redirect(_) => "redirect",
            CallAction::Transfer => "transfer",
            CallAction::SendDtmf => "send DTMF on",
        }
    }
}

/// What a user's subscriptions are told about one of the user's calls (the XSI call events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CallEventKind {
    /// The user placed a call.
    Originated,
    /// A call came to the user.
    Received,
    /// The call was answered (by either side).
    Answered,
    /// The user held it.
    Held,
    /// The user took it back.
    Retrieved,
    /// Something else changed: the far end held or retrieved it.
    Updated,
    /// It was sent elsewhere before the user answered.
    Redirected,
    /// The far end transferred it: the remote party changed.
    Transferred,
    /// It is no longer presented to the user (after a redirection).
    Detached,
    /// It ended.
    Released,
}

/// Basic Call: what every call subscription gets.
pub const BASIC_CALL: &str = "Basic Call";
/// Standard Call: Basic Call, plus held, retrieved, transferred and updated.
pub const STANDARD_CALL: &str = "Standard Call";
/// Advanced Call: Standard Call, plus redirected and detached.
pub const ADVANCED_CALL: &str = "Advanced Call";
/// The call event packages, narrowest first.
pub const CALL_PACKAGES: [&str; 3] = [BASIC_CALL, STANDARD_CALL, ADVANCED_CALL];

impl CallEventKind {
    /// The XSD type of its event data (`CallReceivedEvent` …).
    pub fn as_str(self) -> &'static str {
        match self {
            CallEventKind::Originated => "CallOriginatedEvent",
            CallEventKind::Received => "CallReceivedEvent",
            CallEventKind::Answered => "CallAnsweredEvent",
            CallEventKind::Held => "CallHeldEvent",
            CallEventKind::Retrieved => "CallRetrievedEvent",
            CallEventKind::Updated => "CallUpdatedEvent",
            CallEventKind::Redirected => "CallRedirectedEvent",
            CallEventKind::Transferred => "CallTransferredEvent",
            CallEventKind::Detached => "CallDetachedEvent",
            CallEventKind::Released => "CallReleasedEvent",
        }
    }

    /// The event packages that carry it.
    pub fn packages(self) -> &'static [&'static str] {
        match self {
            CallEventKind::Originated
            | CallEventKind::Received
            | CallEventKind::Answered
            | CallEventKind::Released => &CALL_PACKAGES,
            CallEventKind::Held
            | CallEventKind::Retrieved
            | CallEventKind::Updated
            | CallEventKind::Transferred => &CALL_PACKAGES[1..],
            CallEventKind::Redirected | CallEventKind::Detached => &CALL_PACKAGES[2..],
        }
    }

    /// The event a successful `action` makes, if it makes one.
    pub fn of(action: CallAction) -> Option<Self> {
        Some(match action {
            CallAction::Answer | CallAction::RemoteAnswer => CallEventKind::Answered,
            CallAction::Hold => CallEventKind::Held,
            CallAction::Retrieve => CallEventKind::Retrieved,
            CallAction::RemoteHold | CallAction::RemoteRetrieve => CallEventKind::Updated,
            CallAction::Release { .. } | CallAction::RemoteRelease(_) | CallAction::Transfer => {
                CallEventKind::Released
            }
            CallAction::Redirect(_) => CallEventKind::Redirected,
            CallAction::SendDtmf => return None,
        })
    }
}

/// An action the call's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} call {call}: it is {state} ({personality})")]
pub struct CallError {
    /// The call.
    pub call: CallId,
    /// Its state.
    pub state: &'static str,
    /// Its personality.
    pub personality: &'static str,
    /// What was asked.
    pub action: &'static str,
}

/// One user's side of a call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Call {
    /// The user's call id.
    pub id: CallId,
    /// The id both sides share (`extTrackingId`).
    pub ext_tracking_id: String,
    /// What the carrying bridge calls this side (Rayo: the call's JID `callid@bridge`).
    pub call_ref: String,
    /// The user whose side this is.
    pub user: UserScope,
    /// How the user came to be on it.
    pub personality: Personality,
    /// Where it stands.
    pub state: CallState,
    /// The other side.
    pub remote: RemoteParty,
    /// When it started.
    pub start_time: OffsetDateTime,
    /// When it was answered.
    pub answer_time: Option<OffsetDateTime>,
    /// When the user held it (while held).
    pub held_time: Option<OffsetDateTime>,
    /// Time spent held before the current hold, in milliseconds.
    pub total_held_ms: u64,
    /// Where it was sent, when it was redirected.
    pub redirect: Option<Redirect>,
    /// When the user left it (redirected).
    pub detached_time: Option<OffsetDateTime>,
    /// When it ended.
    pub release_time: Option<OffsetDateTime>,
    /// Why it failed, when it did.
    pub release_cause: Option<ReleaseCause>,
    /// Who ended it.
    pub releasing_party: Option<ReleasingParty>,
}

impl Call {
    /// A new call of `user` at `start`, carried as `call_ref`: Alerting.
    pub fn new(
        id: CallId,
        ext_tracking_id: String,
        call_ref: String,
        user: UserScope,
        personality: Personality,
        remote: RemoteParty,
        start: OffsetDateTime,
    ) -> Self {
        Call {
            id,
            ext_tracking_id,
            call_ref,
            user,
            personality,
            state: CallState::Alerting,
            remote,
            start_time: start,
            answer_time: None,
            held_time: None,
            total_held_ms: 0,
            redirect: None,
            detached_time: None,
            release_time: None,
            release_cause: None,
            releasing_party: None,
        }
    }

    /// Whether the user is no longer on the call (released or detached).
    pub fn is_over(&self) -> bool {
        matches!(self.state, CallState::Released | CallState::Detached)
    }

    /// Whether the call was answered: a finished call that never was is a missed call
    /// for its Terminator.
    pub fn was_answered(&self) -> bool {
        self.answer_time.is_some()
    }

    /// Applies `action` at `at`: the one place a call's state changes.
    pub fn apply(&mut self, action: CallAction, at: OffsetDateTime) -> Result<(), CallError> {
        use CallAction as A;
        use CallState as S;
        let next = match (self.state, action) {
            (S::Alerting, A::Answer) if self.personality.answers() => S::Active,
            (S::Alerting, A::RemoteAnswer) if !self.personality.answers() => S::Active,
            (S::Active, A::Hold) => S::Held,
            (S::Held, A::Retrieve) => S::Active,
            (S::Active, A::RemoteHold) => S::RemoteHeld,
            (S::RemoteHeld, A::RemoteRetrieve) => S::Active,
            (S::Alerting, A::Release { decline: true })
                if self.personality == Personality::Terminator =>
            {
                S::Released
            }
            (S::Alerting, A::Redirect(_)) if self.personality == Personality::Terminator => {
                S::Detached
            }
            (S::Active | S::Held | S::RemoteHeld, A::Transfer) => S::Released,
            (S::Active, A::SendDtmf) => S::Active,
            (S::Released | S::Detached, _) | (_, A::Release { decline: true } | A::Redirect(_)) => {
                return Err(self.refuse(action))
            }
            (_, A::Release { decline: false } | A::RemoteRelease(_)) => S::Released,
            _ => return Err(self.refuse(action)),
        };
        match action {
            A::Answer | A::RemoteAnswer => self.answer_time = Some(at),
            A::Hold => self.held_time = Some(at),
            A::Retrieve => self.end_hold(at),
            A::Release { decline } => {
                self.end_hold(at);
                self.releasing_party = Some(ReleasingParty::Local);
                if decline {
                    self.release_cause = Some(ReleaseCause::Forbidden);
                }
            }
            A::RemoteRelease(cause) => {
                self.end_hold(at);
                self.releasing_party = Some(ReleasingParty::Remote);
                self.release_cause = cause;
            }
            A::Redirect(_) => self.detached_time = Some(at),
            A::Transfer => {
                self.end_hold(at);
                self.releasing_party = Some(ReleasingParty::Local);
            }
            A::RemoteHold | A::RemoteRetrieve | A::SendDtmf => {}
        }
        if next == S::Released {
            self.release_time = Some(at);
        }
        self.state = next;
        Ok(())
    }

    fn end_hold(&mut self, at: OffsetDateTime) {
        if let Some(since) = self.held_time.take() {
            let held = (at - since).whole_milliseconds().max(0);
            self.total_held_ms += u64::try_from(held).unwrap_or(u64::MAX);
        }
    }

    fn refuse(&self, action: CallAction) -> CallError {
        CallError {
            call: self.id.clone(),
            state: self.state.as_str(),
            personality: self.personality.as_str(),
            action: action.as_str(),
        }
    }
}

/// Whether a user is on a call (XSD `HookStatusType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HookStatus {
    /// At least one call that is not released.
    OffHook,
    /// No call.
    OnHook,
}

impl HookStatus {
    /// The XSD spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HookStatus::OffHook => "Off-Hook",
            HookStatus::OnHook => "On-Hook",
        }
    }
}
