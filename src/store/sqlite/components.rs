//! Components registered at run time.

use async_trait::async_trait;
use rusqlite::params;

use super::rows::{component_from_row, is_constraint};
use super::SqliteStore;
use crate::store::{ComponentStore, StoreError};
use crate::telephony::ComponentRecord;

#[async_trait]
impl ComponentStore for SqliteStore {
    async fn add_component(&self, component: &ComponentRecord) -> Result<(), StoreError> {
        let r = component.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO components (name, secret, max_connections, on_conflict, hold_secs)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    r.name,
                    r.secret,
                    r.max_connections,
                    r.on_conflict.as_str(),
                    r.hold_secs as i64
                ],
            )
            .map_err(|e| match is_constraint(&e) {
                Some(_) => StoreError::Exists(format!("component \"{}\"", r.name)),
                None => e.into(),
            })?;
            Ok(())
        })
        .await
    }

    async fn components(&self) -> Result<Vec<ComponentRecord>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT * FROM components ORDER BY name")?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(component_from_row(row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn remove_component(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.with(move |c| Ok(c.execute("DELETE FROM components WHERE name = ?1", [name])? > 0))
            .await
    }
}
