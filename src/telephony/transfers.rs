//! Transfers and DTMF: what a user does to hand a call on, and the tones sent on one.
//!
//! ```text
//! BlindTransfer?address=X on a ringing incoming call
//!     Rayo redirect to X (deflection)        the user: CallRedirected
//! BlindTransfer?address=X on a connected call (Active, Held, Remote Held)
//!     <transfer to=X/> (Bridgehead's Rayo extension), confirmed by the bridge
//!     the user: CallReleased; the other local side: CallTransferred (remote party X);
//!     X, when local, is offered the call with the same extTrackingId
//! ConsultTransfer/{other} on two connected calls of the user, on one bridge
//!     <transfer to-call='xmpp:other'/>: their far ends are joined
//!     the user: CallReleased twice; each far end, when local: CallTransferred
//! TransmitDTMF?playdtmf=… on an Active call: <dtmf tones=…/>, no event
//! a call ringing numberOfRings × [calls] ring_secs for a user with Call Forwarding No Answer on
//!     Rayo redirect to its number (no-answer)  the user: CallRedirected
//! ```

use super::calls::{
    bridge_of, Call, CallAction, CallEventKind, CallState, CarrierCommand, Personality,
    RedirectReason, RemoteParty,
};
use super::services::ServiceSettings;
use super::{ServiceName, Telephony, TelephonyError, User};

/// The tones `TransmitDTMF` accepts: digits, `*`, `#`, `A`–`D`, and `,` (a pause).
fn check_tones(tones: &str) -> Result<(), TelephonyError> {
    let ok = !tones.is_empty()
        && tones.len() <= 64
        && tones
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | ',' | 'A'..='D' | 'a'..='d'));
    if ok {
        Ok(())
    } else {
        Err(TelephonyError::Invalid {
            field: "playdtmf",
            reason: format!("{tones:?} is not 1 to 64 of 0-9, *, #, A-D and ,"),
        })
    }
}

/// The far end of `call` as a dial's `from`: `sip:<user id>` for a local user, else its
/// address.
fn far_end(call: &Call) -> String {
    call.remote
        .user_id
        .as_ref()
        .map(|id| format!("sip:{id}"))
        .or_else(|| call.remote.address.clone())
        .unwrap_or_default()
}

impl Telephony {
    /// The other local sides of `call` become connected to `party`: CallTransferred.
    fn transferred(&self, call: &Call, party: &RemoteParty) {
        for mut other in self.calls.with_tracking_id(&call.ext_tracking_id) {
            if other.id == call.id || other.is_over() {
                continue;
            }
            other.remote = party.clone();
            self.keep(other, CallEventKind::Transferred);
        }
    }

    /// `BlindTransfer?address=…` (see the module docs).
    pub async fn blind_transfer(
        &self,
        user: &User,
        call_id: &str,
        address: &str,
    ) -> Result<Call, TelephonyError> {
        let call = self.call_of(user, call_id)?;
        let destination = self.resolve(user, address).await?;
        let request = destination.dial_request(far_end(&call), &call.ext_tracking_id);
        if call.state == CallState::Alerting && call.personality == Personality::Terminator {
            return self
                .deflect(user, call, request, RedirectReason::Deflection)
                .await;
        }
        let released = self
            .command(
                call.clone(),
                CallAction::Transfer,
                CarrierCommand::Transfer(request),
            )
            .await?;
        tracing::info!(user = %user.id, call = %call.id, %address, "call transferred");
        self.transferred(&call, &destination.party());
        Ok(released)
    }

    /// Sends the ringing `call` of `user` to `request`'s destination (Rayo `redirect`),
    /// once the bridge confirms: the user's call is Detached (CallRedirected).
    async fn deflect(
        &self,
        user: &User,
        call: Call,
        request: super::calls::DialRequest,
        reason: RedirectReason,
    ) -> Result<Call, TelephonyError> {
        call.clone().apply(
            CallAction::Redirect(reason),
            time::OffsetDateTime::now_utc(),
        )?;
        let to = request.to.clone();
        self.carrier()?
            .command(&call.call_ref, CarrierCommand::Redirect(request))
            .await?;
        let current = self.call_of(user, call.id.as_str())?;
        Ok(self.detach(current, reason, &to)?)
    }

    /// Call Forwarding No Answer: each ringing call of a user who has it on goes to its
    /// number once it has rung `numberOfRings` × `[calls] ring_secs`.
    pub(super) async fn forward_unanswered(&self, now: time::OffsetDateTime) {
        let ring_secs = self.calls_config.ring_secs.get();
        let first_due = super::call_control::ago(now, ring_secs.saturating_mul(2));
        for call in self
            .calls
            .unanswered(first_due, time::OffsetDateTime::UNIX_EPOCH)
        {
            if call.personality != Personality::Terminator {
                continue;
            }
            if let Err(e) = self.forward_if_due(&call, now).await {
                tracing::warn!(call = %call.id, error = %e, "Call Forwarding No Answer failed");
            }
        }
    }

    async fn forward_if_due(
        &self,
        call: &Call,
        now: time::OffsetDateTime,
    ) -> Result<(), TelephonyError> {
        let ServiceSettings::CallForwardingNoAnswer(cfna) = self
            .service(&call.user.id, ServiceName::CallForwardingNoAnswer)
            .await?
        else {
            return Ok(());
        };
        let rings = u64::from(cfna.number_of_rings);
        let rang_since =
            super::call_control::ago(now, self.calls_config.ring_secs.get().saturating_mul(rings));
        let (true, Some(to), true) = (
            cfna.active,
            cfna.forward_to.as_deref(),
            call.start_time <= rang_since,
        ) else {
            return Ok(());
        };
        let Some(user) = self.user(&call.user.id).await? else {
            return Ok(());
        };
        let request = self
            .resolve(&user, to)
            .await?
            .dial_request(far_end(call), &call.ext_tracking_id);
        self.deflect(&user, call.clone(), request, RedirectReason::NoAnswer)
            .await?;
        Ok(())
    }

    /// `ConsultTransfer/{other}`: joins the far ends of two of the user's calls.
    pub async fn consult_transfer(
        &self,
        user: &User,
        call_id: &str,
        other_id: &str,
    ) -> Result<Call, TelephonyError> {
        let (call, other) = (self.call_of(user, call_id)?, self.call_of(user, other_id)?);
        let now = time::OffsetDateTime::now_utc();
        other.clone().apply(CallAction::Transfer, now)?;
        let on_one_bridge =
            bridge_of(&call.call_ref).eq_ignore_ascii_case(bridge_of(&other.call_ref));
        if !on_one_bridge || call.id == other.id {
            return Err(TelephonyError::Invalid {
                field: "callId",
                reason: format!("calls {call_id} and {other_id} cannot be joined: they are not two calls on one bridge"),
            });
        }
        let released = self
            .command(
                call.clone(),
                CallAction::Transfer,
                CarrierCommand::ConsultTransfer(other.call_ref.clone()),
            )
            .await?;
        self.call_event(&other.call_ref, CallAction::Transfer)?;
        tracing::info!(user = %user.id, call = %call.id, other = %other.id, "calls joined");
        self.transferred(&call, &other.remote);
        self.transferred(&other, &call.remote);
        Ok(released)
    }

    /// `TransmitDTMF?playdtmf=…` on the user's Active call.
    pub async fn transmit_dtmf(
        &self,
        user: &User,
        call_id: &str,
        tones: &str,
    ) -> Result<Call, TelephonyError> {
        check_tones(tones)?;
        let call = self.call_of(user, call_id)?;
        self.command(
            call,
            CallAction::SendDtmf,
            CarrierCommand::Dtmf(tones.to_owned()),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::check_tones;

    #[test]
    fn tones_are_digits_star_hash_a_to_d_and_pauses() {
        for ok in ["1", "123#", "*9,A", "d"] {
            assert!(check_tones(ok).is_ok(), "{ok}");
        }
        for bad in ["", "12x", "1 2", &"1".repeat(65)] {
            assert!(check_tones(bad).is_err(), "{bad}");
        }
    }
}
