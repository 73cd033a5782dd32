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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minidom::Element;
use tokio::sync::{mpsc, oneshot};

use super::error::StreamCondition;
use super::stanza;
use crate::config::{OnConflict, ResourceConflict};

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
/// [`WRITE_BATCH`] stanzas, stopping at a close command (returned second; the stanzas
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
}

#[derive(Debug, Default)]
struct Slot {
    connections: Vec<Connection>,
    next: usize,
    sticky: HashMap<String, u64>,
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
    /// Addressed to the server itself; the caller answers it.
    ToServer,
    /// Held for a component that dropped moments ago.
    Held,
    /// Bounced to the sender with this stanza error.
    Bounced(&'static str),
    /// Dropped without an answer (an error stanza, or presence nobody takes).
    Dropped,
}

/// One bound client resource.
#[derive(Debug)]
struct ClientConnection {
    id: u64,
    resource: String,
    queue: mpsc::Sender<Outbound>,
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
    Undelivered(&'static str),
}

#[derive(Debug)]
struct Inner {
    domain: String,
    queue_len: usize,
    hold_limit: usize,
    next_id: AtomicU64,
    components: Mutex<HashMap<String, Slot>>,
    /// Bound client resources by lower-case bare JID.
    clients: Mutex<HashMap<String, Vec<ClientConnection>>>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// The router handle, cheap to clone.
#[derive(Debug, Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl Router {
    /// A router for the server `domain`; each connection queue holds `queue_len` items and
    /// each held component at most `hold_limit` stanzas.
    pub fn new(domain: &str, queue_len: usize, hold_limit: usize) -> Self {
        Router {
            inner: Arc::new(Inner {
                domain: domain.to_ascii_lowercase(),
                queue_len: queue_len.max(1),
                hold_limit,
                next_id: AtomicU64::new(1),
                components: Mutex::new(HashMap::new()),
                clients: Mutex::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
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

    /// Registers a connection for component `name` under `policy`.
    pub fn attach(&self, name: &str, policy: &ComponentPolicy) -> Result<Attachment, AttachError> {
        let name = name.to_ascii_lowercase();
        let (tx, rx) = mpsc::channel(self.inner.queue_len);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
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
                    slot.sticky.retain(|_, owner| *owner != old.id);
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
        slot.connections.push(Connection { id, queue: tx });
        drop(slots);
        for stanza in overflow {
            self.bounce(stanza, "resource-constraint");
        }
        Ok(Attachment { id, queue: rx })
    }

    /// Removes a connection (a no-op if it was already replaced). When it was the last one
    /// and `hold_secs > 0`, stanzas for the component are held for that long.
    pub fn detach(&self, name: &str, id: u64, hold_secs: u64) {
        let name = name.to_ascii_lowercase();
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(&name) {
            slot.connections.retain(|c| c.id != id);
            slot.sticky.retain(|_, owner| *owner != id);
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
            self.bounce(stanza, "recipient-unavailable");
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

    /// Routes `stanza`. `is_known_component` says whether a domain is a configured
    /// component (connected or not).
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
    pub fn route(&self, stanza: Element, is_known_component: impl Fn(&str) -> bool) -> Delivery {
        self.route_with(stanza, &is_known_component)
    }

    fn route_with(&self, stanza: Element, is_known_component: &dyn Fn(&str) -> bool) -> Delivery {
        let to = stanza.attr("to").map(str::to_owned);
        let Some(to) = to else {
            return Delivery::ToServer;
        };
        let Ok(jid) = jid::Jid::new(&to) else {
            return self.bounce(stanza, "jid-malformed");
        };
        let domain = jid.domain().as_str().to_ascii_lowercase();
        if domain == self.inner.domain {
            return match jid.node() {
                None => self.answer_pending(stanza),
                Some(_) => self.deliver_local(&jid, stanza, is_known_component),
            };
        }
        let known = is_known_component(&domain);
        let delivery = match self.deliver(&domain, &to, stanza) {
            Ok(true) => {
                crate::telemetry::routed(&domain);
                return Delivery::Delivered;
            }
            Ok(false) => {
                crate::telemetry::held(&domain);
                return Delivery::Held;
            }
            Err(stanza) if known => self.bounce(stanza, "service-unavailable"),
            Err(stanza) => self.bounce(stanza, "remote-server-not-found"),
        };
        if let Delivery::Bounced(condition) = delivery {
            crate::telemetry::bounced(if known { &domain } else { "unknown" }, condition);
        }
        delivery
    }

    /// Queues `stanza` for a connection of component `domain` (`Ok(true)`), or holds it
    /// while the component is briefly away (`Ok(false)`); gives it back if neither.
    fn deliver(&self, domain: &str, full_to: &str, stanza: Element) -> Result<bool, Element> {
        let mut slots = self.slots();
        let Some(slot) = slots.get_mut(domain) else {
            return Err(stanza);
        };
        if slot.connections.is_empty() {
            let holding = slot.held_until.is_some_and(|until| until > Instant::now());
            if holding && slot.held.len() < self.inner.hold_limit {
                slot.held.push_back(stanza);
                return Ok(false);
            }
            return Err(stanza);
        }
        let chosen = match slot.sticky.get(full_to).copied() {
            Some(id) if slot.connections.iter().any(|c| c.id == id) => id,
            _ => {
                let index = slot.next % slot.connections.len();
                slot.next = slot.next.wrapping_add(1);
                let id = slot.connections[index].id;
                if slot.connections.len() > 1 && full_to.contains('/') {
                    slot.sticky.insert(full_to.to_owned(), id);
                }
                id
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

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<ClientConnection>>> {
        self.inner.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds `resource` of the account `bare` (lower-case). A resource in use is taken over
    /// (the old session gets `conflict`) or refused, as `conflict` says.
    pub fn attach_client(
        &self,
        bare: &str,
        resource: &str,
        conflict: ResourceConflict,
    ) -> Result<Attachment, AttachError> {
        let (tx, rx) = mpsc::channel(self.inner.queue_len);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut clients = self.clients();
        // Most accounts have one resource: no room reserved for more.
        let sessions = clients
            .entry(bare.to_owned())
            .or_insert_with(|| Vec::with_capacity(1));
        if let Some(index) = sessions.iter().position(|c| c.resource == resource) {
            if conflict == ResourceConflict::Reject {
                return Err(AttachError::Conflict {
                    name: format!("{bare}/{resource}"),
                    live: 1,
                    policy: "reject",
                });
            }
            let old = sessions.remove(index);
            let _ = old
                .queue
                .try_send(Outbound::Close(StreamCondition::Conflict));
        }
        sessions.push(ClientConnection {
            id,
            resource: resource.to_owned(),
            queue: tx,
            presence: None,
            priority: 0,
        });
        Ok(Attachment { id, queue: rx })
    }

    /// Unbinds a client session (a no-op if it was already replaced).
    pub fn detach_client(&self, bare: &str, id: u64) {
        let mut clients = self.clients();
        if let Some(sessions) = clients.get_mut(bare) {
            sessions.retain(|c| c.id != id);
            if sessions.is_empty() {
                clients.remove(bare);
            }
        }
    }

    /// Records a session's broadcast presence: `Some` available (with its priority),
    /// `None` unavailable. Returns whether the session was available before.
    pub fn set_client_presence(&self, bare: &str, id: u64, presence: Option<Element>) -> bool {
        let mut clients = self.clients();
        let Some(session) = clients
            .get_mut(bare)
            .and_then(|sessions| sessions.iter_mut().find(|c| c.id == id))
        else {
            return false;
        };
        session.priority = presence.as_ref().map_or(0, stanza::priority);
        std::mem::replace(&mut session.presence, presence.map(Box::new)).is_some()
    }

    /// The current available presences of an account's resources.
    pub fn available_presences(&self, bare: &str) -> Vec<Element> {
        self.clients()
            .get(bare)
            .map(|sessions| {
                sessions
                    .iter()
                    .filter_map(|c| c.presence.as_deref().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The full JIDs of an account's bound resources.
    pub fn bound_resources(&self, bare: &str) -> Vec<String> {
        self.clients()
            .get(bare)
            .map(|sessions| {
                sessions
                    .iter()
                    .map(|c| format!("{bare}/{}", c.resource))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether an account has a bound resource.
    pub fn is_online(&self, bare: &str) -> bool {
        self.clients().contains_key(bare)
    }

    /// Sends `request` (an iq with an `id`) and waits up to `timeout` for the answer that
    /// `responder` sends back to the server domain.
    pub async fn request(
        &self,
        request: Element,
        responder: &str,
        timeout: Duration,
        is_known_component: impl Fn(&str) -> bool,
    ) -> Result<Element, RequestError> {
        let id = request.attr("id").unwrap_or_default().to_owned();
        let (tx, rx) = oneshot::channel();
        self.pending().insert(
            id.clone(),
            Pending {
                responder: responder.to_ascii_lowercase(),
                answer: tx,
            },
        );
        let outcome = match self.route(request, is_known_component) {
            Delivery::Delivered | Delivery::Held => match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(answer)) => Ok(answer),
                _ => Err(RequestError::Timeout),
            },
            Delivery::Bounced(condition) => Err(RequestError::Undelivered(condition)),
            _ => Err(RequestError::Undelivered("service-unavailable")),
        };
        self.pending().remove(&id);
        outcome
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.inner.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stanza to the bare server domain: the answer to a pending request (only from the
    /// entity asked), or the caller's to answer.
    fn answer_pending(&self, stanza: Element) -> Delivery {
        let is_answer = stanza::kind(&stanza) == Some(stanza::Kind::Iq)
            && matches!(stanza.attr("type"), Some("result" | "error"));
        if is_answer {
            let id = stanza.attr("id").unwrap_or_default();
            let from_domain = stanza
                .attr("from")
                .and_then(|from| jid::Jid::new(from).ok())
                .map(|jid| jid.domain().as_str().to_ascii_lowercase());
            let mut pending = self.pending();
            let asked = pending
                .get(id)
                .is_some_and(|p| Some(&p.responder) == from_domain.as_ref());
            if asked {
                if let Some(waiting) = pending.remove(id) {
                    let _ = waiting.answer.send(stanza);
                    return Delivery::Delivered;
                }
            }
        }
        Delivery::ToServer
    }

    /// Delivery to an account at the server's domain (see [`Router::route`]).
    fn deliver_local(
        &self,
        to: &jid::Jid,
        stanza: Element,
        is_known_component: &dyn Fn(&str) -> bool,
    ) -> Delivery {
        let bare = to.to_bare().as_str().to_lowercase();
        let kind = stanza::kind(&stanza);
        let stanza_type = stanza.attr("type").unwrap_or_default().to_owned();
        let mut targets: Vec<(u64, mpsc::Sender<Outbound>)> = Vec::new();
        {
            let clients = self.clients();
            let sessions = clients.get(&bare).map(Vec::as_slice).unwrap_or_default();
            let exact = to
                .resource()
                .and_then(|r| sessions.iter().find(|c| c.resource == r.as_str()));
            match (exact, kind) {
                (Some(session), _) => targets.push((session.id, session.queue.clone())),
                (None, Some(stanza::Kind::Iq)) if to.resource().is_some() => {
                    drop(clients);
                    return self.bounce(stanza, "service-unavailable");
                }
                (None, Some(stanza::Kind::Iq)) => return Delivery::ToServer,
                (None, Some(stanza::Kind::Presence)) if to.resource().is_some() => {
                    return Delivery::Dropped;
                }
                (None, Some(stanza::Kind::Presence)) if stanza_type == "probe" => {
                    let prober = stanza.attr("from").unwrap_or_default().to_owned();
                    let from_component = jid::Jid::new(&prober).is_ok_and(|jid| {
                        is_known_component(&jid.domain().as_str().to_ascii_lowercase())
                    });
                    if !from_component {
                        return Delivery::Dropped;
                    }
                    let answers: Vec<Element> = sessions
                        .iter()
                        .filter_map(|c| c.presence.as_deref().cloned())
                        .map(|mut presence| {
                            stanza::set_address(&mut presence, "to", &prober);
                            presence
                        })
                        .collect();
                    drop(clients);
                    for answer in answers {
                        self.route_with(answer, is_known_component);
                    }
                    return Delivery::Delivered;
                }
                (None, Some(stanza::Kind::Presence)) => {
                    targets.extend(
                        sessions
                            .iter()
                            .filter(|c| c.presence.is_some())
                            .map(|c| (c.id, c.queue.clone())),
                    );
                }
                (None, Some(stanza::Kind::Message)) => {
                    if stanza_type == "groupchat" {
                        drop(clients);
                        return self.bounce(stanza, "service-unavailable");
                    }
                    let available = sessions
                        .iter()
                        .filter(|c| c.presence.is_some() && c.priority >= 0);
                    let top = available.clone().map(|c| c.priority).max();
                    targets.extend(
                        available
                            .filter(|c| stanza_type == "headline" || Some(c.priority) == top)
                            .map(|c| (c.id, c.queue.clone())),
                    );
                }
                (None, None) => return Delivery::Dropped,
            }
        }
        if targets.is_empty() {
            return match kind {
                Some(stanza::Kind::Message) if stanza_type != "headline" => {
                    self.bounce(stanza, "service-unavailable")
                }
                _ => Delivery::Dropped,
            };
        }
        let last = targets.len() - 1;
        let mut stanza = Some(stanza);
        let mut delivered = false;
        let mut refused = None;
        for (index, (id, queue)) in targets.into_iter().enumerate() {
            let copy = if index == last {
                stanza.take()
            } else {
                stanza.clone()
            };
            let Some(copy) = copy else { break };
            match queue.try_send(Outbound::Stanza(Box::new(copy))) {
                Ok(()) => delivered = true,
                Err(mpsc::error::TrySendError::Full(item)) => {
                    // The session stopped reading; its writes time out and it ends.
                    tracing::warn!(account = %bare, "client send queue full: disconnecting the slow session");
                    self.detach_client(&bare, id);
                    refused = Some(item);
                }
                Err(mpsc::error::TrySendError::Closed(item)) => {
                    self.detach_client(&bare, id);
                    refused = Some(item);
                }
            }
        }
        match refused {
            _ if delivered => Delivery::Delivered,
            Some(Outbound::Stanza(stanza)) => self.bounce(*stanza, "resource-constraint"),
            _ => Delivery::Dropped,
        }
    }

    /// Sends `condition` back to the stanza's sender (unless it is an error, or presence).
    fn bounce(&self, stanza: Element, condition: &'static str) -> Delivery {
        match stanza::error_reply(&stanza, condition) {
            Some(reply) => {
                tracing::debug!(condition, to = ?stanza.attr("to"), "bouncing stanza");
                match self.route(reply, |_| false) {
                    Delivery::Delivered | Delivery::Held | Delivery::ToServer => {
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
mod tests {
    use super::*;

    fn policy(max: u32, on_conflict: OnConflict) -> ComponentPolicy {
        ComponentPolicy {
            max_connections: max,
            on_conflict,
            hold_secs: 0,
        }
    }

    fn message(from: &str, to: &str) -> Element {
        Element::builder("message", "jabber:component:accept")
            .attr(rxml::xml_ncname!("from").to_owned(), from)
            .attr(rxml::xml_ncname!("to").to_owned(), to)
            .build()
    }

    fn stanza_of(item: Option<Outbound>) -> Element {
        match item {
            Some(Outbound::Stanza(e)) => *e,
            other => panic!("expected a stanza, got {other:?}"),
        }
    }

    #[test]
    fn replace_closes_the_old_connection_with_conflict() {
        let router = Router::new("example.com", 8, 100);
        let mut old = router
            .attach("b.example.com", &policy(1, OnConflict::Replace))
            .unwrap();
        let _new = router
            .attach("b.example.com", &policy(1, OnConflict::Replace))
            .unwrap();
        assert!(matches!(
            old.queue.try_recv(),
            Ok(Outbound::Close(StreamCondition::Conflict))
        ));
        assert_eq!(router.connection_count("b.example.com"), 1);
    }

    #[test]
    fn reject_refuses_the_new_connection() {
        let router = Router::new("example.com", 8, 100);
        let _old = router
            .attach("b.example.com", &policy(1, OnConflict::Reject))
            .unwrap();
        assert!(router
            .attach("b.example.com", &policy(1, OnConflict::Reject))
            .is_err());
    }

    #[test]
    fn balance_spreads_keeps_full_jids_sticky_and_fails_over() {
        let router = Router::new("example.com", 64, 100);
        let p = policy(2, OnConflict::Balance);
        let mut a = router.attach("b.example.com", &p).unwrap();
        let mut b = router.attach("b.example.com", &p).unwrap();
        assert!(
            router.attach("b.example.com", &p).is_err(),
            "max_connections applies"
        );
        for i in 0..4 {
            router.route(
                message("x@c.example.com", &format!("room{i}@b.example.com")),
                |_| true,
            );
        }
        let (mut on_a, mut on_b) = (0, 0);
        while a.queue.try_recv().is_ok() {
            on_a += 1;
        }
        while b.queue.try_recv().is_ok() {
            on_b += 1;
        }
        assert_eq!((on_a, on_b), (2, 2), "round-robin");
        for _ in 0..3 {
            router.route(
                message("x@c.example.com", "room@b.example.com/nick"),
                |_| true,
            );
        }
        let (mut on_a, mut on_b) = (0, 0);
        while a.queue.try_recv().is_ok() {
            on_a += 1;
        }
        while b.queue.try_recv().is_ok() {
            on_b += 1;
        }
        assert!(
            on_a == 3 || on_b == 3,
            "a full JID sticks to one connection: {on_a}/{on_b}"
        );
        router.detach("b.example.com", a.id, 0);
        router.route(
            message("x@c.example.com", "room@b.example.com/nick"),
            |_| true,
        );
        assert_eq!(
            stanza_of(b.queue.try_recv().ok()).attr("to"),
            Some("room@b.example.com/nick")
        );
    }

    #[test]
    fn undeliverable_stanzas_bounce_with_the_right_condition() {
        let router = Router::new("example.com", 8, 100);
        let mut sender = router
            .attach("c.example.com", &policy(1, OnConflict::Replace))
            .unwrap();
        assert_eq!(
            router.route(message("x@c.example.com", "y@down.example.com"), |d| d
                == "down.example.com"),
            Delivery::Bounced("service-unavailable")
        );
        let bounce = stanza_of(sender.queue.try_recv().ok());
        assert_eq!(bounce.attr("type"), Some("error"));
        assert_eq!(bounce.attr("to"), Some("x@c.example.com"));
        assert_eq!(bounce.attr("from"), Some("y@down.example.com"));
        assert!(bounce
            .get_child("error", "jabber:component:accept")
            .unwrap()
            .has_child("service-unavailable", crate::xmpp::ns::STANZAS));

        assert_eq!(
            router.route(message("x@c.example.com", "y@elsewhere.org"), |_| false),
            Delivery::Bounced("remote-server-not-found")
        );
        let mut error = message("x@c.example.com", "y@elsewhere.org");
        error.set_attr(
            rxml::Namespace::NONE,
            rxml::xml_ncname!("type").to_owned(),
            "error",
        );
        assert_eq!(
            router.route(error, |_| false),
            Delivery::Dropped,
            "no error in answer to an error"
        );
        assert_eq!(
            router.route(message("x@c.example.com", "example.com"), |_| false),
            Delivery::ToServer
        );
    }

    #[test]
    fn a_full_queue_disconnects_the_slow_consumer_and_bounces() {
        let router = Router::new("example.com", 1, 100);
        let mut slow = router
            .attach("slow.example.com", &policy(1, OnConflict::Replace))
            .unwrap();
        let _sender = router
            .attach("c.example.com", &policy(1, OnConflict::Replace))
            .unwrap();
        assert_eq!(
            router.route(message("x@c.example.com", "slow.example.com"), |_| true),
            Delivery::Delivered
        );
        assert_eq!(
            router.route(message("x@c.example.com", "slow.example.com"), |_| true),
            Delivery::Bounced("service-unavailable")
        );
        assert_eq!(router.connection_count("slow.example.com"), 0);
        assert!(slow.queue.try_recv().is_ok());
    }

    #[test]
    fn held_stanzas_reach_the_component_when_it_returns() {
        let router = Router::new("example.com", 8, 2);
        let mut sender = router
            .attach("c.example.com", &policy(1, OnConflict::Replace))
            .unwrap();
        let first = router
            .attach("b.example.com", &policy(1, OnConflict::Replace))
            .unwrap();
        router.detach("b.example.com", first.id, 30);
        for i in 0..2 {
            assert_eq!(
                router.route(
                    message("x@c.example.com", &format!("r{i}@b.example.com")),
                    |_| true
                ),
                Delivery::Held
            );
        }
        assert_eq!(
            router.route(message("x@c.example.com", "r2@b.example.com"), |_| true),
            Delivery::Bounced("service-unavailable"),
            "the hold is bounded"
        );
        assert!(sender.queue.try_recv().is_ok(), "the overflow was bounced");
        let mut back = router
            .attach("b.example.com", &policy(1, OnConflict::Replace))
            .unwrap();
        assert_eq!(
            stanza_of(back.queue.try_recv().ok()).attr("to"),
            Some("r0@b.example.com")
        );
        assert_eq!(
            stanza_of(back.queue.try_recv().ok()).attr("to"),
            Some("r1@b.example.com")
        );
    }

    #[test]
    fn held_stanzas_that_expire_are_bounced() {
        let router = Router::new("example.com", 8, 10);
        let mut sender = router
            .attach("c.example.com", &policy(1, OnConflict::Replace))
            .unwrap();
        let gone = router
            .attach("b.example.com", &policy(1, OnConflict::Replace))
            .unwrap();
        router.detach("b.example.com", gone.id, 1);
        assert_eq!(
            router.route(message("x@c.example.com", "b.example.com"), |_| true),
            Delivery::Held
        );
        assert_eq!(router.expire_held(Instant::now()), 0);
        assert_eq!(
            router.expire_held(Instant::now() + Duration::from_secs(2)),
            1
        );
        let bounce = stanza_of(sender.queue.try_recv().ok());
        assert_eq!(bounce.attr("type"), Some("error"));
        assert!(bounce
            .get_child("error", "jabber:component:accept")
            .unwrap()
            .has_child("recipient-unavailable", crate::xmpp::ns::STANZAS));
        assert_eq!(
            router.route(message("x@c.example.com", "b.example.com"), |_| true),
            Delivery::Bounced("service-unavailable"),
            "after the hold, stanzas bounce at once"
        );
    }
}
