//! The cluster's shared backlog for XSI-Events, kept in the store (`telephony::backlog`;
//! the hub's side and the whole flow: `hub/restore.rs`).
//!
//! ```text
//! fan-out publisher: a batch of telephony events (up to 256 that are waiting)
//!   → Journal::record: one write of every (set, subscription, event) they cover
//!   → then delivered here and published          (so what a node may miss is stored)
//! hub settles (acknowledged, dropped) → queue (16,384) → one delete per batch
//! a set new on this node → Journal::restore: what waits for it (the newest
//!   backlog_max_events), within 2 s, into the hub
//! every minute: entries older than [xsi_events] backlog_max_age_secs are deleted
//! ```
//!
//! A write that fails (the store is down) is logged and the events still go out: they are
//! then kept only by the node that holds their set, as without a cluster.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::shutdown::Shutdown;
use crate::telephony::backlog::{Backlog, Entry, SetEventKey};
use crate::telephony::TelephonyEvent;

use super::hub::Hub;

/// Settled keys waiting to be deleted.
pub const SETTLED_QUEUE: usize = 16_384;
/// Keys deleted in one statement, at most.
const SETTLE_BATCH: usize = 1024;
/// How long a new set waits for the store before it sends without what it keeps.
const RESTORE_DEADLINE: Duration = Duration::from_secs(2);
/// Between deletions of entries past their age.
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// The shared backlog as one node's hub uses it; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    backlog: Backlog,
    hub: Hub,
    settled: Arc<std::sync::Mutex<Option<mpsc::Receiver<SetEventKey>>>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

impl Journal {
    /// The journal of `hub` (made [`Hub::in_cluster`] with the sender of `settled`).
    pub fn new(backlog: Backlog, hub: Hub, settled: mpsc::Receiver<SetEventKey>) -> Self {
        Journal {
            backlog,
            hub,
            settled: Arc::new(std::sync::Mutex::new(Some(settled))),
        }
    }

    /// Writes what `events` (with their cluster-wide ids) hold for every set that a
    /// subscription covering them feeds.
    pub async fn record(&self, events: &[(Arc<str>, Arc<TelephonyEvent>)]) {
        let entries: Vec<Entry> = events
            .iter()
            .flat_map(|(id, event)| {
                self.hub
                    .covering(event)
                    .into_iter()
                    .map(|(set_id, subscription_id)| Entry {
                        key: SetEventKey {
                            subscription_id,
                            event_id: id.to_string(),
                        },
                        set_id,
                        event: Arc::clone(event),
                    })
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        if let Err(e) = self.backlog.append(&entries).await {
            tracing::warn!(error = %e, events = entries.len(), "the shared backlog cannot keep events; only the nodes holding their sets have them");
        }
    }

    /// Fills set `set_id`, new on this node, with what the shared backlog keeps for it.
    pub async fn restore(&self, set_id: &str) {
        let (limit, _) = self.hub.backlog_limits();
        let waiting = tokio::time::timeout(RESTORE_DEADLINE, self.backlog.waiting(set_id, limit));
        let waiting = match waiting.await {
            Ok(Ok(waiting)) => waiting,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, set = set_id, "cannot read the set's shared backlog; it starts without it");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(
                    set = set_id,
                    "the set's shared backlog did not come in time; it starts without it"
                );
                Vec::new()
            }
        };
        self.hub.restore(set_id, waiting);
    }

    /// The journal's tasks, until shutdown: deleting settled entries, trimming old ones.
    pub fn spawn(&self, shutdown: &Shutdown) {
        let (_, max_age) = self.hub.backlog_limits();
        let Some(mut settled) = self
            .settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let (backlog, stop) = (self.backlog.clone(), shutdown.clone());
        shutdown.spawn(async move {
            let mut batch = Vec::with_capacity(SETTLE_BATCH);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    received = settled.recv_many(&mut batch, SETTLE_BATCH) => if received == 0 {
                        break;
                    },
                }
                if let Err(e) = backlog.settle(&batch).await {
                    tracing::warn!(error = %e, events = batch.len(), "cannot forget settled events in the shared backlog; they may come again");
                }
                batch.clear();
            }
        });
        let (backlog, stop) = (self.backlog.clone(), shutdown.clone());
        shutdown.spawn(async move {
            let mut tick = tokio::time::interval(TRIM_EVERY);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                match backlog.trim(max_age).await {
                    Ok(0) => {}
                    Ok(trimmed) => tracing::info!(
                        trimmed,
                        "events past backlog_max_age_secs left the shared backlog"
                    ),
                    Err(e) => tracing::warn!(error = %e, "cannot trim the shared backlog"),
                }
            }
        });
    }
}
