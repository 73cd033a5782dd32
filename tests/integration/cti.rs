//! The CTI interface: XSI over mutual TLS, admitted only by certificate. Good and bad
//! client certificates are made by rcgen (the development PKI) and by the `openssl`
//! command line; each bad one is refused in the handshake, counted under the rule it broke.

use std::path::Path;
use std::time::Duration;

use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::acme::{url, ALICE};
use crate::support::https::{assert_valid, EventChannel, Https, EVENTS};
use crate::support::openssl::{Key, OpenSsl};
use crate::support::server::{http_get, Setup};

const CTI_EKU: &str = "extendedKeyUsage=clientAuth,1.3.6.1.4.1.6431.1.1.8.2.1.3";

/// A client configuration trusting the server's CA and presenting `chain` + `key`.
pub fn client(server_ca: &Path, chain: &Path, key: &Path) -> rustls::ClientConfig {
    let roots: Vec<_> = bridgehead::pki::input::read_certificates(server_ca)
        .unwrap()
        .into_iter()
        .map(|c| c.der)
        .collect();
    let chain: Vec<_> = bridgehead::pki::input::read_certificates(chain)
        .unwrap()
        .into_iter()
        .map(|c| c.der)
        .collect();
    let key = bridgehead::pki::input::read_private_key(key, None).unwrap();
    (*bridgehead::tls::client_config_with_identity(&roots, chain, key).unwrap()).clone()
}

/// The CTI port of `setup`, with the development PKI's CTI client certificate.
pub fn cti_client(setup: &Setup) -> Https {
    let pki = setup.dir.path().join("pki");
    Https::with_tls(
        setup.server.addrs.cti.unwrap(),
        client(
            &pki.join("ca.crt"),
            &pki.join("cti-client-chain.pem"),
            &pki.join("cti-client.key"),
        ),
    )
}

/// A channel of the CTI application `cti` with a system-wide subscription to `package`.
pub async fn system_channel(cti: &Https, package: &str) -> EventChannel {
    let channel = EventChannel::open(
        cti,
        "",
        "<channelSetId>cti-set</channelSetId><expires>3600</expires>",
    )
    .await
    .unwrap();
    let subscribed = cti
        .request(
            Method::POST,
            &format!("{EVENTS}/system"),
            &[("content-type", "application/xml")],
            Some(&format!("<Subscription xmlns=\"http://schema.broadsoft.com/xsi\"><event>{package}</event><expires>3600</expires><channelSetId>cti-set</channelSetId><applicationId>crm</applicationId></Subscription>")),
        )
        .await;
    assert_eq!(subscribed.status, 200, "{subscribed:?}");
    channel
}

#[tokio::test]
async fn a_cti_application_subscribes_without_passwords_and_gets_client_id_events() {
    let setup = Setup::builder().acme().start().await;
    let server = &setup.server;
    let pki = setup.dir.path().join("pki");
    let cti = cti_client(&setup);
    // XSI-Actions with application rights: any user's resources, no Basic credentials.
    let profile = cti
        .request(Method::GET, &url(ALICE, "profile"), &[], None)
        .await;
    assert_eq!(profile.status, 200, "{profile:?}");
    assert_valid(&profile.body);
    let ghost = cti
        .request(Method::GET, &url("ghost@acme.test", "profile"), &[], None)
        .await;
    assert_eq!(ghost.status, 404);

    // A channel and a system-wide subscription, identified by the certificate's CN.
    let mut channel = system_channel(&cti, "Do Not Disturb").await;
    // A change by a user over the ordinary front reaches the application.
    let https = Https::new(server.addrs.https.unwrap(), &pki.join("ca.crt"));
    let reply = https
        .put_xml(
            &url("bob@acme.test", "services/DoNotDisturb"),
            &crate::support::acme::auth("bob@acme.test"),
            "<DoNotDisturb xmlns=\"http://schema.broadsoft.com/xsi\"><active>true</active></DoNotDisturb>",
        )
        .await;
    assert_eq!(reply.status, 200);
    let event = channel
        .next()
        .await
        .expect("the event reaches the CTI channel");
    assert_valid(&event);
    assert!(
        event.contains("<xsi:clientId>cti-client.localhost</xsi:clientId>"),
        "{event}"
    );
    assert!(
        event.contains("<xsi:targetId>bob@acme.test</xsi:targetId>"),
        "{event}"
    );
    assert!(!event.contains("<xsi:userId>"), "{event}");
    // The ordinary front does not take the application's certificate as credentials.
    let plain = https
        .request(Method::GET, &url(ALICE, "profile"), &[], None)
        .await;
    assert_eq!(plain.status, 401);
}

/// Sends one request over a CTI connection made with `tls`; true when it was served.
pub async fn served(addr: std::net::SocketAddr, tls: rustls::ClientConfig) -> bool {
    served_for(addr, tls, ALICE).await
}

/// [`served`], reading `user`'s profile.
pub async fn served_for(addr: std::net::SocketAddr, tls: rustls::ClientConfig, user: &str) -> bool {
    let https = Https::with_tls(addr, tls);
    let Ok(mut stream) = https.try_tls_stream().await else {
        return false;
    };
    // With TLS 1.3 the refusal arrives after the client's Finished: on the first read.
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        url(user, "profile")
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200")
}

fn refusals(metrics: &str, rule: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("bridgehead_cti_refusals_total")
                && l.contains(&format!("rule=\"{rule}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn every_wrong_certificate_is_refused_with_its_reason() {
    // An independent CA and certificates made by the openssl command line.
    let pki = OpenSsl::new();
    pki.root("root", "CTI Test Root");
    pki.root("stranger", "Some Other Root");
    pki.sign("good", "bwcticlient.example.com", Key::Ec, "root", CTI_EKU);
    pki.sign(
        "no-oid",
        "bwcticlient.example.com",
        Key::Ec,
        "root",
        "extendedKeyUsage=clientAuth",
    );
    pki.sign(
        "no-client-auth",
        "bwcticlient.example.com",
        Key::Ec,
        "root",
        "extendedKeyUsage=1.3.6.1.4.1.6431.1.1.8.2.1.3",
    );
    pki.sign(
        "with-san",
        "bwcticlient.example.com",
        Key::Ec,
        "root",
        &format!("{CTI_EKU}\nsubjectAltName=DNS:bwcticlient.example.com"),
    );
    pki.sign(
        "wrong-cn",
        "intruder.example.com",
        Key::Rsa,
        "root",
        CTI_EKU,
    );
    pki.sign(
        "untrusted",
        "bwcticlient.example.com",
        Key::Ec,
        "stranger",
        CTI_EKU,
    );
    let trust = pki.path("root.crt");
    let setup = Setup::builder()
        .acme()
        .config({
            let trust = trust.clone();
            move |c| {
                c.cti.trust_file = Some(trust);
                c.cti.allowed_client_ids = vec!["bwcticlient.example.com".into()];
            }
        })
        .start()
        .await;
    let server = &setup.server;
    let server_ca = setup.ca.clone();
    let addr = server.addrs.cti.unwrap();
    let tls = |name: &str| {
        client(
            &server_ca,
            &pki.path(&format!("{name}.crt")),
            &pki.path(&format!("{name}.key")),
        )
    };

    assert!(
        served(addr, tls("good")).await,
        "the right certificate is admitted"
    );
    for (name, rule) in [
        ("no-oid", "eku-broadworks-oid"),
        ("no-client-auth", "chain"),
        ("with-san", "subject-alt-name"),
        ("wrong-cn", "common-name"),
        ("untrusted", "chain"),
    ] {
        let before = refusals(
            &http_get(server.addrs.admin.unwrap(), "/metrics").await.1,
            rule,
        );
        assert!(!served(addr, tls(name)).await, "{name} must be refused");
        let after = refusals(
            &http_get(server.addrs.admin.unwrap(), "/metrics").await.1,
            rule,
        );
        assert!(after > before, "{name} is counted as a refusal for {rule}");
    }
    // No certificate at all.
    let roots: Vec<_> = bridgehead::pki::input::read_certificates(&server_ca)
        .unwrap()
        .into_iter()
        .map(|c| c.der)
        .collect();
    let anonymous = (*bridgehead::tls::client_config(&roots).unwrap()).clone();
    let before = refusals(
        &http_get(server.addrs.admin.unwrap(), "/metrics").await.1,
        "absent",
    );
    assert!(!served(addr, anonymous).await, "no certificate, no service");
    let after = refusals(
        &http_get(server.addrs.admin.unwrap(), "/metrics").await.1,
        "absent",
    );
    assert!(after > before, "counted as absent");
}
