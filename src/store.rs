//! Persistence of the telephony model's records ([`crate::telephony::model`]), behind one
//! small trait per concern (directory, components, settings, personal contacts, call logs,
//! subscriptions, rosters), so that a second backend implements small traits and callers
//! take only the concern they use. SQLite (one file, WAL mode, versioned migrations) is
//! the embedded default: see [`sqlite::SqliteStore`]; PostgreSQL ([`postgres::PostgresStore`])
//! is the store several nodes share. Only `telephony` and the composition
//! code (`server.rs`, the CLI, the demo data) reach the store; `xmpp` and `xsi` go through
//! `telephony`.

pub mod backlog;
#[cfg(test)]
mod contract;
mod postgres;
pub mod routes;
mod sqlite;

use async_trait::async_trait;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::credentials::PasswordVerifiers;
use crate::telephony::model::UnknownValue;
use crate::telephony::model::{
    CallLogKind, CallLogRecord, ComponentRecord, Device, Enterprise, Group, PersonalContact,
    RosterItem, SubscriptionRecord, User,
};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database file or its directory cannot be used.
    #[error("cannot open the store at {path}: {reason}")]
    Open {
        /// The database file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// PostgreSQL reported an error.
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The database was written by a newer Bridgehead.
    #[error("the store has schema version {found}, newer than this build knows ({known}); upgrade Bridgehead")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Latest version this build knows.
        known: i64,
    },
    /// A record with that key exists already.
    #[error("{0} already exists")]
    Exists(String),
    /// The write would take a user past a limit on how many such records it may have.
    #[error("the limit of {limit} records is reached")]
    Full {
        /// The limit.
        limit: usize,
    },
    /// A record names another that does not exist.
    #[error("{0} does not exist")]
    Missing(String),
    /// A stored value cannot be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The blocking worker died.
    #[error("store worker failed: {0}")]
    Worker(String),
}

impl From<UnknownValue> for StoreError {
    fn from(e: UnknownValue) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// Enterprises, groups, users (with their password verifiers) and devices.
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    /// A counter that moves whenever users may have changed (added, removed, a new
    /// password), by this process at once or by another process (such as `bridgehead
    /// user passwd`, or another node) within a fraction of a second. Cheap: callers use it to
    /// know when a remembered user must be read again.
    fn users_generation(&self) -> u64;

    /// Creates or renames an enterprise.
    async fn put_enterprise(&self, enterprise: &Enterprise) -> Result<(), StoreError>;

    /// Creates or renames a group; its enterprise must exist.
    async fn put_group(&self, group: &Group) -> Result<(), StoreError>;

    /// All enterprises.
    async fn enterprises(&self) -> Result<Vec<Enterprise>, StoreError>;

    /// All groups.
    async fn groups(&self) -> Result<Vec<Group>, StoreError>;

    /// Adds a user; fails with `Exists` if the id is taken.
    async fn add_user(&self, user: &User) -> Result<(), StoreError>;

    /// One user.
    async fn user(&self, id: &str) -> Result<Option<User>, StoreError>;

    /// All users, ordered by id.
    async fn users(&self) -> Result<Vec<User>, StoreError>;

    /// The users whose number is `number` written with or without a leading `+`
    /// (`digits` is the number without it), ordered by id.
    async fn users_by_number(&self, digits: &str) -> Result<Vec<User>, StoreError>;

    /// The users with extension `extension`, ordered by id.
    async fn users_by_extension(&self, extension: &str) -> Result<Vec<User>, StoreError>;

    /// Replaces a user's password verifiers; false if there is no such user.
    async fn set_password(
        &self,
        id: &str,
        verifiers: &PasswordVerifiers,
    ) -> Result<bool, StoreError>;

    /// Removes a user; false if there is no such user.
    async fn remove_user(&self, id: &str) -> Result<bool, StoreError>;

    /// A user's devices, ordered by name.
    async fn devices(&self, user_id: &str) -> Result<Vec<Device>, StoreError>;

    /// Adds a device; `Exists` if the user has one by that name, `Missing` for an unknown user.
    async fn add_device(&self, device: &Device) -> Result<(), StoreError>;

    /// Removes a device; false if there is no such device.
    async fn remove_device(&self, user_id: &str, name: &str) -> Result<bool, StoreError>;
}

/// XEP-0114 components registered at run time (`bridgehead component add`).
#[async_trait]
pub trait ComponentStore: Send + Sync + 'static {
    /// Adds a component; fails with `Exists` if the name is taken.
    async fn add_component(&self, component: &ComponentRecord) -> Result<(), StoreError>;

    /// All components, ordered by name.
    async fn components(&self) -> Result<Vec<ComponentRecord>, StoreError>;

    /// Removes a component; false if there is no such component.
    async fn remove_component(&self, name: &str) -> Result<bool, StoreError>;
}

/// Users' service settings, each a JSON document the telephony catalogue owns.
#[async_trait]
pub trait SettingsStore: Send + Sync + 'static {
    /// A counter that moves whenever `user_id`'s settings may have been changed by another
    /// process or node (within a fraction of a second), and whenever users change. Cheap:
    /// callers use it to know when remembered settings must be read again (a change by
    /// this process is the caller's to forget).
    fn settings_generation(&self, user_id: &str) -> u64;

    /// A user's stored settings of one service (a JSON document owned by the telephony
    /// layer), or `None` when never set.
    async fn service_settings(
        &self,
        user_id: &str,
        service: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Stores a user's settings of one service; fails with `Missing` for an unknown user.
    async fn put_service_settings(
        &self,
        user_id: &str,
        service: &str,
        settings: &str,
    ) -> Result<(), StoreError>;
}

/// Users' personal directories.
#[async_trait]
pub trait ContactStore: Send + Sync + 'static {
    /// A user's personal directory, ordered by name.
    async fn personal_contacts(&self, user_id: &str) -> Result<Vec<PersonalContact>, StoreError>;

    /// Adds personal directory entries in one transaction, all or none: `Exists` if a name
    /// is taken, `Full` if the user would have more than `max_entries`.
    async fn add_personal_contacts(
        &self,
        user_id: &str,
        contacts: &[PersonalContact],
        max_entries: usize,
    ) -> Result<(), StoreError>;

    /// Removes a personal directory entry; false if there is none by that name.
    async fn remove_personal_contact(&self, user_id: &str, name: &str) -> Result<bool, StoreError>;
}

/// Users' call logs.
#[async_trait]
pub trait CallLogStore: Send + Sync + 'static {
    /// Records a call in a user's log, keeping the newest [`CALL_LOG_LIMIT`](crate::telephony::CALL_LOG_LIMIT) per kind.
    async fn add_call_log(&self, record: &CallLogRecord) -> Result<(), StoreError>;

    /// A user's call logs of `kind` (all kinds with `None`), newest first.
    async fn call_logs(
        &self,
        user_id: &str,
        kind: Option<CallLogKind>,
    ) -> Result<Vec<CallLogRecord>, StoreError>;
}

/// XSI-Events subscriptions (owned by channel sets, kept across restarts).
#[async_trait]
pub trait SubscriptionStore: Send + Sync + 'static {
    /// Creates or replaces a subscription.
    async fn put_subscription(&self, subscription: &SubscriptionRecord) -> Result<(), StoreError>;

    /// Every subscription.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError>;

    /// Removes a subscription; false if there was none.
    async fn remove_subscription(&self, id: &str) -> Result<bool, StoreError>;
}

/// Users' XMPP rosters.
#[async_trait]
pub trait RosterStore: Send + Sync + 'static {
    /// A user's roster, ordered by contact JID.
    async fn roster(&self, user_id: &str) -> Result<Vec<RosterItem>, StoreError>;

    /// One roster item, if the user has one for `jid`.
    async fn roster_item(&self, user_id: &str, jid: &str)
        -> Result<Option<RosterItem>, StoreError>;

    /// Creates or replaces a roster item; `Missing` for an unknown user, `Full` when the
    /// item is new and the roster has `max_items` already.
    async fn put_roster_item(
        &self,
        user_id: &str,
        item: &RosterItem,
        max_items: usize,
    ) -> Result<(), StoreError>;

    /// Removes a roster item; false if there was none.
    async fn remove_roster_item(&self, user_id: &str, jid: &str) -> Result<bool, StoreError>;

    /// Holds the pair of rosters of `user_id` and `contact` against changes from other
    /// nodes until released; `None` when the store serves one node (that node's own lock
    /// is enough).
    async fn lock_roster_pair(
        &self,
        _user_id: &str,
        _contact: &str,
    ) -> Result<Option<Box<dyn HeldLock>>, StoreError> {
        Ok(None)
    }
}

/// A lock the store holds for this node until it is released; one dropped unreleased is
/// let go too (its connection closes).
#[async_trait]
pub trait HeldLock: Send {
    /// Lets the lock go.
    async fn release(self: Box<Self>);
}

/// Opens the store `config` names: its SQLite file, or its PostgreSQL database (migrated,
/// with a pool of `pool_size`); where it is, for the log (never the password).
pub async fn open(
    config: &crate::config::Config,
) -> Result<(std::sync::Arc<dyn Store>, String), StoreError> {
    use crate::config::StoreBackend;
    match (config.store.backend, &config.store.url) {
        (StoreBackend::Postgres, Some(url)) => {
            let tls = postgres::tls_for(url.expose(), config.store.ca.as_deref())?;
            let store =
                PostgresStore::connect(url.expose(), config.store.pool_size.get(), tls).await?;
            Ok((
                std::sync::Arc::new(store),
                postgres::place(url.expose()).to_owned(),
            ))
        }
        (StoreBackend::Postgres, None) => Err(StoreError::Open {
            path: "[store] url".into(),
            reason: "backend \"postgres\" needs a url".into(),
        }),
        (StoreBackend::Sqlite, _) => {
            let path = config.store_path();
            let store = SqliteStore::open(&path)?;
            Ok((std::sync::Arc::new(store), path.display().to_string()))
        }
    }
}

/// Everything Bridgehead persists: one backend implements every concern's trait. Callers
/// that need one concern take that trait; the server holds the whole.
#[async_trait]
pub trait Store:
    DirectoryStore
    + ComponentStore
    + SettingsStore
    + ContactStore
    + CallLogStore
    + SubscriptionStore
    + RosterStore
{
    /// Housekeeping the server runs every second (SQLite: copy the write-ahead log into the
    /// database file, from a connection of its own).
    async fn checkpoint(&self) -> Result<(), StoreError>;

    /// `Err` with the reason while the store cannot be reached (PostgreSQL: its
    /// connection is down). SQLite, a file, is always there.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }

    /// The cluster's register of live XMPP connections, where the backend can share one
    /// (PostgreSQL); SQLite has none.
    fn routes(&self) -> Option<&dyn routes::RouteStore> {
        None
    }

    /// The event channel sets' shared backlog, where the backend can share one
    /// (PostgreSQL); SQLite has none.
    fn backlog(&self) -> Option<&dyn backlog::BacklogStore> {
        None
    }
}
