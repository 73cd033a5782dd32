//! An in-process server on ephemeral ports, stopped when dropped.

use std::net::SocketAddr;
use std::path::Path;

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

/// A server on [`embedded_config`] changed by `adjust`, with its data and development CA
/// in a fresh directory, and the XMPP test accounts `users` (`(jid, first name)`, password
/// `<local part>-pass`). Returns the directory, the CA file and the server.
pub async fn start_in_temp_dir(
    adjust: impl FnOnce(&mut Config),
    users: &[(&str, &str)],
) -> (tempfile::TempDir, std::path::PathBuf, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = embedded_config(dir.path());
    adjust(&mut config);
    config.validate().unwrap();
    let server = TestServer::start(config).await;
    for (jid, first) in users {
        super::acme::add_xmpp_user(server.store.as_ref(), jid, first).await;
    }
    let ca = dir.path().join("pki/ca.crt");
    (dir, ca, server)
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
