//! Users' XMPP rosters, as the model keeps them: one item per contact with its
//! subscription state (RFC 6121), at most `[quotas] max_roster_items` per user. The
//! protocol (roster get/set/push, presence subscriptions) is `xmpp::roster`'s.

use super::{RosterItem, Telephony, TelephonyError};
use crate::store::{HeldLock, StoreError};

/// A pair of rosters held across the cluster (nothing to hold on a node alone).
#[must_use = "a roster lock is held until it is released"]
pub struct RosterLock(Option<Box<dyn HeldLock>>);

impl RosterLock {
    /// Lets the pair go.
    pub async fn release(self) {
        if let Some(lock) = self.0 {
            lock.release().await;
        }
    }
}

impl Telephony {
    /// A user's roster, ordered by contact JID.
    pub async fn roster(&self, user_id: &str) -> Result<Vec<RosterItem>, TelephonyError> {
        Ok(self.store.roster(user_id).await?)
    }

    /// The user's item for `jid`, if there is one.
    pub async fn roster_item(
        &self,
        user_id: &str,
        jid: &str,
    ) -> Result<Option<RosterItem>, TelephonyError> {
        Ok(self.store.roster_item(user_id, jid).await?)
    }

    /// Creates or replaces a roster item; [`TelephonyError::Quota`] when the item is new and
    /// the roster is at `max_roster_items`.
    pub async fn put_roster_item(
        &self,
        user_id: &str,
        item: &RosterItem,
    ) -> Result<(), TelephonyError> {
        let limit = self.quotas().max_roster_items.get();
        match self.store.put_roster_item(user_id, item, limit).await {
            Err(StoreError::Full { limit }) => {
                crate::telemetry::quota_refusal("max_roster_items");
                Err(TelephonyError::Quota {
                    what: "roster items",
                    limit,
                })
            }
            stored => Ok(stored?),
        }
    }

    /// Holds the rosters of `user_id` and `contact` against changes from other nodes (a
    /// cluster's store) until [`RosterLock::release`]: a subscription change reads and
    /// writes both, and two nodes changing one pair at once would lose one's change.
    pub async fn lock_roster_pair(
        &self,
        user_id: &str,
        contact: &str,
    ) -> Result<RosterLock, TelephonyError> {
        Ok(RosterLock(
            self.store.lock_roster_pair(user_id, contact).await?,
        ))
    }

    /// Removes a roster item; false if there was none.
    pub async fn remove_roster_item(
        &self,
        user_id: &str,
        jid: &str,
    ) -> Result<bool, TelephonyError> {
        Ok(self.store.remove_roster_item(user_id, jid).await?)
    }
}
