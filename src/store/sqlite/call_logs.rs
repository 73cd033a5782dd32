//! Call logs, the newest `CALL_LOG_LIMIT` per user and kind.

use async_trait::async_trait;
use rusqlite::params;

use super::rows::{call_log_from_row, user_row_error};
use super::SqliteStore;
use crate::store::{CallLogStore, StoreError};
use crate::telephony::{CallLogKind, CallLogRecord, CALL_LOG_LIMIT};

#[async_trait]
impl CallLogStore for SqliteStore {
    async fn add_call_log(&self, record: &CallLogRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.with(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO call_logs (user_id, kind, name, number, country_code, time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    r.user_id,
                    r.kind.as_str(),
                    r.name,
                    r.number,
                    r.country_code,
                    r.time
                ],
            )
            .map_err(|e| user_row_error(e, &r.user_id, || "call log".to_owned()))?;
            tx.execute(
                "DELETE FROM call_logs WHERE user_id = ?1 AND kind = ?2 AND id NOT IN
                   (SELECT id FROM call_logs WHERE user_id = ?1 AND kind = ?2
                    ORDER BY id DESC LIMIT ?3)",
                params![r.user_id, r.kind.as_str(), CALL_LOG_LIMIT as i64],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn call_logs(
        &self,
        user_id: &str,
        kind: Option<CallLogKind>,
    ) -> Result<Vec<CallLogRecord>, StoreError> {
        let user_id = user_id.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, user_id, kind, name, number, country_code, time FROM call_logs
                 WHERE user_id = ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY id DESC",
            )?;
            let mut rows = stmt.query(params![user_id, kind.map(CallLogKind::as_str)])?;
            let mut records = Vec::new();
            while let Some(row) = rows.next()? {
                records.push(call_log_from_row(row)?);
            }
            Ok(records)
        })
        .await
    }
}
