//! XEP-0198 across broken connections: a resumable session whose connection broke is
//! parked in a task of its own (still bound and available, queuing stanzas) until it is
//! resumed, times out, overflows, or the server stops; every way it ends bounces its queue
//! and updates presence and the router. A malformed `<resume/>` is refused without taking
//! the parked session over.

use crate::xmpp::error::StanzaCondition;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use tokio::sync::oneshot;

use super::login::Authenticated;
use super::transport::Transport;
use super::{send, Bound, ClientService};
use crate::shutdown::Shutdown;
use crate::xmpp::error::{StreamCondition, XmppError};
use crate::xmpp::router::Outbound;
use crate::xmpp::sm::{self, StreamManagement};

/// A parked session (XEP-0198) waiting to be resumed: its account, and the way to take it
/// over from the task that holds it.
pub(super) struct Parked {
    account: String,
    takeover: oneshot::Sender<oneshot::Sender<Box<Bound>>>,
}

impl ClientService {
    /// Parks a resumable session (XEP-0198) until it is resumed, it times out, too much
    /// queues up for it, it is replaced, or the server stops.
    pub(super) fn park(self: &Arc<Self>, mut bound: Box<Bound>, shutdown: Shutdown) {
        let Some(id) = bound.sm.as_ref().and_then(|sm| sm.id.clone()) else {
            return;
        };
        let (takeover, mut requests) = oneshot::channel::<oneshot::Sender<Box<Bound>>>();
        self.parked().insert(
            id.clone(),
            Parked {
                account: bound.presence.bare.to_string(),
                takeover,
            },
        );
        let service = Arc::clone(self);
        let stop = shutdown.clone();
        shutdown.spawn(async move {
            let deadline = tokio::time::Instant::now()
                + Duration::from_secs(service.settings.sm_resume_timeout_secs);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = stop.cancelled() => break,
                    request = &mut requests => {
                        if let Ok(reply) = request {
                            match reply.send(bound) {
                                Ok(()) => return,
                                Err(returned) => bound = returned,
                            }
                        }
                        break;
                    }
                    item = bound.queue.recv() => match (item, bound.sm.as_mut()) {
                        (Some(Outbound::Stanza(stanza)), Some(sm)) => {
                            if sm.sent(*stanza) > service.settings.sm_max_unacked.get() {
                                break;
                            }
                        }
                        _ => break,
                    },
                }
            }
            service.parked().remove(&id);
            tracing::info!(jid = %bound.presence.full, "a parked session was not resumed");
            service.end_session(&mut bound).await;
        });
    }

    pub(super) fn parked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `<resume previd h/>` after authentication: `Some` with the parked session, its
    /// unacknowledged stanzas written again; `None` after `<failed/>` (the client may bind).
    pub(super) async fn resume<T: Transport>(
        &self,
        transport: &mut T,
        account: &Authenticated,
        request: &Element,
    ) -> Result<Option<Box<Bound>>, XmppError> {
        let account = account.account();
        let previd = request.attr("previd").unwrap_or_default();
        // A malformed request leaves the parked session as it was.
        let Some(handled) = request.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
            transport.write(&sm::failed(StanzaCondition::BadRequest))?;
            transport.flush().await?;
            return Ok(None);
        };
        let parked = {
            let mut parked = self.parked();
            match parked.remove(previd) {
                Some(p) if p.account == account => Some(p),
                Some(p) => {
                    parked.insert(previd.to_owned(), p);
                    None
                }
                None => None,
            }
        };
        let taken = match parked {
            Some(parked) => {
                let (reply, taken) = oneshot::channel();
                match parked.takeover.send(reply) {
                    Ok(()) => taken.await.ok(),
                    Err(_) => None,
                }
            }
            None => None,
        };
        let Some(mut resumed) = taken else {
            transport.write(&sm::failed(StanzaCondition::ItemNotFound))?;
            transport.flush().await?;
            return Ok(None);
        };
        let Some(state) = resumed.sm.as_mut() else {
            // Only sessions with stream management are parked; ended like any other.
            self.end_session(&mut resumed).await;
            transport.write(&sm::failed(StanzaCondition::ItemNotFound))?;
            transport.flush().await?;
            return Ok(None);
        };
        if state.ack(handled).is_err() {
            self.end_session(&mut resumed).await;
            return Err(XmppError::stream(
                StreamCondition::UndefinedCondition,
                "the resumption acknowledges more than was sent",
            ));
        }
        let id = state.id.clone().unwrap_or_default();
        transport.write(&StreamManagement::nonza(
            "resumed",
            &[("previd", &id), ("h", &state.inbound.to_string())],
        ))?;
        for stanza in state.take_unacked() {
            send(transport, &mut resumed.sm, &stanza)?;
        }
        resumed.resumed = true;
        Ok(Some(resumed))
    }
}
