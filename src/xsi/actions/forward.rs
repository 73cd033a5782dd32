//! Call requests across the nodes of a cluster. A call lives on the node whose bridge
//! carries it (its id says which: `callhalf-<node>-<n>`), and a bridge is connected to one
//! node; a user's requests may land on any node. Each [`CallRequest`] is answered thus:
//!
//! ```text
//! calls/{id}…  the id names this node (or there is no cluster) → answered here
//!              names another                → Cluster::forward(node, XsiCall) → its answer
//!                                             gone → 404 · timeout, NATS down → 503 (120501)
//! calls/new    placed here if a bridge here dials it; else (no bridge here, or every one
//!              refused) → each other node with a component connected (route register),
//!              in turn, until one places it → its answer; none → 503 (120401)
//! calls, calls/HookStatus, a call subscription's initial state (XSI-Events)
//!              this node's calls + those of every other live node (node leases), merged;
//!              a node that does not answer is left out, and logged
//! ```
//!
//! The node that answers renders the response (status, `Content-Type`, `Location`,
//! body) as it would its own, for the authenticated user the forwarding node names; the
//! caller's credentials never travel. Counted in
//! `bridgehead_cluster_forwards_total{service="xsi-call",outcome}`.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::calls::CallRequest;
use super::XsiActions;
use crate::cluster::{Cluster, ClusterError, Service};
use crate::http::ResponseBody;
use crate::telephony::calls::{Call, CallId};
use crate::telephony::User;
use crate::xsi::codec::Format;
use crate::xsi::error::ApiError;
use crate::xsi::response::respond;

/// The request that travels to the node that answers it.
#[derive(Debug, Serialize, Deserialize)]
struct Forwarded {
    user_id: String,
    json: bool,
    request: CallRequest,
}

/// What the answering node sends back.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    /// The response, as that node rendered it.
    Rendered {
        status: u16,
        content_type: Option<String>,
        location: Option<String>,
        body: String,
    },
    /// Its calls of the user (for a list).
    Calls(Vec<String>),
    /// Whether the user is off hook there (for a hook status).
    OffHook(bool),
    /// The user's calls there (for a call subscription's initial state).
    Snapshot(Vec<Call>),
    /// No bridge there placed the call.
    NoCallBridge,
}

fn format_of(json: bool) -> Format {
    if json {
        Format::Json
    } else {
        Format::Xml
    }
}

impl Answer {
    /// The response a [`Answer::Rendered`] carries.
    fn into_response(self) -> Result<Response<ResponseBody>, ApiError> {
        let Answer::Rendered {
            status,
            content_type,
            location,
            body,
        } = self
        else {
            tracing::error!(
                "a node answered a forwarded call request with the wrong kind of answer"
            );
            return Err(ApiError::Internal);
        };
        let mut response = Response::new(crate::http::full(Bytes::from(body)));
        *response.status_mut() = StatusCode::from_u16(status).map_err(|_| ApiError::Internal)?;
        for (name, value) in [(CONTENT_TYPE, content_type), (LOCATION, location)] {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                response.headers_mut().insert(name, value);
            }
        }
        Ok(response)
    }

    /// `response`, rendered for the trip back.
    async fn rendered(response: Response<ResponseBody>) -> Answer {
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let (status, content_type, location) = (
            response.status().as_u16(),
            header(CONTENT_TYPE),
            header(LOCATION),
        );
        let body = match response.into_body().collect().await {
            Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
            Err(never) => match never {},
        };
        Answer::Rendered {
            status,
            content_type,
            location,
            body,
        }
    }
}

impl XsiActions {
    /// This handler as one node of a cluster: call requests for other nodes go there.
    pub fn in_cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Answers `request` for `user` here or on the node that can (see the module docs).
    pub(super) async fn call_request(
        &self,
        user: &User,
        request: CallRequest,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let Some(cluster) = &self.cluster else {
            return self.call_request_here(user, request, format).await;
        };
        match request {
            CallRequest::List => {
                let mut ids = self.call_ids_here(user);
                for answer in self.ask_every_node(cluster, user, &request, format).await {
                    if let Answer::Calls(more) = answer {
                        ids.extend(more);
                    }
                }
                self.render_calls(user, ids, format)
            }
            CallRequest::HookStatus => {
                let mut off_hook = self.off_hook_here(user);
                for answer in self.ask_every_node(cluster, user, &request, format).await {
                    off_hook |= answer == Answer::OffHook(true);
                }
                self.render_hook_status(off_hook, format)
            }
            CallRequest::New { .. } => {
                match self.call_request_here(user, request.clone(), format).await {
                    Err(ApiError::NoCallBridge) => {
                        self.place_elsewhere(cluster, user, request, format).await
                    }
                    other => other,
                }
            }
            _ => {
                let call_id = request.call_id().unwrap_or_default().to_owned();
                match CallId::node_of(&call_id).filter(|node| *node != cluster.node()) {
                    Some(node) if crate::config::is_node_name(node) => {
                        let node = node.to_owned();
                        let answer = self.ask(cluster, &node, user, request, format).await;
                        answer
                            .map_err(|e| match e {
                                ClusterError::NodeGone(_) => ApiError::UnknownEntry(format!(
                                    "call {call_id} (its node {node} is gone)"
                                )),
                                other => ApiError::NodeUnavailable(other.to_string()),
                            })?
                            .into_response()
                    }
                    _ => self.call_request_here(user, request, format).await,
                }
            }
        }
    }

    /// `user`'s calls on every live node of the cluster, this one's first (this node's
    /// alone without a cluster): a call subscription's initial state.
    pub(crate) async fn calls_everywhere(&self, user: &User) -> Vec<Call> {
        let mut calls = self.telephony.calls().calls_of(&user.id);
        if let Some(cluster) = &self.cluster {
            let asked = self
                .ask_every_node(cluster, user, &CallRequest::Snapshot, Format::Xml)
                .await;
            for answer in asked {
                if let Answer::Snapshot(more) = answer {
                    calls.extend(more);
                }
            }
        }
        calls
    }

    /// Places the call through another node's bridge: the first node with a component
    /// connected whose bridge dials it.
    async fn place_elsewhere(
        &self,
        cluster: &Cluster,
        user: &User,
        request: CallRequest,
        format: Format,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let nodes = match self.telephony.routes() {
            Some(routes) => routes.component_nodes().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read where the call bridges are");
                Vec::new()
            }),
            None => Vec::new(),
        };
        for node in nodes.iter().filter(|node| *node != cluster.node()) {
            match self.ask(cluster, node, user, request.clone(), format).await {
                Ok(Answer::NoCallBridge) => continue,
                Ok(answer) => return answer.into_response(),
                Err(e) => {
                    tracing::warn!(error = %e, %node, "a node did not answer a call placement; trying the next");
                }
            }
        }
        Err(ApiError::NoCallBridge)
    }

    /// `request`'s answers from every other live node (those that answered).
    async fn ask_every_node(
        &self,
        cluster: &Cluster,
        user: &User,
        request: &CallRequest,
        format: Format,
    ) -> Vec<Answer> {
        let nodes = match self.telephony.routes() {
            Some(routes) => routes.live_nodes().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read which nodes are alive; this node's calls only");
                Vec::new()
            }),
            None => Vec::new(),
        };
        let asked = nodes
            .iter()
            .filter(|node| *node != cluster.node())
            .map(|node| self.ask(cluster, node, user, request.clone(), format));
        let mut answers = Vec::new();
        for answer in futures_util::future::join_all(asked).await {
            match answer {
                Ok(answer) => answers.push(answer),
                Err(e) => tracing::warn!(error = %e, "a node did not list its calls; left out"),
            }
        }
        answers
    }

    /// Has `node` answer `request` for `user`.
    async fn ask(
        &self,
        cluster: &Cluster,
        node: &str,
        user: &User,
        request: CallRequest,
        format: Format,
    ) -> Result<Answer, ClusterError> {
        let forwarded = Forwarded {
            user_id: user.id.clone(),
            json: format == Format::Json,
            request,
        };
        let payload = serde_json::to_vec(&forwarded).unwrap_or_default();
        let bytes = cluster.forward(node, Service::XsiCall, payload).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            tracing::error!(error = %e, %node, "a node answered a forwarded call request with nonsense");
            ClusterError::Unavailable(format!("{node} answered with nonsense"))
        })
    }

    /// Answers a request another node forwarded.
    async fn answer_forwarded(&self, forwarded: Forwarded) -> Answer {
        let format = format_of(forwarded.json);
        let user = match self.telephony.user(&forwarded.user_id).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                let error = ApiError::UnknownEntry(format!("user {}", forwarded.user_id));
                return Answer::rendered(respond(Err(error), format, &self.challenge)).await;
            }
            Err(e) => {
                return Answer::rendered(respond(Err(e.into()), format, &self.challenge)).await
            }
        };
        match forwarded.request {
            CallRequest::List => Answer::Calls(self.call_ids_here(&user)),
            CallRequest::HookStatus => Answer::OffHook(self.off_hook_here(&user)),
            CallRequest::Snapshot => Answer::Snapshot(self.telephony.calls().calls_of(&user.id)),
            request => {
                let result = self.call_request_here(&user, request, format).await;
                self.events_kept().await;
                match result {
                    Err(ApiError::NoCallBridge) => Answer::NoCallBridge,
                    result => Answer::rendered(respond(result, format, &self.challenge)).await,
                }
            }
        }
    }
}

/// Answers other nodes' call requests until shutdown.
pub async fn serve_forwarded_calls(
    actions: Arc<XsiActions>,
    cluster: &Cluster,
    shutdown: &crate::shutdown::Shutdown,
) -> Result<(), ClusterError> {
    let handler = move |payload: Bytes| {
        let actions = Arc::clone(&actions);
        async move {
            let answer = match serde_json::from_slice::<Forwarded>(&payload) {
                Ok(forwarded) => actions.answer_forwarded(forwarded).await,
                Err(e) => {
                    tracing::warn!(error = %e, "a forwarded call request cannot be read; refused");
                    let error = ApiError::Invalid {
                        field: "request".into(),
                        reason: "malformed forwarded request".into(),
                    };
                    Answer::rendered(respond(Err(error), Format::Xml, &actions.challenge)).await
                }
            };
            serde_json::to_vec(&answer).unwrap_or_default()
        }
    };
    cluster.serve(Service::XsiCall, handler, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers_survive_the_trip() {
        let forwarded = Forwarded {
            user_id: "alice@example.com".into(),
            json: true,
            request: CallRequest::Verb {
                call_id: "callhalf-n1-3".into(),
                verb: super::super::calls::CallVerb::ConsultTransfer("callhalf-n1-4".into()),
                query: Some("a=b".into()),
            },
        };
        let back: Forwarded =
            serde_json::from_slice(&serde_json::to_vec(&forwarded).unwrap()).unwrap();
        assert_eq!(back.request, forwarded.request);
        let answer = Answer::Rendered {
            status: 201,
            content_type: Some("application/xml".into()),
            location: Some("/v2.0/user/alice/calls/callhalf-n1-3".into()),
            body: "<CallStartInfo/>".into(),
        };
        let bytes = serde_json::to_vec(&answer).unwrap();
        assert_eq!(serde_json::from_slice::<Answer>(&bytes).unwrap(), answer);
    }
}
