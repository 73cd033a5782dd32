//! SRV discovery against a real DNS server on loopback: a small authoritative responder
//! built from hickory-proto's message types, asked by hickory-resolver over UDP.

use std::net::{Ipv4Addr, SocketAddr};

use bridgehead::dns::{Discovery, DnsError, Endpoint, XMPP_COMPONENT_SERVICE};
use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record};

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn srv(owner: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::SRV(SRV::new(priority, weight, port, name(target))),
    )
}

fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), 60, RData::A(A(Ipv4Addr::from(ip))))
}

/// Serves `records` authoritatively on 127.0.0.1 (UDP) until the test ends.
async fn dns_server(records: Vec<Record>) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(question) = query.queries.first().cloned() else {
                continue;
            };
            let known = records.iter().any(|r| &r.name == question.name());
            let mut response = if known {
                Message::response(query.metadata.id, query.metadata.op_code)
            } else {
                Message::error_msg(
                    query.metadata.id,
                    query.metadata.op_code,
                    ResponseCode::NXDomain,
                )
            };
            response.metadata.authoritative = true;
            response.metadata.recursion_desired = query.metadata.recursion_desired;
            response.metadata.recursion_available = true;
            response.add_query(question.clone());
            response.add_answers(
                records
                    .iter()
                    .filter(|r| {
                        &r.name == question.name() && r.record_type() == question.query_type()
                    })
                    .cloned(),
            );
            let _ = socket.send_to(&response.to_vec().unwrap(), peer).await;
        }
    });
    addr
}

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
