//! The PostgreSQL backend, for several nodes sharing one store (`[store] backend =
//! "postgres"`, `url = "postgres://…"`): a deadpool pool of tokio-postgres connections,
//! versioned migrations applied under an advisory lock (nodes starting together migrate
//! once), and the same tables and constraints as SQLite. Case-insensitive keys (user ids,
//! component names, roster JIDs) use a nondeterministic ICU collation, `bridgehead_nocase`.
//!
//! Other nodes' writes reach the caches through LISTEN/NOTIFY: a statement trigger on
//! `users` notifies `bridgehead_users`, which moves [`DirectoryStore::users_generation`];
//! a row trigger on `service_settings` notifies `bridgehead_settings` with the user's id,
//! which moves only that user's [`SettingsStore::settings_generation`] (so a node's
//! settings writes do not empty every cache of every node). One
//! connection of this store listens. A notification arrives within milliseconds of the
//! commit; while the listening connection is down (it reconnects every second) changes are
//! not seen, and the generation moves once it is back, so callers read users again. The
//! listener ends when the last clone of the store is dropped. That connection is also the
//! store's health ([`Store::health`](super::Store::health)): while it is down, `/healthz`
//! says so.
//!
//! Connections use TLS (rustls, through tokio-postgres-rustls) when the URL says
//! `sslmode=require`: PostgreSQL's certificate must chain to `[store] ca` (or the system's
//! roots) and name the host. Without it they are plain TCP, as libpq's `disable`: run
//! PostgreSQL on the node's host or a private network then.
//!
//! [`DirectoryStore::users_generation`]: super::DirectoryStore::users_generation
//! [`SettingsStore::settings_generation`]: super::SettingsStore::settings_generation

mod backlog;
mod directory;
mod records;
mod routes;
mod schema;
mod user_records;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::routes::{RouteChanges, RouteStore};
use super::{Store, StoreError};

/// The channel the `users` trigger notifies.
const USERS_CHANNEL: &str = "bridgehead_users";
/// The channel the `service_settings` trigger notifies, with the user's id.
const SETTINGS_CHANNEL: &str = "bridgehead_settings";
/// The channel the `xmpp_routes` trigger notifies, with the entry's address.
const ROUTES_CHANNEL: &str = "bridgehead_routes";
/// Users whose settings changes are counted one by one; past it the counts start again
/// and the users generation moves (every remembered setting is read again once).
const SETTINGS_COUNTED: usize = 100_000;
/// Between attempts to bring the listening connection back.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: deadpool_postgres::Pool,
    generation: Arc<AtomicU64>,
    /// True while the listening connection is up: the store's health.
    listening: Arc<AtomicBool>,
    /// Lower-cased user id → settings changes notified for that user.
    settings_changes: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
    /// XMPP route changes notified.
    route_changes: Arc<RouteChanges>,
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
    /// With `tls` every connection is TLS ([`tls_for`]).
    pub async fn connect(
        url: &str,
        pool_size: usize,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| open_error(url, e.to_string()))?;
        let manager_config = || deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        };
        let connector = tls.map(|config| MakeRustlsConnect::new(Arc::unwrap_or_clone(config)));
        let manager = match &connector {
            Some(tls) => deadpool_postgres::Manager::from_config(
                config.clone(),
                tls.clone(),
                manager_config(),
            ),
            None => {
                deadpool_postgres::Manager::from_config(config.clone(), NoTls, manager_config())
            }
        };
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| open_error(url, e.to_string()))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| open_error(url, with_causes(&e)))?;
        schema::migrate(&mut client).await?;
        drop(client);
        let generation = Arc::new(AtomicU64::new(0));
        let listening = Arc::new(AtomicBool::new(false));
        let settings_changes = Arc::default();
        let route_changes = Arc::default();
        let stop = CancellationToken::new();
        let link = Link {
            generation: Arc::clone(&generation),
            listening: Arc::clone(&listening),
            settings_changes: Arc::clone(&settings_changes),
            route_changes: Arc::clone(&route_changes),
        };
        tokio::spawn(listen(config, connector, link, stop.clone()));
        Ok(PostgresStore {
            pool,
            generation,
            listening,
            settings_changes,
            route_changes,
            _listener: Arc::new(stop.drop_guard()),
        })
    }

    /// A pooled connection.
    async fn client(&self) -> Result<Connection, StoreError> {
        self.pool
            .get()
            .await
            .map(Connection)
            .map_err(|e| StoreError::Worker(format!("PostgreSQL pool: {e}")))
    }

    fn users_changed_here(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The users generation in the high half, the user's notified settings changes in
    /// the low half: either moving moves it, and it never repeats.
    fn settings_generation_of(&self, user_id: &str) -> u64 {
        let users = self.generation.load(Ordering::Acquire);
        let changes = self
            .settings_changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&user_id.to_lowercase())
            .copied()
            .unwrap_or(0);
        (users << 32) | (changes & 0xffff_ffff)
    }
}

type Params<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];

/// A pooled connection whose queries go through the connection's statement cache: each
/// statement is parsed once per connection, not on every call (tokio-postgres prepares a
/// `&str` query anew each time). Transactions and the rest through `Deref`.
pub(super) struct Connection(deadpool_postgres::Client);

impl std::ops::Deref for Connection {
    type Target = deadpool_postgres::Client;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Connection {
    /// Closes the connection rather than giving it back to the pool (what it holds, such
    /// as a session lock, ends with it).
    pub(super) fn discard(self) {
        drop(deadpool_postgres::Client::take(self.0));
    }

    pub(super) async fn execute(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.execute(&statement, params).await
    }

    pub(super) async fn query(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query(&statement, params).await
    }

    pub(super) async fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<tokio_postgres::Row>, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query_opt(&statement, params).await
    }
}

/// Where `url` points, without its user and password: `host:port/db`.
pub(crate) fn place(url: &str) -> &str {
    url.rsplit_once('@')
        .map_or("the configured PostgreSQL database", |(_, place)| place)
}

/// The TLS a connection to `url` uses: with `sslmode=require`, rustls trusting the PEM
/// bundle `ca` (the system's roots without it); otherwise none.
pub(super) fn tls_for(
    url: &str,
    ca: Option<&std::path::Path>,
) -> Result<Option<Arc<rustls::ClientConfig>>, StoreError> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| open_error(url, e.to_string()))?;
    if config.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
        return Ok(None);
    }
    crate::tls::client_config_trusting(ca)
        .map(Some)
        .map_err(|e| StoreError::Open {
            path: "[store] ca".into(),
            reason: e.to_string(),
        })
}

/// `error` and what caused it, in one line (a TLS refusal says why the certificate was
/// not accepted).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let more = next.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = next.source();
    }
    text
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
    settings_changes: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
    route_changes: Arc<RouteChanges>,
}

impl Link {
    fn notified(&self, notification: &tokio_postgres::Notification) {
        if notification.channel() == ROUTES_CHANNEL {
            self.route_changes.changed(notification.payload());
            return;
        }
        if notification.channel() != SETTINGS_CHANNEL {
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut changes = self
            .settings_changes
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if changes.len() >= SETTINGS_COUNTED {
            changes.clear();
            self.generation.fetch_add(1, Ordering::Release);
        }
        *changes
            .entry(notification.payload().to_owned())
            .or_insert(0) += 1;
    }
}

/// Keeps one connection listening on [`USERS_CHANNEL`], bumping the generation for every
/// notification and whenever the connection comes back (changes may have been missed).
async fn listen(
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
    link: Link,
    stop: CancellationToken,
) {
    loop {
        let once = async {
            match &tls {
                Some(tls) => listen_once(&config, tls.clone(), &link).await,
                None => listen_once(&config, NoTls, &link).await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            ended = once => {
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
async fn listen_once<T>(
    config: &tokio_postgres::Config,
    tls: T,
    link: &Link,
) -> Result<(), tokio_postgres::Error>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    use futures_util::StreamExt;
    let (client, mut connection) = config.connect(tls).await?;
    let notified = Link {
        generation: Arc::clone(&link.generation),
        listening: Arc::clone(&link.listening),
        settings_changes: Arc::clone(&link.settings_changes),
        route_changes: Arc::clone(&link.route_changes),
    };
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(notification) = message? {
                notified.notified(&notification);
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!(
            "LISTEN {USERS_CHANNEL}; LISTEN {SETTINGS_CHANNEL}; LISTEN {ROUTES_CHANNEL}"
        ))
        .await?;
    link.generation.fetch_add(1, Ordering::Release);
    link.route_changes.everything();
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

    fn routes(&self) -> Option<&dyn RouteStore> {
        Some(self)
    }

    fn backlog(&self) -> Option<&dyn super::backlog::BacklogStore> {
        Some(self)
    }
}

#[cfg(test)]
mod tests;
