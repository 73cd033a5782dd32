//! Personal directories.

use async_trait::async_trait;
use rusqlite::params;

use super::rows::user_row_error;
use super::SqliteStore;
use crate::store::{ContactStore, StoreError};
use crate::telephony::PersonalContact;

#[async_trait]
impl ContactStore for SqliteStore {
    async fn personal_contacts(&self, user_id: &str) -> Result<Vec<PersonalContact>, StoreError> {
        let user_id = user_id.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT name, number FROM personal_contacts WHERE user_id = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([user_id], |r| {
                Ok(PersonalContact {
                    name: r.get(0)?,
                    number: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn add_personal_contacts(
        &self,
        user_id: &str,
        contacts: &[PersonalContact],
        max_entries: usize,
    ) -> Result<(), StoreError> {
        let (user_id, contacts) = (user_id.to_owned(), contacts.to_vec());
        self.with(move |c| {
            let tx = c.transaction()?;
            let existing: i64 = tx.query_row(
                "SELECT COUNT(*) FROM personal_contacts WHERE user_id = ?1",
                [&user_id],
                |r| r.get(0),
            )?;
            if existing as usize + contacts.len() > max_entries {
                return Err(StoreError::Full { limit: max_entries });
            }
            for contact in &contacts {
                tx.execute(
                    "INSERT INTO personal_contacts (user_id, name, number) VALUES (?1, ?2, ?3)",
                    params![user_id, contact.name, contact.number],
                )
                .map_err(|e| {
                    user_row_error(e, &user_id, || format!("entry \"{}\"", contact.name))
                })?;
            }
            // Dropped without commit on any error above: nothing of the batch is kept.
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn remove_personal_contact(&self, user_id: &str, name: &str) -> Result<bool, StoreError> {
        let (user_id, name) = (user_id.to_owned(), name.to_owned());
        self.with(move |c| {
            Ok(c.execute(
                "DELETE FROM personal_contacts WHERE user_id = ?1 AND name = ?2",
                params![user_id, name],
            )? > 0)
        })
        .await
    }
}
