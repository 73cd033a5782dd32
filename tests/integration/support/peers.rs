//! Third-party servers the tests put in front of or beside Bridgehead: `openssl s_server`
//! (a TLS server with any certificate, however wrong), HAProxy (a real load balancer), and
//! a listener that accepts TCP and never says a word.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server` on 127.0.0.1 serving `cert` (with `chain` after it) and `key`; the
/// process and its port.
pub fn s_server(dir: &Path, cert: &Path, key: &Path, chain: Option<&Path>) -> (Process, u16) {
    let mut command = Command::new("openssl");
    command
        .current_dir(dir)
        .args(["s_server", "-accept", "127.0.0.1:0", "-cert"])
        .arg(cert)
        .arg("-key")
        .arg(key);
    if let Some(chain) = chain {
        command.arg("-cert_chain").arg(chain);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the openssl command line must be installed");
    let stdout = child.stdout.take().unwrap();
    let process = Process(child);
    // openssl prints "ACCEPT 127.0.0.1:PORT" once it listens, then a report per
    // connection, which is read and dropped so that it never blocks on a full pipe.
    let mut lines = BufReader::new(stdout).lines();
    let port = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("ACCEPT ")
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok())
        })
        .expect("openssl s_server says where it listens");
    std::thread::spawn(move || lines.for_each(drop));
    (process, port)
}

/// A free loopback port (for servers that cannot be told to pick one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// HAProxy in TCP mode on a free port of 127.0.0.1, spreading connections round-robin
/// over `backends` (no affinity at all: each new connection goes to the next one); its
/// admin socket is `dir/haproxy.sock` (see [`haproxy_admin`]), its servers
/// `nodes/node1` …
pub async fn haproxy_round_robin(dir: &Path, backends: &[std::net::SocketAddr]) -> (Process, u16) {
    let port = free_port();
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            format!(
                "  server node{} {addr} check inter 250ms fall 1 rise 2\n",
                i + 1
            )
        })
        .collect();
    // A node that refuses connections is taken out at once (a check every 250 ms; a
    // connection it refuses meanwhile is tried on the next node).
    let config = format!(
        "global\n  maxconn 1000\n  stats socket {socket} level admin\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n\
           retries 2\n  option redispatch 1\n\
         frontend xsi\n  bind 127.0.0.1:{port}\n  default_backend nodes\n\
         backend nodes\n  balance roundrobin\n{servers}",
        socket = dir.join("haproxy.sock").display()
    );
    start_haproxy(dir, &config, port).await
}

/// HAProxy in HTTP mode on a free port of 127.0.0.1, as `docs/cluster.md` configures it:
/// TLS ends at HAProxy (`pem`: certificate and key), requests go round-robin unless they
/// carry the node cookie `bridgehead-node=<name>`, which sends them to that node, and
/// every node is reached over TLS again, verified against `ca`.
pub async fn haproxy_cookie_affinity(
    dir: &Path,
    backends: &[(&str, std::net::SocketAddr)],
    pem: &Path,
    ca: &Path,
) -> (Process, u16) {
    let port = free_port();
    let servers: String = backends
        .iter()
        .map(|(name, addr)| {
            format!(
                "  server {name} {addr} ssl verify required ca-file {} cookie {name}\n",
                ca.display()
            )
        })
        .collect();
    let config = format!(
        "global\n  maxconn 1000\n\
         defaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 120s\n\
         frontend xsi\n  bind 127.0.0.1:{port} ssl crt {pem}\n  default_backend nodes\n\
         backend nodes\n  balance roundrobin\n  cookie bridgehead-node indirect nocache preserve\n{servers}",
        pem = pem.display()
    );
    start_haproxy(dir, &config, port).await
}

async fn start_haproxy(dir: &Path, config: &str, port: u16) -> (Process, u16) {
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, config).unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("HAProxy must be installed (tests/run installs the Debian package)");
    let process = Process(child);
    let up = super::wait_until_async(Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    assert!(up, "HAProxy did not listen on {port}");
    (process, port)
}

/// Runs one command on the admin socket of the HAProxy [`haproxy_round_robin`] started
/// over `dir` (`disable server nodes/node1` …); its answer.
pub async fn haproxy_admin(dir: &Path, command: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::UnixStream::connect(dir.join("haproxy.sock"))
        .await
        .expect("HAProxy's admin socket");
    socket
        .write_all(format!("{command}\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    answer
}

/// A listener that accepts connections and never answers (held until the test ends).
pub async fn silent_listener() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    port
}
