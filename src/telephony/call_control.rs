//! Call control: what users do to their calls, what the bridges report, and the call
//! timers. Every change is applied by the state machine ([`Call::apply`]), kept in the
//! registry and announced on the event bus (a [`CallEvent`], and the hook status when it
//! changes); a call that ends is written to its user's call log.
//!
//! A call between two Bridgehead users is two calls, one per user, that share an
//! `extTrackingId`; the bridge joins them:
//!
//! ```text
//! alice: POST calls/new ── place_call ── dial (X-Bridgehead-User: bob) ──▶ bridge
//!          alice's call A, Originator, Alerting          CallOriginated to alice
//! bridge ── offer (to sip:bob, X-Bridgehead-Tracking-Id) ──▶ offered_call
//!          bob: Call Forwarding Always on?       redirect there (CallRedirected to bob)
//!               Do Not Disturb, or at his limit? Call Forwarding Busy on: redirect there;
//!                                                otherwise reject (busy)
//!          otherwise bob's call B, Terminator, Alerting ── accept   CallReceived to bob
//! bob: PUT calls/B/Talk ── talk ── answer ──▶ bridge ── answered on A ──▶ call_event
//!          both Active                         CallAnswered to bob, then to alice
//! alice: PUT calls/A/Hold ── hold ──▶ bridge ── held on B: bob's call Remote Held
//! alice: DELETE calls/A ── release_call (hangup in the background) ── end on B ──▶ bob
//!          both Released, call logs written     CallReleased to each
//! ```
//!
//! What a user asks of a call (talk, hold) is checked against the call's state before the
//! bridge is asked, and applied once the bridge confirms; a refusal from the bridge is
//! [`TelephonyError::Carrier`] and changes nothing. A release is applied at once: the
//! user is off the call whether or not the bridge confirms.
//!
//! Timers ([`Telephony::expire_calls`], every second from `server.rs`): a call that rings
//! longer than `[calls] ringing_timeout_secs`, or an outgoing call not answered within
//! `dial_timeout_secs`, ends with Request Timeout and its bridge is told to hang up.

use super::calls::{
    bridge_of, Call, CallAction, CallCarrier, CallError, CallEventKind, CallState, CarrierCommand,
    Offer, Personality, Redirect, RedirectReason, RejectReason, ReleaseCause, LOCAL_USER_HEADER,
    MAX_REDIRECTS, REDIRECTS_HEADER, TRACKING_HEADER,
};
use super::dialing::Destination;
use super::events::{CallEvent, EventKind};
use super::services::ServiceSettings;
use super::{CallLogKind, CallLogRecord, ServiceName, Telephony, TelephonyError, User};

/// `secs` seconds before `now`, or the earliest time there is when that is further back
/// (a timer of any configured length, never an overflow).
pub(super) fn ago(now: time::OffsetDateTime, secs: u64) -> time::OffsetDateTime {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| now.checked_sub(time::Duration::seconds(secs)))
        .unwrap_or(time::PrimitiveDateTime::MIN.assume_utc())
}

impl Telephony {
    /// Keeps `call` after `kind` happened to it and announces it: the event, then the hook
    /// status when it changed. A released call is written to the call log.
    pub(super) fn keep(&self, call: Call, kind: CallEventKind) {
        let tracked = self.calls.track(call.clone());
        let user = call.user.clone();
        let record = (call.state == CallState::Released).then(|| call_log_record(&call));
        if record.is_some() {
            tracing::info!(
                user = %user.id,
                call = %call.id,
                answered = call.was_answered(),
                cause = call.release_cause.map_or("", |c| c.as_str()),
                by = call.releasing_party.map_or("", |p| p.as_str()),
                "call ended"
            );
        }
        // A redirected call is no longer presented to the user: CallDetached follows.
        let detached = (kind == CallEventKind::Redirected).then(|| call.clone());
        self.events
            .publish(&user, EventKind::Call(Box::new(CallEvent { kind, call })));
        if let Some(call) = detached {
            let kind = CallEventKind::Detached;
            self.events
                .publish(&user, EventKind::Call(Box::new(CallEvent { kind, call })));
        }
        if let Some(hook) = tracked.hook_changed {
            self.events.publish(&user, EventKind::HookStatus(hook));
        }
        if let Some(record) = record {
            let telephony = self.clone();
            tokio::spawn(async move {
                if let Err(e) = telephony.record_call(record).await {
                    tracing::warn!(error = %e, "cannot write a call log record");
                }
            });
        }
    }

    /// Whether the bridge `bridge` carries fewer calls than `[calls] max_calls_per_bridge`.
    pub fn bridge_has_room(&self, bridge: &str) -> bool {
        self.calls.count_on_bridge(bridge) < self.calls_config.max_calls_per_bridge.get()
    }

    pub(super) fn call_of(&self, user: &User, call_id: &str) -> Result<Call, TelephonyError> {
        self.calls
            .call_of(&user.id, call_id)
            .ok_or_else(|| TelephonyError::UnknownCall(call_id.to_owned()))
    }

    /// What carries this node's calls; [`TelephonyError::NoCallBridge`] before one is set.
    pub(super) fn carrier(&self) -> Result<std::sync::Arc<dyn CallCarrier>, TelephonyError> {
        self.carrier
            .get()
            .cloned()
            .ok_or(TelephonyError::NoCallBridge)
    }

    /// Tells the bridge of `call_ref` to do `command`, in the background; a bridge that
    /// does not confirm is logged.
    fn command_later(&self, call_ref: &str, command: CarrierCommand) {
        let Ok(carrier) = self.carrier() else {
            return;
        };
        let call_ref = call_ref.to_owned();
        tokio::spawn(async move {
            let what = command.as_str();
            if let Err(e) = carrier.command(&call_ref, command).await {
                tracing::warn!(%call_ref, command = what, error = %e, "the bridge did not confirm");
            }
        });
    }

    /// Asks the bridge to do `command` for `action` on `call`, and applies the action once
    /// it confirms.
    pub(super) async fn command(
        &self,
        call: Call,
        action: CallAction,
        command: CarrierCommand,
    ) -> Result<Call, TelephonyError> {
        call.clone()
            .apply(action, time::OffsetDateTime::now_utc())?;
        self.carrier()?.command(&call.call_ref, command).await?;
        self.call_event(&call.call_ref, action)?
            .ok_or_else(|| TelephonyError::UnknownCall(call.id.to_string()))
    }

    /// `Talk`: answers the user's ringing call, or takes a held one back.
    pub async fn talk(&self, user: &User, call_id: &str) -> Result<Call, TelephonyError> {
        let call = self.call_of(user, call_id)?;
        let (action, command) = if call.state == CallState::Held {
            (CallAction::Retrieve, CarrierCommand::Retrieve)
        } else {
            (CallAction::Answer, CarrierCommand::Answer)
        };
        self.command(call, action, command).await
    }

    /// `Hold`: holds the user's active call.
    pub async fn hold(&self, user: &User, call_id: &str) -> Result<Call, TelephonyError> {
        let call = self.call_of(user, call_id)?;
        self.command(call, CallAction::Hold, CarrierCommand::Hold)
            .await
    }

    /// Releases `user`'s call `call_id` (declines it, for a ringing incoming call, with
    /// `decline`): the call ends at once (released by the user), is written to the call
    /// log, and its bridge is told to hang up or reject it (in the background).
    pub fn release_call(
        &self,
        user: &User,
        call_id: &str,
        decline: bool,
    ) -> Result<Call, TelephonyError> {
        let call = self.call_of(user, call_id)?;
        let released = self
            .call_event(&call.call_ref, CallAction::Release { decline })?
            .ok_or_else(|| TelephonyError::UnknownCall(call_id.to_owned()))?;
        let command = if decline {
            CarrierCommand::Reject(RejectReason::Decline)
        } else {
            CarrierCommand::Hangup
        };
        self.command_later(&released.call_ref, command);
        Ok(released)
    }

    /// What the bridge reports about the call it knows as `call_ref` (its Rayo events),
    /// applied to that call and announced. `Ok(None)` when no call has that reference.
    pub fn call_event(
        &self,
        call_ref: &str,
        action: CallAction,
    ) -> Result<Option<Call>, CallError> {
        let Some(mut call) = self.calls.find_by_ref(call_ref) else {
            return Ok(None);
        };
        call.apply(action, time::OffsetDateTime::now_utc())?;
        match CallEventKind::of(action) {
            Some(kind) => self.keep(call.clone(), kind),
            None => {
                self.calls.track(call.clone());
            }
        }
        Ok(Some(call))
    }

    /// Ends the calls whose timers ran out (see the module docs), and forwards those that
    /// rang long enough for their user's Call Forwarding No Answer.
    pub async fn expire_calls(&self, now: time::OffsetDateTime) {
        let ringing = ago(now, self.calls_config.ringing_timeout_secs.get());
        let dialing = ago(now, self.calls_config.dial_timeout_secs.get());
        for call in self.calls.unanswered(ringing, dialing) {
            let timeout = CallAction::RemoteRelease(Some(ReleaseCause::RequestTimeout));
            if let Ok(Some(call)) = self.call_event(&call.call_ref, timeout) {
                tracing::info!(user = %call.user.id, call = %call.id, personality = call.personality.as_str(), "call timed out unanswered");
                self.command_later(&call.call_ref, CarrierCommand::Hangup);
            }
        }
        self.forward_unanswered(now).await;
    }

    /// A bridge offers a call (Rayo `offer`): what the bridge is to do with it. The
    /// called user's call rings (accept), or the call is redirected as the user's
    /// forwarding says, or refused (see the module docs).
    pub async fn offered_call(&self, offer: Offer) -> CarrierCommand {
        match self.route_offer(&offer).await {
            Ok(command) => command,
            Err(e) => {
                tracing::warn!(call_ref = %offer.call_ref, to = %offer.to, error = %e, "offered call refused");
                CarrierCommand::Reject(RejectReason::Error)
            }
        }
    }

    async fn route_offer(&self, offer: &Offer) -> Result<CarrierCommand, TelephonyError> {
        let callee = match offer.header(LOCAL_USER_HEADER) {
            Some(id) => self.user(id).await?,
            None => match self.resolve_for(None, &offer.to).await? {
                Destination::Local { user, .. } => Some(*user),
                Destination::Network { .. } => None,
            },
        };
        let Some(callee) = callee else {
            tracing::info!(to = %offer.to, "offered call for nobody here");
            return Ok(CarrierCommand::Reject(RejectReason::Error));
        };
        let remote = match self.resolve_for(Some(&callee), &offer.from).await {
            Ok(from) => from.party(),
            Err(_) => super::calls::RemoteParty {
                name: None,
                address: Some(offer.from.clone()),
                user_id: None,
                call_type: super::calls::CallType::Network,
            },
        };
        let call = Call::new(
            self.calls.new_id(),
            offer
                .header(TRACKING_HEADER)
                .map_or_else(|| self.calls.new_tracking_id(), str::to_owned),
            offer.call_ref.clone(),
            callee.scope(),
            Personality::Terminator,
            remote,
            time::OffsetDateTime::now_utc(),
        );
        if let Some((reason, to)) = self.forwarding(&callee).await? {
            return self
                .redirect(&callee, call, offer, reason, to.as_deref())
                .await;
        }
        let busy = self.calls.count_of(&callee.id) >= self.quotas().max_calls_per_user.get()
            || !self.bridge_has_room(bridge_of(&offer.call_ref));
        if busy {
            if let Some(to) = self.forward_busy(&callee).await? {
                return self
                    .redirect(&callee, call, offer, RedirectReason::UserBusy, Some(&to))
                    .await;
            }
            tracing::info!(user = %callee.id, "offered call refused: busy");
            return Ok(CarrierCommand::Reject(RejectReason::Busy));
        }
        tracing::info!(user = %callee.id, call = %call.id, from = %offer.from, "incoming call");
        self.keep(call, CallEventKind::Received);
        Ok(CarrierCommand::Accept)
    }

    /// Where the user's calls go before they ring: Call Forwarding Always, or Do Not
    /// Disturb (with Call Forwarding Busy, there; without, the call is refused busy,
    /// which `Some((DoNotDisturb, None))` says).
    async fn forwarding(
        &self,
        user: &User,
    ) -> Result<Option<(RedirectReason, Option<String>)>, TelephonyError> {
        if let ServiceSettings::CallForwardingAlways(cfa) = self
            .service(&user.id, ServiceName::CallForwardingAlways)
            .await?
        {
            if cfa.active {
                if let Some(to) = cfa.forward_to {
                    return Ok(Some((RedirectReason::Unconditional, Some(to))));
                }
            }
        }
        if let ServiceSettings::DoNotDisturb(dnd) =
            self.service(&user.id, ServiceName::DoNotDisturb).await?
        {
            if dnd.active {
                return Ok(Some((
                    RedirectReason::DoNotDisturb,
                    self.forward_busy(user).await?,
                )));
            }
        }
        Ok(None)
    }

    /// The Call Forwarding Busy destination, when it is on.
    async fn forward_busy(&self, user: &User) -> Result<Option<String>, TelephonyError> {
        Ok(
            match self
                .service(&user.id, ServiceName::CallForwardingBusy)
                .await?
            {
                ServiceSettings::CallForwardingBusy(cfb) if cfb.active => cfb.forward_to,
                _ => None,
            },
        )
    }

    /// Sends `callee`'s offered `call` to `to` (refused busy without a destination, or when the
    /// call was redirected too often), and tells the user (CallRedirected).
    async fn redirect(
        &self,
        callee: &User,
        call: Call,
        offer: &Offer,
        reason: RedirectReason,
        to: Option<&str>,
    ) -> Result<CarrierCommand, TelephonyError> {
        let redirects: u32 = offer
            .header(REDIRECTS_HEADER)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let Some(to) = to.filter(|_| redirects < MAX_REDIRECTS) else {
            tracing::info!(user = %call.user.id, reason = reason.as_str(), redirects, "offered call refused: not reachable");
            return Ok(CarrierCommand::Reject(RejectReason::Busy));
        };
        let destination = self.resolve(callee, to).await?;
        let mut request = destination.dial_request(offer.from.clone(), &call.ext_tracking_id);
        request
            .headers
            .push((REDIRECTS_HEADER.to_owned(), (redirects + 1).to_string()));
        self.detach(call, reason, &request.to)?;
        Ok(CarrierCommand::Redirect(request))
    }

    /// The ringing `call` went to `to` for `reason`: the user is off it (CallRedirected);
    /// the detached call.
    pub(super) fn detach(
        &self,
        mut call: Call,
        reason: RedirectReason,
        to: &str,
    ) -> Result<Call, CallError> {
        let now = time::OffsetDateTime::now_utc();
        call.apply(CallAction::Redirect(reason), now)?;
        call.redirect = Some(Redirect {
            address: to.to_owned(),
            reason,
            time: now,
        });
        tracing::info!(user = %call.user.id, %to, reason = reason.as_str(), "incoming call redirected");
        self.keep(call.clone(), CallEventKind::Redirected);
        Ok(call)
    }
}

/// The call log record of a finished call.
fn call_log_record(call: &Call) -> CallLogRecord {
    let kind = match (call.personality, call.was_answered()) {
        (Personality::Originator | Personality::ClickToDial, _) => CallLogKind::Placed,
        (Personality::Terminator, true) => CallLogKind::Received,
        (Personality::Terminator, false) => CallLogKind::Missed,
    };
    let number = call
        .remote
        .address
        .as_deref()
        .map(|a| a.strip_prefix("tel:").unwrap_or(a).to_owned())
        .or_else(|| call.remote.user_id.clone())
        .unwrap_or_default();
    CallLogRecord {
        id: 0,
        user_id: call.user.id.clone(),
        kind,
        name: call.remote.name.clone(),
        number,
        country_code: None,
        time: call
            .start_time
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::ago;

    #[test]
    fn a_timer_of_any_length_is_a_time_never_an_overflow() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(ago(now, 60), now - time::Duration::seconds(60));
        for huge in [u64::MAX, i64::MAX as u64, 10_u64.pow(15)] {
            assert!(
                ago(now, huge) < now - time::Duration::days(365 * 1000),
                "{huge}"
            );
        }
    }
}
