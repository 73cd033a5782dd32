//! The telephony model both faces share: its records ([`model`]: users, groups and
//! enterprises with their roles, devices, personal contacts, call logs, registered
//! components, XMPP rosters, XSI-Events subscriptions), service settings ([`services`]),
//! the directory search, and the event bus that announces every change.
//!
//! `server.rs` builds one [`Telephony`] handle over the store and hands clones to both
//! faces: XMPP reads users (SASL), rosters and registered components through it; XSI-Actions
//! reads and changes users, settings and contacts; XSI-Events keeps its subscriptions
//! through it and subscribes to its [`EventBus`]. Neither face holds the store. Who may
//! reach whom is decided in one place, [`access`]. A change of a service setting follows
//! one path whatever interface made it:
//!
//! ```text
//! set_service(user, settings)
//!   validate (numbers, rings, locations)       ── TelephonyError::Invalid → the caller's error
//!   per-user lock ── store.put_service_settings ── EventBus::publish(user, ServiceChanged)
//! ```
//!
//! The per-user lock makes the order of events for one user the order in which their
//! settings were stored, so a subscriber that applies events in sequence ends with what the
//! store holds.

pub mod access;
pub mod backlog;
mod call_control;
pub mod calls;
mod components;
pub mod dialing;
pub mod directory;
pub mod events;
pub mod model;
mod records;
mod rosters;
pub use rosters::RosterLock;
pub mod routes;
pub mod services;
mod subscriptions;
mod transfers;

use std::sync::Arc;

use crate::config::{CallsConfig, QuotasConfig};

use crate::store::{Store, StoreError};

pub use access::{may_reach, Reach};
pub use directory::{DirectoryEntry, DirectoryPage, DirectoryQuery, DirectoryScope};
pub use events::{CallEvent, EventBus, EventKind, TelephonyEvent};
pub use model::{
    CallLogKind, CallLogRecord, ComponentRecord, Device, Enterprise, Group, OnConflict,
    PersonalContact, Role, RosterItem, RosterSubscription, SubscriptionRecord, SubscriptionTarget,
    UnknownValue, User, UserScope, CALL_LOG_LIMIT,
};
pub use services::{ServiceName, ServiceSettings};

/// Why a telephony operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TelephonyError {
    /// A value does not fit its field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, in the interface's own spelling (e.g. `forwardToPhoneNumber`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No such user.
    #[error("user {0} does not exist")]
    UnknownUser(String),
    /// The record exists already (e.g. a personal directory name).
    #[error("{0} already exists")]
    Exists(String),
    /// The user is at one of its `[quotas]`.
    #[error("too many {what}: the limit is {limit}")]
    Quota {
        /// What is at its limit, in words.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// No call bridge can carry the call.
    #[error("no call bridge is available to carry the call")]
    NoCallBridge,
    /// The user has no call by that id.
    #[error("call {0} does not exist")]
    UnknownCall(String),
    /// The call's state does not allow the action.
    #[error(transparent)]
    Call(#[from] calls::CallError),
    /// The bridge carrying the call refused or did not confirm.
    #[error(transparent)]
    Carrier(#[from] calls::CarrierError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for TelephonyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exists(what) => TelephonyError::Exists(what),
            other => TelephonyError::Store(other),
        }
    }
}

/// Stripes of the per-user write lock (see the module docs).
const USER_LOCK_STRIPES: usize = 64;

/// The handle the interfaces use; cheap to clone.
#[derive(Clone)]
pub struct Telephony {
    store: Arc<dyn Store>,
    events: EventBus,
    quotas: crate::config::Live<QuotasConfig>,
    user_locks: Arc<[tokio::sync::Mutex<()>]>,
    calls: Arc<calls::CallRegistry>,
    calls_config: Arc<CallsConfig>,
    users: Arc<records::Remembered<String, Option<User>>>,
    settings: Arc<records::Remembered<(String, ServiceName), ServiceSettings>>,
    carrier: Arc<std::sync::OnceLock<Arc<dyn calls::CallCarrier>>>,
}

impl std::fmt::Debug for Telephony {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telephony").finish_non_exhaustive()
    }
}

impl Telephony {
    /// A model over `store`, announcing changes on `events`.
    pub fn new(store: Arc<dyn Store>, events: EventBus, quotas: QuotasConfig) -> Self {
        Telephony {
            store,
            events,
            quotas: crate::config::Live::new(quotas),
            user_locks: (0..USER_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            calls: Arc::new(calls::CallRegistry::new("local")),
            calls_config: Arc::default(),
            users: Arc::new(records::Remembered::new()),
            settings: Arc::new(records::Remembered::new()),
            carrier: Arc::default(),
        }
    }

    /// The model with call ids of node `node_id` (`callhalf-<node>-<n>`); before any call.
    pub fn with_node_id(mut self, node_id: &str) -> Self {
        self.calls = Arc::new(calls::CallRegistry::new(node_id));
        self
    }

    /// The model with these call timers and per-bridge limits.
    pub fn with_calls_config(mut self, config: CallsConfig) -> Self {
        self.calls_config = Arc::new(config);
        self
    }

    /// What carries this node's calls (once: the XMPP face's Rayo client). Until it is
    /// set, calls are refused with [`TelephonyError::NoCallBridge`].
    pub fn set_carrier(&self, carrier: Arc<dyn calls::CallCarrier>) {
        if self.carrier.set(carrier).is_err() {
            tracing::warn!("a second call carrier was ignored");
        }
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The calls in progress on this node.
    pub fn calls(&self) -> &calls::CallRegistry {
        &self.calls
    }

    /// One user, if it exists (remembered while users do not change, see `records`).
    pub async fn user(&self, id: &str) -> Result<Option<User>, TelephonyError> {
        let key = id.to_ascii_lowercase();
        // Read before the user, so a change that races this read is seen next time.
        let generation = self.store.users_generation();
        if let Some(user) = self.users.get(&key, generation) {
            return Ok(user);
        }
        let user = self.store.user(id).await?;
        self.users.put(key, generation, user.clone());
        Ok(user)
    }

    /// The `[quotas]` in force.
    pub fn quotas(&self) -> Arc<QuotasConfig> {
        self.quotas.get()
    }

    /// Puts new `[quotas]` in force (a reload).
    pub fn set_quotas(&self, quotas: QuotasConfig) {
        self.quotas.set(quotas);
    }

    /// Moves whenever users may have changed (see [`DirectoryStore::users_generation`](crate::store::DirectoryStore::users_generation)).
    pub fn users_generation(&self) -> u64 {
        self.store.users_generation()
    }

    /// Adds `user`. Its enterprise and group are created, named by their ids, when they do
    /// not exist yet; existing ones are left as they are.
    pub async fn add_user(&self, user: &User) -> Result<(), TelephonyError> {
        let enterprises = self.store.enterprises().await?;
        if !enterprises.iter().any(|e| e.id == user.enterprise_id) {
            self.store
                .put_enterprise(&Enterprise {
                    id: user.enterprise_id.clone(),
                    name: user.enterprise_id.clone(),
                })
                .await?;
        }
        let groups = self.store.groups().await?;
        if !groups
            .iter()
            .any(|g| g.id == user.group_id && g.enterprise_id == user.enterprise_id)
        {
            self.store
                .put_group(&Group {
                    id: user.group_id.clone(),
                    enterprise_id: user.enterprise_id.clone(),
                    name: user.group_id.clone(),
                })
                .await?;
        }
        Ok(self.store.add_user(user).await?)
    }

    /// Gives `user` a new password. With `old`, it must be the current one (users changing
    /// their own); the verifiers are made at `iterations`.
    pub async fn change_password(
        &self,
        user: &User,
        old: Option<&str>,
        new: &str,
        iterations: u32,
    ) -> Result<(), TelephonyError> {
        let invalid = |field, reason: &str| TelephonyError::Invalid {
            field,
            reason: reason.to_owned(),
        };
        if new.is_empty() {
            return Err(invalid("newPassword", "must not be empty"));
        }
        let (old, new, current) = (
            old.map(str::to_owned),
            new.to_owned(),
            user.verifiers.clone(),
        );
        // PBKDF2 twice: off the async threads.
        let verifiers = tokio::task::spawn_blocking(move || {
            if old.is_some_and(|old| !current.verify_plain(&old)) {
                return Err(invalid("oldPassword", "is not the current password"));
            }
            crate::credentials::PasswordVerifiers::new(&new, iterations)
                .map_err(|e| invalid("newPassword", &e.to_string()))
        })
        .await
        .map_err(|_| invalid("newPassword", "the password could not be hashed"))??;
        if self.store.set_password(&user.id, &verifiers).await? {
            Ok(())
        } else {
            Err(TelephonyError::UnknownUser(user.id.clone()))
        }
    }

    async fn existing_user(&self, id: &str) -> Result<User, TelephonyError> {
        self.user(id)
            .await?
            .ok_or_else(|| TelephonyError::UnknownUser(id.to_owned()))
    }

    /// The services assigned to a user. Every user has every service Bridgehead offers.
    pub fn services(&self, _user: &User) -> &'static [ServiceName] {
        ServiceName::ALL
    }

    /// A user's current settings of `service` (its defaults when never set).
    pub async fn service(
        &self,
        user_id: &str,
        service: ServiceName,
    ) -> Result<ServiceSettings, TelephonyError> {
        let key = (user_id.to_ascii_lowercase(), service);
        let generation = self.store.settings_generation(user_id);
        if let Some(settings) = self.settings.get(&key, generation) {
            return Ok(settings);
        }
        let settings = match self
            .store
            .service_settings(user_id, service.as_str())
            .await?
        {
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                TelephonyError::Store(StoreError::Corrupt(format!(
                    "{} settings of {user_id}: {e}",
                    service.as_str()
                )))
            })?,
            None => ServiceSettings::default_for(service),
        };
        self.settings.put(key, generation, settings.clone());
        Ok(settings)
    }

    /// Validates, stores and announces new settings for a user's service. `user` is the
    /// record the caller already holds (the store refuses an unknown user).
    pub async fn set_service(
        &self,
        user: &User,
        settings: ServiceSettings,
    ) -> Result<Arc<TelephonyEvent>, TelephonyError> {
        settings.validate()?;
        let json = serde_json::to_string(&settings)
            .map_err(|e| TelephonyError::Store(StoreError::Corrupt(e.to_string())))?;
        let _order = self.user_lock(&user.id).lock().await;
        self.store
            .put_service_settings(&user.id, settings.name().as_str(), &json)
            .await?;
        self.settings
            .forget(&(user.id.to_ascii_lowercase(), settings.name()));
        tracing::info!(user = %user.id, service = settings.name().as_str(), "service settings changed");
        Ok(self
            .events
            .publish(&user.scope(), EventKind::ServiceChanged(settings)))
    }

    fn user_lock(&self, user_id: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        user_id.to_ascii_lowercase().hash(&mut hasher);
        &self.user_locks[hasher.finish() as usize % self.user_locks.len()]
    }

    /// A user's devices.
    pub async fn devices(&self, user_id: &str) -> Result<Vec<Device>, TelephonyError> {
        Ok(self.store.devices(user_id).await?)
    }

    /// Searches the enterprise or group directory.
    pub async fn search_directory(
        &self,
        scope: &DirectoryScope,
        query: &DirectoryQuery,
    ) -> Result<DirectoryPage, TelephonyError> {
        let users = self.store.users().await?;
        Ok(directory::search(users, scope, query))
    }

    /// A user's personal directory.
    pub async fn personal_contacts(
        &self,
        user_id: &str,
    ) -> Result<Vec<PersonalContact>, TelephonyError> {
        Ok(self.store.personal_contacts(user_id).await?)
    }

    /// Adds personal directory entries, all or none: every entry is checked first, then
    /// they are written in one transaction, within `[quotas] max_personal_entries`.
    pub async fn add_personal_contacts(
        &self,
        user_id: &str,
        contacts: &[PersonalContact],
    ) -> Result<(), TelephonyError> {
        let mut names = std::collections::HashSet::new();
        for contact in contacts {
            if contact.name.trim().is_empty() || contact.name.chars().count() > 80 {
                return Err(TelephonyError::Invalid {
                    field: "name",
                    reason: "must be 1 to 80 characters".into(),
                });
            }
            services::check_address("number", &contact.number)?;
            if !names.insert(contact.name.as_str()) {
                return Err(TelephonyError::Exists(format!(
                    "entry \"{}\"",
                    contact.name
                )));
            }
        }
        self.existing_user(user_id).await?;
        let limit = self.quotas().max_personal_entries.get();
        match self
            .store
            .add_personal_contacts(user_id, contacts, limit)
            .await
        {
            Err(StoreError::Full { limit }) => {
                crate::telemetry::quota_refusal("max_personal_entries");
                Err(TelephonyError::Quota {
                    what: "personal directory entries",
                    limit,
                })
            }
            added => Ok(added?),
        }
    }

    /// Removes a personal directory entry; false if there was none.
    pub async fn remove_personal_contact(
        &self,
        user_id: &str,
        name: &str,
    ) -> Result<bool, TelephonyError> {
        Ok(self.store.remove_personal_contact(user_id, name).await?)
    }

    /// A user's call logs (all kinds with `None`), newest first.
    pub async fn call_logs(
        &self,
        user_id: &str,
        kind: Option<CallLogKind>,
    ) -> Result<Vec<CallLogRecord>, TelephonyError> {
        Ok(self.store.call_logs(user_id, kind).await?)
    }

    /// Records a call in a user's log (call control calls this as calls end).
    pub async fn record_call(&self, record: CallLogRecord) -> Result<(), TelephonyError> {
        services::check_address("number", &record.number)?;
        Ok(self.store.add_call_log(&record).await?)
    }
}
