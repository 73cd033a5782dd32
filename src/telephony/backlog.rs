//! The event channel sets' shared backlog ([`crate::store::backlog`]), for XSI-Events in a
//! cluster: telephony events in, keyed by subscription and a cluster-wide event id, until a
//! set acknowledges them. Only a clustered node (on PostgreSQL) has one:
//! [`Telephony::backlog`] is `None` on SQLite.

use std::sync::Arc;
use std::time::Duration;

pub use crate::store::backlog::SetEventKey;
use crate::store::backlog::{BacklogStore, SetEvent};
use crate::store::{Store, StoreError};

use super::{Telephony, TelephonyError, TelephonyEvent};

/// One event for one subscription's set.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Which event, for which subscription.
    pub key: SetEventKey,
    /// The set.
    pub set_id: String,
    /// The event.
    pub event: Arc<TelephonyEvent>,
}

/// An entry read back, with how long it has waited.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingEntry {
    /// The entry.
    pub entry: Entry,
    /// Since it was written.
    pub age: Duration,
}

/// The shared backlog; cheap to clone.
#[derive(Clone)]
pub struct Backlog {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backlog").finish_non_exhaustive()
    }
}

impl Telephony {
    /// The sets' shared backlog, if the store shares one.
    pub fn backlog(&self) -> Option<Backlog> {
        self.store.backlog().map(|_| Backlog {
            store: Arc::clone(&self.store),
        })
    }
}

impl Backlog {
    fn store(&self) -> Result<&dyn BacklogStore, TelephonyError> {
        self.store.backlog().ok_or_else(|| {
            TelephonyError::Store(StoreError::Worker("the store keeps no backlog".to_owned()))
        })
    }

    /// Writes entries.
    pub async fn append(&self, entries: &[Entry]) -> Result<(), TelephonyError> {
        let rows: Vec<SetEvent> = entries
            .iter()
            .map(|entry| SetEvent {
                key: entry.key.clone(),
                set_id: entry.set_id.clone(),
                event: serde_json::to_string(&*entry.event).unwrap_or_default(),
            })
            .collect();
        Ok(self.store()?.append(&rows).await?)
    }

    /// Forgets entries (acknowledged, dropped, or their subscription ended).
    pub async fn settle(&self, keys: &[SetEventKey]) -> Result<(), TelephonyError> {
        Ok(self.store()?.settle(keys).await?)
    }

    /// The newest `limit` entries waiting for `set_id`, oldest first. An entry this
    /// version cannot read is forgotten, and logged.
    pub async fn waiting(
        &self,
        set_id: &str,
        limit: usize,
    ) -> Result<Vec<WaitingEntry>, TelephonyError> {
        let store = self.store()?;
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for waiting in store.waiting(set_id, limit).await? {
            match serde_json::from_str::<TelephonyEvent>(&waiting.event.event) {
                Ok(event) => entries.push(WaitingEntry {
                    entry: Entry {
                        key: waiting.event.key,
                        set_id: waiting.event.set_id,
                        event: Arc::new(event),
                    },
                    age: waiting.age,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, set = set_id, event = %waiting.event.key.event_id, "a waiting event cannot be read; forgotten");
                    unreadable.push(waiting.event.key);
                }
            }
        }
        store.settle(&unreadable).await?;
        Ok(entries)
    }

    /// Keeps each set's next sequence number (each set at most once).
    pub async fn save_sequences(&self, sets: &[(String, u32)]) -> Result<(), TelephonyError> {
        Ok(self.store()?.save_sequences(sets).await?)
    }

    /// The next sequence number kept for `set_id`, if one is.
    pub async fn sequence(&self, set_id: &str) -> Result<Option<u32>, TelephonyError> {
        Ok(self.store()?.sequence(set_id).await?)
    }

    /// Forgets entries older than `age`; how many.
    pub async fn trim(&self, age: Duration) -> Result<u64, TelephonyError> {
        Ok(self.store()?.trim(age).await?)
    }
}
