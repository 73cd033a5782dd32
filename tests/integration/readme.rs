//! The README's commands, run as written: every line of its `sh` blocks that calls
//! `bridgehead` or `curl` runs in a fresh directory beside a default `bridgehead serve`
//! (embedded defaults, default ports), with `bridgehead` on the PATH as the README says.
//! The example softphone's line runs too, with the softphone the tests built, until its
//! lights are green. Other lines that build (`cargo`), run the tests (`tests/run`) or need a production host
//! (`/etc/…`) are left out; the README says so for each.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::wait_until;

/// The commands of the README's `sh` blocks, continuation lines joined.
fn readme_commands(readme: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => pending.push_str(start),
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}

fn runnable(command: &str) -> bool {
    let calls = command.starts_with("bridgehead ")
        || command.starts_with("curl ")
        || command.contains("| bridgehead ");
    calls && !command.contains("/etc/")
}

/// Kills the server when the test ends, passed or not, so its ports are free again.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn every_readme_command_works_against_a_default_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands: Vec<String> = readme_commands(&readme)
        .into_iter()
        .filter(|c| runnable(c))
        .collect();
    assert!(commands.len() >= 12, "{commands:#?}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    std::fs::copy(
        root.join("examples/bridgehead.toml"),
        dir.path().join("examples/bridgehead.toml"),
    )
    .unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_bridgehead"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut server = Running(
        Command::new(env!("CARGO_BIN_EXE_bridgehead"))
            .arg("serve")
            .current_dir(dir.path())
            .env("BRIDGEHEAD_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let healthy = wait_until(Duration::from_secs(30), || {
        std::net::TcpStream::connect("127.0.0.1:9090").is_ok()
            && std::net::TcpStream::connect("127.0.0.1:8443").is_ok()
    })
    .await;
    assert!(healthy, "the default server came up on its default ports");
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "the server runs (another process may hold a default port)"
    );
    let credentials =
        std::fs::read_to_string(dir.path().join("data/demo-credentials.toml")).unwrap();
    let alice = credentials
        .split("id = \"alice@localhost\"")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(1))
        .expect("alice's password")
        .to_owned();

    for command in &commands {
        let command = command.replace("PASSWORD", &alice);
        let output = Command::new("sh")
            .args(["-c", &command])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("BRIDGEHEAD_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{command}\n{}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        if command.starts_with("curl ") {
            assert!(
                stdout.contains("<DoNotDisturb") && !stdout.contains("ErrorInfo"),
                "{command}\n{stdout}"
            );
        }
    }
    softphone_as_written(&readme, dir.path());
    let _ = Command::new("kill").arg(server.0.id().to_string()).status();
    let status = server.0.wait().unwrap();
    assert!(
        status.success(),
        "the server stopped cleanly on SIGTERM: {status}"
    );
}

/// The README's softphone command (its arguments after `--`) in `dir`, beside the default
/// server: it turns every light green, and ends cleanly when its input ends.
fn softphone_as_written(readme: &str, dir: &Path) {
    use std::io::BufRead;
    let command = readme_commands(readme)
        .into_iter()
        .find(|c| c.starts_with("cargo run --manifest-path examples/softphone/Cargo.toml"))
        .expect("the README runs the example softphone");
    let (_, args) = command.split_once(" -- ").expect("arguments after --");
    let mut phone = Command::new(crate::support::server::softphone_binary())
        .args(args.split_whitespace())
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let input = phone.stdin.take();
    let stdout = phone.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let green = "status actions=green events=green authentication=green";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains(green)) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = phone.kill();
                panic!("{command}: not all green within 30 s: {seen:#?}");
            }
        }
    }
    drop(input);
    let status = phone.wait().unwrap();
    assert!(status.success(), "{command}: {status}");
}
