//! Delivery within a channel set: which subscriptions cover an event, sequence numbers and
//! the backlog, choosing a channel (priority, then weighted random), sending, resending
//! and redelivering unacknowledged events, and ending a channel with its reason.

use super::{bytes, Channel, ChannelSet, Hub, Owner, Pending, State, Unacked, MAX_SEQUENCE};
use std::time::Instant;

use rand::Rng;

use crate::telephony::TelephonyEvent;
use crate::telephony::{SubscriptionRecord, SubscriptionTarget};
use crate::xsi::events::documents::{self, Envelope, EventData, TerminationReason};

/// True when `target` covers the user `event` is about.
pub(super) fn covers(target: &SubscriptionTarget, event: &TelephonyEvent) -> bool {
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
pub(super) fn target_id(target: &SubscriptionTarget) -> String {
    match target {
        SubscriptionTarget::User { user_id } => user_id.clone(),
        SubscriptionTarget::Group { group_id, .. } => group_id.clone(),
        SubscriptionTarget::Enterprise { enterprise_id } => enterprise_id.clone(),
        SubscriptionTarget::System => "system".to_owned(),
    }
}

impl Hub {
    /// Numbers the event in its subscription's set and sends it (or keeps it in the backlog,
    /// at most `[xsi_events] backlog_max_events`). Its id names this node, which holds its
    /// acknowledgement; `origin` is its id in the cluster, if the shared backlog keeps it.
    pub(super) fn enqueue(
        &self,
        state: &mut State,
        subscription: &SubscriptionRecord,
        target: &str,
        data: EventData,
        origin: Option<std::sync::Arc<str>>,
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
        set.next_sequence = next_sequence(sequence);
        let pending = Pending {
            event_id: self.new_owned_id(),
            sequence,
            subscription_id: subscription.id.clone(),
            application_id: subscription.application_id.clone().unwrap_or_default(),
            target_id: target.to_owned(),
            data,
            queued_at: Instant::now(),
            written: false,
            origin,
        };
        // Behind what already waits (a backlog still draining), or sent now.
        if !set.restoring
            && set.backlog.is_empty()
            && set.channels.iter().any(Channel::takes_events)
        {
            send(set, pending, &[], Instant::now());
        } else {
            set.backlog.push_back(pending);
            crate::telemetry::xsi_events("backlogged", 1);
            self.cap_backlog(set);
            flush(set);
        }
    }

    /// Drops the oldest waiting events beyond `[xsi_events] backlog_max_events`.
    pub(super) fn cap_backlog(&self, set: &mut ChannelSet) {
        while set.backlog.len() > self.config.backlog_max_events.get() {
            if let Some(dropped) = set.backlog.pop_front() {
                self.settle(&dropped);
            }
            crate::telemetry::xsi_events("dropped", 1);
        }
    }
}

/// The sequence number after `sequence` (2147483647 → 1).
pub(super) fn next_sequence(sequence: u32) -> u32 {
    if sequence >= MAX_SEQUENCE {
        1
    } else {
        sequence + 1
    }
}

/// Picks a channel: lowest priority value among responsive channels not yet tried, then a
/// weighted draw (weight 0 only when nothing else is left).
pub(super) fn choose(set: &ChannelSet, tried: &[String]) -> Option<usize> {
    let candidates: Vec<usize> = (0..set.channels.len())
        .filter(|&i| {
            let c = &set.channels[i];
            c.takes_events() && !tried.contains(&c.id)
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
pub(super) fn send(set: &mut ChannelSet, mut pending: Pending, tried: &[String], now: Instant) {
    // Standing by, nothing goes out: the holder sends it (`hub/standby.rs`).
    if !set.delivers_here() {
        return;
    }
    let mut tried = tried.to_vec();
    loop {
        let Some(index) = choose(set, &tried) else {
            set.backlog.push_back(pending);
            crate::telemetry::xsi_events("backlogged", 1);
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
                if !pending.written {
                    pending.written = true;
                    crate::telemetry::xsi_event_delivered(
                        now.saturating_duration_since(pending.queued_at),
                    );
                }
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
pub(super) fn resend(set: &mut ChannelSet, unacked: Unacked, now: Instant) {
    let attempts = unacked.attempts + 1;
    let others_tried: Vec<String> = unacked.tried.clone();
    let has_other = choose(set, &others_tried).is_some();
    let tried = if has_other { others_tried } else { Vec::new() };
    let event_id = unacked.pending.event_id.clone();
    crate::telemetry::xsi_events("resent", 1);
    send(set, unacked.pending, &tried, now);
    if let Some(sent) = set.unacked.get_mut(&event_id) {
        sent.attempts = attempts;
    }
}

/// The unacknowledged events of a channel that ended go to the set's other channels.
pub(super) fn redeliver_from(set: &mut ChannelSet, channel_id: &str, now: Instant) {
    let stranded: Vec<String> = set
        .unacked
        .iter()
        .filter(|(_, u)| u.channel_id == channel_id)
        .map(|(id, _)| id.clone())
        .collect();
    for id in stranded {
        if let Some(unacked) = set.unacked.remove(&id) {
            let tried = unacked.tried.clone();
            crate::telemetry::xsi_events("resent", 1);
            send(set, unacked.pending, &tried, now);
        }
    }
}

/// Sends the ChannelTerminatedEvent; dropping the channel then ends its stream.
pub(super) fn terminate(channel: &Channel, reason: TerminationReason) {
    let _ = channel
        .queue
        .try_send(bytes(documents::channel_terminated(&channel.id, reason)));
    tracing::info!(channel = %channel.id, reason = reason.as_str(), "event channel ended");
}

/// Room a draining backlog leaves in a channel's queue (for heartbeats, resends), at
/// most; a quarter of a shorter queue.
const FLUSH_RESERVE: usize = 8;

/// What waits in the set's backlog goes out, in order, as far as its channels' queues
/// have room; the rest follows as they drain (on the next acknowledgement or tick), so a
/// backlog longer than a channel's queue does not end the channel as too slow.
pub(super) fn flush(set: &mut ChannelSet) {
    if set.restoring || !set.delivers_here() {
        return;
    }
    let now = Instant::now();
    while !set.backlog.is_empty() {
        let room = set.channels.iter().any(|c| {
            let reserve = (c.queue.max_capacity() / 4).min(FLUSH_RESERVE);
            c.takes_events() && c.queue.capacity() > reserve
        });
        if !room {
            break;
        }
        if let Some(pending) = set.backlog.pop_front() {
            send(set, pending, &[], now);
        }
    }
}
