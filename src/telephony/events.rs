//! The event bus: every change in the telephony model is published once, as a typed
//! [`TelephonyEvent`] carrying its user and a per-user sequence number.
//!
//! What is published: a user's service settings after each change, each change to one of
//! the user's calls ([`CallEvent`]), and the user's hook status when a first call starts or
//! the last one ends.
//!
//! Subscribers (today the XSI-Events delivery task in `server.rs`) get a bounded
//! `tokio::sync::broadcast` receiver. A subscriber that falls more than the bus capacity
//! (`xsi.event_bus_capacity`) behind receives `RecvError::Lagged`: those events are lost,
//! and the delivery task logs how many at `error` level. Nothing resynchronises them yet:
//! the settings themselves are in the store, so a client that re-reads them is right again.
//! Sequence numbers are assigned and sent under one lock, so for any user the bus order is
//! the sequence order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::calls::{Call, CallEventKind, HookStatus};
use super::services::ServiceSettings;
use super::UserScope;

/// A change to one of a user's calls.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallEvent {
    /// What changed.
    pub kind: CallEventKind,
    /// The user's call after the change.
    pub call: Call,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// A user's service settings changed; these are the new settings.
    ServiceChanged(ServiceSettings),
    /// One of the user's calls changed.
    Call(Box<CallEvent>),
    /// The user went off hook (a first call) or on hook (the last call ended).
    HookStatus(HookStatus),
}

/// One change, for one user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TelephonyEvent {
    /// The user concerned.
    pub user_id: String,
    /// The user's enterprise (so subscribers match group and enterprise targets without
    /// a directory lookup).
    pub enterprise_id: String,
    /// The user's group.
    pub group_id: String,
    /// Per-user sequence, from 1, in publication order.
    pub sequence: u64,
    /// What happened.
    pub kind: EventKind,
}

/// The bus; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<TelephonyEvent>>,
    sequences: Arc<Mutex<HashMap<String, u64>>>,
}

impl EventBus {
    /// A bus that holds up to `capacity` events for its slowest subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        EventBus {
            sender,
            sequences: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TelephonyEvent>> {
        self.sender.subscribe()
    }

    /// Publishes `kind` for `user` with the user's next sequence number.
    pub fn publish(&self, user: &UserScope, kind: EventKind) -> Arc<TelephonyEvent> {
        let key = user.id.to_ascii_lowercase();
        // A poisoned lock only means a panic elsewhere mid-publish; the map stays usable.
        let mut sequences = self
            .sequences
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sequence = sequences.entry(key).or_insert(0);
        *sequence += 1;
        let event = Arc::new(TelephonyEvent {
            user_id: user.id.clone(),
            enterprise_id: user.enterprise_id.clone(),
            group_id: user.group_id.clone(),
            sequence: *sequence,
            kind,
        });
        // No subscriber is not an error: the change is stored either way.
        let _ = self.sender.send(Arc::clone(&event));
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telephony::services::DoNotDisturb;

    fn user(id: &str) -> UserScope {
        crate::telephony::User::test(id, "e", "g").scope()
    }

    #[tokio::test]
    async fn sequences_count_per_user_in_order() {
        let bus = EventBus::new(16);
        let mut receiver = bus.subscribe();
        let dnd = |active| {
            EventKind::ServiceChanged(ServiceSettings::from(DoNotDisturb {
                active,
                ring_splash: false,
            }))
        };
        bus.publish(&user("alice@example.com"), dnd(true));
        bus.publish(&user("bob@example.com"), dnd(true));
        bus.publish(&user("Alice@example.com"), dnd(false));
        let got: Vec<(String, u64)> = (0..3)
            .map(|_| {
                let e = receiver.try_recv().unwrap();
                (e.user_id.to_ascii_lowercase(), e.sequence)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("alice@example.com".into(), 1),
                ("bob@example.com".into(), 1),
                ("alice@example.com".into(), 2)
            ]
        );
        assert!(receiver.try_recv().is_err(), "nothing else was published");
    }
}
