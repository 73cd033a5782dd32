//! Channel requests that name another node's channel or event, answered by that node.
//!
//! A channel id (`node:uuid`) and an event id (`node:uuid`) name the node that holds the
//! channel and the event's acknowledgement. Behind a load balancer without affinity a
//! heartbeat, channel update, channel delete or event response may reach any node; every
//! one of them is first made a [`ChannelOp`], then:
//!
//! ```text
//! names this node            → apply(hub, owner, op)                     (no messaging)
//! names another, [cluster]   → Cluster::request(node, XsiChannel, json)  → its apply(…) → json
//!                               gone (no subscriber)     → 404: the client opens a new channel
//!                               timeout / NATS down      → 503 (errorCode 120501): try again
//! names another, one node    → 404, as before clustering
//! ```
//!
//! A node that stands by for a set another node delivers asks that node the same way
//! whether it still does ([`ChannelOp::Delivers`], `hub/standby.rs`).
//!
//! The owner checks ownership as it does for its own requests: the forwarding node sends
//! the authenticated owner, never the caller's credentials. Counted in
//! `bridgehead_cluster_forwards_total{service="xsi-channel",outcome}`.

use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, ClusterError, Service};

use super::hub::{Hub, HubError, Owner};
use crate::xsi::error::ApiError;

/// One channel request, as the owner applies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub(super) enum ChannelOp {
    /// `PUT …/channel/{id}/heartbeat`.
    Heartbeat {
        /// The channel.
        channel_id: String,
    },
    /// `PUT …/channel/{id}` `Channel{expires}`.
    Update {
        /// The channel.
        channel_id: String,
        /// The requested lifetime.
        expires: u64,
    },
    /// `DELETE …/channel/{id}`.
    Delete {
        /// The channel.
        channel_id: String,
    },
    /// `POST …/channel/eventresponse`.
    EventResponse {
        /// The event.
        event_id: String,
        /// The client's status for it.
        status_code: u16,
    },
    /// Between nodes only: does the holder still deliver the set (a standby node asks;
    /// `hub/standby.rs`)?
    Delivers {
        /// The set.
        set_id: String,
    },
}

impl ChannelOp {
    /// The id whose node owns the request.
    fn owned_id(&self) -> &str {
        match self {
            ChannelOp::Heartbeat { channel_id }
            | ChannelOp::Update { channel_id, .. }
            | ChannelOp::Delete { channel_id } => channel_id,
            ChannelOp::EventResponse { event_id, .. } => event_id,
            ChannelOp::Delivers { set_id } => set_id,
        }
    }
}

/// What applying a [`ChannelOp`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Applied {
    /// Done.
    Done,
    /// The channel's granted lifetime (an update).
    Granted(u64),
    /// Whether the node delivers the set ([`ChannelOp::Delivers`]).
    Delivers(bool),
}

/// A refusal, as it travels back from the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Refusal {
    NotFound(String),
    Refused(String),
    Failed,
}

/// The request that travels to the owner.
#[derive(Debug, Serialize, Deserialize)]
struct Forwarded {
    owner: Owner,
    op: ChannelOp,
}

/// Applies `op` for `owner` on this node's hub.
pub(super) async fn apply(hub: &Hub, owner: &Owner, op: ChannelOp) -> Result<Applied, HubError> {
    match op {
        ChannelOp::Heartbeat { channel_id } => {
            hub.heartbeat(owner, &channel_id).map(|()| Applied::Done)
        }
        ChannelOp::Update {
            channel_id,
            expires,
        } => hub
            .update_channel(owner, &channel_id, expires)
            .map(Applied::Granted),
        ChannelOp::Delete { channel_id } => hub
            .delete_channel(owner, &channel_id)
            .map(|()| Applied::Done),
        ChannelOp::EventResponse {
            event_id,
            status_code,
        } => hub
            .event_response(owner, &event_id, status_code)
            .await
            .map(|()| Applied::Done),
        ChannelOp::Delivers { set_id } => Ok(Applied::Delivers(hub.delivers(owner, &set_id))),
    }
}

/// Applies `op` here, or has its owner apply it.
pub(super) async fn channel_op(
    hub: &Hub,
    cluster: Option<&Cluster>,
    owner: &Owner,
    op: ChannelOp,
) -> Result<Applied, ApiError> {
    let Some(node) = hub.foreign_node(op.owned_id()) else {
        return Ok(apply(hub, owner, op).await?);
    };
    // Anything that is not a node name names no node, and must never reach a NATS subject.
    if !crate::config::is_node_name(node) {
        return Err(ApiError::UnknownEntry(op.owned_id().to_owned()));
    }
    let Some(cluster) = cluster else {
        return Err(ApiError::UnknownEntry(format!(
            "{} (held by another node)",
            op.owned_id()
        )));
    };
    let node = node.to_owned();
    let id = op.owned_id().to_owned();
    let answer = forward(cluster, &node, owner, op).await.map_err(|e| match e {
        ClusterError::NodeGone(_) => ApiError::UnknownEntry(format!("{id} (its node {node} is gone)")),
        other => {
            tracing::warn!(error = %other, node = %node, "a channel request for another node was not answered");
            ApiError::NodeUnavailable(other.to_string())
        }
    })?;
    answer.map_err(|refusal| match refusal {
        Refusal::NotFound(what) => ApiError::UnknownEntry(what),
        Refusal::Refused(why) => ApiError::Invalid {
            field: "request".into(),
            reason: why,
        },
        Refusal::Failed => ApiError::Internal,
    })
}

/// Whether `node` still delivers `owner`'s set `set_id` (a standby node asks its holder).
pub(super) async fn holder_delivers(
    cluster: &Cluster,
    node: &str,
    owner: &Owner,
    set_id: &str,
) -> Result<bool, ClusterError> {
    let op = ChannelOp::Delivers {
        set_id: set_id.to_owned(),
    };
    Ok(matches!(
        forward(cluster, node, owner, op).await?,
        Ok(Applied::Delivers(true))
    ))
}

/// Has `node` apply `op` for `owner`; its answer.
async fn forward(
    cluster: &Cluster,
    node: &str,
    owner: &Owner,
    op: ChannelOp,
) -> Result<Result<Applied, Refusal>, ClusterError> {
    let request = Forwarded {
        owner: owner.clone(),
        op,
    };
    let payload = serde_json::to_vec(&request).map_err(|e| {
        tracing::error!(error = %e, "cannot encode a forwarded channel request");
        ClusterError::Unavailable(format!("{node}: {e}"))
    })?;
    let bytes = cluster.forward(node, Service::XsiChannel, payload).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        tracing::error!(error = %e, node, "node answered a forwarded channel request with nonsense");
        ClusterError::Unavailable(format!("{node}: {e}"))
    })
}

/// Answers other nodes' requests for this node's channels until shutdown.
pub async fn serve_forwarded(
    hub: Hub,
    cluster: &Cluster,
    shutdown: &crate::shutdown::Shutdown,
) -> Result<(), ClusterError> {
    let handler = move |payload: Bytes| {
        let hub = hub.clone();
        async move {
            let answer = match serde_json::from_slice::<Forwarded>(&payload) {
                Ok(request) => apply(&hub, &request.owner, request.op)
                    .await
                    .map_err(|e| match e {
                        HubError::NotFound(what) => Refusal::NotFound(what),
                        HubError::Refused(why) => Refusal::Refused(why),
                        HubError::Quota { what, limit } => {
                            Refusal::Refused(format!("{what}: the limit is {limit}"))
                        }
                        HubError::Telephony(e) => {
                            tracing::error!(error = %e, "store failed while serving a forwarded channel request");
                            Refusal::Failed
                        }
                    }),
                Err(e) => {
                    tracing::warn!(error = %e, "a forwarded channel request cannot be read; refused");
                    Err(Refusal::Refused("malformed forwarded request".to_owned()))
                }
            };
            serde_json::to_vec(&answer).unwrap_or_default()
        }
    };
    cluster.serve(Service::XsiChannel, handler, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_survive_the_trip() {
        let request = Forwarded {
            owner: Owner {
                id: "alice@example.com".into(),
                is_client: false,
            },
            op: ChannelOp::EventResponse {
                event_id: "n1:e".into(),
                status_code: 200,
            },
        };
        let bytes = serde_json::to_vec(&request).unwrap();
        let back: Forwarded = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.op, request.op);
        assert_eq!(back.owner, request.owner);
        let answer: Result<Applied, Refusal> = Ok(Applied::Granted(3600));
        let bytes = serde_json::to_vec(&answer).unwrap();
        assert_eq!(
            serde_json::from_slice::<Result<Applied, Refusal>>(&bytes).unwrap(),
            answer
        );
    }
}
