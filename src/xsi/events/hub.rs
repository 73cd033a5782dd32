//! The event hub: channel sets and their channels (in memory, node-local), subscriptions
//! (in memory, persisted in the store), and acknowledged delivery.
//!
//! ```text
//! telephony EventBus ──► Hub::deliver(event)          (one task, in bus order)
//!   subscriptions whose target covers the user and whose packages include the service
//!   for each: the set's next sequence number (wrapping 2147483647 → 1), a new eventID
//!     an open, responsive channel?  lowest priority value first, weighted random within
//!       yes → render with that channelId → try_send into the channel's bounded queue
//!             (full or closed → the channel ends, next channel)  → awaiting an ack
//!       no  → the set's backlog (bounded by count and age), sent when a channel opens
//! EventResponse  200 done · 400 dropped · 404 channel ends (UnknownChannel), next channel
//!                481 subscription deleted, event dropped · 500 next channel
//! Hub::tick (every second)
//!   unacknowledged past ack_timeout → sent again (next channel if there is one); after
//!     max_delivery_attempts the channel is unresponsive; a set whose channels are all
//!     unresponsive ends them with NonResponsiveChannel and keeps the event in its backlog
//!   no heartbeat for event_timeout → the channel ends (NonResponsiveChannel)
//!   expired channels (Expired) and subscriptions (SubscriptionTerminatedEvent) end
//! ```
//!
//! All state sits behind one mutex that is never held across an `.await`: a channel's
//! stream is fed through its own bounded queue, so one slow channel never delays the
//! others, and memory is bounded by the queue lengths, the backlog limits and the
//! channels-per-set limit.
//!
//! The files: this one holds the hub's handle, its public requests and `deliver`;
//! `hub/state.rs` the state and its indexes, `hub/channels.rs` a channel's life,
//! `hub/subscriptions.rs` subscriptions, `hub/delivery.rs` how an event reaches a channel
//! of its set and its acknowledgement, `hub/timers.rs` the timer sweep and shutdown; in a
//! cluster, `hub/restore.rs` the shared backlog and `hub/standby.rs` the one node that
//! delivers a set with channels on several.

mod channels;
mod delivery;
mod restore;
mod standby;
mod state;
mod subscriptions;
mod timers;
mod views;

pub use standby::{Claim, StandbySet, STANDBY_CHECK};
pub use views::{ChannelView, SubscriptionView};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use tokio::sync::mpsc;

use crate::config::XsiEventsConfig;
use crate::telephony::{EventKind, ServiceName, Telephony, TelephonyError, TelephonyEvent};
use crate::telephony::{SubscriptionRecord, SubscriptionTarget};

use super::documents::EventData;
use super::journal::JournalWrite;
use state::{Channel, ChannelSet, Pending, State, Unacked};

/// `expires` that asks for a channel or subscription that never expires.
pub const NEVER_EXPIRES: u64 = 2_147_483_647;

/// The largest sequence number; the next one is 1.
const MAX_SEQUENCE: u32 = 2_147_483_647;

/// Who owns a channel set or subscription.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    /// A user id, or a CTI client identity.
    pub id: String,
    /// True for a CTI client identity.
    pub is_client: bool,
}

/// Why a hub operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// No such channel, set or subscription (for this owner).
    #[error("{0} not found")]
    NotFound(String),
    /// The request is not allowed (e.g. too many channels in a set).
    #[error("{0}")]
    Refused(String),
    /// The owner is at one of its `[quotas]`.
    #[error("{what}: the limit is {limit}")]
    Quota {
        /// What is at its limit, in words.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The telephony model (its store) failed.
    #[error(transparent)]
    Telephony(#[from] TelephonyError),
}

/// What opening a channel returns.
#[derive(Debug)]
pub struct Opened {
    /// The new channel's id.
    pub channel_id: String,
    /// Its lifetime in seconds.
    pub expires: u64,
    /// The documents to stream, the first being the `Channel` answer.
    pub stream: mpsc::Receiver<Bytes>,
    /// The set is new on this node of a cluster: it waits for what the shared backlog
    /// keeps for it ([`Hub::restore`]) before it sends anything.
    pub restoring: bool,
}

/// A channel request.
#[derive(Debug, Clone)]
pub struct ChannelRequest {
    /// The set.
    pub channel_set_id: String,
    /// Priority (lower first).
    pub priority: u32,
    /// Weight within the priority.
    pub weight: u32,
    /// Requested lifetime.
    pub expires: u64,
    /// Application id (one set per owner and application).
    pub application_id: Option<String>,
}

/// A subscription request, checked by the caller.
#[derive(Debug, Clone)]
pub struct SubscribeRequest {
    /// What to watch.
    pub target: SubscriptionTarget,
    /// Event packages.
    pub events: Vec<String>,
    /// Requested lifetime.
    pub expires: u64,
    /// Where the events go.
    pub channel_set_id: String,
    /// The subscriber's application.
    pub application_id: Option<String>,
    /// Current state to deliver at once: (user, settings).
    pub initial: Vec<(String, EventData)>,
}

/// What a hub of a cluster tells the other nodes (see `events/fanout.rs`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// A subscription was created or renewed here; `initial` is the state a new user
    /// subscription delivers at once, for the node that holds its set.
    SubscriptionPut {
        /// The subscription as stored.
        record: SubscriptionRecord,
        /// (user, data) to deliver at once.
        initial: Vec<(String, EventData)>,
    },
    /// A subscription ended here; with `announce` its set gets a SubscriptionTerminatedEvent.
    SubscriptionRemoved {
        /// The subscription.
        record: SubscriptionRecord,
        /// Whether its set is told.
        announce: bool,
    },
    /// This node delivers a set's events now (it opened the set's first channel here, or
    /// took the set over from a holder without channels): another node that still keeps
    /// that set without a channel forgets it; one with channels of it stands by, or, if its
    /// own claim is the later one, answers with it (see `hub/standby.rs`).
    SetClaimed {
        /// The set.
        set_id: String,
        /// When and by whom (absent from a node of an older version: the earliest claim).
        #[serde(default)]
        claim: Claim,
    },
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    state: Arc<Mutex<State>>,
    telephony: Telephony,
    config: Arc<XsiEventsConfig>,
    node_id: Arc<str>,
    /// In a cluster, where [`Notice`]s for the other nodes go; `None` on a node alone.
    outbox: Option<mpsc::Sender<Notice>>,
    /// In a cluster, the shared backlog's writer, where the keys of the entries that are
    /// done with go (see `hub/restore.rs`).
    journal: Option<mpsc::Sender<JournalWrite>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

/// A refusal for the `[quotas]` key `quota`, counted.
fn quota(quota: &'static str, what: &'static str, limit: usize) -> HubError {
    crate::telemetry::quota_refusal(quota);
    HubError::Quota { what, limit }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn bytes(document: Vec<u8>) -> Bytes {
    Bytes::from(document)
}

pub use crate::telephony::calls::CALL_PACKAGES;

/// Whether Bridgehead delivers or accepts subscriptions for the event package `name`:
/// every service of the catalogue (its display name), and the call packages.
pub fn is_package(name: &str) -> bool {
    ServiceName::ALL.iter().any(|s| s.display_name() == name) || CALL_PACKAGES.contains(&name)
}

/// The event packages a telephony event belongs to, and what its documents carry.
fn packages_and_data(event: &TelephonyEvent) -> (Vec<&'static str>, EventData) {
    match &event.kind {
        EventKind::ServiceChanged(settings) => (
            vec![settings.name().display_name()],
            EventData::Service(settings.clone()),
        ),
        EventKind::Call(call) => (
            call.kind.packages().to_vec(),
            EventData::Call(call.kind, Box::new(call.call.clone())),
        ),
        EventKind::HookStatus(status) => (CALL_PACKAGES.to_vec(), EventData::HookStatus(*status)),
    }
}

impl Hub {
    /// A hub for this node, with the subscriptions the telephony model keeps.
    pub async fn load(
        telephony: Telephony,
        config: XsiEventsConfig,
        node_id: &str,
    ) -> Result<Self, TelephonyError> {
        let mut state = State::default();
        for subscription in telephony.subscriptions().await? {
            state.add_subscription(subscription);
        }
        Ok(Hub {
            state: Arc::new(Mutex::new(state)),
            telephony,
            config: Arc::new(config),
            node_id: node_id.into(),
            outbox: None,
            journal: None,
        })
    }

    /// This hub as one node of a cluster: it delivers only to the channel sets it holds,
    /// tells the other nodes of its subscriptions and sets through `outbox`, and has
    /// `journal` forget the shared backlog's entries its sets are done with.
    pub fn in_cluster(
        mut self,
        outbox: mpsc::Sender<Notice>,
        journal: mpsc::Sender<JournalWrite>,
    ) -> Self {
        self.outbox = Some(outbox);
        self.journal = Some(journal);
        self
    }

    /// Tells the other nodes (a full outbox drops the notice, and says so).
    fn tell(&self, notice: Notice) {
        if let Some(outbox) = &self.outbox {
            if outbox.try_send(notice).is_err() {
                tracing::warn!(
                    "the cluster outbox is full; other nodes miss a subscription change"
                );
            }
        }
    }

    /// Whether this node delivers the events of `set_id`: always on a node alone; in a
    /// cluster, when the set is here (a channel of it was opened here) and this node does
    /// not stand by for another that delivers it.
    fn holds(&self, state: &State, set_id: &str) -> bool {
        self.outbox.is_none()
            || state
                .sets
                .get(set_id)
                .is_some_and(ChannelSet::delivers_here)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lifetime granted for a requested `expires`, and when it ends.
    pub fn grant(&self, requested: u64) -> (u64, Option<Instant>) {
        if requested == NEVER_EXPIRES {
            return (NEVER_EXPIRES, None);
        }
        let granted = requested.clamp(self.config.min_expires_secs, self.config.max_expires_secs);
        (
            granted,
            Instant::now().checked_add(Duration::from_secs(granted)),
        )
    }

    /// The other node that a channel or event id (`node:uuid`) names; `None` for this
    /// node's ids.
    pub fn foreign_node<'a>(&self, id: &'a str) -> Option<&'a str> {
        id.rsplit_once(':')
            .map(|(node, _)| node)
            .filter(|node| *node != &*self.node_id)
    }

    /// A new channel or event id, naming this node.
    fn new_owned_id(&self) -> String {
        format!("{}:{}", self.node_id, new_id())
    }

    /// Sends one telephony event to every subscription that covers it: a service change
    /// to the subscriptions of that service's package, a call event to those of a call
    /// package that carries it.
    pub fn deliver(&self, event: &TelephonyEvent) {
        self.deliver_as(event, None);
    }

    /// [`Hub::deliver`] for an event the cluster knows by `origin` (its key in the shared
    /// backlog).
    pub fn deliver_as(&self, event: &TelephonyEvent, origin: Option<&Arc<str>>) {
        let (packages, data) = packages_and_data(event);
        let mut state = self.state();
        for subscription in state.matching(event, &packages) {
            if !self.holds(&state, &subscription.channel_set_id) {
                continue;
            }
            let origin = origin.cloned();
            self.enqueue(
                &mut state,
                &subscription,
                &event.user_id,
                data.clone(),
                origin,
            );
        }
    }

    /// Whether this node holds set `set_id` (and delivers its events).
    pub fn holds_set(&self, set_id: &str) -> bool {
        self.holds(&self.state(), set_id)
    }

    /// The targets of set `set_id`'s subscriptions.
    pub fn targets_of_set(&self, set_id: &str) -> Vec<SubscriptionTarget> {
        let state = self.state();
        state
            .set_subscriptions
            .get(set_id)
            .into_iter()
            .flatten()
            .filter_map(|id| state.subscriptions.get(id))
            .map(|s| s.target.clone())
            .collect()
    }

    /// The targets of the subscriptions whose sets this node holds: what it must hear of
    /// from the other nodes of a cluster.
    pub fn held_targets(&self) -> Vec<SubscriptionTarget> {
        let state = self.state();
        state
            .sets
            .iter()
            .filter(|(_, set)| set.delivers_here())
            .filter_map(|(set_id, _)| state.set_subscriptions.get(set_id))
            .flatten()
            .filter_map(|id| state.subscriptions.get(id))
            .map(|s| s.target.clone())
            .collect()
    }

    /// `[xsi_events] backlog_max_events` and `backlog_max_age_secs`.
    pub fn backlog_limits(&self) -> (usize, Duration) {
        (
            self.config.backlog_max_events.get(),
            Duration::from_secs(self.config.backlog_max_age_secs),
        )
    }

    /// Whether this hub is one node of a cluster.
    pub fn is_clustered(&self) -> bool {
        self.outbox.is_some()
    }

    /// Open channels on this node.
    pub fn channel_count(&self) -> usize {
        self.state().sets.values().map(|s| s.channels.len()).sum()
    }
}

#[cfg(test)]
mod tests;
