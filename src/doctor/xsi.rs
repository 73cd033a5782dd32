//! The XSI targets: the TLS stage, then with `--user` a profile GET (`xsi-actions`) and an
//! event channel with a few heartbeats (`xsi-events`), all through [`crate::client`] bound
//! to this one address, so that each request is a new connection through whatever sits
//! in front of the nodes.
//!
//! The affinity check: the answer that opens the channel names its node in the affinity
//! cookie (Bridgehead's `bridgehead-node`); every heartbeat's answer must name the same
//! node. A load balancer that spreads requests without affinity shows up as a heartbeat
//! answered by another node, which on a BroadWorks farm tears the channel down.

use std::time::Duration;

use super::{tls, Check, Endpoint, Options, Verdict};
use crate::client::{
    basic_authorization, cookie_value, ChannelOptions, HttpsTransport, Target, Timings, XsiClient,
    XsiRequest,
};

const ACTIONS: &str = "/com.broadsoft.xsi-actions/v2.0/user";

/// The `xsi-actions` and `xsi-events` lines of one endpoint.
pub(super) async fn check(options: &Options, endpoint: &Endpoint) -> Vec<Check> {
    let mut actions = Check::new("xsi-actions", endpoint.label());
    let mut events = Check::new("xsi-events", endpoint.label());
    let handshake = tls::handshake(options, endpoint, &mut actions).await;
    let Some(user) = &options.user else {
        actions.note("profile not tried (give --user USER --password-file FILE)");
        events.skip("not checked (give --user USER --password-file FILE)");
        return vec![actions, events];
    };
    if handshake.is_none() {
        events.skip("not checked: no TLS connection");
        return vec![actions, events];
    }
    let roots: Vec<_> = options.trust.iter().map(|c| c.der.clone()).collect();
    let tls = match crate::tls::client_config(&roots) {
        Ok(tls) => tls,
        Err(e) => {
            actions.problem(Verdict::Red, format!("TLS configuration: {e}"), None);
            return vec![actions, events];
        }
    };
    let client = XsiClient::new(
        vec![Target::new(&endpoint.host, endpoint.port).at(endpoint.addr)],
        HttpsTransport::new(tls),
        Timings {
            attempt_timeout: options.step_timeout,
            tries: 1,
            ..Timings::default()
        },
    );
    let authorization = basic_authorization(&user.user, user.password.expose());
    profile(&client, &authorization, options, endpoint, &mut actions).await;
    channel(&client, &authorization, options, endpoint, &mut events).await;
    vec![actions, events]
}

async fn profile(
    client: &XsiClient<HttpsTransport>,
    authorization: &str,
    options: &Options,
    endpoint: &Endpoint,
    check: &mut Check,
) {
    let Some(user) = &options.user else { return };
    let started = tokio::time::Instant::now();
    let request = XsiRequest {
        method: "GET".into(),
        path: format!(
            "{ACTIONS}/{}/profile",
            crate::client::path_segment(&user.user)
        ),
        headers: vec![("authorization".into(), authorization.to_owned())],
        body: Vec::new(),
        streamed: false,
    };
    match client.request(request).await {
        Ok(response) if response.status == 200 => {
            let took = check.millis("profile_ms", started.elapsed());
            check.note(format!("profile of {} in {took}", user.user));
        }
        Ok(response) if matches!(response.status, 401 | 403) => check.problem(
            Verdict::Red,
            format!(
                "the XSP refused {}'s credentials (HTTP {})",
                user.user, response.status
            ),
            Some(format!(
                "Check the user id and password given (--user, --password-file) at {}; \
                 `bridgehead user passwd` sets a Bridgehead user's password",
                endpoint.label()
            )),
        ),
        Ok(response) => check.problem(
            Verdict::Red,
            format!("the profile GET answered HTTP {}", response.status),
            Some(format!(
                "{} does not serve XSI-Actions for {}: check the user and the XSP's log",
                endpoint.label(),
                user.user
            )),
        ),
        Err(e) => check.problem(Verdict::Red, format!("the profile GET: {e}"), None),
    }
}

async fn channel(
    client: &XsiClient<HttpsTransport>,
    authorization: &str,
    options: &Options,
    endpoint: &Endpoint,
    check: &mut Check,
) {
    let set = format!("bridgehead-doctor-{}", uuid::Uuid::new_v4().simple());
    let mut channel_options = ChannelOptions::new(&set, authorization);
    channel_options.expires_secs = 300;
    let started = tokio::time::Instant::now();
    let opened = match client.open_channel(&channel_options).await {
        Ok(opened) => opened,
        Err(e) => {
            check.problem(
                Verdict::Red,
                format!("no event channel: {e}"),
                Some(format!(
                    "{} does not open XSI-Events channels: check the XSP's event service and \
                     its log",
                    endpoint.label()
                )),
            );
            return;
        }
    };
    let took = check.millis("open_ms", started.elapsed());
    let cookie = &options.affinity_cookie;
    let creator = cookie_value(&opened.set_cookies, cookie);
    let channel_id = opened.channel_id.clone();
    match &creator {
        Some(node) => check.note(format!("channel opened on node {node} in {took}")),
        None => {
            check.note(format!("channel opened in {took}"));
            check.problem(
                Verdict::Amber,
                format!("cannot tell which node answered: no {cookie} cookie in the answers"),
                Some(format!(
                    "The affinity of {} could not be checked: if the XSP names its node in \
                     another cookie, give it with --affinity-cookie",
                    endpoint.label()
                )),
            );
        }
    }
    let mut slowest = Duration::ZERO;
    let mut strays = Vec::new();
    let mut failures = Vec::new();
    for n in 1..=options.heartbeats {
        tokio::time::sleep(options.heartbeat_every).await;
        let beat_started = tokio::time::Instant::now();
        match client.heartbeat(&channel_id, &channel_options).await {
            Ok(response) => {
                slowest = slowest.max(beat_started.elapsed());
                let node = cookie_value(&response.set_cookies, cookie);
                match (&creator, &node) {
                    (Some(creator), Some(node)) if node != creator => strays.push(format!(
                        "heartbeat {n} of {} reached node {node} (HTTP {}), not node \
                         {creator} that created the channel",
                        options.heartbeats, response.status
                    )),
                    _ if response.status != 200 => failures.push(format!(
                        "heartbeat {n} of {} answered HTTP {}",
                        options.heartbeats, response.status
                    )),
                    _ => {}
                }
            }
            Err(e) => failures.push(format!("heartbeat {n} of {}: {e}", options.heartbeats)),
        }
    }
    drop(opened);
    client.close_channel(&channel_id, &channel_options).await;
    check.figure("heartbeats", f64::from(options.heartbeats));
    let slowest = check.millis("heartbeat_max_ms", slowest);
    if strays.is_empty() && failures.is_empty() {
        let on = creator.map_or_else(String::new, |node| format!(", all answered by node {node}"));
        check.note(format!(
            "{} heartbeats{on} (slowest {slowest})",
            options.heartbeats
        ));
        return;
    }
    let lost = strays.len() + failures.len();
    check.note(format!(
        "{} of {} heartbeats failed or went astray",
        lost, options.heartbeats
    ));
    if !strays.is_empty() {
        check.problem(
            Verdict::Red,
            format!(
                "{}: whatever is in front of {} does not keep affinity, so heartbeats land on \
                 other nodes and the XSP tears the channel down",
                strays.join("; "),
                endpoint.label()
            ),
            Some(format!(
                "Make the load balancer in front of {} keep session affinity on the {cookie} \
                 cookie the nodes set (HAProxy: `cookie {cookie} insert indirect nocache \
                 preserve` and `cookie NODE_ID` on each server line; docs/operations.md)",
                endpoint.label()
            )),
        );
    }
    if !failures.is_empty() {
        check.problem(
            Verdict::Red,
            failures.join("; "),
            Some(format!(
                "Heartbeats to {} fail: the channel does not survive; see the XSP's log",
                endpoint.label()
            )),
        );
    }
}
