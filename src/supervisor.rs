//! The process and its service manager: `SIGHUP` reloads ([`crate::reload`]), and under
//! systemd (`Type=notify` with `ExecReload=kill -HUP`, see `dist/bridgehead.service`) the
//! node says `READY=1` once every listener accepts, `RELOADING=1` … `READY=1` around a
//! `SIGHUP` reload, `STOPPING=1` when it starts draining, and pings the watchdog at half of
//! `WatchdogSec` from the async runtime (a stalled runtime stops the pings and systemd
//! restarts it). Outside systemd (`NOTIFY_SOCKET` unset) the notifications are no-ops.

use std::sync::Arc;

use sd_notify::NotifyState;

use crate::reload::Reloader;
use crate::shutdown::Shutdown;

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Every listener accepts.
pub fn ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// The node starts draining.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Reloads on every `SIGHUP` until shutdown.
pub fn spawn_reload_on_hangup(shutdown: &Shutdown, reloader: Arc<Reloader>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            return tracing::warn!(error = %e, "cannot listen for SIGHUP; use bridgehead reload")
        }
    };
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                received = hangups.recv() => if received.is_none() { break },
            }
            tracing::info!("SIGHUP received, reloading");
            let mut reloading = vec![NotifyState::Reloading];
            if let Ok(now) = NotifyState::monotonic_usec_now() {
                reloading.push(now);
            }
            notify(&reloading);
            let _ = reloader.reload("SIGHUP").await;
            ready();
        }
    });
}

/// Pings the systemd watchdog until shutdown, when `WatchdogSec` is set.
pub fn spawn_watchdog(shutdown: &Shutdown) {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return;
    };
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        let mut tick = tokio::time::interval(timeout / 2);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => notify(&[NotifyState::Watchdog]),
            }
        }
    });
}
