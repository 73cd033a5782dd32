use super::*;
use crate::xmpp::error::StanzaCondition;

fn policy(max: u32, on_conflict: OnConflict) -> ComponentPolicy {
    ComponentPolicy {
        max_connections: max,
        on_conflict,
        hold_secs: 0,
    }
}

fn info() -> Arc<ConnectionInfo> {
    ConnectionInfo::new(([127, 0, 0, 1], 5000).into(), "component")
}

fn message(from: &str, to: &str) -> Element {
    Element::builder("message", "jabber:component:accept")
        .attr(rxml::xml_ncname!("from").to_owned(), from)
        .attr(rxml::xml_ncname!("to").to_owned(), to)
        .build()
}

fn stanza_of(item: Option<Outbound>) -> Element {
    match item {
        Some(Outbound::Stanza(e)) => *e,
        other => panic!("expected a stanza, got {other:?}"),
    }
}

#[test]
fn replace_closes_the_old_connection_with_conflict() {
    let router = Router::new("example.com", 8, 100, Arc::new(|_: &str| true));
    let mut old = router
        .attach("b.example.com", &policy(1, OnConflict::Replace), info())
        .unwrap();
    let _new = router
        .attach("b.example.com", &policy(1, OnConflict::Replace), info())
        .unwrap();
    assert!(matches!(
        old.queue.try_recv(),
        Ok(Outbound::Close(StreamCondition::Conflict))
    ));
    assert_eq!(router.connection_count("b.example.com"), 1);
}

#[test]
fn reject_refuses_the_new_connection() {
    let router = Router::new("example.com", 8, 100, Arc::new(|_: &str| true));
    let _old = router
        .attach("b.example.com", &policy(1, OnConflict::Reject), info())
        .unwrap();
    assert!(router
        .attach("b.example.com", &policy(1, OnConflict::Reject), info())
        .is_err());
}

#[test]
fn balance_spreads_keeps_full_jids_sticky_and_fails_over() {
    let router = Router::new("example.com", 64, 100, Arc::new(|_: &str| true));
    let p = policy(2, OnConflict::Balance);
    let mut a = router.attach("b.example.com", &p, info()).unwrap();
    let mut b = router.attach("b.example.com", &p, info()).unwrap();
    assert!(
        router.attach("b.example.com", &p, info()).is_err(),
        "max_connections applies"
    );
    for i in 0..4 {
        router.route(message(
            "x@c.example.com",
            &format!("room{i}@b.example.com"),
        ));
    }
    let (mut on_a, mut on_b) = (0, 0);
    while a.queue.try_recv().is_ok() {
        on_a += 1;
    }
    while b.queue.try_recv().is_ok() {
        on_b += 1;
    }
    assert_eq!((on_a, on_b), (2, 2), "round-robin");
    for _ in 0..3 {
        router.route(message("x@c.example.com", "room@b.example.com/nick"));
    }
    let (mut on_a, mut on_b) = (0, 0);
    while a.queue.try_recv().is_ok() {
        on_a += 1;
    }
    while b.queue.try_recv().is_ok() {
        on_b += 1;
    }
    assert!(
        on_a == 3 || on_b == 3,
        "a full JID sticks to one connection: {on_a}/{on_b}"
    );
    router.detach("b.example.com", a.id, 0);
    router.route(message("x@c.example.com", "room@b.example.com/nick"));
    assert_eq!(
        stanza_of(b.queue.try_recv().ok()).attr("to"),
        Some("room@b.example.com/nick")
    );
}

#[test]
fn undeliverable_stanzas_bounce_with_the_right_condition() {
    let router = Router::new(
        "example.com",
        8,
        100,
        Arc::new(|d: &str| d == "down.example.com"),
    );
    let mut sender = router
        .attach("c.example.com", &policy(1, OnConflict::Replace), info())
        .unwrap();
    assert_eq!(
        router.route(message("x@c.example.com", "y@down.example.com")),
        Delivery::Bounced(StanzaCondition::ServiceUnavailable)
    );
    let bounce = stanza_of(sender.queue.try_recv().ok());
    assert_eq!(bounce.attr("type"), Some("error"));
    assert_eq!(bounce.attr("to"), Some("x@c.example.com"));
    assert_eq!(bounce.attr("from"), Some("y@down.example.com"));
    assert!(bounce
        .get_child("error", "jabber:component:accept")
        .unwrap()
        .has_child("service-unavailable", crate::xmpp::ns::STANZAS));

    assert_eq!(
        router.route(message("x@c.example.com", "y@elsewhere.org")),
        Delivery::Bounced(StanzaCondition::RemoteServerNotFound)
    );
    let mut error = message("x@c.example.com", "y@elsewhere.org");
    error.set_attr(
        rxml::Namespace::NONE,
        rxml::xml_ncname!("type").to_owned(),
        "error",
    );
    assert_eq!(
        router.route(error),
        Delivery::Dropped,
        "no error in answer to an error"
    );
    assert!(matches!(
        router.route(message("x@c.example.com", "example.com")),
        Delivery::ToServer(_)
    ));
}

#[test]
fn a_full_queue_disconnects_the_slow_consumer_and_bounces() {
    let router = Router::new("example.com", 1, 100, Arc::new(|_: &str| true));
    let mut slow = router
        .attach("slow.example.com", &policy(1, OnConflict::Replace), info())
        .unwrap();
    let _sender = router
        .attach("c.example.com", &policy(1, OnConflict::Replace), info())
        .unwrap();
    assert_eq!(
        router.route(message("x@c.example.com", "slow.example.com")),
        Delivery::Delivered
    );
    assert_eq!(
        router.route(message("x@c.example.com", "slow.example.com")),
        Delivery::Bounced(StanzaCondition::ServiceUnavailable)
    );
    assert_eq!(router.connection_count("slow.example.com"), 0);
    assert!(slow.queue.try_recv().is_ok());
}

#[test]
fn held_stanzas_reach_the_component_when_it_returns() {
    let router = Router::new("example.com", 8, 2, Arc::new(|_: &str| true));
    let mut sender = router
        .attach("c.example.com", &policy(1, OnConflict::Replace), info())
        .unwrap();
    let first = router
        .attach("b.example.com", &policy(1, OnConflict::Replace), info())
        .unwrap();
    router.detach("b.example.com", first.id, 30);
    for i in 0..2 {
        assert_eq!(
            router.route(message("x@c.example.com", &format!("r{i}@b.example.com"))),
            Delivery::Held
        );
    }
    assert_eq!(
        router.route(message("x@c.example.com", "r2@b.example.com")),
        Delivery::Bounced(StanzaCondition::ServiceUnavailable),
        "the hold is bounded"
    );
    assert!(sender.queue.try_recv().is_ok(), "the overflow was bounced");
    let mut back = router
        .attach("b.example.com", &policy(1, OnConflict::Replace), info())
        .unwrap();
    assert_eq!(
        stanza_of(back.queue.try_recv().ok()).attr("to"),
        Some("r0@b.example.com")
    );
    assert_eq!(
        stanza_of(back.queue.try_recv().ok()).attr("to"),
        Some("r1@b.example.com")
    );
}

#[test]
fn held_stanzas_that_expire_are_bounced() {
    let router = Router::new("example.com", 8, 10, Arc::new(|_: &str| true));
    let mut sender = router
        .attach("c.example.com", &policy(1, OnConflict::Replace), info())
        .unwrap();
    let gone = router
        .attach("b.example.com", &policy(1, OnConflict::Replace), info())
        .unwrap();
    router.detach("b.example.com", gone.id, 1);
    assert_eq!(
        router.route(message("x@c.example.com", "b.example.com")),
        Delivery::Held
    );
    assert_eq!(router.expire_held(Instant::now()), 0);
    assert_eq!(
        router.expire_held(Instant::now() + Duration::from_secs(2)),
        1
    );
    let bounce = stanza_of(sender.queue.try_recv().ok());
    assert_eq!(bounce.attr("type"), Some("error"));
    assert!(bounce
        .get_child("error", "jabber:component:accept")
        .unwrap()
        .has_child("recipient-unavailable", crate::xmpp::ns::STANZAS));
    assert_eq!(
        router.route(message("x@c.example.com", "b.example.com")),
        Delivery::Bounced(StanzaCondition::ServiceUnavailable),
        "after the hold, stanzas bounce at once"
    );
}

#[test]
fn the_admin_sees_connections_and_kicks_them_with_policy_violation() {
    let router = Router::new("example.com", 8, 100, Arc::new(|_: &str| true));
    let p = policy(2, OnConflict::Balance);
    let mut a = router.attach("b.example.com", &p, info()).unwrap();
    let mut b = router.attach("b.example.com", &p, info()).unwrap();
    assert_eq!(
        router.route(message("u@example.com", "b.example.com")),
        Delivery::Delivered
    );
    let views = router.component_views();
    assert_eq!(views.len(), 2);
    assert_eq!(views.iter().map(|v| v.queue_depth).sum::<usize>(), 1);
    assert_eq!(views[0].remote, "127.0.0.1:5000");
    assert_eq!(router.kick_component("B.example.com"), 2);
    for queue in [&mut a.queue, &mut b.queue] {
        let closed = std::iter::from_fn(|| queue.try_recv().ok())
            .any(|item| matches!(item, Outbound::Close(StreamCondition::PolicyViolation)));
        assert!(closed);
    }
    assert_eq!(router.kick_component("nobody.example.com"), 0);

    let mut session = router
        .attach_client(
            "alice@example.com",
            "phone",
            crate::config::ResourceConflict::Replace,
            info(),
        )
        .unwrap();
    let _other = router
        .attach_client(
            "alice@example.com",
            "desk",
            crate::config::ResourceConflict::Replace,
            info(),
        )
        .unwrap();
    assert_eq!(router.client_views().len(), 2);
    assert_eq!(router.client_views()[1].sm, Some("off"));
    let jid = jid::Jid::new("alice@example.com/phone").unwrap();
    assert_eq!(router.kick_client(&jid), 1);
    assert!(matches!(
        session.queue.try_recv(),
        Ok(Outbound::Close(StreamCondition::PolicyViolation))
    ));
    assert_eq!(
        router.kick_client(&jid::Jid::new("alice@example.com").unwrap()),
        2
    );
}
