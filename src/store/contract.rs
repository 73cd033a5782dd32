//! The behaviour every backend must have, written once and run against each
//! (`contract_tests!` in each backend's tests): what is stored comes back, per user, with
//! the same errors, and is seen by another opening of the same store (another process,
//! or another node).

use async_trait::async_trait;

use crate::credentials::PasswordVerifiers;
use crate::store::{
    CallLogStore, ComponentStore, ContactStore, DirectoryStore, RosterStore, SettingsStore, Store,
    StoreError, SubscriptionStore,
};
use crate::telephony::{
    CallLogKind, CallLogRecord, ComponentRecord, Device, Enterprise, Group, OnConflict,
    PersonalContact, Role, RosterItem, RosterSubscription, SubscriptionRecord, SubscriptionTarget,
    User, CALL_LOG_LIMIT,
};

/// A store under test: every call to `open` opens the same data afresh.
#[async_trait]
pub(crate) trait Backend: Sync {
    /// The store type.
    type Store: Store;
    /// Opens the store (migrating on the first call).
    async fn open(&self) -> Self::Store;
}

/// One `#[tokio::test]` per contract test, against the backend `$make().await` returns.
macro_rules! contract_tests {
    ($make:path) => {
        $crate::store::contract::contract_tests!(@each $make;
            roster_items_are_kept_per_user_and_go_with_the_user,
            a_full_roster_takes_no_new_contact_but_changes_to_old_ones,
            users_and_components_survive_reopening,
            a_user_needs_an_existing_group,
            settings_devices_contacts_and_call_logs_are_kept_per_user,
            user_and_settings_changes_move_the_generation_here_and_from_another_process,
            users_are_found_by_number_either_way_written_and_by_extension,
            subscriptions_are_replaced_listed_and_removed);
    };
    (@each $make:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let backend = $make().await;
                $crate::store::contract::$name(&backend).await;
            }
        )*
    };
}
pub(crate) use contract_tests;

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

/// The store with enterprise `ent`, group `grp` and user alice@example.com.
async fn with_alice<B: Backend>(backend: &B) -> B::Store {
    let store = backend.open().await;
    add_alice(&store).await;
    store
}

/// Adds enterprise `ent`, group `grp` and user alice@example.com to `store`.
pub(crate) async fn add_alice<S: Store>(store: &S) {
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
}

pub(crate) async fn roster_items_are_kept_per_user_and_go_with_the_user<B: Backend>(backend: &B) {
    let store = with_alice(backend).await;
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

pub(crate) async fn a_full_roster_takes_no_new_contact_but_changes_to_old_ones<B: Backend>(
    backend: &B,
) {
    let store = with_alice(backend).await;
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

pub(crate) async fn users_and_components_survive_reopening<B: Backend>(backend: &B) {
    {
        let store = with_alice(backend).await;
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
    let store = backend.open().await;
    let alice = store.user("alice@example.com").await.unwrap().unwrap();
    assert!(alice.verifiers.verify_plain("secret"));
    assert_eq!(
        store.components().await.unwrap()[0].on_conflict,
        OnConflict::Balance
    );
    assert!(store.remove_user("alice@example.com").await.unwrap());
    assert!(!store.remove_user("alice@example.com").await.unwrap());
}

pub(crate) async fn a_user_needs_an_existing_group<B: Backend>(backend: &B) {
    let store = backend.open().await;
    assert!(matches!(
        store.add_user(&user("bob@example.com")).await,
        Err(StoreError::Missing(_))
    ));
}

pub(crate) async fn settings_devices_contacts_and_call_logs_are_kept_per_user<B: Backend>(
    backend: &B,
) {
    {
        let store = with_alice(backend).await;
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
    let store = backend.open().await;
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

pub(crate) async fn user_and_settings_changes_move_the_generation_here_and_from_another_process<
    B: Backend,
>(
    backend: &B,
) {
    let here = with_alice(backend).await;
    let before = here.users_generation();
    let verifiers = PasswordVerifiers::new("changed", 4096).unwrap();
    here.set_password("alice@example.com", &verifiers)
        .await
        .unwrap();
    let after_local = here.users_generation();
    assert_ne!(before, after_local, "a change here is seen at once");

    // Another opening of the same store stands for another node or `bridgehead user
    // passwd` (a new password always has a new salt, so the row really changes).
    let elsewhere = backend.open().await;
    let other = PasswordVerifiers::new("changed again", 4096).unwrap();
    elsewhere
        .set_password("alice@example.com", &other)
        .await
        .unwrap();
    let after_password = moved_within_a_second(&here, after_local, |s| s.users_generation()).await;
    assert_ne!(
        after_password, after_local,
        "a new password elsewhere is seen within a second"
    );
    // Settings have a generation per user: another node's change moves alice's.
    let alice = |store: &B::Store| store.settings_generation("Alice@example.com");
    let before_settings = alice(&here);
    elsewhere
        .put_service_settings("alice@example.com", "DoNotDisturb", "{}")
        .await
        .unwrap();
    let after_settings = moved_within_a_second(&here, before_settings, alice).await;
    assert_ne!(
        after_settings, before_settings,
        "new settings elsewhere are seen within a second"
    );
}

/// `generation` of `store` once it differs from `from`, or `from` after a second.
async fn moved_within_a_second<S: Store>(
    store: &S,
    from: u64,
    generation: impl Fn(&S) -> u64,
) -> u64 {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let now = generation(store);
        if now != from || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

pub(crate) async fn users_are_found_by_number_either_way_written_and_by_extension<B: Backend>(
    backend: &B,
) {
    let store = with_alice(backend).await;
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
}

pub(crate) async fn subscriptions_are_replaced_listed_and_removed<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let mut subscription = SubscriptionRecord {
        id: "sub-1".into(),
        owner: "alice@example.com".into(),
        owner_is_client: false,
        target: SubscriptionTarget::User {
            user_id: "alice@example.com".into(),
        },
        events: vec!["Do Not Disturb".into()],
        channel_set_id: "set".into(),
        application_id: Some("app".into()),
        expires_at: Some(1_900_000_000),
    };
    store.put_subscription(&subscription).await.unwrap();
    subscription.events.push("Advanced Call".into());
    subscription.expires_at = None;
    store.put_subscription(&subscription).await.unwrap();
    let elsewhere = backend.open().await;
    assert_eq!(elsewhere.subscriptions().await.unwrap(), [subscription]);
    assert!(elsewhere.remove_subscription("sub-1").await.unwrap());
    assert!(!store.remove_subscription("sub-1").await.unwrap());
    assert!(store.subscriptions().await.unwrap().is_empty());
}
