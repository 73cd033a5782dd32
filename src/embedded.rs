//! The embedded default: what `bridgehead serve` creates in its data directory so that a
//! single node runs with no configuration at all.
//!
//! - A development PKI in `<data_dir>/pki`: a root CA, an intermediate, a server
//!   certificate naming the domain, the host FQDN, 127.0.0.1 and ::1, and a BroadWorks CTI
//!   client certificate. Clients trust `pki/ca.crt`.
//! - With `server.demo_data`: a demo enterprise and group, users alice and bob (each with a
//!   softphone device), and a demo component `bridge.<domain>`. Their passwords and secret
//!   are random and written to
//!   `<data_dir>/demo-credentials.toml` (mode 0600), never to the log.
//!
//! Both are created once; later starts reuse them.

use std::path::{Path, PathBuf};

use rand::distributions::{Alphanumeric, DistString};
use serde::Serialize;
use time::OffsetDateTime;

use crate::config::Config;
use crate::credentials::PasswordVerifiers;
use crate::pki::issue::{self, IssuerMaterial, KeyType, Kind, Request};
use crate::pki::PkiError;
use crate::store::{Store, StoreError};
use crate::telephony::OnConflict;
use crate::telephony::{ComponentRecord, Device, Enterprise, Group, Role, User};
use crate::tls::IdentityFiles;

/// The files of the development PKI.
#[derive(Debug, Clone)]
pub struct DevPki {
    /// The directory.
    pub dir: PathBuf,
}

impl DevPki {
    /// The development PKI under `dir`.
    pub fn new(dir: PathBuf) -> Self {
        DevPki { dir }
    }

    /// The root CA certificate clients should trust.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The server identity files.
    pub fn server_identity(&self) -> IdentityFiles {
        IdentityFiles {
            cert: self.dir.join("server-chain.pem"),
            key: self.dir.join("server.key"),
            key_password: None,
            trust: Some(self.ca_cert()),
        }
    }

    /// The CTI client certificate prefix (`.key`, `.crt`, `-chain.pem`).
    pub fn cti_client_prefix(&self) -> PathBuf {
        self.dir.join("cti-client")
    }

    /// True when the PKI has been generated.
    pub fn exists(&self) -> bool {
        self.dir.join("server-chain.pem").is_file()
    }

    /// Generates the PKI unless it exists. Returns true when it was generated now.
    pub fn ensure(&self, domain: &str, fqdn: &str) -> Result<bool, PkiError> {
        if self.exists() {
            return Ok(false);
        }
        let now = OffsetDateTime::now_utc() - time::Duration::hours(1);
        let request = |kind: Kind, days: u32, issuer: Option<IssuerMaterial>| Request {
            kind,
            key_type: KeyType::EcdsaP256,
            not_before: now,
            days,
            organization: "Bridgehead development".to_owned(),
            issuer,
        };
        let root = issue::issue(&request(
            Kind::Ca {
                common_name: "Bridgehead Development Root CA".to_owned(),
                path_len: Some(1),
            },
            3650,
            None,
        ))?;
        let intermediate = issue::issue(&request(
            Kind::Ca {
                common_name: "Bridgehead Development Intermediate CA".to_owned(),
                path_len: Some(0),
            },
            1825,
            Some(root.as_issuer()),
        ))?;
        let mut names = vec![domain.to_owned()];
        if !fqdn.eq_ignore_ascii_case(domain) {
            names.push(fqdn.to_owned());
        }
        names.extend(["127.0.0.1".to_owned(), "::1".to_owned()]);
        let server = issue::issue(&request(
            Kind::Server {
                names,
                xmpp_addrs: vec![domain.to_owned()],
            },
            825,
            Some(intermediate.as_issuer()),
        ))?;
        let cti = issue::issue(&request(
            Kind::CtiClient {
                common_name: cti_client_cn(domain),
            },
            825,
            Some(intermediate.as_issuer()),
        ))?;
        issue::write_issued(&self.dir.join("ca"), &root, true)?;
        issue::write_issued(&self.dir.join("intermediate"), &intermediate, true)?;
        issue::write_issued(&self.cti_client_prefix(), &cti, true)?;
        // The server chain is written last: its presence marks a complete PKI.
        issue::write_file(
            &self.dir.join("server.key"),
            server.key_pem.as_bytes(),
            true,
            true,
        )?;
        issue::write_file(
            &self.dir.join("server.crt"),
            server.cert_pem.as_bytes(),
            false,
            true,
        )?;
        issue::write_file(
            &self.dir.join("server-chain.pem"),
            server.chain_pem.as_bytes(),
            false,
            true,
        )?;
        Ok(true)
    }
}

/// The CN of the development CTI client certificate (admitted on the CTI listener when no
/// `cti.allowed_client_ids` are configured).
pub fn cti_client_cn(domain: &str) -> String {
    format!("cti-client.{domain}")
}

/// Contents of `demo-credentials.toml`.
#[derive(Debug, Serialize)]
struct DemoCredentials {
    users: Vec<DemoUser>,
    components: Vec<DemoComponent>,
}

#[derive(Debug, Serialize)]
struct DemoUser {
    id: String,
    password: String,
}

#[derive(Debug, Serialize)]
struct DemoComponent {
    name: String,
    secret: String,
}

/// The demo credentials file.
pub fn demo_credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-credentials.toml")
}

/// Why demo data could not be created.
#[derive(Debug, thiserror::Error)]
pub enum DemoDataError {
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The credentials file could not be written.
    #[error(transparent)]
    Write(#[from] PkiError),
    /// Serialising the credentials failed.
    #[error("cannot encode the demo credentials: {0}")]
    Encode(#[from] toml::ser::Error),
}

/// Creates the demo directory, users and component once. Returns true when created now.
pub async fn ensure_demo_data(config: &Config, store: &dyn Store) -> Result<bool, DemoDataError> {
    let domain = &config.server.domain;
    let credentials_path = demo_credentials_path(&config.server.data_dir);
    let alice = format!("alice@{domain}");
    if credentials_path.exists() {
        return Ok(false);
    }
    if store.user(&alice).await?.is_some() {
        tracing::warn!(
            file = %credentials_path.display(),
            "demo users exist but their credentials file is missing; set new passwords with \
             `bridgehead user passwd`"
        );
        return Ok(false);
    }
    let enterprise = Enterprise {
        id: "demo".to_owned(),
        name: "Demo Enterprise".to_owned(),
    };
    let group = Group {
        id: "demo-group".to_owned(),
        enterprise_id: enterprise.id.clone(),
        name: "Demo Group".to_owned(),
    };
    store.put_enterprise(&enterprise).await?;
    store.put_group(&group).await?;
    let mut credentials = DemoCredentials {
        users: Vec::new(),
        components: Vec::new(),
    };
    let people = [
        ("alice", "Alice", "Anderson", "+15550100", "100"),
        ("bob", "Bob", "Brown", "+15550101", "101"),
    ];
    for (local, first, last, number, extension) in people {
        let id = format!("{local}@{domain}");
        let password = random_secret();
        let verifiers = PasswordVerifiers::new(&password, config.store.scram_iterations)
            .expect("a random alphanumeric password is valid");
        store
            .add_user(&User {
                id: id.clone(),
                first_name: first.to_owned(),
                last_name: last.to_owned(),
                number: Some(number.to_owned()),
                extension: Some(extension.to_owned()),
                enterprise_id: enterprise.id.clone(),
                group_id: group.id.clone(),
                role: Role::User,
                verifiers,
            })
            .await?;
        store
            .add_device(&Device {
                user_id: id.clone(),
                name: format!("{local}-pc"),
                device_type: "Business Communicator - PC".to_owned(),
                line_port: format!("{local}_pc@{domain}"),
            })
            .await?;
        credentials.users.push(DemoUser { id, password });
    }
    let component = ComponentRecord {
        name: format!("bridge.{domain}"),
        secret: random_secret(),
        max_connections: 1,
        on_conflict: OnConflict::Replace,
        hold_secs: 0,
    };
    match store.add_component(&component).await {
        Ok(()) | Err(StoreError::Exists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    credentials.components.push(DemoComponent {
        name: component.name.clone(),
        secret: component.secret.clone(),
    });
    let mut text = String::from(
        "# Demo credentials made by Bridgehead on first start. Keep this file private.\n",
    );
    text.push_str(&toml::to_string(&credentials)?);
    issue::write_file(&credentials_path, text.as_bytes(), true, false)?;
    Ok(true)
}

/// A random 24-character alphanumeric secret.
pub fn random_secret() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 24)
}
