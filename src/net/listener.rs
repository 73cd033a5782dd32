//! The one accept loop. Every listener (admin, components, c2s, HTTPS, CTI) binds here and
//! hands each accepted connection, with its [`Admission`], to its own handler:
//!
//! 1. accept, racing the shutdown signal;
//! 2. admit the connection to the listener's **pre-authentication budget**: at most
//!    `max_preauth_connections_per_address` from one address (more are closed at once) and
//!    `max_preauth_connections` in all (when full, the oldest unauthenticated connection is
//!    ended to make room, so a flood of idle sockets cannot keep a real peer out);
//! 3. set `TCP_NODELAY` (small stanzas and events must not wait for delayed ACKs);
//! 4. spawn the handler on the shutdown tracker inside a `conn` span with the peer address.
//!
//! The handler runs every pre-authentication phase (TLS handshake, stream negotiation,
//! SASL, the component handshake) through [`Admission::phase`], which ends it on its
//! deadline, on shutdown, or when the connection is evicted. Once the peer has proved who
//! it is, [`Admission::authenticated`] moves it out of the pre-authentication budget and
//! into the listener's `max_connections`; only authenticated connections count there.
//!
//! Accept errors never end the loop: descriptor exhaustion is logged and backed off for a
//! second, per-connection errors (reset before accept) are ignored.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Live;
use crate::shutdown::Shutdown;

/// Listen backlog: enough for reconnect storms.
const BACKLOG: u32 = 1024;

/// The pre-authentication budget of one listener (`[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreAuthLimits {
    /// Unauthenticated connections at once.
    pub total: usize,
    /// Unauthenticated connections from one address at once.
    pub per_address: usize,
}

impl PreAuthLimits {
    /// The limits the configuration sets.
    pub fn from_config(limits: &crate::config::LimitsConfig) -> Self {
        PreAuthLimits {
            total: limits.max_preauth_connections.get(),
            per_address: limits.max_preauth_connections_per_address.get(),
        }
    }
}

/// The unauthenticated connections of one listener.
#[derive(Debug, Default)]
struct PreAuthTable {
    next_id: u64,
    by_address: HashMap<IpAddr, usize>,
    /// By admission order (oldest first), each with the token that ends its phase.
    by_age: BTreeMap<u64, (IpAddr, CancellationToken)>,
}

impl PreAuthTable {
    fn forget(&mut self, id: u64) {
        if let Some((peer, _)) = self.by_age.remove(&id) {
            self.uncount(peer);
        }
    }

    /// Ends the oldest unauthenticated connection's phase and forgets it.
    fn evict_oldest(&mut self) {
        if let Some((_, (peer, token))) = self.by_age.pop_first() {
            token.cancel();
            self.uncount(peer);
        }
    }

    fn uncount(&mut self, peer: IpAddr) {
        if let Some(count) = self.by_address.get_mut(&peer) {
            *count -= 1;
            if *count == 0 {
                self.by_address.remove(&peer);
            }
        }
    }
}

/// A bound listener (one socket per configured address), not yet accepting.
#[derive(Debug)]
pub struct Listener {
    name: &'static str,
    sockets: Vec<TcpListener>,
    /// The socket the next accept looks at first, so that none starves the others.
    next: std::sync::atomic::AtomicUsize,
    permits: Arc<Semaphore>,
    /// Live: a reload changes the budget for the next connections.
    preauth: Live<PreAuthLimits>,
    table: Arc<Mutex<PreAuthTable>>,
}

/// Why a pre-authentication phase did not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PhaseEnd {
    /// Its deadline passed.
    #[error("timed out")]
    TimedOut,
    /// The server is stopping.
    #[error("the server is stopping")]
    Shutdown,
    /// Newer connections needed the room (the listener's budget was full).
    #[error("closed to make room for newer connections")]
    Evicted,
}

/// Every authenticated connection slot of the listener is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the listener's connection limit is reached")]
pub struct ListenerFull;

/// One accepted connection's place in its listener's budgets.
#[derive(Debug)]
pub struct Admission {
    listener: &'static str,
    id: u64,
    ended: CancellationToken,
    shutdown: Shutdown,
    table: Arc<Mutex<PreAuthTable>>,
    permits: Arc<Semaphore>,
    permit: std::sync::OnceLock<OwnedSemaphorePermit>,
}

impl Admission {
    /// Runs one pre-authentication `phase` for at most `limit`, ending it early on shutdown
    /// or eviction.
    pub async fn phase<F: Future>(&self, limit: Duration, phase: F) -> Result<F::Output, PhaseEnd> {
        self.phase_until(tokio::time::Instant::now() + limit, phase)
            .await
    }

    /// [`Admission::phase`] with an absolute deadline.
    pub async fn phase_until<F: Future>(
        &self,
        deadline: tokio::time::Instant,
        phase: F,
    ) -> Result<F::Output, PhaseEnd> {
        if self.permit.get().is_some() {
            return Ok(phase.await);
        }
        tokio::select! {
            output = tokio::time::timeout_at(deadline, phase) => output.map_err(|_| PhaseEnd::TimedOut),
            _ = self.ended.cancelled() => Err(if self.shutdown.is_triggered() {
                PhaseEnd::Shutdown
            } else {
                crate::telemetry::preauth_refusal(self.listener, "evicted");
                PhaseEnd::Evicted
            }),
        }
    }

    /// The peer proved who it is: it leaves the pre-authentication budget and takes one of
    /// the listener's connection slots for the rest of its life.
    pub fn authenticated(&self) -> Result<(), ListenerFull> {
        if self.permit.get().is_none() {
            let permit = Arc::clone(&self.permits)
                .try_acquire_owned()
                .map_err(|_| ListenerFull)?;
            self.take(permit);
        }
        Ok(())
    }

    /// Like [`Admission::authenticated`], but waits (still in the pre-authentication budget,
    /// so bounded) for a connection slot to free up instead of failing.
    pub async fn wait_for_slot(&self) {
        if self.permit.get().is_none() {
            if let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await {
                self.take(permit);
            }
        }
    }

    /// Holds `permit` for the connection's life; it leaves the pre-authentication budget.
    fn take(&self, permit: OwnedSemaphorePermit) {
        if self.permit.set(permit).is_ok() {
            self.table().forget(self.id);
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, PreAuthTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.permit.get().is_none() {
            self.table().forget(self.id);
        }
    }
}

impl Listener {
    /// Binds every address of `addrs` (port 0 picks a free port) allowing `max_connections`
    /// authenticated connections and `preauth` unauthenticated ones at once, in all. `[::]`
    /// is bound dual-stack, or as `0.0.0.0` on a host without IPv6. The error names the
    /// address that failed.
    pub fn bind(
        name: &'static str,
        addrs: &[SocketAddr],
        max_connections: usize,
        preauth: PreAuthLimits,
    ) -> Result<Self, (SocketAddr, io::Error)> {
        let mut sockets = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            let socket = match bind_one(addr) {
                Err(e) if is_unspecified_v6(addr) && is_no_ipv6(&e) => {
                    let v4 = SocketAddr::from(([0, 0, 0, 0], addr.port()));
                    tracing::warn!(listener = name, %addr, error = %e, fallback = %v4, "no IPv6 on this host: listening on IPv4 only");
                    bind_one(v4).map_err(|e| (v4, e))?
                }
                other => other.map_err(|e| (addr, e))?,
            };
            sockets.push(socket);
        }
        Ok(Listener {
            name,
            sockets,
            next: std::sync::atomic::AtomicUsize::new(0),
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            preauth: Live::new(preauth),
            table: Arc::default(),
        })
    }

    /// The pre-authentication budget, which a reload can replace.
    pub fn preauth(&self) -> Live<PreAuthLimits> {
        self.preauth.clone()
    }

    /// The first bound address (the one a port-0 test connects to).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sockets
            .first()
            .ok_or_else(|| io::Error::other("no address"))?
            .local_addr()
    }

    /// The next connection on any of the sockets.
    async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        use std::sync::atomic::Ordering;
        let count = self.sockets.len();
        std::future::poll_fn(|cx| {
            let first = self.next.fetch_add(1, Ordering::Relaxed);
            for n in 0..count {
                let socket = &self.sockets[(first + n) % count];
                if let std::task::Poll::Ready(accepted) = socket.poll_accept(cx) {
                    return std::task::Poll::Ready(accepted);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// Puts a new connection from `peer` into the pre-authentication budget, evicting the
    /// oldest one when the listener is full; `None` when `peer` has too many already.
    fn admit(&self, peer: IpAddr, shutdown: &Shutdown) -> Option<Admission> {
        let preauth = self.preauth.get();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.by_address.get(&peer).copied().unwrap_or(0) >= preauth.per_address.max(1) {
            return None;
        }
        while table.by_age.len() >= preauth.total.max(1) {
            table.evict_oldest();
        }
        let id = table.next_id;
        table.next_id += 1;
        let ended = shutdown.child_token();
        table.by_age.insert(id, (peer, ended.clone()));
        *table.by_address.entry(peer).or_insert(0) += 1;
        Some(Admission {
            listener: self.name,
            id,
            ended,
            shutdown: shutdown.clone(),
            table: Arc::clone(&self.table),
            permits: Arc::clone(&self.permits),
            permit: std::sync::OnceLock::new(),
        })
    }

    /// Accepts until shutdown, running `handler` for each connection. Says `listening`
    /// when called, not when first polled, so the log names every listener before the
    /// server says it is serving.
    pub fn serve<H, F>(self, shutdown: Shutdown, handler: H) -> impl Future<Output = ()> + Send
    where
        H: Fn(TcpStream, SocketAddr, Admission) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        for socket in &self.sockets {
            match socket.local_addr() {
                Ok(addr) => tracing::info!(listener = self.name, %addr, "listening"),
                Err(e) => tracing::info!(listener = self.name, error = %e, "listening"),
            }
        }
        self.accept_until(shutdown, handler)
    }

    async fn accept_until<H, F>(self, shutdown: Shutdown, handler: H)
    where
        H: Fn(TcpStream, SocketAddr, Admission) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        loop {
            let (stream, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if is_resource_exhaustion(&e) => {
                        tracing::error!(listener = self.name, error = %e, "accept failed, backing off");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(listener = self.name, error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let Some(admission) = self.admit(peer.ip(), &shutdown) else {
                tracing::debug!(listener = self.name, %peer, "too many unauthenticated connections from this address");
                crate::telemetry::preauth_refusal(self.name, "per_address");
                continue;
            };
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            let span = tracing::info_span!("conn", listener = self.name, peer.addr = %peer);
            shutdown.spawn(handler(stream, peer, admission).instrument(span));
        }
        tracing::info!(listener = self.name, "stopped accepting");
    }
}

/// One listening socket; `[::]` with `IPV6_V6ONLY` off, so it takes IPv4 too.
fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(!is_unspecified_v6(addr))?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG as i32)?;
    TcpListener::from_std(socket.into())
}

fn is_unspecified_v6(addr: SocketAddr) -> bool {
    addr.is_ipv6() && addr.ip().is_unspecified()
}

/// The host has no IPv6: the family is not supported, or `::` cannot be assigned.
fn is_no_ipv6(e: &io::Error) -> bool {
    // EAFNOSUPPORT (97), EADDRNOTAVAIL (99).
    matches!(e.raw_os_error(), Some(97 | 99))
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE (24) and ENFILE (23): out of file descriptors.
    matches!(e.raw_os_error(), Some(23 | 24)) || e.kind() == io::ErrorKind::OutOfMemory
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(total: usize, per_address: usize) -> Listener {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Listener::bind("test", &[addr], 2, PreAuthLimits { total, per_address }).unwrap()
    }

    /// Serves `listener`, writing the port each connection came in on.
    async fn serve_ports(listener: Listener, shutdown: &Shutdown) {
        use tokio::io::AsyncWriteExt;
        tokio::spawn(
            listener.serve(shutdown.clone(), |mut stream, _, _| async move {
                let port = stream.local_addr().unwrap().port();
                let _ = stream.write_all(&port.to_be_bytes()).await;
            }),
        );
    }

    async fn port_of(addr: SocketAddr) -> u16 {
        use tokio::io::AsyncReadExt;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut port = [0u8; 2];
        stream.read_exact(&mut port).await.unwrap();
        u16::from_be_bytes(port)
    }

    #[tokio::test]
    async fn the_unspecified_ipv6_address_takes_both_families() {
        let any = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
        let limits = PreAuthLimits {
            total: 10,
            per_address: 10,
        };
        let listener = Listener::bind("test", &[any], 10, limits).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shutdown = Shutdown::new();
        serve_ports(listener, &shutdown).await;
        assert_eq!(
            port_of(SocketAddr::from(([127, 0, 0, 1], port))).await,
            port
        );
        if let Ok(v6) =
            TcpStream::connect(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))).await
        {
            drop(v6);
            assert_eq!(
                port_of(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))).await,
                port
            );
        }
        shutdown.trigger();
    }

    #[tokio::test]
    async fn one_listener_accepts_on_every_address() {
        let addrs = [
            SocketAddr::from(([127, 0, 0, 1], 0)),
            SocketAddr::from(([127, 0, 0, 2], 0)),
        ];
        let limits = PreAuthLimits {
            total: 10,
            per_address: 10,
        };
        let listener = Listener::bind("test", &addrs, 10, limits).unwrap();
        let bound: Vec<SocketAddr> = listener
            .sockets
            .iter()
            .map(|s| s.local_addr().unwrap())
            .collect();
        let shutdown = Shutdown::new();
        serve_ports(listener, &shutdown).await;
        for addr in bound {
            assert_eq!(port_of(addr).await, addr.port(), "{addr}");
        }
        shutdown.trigger();
    }

    #[tokio::test]
    async fn a_taken_address_is_named_in_the_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let limits = PreAuthLimits {
            total: 1,
            per_address: 1,
        };
        let free = SocketAddr::from(([127, 0, 0, 1], 0));
        let (failed, error) = Listener::bind("test", &[free, addr], 1, limits).unwrap_err();
        assert_eq!(failed, addr);
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }

    #[tokio::test]
    async fn one_address_gets_its_share_and_no_more() {
        let listener = listener(10, 2);
        let shutdown = Shutdown::new();
        let a = IpAddr::from([10, 0, 0, 1]);
        let first = listener.admit(a, &shutdown).unwrap();
        let _second = listener.admit(a, &shutdown).unwrap();
        assert!(listener.admit(a, &shutdown).is_none());
        assert!(listener
            .admit(IpAddr::from([10, 0, 0, 2]), &shutdown)
            .is_some());
        drop(first);
        assert!(
            listener.admit(a, &shutdown).is_some(),
            "a closed connection frees its place"
        );
    }

    #[tokio::test]
    async fn a_full_listener_evicts_the_oldest_unauthenticated_connection() {
        let listener = listener(2, 5);
        let shutdown = Shutdown::new();
        let oldest = listener
            .admit(IpAddr::from([10, 0, 0, 1]), &shutdown)
            .unwrap();
        let middle = listener
            .admit(IpAddr::from([10, 0, 0, 2]), &shutdown)
            .unwrap();
        middle.authenticated().unwrap();
        let newest = listener
            .admit(IpAddr::from([10, 0, 0, 3]), &shutdown)
            .unwrap();
        let _newer = listener
            .admit(IpAddr::from([10, 0, 0, 4]), &shutdown)
            .unwrap();
        let phase = oldest.phase(Duration::from_secs(60), std::future::pending::<()>());
        assert_eq!(phase.await, Err(PhaseEnd::Evicted));
        // The authenticated one left the budget, so one more eviction was enough.
        assert!(!newest.ended.is_cancelled());
    }

    #[tokio::test]
    async fn authenticated_connections_count_against_max_connections_only() {
        let listener = listener(10, 10);
        let shutdown = Shutdown::new();
        let peer = IpAddr::from([10, 0, 0, 1]);
        let mut admitted: Vec<_> = (0..3)
            .map(|_| listener.admit(peer, &shutdown).unwrap())
            .collect();
        assert!(admitted[0].authenticated().is_ok());
        assert!(admitted[1].authenticated().is_ok());
        assert_eq!(admitted[2].authenticated(), Err(ListenerFull));
        admitted.remove(0);
        assert!(admitted[1].authenticated().is_ok());
    }

    #[tokio::test]
    async fn shutdown_ends_a_phase() {
        let listener = listener(10, 10);
        let shutdown = Shutdown::new();
        let admission = listener
            .admit(IpAddr::from([10, 0, 0, 1]), &shutdown)
            .unwrap();
        shutdown.trigger();
        let phase = admission.phase(Duration::from_secs(60), std::future::pending::<()>());
        assert_eq!(phase.await, Err(PhaseEnd::Shutdown));
    }
}
