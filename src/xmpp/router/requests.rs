//! Requests the server makes of a component (`auth_via_component`, Rayo): the iq goes out,
//! the answer from the entity asked comes back to the waiting caller, or a timeout.
//!
//! In a cluster the component may be connected to another node, whose router gets the
//! answer: the request's id is then `<node>~<id>`, and a node that gets an answer tagged
//! with another node's name sends it there.

use crate::xmpp::error::StanzaCondition;
use std::collections::HashMap;
use std::time::Duration;

use minidom::Element;
use tokio::sync::oneshot;

use super::{Delivery, Pending, Reach, RequestError, Router};

/// Between the asking node's name and the request's own id.
const REQUEST_TAG: char = '~';
use crate::xmpp::stanza;

impl Router {
    /// Sends `request` (an iq with an `id`) and waits up to `timeout` for the answer that
    /// `responder` sends back to the server domain.
    pub async fn request(
        &self,
        request: Element,
        responder: &str,
        timeout: Duration,
    ) -> Result<Element, RequestError> {
        let mut request = request;
        let mut id = request.attr("id").unwrap_or_default().to_owned();
        if let Some(remote) = self.remote() {
            id = format!("{}{REQUEST_TAG}{id}", remote.node());
            request.set_attr(
                rxml::Namespace::NONE,
                rxml::xml_ncname!("id").to_owned(),
                id.clone(),
            );
        }
        let (tx, rx) = oneshot::channel();
        self.pending().insert(
            id.clone(),
            Pending {
                responder: responder.to_ascii_lowercase(),
                answer: tx,
            },
        );
        let outcome = match self.route(request) {
            Delivery::Delivered | Delivery::Held => match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(answer)) => Ok(answer),
                _ => Err(RequestError::Timeout),
            },
            Delivery::Bounced(condition) => Err(RequestError::Undelivered(condition)),
            _ => Err(RequestError::Undelivered(
                StanzaCondition::ServiceUnavailable,
            )),
        };
        self.pending().remove(&id);
        outcome
    }

    pub(super) fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.inner.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stanza to the bare server domain: the answer to a pending request (only from the
    /// entity asked), or the caller's to answer.
    pub(super) fn answer_pending(&self, stanza: Element, reach: Reach) -> Delivery {
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
            drop(pending);
            if let Some(node) = self.asking_node(id, reach) {
                return match self.forward(&node, stanza) {
                    Ok(()) => Delivery::Delivered,
                    Err(stanza) => Delivery::ToServer(Box::new(stanza)),
                };
            }
        }
        Delivery::ToServer(Box::new(stanza))
    }

    /// The other node that asked the request answered by an iq with `id`, if its tag
    /// names one.
    fn asking_node(&self, id: &str, reach: Reach) -> Option<String> {
        let remote = self.remote().filter(|_| reach == Reach::Cluster)?;
        let (node, _) = id.split_once(REQUEST_TAG)?;
        (node != remote.node() && crate::config::is_node_name(node)).then(|| node.to_owned())
    }
}
