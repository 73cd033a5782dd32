//! XEP-0198 stream management for client sessions: acknowledgements and resumption.
//!
//! ```text
//! client                                   Bridgehead
//!   (after bind) <enable resume='true'/>   <enabled id='…' resume='true' max='300'/>
//!   stanzas … <r/>                         <a h='stanzas received since enable'/>
//!                                          stanzas … <r/>   (one request outstanding at most)
//!   <a h='stanzas handled'/>               (acked stanzas leave the resend queue)
//!   … the connection breaks …              the session is parked: still bound and available,
//!                                          stanzas for it queue up, for `max` seconds
//!   (new connection, SASL) <resume previd='…' h='…'/>
//!                                          <resumed previd='…' h='…'/> then every stanza not
//!                                          acknowledged, then the session goes on
//! ```
//!
//! A session whose stream ends cleanly (`</stream:stream>`, `<close/>`, a stream error of
//! ours) is never parked. A parked session that is not resumed in time ends like any
//! session: unavailable presence, `login_notify` components told, and every stanza it was
//! sent but never acknowledged bounced to its sender (`recipient-unavailable`). Counters
//! wrap at 2^32 as the XEP says.
//!
//! ## When acks are requested
//!
//! An `<r/>` goes out once `sm_request_after_stanzas` stanzas were sent since the last one,
//! or once the oldest stanza sent since then waited `sm_request_after_secs`; never while a
//! request is out and never in answer to the client's `<a/>`. A client whose `h` lags (some
//! count only the stanzas they handle, not iq results) so gets no request while idle, and a
//! client that keeps Nagle's algorithm on does not stall on a delayed ACK for its `<a/>`
//! after every stanza. A client that never catches up is ended by `sm_max_unacked` alone.

use crate::xmpp::error::StanzaCondition;
use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use minidom::Element;

use super::stanza;

pub use super::ns::SM;

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// The peer acknowledged more stanzas than were sent.
    TooHigh,
}

/// When the server asks for acknowledgements (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRequests {
    /// Stanzas sent since the last `<r/>` that make the next one due.
    pub after_stanzas: usize,
    /// How long a stanza sent since the last `<r/>` waits before the next one is due.
    pub after: Duration,
}

/// One session's stream management state.
#[derive(Debug)]
pub struct StreamManagement {
    /// The resumption id, when resumption was enabled.
    pub id: Option<String>,
    /// Stanzas received from the client since `<enable/>` (the `h` we report).
    pub inbound: u32,
    /// The client's last acknowledged count.
    acked: u32,
    /// Stanzas sent and not yet acknowledged, oldest first.
    unacked: VecDeque<Element>,
    /// An `<r/>` of ours is waiting for its `<a/>`.
    requested: bool,
    /// Stanzas sent since our last `<r/>`.
    unrequested: usize,
    /// When the oldest of them was sent.
    unrequested_since: Option<Instant>,
}

impl StreamManagement {
    /// Fresh state; `resumable` draws a resumption id.
    pub fn new(resumable: bool) -> Self {
        StreamManagement {
            id: resumable.then(|| hex::encode(rand::random::<[u8; 16]>())),
            inbound: 0,
            acked: 0,
            unacked: VecDeque::new(),
            requested: false,
            unrequested: 0,
            unrequested_since: None,
        }
    }

    /// A stanza was sent; returns how many are now unacknowledged.
    pub fn sent(&mut self, stanza: Element) -> usize {
        self.unacked.push_back(stanza);
        self.unrequested += 1;
        self.unrequested_since.get_or_insert_with(Instant::now);
        self.unacked.len()
    }

    /// Whether an `<r/>` is due now under `policy`.
    pub fn request_due(&self, policy: &AckRequests) -> bool {
        self.request_at(policy)
            .is_some_and(|at| self.unrequested >= policy.after_stanzas || at <= Instant::now())
    }

    /// When the timer makes the next `<r/>` due; `None` while one is out or nothing waits.
    pub fn request_at(&self, policy: &AckRequests) -> Option<Instant> {
        if self.requested {
            return None;
        }
        self.unrequested_since.map(|since| since + policy.after)
    }

    /// Returns the `<r/>` to send and notes that it is out.
    pub fn request(&mut self) -> Element {
        self.requested = true;
        self.unrequested = 0;
        self.unrequested_since = None;
        Self::nonza("r", &[])
    }

    /// Stanzas waiting for an acknowledgement.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// A stanza was received.
    pub fn received(&mut self) {
        self.inbound = self.inbound.wrapping_add(1);
    }

    /// The client has handled `h` stanzas: those leave the resend queue.
    pub fn ack(&mut self, h: u32) -> Result<(), AckError> {
        let newly = h.wrapping_sub(self.acked) as usize;
        if newly > self.unacked.len() {
            return Err(AckError::TooHigh);
        }
        self.unacked.drain(..newly);
        self.acked = h;
        self.requested = false;
        Ok(())
    }

    /// Takes the stanzas still unacknowledged (to resend after resumption, or to bounce).
    pub fn take_unacked(&mut self) -> Vec<Element> {
        self.unrequested = 0;
        self.unrequested_since = None;
        self.unacked.drain(..).collect()
    }

    /// An element of this namespace with `name` and attributes.
    pub fn nonza(name: &str, attrs: &[(&str, &str)]) -> Element {
        stanza::element(name, SM, attrs).build()
    }

    /// `<a h='…'/>` for what we received.
    pub fn answer(&self) -> Element {
        Self::nonza("a", &[("h", &self.inbound.to_string())])
    }
}

/// `<failed/>` with a stanza error condition.
pub fn failed(condition: StanzaCondition) -> Element {
    Element::builder("failed", SM)
        .append(Element::bare(condition.as_str(), super::ns::STANZAS))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u32) -> Element {
        stanza::attr(
            Element::builder("message", "jabber:client"),
            "id",
            &n.to_string(),
        )
        .build()
    }

    #[test]
    fn acknowledgements_trim_the_resend_queue() {
        let mut sm = StreamManagement::new(true);
        assert_eq!(sm.id.as_ref().map(String::len), Some(32));
        for n in 0..5 {
            sm.sent(message(n));
        }
        sm.ack(2).unwrap();
        assert_eq!(sm.ack(9), Err(AckError::TooHigh));
        sm.ack(2).unwrap();
        let rest = sm.take_unacked();
        assert_eq!(
            rest.iter()
                .map(|m| m.attr("id").unwrap())
                .collect::<Vec<_>>(),
            ["2", "3", "4"]
        );
    }

    const POLICY: AckRequests = AckRequests {
        after_stanzas: 3,
        after: Duration::from_secs(10),
    };

    #[tokio::test(start_paused = true)]
    async fn acks_are_requested_after_enough_stanzas_once_at_a_time() {
        let mut sm = StreamManagement::new(false);
        assert!(!sm.request_due(&POLICY) && sm.request_at(&POLICY).is_none());
        sm.sent(message(0));
        sm.sent(message(1));
        assert!(!sm.request_due(&POLICY));
        sm.sent(message(2));
        assert!(sm.request_due(&POLICY));
        assert!(sm.request().is("r", SM));
        for n in 3..10 {
            sm.sent(message(n));
        }
        assert!(!sm.request_due(&POLICY), "one request out at most");
        // A lagging answer does not bring another request by itself…
        sm.ack(1).unwrap();
        assert_eq!(sm.unacked(), 9);
        // …but the stanzas sent while it was out do.
        assert!(sm.request_due(&POLICY));
        sm.request();
        sm.ack(2).unwrap();
        assert!(!sm.request_due(&POLICY), "nothing was sent since");
        assert!(
            sm.request_at(&POLICY).is_none(),
            "and no timer runs: idle is quiet"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stanza_left_waiting_brings_a_request_after_the_delay() {
        let mut sm = StreamManagement::new(false);
        sm.sent(message(0));
        let at = sm.request_at(&POLICY).unwrap();
        assert!(!sm.request_due(&POLICY));
        tokio::time::advance(Duration::from_secs(5)).await;
        sm.sent(message(1));
        assert_eq!(
            sm.request_at(&POLICY),
            Some(at),
            "the oldest stanza sets the time"
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(sm.request_due(&POLICY));
        sm.request();
        assert!(sm.request_at(&POLICY).is_none());
        sm.ack(2).unwrap();
        sm.take_unacked();
        assert!(sm.request_at(&POLICY).is_none());
    }

    #[test]
    fn counters_wrap_at_two_to_the_32() {
        let mut sm = StreamManagement::new(false);
        assert!(sm.id.is_none());
        sm.acked = u32::MAX - 1;
        sm.inbound = u32::MAX;
        sm.received();
        assert_eq!(sm.inbound, 0);
        for n in 0..3 {
            sm.sent(message(n));
        }
        sm.ack(0).unwrap();
        assert_eq!(sm.take_unacked().len(), 1, "MAX-1 → 0 acknowledges two");
    }
}
