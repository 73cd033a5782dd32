//! The records that belong to no user: components and XSI-Events subscriptions.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{constraint_error, PostgresStore};
use crate::store::{ComponentStore, StoreError, SubscriptionStore};
use crate::telephony::{ComponentRecord, SubscriptionRecord};

fn component_from_row(row: &Row) -> Result<ComponentRecord, StoreError> {
    let policy: String = row.try_get("on_conflict")?;
    let max_connections: i64 = row.try_get("max_connections")?;
    Ok(ComponentRecord {
        name: row.try_get("name")?,
        secret: row.try_get("secret")?,
        max_connections: u32::try_from(max_connections)
            .map_err(|_| StoreError::Corrupt(format!("max_connections {max_connections}")))?,
        on_conflict: policy.parse()?,
        hold_secs: row.try_get::<_, i64>("hold_secs")?.max(0) as u64,
    })
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

#[async_trait]
impl ComponentStore for PostgresStore {
    async fn add_component(&self, component: &ComponentRecord) -> Result<(), StoreError> {
        let r = component;
        self.client()
            .await?
            .execute(
                "INSERT INTO components (name, secret, max_connections, on_conflict, hold_secs)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &r.name,
                    &r.secret,
                    &i64::from(r.max_connections),
                    &r.on_conflict.as_str(),
                    &(r.hold_secs.min(i64::MAX as u64) as i64),
                ],
            )
            .await
            .map_err(|e| {
                constraint_error(
                    e,
                    || format!("component \"{}\"", r.name),
                    || format!("component \"{}\"", r.name),
                )
            })?;
        Ok(())
    }

    async fn components(&self) -> Result<Vec<ComponentRecord>, StoreError> {
        self.client()
            .await?
            .query(
                "SELECT name, secret, max_connections, on_conflict, hold_secs FROM components
                 ORDER BY name",
                &[],
            )
            .await?
            .iter()
            .map(component_from_row)
            .collect()
    }

    async fn remove_component(&self, name: &str) -> Result<bool, StoreError> {
        let removed = self
            .client()
            .await?
            .execute("DELETE FROM components WHERE name = $1", &[&name])
            .await?;
        Ok(removed > 0)
    }
}

#[async_trait]
impl SubscriptionStore for PostgresStore {
    async fn put_subscription(&self, subscription: &SubscriptionRecord) -> Result<(), StoreError> {
        let s = subscription;
        self.client()
            .await?
            .execute(
                "INSERT INTO subscriptions
                   (id, owner, owner_is_client, target, events, channel_set_id, application_id,
                    expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO UPDATE SET
                   owner = excluded.owner, owner_is_client = excluded.owner_is_client,
                   target = excluded.target, events = excluded.events,
                   channel_set_id = excluded.channel_set_id,
                   application_id = excluded.application_id, expires_at = excluded.expires_at",
                &[
                    &s.id,
                    &s.owner,
                    &s.owner_is_client,
                    &json(&s.target)?,
                    &json(&s.events)?,
                    &s.channel_set_id,
                    &s.application_id,
                    &s.expires_at,
                ],
            )
            .await?;
        Ok(())
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, owner, owner_is_client, target, events, channel_set_id,
                        application_id, expires_at FROM subscriptions ORDER BY id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SubscriptionRecord {
                    id: row.try_get(0)?,
                    owner: row.try_get(1)?,
                    owner_is_client: row.try_get(2)?,
                    target: from_json(row.try_get(3)?, "subscription target")?,
                    events: from_json(row.try_get(4)?, "subscription events")?,
                    channel_set_id: row.try_get(5)?,
                    application_id: row.try_get(6)?,
                    expires_at: row.try_get(7)?,
                })
            })
            .collect()
    }

    async fn remove_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let removed = self
            .client()
            .await?
            .execute("DELETE FROM subscriptions WHERE id = $1", &[&id])
            .await?;
        Ok(removed > 0)
    }
}
