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
                stream: None,
            }),
            Outcome::Hang => std::future::pending().await,
            Outcome::Answer(cookie) => Ok(XsiResponse {
                status: 200,
                set_cookies: vec![format!("{cookie}; Path=/; Secure; HttpOnly")],
                body: b"ok".to_vec(),
                stream: None,
            }),
        }
    }
}

fn targets(hosts: &[&str]) -> Vec<Target> {
    hosts.iter().map(|h| Target::new(h, 443)).collect()
}

fn get() -> XsiRequest {
    XsiRequest {
        method: "GET".into(),
        path: "/com.broadsoft.xsi-actions/v2.0/user/alice@example.com/profile".into(),
        headers: vec![],
        body: vec![],
        streamed: false,
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

/// One node for the event channel: opens streamed channels `c1`, `c2` …, answers
/// heartbeats from a script (then 200), records acknowledgements and deletes.
#[derive(Default)]
struct EventNode {
    opened: Mutex<Vec<(String, tokio::sync::mpsc::Sender<Vec<u8>>)>>,
    heartbeats: Mutex<VecDeque<u16>>,
    acked: Mutex<Vec<String>>,
    deleted: Mutex<Vec<String>>,
}

impl EventNode {
    fn push(&self, channel: usize, document: &str) {
        let sender = self.opened.lock().unwrap()[channel].1.clone();
        sender.try_send(document.as_bytes().to_vec()).unwrap();
    }
}

fn event(id: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><xsi:Event xmlns:xsi=\"http://schema.broadsoft.com/xsi\" xmlns:xsi1=\"http://www.w3.org/2001/XMLSchema-instance\" xsi1:type=\"xsi:SubscriptionEvent\"><xsi:eventID>{id}</xsi:eventID></xsi:Event>")
}

#[async_trait]
impl Transport for EventNode {
    async fn send(
        &self,
        _target: &Target,
        request: &XsiRequest,
    ) -> Result<XsiResponse, TransportError> {
        let answer = |status| {
            Ok(XsiResponse {
                status,
                set_cookies: vec![],
                body: vec![],
                stream: None,
            })
        };
        if request.streamed {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            assert!(body.contains("<channelSetId>set1</channelSetId>"), "{body}");
            let (sender, stream) = tokio::sync::mpsc::channel(16);
            let mut opened = self.opened.lock().unwrap();
            let id = format!("c{}", opened.len() + 1);
            sender
                .try_send(format!("<?xml version=\"1.0\"?><Channel xmlns=\"http://schema.broadsoft.com/xsi\"><channelId>{id}</channelId><expires>3600</expires></Channel>").into_bytes())
                .unwrap();
            opened.push((id, sender));
            return Ok(XsiResponse {
                status: 200,
                set_cookies: vec![],
                body: vec![],
                stream: Some(stream),
            });
        }
        if request.path.ends_with("/heartbeat") {
            let status = self.heartbeats.lock().unwrap().pop_front().unwrap_or(200);
            return answer(status);
        }
        if request.path.ends_with("/eventresponse") {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            assert!(body.contains("<statusCode>200</statusCode>"), "{body}");
            let id = body
                .split("<eventID>")
                .nth(1)
                .and_then(|r| r.split('<').next())
                .unwrap_or_default();
            self.acked.lock().unwrap().push(id.to_owned());
            return answer(200);
        }
        if request.method == "DELETE" {
            self.deleted.lock().unwrap().push(request.path.clone());
            return answer(200);
        }
        answer(404)
    }
}

#[tokio::test(start_paused = true)]
async fn two_failed_heartbeats_rebuild_the_channel_in_the_same_set_and_events_keep_coming() {
    let client = std::sync::Arc::new(XsiClient::new(
        targets(&["a"]),
        EventNode::default(),
        Timings::default(),
    ));
    let (notices, mut received) = tokio::sync::mpsc::channel(16);
    let stop = tokio_util::sync::CancellationToken::new();
    let keeper = {
        let client = std::sync::Arc::clone(&client);
        let stop = stop.clone();
        tokio::spawn(async move {
            client
                .run_channel(ChannelOptions::new("set1", "Basic x"), notices, stop)
                .await;
        })
    };
    assert_eq!(
        received.recv().await,
        Some(Notice::Opened {
            channel_id: "c1".into()
        })
    );
    assert_eq!(client.status().events, Health::Green);
    client.transport.push(0, &event("e1"));
    assert!(
        matches!(received.recv().await, Some(Notice::Event { event_id, .. }) if event_id == "e1")
    );

    // One failed heartbeat is forgiven; two in a row rebuild.
    client
        .transport
        .heartbeats
        .lock()
        .unwrap()
        .extend([404, 200, 404, 404]);
    let started = tokio::time::Instant::now();
    match received.recv().await {
        Some(Notice::Rebuilding { reason }) => assert!(reason.contains("2 heartbeats"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // 404 at 15 s, 200 at 30 s, 404 at 45 s and 60 s.
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    assert_eq!(
        received.recv().await,
        Some(Notice::Opened {
            channel_id: "c2".into()
        })
    );
    client.transport.push(1, &event("e2"));
    assert!(
        matches!(received.recv().await, Some(Notice::Event { event_id, .. }) if event_id == "e2")
    );
    assert_eq!(*client.transport.acked.lock().unwrap(), ["e1", "e2"]);

    // The server ending the channel also rebuilds it.
    client.transport.push(1, "<xsi:Event xmlns:xsi=\"http://schema.broadsoft.com/xsi\" xmlns:xsi1=\"http://www.w3.org/2001/XMLSchema-instance\" xsi1:type=\"xsi:ChannelTerminatedEvent\"><xsi:channelId>c2</xsi:channelId></xsi:Event>");
    assert!(matches!(
        received.recv().await,
        Some(Notice::Rebuilding { .. })
    ));
    assert_eq!(
        received.recv().await,
        Some(Notice::Opened {
            channel_id: "c3".into()
        })
    );

    stop.cancel();
    keeper.await.unwrap();
    assert_eq!(
        *client.transport.deleted.lock().unwrap(),
        ["/com.broadsoft.xsi-events/v2.0/channel/c3"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_401_makes_authentication_red_and_a_later_answer_green() {
    let transport = Scripted::with(&[("a", &[Outcome::Status(401)])]);
    let client = XsiClient::new(targets(&["a"]), transport, Timings::default());
    let mut watch = client.watch_status();
    let response = client.request(get()).await.unwrap();
    assert_eq!(
        response.status, 401,
        "a refusal is an answer, not a failover"
    );
    assert!(watch.has_changed().unwrap());
    let status = *watch.borrow_and_update();
    assert_eq!(status.authentication, Health::Red);
    assert_eq!(status.actions, Health::Green, "the server answered");
    client.request(get()).await.unwrap();
    assert_eq!(client.status().authentication, Health::Green);
}
