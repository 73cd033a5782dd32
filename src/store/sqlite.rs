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

mod call_logs;
mod components;
mod contacts;
mod directory;
mod rosters;
mod rows;
mod schema;
mod settings;
mod subscriptions;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use rusqlite::Connection;

use super::{Store, StoreError};
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
}

#[cfg(test)]
mod tests;
