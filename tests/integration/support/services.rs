//! The services a cluster shares, started by the tests on loopback: a PostgreSQL server of
//! its own (`initdb` into a temporary directory, `postgres` on a free port) and a NATS
//! server (Debian's `nats-server`). Stopped when dropped. As root, PostgreSQL runs as the `postgres` user (it refuses root) through
//! `setpriv`, which execs rather than forks, so the child is the server itself.
//!
//! (The store's unit tests start their servers the same way; integration tests are a crate
//! of their own and cannot reach that code.)

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::peers::{free_port, Process};

/// A throwaway PostgreSQL server; [`Postgres::stop`] and [`Postgres::start_again`] take it
/// away and bring it back on the same port with the same data.
pub struct Postgres {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// The newest installed server's programs (Debian keeps them off the PATH).
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| {
                let path = e.ok()?.path();
                Some((path.file_name()?.to_str()?.parse().ok()?, path.join("bin")))
            })
            .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .expect("PostgreSQL must be installed (tests/run installs the Debian package)")
        .1
}

fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
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

impl Postgres {
    /// Initialises and starts a server; returns once it accepts connections.
    pub async fn start() -> Postgres {
        let bin = postgres_bin();
        let dir = tempfile::tempdir().unwrap();
        if running_as_root() {
            let owned = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(owned.success());
        }
        let data = dir.path().join("data");
        let init = as_postgres(&bin.join("initdb"))
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
        let mut server = Postgres {
            child: None,
            port: free_port(),
            dir,
        };
        server.start_again().await;
        server
    }

    /// Starts the server (again) on its port and data.
    pub async fn start_again(&mut self) {
        let bin = postgres_bin();
        let port = self.port;
        let child = as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(["-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let ready = super::wait_until(Duration::from_secs(30), || {
            Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .is_ok_and(|s| s.success())
        })
        .await;
        assert!(ready, "PostgreSQL did not accept connections within 30 s");
    }

    /// Stops the server (SIGINT: a fast shutdown that ends every connection) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Its URL, for `[store] url`.
    pub fn url(&self) -> String {
        format!("postgres://bridgehead@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A NATS server on a free port of 127.0.0.1; [`Nats::stop`] and [`Nats::start_again`]
/// take it away and bring it back on the same port.
pub struct Nats {
    process: Option<Process>,
    port: u16,
}

impl Nats {
    /// Starts one; returns once it accepts connections.
    pub async fn start() -> Nats {
        let mut nats = Nats {
            process: None,
            port: free_port(),
        };
        nats.start_again().await;
        nats
    }

    /// Starts the server (again) on its port.
    pub async fn start_again(&mut self) {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (tests/run installs the Debian package)");
        self.process = Some(Process(child));
        let port = self.port;
        let up = super::wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        assert!(up, "nats-server did not listen on {port}");
    }

    /// Stops the server (its clients see the connection drop).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Its URL, for `[cluster] nats_url`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}
