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
//!
//! **Keeping.** Every event also gets the bus's own running index. In a cluster the
//! XSI-Events fan-out writes each event to the shared backlog before other nodes hear of
//! it, and is the bus's [`Keeper`]: it marks how far the written events go. A request
//! that changed something can then wait ([`EventBus::kept`]) until the events published
//! so far are written, so that an answered change's event outlives its node. Without a
//! keeper (a single node) there is nothing to wait for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

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
    /// Its place on this node's bus, from 1 (not sent between nodes).
    #[serde(skip)]
    pub index: u64,
}

/// The bus; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<TelephonyEvent>>,
    sequences: Arc<Mutex<Sequences>>,
    keeping: Arc<Keeping>,
}

#[derive(Debug, Default)]
struct Sequences {
    per_user: HashMap<String, u64>,
    /// The last index given.
    last: u64,
}

/// How far the events are kept.
#[derive(Debug)]
struct Keeping {
    /// Whether anything keeps events (see [`EventBus::keeper`]).
    keeper: AtomicBool,
    /// The index up to which every event is kept.
    through: watch::Sender<u64>,
}

/// What lets the one that keeps the bus's events mark how far they are kept.
#[derive(Debug)]
pub struct Keeper {
    keeping: Arc<Keeping>,
}

impl Keeper {
    /// Every event up to `index` is kept (written, or given up on).
    pub fn kept(&self, index: u64) {
        self.keeping.through.send_if_modified(|through| {
            let later = index > *through;
            if later {
                *through = index;
            }
            later
        });
    }
}

impl EventBus {
    /// A bus that holds up to `capacity` events for its slowest subscriber.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        EventBus {
            sender,
            sequences: Arc::default(),
            keeping: Arc::new(Keeping {
                keeper: AtomicBool::new(false),
                through: watch::Sender::new(0),
            }),
        }
    }

    /// Makes the caller the one that keeps this bus's events: from now on
    /// [`EventBus::kept`] waits for its marks.
    pub fn keeper(&self) -> Keeper {
        self.keeping.keeper.store(true, Ordering::Release);
        Keeper {
            keeping: Arc::clone(&self.keeping),
        }
    }

    /// Waits, at most `limit`, until every event published so far is kept; whether it
    /// is. At once `true` when nothing keeps events.
    pub async fn kept(&self, limit: Duration) -> bool {
        if !self.keeping.keeper.load(Ordering::Acquire) {
            return true;
        }
        let last = self
            .sequences
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last;
        let mut through = self.keeping.through.subscribe();
        tokio::time::timeout(limit, through.wait_for(|kept| *kept >= last))
            .await
            .is_ok_and(|waited| waited.is_ok())
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
        sequences.last += 1;
        let index = sequences.last;
        let sequence = sequences.per_user.entry(key).or_insert(0);
        *sequence += 1;
        let event = Arc::new(TelephonyEvent {
            user_id: user.id.clone(),
            enterprise_id: user.enterprise_id.clone(),
            group_id: user.group_id.clone(),
            sequence: *sequence,
            kind,
            index,
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
    async fn kept_waits_for_the_keepers_mark_only_when_there_is_a_keeper() {
        let bus = EventBus::new(16);
        let dnd = || EventKind::ServiceChanged(ServiceSettings::from(DoNotDisturb::default()));
        bus.publish(&user("a"), dnd());
        assert!(bus.kept(Duration::ZERO).await, "nothing keeps events");
        let keeper = bus.keeper();
        let second = bus.publish(&user("b"), dnd());
        assert_eq!(second.index, 2);
        assert!(!bus.kept(Duration::from_millis(10)).await, "not kept yet");
        keeper.kept(1);
        assert!(
            !bus.kept(Duration::from_millis(10)).await,
            "the second is not kept"
        );
        let waiting = {
            let bus = bus.clone();
            tokio::spawn(async move { bus.kept(Duration::from_secs(5)).await })
        };
        keeper.kept(second.index);
        assert!(waiting.await.unwrap());
        keeper.kept(1);
        assert!(bus.kept(Duration::ZERO).await, "a mark never goes back");
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
