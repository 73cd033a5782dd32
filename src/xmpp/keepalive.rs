//! XEP-0199 keep-alive for sessions of every kind: a peer silent for `interval` gets a
//! ping from the server domain; no traffic at all within `patience` after it ends the
//! stream with `connection-timeout`. Any element from the peer counts as an answer.

use std::time::Duration;

use minidom::Element;
use tokio::time::Instant;

use super::stanza;

/// What the session loop does when [`KeepAlive::due`] fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send this ping (its sequence number).
    Ping(u64),
    /// The peer did not answer: close with `connection-timeout`.
    TimedOut,
}

/// One session's keep-alive timer.
#[derive(Debug)]
pub struct KeepAlive {
    interval: Duration,
    patience: Duration,
    last_heard: Instant,
    pinged_at: Option<Instant>,
    pings: u64,
}

impl KeepAlive {
    /// A timer that starts now.
    pub fn new(interval: Duration, patience: Duration) -> Self {
        KeepAlive {
            interval,
            patience,
            last_heard: Instant::now(),
            pinged_at: None,
            pings: 0,
        }
    }

    /// When the loop must wake for [`KeepAlive::due`].
    pub fn wake(&self) -> Instant {
        match self.pinged_at {
            Some(at) => at + self.patience,
            None => self.last_heard + self.interval,
        }
    }

    /// The peer sent something.
    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.pinged_at = None;
    }

    /// The wake-up time came: ping, or give up.
    pub fn due(&mut self) -> Due {
        if self.pinged_at.is_some() {
            tracing::info!("no answer to a keep-alive ping");
            return Due::TimedOut;
        }
        self.pings += 1;
        self.pinged_at = Some(Instant::now());
        Due::Ping(self.pings)
    }
}

/// The XEP-0199 ping sent to an idle peer in stream namespace `stream_ns`.
pub fn ping(stream_ns: &str, server: &str, peer: &str, sequence: u64) -> Element {
    let id = format!("bh-keepalive-{sequence}");
    stanza::element(
        "iq",
        stream_ns,
        &[("type", "get"), ("id", &id), ("from", server), ("to", peer)],
    )
    .append(Element::bare("ping", super::ns::PING))
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pings_after_silence_and_gives_up_without_an_answer() {
        let mut keepalive = KeepAlive::new(Duration::from_secs(60), Duration::from_secs(30));
        assert_eq!(keepalive.wake() - Instant::now(), Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(keepalive.due(), Due::Ping(1));
        assert_eq!(keepalive.wake() - Instant::now(), Duration::from_secs(30));
        keepalive.heard();
        assert_eq!(keepalive.wake() - Instant::now(), Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(keepalive.due(), Due::Ping(2));
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(keepalive.due(), Due::TimedOut);
    }
}
