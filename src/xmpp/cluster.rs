//! The XMPP face in a cluster (`[cluster]`): the tasks behind the router's cluster side
//! ([`crate::xmpp::router::Remote`]).
//!
//! - **Lease**: every `LEASE / 3` the node renews its lease in the shared register; a node
//!   that stops renewing (killed, or cut off from PostgreSQL) loses its entries once its
//!   lease ends, [`LEASE`] after its last renewal. After a failed renewal, and whenever a
//!   write was lost, the node writes all its entries again (a resync).
//! - **Writes**: client binds, presence changes and every detach reach the register in
//!   order from one task; component connections are claimed before they attach.
//! - **Copy**: every change notified by the register is read back and handed to the
//!   router (other nodes' entries; this node's pushed-out components), and everything
//!   once a lease period. A node NATS finds nobody listening for is forgotten at once.
//! - **Takeovers**: a bind under `resource_conflict = "replace"` of a full JID that
//!   another node has bound (in this node's copy of the register) sends that node a
//!   request to `bridgehead.node.<node>.xmpp-takeover` naming the session's connection;
//!   the node closes it with `conflict` (unless a newer bind there replaced it already).
//! - **Stanzas**: stanzas for other nodes leave in order over one NATS pipeline, each as
//!   a request to `bridgehead.node.<node>.xmpp`; the node routes it among its own
//!   connections and answers. NATS's "no responders" (the node is gone) bounces the
//!   stanza with `service-unavailable`, no answer within `forward_timeout_ms` with
//!   `remote-server-timeout`; NATS down bounces with `service-unavailable` at once.
//!
//! A stanza travels as its XML (serialized and parsed by minidom).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use minidom::Element;

use crate::cluster::{Answer, Cluster, ClusterError, Service};
use crate::shutdown::Shutdown;
use crate::telephony::routes::{Changed, Routes};
use crate::xmpp::error::StanzaCondition;
use crate::xmpp::router::{Forward, Remote, RemoteQueues, Router, Takeover, Write};

/// How long a node's entries outlive its last lease renewal.
pub const LEASE: Duration = Duration::from_secs(15);
/// Between two attempts at the register after a failure.
const RETRY: Duration = Duration::from_secs(1);
/// Between two looks for forwarded stanzas that were never answered.
const SWEEP: Duration = Duration::from_millis(250);

/// Joins `router` to the cluster and starts the tasks (they end on shutdown).
pub async fn start(
    router: &Router,
    cluster: &Cluster,
    routes: Routes,
    shutdown: &Shutdown,
) -> Result<(), ClusterError> {
    let Some((remote, queues)) = router.join_cluster(cluster.node(), routes) else {
        return Ok(());
    };
    let RemoteQueues {
        forwards,
        writes,
        takeovers,
    } = queues;
    // A node that starts again has nothing live yet: its previous life's entries go.
    if let Err(e) = remote.routes().clear_node(remote.node()).await {
        tracing::warn!(error = %e, "cannot clear this node's old XMPP routes");
        remote.want_resync();
    }
    if let Err(e) = remote.routes().renew_lease(remote.node(), LEASE).await {
        tracing::warn!(error = %e, "cannot take this node's lease in the register");
        remote.want_resync();
    }
    shutdown.spawn(hold_lease(
        router.clone(),
        Arc::clone(&remote),
        shutdown.clone(),
    ));
    shutdown.spawn(write(Arc::clone(&remote), writes, shutdown.clone()));
    shutdown.spawn(follow(
        router.clone(),
        Arc::clone(&remote),
        shutdown.clone(),
    ));
    let pipeline = cluster.pipeline().await?;
    let timeout = cluster.timeout();
    shutdown.spawn(send(
        router.clone(),
        pipeline,
        forwards,
        timeout,
        shutdown.clone(),
    ));
    shutdown.spawn(take_over(cluster.clone(), takeovers, shutdown.clone()));
    let here = router.clone();
    cluster
        .serve(
            Service::XmppTakeover,
            move |payload| {
                let closed = match serde_json::from_slice::<Takeover>(&payload) {
                    Ok(takeover) => here.taken_over(&takeover),
                    Err(e) => {
                        tracing::warn!(error = %e, "a takeover from another node does not parse; dropped");
                        false
                    }
                };
                std::future::ready(if closed { b"closed".to_vec() } else { Vec::new() })
            },
            shutdown,
        )
        .await?;
    let here = router.clone();
    cluster
        .serve(
            Service::Xmpp,
            move |payload| {
                receive(&here, &payload);
                std::future::ready(Vec::new())
            },
            shutdown,
        )
        .await
}

/// Routes a stanza another node sent here among this node's connections.
fn receive(router: &Router, payload: &[u8]) {
    let parsed = std::str::from_utf8(payload)
        .map_err(|e| e.to_string())
        .and_then(|text| text.parse::<Element>().map_err(|e| e.to_string()));
    match parsed {
        Ok(stanza) => {
            router.route_here(stanza);
        }
        Err(e) => tracing::warn!(error = %e, "a stanza from another node does not parse; dropped"),
    }
}

/// Sends each takeover to the node that holds the session, one at a time.
async fn take_over(
    cluster: Cluster,
    mut takeovers: tokio::sync::mpsc::Receiver<Takeover>,
    shutdown: Shutdown,
) {
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = takeovers.recv() => next,
        };
        let Some(takeover) = next else { break };
        let payload = serde_json::to_vec(&takeover).unwrap_or_default();
        match cluster
            .forward(&takeover.node, Service::XmppTakeover, payload)
            .await
        {
            Ok(answer) if !answer.is_empty() => {
                tracing::info!(node = %takeover.node, jid = %format_args!("{}/{}", takeover.bare, takeover.resource), "took a session over from another node");
            }
            Ok(_) => {}
            // A node that is gone takes its sessions with it.
            Err(ClusterError::NodeGone(_)) => {}
            Err(e) => {
                tracing::warn!(node = %takeover.node, error = %e, "cannot ask another node to close a session this bind replaces");
            }
        }
    }
}

async fn hold_lease(router: Router, remote: Arc<Remote>, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(LEASE / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        match remote.routes().renew_lease(remote.node(), LEASE).await {
            Ok(_) if failing => {
                tracing::info!("this node's lease in the register is renewed again");
                failing = false;
                remote.want_resync();
            }
            Ok(_) => {}
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot renew this node's lease in the register");
                }
                failing = true;
                continue;
            }
        }
        if remote.take_resync() {
            if let Err(e) = resync(&router, &remote).await {
                tracing::warn!(error = %e, "cannot write this node's XMPP routes again");
                remote.want_resync();
            }
        }
    }
    // Leaving: the other nodes stop routing here at once.
    if let Err(e) = remote.routes().clear_node(remote.node()).await {
        tracing::debug!(error = %e, "cannot clear this node's XMPP routes on the way out");
    }
}

/// Writes every live connection of this node to the register again.
async fn resync(router: &Router, remote: &Remote) -> Result<(), crate::telephony::TelephonyError> {
    remote.routes().clear_node(remote.node()).await?;
    let own = router.own_routes();
    for route in &own {
        remote.routes().add(route).await?;
    }
    tracing::info!(
        entries = own.len(),
        "this node's XMPP routes are written again"
    );
    Ok(())
}

async fn write(
    remote: Arc<Remote>,
    mut writes: tokio::sync::mpsc::Receiver<Write>,
    shutdown: Shutdown,
) {
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = writes.recv() => next,
        };
        let Some(next) = next else { break };
        let routes = remote.routes();
        let done = match &next {
            Write::Add(route) => routes.add(route).await,
            Write::Remove(connection) => routes.remove(remote.node(), *connection).await,
            Write::Presence {
                connection,
                priority,
                available,
            } => {
                routes
                    .set_presence(remote.node(), *connection, *priority, *available)
                    .await
            }
        };
        if let Err(e) = done {
            // The lease task writes everything again once the register is back.
            tracing::warn!(error = %e, "cannot write an XMPP route; this node's routes will be written again");
            remote.want_resync();
        }
    }
}

async fn follow(router: Router, remote: Arc<Remote>, shutdown: Shutdown) {
    // Everything is read again once a lease period, so that a node forgotten when NATS
    // found nobody listening comes back if it is still alive.
    let mut reread = tokio::time::interval(LEASE);
    reread.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let changed = tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = remote.routes().next_change() => changed,
            _ = reread.tick() => Changed { everything: true, ..Changed::default() },
        };
        while let Err(e) = read_back(&router, remote.routes(), &changed).await {
            tracing::warn!(error = %e, "cannot read XMPP routes back; trying again");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}

async fn read_back(
    router: &Router,
    routes: &Routes,
    changed: &Changed,
) -> Result<(), crate::telephony::TelephonyError> {
    let asked = Instant::now();
    if changed.everything {
        router.learn_all_routes(routes.entries(None).await?, asked);
        return Ok(());
    }
    for address in &changed.addresses {
        router.learn_routes(address, routes.entries(Some(address)).await?, asked);
    }
    Ok(())
}

/// A stanza sent to another node and not answered yet.
struct InFlight {
    stanza: Element,
    node: Arc<str>,
    sent: Instant,
}

async fn send(
    router: Router,
    mut pipeline: crate::cluster::Pipeline,
    mut forwards: tokio::sync::mpsc::Receiver<Forward>,
    timeout: Duration,
    shutdown: Shutdown,
) {
    let label = Service::Xmpp.label();
    let mut in_flight: HashMap<u64, InFlight> = HashMap::new();
    let mut tag = 0u64;
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            next = forwards.recv() => {
                let Some(Forward { node, stanza }) = next else { break };
                tag += 1;
                let payload = String::from(&stanza).into_bytes();
                match pipeline.send(&node, Service::Xmpp, tag, payload).await {
                    Ok(()) => {
                        in_flight.insert(tag, InFlight { stanza, node, sent: Instant::now() });
                    }
                    Err(e) => {
                        tracing::warn!(%node, error = %e, "cannot send a stanza to another node");
                        crate::telemetry::cluster_forward(label, "unavailable", Duration::ZERO);
                        router.bounce_forwarded(stanza, StanzaCondition::ServiceUnavailable);
                    }
                }
            }
            answer = pipeline.answer() => {
                let Some((tag, answer)) = answer else { break };
                let Some(sent) = in_flight.remove(&tag) else { continue };
                let took = sent.sent.elapsed();
                match answer {
                    Answer::Answered(_) => crate::telemetry::cluster_forward(label, "answered", took),
                    Answer::NodeGone => {
                        tracing::info!(node = %sent.node, "a stanza for a node that is gone bounces");
                        router.node_gone(&sent.node);
                        crate::telemetry::cluster_forward(label, "gone", took);
                        router.bounce_forwarded(sent.stanza, StanzaCondition::ServiceUnavailable);
                    }
                }
            }
            _ = sweep.tick() => {
                let now = Instant::now();
                let late: Vec<u64> = in_flight
                    .iter()
                    .filter(|(_, f)| now.duration_since(f.sent) >= timeout)
                    .map(|(tag, _)| *tag)
                    .collect();
                for tag in late {
                    if let Some(sent) = in_flight.remove(&tag) {
                        tracing::warn!(node = %sent.node, "a stanza sent to another node was not answered in time");
                        crate::telemetry::cluster_forward(label, "timeout", timeout);
                        router.bounce_forwarded(sent.stanza, StanzaCondition::RemoteServerTimeout);
                    }
                }
            }
        }
    }
}
