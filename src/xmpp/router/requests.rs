//! Requests the server makes of a component (`auth_via_component`): the iq goes out, the
//! answer from the entity asked comes back to the waiting caller, or a timeout.

use crate::xmpp::error::StanzaCondition;
use std::collections::HashMap;
use std::time::Duration;

use minidom::Element;
use tokio::sync::oneshot;

use super::{Delivery, Pending, RequestError, Router};
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
        let id = request.attr("id").unwrap_or_default().to_owned();
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
    pub(super) fn answer_pending(&self, stanza: Element) -> Delivery {
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
        Delivery::ToServer(Box::new(stanza))
    }
}
