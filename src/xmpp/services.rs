//! What the server itself answers (stanzas addressed to the bare server domain):
//! XEP-0030 disco#info and disco#items (items = connected components), XEP-0199 ping,
//! XEP-0092 software version, XEP-0202 entity time. Anything else gets the proper error.

use crate::xmpp::error::StanzaCondition;
use minidom::Element;

use super::router::{Delivery, Router};
use super::stanza::{self, Kind};

use super::ns::{DISCO_INFO, DISCO_ITEMS, PING, TIME, VERSION};

/// The result to `request`, carrying `body` if any.
fn result_with(request: &Element, body: Option<Element>) -> Element {
    let mut reply = stanza::iq_result(request);
    if let Some(body) = body {
        reply = reply.append(body);
    }
    reply.build()
}

/// A disco#info answer: one identity and `features`.
fn disco_info(category: &str, kind: &str, features: &[&str]) -> Element {
    features
        .iter()
        .fold(
            Element::builder("query", DISCO_INFO).append(
                stanza::element(
                    "identity",
                    DISCO_INFO,
                    &[("category", category), ("type", kind)],
                )
                .build(),
            ),
            |query, feature| {
                query.append(stanza::element("feature", DISCO_INFO, &[("var", feature)]).build())
            },
        )
        .build()
}

/// Routes `stanza` from a session; what the router leaves to the server (stanzas to the
/// server domain or to an account's bare JID) is answered here, and the answer routed.
pub fn deliver(router: &Router, stanza: Element) -> Delivery {
    let delivery = router.route(stanza);
    if let Delivery::ToServer(request) = &delivery {
        if let Some(answer) = answer(router, request) {
            router.route(answer);
        }
    }
    delivery
}

/// The answer to a stanza addressed to the server, or to an account's bare JID (which the
/// server answers on the account's behalf), if one is due.
pub fn answer(router: &Router, request: &Element) -> Option<Element> {
    let account = request
        .attr("to")
        .and_then(|to| jid::BareJid::new(to).ok())
        .filter(|jid| jid.node().is_some());
    if let Some(account) = account {
        return answer_for_account(router, request, &account.as_str().to_lowercase());
    }
    if stanza::kind(request) != Some(Kind::Iq) {
        // Messages to the server domain are not stored or relayed; presence is ignored.
        return stanza::error_reply(request, StanzaCondition::ServiceUnavailable);
    }
    if request.attr("type") != Some("get") {
        return stanza::error_reply(request, StanzaCondition::ServiceUnavailable);
    }
    let Some(payload) = request.children().next() else {
        return stanza::error_reply(request, StanzaCondition::BadRequest);
    };
    let body = match (payload.name(), payload.ns().as_str()) {
        ("ping", PING) => None,
        ("query", DISCO_INFO) if payload.attr("node").is_none() => Some(disco_info(
            "server",
            "im",
            &[DISCO_INFO, DISCO_ITEMS, PING, VERSION, TIME],
        )),
        ("query", DISCO_ITEMS) if payload.attr("node").is_none() => {
            let mut query = Element::builder("query", DISCO_ITEMS);
            for name in router.connected_components() {
                query =
                    query.append(stanza::element("item", DISCO_ITEMS, &[("jid", &name)]).build());
            }
            Some(query.build())
        }
        ("query", VERSION) => Some(
            Element::builder("query", VERSION)
                .append(
                    Element::builder("name", VERSION)
                        .append("Bridgehead")
                        .build(),
                )
                .append(
                    Element::builder("version", VERSION)
                        .append(env!("CARGO_PKG_VERSION"))
                        .build(),
                )
                .build(),
        ),
        ("time", TIME) => {
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            Some(
                Element::builder("time", TIME)
                    .append(Element::builder("tzo", TIME).append("+00:00").build())
                    .append(Element::builder("utc", TIME).append(now).build())
                    .build(),
            )
        }
        _ => return stanza::error_reply(request, StanzaCondition::ServiceUnavailable),
    };
    Some(result_with(request, body))
}

/// What the server answers for an account (RFC 6121 §8.5.1): ping and disco#info while it
/// has a bound resource; `service-unavailable` otherwise, so offline and unknown accounts
/// look the same.
fn answer_for_account(router: &Router, request: &Element, account: &str) -> Option<Element> {
    let is_get = stanza::kind(request) == Some(Kind::Iq) && request.attr("type") == Some("get");
    if !is_get || !router.is_online(account) {
        return stanza::error_reply(request, StanzaCondition::ServiceUnavailable);
    }
    let payload = request.children().next()?;
    let body = match (payload.name(), payload.ns().as_str()) {
        ("ping", PING) => None,
        ("query", DISCO_INFO) if payload.attr("node").is_none() => {
            Some(disco_info("account", "registered", &[DISCO_INFO, PING]))
        }
        _ => return stanza::error_reply(request, StanzaCondition::ServiceUnavailable),
    };
    Some(result_with(request, body))
}
