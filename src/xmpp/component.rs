//! XEP-0114 component sessions: how a call bridge connects.
//!
//! ```text
//! bridge                                        Bridgehead
//!   ── TCP + TLS (direct TLS on 5223) ───────────▶
//!   <stream:stream xmlns='jabber:component:accept' to='bridge1.example.com'>
//!                                               ◀── <stream:stream from='bridge1.example.com' id='(128 random bits)'>
//!   <handshake>hex(SHA-1(id + secret))</handshake>
//!                                               ◀── <handshake/>      (or <not-authorized/> and close)
//!   stanzas from *@bridge1.example.com  ◀──▶  stanzas to bridge1.example.com and JIDs at it
//! ```
//!
//! Everything up to the handshake answer runs under one deadline (`handshake_timeout_secs`).
//! `to` must name a component from the config file or one registered with `bridgehead component
//! add` (`host-unknown` otherwise).
//! The TLS handshake runs under `[limits] tls_handshake_timeout_secs`, and everything before
//! the handshake answer counts against the listener's pre-authentication budget (see
//! `net::listener`): a flood of idle sockets cannot keep a bridge out. The handshake is
//! compared in constant time; each check is reserved in the shared login limiter
//! (`credentials::throttle`) before the secret is compared, with `failed_handshakes_per_minute`
//! for one name from one address and for one address, and ten times that for one name from
//! every address; over budget the stream ends with `not-authorized` before any check.
//! After the handshake the connection is attached to the router under the component's
//! `on_conflict` policy and the session loop runs: stanzas in (each must come `from` the
//! component's domain, else `invalid-from`), queued stanzas out (written in batches, one
//! flush per batch), and shutdown (`system-shutdown`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use minidom::Element;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;
use tracing::Instrument;

use super::error::{StreamCondition, XmppError};
use super::keepalive::{self, Due, KeepAlive};
use super::router::{
    take_batch, AttachError, ComponentPolicy, ConnectionInfo, Delivery, Outbound, Router,
};
use super::stream::{for_stream, ElementLimits, StreamReader, StreamWriter};
use super::{ns, services, stanza};
use crate::config::{ComponentConfig, Config, LimitsConfig, Live, XmppConfig};
use crate::credentials::{LoginBudgets, LoginLimiter};
use crate::net::listener::Admission;
use crate::shutdown::Shutdown;
use crate::telephony::Telephony;

/// A component's credentials and policy.
#[derive(Clone)]
struct ComponentEntry {
    secret: String,
    policy: ComponentPolicy,
}

/// Components from the config file and those registered in the telephony model. Config
/// wins for a name in both.
pub struct ComponentDirectory {
    configured: RwLock<HashMap<String, ComponentEntry>>,
    telephony: Telephony,
    known: RwLock<HashSet<String>>,
}

impl std::fmt::Debug for ComponentDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentDirectory")
            .field("known", &self.known)
            .finish_non_exhaustive()
    }
}

impl ComponentDirectory {
    /// The directory over validated config components and the registered ones.
    pub async fn load(
        configured: &[ComponentConfig],
        telephony: Telephony,
    ) -> Result<Self, crate::telephony::TelephonyError> {
        let directory = ComponentDirectory {
            configured: RwLock::new(HashMap::new()),
            telephony,
            known: RwLock::new(HashSet::new()),
        };
        directory.reload(configured).await?;
        Ok(directory)
    }

    /// Puts the config file's components in force (start-up and reload): new handshakes
    /// check the new secrets and policies. Returns the names no longer configured nor
    /// registered.
    pub async fn reload(
        &self,
        configured: &[ComponentConfig],
    ) -> Result<Vec<String>, crate::telephony::TelephonyError> {
        let configured: HashMap<String, ComponentEntry> = configured
            .iter()
            .map(|c| {
                (
                    c.name.to_ascii_lowercase(),
                    ComponentEntry {
                        secret: c
                            .secret
                            .as_ref()
                            .map(|s| s.expose().to_owned())
                            .unwrap_or_default(),
                        policy: ComponentPolicy {
                            max_connections: c.max_connections,
                            on_conflict: c.on_conflict,
                            hold_secs: c.hold_secs,
                        },
                    },
                )
            })
            .collect();
        let mut known: HashSet<String> = configured.keys().cloned().collect();
        for stored in self.telephony.registered_components().await? {
            known.insert(stored.name.to_ascii_lowercase());
        }
        *self.configured.write().unwrap_or_else(|e| e.into_inner()) = configured;
        let mut old = self.known.write().unwrap_or_else(|e| e.into_inner());
        let mut removed: Vec<String> = old.difference(&known).cloned().collect();
        removed.sort();
        *old = known;
        Ok(removed)
    }

    async fn lookup(&self, name: &str) -> Option<ComponentEntry> {
        let name = name.to_ascii_lowercase();
        let configured = self
            .configured
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name)
            .cloned();
        if configured.is_some() {
            return configured;
        }
        // Asked each time, so `bridgehead component add` works without a restart.
        let stored = match self.telephony.registered_component(&name).await {
            Ok(found) => found?,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the registered components");
                return None;
            }
        };
        if let Ok(mut known) = self.known.write() {
            known.insert(name);
        }
        Some(ComponentEntry {
            secret: stored.secret,
            policy: ComponentPolicy {
                max_connections: stored.max_connections,
                on_conflict: stored.on_conflict,
                hold_secs: stored.hold_secs,
            },
        })
    }

    /// Every component name (configured or registered), sorted.
    pub fn known(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .known
            .read()
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Whether `domain` is a component (connected or not).
    pub fn is_known(&self, domain: &str) -> bool {
        self.known
            .read()
            .map(|k| k.contains(&domain.to_ascii_lowercase()))
            .unwrap_or(false)
    }
}

impl super::router::KnownComponents for ComponentDirectory {
    fn is_known(&self, domain: &str) -> bool {
        ComponentDirectory::is_known(self, domain)
    }
}

/// Everything a component connection needs, shared by all of them.
pub struct ComponentService {
    settings: XmppConfig,
    /// `[limits]`, live: each connection takes those in force when it starts.
    limits: Live<LimitsConfig>,
    tls: Option<Live<rustls::ServerConfig>>,
    router: Router,
    directory: Arc<ComponentDirectory>,
    failures: LoginLimiter,
    rayo: Arc<super::rayo::RayoClient>,
}

impl std::fmt::Debug for ComponentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentService").finish_non_exhaustive()
    }
}

impl ComponentService {
    /// A service using `tls` (None = plain TCP) under `config`'s `[xmpp]` and the live
    /// `limits`.
    pub fn new(
        config: &Config,
        limits: Live<LimitsConfig>,
        tls: Option<Live<rustls::ServerConfig>>,
        router: Router,
        directory: Arc<ComponentDirectory>,
        rayo: Arc<super::rayo::RayoClient>,
    ) -> Self {
        let per_address = config.xmpp.failed_handshakes_per_minute;
        ComponentService {
            rayo,
            settings: config.xmpp.clone(),
            limits,
            tls,
            router,
            directory,
            failures: LoginLimiter::new(LoginBudgets {
                per_account_per_address: per_address,
                per_address,
                per_account: per_address.saturating_mul(10),
            }),
        }
    }

    /// Runs one connection to its end.
    pub async fn handle(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: std::net::SocketAddr,
        admission: Admission,
        shutdown: Shutdown,
    ) {
        // Each phase in a future of its own: an idle connection holds only its session.
        let limits = self.limits.get();
        match &self.tls {
            Some(tls) => {
                let handshake =
                    limits.tls_handshake_within(self.settings.handshake_timeout_secs.get());
                let accept = admission.phase(
                    handshake,
                    tokio_rustls::TlsAcceptor::from(tls.get()).accept(tcp),
                );
                match Box::pin(accept).await {
                    Ok(Ok(tls)) => Box::pin(self.session(tls, peer, admission, shutdown)).await,
                    Ok(Err(e)) => tracing::info!(error = %e, "TLS handshake failed"),
                    Err(end) => tracing::info!(%end, "TLS handshake did not finish"),
                }
            }
            None => Box::pin(self.session(tcp, peer, admission, shutdown)).await,
        }
    }

    async fn session<S>(
        &self,
        io: S,
        peer: std::net::SocketAddr,
        admission: Admission,
        shutdown: Shutdown,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let (read_half, write_half) = tokio::io::split(io);
        let limits = ElementLimits::new(self.settings.max_stanza_bytes.get(), &self.limits.get());
        let mut reader = StreamReader::new(BufReader::new(read_half), limits);
        let mut writer = StreamWriter::new(write_half, ns::COMPONENT)
            .with_write_timeout(Duration::from_secs(self.settings.write_timeout_secs.get()));
        let deadline = Duration::from_secs(self.settings.handshake_timeout_secs.get());
        let mut header_sent = false;
        let started = std::time::Instant::now();
        let opened = admission
            .phase(
                deadline,
                self.open(&mut reader, &mut writer, &mut header_sent, peer, &admission),
            )
            .await
            .unwrap_or_else(|end| {
                Err(XmppError::unfinished(
                    end,
                    self.settings.handshake_timeout_secs.get(),
                ))
            });
        let (name, mut attachment, hold_secs, info) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                crate::telemetry::handshake(false, started.elapsed());
                tracing::info!(%error, "component handshake refused");
                close(&mut writer, header_sent, error.condition()).await;
                return;
            }
        };
        crate::telemetry::handshake(true, started.elapsed());
        crate::telemetry::component_connections(1.0);
        let span = tracing::info_span!("component", name = %name);
        let condition = async {
            tracing::info!("component connected");
            let end = self
                .run(
                    &name,
                    &mut reader,
                    &mut writer,
                    &mut attachment.queue,
                    &info,
                    &shutdown,
                )
                .await;
            self.router.detach(&name, attachment.id, hold_secs);
            if self.router.connection_count(&name) == 0 {
                self.rayo.bridge_gone(&name);
            }
            crate::telemetry::component_connections(-1.0);
            match end {
                Ok(condition) => {
                    tracing::info!(condition = ?condition, "component disconnected");
                    condition
                }
                Err(error) => {
                    tracing::info!(%error, "component disconnected");
                    error.condition()
                }
            }
        }
        .instrument(span)
        .await;
        close(&mut writer, true, condition).await;
    }

    /// Header, stream id, handshake, attach. Returns the component name and its queue.
    async fn open<R, W>(
        &self,
        reader: &mut StreamReader<R>,
        writer: &mut StreamWriter<W>,
        header_sent: &mut bool,
        peer: std::net::SocketAddr,
        admission: &Admission,
    ) -> Result<(String, super::router::Attachment, u64, Arc<ConnectionInfo>), XmppError>
    where
        R: tokio::io::AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let header = reader.read_header().await?;
        let name = header.to.clone().unwrap_or_default().to_ascii_lowercase();
        let stream_id = hex::encode(rand::random::<[u8; 16]>());
        // XEP-0114 streams carry no features, but tokio-xmpp's component client refuses a
        // header without `version`, so it is sent.
        let from = if name.is_empty() {
            self.router.domain()
        } else {
            &name
        };
        writer.header(from, &stream_id, Some("1.0"))?;
        *header_sent = true;
        if header.default_ns.as_deref() != Some(ns::COMPONENT) {
            return Err(XmppError::stream(
                StreamCondition::InvalidNamespace,
                format!("stream namespace {:?}", header.default_ns),
            ));
        }
        let Some(entry) = self.directory.lookup(&name).await else {
            return Err(XmppError::stream(
                StreamCondition::HostUnknown,
                format!("no component named {name:?}"),
            ));
        };
        writer.flush().await?;
        let Some(handshake) = reader.read_element().await? else {
            return Err(XmppError::Closed);
        };
        if !handshake.is("handshake", ns::COMPONENT) {
            return Err(XmppError::stream(
                StreamCondition::NotAuthorized,
                format!("<{}> before the handshake", handshake.name()),
            ));
        }
        let Ok(attempt) = self.failures.reserve(Some(&name), peer.ip()) else {
            crate::telemetry::throttled_attempt("component");
            return Err(XmppError::stream(
                StreamCondition::NotAuthorized,
                format!("too many failed handshakes for {name} or from {peer}"),
            ));
        };
        let expected = hex::encode(Sha1::digest(
            format!("{stream_id}{}", entry.secret).as_bytes(),
        ));
        let offered = handshake.text().trim().to_ascii_lowercase();
        if !bool::from(offered.as_bytes().ct_eq(expected.as_bytes())) {
            attempt.failed();
            return Err(XmppError::stream(
                StreamCondition::NotAuthorized,
                format!("wrong secret for {name}"),
            ));
        }
        drop(attempt);
        if admission.authenticated().is_err() {
            return Err(XmppError::stream(
                StreamCondition::ResourceConstraint,
                "the component listener is at max_component_connections",
            ));
        }
        let info = ConnectionInfo::new(peer, "component");
        let attachment = self
            .router
            .attach_component(&name, &entry.policy, Arc::clone(&info))
            .await
            .map_err(|e| {
                let condition = match e {
                    AttachError::Conflict { .. } => StreamCondition::Conflict,
                    AttachError::Unavailable(_) => StreamCondition::InternalServerError,
                };
                XmppError::stream(condition, e.to_string())
            })?;
        writer.element(&Element::bare("handshake", ns::COMPONENT))?;
        writer.flush().await?;
        Ok((name, attachment, entry.policy.hold_secs, info))
    }

    /// The session loop. Returns the stream error to close with, if any.
    async fn run<R, W>(
        &self,
        name: &str,
        reader: &mut StreamReader<R>,
        writer: &mut StreamWriter<W>,
        queue: &mut tokio::sync::mpsc::Receiver<Outbound>,
        info: &ConnectionInfo,
        shutdown: &Shutdown,
    ) -> Result<Option<StreamCondition>, XmppError>
    where
        R: tokio::io::AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut keepalive = KeepAlive::new(
            Duration::from_secs(self.settings.component_ping_interval_secs.get()),
            Duration::from_secs(self.settings.component_ping_timeout_secs.get()),
        );
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Some(StreamCondition::SystemShutdown)),
                _ = tokio::time::sleep_until(keepalive.wake()) => match keepalive.due() {
                    Due::TimedOut => return Ok(Some(StreamCondition::ConnectionTimeout)),
                    Due::Ping(sequence) => {
                        writer.element(&keepalive::ping(ns::COMPONENT, self.router.domain(), name, sequence))?;
                        writer.flush().await?;
                    }
                },
                inbound = reader.read_element() => {
                    let Some(element) = inbound? else { return Ok(None) };
                    keepalive.heard();
                    info.received(1);
                    self.inbound(name, element)?;
                }
                outbound = queue.recv() => {
                    let (stanzas, close) = take_batch(outbound, queue);
                    for stanza in &stanzas {
                        writer.element(&for_stream(stanza, ns::COMPONENT))?;
                    }
                    writer.flush().await?;
                    info.sent(stanzas.len() as u64);
                    if close.is_some() {
                        return Ok(close);
                    }
                }
            }
        }
    }

    fn inbound(&self, name: &str, element: Element) -> Result<(), XmppError> {
        if stanza::kind(&element).is_none() {
            return Err(XmppError::stream(
                StreamCondition::UnsupportedStanzaType,
                format!("<{}> in {}", element.name(), element.ns()),
            ));
        }
        let from_ok = element
            .attr("from")
            .and_then(|from| jid::Jid::new(from).ok())
            .is_some_and(|jid| jid.domain().as_str().eq_ignore_ascii_case(name));
        if !from_ok {
            return Err(XmppError::stream(
                StreamCondition::InvalidFrom,
                format!("from={:?} is not at {name}", element.attr("from")),
            ));
        }
        // Rayo call events to the server are the call model's, not routed.
        if self.rayo.event(&element) {
            return Ok(());
        }
        match services::deliver(&self.router, element) {
            Delivery::Bounced(condition) => tracing::debug!(%condition, "stanza bounced"),
            Delivery::Held => tracing::debug!("stanza held for a component that is away"),
            Delivery::Delivered | Delivery::Dropped | Delivery::ToServer(_) => {}
        }
        Ok(())
    }
}

/// Ends the stream: header first if it was never sent, then the stream error, the footer,
/// and TLS close_notify, each bounded in time.
pub(crate) async fn close<W: AsyncWrite + Unpin>(
    writer: &mut StreamWriter<W>,
    header_sent: bool,
    condition: Option<StreamCondition>,
) {
    let result = tokio::time::timeout(Duration::from_secs(5), async {
        if !header_sent {
            writer.header(
                "error",
                &hex::encode(rand::random::<[u8; 8]>()),
                Some("1.0"),
            )?;
        }
        if let Some(condition) = condition {
            writer.error(condition, None)?;
        }
        writer.footer()?;
        writer.flush().await?;
        writer.shutdown().await
    })
    .await;
    if let Ok(Err(e)) = result {
        tracing::debug!(error = %e, "closing the stream failed");
    }
}
