//! Several nodes serving one domain (`[cluster]`): the messaging between them, over NATS.
//! Without `[cluster]` there is no [`Cluster`] and nothing here runs.
//!
//! ```text
//! node B (not the owner)                NATS                    node A (owner)
//!   request(A, XsiChannel, bytes) ──► bridgehead.node.A.xsi-channel ──► serve(XsiChannel, handler)
//!   ◄── reply within forward_timeout ◄──────────────────────────────── handler(bytes) → bytes
//!   no subscriber on the subject      → ClusterError::NodeGone (NATS "no responders", at once)
//!   no reply in time                  → ClusterError::Timeout
//!   NATS not connected                → ClusterError::Unavailable
//! ```
//!
//! The payloads are the callers' own (serde JSON of their typed requests); this module
//! only carries bytes between named nodes and says how that went. A node's subject names
//! it (`bridgehead.node.<node>.<service>`), so a request reaches only its owner. Besides
//! requests there is plain publish/subscribe ([`Cluster::publish`], [`Cluster::subscribe`])
//! for what every interested node should hear (XSI-Events fan-out).
//!
//! The connection reconnects by itself; while it is down, [`Cluster::health`] says so
//! (`/healthz` answers 503) and requests fail at once with `Unavailable`. Every
//! disconnection and reconnection is logged. A node starts even when NATS is not up yet,
//! and connects as soon as it is.

use std::time::Duration;

use hyper::body::Bytes;

use crate::config::ClusterConfig;
use crate::shutdown::Shutdown;

/// What the cluster's messaging carries between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// An XSI-Events channel request (heartbeat, update, delete, event response) for the
    /// node that holds the channel.
    XsiChannel,
    /// An XMPP stanza for a connection on that node.
    Xmpp,
    /// A client session on that node that a bind elsewhere takes over
    /// (`resource_conflict = "replace"`).
    XmppTakeover,
    /// An XSI-Actions call request for the node that holds the call (or that can place
    /// it, or that lists its calls).
    XsiCall,
}

impl Service {
    /// Its word in NATS subjects and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Service::XsiChannel => "xsi-channel",
            Service::Xmpp => "xmpp",
            Service::XmppTakeover => "xmpp-takeover",
            Service::XsiCall => "xsi-call",
        }
    }
}

/// Why a message between nodes did not get its answer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS cannot be reached (or the URL cannot be used).
    #[error("the cluster's messaging (NATS) is unavailable: {0}")]
    Unavailable(String),
    /// No node of that name is listening: it is gone (stopped or dead).
    #[error("node {0} is gone")]
    NodeGone(String),
    /// The node did not answer in time.
    #[error("node {node} did not answer within {} ms", .after.as_millis())]
    Timeout {
        /// The node.
        node: String,
        /// How long we waited.
        after: Duration,
    },
}

/// The node's link to the others; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    client: async_nats::Client,
    node: std::sync::Arc<str>,
    timeout: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Requests in flight to other nodes, answered out of band (see [`Cluster::pipeline`]).
#[derive(Debug)]
pub struct Pipeline {
    client: async_nats::Client,
    inbox: String,
    answers: async_nats::Subscriber,
}

/// How a pipelined request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The node answered.
    Answered(Bytes),
    /// Nobody listens on that node's subject: it is gone.
    NodeGone,
}

impl Pipeline {
    /// Sends request number `tag` with `payload` to `service` on `node`.
    pub async fn send(
        &self,
        node: &str,
        service: Service,
        tag: u64,
        payload: Vec<u8>,
    ) -> Result<(), ClusterError> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(ClusterError::Unavailable("NATS: not connected".to_owned()));
        }
        self.client
            .publish_with_reply(
                subject(node, service),
                format!("{}.{tag}", self.inbox),
                Bytes::from(payload),
            )
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))
    }

    /// The next answer, with its request's tag (`None` once the connection is closed).
    pub async fn answer(&mut self) -> Option<(u64, Answer)> {
        use futures_util::StreamExt;
        loop {
            let message = self.answers.next().await?;
            let Some(tag) = message
                .subject
                .rsplit_once('.')
                .and_then(|(_, tag)| tag.parse().ok())
            else {
                continue;
            };
            let answer = match message.status {
                Some(async_nats::StatusCode::NO_RESPONDERS) => Answer::NodeGone,
                _ => Answer::Answered(message.payload),
            };
            return Some((tag, answer));
        }
    }
}

/// Every subject of Bridgehead's starts with this word.
const PREFIX: &str = "bridgehead";

fn subject(node: &str, service: Service) -> String {
    format!("{PREFIX}.node.{node}.{}", service.label())
}

/// `value` as one subject token: its lower-cased bytes in hex (user ids and group names
/// hold dots, which separate tokens).
pub fn token(value: &str) -> String {
    hex::encode(value.to_lowercase())
}

impl Cluster {
    /// Starts the NATS connection `config` names, as node `config.node` (the connection
    /// keeps trying in the background when NATS is not up yet).
    pub async fn connect(config: &ClusterConfig) -> Result<Cluster, ClusterError> {
        let addrs = config
            .nats_url
            .expose()
            .split(',')
            .map(|url| url.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClusterError::Unavailable(format!("cluster.nats_url: {e}")))?;
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("bridgehead {}", config.node))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(config.forward_timeout()))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("cluster messaging connected"),
                    async_nats::Event::Disconnected => tracing::warn!(
                        "cluster messaging (NATS) disconnected; requests for other nodes \
                         fail until it is back"
                    ),
                    other => tracing::warn!(event = %other, "cluster messaging"),
                }
            });
        if let Some(token) = &config.nats_token {
            options = options.token(token.expose().to_owned());
        }
        let client = options
            .connect(addrs)
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        Ok(Cluster {
            client,
            node: config.node.as_str().into(),
            timeout: config.forward_timeout(),
        })
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How long a request waits for its answer (`forward_timeout_ms`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `Err` with the reason while the messaging is down.
    pub fn health(&self) -> Result<(), String> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            async_nats::connection::State::Pending => Err("NATS: connecting".to_owned()),
            async_nats::connection::State::Disconnected => Err("NATS: disconnected".to_owned()),
        }
    }

    /// [`Cluster::request`], counted in `bridgehead_cluster_forwards_total` with its
    /// outcome and timed.
    pub async fn forward(
        &self,
        node: &str,
        service: Service,
        payload: Vec<u8>,
    ) -> Result<Bytes, ClusterError> {
        let started = std::time::Instant::now();
        let answer = self.request(node, service, payload).await;
        let outcome = match &answer {
            Ok(_) => "answered",
            Err(ClusterError::NodeGone(_)) => "gone",
            Err(ClusterError::Timeout { .. }) => "timeout",
            Err(ClusterError::Unavailable(_)) => "unavailable",
        };
        crate::telemetry::cluster_forward(service.label(), outcome, started.elapsed());
        answer
    }

    /// Sends `payload` to `service` on `node` and waits for its answer.
    pub async fn request(
        &self,
        node: &str,
        service: Service,
        payload: Vec<u8>,
    ) -> Result<Bytes, ClusterError> {
        if let Err(why) = self.health() {
            return Err(ClusterError::Unavailable(why));
        }
        let request = async_nats::Request::new().payload(Bytes::from(payload));
        match self
            .client
            .send_request(subject(node, service), request)
            .await
        {
            Ok(message) => Ok(message.payload),
            Err(e) => Err(match e.kind() {
                async_nats::client::RequestErrorKind::NoResponders => {
                    ClusterError::NodeGone(node.to_owned())
                }
                async_nats::client::RequestErrorKind::TimedOut => ClusterError::Timeout {
                    node: node.to_owned(),
                    after: self.timeout,
                },
                _ => ClusterError::Unavailable(e.to_string()),
            }),
        }
    }

    /// Requests that go out one after another without waiting for each answer (in the
    /// order sent, as NATS keeps one connection's messages in order); the answers come
    /// back through [`Pipeline::answer`].
    pub async fn pipeline(&self) -> Result<Pipeline, ClusterError> {
        let inbox = self.client.new_inbox();
        let answers = self
            .client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        Ok(Pipeline {
            client: self.client.clone(),
            inbox,
            answers,
        })
    }

    /// Publishes `payload` on `bridgehead.<subject>` for every node listening there
    /// (fire and forget: NATS keeps nothing for a node that is not listening).
    pub async fn publish(&self, subject: &str, payload: Vec<u8>) -> Result<(), ClusterError> {
        if let Err(why) = self.health() {
            return Err(ClusterError::Unavailable(why));
        }
        self.client
            .publish(format!("{PREFIX}.{subject}"), Bytes::from(payload))
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))
    }

    /// Listens on `bridgehead.<subject>` (NATS wildcards `*` and `>` allowed); dropping
    /// the subscriber ends it.
    /// Returns once the NATS server has the subscription in force, so that whatever
    /// another node publishes after this returns reaches it.
    pub async fn subscribe(&self, subject: &str) -> Result<async_nats::Subscriber, ClusterError> {
        let unavailable = |e: &dyn std::fmt::Display| ClusterError::Unavailable(e.to_string());
        let subscriber = self
            .client
            .subscribe(format!("{PREFIX}.{subject}"))
            .await
            .map_err(|e| unavailable(&e))?;
        // The server handles one connection's commands in order: once a message published
        // to our own inbox comes back, every subscription sent before it is in force.
        use futures_util::StreamExt;
        let inbox = self.client.new_inbox();
        let mut probe = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| unavailable(&e))?;
        self.client
            .publish(inbox, Bytes::new())
            .await
            .map_err(|e| unavailable(&e))?;
        match tokio::time::timeout(self.timeout, probe.next()).await {
            Ok(Some(_)) => Ok(subscriber),
            _ => Err(ClusterError::Unavailable(
                "the NATS server did not confirm a subscription".to_owned(),
            )),
        }
    }

    /// Answers this node's requests for `service` with `handler` until shutdown, each in a
    /// task of its own (a slow answer does not hold up the next request).
    pub async fn serve<H, F>(
        &self,
        service: Service,
        handler: H,
        shutdown: &Shutdown,
    ) -> Result<(), ClusterError>
    where
        H: Fn(Bytes) -> F + Send + Sync + 'static,
        F: std::future::Future<Output = Vec<u8>> + Send + 'static,
    {
        let mut requests = self
            .client
            .subscribe(subject(&self.node, service))
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        let (client, stop, tasks) = (self.client.clone(), shutdown.clone(), shutdown.clone());
        shutdown.spawn(async move {
            use futures_util::StreamExt;
            loop {
                let message = tokio::select! {
                    _ = stop.cancelled() => break,
                    message = requests.next() => match message {
                        Some(message) => message,
                        None => break,
                    },
                };
                let Some(reply) = message.reply else {
                    tracing::warn!(
                        service = service.label(),
                        "a cluster request without a reply subject; dropped"
                    );
                    continue;
                };
                let answer = handler(message.payload);
                let client = client.clone();
                tasks.spawn(async move {
                    if let Err(e) = client.publish(reply, Bytes::from(answer.await)).await {
                        tracing::warn!(error = %e, "cannot answer a cluster request");
                    }
                });
            }
            let _ = requests.unsubscribe().await;
        });
        Ok(())
    }
}
