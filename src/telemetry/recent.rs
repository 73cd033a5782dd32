//! The last refusals, for the admin API and the status page: a CTI certificate that broke
//! a rule, a failed or throttled login or handshake, a connection dropped before it
//! authenticated. A bounded ring (the newest [`KEPT`]); the counters keep the totals.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// How many refusals are kept.
pub const KEPT: usize = 200;

/// One refusal.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// When (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    /// `cti`, `xsi-login`, `c2s-login`, `component-handshake`, `throttled`, `preauth`.
    pub kind: &'static str,
    /// The rule, result or reason, as the counter labels it.
    pub reason: String,
}

static RECENT: Mutex<VecDeque<Refusal>> = Mutex::new(VecDeque::new());

/// Records a refusal.
pub fn record(kind: &'static str, reason: impl Into<String>) {
    let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    if recent.len() == KEPT {
        recent.pop_front();
    }
    recent.push_back(Refusal {
        at: time::OffsetDateTime::now_utc(),
        kind,
        reason: reason.into(),
    });
}

/// The kept refusals, newest first.
pub fn newest_first() -> Vec<Refusal> {
    RECENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .rev()
        .cloned()
        .collect()
}
