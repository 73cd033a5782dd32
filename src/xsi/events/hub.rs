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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use rand::Rng;
use tokio::sync::mpsc;

use crate::config::{QuotasConfig, XsiEventsConfig};
use crate::store::{Store, StoreError, SubscriptionRecord, SubscriptionTarget};
use crate::telephony::{EventKind, ServiceName, TelephonyEvent};

use super::documents::{self, Envelope, EventData, TerminationReason};

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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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
    store: Arc<dyn Store>,
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

/// The package a service's events belong to.
pub fn package_of(service: ServiceName) -> &'static str {
    service.display_name()
}

/// The event packages Bridgehead delivers or accepts subscriptions for.
pub const PACKAGES: [&str; 9] = [
    "Do Not Disturb",
    "Call Forwarding Always",
    "Call Forwarding Busy",
    "Call Forwarding No Answer",
    "Remote Office",
    "Simultaneous Ring Personal",
    "Basic Call",
    "Standard Call",
    "Advanced Call",
];

impl Hub {
    /// A hub for this node, with the subscriptions the store holds.
    pub async fn load(
        store: Arc<dyn Store>,
        config: XsiEventsConfig,
        quotas: QuotasConfig,
        node_id: &str,
    ) -> Result<Self, StoreError> {
        let mut state = State::default();
        for subscription in store.subscriptions().await? {
            state.add_subscription(subscription);
        }
        Ok(Hub {
            state: Arc::new(Mutex::new(state)),
            store,
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

    /// Opens a channel. The first document on the stream is the `Channel` answer; events
    /// the set kept while it had no channel follow.
    pub fn open_channel(&self, owner: &Owner, request: ChannelRequest) -> Result<Opened, HubError> {
        self.check_ids(&request.channel_set_id, request.application_id.as_deref())?;
        let (expires, expires_at) = self.grant(request.expires);
        let channel_id = format!("{}:{}", self.node_id, new_id());
        let (queue, stream) = mpsc::channel(self.config.channel_queue_len.max(2));
        let answer = crate::xsi::codec::to_xml(
            &documents::Channel {
                xmlns: crate::xsi::model::XSI_NS,
                channel_id: Some(channel_id.clone()),
                expires: Some(expires),
                ..Default::default()
            },
            None,
        )
        .map_err(|_| HubError::Refused("cannot write the channel document".into()))?;
        let _ = queue.try_send(Bytes::from(answer));

        let mut state = self.state();
        // Checked under the same lock that adds the channel, so parallel opens cannot pass it.
        self.check_channel_quotas(&state, owner, &request.channel_set_id)?;
        // One set per owner and application: a second one ends the first one's channels.
        if let Some(application) = &request.application_id {
            for id in state.owner_set_ids(owner) {
                if id == request.channel_set_id {
                    continue;
                }
                if let Some(set) = state.sets.get_mut(&id) {
                    if set.application_id.as_ref() == Some(application) {
                        for channel in set.channels.drain(..) {
                            terminate(&channel, TerminationReason::DuplicateChannelSet);
                        }
                    }
                }
            }
        }
        let set = state.set_entry(
            &request.channel_set_id,
            owner,
            request.application_id.clone(),
        );
        if set.owner != *owner {
            return Err(HubError::Refused(format!(
                "channel set {} belongs to another subscriber",
                request.channel_set_id
            )));
        }
        set.channels.retain(|c| !c.queue.is_closed());
        if set.channels.len() >= self.config.max_channels_per_set {
            return Err(HubError::Refused(format!(
                "channel set {} has its maximum of {} channels",
                request.channel_set_id, self.config.max_channels_per_set
            )));
        }
        if request.application_id.is_some() {
            set.application_id = request.application_id.clone();
        }
        set.channels.push(Channel {
            id: channel_id.clone(),
            priority: request.priority,
            weight: request.weight,
            expires_at,
            last_heartbeat: Instant::now(),
            queue,
            unresponsive: false,
        });
        tracing::info!(owner = %owner.id, channel = %channel_id, set = %request.channel_set_id, "event channel opened");
        // What waited for a channel goes out now, in order.
        let waiting: Vec<Pending> = set.backlog.drain(..).collect();
        for pending in waiting {
            send(set, pending, &[], Instant::now());
        }
        Ok(Opened {
            channel_id,
            expires,
            stream,
        })
    }

    fn with_channel<T>(
        &self,
        owner: &Owner,
        channel_id: &str,
        f: impl FnOnce(&mut ChannelSet, usize) -> T,
    ) -> Result<T, HubError> {
        let mut state = self.state();
        for id in state.owner_set_ids(owner) {
            let Some(set) = state.sets.get_mut(&id) else {
                continue;
            };
            if let Some(index) = set.channels.iter().position(|c| c.id == channel_id) {
                return Ok(f(set, index));
            }
        }
        Err(HubError::NotFound(format!("channel {channel_id}")))
    }

    /// A heartbeat: the channel lives on, and a heartbeat document goes down its stream.
    pub fn heartbeat(&self, owner: &Owner, channel_id: &str) -> Result<(), HubError> {
        self.with_channel(owner, channel_id, |set, index| {
            let channel = &mut set.channels[index];
            channel.last_heartbeat = Instant::now();
            if channel
                .queue
                .try_send(bytes(documents::heartbeat()))
                .is_err()
            {
                let channel = set.channels.remove(index);
                terminate(&channel, TerminationReason::NonResponsiveChannel);
            }
        })
    }

    /// A new lifetime for a channel; returns the granted seconds.
    pub fn update_channel(
        &self,
        owner: &Owner,
        channel_id: &str,
        expires: u64,
    ) -> Result<u64, HubError> {
        let (granted, expires_at) = self.grant(expires);
        self.with_channel(owner, channel_id, |set, index| {
            set.channels[index].expires_at = expires_at;
        })?;
        Ok(granted)
    }

    /// Ends a channel with `ExplicitDelete`; its unacknowledged events go to the next channel.
    pub fn delete_channel(&self, owner: &Owner, channel_id: &str) -> Result<(), HubError> {
        self.with_channel(owner, channel_id, |set, index| {
            let channel = set.channels.remove(index);
            terminate(&channel, TerminationReason::ExplicitDelete);
            redeliver_from(set, &channel.id, Instant::now());
        })
    }

    /// The open channels of a set the owner holds.
    pub fn channel_set(
        &self,
        owner: &Owner,
        set_id: &str,
    ) -> Result<documents::ChannelSet, HubError> {
        let state = self.state();
        let set = state
            .sets
            .get(set_id)
            .filter(|s| s.owner == *owner)
            .ok_or_else(|| HubError::NotFound(format!("channel set {set_id}")))?;
        let now = Instant::now();
        Ok(documents::ChannelSet {
            xmlns: crate::xsi::model::XSI_NS,
            channel_set_id: set_id.to_owned(),
            channel: set
                .channels
                .iter()
                .filter(|c| !c.queue.is_closed())
                .map(|c| documents::ChannelEntry {
                    channel_id: c.id.clone(),
                    channel_set_id: set_id.to_owned(),
                    priority: c.priority,
                    weight: c.weight,
                    expires: c.expires_at.map_or(NEVER_EXPIRES, |at| {
                        at.saturating_duration_since(now).as_secs()
                    }),
                })
                .collect(),
        })
    }

    /// Applies an `EventResponse` from the owner.
    pub async fn event_response(
        &self,
        owner: &Owner,
        event_id: &str,
        status: u16,
    ) -> Result<(), HubError> {
        let mut drop_subscription = None;
        {
            let mut state = self.state();
            let set_id = state
                .owner_set_ids(owner)
                .into_iter()
                .find(|id| {
                    state
                        .sets
                        .get(id)
                        .is_some_and(|s| s.unacked.contains_key(event_id))
                })
                .ok_or_else(|| HubError::NotFound(format!("event {event_id}")))?;
            let set = state
                .sets
                .get_mut(&set_id)
                .ok_or_else(|| HubError::NotFound(format!("event {event_id}")))?;
            let unacked = set
                .unacked
                .remove(event_id)
                .ok_or_else(|| HubError::NotFound(format!("event {event_id}")))?;
            let now = Instant::now();
            match status {
                200 => {
                    if let Some(c) = set.channels.iter_mut().find(|c| c.id == unacked.channel_id) {
                        c.unresponsive = false;
                    }
                }
                400 => {}
                404 => {
                    if let Some(index) =
                        set.channels.iter().position(|c| c.id == unacked.channel_id)
                    {
                        let channel = set.channels.remove(index);
                        terminate(&channel, TerminationReason::UnknownChannel);
                    }
                    let tried = unacked.tried.clone();
                    send(set, unacked.pending, &tried, now);
                }
                481 => drop_subscription = Some(unacked.pending.subscription_id.clone()),
                500 => {
                    let tried = unacked.tried.clone();
                    send(set, unacked.pending, &tried, now);
                }
                other => {
                    return Err(HubError::Refused(format!(
                        "statusCode {other} is not one of 200, 400, 404, 481, 500"
                    )))
                }
            }
        }
        if let Some(id) = drop_subscription {
            self.remove_subscription(&id, false).await?;
        }
        Ok(())
    }

    /// `owner` may open one more channel in `set_id` (`max_channels_per_user`,
    /// `max_channel_sets_per_user`).
    fn check_channel_quotas(
        &self,
        state: &State,
        owner: &Owner,
        set_id: &str,
    ) -> Result<(), HubError> {
        let (sets, channels) = state.open_channels_of(owner);
        let in_open_set = state.sets.get(set_id).is_some_and(|set| {
            set.owner == *owner && set.channels.iter().any(|c| !c.queue.is_closed())
        });
        let max_channels = self.quotas.max_channels_per_user.get();
        if channels >= max_channels {
            return Err(quota(
                "max_channels_per_user",
                "open event channels",
                max_channels,
            ));
        }
        let max_sets = self.quotas.max_channel_sets_per_user.get();
        if !in_open_set && sets >= max_sets {
            return Err(quota(
                "max_channel_sets_per_user",
                "channel sets with open channels",
                max_sets,
            ));
        }
        Ok(())
    }

    /// `channelSetId` and `applicationId` within `max_event_id_bytes`.
    fn check_ids(&self, set_id: &str, application_id: Option<&str>) -> Result<(), HubError> {
        let limit = self.quotas.max_event_id_bytes.get();
        for (name, value) in [
            ("channelSetId", Some(set_id)),
            ("applicationId", application_id),
        ] {
            if value.is_some_and(|v| v.len() > limit) {
                crate::telemetry::quota_refusal("max_event_id_bytes");
                return Err(HubError::Refused(format!(
                    "{name} is longer than {limit} bytes"
                )));
            }
        }
        Ok(())
    }

    /// Subscribes; delivers `initial` (the state of a user target) at once.
    pub async fn subscribe(
        &self,
        owner: &Owner,
        request: SubscribeRequest,
    ) -> Result<(SubscriptionRecord, u64), HubError> {
        self.check_ids(&request.channel_set_id, request.application_id.as_deref())?;
        let SubscribeRequest {
            target,
            events,
            expires,
            channel_set_id,
            application_id,
            initial,
        } = request;
        let (granted, _) = self.grant(expires);
        let record = SubscriptionRecord {
            id: new_id(),
            owner: owner.id.clone(),
            owner_is_client: owner.is_client,
            target,
            events,
            channel_set_id,
            application_id,
            expires_at: (granted != NEVER_EXPIRES)
                .then(|| time::OffsetDateTime::now_utc().unix_timestamp() + granted as i64),
        };
        // Counted and added under one lock, so parallel requests cannot pass the quota; a
        // failed store write takes it back out.
        {
            let mut state = self.state();
            let limit = self.quotas.max_subscriptions_per_user.get();
            if state
                .owner_subscriptions
                .get(&owner.id)
                .copied()
                .unwrap_or(0)
                >= limit
            {
                return Err(quota("max_subscriptions_per_user", "subscriptions", limit));
            }
            state.add_subscription(record.clone());
        }
        if let Err(e) = self.store.put_subscription(&record).await {
            self.state().remove_subscription(&record.id);
            return Err(e.into());
        }
        let mut state = self.state();
        for (user, settings) in initial {
            enqueue(
                &mut state,
                &record,
                &user,
                EventData::Service(settings),
                self.config.backlog_max_events,
            );
        }
        Ok((record, granted))
    }

    /// The subscriptions `visible` lets through.
    pub fn subscriptions(
        &self,
        visible: impl Fn(&SubscriptionRecord) -> bool,
    ) -> Vec<SubscriptionRecord> {
        let state = self.state();
        let mut list: Vec<_> = state
            .subscriptions
            .values()
            .filter(|s| visible(s))
            .cloned()
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// A new lifetime for a subscription; returns the granted seconds.
    pub async fn renew_subscription(&self, id: &str, expires: u64) -> Result<u64, HubError> {
        let (granted, _) = self.grant(expires);
        let record = {
            let mut state = self.state();
            let record = state
                .subscriptions
                .get_mut(id)
                .ok_or_else(|| HubError::NotFound(format!("subscription {id}")))?;
            record.expires_at = (granted != NEVER_EXPIRES)
                .then(|| time::OffsetDateTime::now_utc().unix_timestamp() + granted as i64);
            record.clone()
        };
        self.store.put_subscription(&record).await?;
        Ok(granted)
    }

    /// Ends a subscription; with `announce`, a SubscriptionTerminatedEvent goes to its set.
    pub async fn remove_subscription(&self, id: &str, announce: bool) -> Result<(), HubError> {
        let record = self
            .state()
            .remove_subscription(id)
            .ok_or_else(|| HubError::NotFound(format!("subscription {id}")))?;
        self.store.remove_subscription(id).await?;
        if announce {
            let target = target_id(&record.target);
            let mut state = self.state();
            enqueue(
                &mut state,
                &record,
                &target,
                EventData::SubscriptionTerminated,
                self.config.backlog_max_events,
            );
        }
        tracing::info!(subscription = %id, "subscription ended");
        Ok(())
    }

    /// Sends one telephony event to every subscription that covers it.
    pub fn deliver(&self, event: &TelephonyEvent) {
        let EventKind::ServiceChanged(settings) = &event.kind;
        let package = package_of(settings.name());
        let mut state = self.state();
        for subscription in state.matching(event, package) {
            enqueue(
                &mut state,
                &subscription,
                &event.user_id,
                EventData::Service(settings.clone()),
                self.config.backlog_max_events,
            );
        }
    }

    /// Timers: resends, heartbeat timeouts, expiries, backlog age, for the next batch of
    /// sets. After a full pass, empty sets are forgotten and the subscriptions that expired
    /// are returned (to be removed and announced by the caller).
    pub fn tick(&self, now: Instant) -> Vec<String> {
        let ack_timeout = Duration::from_secs(self.config.ack_timeout_secs);
        let event_timeout = Duration::from_secs(self.config.event_timeout_secs);
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
                if unacked.attempts >= max_attempts {
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

/// True when `target` covers the user `event` is about.
fn covers(target: &SubscriptionTarget, event: &TelephonyEvent) -> bool {
    match target {
        SubscriptionTarget::User { user_id } => user_id.eq_ignore_ascii_case(&event.user_id),
        SubscriptionTarget::Group {
            enterprise_id,
            group_id,
        } => *enterprise_id == event.enterprise_id && *group_id == event.group_id,
        SubscriptionTarget::Enterprise { enterprise_id } => *enterprise_id == event.enterprise_id,
        SubscriptionTarget::System => true,
    }
}

/// The `targetId` of a subscription-level event.
fn target_id(target: &SubscriptionTarget) -> String {
    match target {
        SubscriptionTarget::User { user_id } => user_id.clone(),
        SubscriptionTarget::Group { group_id, .. } => group_id.clone(),
        SubscriptionTarget::Enterprise { enterprise_id } => enterprise_id.clone(),
        SubscriptionTarget::System => "system".to_owned(),
    }
}

/// Numbers the event in its subscription's set and sends it (or keeps it in the backlog).
fn enqueue(
    state: &mut State,
    subscription: &SubscriptionRecord,
    target: &str,
    data: EventData,
    backlog_max: usize,
) {
    let owner = Owner {
        id: subscription.owner.clone(),
        is_client: subscription.owner_is_client,
    };
    let set = state.set_entry(
        &subscription.channel_set_id,
        &owner,
        subscription.application_id.clone(),
    );
    let sequence = set.next_sequence;
    set.next_sequence = if sequence >= MAX_SEQUENCE {
        1
    } else {
        sequence + 1
    };
    let pending = Pending {
        event_id: new_id(),
        sequence,
        subscription_id: subscription.id.clone(),
        application_id: subscription.application_id.clone().unwrap_or_default(),
        target_id: target.to_owned(),
        data,
        queued_at: Instant::now(),
    };
    if set
        .channels
        .iter()
        .any(|c| !c.unresponsive && !c.queue.is_closed())
    {
        send(set, pending, &[], Instant::now());
    } else {
        set.backlog.push_back(pending);
        while set.backlog.len() > backlog_max {
            set.backlog.pop_front();
        }
    }
}

/// Picks a channel: lowest priority value among responsive channels not yet tried, then a
/// weighted draw (weight 0 only when nothing else is left).
fn choose(set: &ChannelSet, tried: &[String]) -> Option<usize> {
    let candidates: Vec<usize> = (0..set.channels.len())
        .filter(|&i| {
            let c = &set.channels[i];
            !c.unresponsive && !c.queue.is_closed() && !tried.contains(&c.id)
        })
        .collect();
    let best = candidates.iter().map(|&i| set.channels[i].priority).min()?;
    let top: Vec<usize> = candidates
        .into_iter()
        .filter(|&i| set.channels[i].priority == best)
        .collect();
    let total: u64 = top.iter().map(|&i| u64::from(set.channels[i].weight)).sum();
    if total == 0 {
        return top.first().copied();
    }
    let mut draw = rand::thread_rng().gen_range(0..total);
    for &i in &top {
        let weight = u64::from(set.channels[i].weight);
        if draw < weight {
            return Some(i);
        }
        draw -= weight;
    }
    top.last().copied()
}

/// Sends `pending` on the best channel not in `tried`; a channel that cannot take it ends
/// and the next is tried. With no channel left, the event waits in the backlog.
fn send(set: &mut ChannelSet, pending: Pending, tried: &[String], now: Instant) {
    let mut tried = tried.to_vec();
    loop {
        let Some(index) = choose(set, &tried) else {
            set.backlog.push_back(pending);
            return;
        };
        let channel = &set.channels[index];
        let document = documents::subscription_event(
            &Envelope {
                event_id: &pending.event_id,
                sequence: pending.sequence,
                subscriber: &set.owner.id,
                subscriber_is_client: set.owner.is_client,
                application_id: &pending.application_id,
                subscription_id: &pending.subscription_id,
                channel_id: &channel.id,
                target_id: &pending.target_id,
            },
            &pending.data,
        );
        match channel.queue.try_send(bytes(document)) {
            Ok(()) => {
                let channel_id = channel.id.clone();
                tried.push(channel_id.clone());
                set.unacked.insert(
                    pending.event_id.clone(),
                    Unacked {
                        pending,
                        channel_id,
                        sent_at: now,
                        attempts: 1,
                        tried,
                    },
                );
                return;
            }
            Err(_) => {
                // Full (too slow) or closed (client gone): this channel is done.
                let channel = set.channels.remove(index);
                tracing::warn!(channel = %channel.id, "event channel cannot keep up; ending it");
                terminate(&channel, TerminationReason::NonResponsiveChannel);
            }
        }
    }
}

/// Sends an unacknowledged event again: to another channel when there is one, else to
/// the same one.
fn resend(set: &mut ChannelSet, unacked: Unacked, now: Instant) {
    let attempts = unacked.attempts + 1;
    let others_tried: Vec<String> = unacked.tried.clone();
    let has_other = choose(set, &others_tried).is_some();
    let tried = if has_other { others_tried } else { Vec::new() };
    let event_id = unacked.pending.event_id.clone();
    send(set, unacked.pending, &tried, now);
    if let Some(sent) = set.unacked.get_mut(&event_id) {
        sent.attempts = attempts;
    }
}

/// The unacknowledged events of a channel that ended go to the set's other channels.
fn redeliver_from(set: &mut ChannelSet, channel_id: &str, now: Instant) {
    let stranded: Vec<String> = set
        .unacked
        .iter()
        .filter(|(_, u)| u.channel_id == channel_id)
        .map(|(id, _)| id.clone())
        .collect();
    for id in stranded {
        if let Some(unacked) = set.unacked.remove(&id) {
            let tried = unacked.tried.clone();
            send(set, unacked.pending, &tried, now);
        }
    }
}

/// Sends the ChannelTerminatedEvent; dropping the channel then ends its stream.
fn terminate(channel: &Channel, reason: TerminationReason) {
    let _ = channel
        .queue
        .try_send(bytes(documents::channel_terminated(&channel.id, reason)));
    tracing::info!(channel = %channel.id, reason = reason.as_str(), "event channel ended");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::PasswordVerifiers;
    use crate::store::{Enterprise, Group, Role, SqliteStore, User};
    use crate::telephony::ServiceSettings;

    async fn hub(dir: &std::path::Path, config: XsiEventsConfig) -> (Hub, Vec<User>) {
        let store = SqliteStore::open(&dir.join("db.sqlite3")).unwrap();
        store
            .put_enterprise(&Enterprise {
                id: "e".into(),
                name: "E".into(),
            })
            .await
            .unwrap();
        store
            .put_group(&Group {
                id: "g".into(),
                enterprise_id: "e".into(),
                name: "G".into(),
            })
            .await
            .unwrap();
        let verifiers = PasswordVerifiers::new("x", 4096).unwrap();
        let mut users = Vec::new();
        for id in ["a@example.com", "b@example.com"] {
            let user = User {
                id: id.into(),
                first_name: String::new(),
                last_name: String::new(),
                number: None,
                extension: None,
                enterprise_id: "e".into(),
                group_id: "g".into(),
                role: Role::User,
                verifiers: verifiers.clone(),
            };
            store.add_user(&user).await.unwrap();
            users.push(user);
        }
        (
            Hub::load(Arc::new(store), config, QuotasConfig::default(), "node")
                .await
                .unwrap(),
            users,
        )
    }

    fn owner(user: &User) -> Owner {
        Owner {
            id: user.id.clone(),
            is_client: false,
        }
    }

    async fn subscribe(hub: &Hub, user: &User, set: &str) {
        hub.subscribe(
            &owner(user),
            SubscribeRequest {
                target: SubscriptionTarget::User {
                    user_id: user.id.clone(),
                },
                events: vec!["Do Not Disturb".into()],
                expires: NEVER_EXPIRES,
                channel_set_id: set.into(),
                application_id: None,
                initial: Vec::new(),
            },
        )
        .await
        .unwrap();
    }

    fn dnd(user: &User, sequence: u64) -> TelephonyEvent {
        TelephonyEvent {
            user_id: user.id.clone(),
            enterprise_id: user.enterprise_id.clone(),
            group_id: user.group_id.clone(),
            sequence,
            kind: EventKind::ServiceChanged(ServiceSettings::DoNotDisturb {
                active: sequence % 2 == 1,
                ring_splash: false,
            }),
        }
    }

    fn channel(set: &str) -> ChannelRequest {
        ChannelRequest {
            channel_set_id: set.into(),
            priority: 1,
            weight: 50,
            expires: NEVER_EXPIRES,
            application_id: None,
        }
    }

    #[tokio::test]
    async fn sequence_numbers_wrap_from_the_largest_to_one() {
        let dir = tempfile::tempdir().unwrap();
        let (hub, users) = hub(dir.path(), XsiEventsConfig::default()).await;
        subscribe(&hub, &users[0], "set").await;
        // The set is made with its first event (no channel: it waits in the backlog).
        hub.deliver(&dnd(&users[0], 1));
        if let Some(set) = hub.state().sets.get_mut("set") {
            set.next_sequence = MAX_SEQUENCE;
        }
        hub.deliver(&dnd(&users[0], 2));
        hub.deliver(&dnd(&users[0], 3));
        let state = hub.state();
        let sequences: Vec<u32> = state.sets["set"]
            .backlog
            .iter()
            .map(|p| p.sequence)
            .collect();
        assert_eq!(sequences, [1, MAX_SEQUENCE, 1]);
    }

    #[tokio::test]
    async fn a_channel_that_stops_reading_is_ended_and_others_are_not_held_up() {
        let dir = tempfile::tempdir().unwrap();
        let config = XsiEventsConfig {
            channel_queue_len: 4,
            ..XsiEventsConfig::default()
        };
        let (hub, users) = hub(dir.path(), config).await;
        let (a, b) = (&users[0], &users[1]);
        subscribe(&hub, a, "a-set").await;
        subscribe(&hub, b, "b-set").await;
        let stalled = hub.open_channel(&owner(a), channel("a-set")).unwrap();
        let mut healthy = hub.open_channel(&owner(b), channel("b-set")).unwrap();
        assert!(
            healthy.stream.recv().await.is_some(),
            "the Channel document"
        );
        // a's client never reads: its queue fills, the channel ends; b is served throughout.
        for n in 1..=20 {
            hub.deliver(&dnd(a, n));
            hub.deliver(&dnd(b, n));
            let document = healthy
                .stream
                .try_recv()
                .expect("b's event is there at once");
            assert!(String::from_utf8_lossy(&document).contains("SubscriptionEvent"));
        }
        let state = hub.state();
        assert!(
            state.sets["a-set"].channels.is_empty(),
            "the stalled channel ended"
        );
        assert!(
            !state.sets["a-set"].backlog.is_empty(),
            "its events wait for a new channel"
        );
        assert_eq!(state.sets["b-set"].channels.len(), 1);
        drop(stalled);
    }
}
