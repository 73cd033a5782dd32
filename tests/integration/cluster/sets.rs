//! One channel set with channels on two nodes (a client behind a load balancer without
//! affinity): one node delivers its events, the other stands by and takes over when the
//! first lets go or dies.

use super::*;

const SET: &str = "<channelSetId>split-set</channelSetId><priority>1</priority><weight>50</weight><expires>600</expires>";

/// Waits until `node`'s `bridgehead_xsi_standby_sets` is `count`.
async fn standing_by(node: &Node, count: f64) -> bool {
    wait_until_async(Duration::from_secs(10), || async {
        metric(node, "bridgehead_xsi_standby_sets").await == count
    })
    .await
}

/// A heartbeat on `channel` through `https`: the next document on it is the heartbeat,
/// so nothing else came meanwhile.
async fn only_heartbeat_on(channel: &mut EventChannel, https: &Https, auth: &str) {
    let beat = heartbeat(https, auth, &channel.id).await;
    assert_eq!(beat.status, 200, "{beat:?}");
    let next = channel.next().await.expect("the heartbeat");
    assert!(
        next.contains("ChannelHeartBeat"),
        "no event came here: {next}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_with_channels_on_two_nodes_gets_each_event_once_and_moves_when_a_node_lets_go() {
    let farm = farm(&["n1", "n2", "n3"]).await;
    let ca = farm.nodes[0].ca();
    let alice = demo_auth(&farm.nodes[0], 0);
    let direct = |node: &Node| Https::new(node.addr("https"), &ca);
    let (https1, https2, https3) = (
        direct(&farm.nodes[0]),
        direct(&farm.nodes[1]),
        direct(&farm.nodes[2]),
    );

    // Channel A on node 1, subscribed through node 2: node 1 delivers.
    let mut a = EventChannel::open(&https1, &alice, SET)
        .await
        .unwrap_or_else(|reply| panic!("channel refused: {reply:?}"));
    let (path, body) = subscription("alice@localhost", "split-set");
    let subscribed = post_xml(&https2, &alice, &path, &body).await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");
    assert_eq!(next_event(&mut a, &https2, &alice).await, (1, false));

    // Channel B of the same set on node 3: node 3 delivers now, node 1 stands by.
    let mut b = EventChannel::open(&https3, &alice, SET)
        .await
        .unwrap_or_else(|reply| panic!("channel refused: {reply:?}"));
    assert!(standing_by(&farm.nodes[0], 1.0).await, "node 1 stands by");
    let mut sequences = Vec::new();
    for active in [true, false, true] {
        set_dnd(&https2, &alice, "alice@localhost", active).await;
        let (sequence, got) = next_event(&mut b, &https2, &alice).await;
        assert_eq!(got, active);
        sequences.push(sequence);
    }
    // Node 1 sent none of them: each came once.
    only_heartbeat_on(&mut a, &https1, &alice).await;
    only_heartbeat_on(&mut b, &https3, &alice).await;

    // B ends: node 1 takes over within about a second; what changed meanwhile comes on A,
    // in order, numbered on.
    let deleted = https3
        .request(
            Method::DELETE,
            &format!("{EVENTS}/channel/{}", b.id),
            &[("authorization", &alice)],
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    for active in [false, true] {
        set_dnd(&https2, &alice, "alice@localhost", active).await;
        let (sequence, got) = next_event(&mut a, &https1, &alice).await;
        assert_eq!(got, active);
        sequences.push(sequence);
    }
    assert!(standing_by(&farm.nodes[0], 0.0).await);
    assert_eq!(
        metric(&farm.nodes[0], "bridgehead_xsi_set_takeovers_total").await,
        1.0
    );

    // Channel C on node 3 again, then node 3 dies: node 1 takes over once more, and what
    // changed after the death comes on A.
    let _c = EventChannel::open(&https3, &alice, SET)
        .await
        .unwrap_or_else(|reply| panic!("channel refused: {reply:?}"));
    assert!(
        standing_by(&farm.nodes[0], 1.0).await,
        "node 1 stands by again"
    );
    farm.nodes[2].kill_and_wait().await;
    set_dnd(&https2, &alice, "alice@localhost", false).await;
    let (sequence, got) = next_event(&mut a, &https1, &alice).await;
    assert!(!got);
    sequences.push(sequence);
    only_heartbeat_on(&mut a, &https1, &alice).await;

    let first = sequences[0];
    let expected: Vec<u32> = (first..first + sequences.len() as u32).collect();
    assert_eq!(
        sequences, expected,
        "every event once, in order, numbered on"
    );
}
