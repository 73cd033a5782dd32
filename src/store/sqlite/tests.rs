use super::*;
use crate::credentials::PasswordVerifiers;
use crate::store::{
    CallLogStore, ComponentStore, ContactStore, DirectoryStore, RosterStore, SettingsStore, Store,
};
use crate::telephony::{
    CallLogKind, CallLogRecord, ComponentRecord, Device, Enterprise, Group, OnConflict,
    PersonalContact, Role, RosterItem, RosterSubscription, User, CALL_LOG_LIMIT,
};

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
                .add_personal_contacts("alice@example.com", std::slice::from_ref(&contact), 1000)
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

#[tokio::test]
async fn users_are_found_by_number_either_way_written_and_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_alice(&dir.path().join("db.sqlite3")).await;
    let ids = |users: Vec<User>| users.into_iter().map(|u| u.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.users_by_number("15550100").await.unwrap()),
        ["alice@example.com"],
        "stored as +15550100"
    );
    assert!(store.users_by_number("15550199").await.unwrap().is_empty());
    assert_eq!(
        ids(store.users_by_extension("100").await.unwrap()),
        ["alice@example.com"]
    );
    assert!(store.users_by_extension("10").await.unwrap().is_empty());
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
