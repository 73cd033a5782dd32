//! Users and service settings as the call path reads them: several times per call (the
//! caller, the callee, the callee's forwarding and Do Not Disturb). They are kept in memory
//! with the store's users generation at the time they were read
//! ([`DirectoryStore::users_generation`](crate::store::DirectoryStore::users_generation)),
//! which moves on every change of users by this process and on any write by another
//! process (within a fraction of a second). An entry read under an older generation is
//! read again; a settings change through [`Telephony::set_service`](super::Telephony::set_service)
//! drops its entry at once. Each cache holds at most [`ENTRIES`] entries (moka evicts the
//! least useful).

use std::hash::Hash;

/// Entries per cache.
pub(super) const ENTRIES: u64 = 100_000;

/// Values remembered with the generation they were read at.
pub(super) struct Remembered<K, V> {
    cache: moka::sync::Cache<K, (u64, V)>,
}

impl<K, V> Remembered<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(super) fn new() -> Self {
        Remembered {
            cache: moka::sync::Cache::new(ENTRIES),
        }
    }

    /// The value of `key` if it was read at `generation`.
    pub(super) fn get(&self, key: &K, generation: u64) -> Option<V> {
        self.cache
            .get(key)
            .filter(|(read_at, _)| *read_at == generation)
            .map(|(_, value)| value)
    }

    /// Remembers `value`, read at `generation` (taken before the read).
    pub(super) fn put(&self, key: K, generation: u64, value: V) {
        self.cache.insert(key, (generation, value));
    }

    /// Forgets `key`.
    pub(super) fn forget(&self, key: &K) {
        self.cache.invalidate(key);
    }
}

impl<K, V> std::fmt::Debug for Remembered<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remembered").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_under_another_generation_is_not_returned() {
        let remembered = Remembered::new();
        remembered.put("alice", 3, 1);
        assert_eq!(remembered.get(&"alice", 3), Some(1));
        assert_eq!(remembered.get(&"alice", 4), None, "users changed since");
        remembered.forget(&"alice");
        assert_eq!(remembered.get(&"alice", 3), None);
    }
}
