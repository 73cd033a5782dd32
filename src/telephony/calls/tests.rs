//! The state machine, transition by transition, and the registry.

use super::*;
use crate::telephony::UserScope;
use time::Duration;

const ALL_ACTIONS: [CallAction; 12] = [
    CallAction::Answer,
    CallAction::RemoteAnswer,
    CallAction::Hold,
    CallAction::Retrieve,
    CallAction::RemoteHold,
    CallAction::RemoteRetrieve,
    CallAction::Release { decline: false },
    CallAction::Release { decline: true },
    CallAction::RemoteRelease(None),
    CallAction::Redirect(RedirectReason::Unconditional),
    CallAction::Transfer,
    CallAction::SendDtmf,
];

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn call(personality: Personality) -> Call {
    Call::new(
        CallId::new("node1", 7),
        "ext-1".into(),
        "call7@bridge.example.com".into(),
        UserScope {
            id: "alice@example.com".into(),
            enterprise_id: "e".into(),
            group_id: "g".into(),
        },
        personality,
        RemoteParty {
            name: Some("Bob".into()),
            address: Some("tel:2002".into()),
            user_id: Some("bob@example.com".into()),
            call_type: CallType::Group,
        },
        t0(),
    )
}

/// A call of `personality` brought to `state` by legal actions.
fn in_state(personality: Personality, state: CallState) -> Call {
    let mut c = call(personality);
    let answer = if personality.answers() {
        CallAction::Answer
    } else {
        CallAction::RemoteAnswer
    };
    let path: &[CallAction] = match state {
        CallState::Alerting => &[],
        CallState::Active => &[answer],
        CallState::Held => &[answer, CallAction::Hold],
        CallState::RemoteHeld => &[answer, CallAction::RemoteHold],
        CallState::Detached => &[CallAction::Redirect(RedirectReason::Unconditional)],
        CallState::Released => &[CallAction::Release { decline: false }],
    };
    for &action in path {
        c.apply(action, t0()).unwrap();
    }
    assert_eq!(c.state, state);
    c
}

/// What each (personality, state, action) leads to; `None` is refused. Every
/// combination is listed: the table is the specification.
fn expected(p: Personality, s: CallState, a: CallAction) -> Option<CallState> {
    use CallAction as A;
    use CallState as S;
    match (s, a) {
        (S::Released | S::Detached, _) => None,
        (S::Alerting, A::Redirect(_)) => (p == Personality::Terminator).then_some(S::Detached),
        (_, A::Redirect(_)) => None,
        (S::Active | S::Held | S::RemoteHeld, A::Transfer) => Some(S::Released),
        (S::Active, A::SendDtmf) => Some(S::Active),
        (_, A::Transfer | A::SendDtmf) => None,
        (S::Alerting, A::Answer) => p.answers().then_some(S::Active),
        (S::Alerting, A::RemoteAnswer) => (!p.answers()).then_some(S::Active),
        (S::Alerting, A::Release { decline: true }) => {
            (p == Personality::Terminator).then_some(S::Released)
        }
        (_, A::Release { decline: true }) => None,
        (_, A::Release { decline: false } | A::RemoteRelease(_)) => Some(S::Released),
        (S::Active, A::Hold) => Some(S::Held),
        (S::Held, A::Retrieve) => Some(S::Active),
        (S::Active, A::RemoteHold) => Some(S::RemoteHeld),
        (S::RemoteHeld, A::RemoteRetrieve) => Some(S::Active),
        _ => None,
    }
}

#[test]
fn every_transition_is_allowed_or_refused_as_the_table_says() {
    let states = [
        CallState::Alerting,
        CallState::Active,
        CallState::Held,
        CallState::RemoteHeld,
        CallState::Detached,
        CallState::Released,
    ];
    let personalities = [
        Personality::Originator,
        Personality::Terminator,
        Personality::ClickToDial,
    ];
    for p in personalities {
        for s in states {
            for a in ALL_ACTIONS {
                if s == CallState::Detached && p != Personality::Terminator {
                    continue; // only a call the user answers is redirected
                }
                let mut c = in_state(p, s);
                let before = c.clone();
                let result = c.apply(a, t0() + Duration::seconds(5));
                match expected(p, s, a) {
                    Some(next) => {
                        assert!(result.is_ok(), "{p:?} {s:?} {a:?}: {result:?}");
                        assert_eq!(c.state, next, "{p:?} {s:?} {a:?}");
                    }
                    None => {
                        let error = result.expect_err(&format!("{p:?} {s:?} {a:?} allowed"));
                        assert_eq!(error.state, s.as_str());
                        assert_eq!(error.action, a.as_str());
                        assert_eq!(c, before, "a refused action changes nothing");
                    }
                }
            }
        }
    }
}

#[test]
fn times_and_causes_are_recorded() {
    let mut c = call(Personality::Terminator);
    c.apply(CallAction::Answer, t0() + Duration::seconds(2))
        .unwrap();
    c.apply(CallAction::Hold, t0() + Duration::seconds(10))
        .unwrap();
    c.apply(CallAction::Retrieve, t0() + Duration::seconds(13))
        .unwrap();
    c.apply(CallAction::Hold, t0() + Duration::seconds(20))
        .unwrap();
    c.apply(
        CallAction::RemoteRelease(Some(ReleaseCause::TemporarilyUnavailable)),
        t0() + Duration::seconds(21),
    )
    .unwrap();
    assert_eq!(c.answer_time, Some(t0() + Duration::seconds(2)));
    assert_eq!(c.total_held_ms, 4_000, "3 s and then 1 s held");
    assert_eq!(c.held_time, None);
    assert_eq!(c.release_time, Some(t0() + Duration::seconds(21)));
    assert_eq!(c.releasing_party, Some(ReleasingParty::Remote));
    assert_eq!(c.release_cause, Some(ReleaseCause::TemporarilyUnavailable));
    assert!(c.was_answered());

    let mut declined = call(Personality::Terminator);
    declined
        .apply(CallAction::Release { decline: true }, t0())
        .unwrap();
    assert_eq!(declined.release_cause, Some(ReleaseCause::Forbidden));
    assert_eq!(declined.releasing_party, Some(ReleasingParty::Local));
    assert!(!declined.was_answered(), "a missed call");
}

#[test]
fn the_registry_keeps_calls_until_they_are_released() {
    let registry = CallRegistry::new("node1");
    assert_eq!(
        registry.hook_status("alice@example.com"),
        HookStatus::OnHook
    );
    let mut c = call(Personality::Originator);
    assert_eq!(
        registry.track(c.clone()).hook_changed,
        Some(HookStatus::OffHook)
    );
    assert_eq!(registry.count_on_bridge("Bridge.example.com"), 1);
    assert_eq!(
        registry
            .find_by_ref("CALL7@bridge.example.com")
            .map(|c| c.id),
        Some(c.id.clone())
    );
    assert_eq!(
        registry.hook_status("Alice@Example.com"),
        HookStatus::OffHook
    );
    c.apply(CallAction::RemoteAnswer, t0()).unwrap();
    assert_eq!(registry.track(c.clone()).hook_changed, None);
    let calls = registry.calls_of("alice@example.com");
    assert_eq!(calls.len(), 1, "the same call, updated");
    assert_eq!(calls[0].state, CallState::Active);
    c.apply(CallAction::Release { decline: false }, t0())
        .unwrap();
    assert_eq!(registry.track(c).hook_changed, Some(HookStatus::OnHook));
    assert!(registry.calls_of("alice@example.com").is_empty());
    assert_eq!(registry.count_on_bridge("bridge.example.com"), 0);
    assert!(registry.find_by_ref("call7@bridge.example.com").is_none());
    assert_eq!(
        registry.hook_status("alice@example.com"),
        HookStatus::OnHook
    );
}

#[test]
fn a_refusal_names_the_call_state_and_action() {
    let mut c = in_state(Personality::Originator, CallState::Alerting);
    let error = c.apply(CallAction::Hold, t0()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot hold call callhalf-node1-7: it is Alerting (Originator)"
    );
}

#[test]
fn unanswered_calls_are_found_by_their_personality_deadline() {
    let registry = CallRegistry::new("node1");
    let ringing = Call {
        id: CallId::new("node1", 8),
        call_ref: "call8@bridge.example.com".into(),
        ..call(Personality::Terminator)
    };
    registry.track(ringing.clone());
    registry.track(call(Personality::Originator));
    let found = |ringing_since, dialing_since| -> Vec<CallId> {
        registry
            .unanswered(ringing_since, dialing_since)
            .into_iter()
            .map(|c| c.id)
            .collect()
    };
    assert!(found(t0(), t0()).is_empty(), "none started before t0");
    assert_eq!(found(t0() + Duration::seconds(1), t0()), [ringing.id]);
    assert_eq!(found(t0(), t0() + Duration::seconds(1)).len(), 1);
}
