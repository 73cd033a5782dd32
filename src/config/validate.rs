//! [`Config::validate`]: every cross-field rule, checked at once, with every problem
//! reported by its key path; and the checks the CLI shares (domains, secret files).

use std::path::Path;

use super::{Config, ConfigError, ConfigProblem, Secret, MAX_XML_DEPTH_CEILING};
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

impl Config {
    /// Checks every cross-field rule, reads `*_file` secrets, and reports all problems.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        self.validate_with(Files::Check)
    }

    /// [`Config::validate`], with or without the files.
    pub fn validate_with(&mut self, files: Files) -> Result<(), ConfigError> {
        let check_files = files == Files::Check;
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
            if let Some(file) = file.as_ref().filter(|_| check_files) {
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
                "xmpp.sm_request_after_stanzas",
                self.xmpp.sm_request_after_stanzas,
            ),
            (
                "xmpp.sm_request_after_secs",
                self.xmpp.sm_request_after_secs as usize,
            ),
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
        if let Some(file) = self.cti.trust_file.as_ref().filter(|_| check_files) {
            if !file.is_file() {
                problem(
                    "cti.trust_file".into(),
                    format!("{} is not a readable file", file.display()),
                );
            } else if let Err(why) = crate::pki::input::read_certificates(file) {
                problem(
                    "cti.trust_file".into(),
                    format!("{} holds no PEM certificate: {why}", file.display()),
                );
            }
        }
        if self.xsi_events.max_expires_secs >= 2_147_483_647 {
            problem(
                "xsi_events.max_expires_secs".into(),
                "must be below 2147483647 (that value means \"never expires\")".into(),
            );
        }
        let code = &self.xsi.country_code;
        if code.is_empty() || code.len() > 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            problem(
                "xsi.country_code".into(),
                format!("{code:?} is not a country code (1 to 3 digits, no +)"),
            );
        }
        if self.xmpp.sm_request_after_stanzas > self.xmpp.sm_max_unacked {
            problem(
                "xmpp.sm_request_after_stanzas".into(),
                "must not exceed xmpp.sm_max_unacked".into(),
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
                (None, Some(_)) if !check_files => {}
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
