//! Metrics: counters and gauges through the `metrics` facade, rendered in Prometheus text
//! format on the admin listener's `/metrics`.
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `bridgehead_component_handshakes_total` | `result` = ok, failed | XEP-0114 handshakes |
//! | `bridgehead_component_connections` | — | live component connections |
//! | `bridgehead_stanzas_routed_total` | `component` | stanzas queued for a component connection |
//! | `bridgehead_stanzas_held_total` | `component` | stanzas held while a component was away |
//! | `bridgehead_stanzas_bounced_total` | `component`, `condition` | stanzas answered with a stanza error |
//! | `bridgehead_client_sessions` | `transport` = c2s, websocket | live bound client sessions |
//! | `bridgehead_client_logins_total` | `result` = ok, failed, throttled; `mechanism` = SCRAM-SHA-256-PLUS … PLAIN, unknown | client SASL logins |
//! | `bridgehead_client_stanzas_total` | `kind` = message, presence, iq | stanzas received from clients |
//! | `bridgehead_http_responses_total` | `class` = 1xx … 5xx | HTTPS responses sent |
//! | `bridgehead_xsi_logins_total` | `result` = ok, cached, failed, throttled | XSI authentications |
//! | `bridgehead_cti_refusals_total` | `rule` = absent, chain, eku-broadworks-oid, eku-client-auth, subject-alt-name, common-name | CTI client certificates refused |
//! | `bridgehead_limit_refusals_total` | `limit` = xml_depth | input refused for breaking a `[limits]` bound |
//! | `bridgehead_quota_refusals_total` | `quota` = a `[quotas]` key | writes refused for a per-user quota |
//! | `bridgehead_preauth_refusals_total` | `listener`, `reason` = per_address, evicted | connections dropped before authenticating |
//! | `bridgehead_throttled_attempts_total` | `kind` = sasl, xsi, component | credential checks refused by the login limiter |
//!
//! The `component` label only ever carries configured component names (or `unknown`), so a
//! peer cannot grow the label set by addressing made-up domains.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle (`None` if
/// another recorder was installed first, e.g. by an embedding application).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => {
                describe();
                Some(handle)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                None
            }
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "bridgehead_component_handshakes_total",
        "XEP-0114 component handshakes by result"
    );
    metrics::describe_gauge!(
        "bridgehead_component_connections",
        "Live XEP-0114 component connections"
    );
    metrics::describe_counter!(
        "bridgehead_stanzas_routed_total",
        "Stanzas queued for a component connection"
    );
    metrics::describe_counter!(
        "bridgehead_stanzas_held_total",
        "Stanzas held while their component was away"
    );
    metrics::describe_counter!(
        "bridgehead_stanzas_bounced_total",
        "Stanzas answered with a stanza error, by condition"
    );
    metrics::describe_counter!(
        "bridgehead_http_responses_total",
        "HTTPS responses by status class"
    );
    metrics::describe_counter!(
        "bridgehead_cti_refusals_total",
        "CTI client certificates refused, by the rule they broke"
    );
    metrics::describe_gauge!(
        "bridgehead_client_sessions",
        "Live bound XMPP client sessions by transport"
    );
    metrics::describe_counter!(
        "bridgehead_client_logins_total",
        "XMPP client SASL logins by result"
    );
    metrics::describe_counter!(
        "bridgehead_client_stanzas_total",
        "Stanzas received from XMPP clients by kind"
    );
    metrics::describe_counter!(
        "bridgehead_limit_refusals_total",
        "Input refused for breaking a [limits] bound, by limit"
    );
    metrics::describe_counter!(
        "bridgehead_quota_refusals_total",
        "Writes refused for a per-user [quotas] key, by quota"
    );
    metrics::describe_counter!(
        "bridgehead_preauth_refusals_total",
        "Connections dropped before authenticating, by listener and reason"
    );
    metrics::describe_counter!(
        "bridgehead_throttled_attempts_total",
        "Credential checks refused by the login limiter, by kind"
    );
    metrics::describe_counter!(
        "bridgehead_xsi_logins_total",
        "XSI authentications by result (cached = verified from the credential cache)"
    );
}

/// An HTTPS response with `status` was sent.
pub fn http_response(status: u16) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("bridgehead_http_responses_total", "class" => class).increment(1);
}

/// An XSI authentication ended with `result` (`ok`, `cached`, `failed`, `throttled`).
pub fn xsi_login(result: &'static str) {
    metrics::counter!("bridgehead_xsi_logins_total", "result" => result).increment(1);
}

/// A CTI client certificate was refused for breaking `rule`.
pub fn cti_refusal(rule: &'static str) {
    metrics::counter!("bridgehead_cti_refusals_total", "rule" => rule).increment(1);
}

/// A component handshake finished (`ok` true) or was refused.
pub fn handshake(ok: bool) {
    metrics::counter!("bridgehead_component_handshakes_total", "result" => if ok { "ok" } else { "failed" })
        .increment(1);
}

/// A component connection opened (`+1`) or closed (`-1`).
pub fn component_connections(delta: f64) {
    metrics::gauge!("bridgehead_component_connections").increment(delta);
}

/// A stanza was queued for `component`.
pub fn routed(component: &str) {
    metrics::counter!("bridgehead_stanzas_routed_total", "component" => component.to_owned())
        .increment(1);
}

/// A stanza was held for `component`.
pub fn held(component: &str) {
    metrics::counter!("bridgehead_stanzas_held_total", "component" => component.to_owned())
        .increment(1);
}

/// A stanza for `component` (a configured name, or `unknown`) bounced with `condition`.
pub fn bounced(component: &str, condition: &'static str) {
    metrics::counter!("bridgehead_stanzas_bounced_total", "component" => component.to_owned(), "condition" => condition)
        .increment(1);
}

/// A client session was bound (`+1`) or ended (`-1`) on `transport`.
pub fn client_sessions(transport: &'static str, delta: f64) {
    metrics::gauge!("bridgehead_client_sessions", "transport" => transport).increment(delta);
}

/// A client SASL login with `mechanism` ended with `result` (`ok`, `failed`, `throttled`).
pub fn client_login(result: &'static str, mechanism: &'static str) {
    metrics::counter!("bridgehead_client_logins_total", "result" => result, "mechanism" => mechanism)
        .increment(1);
}

/// A client sent a stanza of `kind` (`message`, `presence`, `iq`).
pub fn client_stanza(kind: &'static str) {
    metrics::counter!("bridgehead_client_stanzas_total", "kind" => kind).increment(1);
}

/// Input was refused for breaking the `[limits]` bound `limit`.
pub fn limit_refusal(limit: &'static str) {
    metrics::counter!("bridgehead_limit_refusals_total", "limit" => limit).increment(1);
}

/// A write was refused for the `[quotas]` key `quota`.
pub fn quota_refusal(quota: &'static str) {
    metrics::counter!("bridgehead_quota_refusals_total", "quota" => quota).increment(1);
}

/// A connection to `listener` was dropped before it authenticated, for `reason`.
pub fn preauth_refusal(listener: &'static str, reason: &'static str) {
    metrics::counter!("bridgehead_preauth_refusals_total", "listener" => listener, "reason" => reason)
        .increment(1);
}

/// A credential check of `kind` (`sasl`, `xsi`, `component`) was refused by the limiter.
pub fn throttled_attempt(kind: &'static str) {
    metrics::counter!("bridgehead_throttled_attempts_total", "kind" => kind).increment(1);
}
