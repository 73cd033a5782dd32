//! The one configuration file: typed, every key documented in `docs/configuration.md`,
//! unknown keys refused with their path, and validated as a whole before anything binds.
//!
//! Loading is two steps: [`Config::from_toml`] parses (failing on the first syntax or type
//! error, with the key path), then [`Config::validate`] checks cross-field rules and reports
//! every problem at once. Secrets given as `*_file` are read during validation, so a
//! validated config holds them resolved.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod limits;

pub use limits::{LimitsConfig, QuotasConfig, MAX_XML_DEPTH_CEILING};

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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Identity of this node and where it keeps its data.
    pub server: ServerConfig,
    /// The server certificate, its key and the trust bundle it must verify against.
    pub tls: TlsConfig,
    /// Persistence.
    pub store: StoreConfig,
    /// The plain-HTTP admin listener (health, metrics).
    pub admin: AdminConfig,
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
    /// XEP-0114 components declared in the file (more can be added with
    /// `bridgehead component add`).
    pub components: Vec<ComponentConfig>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
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
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            domain: "localhost".to_owned(),
            fqdn: None,
            node_id: None,
            data_dir: PathBuf::from("./data"),
            demo_data: false,
            shutdown_grace_secs: 10,
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
#[derive(Debug, Clone, Deserialize)]
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
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            key_password_file: None,
            trust_file: None,
            expiry_warn_days: 30,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Storage backend. Only `sqlite` today.
    pub backend: StoreBackend,
    /// SQLite database file. Default `<data_dir>/bridgehead.sqlite3`.
    pub path: Option<PathBuf>,
    /// PBKDF2 iteration count for new SCRAM verifiers (at least 4096). Default 4096.
    pub scram_iterations: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Sqlite,
            path: None,
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
}

/// `[admin]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the admin listener. Default `true`.
    pub enabled: bool,
    /// Address of the admin listener. Default `127.0.0.1:9090`; keep it private.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090),
        }
    }
}

/// `[xmpp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XmppConfig {
    /// Serve the XEP-0114 component listener. Default `true`.
    pub component_enabled: bool,
    /// Address of the component listener. Default `0.0.0.0:5223`.
    pub component_listen: SocketAddr,
    /// Direct TLS on the component port. Default `true`; `false` is plain TCP (warned about
    /// unless bound to loopback).
    pub component_tls: bool,
    /// Deadline for TLS, stream header and handshake together. Default 10 s.
    pub handshake_timeout_secs: u64,
    /// Largest stanza accepted, in bytes; larger gets `policy-violation`. Default 262144.
    pub max_stanza_bytes: usize,
    /// Component connections open at once (all names together). Default 1024.
    pub max_component_connections: usize,
    /// Stanzas queued for one connection before it counts as too slow and is
    /// disconnected. Default 1024.
    pub send_queue_len: usize,
    /// Failed handshakes allowed per source address per minute before further attempts
    /// from that address are refused at once. Default 10.
    pub failed_handshakes_per_minute: u32,
    /// Stanzas held at most per component while it is away (`hold_secs`). Default 1000.
    pub hold_max_stanzas: usize,
    /// A component silent this long gets an XEP-0199 ping. Default 60 s.
    pub component_ping_interval_secs: u64,
    /// No traffic this long after a ping closes the connection (`connection-timeout`).
    /// Default 30 s.
    pub component_ping_timeout_secs: u64,

    /// A peer (component or client) that accepts no bytes for this long while the server
    /// writes to it is disconnected. Default 30 s.
    pub write_timeout_secs: u64,

    /// Serve the c2s listener for XMPP clients. Default `true`.
    pub client_enabled: bool,
    /// Address of the c2s listener. Default `0.0.0.0:5222`.
    pub client_listen: SocketAddr,
    /// Clients must STARTTLS before anything else. Default `true`; `false` allows plain
    /// streams (SCRAM only: PLAIN is never offered without TLS).
    pub require_tls: bool,
    /// Client connections open at once on the c2s listener. Default 20000.
    pub max_client_connections: usize,
    /// Deadline from connect (or WebSocket upgrade) to a bound resource. Default 30 s.
    pub login_timeout_secs: u64,
    /// What binding a resource that is already in use does. Default `replace`.
    pub resource_conflict: ResourceConflict,
    /// A client silent this long gets an XEP-0199 ping. Default 300 s.
    pub client_ping_interval_secs: u64,
    /// No traffic this long after that ping closes the session. Default 60 s.
    pub client_ping_timeout_secs: u64,
    /// Stanzas a client session may send per second, sustained (token bucket refill).
    /// A client over it is slowed down: its stream is not read until tokens return.
    /// Default 100.
    pub client_stanzas_per_second: u32,
    /// Stanzas a client may send in a burst (token bucket size). Default 200.
    pub client_stanza_burst: u32,
    /// Failed logins for one account from one address per minute before further attempts
    /// from there are refused (`temporary-auth-failure`). Default 5.
    pub failed_logins_per_account_per_minute: u32,
    /// Failed logins per source address per minute, whatever the account, before further
    /// attempts are refused. Default 20.
    pub failed_logins_per_address_per_minute: u32,
    /// Failed logins for one account from all addresses together per minute before
    /// further attempts are refused everywhere (a distributed guess). Default 50.
    pub failed_logins_per_account_all_addresses_per_minute: u32,
    /// A failed login is answered (`not-authorized`) only after this delay, known account
    /// or not. Default 1000 ms.
    pub auth_failure_delay_ms: u64,
    /// Components told of every client login: each gets an available presence from the
    /// user's full JID after resource binding, and an unavailable one when the session
    /// ends. Default none.
    pub login_notify: Vec<String>,
    /// A component that checks PLAIN credentials of accounts the store does not know
    /// (`urn:bridgehead:auth:0`, see docs/xmpp-clients.md). When set, PLAIN is the only
    /// mechanism offered. Default none.
    pub auth_via_component: Option<String>,
    /// How long that component has to answer; then `temporary-auth-failure`. Default 5 s.
    pub auth_via_component_timeout_secs: u64,
    /// Serve XMPP over WebSocket (RFC 7395) at `/xmpp-websocket` on the HTTPS listener,
    /// with XEP-0156 host-meta. Default `true`.
    pub websocket_enabled: bool,
    /// XEP-0198: how long a session whose connection broke waits to be resumed; 0 offers
    /// acknowledgements only, no resumption. Default 300 s.
    pub sm_resume_timeout_secs: u64,
    /// XEP-0198: stanzas sent and not yet acknowledged (or queued for a parked session)
    /// before the session counts as stuck and ends. Default 1000.
    pub sm_max_unacked: usize,
}

/// What binding a resource that is already in use does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceConflict {
    /// The new session wins; the old one ends with the `conflict` stream error.
    #[default]
    Replace,
    /// The bind request gets the `conflict` stanza error.
    Reject,
}

impl Default for XmppConfig {
    fn default() -> Self {
        XmppConfig {
            component_enabled: true,
            component_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5223),
            component_tls: true,
            handshake_timeout_secs: 10,
            max_stanza_bytes: 256 * 1024,
            max_component_connections: 1024,
            send_queue_len: 1024,
            failed_handshakes_per_minute: 10,
            hold_max_stanzas: 1000,
            component_ping_interval_secs: 60,
            component_ping_timeout_secs: 30,
            write_timeout_secs: 30,
            client_enabled: true,
            client_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5222),
            require_tls: true,
            max_client_connections: 20_000,
            login_timeout_secs: 30,
            resource_conflict: ResourceConflict::Replace,
            client_ping_interval_secs: 300,
            client_ping_timeout_secs: 60,
            client_stanzas_per_second: 100,
            client_stanza_burst: 200,
            failed_logins_per_account_per_minute: 5,
            failed_logins_per_address_per_minute: 20,
            failed_logins_per_account_all_addresses_per_minute: 50,
            auth_failure_delay_ms: 1000,
            login_notify: Vec::new(),
            auth_via_component: None,
            auth_via_component_timeout_secs: 5,
            websocket_enabled: true,
            sm_resume_timeout_secs: 300,
            sm_max_unacked: 1000,
        }
    }
}

/// `[http]`: the HTTPS listener and the limits it enforces on clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve the HTTPS listener. Default `true`.
    pub enabled: bool,
    /// Address of the HTTPS listener. Default `0.0.0.0:8443` (443 in production).
    pub listen: SocketAddr,
    /// Connections open at once. Default 10000.
    pub max_connections: usize,
    /// Deadline for the TLS handshake. Default 10 s.
    pub handshake_timeout_secs: u64,
    /// Deadline for a request's headers once it has started (slowloris). Default 10 s.
    pub header_read_timeout_secs: u64,
    /// Deadline for a whole request body. Default 30 s.
    pub body_read_timeout_secs: u64,
    /// A connection with no request in flight and no traffic for this long is closed.
    /// Default 60 s.
    pub idle_timeout_secs: u64,
    /// Largest request head (request line and headers), in bytes. Default 16384.
    pub max_header_bytes: usize,
    /// Largest request body, in bytes; larger gets 413. Default 1048576.
    pub max_body_bytes: usize,
    /// Requests served on one HTTP/1.1 connection before it is closed. Default 10000.
    pub max_requests_per_connection: usize,
    /// Concurrent HTTP/2 streams per connection. Default 100.
    pub max_concurrent_streams: u32,
    /// Name of the cookie that names this node for load-balancer affinity.
    /// Default `bridgehead-node`.
    pub affinity_cookie: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8443),
            max_connections: 10_000,
            handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            max_requests_per_connection: 10_000,
            max_concurrent_streams: 100,
            affinity_cookie: "bridgehead-node".to_owned(),
        }
    }
}

/// `[xsi]`: XSI-Actions authentication and behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XsiConfig {
    /// The HTTP Basic realm. Default `BroadWorks`.
    pub realm: String,
    /// How long a verified password is remembered (so a request does not pay the password
    /// hash each time). 0 turns the cache off. Default 300 s.
    pub auth_cache_secs: u64,
    /// Most remembered credentials. Default 100000.
    pub auth_cache_entries: usize,
    /// Failed logins allowed for one user from one address per minute before further
    /// attempts from there get 429. Default 10.
    pub failed_logins_per_user_per_minute: u32,
    /// Failed logins allowed per client address per minute, whatever the user, before
    /// further attempts get 429. Default 30.
    pub failed_logins_per_address_per_minute: u32,
    /// Failed logins allowed for one user from all addresses together per minute before
    /// further attempts get 429 everywhere. Default 100.
    pub failed_logins_per_user_all_addresses_per_minute: u32,
    /// Page size of directory searches without `results`. Default 50.
    pub directory_page_size: usize,
    /// Largest page a directory search may ask for. Default 1000.
    pub directory_max_page_size: usize,
    /// Events the telephony bus holds for its slowest subscriber. Default 4096.
    pub event_bus_capacity: usize,
}

impl Default for XsiConfig {
    fn default() -> Self {
        XsiConfig {
            realm: "BroadWorks".to_owned(),
            auth_cache_secs: 300,
            auth_cache_entries: 100_000,
            failed_logins_per_user_per_minute: 10,
            failed_logins_per_address_per_minute: 30,
            failed_logins_per_user_all_addresses_per_minute: 100,
            directory_page_size: 50,
            directory_max_page_size: 1000,
            event_bus_capacity: 4096,
        }
    }
}

/// `[cti]`: the CTI listener (XSI-Events and XSI-Actions over mutual TLS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CtiConfig {
    /// Serve the CTI listener. Default: on with the development PKI or when `trust_file`
    /// is set, off otherwise.
    pub enabled: Option<bool>,
    /// Address of the CTI listener. Default `0.0.0.0:8012`.
    pub listen: SocketAddr,
    /// The CAs a client certificate must chain to. Required with a configured [tls]
    /// certificate; with the development PKI, its CA.
    pub trust_file: Option<PathBuf>,
    /// The CNs admitted (each one application identity, e.g. `bwcticlient.webex.com`).
    /// Required with a configured [tls] certificate; with the development PKI,
    /// `cti-client.<domain>` (its CTI client certificate).
    pub allowed_client_ids: Vec<String>,
    /// Connections open at once. Default 1000.
    pub max_connections: usize,
}

impl Default for CtiConfig {
    fn default() -> Self {
        CtiConfig {
            enabled: None,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8012),
            trust_file: None,
            allowed_client_ids: Vec::new(),
            max_connections: 1000,
        }
    }
}

/// `[xsi_events]`: event channels, subscriptions and acknowledged delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XsiEventsConfig {
    /// Smallest channel or subscription lifetime granted; shorter requests get this.
    /// Default 3600 s.
    pub min_expires_secs: u64,
    /// Largest lifetime granted (2147483647 asks for no expiry and gets it). Default 86400 s.
    pub max_expires_secs: u64,
    /// A channel without a heartbeat for this long is ended. Default 60 s.
    pub event_timeout_secs: u64,
    /// An event not acknowledged within this is sent again. Default 10 s.
    pub ack_timeout_secs: u64,
    /// Sends of one event before its channel counts as unresponsive. Default 3.
    pub max_delivery_attempts: u32,
    /// Documents queued for one channel's stream; a channel whose queue is full is ended
    /// as too slow. Default 256.
    pub channel_queue_len: usize,
    /// Channels one channel set may hold. Default 4.
    pub max_channels_per_set: usize,
    /// Events kept for a channel set with no open channel (oldest dropped first).
    /// Default 1000.
    pub backlog_max_events: usize,
    /// How long such events are kept. Default 3600 s.
    pub backlog_max_age_secs: u64,
}

impl Default for XsiEventsConfig {
    fn default() -> Self {
        XsiEventsConfig {
            min_expires_secs: 3600,
            max_expires_secs: 86_400,
            event_timeout_secs: 60,
            ack_timeout_secs: 10,
            max_delivery_attempts: 3,
            channel_queue_len: 256,
            max_channels_per_set: 4,
            backlog_max_events: 1000,
            backlog_max_age_secs: 3600,
        }
    }
}

/// What happens when a component connects while its name already has a live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// The new connection wins; the old one gets the `conflict` stream error.
    #[default]
    Replace,
    /// The new connection gets the `conflict` stream error.
    Reject,
    /// Up to `max_connections` share the name (a bridge cluster).
    Balance,
}

impl OnConflict {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Replace => "replace",
            OnConflict::Reject => "reject",
            OnConflict::Balance => "balance",
        }
    }
}

impl std::str::FromStr for OnConflict {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "replace" => Ok(OnConflict::Replace),
            "reject" => Ok(OnConflict::Reject),
            "balance" => Ok(OnConflict::Balance),
            other => Err(format!("unknown on_conflict policy \"{other}\"")),
        }
    }
}

/// `[[components]]`: one XEP-0114 component.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// The component's domain, e.g. `bridge1.example.com`.
    pub name: String,
    /// The shared secret (or use `secret_file`).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// A file whose first line is the shared secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Live connections allowed under this name. Default 1.
    #[serde(default = "one")]
    pub max_connections: u32,
    /// `replace` (default), `reject` or `balance`.
    #[serde(default)]
    pub on_conflict: OnConflict,
    /// Seconds to hold stanzas for this component after it drops. Default 0.
    #[serde(default)]
    pub hold_secs: u64,
}

fn one() -> u32 {
    1
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
            let message = e.inner().message().to_owned();
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

    /// Checks every cross-field rule, reads `*_file` secrets, and reports all problems.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut problem =
            |key: String, message: String| problems.push(ConfigProblem { key, message });

        if let Err(why) = check_domain(&self.server.domain) {
            problem("server.domain".into(), why);
        }
        if let Some(fqdn) = &self.server.fqdn {
            if let Err(why) = check_domain(fqdn) {
                problem("server.fqdn".into(), why);
            }
        }
        if let Some(node_id) = &self.server.node_id {
            if !is_token(node_id) {
                problem(
                    "server.node_id".into(),
                    "must be non-empty and use only letters, digits, '-', '_' and '.' (it goes \
                     into cookies and ids)"
                        .into(),
                );
            }
        }
        if self.server.shutdown_grace_secs == 0 {
            problem(
                "server.shutdown_grace_secs".into(),
                "must be at least 1".into(),
            );
        }

        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => problem(
                "tls.key_file".into(),
                "required when tls.cert_file is set".into(),
            ),
            (None, Some(_)) => problem(
                "tls.cert_file".into(),
                "required when tls.key_file is set".into(),
            ),
            _ => {}
        }
        for (key, file) in [
            ("tls.cert_file", &self.tls.cert_file),
            ("tls.key_file", &self.tls.key_file),
            ("tls.key_password_file", &self.tls.key_password_file),
            ("tls.trust_file", &self.tls.trust_file),
        ] {
            if let Some(file) = file {
                if !file.is_file() {
                    problem(
                        key.into(),
                        format!("{} is not a readable file", file.display()),
                    );
                }
            }
        }

        for (key, value) in [
            (
                "xmpp.handshake_timeout_secs",
                self.xmpp.handshake_timeout_secs as usize,
            ),
            ("xmpp.max_stanza_bytes", self.xmpp.max_stanza_bytes),
            (
                "xmpp.max_component_connections",
                self.xmpp.max_component_connections,
            ),
            ("xmpp.send_queue_len", self.xmpp.send_queue_len),
            (
                "xmpp.component_ping_interval_secs",
                self.xmpp.component_ping_interval_secs as usize,
            ),
            (
                "xmpp.component_ping_timeout_secs",
                self.xmpp.component_ping_timeout_secs as usize,
            ),
            (
                "xmpp.max_client_connections",
                self.xmpp.max_client_connections,
            ),
            (
                "xmpp.login_timeout_secs",
                self.xmpp.login_timeout_secs as usize,
            ),
            (
                "xmpp.client_ping_interval_secs",
                self.xmpp.client_ping_interval_secs as usize,
            ),
            (
                "xmpp.client_ping_timeout_secs",
                self.xmpp.client_ping_timeout_secs as usize,
            ),
            (
                "xmpp.client_stanzas_per_second",
                self.xmpp.client_stanzas_per_second as usize,
            ),
            (
                "xmpp.client_stanza_burst",
                self.xmpp.client_stanza_burst as usize,
            ),
            (
                "xmpp.failed_logins_per_account_per_minute",
                self.xmpp.failed_logins_per_account_per_minute as usize,
            ),
            (
                "xmpp.failed_logins_per_address_per_minute",
                self.xmpp.failed_logins_per_address_per_minute as usize,
            ),
            (
                "xmpp.failed_logins_per_account_all_addresses_per_minute",
                self.xmpp.failed_logins_per_account_all_addresses_per_minute as usize,
            ),
            (
                "xmpp.auth_via_component_timeout_secs",
                self.xmpp.auth_via_component_timeout_secs as usize,
            ),
            ("xmpp.sm_max_unacked", self.xmpp.sm_max_unacked),
            (
                "xmpp.write_timeout_secs",
                self.xmpp.write_timeout_secs as usize,
            ),
            ("http.max_connections", self.http.max_connections),
            (
                "http.handshake_timeout_secs",
                self.http.handshake_timeout_secs as usize,
            ),
            (
                "http.header_read_timeout_secs",
                self.http.header_read_timeout_secs as usize,
            ),
            (
                "http.body_read_timeout_secs",
                self.http.body_read_timeout_secs as usize,
            ),
            (
                "http.idle_timeout_secs",
                self.http.idle_timeout_secs as usize,
            ),
            ("http.max_body_bytes", self.http.max_body_bytes),
            (
                "http.max_requests_per_connection",
                self.http.max_requests_per_connection,
            ),
            (
                "http.max_concurrent_streams",
                self.http.max_concurrent_streams as usize,
            ),
            ("xsi.auth_cache_entries", self.xsi.auth_cache_entries),
            (
                "xsi.failed_logins_per_user_per_minute",
                self.xsi.failed_logins_per_user_per_minute as usize,
            ),
            (
                "xsi.failed_logins_per_address_per_minute",
                self.xsi.failed_logins_per_address_per_minute as usize,
            ),
            (
                "xsi.failed_logins_per_user_all_addresses_per_minute",
                self.xsi.failed_logins_per_user_all_addresses_per_minute as usize,
            ),
            ("xsi.directory_page_size", self.xsi.directory_page_size),
            (
                "xsi.directory_max_page_size",
                self.xsi.directory_max_page_size,
            ),
            ("xsi.event_bus_capacity", self.xsi.event_bus_capacity),
            (
                "xsi_events.event_timeout_secs",
                self.xsi_events.event_timeout_secs as usize,
            ),
            (
                "xsi_events.ack_timeout_secs",
                self.xsi_events.ack_timeout_secs as usize,
            ),
            (
                "xsi_events.max_delivery_attempts",
                self.xsi_events.max_delivery_attempts as usize,
            ),
            (
                "xsi_events.channel_queue_len",
                self.xsi_events.channel_queue_len,
            ),
            (
                "xsi_events.max_channels_per_set",
                self.xsi_events.max_channels_per_set,
            ),
            (
                "xsi_events.backlog_max_events",
                self.xsi_events.backlog_max_events,
            ),
        ] {
            if value == 0 {
                problem(key.into(), "must be at least 1".into());
            }
        }
        if self.http.max_header_bytes < 1024 {
            problem(
                "http.max_header_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        if self.cti.enabled == Some(true) && !self.uses_dev_pki() {
            if self.cti.trust_file.is_none() {
                problem(
                    "cti.trust_file".into(),
                    "required when the CTI listener is enabled with a configured [tls] \
                     certificate (or set cti.enabled = false)"
                        .into(),
                );
            }
            if self.cti.allowed_client_ids.is_empty() {
                problem(
                    "cti.allowed_client_ids".into(),
                    "required when the CTI listener is enabled: the CNs of the admitted \
                     applications"
                        .into(),
                );
            }
        }
        if let Some(file) = &self.cti.trust_file {
            if !file.is_file() {
                problem(
                    "cti.trust_file".into(),
                    format!("{} is not a readable file", file.display()),
                );
            }
        }
        if self.xsi_events.max_expires_secs >= 2_147_483_647 {
            problem(
                "xsi_events.max_expires_secs".into(),
                "must be below 2147483647 (that value means \"never expires\")".into(),
            );
        }
        if self.xsi_events.min_expires_secs > self.xsi_events.max_expires_secs {
            problem(
                "xsi_events.min_expires_secs".into(),
                "must not exceed xsi_events.max_expires_secs".into(),
            );
        }
        if self.xsi.directory_page_size > self.xsi.directory_max_page_size {
            problem(
                "xsi.directory_page_size".into(),
                "must not exceed xsi.directory_max_page_size".into(),
            );
        }
        for name in self
            .xmpp
            .login_notify
            .iter()
            .chain(&self.xmpp.auth_via_component)
        {
            if let Err(why) = check_domain(name) {
                problem("xmpp.login_notify / xmpp.auth_via_component".into(), why);
            } else if name.eq_ignore_ascii_case(&self.server.domain) {
                problem(
                    "xmpp.login_notify / xmpp.auth_via_component".into(),
                    "must name a component, not the server domain".into(),
                );
            }
        }
        if !is_token(&self.http.affinity_cookie) {
            problem(
                "http.affinity_cookie".into(),
                "must be a cookie name: letters, digits, '-', '_' and '.'".into(),
            );
        }
        if self.xsi.realm.is_empty() || self.xsi.realm.contains('"') {
            problem(
                "xsi.realm".into(),
                "must be non-empty and contain no '\"'".into(),
            );
        }
        if self.limits.max_xml_depth.get() > MAX_XML_DEPTH_CEILING {
            problem(
                "limits.max_xml_depth".into(),
                format!("must be at most {MAX_XML_DEPTH_CEILING}"),
            );
        }
        if self.xmpp.max_stanza_bytes < 10_000 {
            problem(
                "xmpp.max_stanza_bytes".into(),
                "must be at least 10000 (RFC 6120 asks servers to accept at least 10000 bytes)"
                    .into(),
            );
        }

        if self.store.scram_iterations < 4096 {
            problem(
                "store.scram_iterations".into(),
                format!(
                    "{} is below the minimum of 4096 (RFC 7677)",
                    self.store.scram_iterations
                ),
            );
        }

        let mut seen = std::collections::HashSet::new();
        for (i, component) in self.components.iter_mut().enumerate() {
            let key = |field: &str| format!("components[{i}].{field}");
            if let Err(why) = check_domain(&component.name) {
                problem(key("name"), why);
            } else if !seen.insert(component.name.to_ascii_lowercase()) {
                problem(
                    key("name"),
                    format!("\"{}\" is declared twice", component.name),
                );
            }
            if component.name.eq_ignore_ascii_case(&self.server.domain) {
                problem(
                    key("name"),
                    "a component cannot take the server's own domain".into(),
                );
            }
            match (&component.secret, &component.secret_file) {
                (Some(_), Some(_)) => problem(
                    key("secret"),
                    "give either secret or secret_file, not both".into(),
                ),
                (None, None) => problem(
                    key("secret"),
                    "a secret (or secret_file) is required".into(),
                ),
                (None, Some(file)) => match read_secret_file(file) {
                    Ok(secret) => component.secret = Some(secret),
                    Err(why) => problem(key("secret_file"), why),
                },
                (Some(secret), None) if secret.expose().is_empty() => {
                    problem(key("secret"), "must not be empty".into())
                }
                (Some(_), None) => {}
            }
            if component.max_connections == 0 {
                problem(key("max_connections"), "must be at least 1".into());
            }
            if component.on_conflict == OnConflict::Balance && component.max_connections < 2 {
                problem(
                    key("max_connections"),
                    "on_conflict = \"balance\" needs max_connections of 2 or more".into(),
                );
            }
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Reads a secret file: its first line, trimmed of the line ending.
pub fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let secret = text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned();
    if secret.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret(secret))
}

/// A non-empty word of ASCII letters, digits, `-`, `_` and `.`: safe in cookies and ids.
fn is_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Checks that `name` is a plausible DNS domain (the rules XMPP domainparts follow).
pub fn check_domain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 253 {
        return Err(format!("\"{name}\" is longer than 253 characters"));
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !name.split('.').all(valid_label) {
        return Err(format!("\"{name}\" is not a valid domain name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(Path::new("test.toml"), text)
    }

    #[test]
    fn unknown_key_is_rejected_with_its_path() {
        let err = parse("[server]\ndomian = \"example.com\"\n").unwrap_err();
        match err {
            ConfigError::Parse { key, message, .. } => {
                assert_eq!(key, "server.domian");
                assert!(message.contains("unknown field"), "{message}");
                assert!(message.contains("line 2"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_key_in_a_component_names_its_index() {
        let err =
            parse("[[components]]\nname = \"b.example.com\"\nsecret = \"s\"\nmax_conns = 2\n")
                .unwrap_err();
        assert!(
            matches!(&err, ConfigError::Parse { key, .. } if key == "components[0].max_conns"),
            "{err}"
        );
    }

    #[test]
    fn validation_reports_every_problem_at_once() {
        let mut config = parse(
            "[server]\ndomain = \"bad domain\"\n[tls]\ncert_file = \"/nonexistent.pem\"\n\
             [store]\nscram_iterations = 100\n\
             [[components]]\nname = \"b.example.com\"\n\
             [[components]]\nname = \"b.example.com\"\nsecret = \"x\"\non_conflict = \"balance\"\n",
        )
        .unwrap();
        let ConfigError::Invalid(problems) = config.validate().unwrap_err() else {
            panic!("expected Invalid");
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for expected in [
            "server.domain",
            "tls.key_file",
            "tls.cert_file",
            "store.scram_iterations",
            "components[0].secret",
            "components[1].name",
            "components[1].max_connections",
        ] {
            assert!(keys.contains(&expected), "{expected} missing from {keys:?}");
        }
    }

    #[test]
    fn secret_file_is_read_during_validation() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        let mut config = parse(&format!(
            "[[components]]\nname = \"bridge.example.com\"\nsecret_file = \"{}\"\n",
            file.display()
        ))
        .unwrap();
        config.validate().unwrap();
        assert_eq!(
            config.components[0].secret.as_ref().unwrap().expose(),
            "s3cret"
        );
        assert_eq!(
            format!("{:?}", config.components[0].secret),
            "Some(Secret(***))"
        );
    }
}
