//! Shared test support: running the real binary, and building certificates with the
//! `openssl` command line (an implementation independent of ours) or with rcgen.

pub mod acme;
pub mod client;
pub mod component;
pub mod dns;
pub mod events;
pub mod https;
pub mod node;
pub mod openssl;
pub mod peers;
pub mod server;
pub mod services;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bridgehead"));
    cmd.env("BRIDGEHEAD_LOG", "warn").stdin(Stdio::null());
    cmd
}

/// Output of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the binary with `args` in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    bin()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run bridgehead")
        .into()
}

/// Runs the binary with `args` in `dir`, feeding `input` on stdin.
pub fn run_with_stdin(dir: &Path, args: &[&str], input: &str) -> Run {
    use std::io::Write;
    let mut child = bin()
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bridgehead");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child
        .wait_with_output()
        .expect("wait for bridgehead")
        .into()
}

/// Polls `condition` every 20 ms until it holds or `limit` passes; whether it held.
pub async fn wait_until(limit: std::time::Duration, mut condition: impl FnMut() -> bool) -> bool {
    wait_until_async(limit, || std::future::ready(condition())).await
}

/// [`wait_until`] for a condition that has to await (an HTTP request, say).
pub async fn wait_until_async<F, Fut>(limit: std::time::Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    // The poll: a tick every 20 ms, the first at once; a slow condition delays the next
    // tick rather than piling them up.
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(20));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        poll.tick().await;
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
    }
}
