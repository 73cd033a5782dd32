//! The hub's side of the cluster's shared backlog (`telephony::backlog`, driven by
//! `events/journal.rs`):
//!
//! ```text
//! a telephony event, on the node where it happened
//!   Hub::covering → (set, subscription) for every subscription in the cluster that covers it
//!   → queued for the shared backlog, keyed (subscription, the event's cluster-wide id)
//!   → delivered here; once written, published to the nodes that hold the sets
//!     (Pending.origin = id)
//! a set acknowledges (200), refuses (400), drops (481) an event, or its backlog
//!   overflows or ages  → Hub::settle → the key goes to the journal, which deletes it
//!   (after that event's write: one queue keeps this node's writes in order)
//! a set's first channel opens on this node (new here: the old node died, or the client
//!   moved)  → the set is restoring: events queue, nothing is sent
//!   → the journal reads what waits for the set → Hub::restore: what the set does not
//!     have already goes first, in the order it was written, then what queued meanwhile;
//!     numbered anew from the set's next sequence number as of its last acknowledgement
//!     anywhere (kept with the backlog); then the set sends as usual
//! ```
//!
//! So an event is lost neither when the node holding its set dies (before or after it
//! was sent, unacknowledged) nor while no node holds the set. An event acknowledged on a
//! node that died before its acknowledgement reached the store comes once more; one whose
//! node died in the millisecond between its local delivery and its write is lost.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use super::delivery::{flush, next_sequence};
use super::{packages_and_data, Hub, JournalWrite, Pending, MAX_SEQUENCE};
use crate::telephony::backlog::SetEventKey;
use crate::telephony::TelephonyEvent;
use crate::xsi::events::journal::Kept;

impl Hub {
    /// The (set, subscription) pairs of every subscription this node knows of (every one
    /// in the cluster) that covers `event`, whichever node holds its set.
    pub fn covering(&self, event: &TelephonyEvent) -> Vec<(String, String)> {
        let (packages, _) = packages_and_data(event);
        self.state()
            .matching(event, &packages)
            .into_iter()
            .map(|s| (s.channel_set_id, s.id))
            .collect()
    }

    /// The set is done with `pending`: the shared backlog forgets it.
    pub(super) fn settle(&self, pending: &Pending) {
        let (Some(journal), Some(origin)) = (&self.journal, &pending.origin) else {
            return;
        };
        let key = SetEventKey {
            subscription_id: pending.subscription_id.clone(),
            event_id: origin.to_string(),
        };
        if journal.try_send(JournalWrite::Settle(key)).is_err() {
            tracing::warn!("the shared backlog's queue is full; an event done with may come again");
        }
    }

    /// The set acknowledged an event: the shared backlog keeps its next sequence number,
    /// so that a node it moves to numbers on from there.
    pub(super) fn keep_sequence(&self, set_id: &str, next: u32) {
        if let Some(journal) = &self.journal {
            let _ = journal.try_send(JournalWrite::Sequence {
                set_id: set_id.to_owned(),
                next,
            });
        }
    }

    /// Ends set `set_id`'s restoring with what the shared backlog keeps for it: each
    /// waiting event (oldest first) the set does not have already goes first, then what
    /// queued meanwhile, all numbered anew from the set's kept sequence number (from 1
    /// without one); then the set sends. Entries for a subscription that no longer feeds
    /// the set are settled.
    pub fn restore(&self, set_id: &str, kept: Kept) {
        let Kept {
            waiting,
            next_sequence: kept_sequence,
        } = kept;
        let now = Instant::now();
        let mut state = self.state();
        let mut restored = Vec::new();
        let mut stale = Vec::new();
        for waiting in waiting {
            let entry = waiting.entry;
            match state.subscriptions.get(&entry.key.subscription_id) {
                Some(subscription) if subscription.channel_set_id == set_id => {
                    let (_, data) = packages_and_data(&entry.event);
                    restored.push(Pending {
                        event_id: self.new_owned_id(),
                        sequence: 0,
                        subscription_id: subscription.id.clone(),
                        application_id: subscription.application_id.clone().unwrap_or_default(),
                        target_id: entry.event.user_id.clone(),
                        data,
                        queued_at: now.checked_sub(waiting.age).unwrap_or(now),
                        written: false,
                        origin: Some(Arc::from(entry.key.event_id.as_str())),
                    });
                }
                _ => stale.push(entry.key),
            }
        }
        let Some(set) = state.sets.get_mut(set_id) else {
            return;
        };
        if !set.delivers_here() {
            // Another node's later claim came first: it sends what waits.
            return;
        }
        let known: HashSet<Arc<str>> = set
            .backlog
            .iter()
            .chain(set.unacked.values().map(|u| &u.pending))
            .filter_map(|p| p.origin.clone())
            .collect();
        restored.retain(|p| p.origin.as_ref().is_some_and(|o| !known.contains(o)));
        let count = restored.len();
        let mut sequence = kept_sequence
            .filter(|n| (1..=MAX_SEQUENCE).contains(n))
            .unwrap_or_else(|| {
                set.backlog
                    .front()
                    .map_or(set.next_sequence, |p| p.sequence)
            });
        let queued: Vec<Pending> = set.backlog.drain(..).collect();
        for mut pending in restored.into_iter().chain(queued) {
            pending.sequence = sequence;
            sequence = next_sequence(sequence);
            set.backlog.push_back(pending);
        }
        set.next_sequence = sequence;
        self.cap_backlog(set);
        set.restoring = false;
        flush(set);
        drop(state);
        if count > 0 {
            tracing::info!(
                set = set_id,
                events = count,
                "channel set restored from the shared backlog"
            );
        }
        if let Some(journal) = &self.journal {
            for key in stale {
                let _ = journal.try_send(JournalWrite::Settle(key));
            }
        }
    }
}
