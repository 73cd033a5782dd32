//! Client sessions on the router: binding and unbinding resources under the
//! `resource_conflict` policy, their presence, and RFC 6121 §8.5 delivery to a local
//! account (full JID, bare JID by type and priority, or the server's answer).

use crate::xmpp::error::StanzaCondition;
use std::collections::HashMap;

use minidom::Element;
use tokio::sync::mpsc;

use std::sync::atomic::Ordering;

use super::{
    AttachError, Attachment, ClientConnection, ConnectionInfo, Delivery, Outbound, Reach, Router,
    Write,
};
use crate::config::ResourceConflict;
use crate::telephony::routes::RouteKind;
use crate::xmpp::error::StreamCondition;
use crate::xmpp::stanza;
use std::sync::Arc;

impl Router {
    pub(super) fn clients(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Vec<ClientConnection>>> {
        self.inner.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds `resource` of the account `bare` (lower-case). A resource in use is taken over
    /// (the old session gets `conflict`) or refused, as `conflict` says.
    pub fn attach_client(
        &self,
        bare: &str,
        resource: &str,
        conflict: ResourceConflict,
        info: Arc<ConnectionInfo>,
    ) -> Result<Attachment, AttachError> {
        // Both policies hold across the cluster as far as this node's copy of the register
        // goes (milliseconds behind): `reject` counts the other nodes' bindings, `replace`
        // asks those nodes to close theirs once this one is bound.
        if conflict == ResourceConflict::Reject
            && self
                .remote_entries(bare, Reach::Cluster)
                .iter()
                .any(|e| e.kind == RouteKind::Client && e.resource == resource)
        {
            return Err(AttachError::Conflict {
                name: format!("{bare}/{resource}"),
                live: 1,
                policy: "reject",
            });
        }
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
            // Its own detach finds nothing left to remove: the register hears of it here.
            self.client_written(|_| Write::Remove(old.id));
        }
        sessions.push(ClientConnection {
            id,
            resource: resource.to_owned(),
            queue: tx,
            info,
            presence: None,
            priority: 0,
        });
        drop(clients);
        self.client_written(|remote| Router::client_route(remote, id, bare, resource));
        if conflict == ResourceConflict::Replace {
            self.take_over_elsewhere(bare, resource);
        }
        Ok(Attachment { id, queue: rx })
    }

    /// Unbinds a client session (a no-op if it was already replaced).
    pub fn detach_client(&self, bare: &str, id: u64) {
        let mut clients = self.clients();
        if let Some(sessions) = clients.get_mut(bare) {
            let before = sessions.len();
            sessions.retain(|c| c.id != id);
            let removed = sessions.len() < before;
            if sessions.is_empty() {
                clients.remove(bare);
            }
            drop(clients);
            if removed {
                self.client_written(|_| Write::Remove(id));
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
        let (priority, available) = (session.priority, presence.is_some());
        let was = std::mem::replace(&mut session.presence, presence.map(Box::new)).is_some();
        drop(clients);
        self.client_written(|_| Write::Presence {
            connection: id,
            priority,
            available,
        });
        was
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

    /// Sends `probe` (a presence probe for an account at this domain, from a session of
    /// this node) to the other nodes that hold available resources of that account: each
    /// answers it with their current presence, sent straight back to this node (its id
    /// names it: the prober's session may not be in their copy of the register yet).
    pub fn probe_other_nodes(&self, bare: &str, mut probe: Element) {
        let Some(node) = self.node_name() else {
            return;
        };
        probe.set_attr(
            rxml::Namespace::NONE,
            rxml::xml_ncname!("id").to_owned(),
            format!("{node}~probe"),
        );
        let remote = self.remote_entries(&bare.to_lowercase(), Reach::Cluster);
        let mut nodes: Vec<&str> = remote
            .iter()
            .filter(|e| e.available)
            .map(|e| e.node.as_str())
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        for node in nodes {
            let _ = self.forward(node, probe.clone());
        }
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

    /// Delivery to an account at the server's domain (see [`Router::route`]): to this
    /// node's sessions and, with [`Reach::Cluster`], to the nodes whose sessions the
    /// rules pick (each of those applies the same rules to its own sessions).
    pub(super) fn deliver_local(&self, to: &jid::Jid, stanza: Element, reach: Reach) -> Delivery {
        let bare = to.to_bare().as_str().to_lowercase();
        let kind = stanza::kind(&stanza);
        let stanza_type = stanza.attr("type").unwrap_or_default().to_owned();
        let remote = self.remote_entries(&bare, reach);
        let mut targets: Vec<(u64, mpsc::Sender<Outbound>)> = Vec::new();
        // Other nodes to send it to: theirs to deliver among their own sessions.
        let mut nodes: Vec<&str> = Vec::new();
        {
            let clients = self.clients();
            let sessions = clients.get(&bare).map(Vec::as_slice).unwrap_or_default();
            let exact = to
                .resource()
                .and_then(|r| sessions.iter().find(|c| c.resource == r.as_str()));
            let exact_remote = to
                .resource()
                .and_then(|r| remote.iter().find(|e| e.resource == r.as_str()));
            let available_remote = || remote.iter().filter(|e| e.available);
            match (exact, kind) {
                (Some(session), _) => targets.push((session.id, session.queue.clone())),
                (None, Some(_)) if exact_remote.is_some() => {
                    nodes.extend(exact_remote.map(|e| e.node.as_str()));
                }
                (None, Some(stanza::Kind::Iq)) if to.resource().is_some() => {
                    drop(clients);
                    return self.bounce(stanza, StanzaCondition::ServiceUnavailable);
                }
                (None, Some(stanza::Kind::Iq)) => return Delivery::ToServer(Box::new(stanza)),
                (None, Some(stanza::Kind::Presence)) if to.resource().is_some() => {
                    return Delivery::Dropped;
                }
                (None, Some(stanza::Kind::Presence)) if stanza_type == "probe" => {
                    let prober = stanza.attr("from").unwrap_or_default().to_owned();
                    let from_component = jid::Jid::new(&prober).is_ok_and(|jid| {
                        self.inner
                            .known
                            .is_known(&jid.domain().as_str().to_ascii_lowercase())
                    });
                    // Another node's probe for a session of its own (a client's own
                    // probes never leave its session), sent at that client's login: the
                    // answers go straight back to the node its id names.
                    let asking_node = (reach == Reach::Here)
                        .then(|| stanza.attr("id").and_then(|id| id.split_once('~')))
                        .flatten()
                        .map(|(node, _)| node.to_owned());
                    if !from_component && asking_node.is_none() {
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
                        match &asking_node {
                            Some(node) => {
                                let _ = self.forward(node, answer);
                            }
                            None => {
                                self.route(answer);
                            }
                        }
                    }
                    let mut asked: Vec<&str> =
                        available_remote().map(|e| e.node.as_str()).collect();
                    asked.sort_unstable();
                    asked.dedup();
                    for node in asked {
                        let _ = self.forward(node, stanza.clone());
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
                    nodes.extend(available_remote().map(|e| e.node.as_str()));
                }
                (None, Some(stanza::Kind::Message)) => {
                    if stanza_type == "groupchat" {
                        drop(clients);
                        return self.bounce(stanza, StanzaCondition::ServiceUnavailable);
                    }
                    let available = sessions
                        .iter()
                        .filter(|c| c.presence.is_some() && c.priority >= 0);
                    let available_remote = available_remote().filter(|e| e.priority >= 0);
                    let top = available
                        .clone()
                        .map(|c| c.priority)
                        .chain(available_remote.clone().map(|e| e.priority))
                        .max();
                    let headline = stanza_type == "headline";
                    targets.extend(
                        available
                            .filter(|c| headline || Some(c.priority) == top)
                            .map(|c| (c.id, c.queue.clone())),
                    );
                    nodes.extend(
                        available_remote
                            .filter(|e| headline || Some(e.priority) == top)
                            .map(|e| e.node.as_str()),
                    );
                }
                (None, None) => return Delivery::Dropped,
            }
        }
        nodes.sort_unstable();
        nodes.dedup();
        let mut forwarded = false;
        for node in nodes {
            forwarded |= self.forward(node, stanza.clone()).is_ok();
        }
        if targets.is_empty() {
            return match kind {
                _ if forwarded => Delivery::Delivered,
                Some(stanza::Kind::Message) if stanza_type != "headline" => {
                    self.bounce(stanza, StanzaCondition::ServiceUnavailable)
                }
                _ => Delivery::Dropped,
            };
        }
        let last = targets.len() - 1;
        let mut stanza = Some(stanza);
        let mut delivered = forwarded;
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
            Some(Outbound::Stanza(stanza)) => {
                self.bounce(*stanza, StanzaCondition::ResourceConstraint)
            }
            _ => Delivery::Dropped,
        }
    }
}
