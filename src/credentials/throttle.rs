//! The one limiter for every credential check: XMPP SASL, XSI Basic and XEP-0114
//! component handshakes.
//!
//! Failures are counted in a sliding one-minute window (a log of attempt times per key, so
//! no key's budget resets all at once) along three keys:
//!
//! | key | budget | stops |
//! |---|---|---|
//! | account from one address | `per_account_per_address` (small, e.g. 5) | guessing one password from one place |
//! | address, any account | `per_address` | one place guessing many accounts |
//! | account, every address | `per_account` (larger, e.g. 50) | guessing one password from many places |
//!
//! **Reserved before checked.** [`LoginLimiter::reserve`] counts an attempt against all
//! three keys *before* the credential is verified, atomically; the [`Reservation`] is then
//! settled: a failure keeps its place in the window, a success gives it back. So 200
//! parallel attempts against a budget of 5 verify at most 5 credentials.
//!
//! **Lockout.** A stranger who fails 5 times for `alice` from their own address locks out
//! only `alice` *from that address*: alice, from hers, still logs in. Only the account-wide
//! budget, which takes many addresses to exhaust, can refuse alice everywhere, for at most
//! a minute after the failures stop; that is the price of stopping a distributed guess.
//! Account names are counted whether or not the account exists, so a refusal says nothing
//! about which accounts exist.
//!
//! **Memory.** Each window tracks at most [`MAX_TRACKED_KEYS`] keys. A full window first
//! forgets keys whose entries have all expired; if it is still full, attempts with a key it
//! does not know are refused (fail closed), so a flood of made-up names or addresses cannot
//! grow memory or open a way around the budgets.
//!
//! `governor` (GCRA) was considered: it has no way to give back a reserved cell, and the
//! budgets here count failures only, so a success must return what it reserved.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Keys one window remembers at most.
pub const MAX_TRACKED_KEYS: usize = 100_000;

/// The three budgets, failures per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginBudgets {
    /// Failures for one account from one address.
    pub per_account_per_address: u32,
    /// Failures from one address, whatever the account.
    pub per_address: u32,
    /// Failures for one account, from every address together.
    pub per_account: u32,
}

/// Attempts are refused for this many more seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until the oldest counted failure leaves the window (at least 1).
    pub retry_after_secs: u64,
}

/// One sliding window: per key, the times of its reserved or failed attempts, each with
/// the id of the reservation that made it.
#[derive(Debug)]
struct Window<K> {
    limit: usize,
    entries: HashMap<K, VecDeque<(Instant, u64)>>,
}

impl<K: Hash + Eq + Clone> Window<K> {
    fn new(limit: u32) -> Self {
        Window {
            limit: limit.max(1) as usize,
            entries: HashMap::new(),
        }
    }

    /// `Err` with the wait when `key` has no room (or the window is full of live keys).
    fn check(&mut self, key: &K, now: Instant) -> Result<(), Throttled> {
        if let Some(times) = self.entries.get_mut(key) {
            while times
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
            {
                times.pop_front();
            }
            if times.len() >= self.limit {
                let oldest = times.front().map_or(now, |(t, _)| *t);
                let left = WINDOW.saturating_sub(now.duration_since(oldest));
                return Err(Throttled {
                    retry_after_secs: left.as_secs().max(1),
                });
            }
            return Ok(());
        }
        if self.entries.len() >= MAX_TRACKED_KEYS {
            self.entries.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|(t, _)| now.duration_since(*t) < WINDOW)
            });
            if self.entries.len() >= MAX_TRACKED_KEYS {
                return Err(Throttled {
                    retry_after_secs: WINDOW.as_secs(),
                });
            }
        }
        Ok(())
    }

    fn add(&mut self, key: K, now: Instant, id: u64) {
        self.entries.entry(key).or_default().push_back((now, id));
    }

    fn release(&mut self, key: &K, id: u64) {
        if let Some(times) = self.entries.get_mut(key) {
            times.retain(|(_, entry)| *entry != id);
            if times.is_empty() {
                self.entries.remove(key);
            }
        }
    }
}

#[derive(Debug)]
struct Windows {
    next_id: u64,
    pair: Window<(String, IpAddr)>,
    address: Window<IpAddr>,
    account: Window<String>,
}

/// Credential checks per account and address (see the module docs).
#[derive(Debug)]
pub struct LoginLimiter {
    windows: Mutex<Windows>,
}

/// One attempt counted against its budgets until it is settled. Dropped without
/// [`Reservation::failed`], it is given back.
#[derive(Debug)]
#[must_use = "a reservation is given back when dropped; call failed() for a failure"]
pub struct Reservation<'a> {
    limiter: &'a LoginLimiter,
    id: u64,
    account: Option<String>,
    peer: IpAddr,
    failed: bool,
}

impl Reservation<'_> {
    /// The credential was wrong: the attempt stays counted for a minute.
    pub fn failed(mut self) {
        self.failed = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.failed {
            return;
        }
        let mut windows = self.limiter.windows();
        windows.address.release(&self.peer, self.id);
        if let Some(account) = self.account.take() {
            windows.account.release(&account, self.id);
            windows.pair.release(&(account, self.peer), self.id);
        }
    }
}

impl LoginLimiter {
    /// A limiter with these budgets.
    pub fn new(budgets: LoginBudgets) -> Self {
        LoginLimiter {
            windows: Mutex::new(Windows {
                next_id: 0,
                pair: Window::new(budgets.per_account_per_address),
                address: Window::new(budgets.per_address),
                account: Window::new(budgets.per_account),
            }),
        }
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a failure from `peer` that named no account (a malformed credential): it
    /// uses the address's budget only. Nothing is counted when that budget is spent.
    pub fn fail_unnamed(&self, peer: IpAddr) {
        if let Ok(attempt) = self.reserve(None, peer) {
            attempt.failed();
        }
    }

    /// Counts one attempt from `peer` (for `account`, lower-cased by the caller, when one
    /// was named) before its credential is checked, or refuses it.
    pub fn reserve(
        &self,
        account: Option<&str>,
        peer: IpAddr,
    ) -> Result<Reservation<'_>, Throttled> {
        let now = Instant::now();
        let mut windows = self.windows();
        windows.address.check(&peer, now)?;
        let account = account.map(str::to_owned);
        if let Some(account) = &account {
            windows.account.check(account, now)?;
            windows.pair.check(&(account.clone(), peer), now)?;
        }
        let id = windows.next_id;
        windows.next_id += 1;
        windows.address.add(peer, now, id);
        if let Some(account) = &account {
            windows.account.add(account.clone(), now, id);
            windows.pair.add((account.clone(), peer), now, id);
        }
        Ok(Reservation {
            limiter: self,
            id,
            account,
            peer,
            failed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> LoginLimiter {
        LoginLimiter::new(LoginBudgets {
            per_account_per_address: 2,
            per_address: 3,
            per_account: 4,
        })
    }

    #[test]
    fn failures_count_and_successes_are_given_back() {
        let limiter = limiter();
        let a = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..10 {
            drop(limiter.reserve(Some("alice@x"), a).unwrap());
        }
        limiter.reserve(Some("alice@x"), a).unwrap().failed();
        limiter.reserve(Some("alice@x"), a).unwrap().failed();
        let refused = limiter.reserve(Some("alice@x"), a).unwrap_err();
        assert!((1..=60).contains(&refused.retry_after_secs));
    }

    #[test]
    fn a_stranger_locks_an_account_out_only_from_their_own_address() {
        let limiter = limiter();
        let (stranger, owner) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        limiter.reserve(Some("alice@x"), stranger).unwrap().failed();
        limiter.reserve(Some("alice@x"), stranger).unwrap().failed();
        assert!(limiter.reserve(Some("alice@x"), stranger).is_err());
        assert!(limiter.reserve(Some("alice@x"), owner).is_ok());
    }

    #[test]
    fn many_addresses_exhaust_the_account_wide_budget() {
        let limiter = limiter();
        for host in 1..=4u8 {
            limiter
                .reserve(Some("alice@x"), IpAddr::from([10, 0, 1, host]))
                .unwrap()
                .failed();
        }
        assert!(limiter
            .reserve(Some("alice@x"), IpAddr::from([10, 0, 2, 1]))
            .is_err());
        assert!(limiter
            .reserve(Some("bob@x"), IpAddr::from([10, 0, 2, 1]))
            .is_ok());
    }

    #[test]
    fn one_address_guessing_many_accounts_is_stopped() {
        let limiter = limiter();
        let a = IpAddr::from([10, 0, 0, 1]);
        for name in ["a@x", "b@x", "c@x"] {
            limiter.reserve(Some(name), a).unwrap().failed();
        }
        assert!(limiter.reserve(Some("d@x"), a).is_err());
        assert!(limiter.reserve(None, a).is_err());
    }

    #[test]
    fn reservations_in_flight_hold_their_place() {
        let limiter = limiter();
        let a = IpAddr::from([10, 0, 0, 1]);
        let first = limiter.reserve(Some("alice@x"), a).unwrap();
        let second = limiter.reserve(Some("alice@x"), a).unwrap();
        assert!(
            limiter.reserve(Some("alice@x"), a).is_err(),
            "two checks in flight use the whole budget"
        );
        drop(first);
        second.failed();
        assert!(limiter.reserve(Some("alice@x"), a).is_ok());
    }
}
