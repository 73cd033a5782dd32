//! Rayo (XEP-0327) towards the call bridges: Bridgehead is the Rayo client, each bridge
//! (an XEP-0114 component) a Rayo server.
//!
//! ```text
//! Telephony::place_call ── CallCarrier::dial(request)
//!   connected components not asked yet ── disco#info ──▶ (all at once)
//!                                      ◀── features include urn:xmpp:rayo:1? ── eligible
//!   (an answer is remembered while the component stays connected; a component that
//!    did not answer counts as no bridge for a minute, then is asked again)
//!   eligible bridges with room ([calls] max_calls_per_bridge), round-robin from the next:
//!   <iq type='set' to=bridge><dial xmlns='urn:xmpp:rayo:1' to=… from=…><header/>…</dial></iq>
//!   ◀── <iq type='result'><ref xmlns='urn:xmpp:rayo:1' uri='xmpp:callid@bridge'/></iq>
//!       an error, no ref, or no answer within rayo_timeout_secs: the next bridge
//! CallCarrier::command(call_ref, …) ── <iq type='set' to='callid@bridge'>…</iq>, awaited:
//!   <accept/> <answer/> <reject><busy/|decline/|error/></reject> <redirect to=…/> <hangup/>
//!   and, in urn:bridgehead:rayo:1 (docs/call-control.md), <hold/> <unhold/>
//! ```
//!
//! The bridge reports each call's progress as presence from the call's JID
//! (`callid@bridge`) to the server:
//!
//! ```text
//! <offer to from><header/>…</offer>  an incoming call: Telephony::offered_call decides,
//!                       and its answer (accept, reject or redirect) goes back to the call
//! <ringing/>            nothing changes (the caller's call is already Alerting)
//! <answered/>           the far end answered: Active
//! <held/> <unheld/>     (urn:bridgehead:rayo:1) the far end held, retrieved the call
//! <end><hungup/></end>  released by the far end; <busy/>, <reject/>, <timeout/>, <error/>
//!                       give the release cause (Busy, Forbidden, Request Timeout,
//!                       Server Failure)
//! ```
//!
//! When a bridge's last connection drops, every call it carried is released
//! (Temporarily Unavailable): no call outlives its bridge.

mod stanzas;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use minidom::Element;

use super::ns::{DISCO_INFO, RAYO};
use super::router::Router;
use super::stanza;
use crate::telephony::calls::{
    bridge_of, CallAction, CallCarrier, CarrierCommand, CarrierError, DialRequest, Dialed,
    ReleaseCause,
};
use crate::telephony::Telephony;
use stanzas::CallReport;

/// How long a component that did not answer disco#info counts as no bridge.
const UNANSWERED_FOR: Duration = Duration::from_secs(60);

/// The Rayo client of this node.
#[derive(Debug, Clone)]
pub struct RayoClient {
    shared: std::sync::Arc<Shared>,
}

/// What the client's clones share: the router, the model, and what the bridges said.
#[derive(Debug)]
pub struct Shared {
    router: Router,
    telephony: Telephony,
    timeout: Duration,
    /// Components asked: whether they advertised Rayo, and until when a missing answer
    /// counts as "no".
    known: Mutex<HashMap<String, (bool, Option<Instant>)>>,
    next: AtomicUsize,
    ids: AtomicUsize,
}

impl RayoClient {
    /// A client routing through `router`, waiting `timeout` for each answer, reporting
    /// call events to `telephony`.
    pub fn new(router: Router, telephony: Telephony, timeout: Duration) -> Self {
        RayoClient {
            shared: std::sync::Arc::new(Shared {
                router,
                telephony,
                timeout,
                known: Mutex::new(HashMap::new()),
                next: AtomicUsize::new(0),
                ids: AtomicUsize::new(0),
            }),
        }
    }
}

impl std::ops::Deref for RayoClient {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Shared {
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, (bool, Option<Instant>)>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn request(&self, to: &str, kind: &str, payload: Element) -> Element {
        let id = format!("bh-rayo-{}", self.ids.fetch_add(1, Ordering::Relaxed));
        stanza::element(
            "iq",
            super::ns::COMPONENT,
            &[
                ("type", kind),
                ("id", &id),
                ("from", self.router.domain()),
                ("to", to),
            ],
        )
        .append(payload)
        .build()
    }

    fn apply(&self, call_ref: &str, action: CallAction) {
        match self.telephony.call_event(call_ref, action) {
            Ok(Some(call)) => {
                tracing::debug!(call = %call.id, state = call.state.as_str(), "call event from a bridge")
            }
            Ok(None) => tracing::info!(%call_ref, "a Rayo event for no known call"),
            Err(e) => {
                tracing::info!(%call_ref, error = %e, "a Rayo event the call's state refuses")
            }
        }
    }

    /// The bridge `component` has no connection left: its calls are gone with it, so each
    /// is released (Temporarily Unavailable), never left behind.
    pub fn bridge_gone(&self, component: &str) {
        for call_ref in self.telephony.calls().refs_of_bridge(component) {
            tracing::info!(%component, %call_ref, "call released: its bridge disconnected");
            self.apply(
                &call_ref,
                CallAction::RemoteRelease(Some(ReleaseCause::TemporarilyUnavailable)),
            );
        }
        self.known().remove(&component.to_ascii_lowercase());
    }

    /// Sends `command` to the call `call_ref` and waits for the bridge to confirm.
    async fn send(&self, call_ref: &str, command: &CarrierCommand) -> Result<(), CarrierError> {
        let bridge = bridge_of(call_ref);
        let asked = self.request(call_ref, "set", stanzas::command(command));
        let failed = |why: String| CarrierError::Command {
            bridge: bridge.to_owned(),
            command: command.as_str(),
            why,
        };
        match self.router.request(asked, bridge, self.timeout).await {
            Ok(answer) if answer.attr("type") == Some("result") => Ok(()),
            Ok(answer) => Err(failed(error_condition(&answer))),
            Err(e) => Err(failed(e.to_string())),
        }
    }

    /// Whether `component` advertises Rayo; `None` when it does not answer.
    async fn supports_rayo(&self, component: &str) -> Option<bool> {
        let query = Element::builder("query", DISCO_INFO).build();
        let asked = self.request(component, "get", query);
        match self.router.request(asked, component, self.timeout).await {
            Ok(answer) => Some(answer.get_child("query", DISCO_INFO).is_some_and(|q| {
                q.children()
                    .any(|f| f.is("feature", DISCO_INFO) && f.attr("var") == Some(RAYO))
            })),
            Err(e) => {
                tracing::debug!(%component, error = %e, "no disco#info answer");
                None
            }
        }
    }

    /// The connected components that advertise Rayo, starting from the next in turn.
    /// Components not asked yet are asked now, all at once.
    async fn candidates(&self) -> Vec<String> {
        let connected = self.router.connected_components();
        let unknown: Vec<String> = {
            let mut known = self.known();
            let now = Instant::now();
            known.retain(|name, (_, until)| {
                connected.contains(name) && until.is_none_or(|until| until > now)
            });
            connected
                .iter()
                .filter(|name| !known.contains_key(*name))
                .cloned()
                .collect()
        };
        let answers = futures_util::future::join_all(unknown.into_iter().map(|name| async move {
            let rayo = self.supports_rayo(&name).await;
            (name, rayo)
        }))
        .await;
        let mut known = self.known();
        for (name, rayo) in answers {
            let entry = match rayo {
                Some(true) => {
                    tracing::info!(component = %name, "call bridge: advertises Rayo");
                    (true, None)
                }
                Some(false) => (false, None),
                None => (false, Some(Instant::now() + UNANSWERED_FOR)),
            };
            known.insert(name, entry);
        }
        let mut bridges: Vec<String> = connected
            .into_iter()
            .filter(|name| known.get(name).is_some_and(|(rayo, _)| *rayo))
            .filter(|name| self.telephony.bridge_has_room(name))
            .collect();
        bridges.sort();
        if bridges.is_empty() {
            return bridges;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % bridges.len();
        bridges.rotate_left(start);
        bridges
    }
}

impl RayoClient {
    /// Whether `stanza` (from a component, to the server) is a Rayo call event; if so it is
    /// applied to its call, and an offer is decided in the background (see the module
    /// docs).
    pub fn event(&self, stanza: &Element) -> bool {
        if !stanza.is("presence", super::ns::COMPONENT)
            || !stanza
                .attr("to")
                .is_some_and(|to| to.eq_ignore_ascii_case(self.router.domain()))
        {
            return false;
        }
        let call_ref = stanza.attr("from").unwrap_or_default();
        match stanzas::report(stanza, call_ref) {
            None => return false,
            Some(CallReport::Action(action)) => self.apply(call_ref, action),
            Some(CallReport::Nothing(event)) => {
                tracing::debug!(%call_ref, %event, "Rayo event without a state change");
            }
            Some(CallReport::Offer(offer)) => {
                let client = self.clone();
                tokio::spawn(async move {
                    let call_ref = offer.call_ref.clone();
                    let answer = client.telephony.offered_call(offer).await;
                    if let Err(e) = client.send(&call_ref, &answer).await {
                        tracing::warn!(%call_ref, error = %e, "the bridge did not take the answer to its offer");
                        if answer == CarrierCommand::Accept {
                            client.apply(
                                &call_ref,
                                CallAction::RemoteRelease(Some(ReleaseCause::ServerFailure)),
                            );
                        }
                    }
                });
            }
        }
        true
    }
}

/// The condition of an iq error (its first child's name), or "an error".
fn error_condition(answer: &Element) -> String {
    answer
        .get_child("error", super::ns::COMPONENT)
        .and_then(|e| e.children().next())
        .map_or_else(|| "an error".to_owned(), |c| c.name().to_owned())
}

#[async_trait::async_trait]
impl CallCarrier for RayoClient {
    async fn dial(&self, request: DialRequest) -> Result<Dialed, CarrierError> {
        let candidates = self.candidates().await;
        if candidates.is_empty() {
            return Err(CarrierError::NoBridge);
        }
        let mut refusals = Vec::new();
        for bridge in candidates {
            let asked = self.request(&bridge, "set", stanzas::dial(&request));
            let why = match self.router.request(asked, &bridge, self.timeout).await {
                Ok(answer) if answer.attr("type") == Some("result") => {
                    match answer.get_child("ref", RAYO).and_then(|r| r.attr("uri")) {
                        Some(uri) => {
                            let call_ref = uri.strip_prefix("xmpp:").unwrap_or(uri).to_owned();
                            return Ok(Dialed { bridge, call_ref });
                        }
                        None => "the answer has no <ref/>".to_owned(),
                    }
                }
                Ok(answer) => error_condition(&answer),
                Err(e) => e.to_string(),
            };
            tracing::info!(%bridge, %why, "a call bridge did not place a call");
            refusals.push((bridge, why));
        }
        Err(CarrierError::Refused(refusals))
    }

    async fn command(&self, call_ref: &str, command: CarrierCommand) -> Result<(), CarrierError> {
        self.send(call_ref, &command).await
    }
}
