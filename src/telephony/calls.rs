//! Calls as the telephony model keeps them: each user's side of a call (BroadWorks calls it
//! the user's call, with its own `callId`), its personality, state, remote party, times and
//! release cause, and the one state machine that changes it.
//!
//! ```text
//!                 answer (Terminator, Click-to-Dial)
//!                 far end answers (Originator)
//!   Alerting ───────────────────────────────────────▶ Active ◀──── retrieve ──── Held
//!      │                                              │  ▲ │ ────── hold ────────▶ │
//!      │                                 far end holds│  │ │far end retrieves       │
//!      │                                              ▼  │                          │
//!      │                                         Remote Held                        │
//!      └─────────────── release (any side, any state but Released) ──▶ Released ◀──┘
//! ```
//!
//! Every change goes through [`Call::apply`]; an action the state does not allow (answering
//! a released call, holding an alerting one, declining an answered one) is a
//! [`CallError`] that names the call, its state and the action, which XSI turns into its
//! `ErrorInfo`.
//!
//! [`CallRegistry`] holds the calls in progress on this node, per user: what `GET calls`,
//! `GET calls/HookStatus` and the `CallSubscriptionEvent` of an XSI-Events subscription
//! report. What it does now: it is read by those three; placing, routing and carrying calls
//! over the bridges (Rayo), which add calls to it, are the next step of call control and
//! not here yet, so every user is on hook with no calls.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use time::OffsetDateTime;

/// A user's call id: unique on this node (`callhalf-<node>-<n>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the user came to be on the call (XSD `Personality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Ringing: not answered yet.
    Alerting,
    /// Connected.
    Active,
    /// Held by the user.
    Held,
    /// Held by the far end.
    RemoteHeld,
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
            CallState::Released => "Released",
        }
    }
}

/// What the remote party is to the user (XSD `CallType`, the kinds Bridgehead tells apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Something that happens to a user's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        }
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The user's call id.
    pub id: CallId,
    /// The id both sides share (`extTrackingId`).
    pub ext_tracking_id: String,
    /// The user whose side this is.
    pub user_id: String,
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
    /// When it ended.
    pub release_time: Option<OffsetDateTime>,
    /// Why it failed, when it did.
    pub release_cause: Option<ReleaseCause>,
    /// Who ended it.
    pub releasing_party: Option<ReleasingParty>,
}

impl Call {
    /// A new call of `user_id` at `start`: Alerting.
    pub fn new(
        id: CallId,
        ext_tracking_id: String,
        user_id: String,
        personality: Personality,
        remote: RemoteParty,
        start: OffsetDateTime,
    ) -> Self {
        Call {
            id,
            ext_tracking_id,
            user_id,
            personality,
            state: CallState::Alerting,
            remote,
            start_time: start,
            answer_time: None,
            held_time: None,
            total_held_ms: 0,
            release_time: None,
            release_cause: None,
            releasing_party: None,
        }
    }

    /// Whether the call is over.
    pub fn is_released(&self) -> bool {
        self.state == CallState::Released
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
            (S::Released, _) | (_, A::Release { decline: true }) => return Err(self.refuse(action)),
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
            A::RemoteHold | A::RemoteRetrieve => {}
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

/// What carries calls: the call bridges, reached by the XMPP face over Rayo
/// (`xmpp::rayo`). `server.rs` hands it to [`super::Telephony::set_carrier`], so that
/// neither face imports the other.
#[async_trait::async_trait]
pub trait CallCarrier: Send + Sync {
    /// Asks a bridge to place a call from `from` to `to` (`sip:` or `tel:` URIs). The
    /// first bridge that accepts answers with its reference to the call.
    async fn dial(&self, from: &str, to: &str) -> Result<Dialed, DialError>;

    /// Tells the bridge carrying the call `call_ref` to end it.
    async fn hangup(&self, call_ref: &str) -> Result<(), DialError>;
}

/// A call a bridge accepted to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialed {
    /// The bridge (its component domain).
    pub bridge: String,
    /// The bridge's reference to the call (Rayo: the call's JID).
    pub call_ref: String,
}

/// Why no bridge placed a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    /// No connected bridge carries calls.
    #[error("no call bridge is connected")]
    NoBridge,
    /// Every eligible bridge refused or did not answer: `(bridge, why)` for each.
    #[error("every call bridge refused: {0:?}")]
    Refused(Vec<(String, String)>),
}

/// Whether a user is on a call (XSD `HookStatusType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The calls in progress on this node, by user (ids compared ASCII case-insensitively),
/// and the numbering of their ids.
#[derive(Debug)]
pub struct CallRegistry {
    calls: Mutex<HashMap<String, Vec<Call>>>,
    node_id: String,
    numbers: AtomicU64,
}

impl CallRegistry {
    /// An empty registry whose call ids name node `node_id`.
    pub fn new(node_id: &str) -> Self {
        CallRegistry {
            calls: Mutex::default(),
            node_id: node_id.to_owned(),
            numbers: AtomicU64::new(0),
        }
    }

    /// A call id not used before on this node (`callhalf-<node>-<n>`).
    pub fn new_id(&self) -> CallId {
        CallId::new(
            &self.node_id,
            self.numbers.fetch_add(1, Ordering::Relaxed) + 1,
        )
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Call>>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `call` (replacing the user's call with the same id); a released call leaves.
    pub fn track(&self, call: Call) {
        let key = call.user_id.to_ascii_lowercase();
        let mut calls = self.calls();
        let user = calls.entry(key.clone()).or_default();
        user.retain(|c| c.id != call.id);
        if !call.is_released() {
            user.push(call);
        }
        if user.is_empty() {
            calls.remove(&key);
        }
    }

    /// A user's calls, oldest first.
    pub fn calls_of(&self, user_id: &str) -> Vec<Call> {
        self.calls()
            .get(&user_id.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// The user's call `id`.
    pub fn call_of(&self, user_id: &str, id: &str) -> Option<Call> {
        self.calls()
            .get(&user_id.to_ascii_lowercase())?
            .iter()
            .find(|c| c.id.as_str() == id)
            .cloned()
    }

    /// The call whose `extTrackingId` (the bridge's reference) is `call_ref`.
    pub fn find_by_ref(&self, call_ref: &str) -> Option<Call> {
        self.calls()
            .values()
            .flatten()
            .find(|c| c.ext_tracking_id.eq_ignore_ascii_case(call_ref))
            .cloned()
    }

    /// The references of every call a bridge (component domain `bridge`) carries: those
    /// whose reference is `…@bridge`.
    pub fn refs_of_bridge(&self, bridge: &str) -> Vec<String> {
        self.calls()
            .values()
            .flatten()
            .filter(|c| {
                c.ext_tracking_id
                    .rsplit_once('@')
                    .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(bridge))
            })
            .map(|c| c.ext_tracking_id.clone())
            .collect()
    }

    /// Whether the user is on a call.
    pub fn hook_status(&self, user_id: &str) -> HookStatus {
        if self.calls().contains_key(&user_id.to_ascii_lowercase()) {
            HookStatus::OffHook
        } else {
            HookStatus::OnHook
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    const ALL_ACTIONS: [CallAction; 9] = [
        CallAction::Answer,
        CallAction::RemoteAnswer,
        CallAction::Hold,
        CallAction::Retrieve,
        CallAction::RemoteHold,
        CallAction::RemoteRetrieve,
        CallAction::Release { decline: false },
        CallAction::Release { decline: true },
        CallAction::RemoteRelease(None),
    ];

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn call(personality: Personality) -> Call {
        Call::new(
            CallId::new("node1", 7),
            "ext-1".into(),
            "alice@example.com".into(),
            personality,
            RemoteParty {
                name: Some("Bob".into()),
                address: Some("tel:2002".into()),
                user_id: Some("bob@example.com".into()),
                call_type: CallType::Group,
            },
            t0(),
        )
    }

    /// A call of `personality` brought to `state` by legal actions.
    fn in_state(personality: Personality, state: CallState) -> Call {
        let mut c = call(personality);
        let answer = if personality.answers() {
            CallAction::Answer
        } else {
            CallAction::RemoteAnswer
        };
        let path: &[CallAction] = match state {
            CallState::Alerting => &[],
            CallState::Active => &[answer],
            CallState::Held => &[answer, CallAction::Hold],
            CallState::RemoteHeld => &[answer, CallAction::RemoteHold],
            CallState::Released => &[CallAction::Release { decline: false }],
        };
        for &action in path {
            c.apply(action, t0()).unwrap();
        }
        assert_eq!(c.state, state);
        c
    }

    /// What each (personality, state, action) leads to; `None` is refused. Every
    /// combination is listed: the table is the specification.
    fn expected(p: Personality, s: CallState, a: CallAction) -> Option<CallState> {
        use CallAction as A;
        use CallState as S;
        match (s, a) {
            (S::Released, _) => None,
            (S::Alerting, A::Answer) => p.answers().then_some(S::Active),
            (S::Alerting, A::RemoteAnswer) => (!p.answers()).then_some(S::Active),
            (S::Alerting, A::Release { decline: true }) => {
                (p == Personality::Terminator).then_some(S::Released)
            }
            (_, A::Release { decline: true }) => None,
            (_, A::Release { decline: false } | A::RemoteRelease(_)) => Some(S::Released),
            (S::Active, A::Hold) => Some(S::Held),
            (S::Held, A::Retrieve) => Some(S::Active),
            (S::Active, A::RemoteHold) => Some(S::RemoteHeld),
            (S::RemoteHeld, A::RemoteRetrieve) => Some(S::Active),
            _ => None,
        }
    }

    #[test]
    fn every_transition_is_allowed_or_refused_as_the_table_says() {
        let states = [
            CallState::Alerting,
            CallState::Active,
            CallState::Held,
            CallState::RemoteHeld,
            CallState::Released,
        ];
        let personalities = [
            Personality::Originator,
            Personality::Terminator,
            Personality::ClickToDial,
        ];
        for p in personalities {
            for s in states {
                for a in ALL_ACTIONS {
                    let mut c = in_state(p, s);
                    let before = c.clone();
                    let result = c.apply(a, t0() + Duration::seconds(5));
                    match expected(p, s, a) {
                        Some(next) => {
                            assert!(result.is_ok(), "{p:?} {s:?} {a:?}: {result:?}");
                            assert_eq!(c.state, next, "{p:?} {s:?} {a:?}");
                        }
                        None => {
                            let error = result.expect_err(&format!("{p:?} {s:?} {a:?} allowed"));
                            assert_eq!(error.state, s.as_str());
                            assert_eq!(error.action, a.as_str());
                            assert_eq!(c, before, "a refused action changes nothing");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn times_and_causes_are_recorded() {
        let mut c = call(Personality::Terminator);
        c.apply(CallAction::Answer, t0() + Duration::seconds(2))
            .unwrap();
        c.apply(CallAction::Hold, t0() + Duration::seconds(10))
            .unwrap();
        c.apply(CallAction::Retrieve, t0() + Duration::seconds(13))
            .unwrap();
        c.apply(CallAction::Hold, t0() + Duration::seconds(20))
            .unwrap();
        c.apply(
            CallAction::RemoteRelease(Some(ReleaseCause::TemporarilyUnavailable)),
            t0() + Duration::seconds(21),
        )
        .unwrap();
        assert_eq!(c.answer_time, Some(t0() + Duration::seconds(2)));
        assert_eq!(c.total_held_ms, 4_000, "3 s and then 1 s held");
        assert_eq!(c.held_time, None);
        assert_eq!(c.release_time, Some(t0() + Duration::seconds(21)));
        assert_eq!(c.releasing_party, Some(ReleasingParty::Remote));
        assert_eq!(c.release_cause, Some(ReleaseCause::TemporarilyUnavailable));
        assert!(c.was_answered());

        let mut declined = call(Personality::Terminator);
        declined
            .apply(CallAction::Release { decline: true }, t0())
            .unwrap();
        assert_eq!(declined.release_cause, Some(ReleaseCause::Forbidden));
        assert_eq!(declined.releasing_party, Some(ReleasingParty::Local));
        assert!(!declined.was_answered(), "a missed call");
    }

    #[test]
    fn the_registry_keeps_calls_until_they_are_released() {
        let registry = CallRegistry::new("node1");
        assert_eq!(
            registry.hook_status("alice@example.com"),
            HookStatus::OnHook
        );
        let mut c = call(Personality::Originator);
        registry.track(c.clone());
        assert_eq!(
            registry.hook_status("Alice@Example.com"),
            HookStatus::OffHook
        );
        c.apply(CallAction::RemoteAnswer, t0()).unwrap();
        registry.track(c.clone());
        let calls = registry.calls_of("alice@example.com");
        assert_eq!(calls.len(), 1, "the same call, updated");
        assert_eq!(calls[0].state, CallState::Active);
        c.apply(CallAction::Release { decline: false }, t0())
            .unwrap();
        registry.track(c);
        assert!(registry.calls_of("alice@example.com").is_empty());
        assert_eq!(
            registry.hook_status("alice@example.com"),
            HookStatus::OnHook
        );
    }

    #[test]
    fn a_refusal_names_the_call_state_and_action() {
        let mut c = in_state(Personality::Originator, CallState::Alerting);
        let error = c.apply(CallAction::Hold, t0()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot hold call callhalf-node1-7: it is Alerting (Originator)"
        );
    }
}
