//! The bound session: login notification, the session loop (shutdown, keep-alive, the
//! stanza rate gate, inbound stanzas, the outbound queue), XEP-0198 acknowledgements,
//! stanzas from the client (own JID checks, iqs to the account, presence, routing) and the
//! end of the session.

use crate::xmpp::error::StanzaCondition;
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use tracing::Instrument;

use super::transport::Transport;
use super::{send, Bound, ClientService, SESSION};
use crate::shutdown::Shutdown;
use crate::xmpp::error::{StreamCondition, XmppError};
use crate::xmpp::keepalive::{self, Due, KeepAlive};
use crate::xmpp::roster::{bare_of, SessionPresence, ROSTER};
use crate::xmpp::router::{take_batch, Outbound};
use crate::xmpp::sm::{self, AckRequests, StreamManagement, SM};
use crate::xmpp::{ns, services, stanza};

impl ClientService {
    /// The bound session, from login notification to the end.
    pub(super) async fn session<T: Transport>(
        self: &Arc<Self>,
        transport: &mut T,
        mut bound: Box<Bound>,
        shutdown: Shutdown,
    ) {
        crate::telemetry::client_sessions(T::NAME, 1.0);
        let span = tracing::info_span!("client", jid = %bound.presence.full, transport = T::NAME);
        async {
            if bound.resumed {
                tracing::info!("client session resumed");
            } else {
                tracing::info!("client session bound");
                self.notify_login(bound.presence.full.as_str(), None);
            }
            let end = match transport.flush().await {
                Ok(()) => self.run(transport, &mut bound, &shutdown).await,
                Err(e) => Err(e),
            };
            // A broken connection (not a closed stream) parks a resumable session.
            let connection_lost = matches!(
                end,
                Err(XmppError::Io(_) | XmppError::Closed)
                    | Ok(Some(StreamCondition::ConnectionTimeout))
            );
            let condition = match end {
                Ok(condition) => condition,
                Err(error) => {
                    tracing::info!(%error, "client session failed");
                    error.condition()
                }
            };
            let resumable = bound.sm.as_ref().is_some_and(|sm| sm.id.is_some());
            if connection_lost && resumable {
                tracing::info!("connection lost: the session waits to be resumed");
                self.park(bound, shutdown.clone());
            } else {
                Box::pin(self.end_session(&mut bound)).await;
                tracing::info!(condition = ?condition, "client session ended");
            }
            Box::pin(transport.close(condition)).await;
        }
        .instrument(span)
        .await;
        crate::telemetry::client_sessions(T::NAME, -1.0);
    }

    /// The end of a session: unavailable presence, unbinding, the `login_notify`
    /// components told, and stanzas it never acknowledged (or never got) bounced.
    pub(super) async fn end_session(&self, bound: &mut Bound) {
        self.rosters.ended(&mut bound.presence).await;
        self.router
            .detach_client(bound.presence.bare.as_str(), bound.presence.id);
        self.notify_login(bound.presence.full.as_str(), Some("unavailable"));
        let mut undelivered = bound
            .sm
            .as_mut()
            .map(StreamManagement::take_unacked)
            .unwrap_or_default();
        while let Ok(Outbound::Stanza(stanza)) = bound.queue.try_recv() {
            undelivered.push(*stanza);
        }
        for stanza in undelivered {
            if let Some(bounce) =
                stanza::error_reply(&stanza, StanzaCondition::RecipientUnavailable)
            {
                self.route(bounce);
            }
        }
    }

    /// Tells the `login_notify` components that `full` logged in (or out).
    pub(super) fn notify_login(&self, full: &str, kind: Option<&str>) {
        for component in &self.settings.login_notify {
            let mut attrs = vec![("from", full), ("to", component.as_str())];
            if let Some(kind) = kind {
                attrs.push(("type", kind));
            }
            self.route(stanza::element("presence", ns::CLIENT, &attrs).build());
        }
    }

    /// The session loop: see the module docs.
    pub(super) async fn run<T: Transport>(
        &self,
        transport: &mut T,
        bound: &mut Bound,
        shutdown: &Shutdown,
    ) -> Result<Option<StreamCondition>, XmppError> {
        use tokio::time::Instant;
        let interval = Duration::from_secs(self.settings.client_ping_interval_secs.get());
        let patience = Duration::from_secs(self.settings.client_ping_timeout_secs.get());
        let rate = f64::from(self.settings.client_stanzas_per_second.get());
        let burst = f64::from(self.settings.client_stanza_burst.get());
        let mut tokens = burst;
        let mut refilled = Instant::now();
        let mut keepalive = KeepAlive::new(interval, patience);
        let acks = AckRequests {
            after_stanzas: self.settings.sm_request_after_stanzas.get(),
            after: Duration::from_secs(self.settings.sm_request_after_secs.get()),
        };
        loop {
            let now = Instant::now();
            tokens = (tokens + now.duration_since(refilled).as_secs_f64() * rate).min(burst);
            refilled = now;
            // One timer for the keep-alive, an ack request and, while throttled, the token
            // refill.
            let mut wake = keepalive.wake();
            if let Some(at) = bound.sm.as_ref().and_then(|sm| sm.request_at(&acks)) {
                wake = wake.min(at);
            }
            if tokens < 1.0 {
                wake = wake.min(now + Duration::from_secs_f64((1.0 - tokens) / rate));
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Some(StreamCondition::SystemShutdown)),
                _ = tokio::time::sleep_until(wake) => {
                    if self.request_ack(transport, &mut bound.sm, &acks)? {
                        transport.flush().await?;
                    }
                    if Instant::now() < keepalive.wake() {
                        continue;
                    }
                    match keepalive.due() {
                        Due::TimedOut => return Ok(Some(StreamCondition::ConnectionTimeout)),
                        Due::Ping(sequence) => {
                            let ping = keepalive::ping(ns::CLIENT, &self.domain, bound.presence.full.as_str(), sequence);
                            send(transport, &mut bound.sm, &ping)?;
                            transport.flush().await?;
                        }
                    }
                }
                inbound = transport.read(), if tokens >= 1.0 => {
                    let Some(element) = inbound? else { return Ok(None) };
                    tokens -= 1.0;
                    bound.info.received(1);
                    keepalive.heard();
                    // An `<a/>` or `<r/>` of the client's never brings a request of ours.
                    let nonza = element.ns() == SM;
                    // Boxed: roster work is transient and must not size every idle session.
                    Box::pin(self.inbound(transport, bound, element)).await?;
                    if !nonza {
                        if let Some(condition) = self.check_unacked(&bound.sm) {
                            return Ok(Some(condition));
                        }
                        self.request_ack(transport, &mut bound.sm, &acks)?;
                    }
                    transport.flush().await?;
                }
                outbound = bound.queue.recv() => {
                    let (stanzas, close) = take_batch(outbound, &mut bound.queue);
                    for stanza in &stanzas {
                        send(transport, &mut bound.sm, stanza)?;
                    }
                    bound.info.sent(stanzas.len() as u64);
                    if let Some(condition) = self.check_unacked(&bound.sm) {
                        return Ok(Some(condition));
                    }
                    self.request_ack(transport, &mut bound.sm, &acks)?;
                    transport.flush().await?;
                    if close.is_some() {
                        return Ok(close);
                    }
                }
            }
        }
    }

    /// One element from the client in session: XEP-0198 nonzas, or a stanza (counted for
    /// XEP-0198, its direct answer written).
    pub(super) async fn inbound<T: Transport>(
        &self,
        transport: &mut T,
        bound: &mut Bound,
        element: Element,
    ) -> Result<(), XmppError> {
        if element.ns() == SM {
            return self.stream_management(transport, bound, &element);
        }
        let reply = self
            .stanza_from_client(&mut bound.presence, element)
            .await?;
        if let Some(sm) = bound.sm.as_mut() {
            sm.received();
        }
        if let Some(reply) = reply {
            send(transport, &mut bound.sm, &reply)?;
        }
        Ok(())
    }

    /// `<enable/>`, `<r/>` and `<a/>` (XEP-0198).
    pub(super) fn stream_management<T: Transport>(
        &self,
        transport: &mut T,
        bound: &mut Bound,
        element: &Element,
    ) -> Result<(), XmppError> {
        match (element.name(), bound.sm.as_mut()) {
            ("enable", None) => {
                let resumable = self.settings.sm_resume_timeout_secs > 0
                    && matches!(element.attr("resume"), Some("true" | "1"));
                let state = StreamManagement::new(resumable);
                let max = self.settings.sm_resume_timeout_secs.to_string();
                let enabled = match &state.id {
                    Some(id) => StreamManagement::nonza(
                        "enabled",
                        &[("id", id), ("resume", "true"), ("max", &max)],
                    ),
                    None => StreamManagement::nonza("enabled", &[]),
                };
                transport.write(&enabled)?;
                bound.sm = Some(state);
                bound.info.stream_management_enabled();
            }
            ("enable", Some(_)) | ("r", None) => {
                transport.write(&sm::failed(StanzaCondition::UnexpectedRequest))?
            }
            ("r", Some(state)) => transport.write(&state.answer())?,
            ("a", Some(state)) => {
                let handled = element.attr("h").and_then(|h| h.parse::<u32>().ok());
                match handled.map(|h| state.ack(h)) {
                    Some(Ok(())) => {}
                    _ => {
                        return Err(XmppError::stream(
                            StreamCondition::UndefinedCondition,
                            format!(
                                "<a h={:?}/> does not match what was sent",
                                element.attr("h")
                            ),
                        ))
                    }
                }
            }
            (name, _) => {
                return Err(XmppError::stream(
                    StreamCondition::UnsupportedStanzaType,
                    format!("<{name}/> in {SM}"),
                ))
            }
        }
        Ok(())
    }

    /// One stanza from the client; returns the answer to write back directly, if any.
    pub(super) async fn stanza_from_client(
        &self,
        session: &mut SessionPresence,
        mut element: Element,
    ) -> Result<Option<Element>, XmppError> {
        let Some(kind) = stanza::kind(&element) else {
            return Err(XmppError::stream(
                StreamCondition::UnsupportedStanzaType,
                format!("<{}> in {}", element.name(), element.ns()),
            ));
        };
        if element.ns() != ns::CLIENT {
            return Err(XmppError::stream(
                StreamCondition::InvalidNamespace,
                format!("a stanza in {}", element.ns()),
            ));
        }
        if let Some(from) = element.attr("from") {
            let own =
                from == session.full.as_str() || from.eq_ignore_ascii_case(session.bare.as_str());
            if !own {
                return Err(XmppError::stream(
                    StreamCondition::InvalidFrom,
                    format!("from={from:?} is not {}", session.full),
                ));
            }
        }
        stanza::set_address(&mut element, "from", session.full.as_str());
        crate::telemetry::client_stanza(kind.as_str());
        let to_bare = element.attr("to").map(bare_of);
        match kind {
            stanza::Kind::Iq => {
                let to_account = match &to_bare {
                    None => true,
                    Some(to) => {
                        to.as_deref() == Some(session.bare.as_str())
                            && !element.attr("to").unwrap_or_default().contains('/')
                    }
                };
                if to_account {
                    return Ok(self.own_iq(session, &element).await);
                }
                self.deliver(element);
            }
            stanza::Kind::Message => self.deliver(element),
            stanza::Kind::Presence => {
                let Some(to) = to_bare else {
                    self.rosters.broadcast(session, element).await;
                    return Ok(None);
                };
                let Some(to) = to else {
                    return Ok(stanza::error_reply(&element, StanzaCondition::JidMalformed));
                };
                match element.attr("type") {
                    Some(kind @ ("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed")) => {
                        let kind = kind.to_owned();
                        if to != session.bare.as_str() {
                            self.rosters
                                .subscription(session.bare.as_str(), &kind, &to)
                                .await;
                        }
                    }
                    Some("probe") => {}
                    _ => {
                        let target = element.attr("to").unwrap_or_default().to_owned();
                        self.rosters.directed(session, element, &target);
                    }
                }
            }
        }
        Ok(None)
    }

    /// XEP-0198: a client that leaves more than `sm_max_unacked` unacknowledged is closed.
    fn check_unacked(&self, sm: &Option<StreamManagement>) -> Option<StreamCondition> {
        let unacked = sm.as_ref()?.unacked();
        (unacked > self.settings.sm_max_unacked.get()).then(|| {
            tracing::info!(unacked, "the client does not acknowledge");
            StreamCondition::ResourceConstraint
        })
    }

    /// XEP-0198: writes an `<r/>` when one is due (see `sm`); whether it did.
    fn request_ack<T: Transport>(
        &self,
        transport: &mut T,
        sm: &mut Option<StreamManagement>,
        acks: &AckRequests,
    ) -> Result<bool, XmppError> {
        match sm.as_mut() {
            Some(state) if state.request_due(acks) => {
                transport.write(&state.request())?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Routes a stanza; what the router leaves to the server is answered.
    pub(super) fn deliver(&self, element: Element) {
        services::deliver(&self.router, element);
    }

    /// An iq to the user's own account (or with no `to`).
    pub(super) async fn own_iq(
        &self,
        session: &SessionPresence,
        request: &Element,
    ) -> Option<Element> {
        if matches!(request.attr("type"), Some("result" | "error")) {
            return None;
        }
        let payload = request.children().next();
        if let Some(query) = payload.filter(|p| p.is("query", ROSTER)) {
            return self.rosters.iq(session, request, query).await;
        }
        if payload.is_some_and(|p| p.is("session", SESSION)) {
            return Some(stanza::iq_result(request).build());
        }
        // Ping, disco and the rest are answered like any iq to the server or the account.
        let mut asked = request.clone();
        if asked.attr("to").is_none() {
            stanza::set_address(&mut asked, "to", session.bare.as_str());
        }
        let mut answer = services::answer(&self.router, &asked)?;
        stanza::set_address(&mut answer, "to", session.full.as_str());
        Some(answer)
    }
}
