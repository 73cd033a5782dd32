//! Channel lifecycle on the hub: opening a channel (quotas, one set per owner and
//! application, the backlog sent on open), heartbeats, updates, deletion, the channel-set
//! view, and the client's EventResponse steering delivery.

use std::time::Instant;

use hyper::body::Bytes;
use tokio::sync::mpsc;

use super::delivery::{flush, redeliver_from, send, terminate};
use super::{
    bytes, quota, Channel, ChannelRequest, ChannelSet, Hub, HubError, Notice, Opened, Owner, State,
    NEVER_EXPIRES,
};

use crate::xsi::events::documents::{self, TerminationReason};

impl Hub {
    /// Opens a channel. The first document on the stream is the `Channel` answer; events
    /// the set kept while it had no channel follow.
    pub fn open_channel(&self, owner: &Owner, request: ChannelRequest) -> Result<Opened, HubError> {
        self.check_ids(&request.channel_set_id, request.application_id.as_deref())?;
        let (expires, expires_at) = self.grant(request.expires);
        let channel_id = self.new_owned_id();
        let (queue, stream) = mpsc::channel(self.config.channel_queue_len.get().max(2));
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
        // New here: this node delivers the set's events now (see `hub/standby.rs`).
        let claim = (!state.sets.contains_key(&request.channel_set_id)).then(|| self.claim_now());
        if let Some(claim) = &claim {
            self.tell(Notice::SetClaimed {
                set_id: request.channel_set_id.clone(),
                claim: claim.clone(),
            });
        }
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
        if set.channels.len() >= self.config.max_channels_per_set.get() {
            return Err(HubError::Refused(format!(
                "channel set {} has its maximum of {} channels",
                request.channel_set_id, self.config.max_channels_per_set
            )));
        }
        if request.application_id.is_some() {
            set.application_id = request.application_id.clone();
        }
        // New here in a cluster: what the shared backlog keeps for the set goes first.
        if let Some(claim) = claim {
            set.claim = claim;
            set.restoring = self.journal.is_some();
        }
        set.channels.push(Channel {
            id: channel_id.clone(),
            priority: request.priority,
            weight: request.weight,
            expires_at,
            last_heartbeat: Instant::now(),
            opened_at: time::OffsetDateTime::now_utc(),
            queue,
            unresponsive: false,
        });
        tracing::info!(owner = %owner.id, channel = %channel_id, set = %request.channel_set_id, "event channel opened");
        let restoring = set.restoring;
        if !restoring {
            flush(set);
        }
        Ok(Opened {
            channel_id,
            expires,
            stream,
            restoring,
        })
    }

    pub(super) fn with_channel<T>(
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
            crate::telemetry::xsi_event_acked(now.duration_since(unacked.sent_at));
            if matches!(status, 200 | 400 | 481) {
                self.settle(&unacked.pending);
                self.keep_sequence(&set_id, set.next_sequence);
            }
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
            flush(set);
        }
        if let Some(id) = drop_subscription {
            self.remove_subscription(&id, false).await?;
        }
        Ok(())
    }

    /// `owner` may open one more channel in `set_id` (`max_channels_per_user`,
    /// `max_channel_sets_per_user`).
    pub(super) fn check_channel_quotas(
        &self,
        state: &State,
        owner: &Owner,
        set_id: &str,
    ) -> Result<(), HubError> {
        let (sets, channels) = state.open_channels_of(owner);
        let in_open_set = state.sets.get(set_id).is_some_and(|set| {
            set.owner == *owner && set.channels.iter().any(|c| !c.queue.is_closed())
        });
        let max_channels = self.telephony.quotas().max_channels_per_user.get();
        if channels >= max_channels {
            return Err(quota(
                "max_channels_per_user",
                "open event channels",
                max_channels,
            ));
        }
        let max_sets = self.telephony.quotas().max_channel_sets_per_user.get();
        if !in_open_set && sets >= max_sets {
            return Err(quota(
                "max_channel_sets_per_user",
                "channel sets with open channels",
                max_sets,
            ));
        }
        Ok(())
    }
}
