use super::*;
use crate::store::contract::{contract_tests, Backend};
use crate::store::{ContactStore, Store};
use crate::telephony::PersonalContact;

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
    crate::store::contract::add_alice(&store).await;
    store
}

#[tokio::test]
async fn extensions_are_found_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_alice(&dir.path().join("db.sqlite3")).await;
    let plan: String = store
        .with(|c| {
            Ok(c.query_row(
                "EXPLAIN QUERY PLAN SELECT * FROM users WHERE extension = '100'",
                [],
                |row| row.get::<_, String>(3),
            )?)
        })
        .await
        .unwrap();
    assert!(plan.contains("users_extension"), "by index: {plan}");
}

/// A SQLite file in a directory of its own.
struct Sqlite(tempfile::TempDir);

async fn sqlite() -> Sqlite {
    Sqlite(tempfile::tempdir().unwrap())
}

#[async_trait]
impl Backend for Sqlite {
    type Store = SqliteStore;

    async fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.0.path().join("db.sqlite3")).unwrap()
    }
}

contract_tests!(sqlite);
