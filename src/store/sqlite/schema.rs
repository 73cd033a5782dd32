//! The schema: migrations in order, each producing the version after it, applied inside
//! transactions and recorded in `PRAGMA user_version`; a newer file is refused.

use rusqlite::Connection;

use crate::store::StoreError;

/// Schema migrations; index + 1 is the version each one produces.
const MIGRATIONS: &[&str] = &[
    // 1: the directory and components.
    "CREATE TABLE enterprises (
         id   TEXT PRIMARY KEY NOT NULL,
         name TEXT NOT NULL
     );
     CREATE TABLE groups (
         enterprise_id TEXT NOT NULL REFERENCES enterprises(id) ON DELETE CASCADE,
         id            TEXT NOT NULL,
         name          TEXT NOT NULL,
         PRIMARY KEY (enterprise_id, id)
     );
     CREATE TABLE users (
         id            TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
         first_name    TEXT NOT NULL,
         last_name     TEXT NOT NULL,
         number        TEXT,
         extension     TEXT,
         enterprise_id TEXT NOT NULL,
         group_id      TEXT NOT NULL,
         role          TEXT NOT NULL,
         verifiers     TEXT NOT NULL,
         FOREIGN KEY (enterprise_id, group_id) REFERENCES groups(enterprise_id, id)
     );
     CREATE TABLE components (
         name            TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,
         secret          TEXT NOT NULL,
         max_connections INTEGER NOT NULL,
         on_conflict     TEXT NOT NULL,
         hold_secs       INTEGER NOT NULL
     );",
    // 2: what XSI-Actions serves: service settings, devices, personal directory, call logs.
    "CREATE TABLE service_settings (
         user_id  TEXT NOT NULL COLLATE NOCASE REFERENCES users(id) ON DELETE CASCADE,
         service  TEXT NOT NULL,
         settings TEXT NOT NULL,
         PRIMARY KEY (user_id, service)
     );
     CREATE TABLE devices (
         user_id     TEXT NOT NULL COLLATE NOCASE REFERENCES users(id) ON DELETE CASCADE,
         name        TEXT NOT NULL,
         device_type TEXT NOT NULL,
         line_port   TEXT NOT NULL,
         PRIMARY KEY (user_id, name)
     );
     CREATE TABLE personal_contacts (
         user_id TEXT NOT NULL COLLATE NOCASE REFERENCES users(id) ON DELETE CASCADE,
         name    TEXT NOT NULL,
         number  TEXT NOT NULL,
         PRIMARY KEY (user_id, name)
     );
     CREATE TABLE call_logs (
         id           INTEGER PRIMARY KEY AUTOINCREMENT,
         user_id      TEXT NOT NULL COLLATE NOCASE REFERENCES users(id) ON DELETE CASCADE,
         kind         TEXT NOT NULL,
         name         TEXT,
         number       TEXT NOT NULL,
         country_code TEXT,
         time         TEXT NOT NULL
     );
     CREATE INDEX call_logs_by_user ON call_logs (user_id, kind, id);",
    // 3: XSI-Events subscriptions (they outlive channels and restarts).
    "CREATE TABLE subscriptions (
         id              TEXT PRIMARY KEY NOT NULL,
         owner           TEXT NOT NULL,
         owner_is_client INTEGER NOT NULL,
         target          TEXT NOT NULL,
         events          TEXT NOT NULL,
         channel_set_id  TEXT NOT NULL,
         application_id  TEXT,
         expires_at      INTEGER
     );",
    // 4: XMPP rosters (RFC 6121): one row per contact, with the subscription state.
    "CREATE TABLE roster_items (
         user_id      TEXT NOT NULL COLLATE NOCASE REFERENCES users(id) ON DELETE CASCADE,
         jid          TEXT NOT NULL COLLATE NOCASE,
         name         TEXT,
         groups       TEXT NOT NULL,
         subscription TEXT NOT NULL,
         ask_out      INTEGER NOT NULL,
         pending_in   INTEGER NOT NULL,
         PRIMARY KEY (user_id, jid)
     );",
    // 5: dialled numbers and extensions are found by index (call control), not by a scan.
    "CREATE INDEX users_number ON users (number);
     CREATE INDEX users_extension ON users (extension);",
];

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew {
            found: version,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "store schema migrated");
    }
    Ok(())
}
