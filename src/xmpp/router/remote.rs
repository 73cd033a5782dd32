//! The router in a cluster: what it knows of the other nodes' connections, and how a
//! stanza for one of them leaves.
//!
//! ```text
//! attach (component) ── claim in the shared register (cluster-wide max_connections,
//!                        reject / replace / balance) ── local attach
//! attach / detach / presence (client), detach (component) ── Write queue ── register
//! register change (NOTIFY) ── Remote::reload ── copy of the other nodes' entries
//! route(stanza): no local target, or balance picks another node's connection
//!   ── Forward queue ── NATS to that node ── its router delivers there (route_here)
//! ```
//!
//! A stanza goes to another node only from the node that first routed it
//! ([`Reach::Cluster`]); the node that receives it delivers among its own connections
//! ([`Reach::Here`]) and bounces from there if they are gone, so a stanza never travels
//! twice. Entries of this node that vanish from the register (another node's `replace`
//! pushed them out) close their connections with `conflict`. The tasks that drive all of
//! this live in `xmpp/cluster.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use minidom::Element;
use tokio::sync::mpsc;

use super::{AttachError, Attachment, ComponentPolicy, ConnectionInfo, Outbound, Router};
use crate::telephony::routes::{ClaimLimit, Route, RouteKind, Routes};
use crate::telephony::{OnConflict, TelephonyError};
use crate::xmpp::error::{StanzaCondition, StreamCondition};

/// Whether a stanza may still go to another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// First routing: anywhere in the cluster.
    Cluster,
    /// It came from another node: this node's connections only.
    Here,
}

/// A stanza for another node.
#[derive(Debug)]
pub struct Forward {
    /// The node.
    pub node: Arc<str>,
    /// The stanza.
    pub stanza: Element,
}

/// A change of this node's entries, for the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A client session bound.
    Add(Route),
    /// A connection ended.
    Remove(u64),
    /// A client's presence changed.
    Presence {
        /// The session.
        connection: u64,
        /// Its priority.
        priority: i32,
        /// Whether it is available.
        available: bool,
    },
}

/// A client session of another node that a bind here takes over
/// (`resource_conflict = "replace"`): that node closes it with `conflict`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Takeover {
    /// The node that holds the session (not sent: it is the message's subject).
    #[serde(skip)]
    pub node: Arc<str>,
    /// The session's connection id on that node.
    pub connection: u64,
    /// The account (lower-case bare JID).
    pub bare: String,
    /// The resource.
    pub resource: String,
}

/// The router's cluster side.
#[derive(Debug)]
pub struct Remote {
    node: Arc<str>,
    routes: Routes,
    /// The other nodes' entries by address.
    others: RwLock<HashMap<String, Vec<Route>>>,
    forwards: mpsc::Sender<Forward>,
    writes: mpsc::Sender<Write>,
    takeovers: mpsc::Sender<Takeover>,
    /// A write was lost (its queue was full): the register needs all of this node's
    /// entries again.
    resync: AtomicBool,
}

/// What the cluster tasks drain.
#[derive(Debug)]
pub struct RemoteQueues {
    /// Stanzas for other nodes.
    pub forwards: mpsc::Receiver<Forward>,
    /// Register writes, in order.
    pub writes: mpsc::Receiver<Write>,
    /// Other nodes' sessions to close.
    pub takeovers: mpsc::Receiver<Takeover>,
}

/// Stanzas waiting to leave for other nodes.
const FORWARD_QUEUE: usize = 16_384;
/// Register writes waiting.
const WRITE_QUEUE: usize = 16_384;
/// Takeovers waiting to leave.
const TAKEOVER_QUEUE: usize = 1_024;

impl Remote {
    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The register.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    fn others(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Vec<Route>>> {
        self.others.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The other nodes' entries for `address`.
    pub(super) fn entries(&self, address: &str) -> Vec<Route> {
        self.others().get(address).cloned().unwrap_or_default()
    }

    /// Replaces what is known of `address` (`rows`: every node's live entries).
    fn learn(&self, address: &str, rows: Vec<Route>) {
        let others: Vec<Route> = rows.into_iter().filter(|r| *r.node != *self.node).collect();
        let mut map = self.others.write().unwrap_or_else(|p| p.into_inner());
        if others.is_empty() {
            map.remove(address);
        } else {
            map.insert(address.to_owned(), others);
        }
    }

    /// Forgets `node`'s entries until the register says otherwise.
    fn forget_node(&self, node: &str) {
        let mut map = self.others.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, entries| {
            entries.retain(|e| e.node != node);
            !entries.is_empty()
        });
    }

    /// Queues a register write; a full queue asks for a resync instead.
    pub(super) fn write(&self, write: Write) {
        if self.writes.try_send(write).is_err() {
            self.resync.store(true, Ordering::Release);
        }
    }

    /// Whether a resync is due (and clears the flag).
    pub fn take_resync(&self) -> bool {
        self.resync.swap(false, Ordering::AcqRel)
    }

    /// Asks for a resync (the register may have lost this node's entries).
    pub fn want_resync(&self) {
        self.resync.store(true, Ordering::Release);
    }

    fn own(&self, connection: u64, kind: RouteKind, address: &str, resource: &str) -> Route {
        Route {
            node: self.node.to_string(),
            connection,
            kind,
            address: address.to_owned(),
            resource: resource.to_owned(),
            priority: 0,
            available: false,
        }
    }
}

impl Router {
    /// Makes this router one of a cluster's as `node`, over the shared register `routes`;
    /// the queues are for the tasks in `xmpp/cluster.rs`.
    pub fn join_cluster(&self, node: &str, routes: Routes) -> Option<(Arc<Remote>, RemoteQueues)> {
        let (forwards, forward_rx) = mpsc::channel(FORWARD_QUEUE);
        let (writes, write_rx) = mpsc::channel(WRITE_QUEUE);
        let (takeovers, takeover_rx) = mpsc::channel(TAKEOVER_QUEUE);
        let remote = Arc::new(Remote {
            node: node.into(),
            routes,
            others: RwLock::default(),
            forwards,
            writes,
            takeovers,
            resync: AtomicBool::new(false),
        });
        self.inner.remote.set(Arc::clone(&remote)).ok()?;
        Some((
            remote,
            RemoteQueues {
                forwards: forward_rx,
                writes: write_rx,
                takeovers: takeover_rx,
            },
        ))
    }

    pub(super) fn remote(&self) -> Option<&Arc<Remote>> {
        self.inner.remote.get()
    }

    /// This node's name in the cluster, if it is in one.
    pub(super) fn node_name(&self) -> Option<&str> {
        self.remote().map(|remote| &*remote.node)
    }

    /// The other nodes' entries for `address`, when `reach` allows them.
    pub(super) fn remote_entries(&self, address: &str, reach: Reach) -> Vec<Route> {
        match (reach, self.remote()) {
            (Reach::Cluster, Some(remote)) => remote.entries(address),
            _ => Vec::new(),
        }
    }

    /// Sends `stanza` to `node`; gives it back when it cannot leave.
    pub(super) fn forward(&self, node: &str, stanza: Element) -> Result<(), Element> {
        let Some(remote) = self.remote() else {
            return Err(stanza);
        };
        let forward = Forward {
            node: node.into(),
            stanza,
        };
        remote.forwards.try_send(forward).map_err(|e| {
            tracing::warn!(%node, "the queue of stanzas for other nodes is full");
            e.into_inner().stanza
        })
    }

    /// Routes a stanza another node sent here: to this node's connections only.
    pub fn route_here(&self, stanza: Element) -> super::Delivery {
        self.route_within(stanza, Reach::Here)
    }

    /// Answers a stanza that could not reach another node with `condition`.
    pub fn bounce_forwarded(&self, stanza: Element, condition: StanzaCondition) {
        self.bounce(stanza, condition);
    }

    /// Nobody listens for `node` any more (NATS said so): stanzas stop going there until
    /// the register is read again (every change, and every [`LEASE`](crate::xmpp::cluster::LEASE)).
    pub fn node_gone(&self, node: &str) {
        if let Some(remote) = self.remote() {
            remote.forget_node(node);
        }
    }

    /// Attaches a component connection; in a cluster, first claims it in the shared
    /// register, so that `max_connections` and `on_conflict` hold across nodes.
    pub async fn attach_component(
        &self,
        name: &str,
        policy: &ComponentPolicy,
        info: Arc<ConnectionInfo>,
    ) -> Result<Attachment, AttachError> {
        let Some(remote) = self.remote().cloned() else {
            return self.attach(name, policy, info);
        };
        let name = name.to_ascii_lowercase();
        let id = self.next_connection_id();
        let limit = ClaimLimit {
            max: policy.max_connections.max(1) as usize,
            replace: policy.on_conflict == OnConflict::Replace,
            local_live: self.connection_count(&name),
        };
        let route = remote.own(id, RouteKind::Component, &name, "");
        match remote.routes.claim(&route, limit).await {
            Ok(evicted) => {
                for old in evicted {
                    tracing::info!(component = %name, node = %old.node, "replaced a connection on another node");
                }
            }
            Err(TelephonyError::Quota { .. }) => {
                return Err(AttachError::Conflict {
                    live: limit.max,
                    name,
                    policy: policy.on_conflict.as_str(),
                })
            }
            Err(e) => return Err(AttachError::Unavailable(e.to_string())),
        }
        self.attach_as(&name, policy, info, id).inspect_err(|_| {
            remote.write(Write::Remove(id));
        })
    }

    /// Takes in the register's live entries for `address` (every node's), as read from
    /// `asked` on: the other nodes' are remembered, and this node's component connections
    /// attached before then that have no entry any more were pushed out by another node,
    /// and close with `conflict`.
    pub fn learn_routes(&self, address: &str, rows: Vec<Route>, asked: Instant) {
        let Some(remote) = self.remote() else { return };
        let own: HashSet<u64> = rows
            .iter()
            .filter(|r| *r.node == *remote.node && r.kind == RouteKind::Component)
            .map(|r| r.connection)
            .collect();
        remote.learn(address, rows);
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(address) {
            let (kept, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut slot.connections)
                .into_iter()
                .partition(|c| own.contains(&c.id) || c.attached >= asked);
            slot.connections = kept;
            for old in gone {
                tracing::info!(component = %address, "a connection on another node replaced this one");
                let _ = old
                    .queue
                    .try_send(Outbound::Close(StreamCondition::Conflict));
                slot.sticky
                    .retain(|_, owner| *owner != super::Target::Local(old.id));
            }
        }
    }

    /// Takes in every live entry of the register at once.
    pub fn learn_all_routes(&self, rows: Vec<Route>, asked: Instant) {
        let Some(remote) = self.remote() else { return };
        let mut by_address: HashMap<String, Vec<Route>> = HashMap::new();
        for row in rows {
            by_address.entry(row.address.clone()).or_default().push(row);
        }
        let mut addresses: HashSet<String> = remote.others().keys().cloned().collect();
        addresses.extend(self.slots().keys().cloned());
        addresses.extend(by_address.keys().cloned());
        for address in addresses {
            let rows = by_address.remove(&address).unwrap_or_default();
            self.learn_routes(&address, rows, asked);
        }
    }

    /// This node's live connections as register entries (for a resync).
    pub fn own_routes(&self) -> Vec<Route> {
        let Some(remote) = self.remote() else {
            return Vec::new();
        };
        let mut routes: Vec<Route> = self
            .slots()
            .iter()
            .flat_map(|(name, slot)| {
                slot.connections
                    .iter()
                    .map(|c| remote.own(c.id, RouteKind::Component, name, ""))
            })
            .collect();
        for (bare, sessions) in self.clients().iter() {
            routes.extend(sessions.iter().map(|c| Route {
                priority: c.priority,
                available: c.presence.is_some(),
                ..remote.own(c.id, RouteKind::Client, bare, &c.resource)
            }));
        }
        routes
    }

    /// Tells the register of a client session's change, in a cluster.
    pub(super) fn client_written(&self, write: impl FnOnce(&Remote) -> Write) {
        if let Some(remote) = self.remote() {
            remote.write(write(remote));
        }
    }

    /// Asks the other nodes that hold a session of `bare/resource` (in this node's copy of
    /// the register) to close it: a bind here took the resource over.
    pub(super) fn take_over_elsewhere(&self, bare: &str, resource: &str) {
        let Some(remote) = self.remote() else { return };
        for entry in remote.entries(bare) {
            if entry.kind != RouteKind::Client || entry.resource != resource {
                continue;
            }
            let takeover = Takeover {
                node: entry.node.as_str().into(),
                connection: entry.connection,
                bare: bare.to_owned(),
                resource: entry.resource,
            };
            if remote.takeovers.try_send(takeover).is_err() {
                tracing::warn!(jid = %format_args!("{bare}/{resource}"), "the queue of takeovers for other nodes is full; the other session stays");
            }
        }
    }

    /// Closes this node's session that a bind on another node took over, if it is still
    /// the one named (a newer bind here keeps its session). Returns whether one closed.
    pub fn taken_over(&self, takeover: &Takeover) -> bool {
        let mut clients = self.clients();
        let Some(sessions) = clients.get_mut(&takeover.bare) else {
            return false;
        };
        let Some(index) = sessions
            .iter()
            .position(|c| c.id == takeover.connection && c.resource == takeover.resource)
        else {
            return false;
        };
        let old = sessions.remove(index);
        if sessions.is_empty() {
            clients.remove(&takeover.bare);
        }
        drop(clients);
        tracing::info!(jid = %format_args!("{}/{}", takeover.bare, takeover.resource), "a bind on another node took this session over");
        let _ = old
            .queue
            .try_send(Outbound::Close(StreamCondition::Conflict));
        self.client_written(|_| Write::Remove(old.id));
        true
    }

    /// The register entry of a newly bound client session.
    pub(super) fn client_route(remote: &Remote, id: u64, bare: &str, resource: &str) -> Write {
        Write::Add(remote.own(id, RouteKind::Client, bare, resource))
    }
}
