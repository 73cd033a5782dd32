//! The one accept loop. Every listener (admin, and later component, c2s, XSI, CTI) binds
//! here and hands each accepted connection to its own handler:
//!
//! 1. take a connection permit (the limit is per listener) before accepting;
//! 2. accept, racing the shutdown signal;
//! 3. set `TCP_NODELAY` (small stanzas and events must not wait for delayed ACKs);
//! 4. spawn the handler on the shutdown tracker inside a `conn` span with the peer address.
//!
//! Accept errors never end the loop: descriptor exhaustion is logged and backed off for a
//! second, per-connection errors (reset before accept) are ignored.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::shutdown::Shutdown;

/// Listen backlog: enough for reconnect storms.
const BACKLOG: u32 = 1024;

/// A bound listener, not yet accepting.
#[derive(Debug)]
pub struct Listener {
    name: &'static str,
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

impl Listener {
    /// Binds `addr` (port 0 picks a free port) allowing `max_connections` at once.
    pub fn bind(name: &'static str, addr: SocketAddr, max_connections: usize) -> io::Result<Self> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let inner = socket.listen(BACKLOG)?;
        Ok(Listener {
            name,
            inner,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Accepts until shutdown, running `handler` for each connection.
    pub async fn serve<H, F>(self, shutdown: Shutdown, handler: H)
    where
        H: Fn(TcpStream, SocketAddr) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        match self.local_addr() {
            Ok(addr) => tracing::info!(listener = self.name, %addr, "listening"),
            Err(e) => tracing::info!(listener = self.name, error = %e, "listening"),
        }
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = Arc::clone(&self.permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.inner.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if is_resource_exhaustion(&e) => {
                        tracing::error!(listener = self.name, error = %e, "accept failed, backing off");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(listener = self.name, error = %e, "accept failed");
                        continue;
                    }
                },
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            let span = tracing::info_span!("conn", listener = self.name, peer.addr = %peer);
            let connection = handler(stream, peer);
            shutdown.spawn(
                async move {
                    connection.await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
        tracing::info!(listener = self.name, "stopped accepting");
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE (24) and ENFILE (23): out of file descriptors.
    matches!(e.raw_os_error(), Some(23 | 24)) || e.kind() == io::ErrorKind::OutOfMemory
}
