//! Stanza-level helpers on namespace-agnostic elements: what kind of stanza an element is,
//! and the RFC 6120 §8.3 error reply to it.

use crate::xmpp::error::StanzaCondition;
use minidom::Element;

use super::ns;

/// The three stanza kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `<message/>`.
    Message,
    /// `<presence/>`.
    Presence,
    /// `<iq/>`.
    Iq,
}

impl Kind {
    /// The element name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Presence => "presence",
            Kind::Iq => "iq",
        }
    }
}

/// The stanza kind of `element`, if it is a stanza in a stanza namespace.
pub fn kind(element: &Element) -> Option<Kind> {
    let ns = element.ns();
    if ns != ns::COMPONENT && ns != ns::CLIENT {
        return None;
    }
    match element.name() {
        "message" => Some(Kind::Message),
        "presence" => Some(Kind::Presence),
        "iq" => Some(Kind::Iq),
        _ => None,
    }
}

/// `builder` with attribute `name` (skipped if `name` is not a valid XML name; callers pass
/// literals).
pub fn attr(builder: minidom::ElementBuilder, name: &str, value: &str) -> minidom::ElementBuilder {
    match rxml::NcName::try_from(name.to_owned()) {
        Ok(name) => builder.attr(name, value),
        Err(_) => builder,
    }
}

/// An element builder with attribute pairs (names are literals).
pub fn element(name: &str, namespace: &str, attrs: &[(&str, &str)]) -> minidom::ElementBuilder {
    attrs.iter().fold(
        minidom::Element::builder(name, namespace),
        |builder, (key, value)| attr(builder, key, value),
    )
}

/// The `type='result'` answer to an iq: addresses swapped, same id, same namespace.
pub fn iq_result(request: &Element) -> minidom::ElementBuilder {
    let mut reply = element("iq", &request.ns(), &[("type", "result")]);
    for (ours, theirs) in [("from", "to"), ("to", "from"), ("id", "id")] {
        if let Some(value) = request.attr(theirs) {
            reply = attr(reply, ours, value);
        }
    }
    reply
}

/// Sets (or replaces) the `to` or `from` address of a stanza.
pub fn set_address(stanza: &mut Element, which: &'static str, value: &str) {
    let name = if which == "to" {
        rxml::xml_ncname!("to")
    } else {
        rxml::xml_ncname!("from")
    };
    stanza.set_attr(rxml::Namespace::NONE, name.to_owned(), value.to_owned());
}

/// A presence stanza's `<priority/>` (RFC 6121 §4.7.2.3), 0 when absent or invalid.
pub fn priority(presence: &Element) -> i32 {
    presence
        .children()
        .find(|child| child.name() == "priority")
        .and_then(|p| p.text().trim().parse::<i8>().ok())
        .map_or(0, i32::from)
}

/// The error type RFC 6120 §8.3.3 gives a condition.
/// The error reply to `stanza` with `condition`, or `None`
/// when none may be sent: errors are never answered, and neither is presence, except
/// presence probes, subscriptions and directed available presence are simply dropped too
/// (RFC 6121 lets a server ignore presence to an unavailable entity).
pub fn error_reply(stanza: &Element, condition: StanzaCondition) -> Option<Element> {
    let kind = kind(stanza)?;
    if stanza.attr("type") == Some("error") || kind == Kind::Presence {
        return None;
    }
    if kind == Kind::Iq && matches!(stanza.attr("type"), Some("result")) {
        return None;
    }
    let stanza_ns = stanza.ns();
    let mut reply = Element::builder(stanza.name(), stanza_ns.clone())
        .attr(rxml::xml_ncname!("type").to_owned(), "error");
    if let Some(from) = stanza.attr("to") {
        reply = reply.attr(rxml::xml_ncname!("from").to_owned(), from);
    }
    if let Some(to) = stanza.attr("from") {
        reply = reply.attr(rxml::xml_ncname!("to").to_owned(), to);
    }
    if let Some(id) = stanza.attr("id") {
        reply = reply.attr(rxml::xml_ncname!("id").to_owned(), id);
    }
    let error = Element::builder("error", stanza_ns)
        .attr(rxml::xml_ncname!("type").to_owned(), condition.error_type())
        .append(Element::builder(condition.as_str(), ns::STANZAS).build())
        .build();
    Some(reply.append(error).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iq_get_gets_an_error_with_swapped_addresses() {
        let iq = Element::builder("iq", ns::CLIENT)
            .attr(rxml::xml_ncname!("type").to_owned(), "get")
            .attr(rxml::xml_ncname!("id").to_owned(), "q1")
            .attr(rxml::xml_ncname!("from").to_owned(), "a@x/r")
            .attr(rxml::xml_ncname!("to").to_owned(), "b.x")
            .build();
        let reply = error_reply(&iq, StanzaCondition::ServiceUnavailable).unwrap();
        assert_eq!(reply.attr("to"), Some("a@x/r"));
        assert_eq!(reply.attr("from"), Some("b.x"));
        assert_eq!(reply.attr("id"), Some("q1"));
        let error = reply.get_child("error", ns::CLIENT).unwrap();
        assert_eq!(error.attr("type"), Some("cancel"));
        assert!(error.has_child("service-unavailable", ns::STANZAS));
    }

    #[test]
    fn errors_results_and_presence_are_not_answered() {
        for (name, kind) in [
            ("iq", "result"),
            ("message", "error"),
            ("presence", "unavailable"),
        ] {
            let stanza = Element::builder(name, ns::COMPONENT)
                .attr(rxml::xml_ncname!("type").to_owned(), kind)
                .build();
            assert!(
                error_reply(&stanza, StanzaCondition::ServiceUnavailable).is_none(),
                "{name} {kind}"
            );
        }
        assert!(error_reply(&Element::bare("foo", "urn:x"), StanzaCondition::BadRequest).is_none());
    }
}
