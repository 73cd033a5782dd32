//! The real `bridgehead serve` as a child process, with its JSON log read as it comes:
//! where each listener bound, and waits for log messages. Killed when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{bin, Run};

/// Every listener on 127.0.0.1:0, the development PKI, demo data, and `extra` TOML.
pub fn ephemeral_config(extra: &str) -> String {
    ephemeral_config_with("fqdn = \"bridgehead.test\"\n", extra)
}

/// [`ephemeral_config`] with `server` lines in `[server]` (e.g. the domain, fqdn, node_id).
pub fn ephemeral_config_with(server: &str, extra: &str) -> String {
    format!(
        "[server]\ndemo_data = true\n{server}\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [xmpp]\ncomponent_listen = \"127.0.0.1:0\"\nclient_listen = \"127.0.0.1:0\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n[cti]\nlisten = \"127.0.0.1:0\"\n{extra}"
    )
}

pub struct Node {
    child: Child,
    pub dir: PathBuf,
    log: Arc<Mutex<Vec<serde_json::Value>>>,
    addrs: HashMap<String, SocketAddr>,
}

impl Node {
    /// Starts `serve -c bridgehead.toml` in `dir` and waits until it serves.
    pub async fn start(dir: &Path) -> Node {
        Self::start_with(dir, &[]).await
    }

    /// [`Node::start`] with extra environment variables.
    pub async fn start_with(dir: &Path, env: &[(&str, &str)]) -> Node {
        let mut child = bin()
            .current_dir(dir)
            .envs(env.iter().copied())
            .env("BRIDGEHEAD_LOG", "info")
            .args(["--log-format", "json", "serve", "-c", "bridgehead.toml"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bridgehead serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                // Errors before logging starts are plain text.
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "fields": { "message": line } }));
                sink.lock().unwrap().push(value);
            }
        });
        let mut node = Node {
            child,
            dir: dir.to_owned(),
            log,
            addrs: HashMap::new(),
        };
        assert!(
            node.wait_log("bridgehead is serving", Duration::from_secs(60))
                .await,
            "the node did not start: {}",
            node.log_text()
        );
        for line in node.log.lock().unwrap().iter() {
            let fields = &line["fields"];
            if fields["message"] == "listening" {
                if let (Some(name), Some(addr)) =
                    (fields["listener"].as_str(), fields["addr"].as_str())
                {
                    node.addrs.insert(name.to_owned(), addr.parse().unwrap());
                }
            }
        }
        node
    }

    /// Where `listener` is bound.
    pub fn addr(&self, listener: &str) -> SocketAddr {
        self.addrs[listener]
    }

    /// The log so far, one JSON object per line.
    pub fn log_text(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// How many log lines have `message` in their message.
    pub fn count(&self, message: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(message))
            })
            .count()
    }

    /// Waits (polling, up to `limit`) for a log line with `message`.
    pub async fn wait_log(&self, message: &str, limit: Duration) -> bool {
        self.wait_count(message, 1, limit).await
    }

    /// Waits (polling, up to `limit`) for `count` log lines with `message`.
    pub async fn wait_count(&self, message: &str, count: usize, limit: Duration) -> bool {
        super::wait_until(limit, || self.count(message) >= count).await
    }

    /// Runs a CLI command against this node's admin API (`--admin-url` appended).
    pub fn cli(&self, args: &[&str]) -> Run {
        let url = format!("http://{}", self.addr("admin"));
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--admin-url", &url]);
        super::run_in(&self.dir, &all)
    }

    /// Sends `signal` (`HUP`, `TERM`, `KILL`) to the node.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `kill -9`, then waits (up to 10 s) until the process is dead: a zombie or gone, so
    /// that it answers nothing more.
    pub async fn kill_and_wait(&self) {
        self.signal("KILL");
        let stat = format!("/proc/{}/stat", self.child.id());
        let dead = crate::support::wait_until(std::time::Duration::from_secs(10), || {
            std::fs::read_to_string(&stat).map_or(true, |text| {
                text.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
        })
        .await;
        assert!(dead, "the node did not die");
    }

    /// The demo credentials: (alice's password, the bridge component's secret).
    pub fn demo(&self) -> (String, String) {
        let text = std::fs::read_to_string(self.dir.join("data/demo-credentials.toml")).unwrap();
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        (
            parsed["users"][0]["password"].as_str().unwrap().to_owned(),
            parsed["components"][0]["secret"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    /// The development CA.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("data/pki/ca.crt")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
