//! The hub's timers and its shutdown: resends, heartbeat timeouts, expiries and backlog age
//! for one batch of sets per tick; every channel ended when the server stops.

use std::time::{Duration, Instant};

use super::delivery::{flush, redeliver_from, resend, terminate};
use super::Hub;
use crate::xsi::events::documents::TerminationReason;

impl Hub {
    /// Timers: resends, heartbeat timeouts, expiries, backlog age, for the next batch of
    /// sets. After a full pass, empty sets are forgotten and the subscriptions that expired
    /// are returned (to be removed and announced by the caller).
    pub fn tick(&self, now: Instant) -> Vec<String> {
        let ack_timeout = Duration::from_secs(self.config.ack_timeout_secs.get());
        let event_timeout = Duration::from_secs(self.config.event_timeout_secs.get());
        let backlog_age = Duration::from_secs(self.config.backlog_max_age_secs);
        let max_attempts = self.config.max_delivery_attempts;
        let mut state = self.state();
        let (batch, pass_done) = state.next_sweep_batch();
        for set_id in batch {
            let Some(set) = state.sets.get_mut(&set_id) else {
                continue;
            };
            // Channels that ended: client gone, expired, or silent past the event timeout.
            let mut ended = Vec::new();
            set.channels.retain(|c| {
                let reason = if c.queue.is_closed() {
                    Some(None)
                } else if c.expires_at.is_some_and(|at| at <= now) {
                    Some(Some(TerminationReason::Expired))
                } else if now.duration_since(c.last_heartbeat) >= event_timeout {
                    Some(Some(TerminationReason::NonResponsiveChannel))
                } else {
                    None
                };
                match reason {
                    Some(reason) => {
                        if let Some(reason) = reason {
                            terminate(c, reason);
                        }
                        ended.push(c.id.clone());
                        false
                    }
                    None => true,
                }
            });
            for id in ended {
                redeliver_from(set, &id, now);
            }
            // Unacknowledged events: send again, or give up on the channel (standing by,
            // they wait for a late acknowledgement: the holder sends them again).
            let overdue: Vec<String> = set
                .unacked
                .iter()
                .filter(|_| set.delivers_here())
                .filter(|(_, u)| now.duration_since(u.sent_at) >= ack_timeout)
                .map(|(id, _)| id.clone())
                .collect();
            for event_id in overdue {
                let Some(mut unacked) = set.unacked.remove(&event_id) else {
                    continue;
                };
                if unacked.attempts >= max_attempts.get() {
                    if let Some(c) = set.channels.iter_mut().find(|c| c.id == unacked.channel_id) {
                        c.unresponsive = true;
                    }
                    unacked.attempts = 0;
                }
                if set.channels.iter().all(|c| c.unresponsive) {
                    for channel in set.channels.drain(..) {
                        terminate(&channel, TerminationReason::NonResponsiveChannel);
                    }
                    set.backlog.push_front(unacked.pending);
                    crate::telemetry::xsi_events("backlogged", 1);
                    continue;
                }
                resend(set, unacked, now);
            }
            // What waits goes out as the channels' queues drain.
            flush(set);
            // The backlog keeps events for a while only.
            while set
                .backlog
                .front()
                .is_some_and(|p| now.duration_since(p.queued_at) >= backlog_age)
            {
                if let Some(dropped) = set.backlog.pop_front() {
                    self.settle(&dropped);
                }
                crate::telemetry::xsi_events("dropped", 1);
            }
        }
        if !pass_done {
            return Vec::new();
        }
        state.forget_empty_sets();
        let unix_now = time::OffsetDateTime::now_utc().unix_timestamp();
        state
            .subscriptions
            .values()
            .filter(|s| s.expires_at.is_some_and(|at| at <= unix_now))
            .map(|s| s.id.clone())
            .collect()
    }

    /// Ends every channel (server shutdown): clients should open new ones elsewhere.
    pub fn close_all(&self) {
        let mut state = self.state();
        for set in state.sets.values_mut() {
            for channel in set.channels.drain(..) {
                terminate(&channel, TerminationReason::Expired);
            }
        }
    }
}
