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
//! The files: this one holds the hub's state and its timers (`deliver`, `tick`);
//! `hub/channels.rs` a channel's life, `hub/subscriptions.rs` subscriptions,
//! `hub/delivery.rs` how an event reaches a channel of its set.

mod channels;
mod delivery;
mod subscriptions;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use tokio::sync::mpsc;

use crate::config::{QuotasConfig, XsiEventsConfig};
use crate::telephony::{EventKind, ServiceName, Telephony, TelephonyError, TelephonyEvent};
use crate::telephony::{SubscriptionRecord, SubscriptionTarget};

use super::documents::{EventData, TerminationReason};
use delivery::{covers, enqueue, redeliver_from, resend, terminate};

/// `expires` that asks for a channel or subscription that never expires.
pub const NEVER_EXPIRES: u64 = 2_147_483_647;

/// The largest sequence number; the next one is 1.
const MAX_SEQUENCE: u32 = 2_147_483_647;

/// Who owns a channel set or subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub initial: Vec<(String, crate::telephony::ServiceSettings)>,
}

struct Channel {
    id: String,
    priority: u32,
    weight: u32,
    expires_at: Option<Instant>,
    last_heartbeat: Instant,
    queue: mpsc::Sender<Bytes>,
    unresponsive: bool,
}

#[derive(Clone)]
struct Pending {
    event_id: String,
    sequence: u32,
    subscription_id: String,
    application_id: String,
    target_id: String,
    data: EventData,
    queued_at: Instant,
}

struct Unacked {
    pending: Pending,
    channel_id: String,
    sent_at: Instant,
    attempts: u32,
    tried: Vec<String>,
}

struct ChannelSet {
    owner: Owner,
    application_id: Option<String>,
    channels: Vec<Channel>,
    next_sequence: u32,
    backlog: VecDeque<Pending>,
    unacked: HashMap<String, Unacked>,
}

/// The hub's state, indexed so that no request or event walks every set or subscription.
#[derive(Default)]
struct State {
    sets: HashMap<String, ChannelSet>,
    /// Owner id → the ids of its channel sets.
    owner_sets: HashMap<String, HashSet<String>>,
    subscriptions: HashMap<String, SubscriptionRecord>,
    /// Owner id → how many subscriptions it owns (for `max_subscriptions_per_user`).
    owner_subscriptions: HashMap<String, usize>,
    /// Lower-cased user id → the subscriptions that target that user.
    user_subscriptions: HashMap<String, HashSet<String>>,
    /// Subscriptions with a group, enterprise or system target.
    broad_subscriptions: HashSet<String>,
    /// Set ids in the order the timer sweep visits them, and where it stands.
    sweep_order: Vec<String>,
    sweep_cursor: usize,
}

/// Sets the timer sweep visits per tick, so that the lock is held briefly however many
/// sets there are. With 10,000 sets every set is visited every 2.5 s (4 ticks a second).
const SWEEP_BATCH: usize = 1024;

impl State {
    /// The set `set_id`, created (and indexed under `owner`) if new.
    fn set_entry(
        &mut self,
        set_id: &str,
        owner: &Owner,
        application_id: Option<String>,
    ) -> &mut ChannelSet {
        if !self.sets.contains_key(set_id) {
            self.owner_sets
                .entry(owner.id.clone())
                .or_default()
                .insert(set_id.to_owned());
            self.sweep_order.push(set_id.to_owned());
        }
        self.sets
            .entry(set_id.to_owned())
            .or_insert_with(|| ChannelSet {
                owner: owner.clone(),
                application_id,
                channels: Vec::new(),
                next_sequence: 1,
                backlog: VecDeque::new(),
                unacked: HashMap::new(),
            })
    }

    /// How many of `owner`'s sets have an open channel, and how many channels they hold.
    fn open_channels_of(&self, owner: &Owner) -> (usize, usize) {
        let sets = self
            .owner_sets
            .get(&owner.id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sets.get(id));
        sets.fold((0, 0), |(sets, channels), set| {
            let open = set.channels.iter().filter(|c| !c.queue.is_closed()).count();
            (sets + usize::from(open > 0), channels + open)
        })
    }

    /// The ids of `owner`'s sets.
    fn owner_set_ids(&self, owner: &Owner) -> Vec<String> {
        self.owner_sets
            .get(&owner.id)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn add_subscription(&mut self, record: SubscriptionRecord) {
        *self
            .owner_subscriptions
            .entry(record.owner.clone())
            .or_insert(0) += 1;
        match &record.target {
            SubscriptionTarget::User { user_id } => {
                self.user_subscriptions
                    .entry(user_id.to_lowercase())
                    .or_default()
                    .insert(record.id.clone());
            }
            _ => {
                self.broad_subscriptions.insert(record.id.clone());
            }
        }
        self.subscriptions.insert(record.id.clone(), record);
    }

    fn remove_subscription(&mut self, id: &str) -> Option<SubscriptionRecord> {
        let record = self.subscriptions.remove(id)?;
        if let Some(count) = self.owner_subscriptions.get_mut(&record.owner) {
            *count -= 1;
            if *count == 0 {
                self.owner_subscriptions.remove(&record.owner);
            }
        }
        if let SubscriptionTarget::User { user_id } = &record.target {
            let key = user_id.to_lowercase();
            if let Some(ids) = self.user_subscriptions.get_mut(&key) {
                ids.remove(id);
                if ids.is_empty() {
                    self.user_subscriptions.remove(&key);
                }
            }
        } else {
            self.broad_subscriptions.remove(id);
        }
        Some(record)
    }

    /// The subscriptions that cover `event`'s user for `package`.
    fn matching(&self, event: &TelephonyEvent, package: &str) -> Vec<SubscriptionRecord> {
        let direct = self
            .user_subscriptions
            .get(&event.user_id.to_lowercase())
            .into_iter()
            .flatten();
        direct
            .chain(self.broad_subscriptions.iter())
            .filter_map(|id| self.subscriptions.get(id))
            .filter(|s| s.events.iter().any(|e| e == package) && covers(&s.target, event))
            .cloned()
            .collect()
    }

    /// Drops sets that hold nothing: no channel, no waiting or unacknowledged event, no
    /// subscription.
    fn forget_empty_sets(&mut self) {
        let subscribed: HashSet<&str> = self
            .subscriptions
            .values()
            .map(|s| s.channel_set_id.as_str())
            .collect();
        let empty: Vec<(String, String)> = self
            .sets
            .iter()
            .filter(|(id, set)| {
                set.channels.is_empty()
                    && set.backlog.is_empty()
                    && set.unacked.is_empty()
                    && !subscribed.contains(id.as_str())
            })
            .map(|(id, set)| (id.clone(), set.owner.id.clone()))
            .collect();
        for (id, owner) in empty {
            self.sets.remove(&id);
            if let Some(ids) = self.owner_sets.get_mut(&owner) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.owner_sets.remove(&owner);
                }
            }
        }
        let sets = &self.sets;
        self.sweep_order.retain(|id| sets.contains_key(id));
        self.sweep_cursor = 0;
    }

    /// The next batch of set ids for the timer sweep, and whether this batch ends a pass.
    fn next_sweep_batch(&mut self) -> (Vec<String>, bool) {
        let total = self.sweep_order.len();
        if total <= SWEEP_BATCH {
            return (self.sweep_order.clone(), true);
        }
        let start = self.sweep_cursor.min(total);
        let end = (start + SWEEP_BATCH).min(total);
        let batch = self.sweep_order[start..end].to_vec();
        let pass_done = end == total;
        self.sweep_cursor = if pass_done { 0 } else { end };
        (batch, pass_done)
    }
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    state: Arc<Mutex<State>>,
    telephony: Telephony,
    config: Arc<XsiEventsConfig>,
    quotas: Arc<QuotasConfig>,
    node_id: Arc<str>,
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

/// The call event packages, accepted for subscriptions (call events arrive with call
/// control).
pub const CALL_PACKAGES: [&str; 3] = ["Basic Call", "Standard Call", "Advanced Call"];

/// Whether Bridgehead delivers or accepts subscriptions for the event package `name`:
/// every service of the catalogue (its display name), and the call packages.
pub fn is_package(name: &str) -> bool {
    ServiceName::ALL.iter().any(|s| s.display_name() == name) || CALL_PACKAGES.contains(&name)
}

impl Hub {
    /// A hub for this node, with the subscriptions the telephony model keeps.
    pub async fn load(
        telephony: Telephony,
        config: XsiEventsConfig,
        quotas: QuotasConfig,
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
            quotas: Arc::new(quotas),
            node_id: node_id.into(),
        })
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

    /// True when `channel_id` names a channel of another node.
    pub fn is_foreign(&self, channel_id: &str) -> bool {
        channel_id
            .rsplit_once(':')
            .is_some_and(|(node, _)| node != &*self.node_id)
    }

    /// Sends one telephony event to every subscription that covers it.
    pub fn deliver(&self, event: &TelephonyEvent) {
        let EventKind::ServiceChanged(settings) = &event.kind;
        let package = settings.name().display_name();
        let mut state = self.state();
        for subscription in state.matching(event, package) {
            enqueue(
                &mut state,
                &subscription,
                &event.user_id,
                EventData::Service(settings.clone()),
                self.config.backlog_max_events.get(),
            );
        }
    }

    /// Timers: resends, heartbeat timeouts, expiries, backlog age, for the next batch of
    /// sets. After a full pass, empty sets are forgotten and the subscriptions that expired
    /// are returned (to be removed and announced by the caller).
    pub fn tick(&self, now: Instant) -> Vec<String> {
        let ack_timeout = Duration::from_secs(self.config.ack_timeout_secs.get());
        let event_timeout = Duration::from_secs(self.config.event_timeout_secs.get());
        let backlog_age = Duration::from_secs(self.config.backlog_max_age_secs);
        let max_attempts = self.config.max_delivery_attempts;
        let mut state = self.state();
        let (batch, pass_done) = state.next_sweep_batch();
        for set_id in batch {
            let Some(set) = state.sets.get_mut(&set_id) else {
                continue;
            };
            // Channels that ended: client gone, expired, or silent past the event timeout.
            let mut ended = Vec::new();
            set.channels.retain(|c| {
                let reason = if c.queue.is_closed() {
                    Some(None)
                } else if c.expires_at.is_some_and(|at| at <= now) {
                    Some(Some(TerminationReason::Expired))
                } else if now.duration_since(c.last_heartbeat) >= event_timeout {
                    Some(Some(TerminationReason::NonResponsiveChannel))
                } else {
                    None
                };
                match reason {
                    Some(reason) => {
                        if let Some(reason) = reason {
                            terminate(c, reason);
                        }
                        ended.push(c.id.clone());
                        false
                    }
                    None => true,
                }
            });
            for id in ended {
                redeliver_from(set, &id, now);
            }
            // Unacknowledged events: send again, or give up on the channel.
            let overdue: Vec<String> = set
                .unacked
                .iter()
                .filter(|(_, u)| now.duration_since(u.sent_at) >= ack_timeout)
                .map(|(id, _)| id.clone())
                .collect();
            for event_id in overdue {
                let Some(mut unacked) = set.unacked.remove(&event_id) else {
                    continue;
                };
                if unacked.attempts >= max_attempts.get() {
                    if let Some(c) = set.channels.iter_mut().find(|c| c.id == unacked.channel_id) {
                        c.unresponsive = true;
                    }
                    unacked.attempts = 0;
                }
                if set.channels.iter().all(|c| c.unresponsive) {
                    for channel in set.channels.drain(..) {
                        terminate(&channel, TerminationReason::NonResponsiveChannel);
                    }
                    set.backlog.push_front(unacked.pending);
                    continue;
                }
                resend(set, unacked, now);
            }
            // The backlog keeps events for a while only.
            while set
                .backlog
                .front()
                .is_some_and(|p| now.duration_since(p.queued_at) >= backlog_age)
            {
                set.backlog.pop_front();
            }
        }
        if !pass_done {
            return Vec::new();
        }
        state.forget_empty_sets();
        let unix_now = time::OffsetDateTime::now_utc().unix_timestamp();
        state
            .subscriptions
            .values()
            .filter(|s| s.expires_at.is_some_and(|at| at <= unix_now))
            .map(|s| s.id.clone())
            .collect()
    }

    /// Ends every channel (server shutdown): clients should open new ones elsewhere.
    pub fn close_all(&self) {
        let mut state = self.state();
        for set in state.sets.values_mut() {
            for channel in set.channels.drain(..) {
                terminate(&channel, TerminationReason::Expired);
            }
        }
    }

    /// Open channels on this node.
    pub fn channel_count(&self) -> usize {
        self.state().sets.values().map(|s| s.channels.len()).sum()
    }
}

#[cfg(test)]
mod tests;
