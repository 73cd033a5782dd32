//! [`Config::validate`]: every rule the types cannot carry (counts that must be at least 1
//! are `NonZero` and fail the parse), checked at once, section by section, with every
//! problem reported by its key path; and the checks the CLI shares (domains, secret files).

use std::path::Path;

use super::{
    AdminConfig, ClusterConfig, ComponentConfig, Config, ConfigError, ConfigProblem, CtiConfig,
    HttpConfig, Secret, ServerConfig, StoreBackend, TlsConfig, XmppConfig, XsiConfig,
    XsiEventsConfig, MAX_XML_DEPTH_CEILING,
};
use crate::telephony::OnConflict;

/// Whether validation looks at the files the configuration names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// Certificates, keys and trust files must exist (the CTI trust file must hold PEM
    /// certificates) and `*_file` secrets are read.
    Check,
    /// The rules only, for a configuration whose files are not in place yet
    /// (`check-config --syntax-only`).
    Skip,
}

/// Problems found so far, each under its key path.
#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// `file`, when given and files are checked, must be a readable file.
    fn file(&mut self, key: &str, file: Option<&Path>, files: Files) -> bool {
        match file {
            Some(file) if files == Files::Check && !file.is_file() => {
                self.add(key, format!("{} is not a readable file", file.display()));
                false
            }
            _ => true,
        }
    }

    /// `smaller` must not exceed `larger` (both key paths).
    fn at_most<T: PartialOrd>(&mut self, smaller: (&str, T), larger: (&str, T)) {
        if smaller.1 > larger.1 {
            self.add(smaller.0, format!("must not exceed {}", larger.0));
        }
    }
}

impl Config {
    /// Checks every cross-field rule, reads `*_file` secrets, and reports all problems.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        self.validate_with(Files::Check)
    }

    /// [`Config::validate`], with or without the files. Each section checks its own
    /// rules; the few that join sections (CTI and the development PKI, names that must
    /// not be the server's domain) take what they need as arguments.
    pub fn validate_with(&mut self, files: Files) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        let dev_pki = self.uses_dev_pki();
        let domain = self.server.domain.clone();
        server(&self.server, &mut problems);
        tls(&self.tls, files, &mut problems);
        xmpp(&self.xmpp, &domain, &mut problems);
        http(&self.http, &mut problems);
        cti(&self.cti, dev_pki, files, &mut problems);
        xsi(&self.xsi, &mut problems);
        xsi_events(&self.xsi_events, &mut problems);
        if self.limits.max_xml_depth.get() > MAX_XML_DEPTH_CEILING {
            problems.add(
                "limits.max_xml_depth",
                format!("must be at most {MAX_XML_DEPTH_CEILING}"),
            );
        }
        if self.store.scram_iterations < 4096 {
            problems.add(
                "store.scram_iterations",
                format!(
                    "{} is below the minimum of 4096 (RFC 7677)",
                    self.store.scram_iterations
                ),
            );
        }
        match (self.store.backend, &self.store.url) {
            (StoreBackend::Postgres, None) => problems.add(
                "store.url",
                "backend \"postgres\" needs url = \"postgres://user:password@host:port/db\"",
            ),
            (StoreBackend::Postgres, Some(url))
                if url.expose().parse::<tokio_postgres::Config>().is_err() =>
            {
                problems.add("store.url", "is not a PostgreSQL connection string or URL")
            }
            (StoreBackend::Sqlite, Some(_)) => {
                problems.add("store.url", "is only used with backend = \"postgres\"")
            }
            _ => {}
        }
        if self.store.ca.is_some() && self.store.backend != StoreBackend::Postgres {
            problems.add("store.ca", "is only used with backend = \"postgres\"");
        }
        components(&mut self.components, &domain, files, &mut problems);
        admin(&mut self.admin, files, &mut problems);
        if let Some(cluster) = &mut self.cluster {
            self::cluster(
                cluster,
                &self.server,
                self.store.backend,
                files,
                &mut problems,
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            problems.add(
                "log.filter",
                format!("{:?} is not a log filter: {e}", self.log.filter),
            );
        }
        if problems.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems.0))
        }
    }
}

/// A node name fit for NATS subjects, agreeing with `server.node_id`; a NATS URL; a token
/// read from its file; a store that every node shares.
fn cluster(
    cluster: &mut ClusterConfig,
    server: &ServerConfig,
    backend: StoreBackend,
    files: Files,
    problems: &mut Problems,
) {
    if !super::is_node_name(&cluster.node) {
        problems.add(
            "cluster.node",
            "must be non-empty and use only letters, digits, '-' and '_' (it names the node's \
             NATS subjects, cookies and ids)",
        );
    }
    if server
        .node_id
        .as_ref()
        .is_some_and(|id| *id != cluster.node)
    {
        problems.add(
            "server.node_id",
            "differs from cluster.node; set one of them (cluster.node names a cluster's node)",
        );
    }
    let urls = cluster.nats_url.expose();
    if urls
        .split(',')
        .any(|url| url.trim().parse::<async_nats::ServerAddr>().is_err())
    {
        problems.add(
            "cluster.nats_url",
            "is not a NATS URL (nats://host:4222) or a list of them",
        );
    }
    if backend != StoreBackend::Postgres {
        problems.add(
            "store.backend",
            "a cluster's nodes share one store: set backend = \"postgres\" with [cluster]",
        );
    }
    match &cluster.nats_token_file {
        Some(path) if files == Files::Check => match read_secret_file(path) {
            Ok(token) => cluster.nats_token = Some(token),
            Err(why) => problems.add("cluster.nats_token_file", why),
        },
        _ => {}
    }
}

fn admin(admin: &mut AdminConfig, files: Files, problems: &mut Problems) {
    if !admin.enabled {
        return;
    }
    match &admin.token_file {
        Some(path) if files == Files::Check => match read_secret_file(path) {
            Ok(token) => admin.token = Some(token),
            Err(why) => problems.add("admin.token_file", why),
        },
        Some(_) => {}
        None if !admin.listen.is_loopback() => problems.add(
            "admin.token_file",
            format!(
                "required: the admin listener has a non-loopback address ({}), and the \
                 admin API must not be open to the network without a token",
                admin.listen
            ),
        ),
        None => {}
    }
}

fn server(server: &ServerConfig, problems: &mut Problems) {
    if let Err(why) = check_domain(&server.domain) {
        problems.add("server.domain", why);
    }
    if let Some(fqdn) = &server.fqdn {
        if let Err(why) = check_domain(fqdn) {
            problems.add("server.fqdn", why);
        }
    }
    if let Some(node_id) = &server.node_id {
        if !is_token(node_id) {
            problems.add(
                "server.node_id",
                "must be non-empty and use only letters, digits, '-', '_' and '.' (it goes \
                 into cookies and ids)",
            );
        }
    }
}

fn tls(tls: &TlsConfig, files: Files, problems: &mut Problems) {
    match (&tls.cert_file, &tls.key_file) {
        (Some(_), None) => problems.add("tls.key_file", "required when tls.cert_file is set"),
        (None, Some(_)) => problems.add("tls.cert_file", "required when tls.key_file is set"),
        _ => {}
    }
    for (key, file) in [
        ("tls.cert_file", &tls.cert_file),
        ("tls.key_file", &tls.key_file),
        ("tls.key_password_file", &tls.key_password_file),
        ("tls.trust_file", &tls.trust_file),
    ] {
        problems.file(key, file.as_deref(), files);
    }
}

fn xmpp(xmpp: &XmppConfig, domain: &str, problems: &mut Problems) {
    problems.at_most(
        (
            "xmpp.sm_request_after_stanzas",
            xmpp.sm_request_after_stanzas,
        ),
        ("xmpp.sm_max_unacked", xmpp.sm_max_unacked),
    );
    for name in xmpp.login_notify.iter().chain(&xmpp.auth_via_component) {
        let key = "xmpp.login_notify / xmpp.auth_via_component";
        if let Err(why) = check_domain(name) {
            problems.add(key, why);
        } else if name.eq_ignore_ascii_case(domain) {
            problems.add(key, "must name a component, not the server domain");
        }
    }
    if xmpp.max_stanza_bytes.get() < 10_000 {
        problems.add(
            "xmpp.max_stanza_bytes",
            "must be at least 10000 (RFC 6120 asks servers to accept at least 10000 bytes)",
        );
    }
}

fn http(http: &HttpConfig, problems: &mut Problems) {
    if http.max_header_bytes < 1024 {
        problems.add("http.max_header_bytes", "must be at least 1024");
    }
    if !is_token(&http.affinity_cookie) {
        problems.add(
            "http.affinity_cookie",
            "must be a cookie name: letters, digits, '-', '_' and '.'",
        );
    }
}

/// CTI needs its own trust and allow-list unless the development PKI provides them.
fn cti(cti: &CtiConfig, dev_pki: bool, files: Files, problems: &mut Problems) {
    if cti.enabled == Some(true) && !dev_pki {
        if cti.trust_file.is_none() {
            problems.add(
                "cti.trust_file",
                "required when the CTI listener is enabled with a configured [tls] \
                 certificate (or set cti.enabled = false)",
            );
        }
        if cti.allowed_client_ids.is_empty() {
            problems.add(
                "cti.allowed_client_ids",
                "required when the CTI listener is enabled: the CNs of the admitted \
                 applications",
            );
        }
    }
    if let Some(file) = cti.trust_file.as_deref() {
        if problems.file("cti.trust_file", Some(file), files) && files == Files::Check {
            if let Err(why) = crate::pki::input::read_certificates(file) {
                problems.add(
                    "cti.trust_file",
                    format!("{} holds no PEM certificate: {why}", file.display()),
                );
            }
        }
    }
}

fn xsi(xsi: &XsiConfig, problems: &mut Problems) {
    let code = &xsi.country_code;
    if code.is_empty() || code.len() > 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        problems.add(
            "xsi.country_code",
            format!("{code:?} is not a country code (1 to 3 digits, no +)"),
        );
    }
    problems.at_most(
        ("xsi.directory_page_size", xsi.directory_page_size),
        ("xsi.directory_max_page_size", xsi.directory_max_page_size),
    );
    if xsi.realm.is_empty() || xsi.realm.contains('"') {
        problems.add("xsi.realm", "must be non-empty and contain no '\"'");
    }
}

fn xsi_events(events: &XsiEventsConfig, problems: &mut Problems) {
    if events.max_expires_secs >= 2_147_483_647 {
        problems.add(
            "xsi_events.max_expires_secs",
            "must be below 2147483647 (that value means \"never expires\")",
        );
    }
    problems.at_most(
        ("xsi_events.min_expires_secs", events.min_expires_secs),
        ("xsi_events.max_expires_secs", events.max_expires_secs),
    );
}

/// Names unique and not the server's domain, one secret each (a `secret_file` is read
/// into `secret` when files are checked), connection counts that fit the policy.
fn components(
    components: &mut [ComponentConfig],
    domain: &str,
    files: Files,
    problems: &mut Problems,
) {
    let mut seen = std::collections::HashSet::new();
    for (i, component) in components.iter_mut().enumerate() {
        let key = |field: &str| format!("components[{i}].{field}");
        if let Err(why) = check_domain(&component.name) {
            problems.add(key("name"), why);
        } else if !seen.insert(component.name.to_ascii_lowercase()) {
            problems.add(
                key("name"),
                format!("\"{}\" is declared twice", component.name),
            );
        }
        if component.name.eq_ignore_ascii_case(domain) {
            problems.add(
                key("name"),
                "a component cannot take the server's own domain",
            );
        }
        match (&component.secret, &component.secret_file) {
            (Some(_), Some(_)) => {
                problems.add(key("secret"), "give either secret or secret_file, not both")
            }
            (None, None) => problems.add(key("secret"), "a secret (or secret_file) is required"),
            (None, Some(_)) if files == Files::Skip => {}
            (None, Some(file)) => match read_secret_file(file) {
                Ok(secret) => component.secret = Some(secret),
                Err(why) => problems.add(key("secret_file"), why),
            },
            (Some(secret), None) if secret.expose().is_empty() => {
                problems.add(key("secret"), "must not be empty")
            }
            (Some(_), None) => {}
        }
        if component.max_connections == 0 {
            problems.add(key("max_connections"), "must be at least 1");
        }
        if component.on_conflict == OnConflict::Balance && component.max_connections < 2 {
            problems.add(
                key("max_connections"),
                "on_conflict = \"balance\" needs max_connections of 2 or more",
            );
        }
    }
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
