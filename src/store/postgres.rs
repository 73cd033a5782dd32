//! The PostgreSQL backend, for several nodes sharing one store (`[store] backend =
//! "postgres"`, `url = "postgres://…"`): a deadpool pool of tokio-postgres connections,
//! versioned migrations applied under an advisory lock (nodes starting together migrate
//! once), and the same tables and constraints as SQLite. Case-insensitive keys (user ids,
//! component names, roster JIDs) use a nondeterministic ICU collation, `bridgehead_nocase`.
//!
//! Other nodes' writes to users and their service settings reach
//! [`DirectoryStore::users_generation`] through LISTEN/NOTIFY: statement triggers on
//! `users` and `service_settings` notify `bridgehead_users`, and one
//! connection of this store listens. A notification arrives within milliseconds of the
//! commit; while the listening connection is down (it reconnects every second) changes are
//! not seen, and the generation moves once it is back, so callers read users again. The
//! listener ends when the last clone of the store is dropped. That connection is also the
//! store's health ([`Store::health`](super::Store::health)): while it is down, `/healthz`
//! says so.
//!
//! Connections are plain TCP today (NoTls): run PostgreSQL on the node's host or a
//! private network.
//!
//! [`DirectoryStore::users_generation`]: super::DirectoryStore::users_generation

mod directory;
mod records;
mod schema;
mod user_records;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Store, StoreError};

/// The channel the `users` and `service_settings` triggers notify.
const USERS_CHANNEL: &str = "bridgehead_users";
/// Between attempts to bring the listening connection back.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: deadpool_postgres::Pool,
    generation: Arc<AtomicU64>,
    /// True while the listening connection is up: the store's health.
    listening: Arc<AtomicBool>,
    /// Ends the listener when the last clone goes.
    _listener: Arc<DropGuard>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db` or a key=value string)
    /// with a pool of up to `pool_size` connections, brings the schema up to date and
    /// starts listening for other nodes' user changes.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| open_error(url, e.to_string()))?;
        let manager = deadpool_postgres::Manager::from_config(
            config.clone(),
            NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| open_error(url, e.to_string()))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| open_error(url, e.to_string()))?;
        schema::migrate(&mut client).await?;
        drop(client);
        let generation = Arc::new(AtomicU64::new(0));
        let listening = Arc::new(AtomicBool::new(false));
        let stop = CancellationToken::new();
        let link = Link {
            generation: Arc::clone(&generation),
            listening: Arc::clone(&listening),
        };
        tokio::spawn(listen(config, link, stop.clone()));
        Ok(PostgresStore {
            pool,
            generation,
            listening,
            _listener: Arc::new(stop.drop_guard()),
        })
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Worker(format!("PostgreSQL pool: {e}")))
    }

    fn users_changed_here(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// Where `url` points, without its user and password: `host:port/db`.
pub(crate) fn place(url: &str) -> &str {
    url.rsplit_once('@')
        .map_or("the configured PostgreSQL database", |(_, place)| place)
}

fn open_error(url: &str, reason: String) -> StoreError {
    StoreError::Open {
        path: place(url).into(),
        reason,
    }
}

/// What the listening connection keeps up to date.
struct Link {
    generation: Arc<AtomicU64>,
    listening: Arc<AtomicBool>,
}

/// Keeps one connection listening on [`USERS_CHANNEL`], bumping the generation for every
/// notification and whenever the connection comes back (changes may have been missed).
async fn listen(config: tokio_postgres::Config, link: Link, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            ended = listen_once(&config, &link) => {
                link.listening.store(false, Ordering::Release);
                match ended {
                    Ok(()) => tracing::warn!("the store's listening connection closed; reconnecting"),
                    Err(e) => tracing::warn!(error = %e, "the store's listening connection failed; reconnecting"),
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(LISTEN_RETRY) => {}
        }
    }
}

/// One listening connection, until it ends. Dropping the future drops the client, which
/// ends the connection and its driver.
async fn listen_once(
    config: &tokio_postgres::Config,
    link: &Link,
) -> Result<(), tokio_postgres::Error> {
    use futures_util::StreamExt;
    let (client, mut connection) = config.connect(NoTls).await?;
    let counter = Arc::clone(&link.generation);
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(_) = message? {
                counter.fetch_add(1, Ordering::Release);
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN {USERS_CHANNEL}"))
        .await?;
    link.generation.fetch_add(1, Ordering::Release);
    if !link.listening.swap(true, Ordering::AcqRel) {
        tracing::info!("the store's listening connection is up");
    }
    let ended = driver.await;
    drop(client);
    ended.unwrap_or(Ok(()))
}

/// A unique-key clash as `Exists(what)`, a missing referenced row as `Missing(missing)`,
/// anything else as it is.
fn constraint_error(
    e: tokio_postgres::Error,
    what: impl FnOnce() -> String,
    missing: impl FnOnce() -> String,
) -> StoreError {
    match e.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => StoreError::Exists(what()),
        Some(code) if *code == SqlState::FOREIGN_KEY_VIOLATION => StoreError::Missing(missing()),
        _ => e.into(),
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn checkpoint(&self) -> Result<(), StoreError> {
        // PostgreSQL runs its own checkpoints and vacuum.
        Ok(())
    }

    fn health(&self) -> Result<(), String> {
        if self.listening.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err("PostgreSQL: not connected (reconnecting every second)".to_owned())
        }
    }
}

#[cfg(test)]
mod tests;
