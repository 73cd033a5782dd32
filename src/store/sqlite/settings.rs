//! Service settings, one JSON document per user and service.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::rows::user_row_error;
use super::SqliteStore;
use crate::store::{SettingsStore, StoreError};

#[async_trait]
impl SettingsStore for SqliteStore {
    fn settings_generation(&self, _user_id: &str) -> u64 {
        // Another process's write of any kind moves the users generation.
        crate::store::DirectoryStore::users_generation(self)
    }

    async fn service_settings(
        &self,
        user_id: &str,
        service: &str,
    ) -> Result<Option<String>, StoreError> {
        let (user_id, service) = (user_id.to_owned(), service.to_owned());
        self.with(move |c| {
            Ok(c.prepare_cached(
                "SELECT settings FROM service_settings WHERE user_id = ?1 AND service = ?2",
            )?
            .query_row(params![user_id, service], |r| r.get(0))
            .optional()?)
        })
        .await
    }

    async fn put_service_settings(
        &self,
        user_id: &str,
        service: &str,
        settings: &str,
    ) -> Result<(), StoreError> {
        let (user_id, service, settings) =
            (user_id.to_owned(), service.to_owned(), settings.to_owned());
        self.with(move |c| {
            c.execute(
                "INSERT INTO service_settings (user_id, service, settings) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id, service) DO UPDATE SET settings = excluded.settings",
                params![user_id, service, settings],
            )
            .map_err(|e| user_row_error(e, &user_id, || service.clone()))?;
            Ok(())
        })
        .await
    }
}
