//! [`Live`]: a part of the configuration that a reload can replace while the server runs.
//! Readers take the value in force with [`Live::get`] when they start a piece of work (a
//! connection, a request) and keep it to the end, so a reload never changes the rules
//! under something half done.

use std::sync::{Arc, RwLock};

/// A shared, replaceable value (see the module docs).
pub struct Live<T>(Arc<RwLock<Arc<T>>>);

impl<T> Live<T> {
    /// A live value starting at `value`.
    pub fn new(value: impl Into<Arc<T>>) -> Self {
        Live(Arc::new(RwLock::new(value.into())))
    }

    /// The value in force now.
    pub fn get(&self) -> Arc<T> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the value for every later [`Live::get`].
    pub fn set(&self, value: impl Into<Arc<T>>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = value.into();
    }
}

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live(Arc::clone(&self.0))
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_what_it_took_and_later_readers_see_the_new_value() {
        let live = Live::new(1);
        let taken = live.get();
        live.clone().set(2);
        assert_eq!((*taken, *live.get()), (1, 2));
    }
}
