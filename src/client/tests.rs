//! The failover rules against a scripted transport, on paused time.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use super::*;

/// What a scripted target does with one attempt.
#[derive(Debug, Clone)]
enum Outcome {
    Refuse,
    Status(u16),
    Hang,
    Answer(&'static str),
}

/// Targets that follow a script (then answer 200), and a log of every attempt with the
/// `Cookie` it carried.
#[derive(Default)]
struct Scripted {
    scripts: Mutex<HashMap<String, VecDeque<Outcome>>>,
    log: Mutex<Vec<(String, Option<String>)>>,
}

impl Scripted {
    fn with(scripts: &[(&str, &[Outcome])]) -> Self {
        let scripted = Scripted::default();
        for (host, outcomes) in scripts {
            scripted
                .scripts
                .lock()
                .unwrap()
                .insert((*host).to_owned(), outcomes.iter().cloned().collect());
        }
        scripted
    }

    fn hosts(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }
}

#[async_trait]
impl Transport for Scripted {
    async fn send(
        &self,
        target: &Target,
        request: &XsiRequest,
    ) -> Result<XsiResponse, TransportError> {
        let cookie = request
            .headers
            .iter()
            .find(|(n, _)| n == "cookie")
            .map(|(_, v)| v.clone());
        self.log.lock().unwrap().push((target.host.clone(), cookie));
        let next = self
            .scripts
            .lock()
            .unwrap()
            .get_mut(&target.host)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Outcome::Answer("bridgehead-node=default"));
        match next {
            Outcome::Refuse => Err(TransportError("connection refused".into())),
            Outcome::Status(status) => Ok(XsiResponse {
                status,
                set_cookies: vec![],
                body: vec![],
            }),
            Outcome::Hang => std::future::pending().await,
            Outcome::Answer(cookie) => Ok(XsiResponse {
                status: 200,
                set_cookies: vec![format!("{cookie}; Path=/; Secure; HttpOnly")],
                body: b"ok".to_vec(),
            }),
        }
    }
}

fn targets(hosts: &[&str]) -> Vec<Target> {
    hosts
        .iter()
        .map(|h| Target {
            host: (*h).to_owned(),
            port: 443,
        })
        .collect()
}

fn get() -> XsiRequest {
    XsiRequest {
        method: "GET".into(),
        path: "/com.broadsoft.xsi-actions/v2.0/user/alice@example.com/profile".into(),
        headers: vec![],
        body: vec![],
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_refuses_the_second_answers_503_and_the_third_is_used() {
    let transport = Scripted::with(&[
        ("a", &[Outcome::Refuse]),
        ("b", &[Outcome::Status(503)]),
        ("c", &[Outcome::Answer("bridgehead-node=c")]),
    ]);
    let client = XsiClient::new(targets(&["a", "b", "c"]), transport, Timings::default());
    assert_eq!(client.status().actions, Health::Unknown);
    let response = client.request(get()).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(client.transport.hosts(), ["a", "b", "c"]);
    assert_eq!(client.status().actions, Health::Green);
    // Every later request stays on c and carries its affinity cookie.
    client.request(get()).await.unwrap();
    let log = client.transport.log.lock().unwrap().clone();
    assert_eq!(
        log[3],
        ("c".to_owned(), Some("bridgehead-node=c".to_owned()))
    );
    assert_eq!(client.selected().host, "c");
}

#[tokio::test(start_paused = true)]
async fn no_answer_within_two_seconds_counts_as_a_failure() {
    let transport = Scripted::with(&[("a", &[Outcome::Hang])]);
    let client = XsiClient::new(targets(&["a", "b"]), transport, Timings::default());
    let started = tokio::time::Instant::now();
    client.request(get()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(client.transport.hosts(), ["a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn three_failed_attempts_make_the_interface_red() {
    let transport = Scripted::with(&[
        ("a", &[Outcome::Refuse, Outcome::Refuse]),
        ("b", &[Outcome::Hang]),
    ]);
    let client = XsiClient::new(targets(&["a", "b"]), transport, Timings::default());
    let error = client.request(get()).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Exhausted { tries: 3, .. }),
        "{error}"
    );
    assert_eq!(
        client.transport.hosts(),
        ["a", "b", "a"],
        "the list wraps around"
    );
    assert_eq!(client.status().actions, Health::Red);
    client.request(get()).await.unwrap();
    assert_eq!(client.status().actions, Health::Green);
}

#[tokio::test(start_paused = true)]
async fn a_blocked_address_is_skipped_until_it_expires() {
    let timings = Timings {
        block_for: Duration::from_secs(60),
        ..Timings::default()
    };
    let transport = Scripted::with(&[("a", &[Outcome::Status(500)])]);
    let client = XsiClient::new(targets(&["a", "b"]), transport, timings);
    client.request(get()).await.unwrap();
    assert_eq!(client.transport.hosts(), ["a", "b"]);
    // b fails once: a is still blocked, so b is tried again.
    client
        .transport
        .scripts
        .lock()
        .unwrap()
        .insert("b".into(), [Outcome::Refuse].into());
    client.request(get()).await.unwrap();
    assert_eq!(client.transport.hosts(), ["a", "b", "b", "b"]);
    // After the block, a failure of b moves on to a.
    tokio::time::advance(Duration::from_secs(61)).await;
    client
        .transport
        .scripts
        .lock()
        .unwrap()
        .insert("b".into(), [Outcome::Refuse].into());
    client.request(get()).await.unwrap();
    assert_eq!(client.transport.hosts()[4..], ["b", "a"]);
}

#[tokio::test(start_paused = true)]
async fn when_every_address_is_blocked_one_is_tried_anyway_and_unblocked_on_success() {
    let transport = Scripted::with(&[
        ("a", &[Outcome::Status(503)]),
        ("b", &[Outcome::Status(502)]),
    ]);
    let timings = Timings {
        tries: 2,
        ..Timings::default()
    };
    let client = XsiClient::new(targets(&["a", "b"]), transport, timings);
    assert!(client.request(get()).await.is_err());
    // Both blocked: the next request still goes somewhere, and that one is unblocked.
    client.request(get()).await.unwrap();
    let chosen = client.transport.hosts()[2].clone();
    assert_eq!(client.selected().host, chosen);
    let now = tokio::time::Instant::now();
    let index = usize::from(chosen == "b");
    assert!(!client.state().selector.blocked(index, now));
    assert!(client.state().selector.blocked(1 - index, now));
}
