//! Rows to records and back: how each table's columns become the store's types, and how
//! SQLite's constraint errors become `Exists` / `Missing`.

use crate::credentials::PasswordVerifiers;
use crate::store::StoreError;
use crate::telephony::{
    CallLogKind, CallLogRecord, ComponentRecord, RosterItem, RosterSubscription, User,
};

/// A roster item from a `SELECT jid, name, groups, subscription, ask_out, pending_in` row.
pub(super) fn roster_row(row: &rusqlite::Row<'_>) -> Result<RosterItem, StoreError> {
    let groups: String = row.get(2)?;
    let subscription: String = row.get(3)?;
    Ok(RosterItem {
        jid: row.get(0)?,
        name: row.get(1)?,
        groups: serde_json::from_str(&groups)
            .map_err(|e| StoreError::Corrupt(format!("roster groups: {e}")))?,
        subscription: RosterSubscription::parse(&subscription)?,
        ask_out: row.get(4)?,
        pending_in: row.get(5)?,
    })
}

pub(super) fn is_constraint(e: &rusqlite::Error) -> Option<rusqlite::ffi::ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Some(f.code)
        }
        _ => None,
    }
}

pub(super) fn user_from_row(row: &rusqlite::Row<'_>) -> Result<User, StoreError> {
    let role: String = row.get("role")?;
    let verifiers: String = row.get("verifiers")?;
    Ok(User {
        id: row.get("id")?,
        first_name: row.get("first_name")?,
        last_name: row.get("last_name")?,
        number: row.get("number")?,
        extension: row.get("extension")?,
        enterprise_id: row.get("enterprise_id")?,
        group_id: row.get("group_id")?,
        role: role.parse()?,
        verifiers: serde_json::from_str(&verifiers)
            .map_err(|e| StoreError::Corrupt(format!("password verifiers: {e}")))?,
    })
}

pub(super) fn component_from_row(row: &rusqlite::Row<'_>) -> Result<ComponentRecord, StoreError> {
    let policy: String = row.get("on_conflict")?;
    Ok(ComponentRecord {
        name: row.get("name")?,
        secret: row.get("secret")?,
        max_connections: row.get("max_connections")?,
        on_conflict: policy.parse()?,
        hold_secs: row.get::<_, i64>("hold_secs")?.max(0) as u64,
    })
}

/// Maps a foreign-key failure on `user_id` to `Missing`, a key clash to `Exists(what)`.
pub(super) fn user_row_error(
    e: rusqlite::Error,
    user_id: &str,
    what: impl FnOnce() -> String,
) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            StoreError::Missing(format!("user \"{user_id}\""))
        }
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Exists(what())
        }
        _ => e.into(),
    }
}

pub(super) fn call_log_from_row(row: &rusqlite::Row<'_>) -> Result<CallLogRecord, StoreError> {
    let kind: String = row.get("kind")?;
    Ok(CallLogRecord {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        kind: CallLogKind::parse(&kind)?,
        name: row.get("name")?,
        number: row.get("number")?,
        country_code: row.get("country_code")?,
        time: row.get("time")?,
    })
}

pub(super) fn verifiers_json(v: &PasswordVerifiers) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}
