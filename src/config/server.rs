//! `[server]`, `[tls]`, `[store]`, `[admin]` and `[log]`: the node's identity, its
//! certificate, its store, its admin listener and its log filter.

use std::num::NonZeroU64;

use std::path::PathBuf;

use super::Listen;
use serde::Deserialize;

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The XMPP domain users and components live under. Default `localhost`.
    pub domain: String,
    /// This host's fully qualified name; the server certificate must name it.
    /// Default: the system host name.
    pub fqdn: Option<String>,
    /// Name of this node in affinity cookies and channel ids. Default: the host name.
    pub node_id: Option<String>,
    /// Directory for the SQLite store and the development PKI. Default `./data`.
    pub data_dir: PathBuf,
    /// Create the demo enterprise, users and component on first start. Default `false`
    /// in a config file; `serve` without `--config` turns it on.
    pub demo_data: bool,
    /// How long a stop waits for connections to finish. Default 10 s.
    pub shutdown_grace_secs: NonZeroU64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            domain: "localhost".to_owned(),
            fqdn: None,
            node_id: None,
            data_dir: PathBuf::from("./data"),
            demo_data: false,
            shutdown_grace_secs: nonzero!(10),
        }
    }
}

impl ServerConfig {
    /// The configured FQDN, or the system host name.
    pub fn fqdn(&self) -> String {
        self.fqdn.clone().unwrap_or_else(host_name)
    }

    /// The configured node id, or the system host name.
    pub fn node_id(&self) -> String {
        self.node_id.clone().unwrap_or_else(host_name)
    }
}

/// The system host name, lower-cased.
pub fn host_name() -> String {
    gethostname::gethostname()
        .to_string_lossy()
        .to_ascii_lowercase()
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Full chain (leaf first) of the server certificate, PEM. When unset, a development
    /// PKI is generated in `<data_dir>/pki`.
    pub cert_file: Option<PathBuf>,
    /// The private key of the server certificate, PEM.
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted PKCS#8 key.
    pub key_password_file: Option<PathBuf>,
    /// The trust bundle the server chain must verify against at start. Default: the
    /// system roots (or the development CA with the development PKI).
    pub trust_file: Option<PathBuf>,
    /// Warn at start when a certificate expires within this many days. Default 30.
    pub expiry_warn_days: u32,
    /// Seconds between looks at the certificate, key and trust files: a file replaced
    /// on disk (a certbot or step renewal) is loaded as `bridgehead reload` would. 0 turns
    /// the watch off. Default 10.
    pub watch_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            key_password_file: None,
            trust_file: None,
            expiry_warn_days: 30,
            watch_secs: 10,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Storage backend: `sqlite` (one node) or `postgres` (shared by several nodes).
    pub backend: StoreBackend,
    /// SQLite database file. Default `<data_dir>/bridgehead.sqlite3`.
    pub path: Option<PathBuf>,
    /// The PostgreSQL connection (`postgres://user:password@host:port/db`); required by,
    /// and only used with, `backend = "postgres"`. Never logged.
    pub url: Option<crate::config::Secret>,
    /// PostgreSQL connections this node keeps at most. Default 16.
    pub pool_size: std::num::NonZeroUsize,
    /// CA certificates (PEM) PostgreSQL's certificate must chain to when `url` asks for
    /// TLS (`sslmode=require`); the system's roots without it.
    pub ca: Option<PathBuf>,
    /// PBKDF2 iteration count for new SCRAM verifiers (at least 4096). Default 4096.
    pub scram_iterations: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Sqlite,
            path: None,
            url: None,
            pool_size: std::num::NonZeroUsize::new(16).expect("16 > 0"),
            ca: None,
            scram_iterations: 4096,
        }
    }
}

/// Storage backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One SQLite file (WAL mode).
    Sqlite,
    /// A PostgreSQL database, shared by every node of a cluster.
    Postgres,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// The log filter (tracing `EnvFilter` syntax: `info`, `bridgehead=debug,info`).
    /// `--log` or `BRIDGEHEAD_LOG` win over it. Changes on reload. Default `info`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "info".to_owned(),
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the admin listener. Default `true`.
    pub enabled: bool,
    /// Addresses of the admin listener. Default `127.0.0.1:9090`; keep it private.
    pub listen: Listen,
    /// A file whose first line is the bearer token the admin API requires. Required when
    /// `listen` has an address that is not loopback; optional (and then enforced) on
    /// loopback. `/healthz` and `/metrics` never need it.
    pub token_file: Option<PathBuf>,
    /// The token read from `token_file` during validation.
    #[serde(skip)]
    pub token: Option<super::Secret>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: Listen::loopback(9090),
            token_file: None,
            token: None,
        }
    }
}
