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

mod rows;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{
    CallLogKind, CallLogRecord, ComponentRecord, Device, Enterprise, Group, PersonalContact,
    RosterItem, Store, StoreError, SubscriptionRecord, User, CALL_LOG_LIMIT,
};
use crate::credentials::PasswordVerifiers;
use rows::{
    call_log_from_row, component_from_row, is_constraint, roster_row, user_from_row,
    user_row_error, verifiers_json,
};
use schema::migrate;

/// A WAL larger than this is truncated at the next checkpoint, even in a write burst.
pub(crate) const WAL_TRUNCATE_BYTES: u64 = 64 * 1024 * 1024;

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
mod tests;
