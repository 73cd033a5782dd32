//! The hub's state: channel sets with their channels, backlog and unacknowledged events,
//! and the subscriptions, indexed so that no request or event walks every set or
//! subscription. One mutex holds it all (see the hub's module docs).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use hyper::body::Bytes;
use tokio::sync::mpsc;

use super::delivery::covers;
use super::{Claim, Owner};
use crate::telephony::{SubscriptionRecord, SubscriptionTarget, TelephonyEvent};
use crate::xsi::events::documents::EventData;

pub(super) struct Channel {
    pub(super) id: String,
    pub(super) priority: u32,
    pub(super) weight: u32,
    pub(super) expires_at: Option<Instant>,
    pub(super) last_heartbeat: Instant,
    pub(super) opened_at: time::OffsetDateTime,
    pub(super) queue: mpsc::Sender<Bytes>,
    pub(super) unresponsive: bool,
}

impl Channel {
    /// Whether events may be sent to it: responsive and its client still reading.
    pub(super) fn takes_events(&self) -> bool {
        !self.unresponsive && !self.queue.is_closed()
    }
}

#[derive(Clone)]
pub(super) struct Pending {
    pub(super) event_id: String,
    pub(super) sequence: u32,
    pub(super) subscription_id: String,
    pub(super) application_id: String,
    pub(super) target_id: String,
    pub(super) data: EventData,
    pub(super) queued_at: Instant,
    /// Written to a channel at least once (the delivery latency is measured once).
    pub(super) written: bool,
    /// In a cluster, the telephony event's id there: with the subscription, its key in
    /// the shared backlog. `None` for what the backlog does not keep (a subscription's
    /// initial state and its end).
    pub(super) origin: Option<std::sync::Arc<str>>,
}

pub(super) struct Unacked {
    pub(super) pending: Pending,
    pub(super) channel_id: String,
    pub(super) sent_at: Instant,
    pub(super) attempts: u32,
    pub(super) tried: Vec<String>,
}

pub(super) struct ChannelSet {
    pub(super) owner: Owner,
    pub(super) application_id: Option<String>,
    pub(super) channels: Vec<Channel>,
    pub(super) next_sequence: u32,
    pub(super) backlog: VecDeque<Pending>,
    pub(super) unacked: HashMap<String, Unacked>,
    /// New on this node of a cluster, waiting for the shared backlog: events queue up
    /// and nothing is sent until [`Hub::restore`](super::Hub::restore).
    pub(super) restoring: bool,
    /// In a cluster, this node's claim on the set (when it began to deliver it).
    pub(super) claim: Claim,
    /// In a cluster, the other node's claim this node stands by for: it has channels of
    /// the set too, but that node delivers the set's events (see `hub/standby.rs`).
    pub(super) standby: Option<Claim>,
}

impl ChannelSet {
    /// Whether this node delivers the set's events (it does not stand by for another).
    pub(super) fn delivers_here(&self) -> bool {
        self.standby.is_none()
    }
}

/// The hub's state, indexed so that no request or event walks every set or subscription.
#[derive(Default)]
pub(super) struct State {
    pub(super) sets: HashMap<String, ChannelSet>,
    /// Owner id → the ids of its channel sets.
    pub(super) owner_sets: HashMap<String, HashSet<String>>,
    pub(super) subscriptions: HashMap<String, SubscriptionRecord>,
    /// Owner id → how many subscriptions it owns (for `max_subscriptions_per_user`).
    pub(super) owner_subscriptions: HashMap<String, usize>,
    /// Lower-cased user id → the subscriptions that target that user.
    pub(super) user_subscriptions: HashMap<String, HashSet<String>>,
    /// Subscriptions with a group, enterprise or system target.
    pub(super) broad_subscriptions: HashSet<String>,
    /// Set id → the subscriptions that deliver to it.
    pub(super) set_subscriptions: HashMap<String, HashSet<String>>,
    /// The sets this node stands by for (`ChannelSet::standby`).
    pub(super) standby_sets: HashSet<String>,
    /// Set ids in the order the timer sweep visits them, and where it stands.
    pub(super) sweep_order: Vec<String>,
    pub(super) sweep_cursor: usize,
}

/// Sets the timer sweep visits per tick, so that the lock is held briefly however many
/// sets there are. With 10,000 sets every set is visited every 2.5 s (4 ticks a second).
const SWEEP_BATCH: usize = 1024;

impl State {
    /// The set `set_id`, created (and indexed under `owner`) if new.
    pub(super) fn set_entry(
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
                restoring: false,
                claim: Claim::default(),
                standby: None,
            })
    }

    /// How many of `owner`'s sets have an open channel, and how many channels they hold.
    pub(super) fn open_channels_of(&self, owner: &Owner) -> (usize, usize) {
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
    pub(super) fn owner_set_ids(&self, owner: &Owner) -> Vec<String> {
        self.owner_sets
            .get(&owner.id)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub(super) fn add_subscription(&mut self, record: SubscriptionRecord) {
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
        self.set_subscriptions
            .entry(record.channel_set_id.clone())
            .or_default()
            .insert(record.id.clone());
        self.subscriptions.insert(record.id.clone(), record);
    }

    pub(super) fn remove_subscription(&mut self, id: &str) -> Option<SubscriptionRecord> {
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
        if let Some(ids) = self.set_subscriptions.get_mut(&record.channel_set_id) {
            ids.remove(id);
            if ids.is_empty() {
                self.set_subscriptions.remove(&record.channel_set_id);
            }
        }
        Some(record)
    }

    /// The subscriptions that cover `event`'s user for one of `packages`.
    pub(super) fn matching(
        &self,
        event: &TelephonyEvent,
        packages: &[&str],
    ) -> Vec<SubscriptionRecord> {
        let direct = self
            .user_subscriptions
            .get(&event.user_id.to_lowercase())
            .into_iter()
            .flatten();
        direct
            .chain(self.broad_subscriptions.iter())
            .filter_map(|id| self.subscriptions.get(id))
            .filter(|s| {
                s.events.iter().any(|e| packages.contains(&e.as_str())) && covers(&s.target, event)
            })
            .cloned()
            .collect()
    }

    /// Drops sets that hold nothing: no channel, no waiting or unacknowledged event, no
    /// subscription; and sets this node stood by for whose channels here all ended.
    pub(super) fn forget_empty_sets(&mut self) {
        let subscribed = &self.set_subscriptions;
        let empty: Vec<String> = self
            .sets
            .iter()
            .filter(|(id, set)| {
                set.channels.is_empty()
                    && (!set.delivers_here()
                        || set.backlog.is_empty()
                            && set.unacked.is_empty()
                            && !subscribed.contains_key(id.as_str()))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in empty {
            self.unindex_set(&id);
        }
        let sets = &self.sets;
        self.sweep_order.retain(|id| sets.contains_key(id));
        self.sweep_cursor = 0;
    }

    /// Forgets a set with whatever it keeps.
    pub(super) fn remove_set(&mut self, id: &str) {
        self.unindex_set(id);
        self.sweep_order.retain(|other| other != id);
        self.sweep_cursor = 0;
    }

    /// Takes a set out of the sets and its owner's index (not the sweep order).
    fn unindex_set(&mut self, id: &str) {
        let Some(set) = self.sets.remove(id) else {
            return;
        };
        self.standby_sets.remove(id);
        if let Some(ids) = self.owner_sets.get_mut(&set.owner.id) {
            ids.remove(id);
            if ids.is_empty() {
                self.owner_sets.remove(&set.owner.id);
            }
        }
    }

    /// The next batch of set ids for the timer sweep, and whether this batch ends a pass.
    pub(super) fn next_sweep_batch(&mut self) -> (Vec<String>, bool) {
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
