//! The hub's background work, started by `server.rs` and ended by shutdown: the pump that
//! carries telephony events from the bus to the hub, and the hub's timers (expired
//! subscriptions every 250 ms).

use crate::shutdown::Shutdown;
use crate::telephony::Telephony;

use super::hub::Hub;

/// The XSI-Events background work: one task carries telephony events to the hub in bus
/// order (in a cluster the fan-out does, after the shared backlog has them), another runs
/// the hub's timers. On shutdown every channel gets its ChannelTerminatedEvent and its
/// stream ends, so graceful HTTP shutdown does not wait on open channels.
pub fn spawn_background(shutdown: &Shutdown, hub: Hub, telephony: Telephony) {
    if !hub.is_clustered() {
        spawn_pump(shutdown, hub.clone(), telephony);
    }
    let timer_shutdown = shutdown.clone();
    shutdown.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = timer_shutdown.cancelled() => {
                    hub.close_all();
                    break;
                }
                _ = tick.tick() => {
                    for expired in hub.tick(std::time::Instant::now()) {
                        if let Err(e) = hub.remove_subscription(&expired, true).await {
                            tracing::warn!(error = %e, subscription = %expired, "cannot end an expired subscription");
                        }
                    }
                }
            }
        }
    });
}

/// Carries the bus's events to the hub, in order.
fn spawn_pump(shutdown: &Shutdown, hub: Hub, telephony: Telephony) {
    let mut events = telephony.events().subscribe();
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => break,
                event = events.recv() => event,
            };
            match event {
                Ok(event) => hub.deliver(&event),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(lost)) => {
                    tracing::error!(
                        lost,
                        "event delivery fell behind the telephony bus; events were lost"
                    );
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}
