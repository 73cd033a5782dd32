//! XSI-Events across the nodes of a cluster, over NATS.
//!
//! ```text
//! telephony bus (this node) ──► shared backlog (journal.rs), a batch at a time, queued
//!                           ──► local hub (sets held here), at once
//!                           └─► once written: the bus marks them kept (the request that
//!                                 made a change waits for that, at most a second), and
//!                                 publish bridgehead.events.<e>.<g>.<user>
//!                                 {origin, id, event}            (tokens: hex, lower case)
//! hub notices (subscription put/removed, set claimed)
//!                           ──► publish bridgehead.xsi.notices {origin, notice}
//! every node: bridgehead.xsi.notices ──► hub.apply_notice   (its own skipped)
//! interest: for each target of a subscription whose set is held here, one NATS
//!   subscription: user → events.*.*.<user>, group → events.<e>.<g>.*,
//!   enterprise → events.<e>.*.*, system → events.>; added at once when a channel opens
//!   or a subscription is made here or arrives from another node (before its first
//!   event is queued, so that no later event slips past); a sweep every 250 ms drops
//!   what no held set needs any more
//! every second: each set this node stands by for asks its holder (hub/standby.rs)
//! interest messages ──► drop own origin, drop an id seen already (overlapping subjects)
//!                   ──► hub.deliver (only to the sets held here)
//! ```
//!
//! So an event reaches exactly the nodes that hold a set subscribed to it, not every node.
//! Each set is delivered by one node: the last to claim it (it opened the set's first
//! channel there). A node that kept the set without a channel forgets it; one with
//! channels of it stands by until the holder has none left or dies, then takes it over
//! (`hub/standby.rs`). Before a
//! node's own events go anywhere, the shared backlog has them (`journal.rs`): a set that
//! moves, or whose node dies, starts on its new node with every event it had not
//! acknowledged, and with those that came while no node held it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::cluster::{token, Cluster, ClusterError};
use crate::shutdown::Shutdown;
use crate::telephony::{SubscriptionTarget, Telephony, TelephonyEvent};

use super::forward::holder_delivers;
use super::hub::{Hub, Notice, StandbySet, STANDBY_CHECK};
use super::journal::Journal;

/// Between interest refreshes.
const REFRESH: Duration = Duration::from_millis(250);
/// Remote events waiting for the hub.
const INBOX: usize = 4096;
/// Event ids remembered to drop duplicates (an event on two overlapping subjects).
const SEEN: u64 = 65_536;
const NOTICES: &str = "xsi.notices";
/// The node's own events written to the shared backlog in one statement, at most.
const PUBLISH_BATCH: usize = 256;
/// Standby sets asking their holders at once, at most.
const STANDBY_ASKS: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Published<T> {
    origin: String,
    id: String,
    body: T,
}

fn event_subject(event: &TelephonyEvent) -> String {
    format!(
        "events.{}.{}.{}",
        token(&event.enterprise_id),
        token(&event.group_id),
        token(&event.user_id)
    )
}

fn interest_subject(target: &SubscriptionTarget) -> String {
    match target {
        SubscriptionTarget::User { user_id } => format!("events.*.*.{}", token(user_id)),
        SubscriptionTarget::Group {
            enterprise_id,
            group_id,
        } => format!("events.{}.{}.*", token(enterprise_id), token(group_id)),
        SubscriptionTarget::Enterprise { enterprise_id } => {
            format!("events.{}.*.*", token(enterprise_id))
        }
        SubscriptionTarget::System => "events.>".to_owned(),
    }
}

/// The cluster side of one node's hub; cheap to clone.
#[derive(Clone)]
pub struct Fanout {
    cluster: Cluster,
    hub: Hub,
    journal: Journal,
    /// Subject → the task reading it (aborted when the subject is no longer wanted).
    interest: Arc<tokio::sync::Mutex<HashMap<String, tokio::task::AbortHandle>>>,
    inbox: mpsc::Sender<async_nats::Message>,
    inbox_rx: Arc<std::sync::Mutex<Option<mpsc::Receiver<async_nats::Message>>>>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout").finish_non_exhaustive()
    }
}

impl Fanout {
    /// The fan-out of `hub` (which must be [`Hub::in_cluster`]) over `cluster`, keeping
    /// its events in `journal`.
    pub fn new(cluster: Cluster, hub: Hub, journal: Journal) -> Self {
        let (inbox, inbox_rx) = mpsc::channel(INBOX);
        Fanout {
            cluster,
            hub,
            journal,
            interest: Arc::default(),
            inbox,
            inbox_rx: Arc::new(std::sync::Mutex::new(Some(inbox_rx))),
        }
    }

    /// The cluster it speaks over.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Set `set_id` is new on this node: it gets what the shared backlog keeps for it.
    pub async fn restore(&self, set_id: &str) {
        self.journal.restore(set_id).await;
    }

    /// Listens for the events of `targets` (those not listened for already), at once.
    pub async fn listen_for(&self, targets: &[SubscriptionTarget]) {
        let mut interest = self.interest.lock().await;
        for target in targets {
            self.listen(&mut interest, interest_subject(target)).await;
        }
        crate::telemetry::cluster_event_subjects(interest.len());
    }

    /// Subscribes to what the held sets need and drops what they no longer need (the
    /// periodic sweep: one pass over the subscriptions).
    pub async fn refresh(&self) {
        let wanted: std::collections::HashSet<String> = self
            .hub
            .held_targets()
            .iter()
            .map(interest_subject)
            .collect();
        let mut interest = self.interest.lock().await;
        interest.retain(|subject, reader| {
            let keep = wanted.contains(subject);
            if !keep {
                reader.abort();
            }
            keep
        });
        for subject in wanted {
            self.listen(&mut interest, subject).await;
        }
        crate::telemetry::cluster_event_subjects(interest.len());
    }

    /// Subscribes to `subject` unless `interest` has it already.
    async fn listen(
        &self,
        interest: &mut HashMap<String, tokio::task::AbortHandle>,
        subject: String,
    ) {
        if interest.contains_key(&subject) {
            return;
        }
        match self.cluster.subscribe(&subject).await {
            Ok(mut messages) => {
                let inbox = self.inbox.clone();
                let reader = tokio::spawn(async move {
                    while let Some(message) = messages.next().await {
                        if inbox.send(message).await.is_err() {
                            break;
                        }
                    }
                });
                interest.insert(subject, reader.abort_handle());
            }
            Err(e) => {
                tracing::warn!(error = %e, subject, "cannot listen for other nodes' events; trying again");
            }
        }
    }

    /// The fan-out's tasks, until shutdown: publishing this node's events and notices,
    /// applying other nodes' notices, delivering their events, refreshing the interest.
    pub fn spawn(
        &self,
        shutdown: &Shutdown,
        telephony: &Telephony,
        notices: mpsc::Receiver<Notice>,
    ) {
        let node = self.cluster.node().to_owned();
        self.journal.spawn(shutdown);
        self.spawn_publisher(shutdown, telephony, node.clone());
        self.spawn_notices_out(shutdown, notices, node.clone());
        self.spawn_notices_in(shutdown, node.clone());
        self.spawn_delivery(shutdown, node);
        self.spawn_standby_checks(shutdown);
        let (fanout, stop) = (self.clone(), shutdown.clone());
        shutdown.spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => fanout.refresh().await,
                }
            }
            for (_, reader) in fanout.interest.lock().await.drain() {
                reader.abort();
            }
        });
    }

    /// Every [`STANDBY_CHECK`], the sets this node stands by for ask their holders
    /// whether they still deliver them; a set whose holder does not (or is gone) is taken
    /// over (`hub/standby.rs`).
    fn spawn_standby_checks(&self, shutdown: &Shutdown) {
        let (fanout, stop) = (self.clone(), shutdown.clone());
        shutdown.spawn(async move {
            let mut tick = tokio::time::interval(STANDBY_CHECK);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let sets = fanout.hub.standby_sets();
                crate::telemetry::xsi_standby_sets(sets.len());
                futures_util::stream::iter(sets)
                    .for_each_concurrent(STANDBY_ASKS, |standby| fanout.check_standby(standby))
                    .await;
            }
        });
    }

    async fn check_standby(&self, standby: StandbySet) {
        let holder = &standby.holder.node;
        match holder_delivers(&self.cluster, holder, &standby.owner, &standby.set_id).await {
            Ok(true) => return,
            Ok(false) | Err(ClusterError::NodeGone(_)) => {}
            Err(e) => {
                tracing::warn!(error = %e, set = %standby.set_id, holder = %holder, "cannot ask the node that delivers a channel set whether it still does; asking again");
                return;
            }
        }
        if self.hub.take_over(&standby) {
            crate::telemetry::xsi_set_taken_over();
            self.listen_for(&self.hub.targets_of_set(&standby.set_id))
                .await;
            self.restore(&standby.set_id).await;
        }
    }

    /// The node's own events, in bus order: a batch of what is waiting is queued for the
    /// shared backlog and delivered here, then, once written, published to the other nodes.
    fn spawn_publisher(&self, shutdown: &Shutdown, telephony: &Telephony, origin: String) {
        let mut events = telephony.events().subscribe();
        // Answered changes wait for their events' write (`EventBus::kept`).
        let keeper = telephony.events().keeper();
        let (fanout, stop) = (self.clone(), shutdown.clone());
        shutdown.spawn(async move {
            let mut batch: Vec<(Arc<str>, Arc<TelephonyEvent>)> = Vec::with_capacity(PUBLISH_BATCH);
            loop {
                let first = tokio::select! {
                    _ = stop.cancelled() => break,
                    event = events.recv() => event,
                };
                let mut next = Some(first);
                while let Some(event) = next.take() {
                    match event {
                        Ok(event) => batch.push((Arc::from(uuid::Uuid::new_v4().to_string()), event)),
                        Err(broadcast::error::RecvError::Lagged(lost)) => {
                            tracing::error!(lost, "event delivery fell behind the telephony bus; events were lost");
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                    if batch.len() < PUBLISH_BATCH {
                        next = match events.try_recv() {
                            Err(broadcast::error::TryRecvError::Empty) => None,
                            Err(broadcast::error::TryRecvError::Closed) => None,
                            Err(broadcast::error::TryRecvError::Lagged(lost)) => {
                                Some(Err(broadcast::error::RecvError::Lagged(lost)))
                            }
                            Ok(event) => Some(Ok(event)),
                        };
                    }
                }
                let written = fanout.journal.record(&batch).await;
                for (id, event) in &batch {
                    fanout.hub.deliver_as(event, Some(id));
                }
                if tokio::time::timeout(super::journal::WRITE_WAIT, written).await.is_err() {
                    tracing::warn!(events = batch.len(), "the shared backlog did not write events within a second; publishing them anyway");
                }
                if let Some((_, last)) = batch.last() {
                    keeper.kept(last.index);
                }
                for (id, event) in batch.drain(..) {
                    let published = Published {
                        origin: origin.clone(),
                        id: id.to_string(),
                        body: &*event,
                    };
                    let payload = serde_json::to_vec(&published).unwrap_or_default();
                    if let Err(e) = fanout.cluster.publish(&event_subject(&event), payload).await {
                        tracing::warn!(error = %e, user = %event.user_id, "an event did not reach the other nodes");
                    }
                }
            }
        });
    }

    fn spawn_notices_out(
        &self,
        shutdown: &Shutdown,
        mut notices: mpsc::Receiver<Notice>,
        origin: String,
    ) {
        let (fanout, stop) = (self.clone(), shutdown.clone());
        shutdown.spawn(async move {
            loop {
                let notice = tokio::select! {
                    _ = stop.cancelled() => break,
                    notice = notices.recv() => match notice {
                        Some(notice) => notice,
                        None => break,
                    },
                };
                let published = Published {
                    origin: origin.clone(),
                    id: uuid::Uuid::new_v4().to_string(),
                    body: notice,
                };
                let payload = serde_json::to_vec(&published).unwrap_or_default();
                if let Err(e) = fanout.cluster.publish(NOTICES, payload).await {
                    tracing::warn!(error = %e, "a subscription change did not reach the other nodes");
                }
            }
        });
    }

    fn spawn_notices_in(&self, shutdown: &Shutdown, node: String) {
        let (fanout, stop) = (self.clone(), shutdown.clone());
        shutdown.spawn(async move {
            let mut notices = loop {
                match fanout.cluster.subscribe(NOTICES).await {
                    Ok(notices) => break notices,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for other nodes' subscription changes; trying again");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(REFRESH) => {}
                        }
                    }
                }
            };
            loop {
                let message = tokio::select! {
                    _ = stop.cancelled() => break,
                    message = notices.next() => match message {
                        Some(message) => message,
                        None => break,
                    },
                };
                match serde_json::from_slice::<Published<Notice>>(&message.payload) {
                    Ok(published) if published.origin == node => {}
                    Ok(published) => match published.body {
                        // Listen for the new subscription's events before its initial
                        // state goes out, so that no event after it slips past.
                        Notice::SubscriptionPut { record, initial } => {
                            if fanout.hub.holds_set(&record.channel_set_id) {
                                fanout.listen_for(std::slice::from_ref(&record.target)).await;
                            }
                            fanout.hub.apply_notice(Notice::SubscriptionPut {
                                record: record.clone(),
                                initial: Vec::new(),
                            });
                            fanout.hub.enqueue_initial(&record, initial);
                        }
                        // What is no longer needed goes with the next sweep.
                        other => fanout.hub.apply_notice(other),
                    },
                    Err(e) => tracing::warn!(error = %e, "an unreadable subscription change from another node; ignored"),
                }
            }
        });
    }

    fn spawn_delivery(&self, shutdown: &Shutdown, node: String) {
        let Some(mut inbox) = self
            .inbox_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let (hub, stop) = (self.hub.clone(), shutdown.clone());
        shutdown.spawn(async move {
            let seen: moka::sync::Cache<String, ()> = moka::sync::Cache::new(SEEN);
            loop {
                let message = tokio::select! {
                    _ = stop.cancelled() => break,
                    message = inbox.recv() => match message {
                        Some(message) => message,
                        None => break,
                    },
                };
                match serde_json::from_slice::<Published<TelephonyEvent>>(&message.payload) {
                    Ok(published) if published.origin == node => {}
                    Ok(published) => {
                        if seen.contains_key(&published.id) {
                            continue;
                        }
                        let id: Arc<str> = Arc::from(published.id.as_str());
                        seen.insert(published.id, ());
                        hub.deliver_as(&published.body, Some(&id));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "an unreadable event from another node; ignored")
                    }
                }
            }
        });
    }
}
