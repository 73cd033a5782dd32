//! The cluster's register of live XMPP connections: which node holds each component
//! connection and each client session, so that any node can route a stanza to it. Only
//! the PostgreSQL store has one ([`super::Store::routes`]); a single node keeps its
//! connections in its router alone.
//!
//! Entries are only as alive as their node: each node holds a lease
//! ([`RouteStore::renew_lease`]) that it renews every few seconds, and every query skips
//! the entries of a node whose lease ran out; the next renewal by any node deletes them.
//! A node that died with `kill -9` therefore stops being routed to once its lease ends,
//! and NATS tells the senders at once that nobody listens there meanwhile.
//!
//! Every change notifies `bridgehead_routes` with the entry's address;
//! [`RouteChanges`] collects those for the node's copy of the register.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

/// What kind of connection an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// A XEP-0114 component connection; the address is the component's domain.
    Component,
    /// A client session; the address is the account's bare JID.
    Client,
}

impl RouteKind {
    /// Its word in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Component => "component",
            RouteKind::Client => "client",
        }
    }

    /// The kind `word` names.
    pub fn parse(word: &str) -> Result<Self, StoreError> {
        match word {
            "component" => Ok(RouteKind::Component),
            "client" => Ok(RouteKind::Client),
            other => Err(StoreError::Corrupt(format!("route kind {other:?}"))),
        }
    }
}

/// One live connection on some node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The node that holds it.
    pub node: String,
    /// The connection's id on that node.
    pub connection: u64,
    /// Component or client.
    pub kind: RouteKind,
    /// Component domain or bare JID, lower case.
    pub address: String,
    /// The client's resource (empty for a component).
    pub resource: String,
    /// The client's presence priority.
    pub priority: i32,
    /// Whether the client has sent available presence.
    pub available: bool,
}

/// How many connections one component may have across the cluster, and what a
/// connection beyond that does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimLimit {
    /// Live connections allowed in the whole cluster.
    pub max: usize,
    /// Whether the newest connection pushes out the oldest (`replace`) instead of being
    /// refused (`reject`, `balance`).
    pub replace: bool,
    /// This node's live connections of the component (they are the router's to count:
    /// its own entries may lag a moment behind).
    pub local_live: usize,
}

/// The register.
#[async_trait]
pub trait RouteStore: Send + Sync + 'static {
    /// Holds `node`'s lease for another `lease`, deletes the entries (and leases) of nodes
    /// whose lease ran out, and returns the nodes with a lease.
    async fn renew_lease(&self, node: &str, lease: Duration) -> Result<Vec<String>, StoreError>;

    /// Deletes every entry of `node` (a node starting again has none yet).
    async fn clear_node(&self, node: &str) -> Result<(), StoreError>;

    /// Adds the component connection `route` if `limit` allows, atomically across nodes;
    /// under `replace`, deletes the other nodes' oldest entries that it pushes out and
    /// returns them. `Err(Full)` when refused.
    async fn claim(&self, route: &Route, limit: ClaimLimit) -> Result<Vec<Route>, StoreError>;

    /// Adds (or replaces) `route`.
    async fn add(&self, route: &Route) -> Result<(), StoreError>;

    /// Deletes one entry.
    async fn remove(&self, node: &str, connection: u64) -> Result<(), StoreError>;

    /// Records a client's presence priority and availability.
    async fn set_presence(
        &self,
        node: &str,
        connection: u64,
        priority: i32,
        available: bool,
    ) -> Result<(), StoreError>;

    /// The nodes whose lease still runs.
    async fn live_nodes(&self) -> Result<Vec<String>, StoreError>;

    /// The live nodes with at least one component connected, in order.
    async fn component_nodes(&self) -> Result<Vec<String>, StoreError>;

    /// The live entries for `address` (or every live entry with `None`).
    async fn entries(&self, address: Option<&str>) -> Result<Vec<Route>, StoreError>;

    /// The addresses whose entries changed, as notified.
    fn changes(&self) -> &RouteChanges;
}

/// Most addresses remembered between two reads; past it the reader reads everything.
const CHANGES_KEPT: usize = 10_000;

/// Addresses whose entries changed since the reader last took them, and a wake-up for
/// the reader.
#[derive(Debug, Default)]
pub struct RouteChanges {
    pending: std::sync::Mutex<Changed>,
    wake: tokio::sync::Notify,
}

/// What changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changed {
    /// Everything may have (the notifications were interrupted or too many).
    pub everything: bool,
    /// These addresses.
    pub addresses: HashSet<String>,
}

impl RouteChanges {
    fn pending(&self) -> std::sync::MutexGuard<'_, Changed> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `address` changed.
    pub fn changed(&self, address: &str) {
        {
            let mut pending = self.pending();
            if !pending.everything {
                if pending.addresses.len() >= CHANGES_KEPT {
                    pending.everything = true;
                    pending.addresses.clear();
                } else {
                    pending.addresses.insert(address.to_owned());
                }
            }
        }
        self.wake.notify_one();
    }

    /// Anything may have changed.
    pub fn everything(&self) {
        {
            let mut pending = self.pending();
            pending.everything = true;
            pending.addresses.clear();
        }
        self.wake.notify_one();
    }

    /// Waits until something changed, and takes it.
    pub async fn next(&self) -> Changed {
        loop {
            let taken = std::mem::take(&mut *self.pending());
            if taken.everything || !taken.addresses.is_empty() {
                return taken;
            }
            self.wake.notified().await;
        }
    }
}
