//! The cluster's shared backlog for XSI-Events, kept in the store (`telephony::backlog`;
//! the hub's side and the whole flow: `hub/restore.rs`).
//!
//! ```text
//! fan-out publisher: a batch of telephony events (up to 256 that are waiting)
//!   → Journal::record: every (set, subscription, event) they cover, queued
//!   → delivered here at once; published to the other nodes once written (so what
//!     another node may take is stored before it can take it)
//! hub settles (acknowledged, dropped) → the same queue; an acknowledgement also queues
//!   its set's next sequence number
//! the writer: the queue (16,384) in order, each run of appends one insert, each run of
//!   settles one delete — so this node never deletes an entry before it wrote it — and
//!   per batch one upsert of the latest sequence number of each set acknowledged in it
//! a set new on this node → Journal::restore: what waits for it (the newest
//!   backlog_max_events) and its kept sequence number, read in the queue's order, within
//!   2 s, into the hub
//! every minute: entries older than [xsi_events] backlog_max_age_secs are deleted
//! ```
//!
//! A write that fails (the store is down), or does not come within 1 s, or finds the
//! queue full, is logged and the events still go out: they are then kept only by the
//! node that holds their set, as without a cluster.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::shutdown::Shutdown;
use crate::telephony::backlog::{Backlog, Entry, SetEventKey, WaitingEntry};
use crate::telephony::{TelephonyError, TelephonyEvent};

use super::hub::Hub;

/// Writes waiting for the store.
pub const JOURNAL_QUEUE: usize = 16_384;
/// Writes taken off the queue at once, at most.
const WRITE_BATCH: usize = 1024;

/// One write to the shared backlog, in this node's order.
#[derive(Debug)]
pub enum JournalWrite {
    /// Entries to keep; told when they are written (or failed).
    Append(Vec<Entry>, oneshot::Sender<()>),
    /// An entry a set is done with.
    Settle(SetEventKey),
    /// A set's next sequence number, after an acknowledgement.
    Sequence {
        /// The set.
        set_id: String,
        /// Its next number.
        next: u32,
    },
    /// What waits for a set (the newest `limit`), and its next sequence number, read
    /// after every write queued before.
    Waiting {
        /// The set.
        set_id: String,
        /// How many, at most.
        limit: usize,
        /// Where the entries go.
        answer: oneshot::Sender<Result<Kept, TelephonyError>>,
    },
}

/// What the shared backlog keeps for a set.
#[derive(Debug, Default)]
pub struct Kept {
    /// Its waiting entries, oldest first.
    pub waiting: Vec<WaitingEntry>,
    /// Its next sequence number as of its last acknowledgement anywhere.
    pub next_sequence: Option<u32>,
}
/// How long the publisher waits for a write before it publishes anyway.
pub(super) const WRITE_WAIT: Duration = Duration::from_secs(1);
/// How long a new set waits for the store before it sends without what it keeps.
const RESTORE_DEADLINE: Duration = Duration::from_secs(2);
/// Between deletions of entries past their age.
const TRIM_EVERY: Duration = Duration::from_secs(60);

/// The shared backlog as one node's hub uses it; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    backlog: Backlog,
    hub: Hub,
    writes: mpsc::Sender<JournalWrite>,
    queue: Arc<std::sync::Mutex<Option<mpsc::Receiver<JournalWrite>>>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").finish_non_exhaustive()
    }
}

impl Journal {
    /// The journal of `hub`, made [`Hub::in_cluster`] with `writes`, whose queue is
    /// `queue`.
    pub fn new(
        backlog: Backlog,
        hub: Hub,
        writes: mpsc::Sender<JournalWrite>,
        queue: mpsc::Receiver<JournalWrite>,
    ) -> Self {
        Journal {
            backlog,
            hub,
            writes,
            queue: Arc::new(std::sync::Mutex::new(Some(queue))),
        }
    }

    /// Queues what `events` (with their cluster-wide ids) hold for every set that a
    /// subscription covering them feeds; the answer comes once it is written (at once
    /// when the queue is full: then they are not kept).
    pub async fn record(
        &self,
        events: &[(Arc<str>, Arc<TelephonyEvent>)],
    ) -> oneshot::Receiver<()> {
        let (written, answer) = oneshot::channel();
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
            let _ = written.send(());
        } else if self
            .writes
            .try_send(JournalWrite::Append(entries, written))
            .is_err()
        {
            // Dropping `written` answers the caller at once.
            tracing::warn!("the shared backlog's queue is full (the store is slow or down); events are not kept");
        }
        answer
    }

    /// Fills set `set_id`, new on this node, with what the shared backlog keeps for it:
    /// read after this node's writes queued before, so that none of its own events made
    /// before the set came here is missed (another node's are written before they are
    /// published, and this node listens for the set's events before it reads).
    pub async fn restore(&self, set_id: &str) {
        let (limit, _) = self.hub.backlog_limits();
        let (answer, waiting) = oneshot::channel();
        let asked = JournalWrite::Waiting {
            set_id: set_id.to_owned(),
            limit,
            answer,
        };
        let read = if self.writes.try_send(asked).is_err() {
            Err("the shared backlog's writer is full or gone".to_owned())
        } else {
            match tokio::time::timeout(RESTORE_DEADLINE, waiting).await {
                Ok(Ok(read)) => read.map_err(|e| e.to_string()),
                Ok(Err(_)) => Err("the shared backlog's writer stopped".to_owned()),
                Err(_) => Err("the shared backlog did not answer in time".to_owned()),
            }
        };
        let kept = read.unwrap_or_else(|why| {
            tracing::warn!(
                set = set_id,
                why,
                "cannot read the set's shared backlog; it starts without it"
            );
            Kept::default()
        });
        self.hub.restore(set_id, kept);
    }

    /// The journal's tasks, until shutdown: the writer, and trimming old entries.
    pub fn spawn(&self, shutdown: &Shutdown) {
        let (_, max_age) = self.hub.backlog_limits();
        let Some(mut queue) = self.queue.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        let (backlog, stop) = (self.backlog.clone(), shutdown.clone());
        shutdown.spawn(async move {
            let mut batch = Vec::with_capacity(WRITE_BATCH);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    received = queue.recv_many(&mut batch, WRITE_BATCH) => if received == 0 {
                        break;
                    },
                }
                write(&backlog, batch.drain(..)).await;
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

/// Writes `batch` in order: each run of appends in one statement, each run of settles in
/// another, the sets' latest sequence numbers in a third; then tells the appends' senders.
async fn write(backlog: &Backlog, batch: impl Iterator<Item = JournalWrite>) {
    let (mut entries, mut keys, mut told) = (Vec::new(), Vec::new(), Vec::new());
    let mut sequences = HashMap::new();
    for write in batch {
        match write {
            JournalWrite::Append(more, written) => {
                if !keys.is_empty() {
                    settle(backlog, &mut keys).await;
                }
                entries.extend(more);
                told.push(written);
            }
            JournalWrite::Settle(key) => {
                if !entries.is_empty() {
                    append(backlog, &mut entries).await;
                }
                keys.push(key);
            }
            JournalWrite::Sequence { set_id, next } => {
                sequences.insert(set_id, next);
            }
            JournalWrite::Waiting {
                set_id,
                limit,
                answer,
            } => {
                append(backlog, &mut entries).await;
                settle(backlog, &mut keys).await;
                save_sequences(backlog, &mut sequences).await;
                let kept = match backlog.waiting(&set_id, limit).await {
                    Ok(waiting) => backlog.sequence(&set_id).await.map(|next_sequence| Kept {
                        waiting,
                        next_sequence,
                    }),
                    Err(e) => Err(e),
                };
                let _ = answer.send(kept);
            }
        }
    }
    append(backlog, &mut entries).await;
    settle(backlog, &mut keys).await;
    save_sequences(backlog, &mut sequences).await;
    for written in told {
        let _ = written.send(());
    }
}

async fn append(backlog: &Backlog, entries: &mut Vec<Entry>) {
    if entries.is_empty() {
        return;
    }
    if let Err(e) = backlog.append(entries).await {
        tracing::warn!(error = %e, events = entries.len(), "the shared backlog cannot keep events; only the nodes holding their sets have them");
    }
    entries.clear();
}

async fn settle(backlog: &Backlog, keys: &mut Vec<SetEventKey>) {
    if keys.is_empty() {
        return;
    }
    if let Err(e) = backlog.settle(keys).await {
        tracing::warn!(error = %e, events = keys.len(), "cannot forget settled events in the shared backlog; they may come again");
    }
    keys.clear();
}

async fn save_sequences(backlog: &Backlog, sequences: &mut HashMap<String, u32>) {
    if sequences.is_empty() {
        return;
    }
    let sets: Vec<(String, u32)> = sequences.drain().collect();
    if let Err(e) = backlog.save_sequences(&sets).await {
        tracing::warn!(error = %e, sets = sets.len(), "cannot keep sets' sequence numbers in the shared backlog; a set that moves may number from further back");
    }
}
