//! Stopping cleanly: one [`Shutdown`] per server holds a cancellation token that every
//! long-lived task watches and a task tracker that knows when they have all ended.
//!
//! `main` waits for SIGINT/SIGTERM ([`signal`]), calls [`Shutdown::trigger`], then
//! [`Shutdown::drain`] waits up to the grace period for connection tasks to finish.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// The shutdown signal and the tasks that must end on it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A fresh, untriggered shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every task to stop.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// True once triggered.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when triggered.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// A token cancelled on shutdown that can also be cancelled on its own (one
    /// connection's phase).
    pub fn child_token(&self) -> CancellationToken {
        self.token.child_token()
    }

    /// Spawns a task that [`Shutdown::drain`] waits for.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Waits for every tracked task, at most `grace`. True when all ended in time.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Listens for SIGINT and SIGTERM from the moment it is called (so a signal that comes
/// while the server is still binding is not lost to the default action); the future
/// resolves when one arrives.
pub fn signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received, stopping"),
                _ = terminate.recv() => tracing::info!("SIGTERM received, stopping"),
            },
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot listen for signals; the server runs until killed");
                std::future::pending::<()>().await;
            }
        }
    }
}
