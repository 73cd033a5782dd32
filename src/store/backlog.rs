//! The event channel sets' shared backlog, for a cluster: every telephony event a
//! subscription covers waits here, keyed by (subscription, event id), until the set that
//! subscription feeds acknowledges it (or drops it), wherever that set is held. A node
//! that takes over a set (its first channel opens there, after the old node died or the
//! client moved) reads what still waits and delivers it. Only a backend several nodes
//! share keeps one (PostgreSQL): [`Store::backlog`](super::Store::backlog) is `None` on
//! SQLite, where the one node's memory is the backlog.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

/// One event for one subscription, as the node that saw the event wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetEvent {
    /// Which event, and for which subscription.
    pub key: SetEventKey,
    /// The set the subscription feeds.
    pub set_id: String,
    /// The event, in the telephony model's own serialisation (opaque here).
    pub event: String,
}

/// What names a waiting event: its subscription and the event's cluster-wide id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetEventKey {
    /// The subscription it is for.
    pub subscription_id: String,
    /// The event's id, the same on every node.
    pub event_id: String,
}

/// A waiting event read back, with how long it has waited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The event.
    pub event: SetEvent,
    /// Since it was written.
    pub age: Duration,
}

/// The shared backlog.
#[async_trait]
pub trait BacklogStore: Send + Sync + 'static {
    /// Writes events (one already there, by key, is kept as it is).
    async fn append(&self, events: &[SetEvent]) -> Result<(), StoreError>;

    /// Forgets events: acknowledged, dropped, or for a subscription that ended.
    async fn settle(&self, keys: &[SetEventKey]) -> Result<(), StoreError>;

    /// The newest `limit` events waiting for `set_id`, oldest first (in the order they
    /// were written).
    async fn waiting(&self, set_id: &str, limit: usize) -> Result<Vec<Waiting>, StoreError>;

    /// Forgets every event older than `age`, and the sequence numbers of sets that have
    /// not moved them for [`SEQUENCE_KEPT`]; how many events.
    async fn trim(&self, age: Duration) -> Result<u64, StoreError>;

    /// Keeps each set's next sequence number (each set at most once; a number lower than
    /// the one kept replaces it too: a set that wraps starts at 1 again).
    async fn save_sequences(&self, sets: &[(String, u32)]) -> Result<(), StoreError>;

    /// The next sequence number kept for `set_id`, if one is.
    async fn sequence(&self, set_id: &str) -> Result<Option<u32>, StoreError>;
}

/// How long a set's sequence number is kept after its last acknowledgement.
pub const SEQUENCE_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);
