//! Persistence behind a small trait, so that PostgreSQL can join SQLite later without
//! touching callers. SQLite (one file, WAL mode, versioned migrations) is the embedded
//! default: see [`sqlite::SqliteStore`].
//!
//! The records here are what is stored; the telephony model builds on them.

mod sqlite;

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;

pub use sqlite::SqliteStore;

use crate::config::OnConflict;
use crate::credentials::PasswordVerifiers;

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

/// A user's role: what it may see and change beyond its own resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Only its own resources.
    User,
    /// Everything in its group.
    GroupAdmin,
    /// Everything in its enterprise.
    EnterpriseAdmin,
    /// Everything.
    SystemAdmin,
}

impl Role {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::GroupAdmin => "group-admin",
            Role::EnterpriseAdmin => "enterprise-admin",
            Role::SystemAdmin => "system-admin",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "user" => Role::User,
            "group-admin" => Role::GroupAdmin,
            "enterprise-admin" => Role::EnterpriseAdmin,
            "system-admin" => Role::SystemAdmin,
            other => return Err(StoreError::Corrupt(format!("unknown role \"{other}\""))),
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An enterprise (BroadWorks: service provider).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enterprise {
    /// Identifier.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A group within an enterprise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Identifier, unique within the enterprise.
    pub id: String,
    /// The enterprise.
    pub enterprise_id: String,
    /// Display name.
    pub name: String,
}

/// A user: `user@domain`, its profile, role and password verifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `user@domain`.
    pub id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Phone number (E.164 or national), if any.
    pub number: Option<String>,
    /// Extension, if any.
    pub extension: Option<String>,
    /// Enterprise.
    pub enterprise_id: String,
    /// Group within the enterprise.
    pub group_id: String,
    /// Role.
    pub role: Role,
    /// SCRAM verifiers of the password.
    pub verifiers: PasswordVerifiers,
}

/// An XEP-0114 component registered in the store.
#[derive(Clone, PartialEq, Eq)]
pub struct ComponentRecord {
    /// The component's domain.
    pub name: String,
    /// The shared secret (kept readable: the handshake needs it).
    pub secret: String,
    /// Live connections allowed.
    pub max_connections: u32,
    /// Policy for a second connection.
    pub on_conflict: OnConflict,
    /// Seconds to hold stanzas after a drop.
    pub hold_secs: u64,
}

impl fmt::Debug for ComponentRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentRecord")
            .field("name", &self.name)
            .field("max_connections", &self.max_connections)
            .field("on_conflict", &self.on_conflict)
            .field("hold_secs", &self.hold_secs)
            .finish_non_exhaustive()
    }
}

/// A device (phone or softphone) registered to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// The user it belongs to.
    pub user_id: String,
    /// Device name, unique per user (e.g. `alice-pc`).
    pub name: String,
    /// Device type, e.g. `Business Communicator - PC`.
    pub device_type: String,
    /// The line/port (SIP address of record), e.g. `alice_pc@example.com`.
    pub line_port: String,
}

/// An entry in a user's personal directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonalContact {
    /// Name, unique within the user's personal directory.
    pub name: String,
    /// Phone number or SIP URI.
    pub number: String,
}

/// Which call log a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallLogKind {
    /// Calls the user placed.
    Placed,
    /// Calls the user answered.
    Received,
    /// Calls to the user that were not answered.
    Missed,
}

impl CallLogKind {
    /// Every kind, in the order BroadWorks lists them.
    pub const ALL: [CallLogKind; 3] = [
        CallLogKind::Placed,
        CallLogKind::Received,
        CallLogKind::Missed,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CallLogKind::Placed => "placed",
            CallLogKind::Received => "received",
            CallLogKind::Missed => "missed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "placed" => CallLogKind::Placed,
            "received" => CallLogKind::Received,
            "missed" => CallLogKind::Missed,
            other => return Err(StoreError::Corrupt(format!("unknown call log \"{other}\""))),
        })
    }
}

/// One call log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallLogRecord {
    /// Store-assigned id (0 when adding).
    pub id: i64,
    /// The user whose log it is.
    pub user_id: String,
    /// Which log.
    pub kind: CallLogKind,
    /// The other party's name, if known.
    pub name: Option<String>,
    /// The other party's number or address.
    pub number: String,
    /// Country code of the number, if known.
    pub country_code: Option<String>,
    /// When the call started, RFC 3339.
    pub time: String,
}

/// What an XSI-Events subscription watches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SubscriptionTarget {
    /// One user.
    User {
        /// `user@domain`.
        user_id: String,
    },
    /// Every user of a group.
    Group {
        /// The enterprise.
        enterprise_id: String,
        /// The group.
        group_id: String,
    },
    /// Every user of an enterprise.
    Enterprise {
        /// The enterprise.
        enterprise_id: String,
    },
    /// Every user.
    System,
}

/// A persisted XSI-Events subscription. It belongs to a channel set, not a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// Server-assigned id.
    pub id: String,
    /// Who subscribed: a user id, or a CTI application's client identity.
    pub owner: String,
    /// True when `owner` is a CTI client identity.
    pub owner_is_client: bool,
    /// What it watches.
    pub target: SubscriptionTarget,
    /// Event package names (`Do Not Disturb`, `Basic Call` …).
    pub events: Vec<String>,
    /// The channel set its events go to.
    pub channel_set_id: String,
    /// The subscriber's application id (`externalApplicationId` in events).
    pub application_id: Option<String>,
    /// Expiry, Unix seconds; `None` never expires.
    pub expires_at: Option<i64>,
}

/// Whether presence flows between a user and a roster contact (RFC 6121 §2.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RosterSubscription {
    /// Neither way.
    #[default]
    None,
    /// The user receives the contact's presence.
    To,
    /// The contact receives the user's presence.
    From,
    /// Both ways.
    Both,
}

impl RosterSubscription {
    /// The spelling RFC 6121 uses (and the store keeps).
    pub fn as_str(self) -> &'static str {
        match self {
            RosterSubscription::None => "none",
            RosterSubscription::To => "to",
            RosterSubscription::From => "from",
            RosterSubscription::Both => "both",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "none" => RosterSubscription::None,
            "to" => RosterSubscription::To,
            "from" => RosterSubscription::From,
            "both" => RosterSubscription::Both,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown roster subscription \"{other}\""
                )))
            }
        })
    }

    /// Whether the user receives the contact's presence.
    pub fn to_contact(self) -> bool {
        matches!(self, RosterSubscription::To | RosterSubscription::Both)
    }

    /// Whether the contact receives the user's presence.
    pub fn from_contact(self) -> bool {
        matches!(self, RosterSubscription::From | RosterSubscription::Both)
    }
}

/// One contact in a user's XMPP roster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RosterItem {
    /// The contact's bare JID, lower-case.
    pub jid: String,
    /// The name the user gave the contact.
    pub name: Option<String>,
    /// Roster groups.
    pub groups: Vec<String>,
    /// The subscription state.
    pub subscription: RosterSubscription,
    /// The user asked to see the contact's presence and has no answer yet (`ask='subscribe'`).
    pub ask_out: bool,
    /// The contact asked to see the user's presence and has no answer yet; such a row alone
    /// is not shown in the roster, only redelivered as a request at login.
    pub pending_in: bool,
}

/// Call log records kept per user and kind; older ones are dropped as new ones arrive.
pub const CALL_LOG_LIMIT: usize = 100;

/// Everything Bridgehead persists.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A counter that moves whenever users may have changed (added, removed, a new
    /// password), by this process at once or by another process (such as
    /// `bridgehead user passwd`) within a fraction of a second. Cheap: callers use it to
    /// know when a remembered user must be read again.
    fn users_generation(&self) -> u64;
    /// Housekeeping the server runs every second (SQLite: copy the write-ahead log into the
    /// database file, from a connection of its own).
    async fn checkpoint(&self) -> Result<(), StoreError>;

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
    /// Replaces a user's password verifiers; false if there is no such user.
    async fn set_password(
        &self,
        id: &str,
        verifiers: &PasswordVerifiers,
    ) -> Result<bool, StoreError>;
    /// Removes a user; false if there is no such user.
    async fn remove_user(&self, id: &str) -> Result<bool, StoreError>;
    /// Adds a component; fails with `Exists` if the name is taken.
    async fn add_component(&self, component: &ComponentRecord) -> Result<(), StoreError>;
    /// All components, ordered by name.
    async fn components(&self) -> Result<Vec<ComponentRecord>, StoreError>;
    /// Removes a component; false if there is no such component.
    async fn remove_component(&self, name: &str) -> Result<bool, StoreError>;

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
    /// A user's devices, ordered by name.
    async fn devices(&self, user_id: &str) -> Result<Vec<Device>, StoreError>;
    /// Adds a device; `Exists` if the user has one by that name, `Missing` for an unknown user.
    async fn add_device(&self, device: &Device) -> Result<(), StoreError>;
    /// Removes a device; false if there is no such device.
    async fn remove_device(&self, user_id: &str, name: &str) -> Result<bool, StoreError>;
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
    /// Records a call in a user's log, keeping the newest [`CALL_LOG_LIMIT`] per kind.
    async fn add_call_log(&self, record: &CallLogRecord) -> Result<(), StoreError>;
    /// Creates or replaces a subscription.
    async fn put_subscription(&self, subscription: &SubscriptionRecord) -> Result<(), StoreError>;
    /// Every subscription.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError>;
    /// Removes a subscription; false if there was none.
    async fn remove_subscription(&self, id: &str) -> Result<bool, StoreError>;
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
    /// A user's call logs of `kind` (all kinds with `None`), newest first.
    async fn call_logs(
        &self,
        user_id: &str,
        kind: Option<CallLogKind>,
    ) -> Result<Vec<CallLogRecord>, StoreError>;
}
