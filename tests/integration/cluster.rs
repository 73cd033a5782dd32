//! Several `bridgehead serve` processes sharing one PostgreSQL: what one node writes, every
//! node reads, and credential caches learn of another node's changes promptly.

use std::time::Duration;

use crate::support::https::{basic, Https};
use crate::support::node::{ephemeral_config_with, Node};
use crate::support::run_in;
use crate::support::services::Postgres;
use crate::support::wait_until_async;

const DND: &str = "/com.broadsoft.xsi-actions/v2.0/user/alice@localhost/services/DoNotDisturb";

/// Starts node `name` in a directory of its own, on the shared store at `url`.
async fn node(name: &str, url: &str) -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().unwrap();
    let config = ephemeral_config_with(
        &format!("fqdn = \"bridgehead.test\"\nnode_id = \"{name}\"\n"),
        // The new-password poll below fails a few times before node 2 learns of it.
        &format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n\
             [xsi]\nfailed_logins_per_user_per_minute = 1000\n"
        ),
    );
    std::fs::write(dir.path().join("bridgehead.toml"), config).unwrap();
    let node = Node::start(dir.path()).await;
    (dir, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgresql_share_users_settings_and_passwords() {
    let postgres = Postgres::start().await;
    // Node 1 creates the demo users in the shared store; node 2 finds them there.
    let (dir1, node1) = node("n1", &postgres.url()).await;
    let (_dir2, node2) = node("n2", &postgres.url()).await;
    assert!(node1.log_text().contains("postgres"), "{}", node1.log_text());
    let (password, _) = node1.demo();
    let auth = basic("alice@localhost", &password);
    let https1 = Https::new(node1.addr("https"), &node1.ca());
    let https2 = Https::new(node2.addr("https"), &node2.ca());

    let before = https2.get(DND, &auth).await;
    assert_eq!(before.status, 200, "alice, made by node 1, logs in on node 2: {before:?}");
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
    assert!(after.body.contains("<active>true</active>"), "node 2 reads node 1's write: {after:?}");

    // A new password, set with the CLI on node 1's configuration, reaches node 2's cache.
    std::fs::write(dir1.path().join("pw"), "a new password\n").unwrap();
    let run = run_in(
        dir1.path(),
        &["user", "passwd", "alice@localhost", "--password-file", "pw", "-c", "bridgehead.toml"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let renewed = basic("alice@localhost", "a new password");
    let learned = wait_until_async(Duration::from_secs(5), || async {
        https2.get(DND, &renewed).await.status == 200 && https2.get(DND, &auth).await.status == 401
    })
    .await;
    assert!(learned, "node 2 takes the new password and refuses the old one within 5 s");
}
