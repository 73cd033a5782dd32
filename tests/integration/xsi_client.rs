//! The XSI client library (`bridgehead::client`) against real servers: a closed port, an
//! HTTPS server that answers 503, and a real Bridgehead, in that order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bridgehead::client::{Health, HttpsTransport, Target, Timings, XsiClient, XsiRequest};

use crate::support::acme::{auth, url, ALICE};
use crate::support::server::Setup;

/// An HTTPS server presenting the development certificate that answers 503 to everything;
/// its port, and how many requests it answered.
async fn unavailable(setup: &Setup) -> (u16, Arc<AtomicUsize>) {
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&answered);
    let pki = setup.dir.path().join("pki");
    let identity = bridgehead::tls::ServerIdentity::load(
        &bridgehead::tls::IdentityFiles {
            cert: pki.join("server-chain.pem"),
            key: pki.join("server.key"),
            key_password: None,
            trust: Some(pki.join("ca.crt")),
        },
        &bridgehead::tls::IdentityRequirements {
            domain: "localhost".into(),
            fqdn: "bridgehead.test".into(),
            warn_days: 0,
        },
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config(&[b"http/1.1"]).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    async {
                        let mut response = hyper::Response::new(http_body_util::Full::new(
                            hyper::body::Bytes::from_static(b"overloaded"),
                        ));
                        *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, answered)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_moves_past_a_refusal_and_a_503_and_keeps_the_node_cookie() {
    let setup = Setup::builder().acme().start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (busy, answered_503) = unavailable(&setup).await;
    let real = setup.server.addrs.https.unwrap().port();
    let roots: Vec<_> = bridgehead::pki::input::read_certificates(&setup.ca)
        .unwrap()
        .into_iter()
        .map(|c| c.der)
        .collect();
    let transport =
        HttpsTransport::new(Arc::clone(&bridgehead::tls::client_config(&roots).unwrap()));
    let targets = [closed, busy, real]
        .into_iter()
        .map(|port| Target {
            host: "localhost".into(),
            port,
        })
        .collect();
    let client = XsiClient::new(targets, transport, Timings::default());
    let request = XsiRequest {
        method: "GET".into(),
        path: url(ALICE, "profile"),
        headers: vec![("authorization".into(), auth(ALICE))],
        body: vec![],
    };
    let response = client
        .request(request.clone())
        .await
        .expect("the third node answers");
    assert_eq!(response.status, 200);
    assert!(String::from_utf8_lossy(&response.body).contains("<Profile"));
    assert_eq!(client.selected().port, real);
    assert_eq!(
        answered_503.load(Ordering::Relaxed),
        1,
        "the 503 node was tried once"
    );
    assert!(
        response
            .set_cookies
            .iter()
            .any(|c| c.starts_with("bridgehead-node=")),
        "{:?}",
        response.set_cookies
    );
    assert_eq!(client.status().actions, Health::Green);
    // The next request goes straight to the node that answered.
    let again = client.request(request).await.unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(client.selected().port, real);
}
