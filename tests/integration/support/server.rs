//! An in-process server on ephemeral ports, stopped when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use bridgehead::config::Config;
use bridgehead::server::{Bound, LocalAddrs, Server};
use bridgehead::shutdown::Shutdown;

pub struct TestServer {
    pub addrs: LocalAddrs,
    pub store: std::sync::Arc<dyn bridgehead::store::Store>,
    pub router: bridgehead::xmpp::router::Router,
    pub telephony: bridgehead::telephony::Telephony,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The embedded configuration with every listener on 127.0.0.1:0 and data in `dir`.
pub fn embedded_config(dir: &Path) -> Config {
    let mut config = Config::embedded();
    config.server.data_dir = dir.to_owned();
    config.server.fqdn = Some("bridgehead.test".to_owned());
    config.admin.listen = SocketAddr::from(([127, 0, 0, 1], 0)).into();
    config.xmpp.component_listen = SocketAddr::from(([127, 0, 0, 1], 0)).into();
    config.xmpp.client_listen = SocketAddr::from(([127, 0, 0, 1], 0)).into();
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0)).into();
    config.cti.listen = SocketAddr::from(([127, 0, 0, 1], 0)).into();
    config.validate().expect("test config is valid");
    config
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let bound: Bound = Server::bind(config).await.expect("server binds");
        let addrs = bound.local_addrs();
        let store = bound.store();
        let router = bound.router();
        let telephony = bound.telephony();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(bound.run(shutdown.clone()));
        TestServer {
            addrs,
            store,
            router,
            telephony,
            shutdown,
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            task.await.expect("server task ends cleanly");
        }
        assert!(
            self.shutdown.drain(std::time::Duration::from_secs(5)).await,
            "connections drained"
        );
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// GET `http://addr/path` with a real HTTP client; returns status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let response = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .expect("request succeeds");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A request to the admin listener with `headers` (a `host` naming the listener unless
/// given); the status.
pub async fn admin_call(
    admin: SocketAddr,
    method: hyper::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> u16 {
    let tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut request = hyper::Request::builder().method(method).uri(path);
    if !headers.iter().any(|(name, _)| *name == "host") {
        request = request.header("host", admin.to_string());
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .unwrap();
    sender
        .send_request(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The component [`Builder::bridge`] adds.
pub const BRIDGE: &str = "bridge1.localhost";
/// Its secret.
pub const BRIDGE_SECRET: &str = "bridge-secret";

/// A running server with its directory (data, development PKI), for every integration
/// test that needs one: `Setup::builder()` … `.start().await`. Tests add their own helper
/// methods in their files.
pub struct Setup {
    /// The data directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The development CA that signed the server's certificates.
    pub ca: std::path::PathBuf,
    /// The server.
    pub server: TestServer,
    https: std::sync::OnceLock<super::https::Https>,
}

/// A change to the configuration.
type Adjust = Box<dyn FnOnce(&mut Config)>;

/// How a [`Setup`] starts: the embedded configuration on ephemeral ports, changed by
/// `config`, with test accounts added once it runs.
#[derive(Default)]
pub struct Builder {
    adjust: Vec<Adjust>,
    xmpp_users: Vec<(String, String)>,
    acme: bool,
}

impl Builder {
    /// Changes the configuration (after [`embedded_config`], before validation); several
    /// calls apply in order.
    pub fn config(mut self, adjust: impl FnOnce(&mut Config) + 'static) -> Self {
        self.adjust.push(Box::new(adjust));
        self
    }

    /// The test bridge: component [`BRIDGE`] with secret [`BRIDGE_SECRET`], one connection,
    /// `replace` on conflict.
    pub fn bridge(self) -> Self {
        self.config(|config| {
            config.components.push(component_config(
                BRIDGE,
                BRIDGE_SECRET,
                1,
                bridgehead::telephony::OnConflict::Replace,
            ))
        })
    }

    /// XMPP test accounts `(jid, first name)`, password `<local part>-pass`.
    pub fn xmpp_users(mut self, users: &[(&str, &str)]) -> Self {
        self.xmpp_users
            .extend(users.iter().map(|(j, f)| (j.to_string(), f.to_string())));
        self
    }

    /// The XSI test directory of `support::acme` (enterprise, groups, users, contacts).
    pub fn acme(mut self) -> Self {
        self.acme = true;
        self
    }

    /// Starts the server in a fresh directory and adds the accounts.
    pub async fn start(self) -> Setup {
        self.start_in(tempfile::tempdir().unwrap()).await
    }

    /// Starts the server over `dir` (one a stopped [`Setup`] returned: a restart) and adds
    /// the accounts.
    pub async fn start_in(self, dir: tempfile::TempDir) -> Setup {
        let mut config = embedded_config(dir.path());
        for adjust in self.adjust {
            adjust(&mut config);
        }
        config.validate().unwrap();
        let server = TestServer::start(config).await;
        for (jid, first) in &self.xmpp_users {
            super::acme::add_xmpp_user(&server.telephony, jid, first).await;
        }
        if self.acme {
            super::acme::populate(&server.telephony).await;
        }
        let ca = dir.path().join("pki/ca.crt");
        Setup {
            dir,
            ca,
            server,
            https: std::sync::OnceLock::new(),
        }
    }
}

impl Setup {
    /// A builder (see [`Builder`]).
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Stops the server (draining its connections) and hands back its directory.
    pub async fn stop(self) -> tempfile::TempDir {
        self.server.stop().await;
        self.dir
    }

    /// The c2s listener.
    pub fn c2s(&self) -> SocketAddr {
        self.server.addrs.client.expect("the c2s listener is on")
    }

    /// The component listener.
    pub fn component_addr(&self) -> SocketAddr {
        self.server
            .addrs
            .component
            .expect("the component listener is on")
    }

    /// An HTTPS client of the XSI listener that trusts the development CA.
    pub fn https(&self) -> &super::https::Https {
        self.https.get_or_init(|| {
            super::https::Https::new(self.server.addrs.https.expect("HTTPS is on"), &self.ca)
        })
    }
}

/// A `[[components]]` entry with an inline secret and no hold.
pub fn component_config(
    name: &str,
    secret: &str,
    max_connections: u32,
    on_conflict: bridgehead::telephony::OnConflict,
) -> bridgehead::config::ComponentConfig {
    bridgehead::config::ComponentConfig {
        name: name.to_owned(),
        secret: Some(bridgehead::config::Secret::new(secret.to_owned())),
        secret_file: None,
        max_connections,
        on_conflict,
        hold_secs: 0,
    }
}

/// Builds the example once per test run (a separate package: it needs tokio-xmpp's
/// `component` feature, which must stay out of the server's build).
pub fn bridge_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_example("call_bridge"))
}

/// Builds the example softphone once per test run (its own package, like the bridge).
pub fn softphone_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_example("softphone"))
}

/// Builds `examples/<package>` under the test target directory; its binary.
fn build_example(package: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join(package);
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--manifest-path"])
        .arg(root.join(format!("examples/{package}/Cargo.toml")))
        .arg("--target-dir")
        .arg(&target)
        .stdin(Stdio::null())
        .status()
        .expect("run cargo");
    assert!(status.success(), "the example {package} builds");
    target.join("debug").join(package)
}
