//! SRV discovery against a real DNS server on loopback: a small authoritative responder
//! built from hickory-proto's message types, asked by hickory-resolver over UDP.

use bridgehead::dns::{Discovery, DnsError, Endpoint, XMPP_COMPONENT_SERVICE};

use crate::support::dns::{a, dns_server, srv};

#[tokio::test]
async fn srv_targets_come_back_in_priority_order() {
    let server = dns_server(vec![
        srv(
            "_xmpp-component._tcp.example.com.",
            20,
            10,
            5223,
            "xmpp3.example.com.",
        ),
        srv(
            "_xmpp-component._tcp.example.com.",
            10,
            50,
            5223,
            "xmpp1.example.com.",
        ),
        srv(
            "_xmpp-component._tcp.example.com.",
            10,
            50,
            5224,
            "xmpp2.example.com.",
        ),
    ])
    .await;
    let discovery = Discovery::with_name_servers(&[server]).unwrap();
    let endpoints = discovery
        .endpoints(XMPP_COMPONENT_SERVICE, "example.com", 5223)
        .await
        .unwrap();
    assert_eq!(endpoints.len(), 3);
    let first_two: Vec<&str> = endpoints[..2].iter().map(|e| e.host.as_str()).collect();
    assert!(first_two.contains(&"xmpp1.example.com") && first_two.contains(&"xmpp2.example.com"));
    assert_eq!(
        endpoints[2],
        Endpoint {
            host: "xmpp3.example.com".into(),
            port: 5223
        }
    );
}

#[tokio::test]
async fn without_srv_the_domain_is_used_on_the_default_port() {
    let server = dns_server(vec![a("solo.example.com.", [192, 0, 2, 10])]).await;
    let discovery = Discovery::with_name_servers(&[server]).unwrap();
    let endpoints = discovery
        .endpoints(XMPP_COMPONENT_SERVICE, "solo.example.com", 5223)
        .await
        .unwrap();
    assert_eq!(
        endpoints,
        [Endpoint {
            host: "solo.example.com".into(),
            port: 5223
        }]
    );
    let addresses = discovery.addresses("solo.example.com").await.unwrap();
    assert_eq!(addresses, [std::net::IpAddr::from([192, 0, 2, 10])]);
}

#[tokio::test]
async fn a_dot_target_means_the_service_is_not_offered() {
    let server = dns_server(vec![srv(
        "_xmpp-component._tcp.none.example.com.",
        0,
        0,
        0,
        ".",
    )])
    .await;
    let discovery = Discovery::with_name_servers(&[server]).unwrap();
    let error = discovery
        .endpoints(XMPP_COMPONENT_SERVICE, "none.example.com", 5223)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DnsError::ServiceUnavailable { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn an_unknown_domain_is_not_found() {
    let server = dns_server(vec![]).await;
    let discovery = Discovery::with_name_servers(&[server]).unwrap();
    let error = discovery
        .endpoints(XMPP_COMPONENT_SERVICE, "nowhere.example.com", 5223)
        .await
        .unwrap_err();
    assert!(matches!(error, DnsError::NotFound { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("_xmpp-component._tcp.nowhere.example.com"),
        "{error}"
    );
}
