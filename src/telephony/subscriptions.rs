//! The domain side of XSI-Events subscriptions: which subscriptions exist, kept across
//! restarts. Channels, delivery and acknowledgements are `xsi::events`'s.

use super::{SubscriptionRecord, Telephony, TelephonyError};

impl Telephony {
    /// Every subscription.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, TelephonyError> {
        Ok(self.store.subscriptions().await?)
    }

    /// Creates or replaces a subscription.
    pub async fn put_subscription(
        &self,
        subscription: &SubscriptionRecord,
    ) -> Result<(), TelephonyError> {
        Ok(self.store.put_subscription(subscription).await?)
    }

    /// Removes a subscription; false if there was none.
    pub async fn remove_subscription(&self, id: &str) -> Result<bool, TelephonyError> {
        Ok(self.store.remove_subscription(id).await?)
    }
}
