use super::*;
use crate::store::SqliteStore;
use crate::telephony::services::DoNotDisturb;
use crate::telephony::{EventBus, ServiceSettings, Telephony, User};

async fn hub(dir: &std::path::Path, config: XsiEventsConfig) -> (Hub, Vec<User>) {
    let store = SqliteStore::open(&dir.join("db.sqlite3")).unwrap();
    let telephony = Telephony::new(
        Arc::new(store),
        EventBus::new(16),
        crate::config::QuotasConfig::default(),
    );
    let mut users = Vec::new();
    for id in ["a@example.com", "b@example.com"] {
        let user = User::test(id, "e", "g");
        telephony.add_user(&user).await.unwrap();
        users.push(user);
    }
    (Hub::load(telephony, config, "node").await.unwrap(), users)
}

fn owner(user: &User) -> Owner {
    Owner {
        id: user.id.clone(),
        is_client: false,
    }
}

async fn subscribe(hub: &Hub, user: &User, set: &str) {
    hub.subscribe(
        &owner(user),
        SubscribeRequest {
            target: SubscriptionTarget::User {
                user_id: user.id.clone(),
            },
            events: vec!["Do Not Disturb".into()],
            expires: NEVER_EXPIRES,
            channel_set_id: set.into(),
            application_id: None,
            initial: Vec::new(),
        },
    )
    .await
    .unwrap();
}

fn dnd(user: &User, sequence: u64) -> TelephonyEvent {
    TelephonyEvent {
        user_id: user.id.clone(),
        enterprise_id: user.enterprise_id.clone(),
        group_id: user.group_id.clone(),
        sequence,
        kind: EventKind::ServiceChanged(ServiceSettings::from(DoNotDisturb {
            active: sequence % 2 == 1,
            ring_splash: false,
        })),
        index: 0,
    }
}

fn channel(set: &str) -> ChannelRequest {
    ChannelRequest {
        channel_set_id: set.into(),
        priority: 1,
        weight: 50,
        expires: NEVER_EXPIRES,
        application_id: None,
    }
}

#[tokio::test]
async fn sequence_numbers_wrap_from_the_largest_to_one() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, users) = hub(dir.path(), XsiEventsConfig::default()).await;
    subscribe(&hub, &users[0], "set").await;
    // The set is made with its first event (no channel: it waits in the backlog).
    hub.deliver(&dnd(&users[0], 1));
    if let Some(set) = hub.state().sets.get_mut("set") {
        set.next_sequence = MAX_SEQUENCE;
    }
    hub.deliver(&dnd(&users[0], 2));
    hub.deliver(&dnd(&users[0], 3));
    let state = hub.state();
    let sequences: Vec<u32> = state.sets["set"]
        .backlog
        .iter()
        .map(|p| p.sequence)
        .collect();
    assert_eq!(sequences, [1, MAX_SEQUENCE, 1]);
}

#[tokio::test]
async fn a_channel_that_stops_reading_is_ended_and_others_are_not_held_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = XsiEventsConfig {
        channel_queue_len: 4.try_into().unwrap(),
        ..XsiEventsConfig::default()
    };
    let (hub, users) = hub(dir.path(), config).await;
    let (a, b) = (&users[0], &users[1]);
    subscribe(&hub, a, "a-set").await;
    subscribe(&hub, b, "b-set").await;
    let stalled = hub.open_channel(&owner(a), channel("a-set")).unwrap();
    let mut healthy = hub.open_channel(&owner(b), channel("b-set")).unwrap();
    assert!(
        healthy.stream.recv().await.is_some(),
        "the Channel document"
    );
    // a's client never reads: its queue fills, the channel ends; b is served throughout.
    for n in 1..=20 {
        hub.deliver(&dnd(a, n));
        hub.deliver(&dnd(b, n));
        let document = healthy
            .stream
            .try_recv()
            .expect("b's event is there at once");
        assert!(String::from_utf8_lossy(&document).contains("SubscriptionEvent"));
    }
    let state = hub.state();
    assert!(
        state.sets["a-set"].channels.is_empty(),
        "the stalled channel ended"
    );
    assert!(
        !state.sets["a-set"].backlog.is_empty(),
        "its events wait for a new channel"
    );
    assert_eq!(state.sets["b-set"].channels.len(), 1);
    drop(stalled);
}

#[tokio::test]
async fn a_backlog_longer_than_the_channels_queue_drains_without_ending_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let config = XsiEventsConfig {
        channel_queue_len: 16.try_into().unwrap(),
        ..XsiEventsConfig::default()
    };
    let (hub, users) = hub(dir.path(), config).await;
    let a = &users[0];
    subscribe(&hub, a, "set").await;
    for n in 1..=50 {
        hub.deliver(&dnd(a, n));
    }
    let mut opened = hub.open_channel(&owner(a), channel("set")).unwrap();
    opened.stream.recv().await.expect("the Channel document");
    // The client reads and acknowledges: every event comes, in order, on one channel.
    for n in 1..=50u32 {
        let document = String::from_utf8(opened.stream.recv().await.unwrap().to_vec()).unwrap();
        assert!(
            document.contains(&format!("<xsi:sequenceNumber>{n}</xsi:sequenceNumber>")),
            "event {n}: {document}"
        );
        let event_id = document
            .split("<xsi:eventID>")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .unwrap()
            .to_owned();
        hub.event_response(&owner(a), &event_id, 200).await.unwrap();
    }
    assert_eq!(hub.channel_count(), 1, "the channel lives on");
}

/// The claim in the next SetClaimed notice `outbox` has.
fn told_claim(outbox: &mut mpsc::Receiver<Notice>) -> Claim {
    match outbox.try_recv() {
        Ok(Notice::SetClaimed { claim, .. }) => claim,
        other => panic!("expected a SetClaimed notice, got {other:?}"),
    }
}

#[tokio::test]
async fn of_two_nodes_with_channels_of_a_set_the_later_claim_delivers_and_the_other_stands_by() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, users) = hub(dir.path(), XsiEventsConfig::default()).await;
    let (outbox, mut told) = mpsc::channel(16);
    let (journal, _writes) = mpsc::channel(16);
    let hub = hub.in_cluster(outbox, journal);
    let a = &users[0];
    subscribe(&hub, a, "set").await;
    let _ = told.try_recv(); // the subscription
    let mut opened = hub.open_channel(&owner(a), channel("set")).unwrap();
    opened.stream.recv().await.expect("the Channel document");
    let mine = told_claim(&mut told);
    assert_eq!(mine.node, "node");
    hub.restore("set", crate::xsi::events::journal::Kept::default());

    // An earlier claim from another node: this node answers with its own.
    let earlier = Claim {
        at_ms: mine.at_ms - 1,
        node: "other".into(),
    };
    hub.apply_notice(Notice::SetClaimed {
        set_id: "set".into(),
        claim: earlier,
    });
    assert_eq!(told_claim(&mut told), mine);
    assert!(hub.holds_set("set"));

    // A later one: this node stands by, keeps its channel and sends nothing.
    let later = Claim {
        at_ms: mine.at_ms + 1,
        node: "other".into(),
    };
    hub.apply_notice(Notice::SetClaimed {
        set_id: "set".into(),
        claim: later.clone(),
    });
    assert!(told.try_recv().is_err(), "nothing to answer");
    assert!(!hub.holds_set("set"));
    assert!(!hub.delivers(&owner(a), "set"));
    assert!(hub.held_targets().is_empty(), "no interest in its events");
    hub.deliver(&dnd(a, 1));
    assert!(opened.stream.try_recv().is_err(), "the holder sends it");
    hub.heartbeat(&owner(a), &opened.channel_id).unwrap();
    assert!(
        opened.stream.try_recv().is_ok(),
        "the heartbeat is answered here"
    );
    let standby = hub.standby_sets();
    assert_eq!(standby.len(), 1);
    assert_eq!(standby[0].holder, later);

    // The holder lets go: this node takes over with a new claim, and restores.
    assert!(hub.take_over(&standby[0]));
    assert!(!hub.take_over(&standby[0]), "once");
    assert!(told_claim(&mut told) > later);
    assert!(hub.holds_set("set"));
    hub.restore("set", crate::xsi::events::journal::Kept::default());
    hub.deliver(&dnd(a, 2));
    let document = String::from_utf8(opened.stream.recv().await.unwrap().to_vec()).unwrap();
    assert!(document.contains("SubscriptionEvent"), "{document}");
    assert!(hub.delivers(&owner(a), "set"));

    // Standing by again, its channel here ends: the set is forgotten with the next sweep.
    let latest = Claim {
        at_ms: u64::MAX,
        node: "other".into(),
    };
    hub.apply_notice(Notice::SetClaimed {
        set_id: "set".into(),
        claim: latest,
    });
    hub.delete_channel(&owner(a), &opened.channel_id).unwrap();
    hub.tick(Instant::now());
    assert!(!hub.state().sets.contains_key("set"));
    assert!(hub.standby_sets().is_empty());
}
