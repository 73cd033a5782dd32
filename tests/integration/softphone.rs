//! The example softphone (`examples/softphone`, a real process on the client library)
//! against real servers: green and red as its server goes away and comes back, DND from
//! its prompt, and a call between two softphones through the example bridge.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::support::acme::ALICE;
use crate::support::dns::{a, dns_server, srv};
use crate::support::peers::free_port;
use crate::support::server::{softphone_binary, Setup};

const BOB: &str = "bob@acme.test";
const GREEN: &str = "status actions=green events=green authentication=green";

/// A running softphone: its prompt and its output lines.
struct Softphone {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    user: &'static str,
}

impl Softphone {
    /// `user` (password `<local part>-pass`) against `localhost:port`, trusting `ca`, with
    /// quick heartbeats and failover.
    fn start(user: &'static str, ca: &std::path::Path, port: u16) -> Softphone {
        Softphone::start_with(user, ca, &["--target", &format!("localhost:{port}")])
    }

    /// [`Softphone::start`] finding its servers with `servers` (`--target …`, `--domain …`).
    fn start_with(user: &'static str, ca: &std::path::Path, servers: &[&str]) -> Softphone {
        let password = format!("{}-pass", user.split('@').next().unwrap());
        let mut child = tokio::process::Command::new(softphone_binary())
            .args(["--user", user, "--ca"])
            .arg(ca)
            .args(servers)
            .args([
                "--heartbeat",
                "0.3",
                "--attempt-timeout",
                "1",
                "--block-for",
                "1",
            ])
            .env("SOFTPHONE_PASSWORD", password)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the example softphone");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Softphone {
            child,
            stdin,
            lines,
            user,
        }
    }

    /// Types `line` at the prompt.
    async fn type_line(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads lines until one contains every one of `parts` (within 20 s); that line.
    async fn expect(&mut self, parts: &[&str]) -> String {
        self.expect_each(&[parts]).await.remove(0)
    }

    /// Reads lines until, for each of `wanted`, one line contained all its parts, in any
    /// order (within 20 s); those lines.
    async fn expect_each(&mut self, wanted: &[&[&str]]) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut found: Vec<Option<String>> = vec![None; wanted.len()];
        let mut seen = Vec::new();
        while found.iter().any(Option::is_none) {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{}: no lines with {wanted:?} within 20 s: {seen:#?}",
                        self.user
                    )
                })
                .unwrap()
                .unwrap_or_else(|| panic!("{}: the softphone ended: {seen:#?}", self.user));
            let matched = wanted.iter().zip(&found).position(|(parts, found)| {
                found.is_none() && parts.iter().all(|p| line.contains(p))
            });
            match matched {
                Some(index) => found[index] = Some(line),
                None => seen.push(line),
            }
        }
        found.into_iter().flatten().collect()
    }

    /// Waits until it is logged in, its channel open and its subscription granted; the
    /// green status line.
    async fn ready(&mut self) -> String {
        self.expect_each(&[
            &[GREEN],
            &["subscribed Do Not Disturb, Advanced Call"],
            &["CallSubscriptionEvent"],
        ])
        .await
        .remove(0)
    }

    /// `quit`: it deletes its channel and exits 0.
    async fn quit(mut self) {
        self.type_line("quit").await;
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the softphone quits")
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

/// The call id at the end of an event line.
fn call_of(line: &str) -> String {
    line.rsplit_once("call=").expect(line).1.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_softphone_turns_red_when_its_server_goes_and_green_when_it_returns() {
    let port = free_port();
    let on_port = move |config: &mut bridgehead::config::Config| {
        config.http.listen = SocketAddr::from(([127, 0, 0, 1], port)).into();
    };
    let setup = Setup::builder().acme().config(on_port).start().await;
    let mut phone = Softphone::start(ALICE, &setup.ca, port);
    phone.ready().await;
    phone.type_line("dnd on").await;
    phone
        .expect_each(&[&["dnd on"], &["DoNotDisturbEvent"]])
        .await;
    phone.type_line("dnd").await;
    phone.expect(&["dnd on"]).await;

    let dir = setup.stop().await;
    phone
        .expect_each(&[&["channel rebuilding"], &["status actions=red events=red"]])
        .await;

    let setup = Setup::builder().config(on_port).start_in(dir).await;
    phone.expect_each(&[&[GREEN], &["channel opened"]]).await;
    // The subscription outlived the restart: the new channel gets the set's events.
    phone.type_line("dnd off").await;
    phone
        .expect_each(&[&["dnd off"], &["DoNotDisturbEvent"]])
        .await;
    phone.quit().await;
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_softphones_call_each_other_through_the_example_bridge() {
    let (setup, _bridge) = crate::calls_bridged::start(&[]).await;
    let port = setup.server.addrs.https.unwrap().port();
    let mut alice = Softphone::start(ALICE, &setup.ca, port);
    let mut bob = Softphone::start(BOB, &setup.ca, port);
    alice.ready().await;
    bob.ready().await;

    alice.type_line("call 102").await;
    let lines = alice
        .expect_each(&[&["call "], &["CallOriginatedEvent"]])
        .await;
    assert_eq!(call_of(&lines[1]), lines[0].trim_start_matches("call "));
    let ringing = bob.expect(&["CallReceivedEvent"]).await;
    bob.type_line("answer").await;
    bob.expect(&["CallAnsweredEvent", &call_of(&ringing)]).await;
    alice.expect(&["CallAnsweredEvent"]).await;

    alice.type_line("hangup").await;
    alice.expect(&["CallReleasedEvent"]).await;
    bob.expect(&["CallReleasedEvent"]).await;
    bob.type_line("hangup").await;
    bob.expect(&["error: no call is up"]).await;
    alice.quit().await;
    bob.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_softphone_finds_its_servers_by_srv_and_moves_past_a_dead_one() {
    let setup = Setup::builder().acme().start().await;
    let dead = free_port();
    let live = setup.server.addrs.https.unwrap().port();
    let dns = dns_server(vec![
        srv("_xsi-client._tcp.acme.test.", 0, 100, dead, "localhost."),
        srv("_xsi-client._tcp.acme.test.", 10, 100, live, "localhost."),
        a("localhost.", [127, 0, 0, 1]),
    ])
    .await
    .to_string();
    let mut phone = Softphone::start_with(
        ALICE,
        &setup.ca,
        &["--domain", "acme.test", "--dns-server", &dns],
    );
    let targets = phone.expect(&["targets "]).await;
    let dead_at = targets.find(&format!("localhost:{dead} (127.0.0.1)"));
    let live_at = targets.find(&format!("localhost:{live} (127.0.0.1)"));
    assert!(
        matches!((dead_at, live_at), (Some(d), Some(l)) if d < l),
        "priority 0 first: {targets}"
    );
    let green = phone.ready().await;
    assert!(
        green.ends_with(&format!("target=localhost:{live} (127.0.0.1)")),
        "{green}"
    );
    phone.quit().await;
}
