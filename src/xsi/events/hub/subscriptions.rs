//! Subscriptions on the hub: the id length and per-owner quotas, creation (counted and
//! added under one lock, persisted, its initial state queued), listing, renewal and removal.

use super::delivery::target_id;
use super::{new_id, quota, Hub, HubError, Owner, SubscribeRequest, NEVER_EXPIRES};
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
        let mut state = self.state();
        for (user, data) in initial {
            self.enqueue(&mut state, &record, &user, data);
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
        self.telephony.put_subscription(&record).await?;
        Ok(granted)
    }

    /// Ends a subscription; with `announce`, a SubscriptionTerminatedEvent goes to its set.
    pub async fn remove_subscription(&self, id: &str, announce: bool) -> Result<(), HubError> {
        let record = self
            .state()
            .remove_subscription(id)
            .ok_or_else(|| HubError::NotFound(format!("subscription {id}")))?;
        self.telephony.remove_subscription(id).await?;
        if announce {
            let target = target_id(&record.target);
            let mut state = self.state();
            self.enqueue(
                &mut state,
                &record,
                &target,
                EventData::SubscriptionTerminated,
            );
        }
        tracing::info!(subscription = %id, "subscription ended");
        Ok(())
    }
}
