//! The store contract against a real PostgreSQL (a throwaway server per test), and what
//! only PostgreSQL has: nodes migrating together, a newer schema refused.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::store::contract::{contract_tests, Backend};
use crate::store::DirectoryStore;

/// A PostgreSQL server of its own: `initdb` into a temporary directory and `postgres` on
/// a free port of 127.0.0.1, stopped when dropped. As root, both run as the `postgres`
/// user (PostgreSQL refuses root), through `setpriv`, which execs rather than forks, so
/// the child is the server itself.
pub(crate) struct Throwaway {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// The newest installed server's programs (Debian keeps them off the PATH).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| Some(e.ok()?.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .pop()
        .expect("PostgreSQL must be installed (tests/run installs the Debian package)")
}

fn command(program: &Path, as_root: bool) -> Command {
    if as_root {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl Throwaway {
    pub(crate) async fn start() -> Throwaway {
        Self::start_with(None).await
    }

    /// A server that also speaks TLS with the development PKI's server certificate (its
    /// names include 127.0.0.1).
    async fn start_with(tls: Option<&crate::embedded::DevPki>) -> Throwaway {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let as_root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        if as_root {
            let owned = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(owned.success());
        }
        let data = dir.path().join("data");
        let init = command(&bin.join("initdb"), as_root)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "bridgehead",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut settings = vec!["fsync=off".to_owned()];
        if let Some(pki) = tls {
            // PostgreSQL reads its key only when the server's user alone may.
            for (from, to) in [
                ("server-chain.pem", "server.crt"),
                ("server.key", "server.key"),
            ] {
                let target = data.join(to);
                std::fs::copy(pki.dir.join(from), &target).unwrap();
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
                if as_root {
                    let owned = Command::new("chown")
                        .args(["postgres:postgres"])
                        .arg(&target)
                        .status()
                        .unwrap();
                    assert!(owned.success());
                }
            }
            settings.push("ssl=on".to_owned());
        }
        let mut postgres = command(&bin.join("postgres"), as_root);
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path());
        for setting in settings {
            postgres.args(["-c", &setting]);
        }
        let child = postgres
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Throwaway {
            child,
            port,
            _dir: dir,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio_postgres::connect(&server.url(), NoTls).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "PostgreSQL did not accept connections within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://bridgehead@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        // SIGTERM: a smart shutdown that also ends the server's own processes.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

#[async_trait]
impl Backend for Throwaway {
    type Store = PostgresStore;

    async fn open(&self) -> PostgresStore {
        PostgresStore::connect(&self.url(), 4, None).await.unwrap()
    }
}

contract_tests!(Throwaway::start);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let server = Throwaway::start().await;
    let url = server.url();
    let (a, b, c) = tokio::join!(
        PostgresStore::connect(&url, 2, None),
        PostgresStore::connect(&url, 2, None),
        PostgresStore::connect(&url, 2, None)
    );
    let (a, _b, _c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert!(a.users().await.unwrap().is_empty());
    a.client()
        .await
        .unwrap()
        .execute("UPDATE bridgehead_schema SET version = 99", &[])
        .await
        .unwrap();
    assert!(matches!(
        PostgresStore::connect(&url, 2, None).await,
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_an_open_error_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://bridgehead:hunter2@127.0.0.1:{port}/postgres");
    let error = PostgresStore::connect(&url, 2, None).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, StoreError::Open { .. }), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

fn component(node: &str, connection: u64, name: &str) -> crate::store::routes::Route {
    crate::store::routes::Route {
        node: node.to_owned(),
        connection,
        kind: crate::store::routes::RouteKind::Component,
        address: name.to_owned(),
        resource: String::new(),
        priority: 0,
        available: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_register_holds_limits_across_nodes_and_forgets_a_node_whose_lease_ran_out() {
    use crate::store::routes::{ClaimLimit, RouteStore};
    let server = Throwaway::start().await;
    let (a, b) = (server.open().await, server.open().await);
    let lease = Duration::from_secs(30);
    a.renew_lease("a", lease).await.unwrap();
    b.renew_lease("b", lease).await.unwrap();
    let one = |replace, local_live| ClaimLimit {
        max: 1,
        replace,
        local_live,
    };

    // reject: node b's claim counts node a's connection.
    a.claim(&component("a", 1, "strict"), one(false, 0))
        .await
        .unwrap();
    assert!(matches!(
        b.claim(&component("b", 7, "strict"), one(false, 0)).await,
        Err(StoreError::Full { limit: 1 })
    ));
    // replace: node b's claim takes node a's entry away and says so.
    a.claim(&component("a", 2, "bridge"), one(true, 0))
        .await
        .unwrap();
    let evicted = b
        .claim(&component("b", 8, "bridge"), one(true, 0))
        .await
        .unwrap();
    assert_eq!(evicted, vec![component("a", 2, "bridge")]);
    assert_eq!(
        b.entries(Some("bridge")).await.unwrap(),
        vec![component("b", 8, "bridge")]
    );
    assert_eq!(a.component_nodes().await.unwrap(), ["a", "b"]);

    // A client's presence is recorded; removing an entry removes it.
    let mut client = component("a", 3, "alice@localhost");
    client.kind = crate::store::routes::RouteKind::Client;
    client.resource = "phone".to_owned();
    a.add(&client).await.unwrap();
    a.set_presence("a", 3, 5, true).await.unwrap();
    let seen = b.entries(Some("alice@localhost")).await.unwrap();
    assert_eq!((seen[0].priority, seen[0].available), (5, true));
    a.remove("a", 3).await.unwrap();
    assert!(b.entries(Some("alice@localhost")).await.unwrap().is_empty());

    // Node a stops renewing: once its lease ran out, its entries are skipped and then
    // deleted by node b's renewal, so `strict` is free again.
    a.renew_lease("a", Duration::from_millis(1)).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !b.entries(Some("strict")).await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "a dead node's entries are skipped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        b.renew_lease("b", lease).await.unwrap(),
        vec!["b".to_owned()]
    );
    b.claim(&component("b", 9, "strict"), one(false, 0))
        .await
        .unwrap();

    // Every change was notified with its address.
    let changed = tokio::time::timeout(Duration::from_secs(5), a.changes().next())
        .await
        .expect("route changes are notified");
    assert!(
        changed.everything || changed.addresses.contains("strict"),
        "{changed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_backlog_keeps_what_a_set_has_not_settled_for_any_node_to_read() {
    use crate::store::backlog::{BacklogStore, SetEvent, SetEventKey};
    let server = Throwaway::start().await;
    let (a, b) = (server.open().await, server.open().await);
    let event = |subscription: &str, id: &str, set: &str| SetEvent {
        key: SetEventKey {
            subscription_id: subscription.to_owned(),
            event_id: id.to_owned(),
        },
        set_id: set.to_owned(),
        event: format!("{{\"n\":\"{id}\"}}"),
    };
    // Node a writes events for two sets; writing one again keeps the first.
    let written: Vec<SetEvent> = (1..=5)
        .map(|n| event("sub-1", &format!("e{n}"), "set-1"))
        .chain([event("sub-2", "e1", "set-2")])
        .collect();
    a.append(&written).await.unwrap();
    a.append(&written[..1]).await.unwrap();
    // Node b settles two and reads the rest of set-1, in the order they were written.
    b.settle(&[written[1].key.clone(), written[3].key.clone()])
        .await
        .unwrap();
    let ids = |waiting: Vec<crate::store::backlog::Waiting>| {
        waiting
            .into_iter()
            .map(|w| w.event.key.event_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(b.waiting("set-1", 10).await.unwrap()),
        ["e1", "e3", "e5"]
    );
    // A limit keeps the newest.
    assert_eq!(ids(b.waiting("set-1", 2).await.unwrap()), ["e3", "e5"]);
    let other = b.waiting("set-2", 10).await.unwrap();
    assert_eq!(other[0].event, written[5]);
    assert!(other[0].age < Duration::from_secs(60));
    // Trimming by age: nothing is that old; everything is older than nothing.
    assert_eq!(b.trim(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(b.trim(Duration::ZERO).await.unwrap(), 4);
    assert!(a.waiting("set-1", 10).await.unwrap().is_empty());
    // A set's next sequence number, kept by one node, read by another; a later one (or
    // one that wrapped) replaces it.
    assert_eq!(b.sequence("set-1").await.unwrap(), None);
    a.save_sequences(&[("set-1".into(), 41), ("set-2".into(), 7)])
        .await
        .unwrap();
    a.save_sequences(&[("set-1".into(), 42)]).await.unwrap();
    assert_eq!(b.sequence("set-1").await.unwrap(), Some(42));
    assert_eq!(b.sequence("set-2").await.unwrap(), Some(7));
    a.save_sequences(&[("set-1".into(), 1)]).await.unwrap();
    assert_eq!(b.sequence("set-1").await.unwrap(), Some(1));
    // Trimming events leaves sets' recent numbers alone.
    b.trim(Duration::ZERO).await.unwrap();
    assert_eq!(b.sequence("set-2").await.unwrap(), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_pair_held_by_one_node_waits_for_it_on_another_either_way_round() {
    use crate::store::RosterStore;
    let server = Throwaway::start().await;
    let (a, b) = (server.open().await, server.open().await);
    let held = a
        .lock_roster_pair("Alice@x", "bob@x")
        .await
        .unwrap()
        .unwrap();
    // Another pair is free.
    b.lock_roster_pair("alice@x", "carol@x")
        .await
        .unwrap()
        .unwrap()
        .release()
        .await;
    // The same pair, named the other way round, waits until node a lets it go.
    let mut waiting = tokio::spawn(async move {
        b.lock_roster_pair("bob@x", "alice@x")
            .await
            .unwrap()
            .unwrap()
    });
    let early = tokio::time::timeout(Duration::from_millis(300), &mut waiting).await;
    assert!(early.is_err(), "the pair was taken while node a held it");
    held.release().await;
    let second = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the pair is free once released")
        .unwrap();
    // A lock dropped without release goes with its connection.
    drop(second);
    let again = tokio::time::timeout(
        Duration::from_secs(5),
        a.lock_roster_pair("alice@x", "bob@x"),
    )
    .await
    .expect("a dropped lock lets go");
    again.unwrap().unwrap().release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sslmode_require_the_store_speaks_tls_and_checks_the_servers_certificate() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = crate::embedded::DevPki::new(pki_dir.path().to_owned());
    pki.ensure("localhost", "bridgehead.localhost").unwrap();
    let server = Throwaway::start_with(Some(&pki)).await;
    let url = format!("{}?sslmode=require", server.url());
    // Trusting the server's CA: TLS, and the store works.
    let tls = super::tls_for(&url, Some(&pki.ca_cert())).unwrap();
    assert!(tls.is_some());
    let store = PostgresStore::connect(&url, 2, tls).await.unwrap();
    let client = store.client().await.unwrap();
    let encrypted: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted, "the connection is TLS");
    // Trusting another CA: refused, and the error says why.
    let other_dir = tempfile::tempdir().unwrap();
    let other = crate::embedded::DevPki::new(other_dir.path().to_owned());
    other.ensure("localhost", "bridgehead.localhost").unwrap();
    let untrusted = super::tls_for(&url, Some(&other.ca_cert())).unwrap();
    let refused = PostgresStore::connect(&url, 2, untrusted).await;
    assert!(
        matches!(&refused, Err(StoreError::Open { reason, .. }) if reason.contains("certificate")),
        "{:?}",
        refused.err()
    );
    // Without sslmode=require, no TLS is asked for.
    assert!(super::tls_for(&server.url(), None).unwrap().is_none());
}
