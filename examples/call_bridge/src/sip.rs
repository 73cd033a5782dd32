//! The bridge's SIP side, on rsipstack (UDP; signalling only, with a fixed SDP offer and
//! answer and no media): outgoing calls are INVITEs to the configured SIP peer, incoming
//! INVITEs become Rayo offers. rsipstack runs the transactions and dialogs; this module
//! only turns its dialog states into [`SipEvent`]s for the XMPP session, keyed by the
//! SIP Call-ID.

use std::net::SocketAddr;
use std::sync::Arc;

use rsipstack::dialog::dialog::{Dialog, DialogState, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, StatusCode, Uri};
use rsipstack::transport::{udp::UdpConnection, SipAddr, TransportLayer};
use rsipstack::EndpointBuilder;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The session description offered and answered: one PCMU audio stream, never sent.
const SDP: &str = "v=0\r\no=bridgehead 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// Headers copied between Rayo and SIP: Bridgehead's own.
const HEADER_PREFIX: &str = "x-bridgehead-";

/// How a SIP call ended, in Rayo's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Hung up (BYE, CANCEL).
    Hungup,
    /// Busy (486, 600).
    Busy,
    /// Refused (403, 603).
    Reject,
    /// Nobody answered (408, 480, a transaction timeout).
    Timeout,
    /// Anything else.
    Error,
}

impl End {
    /// The Rayo `<end/>` reason element.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Hungup => "hungup",
            End::Busy => "busy",
            End::Reject => "reject",
            End::Timeout => "timeout",
            End::Error => "error",
        }
    }

    fn of_status(code: u16) -> Self {
        match code {
            486 | 600 => End::Busy,
            403 | 603 => End::Reject,
            408 | 480 => End::Timeout,
            _ => End::Error,
        }
    }

    fn of(reason: &TerminatedReason) -> Self {
        match reason {
            TerminatedReason::UacBye | TerminatedReason::UasBye | TerminatedReason::UacCancel => {
                End::Hungup
            }
            TerminatedReason::UacBusy | TerminatedReason::UasBusy => End::Busy,
            TerminatedReason::UasDecline => End::Reject,
            TerminatedReason::Timeout => End::Timeout,
            TerminatedReason::ProxyError(code)
            | TerminatedReason::UacOther(code)
            | TerminatedReason::UasOther(code) => End::of_status(u16::from(code.clone())),
            _ => End::Error,
        }
    }
}

/// What happened on the SIP side.
pub enum SipEvent {
    /// A new incoming call.
    Incoming {
        /// Its dialog (answer, ring or reject it).
        dialog: InviteDialog,
        /// The SIP Call-ID.
        call_id: String,
        /// Who is called: `tel:+1555…` for a number, else `sip:user@host`.
        to: String,
        /// Who calls (the From URI).
        from: String,
        /// Its Bridgehead headers.
        headers: Vec<(String, String)>,
    },
    /// The far end of an outgoing call is ringing.
    Ringing(String),
    /// A call was answered (the far end of an outgoing one; the ACK of an incoming one).
    Answered(String),
    /// A call ended.
    Ended(String, End),
}

/// The SIP user agent.
pub struct Sip {
    layer: Arc<DialogLayer>,
    state: rsipstack::dialog::dialog::DialogStateSender,
    events: mpsc::Sender<SipEvent>,
    contact: Uri,
    peer: Option<SocketAddr>,
}

/// `tel:+1555` → `+1555`, `sip:bob@host` → `bob`: the user part of a Rayo address.
fn user_part(address: &str) -> &str {
    let address = address
        .strip_prefix("tel:")
        .or_else(|| address.strip_prefix("sip:"))
        .unwrap_or(address);
    address.split_once('@').map_or(address, |(user, _)| user)
}

/// How a Rayo address reads from a SIP request URI user: a number is `tel:`.
fn address_of(user: &str, host: &str) -> String {
    if !user.is_empty()
        && user
            .trim_start_matches('+')
            .chars()
            .all(|c| c.is_ascii_digit())
    {
        format!("tel:{user}")
    } else {
        format!("sip:{user}@{host}")
    }
}

fn bridgehead_headers(headers: &rsipstack::sip::Headers) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|h| match h {
            Header::Other(name, value) if name.to_ascii_lowercase().starts_with(HEADER_PREFIX) => {
                Some((name.clone(), value.clone()))
            }
            _ => None,
        })
        .collect()
}

impl Sip {
    /// Listens on `listen` (UDP) and sends outgoing calls to `peer`; what happens comes on
    /// the returned receiver. Ends with `cancel`.
    pub async fn start(
        listen: SocketAddr,
        peer: Option<SocketAddr>,
        cancel: CancellationToken,
    ) -> Result<(Arc<Sip>, mpsc::Receiver<SipEvent>), String> {
        let transport = TransportLayer::new(cancel.child_token());
        let udp = UdpConnection::create_connection(listen, None, Some(cancel.child_token()))
            .await
            .map_err(|e| format!("SIP listen {listen}: {e}"))?;
        let local = udp.get_addr().clone();
        transport.add_transport(udp.into());
        let endpoint = EndpointBuilder::new()
            .with_user_agent("bridgehead-call-bridge")
            .with_transport_layer(transport)
            .with_cancel_token(cancel.child_token())
            .build();
        let mut incoming = endpoint
            .incoming_transactions()
            .map_err(|e| format!("SIP endpoint: {e}"))?;
        let layer = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let (state, mut states) = layer.new_dialog_state_channel();
        let (events, receiver) = mpsc::channel(1024);
        let contact = Uri {
            scheme: Some(rsipstack::sip::Scheme::Sip),
            auth: None,
            host_with_port: local.addr.clone(),
            params: vec![],
            headers: vec![],
        };
        tracing::info!(%local, peer = ?peer, "SIP side listening");
        let sip = Arc::new(Sip {
            layer: Arc::clone(&layer),
            state: state.clone(),
            events: events.clone(),
            contact: contact.clone(),
            peer,
        });
        tokio::spawn(async move { endpoint.serve().await });
        let serving = Arc::clone(&sip);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    Some(tx) = incoming.recv() => serving.transaction(tx).await,
                    Some(state) = states.recv() => serving.dialog_state(state).await,
                    else => break,
                }
            }
        });
        Ok((sip, receiver))
    }

    async fn transaction(&self, mut tx: rsipstack::transaction::transaction::Transaction) {
        if let Some(Dialog::Invite(mut dialog)) = self.layer.match_dialog(&tx) {
            tokio::spawn(async move {
                if let Err(e) = dialog.handle(&mut tx).await {
                    tracing::debug!(error = %e, "in-dialog request");
                }
            });
            return;
        }
        match tx.original.method {
            Method::Invite => self.incoming_invite(tx).await,
            Method::Options => {
                let _ = tx.reply(StatusCode::OK).await;
            }
            Method::Ack => {}
            _ => {
                let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
            }
        }
    }

    async fn incoming_invite(&self, mut tx: rsipstack::transaction::transaction::Transaction) {
        let request = tx.original.clone();
        let from = request
            .from_header()
            .and_then(|f| f.uri())
            .map(|u| u.to_string())
            .unwrap_or_default();
        let user = request
            .uri
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let to = address_of(&user, &request.uri.host_with_port.to_string());
        let dialog = match self.layer.get_or_create_server_invite(
            &tx,
            self.state.clone(),
            None,
            Some(self.contact.clone()),
        ) {
            Ok(dialog) => dialog,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take an incoming INVITE");
                let _ = tx.reply(StatusCode::ServerInternalError).await;
                return;
            }
        };
        let call_id = dialog.id().call_id.clone();
        tracing::info!(%call_id, %to, %from, "incoming SIP call");
        let mut handled = dialog.clone();
        tokio::spawn(async move {
            if let Err(e) = handled.handle(&mut tx).await {
                tracing::debug!(error = %e, "incoming INVITE transaction");
            }
        });
        let event = SipEvent::Incoming {
            dialog,
            call_id,
            to,
            from,
            headers: bridgehead_headers(&request.headers),
        };
        if self.events.send(event).await.is_err() {
            tracing::warn!("no session takes SIP calls");
        }
    }

    async fn dialog_state(&self, state: DialogState) {
        let event = match state {
            DialogState::Early(id, response) if u16::from(response.status_code.clone()) < 200 => {
                SipEvent::Ringing(id.call_id)
            }
            DialogState::Confirmed(id, _) => SipEvent::Answered(id.call_id),
            DialogState::Terminated(id, reason) => {
                self.layer.remove_dialog(&id);
                SipEvent::Ended(id.call_id, End::of(&reason))
            }
            _ => return,
        };
        let _ = self.events.send(event).await;
    }

    /// Calls `to` (a Rayo address) from `from` at the SIP peer, with `headers`; the dialog
    /// and its Call-ID. Progress comes as [`SipEvent`]s.
    pub fn invite(
        &self,
        to: &str,
        from: &str,
        headers: &[(String, String)],
    ) -> Result<(InviteDialog, String), String> {
        let peer = self.peer.ok_or("no --sip-peer is configured")?;
        let callee = Uri::try_from(format!("sip:{}@{peer}", user_part(to)).as_str())
            .map_err(|e| format!("{to}: {e}"))?;
        let caller = Uri::try_from(
            format!("sip:{}@{}", user_part(from), self.contact.host_with_port).as_str(),
        )
        .map_err(|e| format!("{from}: {e}"))?;
        let option = InviteOption {
            callee,
            caller,
            destination: Some(SipAddr::from(peer)),
            content_type: Some("application/sdp".into()),
            offer: Some(SDP.as_bytes().to_vec()),
            contact: self.contact.clone(),
            headers: Some(
                headers
                    .iter()
                    .map(|(n, v)| Header::Other(n.clone(), v.clone()))
                    .collect(),
            ),
            ..Default::default()
        };
        let (dialog, outcome) = self
            .layer
            .do_invite_async(option, self.state.clone())
            .map_err(|e| e.to_string())?;
        let call_id = dialog.id().call_id.clone();
        let (events, id) = (self.events.clone(), call_id.clone());
        tokio::spawn(async move {
            // A final failure also ends the dialog; the session ignores a second end.
            let end = match outcome.await {
                Ok(Ok((_, Some(response)))) => {
                    let code = u16::from(response.status_code);
                    (code >= 300).then(|| End::of_status(code))
                }
                Ok(Ok((_, None))) => None,
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "outgoing SIP call failed");
                    Some(End::Error)
                }
                Err(_) => Some(End::Error),
            };
            if let Some(end) = end {
                let _ = events.send(SipEvent::Ended(id, end)).await;
            }
        });
        Ok((dialog, call_id))
    }
}

/// Answers an incoming call with the fixed SDP.
pub fn answer(dialog: &InviteDialog) {
    let headers = vec![Header::ContentType("application/sdp".into())];
    if let Err(e) = dialog.accept(Some(headers), Some(SDP.as_bytes().to_vec())) {
        tracing::warn!(error = %e, "cannot answer a SIP call");
    }
}

/// Sends `tones` on a SIP call, one INFO (`application/dtmf-relay`) per tone.
pub fn dtmf(dialog: &InviteDialog, tones: &str) {
    let (dialog, tones) = (dialog.clone(), tones.to_owned());
    tokio::spawn(async move {
        for tone in tones.chars().filter(|c| *c != ',') {
            let body = format!("Signal={tone}\r\nDuration=160\r\n");
            let headers = vec![Header::ContentType("application/dtmf-relay".into())];
            if let Err(e) = dialog.info(Some(headers), Some(body.into_bytes())).await {
                tracing::info!(error = %e, "sending DTMF");
                return;
            }
        }
    });
}

/// Ends a SIP call: BYE when answered, CANCEL for an unanswered outgoing one, 487 for an
/// unanswered incoming one; `code` for a refused incoming one.
pub fn end(dialog: InviteDialog, incoming: bool, answered: bool, code: Option<StatusCode>) {
    tokio::spawn(async move {
        let result = if incoming && !answered {
            dialog.reject(Some(code.unwrap_or(StatusCode::RequestTerminated)), None)
        } else {
            dialog.hangup().await
        };
        if let Err(e) = result {
            tracing::info!(error = %e, "ending a SIP call");
        }
    });
}
