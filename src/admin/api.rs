//! The admin API's resources and actions (see the table in [`super`]).

use hyper::{Method, StatusCode};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::json;

use super::{not_allowed, AdminState, Answer};
use crate::reload::ReloadError;

/// A listener and where it is bound.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerView {
    /// `admin`, `component`, `c2s`, `https`, `cti`.
    pub name: &'static str,
    /// Its bound addresses.
    pub addrs: Vec<String>,
}

/// `GET /api/node`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// Bridgehead's version.
    pub version: &'static str,
    /// The node id (the affinity cookie's value).
    pub node: String,
    /// The XMPP domain.
    pub domain: String,
    /// When it started (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub started: time::OffsetDateTime,
    /// Seconds since.
    pub uptime_secs: i64,
    /// The listeners.
    pub listeners: Vec<ListenerView>,
    /// The served certificate.
    pub certificate: crate::tls::CertificateSummary,
    /// Whole days until it expires (negative once expired).
    pub certificate_days_left: i64,
    /// `green` (more than `[tls] expiry_warn_days` left), `amber` (fewer) or `red`
    /// (fewer than 7, or expired).
    pub certificate_status: &'static str,
    /// Live counts.
    pub components: usize,
    /// Client sessions.
    pub sessions: usize,
    /// Event channels.
    pub channels: usize,
    /// Subscriptions.
    pub subscriptions: usize,
}

/// The node as `GET /api/node` shows it.
pub(super) fn node(state: &AdminState) -> NodeView {
    let config = state.reloader.config();
    let certificate = crate::tls::CertificateSummary::clone(&state.reloader.certificate());
    let now = time::OffsetDateTime::now_utc();
    let days_left = (certificate.not_after - now).whole_days();
    let certificate_status = match days_left {
        d if (certificate.not_after - now).is_negative() || d < 7 => "red",
        d if d < i64::from(config.tls.expiry_warn_days) => "amber",
        _ => "green",
    };
    NodeView {
        version: env!("CARGO_PKG_VERSION"),
        node: config.node_id(),
        domain: config.server.domain.clone(),
        started: state.started,
        uptime_secs: (now - state.started).whole_seconds(),
        listeners: state.listeners.clone(),
        certificate,
        certificate_days_left: days_left,
        certificate_status,
        components: state.router.component_views().len(),
        sessions: state.router.client_views().len(),
        channels: state.hub.channel_views().len(),
        subscriptions: state.hub.subscription_views().len(),
    }
}

/// Answers `/api/{rest}`.
pub(super) async fn answer(method: &Method, rest: &str, state: &AdminState) -> Answer {
    let segments: Vec<String> = rest
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = matches!(*method, Method::GET | Method::HEAD);
    match (segments.as_slice(), get) {
        (["node"], true) => to_json(&node(state)),
        (["components"], true) => to_json(&state.router.component_views()),
        (["sessions"], true) => to_json(&state.router.client_views()),
        (["channels"], true) => to_json(&state.hub.channel_views()),
        (["subscriptions"], true) => to_json(&state.hub.subscription_views()),
        (["refusals"], true) => to_json(&crate::telemetry::recent::newest_first()),
        (["reload"], false) if *method == Method::POST => reload(state).await,
        (["components", name, "kick"], false) if *method == Method::POST => {
            kicked(state.router.kick_component(name), "component", name)
        }
        (["sessions", jid, "kick"], false) if *method == Method::POST => match jid::Jid::new(jid) {
            Ok(parsed) => kicked(state.router.kick_client(&parsed), "session", jid),
            Err(e) => Answer::Error(
                StatusCode::BAD_REQUEST,
                format!("{jid:?} is not a JID: {e}"),
            ),
        },
        (["channels", id], false) if *method == Method::DELETE => {
            if state.hub.end_channel(id) {
                tracing::info!(channel = %id, "event channel ended by the administrator");
                Answer::Json(json!({ "ended": id }))
            } else {
                Answer::Error(StatusCode::NOT_FOUND, format!("no open channel {id}"))
            }
        }
        (
            ["node" | "components" | "sessions" | "channels" | "subscriptions" | "refusals"
            | "reload"]
            | ["components" | "sessions", _, "kick"]
            | ["channels", _],
            _,
        ) => not_allowed(),
        _ => Answer::Error(
            StatusCode::NOT_FOUND,
            format!("no such resource: /api/{rest}"),
        ),
    }
}

fn to_json<T: Serialize>(value: &T) -> Answer {
    match serde_json::to_value(value) {
        Ok(value) => Answer::Json(value),
        Err(e) => Answer::Error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn kicked(count: usize, what: &str, name: &str) -> Answer {
    if count == 0 {
        return Answer::Error(StatusCode::NOT_FOUND, format!("no connected {what} {name}"));
    }
    tracing::info!(what, name, count, "disconnected by the administrator");
    Answer::Json(json!({ "kicked": count }))
}

async fn reload(state: &AdminState) -> Answer {
    match state.reloader.reload("admin API").await {
        Ok(report) => to_json(&report),
        Err(error @ ReloadError::RestartNeeded(_)) => {
            Answer::Error(StatusCode::CONFLICT, error.to_string())
        }
        Err(error) => Answer::Error(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()),
    }
}
