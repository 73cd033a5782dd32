//! Metrics: counters, gauges and histograms through the `metrics` facade, rendered in
//! Prometheus text format on the admin listener's `/metrics`.
//!
//! Every series with a fixed label set exists from start-up with value 0 ([`install`]),
//! so that `rate()` and alerts work before the first event; component-labelled series
//! are created for every configured or registered component ([`components_known`]).
//! Durations are histograms in seconds with the buckets of [`BUCKETS`]. HTTP requests are
//! labelled by their API's mount prefix and route template (`v2.0/user/{user}/profile`),
//! never the raw path.
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `bridgehead_build_info` | gauge | `version` | always 1 |
//! | `bridgehead_component_handshakes_total` | counter | `result` = ok, failed | XEP-0114 handshakes |
//! | `bridgehead_component_handshake_duration_seconds` | histogram | `result` | stream open to handshake answer |
//! | `bridgehead_component_connections` | gauge | — | live component connections |
//! | `bridgehead_stanzas_routed_total` | counter | `component` | stanzas queued for a component connection |
//! | `bridgehead_stanzas_held_total` | counter | `component` | stanzas held while a component was away |
//! | `bridgehead_stanzas_bounced_total` | counter | `component`, `condition` | stanzas answered with a stanza error |
//! | `bridgehead_client_sessions` | gauge | `transport` = c2s, websocket | live bound client sessions |
//! | `bridgehead_client_logins_total` | counter | `result` = ok, failed, throttled; `mechanism` | client SASL logins |
//! | `bridgehead_client_login_duration_seconds` | histogram | `result` | `<auth/>` to `<success/>` or `<failure/>` |
//! | `bridgehead_client_stanzas_total` | counter | `kind` = message, presence, iq | stanzas received from clients |
//! | `bridgehead_http_responses_total` | counter | `listener` = https, cti; `class` = 1xx … 5xx | HTTPS responses |
//! | `bridgehead_http_request_duration_seconds` | histogram | `listener`, `mount` (the API's path prefix), `route` (its template) | request to response headers |
//! | `bridgehead_xsi_logins_total` | counter | `result` = ok, cached, failed, throttled | XSI authentications |
//! | `bridgehead_xsi_channels` | gauge | — | open event channels |
//! | `bridgehead_xsi_channel_sets` | gauge | — | channel sets with an open channel |
//! | `bridgehead_xsi_subscriptions` | gauge | — | subscriptions |
//! | `bridgehead_xsi_events_total` | counter | `outcome` = delivered, acked, resent, backlogged, dropped | XSI-Events deliveries |
//! | `bridgehead_xsi_event_delivery_seconds` | histogram | — | telephony event to its first write on a channel |
//! | `bridgehead_xsi_ack_round_trip_seconds` | histogram | — | an event's write to its acknowledgement |
//! | `bridgehead_cti_refusals_total` | counter | `rule` | CTI client certificates refused |
//! | `bridgehead_limit_refusals_total` | counter | `limit` = xml_depth | input refused for breaking a `[limits]` bound |
//! | `bridgehead_quota_refusals_total` | counter | `quota` = a `[quotas]` key | writes refused for a per-user quota |
//! | `bridgehead_cluster_forwards_total` | counter | `service` = xsi-channel, xsi-call, xmpp, xmpp-takeover; `outcome` = answered, gone, timeout, unavailable | requests that reached a node which does not own what they name, forwarded to the owner; stanzas sent to the node that holds their connection; sessions another node's bind takes over |
//! | `bridgehead_cluster_forward_seconds` | histogram | `service` | a forwarded request's round trip to its owner |
//! | `bridgehead_cluster_event_subjects` | gauge | — | NATS subjects this node listens on for other nodes' events |
//! | `bridgehead_xsi_standby_sets` | gauge | — | channel sets with channels on this node whose events another node delivers |
//! | `bridgehead_xsi_set_takeovers_total` | counter | — | channel sets this node took over from a node that no longer delivered them (its last channel ended, or it died) |
//! | `bridgehead_preauth_refusals_total` | counter | `listener`, `reason` = per_address, evicted | connections dropped before authenticating |
//! | `bridgehead_throttled_attempts_total` | counter | `kind` = sasl, xsi, component | credential checks refused by the login limiter |
//! | `bridgehead_reloads_total` | counter | `result` = ok, refused | configuration and certificate reloads |
//! | `bridgehead_certificate_expiry_timestamp_seconds` | gauge | `listener` | the served certificate's notAfter, Unix seconds |
//! | `process_*` | | | CPU, memory, open files, threads (`metrics-process`) |
//!
//! The `component` label only ever carries configured or registered component names (or
//! `unknown`), so a peer cannot grow the label set by addressing made-up domains.

pub mod recent;

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets, in seconds: half a millisecond to ten seconds.
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const SASL_MECHANISMS: &[&str] = &[
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-1",
    "PLAIN",
    "unknown",
];
const CTI_RULES: &[&str] = &[
    "absent",
    "chain",
    "eku-broadworks-oid",
    "eku-client-auth",
    "subject-alt-name",
    "common-name",
];
const QUOTAS: &[&str] = &[
    "max_roster_items",
    "max_roster_groups_per_item",
    "max_roster_text_bytes",
    "max_subscriptions_per_user",
    "max_event_id_bytes",
    "max_channel_sets_per_user",
    "max_channels_per_user",
    "max_personal_entries",
    "max_calls_per_user",
];
const LISTENERS: &[&str] = &["admin", "component", "c2s", "https", "cti"];
const EVENT_OUTCOMES: &[&str] = &["delivered", "acked", "resent", "backlogged", "dropped"];

struct Recorder {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns its handle (`None` if
/// another recorder was installed first, e.g. by an embedding application).
pub fn install() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match built {
                Ok(handle) => {
                    describe();
                    zero();
                    let process = metrics_process::Collector::default();
                    process.describe();
                    Some(Recorder { handle, process })
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
        .map(|r| r.handle.clone())
}

/// The metrics in Prometheus text format (empty without a recorder), with the process
/// metrics read now.
pub fn render(handle: Option<&PrometheusHandle>) -> String {
    if let Some(Some(recorder)) = RECORDER.get() {
        recorder.process.collect();
    }
    handle.map(PrometheusHandle::render).unwrap_or_default()
}

fn describe() {
    use metrics::{
        describe_counter as counter, describe_gauge as gauge, describe_histogram as histogram, Unit,
    };
    gauge!("bridgehead_build_info", "Bridgehead's version (always 1)");
    counter!(
        "bridgehead_component_handshakes_total",
        "XEP-0114 component handshakes by result"
    );
    histogram!(
        "bridgehead_component_handshake_duration_seconds",
        Unit::Seconds,
        "XEP-0114 stream open to handshake answer"
    );
    gauge!(
        "bridgehead_component_connections",
        "Live XEP-0114 component connections"
    );
    counter!(
        "bridgehead_stanzas_routed_total",
        "Stanzas queued for a component connection"
    );
    counter!(
        "bridgehead_stanzas_held_total",
        "Stanzas held while their component was away"
    );
    counter!(
        "bridgehead_stanzas_bounced_total",
        "Stanzas answered with a stanza error, by condition"
    );
    gauge!(
        "bridgehead_client_sessions",
        "Live bound XMPP client sessions by transport"
    );
    counter!(
        "bridgehead_client_logins_total",
        "XMPP client SASL logins by result"
    );
    histogram!(
        "bridgehead_client_login_duration_seconds",
        Unit::Seconds,
        "XMPP client SASL exchange, auth to success or failure"
    );
    counter!(
        "bridgehead_client_stanzas_total",
        "Stanzas received from XMPP clients by kind"
    );
    counter!(
        "bridgehead_http_responses_total",
        "HTTPS responses by listener and status class"
    );
    histogram!(
        "bridgehead_http_request_duration_seconds",
        Unit::Seconds,
        "HTTPS request to response headers, by listener and route template"
    );
    counter!(
        "bridgehead_xsi_logins_total",
        "XSI authentications by result (cached = verified from the credential cache)"
    );
    gauge!("bridgehead_xsi_channels", "Open XSI-Events channels");
    gauge!(
        "bridgehead_xsi_channel_sets",
        "XSI-Events channel sets with an open channel"
    );
    gauge!("bridgehead_xsi_subscriptions", "XSI-Events subscriptions");
    counter!(
        "bridgehead_xsi_events_total",
        "XSI-Events deliveries by outcome"
    );
    histogram!(
        "bridgehead_xsi_event_delivery_seconds",
        Unit::Seconds,
        "Telephony event to its first write on an event channel"
    );
    histogram!(
        "bridgehead_xsi_ack_round_trip_seconds",
        Unit::Seconds,
        "An event's write to its acknowledgement"
    );
    counter!(
        "bridgehead_cti_refusals_total",
        "CTI client certificates refused, by the rule they broke"
    );
    counter!(
        "bridgehead_limit_refusals_total",
        "Input refused for breaking a [limits] bound, by limit"
    );
    counter!(
        "bridgehead_quota_refusals_total",
        "Writes refused for a per-user [quotas] key, by quota"
    );
    counter!(
        "bridgehead_cluster_forwards_total",
        "Requests forwarded to the node that owns what they name, by service and outcome"
    );
    gauge!(
        "bridgehead_xsi_standby_sets",
        "Channel sets with channels on this node whose events another node delivers"
    );
    counter!(
        "bridgehead_xsi_set_takeovers_total",
        "Channel sets this node took over from a node that no longer delivered them"
    );
    gauge!(
        "bridgehead_cluster_event_subjects",
        "NATS subjects this node listens on for other nodes' events (one per subscribed target of a set held here)"
    );
    histogram!(
        "bridgehead_cluster_forward_seconds",
        Unit::Seconds,
        "A forwarded request's round trip to its owner"
    );
    counter!(
        "bridgehead_preauth_refusals_total",
        "Connections dropped before authenticating, by listener and reason"
    );
    counter!(
        "bridgehead_throttled_attempts_total",
        "Credential checks refused by the login limiter, by kind"
    );
    counter!(
        "bridgehead_reloads_total",
        "Configuration and certificate reloads by result"
    );
    gauge!(
        "bridgehead_certificate_expiry_timestamp_seconds",
        Unit::Seconds,
        "The served certificate's notAfter as Unix seconds, by listener"
    );
}

/// Every series with a fixed label set, at 0.
fn zero() {
    use metrics::{counter, gauge, histogram};
    gauge!("bridgehead_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for result in ["ok", "failed"] {
        counter!("bridgehead_component_handshakes_total", "result" => result).absolute(0);
        let _ = histogram!("bridgehead_component_handshake_duration_seconds", "result" => result);
    }
    gauge!("bridgehead_component_connections").set(0.0);
    counter!("bridgehead_stanzas_bounced_total", "component" => "unknown", "condition" => "remote-server-not-found").absolute(0);
    for transport in ["c2s", "websocket"] {
        gauge!("bridgehead_client_sessions", "transport" => transport).set(0.0);
    }
    for result in ["ok", "failed", "throttled"] {
        for mechanism in SASL_MECHANISMS {
            counter!("bridgehead_client_logins_total", "result" => result, "mechanism" => *mechanism).absolute(0);
        }
        let _ = histogram!("bridgehead_client_login_duration_seconds", "result" => result);
    }
    for kind in ["message", "presence", "iq"] {
        counter!("bridgehead_client_stanzas_total", "kind" => kind).absolute(0);
    }
    for listener in ["https", "cti"] {
        for class in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
            counter!("bridgehead_http_responses_total", "listener" => listener, "class" => class)
                .absolute(0);
        }
    }
    for result in ["ok", "cached", "failed", "throttled"] {
        counter!("bridgehead_xsi_logins_total", "result" => result).absolute(0);
    }
    for name in [
        "bridgehead_xsi_channels",
        "bridgehead_xsi_channel_sets",
        "bridgehead_xsi_subscriptions",
    ] {
        gauge!(name).set(0.0);
    }
    for outcome in EVENT_OUTCOMES {
        counter!("bridgehead_xsi_events_total", "outcome" => *outcome).absolute(0);
    }
    let _ = histogram!("bridgehead_xsi_event_delivery_seconds");
    let _ = histogram!("bridgehead_xsi_ack_round_trip_seconds");
    for rule in CTI_RULES {
        counter!("bridgehead_cti_refusals_total", "rule" => *rule).absolute(0);
    }
    counter!("bridgehead_limit_refusals_total", "limit" => "xml_depth").absolute(0);
    for quota in QUOTAS {
        counter!("bridgehead_quota_refusals_total", "quota" => *quota).absolute(0);
    }
    for listener in LISTENERS {
        for reason in ["per_address", "evicted"] {
            counter!("bridgehead_preauth_refusals_total", "listener" => *listener, "reason" => reason).absolute(0);
        }
    }
    for kind in ["sasl", "xsi", "component"] {
        counter!("bridgehead_throttled_attempts_total", "kind" => kind).absolute(0);
    }
    for result in ["ok", "refused"] {
        counter!("bridgehead_reloads_total", "result" => result).absolute(0);
    }
}

/// Creates the component-labelled series of every known component, at 0.
pub fn components_known<'a>(names: impl IntoIterator<Item = &'a str>) {
    for name in names {
        metrics::counter!("bridgehead_stanzas_routed_total", "component" => name.to_owned())
            .absolute(0);
        metrics::counter!("bridgehead_stanzas_held_total", "component" => name.to_owned())
            .absolute(0);
        metrics::counter!("bridgehead_stanzas_bounced_total", "component" => name.to_owned(), "condition" => "service-unavailable").absolute(0);
    }
}

/// A reload (or a certificate watch) finished, `ok` or refused.
pub fn reload(ok: bool) {
    metrics::counter!("bridgehead_reloads_total", "result" => if ok { "ok" } else { "refused" })
        .increment(1);
}

/// The certificate `listener` serves expires at `not_after`.
pub fn certificate_expiry(listener: &'static str, not_after: time::OffsetDateTime) {
    metrics::gauge!("bridgehead_certificate_expiry_timestamp_seconds", "listener" => listener)
        .set(not_after.unix_timestamp() as f64);
}

/// The XSI-Events gauges, as the hub counts them now.
pub fn xsi_state(channels: usize, channel_sets: usize, subscriptions: usize) {
    metrics::gauge!("bridgehead_xsi_channels").set(channels as f64);
    metrics::gauge!("bridgehead_xsi_channel_sets").set(channel_sets as f64);
    metrics::gauge!("bridgehead_xsi_subscriptions").set(subscriptions as f64);
}

/// XSI-Events: `count` events had `outcome` (`delivered`, `acked`, `resent`,
/// `backlogged`, `dropped`).
pub fn xsi_events(outcome: &'static str, count: u64) {
    metrics::counter!("bridgehead_xsi_events_total", "outcome" => outcome).increment(count);
}

/// An event was first written to a channel `waited` after the telephony event.
pub fn xsi_event_delivered(waited: Duration) {
    xsi_events("delivered", 1);
    metrics::histogram!("bridgehead_xsi_event_delivery_seconds").record(waited.as_secs_f64());
}

/// An event was acknowledged `round_trip` after it was written.
pub fn xsi_event_acked(round_trip: Duration) {
    xsi_events("acked", 1);
    metrics::histogram!("bridgehead_xsi_ack_round_trip_seconds").record(round_trip.as_secs_f64());
}

/// An HTTPS response with `status` was sent on `listener` for `route` (mount prefix and
/// template, both static: no allocation per request), `took` after the request.
pub fn http_response(
    listener: &'static str,
    route: (&'static str, &'static str),
    status: u16,
    took: Duration,
) {
    let class = match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("bridgehead_http_responses_total", "listener" => listener, "class" => class)
        .increment(1);
    let (mount, template) = route;
    metrics::histogram!("bridgehead_http_request_duration_seconds", "listener" => listener, "mount" => mount, "route" => template)
        .record(took.as_secs_f64());
}

/// An XSI authentication ended with `result` (`ok`, `cached`, `failed`, `throttled`).
pub fn xsi_login(result: &'static str) {
    metrics::counter!("bridgehead_xsi_logins_total", "result" => result).increment(1);
    if matches!(result, "failed" | "throttled") {
        recent::record("xsi-login", result);
    }
}

/// A CTI client certificate was refused for breaking `rule`.
pub fn cti_refusal(rule: &'static str) {
    metrics::counter!("bridgehead_cti_refusals_total", "rule" => rule).increment(1);
    recent::record("cti", rule);
}

/// A component handshake finished (`ok` true) or was refused, `took` after the stream
/// opened.
pub fn handshake(ok: bool, took: Duration) {
    let result = if ok { "ok" } else { "failed" };
    metrics::counter!("bridgehead_component_handshakes_total", "result" => result).increment(1);
    metrics::histogram!("bridgehead_component_handshake_duration_seconds", "result" => result)
        .record(took.as_secs_f64());
    if !ok {
        recent::record("component-handshake", "failed");
    }
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

/// A client SASL exchange with `mechanism` ended with `result` (`ok`, `failed`,
/// `throttled`) after `took`.
pub fn client_login(result: &'static str, mechanism: &'static str, took: Duration) {
    metrics::counter!("bridgehead_client_logins_total", "result" => result, "mechanism" => mechanism)
        .increment(1);
    metrics::histogram!("bridgehead_client_login_duration_seconds", "result" => result)
        .record(took.as_secs_f64());
    if result != "ok" {
        recent::record("c2s-login", format!("{result} ({mechanism})"));
    }
}

/// A client sent a stanza of `kind` (`message`, `presence`, `iq`).
pub fn client_stanza(kind: &'static str) {
    metrics::counter!("bridgehead_client_stanzas_total", "kind" => kind).increment(1);
}

/// Input was refused for breaking the `[limits]` bound `limit`.
pub fn limit_refusal(limit: &'static str) {
    metrics::counter!("bridgehead_limit_refusals_total", "limit" => limit).increment(1);
}

/// How many NATS subjects this node listens on for other nodes' events.
pub fn cluster_event_subjects(count: usize) {
    metrics::gauge!("bridgehead_cluster_event_subjects").set(count as f64);
}

/// How many channel sets this node stands by for (it has channels of them, another node
/// delivers their events).
pub fn xsi_standby_sets(count: usize) {
    metrics::gauge!("bridgehead_xsi_standby_sets").set(count as f64);
}

/// This node took a channel set over from the node that delivered it.
pub fn xsi_set_taken_over() {
    metrics::counter!("bridgehead_xsi_set_takeovers_total").increment(1);
}

/// A request for `service` was forwarded to its owner: `outcome` and the round trip.
pub fn cluster_forward(service: &'static str, outcome: &'static str, took: std::time::Duration) {
    metrics::counter!("bridgehead_cluster_forwards_total", "service" => service, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("bridgehead_cluster_forward_seconds", "service" => service)
        .record(took.as_secs_f64());
}

/// A write was refused for the `[quotas]` key `quota`.
pub fn quota_refusal(quota: &'static str) {
    metrics::counter!("bridgehead_quota_refusals_total", "quota" => quota).increment(1);
}

/// A connection to `listener` was dropped before it authenticated, for `reason`.
pub fn preauth_refusal(listener: &'static str, reason: &'static str) {
    metrics::counter!("bridgehead_preauth_refusals_total", "listener" => listener, "reason" => reason)
        .increment(1);
    recent::record("preauth", format!("{listener}: {reason}"));
}

/// A credential check of `kind` (`sasl`, `xsi`, `component`) was refused by the limiter.
pub fn throttled_attempt(kind: &'static str) {
    metrics::counter!("bridgehead_throttled_attempts_total", "kind" => kind).increment(1);
    recent::record("throttled", kind);
}
