//! Client sessions (RFC 6120, RFC 6121): the c2s listener and, through [`Transport`], XMPP
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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minidom::Element;
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tracing::Instrument;

use super::component::ComponentDirectory;
use super::error::{StreamCondition, XmppError};
use super::keepalive::{self, Due, KeepAlive};
use super::roster::{bare_of, Rosters, SessionPresence, ROSTER};
use super::router::{take_batch, Outbound, RequestError, Router};
use super::sasl::{self, Failure, Mechanism, ScramExchange};
use super::sm::{self, StreamManagement, SM};
use super::stream::{for_stream, ElementLimits, StreamHeader, StreamReader, StreamWriter};
use super::{ns, services, stanza};
use crate::config::{Config, XmppConfig};
use crate::credentials::{LoginBudgets, LoginLimiter, Reservation};
use crate::net::listener::{Admission, PhaseEnd};
use crate::shutdown::Shutdown;
use crate::store::Store;

/// STARTTLS (RFC 6120 §5).
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// SASL (RFC 6120 §6).
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding (RFC 6120 §7).
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// The legacy session establishment (RFC 3921), offered as optional for old clients.
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// The credential check asked of `auth_via_component`.
pub const COMPONENT_AUTH: &str = "urn:bridgehead:auth:0";

/// Read buffer per TCP session: small, since idle sessions are the common case.
const READ_BUFFER: usize = 128;

/// One client stream transport: TCP (plain or TLS) or WebSocket.
pub(crate) trait Transport: Send {
    /// `c2s` or `websocket`, for logs and metrics.
    const NAME: &'static str;
    /// Reads the client's stream opening.
    async fn read_open(&mut self) -> Result<StreamHeader, XmppError>;
    /// Queues the server's stream opening.
    fn write_open(&mut self, from: &str, id: &str) -> Result<(), XmppError>;
    /// Queues one element.
    fn write(&mut self, element: &Element) -> Result<(), XmppError>;
    /// Sends what is queued.
    async fn flush(&mut self) -> Result<(), XmppError>;
    /// The next element; `None` when the client closed the stream.
    async fn read(&mut self) -> Result<Option<Element>, XmppError>;
    /// After SASL success the next stream is a new document.
    fn restart(&mut self);
    /// Sends the stream error (if any) and closes, bounded in time; the server's header
    /// goes first when it was not sent on the current stream.
    async fn close(&mut self, condition: Option<StreamCondition>);
    /// Whether the transport is encrypted.
    fn is_secure(&self) -> bool;
    /// The channel's `tls-exporter` binding data (TLS 1.3 only), for SCRAM -PLUS.
    fn channel_binding(&self) -> Option<&[u8]> {
        None
    }
}

/// c2s over TCP, before or after STARTTLS.
pub(crate) struct TcpTransport<S> {
    reader: StreamReader<BufReader<ReadHalf<S>>>,
    writer: StreamWriter<WriteHalf<S>>,
    secure: bool,
    /// The server's header of the current stream was written.
    opened: bool,
    channel_binding: Option<Vec<u8>>,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> TcpTransport<S> {
    fn new(io: S, service: &ClientService, secure: bool) -> Self {
        let (read_half, write_half) = tokio::io::split(io);
        TcpTransport {
            reader: StreamReader::new(
                BufReader::with_capacity(READ_BUFFER, read_half),
                service.limits,
            ),
            writer: StreamWriter::new(write_half, ns::CLIENT)
                .with_write_timeout(Duration::from_secs(service.settings.write_timeout_secs)),
            secure,
            opened: false,
            channel_binding: None,
        }
    }

    /// The connection back, for the TLS handshake.
    fn into_io(self) -> S {
        let read_half = self.reader.into_inner().into_inner();
        read_half.unsplit(self.writer.into_inner())
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Transport for TcpTransport<S> {
    const NAME: &'static str = "c2s";

    async fn read_open(&mut self) -> Result<StreamHeader, XmppError> {
        self.reader.read_header().await
    }

    fn write_open(&mut self, from: &str, id: &str) -> Result<(), XmppError> {
        self.opened = true;
        self.writer.header(from, id, Some("1.0"))
    }

    fn write(&mut self, element: &Element) -> Result<(), XmppError> {
        self.writer.element(element)
    }

    async fn flush(&mut self) -> Result<(), XmppError> {
        self.writer.flush().await
    }

    async fn read(&mut self) -> Result<Option<Element>, XmppError> {
        self.reader.read_element().await
    }

    fn restart(&mut self) {
        self.reader.reset();
        self.writer.reset();
        self.opened = false;
    }

    async fn close(&mut self, condition: Option<StreamCondition>) {
        super::component::close(&mut self.writer, self.opened, condition).await;
    }

    fn is_secure(&self) -> bool {
        self.secure
    }

    fn channel_binding(&self) -> Option<&[u8]> {
        self.channel_binding.as_deref()
    }
}

/// Everything client sessions share.
pub struct ClientService {
    settings: XmppConfig,
    limits: ElementLimits,
    tls_handshake: Duration,
    domain: String,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    store: Arc<dyn Store>,
    components: Arc<ComponentDirectory>,
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
    peer: IpAddr,
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
}

/// A parked session (XEP-0198) waiting to be resumed: its account, and the way to take it
/// over from the task that holds it.
struct Parked {
    account: String,
    takeover: oneshot::Sender<oneshot::Sender<Box<Bound>>>,
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

fn sasl_failure(condition: Failure) -> Element {
    stanza::element("failure", SASL, &[])
        .append(Element::bare(condition.as_str(), SASL))
        .build()
}

impl ClientService {
    /// The service under `config`; `tls` is offered through STARTTLS (None: plain only).
    pub fn new(
        config: &Config,
        tls: Option<Arc<rustls::ServerConfig>>,
        router: Router,
        store: Arc<dyn Store>,
        components: Arc<ComponentDirectory>,
    ) -> Self {
        let settings = config.xmpp.clone();
        let scram_iterations = config.store.scram_iterations;
        let rosters = Rosters::new(
            Arc::clone(&store),
            router.clone(),
            Arc::clone(&components),
            config.quotas.clone(),
        );
        let throttle = LoginLimiter::new(LoginBudgets {
            per_account_per_address: settings.failed_logins_per_account_per_minute,
            per_address: settings.failed_logins_per_address_per_minute,
            per_account: settings.failed_logins_per_account_all_addresses_per_minute,
        });
        ClientService {
            domain: router.domain().to_owned(),
            limits: ElementLimits::from_config(config),
            tls_handshake: config
                .limits
                .tls_handshake_within(settings.login_timeout_secs),
            settings,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            router,
            store,
            components,
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
        self.limits
    }

    fn route(&self, stanza: Element) -> super::router::Delivery {
        self.router.route(stanza, |d| self.components.is_known(d))
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
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.settings.login_timeout_secs);
        let phase = Phase {
            peer: peer.ip(),
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
        let Some(acceptor) = self.tls.clone() else {
            return;
        };
        let tls_deadline = phase
            .deadline
            .min(tokio::time::Instant::now() + self.tls_handshake);
        let accepted = phase.run(tls_deadline, acceptor.accept(tcp)).await;
        // No local holds the TLS stream across an await: the transport is its only copy in
        // this future, which every idle session keeps.
        let mut secure = match accepted {
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
        peer: IpAddr,
        shutdown: Shutdown,
    ) {
        let phase = Phase {
            peer,
            deadline: tokio::time::Instant::now()
                + Duration::from_secs(self.settings.login_timeout_secs),
            // The HTTPS connection it came on was admitted already.
            admission: None,
            shutdown: &shutdown,
        };
        let negotiated = Box::pin(self.negotiate_until(&mut transport, &phase)).await;
        self.finish_negotiation(&mut transport, negotiated, &phase)
            .await;
    }

    /// [`Self::negotiate`] until the login deadline, shutdown or eviction.
    async fn negotiate_until<T: Transport>(
        &self,
        transport: &mut T,
        phase: &Phase<'_>,
    ) -> Result<Negotiated, XmppError> {
        phase
            .run(phase.deadline, self.negotiate(transport, phase.peer))
            .await
            .unwrap_or_else(|end| Err(XmppError::unfinished(end, self.settings.login_timeout_secs)))
    }

    /// Runs the session of a transport that negotiated (or closes it with the reason).
    async fn finish_negotiation<T: Transport>(
        self: &Arc<Self>,
        transport: &mut T,
        negotiated: Result<Negotiated, XmppError>,
        phase: &Phase<'_>,
    ) {
        let error = match negotiated {
            Ok(Negotiated::Bound(mut bound)) => {
                if phase.admission.is_none_or(|a| a.authenticated().is_ok()) {
                    return self.session(transport, bound, phase.shutdown.clone()).await;
                }
                Box::pin(self.end_session(&mut bound)).await;
                XmppError::stream(
                    StreamCondition::ResourceConstraint,
                    "the c2s listener is at max_client_connections",
                )
            }
            Ok(Negotiated::StartTls) => {
                XmppError::stream(StreamCondition::PolicyViolation, "STARTTLS twice")
            }
            Err(error) => error,
        };
        tracing::info!(%error, transport = T::NAME, "client stream ended before a resource was bound");
        transport.close(error.condition()).await;
    }

    fn features<T: Transport>(&self, transport: &T, account: Option<&str>) -> Element {
        let mut features = Element::builder("features", ns::STREAM);
        let starttls_possible = !transport.is_secure() && self.tls.is_some();
        if starttls_possible {
            let mut starttls = Element::builder("starttls", TLS);
            if self.settings.require_tls {
                starttls = starttls.append(Element::bare("required", TLS));
            }
            features = features.append(starttls.build());
        }
        if account.is_none() {
            if transport.is_secure() || !self.settings.require_tls || self.tls.is_none() {
                let mut mechanisms = Element::builder("mechanisms", SASL);
                let offered = self.mechanisms(transport);
                for mechanism in &offered {
                    mechanisms = mechanisms.append(
                        Element::builder("mechanism", SASL)
                            .append(mechanism.name())
                            .build(),
                    );
                }
                features = features.append(mechanisms.build());
                if offered.iter().any(|m| m.is_plus()) {
                    // XEP-0440: which binding the -PLUS variants use.
                    features = features.append(
                        Element::builder("sasl-channel-binding", sasl::SASL_CB)
                            .append(
                                stanza::attr(
                                    Element::builder("channel-binding", sasl::SASL_CB),
                                    "type",
                                    sasl::TLS_EXPORTER,
                                )
                                .build(),
                            )
                            .build(),
                    );
                }
            }
        } else {
            features = features
                .append(Element::bare("bind", BIND))
                .append(Element::bare("sm", SM))
                .append(
                    Element::builder("session", SESSION)
                        .append(Element::bare("optional", SESSION))
                        .build(),
                );
        }
        features.build()
    }

    /// The mechanisms offered on `transport`: -PLUS only with channel binding, PLAIN only
    /// over TLS, and only PLAIN when a component checks credentials.
    fn mechanisms<T: Transport>(&self, transport: &T) -> Vec<Mechanism> {
        let secure = transport.is_secure();
        let binding = transport.channel_binding().is_some();
        let via_component = self.settings.auth_via_component.is_some();
        Mechanism::ALL
            .into_iter()
            .filter(|m| match m {
                Mechanism::Plain => secure,
                _ if via_component => false,
                m if m.is_plus() => binding,
                _ => true,
            })
            .collect()
    }

    /// Stream headers, features, STARTTLS, SASL and resource binding.
    async fn negotiate<T: Transport>(
        &self,
        transport: &mut T,
        peer: IpAddr,
    ) -> Result<Negotiated, XmppError> {
        let mut account: Option<String> = None;
        loop {
            let header = transport.read_open().await?;
            transport.write_open(&self.domain, &hex::encode(rand::random::<[u8; 16]>()))?;
            if header
                .default_ns
                .as_deref()
                .is_some_and(|n| n != ns::CLIENT)
            {
                return Err(XmppError::stream(
                    StreamCondition::InvalidNamespace,
                    format!("stream namespace {:?}", header.default_ns),
                ));
            }
            let to = header.to.unwrap_or_default().to_ascii_lowercase();
            if to != self.domain {
                return Err(XmppError::stream(
                    StreamCondition::HostUnknown,
                    format!("this server is {}, not {to:?}", self.domain),
                ));
            }
            transport.write(&self.features(transport, account.as_deref()))?;
            transport.flush().await?;
            loop {
                let Some(element) = transport.read().await? else {
                    return Err(XmppError::Closed);
                };
                let starttls_possible = !transport.is_secure() && self.tls.is_some();
                if element.is("starttls", TLS) && starttls_possible && account.is_none() {
                    transport.write(&Element::bare("proceed", TLS))?;
                    transport.flush().await?;
                    return Ok(Negotiated::StartTls);
                }
                let may_authenticate =
                    transport.is_secure() || !self.settings.require_tls || self.tls.is_none();
                if element.is("auth", SASL) && account.is_none() && may_authenticate {
                    if let Some(bare) = self.authenticate(transport, &element, peer).await? {
                        account = Some(bare);
                        transport.restart();
                        break;
                    }
                    continue;
                }
                if let (Some(bare), true) = (&account, element.is("resume", SM)) {
                    match self.resume(transport, bare, &element).await? {
                        Some(bound) => return Ok(Negotiated::Bound(bound)),
                        None => continue,
                    }
                }
                if let (Some(bare), Some(stanza::Kind::Iq)) = (&account, stanza::kind(&element)) {
                    if let Some(bind) = element.get_child("bind", BIND) {
                        if let Some(bound) = self.bind(transport, bare, &element, bind)? {
                            return Ok(Negotiated::Bound(bound));
                        }
                        // The refusal goes out now: the client waits for it.
                        transport.flush().await?;
                        continue;
                    }
                }
                return Err(XmppError::stream(
                    StreamCondition::NotAuthorized,
                    format!("<{}> before authentication and binding", element.name()),
                ));
            }
        }
    }

    /// The store id of a SASL username (`alice` or `alice@domain`), if it names one here.
    fn account_id(&self, username: &str) -> Option<String> {
        let username = username.to_lowercase();
        let node = match username.rsplit_once('@') {
            Some((node, domain)) if domain == self.domain => node.to_owned(),
            Some(_) => return None,
            None => username,
        };
        jid::BareJid::new(&format!("{node}@{}", self.domain))
            .ok()
            .filter(|jid| jid.node().is_some())
            .map(|jid| jid.as_str().to_lowercase())
    }

    /// The checks every mechanism makes before any credential: the name is an account here,
    /// the authorization identity (if any) is that account, neither the account nor the
    /// address is over its failure budget. Returns the account and its store record
    /// (`None` for an account the store does not know).
    #[allow(clippy::type_complexity)]
    async fn admit(
        &self,
        username: &str,
        authzid: Option<&str>,
        peer: IpAddr,
    ) -> Result<(String, Option<crate::store::User>, Reservation<'_>), (Failure, Option<String>)>
    {
        let Some(account) = self.account_id(username) else {
            // No account can have this name: counted against the address only.
            self.throttle.fail_unnamed(peer);
            return Err((Failure::NotAuthorized, None));
        };
        if authzid.is_some_and(|authzid| bare_of(authzid).as_deref() != Some(account.as_str())) {
            return Err((Failure::InvalidAuthzid, Some(account)));
        }
        let Ok(attempt) = self.throttle.reserve(Some(&account), peer) else {
            crate::telemetry::throttled_attempt("sasl");
            return Err((Failure::TemporaryAuthFailure, Some(account)));
        };
        match self.store.user(&account).await {
            Ok(user) => Ok((account, user, attempt)),
            Err(e) => {
                tracing::error!(error = %e, "cannot read a user for a login");
                Err((Failure::TemporaryAuthFailure, Some(account)))
            }
        }
    }

    /// One SASL exchange: `Some(account)` on success; `None` after a failure was sent.
    async fn authenticate<T: Transport>(
        &self,
        transport: &mut T,
        auth: &Element,
        peer: IpAddr,
    ) -> Result<Option<String>, XmppError> {
        let outcome = self.sasl_exchange(transport, auth, peer).await?;
        let mechanism = auth
            .attr("mechanism")
            .and_then(Mechanism::parse)
            .map_or("unknown", Mechanism::name);
        match outcome {
            Ok((account, additional)) => {
                crate::telemetry::client_login("ok", mechanism);
                let mut success = Element::builder("success", SASL);
                if let Some(data) = additional {
                    success = success.append(sasl::encode(data.as_bytes()));
                }
                transport.write(&success.build())?;
                transport.flush().await?;
                tracing::info!(account = %account, transport = T::NAME, mechanism, "client authenticated");
                Ok(Some(account))
            }
            Err((failure, account)) => {
                let result = if failure == Failure::TemporaryAuthFailure {
                    "throttled"
                } else {
                    "failed"
                };
                crate::telemetry::client_login(result, mechanism);
                if failure == Failure::NotAuthorized {
                    tokio::time::sleep(Duration::from_millis(self.settings.auth_failure_delay_ms))
                        .await;
                }
                tracing::info!(account = ?account, %peer, condition = failure.as_str(), "client login failed");
                transport.write(&sasl_failure(failure))?;
                transport.flush().await?;
                Ok(None)
            }
        }
    }

    /// The exchange proper: the account and the success data, or the failure (with the
    /// account name when one was given).
    #[allow(clippy::type_complexity)]
    async fn sasl_exchange<T: Transport>(
        &self,
        transport: &mut T,
        auth: &Element,
        peer: IpAddr,
    ) -> Result<Result<(String, Option<String>), (Failure, Option<String>)>, XmppError> {
        let offered = self.mechanisms(transport);
        let mechanism = auth.attr("mechanism").and_then(Mechanism::parse);
        let Some(mechanism) = mechanism.filter(|m| offered.contains(m)) else {
            let failure = if auth.attr("mechanism") == Some("PLAIN") {
                Failure::EncryptionRequired
            } else {
                Failure::InvalidMechanism
            };
            return Ok(Err((failure, None)));
        };
        let initial = match sasl::decode(&auth.text()) {
            Ok(initial) => initial,
            Err(failure) => return Ok(Err((failure, None))),
        };
        let Some(hash) = mechanism.scram_hash() else {
            return Ok(self.plain(&initial, peer).await);
        };
        let binding_offered = offered.iter().any(|m| m.is_plus());
        let first = match sasl::parse_client_first(&initial, mechanism, binding_offered) {
            Ok(first) => first,
            Err(failure) => return Ok(Err((failure, None))),
        };
        let (account, user, attempt) = match self
            .admit(&first.username, first.authzid.as_deref(), peer)
            .await
        {
            Ok(admitted) => admitted,
            Err(failure) => return Ok(Err(failure)),
        };
        let (exchange, server_first) = ScramExchange::start(
            hash,
            first,
            transport.channel_binding(),
            user.as_ref().map(|u| u.verifiers.for_hash(hash)),
            &self.decoy_key,
            self.scram_iterations,
        );
        transport.write(
            &Element::builder("challenge", SASL)
                .append(sasl::encode(server_first.as_bytes()))
                .build(),
        )?;
        transport.flush().await?;
        let Some(response) = transport.read().await? else {
            return Err(XmppError::Closed);
        };
        if response.is("abort", SASL) {
            return Ok(Err((Failure::Aborted, Some(account))));
        }
        if !response.is("response", SASL) {
            return Ok(Err((Failure::MalformedRequest, Some(account))));
        }
        let outcome = sasl::decode(&response.text()).and_then(|m| exchange.finish(&m));
        Ok(match outcome {
            Ok(server_final) => Ok((account, Some(server_final))),
            Err(failure) => {
                if failure == Failure::NotAuthorized {
                    attempt.failed();
                }
                Err((failure, Some(account)))
            }
        })
    }

    /// PLAIN: the store's verifier, or `auth_via_component` for accounts the store does not
    /// know.
    async fn plain(
        &self,
        message: &[u8],
        peer: IpAddr,
    ) -> Result<(String, Option<String>), (Failure, Option<String>)> {
        let credentials = sasl::parse_plain(message).map_err(|f| (f, None))?;
        let (account, user, attempt) = self
            .admit(&credentials.username, credentials.authzid.as_deref(), peer)
            .await?;
        let (verifiers, known) = match (user, &self.settings.auth_via_component) {
            (Some(user), _) => (Arc::new(user.verifiers), true),
            (None, Some(component)) => {
                let answer = self
                    .ask_component(component, &account, &credentials.password, peer)
                    .await;
                if answer == Err(Failure::NotAuthorized) {
                    attempt.failed();
                }
                return answer
                    .map(|()| (account.clone(), None))
                    .map_err(|f| (f, Some(account)));
            }
            // The same PBKDF2 work as a real check, on a verifier nothing matches.
            (None, None) => (Arc::clone(&self.decoy_verifiers), false),
        };
        let password = credentials.password.clone();
        let matches = tokio::task::spawn_blocking(move || verifiers.verify_plain(&password))
            .await
            .unwrap_or(false);
        if matches && known {
            Ok((account, None))
        } else {
            attempt.failed();
            Err((Failure::NotAuthorized, Some(account)))
        }
    }

    /// Asks `component` whether `password` is good for `account`.
    async fn ask_component(
        &self,
        component: &str,
        account: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<(), Failure> {
        let id = format!("bh-auth-{}", hex::encode(rand::random::<[u8; 12]>()));
        let username = account.split('@').next().unwrap_or_default();
        let request = stanza::element(
            "iq",
            ns::CLIENT,
            &[
                ("type", "get"),
                ("id", &id),
                ("from", &self.domain),
                ("to", component),
            ],
        )
        .append(
            Element::builder("query", COMPONENT_AUTH)
                .append(
                    Element::builder("username", COMPONENT_AUTH)
                        .append(username)
                        .build(),
                )
                .append(
                    Element::builder("password", COMPONENT_AUTH)
                        .append(password)
                        .build(),
                )
                .append(
                    Element::builder("address", COMPONENT_AUTH)
                        .append(peer.to_string())
                        .build(),
                )
                .build(),
        )
        .build();
        let timeout = Duration::from_secs(self.settings.auth_via_component_timeout_secs);
        match self
            .router
            .request(request, component, timeout, |d| self.components.is_known(d))
            .await
        {
            Ok(answer) if answer.attr("type") == Some("result") => Ok(()),
            Ok(_) => Err(Failure::NotAuthorized),
            Err(RequestError::Timeout) | Err(RequestError::Undelivered(_)) => {
                tracing::warn!(component, "the authenticating component did not answer");
                Err(Failure::TemporaryAuthFailure)
            }
        }
    }

    /// Answers a bind request: `Some` when bound, `None` after an error reply.
    fn bind<T: Transport>(
        &self,
        transport: &mut T,
        bare: &str,
        request: &Element,
        bind: &Element,
    ) -> Result<Option<Box<Bound>>, XmppError> {
        let reply_error =
            |transport: &mut T, condition: &str| -> Result<Option<Box<Bound>>, XmppError> {
                if let Some(error) = stanza::error_reply(request, condition) {
                    transport.write(&error)?;
                }
                Ok(None)
            };
        if request.attr("type") != Some("set") {
            return reply_error(transport, "bad-request");
        }
        let resource = bind
            .get_child("resource", BIND)
            .map(|r| r.text().trim().to_owned())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| format!("bh-{}", hex::encode(rand::random::<[u8; 6]>())));
        let Ok(full) = jid::FullJid::new(&format!("{bare}/{resource}")) else {
            return reply_error(transport, "bad-request");
        };
        let resource = full.resource().as_str().to_owned();
        let attachment =
            match self
                .router
                .attach_client(bare, &resource, self.settings.resource_conflict)
            {
                Ok(attachment) => attachment,
                Err(_) => return reply_error(transport, "conflict"),
            };
        let full = format!("{bare}/{resource}");
        transport.write(
            &stanza::iq_result(request)
                .append(
                    Element::builder("bind", BIND)
                        .append(Element::builder("jid", BIND).append(full.as_str()).build())
                        .build(),
                )
                .build(),
        )?;
        Ok(Some(Box::new(Bound {
            presence: SessionPresence {
                bare: bare.to_owned(),
                full,
                id: attachment.id,
                directed: Default::default(),
            },
            queue: attachment.queue,
            sm: None,
            resumed: false,
        })))
    }

    /// The bound session, from login notification to the end.
    async fn session<T: Transport>(
        self: &Arc<Self>,
        transport: &mut T,
        mut bound: Box<Bound>,
        shutdown: Shutdown,
    ) {
        crate::telemetry::client_sessions(T::NAME, 1.0);
        let span = tracing::info_span!("client", jid = %bound.presence.full, transport = T::NAME);
        async {
            if bound.resumed {
                tracing::info!("client session resumed");
            } else {
                tracing::info!("client session bound");
                self.notify_login(&bound.presence.full, None);
            }
            let end = match transport.flush().await {
                Ok(()) => self.run(transport, &mut bound, &shutdown).await,
                Err(e) => Err(e),
            };
            // A broken connection (not a closed stream) parks a resumable session.
            let connection_lost = matches!(
                end,
                Err(XmppError::Io(_) | XmppError::Closed)
                    | Ok(Some(StreamCondition::ConnectionTimeout))
            );
            let condition = match end {
                Ok(condition) => condition,
                Err(error) => {
                    tracing::info!(%error, "client session failed");
                    error.condition()
                }
            };
            let resumable = bound.sm.as_ref().is_some_and(|sm| sm.id.is_some());
            if connection_lost && resumable {
                tracing::info!("connection lost: the session waits to be resumed");
                self.park(bound, shutdown.clone());
            } else {
                Box::pin(self.end_session(&mut bound)).await;
                tracing::info!(condition = ?condition, "client session ended");
            }
            Box::pin(transport.close(condition)).await;
        }
        .instrument(span)
        .await;
        crate::telemetry::client_sessions(T::NAME, -1.0);
    }

    /// The end of a session: unavailable presence, unbinding, the `login_notify`
    /// components told, and stanzas it never acknowledged (or never got) bounced.
    async fn end_session(&self, bound: &mut Bound) {
        self.rosters.ended(&mut bound.presence).await;
        self.router
            .detach_client(&bound.presence.bare, bound.presence.id);
        self.notify_login(&bound.presence.full, Some("unavailable"));
        let mut undelivered = bound
            .sm
            .as_mut()
            .map(StreamManagement::take_unacked)
            .unwrap_or_default();
        while let Ok(Outbound::Stanza(stanza)) = bound.queue.try_recv() {
            undelivered.push(*stanza);
        }
        for stanza in undelivered {
            if let Some(bounce) = stanza::error_reply(&stanza, "recipient-unavailable") {
                self.route(bounce);
            }
        }
    }

    /// Parks a resumable session (XEP-0198) until it is resumed, it times out, too much
    /// queues up for it, it is replaced, or the server stops.
    fn park(self: &Arc<Self>, mut bound: Box<Bound>, shutdown: Shutdown) {
        let Some(id) = bound.sm.as_ref().and_then(|sm| sm.id.clone()) else {
            return;
        };
        let (takeover, mut requests) = oneshot::channel::<oneshot::Sender<Box<Bound>>>();
        self.parked().insert(
            id.clone(),
            Parked {
                account: bound.presence.bare.clone(),
                takeover,
            },
        );
        let service = Arc::clone(self);
        let stop = shutdown.clone();
        shutdown.spawn(async move {
            let deadline = tokio::time::Instant::now()
                + Duration::from_secs(service.settings.sm_resume_timeout_secs);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = stop.cancelled() => break,
                    request = &mut requests => {
                        if let Ok(reply) = request {
                            match reply.send(bound) {
                                Ok(()) => return,
                                Err(returned) => bound = returned,
                            }
                        }
                        break;
                    }
                    item = bound.queue.recv() => match (item, bound.sm.as_mut()) {
                        (Some(Outbound::Stanza(stanza)), Some(sm)) => {
                            if sm.sent(*stanza) > service.settings.sm_max_unacked {
                                break;
                            }
                        }
                        _ => break,
                    },
                }
            }
            service.parked().remove(&id);
            tracing::info!(jid = %bound.presence.full, "a parked session was not resumed");
            service.end_session(&mut bound).await;
        });
    }

    fn parked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `<resume previd h/>` after authentication: `Some` with the parked session, its
    /// unacknowledged stanzas written again; `None` after `<failed/>` (the client may bind).
    async fn resume<T: Transport>(
        &self,
        transport: &mut T,
        account: &str,
        request: &Element,
    ) -> Result<Option<Box<Bound>>, XmppError> {
        let previd = request.attr("previd").unwrap_or_default();
        // A malformed request leaves the parked session as it was.
        let Some(handled) = request.attr("h").and_then(|h| h.parse::<u32>().ok()) else {
            transport.write(&sm::failed("bad-request"))?;
            transport.flush().await?;
            return Ok(None);
        };
        let parked = {
            let mut parked = self.parked();
            match parked.remove(previd) {
                Some(p) if p.account == account => Some(p),
                Some(p) => {
                    parked.insert(previd.to_owned(), p);
                    None
                }
                None => None,
            }
        };
        let taken = match parked {
            Some(parked) => {
                let (reply, taken) = oneshot::channel();
                match parked.takeover.send(reply) {
                    Ok(()) => taken.await.ok(),
                    Err(_) => None,
                }
            }
            None => None,
        };
        let Some(mut resumed) = taken else {
            transport.write(&sm::failed("item-not-found"))?;
            transport.flush().await?;
            return Ok(None);
        };
        let Some(state) = resumed.sm.as_mut() else {
            // Only sessions with stream management are parked; ended like any other.
            self.end_session(&mut resumed).await;
            transport.write(&sm::failed("item-not-found"))?;
            transport.flush().await?;
            return Ok(None);
        };
        if state.ack(handled).is_err() {
            self.end_session(&mut resumed).await;
            return Err(XmppError::stream(
                StreamCondition::UndefinedCondition,
                "the resumption acknowledges more than was sent",
            ));
        }
        let id = state.id.clone().unwrap_or_default();
        transport.write(&StreamManagement::nonza(
            "resumed",
            &[("previd", &id), ("h", &state.inbound.to_string())],
        ))?;
        for stanza in state.take_unacked() {
            send(transport, &mut resumed.sm, &stanza)?;
        }
        resumed.resumed = true;
        Ok(Some(resumed))
    }

    /// Tells the `login_notify` components that `full` logged in (or out).
    fn notify_login(&self, full: &str, kind: Option<&str>) {
        for component in &self.settings.login_notify {
            let mut attrs = vec![("from", full), ("to", component.as_str())];
            if let Some(kind) = kind {
                attrs.push(("type", kind));
            }
            self.route(stanza::element("presence", ns::CLIENT, &attrs).build());
        }
    }

    /// The session loop: see the module docs.
    async fn run<T: Transport>(
        &self,
        transport: &mut T,
        bound: &mut Bound,
        shutdown: &Shutdown,
    ) -> Result<Option<StreamCondition>, XmppError> {
        use tokio::time::Instant;
        let interval = Duration::from_secs(self.settings.client_ping_interval_secs);
        let patience = Duration::from_secs(self.settings.client_ping_timeout_secs);
        let rate = f64::from(self.settings.client_stanzas_per_second);
        let burst = f64::from(self.settings.client_stanza_burst);
        let mut tokens = burst;
        let mut refilled = Instant::now();
        let mut keepalive = KeepAlive::new(interval, patience);
        loop {
            let now = Instant::now();
            tokens = (tokens + now.duration_since(refilled).as_secs_f64() * rate).min(burst);
            refilled = now;
            // One timer for both the keep-alive and, while throttled, the token refill.
            let mut wake = keepalive.wake();
            if tokens < 1.0 {
                wake = wake.min(now + Duration::from_secs_f64((1.0 - tokens) / rate));
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Some(StreamCondition::SystemShutdown)),
                _ = tokio::time::sleep_until(wake) => {
                    if Instant::now() < keepalive.wake() {
                        continue;
                    }
                    match keepalive.due() {
                        Due::TimedOut => return Ok(Some(StreamCondition::ConnectionTimeout)),
                        Due::Ping(sequence) => {
                            let ping = keepalive::ping(ns::CLIENT, &self.domain, &bound.presence.full, sequence);
                            send(transport, &mut bound.sm, &ping)?;
                            transport.flush().await?;
                        }
                    }
                }
                inbound = transport.read(), if tokens >= 1.0 => {
                    let Some(element) = inbound? else { return Ok(None) };
                    tokens -= 1.0;
                    keepalive.heard();
                    // Boxed: roster work is transient and must not size every idle session.
                    Box::pin(self.inbound(transport, bound, element)).await?;
                    if let Some(condition) = self.request_ack(transport, &mut bound.sm)? {
                        return Ok(Some(condition));
                    }
                    transport.flush().await?;
                }
                outbound = bound.queue.recv() => {
                    let (stanzas, close) = take_batch(outbound, &mut bound.queue);
                    for stanza in &stanzas {
                        send(transport, &mut bound.sm, stanza)?;
                    }
                    if let Some(condition) = self.request_ack(transport, &mut bound.sm)? {
                        return Ok(Some(condition));
                    }
                    transport.flush().await?;
                    if close.is_some() {
                        return Ok(close);
                    }
                }
            }
        }
    }

    /// One element from the client in session: XEP-0198 nonzas, or a stanza (counted for
    /// XEP-0198, its direct answer written).
    async fn inbound<T: Transport>(
        &self,
        transport: &mut T,
        bound: &mut Bound,
        element: Element,
    ) -> Result<(), XmppError> {
        if element.ns() == SM {
            return self.stream_management(transport, bound, &element);
        }
        let reply = self
            .stanza_from_client(&mut bound.presence, element)
            .await?;
        if let Some(sm) = bound.sm.as_mut() {
            sm.received();
        }
        if let Some(reply) = reply {
            send(transport, &mut bound.sm, &reply)?;
        }
        Ok(())
    }

    /// `<enable/>`, `<r/>` and `<a/>` (XEP-0198).
    fn stream_management<T: Transport>(
        &self,
        transport: &mut T,
        bound: &mut Bound,
        element: &Element,
    ) -> Result<(), XmppError> {
        match (element.name(), bound.sm.as_mut()) {
            ("enable", None) => {
                let resumable = self.settings.sm_resume_timeout_secs > 0
                    && matches!(element.attr("resume"), Some("true" | "1"));
                let state = StreamManagement::new(resumable);
                let max = self.settings.sm_resume_timeout_secs.to_string();
                let enabled = match &state.id {
                    Some(id) => StreamManagement::nonza(
                        "enabled",
                        &[("id", id), ("resume", "true"), ("max", &max)],
                    ),
                    None => StreamManagement::nonza("enabled", &[]),
                };
                transport.write(&enabled)?;
                bound.sm = Some(state);
            }
            ("enable", Some(_)) | ("r", None) => {
                transport.write(&sm::failed("unexpected-request"))?
            }
            ("r", Some(state)) => transport.write(&state.answer())?,
            ("a", Some(state)) => {
                let handled = element.attr("h").and_then(|h| h.parse::<u32>().ok());
                match handled.map(|h| state.ack(h)) {
                    Some(Ok(())) => {}
                    _ => {
                        return Err(XmppError::stream(
                            StreamCondition::UndefinedCondition,
                            format!(
                                "<a h={:?}/> does not match what was sent",
                                element.attr("h")
                            ),
                        ))
                    }
                }
            }
            (name, _) => {
                return Err(XmppError::stream(
                    StreamCondition::UnsupportedStanzaType,
                    format!("<{name}/> in {SM}"),
                ))
            }
        }
        Ok(())
    }

    /// One stanza from the client; returns the answer to write back directly, if any.
    async fn stanza_from_client(
        &self,
        session: &mut SessionPresence,
        mut element: Element,
    ) -> Result<Option<Element>, XmppError> {
        let Some(kind) = stanza::kind(&element) else {
            return Err(XmppError::stream(
                StreamCondition::UnsupportedStanzaType,
                format!("<{}> in {}", element.name(), element.ns()),
            ));
        };
        if element.ns() != ns::CLIENT {
            return Err(XmppError::stream(
                StreamCondition::InvalidNamespace,
                format!("a stanza in {}", element.ns()),
            ));
        }
        if let Some(from) = element.attr("from") {
            let own = from == session.full || from.eq_ignore_ascii_case(&session.bare);
            if !own {
                return Err(XmppError::stream(
                    StreamCondition::InvalidFrom,
                    format!("from={from:?} is not {}", session.full),
                ));
            }
        }
        stanza::set_address(&mut element, "from", &session.full);
        crate::telemetry::client_stanza(kind.as_str());
        let to_bare = element.attr("to").map(bare_of);
        match kind {
            stanza::Kind::Iq => {
                let to_account = match &to_bare {
                    None => true,
                    Some(to) => {
                        to.as_deref() == Some(session.bare.as_str())
                            && !element.attr("to").unwrap_or_default().contains('/')
                    }
                };
                if to_account {
                    return Ok(self.own_iq(session, &element).await);
                }
                self.deliver(element);
            }
            stanza::Kind::Message => self.deliver(element),
            stanza::Kind::Presence => {
                let Some(to) = to_bare else {
                    self.rosters.broadcast(session, element).await;
                    return Ok(None);
                };
                let Some(to) = to else {
                    return Ok(stanza::error_reply(&element, "jid-malformed"));
                };
                match element.attr("type") {
                    Some(kind @ ("subscribe" | "subscribed" | "unsubscribe" | "unsubscribed")) => {
                        let kind = kind.to_owned();
                        if to != session.bare {
                            self.rosters.subscription(&session.bare, &kind, &to).await;
                        }
                    }
                    Some("probe") => {}
                    _ => {
                        let target = element.attr("to").unwrap_or_default().to_owned();
                        self.rosters.directed(session, element, &target);
                    }
                }
            }
        }
        Ok(None)
    }

    /// XEP-0198: asks for an acknowledgement when stanzas wait for one and no request is
    /// out; a client that leaves more than `sm_max_unacked` unacknowledged is closed.
    fn request_ack<T: Transport>(
        &self,
        transport: &mut T,
        sm: &mut Option<StreamManagement>,
    ) -> Result<Option<StreamCondition>, XmppError> {
        let Some(state) = sm.as_mut() else {
            return Ok(None);
        };
        if state.unacked() > self.settings.sm_max_unacked {
            tracing::info!(unacked = state.unacked(), "the client does not acknowledge");
            return Ok(Some(StreamCondition::ResourceConstraint));
        }
        if state.unacked() > 0 && !state.requested {
            transport.write(&StreamManagement::nonza("r", &[]))?;
            state.requested = true;
        }
        Ok(None)
    }

    /// Routes a stanza; what the router leaves to the server is answered.
    fn deliver(&self, element: Element) {
        services::deliver(&self.router, element, |d| self.components.is_known(d));
    }

    /// An iq to the user's own account (or with no `to`).
    async fn own_iq(&self, session: &SessionPresence, request: &Element) -> Option<Element> {
        if matches!(request.attr("type"), Some("result" | "error")) {
            return None;
        }
        let payload = request.children().next();
        if let Some(query) = payload.filter(|p| p.is("query", ROSTER)) {
            return self.rosters.iq(session, request, query).await;
        }
        if payload.is_some_and(|p| p.is("session", SESSION)) {
            return Some(stanza::iq_result(request).build());
        }
        // Ping, disco and the rest are answered like any iq to the server or the account.
        let mut asked = request.clone();
        if asked.attr("to").is_none() {
            stanza::set_address(&mut asked, "to", &session.bare);
        }
        let mut answer = services::answer(&self.router, &asked)?;
        stanza::set_address(&mut answer, "to", &session.full);
        Some(answer)
    }
}

/// RFC 9266 `tls-exporter` channel binding data of a TLS 1.3 connection (`None` before 1.3:
/// `tls-exporter` needs the extended master secret there, and -PLUS is then not offered).
fn tls_exporter(connection: &rustls::ServerConnection) -> Option<Vec<u8>> {
    if connection.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return None;
    }
    connection
        .export_keying_material(vec![0u8; 32], sasl::EXPORTER_LABEL, None)
        .ok()
}
