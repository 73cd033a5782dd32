//! XSI-Events against the real server: streamed channels over real TLS, subscriptions,
//! events from real XSI-Actions changes, acknowledgements, timers, and restarts. Every
//! document on a stream and every answer is validated against `schemas/xsi.xsd`.

use std::time::Duration;

use hyper::Method;

use bridgehead::config::Config;

use crate::support::acme::{auth, ALICE};
use crate::support::events::{channel_body, event, sequence};
use crate::support::https::{assert_valid, between, EventChannel, EVENTS};
use crate::support::server::Setup;

async fn start_with(adjust: impl FnOnce(&mut Config) + 'static) -> Setup {
    Setup::builder().acme().config(adjust).start().await
}

async fn start() -> Setup {
    start_with(|_| {}).await
}

const DND: &str = "<event>Do Not Disturb</event>";

/// Monitoring (Nagios XSI checks, CTI consumers) subscribes to Basic Call and waits for the
/// CallSubscriptionEvent: it comes at once, with the user's hook status.
#[tokio::test]
async fn a_call_subscription_is_answered_at_once_with_the_hook_status() {
    let setup = start().await;
    let mut channel = setup.open(ALICE, "alice-set").await;
    for package in ["Basic Call", "Advanced Call"] {
        let subscribed = setup
            .subscribe(
                ALICE,
                &format!("user/{ALICE}"),
                "alice-set",
                &format!("<event>{package}</event>"),
            )
            .await;
        assert_eq!(subscribed.status, 200, "{subscribed:?}");
        let first = event(&mut channel).await;
        assert!(
            first.contains("<xsi:eventData xsi1:type=\"xsi:CallSubscriptionEvent\"><xsi:hookStatus>On-Hook</xsi:hookStatus></xsi:eventData>"),
            "{first}"
        );
        assert!(first.contains(&format!("<xsi:targetId>{ALICE}</xsi:targetId>")));
        assert_eq!(setup.ack(ALICE, &first, 200).await.status, 200);
    }
}

#[tokio::test]
async fn channel_subscription_event_ack_and_heartbeat() {
    let setup = start().await;
    let mut channel = setup.open(ALICE, "alice-set").await;
    assert!(
        channel.id.starts_with("bridgehead.test:") || channel.id.contains(':'),
        "{}",
        channel.id
    );
    assert_eq!(
        channel.expires, 3600,
        "a request below the minimum gets the minimum"
    );

    let subscribed = setup
        .subscribe(ALICE, &format!("user/{ALICE}"), "alice-set", DND)
        .await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");
    let subscription_id =
        between(&subscribed.body, "<subscriptionId>", "</subscriptionId>").to_owned();

    // The narrowest target gets the current state at once.
    let initial = event(&mut channel).await;
    assert!(initial.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><xsi:Event xmlns:xsi=\"http://schema.broadsoft.com/xsi\" xmlns:xsi1=\"http://www.w3.org/2001/XMLSchema-instance\" xsi1:type=\"xsi:SubscriptionEvent\">"), "{initial}");
    assert_eq!(sequence(&initial), 1);
    assert!(initial.contains("<xsi:eventData xsi1:type=\"xsi:DoNotDisturbEvent\"><xsi:info><xsi:active>false</xsi:active>"), "{initial}");
    assert!(initial.contains(&format!(
        "<xsi:subscriptionId>{subscription_id}</xsi:subscriptionId>"
    )));
    assert!(initial.contains(&format!("<xsi:channelId>{}</xsi:channelId>", channel.id)));
    assert!(initial.contains("<xsi:userId>alice@acme.test</xsi:userId><xsi:externalApplicationId>test-app</xsi:externalApplicationId>"));
    assert_eq!(setup.ack(ALICE, &initial, 200).await.status, 200);

    // A change through XSI-Actions arrives as the next event.
    setup.set_dnd(ALICE, true).await;
    let changed = event(&mut channel).await;
    assert_eq!(sequence(&changed), 2);
    assert!(
        changed.contains("<xsi:active>true</xsi:active>"),
        "{changed}"
    );
    assert!(changed.contains("<xsi:targetId>alice@acme.test</xsi:targetId>"));
    assert_eq!(setup.ack(ALICE, &changed, 200).await.status, 200);
    // Acknowledged events are not sent again.
    assert!(channel
        .next_within(Duration::from_millis(300))
        .await
        .is_none());

    // A heartbeat is answered, and echoed on the stream, byte for byte.
    let heartbeat = setup
        .https()
        .request(
            Method::PUT,
            &format!("{EVENTS}/channel/{}/heartbeat", channel.id),
            &[("authorization", &auth(ALICE))],
            None,
        )
        .await;
    assert_eq!(heartbeat.status, 200);
    assert_eq!(
        channel.next().await.unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ChannelHeartBeat xmlns=\"http://schema.broadsoft.com/xsi\"/>"
    );

    // The channel set, the subscription list and one subscription.
    let set = setup
        .https()
        .get(&format!("{EVENTS}/channelset/alice-set"), &auth(ALICE))
        .await;
    assert_eq!(set.status, 200);
    assert_valid(&set.body);
    assert!(set
        .body
        .contains(&format!("<channelId>{}</channelId>", channel.id)));
    let list = setup
        .https()
        .get(
            &format!("{EVENTS}/subscription?event=Do%20Not%20Disturb"),
            &auth(ALICE),
        )
        .await;
    assert_valid(&list.body);
    assert!(list.body.contains(&subscription_id), "{}", list.body);
    let one = setup
        .https()
        .get(
            &format!("{EVENTS}/subscription/{subscription_id}"),
            &auth(ALICE),
        )
        .await;
    assert_valid(&one.body);
    assert!(
        one.body
            .contains("<targetIdType>User</targetIdType><targetId>alice@acme.test</targetId>"),
        "{}",
        one.body
    );
    let renewed = setup
        .https()
        .request(Method::PUT, &format!("{EVENTS}/subscription/{subscription_id}"), &[("authorization", &auth(ALICE))], Some("<Subscription xmlns=\"http://schema.broadsoft.com/xsi\"><expires>2147483647</expires></Subscription>"))
        .await;
    assert_valid(&renewed.body);
    assert!(
        renewed.body.contains("<expires>2147483647</expires>"),
        "{}",
        renewed.body
    );

    // DELETE ends the channel with ExplicitDelete, then the stream ends.
    let deleted = setup
        .https()
        .request(
            Method::DELETE,
            &format!("{EVENTS}/channel/{}", channel.id),
            &[("authorization", &auth(ALICE))],
            None,
        )
        .await;
    assert_eq!(deleted.status, 200);
    let terminated = event(&mut channel).await;
    assert!(
        terminated.contains("xsi1:type=\"xsi:ChannelTerminatedEvent\""),
        "{terminated}"
    );
    assert!(terminated.contains("<xsi:reason>ExplicitDelete</xsi:reason>"));
    assert!(channel.ended().await);
}

#[tokio::test]
async fn unknown_channels_and_other_peoples_resources_are_refused() {
    let setup = start().await;
    let channel = setup.open(ALICE, "alice-set").await;
    // Another user's channel, an unknown channel, another node's channel: 404 ErrorInfo.
    for (user, id) in [
        ("bob@acme.test", channel.id.clone()),
        (
            ALICE,
            "bridgehead.test:00000000-0000-0000-0000-000000000000".to_owned(),
        ),
        (
            ALICE,
            format!("other-node:{}", channel.id.split(':').nth(1).unwrap()),
        ),
    ] {
        let reply = setup
            .https()
            .request(
                Method::PUT,
                &format!("{EVENTS}/channel/{id}/heartbeat"),
                &[("authorization", &auth(user))],
                None,
            )
            .await;
        assert_eq!(reply.status, 404, "{user} {id}: {reply:?}");
        assert_valid(&reply.body);
    }
    // Subscribing to another user, a group or the system without the role: 403.
    for target in [
        "user/bob@acme.test".to_owned(),
        "user/ghost@acme.test".to_owned(),
        "enterprise/acme/group/sales".to_owned(),
        "serviceprovider/acme".to_owned(),
        "system".to_owned(),
    ] {
        let reply = setup.subscribe(ALICE, &target, "alice-set", DND).await;
        assert_eq!(reply.status, 403, "{target}: {reply:?}");
        assert_valid(&reply.body);
    }
    // A group admin may watch its group; an enterprise admin its enterprise.
    assert_eq!(
        setup
            .subscribe(
                "gadmin@acme.test",
                "enterprise/acme/group/sales",
                "g-set",
                DND
            )
            .await
            .status,
        200
    );
    assert_eq!(
        setup
            .subscribe("eadmin@acme.test", "serviceprovider/acme", "e-set", DND)
            .await
            .status,
        200
    );
    // Unknown packages and missing channel sets are 400.
    let bad = setup
        .subscribe(
            ALICE,
            &format!("user/{ALICE}"),
            "alice-set",
            "<event>Telepathy</event>",
        )
        .await;
    assert_eq!(bad.status, 400);
    // No credentials: 401.
    let none = setup
        .https()
        .request(Method::GET, &format!("{EVENTS}/subscription"), &[], None)
        .await;
    assert_eq!(none.status, 401);
}

#[tokio::test]
async fn group_subscriptions_carry_every_member_in_order() {
    let setup = start().await;
    let mut channel = setup.open("gadmin@acme.test", "admin-set").await;
    let reply = setup
        .subscribe(
            "gadmin@acme.test",
            "enterprise/acme/group/sales",
            "admin-set",
            DND,
        )
        .await;
    assert_eq!(reply.status, 200);
    // Group targets get no initial state; changes of members arrive in order.
    setup.set_dnd(ALICE, true).await;
    setup.set_dnd("bob@acme.test", true).await;
    setup.set_dnd(ALICE, false).await;
    setup.set_dnd("carol@acme.test", true).await; // another group: not delivered
    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = event(&mut channel).await;
        setup.ack("gadmin@acme.test", &e, 200).await;
        seen.push((
            sequence(&e),
            between(&e, "<xsi:targetId>", "</xsi:targetId>").to_owned(),
            e.contains("<xsi:active>true</xsi:active>"),
        ));
    }
    assert_eq!(
        seen,
        [
            (1, ALICE.to_owned(), true),
            (2, "bob@acme.test".to_owned(), true),
            (3, ALICE.to_owned(), false)
        ]
    );
    assert!(channel
        .next_within(Duration::from_millis(300))
        .await
        .is_none());
}

#[tokio::test]
async fn event_responses_steer_delivery() {
    let setup = start().await;
    let mut first = EventChannel::open(setup.https(), &auth(ALICE), &channel_body("alice-set", ""))
        .await
        .unwrap();
    let mut second = EventChannel::open(
        setup.https(),
        &auth(ALICE),
        &channel_body("alice-set", "").replace("<priority>1</priority>", "<priority>2</priority>"),
    )
    .await
    .unwrap();
    setup
        .subscribe(ALICE, &format!("user/{ALICE}"), "alice-set", DND)
        .await;

    // Priority 1 gets it; 500 sends it to the next channel.
    let initial = event(&mut first).await;
    assert_eq!(setup.ack(ALICE, &initial, 500).await.status, 200);
    let again = event(&mut second).await;
    assert_eq!(
        between(&again, "<xsi:eventID>", "</xsi:eventID>"),
        between(&initial, "<xsi:eventID>", "</xsi:eventID>")
    );
    assert!(again.contains(&format!("<xsi:channelId>{}</xsi:channelId>", second.id)));
    setup.ack(ALICE, &again, 200).await;

    // 400 drops it: nothing more.
    setup.set_dnd(ALICE, true).await;
    let dropped = event(&mut first).await;
    setup.ack(ALICE, &dropped, 400).await;
    assert!(first
        .next_within(Duration::from_millis(300))
        .await
        .is_none());
    assert!(second
        .next_within(Duration::from_millis(300))
        .await
        .is_none());

    // 404: that channel ends (UnknownChannel) and the event goes to the next one.
    setup.set_dnd(ALICE, false).await;
    let unknown = event(&mut first).await;
    setup.ack(ALICE, &unknown, 404).await;
    let terminated = event(&mut first).await;
    assert!(
        terminated.contains("<xsi:reason>UnknownChannel</xsi:reason>"),
        "{terminated}"
    );
    assert!(first.ended().await);
    let moved = event(&mut second).await;
    assert_eq!(sequence(&moved), sequence(&unknown));
    setup.ack(ALICE, &moved, 200).await;

    // 481: the subscription is deleted and the event dropped.
    setup.set_dnd(ALICE, true).await;
    let gone = event(&mut second).await;
    setup.ack(ALICE, &gone, 481).await;
    let list = setup
        .https()
        .get(&format!("{EVENTS}/subscription"), &auth(ALICE))
        .await;
    assert!(!list.body.contains("<subscription>"), "{}", list.body);
    setup.set_dnd(ALICE, false).await;
    assert!(second
        .next_within(Duration::from_millis(500))
        .await
        .is_none());
    // An unknown event id is 404.
    assert_eq!(setup.ack(ALICE, &gone, 200).await.status, 404);
}

#[tokio::test]
async fn unacknowledged_events_are_resent_then_the_channel_ends() {
    let setup = start_with(|c| {
        c.xsi_events.ack_timeout_secs = 1.try_into().unwrap();
        c.xsi_events.max_delivery_attempts = 2.try_into().unwrap();
    })
    .await;
    let mut channel = setup.open(ALICE, "alice-set").await;
    setup
        .subscribe(ALICE, &format!("user/{ALICE}"), "alice-set", DND)
        .await;
    let first = event(&mut channel).await;
    let resent = event(&mut channel).await;
    assert_eq!(
        between(&first, "<xsi:eventID>", "</xsi:eventID>"),
        between(&resent, "<xsi:eventID>", "</xsi:eventID>"),
        "the same event is sent again"
    );
    let terminated = event(&mut channel).await;
    assert!(
        terminated.contains("<xsi:reason>NonResponsiveChannel</xsi:reason>"),
        "{terminated}"
    );
    assert!(channel.ended().await);
    // The event waits for the set's next channel.
    let mut next = setup.open(ALICE, "alice-set").await;
    let delivered = event(&mut next).await;
    assert_eq!(
        between(&delivered, "<xsi:eventID>", "</xsi:eventID>"),
        between(&first, "<xsi:eventID>", "</xsi:eventID>")
    );
}

#[tokio::test]
async fn channels_and_subscriptions_expire_and_silent_channels_end() {
    let setup = start_with(|c| {
        c.xsi_events.min_expires_secs = 1;
        c.xsi_events.max_expires_secs = 2;
        c.xsi_events.event_timeout_secs = 60.try_into().unwrap();
    })
    .await;
    let mut channel = setup.open(ALICE, "alice-set").await;
    assert_eq!(channel.expires, 2, "capped at the maximum");
    let reply = setup
        .post(ALICE, &format!("{EVENTS}/user/{ALICE}/subscription"), "<Subscription xmlns=\"http://schema.broadsoft.com/xsi\"><event>Do Not Disturb</event><expires>1</expires><channelSetId>alice-set</channelSetId></Subscription>")
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let initial = event(&mut channel).await;
    setup.ack(ALICE, &initial, 200).await;
    let ended = event(&mut channel).await;
    assert!(
        ended.contains("xsi1:type=\"xsi:SubscriptionTerminatedEvent\""),
        "{ended}"
    );
    setup.ack(ALICE, &ended, 200).await;
    let expired = event(&mut channel).await;
    assert!(
        expired.contains("<xsi:reason>Expired</xsi:reason>"),
        "{expired}"
    );
    assert!(channel.ended().await);

    // Without heartbeats a channel ends after the event timeout.
    let quiet = start_with(|c| c.xsi_events.event_timeout_secs = 1.try_into().unwrap()).await;
    let mut channel = quiet.open(ALICE, "quiet-set").await;
    let ended = channel.next_within(Duration::from_secs(5)).await.unwrap();
    assert!(
        ended.contains("<xsi:reason>NonResponsiveChannel</xsi:reason>"),
        "{ended}"
    );
}

#[tokio::test]
async fn a_second_channel_set_of_the_same_application_ends_the_first() {
    let setup = start().await;
    let mut old = EventChannel::open(
        setup.https(),
        &auth(ALICE),
        &channel_body("set-1", "<applicationId>softphone</applicationId>"),
    )
    .await
    .unwrap();
    let _new = EventChannel::open(
        setup.https(),
        &auth(ALICE),
        &channel_body("set-2", "<applicationId>softphone</applicationId>"),
    )
    .await
    .unwrap();
    let ended = event(&mut old).await;
    assert!(
        ended.contains("<xsi:reason>DuplicateChannelSet</xsi:reason>"),
        "{ended}"
    );
    assert!(old.ended().await);
}

#[tokio::test]
async fn events_wait_for_a_channel_and_subscriptions_survive_a_restart() {
    let dir = {
        let setup = start().await;
        // No channel open: the initial state and two changes wait, in order.
        assert_eq!(
            setup
                .subscribe(ALICE, &format!("user/{ALICE}"), "kept-set", DND)
                .await
                .status,
            200
        );
        setup.set_dnd(ALICE, true).await;
        setup.set_dnd(ALICE, false).await;
        let mut channel = setup.open(ALICE, "kept-set").await;
        let mut states = Vec::new();
        for expected in 1..=3 {
            let e = event(&mut channel).await;
            assert_eq!(sequence(&e), expected);
            states.push(e.contains("<xsi:active>true</xsi:active>"));
            setup.ack(ALICE, &e, 200).await;
        }
        assert_eq!(states, [false, true, false]);
        // On shutdown the channel is told, and its stream ends.
        let dir = setup.stop().await;
        let ended = event(&mut channel).await;
        assert!(
            ended.contains("xsi1:type=\"xsi:ChannelTerminatedEvent\""),
            "{ended}"
        );
        assert!(channel.ended().await);
        dir
    };
    // After a restart the subscription is still there.
    let setup = Setup::builder().start_in(dir).await;
    let mut channel = setup.open(ALICE, "kept-set").await;
    setup.set_dnd(ALICE, true).await;
    let e = event(&mut channel).await;
    assert!(e.contains("<xsi:active>true</xsi:active>"), "{e}");
}
