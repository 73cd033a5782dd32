//! What the admin API sees of the router: every live component connection and client
//! session with where it came from, since when, its stanza counts and queue depth; and
//! the administrator's kick, which queues `<policy-violation/>` for the connection like
//! any other close command (a connection whose queue is full is being closed already, and
//! counts as kicked).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use super::{Outbound, Router};
use crate::xmpp::error::StreamCondition;

/// One connection as the session that owns it describes it; the session counts its
/// stanzas here.
#[derive(Debug)]
pub struct ConnectionInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// `component`, `c2s` or `websocket`.
    pub transport: &'static str,
    /// When it authenticated.
    pub since: time::OffsetDateTime,
    stanzas_in: AtomicU64,
    stanzas_out: AtomicU64,
    sm: AtomicBool,
}

impl ConnectionInfo {
    /// A connection from `peer` over `transport`, authenticated now.
    pub fn new(peer: SocketAddr, transport: &'static str) -> Arc<Self> {
        Arc::new(ConnectionInfo {
            peer,
            transport,
            since: time::OffsetDateTime::now_utc(),
            stanzas_in: AtomicU64::new(0),
            stanzas_out: AtomicU64::new(0),
            sm: AtomicBool::new(false),
        })
    }

    /// `count` stanzas were read from the peer.
    pub fn received(&self, count: u64) {
        self.stanzas_in.fetch_add(count, Ordering::Relaxed);
    }

    /// `count` stanzas were written to the peer.
    pub fn sent(&self, count: u64) {
        self.stanzas_out.fetch_add(count, Ordering::Relaxed);
    }

    /// XEP-0198 was enabled on the session.
    pub fn stream_management_enabled(&self) {
        self.sm.store(true, Ordering::Relaxed);
    }
}

/// One live connection, as the admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    /// The component's name, or the session's full JID.
    pub name: String,
    /// `component`, `c2s` or `websocket`.
    pub transport: &'static str,
    /// The peer's address.
    pub remote: String,
    /// When it authenticated (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub since: time::OffsetDateTime,
    /// Stanzas read from the peer.
    pub stanzas_in: u64,
    /// Stanzas written to the peer.
    pub stanzas_out: u64,
    /// Items waiting in the connection's send queue.
    pub queue_depth: usize,
    /// Client sessions: whether XEP-0198 is on (`enabled`) or not (`off`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sm: Option<&'static str>,
}

impl ConnectionView {
    fn new(name: String, info: &ConnectionInfo, queue: &mpsc::Sender<Outbound>) -> Self {
        ConnectionView {
            name,
            transport: info.transport,
            remote: info.peer.to_string(),
            since: info.since,
            stanzas_in: info.stanzas_in.load(Ordering::Relaxed),
            stanzas_out: info.stanzas_out.load(Ordering::Relaxed),
            queue_depth: queue.max_capacity() - queue.capacity(),
            sm: None,
        }
    }
}

impl Router {
    /// Every live component connection, by name.
    pub fn component_views(&self) -> Vec<ConnectionView> {
        let mut views: Vec<ConnectionView> = self
            .slots()
            .iter()
            .flat_map(|(name, slot)| {
                slot.connections
                    .iter()
                    .map(|c| ConnectionView::new(name.clone(), &c.info, &c.queue))
            })
            .collect();
        views.sort_by(|a, b| (&a.name, a.since).cmp(&(&b.name, b.since)));
        views
    }

    /// Every bound client session, by JID.
    pub fn client_views(&self) -> Vec<ConnectionView> {
        let mut views: Vec<ConnectionView> = self
            .clients()
            .iter()
            .flat_map(|(bare, sessions)| {
                sessions.iter().map(move |c| {
                    let mut view =
                        ConnectionView::new(format!("{bare}/{}", c.resource), &c.info, &c.queue);
                    view.sm = Some(if c.info.sm.load(Ordering::Relaxed) {
                        "enabled"
                    } else {
                        "off"
                    });
                    view
                })
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// Closes every connection of component `name` with `policy-violation`. Returns how
    /// many were told to close.
    pub fn kick_component(&self, name: &str) -> usize {
        let slots = self.slots();
        slots
            .get(&name.to_ascii_lowercase())
            .map_or(0, |slot| kick(slot.connections.iter().map(|c| &c.queue)))
    }

    /// Closes a client session (full JID) or every session of an account (bare JID) with
    /// `policy-violation`. Returns how many were told to close.
    pub fn kick_client(&self, jid: &jid::Jid) -> usize {
        let bare = jid.to_bare().as_str().to_lowercase();
        let clients = self.clients();
        let Some(sessions) = clients.get(&bare) else {
            return 0;
        };
        let resource = jid.resource().map(|r| r.as_str());
        kick(
            sessions
                .iter()
                .filter(|c| resource.is_none_or(|r| r == c.resource))
                .map(|c| &c.queue),
        )
    }
}

/// Queues the close for each connection; counts those still open (a full queue belongs to
/// a connection the router is closing already as too slow).
fn kick<'a>(queues: impl Iterator<Item = &'a mpsc::Sender<Outbound>>) -> usize {
    queues
        .filter(|queue| {
            !matches!(
                queue.try_send(Outbound::Close(StreamCondition::PolicyViolation)),
                Err(mpsc::error::TrySendError::Closed(_))
            )
        })
        .count()
}
