//! What each user keeps: service settings, the personal directory, call logs and the
//! XMPP roster. Every row names its user; a missing user is `Missing`.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::records::{from_json, json};
use super::{constraint_error, PostgresStore};
use crate::store::{CallLogStore, ContactStore, RosterStore, SettingsStore, StoreError};
use crate::telephony::{
    CallLogKind, CallLogRecord, PersonalContact, RosterItem, RosterSubscription, CALL_LOG_LIMIT,
};

/// `Missing` for an unknown `user_id`, `Exists(what)` for a key clash.
fn user_row_error(
    e: tokio_postgres::Error,
    user_id: &str,
    what: impl FnOnce() -> String,
) -> StoreError {
    constraint_error(e, what, || format!("user \"{user_id}\""))
}

fn call_log_from_row(row: &Row) -> Result<CallLogRecord, StoreError> {
    let kind: String = row.try_get("kind")?;
    Ok(CallLogRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        kind: CallLogKind::parse(&kind)?,
        name: row.try_get("name")?,
        number: row.try_get("number")?,
        country_code: row.try_get("country_code")?,
        time: row.try_get("time")?,
    })
}

fn roster_row(row: &Row) -> Result<RosterItem, StoreError> {
    let subscription: String = row.try_get(3)?;
    Ok(RosterItem {
        jid: row.try_get(0)?,
        name: row.try_get(1)?,
        groups: from_json(row.try_get(2)?, "roster groups")?,
        subscription: RosterSubscription::parse(&subscription)?,
        ask_out: row.try_get(4)?,
        pending_in: row.try_get(5)?,
    })
}

#[async_trait]
impl SettingsStore for PostgresStore {
    fn settings_generation(&self, user_id: &str) -> u64 {
        self.settings_generation_of(user_id)
    }

    async fn service_settings(
        &self,
        user_id: &str,
        service: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT settings FROM service_settings WHERE user_id = $1 AND service = $2",
                &[&user_id, &service],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn put_service_settings(
        &self,
        user_id: &str,
        service: &str,
        settings: &str,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO service_settings (user_id, service, settings) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id, service) DO UPDATE SET settings = excluded.settings",
                &[&user_id, &service, &settings],
            )
            .await
            .map_err(|e| user_row_error(e, user_id, || service.to_owned()))?;
        Ok(())
    }
}

#[async_trait]
impl ContactStore for PostgresStore {
    async fn personal_contacts(&self, user_id: &str) -> Result<Vec<PersonalContact>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT name, number FROM personal_contacts WHERE user_id = $1 ORDER BY name",
                &[&user_id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PersonalContact {
                    name: r.try_get(0)?,
                    number: r.try_get(1)?,
                })
            })
            .collect()
    }

    async fn add_personal_contacts(
        &self,
        user_id: &str,
        contacts: &[PersonalContact],
        max_entries: usize,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One writer per user at a time, so two nodes cannot both pass the limit.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('contacts:' || lower($1)))",
            &[&user_id],
        )
        .await?;
        let existing: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM personal_contacts WHERE user_id = $1",
                &[&user_id],
            )
            .await?
            .try_get(0)?;
        if existing as usize + contacts.len() > max_entries {
            return Err(StoreError::Full { limit: max_entries });
        }
        for contact in contacts {
            tx.execute(
                "INSERT INTO personal_contacts (user_id, name, number) VALUES ($1, $2, $3)",
                &[&user_id, &contact.name, &contact.number],
            )
            .await
            .map_err(|e| user_row_error(e, user_id, || format!("entry \"{}\"", contact.name)))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn remove_personal_contact(&self, user_id: &str, name: &str) -> Result<bool, StoreError> {
        let removed = self
            .client()
            .await?
            .execute(
                "DELETE FROM personal_contacts WHERE user_id = $1 AND name = $2",
                &[&user_id, &name],
            )
            .await?;
        Ok(removed > 0)
    }
}

#[async_trait]
impl CallLogStore for PostgresStore {
    async fn add_call_log(&self, record: &CallLogRecord) -> Result<(), StoreError> {
        let r = record;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO call_logs (user_id, kind, name, number, country_code, time)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &r.user_id,
                &r.kind.as_str(),
                &r.name,
                &r.number,
                &r.country_code,
                &r.time,
            ],
        )
        .await
        .map_err(|e| user_row_error(e, &r.user_id, || "call log".to_owned()))?;
        tx.execute(
            "DELETE FROM call_logs WHERE user_id = $1 AND kind = $2 AND id NOT IN
               (SELECT id FROM call_logs WHERE user_id = $1 AND kind = $2
                ORDER BY id DESC LIMIT $3)",
            &[&r.user_id, &r.kind.as_str(), &(CALL_LOG_LIMIT as i64)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn call_logs(
        &self,
        user_id: &str,
        kind: Option<CallLogKind>,
    ) -> Result<Vec<CallLogRecord>, StoreError> {
        let kind = kind.map(CallLogKind::as_str);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, user_id, kind, name, number, country_code, time FROM call_logs
                 WHERE user_id = $1 AND ($2::TEXT IS NULL OR kind = $2) ORDER BY id DESC",
                &[&user_id, &kind],
            )
            .await?;
        rows.iter().map(call_log_from_row).collect()
    }
}

#[async_trait]
impl RosterStore for PostgresStore {
    async fn roster(&self, user_id: &str) -> Result<Vec<RosterItem>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT jid, name, groups, subscription, ask_out, pending_in FROM roster_items
                 WHERE user_id = $1 ORDER BY jid",
                &[&user_id],
            )
            .await?;
        rows.iter().map(roster_row).collect()
    }

    async fn roster_item(
        &self,
        user_id: &str,
        jid: &str,
    ) -> Result<Option<RosterItem>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT jid, name, groups, subscription, ask_out, pending_in FROM roster_items
                 WHERE user_id = $1 AND jid = $2",
                &[&user_id, &jid],
            )
            .await?;
        row.as_ref().map(roster_row).transpose()
    }

    async fn put_roster_item(
        &self,
        user_id: &str,
        item: &RosterItem,
        max_items: usize,
    ) -> Result<(), StoreError> {
        let groups = json(&item.groups)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('roster:' || lower($1)))",
            &[&user_id],
        )
        .await?;
        let exists = tx
            .query_opt(
                "SELECT 1 FROM roster_items WHERE user_id = $1 AND jid = $2",
                &[&user_id, &item.jid],
            )
            .await?
            .is_some();
        if !exists {
            let count: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM roster_items WHERE user_id = $1",
                    &[&user_id],
                )
                .await?
                .try_get(0)?;
            if count as usize >= max_items {
                return Err(StoreError::Full { limit: max_items });
            }
        }
        tx.execute(
            "INSERT INTO roster_items
               (user_id, jid, name, groups, subscription, ask_out, pending_in)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (user_id, jid) DO UPDATE SET
               jid = excluded.jid, name = excluded.name, groups = excluded.groups,
               subscription = excluded.subscription, ask_out = excluded.ask_out,
               pending_in = excluded.pending_in",
            &[
                &user_id,
                &item.jid,
                &item.name,
                &groups,
                &item.subscription.as_str(),
                &item.ask_out,
                &item.pending_in,
            ],
        )
        .await
        .map_err(|e| user_row_error(e, user_id, || format!("roster item {}", item.jid)))?;
        tx.commit().await?;
        Ok(())
    }

    async fn lock_roster_pair(
        &self,
        user_id: &str,
        contact: &str,
    ) -> Result<Option<Box<dyn crate::store::HeldLock>>, StoreError> {
        let (a, b) = (user_id.to_lowercase(), contact.to_lowercase());
        let key = if a <= b {
            format!("{a} {b}")
        } else {
            format!("{b} {a}")
        };
        let connection = self.client().await?;
        connection
            .execute(
                "SELECT pg_advisory_lock(hashtext('roster-pair:' || $1))",
                &[&key],
            )
            .await?;
        Ok(Some(Box::new(PairLock {
            connection: Some(connection),
            key,
        })))
    }

    async fn remove_roster_item(&self, user_id: &str, jid: &str) -> Result<bool, StoreError> {
        let removed = self
            .client()
            .await?
            .execute(
                "DELETE FROM roster_items WHERE user_id = $1 AND jid = $2",
                &[&user_id, &jid],
            )
            .await?;
        Ok(removed > 0)
    }
}

/// A session advisory lock on a pair of rosters, on its own pooled connection.
struct PairLock {
    connection: Option<super::Connection>,
    key: String,
}

#[async_trait]
impl crate::store::HeldLock for PairLock {
    async fn release(mut self: Box<Self>) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        let unlocked = connection
            .execute(
                "SELECT pg_advisory_unlock(hashtext('roster-pair:' || $1))",
                &[&self.key],
            )
            .await;
        if let Err(e) = unlocked {
            tracing::warn!(error = %e, "cannot let a roster lock go; its connection closes");
            connection.discard();
        }
    }
}

impl Drop for PairLock {
    fn drop(&mut self) {
        // Not released (the task was cancelled): the session lock ends with its connection.
        if let Some(connection) = self.connection.take() {
            connection.discard();
        }
    }
}
