//! Wiring: [`Server::bind`] turns a validated [`Config`] into bound listeners, and
//! [`Bound::run`] serves them until shutdown.
//!
//! `bind` does everything that can fail before the first byte is served: it creates the
//! data directory, generates the development PKI when no certificate is configured, checks
//! the server certificate (refusing to start with the exact reason), opens the store,
//! creates demo data when asked, and binds every listener (port 0 picks a free port, which
//! tests read back from [`Bound::local_addrs`]).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Live;
use crate::config::{Config, ConfigError};
use crate::embedded::{self, DemoDataError, DevPki};
use crate::http::{HttpsFront, Routes};
use crate::net::listener::Listener;
use crate::pki::PkiError;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};
use crate::telephony::{EventBus, Telephony};
use crate::tls::{IdentityFiles, IdentityRequirements, TlsError};
use crate::xmpp::client::ClientService;
use crate::xmpp::component::{ComponentDirectory, ComponentService};
use crate::xmpp::router::Router;
use crate::xsi::events::hub::Hub;

/// Subscription and set changes waiting to reach the other nodes of a cluster.
const CLUSTER_OUTBOX: usize = 16_384;

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory cannot be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The development PKI cannot be generated.
    #[error("cannot create the development PKI: {0}")]
    DevPki(#[source] PkiError),
    /// The server certificate is not usable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The cluster's messaging cannot be set up.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What the model holds cannot be read at start-up (components, subscriptions).
    #[error("cannot load the telephony model: {0}")]
    Telephony(#[from] crate::telephony::TelephonyError),
    /// Demo data cannot be created.
    #[error("cannot create the demo data: {0}")]
    DemoData(#[from] DemoDataError),
    /// A listener cannot bind.
    #[error("cannot bind the {listener} listener to {addr}: {source}{hint}")]
    Bind {
        /// Which listener.
        listener: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O error (in the message, so not also a source).
        source: std::io::Error,
        /// What to change, when the error says.
        hint: String,
    },
}

impl ServerError {
    /// A bind failure of `listener`, whose addresses are the configuration key `key`, with
    /// what to change for the common causes.
    pub fn bind(
        listener: &'static str,
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    ) -> Self {
        let hint = match source.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                " (another process listens on port {}: stop it, or set {key} to a free \
                 address)",
                addr.port()
            ),
            std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
                " (ports below 1024 need CAP_NET_BIND_SERVICE: grant it, or set {key} to a \
                 port above 1023)"
            ),
            std::io::ErrorKind::AddrNotAvailable => {
                format!(" (no interface of this host has that address: check {key})")
            }
            _ => String::new(),
        };
        ServerError::Bind {
            listener,
            addr,
            source,
            hint,
        }
    }
}

/// The addresses the listeners are bound to.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalAddrs {
    /// The admin listener, when enabled.
    pub admin: Option<SocketAddr>,
    /// The XEP-0114 component listener, when enabled.
    pub component: Option<SocketAddr>,
    /// The c2s listener for XMPP clients, when enabled.
    pub client: Option<SocketAddr>,
    /// The HTTPS front (XSI), when enabled.
    pub https: Option<SocketAddr>,
    /// The CTI listener (XSI over mutual TLS), when enabled.
    pub cti: Option<SocketAddr>,
}

impl LocalAddrs {
    /// The listeners as the admin API lists them: each configured address, with the
    /// bound port where the configuration said 0.
    fn views(&self, config: &Config) -> Vec<crate::admin::ListenerView> {
        [
            ("admin", self.admin, &config.admin.listen),
            ("component", self.component, &config.xmpp.component_listen),
            ("c2s", self.client, &config.xmpp.client_listen),
            ("https", self.https, &config.http.listen),
            ("cti", self.cti, &config.cti.listen),
        ]
        .into_iter()
        .filter_map(|(name, bound, listen)| {
            let bound = bound?;
            let addrs = listen
                .addrs()
                .iter()
                .map(|a| match a.port() {
                    0 => std::net::SocketAddr::new(a.ip(), bound.port()).to_string(),
                    _ => a.to_string(),
                })
                .collect();
            Some(crate::admin::ListenerView { name, addrs })
        })
        .collect()
    }
}

/// The entry point: see the module docs.
#[derive(Debug)]
pub struct Server;

/// A server with its listeners bound, ready to run.
pub struct Bound {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    cluster: Option<crate::cluster::Cluster>,
    /// The hub's cluster side and the notices it sends, started by `run`.
    fanout: Option<(
        crate::xsi::events::Fanout,
        tokio::sync::mpsc::Receiver<crate::xsi::events::hub::Notice>,
    )>,
    tls: crate::reload::TlsSlots,
    reloader: crate::reload::Reloader,
    /// Reload on SIGHUP (the `serve` command).
    signals: bool,
    router: Router,
    telephony: Telephony,
    hub: Hub,
    /// XSI-Actions, which answers other nodes' call requests in a cluster.
    actions: Option<Arc<crate::xsi::XsiActions>>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    admin: Option<Listener>,
    component: Option<(Listener, Arc<ComponentService>)>,
    client: Option<(Listener, Arc<ClientService>)>,
    https: Option<(Listener, Arc<HttpsFront>)>,
    cti: Option<(Listener, Arc<HttpsFront>)>,
    addrs: LocalAddrs,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

/// The certificate files `serve` uses: the configured ones, or the development PKI's.
pub fn identity_files(config: &Config) -> IdentityFiles {
    match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert), Some(key)) => IdentityFiles {
            cert: cert.clone(),
            key: key.clone(),
            key_password: config.tls.key_password_file.clone(),
            trust: config.tls.trust_file.clone(),
        },
        _ => DevPki::new(config.dev_pki_dir()).server_identity(),
    }
}

/// Binds one listener, naming it and its configuration key in the error.
fn bind_listener(
    name: &'static str,
    key: &'static str,
    listen: &crate::config::Listen,
    max_connections: usize,
    limits: &crate::config::LimitsConfig,
) -> Result<Listener, ServerError> {
    let preauth = crate::net::listener::PreAuthLimits::from_config(limits);
    Listener::bind(name, listen.addrs(), max_connections, preauth)
        .map_err(|(addr, source)| ServerError::bind(name, key, addr, source))
}

/// The CTI trust bundle and CN allow-list: configured, or the development PKI's CA and
/// CTI client certificate.
pub(crate) fn cti_trust(
    config: &Config,
) -> Result<(Vec<rustls_pki_types::CertificateDer<'static>>, Vec<String>), ServerError> {
    let dev = DevPki::new(config.dev_pki_dir());
    let trust_file = match &config.cti.trust_file {
        Some(file) => file.clone(),
        None => dev.ca_cert(),
    };
    let trust = crate::pki::input::read_certificates(&trust_file)
        .map_err(|e| ServerError::Tls(TlsError::Pki(e)))?
        .into_iter()
        .map(|c| c.der)
        .collect();
    let allowed = if config.cti.allowed_client_ids.is_empty() {
        vec![embedded::cti_client_cn(&config.server.domain)]
    } else {
        config.cti.allowed_client_ids.clone()
    };
    Ok((trust, allowed))
}

/// What the server certificate must name.
pub fn identity_requirements(config: &Config) -> IdentityRequirements {
    IdentityRequirements {
        domain: config.server.domain.clone(),
        fqdn: config.server.fqdn(),
        warn_days: config.tls.expiry_warn_days,
    }
}

impl Server {
    /// Prepares everything and binds every listener. `config` must be validated.
    pub async fn bind(config: Config) -> Result<Bound, ServerError> {
        let data_dir = &config.server.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|source| ServerError::DataDir {
            path: data_dir.clone(),
            source,
        })?;

        if config.uses_dev_pki() {
            let dev = DevPki::new(config.dev_pki_dir());
            if dev
                .ensure(&config.server.domain, &config.server.fqdn())
                .map_err(ServerError::DevPki)?
            {
                tracing::info!(dir = %dev.dir.display(), "generated the development PKI");
            }
            tracing::warn!(
                ca = %dev.ca_cert().display(),
                "using the development PKI: clients must trust this CA certificate; configure \
                 [tls] for production"
            );
        }
        let certificates = crate::reload::Certificates::load(&config)?;
        let tls = crate::reload::TlsSlots::new(certificates);
        let limits = Live::new(config.limits.clone());
        let mut preauth = Vec::new();

        let (store, place) = crate::store::open(&config).await?;
        tracing::info!(backend = ?config.store.backend, at = %place, "store opened");
        if config.server.demo_data && embedded::ensure_demo_data(&config, store.as_ref()).await? {
            tracing::info!(
                file = %embedded::demo_credentials_path(data_dir).display(),
                "created demo users alice and bob and component bridge.{}; their credentials are in this file",
                config.server.domain
            );
        }

        let cluster = match &config.cluster {
            Some(cluster_config) => {
                let cluster = crate::cluster::Cluster::connect(cluster_config).await?;
                tracing::info!(node = %cluster.node(), "cluster messaging set up");
                Some(cluster)
            }
            None => None,
        };

        let metrics = crate::telemetry::install();
        let mut addrs = LocalAddrs::default();
        let admin = if config.admin.enabled {
            let listener =
                crate::admin::bind(config.admin.listen.addrs()).map_err(|(addr, source)| {
                    ServerError::bind("admin", "admin.listen", addr, source)
                })?;
            addrs.admin = listener.local_addr().ok();
            Some(listener)
        } else {
            None
        };

        let telephony = Telephony::new(
            Arc::clone(&store),
            EventBus::new(config.xsi.event_bus_capacity.get()),
            config.quotas.clone(),
        )
        .with_node_id(&config.node_id())
        .with_calls_config(config.calls.clone());
        let directory =
            Arc::new(ComponentDirectory::load(&config.components, telephony.clone()).await?);
        crate::telemetry::components_known(directory.known().iter().map(String::as_str));
        let router = Router::new(
            &config.server.domain,
            config.xmpp.send_queue_len.get(),
            config.xmpp.hold_max_stanzas,
            Arc::clone(&directory) as Arc<dyn crate::xmpp::router::KnownComponents>,
        );
        let rayo = Arc::new(crate::xmpp::rayo::RayoClient::new(
            router.clone(),
            telephony.clone(),
            std::time::Duration::from_secs(config.xmpp.rayo_timeout_secs.get()),
        ));
        telephony.set_carrier(Arc::clone(&rayo) as Arc<dyn crate::telephony::calls::CallCarrier>);
        let clients = Arc::new(ClientService::new(
            &config,
            limits.clone(),
            Some(tls.xmpp.clone()),
            router.clone(),
            telephony.clone(),
        ));
        let client = if config.xmpp.client_enabled {
            let listener = bind_listener(
                "c2s",
                "xmpp.client_listen",
                &config.xmpp.client_listen,
                config.xmpp.max_client_connections.get(),
                &config.limits,
            )?;
            addrs.client = listener.local_addr().ok();
            preauth.push(listener.preauth());
            Some((listener, Arc::clone(&clients)))
        } else {
            None
        };
        let component = if config.xmpp.component_enabled {
            let listen = &config.xmpp.component_listen;
            let listener = bind_listener(
                "component",
                "xmpp.component_listen",
                listen,
                config.xmpp.max_component_connections.get(),
                &config.limits,
            )?;
            addrs.component = listener.local_addr().ok();
            preauth.push(listener.preauth());
            if !config.xmpp.component_tls && !listen.is_loopback() {
                tracing::warn!(
                    addrs = %listen,
                    "the component listener runs WITHOUT TLS on a non-loopback address: secrets \
                     and stanzas cross the network in clear"
                );
            }
            let service = ComponentService::new(
                &config,
                limits.clone(),
                config.xmpp.component_tls.then(|| tls.xmpp.clone()),
                router.clone(),
                Arc::clone(&directory),
                rayo,
            );
            Some((listener, Arc::new(service)))
        } else {
            None
        };

        let hub = Hub::load(
            telephony.clone(),
            config.xsi_events.clone(),
            &config.node_id(),
        )
        .await?;
        // In a cluster the hub tells the other nodes of its subscriptions and sets, and
        // hears their events.
        let (hub, fanout) = match &cluster {
            Some(cluster) => {
                let (outbox, notices) = tokio::sync::mpsc::channel(CLUSTER_OUTBOX);
                let (writes, queue) = tokio::sync::mpsc::channel(crate::xsi::events::JOURNAL_QUEUE);
                let hub = hub.in_cluster(outbox, writes.clone());
                let backlog = telephony.backlog().ok_or_else(|| {
                    StoreError::Worker("a cluster's store shares no backlog".to_owned())
                })?;
                let journal = crate::xsi::events::Journal::new(backlog, hub.clone(), writes, queue);
                let fanout = crate::xsi::events::Fanout::new(cluster.clone(), hub.clone(), journal);
                (hub, Some((fanout, notices)))
            }
            None => (hub, None),
        };
        let (https, cti, actions) = if config.http.enabled {
            let listener = bind_listener(
                "https",
                "http.listen",
                &config.http.listen,
                config.http.max_connections.get(),
                &config.limits,
            )?;
            addrs.https = listener.local_addr().ok();
            preauth.push(listener.preauth());
            let xsi_config = Arc::new(config.xsi.clone());
            let auth = crate::xsi::auth::Authenticator::new(
                telephony.clone(),
                Arc::clone(&xsi_config),
                config.store.scram_iterations,
            );
            let mut actions =
                crate::xsi::XsiActions::new(telephony.clone(), xsi_config, auth.clone());
            if let Some(cluster) = &cluster {
                actions = actions.in_cluster(cluster.clone());
            }
            let actions = Arc::new(actions);
            let events: Arc<dyn crate::http::Handler> = Arc::new(crate::xsi::XsiEvents::new(
                hub.clone(),
                fanout.as_ref().map(|(fanout, _)| fanout.clone()),
                Arc::clone(&actions),
                auth,
                &config.xsi.realm,
            ));
            let mut routes = Routes::default()
                .mount(crate::xsi::actions::MOUNT, Arc::clone(&actions) as _)
                .mount(crate::xsi::events::MOUNT, Arc::clone(&events))
                .mount(crate::xsi::events::ASYNC_MOUNT, events);
            if config.xmpp.websocket_enabled {
                routes = routes
                    .mount(
                        crate::xmpp::websocket::PATH,
                        Arc::new(crate::xmpp::websocket::WebSocketEndpoint::new(
                            Arc::clone(&clients),
                            &config.xmpp,
                        )),
                    )
                    .mount(
                        crate::xmpp::websocket::HOST_META,
                        Arc::new(crate::xmpp::websocket::HostMeta),
                    );
            }
            let cti = if config.cti_enabled() {
                let listener = bind_listener(
                    "cti",
                    "cti.listen",
                    &config.cti.listen,
                    config.cti.max_connections,
                    &config.limits,
                )?;
                addrs.cti = listener.local_addr().ok();
                preauth.push(listener.preauth());
                tls.cti.clone().map(|cti_tls| {
                    let front =
                        HttpsFront::new("cti", cti_tls, routes.clone(), &config, limits.clone());
                    (listener, Arc::new(front))
                })
            } else {
                None
            };
            let front =
                HttpsFront::new("https", tls.https.clone(), routes, &config, limits.clone());
            (Some((listener, Arc::new(front))), cti, Some(actions))
        } else {
            (None, None, None)
        };

        let config = Arc::new(config);
        let reloader = crate::reload::Reloader::new(
            crate::reload::ConfigSource::default(),
            crate::reload::ReloadParts {
                config: Arc::clone(&config),
                tls: tls.clone(),
                limits,
                preauth,
                directory,
                router: router.clone(),
                telephony: telephony.clone(),
            },
        );
        Ok(Bound {
            config,
            store,
            cluster,
            fanout,
            tls,
            reloader,
            signals: false,
            router,
            telephony,
            hub,
            actions,
            metrics,
            admin,
            component,
            client,
            https,
            cti,
            addrs,
        })
    }
}

impl Bound {
    /// Where each listener is bound.
    pub fn local_addrs(&self) -> LocalAddrs {
        self.addrs
    }

    /// The store.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The TLS configuration the HTTPS listener presents now.
    pub fn tls(&self) -> Arc<rustls::ServerConfig> {
        self.tls.https.get()
    }

    /// Reads the configuration from `source` on reload (the embedded defaults when not
    /// set), and lets reloads change the log filter through `log` (None: `--log` pins it).
    pub fn reload_from(
        mut self,
        source: crate::reload::ConfigSource,
        log: Option<crate::reload::LogControl>,
    ) -> Self {
        self.reloader.set_source(source);
        self.signals = true;
        if let Some(log) = log {
            self.reloader.set_log_control(log);
        }
        self
    }

    /// The XMPP router.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The XSI-Events hub.
    pub fn hub(&self) -> Hub {
        self.hub.clone()
    }

    /// The telephony model (and its event bus).
    pub fn telephony(&self) -> Telephony {
        self.telephony.clone()
    }

    /// Serves until `shutdown` is triggered and every listener has stopped accepting.
    pub async fn run(self, shutdown: Shutdown) {
        let mut listeners = tokio::task::JoinSet::new();
        let reloader = Arc::new(self.reloader);
        if let Some(admin) = self.admin {
            let state = crate::admin::AdminState {
                metrics: self.metrics.clone(),
                router: self.router.clone(),
                hub: self.hub.clone(),
                health: crate::admin::Health {
                    store: Arc::clone(&self.store),
                    cluster: self.cluster.clone(),
                },
                reloader: Arc::clone(&reloader),
                started: time::OffsetDateTime::now_utc(),
                listeners: self.addrs.views(&self.config),
            };
            listeners.spawn(crate::admin::serve(
                admin,
                shutdown.clone(),
                Arc::new(state),
            ));
        }
        reloader.spawn_watch(&shutdown);
        if self.signals {
            crate::supervisor::spawn_reload_on_hangup(&shutdown, Arc::clone(&reloader));
        }
        // Held stanzas of components that did not come back in time are bounced.
        let router = self.router.clone();
        let sweeper_shutdown = shutdown.clone();
        shutdown.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = sweeper_shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        let expired = router.expire_held(std::time::Instant::now());
                        if expired > 0 {
                            tracing::info!(expired, "held stanzas expired and were bounced");
                        }
                    }
                }
            }
        });
        // Call timers (ringing, dial, Call Forwarding No Answer), every second, on their
        // own task: a slow bridge answering a redirect delays nothing else.
        let telephony = self.telephony.clone();
        let timers_shutdown = shutdown.clone();
        shutdown.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = timers_shutdown.cancelled() => break,
                    _ = tick.tick() => telephony.expire_calls(time::OffsetDateTime::now_utc()).await,
                }
            }
        });
        // In a cluster the router joins the others before any XMPP connection is taken.
        if let (Some(cluster), Some(routes)) = (&self.cluster, self.telephony.routes()) {
            if let Err(e) =
                crate::xmpp::cluster::start(&self.router, cluster, routes, &shutdown).await
            {
                tracing::error!(error = %e, "cannot carry stanzas between nodes");
            }
        }
        if let Some((listener, service)) = self.component {
            let for_connections = shutdown.clone();
            listeners.spawn(
                listener.serve(shutdown.clone(), move |tcp, peer, admission| {
                    Arc::clone(&service).handle(tcp, peer, admission, for_connections.clone())
                }),
            );
        }
        if let Some((listener, service)) = self.client {
            let for_connections = shutdown.clone();
            listeners.spawn(
                listener.serve(shutdown.clone(), move |tcp, peer, admission| {
                    Arc::clone(&service).handle(tcp, peer, admission, for_connections.clone())
                }),
            );
        }
        crate::xsi::events::spawn_background(&shutdown, self.hub.clone(), self.telephony.clone());
        if let Some(cluster) = &self.cluster {
            if let Err(e) =
                crate::xsi::events::serve_forwarded(self.hub.clone(), cluster, &shutdown).await
            {
                tracing::error!(error = %e, "cannot answer other nodes' channel requests");
            }
            if let Some(actions) = &self.actions {
                let actions = Arc::clone(actions);
                if let Err(e) =
                    crate::xsi::actions::serve_forwarded_calls(actions, cluster, &shutdown).await
                {
                    tracing::error!(error = %e, "cannot answer other nodes' call requests");
                }
            }
        }
        if let Some((fanout, notices)) = self.fanout {
            fanout.spawn(&shutdown, &self.telephony, notices);
        }
        spawn_store_maintenance(&shutdown, Arc::clone(&self.store));
        for (listener, front) in self.https.into_iter().chain(self.cti) {
            let for_connections = shutdown.clone();
            listeners.spawn(
                listener.serve(shutdown.clone(), move |tcp, peer, admission| {
                    Arc::clone(&front).handle(tcp, peer, admission, for_connections.clone())
                }),
            );
        }
        tracing::info!(
            domain = %self.config.server.domain,
            node = %self.config.node_id(),
            "bridgehead is serving"
        );
        if self.signals {
            crate::supervisor::ready();
            crate::supervisor::spawn_watchdog(&shutdown);
        }
        while listeners.join_next().await.is_some() {}
        if !shutdown.is_triggered() {
            shutdown.cancelled().await;
        }
        if self.signals {
            crate::supervisor::stopping();
        }
    }
}

/// Store housekeeping every second, off the request path, until shutdown.
fn spawn_store_maintenance(shutdown: &Shutdown, store: Arc<dyn Store>) {
    let stop = shutdown.clone();
    shutdown.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = store.checkpoint().await {
                        tracing::warn!(error = %e, "store checkpoint failed");
                    }
                }
            }
        }
    });
}
