//! Reload: a new configuration and new certificates while every session, component and
//! event channel stays connected.
//!
//! ```text
//! SIGHUP ─┐
//! POST /api/reload (bridgehead reload) ─┼─▶ Reloader::reload ── read + validate the file (as at start)
//! a watched certificate file changed ───┘        │            ── refuse if a restart-only key changed
//!                                                │            ── load + check the certificates (as at start)
//!                                                ▼
//!                     all passed: swap the live parts ── or: change nothing, say why
//! ```
//!
//! What a reload changes, for what starts after it (what is under way keeps what it
//! started with: a live TLS session keeps its certificate):
//!
//! - `[tls]`: the server certificate, key and trust bundle (every TLS listener's
//!   configuration is rebuilt by the one TLS builder and swapped behind its acceptor);
//! - `[cti] trust_file` and `allowed_client_ids`;
//! - `[[components]]`: names, secrets and policies (a component no longer configured nor
//!   registered is disconnected with `policy-violation`);
//! - `[limits]`, `[quotas]` and `[log] filter` (unless `--log` pins it);
//! - users, devices and registered components live in the store, so they change without
//!   any reload.
//!
//! Everything else needs a restart: a reload that changes it is refused, naming the keys
//! (a listener address change says so). Certificate files are also watched
//! (`[tls] watch_secs`): when one changes on disk the certificates are reloaded with the
//! configuration in force; a renewal caught half written fails the checks, changes
//! nothing, and is tried again when the next file lands.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::{Config, ConfigError, LimitsConfig, Live};
use crate::net::listener::PreAuthLimits;
use crate::server::{identity_files, identity_requirements, ServerError};
use crate::shutdown::Shutdown;
use crate::telephony::Telephony;
use crate::tls::{CertificateSummary, ServerIdentity};
use crate::xmpp::component::ComponentDirectory;
use crate::xmpp::router::Router;

/// Where the configuration comes from: the file (or the embedded defaults) and the
/// `--data-dir` override, read the same way at start and on every reload.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The file; `None` = the embedded defaults.
    pub path: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

impl ConfigSource {
    /// Reads the configuration and validates it with (`Files::Check`) or without its
    /// files.
    pub fn load(&self, files: crate::config::Files) -> Result<Config, ConfigError> {
        let mut config = match &self.path {
            Some(path) => Config::load(path)?,
            None => Config::embedded(),
        };
        if let Some(dir) = &self.data_dir {
            config.server.data_dir = dir.clone();
        }
        config.validate_with(files)?;
        Ok(config)
    }
}

/// Every TLS server configuration a node presents, built from one checked identity.
#[derive(Debug)]
pub struct Certificates {
    /// HTTPS (XSI, WebSocket): ALPN `h2`, `http/1.1`.
    pub https: Arc<rustls::ServerConfig>,
    /// XMPP: direct TLS for components, STARTTLS for clients.
    pub xmpp: Arc<rustls::ServerConfig>,
    /// CTI: mutual TLS under the `[cti]` trust and allow-list (when CTI runs).
    pub cti: Option<Arc<rustls::ServerConfig>>,
    /// The served leaf certificate.
    pub summary: CertificateSummary,
}

impl Certificates {
    /// Loads and checks the certificates `config` names, as at start; logs the warnings.
    pub fn load(config: &Config) -> Result<Self, ServerError> {
        let identity =
            ServerIdentity::load(&identity_files(config), &identity_requirements(config))?;
        for warning in &identity.warnings {
            tracing::warn!(
                check = warning.check,
                "server certificate: {}",
                warning.reason
            );
        }
        let cti = if config.http.enabled && config.cti_enabled() {
            let (trust, allowed) = crate::server::cti_trust(config)?;
            Some(identity.cti_server_config(&trust, allowed, &[b"h2", b"http/1.1"])?)
        } else {
            None
        };
        Ok(Certificates {
            https: identity.server_config(&[b"h2", b"http/1.1"])?,
            xmpp: identity.server_config(&[])?,
            cti,
            summary: identity.summary,
        })
    }
}

/// The live TLS configurations the acceptors read at each handshake.
#[derive(Debug, Clone)]
pub struct TlsSlots {
    /// HTTPS.
    pub https: Live<rustls::ServerConfig>,
    /// XMPP (components and clients).
    pub xmpp: Live<rustls::ServerConfig>,
    /// CTI.
    pub cti: Option<Live<rustls::ServerConfig>>,
    /// The served leaf certificate.
    pub summary: Live<CertificateSummary>,
}

impl TlsSlots {
    /// Slots holding `certificates`.
    pub fn new(certificates: Certificates) -> Self {
        TlsSlots {
            https: Live::new(certificates.https),
            xmpp: Live::new(certificates.xmpp),
            cti: certificates.cti.map(Live::new),
            summary: Live::new(certificates.summary),
        }
    }

    fn install(&self, certificates: Certificates) {
        self.https.set(certificates.https);
        self.xmpp.set(certificates.xmpp);
        if let (Some(slot), Some(config)) = (&self.cti, certificates.cti) {
            slot.set(config);
        }
        self.summary.set(certificates.summary);
    }
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file cannot be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Keys that only a restart can change differ.
    #[error("needs a restart: {} changed ({}); nothing was reloaded", .0.join(", "), restart_reason(.0))]
    RestartNeeded(Vec<String>),
    /// The certificates (or the CTI trust) fail the start-up checks.
    #[error(transparent)]
    Certificates(#[from] ServerError),
    /// The registered components cannot be read.
    #[error("cannot read the registered components: {0}")]
    Components(#[from] crate::telephony::TelephonyError),
}

fn restart_reason(keys: &[String]) -> &'static str {
    if keys.iter().any(|k| k.ends_with("listen")) {
        "listening sockets are bound at start"
    } else {
        "these settings are read at start"
    }
}

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// The live parts that differ from before (`certificate`, `limits`, `quotas`,
    /// `components`, `cti`, `log.filter`, `admin.token_file`).
    pub changed: Vec<&'static str>,
    /// Components disconnected because they are no longer configured nor registered.
    pub components_removed: Vec<String>,
    /// The certificate served from now on.
    pub certificate: CertificateSummary,
}

/// Applies a log filter (see `main`); refuses one it cannot parse.
pub type LogControl = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The parts of a running node a reload replaces.
pub struct Reloader {
    source: ConfigSource,
    /// One reload (or certificate watch) at a time.
    reloading: tokio::sync::Mutex<()>,
    /// The configuration in force.
    in_force: Live<Config>,
    tls: TlsSlots,
    limits: Live<LimitsConfig>,
    preauth: Vec<Live<PreAuthLimits>>,
    directory: Arc<ComponentDirectory>,
    router: Router,
    telephony: Telephony,
    log: Option<LogControl>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// What [`Reloader::new`] is made of.
pub struct ReloadParts {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The TLS slots.
    pub tls: TlsSlots,
    /// The live `[limits]`.
    pub limits: Live<LimitsConfig>,
    /// Every listener's pre-authentication budget.
    pub preauth: Vec<Live<PreAuthLimits>>,
    /// The component directory.
    pub directory: Arc<ComponentDirectory>,
    /// The router (to disconnect removed components).
    pub router: Router,
    /// The telephony model (quotas).
    pub telephony: Telephony,
}

impl Reloader {
    /// A reloader over `parts`, reading from `source`.
    pub fn new(source: ConfigSource, parts: ReloadParts) -> Self {
        Reloader {
            source,
            in_force: Live::new(parts.config),
            reloading: tokio::sync::Mutex::new(()),
            tls: parts.tls,
            limits: parts.limits,
            preauth: parts.preauth,
            directory: parts.directory,
            router: parts.router,
            telephony: parts.telephony,
            log: None,
        }
    }

    /// Lets reloads change the log filter (absent when `--log` pins it).
    pub fn set_log_control(&mut self, control: LogControl) {
        self.log = Some(control);
    }

    /// Where the configuration is read from.
    pub fn set_source(&mut self, source: ConfigSource) {
        self.source = source;
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.in_force.get()
    }

    /// The served leaf certificate.
    pub fn certificate(&self) -> Arc<CertificateSummary> {
        self.tls.summary.get()
    }

    /// Reads the configuration and the certificates again and puts them in force, or
    /// changes nothing and says why (see the module docs).
    pub async fn reload(&self, cause: &'static str) -> Result<ReloadReport, ReloadError> {
        let result = self.try_reload().await;
        match &result {
            Ok(report) => tracing::info!(
                cause,
                changed = ?report.changed,
                certificate = %report.certificate.sha256,
                not_after = %report.certificate.not_after,
                "configuration reloaded"
            ),
            Err(error) => tracing::error!(cause, %error, "reload refused; nothing changed"),
        }
        crate::telemetry::reload(result.is_ok());
        result
    }

    async fn try_reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let current = self.in_force.get();
        let new = self.source.load(crate::config::Files::Check)?;
        let keys = restart_needed(&current, &new);
        if !keys.is_empty() {
            return Err(ReloadError::RestartNeeded(keys));
        }
        let certificates = Certificates::load(&new)?;
        let removed = self.directory.reload(&new.components).await?;
        // Everything is checked; from here on nothing can fail.
        let mut changed = Vec::new();
        if certificates.summary != *self.tls.summary.get() {
            changed.push("certificate");
        }
        self.tls.install(certificates);
        for (part, differs) in [
            ("limits", current.limits != new.limits),
            ("quotas", current.quotas != new.quotas),
            ("components", current.components != new.components),
            (
                "cti",
                (&current.cti.trust_file, &current.cti.allowed_client_ids)
                    != (&new.cti.trust_file, &new.cti.allowed_client_ids),
            ),
            ("admin.token_file", current.admin.token != new.admin.token),
        ] {
            if differs {
                changed.push(part);
            }
        }
        self.limits.set(new.limits.clone());
        for preauth in &self.preauth {
            preauth.set(PreAuthLimits::from_config(&new.limits));
        }
        self.telephony.set_quotas(new.quotas.clone());
        for name in &removed {
            let kicked = self.router.kick_component(name);
            tracing::info!(component = %name, kicked, "component no longer configured: disconnected");
        }
        if current.log.filter != new.log.filter {
            match &self.log {
                Some(apply) => match apply(&new.log.filter) {
                    Ok(()) => changed.push("log.filter"),
                    Err(e) => tracing::warn!(error = %e, "log filter not changed"),
                },
                None => tracing::info!(
                    "log.filter changed, but --log (or BRIDGEHEAD_LOG) pins the filter"
                ),
            }
        }
        let report = ReloadReport {
            changed,
            components_removed: removed,
            certificate: CertificateSummary::clone(&self.tls.summary.get()),
        };
        self.in_force.set(new);
        Ok(report)
    }

    /// Reloads only the certificates, under the configuration in force (the watch).
    async fn reload_certificates(&self) -> Result<CertificateSummary, ServerError> {
        let _one_at_a_time = self.reloading.lock().await;
        let certificates = Certificates::load(&self.in_force.get())?;
        let summary = certificates.summary.clone();
        self.tls.install(certificates);
        Ok(summary)
    }

    /// Watches the certificate, key and trust files every `[tls] watch_secs` until
    /// shutdown (nothing when 0).
    pub fn spawn_watch(self: &Arc<Self>, shutdown: &Shutdown) {
        let secs = self.config().tls.watch_secs;
        if secs == 0 {
            return;
        }
        let reloader = Arc::clone(self);
        let stop = shutdown.clone();
        shutdown.spawn(async move {
            let mut seen = reloader.stamps();
            let mut tick = tokio::time::interval(Duration::from_secs(secs));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let now = reloader.stamps();
                if now == seen {
                    continue;
                }
                seen = now;
                match reloader.reload_certificates().await {
                    Ok(summary) => tracing::info!(
                        certificate = %summary.sha256,
                        not_after = %summary.not_after,
                        "a certificate file changed: certificates reloaded"
                    ),
                    Err(error) => tracing::warn!(
                        %error,
                        "a certificate file changed, but the files fail the checks: nothing \
                         changed (tried again when a file changes)"
                    ),
                }
                crate::telemetry::reload(true);
            }
        });
    }

    /// Modification time and length of every certificate file in force.
    fn stamps(&self) -> Vec<Option<(SystemTime, u64)>> {
        let config = self.config();
        let files = identity_files(&config);
        [
            Some(files.cert),
            Some(files.key),
            files.key_password,
            files.trust,
            config.cti.trust_file.clone(),
        ]
        .into_iter()
        .flatten()
        .map(|path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
    }
}

/// The keys of `new` that differ from `old` and only a restart can change.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let mut keys: Vec<String> = [
        ("admin.listen", old.admin.listen != new.admin.listen),
        (
            "xmpp.client_listen",
            old.xmpp.client_listen != new.xmpp.client_listen,
        ),
        (
            "xmpp.component_listen",
            old.xmpp.component_listen != new.xmpp.component_listen,
        ),
        ("http.listen", old.http.listen != new.http.listen),
        ("cti.listen", old.cti.listen != new.cti.listen),
        ("cti.enabled", old.cti_enabled() != new.cti_enabled()),
    ]
    .into_iter()
    .filter(|(_, differs)| *differs)
    .map(|(key, _)| key.to_owned())
    .collect();
    // The rest of each section, with what a reload changes (and the listeners, named
    // above) taken from `old`.
    let mut masked = new.clone();
    masked.tls = old.tls.clone();
    masked.limits = old.limits.clone();
    masked.quotas = old.quotas.clone();
    masked.log = old.log.clone();
    masked.components = old.components.clone();
    masked.cti.trust_file = old.cti.trust_file.clone();
    masked.cti.allowed_client_ids = old.cti.allowed_client_ids.clone();
    masked.admin.token_file = old.admin.token_file.clone();
    masked.admin.token = old.admin.token.clone();
    masked.admin.listen = old.admin.listen.clone();
    masked.xmpp.client_listen = old.xmpp.client_listen.clone();
    masked.xmpp.component_listen = old.xmpp.component_listen.clone();
    masked.http.listen = old.http.listen.clone();
    masked.cti.listen = old.cti.listen.clone();
    for (section, differs) in [
        ("[server]", masked.server != old.server),
        ("[store]", masked.store != old.store),
        ("[admin]", masked.admin != old.admin),
        ("[xmpp]", masked.xmpp != old.xmpp),
        ("[http]", masked.http != old.http),
        ("[xsi]", masked.xsi != old.xsi),
        ("[xsi_events]", masked.xsi_events != old.xsi_events),
        ("[cti]", masked.cti != old.cti),
        ("[calls]", masked.calls != old.calls),
    ] {
        if differs {
            keys.push(section.to_owned());
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_parts_reload_and_the_rest_needs_a_restart() {
        let mut old = Config::default();
        old.cti.enabled = Some(true);
        let mut new = old.clone();
        new.limits.max_xml_depth = std::num::NonZeroUsize::new(10).unwrap();
        new.quotas.max_roster_items = std::num::NonZeroUsize::new(10).unwrap();
        new.log.filter = "debug".into();
        new.cti.allowed_client_ids = vec!["app.example.com".into()];
        new.tls.cert_file = Some("/etc/new.pem".into());
        assert!(restart_needed(&old, &new).is_empty());

        new.http.listen = crate::config::Listen::loopback(8443);
        new.xsi.realm = "other".into();
        new.calls.ring_secs = std::num::NonZeroU64::new(9).unwrap();
        assert_eq!(
            restart_needed(&old, &new),
            ["http.listen", "[xsi]", "[calls]"]
        );
        let error = ReloadError::RestartNeeded(restart_needed(&old, &new));
        assert!(error
            .to_string()
            .contains("listening sockets are bound at start"));
    }
}
