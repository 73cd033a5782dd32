//! The sets' shared backlog ([`BacklogStore`]) in `set_events`: one row per (subscription,
//! event), written in batches as arrays (`unnest`), so that one statement carries every
//! subscription an event covers, or every acknowledgement that came in meanwhile.

use std::time::Duration;

use async_trait::async_trait;

use super::PostgresStore;
use crate::store::backlog::{BacklogStore, SetEvent, SetEventKey, Waiting, SEQUENCE_KEPT};
use crate::store::StoreError;

#[async_trait]
impl BacklogStore for PostgresStore {
    async fn append(&self, events: &[SetEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&SetEvent) -> &str| events.iter().map(f).collect::<Vec<&str>>();
        let (sets, subscriptions, ids, bodies) = (
            column(|e| &e.set_id),
            column(|e| &e.key.subscription_id),
            column(|e| &e.key.event_id),
            column(|e| &e.event),
        );
        self.client()
            .await?
            .execute(
                "INSERT INTO set_events (set_id, subscription_id, event_id, event)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                 ON CONFLICT (subscription_id, event_id) DO NOTHING",
                &[&sets, &subscriptions, &ids, &bodies],
            )
            .await?;
        Ok(())
    }

    async fn settle(&self, keys: &[SetEventKey]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let subscriptions: Vec<&str> = keys.iter().map(|k| k.subscription_id.as_str()).collect();
        let ids: Vec<&str> = keys.iter().map(|k| k.event_id.as_str()).collect();
        self.client()
            .await?
            .execute(
                "DELETE FROM set_events e
                 USING unnest($1::text[], $2::text[]) AS k (subscription_id, event_id)
                 WHERE e.subscription_id = k.subscription_id AND e.event_id = k.event_id",
                &[&subscriptions, &ids],
            )
            .await?;
        Ok(())
    }

    async fn waiting(&self, set_id: &str, limit: usize) -> Result<Vec<Waiting>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT subscription_id, event_id, event,
                        EXTRACT(EPOCH FROM now() - queued_at)::float8
                 FROM (SELECT * FROM set_events WHERE set_id = $1
                       ORDER BY seq DESC LIMIT $2) newest
                 ORDER BY seq",
                &[&set_id, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Waiting {
                event: SetEvent {
                    key: SetEventKey {
                        subscription_id: row.get(0),
                        event_id: row.get(1),
                    },
                    set_id: set_id.to_owned(),
                    event: row.get(2),
                },
                age: Duration::try_from_secs_f64(row.get::<_, f64>(3).max(0.0)).unwrap_or_default(),
            })
            .collect())
    }

    async fn trim(&self, age: Duration) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM set_sequences WHERE updated_at < now() - make_interval(secs => $1)",
                &[&SEQUENCE_KEPT.as_secs_f64()],
            )
            .await?;
        Ok(client
            .execute(
                "DELETE FROM set_events WHERE queued_at < now() - make_interval(secs => $1)",
                &[&age.as_secs_f64()],
            )
            .await?)
    }

    async fn save_sequences(&self, sets: &[(String, u32)]) -> Result<(), StoreError> {
        if sets.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = sets.iter().map(|(id, _)| id.as_str()).collect();
        let numbers: Vec<i64> = sets.iter().map(|(_, n)| i64::from(*n)).collect();
        self.client()
            .await?
            .execute(
                "INSERT INTO set_sequences (set_id, next_sequence)
                 SELECT * FROM unnest($1::text[], $2::bigint[])
                 ON CONFLICT (set_id) DO UPDATE SET
                   next_sequence = excluded.next_sequence, updated_at = now()",
                &[&ids, &numbers],
            )
            .await?;
        Ok(())
    }

    async fn sequence(&self, set_id: &str) -> Result<Option<u32>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT next_sequence FROM set_sequences WHERE set_id = $1",
                &[&set_id],
            )
            .await?;
        Ok(row.and_then(|row| u32::try_from(row.get::<_, i64>(0)).ok()))
    }
}
