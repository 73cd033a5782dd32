//! A small authoritative DNS responder on loopback, built from hickory-proto's message
//! types, for tests that resolve SRV and A records through a real resolver.

use std::net::{Ipv4Addr, SocketAddr};

use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record};

pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

pub fn srv(owner: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::SRV(SRV::new(priority, weight, port, name(target))),
    )
}

pub fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), 60, RData::A(A(Ipv4Addr::from(ip))))
}

/// Serves `records` authoritatively on 127.0.0.1 (UDP) until the test ends.
pub async fn dns_server(records: Vec<Record>) -> SocketAddr {
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
