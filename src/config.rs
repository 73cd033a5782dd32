//! The one configuration file: typed, every key documented in `docs/configuration.md`,
//! unknown keys refused with their path, and validated as a whole before anything binds.
//!
//! Loading is two steps: [`Config::from_toml`] parses (failing on the first syntax or type
//! error, with the key path), then [`Config::validate`] checks cross-field rules and reports
//! every problem at once. Secrets given as `*_file` are read during validation, so a
//! validated config holds them resolved.
//!
//! The sections live beside this file: `server.rs` (`[server]`, `[tls]`, `[store]`,
//! `[admin]`), `xmpp.rs` (`[xmpp]`, `[[components]]`), `xsi.rs` (`[http]`, `[xsi]`,
//! `[xsi_events]`, `[cti]`), `limits.rs` (`[limits]`, `[quotas]`), `calls.rs` (`[calls]`), `cluster.rs` (`[cluster]`), `listen.rs` (listener
//! addresses); `validate.rs` holds the cross-field rules.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A nonzero integer constant (a default), checked when compiling.
macro_rules! nonzero {
    ($value:expr) => {
        const {
            match std::num::NonZero::new($value) {
                Some(value) => value,
                None => panic!("a nonzero default is zero"),
            }
        }
    };
}

mod calls;
mod cluster;
mod limits;
mod listen;
mod live;
mod server;
mod validate;
mod xmpp;
mod xsi;

pub use calls::CallsConfig;
pub use cluster::{is_node_name, ClusterConfig};
pub use limits::{LimitsConfig, QuotasConfig, MAX_XML_DEPTH_CEILING};
pub use listen::Listen;
pub use live::Live;
pub use server::{
    host_name, AdminConfig, LogConfig, ServerConfig, StoreBackend, StoreConfig, TlsConfig,
};
pub use validate::{check_domain, read_secret_file, Files};
pub use xmpp::{ComponentConfig, ResourceConflict, XmppConfig};
pub use xsi::{CtiConfig, HttpConfig, XsiConfig, XsiEventsConfig};

/// A problem with one key of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path, e.g. `components[0].secret`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type.
    #[error("{path}: {key}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Dotted key path (`.` for the document root).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// Validation found problems; all of them are listed.
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), list(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn list(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A secret value: never printed by `Debug`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The root of the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Identity of this node and where it keeps its data.
    pub server: ServerConfig,
    /// The server certificate, its key and the trust bundle it must verify against.
    pub tls: TlsConfig,
    /// Persistence.
    pub store: StoreConfig,
    /// The plain-HTTP admin listener (health, metrics, the admin API and status page).
    pub admin: AdminConfig,
    /// Logging.
    pub log: LogConfig,
    /// The XMPP server.
    pub xmpp: XmppConfig,
    /// The HTTPS front shared by XSI and XMPP over WebSocket.
    pub http: HttpConfig,
    /// The XSP edge: XSI-Actions (and XSI-Events).
    pub xsi: XsiConfig,
    /// XSI-Events: channels, heartbeats, subscriptions, delivery.
    pub xsi_events: XsiEventsConfig,
    /// The CTI interface: XSI over mutual TLS for trusted applications.
    pub cti: CtiConfig,
    /// Bounds on input shapes and on connections that have not authenticated.
    pub limits: LimitsConfig,
    /// What one user may store or hold open.
    pub quotas: QuotasConfig,
    /// Call timers and per-bridge call limits.
    pub calls: CallsConfig,
    /// Several nodes serving one domain (absent: one node on its own).
    pub cluster: Option<ClusterConfig>,
    /// XEP-0114 components declared in the file (more can be added with
    /// `bridgehead component add`).
    pub components: Vec<ComponentConfig>,
}

impl Config {
    /// The configuration `serve` uses without `--config`: every default, plus demo data.
    pub fn embedded() -> Self {
        let mut config = Config::default();
        config.server.demo_data = true;
        config
    }

    /// Reads and parses a file (no validation).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(path, &text)
    }

    /// Parses TOML text; `path` only names the source in errors.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let message = match e.inner().message() {
                // serde's words for a 0 given to a NonZero field.
                m if m.contains("expected a nonzero") => "must be at least 1".to_owned(),
                m => m.to_owned(),
            };
            let at = e
                .inner()
                .span()
                .map(|span| format!(" (line {})", line_of(text, span.start)))
                .unwrap_or_default();
            ConfigError::Parse {
                path: path.to_owned(),
                key,
                message: format!("{message}{at}"),
            }
        })
    }

    /// This node's name: `[cluster] node`, else `server.node_id`, else the host name.
    pub fn node_id(&self) -> String {
        match &self.cluster {
            Some(cluster) => cluster.node.clone(),
            None => self.server.node_id(),
        }
    }

    /// Where the SQLite database lives.
    pub fn store_path(&self) -> PathBuf {
        self.store
            .path
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("bridgehead.sqlite3"))
    }

    /// Where the development PKI lives.
    pub fn dev_pki_dir(&self) -> PathBuf {
        self.server.data_dir.join("pki")
    }

    /// True when the CTI listener runs (see [`CtiConfig::enabled`]).
    pub fn cti_enabled(&self) -> bool {
        self.cti
            .enabled
            .unwrap_or(self.uses_dev_pki() || self.cti.trust_file.is_some())
    }

    /// True when no certificate is configured and the development PKI is used.
    pub fn uses_dev_pki(&self) -> bool {
        self.tls.cert_file.is_none()
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests;
