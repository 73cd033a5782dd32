//! The SQLite backend: one file in WAL mode, schema versions in `PRAGMA user_version`,
//! applied in order inside transactions. Calls run on tokio's blocking pool; one connection
//! behind a mutex is plenty for the write rates of a directory.
//!
//! The WAL stays bounded: the writer never checkpoints itself (no request waits for one);
//! [`Store::checkpoint`], called every second off the request path, copies the WAL into the
//! database (PASSIVE, which blocks nobody) and, when the WAL has passed
//! [`WAL_TRUNCATE_BYTES`] or nothing was committed since the last call (the store went
//! quiet: `PRAGMA data_version` on the checkpointer's own connection did not move),
//! truncates it to zero (TRUNCATE, which holds writers back while it runs).
//! `journal_size_limit` caps what a reset WAL keeps on disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{
    CallLogKind, CallLogRecord, ComponentRecord, Device, Enterprise, Group, PersonalContact, Role,
    RosterItem, RosterSubscription, Store, StoreError, SubscriptionRecord, User, CALL_LOG_LIMIT,
};
use crate::credentials::PasswordVerifiers;

/// A WAL larger than this is truncated at the next checkpoint, even in a write burst.
pub(crate) const WAL_TRUNCATE_BYTES: u64 = 64 * 1024 * 1024;

/// A roster item from a `SELECT jid, name, groups, subscription, ask_out, pending_in` row.
fn roster_row(row: &rusqlite::Row<'_>) -> Result<RosterItem, StoreError> {
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
];

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// A second connection that only copies the WAL into the database file (see
    /// [`Store::checkpoint`]), so no request waits for a checkpoint.
    checkpointer: Arc<Mutex<Connection>>,
    path: PathBuf,
    changes: Arc<Changes>,
    /// The checkpointer connection's `data_version` at the last checkpoint.
    last_data_version: Arc<AtomicI64>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// The file is created with mode 0600: it holds component secrets.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: path.to_owned(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_error(e.to_string()))?;
        }
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| open_error(e.to_string()))?;
        }
        let mut conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        // Checkpoints run from the checkpointer connection, off the request path.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", WAL_TRUNCATE_BYTES as i64)?;
        let checkpointer = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(5))?;
        let changes = Changes::default();
        let data_version: i64 = conn.pragma_query_value(None, "data_version", |r| r.get(0))?;
        changes
            .last_data_version
            .store(data_version, Ordering::Relaxed);
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            checkpointer: Arc::new(Mutex::new(checkpointer)),
            path: path.to_owned(),
            changes: Arc::new(changes),
            last_data_version: Arc::new(AtomicI64::new(-1)),
        })
    }

    /// The WAL file's size now.
    pub fn wal_bytes(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        std::fs::metadata(wal).map_or(0, |m| m.len())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Worker("a previous store call panicked".to_owned()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    fn users_changed_here(&self) {
        self.changes.local.fetch_add(1, Ordering::Release);
    }

    /// Looks for commits by other connections (another process), at most every
    /// [`EXTERNAL_CHECK_INTERVAL_MS`], without waiting for a busy connection.
    fn check_external_changes(&self) {
        let changes = &self.changes;
        let epoch = *changes.epoch.get_or_init(Instant::now);
        let now_ms = epoch.elapsed().as_millis() as u64 + EXTERNAL_CHECK_INTERVAL_MS;
        let last = changes.last_check_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < EXTERNAL_CHECK_INTERVAL_MS
            || changes
                .last_check_ms
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let Ok(conn) = self.conn.try_lock() else {
            // Busy: look again on the next call.
            changes.last_check_ms.store(last, Ordering::Relaxed);
            return;
        };
        if let Ok(version) = conn.pragma_query_value(None, "data_version", |r| r.get::<_, i64>(0)) {
            if changes.last_data_version.swap(version, Ordering::AcqRel) != version {
                changes.external.fetch_add(1, Ordering::Release);
            }
        }
    }
}

/// Bumps the local change counter when dropped, i.e. after the write has finished.
struct BumpAfter<'a>(&'a SqliteStore);

impl Drop for BumpAfter<'_> {
    fn drop(&mut self) {
        self.0.users_changed_here();
    }
}

/// Counts changes to users, made here or by another process.
#[derive(Debug, Default)]
struct Changes {
    /// Bumped by this process's own writes to users.
    local: AtomicU64,
    /// Bumped when `PRAGMA data_version` shows another connection committed.
    external: AtomicU64,
    /// The `data_version` last seen, and when it was read (ms since `epoch`).
    last_data_version: AtomicI64,
    last_check_ms: AtomicU64,
    epoch: OnceLock<Instant>,
}

/// How often another process's writes are looked for.
const EXTERNAL_CHECK_INTERVAL_MS: u64 = 250;

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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

fn is_constraint(e: &rusqlite::Error) -> Option<rusqlite::ffi::ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Some(f.code)
        }
        _ => None,
    }
}

fn user_from_row(row: &rusqlite::Row<'_>) -> Result<User, StoreError> {
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
        role: Role::parse(&role)?,
        verifiers: serde_json::from_str(&verifiers)
            .map_err(|e| StoreError::Corrupt(format!("password verifiers: {e}")))?,
    })
}

fn component_from_row(row: &rusqlite::Row<'_>) -> Result<ComponentRecord, StoreError> {
    let policy: String = row.get("on_conflict")?;
    Ok(ComponentRecord {
        name: row.get("name")?,
        secret: row.get("secret")?,
        max_connections: row.get("max_connections")?,
        on_conflict: policy.parse().map_err(StoreError::Corrupt)?,
        hold_secs: row.get::<_, i64>("hold_secs")?.max(0) as u64,
    })
}

/// Maps a foreign-key failure on `user_id` to `Missing`, a key clash to `Exists(what)`.
fn user_row_error(e: rusqlite::Error, user_id: &str, what: impl FnOnce() -> String) -> StoreError {
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

fn call_log_from_row(row: &rusqlite::Row<'_>) -> Result<CallLogRecord, StoreError> {
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

fn verifiers_json(v: &PasswordVerifiers) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl Store for SqliteStore {
    async fn checkpoint(&self) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let wal = store.wal_bytes();
            let conn = store
                .checkpointer
                .lock()
                .map_err(|_| StoreError::Worker("a previous checkpoint panicked".to_owned()))?;
            let version: i64 = conn.pragma_query_value(None, "data_version", |r| r.get(0))?;
            let quiet = store.last_data_version.swap(version, Ordering::Relaxed) == version;
            if wal > WAL_TRUNCATE_BYTES || (quiet && wal > 0) {
                // TRUNCATE: copy everything, then cut the WAL to zero bytes.
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            } else {
                // PASSIVE: copy what no reader still needs; never wait for, or block, others.
                conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    fn users_generation(&self) -> u64 {
        self.check_external_changes();
        self.changes.local.load(Ordering::Acquire) + self.changes.external.load(Ordering::Acquire)
    }

    async fn put_enterprise(&self, enterprise: &Enterprise) -> Result<(), StoreError> {
        let e = enterprise.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO enterprises (id, name) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name",
                params![e.id, e.name],
            )?;
            Ok(())
        })
        .await
    }

    async fn put_group(&self, group: &Group) -> Result<(), StoreError> {
        let g = group.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO groups (enterprise_id, id, name) VALUES (?1, ?2, ?3)
                 ON CONFLICT (enterprise_id, id) DO UPDATE SET name = excluded.name",
                params![g.enterprise_id, g.id, g.name],
            )
            .map_err(|e| match is_constraint(&e) {
                Some(_) => StoreError::Missing(format!("enterprise \"{}\"", g.enterprise_id)),
                None => e.into(),
            })?;
            Ok(())
        })
        .await
    }

    async fn enterprises(&self) -> Result<Vec<Enterprise>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT id, name FROM enterprises ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok(Enterprise {
                    id: r.get(0)?,
                    name: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT enterprise_id, id, name FROM groups ORDER BY enterprise_id, id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Group {
                    enterprise_id: r.get(0)?,
                    id: r.get(1)?,
                    name: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn add_user(&self, user: &User) -> Result<(), StoreError> {
        let u = user.clone();
        let _bump = BumpAfter(self);
        self.with(move |c| {
            let exists: Option<String> = c
                .query_row("SELECT id FROM users WHERE id = ?1", [&u.id], |r| r.get(0))
                .optional()?;
            if exists.is_some() {
                return Err(StoreError::Exists(format!("user \"{}\"", u.id)));
            }
            c.execute(
                "INSERT INTO users (id, first_name, last_name, number, extension, enterprise_id,
                                    group_id, role, verifiers)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    u.id,
                    u.first_name,
                    u.last_name,
                    u.number,
                    u.extension,
                    u.enterprise_id,
                    u.group_id,
                    u.role.as_str(),
                    verifiers_json(&u.verifiers)?
                ],
            )
            .map_err(|e| match is_constraint(&e) {
                Some(_) => StoreError::Missing(format!(
                    "group \"{}\" in enterprise \"{}\"",
                    u.group_id, u.enterprise_id
                )),
                None => e.into(),
            })?;
            Ok(())
        })
        .await
    }

    async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let id = id.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached("SELECT * FROM users WHERE id = ?1")?;
            let mut rows = stmt.query([id])?;
            match rows.next()? {
                Some(row) => Ok(Some(user_from_row(row)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT * FROM users ORDER BY id")?;
            let mut rows = stmt.query([])?;
            let mut users = Vec::new();
            while let Some(row) = rows.next()? {
                users.push(user_from_row(row)?);
            }
            Ok(users)
        })
        .await
    }

    async fn set_password(
        &self,
        id: &str,
        verifiers: &PasswordVerifiers,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let json = verifiers_json(verifiers)?;
        let _bump = BumpAfter(self);
        self.with(move |c| {
            Ok(c.execute(
                "UPDATE users SET verifiers = ?2 WHERE id = ?1",
                params![id, json],
            )? > 0)
        })
        .await
    }

    async fn remove_user(&self, id: &str) -> Result<bool, StoreError> {
        let _bump = BumpAfter(self);
        let id = id.to_owned();
        self.with(move |c| Ok(c.execute("DELETE FROM users WHERE id = ?1", [id])? > 0))
            .await
    }

    async fn add_component(&self, component: &ComponentRecord) -> Result<(), StoreError> {
        let r = component.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO components (name, secret, max_connections, on_conflict, hold_secs)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    r.name,
                    r.secret,
                    r.max_connections,
                    r.on_conflict.as_str(),
                    r.hold_secs as i64
                ],
            )
            .map_err(|e| match is_constraint(&e) {
                Some(_) => StoreError::Exists(format!("component \"{}\"", r.name)),
                None => e.into(),
            })?;
            Ok(())
        })
        .await
    }

    async fn components(&self) -> Result<Vec<ComponentRecord>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT * FROM components ORDER BY name")?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(component_from_row(row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn remove_component(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.with(move |c| Ok(c.execute("DELETE FROM components WHERE name = ?1", [name])? > 0))
            .await
    }

    async fn service_settings(
        &self,
        user_id: &str,
        service: &str,
    ) -> Result<Option<String>, StoreError> {
        let (user_id, service) = (user_id.to_owned(), service.to_owned());
        self.with(move |c| {
            Ok(c.prepare_cached(
                "SELECT settings FROM service_settings WHERE user_id = ?1 AND service = ?2",
            )?
            .query_row(params![user_id, service], |r| r.get(0))
            .optional()?)
        })
        .await
    }

    async fn put_service_settings(
        &self,
        user_id: &str,
        service: &str,
        settings: &str,
    ) -> Result<(), StoreError> {
        let (user_id, service, settings) =
            (user_id.to_owned(), service.to_owned(), settings.to_owned());
        self.with(move |c| {
            c.execute(
                "INSERT INTO service_settings (user_id, service, settings) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id, service) DO UPDATE SET settings = excluded.settings",
                params![user_id, service, settings],
            )
            .map_err(|e| user_row_error(e, &user_id, || service.clone()))?;
            Ok(())
        })
        .await
    }

    async fn devices(&self, user_id: &str) -> Result<Vec<Device>, StoreError> {
        let user_id = user_id.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT user_id, name, device_type, line_port FROM devices
                 WHERE user_id = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([user_id], |r| {
                Ok(Device {
                    user_id: r.get(0)?,
                    name: r.get(1)?,
                    device_type: r.get(2)?,
                    line_port: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn add_device(&self, device: &Device) -> Result<(), StoreError> {
        let d = device.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO devices (user_id, name, device_type, line_port)
                 VALUES (?1, ?2, ?3, ?4)",
                params![d.user_id, d.name, d.device_type, d.line_port],
            )
            .map_err(|e| user_row_error(e, &d.user_id, || format!("device \"{}\"", d.name)))?;
            Ok(())
        })
        .await
    }

    async fn remove_device(&self, user_id: &str, name: &str) -> Result<bool, StoreError> {
        let (user_id, name) = (user_id.to_owned(), name.to_owned());
        self.with(move |c| {
            Ok(c.execute(
                "DELETE FROM devices WHERE user_id = ?1 AND name = ?2",
                params![user_id, name],
            )? > 0)
        })
        .await
    }

    async fn personal_contacts(&self, user_id: &str) -> Result<Vec<PersonalContact>, StoreError> {
        let user_id = user_id.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT name, number FROM personal_contacts WHERE user_id = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([user_id], |r| {
                Ok(PersonalContact {
                    name: r.get(0)?,
                    number: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn add_personal_contacts(
        &self,
        user_id: &str,
        contacts: &[PersonalContact],
        max_entries: usize,
    ) -> Result<(), StoreError> {
        let (user_id, contacts) = (user_id.to_owned(), contacts.to_vec());
        self.with(move |c| {
            let tx = c.transaction()?;
            let existing: i64 = tx.query_row(
                "SELECT COUNT(*) FROM personal_contacts WHERE user_id = ?1",
                [&user_id],
                |r| r.get(0),
            )?;
            if existing as usize + contacts.len() > max_entries {
                return Err(StoreError::Full { limit: max_entries });
            }
            for contact in &contacts {
                tx.execute(
                    "INSERT INTO personal_contacts (user_id, name, number) VALUES (?1, ?2, ?3)",
                    params![user_id, contact.name, contact.number],
                )
                .map_err(|e| {
                    user_row_error(e, &user_id, || format!("entry \"{}\"", contact.name))
                })?;
            }
            // Dropped without commit on any error above: nothing of the batch is kept.
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn remove_personal_contact(&self, user_id: &str, name: &str) -> Result<bool, StoreError> {
        let (user_id, name) = (user_id.to_owned(), name.to_owned());
        self.with(move |c| {
            Ok(c.execute(
                "DELETE FROM personal_contacts WHERE user_id = ?1 AND name = ?2",
                params![user_id, name],
            )? > 0)
        })
        .await
    }

    async fn add_call_log(&self, record: &CallLogRecord) -> Result<(), StoreError> {
        let r = record.clone();
        self.with(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO call_logs (user_id, kind, name, number, country_code, time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    r.user_id,
                    r.kind.as_str(),
                    r.name,
                    r.number,
                    r.country_code,
                    r.time
                ],
            )
            .map_err(|e| user_row_error(e, &r.user_id, || "call log".to_owned()))?;
            tx.execute(
                "DELETE FROM call_logs WHERE user_id = ?1 AND kind = ?2 AND id NOT IN
                   (SELECT id FROM call_logs WHERE user_id = ?1 AND kind = ?2
                    ORDER BY id DESC LIMIT ?3)",
                params![r.user_id, r.kind.as_str(), CALL_LOG_LIMIT as i64],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn put_subscription(&self, subscription: &SubscriptionRecord) -> Result<(), StoreError> {
        let s = subscription.clone();
        let target =
            serde_json::to_string(&s.target).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let events =
            serde_json::to_string(&s.events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO subscriptions
                   (id, owner, owner_is_client, target, events, channel_set_id, application_id,
                    expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    s.id,
                    s.owner,
                    s.owner_is_client,
                    target,
                    events,
                    s.channel_set_id,
                    s.application_id,
                    s.expires_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, owner, owner_is_client, target, events, channel_set_id,
                        application_id, expires_at FROM subscriptions ORDER BY id",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let target: String = row.get(3)?;
                let events: String = row.get(4)?;
                out.push(SubscriptionRecord {
                    id: row.get(0)?,
                    owner: row.get(1)?,
                    owner_is_client: row.get(2)?,
                    target: serde_json::from_str(&target)
                        .map_err(|e| StoreError::Corrupt(format!("subscription target: {e}")))?,
                    events: serde_json::from_str(&events)
                        .map_err(|e| StoreError::Corrupt(format!("subscription events: {e}")))?,
                    channel_set_id: row.get(5)?,
                    application_id: row.get(6)?,
                    expires_at: row.get(7)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn remove_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.with(move |c| Ok(c.execute("DELETE FROM subscriptions WHERE id = ?1", [id])? > 0))
            .await
    }

    async fn roster(&self, user_id: &str) -> Result<Vec<RosterItem>, StoreError> {
        let user_id = user_id.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT jid, name, groups, subscription, ask_out, pending_in FROM roster_items
                 WHERE user_id = ?1 ORDER BY jid",
            )?;
            let mut rows = stmt.query([user_id])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(roster_row(row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn roster_item(
        &self,
        user_id: &str,
        jid: &str,
    ) -> Result<Option<RosterItem>, StoreError> {
        let (user_id, jid) = (user_id.to_owned(), jid.to_owned());
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT jid, name, groups, subscription, ask_out, pending_in FROM roster_items
                 WHERE user_id = ?1 AND jid = ?2",
            )?;
            let mut rows = stmt.query([user_id, jid])?;
            rows.next()?.map(roster_row).transpose()
        })
        .await
    }

    async fn put_roster_item(
        &self,
        user_id: &str,
        item: &RosterItem,
        max_items: usize,
    ) -> Result<(), StoreError> {
        let (user_id, item) = (user_id.to_owned(), item.clone());
        let groups =
            serde_json::to_string(&item.groups).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with(move |c| {
            let tx = c.transaction()?;
            let exists = tx
                .query_row(
                    "SELECT 1 FROM roster_items WHERE user_id = ?1 AND jid = ?2",
                    [&user_id, &item.jid],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !exists {
                let count: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM roster_items WHERE user_id = ?1",
                    [&user_id],
                    |r| r.get(0),
                )?;
                if count as usize >= max_items {
                    return Err(StoreError::Full { limit: max_items });
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO roster_items
                   (user_id, jid, name, groups, subscription, ask_out, pending_in)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    user_id,
                    item.jid,
                    item.name,
                    groups,
                    item.subscription.as_str(),
                    item.ask_out,
                    item.pending_in
                ],
            )
            .map_err(|e| user_row_error(e, &user_id, || format!("roster item {}", item.jid)))?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn remove_roster_item(&self, user_id: &str, jid: &str) -> Result<bool, StoreError> {
        let (user_id, jid) = (user_id.to_owned(), jid.to_owned());
        self.with(move |c| {
            Ok(c.execute(
                "DELETE FROM roster_items WHERE user_id = ?1 AND jid = ?2",
                [user_id, jid],
            )? > 0)
        })
        .await
    }

    async fn call_logs(
        &self,
        user_id: &str,
        kind: Option<CallLogKind>,
    ) -> Result<Vec<CallLogRecord>, StoreError> {
        let user_id = user_id.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, user_id, kind, name, number, country_code, time FROM call_logs
                 WHERE user_id = ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY id DESC",
            )?;
            let mut rows = stmt.query(params![user_id, kind.map(CallLogKind::as_str)])?;
            let mut records = Vec::new();
            while let Some(row) = rows.next()? {
                records.push(call_log_from_row(row)?);
            }
            Ok(records)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnConflict;

    fn user(id: &str) -> User {
        User {
            id: id.to_owned(),
            first_name: "Alice".into(),
            last_name: "Liddell".into(),
            number: Some("+15550100".into()),
            extension: Some("100".into()),
            enterprise_id: "ent".into(),
            group_id: "grp".into(),
            role: Role::User,
            verifiers: PasswordVerifiers::new("secret", 4096).unwrap(),
        }
    }

    #[tokio::test]
    async fn roster_items_are_kept_per_user_and_go_with_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_alice(&dir.path().join("db.sqlite3")).await;
        let item = RosterItem {
            jid: "bob@example.com".into(),
            name: Some("Bob".into()),
            groups: vec!["Friends".into()],
            subscription: RosterSubscription::Both,
            ask_out: false,
            pending_in: true,
        };
        store
            .put_roster_item("alice@example.com", &item, 1000)
            .await
            .unwrap();
        assert_eq!(
            store.roster("ALICE@example.com").await.unwrap(),
            vec![item.clone()]
        );
        assert!(matches!(
            store
                .put_roster_item("nobody@example.com", &item, 1000)
                .await,
            Err(StoreError::Missing(_))
        ));
        assert!(store
            .remove_roster_item("alice@example.com", "BOB@example.com")
            .await
            .unwrap());
        assert!(store.roster("alice@example.com").await.unwrap().is_empty());
        store
            .put_roster_item("alice@example.com", &item, 1000)
            .await
            .unwrap();
        assert!(store.remove_user("alice@example.com").await.unwrap());
        assert!(store.roster("alice@example.com").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_full_roster_takes_no_new_contact_but_changes_to_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_alice(&dir.path().join("db.sqlite3")).await;
        let item = |jid: &str| RosterItem {
            jid: jid.into(),
            ..RosterItem::default()
        };
        for jid in ["a@x", "b@x"] {
            store
                .put_roster_item("alice@example.com", &item(jid), 2)
                .await
                .unwrap();
        }
        assert!(matches!(
            store
                .put_roster_item("alice@example.com", &item("c@x"), 2)
                .await,
            Err(StoreError::Full { limit: 2 })
        ));
        let mut renamed = item("a@x");
        renamed.name = Some("A".into());
        store
            .put_roster_item("alice@example.com", &renamed, 2)
            .await
            .unwrap();
        assert_eq!(
            store.roster_item("alice@example.com", "a@x").await.unwrap(),
            Some(renamed)
        );
        assert_eq!(
            store.roster_item("alice@example.com", "c@x").await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn the_wal_is_truncated_once_the_store_goes_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_alice(&dir.path().join("db.sqlite3")).await;
        let contacts: Vec<PersonalContact> = (0..5000)
            .map(|n| PersonalContact {
                name: format!("contact {n}"),
                number: format!("{n}"),
            })
            .collect();
        for chunk in contacts.chunks(100) {
            store
                .add_personal_contacts("alice@example.com", chunk, 10_000)
                .await
                .unwrap();
            // A checkpoint during the burst copies but does not wait for writers.
            store.checkpoint().await.unwrap();
        }
        assert!(store.wal_bytes() > 0, "the burst went through the WAL");
        // The store is quiet: the WAL has not grown since the last checkpoint.
        store.checkpoint().await.unwrap();
        store.checkpoint().await.unwrap();
        assert_eq!(store.wal_bytes(), 0, "truncated");
        assert_eq!(
            store
                .personal_contacts("alice@example.com")
                .await
                .unwrap()
                .len(),
            5000
        );
    }

    #[tokio::test]
    async fn users_and_components_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        {
            let store = store_with_alice(&path).await;
            assert!(matches!(
                store.add_user(&user("ALICE@example.com")).await,
                Err(StoreError::Exists(_))
            ));
            store
                .add_component(&ComponentRecord {
                    name: "bridge.example.com".into(),
                    secret: "s".into(),
                    max_connections: 2,
                    on_conflict: OnConflict::Balance,
                    hold_secs: 5,
                })
                .await
                .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let alice = store.user("alice@example.com").await.unwrap().unwrap();
        assert!(alice.verifiers.verify_plain("secret"));
        assert_eq!(
            store.components().await.unwrap()[0].on_conflict,
            OnConflict::Balance
        );
        assert!(store.remove_user("alice@example.com").await.unwrap());
        assert!(!store.remove_user("alice@example.com").await.unwrap());
    }

    #[tokio::test]
    async fn a_user_needs_an_existing_group() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db")).unwrap();
        assert!(matches!(
            store.add_user(&user("bob@example.com")).await,
            Err(StoreError::Missing(_))
        ));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    async fn store_with_alice(path: &Path) -> SqliteStore {
        let store = SqliteStore::open(path).unwrap();
        store
            .put_enterprise(&Enterprise {
                id: "ent".into(),
                name: "Ent".into(),
            })
            .await
            .unwrap();
        store
            .put_group(&Group {
                id: "grp".into(),
                enterprise_id: "ent".into(),
                name: "Grp".into(),
            })
            .await
            .unwrap();
        store.add_user(&user("alice@example.com")).await.unwrap();
        store
    }

    #[tokio::test]
    async fn settings_devices_contacts_and_call_logs_are_kept_per_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        {
            let store = store_with_alice(&path).await;
            store
                .put_service_settings("alice@example.com", "DoNotDisturb", "{\"active\":true}")
                .await
                .unwrap();
            assert!(matches!(
                store
                    .put_service_settings("nobody@example.com", "DoNotDisturb", "{}")
                    .await,
                Err(StoreError::Missing(_))
            ));
            let device = Device {
                user_id: "alice@example.com".into(),
                name: "alice-pc".into(),
                device_type: "Business Communicator - PC".into(),
                line_port: "alice_pc@example.com".into(),
            };
            store.add_device(&device).await.unwrap();
            assert!(matches!(
                store.add_device(&device).await,
                Err(StoreError::Exists(_))
            ));
            let contact = PersonalContact {
                name: "Dentist".into(),
                number: "+15550199".into(),
            };
            store
                .add_personal_contacts("alice@example.com", std::slice::from_ref(&contact), 1000)
                .await
                .unwrap();
            assert!(matches!(
                store
                    .add_personal_contacts(
                        "alice@example.com",
                        std::slice::from_ref(&contact),
                        1000
                    )
                    .await,
                Err(StoreError::Exists(_))
            ));
            for n in 0..CALL_LOG_LIMIT + 5 {
                store
                    .add_call_log(&CallLogRecord {
                        id: 0,
                        user_id: "alice@example.com".into(),
                        kind: CallLogKind::Missed,
                        name: None,
                        number: format!("{n}"),
                        country_code: None,
                        time: "2026-11-22T10:00:00Z".into(),
                    })
                    .await
                    .unwrap();
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        // The WAL is copied into the database file from the second connection.
        store.checkpoint().await.unwrap();
        assert_eq!(
            store
                .service_settings("ALICE@example.com", "DoNotDisturb")
                .await
                .unwrap()
                .as_deref(),
            Some("{\"active\":true}")
        );
        assert_eq!(store.devices("alice@example.com").await.unwrap().len(), 1);
        let missed = store
            .call_logs("alice@example.com", Some(CallLogKind::Missed))
            .await
            .unwrap();
        assert_eq!(missed.len(), CALL_LOG_LIMIT, "older records are dropped");
        assert_eq!(missed[0].number, format!("{}", CALL_LOG_LIMIT + 4));
        assert!(store
            .call_logs("alice@example.com", Some(CallLogKind::Placed))
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .remove_personal_contact("alice@example.com", "Dentist")
            .await
            .unwrap());
        // Removing the user removes everything that was theirs.
        assert!(store.remove_user("alice@example.com").await.unwrap());
        assert!(store
            .call_logs("alice@example.com", None)
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .service_settings("alice@example.com", "DoNotDisturb")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn user_changes_move_the_generation_here_and_from_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let here = store_with_alice(&path).await;
        let before = here.users_generation();
        let verifiers = PasswordVerifiers::new("changed", 4096).unwrap();
        here.set_password("alice@example.com", &verifiers)
            .await
            .unwrap();
        let after_local = here.users_generation();
        assert_ne!(before, after_local, "a change here is seen at once");
        // Settings are not user records: no movement.
        here.put_service_settings("alice@example.com", "DoNotDisturb", "{}")
            .await
            .unwrap();
        assert_eq!(here.users_generation(), after_local);

        // Another connection to the same file stands for `bridgehead user passwd` (a new
        // password always has a new salt; an identical UPDATE would not move data_version).
        let elsewhere = SqliteStore::open(&path).unwrap();
        let other = PasswordVerifiers::new("changed again", 4096).unwrap();
        elsewhere
            .set_password("alice@example.com", &other)
            .await
            .unwrap();
        let mut seen = false;
        for _ in 0..40 {
            if here.users_generation() != after_local {
                seen = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(seen, "a change by another process is seen within a second");
    }
}
