//! Where the live XMPP connections are across a cluster: the store's shared register
//! ([`crate::store::routes`]), for the XMPP face's router. Only a clustered node (on
//! PostgreSQL) has one: [`Telephony::routes`] is `None` on SQLite.

use std::sync::Arc;
use std::time::Duration;

use crate::store::routes::RouteStore;
pub use crate::store::routes::{Changed, ClaimLimit, Route, RouteKind};
use crate::store::{Store, StoreError};

use super::{Telephony, TelephonyError};

/// The register; cheap to clone.
#[derive(Clone)]
pub struct Routes {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes").finish_non_exhaustive()
    }
}

impl Telephony {
    /// The cluster's register of live XMPP connections, if the store shares one.
    pub fn routes(&self) -> Option<Routes> {
        self.store.routes().map(|_| Routes {
            store: Arc::clone(&self.store),
        })
    }
}

impl Routes {
    fn register(&self) -> Result<&dyn RouteStore, TelephonyError> {
        self.store.routes().ok_or_else(|| {
            TelephonyError::Store(StoreError::Worker("the store keeps no routes".to_owned()))
        })
    }

    /// Renews `node`'s lease (see [`RouteStore::renew_lease`]); the nodes with a lease.
    pub async fn renew_lease(
        &self,
        node: &str,
        lease: Duration,
    ) -> Result<Vec<String>, TelephonyError> {
        Ok(self.register()?.renew_lease(node, lease).await?)
    }

    /// Forgets every entry of `node`.
    pub async fn clear_node(&self, node: &str) -> Result<(), TelephonyError> {
        Ok(self.register()?.clear_node(node).await?)
    }

    /// Adds a component connection if `limit` allows; the other nodes' connections it
    /// pushed out. `Err(Quota)` when refused.
    pub async fn claim(
        &self,
        route: &Route,
        limit: ClaimLimit,
    ) -> Result<Vec<Route>, TelephonyError> {
        match self.register()?.claim(route, limit).await {
            Err(StoreError::Full { limit }) => Err(TelephonyError::Quota {
                what: "component connections",
                limit,
            }),
            other => Ok(other?),
        }
    }

    /// Adds a client session.
    pub async fn add(&self, route: &Route) -> Result<(), TelephonyError> {
        Ok(self.register()?.add(route).await?)
    }

    /// Removes one connection.
    pub async fn remove(&self, node: &str, connection: u64) -> Result<(), TelephonyError> {
        Ok(self.register()?.remove(node, connection).await?)
    }

    /// Records a client's presence priority and availability.
    pub async fn set_presence(
        &self,
        node: &str,
        connection: u64,
        priority: i32,
        available: bool,
    ) -> Result<(), TelephonyError> {
        Ok(self
            .register()?
            .set_presence(node, connection, priority, available)
            .await?)
    }

    /// The nodes whose lease still runs.
    pub async fn live_nodes(&self) -> Result<Vec<String>, TelephonyError> {
        Ok(self.register()?.live_nodes().await?)
    }

    /// The live nodes with a component connected.
    pub async fn component_nodes(&self) -> Result<Vec<String>, TelephonyError> {
        Ok(self.register()?.component_nodes().await?)
    }

    /// The live connections of `address` (every one with `None`).
    pub async fn entries(&self, address: Option<&str>) -> Result<Vec<Route>, TelephonyError> {
        Ok(self.register()?.entries(address).await?)
    }

    /// Waits for the next change (never, without a register).
    pub async fn next_change(&self) -> Changed {
        match self.store.routes() {
            Some(register) => register.changes().next().await,
            None => std::future::pending().await,
        }
    }
}
