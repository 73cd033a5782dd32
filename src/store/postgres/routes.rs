//! The register of live XMPP connections ([`RouteStore`]) in `xmpp_routes` and
//! `node_leases`. A component claim runs in one transaction under an advisory lock on
//! the component's name, so two nodes admitting connections of one name at once count
//! each other.

use std::time::Duration;

use async_trait::async_trait;

use super::PostgresStore;
use crate::store::routes::{ClaimLimit, Route, RouteChanges, RouteKind, RouteStore};
use crate::store::StoreError;

/// The columns every query returns, in [`route`]'s order.
const COLUMNS: &str =
    "r.node, r.connection, r.kind, r.address, r.resource, r.priority, r.available";

/// Only entries of nodes whose lease still runs.
const LIVE: &str = "JOIN node_leases l ON l.node = r.node AND l.expires_at > now()";

fn route(row: &tokio_postgres::Row) -> Result<Route, StoreError> {
    let connection: i64 = row.get(1);
    Ok(Route {
        node: row.get(0),
        connection: connection as u64,
        kind: RouteKind::parse(row.get(2))?,
        address: row.get(3),
        resource: row.get(4),
        priority: row.get(5),
        available: row.get(6),
    })
}

/// Connection ids are u64 counters from 1; PostgreSQL keeps them as BIGINT.
fn id(connection: u64) -> i64 {
    connection as i64
}

#[async_trait]
impl RouteStore for PostgresStore {
    async fn renew_lease(&self, node: &str, lease: Duration) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let secs = lease.as_secs_f64();
        client
            .execute(
                "INSERT INTO node_leases (node, expires_at)
                 VALUES ($1, now() + make_interval(secs => $2))
                 ON CONFLICT (node) DO UPDATE SET expires_at = EXCLUDED.expires_at",
                &[&node, &secs],
            )
            .await?;
        drop_expired(&*client).await?;
        let live = client
            .query("SELECT node FROM node_leases ORDER BY node", &[])
            .await?;
        Ok(live.iter().map(|row| row.get(0)).collect())
    }

    async fn clear_node(&self, node: &str) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute("DELETE FROM xmpp_routes WHERE node = $1", &[&node])
            .await?;
        Ok(())
    }

    async fn claim(&self, new: &Route, limit: ClaimLimit) -> Result<Vec<Route>, StoreError> {
        let mut client = self.client().await?;
        // A dead node's entries go now, not at the next renewal: every node stops routing
        // to them as soon as a claim has counted them out.
        drop_expired(&*client).await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&new.address],
        )
        .await?;
        let others = tx
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM xmpp_routes r {LIVE}
                     WHERE r.address = $1 AND r.kind = 'component' AND r.node <> $2
                     ORDER BY r.since"
                ),
                &[&new.address, &new.node],
            )
            .await?
            .iter()
            .map(route)
            .collect::<Result<Vec<_>, _>>()?;
        let max = limit.max.max(1);
        let mut evicted = Vec::new();
        if limit.local_live + others.len() >= max {
            if !limit.replace {
                return Err(StoreError::Full { limit: max });
            }
            // This node keeps min(local + 1, max) after its own router makes room; the
            // other nodes keep what is left, newest first.
            let local_after = (limit.local_live + 1).min(max);
            let keep = max - local_after;
            let excess = others.len().saturating_sub(keep);
            for old in others.into_iter().take(excess) {
                tx.execute(
                    "DELETE FROM xmpp_routes WHERE node = $1 AND connection = $2",
                    &[&old.node, &id(old.connection)],
                )
                .await?;
                evicted.push(old);
            }
        }
        insert(&tx, new).await?;
        tx.commit().await?;
        Ok(evicted)
    }

    async fn add(&self, route: &Route) -> Result<(), StoreError> {
        let client = self.client().await?;
        insert(&*client, route).await
    }

    async fn remove(&self, node: &str, connection: u64) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM xmpp_routes WHERE node = $1 AND connection = $2",
                &[&node, &id(connection)],
            )
            .await?;
        Ok(())
    }

    async fn set_presence(
        &self,
        node: &str,
        connection: u64,
        priority: i32,
        available: bool,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "UPDATE xmpp_routes SET priority = $3, available = $4
                 WHERE node = $1 AND connection = $2
                   AND (priority <> $3 OR available <> $4)",
                &[&node, &id(connection), &priority, &available],
            )
            .await?;
        Ok(())
    }

    async fn live_nodes(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT node FROM node_leases WHERE expires_at > now() ORDER BY node",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn component_nodes(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT DISTINCT r.node FROM xmpp_routes r {LIVE}
                     WHERE r.kind = 'component' ORDER BY r.node"
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn entries(&self, address: Option<&str>) -> Result<Vec<Route>, StoreError> {
        let client = self.client().await?;
        let rows = match address {
            Some(address) => {
                client
                    .query(
                        &format!("SELECT {COLUMNS} FROM xmpp_routes r {LIVE} WHERE r.address = $1"),
                        &[&address],
                    )
                    .await?
            }
            None => {
                client
                    .query(&format!("SELECT {COLUMNS} FROM xmpp_routes r {LIVE}"), &[])
                    .await?
            }
        };
        rows.iter().map(route).collect()
    }

    fn changes(&self) -> &RouteChanges {
        &self.route_changes
    }
}

async fn insert<C: deadpool_postgres::GenericClient + Sync>(
    client: &C,
    route: &Route,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO xmpp_routes
                 (node, connection, kind, address, resource, priority, available)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (node, connection) DO UPDATE SET
                 kind = EXCLUDED.kind, address = EXCLUDED.address,
                 resource = EXCLUDED.resource, priority = EXCLUDED.priority,
                 available = EXCLUDED.available",
            &[
                &route.node,
                &id(route.connection),
                &route.kind.as_str(),
                &route.address,
                &route.resource,
                &route.priority,
                &route.available,
            ],
        )
        .await?;
    Ok(())
}

/// Deletes the leases that ran out and those nodes' entries.
async fn drop_expired<C: deadpool_postgres::GenericClient + Sync>(
    client: &C,
) -> Result<(), StoreError> {
    let expired = client
        .query(
            "DELETE FROM node_leases WHERE expires_at <= now() RETURNING node",
            &[],
        )
        .await?;
    if !expired.is_empty() {
        let gone: Vec<String> = expired.iter().map(|row| row.get(0)).collect();
        client
            .execute("DELETE FROM xmpp_routes WHERE node = ANY($1)", &[&gone])
            .await?;
        tracing::warn!(nodes = ?gone, "cluster nodes' leases ran out; their XMPP routes are gone");
    }
    Ok(())
}
