//! `[calls]`: the call timers and how many calls one bridge may carry. Every value is a
//! non-zero integer; `docs/configuration.md` lists them.

use std::num::{NonZeroU64, NonZeroUsize};

use serde::Deserialize;

/// `[calls]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// How long an incoming call rings before it ends unanswered (Request Timeout, a
    /// missed call). Default 60 s.
    pub ringing_timeout_secs: NonZeroU64,
    /// How long a placed call waits for the far end to answer before it ends (Request
    /// Timeout). Default 120 s.
    pub dial_timeout_secs: NonZeroU64,
    /// One ring, as Call Forwarding No Answer counts them: a call is forwarded after
    /// `numberOfRings` of these. Default 6 s (BroadWorks' ring cycle).
    pub ring_secs: NonZeroU64,
    /// Calls one bridge carries at once; a dial to a full bridge goes to the next one,
    /// and an offer from it is rejected (busy). Default 10000.
    pub max_calls_per_bridge: NonZeroUsize,
}

impl Default for CallsConfig {
    fn default() -> Self {
        CallsConfig {
            ringing_timeout_secs: nonzero!(60),
            dial_timeout_secs: nonzero!(120),
            ring_secs: nonzero!(6),
            max_calls_per_bridge: nonzero!(10_000),
        }
    }
}
