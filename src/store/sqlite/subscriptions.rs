//! XSI-Events subscriptions.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::store::{StoreError, SubscriptionStore};
use crate::telephony::SubscriptionRecord;

#[async_trait]
impl SubscriptionStore for SqliteStore {
    async fn put_subscription(&self, subscription: &SubscriptionRecord) -> Result<(), StoreError> {
        let s = subscription.clone();
        let target =
            serde_json::to_string(&s.target).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let events =
            serde_json::to_string(&s.events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO subscriptions
                   (id, owner, owner_is_client, target, events, channel_set_id, application_id,
                    expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    s.id,
                    s.owner,
                    s.owner_is_client,
                    target,
                    events,
                    s.channel_set_id,
                    s.application_id,
                    s.expires_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, owner, owner_is_client, target, events, channel_set_id,
                        application_id, expires_at FROM subscriptions ORDER BY id",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let target: String = row.get(3)?;
                let events: String = row.get(4)?;
                out.push(SubscriptionRecord {
                    id: row.get(0)?,
                    owner: row.get(1)?,
                    owner_is_client: row.get(2)?,
                    target: serde_json::from_str(&target)
                        .map_err(|e| StoreError::Corrupt(format!("subscription target: {e}")))?,
                    events: serde_json::from_str(&events)
                        .map_err(|e| StoreError::Corrupt(format!("subscription events: {e}")))?,
                    channel_set_id: row.get(5)?,
                    application_id: row.get(6)?,
                    expires_at: row.get(7)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn remove_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.with(move |c| Ok(c.execute("DELETE FROM subscriptions WHERE id = ?1", [id])? > 0))
            .await
    }
}
