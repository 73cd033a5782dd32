//! Several `bridgehead serve` processes sharing one PostgreSQL (and, with `[cluster]`, one
//! NATS): what one node writes, every node reads; credential caches learn of another
//! node's changes promptly; a channel request that lands on the wrong node is answered by
//! the channel's node.

use std::time::Duration;

use hyper::Method;

use crate::support::https::{basic, between, EventChannel, Https, Reply, EVENTS};
use crate::support::node::{ephemeral_config_with, Node};
use crate::support::peers::{haproxy_cookie_affinity, haproxy_round_robin};
use crate::support::run_in;
use crate::support::server::http_get;
use crate::support::services::{Nats, Postgres};
use crate::support::wait_until_async;

mod sets;

const DND: &str = "/com.broadsoft.xsi-actions/v2.0/user/alice@localhost/services/DoNotDisturb";

/// Starts node `name` in a directory of its own, on the shared store at `url`, with
/// `extra` configuration (and `xmpp` keys in its `[xmpp]` table); with `pki_of`, it serves that node's development certificate (so
/// that a client behind a load balancer trusts one CA).
async fn node(
    name: &str,
    url: &str,
    extra: &str,
    xmpp: &str,
    pki_of: Option<&Node>,
) -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().unwrap();
    let config = ephemeral_config_with(
        &format!("fqdn = \"bridgehead.test\"\nnode_id = \"{name}\"\n"),
        // The new-password poll below fails a few times before node 2 learns of it.
        &format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n\
             [xsi]\nfailed_logins_per_user_per_minute = 1000\n{extra}"
        ),
    )
    .replacen("[xmpp]\n", &format!("[xmpp]\n{xmpp}"), 1);
    std::fs::write(dir.path().join("bridgehead.toml"), config).unwrap();
    if let Some(other) = pki_of {
        let pki = dir.path().join("data/pki");
        std::fs::create_dir_all(&pki).unwrap();
        for file in std::fs::read_dir(other.dir.join("data/pki")).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), pki.join(file.file_name())).unwrap();
        }
    }
    let node = Node::start(dir.path()).await;
    (dir, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgresql_share_users_settings_and_passwords() {
    let mut postgres = Postgres::start().await;
    // Node 1 creates the demo users in the shared store; node 2 finds them there.
    let (dir1, node1) = node("n1", &postgres.url(), "", "", None).await;
    let (_dir2, node2) = node("n2", &postgres.url(), "", "", None).await;
    assert!(
        node1.log_text().contains("postgres"),
        "{}",
        node1.log_text()
    );
    let (password, _) = node1.demo();
    let auth = basic("alice@localhost", &password);
    let https1 = Https::new(node1.addr("https"), &node1.ca());
    let https2 = Https::new(node2.addr("https"), &node2.ca());

    let before = https2.get(DND, &auth).await;
    assert_eq!(
        before.status, 200,
        "alice, made by node 1, logs in on node 2: {before:?}"
    );
    assert!(before.body.contains("<active>false</active>"), "{before:?}");

    let set = https1
        .put_xml(
            DND,
            &auth,
            "<DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\"><active>true</active></DoNotDisturb>",
        )
        .await;
    assert_eq!(set.status, 200, "{set:?}");
    let after = https2.get(DND, &auth).await;
    assert!(
        after.body.contains("<active>true</active>"),
        "node 2 reads node 1's write: {after:?}"
    );

    // A new password, set with the CLI on node 1's configuration, reaches node 2's cache.
    std::fs::write(dir1.path().join("pw"), "a new password\n").unwrap();
    let run = run_in(
        dir1.path(),
        &[
            "user",
            "passwd",
            "alice@localhost",
            "--password-file",
            "pw",
            "-c",
            "bridgehead.toml",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let renewed = basic("alice@localhost", "a new password");
    let learned = wait_until_async(Duration::from_secs(5), || async {
        https2.get(DND, &renewed).await.status == 200 && https2.get(DND, &auth).await.status == 401
    })
    .await;
    assert!(
        learned,
        "node 2 takes the new password and refuses the old one within 5 s"
    );

    // PostgreSQL goes away: /healthz says so; requests that need the store get the
    // protocol's error; both come back by themselves with the database.
    postgres.stop();
    let unhealthy = wait_until_async(Duration::from_secs(10), || async {
        let (status, body) = http_get(node2.addr("admin"), "/healthz").await;
        status == 503 && body.contains("PostgreSQL")
    })
    .await;
    assert!(unhealthy, "node 2's /healthz reports the store down");
    let contacts = "/com.broadsoft.xsi-actions/v2.0/user/alice@localhost/directories/Personal";
    let refused = https2.get(contacts, &renewed).await;
    assert_eq!(refused.status, 500, "{refused:?}");
    assert!(refused.body.contains("ErrorInfo"), "{refused:?}");
    postgres.start_again().await;
    let back = wait_until_async(Duration::from_secs(20), || async {
        http_get(node2.addr("admin"), "/healthz").await.0 == 200
            && https2.get(contacts, &renewed).await.status == 200
    })
    .await;
    assert!(back, "node 2 serves from the store again once it is back");
}

fn cluster_section(node: &str, nats: &Nats) -> String {
    format!(
        "[cluster]\nnode = \"{node}\"\nnats_url = \"{}\"\nforward_timeout_ms = 1000\n",
        nats.url()
    )
}

/// A cluster on one PostgreSQL and one NATS: node 1 makes the demo data and the
/// development PKI, which every other node serves too.
struct Farm {
    nodes: Vec<Node>,
    _dirs: Vec<tempfile::TempDir>,
    postgres: Postgres,
    nats: Nats,
}

async fn farm(names: &[&str]) -> Farm {
    farm_with(names, "", "").await
}

/// [`farm`] with `extra` configuration (and `xmpp` keys of `[xmpp]`) on every node.
async fn farm_with(names: &[&str], extra: &str, xmpp: &str) -> Farm {
    let postgres = Postgres::start().await;
    let nats = Nats::start().await;
    let (mut nodes, mut dirs) = (Vec::new(), Vec::new());
    for name in names {
        let (dir, started) = node(
            name,
            &postgres.url(),
            &format!("{}{extra}", cluster_section(name, &nats)),
            xmpp,
            nodes.first(),
        )
        .await;
        nodes.push(started);
        dirs.push(dir);
    }
    Farm {
        nodes,
        _dirs: dirs,
        postgres,
        nats,
    }
}

/// HTTP Basic for demo user `index` (0 alice, 1 bob) of `node`'s demo data.
/// The id and password of the `index`th demo user.
fn demo_user(node: &Node, index: usize) -> (String, String) {
    let text = std::fs::read_to_string(node.dir.join("data/demo-credentials.toml")).unwrap();
    let parsed: toml::Value = toml::from_str(&text).unwrap();
    let user = &parsed["users"][index];
    (
        user["id"].as_str().unwrap().to_owned(),
        user["password"].as_str().unwrap().to_owned(),
    )
}

fn demo_auth(node: &Node, index: usize) -> String {
    let (id, password) = demo_user(node, index);
    basic(&id, &password)
}

async fn post_xml(https: &Https, auth: &str, path: &str, body: &str) -> Reply {
    try_post_xml(https, auth, path, body)
        .await
        .unwrap_or_else(|why| panic!("{why}"))
}

/// [`post_xml`], a failed connection (its node died under it) an error.
async fn try_post_xml(https: &Https, auth: &str, path: &str, body: &str) -> Result<Reply, String> {
    https
        .try_request(
            Method::POST,
            path,
            &[("authorization", auth), ("content-type", "application/xml")],
            Some(body),
        )
        .await
}

async fn heartbeat(https: &Https, auth: &str, channel: &str) -> Reply {
    https
        .request(
            Method::PUT,
            &format!("{EVENTS}/channel/{channel}/heartbeat"),
            &[("authorization", auth)],
            None,
        )
        .await
}

/// The value of the `bridgehead_cluster_forwards_total` series with `outcome` on `node`.
async fn forwards(node: &Node, outcome: &str) -> u64 {
    let (_, metrics) = http_get(node.addr("admin"), "/metrics").await;
    let outcome = format!("outcome=\"{outcome}\"");
    metrics
        .lines()
        .find(|line| {
            line.starts_with("bridgehead_cluster_forwards_total{")
                && line.contains("service=\"xsi-channel\"")
                && line.contains(&outcome)
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_requests_that_land_on_another_node_are_answered_by_the_channels_node() {
    let mut farm = farm(&["n1", "n2"]).await;
    let (node1, node2) = (&farm.nodes[0], &farm.nodes[1]);
    let ca = node1.ca();
    let alice = demo_auth(node1, 0);
    let direct1 = Https::new(node1.addr("https"), &ca);
    let direct2 = Https::new(node2.addr("https"), &ca);
    let dir = tempfile::tempdir().unwrap();
    let (_haproxy, port) =
        haproxy_round_robin(dir.path(), &[node1.addr("https"), node2.addr("https")]).await;
    let balanced = Https::new(([127, 0, 0, 1], port).into(), &ca);

    // The channel, its subscription and its events live on node 1.
    let mut channel = EventChannel::open(
        &direct1,
        &alice,
        "<channelSetId>set-1</channelSetId><priority>1</priority><weight>50</weight><expires>600</expires>",
    )
    .await
    .unwrap_or_else(|reply| panic!("channel refused: {reply:?}"));
    assert!(channel.id.starts_with("n1:"), "{}", channel.id);

    // Round-robin: every other heartbeat reaches node 2, which forwards it to node 1.
    for _ in 0..6 {
        let reply = heartbeat(&balanced, &alice, &channel.id).await;
        assert_eq!(
            reply.status, 200,
            "a heartbeat through the balancer: {reply:?}"
        );
        let beat = channel
            .next()
            .await
            .expect("the heartbeat reaches the channel");
        assert!(beat.contains("ChannelHeartBeat"), "{beat}");
    }
    assert!(
        forwards(node2, "answered").await >= 3,
        "node 2 forwarded its share"
    );

    let subscribed = post_xml(
        &direct1,
        &alice,
        &format!("{EVENTS}/user/alice@localhost"),
        "<Subscription xmlns=\"http://schema.broadsoft.com/xsi\"><event>Do Not Disturb</event><expires>600</expires><channelSetId>set-1</channelSetId><applicationId>test</applicationId></Subscription>",
    )
    .await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");

    // Every event is acknowledged through the balancer, half of them via node 2: none is
    // sent again, and each arrives once, in order.
    let mut sequences = Vec::new();
    for round in 0..4 {
        if round > 0 {
            let active = round % 2 == 1;
            let set = direct1
                .put_xml(
                    "/com.broadsoft.xsi-actions/v2.0/user/alice@localhost/services/DoNotDisturb",
                    &alice,
                    &format!("<DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\"><active>{active}</active></DoNotDisturb>"),
                )
                .await;
            assert_eq!(set.status, 200, "{set:?}");
        }
        let event = channel.next().await.expect("an event");
        assert!(event.contains("DoNotDisturbEvent"), "{event}");
        sequences.push(between(&event, "<xsi:sequenceNumber>", "</xsi:sequenceNumber>").to_owned());
        let event_id = between(&event, "<xsi:eventID>", "</xsi:eventID>");
        assert!(
            event_id.starts_with("n1:"),
            "an event id names its node: {event_id}"
        );
        let acked = post_xml(
            &balanced,
            &alice,
            &format!("{EVENTS}/channel/eventresponse"),
            &format!("<EventResponse xmlns=\"http://schema.broadsoft.com/xsi\"><eventID>{event_id}</eventID><statusCode>200</statusCode><reason>OK</reason></EventResponse>"),
        )
        .await;
        assert_eq!(acked.status, 200, "{acked:?}");
    }
    assert_eq!(sequences, ["1", "2", "3", "4"]);

    // The owner checks ownership: bob cannot beat alice's channel through node 2.
    let bob = demo_auth(node1, 1);
    assert_eq!(heartbeat(&direct2, &bob, &channel.id).await.status, 404);
    // A channel of a node that is not there: 404 at once, so the client opens a new one.
    let gone = heartbeat(&direct2, &alice, "n3:00000000-0000-0000-0000-000000000000").await;
    assert_eq!(gone.status, 404, "{gone:?}");
    assert!(gone.body.contains("gone"), "{gone:?}");
    assert!(forwards(node2, "gone").await >= 1);
    // An id whose node part is no node name never reaches a NATS subject.
    for hostile in ["*:x", "%3E:x", "n1.xsi-channel:x", "a%20b:x"] {
        let path = format!("{EVENTS}/channel/{hostile}/heartbeat");
        let refused = direct2
            .request(Method::PUT, &path, &[("authorization", &alice)], None)
            .await;
        assert_eq!(refused.status, 404, "{hostile}: {refused:?}");
    }

    // An update through node 2 answers with node 1's grant.
    let updated = direct2
        .put_xml(
            &format!("{EVENTS}/channel/{}", channel.id),
            &alice,
            "<Channel xmlns=\"http://schema.broadsoft.com/xsi\"><expires>900</expires></Channel>",
        )
        .await;
    assert_eq!(updated.status, 200, "{updated:?}");
    let granted: u64 = between(&updated.body, "<expires>", "</expires>")
        .parse()
        .unwrap();
    assert!(
        granted >= 900,
        "node 1's grant (clamped to its minimum): {updated:?}"
    );
    assert!(updated.body.contains(&channel.id), "{updated:?}");

    // NATS goes away: node 2 says so on /healthz and answers 503 (errorCode 120501); it
    // comes back by itself when NATS does.
    farm.nats.stop();
    let unhealthy = wait_until_async(Duration::from_secs(10), || async {
        let (status, body) = http_get(node2.addr("admin"), "/healthz").await;
        status == 503 && body.contains("NATS")
    })
    .await;
    assert!(unhealthy, "node 2's /healthz reports NATS down");
    let refused = heartbeat(&direct2, &alice, &channel.id).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.body.contains("120501"), "{refused:?}");
    assert!(node2.wait_log("disconnected", Duration::from_secs(5)).await);
    farm.nats.start_again().await;
    let healthy = wait_until_async(Duration::from_secs(20), || async {
        http_get(node2.addr("admin"), "/healthz").await.0 == 200
    })
    .await;
    assert!(healthy, "node 2 reconnects by itself");
    let recovered = wait_until_async(Duration::from_secs(10), || async {
        heartbeat(&direct2, &alice, &channel.id).await.status == 200
    })
    .await;
    assert!(recovered, "forwarding works again once NATS is back");

    // A delete through node 2 ends the stream on node 1.
    let deleted = direct2
        .request(
            Method::DELETE,
            &format!("{EVENTS}/channel/{}", channel.id),
            &[("authorization", &alice)],
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    let mut ended = false;
    while let Some(document) = channel.next().await {
        if document.contains("ExplicitDelete") {
            ended = channel.ended().await;
            break;
        }
    }
    assert!(ended, "the channel ended with ExplicitDelete");
}

/// Puts `user`'s Do Not Disturb to `active` through `https`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cookie_affinity_a_channels_heartbeats_stay_on_its_node() {
    let farm = farm(&["n1", "n2"]).await;
    let (node1, node2) = (&farm.nodes[0], &farm.nodes[1]);
    let ca = node1.ca();
    let alice = demo_auth(node1, 0);
    // HAProxy ends TLS with the nodes' own (development) certificate.
    let dir = tempfile::tempdir().unwrap();
    let pki = node1.dir.join("data/pki");
    let pem = dir.path().join("haproxy.pem");
    let mut both = std::fs::read_to_string(pki.join("server-chain.pem")).unwrap();
    both.push_str(&std::fs::read_to_string(pki.join("server.key")).unwrap());
    std::fs::write(&pem, both).unwrap();
    let (_haproxy, port) = haproxy_cookie_affinity(
        dir.path(),
        &[("n1", node1.addr("https")), ("n2", node2.addr("https"))],
        &pem,
        &ca,
    )
    .await;
    let balanced = Https::new(([127, 0, 0, 1], port).into(), &ca);

    let mut channel = EventChannel::open(
        &balanced,
        &alice,
        "<channelSetId>sticky</channelSetId><priority>1</priority><weight>50</weight><expires>600</expires>",
    )
    .await
    .unwrap_or_else(|reply| panic!("channel refused through HAProxy: {reply:?}"));
    let owner = channel.id.split(':').next().unwrap().to_owned();
    assert_eq!(channel.cookie, format!("bridgehead-node={owner}"));
    let path = format!("{EVENTS}/channel/{}/heartbeat", channel.id);
    let beat = |cookie: Option<String>| {
        let (balanced, alice, path) = (balanced.clone(), alice.clone(), path.clone());
        async move {
            let mut headers = vec![("authorization", alice.as_str())];
            if let Some(cookie) = &cookie {
                headers.push(("cookie", cookie.as_str()));
            }
            balanced.request(Method::PUT, &path, &headers, None).await
        }
    };
    // With the cookie, every heartbeat lands on the channel's node: nothing is forwarded.
    for _ in 0..6 {
        let reply = beat(Some(channel.cookie.clone())).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let next = channel
            .next()
            .await
            .expect("the heartbeat reaches the channel");
        assert!(next.contains("ChannelHeartBeat"), "{next}");
    }
    let forwarded = forwards(node1, "answered").await + forwards(node2, "answered").await;
    assert_eq!(forwarded, 0, "with affinity no heartbeat is forwarded");
    // Without it, HAProxy's round-robin sends some to the other node, which forwards them.
    for _ in 0..6 {
        let reply = beat(None).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        channel
            .next()
            .await
            .expect("the heartbeat reaches the channel");
    }
    let forwarded = forwards(node1, "answered").await + forwards(node2, "answered").await;
    assert!(
        forwarded >= 1,
        "without the cookie, heartbeats are forwarded"
    );
}

async fn set_dnd(https: &Https, auth: &str, user: &str, active: bool) {
    let reply = https
        .put_xml(
            &format!("/com.broadsoft.xsi-actions/v2.0/user/{user}/services/DoNotDisturb"),
            auth,
            &format!("<DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\"><active>{active}</active></DoNotDisturb>"),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// Reads the next event off `channel` (heartbeats skipped), acknowledges it through
/// `https`, and returns its (sequence, DND state).
async fn next_event(channel: &mut EventChannel, https: &Https, auth: &str) -> (u32, bool) {
    loop {
        let document = channel.next().await.expect("an event");
        if document.contains("ChannelHeartBeat") {
            continue;
        }
        assert!(document.contains("DoNotDisturbEvent"), "{document}");
        let event_id = between(&document, "<xsi:eventID>", "</xsi:eventID>");
        let acked = post_xml(
            https,
            auth,
            &format!("{EVENTS}/channel/eventresponse"),
            &format!("<EventResponse xmlns=\"http://schema.broadsoft.com/xsi\"><eventID>{event_id}</eventID><statusCode>200</statusCode><reason>OK</reason></EventResponse>"),
        )
        .await;
        assert_eq!(acked.status, 200, "{acked:?}");
        let sequence = between(&document, "<xsi:sequenceNumber>", "</xsi:sequenceNumber>");
        return (
            sequence.parse().unwrap(),
            document.contains("<xsi:active>true"),
        );
    }
}

/// The value of the unlabelled gauge or counter `name` on `node` (0 when absent).
async fn metric(node: &Node, name: &str) -> f64 {
    let (_, metrics) = http_get(node.addr("admin"), "/metrics").await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// The value of the `bridgehead_cluster_event_subjects` gauge on `node`.
async fn event_subjects(node: &Node) -> f64 {
    metric(node, "bridgehead_cluster_event_subjects").await
}

fn subscription(user: &str, set: &str) -> (String, String) {
    subscription_to(user, set, "Do Not Disturb")
}

/// The path and body of a subscription of `set` to `user`'s `package`.
fn subscription_to(user: &str, set: &str, package: &str) -> (String, String) {
    (
        format!("{EVENTS}/user/{user}"),
        format!("<Subscription xmlns=\"http://schema.broadsoft.com/xsi\"><event>{package}</event><expires>600</expires><channelSetId>{set}</channelSetId><applicationId>test</applicationId></Subscription>"),
    )
}

/// The demo bridge (registered in the shared store by `demo`, the first node) logged in
/// to `node`.
async fn demo_bridge(
    demo: &Node,
    node: &Node,
) -> Result<crate::support::component::Stream, String> {
    let (_, secret) = demo.demo();
    crate::support::component::connect(
        node.addr("component"),
        &demo.ca(),
        "bridge.localhost",
        &secret,
    )
    .await
    .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_every_event_once_and_in_order_wherever_requests_land() {
    let farm = farm(&["n1", "n2", "n3"]).await;
    let (node1, node2, node3) = (&farm.nodes[0], &farm.nodes[1], &farm.nodes[2]);
    let ca = node1.ca();
    let (alice, bob) = (demo_auth(node1, 0), demo_auth(node1, 1));
    let direct = |node: &Node| Https::new(node.addr("https"), &ca);
    let (https1, https2, https3) = (direct(node1), direct(node2), direct(node3));

    // A channel on node 3, its subscription made through node 2, DND changed through
    // node 1: every change reaches the channel, once and in order.
    let mut channel = EventChannel::open(
        &https3,
        &alice,
        "<channelSetId>alice-set</channelSetId><priority>1</priority><weight>50</weight><expires>600</expires>",
    )
    .await
    .unwrap_or_else(|reply| panic!("channel refused: {reply:?}"));
    let (path, body) = subscription("alice@localhost", "alice-set");
    let subscribed = post_xml(&https2, &alice, &path, &body).await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");
    assert_eq!(
        next_event(&mut channel, &https3, &alice).await,
        (1, false),
        "the initial state"
    );
    for (sequence, active) in [(2, true), (3, false), (4, true)] {
        set_dnd(&https1, &alice, "alice@localhost", active).await;
        assert_eq!(
            next_event(&mut channel, &https1, &alice).await,
            (sequence, active)
        );
    }
    // Only the node that holds the set listens for alice's events.
    assert!(event_subjects(node3).await >= 1.0);
    assert_eq!(event_subjects(node1).await, 0.0, "node 1 holds no set");
    assert_eq!(event_subjects(node2).await, 0.0, "node 2 holds no set");

    // Everything through a round-robin balancer, for bob: the channel lives on, and every
    // event arrives once and in order, acknowledged wherever the ack lands.
    let dir = tempfile::tempdir().unwrap();
    let backends = [
        node1.addr("https"),
        node2.addr("https"),
        node3.addr("https"),
    ];
    let (_haproxy, port) = haproxy_round_robin(dir.path(), &backends).await;
    let balanced = Https::new(([127, 0, 0, 1], port).into(), &ca);
    let mut channel = EventChannel::open(
        &balanced,
        &bob,
        "<channelSetId>bob-set</channelSetId><priority>1</priority><weight>50</weight><expires>600</expires>",
    )
    .await
    .unwrap_or_else(|reply| panic!("channel refused: {reply:?}"));
    let (path, body) = subscription("bob@localhost", "bob-set");
    let subscribed = post_xml(&balanced, &bob, &path, &body).await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");
    assert_eq!(next_event(&mut channel, &balanced, &bob).await, (1, false));
    for round in 0..6u32 {
        let beat = heartbeat(&balanced, &bob, &channel.id).await;
        assert_eq!(beat.status, 200, "{beat:?}");
        let active = round % 2 == 0;
        set_dnd(&balanced, &bob, "bob@localhost", active).await;
        assert_eq!(
            next_event(&mut channel, &balanced, &bob).await,
            (round + 2, active)
        );
    }
    let mut forwarded = 0;
    for node in &farm.nodes {
        forwarded += forwards(node, "answered").await;
    }
    assert!(
        forwarded >= 6,
        "heartbeats and acks that landed elsewhere were forwarded: {forwarded}"
    );
    // Nothing was sent twice: the next document is a heartbeat, not a resent event.
    let beat = heartbeat(&balanced, &bob, &channel.id).await;
    assert_eq!(beat.status, 200, "{beat:?}");
    let next = channel.next().await.expect("the heartbeat");
    assert!(
        next.contains("ChannelHeartBeat"),
        "no event came again: {next}"
    );
}

/// Sets alice's Call Forwarding Always to `number` through `https`; whether it was answered.
async fn forward_to(https: &Https, auth: &str, number: u32) -> bool {
    https
        .try_request(
            Method::PUT,
            "/com.broadsoft.xsi-actions/v2.0/user/alice@localhost/services/CallForwardingAlways",
            &[("authorization", auth), ("content-type", "application/xml")],
            Some(&format!("<CallForwardingAlways xmlns=\"http://schema.broadsoft.com/xsi\"><active>true</active><forwardToPhoneNumber>{number}</forwardToPhoneNumber><ringSplash>false</ringSplash></CallForwardingAlways>")),
        )
        .await
        .is_ok_and(|reply| reply.status == 200)
}

/// The Call Forwarding Always number an event carries (0 for one without).
fn forwarded_number(event: &str) -> u32 {
    event
        .split("forwardToPhoneNumber>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

/// Acknowledges `event` through `https`; whether the acknowledgement was answered 200.
async fn ack(https: &Https, auth: &str, event: &str) -> bool {
    let event_id = between(event, "<xsi:eventID>", "</xsi:eventID>");
    try_post_xml(
        https,
        auth,
        &format!("{EVENTS}/channel/eventresponse"),
        &format!("<EventResponse xmlns=\"http://schema.broadsoft.com/xsi\"><eventID>{event_id}</eventID><statusCode>200</statusCode><reason>OK</reason></EventResponse>"),
    )
    .await
    .is_ok_and(|reply| reply.status == 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_no_acknowledged_write_and_its_clients_rebuild_elsewhere() {
    // Three nodes behind a round-robin HAProxy that checks them. Everything goes through
    // HAProxy; the node the channel lands on dies.
    let names = ["n1", "n2", "n3"];
    let farm = farm(&names).await;
    let ca = farm.nodes[0].ca();
    let alice = demo_auth(&farm.nodes[0], 0);
    let dir = tempfile::tempdir().unwrap();
    let backends: Vec<_> = farm.nodes.iter().map(|n| n.addr("https")).collect();
    let (_haproxy, port) = haproxy_round_robin(dir.path(), &backends).await;
    let balanced = Https::new(([127, 0, 0, 1], port).into(), &ca);
    let channel_body = "<channelSetId>kill-set</channelSetId><priority>1</priority><weight>50</weight><expires>600</expires>";
    let mut channel = EventChannel::open(&balanced, &alice, channel_body)
        .await
        .unwrap_or_else(|reply| panic!("channel refused: {reply:?}"));
    let doomed = names
        .iter()
        .position(|name| channel.id.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("the channel names its node: {}", channel.id));
    let victim = &farm.nodes[doomed];
    // The demo bridge (in the shared store; node 1 wrote its secret) is connected to the
    // node that dies.
    let heir = &farm.nodes[(doomed + 1) % 3];
    let bridge = demo_bridge(&farm.nodes[0], victim)
        .await
        .expect("the bridge connects to the channel's node");
    let (path, body) = subscription_to("alice@localhost", "kill-set", "Call Forwarding Always");
    let subscribed = post_xml(&balanced, &alice, &path, &body).await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");
    let initial = channel.next().await.expect("the initial state");
    assert!(ack(&balanced, &alice, &initial).await, "{initial}");

    // The client reads its channel and acknowledges every event through HAProxy (so
    // most acknowledgements are forwarded); what was acknowledged is done with.
    let old_channel = channel.id.clone();
    let reader = {
        let (balanced, alice) = (balanced.clone(), alice.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            while let Some(event) = channel.next_within(Duration::from_secs(60)).await {
                if event.contains("ChannelHeartBeat") || event.contains("ChannelTerminated") {
                    continue;
                }
                if ack(&balanced, &alice, &event).await {
                    acked.push(forwarded_number(&event));
                }
            }
            acked
        })
    };
    // Events: alice's forwarding number changed, one after the other, on every node in
    // turn, before, during and after the channel's node dies; each answered change is an
    // event (answered once it is in the shared backlog, so one made on the node that
    // dies is not lost either).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let produced = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let producer = {
        let (balanced, alice) = (balanced.clone(), alice.clone());
        let (stop, produced) = (stop.clone(), produced.clone());
        tokio::spawn(async move {
            for number in 2000.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if forward_to(&balanced, &alice, number).await {
                    produced.lock().unwrap().push(number);
                }
            }
        })
    };

    // Load through HAProxy: personal directory entries, one per request, each answered
    // before the next, on every node in turn; a request that gets no answer (its node
    // died under it) is not counted.
    let personal = "/com.broadsoft.xsi-actions/v2.0/user/alice@localhost/directories/Personal";
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let (balanced, alice, acknowledged) =
            (balanced.clone(), alice.clone(), acknowledged.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let body = format!("<Personal xmlns=\"http://schema.broadsoft.com/xsi\"><entry><name>entry-{i}</name><number>+1555{i:07}</number></entry></Personal>");
                let answered = try_post_xml(&balanced, &alice, personal, &body).await;
                if answered.is_ok_and(|reply| reply.status == 201) {
                    acknowledged.lock().unwrap().push(i);
                }
            }
        })
    };
    let loaded = crate::support::wait_until(Duration::from_secs(30), || {
        acknowledged.lock().unwrap().len() >= 30 && produced.lock().unwrap().len() >= 10
    })
    .await;
    assert!(loaded, "the nodes took writes and events were made");
    victim.kill_and_wait().await;
    // The old channel ends with its node.
    let acked_before = reader.await.unwrap();
    // Writes and events go on (HAProxy sends nothing more to the dead node), while no
    // node holds the set.
    let (writes_then, events_then) = (
        acknowledged.lock().unwrap().len(),
        produced.lock().unwrap().len(),
    );
    let more = crate::support::wait_until(Duration::from_secs(30), || {
        acknowledged.lock().unwrap().len() >= writes_then + 20
            && produced.lock().unwrap().len() >= events_then + 10
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    producer.await.unwrap();
    writer.await.unwrap();
    assert!(more, "writes and events went on after the node died");

    // Every acknowledged write is in the store, read through HAProxy page by page.
    let mut stored = String::new();
    for start in (1..).step_by(50) {
        let page = balanced
            .get(&format!("{personal}?start={start}&results=50"), &alice)
            .await;
        assert_eq!(page.status, 200, "{page:?}");
        if !page.body.contains("<entry>") {
            break;
        }
        stored.push_str(&page.body);
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    for i in &acknowledged {
        assert!(
            stored.contains(&format!("<name>entry-{i}</name>")),
            "entry-{i} is lost: {stored}"
        );
    }

    // The dead channel's requests get 404 (its node is gone) at once, wherever they
    // land, so the client opens a new one in the same set through HAProxy: every event
    // the old channel did not acknowledge comes, in order, those made while no node held
    // the set too.
    let stale = heartbeat(&balanced, &alice, &old_channel).await;
    assert_eq!(stale.status, 404, "{stale:?}");
    let mut rebuilt = EventChannel::open(&balanced, &alice, channel_body)
        .await
        .unwrap_or_else(|reply| panic!("channel refused: {reply:?}"));
    assert!(
        !rebuilt.id.starts_with(&format!("{}:", names[doomed])),
        "{}",
        rebuilt.id
    );
    let sequence_of = |event: &str| -> u32 {
        between(event, "<xsi:sequenceNumber>", "</xsi:sequenceNumber>")
            .parse()
            .unwrap_or(0)
    };
    let produced = produced.lock().unwrap().clone();
    let mut missing: std::collections::BTreeSet<u32> = produced
        .iter()
        .filter(|n| !acked_before.contains(n))
        .copied()
        .collect();
    let (mut received, mut last) = (Vec::new(), 0);
    while !missing.is_empty() {
        let Some(event) = rebuilt.next().await else {
            panic!("events lost: {missing:?}; acknowledged before: {acked_before:?}; received after: {received:?}");
        };
        if event.contains("ChannelHeartBeat") {
            continue;
        }
        let number = forwarded_number(&event);
        // The set numbers on from where its last acknowledgement left it, not from 1.
        if received.is_empty() {
            assert!(
                sequence_of(&event) > acked_before.len() as u32 / 2,
                "the rebuilt set numbers on: {event}"
            );
        }
        assert!(ack(&balanced, &alice, &event).await, "{event}");
        // An event the old node had acknowledged but not yet forgotten may come again.
        if !acked_before.contains(&number) {
            assert!(number > last, "in order: {number} after {last}: {event}");
            last = number;
        }
        missing.remove(&number);
        received.push(number);
    }

    // The bridge's connection died with its node; it reconnects to another one.
    drop(bridge);
    let again = demo_bridge(&farm.nodes[0], heir).await;
    assert!(
        again.is_ok(),
        "the bridge reconnects to another node: {:?}",
        again.err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_answered_once_its_event_is_in_the_shared_backlog() {
    let farm = farm(&["n1", "n2"]).await;
    let node1 = &farm.nodes[0];
    let ca = node1.ca();
    let alice = demo_auth(node1, 0);
    let https1 = Https::new(node1.addr("https"), &ca);
    let mut channel = EventChannel::open(
        &https1,
        &alice,
        "<channelSetId>kept-set</channelSetId><priority>1</priority><weight>50</weight><expires>600</expires>",
    )
    .await
    .unwrap_or_else(|reply| panic!("channel refused: {reply:?}"));
    let (path, body) = subscription_to("alice@localhost", "kept-set", "Call Forwarding Always");
    let subscribed = post_xml(&https1, &alice, &path, &body).await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");
    let initial = channel.next().await.expect("the initial state");
    assert!(ack(&https1, &alice, &initial).await, "{initial}");

    // The test holds the shared backlog's table: the node's write of the next event waits.
    let (mut db, connection) = tokio_postgres::connect(&farm.postgres.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let lock = db.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE set_events IN SHARE MODE")
        .await
        .unwrap();
    let change = {
        let (https1, alice) = (https1.clone(), alice.clone());
        tokio::spawn(async move { forward_to(&https1, &alice, 3000).await })
    };
    let (watch, connection) = tokio_postgres::connect(&farm.postgres.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let blocked = crate::support::wait_until_async(Duration::from_secs(5), || async {
        let row = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%set_events%'",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) > 0
    })
    .await;
    assert!(blocked, "the node writes the event to the shared backlog");
    // The event is on the channel already (this node holds the set), but the change is
    // not answered while its event is not kept.
    let event = channel.next().await.expect("the event");
    assert_eq!(forwarded_number(&event), 3000, "{event}");
    assert!(
        !change.is_finished(),
        "the change was answered before its event was kept"
    );
    lock.commit().await.unwrap();
    assert!(
        change.await.unwrap(),
        "the change is answered once the event is written"
    );
    let kept = watch
        .query_one(
            "SELECT count(*) FROM set_events WHERE set_id = 'kept-set'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(kept.get::<_, i64>(0), 1, "the unacknowledged event is kept");
}

/// Two more components on every node: `pool` balances over two connections, `strict`
/// refuses a second.
const XMPP_COMPONENTS: &str =
    "[[components]]\nname = \"pool.localhost\"\nsecret = \"pool-secret\"\n\
     max_connections = 2\non_conflict = \"balance\"\n\
     [[components]]\nname = \"strict.localhost\"\nsecret = \"strict-secret\"\n\
     max_connections = 1\non_conflict = \"reject\"\n";

fn chat(from: Option<&str>, to: &str, body: &str) -> minidom::Element {
    let ns = if from.is_some() {
        crate::support::component::COMPONENT_NS
    } else {
        crate::support::client::CLIENT_NS
    };
    let mut attrs = vec![("to", to), ("type", "chat"), ("id", body)];
    if let Some(from) = from {
        attrs.push(("from", from));
    }
    let mut message = minidom::Element::builder("message", ns)
        .append(minidom::Element::builder("body", ns).append(body).build());
    for (name, value) in attrs {
        message = message.attr(rxml::NcName::try_from(name.to_owned()).unwrap(), value);
    }
    message.build()
}

fn body(element: &minidom::Element) -> String {
    element
        .children()
        .find(|c| c.name() == "body")
        .map(|b| b.text())
        .unwrap_or_default()
}

/// Waits for a message with `wanted` as its body on a tokio-xmpp client.
async fn client_gets(client: &mut tokio_xmpp::Client, wanted: &str) -> minidom::Element {
    crate::support::client::wait_for(client, |stanza| {
        let element: minidom::Element = match stanza {
            tokio_xmpp::Stanza::Message(m) => m.clone().into(),
            _ => return None,
        };
        (body(&element) == wanted || element.attr("id") == Some(wanted)).then_some(element)
    })
    .await
}

/// The next message a component gets (skipping anything else), or `None` in 5 s.
async fn component_gets(
    stream: &mut crate::support::component::Stream,
) -> Option<minidom::Element> {
    loop {
        let element = crate::support::component::next(stream).await?;
        if element.name() == "message" {
            return Some(element);
        }
    }
}

/// Sends `text` from the client to `to` until `component` gets it (a stanza sent before
/// the node knows where the component is bounces, and the next one goes); what it got.
async fn send_until_received(
    client: &mut tokio_xmpp::Client,
    component: &mut crate::support::component::Stream,
    to: &str,
    text: &str,
) -> minidom::Element {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        client
            .send_stanza(chat(None, to, text).try_into().unwrap())
            .await
            .unwrap();
        tokio::select! {
            bounced = client_gets(client, text) => {
                assert!(std::time::Instant::now() < deadline, "stanzas for {to} keep bouncing: {bounced:?}");
            }
            got = component_gets(component) => break got.unwrap_or_else(|| panic!("{to} gets {text}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmpp_stanzas_reach_components_and_clients_on_other_nodes() {
    use futures::SinkExt;
    // Accounts the store does not know are checked by the bridge (a server request).
    let farm = farm_with(
        &["n1", "n2"],
        XMPP_COMPONENTS,
        "auth_via_component = \"bridge.localhost\"\n",
    )
    .await;
    let (node1, node2) = (&farm.nodes[0], &farm.nodes[1]);
    let ca = node1.ca();
    let (password, secret) = node1.demo();
    let connect = |node: &Node, name: &'static str, secret: String| {
        let (addr, ca) = (node.addr("component"), ca.clone());
        async move { crate::support::component::connect(addr, &ca, name, &secret).await }
    };

    // Alice on node 1, the bridge on node 2: each reaches the other.
    let (mut alice, alice_jid) =
        crate::support::client::login(node1.addr("c2s"), &ca, "alice@localhost", &password).await;
    let mut bridge = connect(node2, "bridge.localhost", secret.clone())
        .await
        .expect("the bridge connects to node 2");
    let to_alice = chat(
        Some("room@bridge.localhost"),
        &alice_jid.to_string(),
        "from the bridge",
    );
    // Node 1 learns of the bridge through the register within moments; until then a
    // stanza for it bounces, so the client retries.
    let got = send_until_received(&mut alice, &mut bridge, "room@bridge.localhost", "hello").await;
    assert!(body(&got).starts_with("hello"), "{got:?}");
    assert_eq!(got.attr("from"), Some(alice_jid.to_string().as_str()));
    bridge.send(&to_alice).await.unwrap();
    let got = client_gets(&mut alice, "from the bridge").await;
    assert_eq!(got.attr("from"), Some("room@bridge.localhost"));

    // A server request from node 1 to the bridge on node 2: the bridge's answer reaches
    // node 2's router, which sends it back to node 1, where the login waits for it.
    let (mut guest, _) = crate::support::client::raw_tls(node1.addr("c2s"), &ca, "localhost").await;
    guest
        .send(&crate::support::client::plain_auth("guest7", "one-time"))
        .await
        .unwrap();
    let asked = loop {
        let element = crate::support::component::next(&mut bridge)
            .await
            .expect("the bridge is asked about guest7");
        if element.name() == "iq" {
            break element;
        }
    };
    let answer = crate::support::component::stanza(
        "iq",
        &[
            ("type", "result"),
            ("id", asked.attr("id").unwrap()),
            ("from", "bridge.localhost"),
            ("to", asked.attr("from").unwrap()),
        ],
        vec![],
    );
    bridge.send(&answer).await.unwrap();
    let verdict = crate::support::client::raw_next(&mut guest).await.unwrap();
    assert_eq!(verdict.name(), "success", "{verdict:?}");

    // A message to a bare JID reaches the available resource on the other node.
    alice
        .send_stanza(tokio_xmpp::parsers::presence::Presence::available().into())
        .await
        .unwrap();
    let bare = chat(
        Some("room@bridge.localhost"),
        "alice@localhost",
        "to the bare JID",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        bridge.send(&bare).await.unwrap();
        match component_gets(&mut bridge).await {
            // Node 2's copy does not have alice available yet: service-unavailable.
            Some(answer) if answer.attr("type") == Some("error") => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the bare-JID message keeps bouncing"
                );
            }
            _ => break,
        }
    }
    client_gets(&mut alice, "to the bare JID").await;

    // `balance`: one connection on each node; alice's messages go to both.
    let mut pool1 = connect(node1, "pool.localhost", "pool-secret".into())
        .await
        .unwrap();
    let mut pool2 = connect(node2, "pool.localhost", "pool-secret".into())
        .await
        .unwrap();
    let third = connect(node1, "pool.localhost", "pool-secret".into()).await;
    assert!(third.is_err(), "max_connections = 2 holds across nodes");
    let (mut on1, mut on2) = (0, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while on1 == 0 || on2 == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "balance reaches both nodes' connections ({on1} / {on2})"
        );
        alice
            .send_stanza(chat(None, "pool.localhost", "spread").try_into().unwrap())
            .await
            .unwrap();
        tokio::select! {
            Some(_) = component_gets(&mut pool1) => on1 += 1,
            Some(_) = component_gets(&mut pool2) => on2 += 1,
        }
    }

    // `reject` holds across nodes.
    let strict = connect(node2, "strict.localhost", "strict-secret".into())
        .await
        .expect("strict connects to node 2");
    let refused = connect(node1, "strict.localhost", "strict-secret".into()).await;
    let refused = refused
        .err()
        .expect("a second strict connection is refused");
    assert_eq!(
        crate::support::component::stream_error(&refused).as_deref(),
        Some("conflict"),
        "{refused:?}"
    );

    // `replace` holds across nodes: the bridge connecting to node 1 ends node 2's.
    let mut bridge1 = connect(node1, "bridge.localhost", secret.clone())
        .await
        .expect("the bridge connects again, to node 1");
    let ended = crate::support::component::next(&mut bridge).await;
    assert_eq!(
        ended
            .as_ref()
            .and_then(crate::support::component::stream_error)
            .as_deref(),
        Some("conflict"),
        "node 2's bridge connection is replaced: {ended:?}"
    );
    bridge1.send(&to_alice).await.unwrap();
    client_gets(&mut alice, "from the bridge").await;

    // Node 2 dies: stanzas for its component bounce with service-unavailable (NATS has
    // nobody on its subject), until the component reconnects to node 1, which takes it
    // once node 2's lease has run out.
    node2.kill_and_wait().await;
    drop(strict);
    let mut bounced = false;
    for attempt in 0..20 {
        let probe = format!("strict {attempt}");
        alice
            .send_stanza(chat(None, "strict.localhost", &probe).try_into().unwrap())
            .await
            .unwrap();
        let answer = client_gets(&mut alice, &probe).await;
        let text = String::from(&answer);
        assert_eq!(answer.attr("type"), Some("error"), "{text}");
        // One sent the moment the node died may wait for its answer in vain.
        if text.contains("service-unavailable") {
            bounced = true;
            break;
        }
        assert!(text.contains("remote-server-timeout"), "{text}");
    }
    assert!(bounced, "a stanza for the dead node's component bounces");
    assert!(
        node1
            .wait_log("leases ran out", Duration::from_secs(40))
            .await,
        "node 1 sees node 2's lease run out"
    );
    let mut strict = connect(node1, "strict.localhost", "strict-secret".into())
        .await
        .expect("strict reconnects to node 1 once node 2's lease ran out");
    // Node 1 learns within moments that node 2's entries are gone; a stanza sent before
    // that bounces, so alice tries again.
    let got = send_until_received(
        &mut alice,
        &mut strict,
        "strict.localhost",
        "after the failover",
    )
    .await;
    assert_eq!(body(&got), "after the failover");
}

/// `method` on alice's `calls/{rest}` through `https`.
async fn alice_calls(https: &Https, auth: &str, method: Method, rest: &str) -> Reply {
    https
        .request(
            method,
            &format!("/com.broadsoft.xsi-actions/v2.0/user/alice@localhost/calls{rest}"),
            &[("authorization", auth)],
            None,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_a_bridge_on_another_node_are_placed_seen_and_ended_from_any_node() {
    let farm = farm(&["n1", "n2"]).await;
    let (node1, node2) = (&farm.nodes[0], &farm.nodes[1]);
    let ca = node1.ca();
    let alice = demo_auth(node1, 0);
    let https2 = Https::new(node2.addr("https"), &ca);
    // The call bridge is connected to node 1 only; alice works through node 2.
    let stream = demo_bridge(node1, node1)
        .await
        .expect("the bridge connects to node 1");
    let (dialed, mut dials) = tokio::sync::mpsc::unbounded_channel();
    let (_send, to_send) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(crate::calls::run_bridge(
        stream,
        crate::calls::OnDial::Accept,
        dialed,
        to_send,
    ));
    let mut channel = EventChannel::open(
        &https2,
        &alice,
        "<channelSetId>call-set</channelSetId><priority>1</priority><weight>50</weight><expires>600</expires>",
    )
    .await
    .unwrap_or_else(|reply| panic!("channel refused: {reply:?}"));
    let (path, body) = subscription_to("alice@localhost", "call-set", "Basic Call");
    let subscribed = post_xml(&https2, &alice, &path, &body).await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");

    // Placed through node 2: node 1's bridge dials it, and the call is node 1's.
    let placed = alice_calls(&https2, &alice, Method::POST, "/new?address=bob@localhost").await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let location = placed.header("location").expect("a Location").to_owned();
    let call_id = location.rsplit('/').next().unwrap().to_owned();
    assert!(call_id.starts_with("callhalf-n1-"), "{location}");
    assert_eq!(
        dials.recv().await.unwrap(),
        (
            "sip:bob@localhost".to_owned(),
            "sip:alice@localhost".to_owned()
        )
    );
    // Its event reaches alice's channel on node 2 (after the subscription's initial state).
    let event = loop {
        let event = channel.next().await.expect("the call's event");
        if !event.contains("ChannelHeartBeat") && !event.contains("xsi:CallSubscriptionEvent") {
            break event;
        }
    };
    assert!(event.contains("CallOriginatedEvent"), "{event}");
    assert!(event.contains(&call_id), "{event}");

    // Seen through node 2: in the list, off hook, the call itself.
    let listed = alice_calls(&https2, &alice, Method::GET, "").await;
    assert!(
        listed.body.contains(&format!("<callId>{call_id}</callId>")),
        "{listed:?}"
    );
    let hook = alice_calls(&https2, &alice, Method::GET, "/HookStatus").await;
    assert!(hook.body.contains("Off-Hook"), "{hook:?}");
    let call = alice_calls(&https2, &alice, Method::GET, &format!("/{call_id}")).await;
    assert_eq!(call.status, 200, "{call:?}");
    assert!(call.body.contains("<state>Alerting</state>"), "{call:?}");
    // An action the call's state does not allow is refused by node 1, as node 1 would.
    let talk = alice_calls(&https2, &alice, Method::PUT, &format!("/{call_id}/Talk")).await;
    assert_eq!(talk.status, 400, "{talk:?}");
    assert!(talk.body.contains("120402"), "{talk:?}");
    // A call subscription made now through node 2 starts with node 1's call, off hook.
    let mut late = EventChannel::open(
        &https2,
        &alice,
        "<channelSetId>late-set</channelSetId><priority>1</priority><weight>50</weight><expires>600</expires>",
    )
    .await
    .unwrap_or_else(|reply| panic!("channel refused: {reply:?}"));
    let (path, body) = subscription_to("alice@localhost", "late-set", "Basic Call");
    let subscribed = post_xml(&https2, &alice, &path, &body).await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");
    let initial = loop {
        let event = late.next().await.expect("the subscription's initial state");
        if event.contains("xsi:CallSubscriptionEvent") {
            break event;
        }
    };
    assert!(initial.contains(&call_id), "{initial}");
    assert!(initial.contains("Off-Hook"), "{initial}");

    // Ended through node 2: the bridge hangs up, and the call is gone everywhere.
    let ended = alice_calls(&https2, &alice, Method::DELETE, &format!("/{call_id}")).await;
    assert_eq!(ended.status, 200, "{ended:?}");
    assert_eq!(dials.recv().await.unwrap().0, "hangup");
    let listed = alice_calls(&https2, &alice, Method::GET, "").await;
    assert!(!listed.body.contains(&call_id), "{listed:?}");
    let gone = alice_calls(&https2, &alice, Method::GET, &format!("/{call_id}")).await;
    assert_eq!(gone.status, 404, "{gone:?}");
    // A call id that names no live node is unknown, not an error.
    let nowhere = alice_calls(&https2, &alice, Method::GET, "/callhalf-n9-1").await;
    assert_eq!(nowhere.status, 404, "{nowhere:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_presence_at_login_comes_from_contacts_on_every_node() {
    use tokio_xmpp::parsers::jid::BareJid;
    use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
    use tokio_xmpp::Stanza;
    let farm = farm(&["n1", "n2"]).await;
    let (node1, node2) = (&farm.nodes[0], &farm.nodes[1]);
    let ca = node1.ca();
    let (alice_id, alice_password) = demo_user(node1, 0);
    let (bob_id, bob_password) = demo_user(node1, 1);
    let login = |node: &Node, jid: String, password: String| {
        let (addr, ca) = (node.addr("c2s"), ca.clone());
        async move { crate::support::client::login(addr, &ca, &jid, &password).await }
    };
    let presence_from = |from: &tokio_xmpp::parsers::jid::Jid, kind: PresenceType| {
        let from = from.clone();
        move |stanza: &Stanza| match stanza {
            Stanza::Presence(p) if p.type_ == kind && p.from.as_ref() == Some(&from) => Some(()),
            _ => None,
        }
    };
    let subscription_from = |from: &BareJid, kind: PresenceType| {
        let from = from.clone();
        move |stanza: &Stanza| match stanza {
            Stanza::Presence(p)
                if p.type_ == kind
                    && p.from.as_ref().map(|f| f.to_bare()) == Some(from.clone()) =>
            {
                Some(())
            }
            _ => None,
        }
    };
    // Alice on node 1, bob on node 2, both available.
    let (mut alice, alice_jid) = login(node1, alice_id.clone(), alice_password.clone()).await;
    let (mut bob, bob_jid) = login(node2, bob_id.clone(), bob_password.clone()).await;
    for client in [&mut alice, &mut bob] {
        client
            .send_stanza(Presence::available().into())
            .await
            .unwrap();
    }
    let (alice_bare, bob_bare) = (alice_jid.to_bare(), bob_jid.to_bare());
    // Each node's copy of the register has the other's available session (milliseconds
    // behind, longer on a busy machine): a message to the bare JID reaches it.
    chat_until_received(&mut alice, Receiver::Client(&mut bob), bob_bare.as_str()).await;
    chat_until_received(&mut bob, Receiver::Client(&mut alice), alice_bare.as_str()).await;

    // They subscribe to each other across the nodes.
    alice
        .send_stanza(Presence::subscribe().with_to(bob_bare.clone()).into())
        .await
        .unwrap();
    crate::support::client::wait_for(
        &mut bob,
        subscription_from(&alice_bare, PresenceType::Subscribe),
    )
    .await;
    bob.send_stanza(Presence::subscribed().with_to(alice_bare.clone()).into())
        .await
        .unwrap();
    bob.send_stanza(Presence::subscribe().with_to(alice_bare.clone()).into())
        .await
        .unwrap();
    crate::support::client::wait_for(&mut alice, presence_from(&bob_jid, PresenceType::None)).await;
    alice
        .send_stanza(Presence::subscribed().with_to(bob_bare.clone()).into())
        .await
        .unwrap();
    crate::support::client::wait_for(&mut bob, presence_from(&alice_jid, PresenceType::None)).await;

    // Bob's second resource, on node 2, gets alice's current presence from node 1 at once;
    // alice's second resource, on node 2, gets her first one's from node 1. (These two
    // are raw streams: under load tokio-xmpp once failed to hand on a presence the
    // session's log shows written.)
    let second_gets_presence_of = |id: String, password: String, from: String| {
        let (addr, ca) = (node2.addr("c2s"), ca.clone());
        async move {
            use futures::SinkExt;
            let user = id.split('@').next().unwrap().to_owned();
            let mut stream = crate::support::client::raw_session(
                addr,
                &ca,
                "localhost",
                &user,
                &password,
                "second",
            )
            .await;
            let available =
                minidom::Element::builder("presence", crate::support::client::CLIENT_NS).build();
            stream.send(&available).await.unwrap();
            loop {
                let element = crate::support::client::raw_next(&mut stream)
                    .await
                    .unwrap_or_else(|| panic!("{id}/second gets the presence of {from}"));
                if element.name() == "presence"
                    && element.attr("type").is_none()
                    && element.attr("from") == Some(from.as_str())
                {
                    break stream;
                }
            }
        }
    };
    let bob2 = second_gets_presence_of(bob_id, bob_password, alice_jid.to_string()).await;
    let alice2 = second_gets_presence_of(alice_id, alice_password, alice_jid.to_string()).await;
    for client in [alice, bob] {
        client.send_end().await.unwrap();
    }
    drop((bob2, alice2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_conflict_reject_counts_the_bindings_of_every_node() {
    use crate::support::client::{raw_login, raw_next, BIND, CLIENT_NS};
    use futures::SinkExt;
    let farm = farm_with(&["n1", "n2"], "", "resource_conflict = \"reject\"\n").await;
    let (node1, node2) = (&farm.nodes[0], &farm.nodes[1]);
    let ca = node1.ca();
    let (alice, password) = demo_user(node1, 0);
    let user = alice.split('@').next().unwrap().to_owned();
    // Alice binds `resource` on `node`: the stream and the bind's answer.
    let bind = |node: &Node, resource: &'static str| {
        let (addr, ca, user, password) =
            (node.addr("c2s"), ca.clone(), user.clone(), password.clone());
        async move {
            let (mut stream, _) = raw_login(addr, &ca, "localhost", &user, &password).await;
            let request = minidom::Element::builder("iq", CLIENT_NS)
                .attr(rxml::xml_ncname!("type").to_owned(), "set")
                .attr(rxml::xml_ncname!("id").to_owned(), "bind1")
                .append(
                    minidom::Element::builder("bind", BIND)
                        .append(
                            minidom::Element::builder("resource", BIND)
                                .append(resource)
                                .build(),
                        )
                        .build(),
                )
                .build();
            stream.send(&request).await.unwrap();
            let answer = raw_next(&mut stream).await.unwrap();
            (stream, answer)
        }
    };
    let (_phone, bound) = bind(node1, "phone").await;
    assert_eq!(bound.attr("type"), Some("result"), "{bound:?}");
    // Node 2 refuses the same resource once it has node 1's binding (milliseconds).
    let refused = crate::support::wait_until_async(Duration::from_secs(5), || async {
        let (_stream, answer) = bind(node2, "phone").await;
        answer.attr("type") == Some("error")
            && crate::support::component::stanza_error(&answer).as_deref() == Some("conflict")
    })
    .await;
    assert!(refused, "the same resource on another node is refused");
    let (_desk, other) = bind(node2, "desk").await;
    assert_eq!(other.attr("type"), Some("result"), "{other:?}");
}

/// Who should get a chat message: a tokio-xmpp client or a raw stream.
enum Receiver<'a> {
    Client(&'a mut tokio_xmpp::Client),
    Raw(&'a mut crate::support::client::Raw),
}

impl Receiver<'_> {
    /// Whether the message with body `text` arrives within 250 ms.
    async fn gets(&mut self, text: &str) -> bool {
        let within = Duration::from_millis(250);
        match self {
            Receiver::Client(client) => tokio::time::timeout(within, client_gets(client, text))
                .await
                .is_ok(),
            Receiver::Raw(stream) => {
                let got = tokio::time::timeout(within, async {
                    loop {
                        match crate::support::client::raw_next(stream).await {
                            Some(element)
                                if element.name() == "message" && body(&element) == text =>
                            {
                                break true
                            }
                            Some(_) => continue,
                            None => break false,
                        }
                    }
                })
                .await;
                got == Ok(true)
            }
        }
    }
}

/// Sends chat messages from `sender` to `to` until `receiver` gets one (a node may not
/// know of a session yet; a message for an account it thinks offline is stored for
/// later); fails after 5 s.
async fn chat_until_received(
    sender: &mut tokio_xmpp::Client,
    mut receiver: Receiver<'_>,
    to: &str,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    for attempt in 0.. {
        assert!(
            std::time::Instant::now() < deadline,
            "{to} never got a message"
        );
        let text = format!("sync-{attempt}");
        sender
            .send_stanza(chat(None, to, &text).try_into().unwrap())
            .await
            .unwrap();
        if receiver.gets(&text).await {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_conflict_replace_takes_over_a_binding_on_another_node() {
    use crate::support::client::{raw_next, raw_session};
    use crate::support::component::stream_error;
    let farm = farm(&["n1", "n2"]).await;
    let (node1, node2) = (&farm.nodes[0], &farm.nodes[1]);
    let ca = node1.ca();
    let (alice, password) = demo_user(node1, 0);
    let user = alice.split('@').next().unwrap().to_owned();
    let (bob, bob_password) = demo_user(node1, 1);
    let phone = format!("{alice}/phone");

    // Alice's phone binds on node 1, and node 2 routes to it.
    let mut first = raw_session(
        node1.addr("c2s"),
        &ca,
        "localhost",
        &user,
        &password,
        "phone",
    )
    .await;
    let (mut bob2, _) =
        crate::support::client::login(node2.addr("c2s"), &ca, &bob, &bob_password).await;
    chat_until_received(&mut bob2, Receiver::Raw(&mut first), &phone).await;

    // The same resource binds on node 2: node 1's session ends with `conflict`.
    let mut second = raw_session(
        node2.addr("c2s"),
        &ca,
        "localhost",
        &user,
        &password,
        "phone",
    )
    .await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match raw_next(&mut first).await {
                Some(element) if element.name() == "error" => break stream_error(&element),
                Some(_) => continue,
                None => break None,
            }
        }
    })
    .await
    .expect("node 1's session ends");
    assert_eq!(ended.as_deref(), Some("conflict"));

    // A client on node 1 now reaches the new session on node 2.
    let (mut bob1, _) = crate::support::client::login(
        node1.addr("c2s"),
        &ca,
        &format!("{bob}/desk"),
        &bob_password,
    )
    .await;
    chat_until_received(&mut bob1, Receiver::Raw(&mut second), &phone).await;
    for client in [bob1, bob2] {
        client.send_end().await.unwrap();
    }
}
