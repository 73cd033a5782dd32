//! Rosters and presence subscriptions (RFC 6121) for client sessions.
//!
//! The telephony model keeps a user's roster (`Telephony::roster`, one item per contact):
//! the subscription state (`none`, `to`, `from`, `both`), `ask='subscribe'` while a request
//! of the user's is unanswered, and `pending_in` while a contact's request to the user is.
//!
//! | the user sends to contact C | the user's item for C | C's item for the user (C local) |
//! |---|---|---|
//! | `subscribe` | ask | pending_in (C's resources get the request, now or at login) |
//! | `subscribed` | + from, no pending_in | + to, no ask; C gets the user's presence |
//! | `unsubscribe` | − to, no ask | − from |
//! | `unsubscribed` | − from, no pending_in | − to, no ask; C gets unavailable |
//!
//! Every change is pushed (`<iq type='set'><query xmlns='jabber:iq:roster'>`) to the bound
//! resources of the user it changed. Contacts at a component's domain get the stanzas;
//! their rosters are theirs to keep. Changes run one at a time (one lock), so the two rows
//! of a pair never disagree.
//!
//! Presence: a resource's first available presence goes to the user's available
//! resources and to every contact with `from`/`both`, and the current presence of every
//! local contact with `to`/`both` comes back (the probe, answered from the router's
//! memory; in a cluster, a probe goes to the other nodes that hold available resources of
//! the contact, and each answers from its own); unanswered requests to the user are
//! delivered again. Unavailable presence (sent,
//! or the session ending) goes to the same contacts and to everyone the resource sent
//! directed presence to.

use std::collections::BTreeSet;
use std::sync::Arc;

use minidom::Element;

use super::ns;
use super::router::Router;
use super::stanza;
use super::stanza::attr;
use crate::telephony::{RosterItem, RosterSubscription, Telephony, TelephonyError};
use crate::xmpp::error::StanzaCondition;

pub use super::ns::ROSTER;

/// What the roster logic knows of one bound session.
#[derive(Debug)]
pub struct SessionPresence {
    /// `user@domain`, lower-case.
    pub bare: jid::BareJid,
    /// `user@domain/resource`, as bound.
    pub full: jid::FullJid,
    /// The router's id of the session.
    pub id: u64,
    /// Entities the resource sent directed available presence to.
    pub directed: BTreeSet<String>,
}

/// Roster storage and presence fan-out, shared by all client sessions.
#[derive(Clone)]
pub struct Rosters {
    telephony: Telephony,
    router: Router,
    changes: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Rosters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rosters").finish_non_exhaustive()
    }
}

/// A presence stanza of `kind` (`None` = available) from `from` to `to`.
fn presence(kind: Option<&str>, from: &str, to: &str) -> Element {
    let mut builder = stanza::element("presence", ns::CLIENT, &[("from", from), ("to", to)]);
    if let Some(kind) = kind {
        builder = attr(builder, "type", kind);
    }
    builder.build()
}

fn item_element(item: &RosterItem, removed: bool) -> Element {
    let mut builder = attr(Element::builder("item", ROSTER), "jid", &item.jid);
    if let Some(name) = &item.name {
        builder = attr(builder, "name", name);
    }
    let subscription = if removed {
        "remove"
    } else {
        item.subscription.as_str()
    };
    builder = attr(builder, "subscription", subscription);
    if item.ask_out && !removed {
        builder = attr(builder, "ask", "subscribe");
    }
    for group in &item.groups {
        builder = builder.append(
            Element::builder("group", ROSTER)
                .append(group.as_str())
                .build(),
        );
    }
    builder.build()
}

/// Whether an item is shown in the roster: a row that only records a contact's
/// unanswered request is not.
fn visible(item: &RosterItem) -> bool {
    !(item.pending_in
        && item.subscription == RosterSubscription::None
        && !item.ask_out
        && item.name.is_none()
        && item.groups.is_empty())
}

fn with_to(subscription: RosterSubscription, on: bool) -> RosterSubscription {
    use RosterSubscription::*;
    match (subscription.from_contact(), on) {
        (false, true) => To,
        (true, true) => Both,
        (false, false) => None,
        (true, false) => From,
    }
}

fn with_from(subscription: RosterSubscription, on: bool) -> RosterSubscription {
    use RosterSubscription::*;
    match (subscription.to_contact(), on) {
        (false, true) => From,
        (true, true) => Both,
        (false, false) => None,
        (true, false) => To,
    }
}

/// The bare, lower-case form of a JID, if it parses.
pub fn bare_of(jid: &str) -> Option<String> {
    jid::Jid::new(jid)
        .ok()
        .map(|j| j.to_bare().as_str().to_lowercase())
}

impl Rosters {
    /// Rosters kept by `telephony`, delivering through `router`.
    pub fn new(telephony: Telephony, router: Router) -> Self {
        Rosters {
            telephony,
            router,
            changes: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn route(&self, stanza: Element) {
        self.router.route(stanza);
    }

    fn is_local(&self, bare: &str) -> bool {
        bare.rsplit_once('@')
            .is_some_and(|(_, domain)| domain == self.router.domain())
    }

    async fn items(&self, user: &str) -> Vec<RosterItem> {
        match self.telephony.roster(user).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, user, "cannot read a roster");
                Vec::new()
            }
        }
    }

    /// One item (a fresh one when the user has none for `contact`): one store read.
    async fn item(&self, user: &str, contact: &str) -> RosterItem {
        let stored = match self.telephony.roster_item(user, contact).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(error = %e, user, "cannot read a roster item");
                None
            }
        };
        stored.unwrap_or_else(|| RosterItem {
            jid: contact.to_owned(),
            ..RosterItem::default()
        })
    }

    /// Stores `item` within `max_roster_items`.
    async fn put(&self, user: &str, item: &RosterItem) -> Result<(), TelephonyError> {
        self.telephony.put_roster_item(user, item).await
    }

    /// The roster set's `name` and groups, or the `not-acceptable` reason.
    fn check_item_text(&self, name: Option<&str>, groups: &[String]) -> Result<(), String> {
        let max_groups = self.telephony.quotas().max_roster_groups_per_item.get();
        let max_bytes = self.telephony.quotas().max_roster_text_bytes.get();
        if groups.len() > max_groups {
            crate::telemetry::quota_refusal("max_roster_groups_per_item");
            return Err(format!("more than {max_groups} groups"));
        }
        if name
            .into_iter()
            .chain(groups.iter().map(String::as_str))
            .any(|t| t.len() > max_bytes)
        {
            crate::telemetry::quota_refusal("max_roster_text_bytes");
            return Err(format!("a name or group longer than {max_bytes} bytes"));
        }
        Ok(())
    }

    /// Stores `item` (if it changed) and pushes it to the user's resources.
    async fn save(&self, user: &str, before: &RosterItem, item: RosterItem) {
        if *before == item {
            return;
        }
        if let Err(e) = self.put(user, &item).await {
            // Accounts the store does not know (authenticated by a component) have no roster.
            tracing::debug!(error = %e, user, "roster item not stored");
            return;
        }
        if visible(&item) || visible(before) {
            self.push(user, &item, false);
        }
    }

    fn push(&self, user: &str, item: &RosterItem, removed: bool) {
        let id = format!("bh-push-{}", hex::encode(rand::random::<[u8; 6]>()));
        let query = Element::builder("query", ROSTER)
            .append(item_element(item, removed))
            .build();
        // An iq to a bare JID is the server's to answer, so each resource gets its own.
        for resource in self.router.bound_resources(user) {
            let push = stanza::element(
                "iq",
                ns::CLIENT,
                &[("type", "set"), ("id", &id), ("to", &resource)],
            );
            self.route(push.append(query.clone()).build());
        }
    }

    /// Answers a roster get or set from the user's own session.
    pub async fn iq(
        &self,
        session: &SessionPresence,
        request: &Element,
        query: &Element,
    ) -> Option<Element> {
        match request.attr("type") {
            Some("get") => {
                let mut result = Element::builder("query", ROSTER);
                for item in self
                    .items(session.bare.as_str())
                    .await
                    .iter()
                    .filter(|i| visible(i))
                {
                    result = result.append(item_element(item, false));
                }
                Some(stanza::iq_result(request).append(result.build()).build())
            }
            Some("set") => {
                let items: Vec<&Element> =
                    query.children().filter(|c| c.is("item", ROSTER)).collect();
                let [item] = items.as_slice() else {
                    return stanza::error_reply(request, StanzaCondition::BadRequest);
                };
                let Some(contact) = item.attr("jid").and_then(bare_of) else {
                    return stanza::error_reply(request, StanzaCondition::JidMalformed);
                };
                if contact == session.bare.as_str() {
                    return stanza::error_reply(request, StanzaCondition::NotAllowed);
                }
                if item.attr("subscription") == Some("remove") {
                    self.remove(session.bare.as_str(), &contact).await;
                } else {
                    let name = item
                        .attr("name")
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned);
                    let groups: Vec<String> = item
                        .children()
                        .filter(|c| c.is("group", ROSTER))
                        .map(|g| g.text())
                        .filter(|g| !g.is_empty())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    if let Err(why) = self.check_item_text(name.as_deref(), &groups) {
                        tracing::info!(user = %session.bare, why, "roster set refused");
                        return stanza::error_reply(request, StanzaCondition::NotAcceptable);
                    }
                    let _guard = self.changes.lock().await;
                    let mut updated = self.item(session.bare.as_str(), &contact).await;
                    updated.name = name;
                    updated.groups = groups;
                    match self.put(session.bare.as_str(), &updated).await {
                        Ok(()) => {}
                        Err(TelephonyError::Quota { limit, .. }) => {
                            tracing::info!(user = %session.bare, limit, "roster is full");
                            return stanza::error_reply(
                                request,
                                StanzaCondition::ResourceConstraint,
                            );
                        }
                        Err(_) => return stanza::error_reply(request, StanzaCondition::NotAllowed),
                    }
                    self.push(session.bare.as_str(), &updated, false);
                }
                Some(stanza::iq_result(request).build())
            }
            _ => stanza::error_reply(request, StanzaCondition::BadRequest),
        }
    }

    async fn remove(&self, user: &str, contact: &str) {
        let item = {
            let _guard = self.changes.lock().await;
            let item = self.item(user, contact).await;
            if let Err(e) = self.telephony.remove_roster_item(user, contact).await {
                tracing::warn!(error = %e, user, "cannot remove a roster item");
                return;
            }
            self.push(user, &item, true);
            item
        };
        if item.subscription.to_contact() || item.ask_out {
            self.subscription(user, "unsubscribe", contact).await;
        }
        if item.subscription.from_contact() || item.pending_in {
            self.subscription(user, "unsubscribed", contact).await;
        }
    }

    /// The user sent a subscription stanza of `kind` to `contact` (both bare).
    pub async fn subscription(&self, user: &str, kind: &str, contact: &str) {
        if !matches!(
            kind,
            "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed"
        ) {
            return;
        }
        let local = self.is_local(contact);
        let mut deliver = true;
        {
            let _guard = self.changes.lock().await;
            // Other nodes may change the same pair at once: the store holds it for us.
            let pair = match self.telephony.lock_roster_pair(user, contact).await {
                Ok(pair) => Some(pair),
                Err(e) => {
                    tracing::warn!(error = %e, user, contact, "cannot hold a roster pair; changing it anyway");
                    None
                }
            };
            let mine = self.item(user, contact).await;
            let theirs = if local {
                Some(self.item(contact, user).await)
            } else {
                None
            };
            let (mut new_mine, mut new_theirs) = (mine.clone(), theirs.clone());
            match kind {
                "subscribe" => {
                    if mine.subscription.to_contact() {
                        deliver = false;
                    } else {
                        new_mine.ask_out = true;
                    }
                    if let Some(t) = new_theirs.as_mut() {
                        t.pending_in = !t.subscription.from_contact();
                    }
                }
                "subscribed" => {
                    new_mine.subscription = with_from(mine.subscription, true);
                    new_mine.pending_in = false;
                    if let Some(t) = new_theirs.as_mut() {
                        deliver = t.ask_out || !t.subscription.to_contact();
                        t.subscription = with_to(t.subscription, true);
                        t.ask_out = false;
                    }
                }
                "unsubscribe" => {
                    new_mine.subscription = with_to(mine.subscription, false);
                    new_mine.ask_out = false;
                    if let Some(t) = new_theirs.as_mut() {
                        t.subscription = with_from(t.subscription, false);
                        t.pending_in = false;
                    }
                }
                "unsubscribed" => {
                    new_mine.subscription = with_from(mine.subscription, false);
                    new_mine.pending_in = false;
                    if let Some(t) = new_theirs.as_mut() {
                        t.subscription = with_to(t.subscription, false);
                        t.ask_out = false;
                    }
                }
                _ => {}
            }
            let exists = mine
                != RosterItem {
                    jid: contact.to_owned(),
                    ..RosterItem::default()
                };
            if exists || new_mine.ask_out || new_mine.subscription != RosterSubscription::None {
                self.save(user, &mine, new_mine).await;
            }
            if let (Some(before), Some(after)) = (theirs, new_theirs) {
                self.save(contact, &before, after).await;
            }
            if let Some(pair) = pair {
                pair.release().await;
            }
        }
        if !deliver {
            return;
        }
        self.route(presence(Some(kind), user, contact));
        match kind {
            "subscribed" => {
                for mut current in self.router.available_presences(user) {
                    stanza::set_address(&mut current, "to", contact);
                    self.route(current);
                }
            }
            "unsubscribed" => {
                for from in self.router.bound_resources(user) {
                    self.route(presence(Some("unavailable"), &from, contact));
                }
            }
            _ => {}
        }
    }

    /// A presence broadcast (no `to`) from a session: `None` type is available,
    /// `unavailable` ends availability. Other types without `to` are ignored.
    pub async fn broadcast(&self, session: &mut SessionPresence, mut stanza: Element) {
        let kind = stanza.attr("type").map(str::to_owned);
        let available = match kind.as_deref() {
            None => true,
            Some("unavailable") => false,
            _ => return,
        };
        stanza::set_address(&mut stanza, "from", session.full.as_str());
        let was_available = self.router.set_client_presence(
            session.bare.as_str(),
            session.id,
            available.then(|| stanza.clone()),
        );
        if !available && !was_available {
            return;
        }
        let items = self.items(session.bare.as_str()).await;
        let mut recipients: Vec<String> = vec![session.bare.to_string()];
        recipients.extend(
            items
                .iter()
                .filter(|i| i.subscription.from_contact())
                .map(|i| i.jid.clone()),
        );
        if !available {
            recipients.extend(std::mem::take(&mut session.directed));
        }
        for to in recipients {
            let mut copy = stanza.clone();
            stanza::set_address(&mut copy, "to", &to);
            self.route(copy);
        }
        if available && !was_available {
            // The probe: current presence of contacts the user sees, and requests waiting.
            for item in &items {
                if item.subscription.to_contact() && self.is_local(&item.jid) {
                    for mut current in self.router.available_presences(&item.jid) {
                        stanza::set_address(&mut current, "to", session.full.as_str());
                        self.route(current);
                    }
                    // In a cluster, the contact's resources on the other nodes answer too.
                    let probe = presence(Some("probe"), session.full.as_str(), &item.jid);
                    self.router.probe_other_nodes(&item.jid, probe);
                }
                if item.pending_in {
                    self.route(presence(
                        Some("subscribe"),
                        &item.jid,
                        session.full.as_str(),
                    ));
                }
            }
            // The user's other resources (those on other nodes answer a probe).
            for mut current in self.router.available_presences(session.bare.as_str()) {
                if current.attr("from") != Some(session.full.as_str()) {
                    stanza::set_address(&mut current, "to", session.full.as_str());
                    self.route(current);
                }
            }
            let probe = presence(Some("probe"), session.full.as_str(), session.bare.as_str());
            self.router.probe_other_nodes(session.bare.as_str(), probe);
        }
    }

    /// Directed presence (available or unavailable) to `to`; remembered so the session's
    /// end can say unavailable.
    pub fn directed(&self, session: &mut SessionPresence, stanza: Element, to: &str) {
        if stanza.attr("type") == Some("unavailable") {
            session.directed.remove(to);
        } else if stanza.attr("type").is_none() && !self.is_local_bare(to, session.bare.as_str()) {
            session.directed.insert(to.to_owned());
        }
        self.route(stanza);
    }

    fn is_local_bare(&self, to: &str, bare: &str) -> bool {
        bare_of(to).as_deref() == Some(bare)
    }

    /// The session ended: unavailable to whoever saw it available.
    pub async fn ended(&self, session: &mut SessionPresence) {
        let unavailable = stanza::element(
            "presence",
            ns::CLIENT,
            &[("type", "unavailable"), ("from", session.full.as_str())],
        )
        .build();
        self.broadcast(session, unavailable).await;
        for to in std::mem::take(&mut session.directed) {
            self.route(presence(Some("unavailable"), session.full.as_str(), &to));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_states_combine_both_directions() {
        use RosterSubscription::*;
        assert_eq!(with_to(None, true), To);
        assert_eq!(with_to(From, true), Both);
        assert_eq!(with_to(Both, false), From);
        assert_eq!(with_from(To, true), Both);
        assert_eq!(with_from(Both, false), To);
        assert_eq!(with_from(From, false), None);
    }

    #[test]
    fn a_pending_request_alone_is_not_shown() {
        let pending = RosterItem {
            jid: "bob@x".into(),
            pending_in: true,
            ..RosterItem::default()
        };
        assert!(!visible(&pending));
        assert!(visible(&RosterItem {
            name: Some("Bob".into()),
            ..pending.clone()
        }));
        assert!(visible(&RosterItem {
            subscription: RosterSubscription::From,
            ..pending
        }));
    }
}
