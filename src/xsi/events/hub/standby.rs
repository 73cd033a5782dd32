//! One delivering node per channel set in a cluster, however many nodes hold channels of
//! it (a client that opened its channels through a load balancer without affinity).
//!
//! ```text
//! a set's first channel on a node (or a take-over, below) → a claim {at_ms, node},
//!   told to every node (Notice::SetClaimed)
//! a node that hears a claim for a set it has:
//!   no open channel of it          → forgets the set (it moved)
//!   channels, and the claim is later than its own (at_ms, then node name)
//!                                  → stands by: it keeps its channels (heartbeats,
//!                                    updates, deletes, acknowledgements of what it sent
//!                                    before), drops its backlog (the shared backlog
//!                                    keeps it) and delivers nothing; it no longer listens
//!                                    for the set's events
//!   channels, and its own claim is the later one
//!                                  → tells its claim again: the other node stands by
//! every second, a standby node asks the holder (over NATS, XsiChannel) whether it still
//!   delivers the set: it has the set, does not stand by, and has an open channel of it
//!   yes                            → stays standby
//!   no, or the holder is gone (no responder: it died)
//!                                  → takes the set over: a new claim, told to every node;
//!                                    listens for the set's events; restores what the
//!                                    shared backlog keeps for it (`hub/restore.rs`)
//!   no answer in time              → stays standby, and asks again
//! ```
//!
//! Every node orders claims the same way, so they agree on one holder whichever claim
//! they hear first; a clock that runs behind only decides which node that is. While two
//! nodes' claims cross (milliseconds) both may send the same event once each: a client
//! sees it twice rather than never. A standby set whose channels here all end is forgotten
//! with the timer sweep's next full pass. The set's channels on the standby node get no events
//! until it takes over, at most about a second (and one NATS round trip) after the
//! holder's last channel ends or its node dies.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Hub, Notice, Owner, State};

/// How often a standby node asks the holder whether it still delivers the set.
pub const STANDBY_CHECK: Duration = Duration::from_secs(1);

/// A node's claim on a channel set: it delivers the set's events since `at_ms`. Of two
/// claims the later one wins (ordered by time, then by node name).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Claim {
    /// When, in milliseconds since the Unix epoch (the claiming node's clock).
    pub at_ms: u64,
    /// The claiming node.
    pub node: String,
}

/// A set this node stands by for: it has channels of it, another node delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbySet {
    /// The set.
    pub set_id: String,
    /// Its owner.
    pub owner: Owner,
    /// The holder's claim.
    pub holder: Claim,
}

impl Hub {
    /// A claim by this node, now.
    pub(super) fn claim_now(&self) -> Claim {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        Claim {
            at_ms: u64::try_from(now).unwrap_or_default(),
            node: self.node_id.to_string(),
        }
    }

    /// Another node claimed `set_id` (see the module docs).
    pub(super) fn apply_claim(&self, state: &mut State, set_id: &str, claim: Claim) {
        let Some(set) = state.sets.get_mut(set_id) else {
            return;
        };
        if !set.channels.iter().any(|c| !c.queue.is_closed()) {
            state.remove_set(set_id);
            tracing::info!(set = %set_id, node = %claim.node, "channel set moved to another node; forgotten here");
            return;
        }
        if let Some(holder) = &set.standby {
            if claim > *holder {
                set.standby = Some(claim);
            }
            return;
        }
        if claim > set.claim {
            // The shared backlog keeps what waits here; the holder sends it.
            let dropped = set.backlog.len();
            set.backlog.clear();
            set.restoring = false;
            tracing::info!(set = %set_id, holder = %claim.node, dropped, "another node delivers the channel set now; its channels here stand by");
            set.standby = Some(claim);
            state.standby_sets.insert(set_id.to_owned());
        } else {
            self.tell(Notice::SetClaimed {
                set_id: set_id.to_owned(),
                claim: set.claim.clone(),
            });
        }
    }

    /// The sets this node stands by for that have an open channel here.
    pub fn standby_sets(&self) -> Vec<StandbySet> {
        let state = self.state();
        state
            .standby_sets
            .iter()
            .filter_map(|id| Some((id, state.sets.get(id)?)))
            .filter(|(_, set)| set.channels.iter().any(|c| !c.queue.is_closed()))
            .filter_map(|(id, set)| {
                set.standby.as_ref().map(|holder| StandbySet {
                    set_id: id.clone(),
                    owner: set.owner.clone(),
                    holder: holder.clone(),
                })
            })
            .collect()
    }

    /// Whether this node delivers `owner`'s set `set_id` to an open channel of it (what
    /// a standby node asks).
    pub fn delivers(&self, owner: &Owner, set_id: &str) -> bool {
        self.state().sets.get(set_id).is_some_and(|set| {
            set.owner == *owner
                && set.delivers_here()
                && set.channels.iter().any(|c| !c.queue.is_closed())
        })
    }

    /// Takes `standby.set_id` over from `standby.holder`, if this node still stands by for
    /// that claim: the set restores (the caller reads the shared backlog) and every node
    /// hears this node's new claim.
    pub fn take_over(&self, standby: &StandbySet) -> bool {
        // Later than the claim it replaces, whatever the two nodes' clocks say.
        let mut claim = self.claim_now();
        claim.at_ms = claim.at_ms.max(standby.holder.at_ms + 1);
        let mut state = self.state();
        let Some(set) = state.sets.get_mut(&standby.set_id) else {
            return false;
        };
        if set.standby.as_ref() != Some(&standby.holder) {
            return false;
        }
        set.standby = None;
        set.claim = claim.clone();
        set.restoring = true;
        state.standby_sets.remove(&standby.set_id);
        drop(state);
        tracing::info!(set = %standby.set_id, from = %standby.holder.node, "this node delivers the channel set now");
        self.tell(Notice::SetClaimed {
            set_id: standby.set_id.clone(),
            claim,
        });
        true
    }
}
