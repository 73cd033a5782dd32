//! Failed-login budgets shared by every protocol that takes passwords (XSI Basic, XMPP
//! SASL): failures are counted per account name and per source address in a one-minute
//! window; while either count is at its limit, further attempts are refused before any
//! password is checked. Account names are counted whether or not the account exists, so
//! the refusal says nothing about which accounts exist.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Account names remembered per window at most; beyond it only addresses are counted, so
/// a flood of made-up names cannot grow memory without bound.
const MAX_TRACKED_ACCOUNTS: usize = 100_000;

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    by_account: HashMap<String, u32>,
    by_address: HashMap<IpAddr, u32>,
}

impl Window {
    /// Starts a new window when the current one is over; returns the seconds left in it.
    fn roll(&mut self, now: Instant) -> u64 {
        let start = *self.start.get_or_insert(now);
        if now.duration_since(start) >= WINDOW {
            self.start = Some(now);
            self.by_account.clear();
            self.by_address.clear();
        }
        let start = self.start.unwrap_or(now);
        WINDOW
            .saturating_sub(now.duration_since(start))
            .as_secs()
            .max(1)
    }
}

/// Failed logins per account and per address in the current one-minute window.
#[derive(Debug)]
pub struct LoginThrottle {
    per_account: u32,
    per_address: u32,
    window: Mutex<Window>,
}

impl LoginThrottle {
    /// A throttle allowing `per_account` and `per_address` failures a minute.
    pub fn new(per_account: u32, per_address: u32) -> Self {
        LoginThrottle {
            per_account,
            per_address,
            window: Mutex::new(Window::default()),
        }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(seconds until the window ends)` while `account` (lower-cased by the caller) or
    /// `peer` is over its budget.
    pub fn throttled(&self, account: &str, peer: IpAddr) -> Option<u64> {
        let mut window = self.window();
        let left = window.roll(Instant::now());
        let by_account = window.by_account.get(account).copied().unwrap_or(0);
        let by_address = window.by_address.get(&peer).copied().unwrap_or(0);
        (by_account >= self.per_account || by_address >= self.per_address).then_some(left)
    }

    /// Counts a failure from `peer`, and against `account` when one was named.
    pub fn record_failure(&self, account: Option<&str>, peer: IpAddr) {
        let mut window = self.window();
        window.roll(Instant::now());
        if let Some(account) = account {
            if window.by_account.len() < MAX_TRACKED_ACCOUNTS
                || window.by_account.contains_key(account)
            {
                *window.by_account.entry(account.to_owned()).or_insert(0) += 1;
            }
        }
        *window.by_address.entry(peer).or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_and_addresses_have_separate_budgets() {
        let throttle = LoginThrottle::new(2, 3);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        throttle.record_failure(Some("alice@x"), a);
        assert!(throttle.throttled("alice@x", a).is_none());
        throttle.record_failure(Some("alice@x"), b);
        assert!(throttle
            .throttled("alice@x", IpAddr::from([10, 0, 0, 3]))
            .is_some());
        assert!(throttle.throttled("bob@x", a).is_none());
        throttle.record_failure(None, a);
        throttle.record_failure(Some("carol@x"), a);
        let left = throttle.throttled("bob@x", a).expect("address over budget");
        assert!((1..=60).contains(&left));
        assert!(throttle.throttled("bob@x", b).is_none());
    }
}
