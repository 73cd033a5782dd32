//! Subscriptions on the hub: the id length and per-owner quotas, creation (counted and
//! added under one lock, persisted, its initial state queued), listing, renewal and removal;
//! in a cluster, each change told to the other nodes and theirs applied here.

use super::delivery::target_id;
use super::{new_id, quota, Hub, HubError, Notice, Owner, SubscribeRequest, NEVER_EXPIRES};
use crate::telephony::SubscriptionRecord;
use crate::xsi::events::documents::EventData;

impl Hub {
    /// `channelSetId` and `applicationId` within `max_event_id_bytes`.
    pub(super) fn check_ids(
        &self,
        set_id: &str,
        application_id: Option<&str>,
    ) -> Result<(), HubError> {
        let limit = self.telephony.quotas().max_event_id_bytes.get();
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
            let limit = self.telephony.quotas().max_subscriptions_per_user.get();
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
        if let Err(e) = self.telephony.put_subscription(&record).await {
            self.state().remove_subscription(&record.id);
            return Err(e.into());
        }
        self.tell(Notice::SubscriptionPut {
            record: record.clone(),
            initial: if self.outbox.is_some() {
                initial.clone()
            } else {
                Vec::new()
            },
        });
        self.enqueue_held(&mut self.state(), &record, initial);
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
        self.telephony.put_subscription(&record).await?;
        self.tell(Notice::SubscriptionPut {
            record,
            initial: Vec::new(),
        });
        Ok(granted)
    }

    /// Ends a subscription; with `announce`, a SubscriptionTerminatedEvent goes to its set.
    pub async fn remove_subscription(&self, id: &str, announce: bool) -> Result<(), HubError> {
        let record = self
            .state()
            .remove_subscription(id)
            .ok_or_else(|| HubError::NotFound(format!("subscription {id}")))?;
        self.telephony.remove_subscription(id).await?;
        self.tell(Notice::SubscriptionRemoved {
            record: record.clone(),
            announce,
        });
        if announce {
            let target = target_id(&record.target);
            let mut state = self.state();
            if !self.holds(&state, &record.channel_set_id) {
                return Ok(());
            }
            self.enqueue(
                &mut state,
                &record,
                &target,
                EventData::SubscriptionTerminated,
                None,
            );
        }
        tracing::info!(subscription = %id, "subscription ended");
        Ok(())
    }

    /// Queues a new subscription's initial state, when this node holds its set.
    pub fn enqueue_initial(&self, record: &SubscriptionRecord, initial: Vec<(String, EventData)>) {
        self.enqueue_held(&mut self.state(), record, initial);
    }

    fn enqueue_held(
        &self,
        state: &mut super::State,
        record: &SubscriptionRecord,
        initial: Vec<(String, EventData)>,
    ) {
        if self.holds(state, &record.channel_set_id) {
            for (user, data) in initial {
                self.enqueue(state, record, &user, data, None);
            }
        }
    }

    /// Applies another node's [`Notice`] to this node's state (the store has it already):
    /// its subscriptions are known here, and the sets held here get their events.
    pub fn apply_notice(&self, notice: Notice) {
        let mut state = self.state();
        match notice {
            Notice::SubscriptionPut { record, initial } => {
                state.remove_subscription(&record.id);
                state.add_subscription(record.clone());
                self.enqueue_held(&mut state, &record, initial);
            }
            Notice::SubscriptionRemoved { record, announce } => {
                let known = state.remove_subscription(&record.id).is_some();
                if known && announce && self.holds(&state, &record.channel_set_id) {
                    let target = target_id(&record.target);
                    self.enqueue(
                        &mut state,
                        &record,
                        &target,
                        EventData::SubscriptionTerminated,
                        None,
                    );
                }
            }
            Notice::SetClaimed { set_id, claim } => self.apply_claim(&mut state, &set_id, claim),
        }
    }
}
