//! Which address the next request goes to: the Webex app's failover rules
//! (`../shared/docs/field-notes.md`), as a small state machine with time passed in.
//!
//! - One address is *selected* and every request goes there (so the load balancer's
//!   affinity cookie keeps meaning something) until it fails.
//! - A network or TLS error, or no answer within the attempt timeout, moves on to the next
//!   address at once.
//! - An HTTP 5xx also **blocks** the address for `block_for`; blocked addresses are
//!   skipped until they expire.
//! - When every address is blocked, one is picked at random and unblocked as soon as it
//!   answers.
//! - The list wraps around.

use std::time::Duration;

use tokio::time::Instant;

/// Why an attempt at an address failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Connect, TLS or the connection broke: move on.
    Network,
    /// No answer within the attempt timeout: move on.
    Timeout,
    /// HTTP 5xx: block the address, move on.
    ServerError,
}

/// The addresses and what is known of them.
#[derive(Debug, Clone)]
pub struct Selector {
    count: usize,
    selected: usize,
    blocked_until: Vec<Option<Instant>>,
    block_for: Duration,
}

impl Selector {
    /// `count` addresses (at least one), the first selected; a 5xx blocks for `block_for`.
    pub fn new(count: usize, block_for: Duration) -> Self {
        Selector {
            count: count.max(1),
            selected: 0,
            blocked_until: vec![None; count.max(1)],
            block_for,
        }
    }

    fn is_blocked(&self, index: usize, now: Instant) -> bool {
        self.blocked_until[index].is_some_and(|until| until > now)
    }

    /// The address the next attempt goes to: the selected one unless it is blocked, else
    /// the next unblocked one (wrapping), else one at random (`pick` chooses from
    /// `0..count`).
    pub fn current(&mut self, now: Instant, pick: impl FnOnce(usize) -> usize) -> usize {
        for expired in self.blocked_until.iter_mut() {
            if expired.is_some_and(|until| until <= now) {
                *expired = None;
            }
        }
        if let Some(next) = (0..self.count)
            .map(|step| (self.selected + step) % self.count)
            .find(|&index| !self.is_blocked(index, now))
        {
            self.selected = next;
        } else {
            self.selected = pick(self.count) % self.count;
        }
        self.selected
    }

    /// The attempt at `index` failed for `why`: the next attempt goes elsewhere.
    pub fn failed(&mut self, index: usize, why: Failure, now: Instant) {
        if why == Failure::ServerError {
            self.blocked_until[index] = Some(now + self.block_for);
        }
        if index == self.selected {
            self.selected = (index + 1) % self.count;
        }
    }

    /// `index` answered: it stays selected and is no longer blocked.
    pub fn succeeded(&mut self, index: usize) {
        self.blocked_until[index] = None;
        self.selected = index;
    }

    /// Whether `index` is blocked at `now`.
    pub fn blocked(&self, index: usize, now: Instant) -> bool {
        self.is_blocked(index, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: Duration = Duration::from_secs(60);

    #[test]
    fn network_errors_and_timeouts_move_on_and_the_list_wraps() {
        let now = Instant::now();
        let mut s = Selector::new(3, BLOCK);
        assert_eq!(s.current(now, |_| 0), 0);
        s.failed(0, Failure::Network, now);
        assert_eq!(s.current(now, |_| 0), 1);
        s.failed(1, Failure::Timeout, now);
        assert_eq!(s.current(now, |_| 0), 2);
        s.failed(2, Failure::Network, now);
        assert_eq!(s.current(now, |_| 0), 0, "wraps around: nothing is blocked");
    }

    #[test]
    fn a_server_error_blocks_until_it_expires() {
        let now = Instant::now();
        let mut s = Selector::new(2, BLOCK);
        s.failed(0, Failure::ServerError, now);
        assert!(s.blocked(0, now));
        assert_eq!(s.current(now, |_| 0), 1);
        s.failed(1, Failure::Network, now);
        assert_eq!(s.current(now, |_| 0), 1, "0 is still blocked, 1 is not");
        let later = now + BLOCK;
        assert!(!s.blocked(0, later));
        s.failed(1, Failure::Network, later);
        assert_eq!(s.current(later, |_| 1), 0, "0 expired and is tried again");
    }

    #[test]
    fn when_all_are_blocked_one_is_picked_at_random_and_unblocked_on_success() {
        let now = Instant::now();
        let mut s = Selector::new(3, BLOCK);
        for i in 0..3 {
            s.failed(i, Failure::ServerError, now);
        }
        assert_eq!(s.current(now, |n| n - 1), 2, "the random pick");
        s.succeeded(2);
        assert!(!s.blocked(2, now));
        assert!(s.blocked(0, now) && s.blocked(1, now));
        assert_eq!(s.current(now, |_| 0), 2, "it stays selected");
    }

    #[test]
    fn a_working_address_stays_selected() {
        let now = Instant::now();
        let mut s = Selector::new(3, BLOCK);
        s.failed(0, Failure::Network, now);
        let one = s.current(now, |_| 0);
        s.succeeded(one);
        for _ in 0..5 {
            assert_eq!(s.current(now, |_| 0), 1);
        }
    }
}
