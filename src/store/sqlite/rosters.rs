//! XMPP rosters.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::rows::{roster_row, user_row_error};
use super::SqliteStore;
use crate::store::{RosterStore, StoreError};
use crate::telephony::RosterItem;

#[async_trait]
impl RosterStore for SqliteStore {
    async fn roster(&self, user_id: &str) -> Result<Vec<RosterItem>, StoreError> {
        let user_id = user_id.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT jid, name, groups, subscription, ask_out, pending_in FROM roster_items
                 WHERE user_id = ?1 ORDER BY jid",
            )?;
            let mut rows = stmt.query([user_id])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(roster_row(row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn roster_item(
        &self,
        user_id: &str,
        jid: &str,
    ) -> Result<Option<RosterItem>, StoreError> {
        let (user_id, jid) = (user_id.to_owned(), jid.to_owned());
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT jid, name, groups, subscription, ask_out, pending_in FROM roster_items
                 WHERE user_id = ?1 AND jid = ?2",
            )?;
            let mut rows = stmt.query([user_id, jid])?;
            rows.next()?.map(roster_row).transpose()
        })
        .await
    }

    async fn put_roster_item(
        &self,
        user_id: &str,
        item: &RosterItem,
        max_items: usize,
    ) -> Result<(), StoreError> {
        let (user_id, item) = (user_id.to_owned(), item.clone());
        let groups =
            serde_json::to_string(&item.groups).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with(move |c| {
            let tx = c.transaction()?;
            let exists = tx
                .query_row(
                    "SELECT 1 FROM roster_items WHERE user_id = ?1 AND jid = ?2",
                    [&user_id, &item.jid],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !exists {
                let count: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM roster_items WHERE user_id = ?1",
                    [&user_id],
                    |r| r.get(0),
                )?;
                if count as usize >= max_items {
                    return Err(StoreError::Full { limit: max_items });
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO roster_items
                   (user_id, jid, name, groups, subscription, ask_out, pending_in)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    user_id,
                    item.jid,
                    item.name,
                    groups,
                    item.subscription.as_str(),
                    item.ask_out,
                    item.pending_in
                ],
            )
            .map_err(|e| user_row_error(e, &user_id, || format!("roster item {}", item.jid)))?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn remove_roster_item(&self, user_id: &str, jid: &str) -> Result<bool, StoreError> {
        let (user_id, jid) = (user_id.to_owned(), jid.to_owned());
        self.with(move |c| {
            Ok(c.execute(
                "DELETE FROM roster_items WHERE user_id = ?1 AND jid = ?2",
                [user_id, jid],
            )? > 0)
        })
        .await
    }
}
