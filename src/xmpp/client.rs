//! Client sessions (RFC 6120, RFC 6121): the c2s listener and, through `Transport`, XMPP
//! over WebSocket ([`super::websocket`]) share everything after the first byte.
//!
//! ```text
//! client                                             Bridgehead
//!   <stream:stream to='example.com' version='1.0'>
//!                                                    <stream:stream from='example.com' id=…>
//!                                                    <features><starttls><required/></starttls></features>
//!   <starttls/>                                      <proceed/>          … TLS handshake …
//!   <stream:stream …>                                <features><mechanisms>SCRAM-SHA-256 SCRAM-SHA-1 PLAIN</mechanisms></features>
//!   <auth mechanism='SCRAM-SHA-256'>…  (see sasl)    <success>…</success>
//!   <stream:stream …>                                <features><bind/><session><optional/></session></features>
//!   <iq type='set'><bind><resource>pc</resource></bind></iq>
//!                                                    <iq type='result'><bind><jid>alice@example.com/pc</jid></bind></iq>
//!   stanzas ◀──▶ the router                          (components in `login_notify` get available presence)
//! ```
//!
//! Everything up to a bound resource runs under `login_timeout_secs` and counts against the
//! c2s listener's pre-authentication budget (`net::listener`); the TLS handshake has its own
//! shorter deadline (`[limits] tls_handshake_timeout_secs`), and shutdown ends every phase.
//! A stream that fails before the server sent its own header (garbage, a DOCTYPE, a wrong
//! namespace) still gets a header and then the stream error (RFC 6120 §4.9.1.2). Stanzas
//! before authentication end the stream with `not-authorized`. Every credential check is
//! reserved in the login limiter (`credentials::throttle`) before it is made; over budget,
//! attempts get `temporary-auth-failure` before any credential is checked. A failed login is
//! answered after `auth_failure_delay_ms`, whether the account exists or not. A refused bind
//! is answered at once. `auth_via_component` sends PLAIN credentials of accounts the
//! store does not know to a component (`urn:bridgehead:auth:0`).
//!
//! In session: each stanza's `from` must be the session's full or bare JID (else the
//! stream ends with `invalid-from`) and is stamped with the full JID. Stanzas are read at
//! most `client_stanzas_per_second` (token bucket of `client_stanza_burst`): a client over
//! it is not read until tokens return. A client silent for `client_ping_interval_secs` is
//! pinged (XEP-0199) and closed with `connection-timeout` when nothing comes back. Iqs to
//! the account itself (roster, ping, disco) are answered here, presence goes through
//! [`super::roster`], everything else through the router. XEP-0198 (acknowledgements,
//! parking a session whose connection broke, resumption) is described in [`super::sm`].
//!
//! The files: this one holds the service and the connection phases (plain, STARTTLS,
//! WebSocket); `client/transport.rs` the two transports; `client/negotiate.rs` headers,
//! features and binding; `client/login.rs` SASL; `client/park.rs` parking and resumption;
//! `client/session.rs` the bound session.

mod login;
mod negotiate;
mod park;
mod session;
#[cfg(test)]
mod tests;
mod transport;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minidom::Element;
use tokio::net::TcpStream;

use super::error::XmppError;
use super::ns;
use super::roster::{Rosters, SessionPresence};
use super::router::{ConnectionInfo, Outbound, Router};
use super::sm::StreamManagement;
use super::stream::{for_stream, ElementLimits};
use crate::config::{Config, LimitsConfig, Live, XmppConfig};
use crate::credentials::{LoginBudgets, LoginLimiter};
use crate::net::listener::{Admission, PhaseEnd};
use crate::shutdown::Shutdown;
use crate::telephony::Telephony;

pub use super::ns::{BIND, COMPONENT_AUTH, SASL, SESSION, TLS};

use park::Parked;
pub(crate) use transport::Transport;
use transport::{tls_exporter, TcpTransport};

/// Read buffer per TCP session: small, since idle sessions are the common case.
const READ_BUFFER: usize = 128;

/// Everything client sessions share.
pub struct ClientService {
    settings: XmppConfig,
    /// `[limits]`, live: each connection takes those in force when it starts.
    limits: Live<LimitsConfig>,
    domain: String,
    tls: Option<Live<rustls::ServerConfig>>,
    router: Router,
    telephony: Telephony,
    rosters: Rosters,
    throttle: LoginLimiter,
    decoy_key: [u8; 32],
    /// Verifiers no password matches: PLAIN for an unknown account costs the same PBKDF2.
    decoy_verifiers: Arc<crate::credentials::PasswordVerifiers>,
    scram_iterations: u32,
    /// Parked XEP-0198 sessions by resumption id.
    parked: Mutex<HashMap<String, Parked>>,
}

impl std::fmt::Debug for ClientService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientService")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// What the negotiation of one connection runs under.
struct Phase<'a> {
    peer: SocketAddr,
    /// `login_timeout_secs` from the first byte.
    deadline: tokio::time::Instant,
    /// The connection's place in the c2s listener's budgets (none over WebSocket, whose
    /// HTTPS connection was admitted already).
    admission: Option<&'a Admission>,
    shutdown: &'a Shutdown,
}

impl Phase<'_> {
    /// Runs `work` until `deadline`, shutdown or (on c2s) eviction.
    async fn run<F: std::future::Future>(
        &self,
        deadline: tokio::time::Instant,
        work: F,
    ) -> Result<F::Output, PhaseEnd> {
        match self.admission {
            Some(admission) => admission.phase_until(deadline, work).await,
            None => tokio::select! {
                done = tokio::time::timeout_at(deadline, work) => done.map_err(|_| PhaseEnd::TimedOut),
                _ = self.shutdown.cancelled() => Err(PhaseEnd::Shutdown),
            },
        }
    }
}

/// How the pre-session phase ended.
enum Negotiated {
    /// The client asked for TLS; `<proceed/>` was sent.
    StartTls,
    /// A resource is bound.
    Bound(Box<Bound>),
}

/// A bound session.
struct Bound {
    presence: SessionPresence,
    queue: tokio::sync::mpsc::Receiver<Outbound>,
    /// XEP-0198 state, once the client enabled it.
    sm: Option<StreamManagement>,
    /// The session was resumed (the components already know of it).
    resumed: bool,
    /// What the admin API shows of it; the session counts its stanzas here.
    info: Arc<ConnectionInfo>,
}

/// Writes a stanza to the client, remembering it for XEP-0198 when that is on.
fn send<T: Transport>(
    transport: &mut T,
    sm: &mut Option<StreamManagement>,
    stanza: &Element,
) -> Result<(), XmppError> {
    let stanza = for_stream(stanza, ns::CLIENT);
    transport.write(&stanza)?;
    if let Some(sm) = sm {
        sm.sent(stanza.into_owned());
    }
    Ok(())
}

impl ClientService {
    /// The service under `config` and the live `limits`; `tls` is offered through
    /// STARTTLS (None: plain only).
    pub fn new(
        config: &Config,
        limits: Live<LimitsConfig>,
        tls: Option<Live<rustls::ServerConfig>>,
        router: Router,
        telephony: Telephony,
    ) -> Self {
        let settings = config.xmpp.clone();
        let scram_iterations = config.store.scram_iterations;
        let rosters = Rosters::new(telephony.clone(), router.clone());
        let throttle = LoginLimiter::new(LoginBudgets {
            per_account_per_address: settings.failed_logins_per_account_per_minute.get(),
            per_address: settings.failed_logins_per_address_per_minute.get(),
            per_account: settings
                .failed_logins_per_account_all_addresses_per_minute
                .get(),
        });
        ClientService {
            domain: router.domain().to_owned(),
            limits,
            settings,
            tls,
            router,
            telephony,
            rosters,
            throttle,
            decoy_key: rand::random(),
            decoy_verifiers: Arc::new(crate::credentials::PasswordVerifiers::decoy(
                scram_iterations,
            )),
            scram_iterations,
            parked: Mutex::new(HashMap::new()),
        }
    }

    /// What one element from a client may be.
    pub(crate) fn element_limits(&self) -> ElementLimits {
        ElementLimits::new(self.settings.max_stanza_bytes.get(), &self.limits.get())
    }

    fn route(&self, stanza: Element) -> super::router::Delivery {
        self.router.route(stanza)
    }

    /// Runs one c2s connection to its end. Each phase runs in a future of its own, and the
    /// transport is lent, never moved, down the call chain: so an idle session's memory is
    /// one copy of its transport and the session loop, not the largest of every phase.
    pub async fn handle(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        admission: Admission,
        shutdown: Shutdown,
    ) {
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(self.settings.login_timeout_secs.get());
        let phase = Phase {
            peer,
            deadline,
            admission: Some(&admission),
            shutdown: &shutdown,
        };
        let tcp = Box::pin(self.plain_phase(tcp, &phase)).await;
        if let Some(tcp) = tcp {
            Box::pin(self.tls_phase(tcp, &phase)).await;
        }
    }

    /// The stream in clear: the connection back when the client asked for STARTTLS.
    async fn plain_phase(self: &Arc<Self>, tcp: TcpStream, phase: &Phase<'_>) -> Option<TcpStream> {
        let mut plain = TcpTransport::new(tcp, self, false);
        let negotiated = Box::pin(self.negotiate_until(&mut plain, phase)).await;
        if matches!(negotiated, Ok(Negotiated::StartTls)) && self.tls.is_some() {
            return Some(plain.into_io());
        }
        self.finish_negotiation(&mut plain, negotiated, phase).await;
        None
    }

    /// The TLS handshake after `<proceed/>`, and the encrypted stream to its end.
    async fn tls_phase(self: &Arc<Self>, tcp: TcpStream, phase: &Phase<'_>) {
        let Some(acceptor) = self
            .tls
            .as_ref()
            .map(|tls| tokio_rustls::TlsAcceptor::from(tls.get()))
        else {
            return;
        };
        let handshake = self
            .limits
            .get()
            .tls_handshake_within(self.settings.login_timeout_secs.get());
        let tls_deadline = phase.deadline.min(tokio::time::Instant::now() + handshake);
        // No local holds the TLS stream across an await (the handshake is boxed, its result
        // a temporary): the transport is its only copy in this future, which every idle
        // session keeps.
        let mut secure = match Box::pin(phase.run(tls_deadline, acceptor.accept(tcp))).await {
            Ok(Ok(tls)) => self.secure_transport(tls),
            Ok(Err(e)) => return tracing::info!(error = %e, "STARTTLS handshake failed"),
            Err(end) => return tracing::info!(%end, "STARTTLS handshake did not finish"),
        };
        let negotiated = Box::pin(self.negotiate_until(&mut secure, phase)).await;
        self.finish_negotiation(&mut secure, negotiated, phase)
            .await;
    }

    /// The transport over an accepted TLS connection, with its channel binding.
    fn secure_transport(
        &self,
        tls: tokio_rustls::server::TlsStream<TcpStream>,
    ) -> TcpTransport<tokio_rustls::server::TlsStream<TcpStream>> {
        let binding = tls_exporter(tls.get_ref().1);
        let mut secure = TcpTransport::new(tls, self, true);
        secure.channel_binding = binding;
        secure
    }

    /// Runs a WebSocket session (the transport is already upgraded).
    pub(crate) async fn handle_websocket<T: Transport>(
        self: &Arc<Self>,
        mut transport: T,
        peer: SocketAddr,
        shutdown: Shutdown,
    ) {
        let phase = Phase {
            peer,
            deadline: tokio::time::Instant::now()
                + Duration::from_secs(self.settings.login_timeout_secs.get()),
            // The HTTPS connection it came on was admitted already.
            admission: None,
            shutdown: &shutdown,
        };
        let negotiated = Box::pin(self.negotiate_until(&mut transport, &phase)).await;
        self.finish_negotiation(&mut transport, negotiated, &phase)
            .await;
    }
}
