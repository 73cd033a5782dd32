//! What the admin API sees of the hub: every open event channel with its owner, set,
//! age, last heartbeat and unacknowledged events; every subscription; and the
//! administrator's end of a channel (`ChannelTerminated` with `Expired`, so that the
//! client opens a new one, as after a restart).

use std::time::Instant;

use serde::Serialize;

use super::delivery::{redeliver_from, terminate};
use super::Hub;
use crate::telephony::SubscriptionTarget;
use crate::xsi::events::documents::TerminationReason;

/// One open event channel.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    /// The channel id.
    pub channel: String,
    /// Its channel set.
    pub set: String,
    /// The user or CTI application that holds it.
    pub owner: String,
    /// The owner is a CTI application.
    pub cti: bool,
    /// When it opened (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub since: time::OffsetDateTime,
    /// Seconds since its last heartbeat (or its opening).
    pub heartbeat_age_secs: u64,
    /// Events sent on it and not acknowledged yet.
    pub pending_acks: usize,
    /// Events its set keeps while no channel can take them.
    pub set_backlog: usize,
}

/// One subscription.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionView {
    /// The subscription id.
    pub id: String,
    /// The user or CTI application that owns it.
    pub owner: String,
    /// What it watches: `user <id>`, `group <enterprise>/<group>`, `enterprise <id>`,
    /// `system`.
    pub target: String,
    /// Its event packages.
    pub events: Vec<String>,
    /// The channel set its events go to.
    pub set: String,
    /// Expiry, Unix seconds (absent: never).
    pub expires_at: Option<i64>,
}

impl Hub {
    /// Every open channel, by owner then opening time.
    pub fn channel_views(&self) -> Vec<ChannelView> {
        let now = Instant::now();
        let state = self.state();
        let mut views: Vec<ChannelView> = state
            .sets
            .iter()
            .flat_map(|(set_id, set)| {
                set.channels
                    .iter()
                    .filter(|c| !c.queue.is_closed())
                    .map(move |c| ChannelView {
                        channel: c.id.clone(),
                        set: set_id.clone(),
                        owner: set.owner.id.clone(),
                        cti: set.owner.is_client,
                        since: c.opened_at,
                        heartbeat_age_secs: now.duration_since(c.last_heartbeat).as_secs(),
                        pending_acks: set
                            .unacked
                            .values()
                            .filter(|u| u.channel_id == c.id)
                            .count(),
                        set_backlog: set.backlog.len(),
                    })
            })
            .collect();
        views.sort_by(|a, b| (&a.owner, a.since).cmp(&(&b.owner, b.since)));
        views
    }

    /// Every subscription, by owner.
    pub fn subscription_views(&self) -> Vec<SubscriptionView> {
        let mut views: Vec<SubscriptionView> = self
            .state()
            .subscriptions
            .values()
            .map(|record| SubscriptionView {
                id: record.id.clone(),
                owner: record.owner.clone(),
                target: match &record.target {
                    SubscriptionTarget::User { user_id } => format!("user {user_id}"),
                    SubscriptionTarget::Group {
                        enterprise_id,
                        group_id,
                    } => format!("group {enterprise_id}/{group_id}"),
                    SubscriptionTarget::Enterprise { enterprise_id } => {
                        format!("enterprise {enterprise_id}")
                    }
                    SubscriptionTarget::System => "system".to_owned(),
                },
                events: record.events.clone(),
                set: record.channel_set_id.clone(),
                expires_at: record.expires_at,
            })
            .collect();
        views.sort_by(|a, b| (&a.owner, &a.id).cmp(&(&b.owner, &b.id)));
        views
    }

    /// Ends channel `id` for whoever holds it; its unacknowledged events go to the set's
    /// other channels or its backlog. False when no such channel is open.
    pub fn end_channel(&self, id: &str) -> bool {
        let mut state = self.state();
        for set in state.sets.values_mut() {
            if let Some(index) = set.channels.iter().position(|c| c.id == id) {
                let channel = set.channels.remove(index);
                terminate(&channel, TerminationReason::Expired);
                redeliver_from(set, &channel.id, Instant::now());
                return true;
            }
        }
        false
    }
}
