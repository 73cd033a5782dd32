//! `[cluster]`: this node's place among several that serve one domain. Without the section
//! Bridgehead is one node with an embedded store and no other process.

use std::path::PathBuf;

use serde::Deserialize;

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name among the cluster's nodes: its node cookie, the owner named in its
    /// channel ids, its NATS subjects. Letters, digits, `-` and `_`; unique per node and
    /// stable across restarts. `server.node_id`, when also set, must be the same.
    pub node: String,
    /// The NATS server (or a comma-separated list of a NATS cluster's servers),
    /// `nats://host:4222`; `user:password@` in a URL is the node's identity there.
    pub nats_url: crate::config::Secret,
    /// A file whose first line is the node's token for NATS (its internal identity), instead
    /// of a user and password in the URL.
    pub nats_token_file: Option<PathBuf>,
    /// The token, read from `nats_token_file` when the configuration is checked.
    #[serde(skip)]
    pub nats_token: Option<crate::config::Secret>,
    /// How long a request forwarded to the node that owns a channel may take before the
    /// client gets 503. Default 2000 ms.
    #[serde(default = "default_forward_timeout_ms")]
    pub forward_timeout_ms: std::num::NonZeroU64,
}

fn default_forward_timeout_ms() -> std::num::NonZeroU64 {
    nonzero!(2000)
}

/// Whether `name` can name a node: non-empty, letters, digits, `-` and `_` (it is one
/// token of NATS subjects, so never `.`, `*`, `>` or a space).
pub fn is_node_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl ClusterConfig {
    /// [`ClusterConfig::forward_timeout_ms`] as a duration.
    pub fn forward_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.forward_timeout_ms.get())
    }
}
