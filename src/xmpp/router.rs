//! The router: which live connection gets a stanza.
//!
//! Sessions register here after authenticating and get an [`Attachment`]: a bounded queue
//! of [`Outbound`] items that only they drain. [`Router::route`] looks at `to` only
//! (namespace-agnostic) and never waits: it `try_send`s into the target's queue. A full
//! queue means the target cannot keep up; it is told to close (`resource-constraint`) and
//! the stanza is bounced to its sender. Every stanza that cannot be delivered gets a stanza
//! error back (never an error in answer to an error): a known component with no live
//! connection gives `service-unavailable`, a domain nobody serves gives
//! `remote-server-not-found`. Bridgehead never treats a configured component as a remote
//! server.
//!
//! Component names (`bridge1.example.com`) own their whole domain: `bridge1.example.com`,
//! `room@bridge1.example.com` and `room@bridge1.example.com/nick` all reach it. With
//! `on_conflict = "balance"` one name has several connections: a full JID sticks to the
//! connection that first received a stanza for it, the rest go round-robin, and when a
//! connection drops its JIDs move to the others.
//!
//! The files: this one holds component slots and routing; `router/clients.rs` client
//! sessions and local delivery; `router/requests.rs` the server's own requests.

mod clients;
mod live;
mod remote;
mod requests;

pub use live::{ConnectionInfo, ConnectionView};
pub use remote::{Forward, Reach, Remote, RemoteQueues, Takeover, Write};

use crate::xmpp::error::StanzaCondition;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minidom::Element;
use tokio::sync::{mpsc, oneshot};

use super::error::StreamCondition;
use super::stanza;
use crate::telephony::OnConflict;

/// What a session is asked to write or do.
#[derive(Debug)]
pub enum Outbound {
    /// Write this stanza (boxed, so an idle queue's slots stay small).
    Stanza(Box<Element>),
    /// Send this stream error and close.
    Close(StreamCondition),
}

/// Most queued stanzas a session writes before one flush.
const WRITE_BATCH: usize = 64;

/// What a session writes next: `first` and whatever else is queued, up to
/// `WRITE_BATCH` stanzas, stopping at a close command (returned second; the stanzas
/// before it are still written).
pub fn take_batch(
    first: Option<Outbound>,
    queue: &mut mpsc::Receiver<Outbound>,
) -> (Vec<Element>, Option<StreamCondition>) {
    let mut stanzas = Vec::new();
    let mut next = first;
    while let Some(item) = next {
        match item {
            Outbound::Stanza(stanza) => stanzas.push(*stanza),
            Outbound::Close(condition) => return (stanzas, Some(condition)),
        }
        next = if stanzas.len() < WRITE_BATCH {
            queue.try_recv().ok()
        } else {
            None
        };
    }
    (stanzas, None)
}

/// A component's settings as the router applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentPolicy {
    /// Live connections allowed.
    pub max_connections: u32,
    /// What a connection beyond the first does.
    pub on_conflict: OnConflict,
    /// Seconds to hold stanzas after the last connection drops (0 = bounce at once).
    pub hold_secs: u64,
}

#[derive(Debug)]
struct Connection {
    id: u64,
    queue: mpsc::Sender<Outbound>,
    info: Arc<ConnectionInfo>,
    attached: Instant,
}

/// Which connection a full JID sticks to under `balance`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// One of this node's.
    Local(u64),
    /// One on another node (that node picks which).
    Remote(Arc<str>),
}

#[derive(Debug, Default)]
struct Slot {
    connections: Vec<Connection>,
    next: usize,
    sticky: HashMap<String, Target>,
    /// While no connection is live: stanzas held until `held_until`.
    held: VecDeque<Element>,
    held_until: Option<Instant>,
}

/// Why a component connection was not attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// The name already has as many connections as it may.
    #[error("{name} already has {live} live connection(s) (on_conflict = {policy})")]
    Conflict {
        /// The component.
        name: String,
        /// Its live connections.
        live: usize,
        /// The policy in force.
        policy: &'static str,
    },
    /// The cluster's shared register cannot be reached to claim the connection.
    #[error("the cluster's register of connections is unavailable: {0}")]
    Unavailable(String),
}

/// A registered connection: its queue, and its id for [`Router::detach`].
#[derive(Debug)]
pub struct Attachment {
    /// The connection id.
    pub id: u64,
    /// Stanzas and commands for this connection.
    pub queue: mpsc::Receiver<Outbound>,
}

/// Where a stanza went.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued for a connection.
    Delivered,
    /// Addressed to the server itself: handed back (not copied) for the caller to answer.
    ToServer(Box<Element>),
    /// Held for a component that dropped moments ago.
    Held,
    /// Bounced to the sender with this stanza error.
    Bounced(StanzaCondition),
    /// Dropped without an answer (an error stanza, or presence nobody takes).
    Dropped,
}

/// The component names the router knows (configured or stored, connected or not): a
/// stanza to one that is not connected bounces with `service-unavailable`, to any other
/// domain with `remote-server-not-found`, and only a known component's presence probes are
/// answered. The component directory is the one the server uses; tests give a closure.
pub trait KnownComponents: Send + Sync {
    /// Whether `domain` (lower case) names a component.
    fn is_known(&self, domain: &str) -> bool;
}

impl std::fmt::Debug for dyn KnownComponents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KnownComponents")
    }
}

impl<F: Fn(&str) -> bool + Send + Sync> KnownComponents for F {
    fn is_known(&self, domain: &str) -> bool {
        self(domain)
    }
}

/// One bound client resource.
#[derive(Debug)]
struct ClientConnection {
    id: u64,
    resource: String,
    queue: mpsc::Sender<Outbound>,
    info: Arc<ConnectionInfo>,
    /// The last available presence the resource broadcast; `None` while unavailable.
    presence: Option<Box<Element>>,
    priority: i32,
}

/// A request the server sent and waits an answer to (see [`Router::request`]).
#[derive(Debug)]
struct Pending {
    responder: String,
    answer: oneshot::Sender<Element>,
}

/// Why [`Router::request`] got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Nothing came back in time.
    #[error("no answer within the deadline")]
    Timeout,
    /// The request could not be delivered (`condition`).
    #[error("the request was not delivered: {0}")]
    Undelivered(StanzaCondition),
}

#[derive(Debug)]
struct Inner {
    /// The component names (see [`KnownComponents`]).
    known: Arc<dyn KnownComponents>,
    domain: String,
    queue_len: usize,
    hold_limit: usize,
    next_id: AtomicU64,
    components: Mutex<HashMap<String, Slot>>,
    /// Bound client resources by lower-case bare JID.
    clients: Mutex<HashMap<String, Vec<ClientConnection>>>,
    pending: Mutex<HashMap<String, Pending>>,
    /// The other nodes, in a cluster.
    remote: std::sync::OnceLock<Arc<Remote>>,
}

/// The router handle, cheap to clone.
#[derive(Debug, Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl Router {
    /// A router for the server `domain`; each connection queue holds `queue_len` items and
    /// each held component at most `hold_limit` stanzas; `known` names the components.
    pub fn new(
        domain: &str,
        queue_len: usize,
        hold_limit: usize,
        known: Arc<dyn KnownComponents>,
    ) -> Self {
        Router {
            inner: Arc::new(Inner {
                known,
                domain: domain.to_ascii_lowercase(),
                queue_len: queue_len.max(1),
                hold_limit,
                next_id: AtomicU64::new(1),
                components: Mutex::new(HashMap::new()),
                clients: Mutex::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                remote: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The server's own domain.
    pub fn domain(&self) -> &str {
        &self.inner.domain
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // A poisoned lock only means a panic elsewhere; the map itself is still consistent
        // because every mutation is a single insert/remove.
        self.inner
            .components
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh connection id.
    fn next_connection_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a connection for component `name` under `policy` (this node alone: see
    /// [`Router::attach_component`] for a cluster).
    pub fn attach(
        &self,
        name: &str,
        policy: &ComponentPolicy,
        info: Arc<ConnectionInfo>,
    ) -> Result<Attachment, AttachError> {
        self.attach_as(name, policy, info, self.next_connection_id())
    }

    fn attach_as(
        &self,
        name: &str,
        policy: &ComponentPolicy,
        info: Arc<ConnectionInfo>,
        id: u64,
    ) -> Result<Attachment, AttachError> {
        let name = name.to_ascii_lowercase();
        let (tx, rx) = mpsc::channel(self.inner.queue_len);
        let mut slots = self.slots();
        let slot = slots.entry(name.clone()).or_default();
        let live = slot.connections.len();
        let max = policy.max_connections.max(1) as usize;
        match policy.on_conflict {
            OnConflict::Replace if live >= max => {
                // The oldest connections make room for the new one.
                let excess = live + 1 - max;
                for old in slot.connections.drain(..excess) {
                    let _ = old
                        .queue
                        .try_send(Outbound::Close(StreamCondition::Conflict));
                    slot.sticky
                        .retain(|_, owner| *owner != Target::Local(old.id));
                }
            }
            OnConflict::Reject | OnConflict::Balance if live >= max => {
                return Err(AttachError::Conflict {
                    name,
                    live,
                    policy: policy.on_conflict.as_str(),
                });
            }
            _ => {}
        }
        // Stanzas held while the component was away go to the new connection first.
        slot.held_until = None;
        while let Some(stanza) = slot.held.pop_front() {
            if let Err(mpsc::error::TrySendError::Full(Outbound::Stanza(stanza))) =
                tx.try_send(Outbound::Stanza(Box::new(stanza)))
            {
                slot.held.push_front(*stanza);
                break;
            }
        }
        let overflow: Vec<Element> = slot.held.drain(..).collect();
        slot.connections.push(Connection {
            id,
            queue: tx,
            info,
            attached: Instant::now(),
        });
        drop(slots);
        for stanza in overflow {
            self.bounce(stanza, StanzaCondition::ResourceConstraint);
        }
        Ok(Attachment { id, queue: rx })
    }

    /// Removes a connection (a no-op if it was already replaced). When it was the last one
    /// and `hold_secs > 0`, stanzas for the component are held for that long.
    pub fn detach(&self, name: &str, id: u64, hold_secs: u64) {
        let name = name.to_ascii_lowercase();
        if let Some(remote) = self.remote() {
            remote.write(Write::Remove(id));
        }
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(&name) {
            slot.connections.retain(|c| c.id != id);
            slot.sticky.retain(|_, owner| *owner != Target::Local(id));
            if slot.connections.is_empty() {
                if hold_secs > 0 {
                    slot.held_until = Some(Instant::now() + Duration::from_secs(hold_secs));
                } else {
                    slots.remove(&name);
                }
            }
        }
    }

    /// Bounces held stanzas whose component did not come back in time (`recipient-unavailable`).
    /// Returns how many were bounced.
    pub fn expire_held(&self, now: Instant) -> usize {
        let mut expired = Vec::new();
        {
            let mut slots = self.slots();
            slots.retain(|_, slot| match slot.held_until {
                Some(until) if slot.connections.is_empty() && until <= now => {
                    expired.extend(slot.held.drain(..));
                    false
                }
                _ => true,
            });
        }
        let count = expired.len();
        for stanza in expired {
            self.bounce(stanza, StanzaCondition::RecipientUnavailable);
        }
        count
    }

    /// Names of the components with at least one live connection.
    pub fn connected_components(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .slots()
            .iter()
            .filter(|(_, slot)| !slot.connections.is_empty())
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Live connections of one component.
    pub fn connection_count(&self, name: &str) -> usize {
        self.slots()
            .get(&name.to_ascii_lowercase())
            .map_or(0, |s| s.connections.len())
    }

    /// Routes `stanza`.
    ///
    /// Stanzas to the server's own domain: to the bare domain, the caller answers
    /// ([`Delivery::ToServer`]), unless it is the answer to a [`Router::request`]. To a
    /// user, the RFC 6121 §8.5 rules apply: a full JID reaches that resource; a message
    /// to a bare JID (or to a full JID nobody has bound) reaches the available resources
    /// of the highest non-negative priority, and bounces with `service-unavailable` when
    /// there are none (nothing is stored offline); presence to a bare JID reaches every
    /// available resource; an iq to a bare JID is the server's to answer on the account's
    /// behalf ([`Delivery::ToServer`]). A presence probe from a component is answered with
    /// the user's current presence.
    pub fn route(&self, stanza: Element) -> Delivery {
        self.route_within(stanza, Reach::Cluster)
    }

    /// [`Router::route`], to other nodes' connections too or not, as `reach` says.
    fn route_within(&self, stanza: Element, reach: Reach) -> Delivery {
        let to = stanza.attr("to").map(str::to_owned);
        let Some(to) = to else {
            return Delivery::ToServer(Box::new(stanza));
        };
        let Ok(jid) = jid::Jid::new(&to) else {
            return self.bounce(stanza, StanzaCondition::JidMalformed);
        };
        let domain = jid.domain().as_str().to_ascii_lowercase();
        if domain == self.inner.domain {
            return match jid.node() {
                None => self.answer_pending(stanza, reach),
                Some(_) => self.deliver_local(&jid, stanza, reach),
            };
        }
        let known = self.inner.known.is_known(&domain);
        let delivery = match self.deliver(&domain, &to, stanza, reach) {
            Ok(true) => {
                crate::telemetry::routed(&domain);
                return Delivery::Delivered;
            }
            Ok(false) => {
                crate::telemetry::held(&domain);
                return Delivery::Held;
            }
            Err(stanza) if known => self.bounce(stanza, StanzaCondition::ServiceUnavailable),
            Err(stanza) => self.bounce(stanza, StanzaCondition::RemoteServerNotFound),
        };
        if let Delivery::Bounced(condition) = delivery {
            crate::telemetry::bounced(if known { &domain } else { "unknown" }, condition.as_str());
        }
        delivery
    }

    /// Queues `stanza` for a connection of component `domain` (`Ok(true)`: one of this
    /// node's, or sent to the node of another's), or holds it while the component is
    /// briefly away (`Ok(false)`); gives it back if neither.
    fn deliver(
        &self,
        domain: &str,
        full_to: &str,
        stanza: Element,
        reach: Reach,
    ) -> Result<bool, Element> {
        let remote: Vec<Arc<str>> = self
            .remote_entries(domain, reach)
            .into_iter()
            .map(|r| Arc::from(r.node))
            .collect();
        let mut slots = self.slots();
        let slot = match slots.get_mut(domain) {
            Some(slot) => slot,
            None if remote.is_empty() => return Err(stanza),
            None => slots.entry(domain.to_owned()).or_default(),
        };
        if slot.connections.is_empty() && remote.is_empty() {
            let holding = slot.held_until.is_some_and(|until| until > Instant::now());
            if holding && slot.held.len() < self.inner.hold_limit {
                slot.held.push_back(stanza);
                return Ok(false);
            }
            return Err(stanza);
        }
        let live = |target: &Target| match target {
            Target::Local(id) => slot.connections.iter().any(|c| c.id == *id),
            Target::Remote(node) => remote.contains(node),
        };
        let chosen = match slot.sticky.get(full_to) {
            Some(target) if live(target) => target.clone(),
            _ => {
                let count = slot.connections.len() + remote.len();
                let index = slot.next % count;
                slot.next = slot.next.wrapping_add(1);
                let target = match slot.connections.get(index) {
                    Some(connection) => Target::Local(connection.id),
                    None => Target::Remote(Arc::clone(&remote[index - slot.connections.len()])),
                };
                if count > 1 && full_to.contains('/') {
                    slot.sticky.insert(full_to.to_owned(), target.clone());
                }
                target
            }
        };
        let chosen = match chosen {
            Target::Local(id) => id,
            Target::Remote(node) => {
                drop(slots);
                return self.forward(&node, stanza).map(|()| true);
            }
        };
        let Some(connection) = slot.connections.iter().find(|c| c.id == chosen) else {
            return Err(stanza);
        };
        match connection
            .queue
            .try_send(Outbound::Stanza(Box::new(stanza)))
        {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(Outbound::Stanza(stanza))) => {
                let stanza = *stanza;
                tracing::warn!(component = %domain, "send queue full: disconnecting the slow connection");
                let _ = connection
                    .queue
                    .try_send(Outbound::Close(StreamCondition::ResourceConstraint));
                slot.connections.retain(|c| c.id != chosen);
                Err(stanza)
            }
            Err(mpsc::error::TrySendError::Closed(Outbound::Stanza(stanza))) => {
                let stanza = *stanza;
                slot.connections.retain(|c| c.id != chosen);
                Err(stanza)
            }
            Err(_) => Ok(true),
        }
    }

    /// Sends `condition` back to the stanza's sender (unless it is an error, or presence).
    fn bounce(&self, stanza: Element, condition: StanzaCondition) -> Delivery {
        match stanza::error_reply(&stanza, condition) {
            Some(reply) => {
                tracing::debug!(%condition, to = ?stanza.attr("to"), "bouncing stanza");
                match self.route(reply) {
                    Delivery::Delivered | Delivery::Held | Delivery::ToServer(_) => {
                        Delivery::Bounced(condition)
                    }
                    _ => Delivery::Dropped,
                }
            }
            None => Delivery::Dropped,
        }
    }
}

#[cfg(test)]
mod tests;
