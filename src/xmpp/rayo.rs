//! Rayo (XEP-0327) towards the call bridges: Bridgehead is the Rayo client, each bridge
//! (an XEP-0114 component) a Rayo server.
//!
//! ```text
//! Telephony::place_call ── CallCarrier::dial(from, to)
//!   connected components not asked yet ── disco#info ──▶ (all at once)
//!                                      ◀── features include urn:xmpp:rayo:1? ── eligible
//!   (an answer is remembered while the component stays connected; a component that
//!    did not answer counts as no bridge for a minute, then is asked again)
//!   eligible bridges, round-robin from the next one:
//!   <iq type='set' to=bridge><dial xmlns='urn:xmpp:rayo:1' to=… from=…/></iq>
//!   ◀── <iq type='result'><ref xmlns='urn:xmpp:rayo:1' uri='xmpp:callid@bridge'/></iq>
//!       an error, no ref, or no answer within rayo_timeout_secs: the next bridge
//! ```
//!
//! The bridge then reports the call's progress as presence from the call's JID
//! (`callid@bridge`) to the server:
//!
//! ```text
//! <ringing/>            nothing changes (the caller's call is already Alerting)
//! <answered/>           the far end answered: Active
//! <end><hungup/></end>  released by the far end; <busy/>, <reject/>, <timeout/>, <error/>
//!                       give the release cause (Busy, Forbidden, Request Timeout,
//!                       Server Failure); the call leaves the registry for the call log
//! ```
//!
//! When a bridge's last connection drops, every call it carried is released
//! (Temporarily Unavailable): no call outlives its bridge.
//!
//! What the code does now: discovery, `dial`, those three events for the caller's call,
//! and the release on disconnect. Incoming `offer`s, the callee's side and the commands on a call (`answer`,
//! `hangup`, hold and retrieve) are the next steps of call control.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use minidom::Element;

use super::ns::{DISCO_INFO, RAYO};
use super::router::Router;
use super::stanza;
use crate::telephony::calls::{CallAction, CallCarrier, DialError, Dialed, ReleaseCause};
use crate::telephony::Telephony;

/// How long a component that did not answer disco#info counts as no bridge.
const UNANSWERED_FOR: Duration = Duration::from_secs(60);

/// The Rayo client of this node; cheap to share.
#[derive(Debug)]
pub struct RayoClient {
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
            router,
            telephony,
            timeout,
            known: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(0),
            ids: AtomicUsize::new(0),
        }
    }

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

    /// Whether `stanza` (from a component, to the server) is a Rayo call event; if so it is
    /// applied to its call (see the module docs).
    pub fn event(&self, stanza: &Element) -> bool {
        if !stanza.is("presence", super::ns::COMPONENT)
            || !stanza
                .attr("to")
                .is_some_and(|to| to.eq_ignore_ascii_case(self.router.domain()))
        {
            return false;
        }
        let Some(event) = stanza.children().find(|c| c.ns() == RAYO) else {
            return false;
        };
        let call_ref = stanza.attr("from").unwrap_or_default();
        let action = match event.name() {
            "answered" => CallAction::RemoteAnswer,
            "end" => {
                CallAction::RemoteRelease(event.children().find_map(|reason| match reason.name() {
                    "busy" => Some(ReleaseCause::Busy),
                    "reject" => Some(ReleaseCause::Forbidden),
                    "timeout" => Some(ReleaseCause::RequestTimeout),
                    "error" => Some(ReleaseCause::ServerFailure),
                    _ => None,
                }))
            }
            other => {
                tracing::debug!(%call_ref, event = other, "Rayo event without a state change");
                return true;
            }
        };
        match self.telephony.call_event(call_ref, action) {
            Ok(Some(call)) => {
                tracing::info!(call = %call.id, state = call.state.as_str(), "call event from a bridge")
            }
            Ok(None) => tracing::info!(%call_ref, "a Rayo event for no known call"),
            Err(e) => {
                tracing::info!(%call_ref, error = %e, "a Rayo event the call's state refuses")
            }
        }
        true
    }

    /// The bridge `component` has no connection left: its calls are gone with it, so each
    /// is released (Temporarily Unavailable), never left behind.
    pub fn bridge_gone(&self, component: &str) {
        for call_ref in self.telephony.calls().refs_of_bridge(component) {
            let released = self.telephony.call_event(
                &call_ref,
                CallAction::RemoteRelease(Some(ReleaseCause::TemporarilyUnavailable)),
            );
            tracing::info!(%component, %call_ref, ok = released.is_ok(), "call released: its bridge disconnected");
        }
        self.known().remove(&component.to_ascii_lowercase());
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

#[async_trait::async_trait]
impl CallCarrier for RayoClient {
    async fn dial(&self, from: &str, to: &str) -> Result<Dialed, DialError> {
        let candidates = self.candidates().await;
        if candidates.is_empty() {
            return Err(DialError::NoBridge);
        }
        let mut refusals = Vec::new();
        for bridge in candidates {
            let dial = stanza::attr(
                stanza::attr(Element::builder("dial", RAYO), "to", to),
                "from",
                from,
            )
            .build();
            let asked = self.request(&bridge, "set", dial);
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
                Ok(answer) => answer
                    .get_child("error", super::ns::COMPONENT)
                    .and_then(|e| e.children().next())
                    .map_or_else(|| "an error".to_owned(), |c| c.name().to_owned()),
                Err(e) => e.to_string(),
            };
            tracing::info!(%bridge, %why, "a call bridge did not place a call");
            refusals.push((bridge, why));
        }
        Err(DialError::Refused(refusals))
    }

    async fn hangup(&self, call_ref: &str) -> Result<(), DialError> {
        let bridge = call_ref
            .rsplit_once('@')
            .map_or(call_ref, |(_, d)| d)
            .to_owned();
        let hangup = Element::builder("hangup", RAYO).build();
        let asked = self.request(call_ref, "set", hangup);
        match self.router.request(asked, &bridge, self.timeout).await {
            Ok(answer) if answer.attr("type") == Some("result") => Ok(()),
            Ok(_) => Err(DialError::Refused(vec![(bridge, "an error".into())])),
            Err(e) => Err(DialError::Refused(vec![(bridge, e.to_string())])),
        }
    }
}
