//! The Rayo payloads Bridgehead writes and reads: commands as typed elements, and the
//! bridge's call events as typed values.

use minidom::Element;

use crate::telephony::calls::{CallAction, CarrierCommand, DialRequest, Offer, ReleaseCause};
use crate::xmpp::ns::{RAYO, RAYO_EXT};
use crate::xmpp::stanza;

/// What a bridge's presence from a call says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallReport {
    /// A new incoming call.
    Offer(Offer),
    /// A change to a call Bridgehead knows.
    Action(CallAction),
    /// Nothing Bridgehead acts on (`ringing`, unknown events).
    Nothing(String),
}

fn headers(
    builder: minidom::ElementBuilder,
    headers: &[(String, String)],
) -> minidom::ElementBuilder {
    headers.iter().fold(builder, |builder, (name, value)| {
        builder.append(stanza::element("header", RAYO, &[("name", name), ("value", value)]).build())
    })
}

/// `<dial to from><header/>…</dial>`.
pub(super) fn dial(request: &DialRequest) -> Element {
    headers(
        stanza::element(
            "dial",
            RAYO,
            &[("to", &request.to), ("from", &request.from)],
        ),
        &request.headers,
    )
    .build()
}

/// The payload of `command`.
pub(super) fn command(command: &CarrierCommand) -> Element {
    match command {
        CarrierCommand::Accept => Element::builder("accept", RAYO).build(),
        CarrierCommand::Answer => Element::builder("answer", RAYO).build(),
        CarrierCommand::Hangup => Element::builder("hangup", RAYO).build(),
        CarrierCommand::Reject(reason) => Element::builder("reject", RAYO)
            .append(Element::builder(reason.as_str(), RAYO).build())
            .build(),
        CarrierCommand::Redirect(request) => headers(
            stanza::element("redirect", RAYO, &[("to", &request.to)]),
            &request.headers,
        )
        .build(),
        CarrierCommand::Hold => Element::builder("hold", RAYO_EXT).build(),
        CarrierCommand::Retrieve => Element::builder("unhold", RAYO_EXT).build(),
        CarrierCommand::Transfer(request) => headers(
            stanza::element(
                "transfer",
                RAYO_EXT,
                &[("to", &request.to), ("from", &request.from)],
            ),
            &request.headers,
        )
        .build(),
        CarrierCommand::ConsultTransfer(other) => stanza::element(
            "transfer",
            RAYO_EXT,
            &[("to-call", &format!("xmpp:{other}"))],
        )
        .build(),
        CarrierCommand::Dtmf(tones) => {
            stanza::element("dtmf", RAYO_EXT, &[("tones", tones)]).build()
        }
    }
}

/// The call event in a bridge's presence from call `call_ref`, if it carries one.
pub(super) fn report(presence: &Element, call_ref: &str) -> Option<CallReport> {
    let event = presence
        .children()
        .find(|c| c.ns() == RAYO || c.ns() == RAYO_EXT)?;
    let action = match (event.ns().as_str(), event.name()) {
        (RAYO, "offer") => {
            return Some(CallReport::Offer(Offer {
                call_ref: call_ref.to_owned(),
                to: event.attr("to").unwrap_or_default().to_owned(),
                from: event.attr("from").unwrap_or_default().to_owned(),
                headers: event
                    .children()
                    .filter(|h| h.is("header", RAYO))
                    .filter_map(|h| Some((h.attr("name")?.to_owned(), h.attr("value")?.to_owned())))
                    .collect(),
            }))
        }
        (RAYO, "answered") => CallAction::RemoteAnswer,
        (RAYO, "end") => {
            CallAction::RemoteRelease(event.children().find_map(|reason| match reason.name() {
                "busy" => Some(ReleaseCause::Busy),
                "reject" => Some(ReleaseCause::Forbidden),
                "timeout" => Some(ReleaseCause::RequestTimeout),
                "error" => Some(ReleaseCause::ServerFailure),
                _ => None,
            }))
        }
        (RAYO_EXT, "held") => CallAction::RemoteHold,
        (RAYO_EXT, "unheld") => CallAction::RemoteRetrieve,
        (_, other) => return Some(CallReport::Nothing(other.to_owned())),
    };
    Some(CallReport::Action(action))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telephony::calls::RejectReason;

    fn presence(child: Element) -> Element {
        stanza::element("presence", crate::xmpp::ns::COMPONENT, &[])
            .append(child)
            .build()
    }

    #[test]
    fn reports_are_read_from_their_elements() {
        let offer = stanza::element(
            "offer",
            RAYO,
            &[("to", "sip:bob@acme.test"), ("from", "tel:+1555")],
        )
        .append(stanza::element("header", RAYO, &[("name", "X-A"), ("value", "1")]).build())
        .build();
        assert_eq!(
            report(&presence(offer), "c1@bridge"),
            Some(CallReport::Offer(Offer {
                call_ref: "c1@bridge".into(),
                to: "sip:bob@acme.test".into(),
                from: "tel:+1555".into(),
                headers: vec![("X-A".into(), "1".into())],
            }))
        );
        let end = Element::builder("end", RAYO)
            .append(Element::builder("busy", RAYO).build())
            .build();
        assert_eq!(
            report(&presence(end), "c1@bridge"),
            Some(CallReport::Action(CallAction::RemoteRelease(Some(
                ReleaseCause::Busy
            ))))
        );
        assert_eq!(
            report(&presence(Element::builder("held", RAYO_EXT).build()), "c"),
            Some(CallReport::Action(CallAction::RemoteHold))
        );
        assert_eq!(
            report(&presence(Element::builder("ringing", RAYO).build()), "c"),
            Some(CallReport::Nothing("ringing".into()))
        );
        assert_eq!(
            report(&presence(Element::builder("x", "other").build()), "c"),
            None
        );
    }

    #[test]
    fn commands_are_written_in_their_namespaces() {
        let reject = command(&CarrierCommand::Reject(RejectReason::Busy));
        assert!(reject.is("reject", RAYO) && reject.get_child("busy", RAYO).is_some());
        assert!(command(&CarrierCommand::Hold).is("hold", RAYO_EXT));
        let redirect = command(&CarrierCommand::Redirect(DialRequest {
            from: "sip:a@x".into(),
            to: "tel:+1".into(),
            headers: vec![("H".into(), "v".into())],
        }));
        assert_eq!(redirect.attr("to"), Some("tel:+1"));
        assert_eq!(
            redirect
                .get_child("header", RAYO)
                .and_then(|h| h.attr("value")),
            Some("v")
        );
    }
}
