//! The records of the telephony model: the directory (enterprises, groups, users and their
//! roles, devices, personal contacts), registered components, call logs, XSI-Events
//! subscriptions and XMPP rosters. The store persists them; nothing here knows how.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::credentials::PasswordVerifiers;

/// A stored or given spelling that names no value of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} \"{value}\"")]
pub struct UnknownValue {
    /// What was being named (`role`).
    pub kind: &'static str,
    /// The spelling.
    pub value: String,
}

impl UnknownValue {
    fn new(kind: &'static str, value: &str) -> Self {
        UnknownValue {
            kind,
            value: value.to_owned(),
        }
    }
}

/// A user's role: what it may see and change beyond its own resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    /// Every role, least to most.
    pub const ALL: [Role; 4] = [
        Role::User,
        Role::GroupAdmin,
        Role::EnterpriseAdmin,
        Role::SystemAdmin,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::GroupAdmin => "group-admin",
            Role::EnterpriseAdmin => "enterprise-admin",
            Role::SystemAdmin => "system-admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownValue::new("role", s))
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

/// A user and where the user sits: what call records and events carry so that group and
/// enterprise subscriptions match them without a directory lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserScope {
    /// `user@domain`.
    pub id: String,
    /// Enterprise.
    pub enterprise_id: String,
    /// Group within the enterprise.
    pub group_id: String,
}

impl User {
    /// The user's [`UserScope`].
    pub fn scope(&self) -> UserScope {
        UserScope {
            id: self.id.clone(),
            enterprise_id: self.enterprise_id.clone(),
            group_id: self.group_id.clone(),
        }
    }
}

/// What happens when a component connects while its name already has a live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// The new connection wins; the old one gets the `conflict` stream error.
    #[default]
    Replace,
    /// The new connection gets the `conflict` stream error.
    Reject,
    /// Up to `max_connections` share the name (a bridge cluster).
    Balance,
}

impl OnConflict {
    /// Every policy.
    pub const ALL: [OnConflict; 3] = [OnConflict::Replace, OnConflict::Reject, OnConflict::Balance];

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Replace => "replace",
            OnConflict::Reject => "reject",
            OnConflict::Balance => "balance",
        }
    }
}

impl std::str::FromStr for OnConflict {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OnConflict::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownValue::new("on_conflict policy", s))
    }
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

    /// The value of a stored spelling.
    pub fn parse(s: &str) -> Result<Self, UnknownValue> {
        Ok(match s {
            "placed" => CallLogKind::Placed,
            "received" => CallLogKind::Received,
            "missed" => CallLogKind::Missed,
            other => return Err(UnknownValue::new("call log", other)),
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

    /// The value of a stored spelling.
    pub fn parse(s: &str) -> Result<Self, UnknownValue> {
        Ok(match s {
            "none" => RosterSubscription::None,
            "to" => RosterSubscription::To,
            "from" => RosterSubscription::From,
            "both" => RosterSubscription::Both,
            other => return Err(UnknownValue::new("roster subscription", other)),
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

#[cfg(test)]
impl User {
    /// A plain user for tests: `id` in group `group` of enterprise `enterprise`, first name
    /// its local part, password `<local part>-pass`.
    pub(crate) fn test(id: &str, enterprise: &str, group: &str) -> User {
        let local = id.split('@').next().unwrap_or_default();
        User {
            id: id.to_owned(),
            first_name: local.to_owned(),
            last_name: String::new(),
            number: None,
            extension: None,
            enterprise_id: enterprise.to_owned(),
            group_id: group.to_owned(),
            role: Role::User,
            verifiers: PasswordVerifiers::new(&format!("{local}-pass"), 4096)
                .expect("a test password is valid"),
        }
    }
}

/// Call log records kept per user and kind; older ones are dropped as new ones arrive.
pub const CALL_LOG_LIMIT: usize = 100;
