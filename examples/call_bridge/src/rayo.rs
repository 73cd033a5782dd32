//! The bridge's Rayo server (XEP-0327 core, plus Bridgehead's `urn:bridgehead:rayo:1`):
//! one table of calls, each a Rayo call toward a Bridgehead user (`callid@bridge`) whose
//! far end is another Rayo call (a call between two Bridgehead users, joined here) or a
//! SIP dialog.
//!
//! ```text
//! dial (X-Bridgehead-User)  → ref A; offer on B (headers copied)   A ⇄ B
//! dial (any other address)  → ref A; INVITE to the SIP peer        A ⇄ SIP
//! INVITE from SIP           → offer on B                           B ⇄ SIP
//! accept on X               → <ringing/> on its far end (SIP: 180)
//! answer on X               → <answered/> on its far end (SIP: 200 with the SDP)
//! reject on X               → <end> busy/reject/error on its far end (SIP: 486/603/480)
//! redirect on X             → a new call for the new address takes X's place
//! hangup on X               → <end><hungup/></end> on its far end (SIP: BYE, CANCEL, 487)
//! hold, unhold on X         → <held/>, <unheld/> on its far end (SIP: acknowledged only)
//! transfer to=T on X        → X's far end gets a new call to T, X ends (blind transfer)
//! transfer to-call=Y on X   → the far ends of X and Y are joined, X and Y end
//! dtmf tones on X           → <dtmf signal/> per tone on its far end (SIP: INFO)
//! SIP 180 / 200 / end       → <ringing/> / <answered/> / <end> on the Rayo call
//! ```
//!
//! Every Rayo command is answered with an iq result, or `item-not-found` for a call the
//! bridge does not have; the call table lives for one XMPP session (when the connection
//! drops, Bridgehead releases the calls and the bridge ends their SIP dialogs).

use std::collections::HashMap;
use std::sync::Arc;

use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::StatusCode;
use tokio_xmpp::jid::Jid;
use tokio_xmpp::minidom::Element;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use tokio_xmpp::Stanza;

use crate::sip::{self, End, Sip, SipEvent};

/// Rayo core.
pub const RAYO: &str = "urn:xmpp:rayo:1";
/// Bridgehead's hold extension.
pub const RAYO_EXT: &str = "urn:bridgehead:rayo:1";
/// The header naming a Bridgehead user: the call is joined here, not sent to SIP.
const LOCAL_USER_HEADER: &str = "X-Bridgehead-User";

/// A SIP dialog at the far end of a Rayo call.
struct SipLeg {
    dialog: InviteDialog,
    call_id: String,
    incoming: bool,
    answered: bool,
}

enum Far {
    /// Another Rayo call of this bridge.
    Rayo(String),
    /// A SIP dialog.
    Sip(SipLeg),
}

struct Call {
    /// Who calls, as the offer says it.
    from: String,
    far: Far,
    /// Whether the call is connected (answered on either side).
    answered: bool,
}

impl Call {
    fn new(from: String, far: Far) -> Self {
        Call {
            from,
            far,
            answered: false,
        }
    }
}

/// The calls of one XMPP session.
pub struct Bridge {
    me: Jid,
    server: Jid,
    sip: Option<Arc<Sip>>,
    calls: HashMap<String, Call>,
    next: u64,
}

fn rayo(name: &str) -> Element {
    Element::builder(name, RAYO).build()
}

fn headers_of(element: &Element) -> Vec<(String, String)> {
    element
        .children()
        .filter(|h| h.is("header", RAYO))
        .filter_map(|h| Some((h.attr("name")?.to_owned(), h.attr("value")?.to_owned())))
        .collect()
}

fn with_headers(
    mut builder: tokio_xmpp::minidom::ElementBuilder,
    headers: &[(String, String)],
) -> Element {
    for (name, value) in headers {
        builder = builder.append(
            Element::builder("header", RAYO)
                .attr(
                    tokio_xmpp::minidom::rxml::xml_ncname!("name").to_owned(),
                    name.as_str(),
                )
                .attr(
                    tokio_xmpp::minidom::rxml::xml_ncname!("value").to_owned(),
                    value.as_str(),
                )
                .build(),
        );
    }
    builder.build()
}

fn is_local(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case(LOCAL_USER_HEADER))
}

fn error(id: String, condition: DefinedCondition, text: &str) -> Iq {
    Iq::from_error(
        id,
        StanzaError::new(ErrorType::Cancel, condition, "en", text),
    )
}

impl Bridge {
    /// The calls of a session as `me` with the XMPP server `server`, reaching SIP through
    /// `sip`.
    pub fn new(me: Jid, server: Jid, sip: Option<Arc<Sip>>) -> Self {
        Bridge {
            me,
            server,
            sip,
            calls: HashMap::new(),
            next: 0,
        }
    }

    fn new_id(&mut self) -> String {
        self.next += 1;
        format!("call{}-{}", std::process::id(), self.next)
    }

    fn jid_of(&self, call: &str) -> Option<Jid> {
        Jid::new(&format!("{call}@{}", self.me.domain())).ok()
    }

    /// Presence from call `call` to the server carrying `event`.
    fn event(&self, call: &str, event: Element) -> Option<Stanza> {
        let mut presence = Presence::new(PresenceType::None);
        presence.from = self.jid_of(call);
        presence.to = Some(self.server.clone());
        presence.payloads.push(event);
        Some(Stanza::Presence(presence))
    }

    fn end_event(&self, call: &str, end: End) -> Option<Stanza> {
        self.event(
            call,
            Element::builder("end", RAYO)
                .append(rayo(end.as_str()))
                .build(),
        )
    }

    /// Whether `iq` is a Rayo command for this bridge; its answer and the events it makes.
    pub fn command(&mut self, iq: &Iq) -> Option<Vec<Stanza>> {
        let Iq::Set {
            from: Some(from),
            to: Some(to),
            id,
            payload,
        } = iq
        else {
            return None;
        };
        if payload.ns() != RAYO && payload.ns() != RAYO_EXT {
            return None;
        }
        let mut out = Vec::new();
        let answer = match (to.node(), payload.name()) {
            (None, "dial") => self.dial(id.clone(), payload, &mut out),
            (Some(call), command) => {
                let call = call.as_str().to_owned();
                if self.calls.contains_key(&call) {
                    self.on_call(&call, command, payload, &mut out);
                    Iq::Result {
                        from: None,
                        to: None,
                        id: id.clone(),
                        payload: None,
                    }
                } else {
                    error(id.clone(), DefinedCondition::ItemNotFound, "no such call")
                }
            }
            (None, _) => error(
                id.clone(),
                DefinedCondition::FeatureNotImplemented,
                "not a bridge command",
            ),
        };
        let answer = answer.with_to(from.clone()).with_from(to.clone());
        out.insert(0, Stanza::Iq(answer));
        Some(out)
    }

    fn dial(&mut self, id: String, dial: &Element, out: &mut Vec<Stanza>) -> Iq {
        let (to, from) = (
            dial.attr("to").unwrap_or_default().to_owned(),
            dial.attr("from").unwrap_or_default().to_owned(),
        );
        let headers = headers_of(dial);
        let a = self.new_id();
        let far = if is_local(&headers) {
            let b = self.new_id();
            self.calls
                .insert(b.clone(), Call::new(from.clone(), Far::Rayo(a.clone())));
            out.extend(self.offer(&b, &to, &from, &headers));
            Far::Rayo(b)
        } else {
            match self.sip_out(&to, &from, &headers) {
                Ok(leg) => Far::Sip(leg),
                Err(why) => {
                    tracing::info!(%to, %why, "dial refused");
                    return error(id, DefinedCondition::ServiceUnavailable, &why);
                }
            }
        };
        tracing::info!(call = %a, %to, %from, "dialled");
        self.calls.insert(a.clone(), Call::new(from, far));
        let uri = format!("xmpp:{a}@{}", self.me.domain());
        Iq::Result {
            from: None,
            to: None,
            id,
            payload: Some(
                Element::builder("ref", RAYO)
                    .attr(
                        tokio_xmpp::minidom::rxml::xml_ncname!("uri").to_owned(),
                        uri,
                    )
                    .build(),
            ),
        }
    }

    fn sip_out(
        &self,
        to: &str,
        from: &str,
        headers: &[(String, String)],
    ) -> Result<SipLeg, String> {
        let sip = self.sip.as_ref().ok_or("this bridge has no SIP side")?;
        let (dialog, call_id) = sip.invite(to, from, headers)?;
        Ok(SipLeg {
            dialog,
            call_id,
            incoming: false,
            answered: false,
        })
    }

    fn offer(
        &self,
        call: &str,
        to: &str,
        from: &str,
        headers: &[(String, String)],
    ) -> Option<Stanza> {
        let builder = Element::builder("offer", RAYO)
            .attr(tokio_xmpp::minidom::rxml::xml_ncname!("to").to_owned(), to)
            .attr(
                tokio_xmpp::minidom::rxml::xml_ncname!("from").to_owned(),
                from,
            );
        self.event(call, with_headers(builder, headers))
    }

    /// A command on call `call` (known).
    fn on_call(&mut self, call: &str, command: &str, payload: &Element, out: &mut Vec<Stanza>) {
        let far_rayo = match &self.calls[call].far {
            Far::Rayo(peer) => Some(peer.clone()),
            Far::Sip(_) => None,
        };
        match command {
            "accept" => match far_rayo {
                Some(peer) => out.extend(self.event(&peer, rayo("ringing"))),
                None => self.with_sip(call, |leg| {
                    let _ = leg.dialog.ringing(None, None);
                }),
            },
            "answer" => {
                self.mark_answered(call);
                match far_rayo {
                    Some(peer) => {
                        if !self.calls.get(&peer).is_some_and(|p| p.answered) {
                            self.mark_answered(&peer);
                            out.extend(self.event(&peer, rayo("answered")));
                        }
                    }
                    None => self.with_sip(call, |leg| {
                        leg.answered = true;
                        sip::answer(&leg.dialog);
                    }),
                }
            }
            "transfer" => match payload.attr("to-call") {
                Some(other) => {
                    let other = other.strip_prefix("xmpp:").unwrap_or(other);
                    let other = other.split_once('@').map_or(other, |(node, _)| node);
                    self.join(call, other);
                }
                None => {
                    let to = payload.attr("to").unwrap_or_default().to_owned();
                    let from = payload.attr("from").unwrap_or_default().to_owned();
                    if let Some(moved) = self.calls.get_mut(call) {
                        moved.from = from;
                    }
                    self.redirect(call, &to, &headers_of(payload), out);
                }
            },
            "dtmf" => {
                let tones = payload.attr("tones").unwrap_or_default().to_owned();
                match far_rayo {
                    Some(peer) => {
                        for tone in tones.chars().filter(|c| *c != ',') {
                            let signal = Element::builder("dtmf", RAYO)
                                .attr(
                                    tokio_xmpp::minidom::rxml::xml_ncname!("signal").to_owned(),
                                    tone.to_string(),
                                )
                                .build();
                            out.extend(self.event(&peer, signal));
                        }
                    }
                    None => self.with_sip(call, |leg| sip::dtmf(&leg.dialog, &tones)),
                }
            }
            "hold" | "unhold" => {
                if let Some(peer) = far_rayo {
                    let event = if command == "hold" { "held" } else { "unheld" };
                    out.extend(self.event(&peer, Element::builder(event, RAYO_EXT).build()));
                }
            }
            "reject" => {
                let reason = payload.children().next().map(|r| r.name().to_owned());
                let (end, code) = match reason.as_deref() {
                    Some("busy") => (End::Busy, StatusCode::BusyHere),
                    Some("decline") => (End::Reject, StatusCode::Decline),
                    _ => (End::Error, StatusCode::TemporarilyUnavailable),
                };
                self.close(call, end, Some(code), out);
            }
            "hangup" => self.close(call, End::Hungup, None, out),
            "redirect" => {
                let to = payload.attr("to").unwrap_or_default().to_owned();
                self.redirect(call, &to, &headers_of(payload), out);
            }
            other => tracing::debug!(%call, command = other, "command without an effect"),
        }
    }

    fn mark_answered(&mut self, call: &str) {
        if let Some(call) = self.calls.get_mut(call) {
            call.answered = true;
        }
    }

    /// Calls `x` and `y` end here and their far ends are joined (consultative transfer).
    fn join(&mut self, x: &str, y: &str) {
        let (Some(cx), Some(cy)) = (self.calls.remove(x), self.calls.remove(y)) else {
            return;
        };
        match (cx.far, cy.far) {
            (Far::Rayo(p), Far::Rayo(q)) => {
                self.set_far(&p, Far::Rayo(q.clone()));
                self.set_far(&q, Far::Rayo(p));
            }
            (Far::Rayo(p), Far::Sip(leg)) | (Far::Sip(leg), Far::Rayo(p)) => {
                self.set_far(&p, Far::Sip(leg));
            }
            (Far::Sip(a), Far::Sip(b)) => {
                // The example does not bridge two SIP dialogs: both end.
                sip::end(a.dialog, a.incoming, a.answered, None);
                sip::end(b.dialog, b.incoming, b.answered, None);
            }
        }
    }

    fn set_far(&mut self, call: &str, far: Far) {
        if let Some(call) = self.calls.get_mut(call) {
            call.far = far;
        }
    }

    fn with_sip(&mut self, call: &str, f: impl FnOnce(&mut SipLeg)) {
        if let Some(Call {
            far: Far::Sip(leg), ..
        }) = self.calls.get_mut(call)
        {
            f(leg);
        }
    }

    /// Call `call` ends here: its far end is told (`end`, or the SIP `code`).
    fn close(&mut self, call: &str, end: End, code: Option<StatusCode>, out: &mut Vec<Stanza>) {
        let Some(closed) = self.calls.remove(call) else {
            return;
        };
        match closed.far {
            Far::Rayo(peer) => {
                if self.calls.remove(&peer).is_some() {
                    out.extend(self.end_event(&peer, end));
                }
            }
            Far::Sip(leg) => sip::end(leg.dialog, leg.incoming, leg.answered, code),
        }
    }

    /// The offered call `call` goes to `to` instead: a new Rayo call takes its place
    /// (offered for a Bridgehead user, dialled over SIP otherwise).
    fn redirect(
        &mut self,
        call: &str,
        to: &str,
        headers: &[(String, String)],
        out: &mut Vec<Stanza>,
    ) {
        let Some(old) = self.calls.remove(call) else {
            return;
        };
        match old.far {
            Far::Rayo(peer) if is_local(headers) => {
                let new = self.new_id();
                out.extend(self.offer(&new, to, &old.from, headers));
                if let Some(peer_call) = self.calls.get_mut(&peer) {
                    peer_call.far = Far::Rayo(new.clone());
                }
                self.calls.insert(new, Call::new(old.from, Far::Rayo(peer)));
            }
            Far::Rayo(peer) => match self.sip_out(to, &old.from, headers) {
                Ok(leg) => {
                    if let Some(peer_call) = self.calls.get_mut(&peer) {
                        peer_call.far = Far::Sip(leg);
                    }
                }
                Err(why) => {
                    tracing::info!(%to, %why, "redirect failed");
                    self.calls.remove(&peer);
                    out.extend(self.end_event(&peer, End::Error));
                }
            },
            Far::Sip(leg) if is_local(headers) => {
                let new = self.new_id();
                out.extend(self.offer(&new, to, &old.from, headers));
                self.calls.insert(new, Call::new(old.from, Far::Sip(leg)));
            }
            // A SIP caller redirected back to SIP is refused: the example does not
            // chain two SIP dialogs.
            Far::Sip(leg) => sip::end(
                leg.dialog,
                true,
                false,
                Some(StatusCode::TemporarilyUnavailable),
            ),
        }
    }

    /// What the SIP side reported; the events it makes.
    pub fn sip_event(&mut self, event: SipEvent) -> Vec<Stanza> {
        let find = |calls: &HashMap<String, Call>, call_id: &str| {
            calls
                .iter()
                .find(|(_, c)| matches!(&c.far, Far::Sip(leg) if leg.call_id == call_id))
                .map(|(id, _)| id.clone())
        };
        match event {
            SipEvent::Incoming {
                dialog,
                call_id,
                to,
                from,
                headers,
            } => {
                let b = self.new_id();
                let offer = self.offer(&b, &to, &from, &headers);
                let far = Far::Sip(SipLeg {
                    dialog,
                    call_id,
                    incoming: true,
                    answered: false,
                });
                self.calls.insert(b, Call::new(from, far));
                offer.into_iter().collect()
            }
            SipEvent::Ringing(call_id) => find(&self.calls, &call_id)
                .and_then(|call| self.event(&call, rayo("ringing")))
                .into_iter()
                .collect(),
            SipEvent::Answered(call_id) => {
                let Some(call) = find(&self.calls, &call_id) else {
                    return Vec::new();
                };
                // Said once, for an outgoing dialog of a call not connected yet (a call
                // transferred to SIP is connected already).
                let mut outgoing = false;
                self.with_sip(&call, |leg| {
                    outgoing = !leg.incoming;
                    leg.answered = true;
                });
                let was_answered = self.calls.get(&call).is_some_and(|c| c.answered);
                self.mark_answered(&call);
                if outgoing && !was_answered {
                    self.event(&call, rayo("answered")).into_iter().collect()
                } else {
                    Vec::new()
                }
            }
            SipEvent::Ended(call_id, end) => match find(&self.calls, &call_id) {
                Some(call) => {
                    self.calls.remove(&call);
                    self.end_event(&call, end).into_iter().collect()
                }
                None => Vec::new(),
            },
        }
    }

    /// The session ended: every SIP dialog of its calls ends too.
    pub fn close_all(&mut self) {
        for (_, call) in self.calls.drain() {
            if let Far::Sip(leg) = call.far {
                sip::end(leg.dialog, leg.incoming, leg.answered, None);
            }
        }
    }
}
