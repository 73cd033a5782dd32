//! The TLS stage every target goes through: connect, (STARTTLS,) handshake, each under the
//! step deadline, then the served chain judged by `pki::verify` with the profile of the
//! service. A failure says which step failed and what that usually means.

use crate::net::probe::{self, ProbeError, ProbeTarget, ProbedStream, Start};
use crate::pki::{self, Profile, Status, VerifyInput};

use super::{Check, Endpoint, Options, Service, Verdict};

/// Connects to `endpoint` and judges its chain on `check`; the TLS stream when the
/// handshake succeeded (whatever the chain's verdict).
pub(super) async fn handshake(
    options: &Options,
    endpoint: &Endpoint,
    check: &mut Check,
) -> Option<ProbedStream> {
    let xmpp = endpoint.service != Service::Xsi;
    let start = match endpoint.service {
        Service::C2s => Start::XmppStartTls {
            domain: options.domain.clone(),
        },
        _ => Start::Direct,
    };
    let alpn: Vec<Vec<u8>> = match endpoint.service {
        Service::Xsi => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Service::C2sTls => vec![b"xmpp-client".to_vec()],
        _ => Vec::new(),
    };
    let target = ProbeTarget {
        host: endpoint.addr.to_string(),
        port: endpoint.port,
        server_name: if xmpp {
            options.domain.clone()
        } else {
            endpoint.host.clone()
        },
        start,
        alpn,
        identity: None,
        timeout: options.step_timeout,
    };
    let (probed, stream) = match probe::open(target).await {
        Ok(opened) => opened,
        Err(e) => {
            let (reason, recommendation) = explain(endpoint, &e);
            check.problem(Verdict::Red, reason, Some(recommendation));
            return None;
        }
    };
    let connect = check.millis("connect_ms", probed.connect_time);
    let tls = check.millis("tls_ms", probed.handshake_time);
    check.note(format!(
        "connect {connect}, TLS {tls} ({})",
        probed.protocol.replace('_', ".")
    ));
    let now = time::OffsetDateTime::now_utc();
    if let Some(leaf) = probed.certificates.first() {
        let days = (leaf.not_after - now).whole_days();
        check.figure("days_left", days as f64);
        if days >= 0 {
            check.note(format!("certificate valid {days} more days"));
        } else {
            check.note(format!("certificate expired {} days ago", -days));
        }
    }
    let input = VerifyInput {
        certificates: probed.certificates,
        key: None,
        intermediates: Vec::new(),
        trust: options.trust.clone(),
        at: now,
        names: if xmpp {
            Vec::new()
        } else {
            vec![endpoint.host.clone()]
        },
        profile: Some(if xmpp {
            Profile::XmppServer
        } else {
            Profile::XsiServer
        }),
        xmpp_domain: xmpp.then(|| options.domain.clone()),
        fqdn: xmpp.then(|| endpoint.host.clone()),
        cti_allowed_cns: Vec::new(),
        warn_days: options.warn_days,
        strict: false,
    };
    judge(&pki::verify(&input), endpoint, options, check);
    Some(stream)
}

/// The chain's findings that break or endanger a deployment, with what to do. Lints and
/// extension remarks are left to `bridgehead pki verify`.
fn judge(report: &pki::Report, endpoint: &Endpoint, options: &Options, check: &mut Check) {
    let at = endpoint.label();
    for finding in &report.findings {
        let verdict = match finding.status {
            Status::Ok => continue,
            Status::Warn if matches!(finding.check, "lint" | "extension") => continue,
            Status::Warn => Verdict::Amber,
            Status::Fail => Verdict::Red,
        };
        let recommendation = match finding.check {
            "name" | "profile" if finding.reason.contains("serverAuth") => format!(
                "Reissue the certificate served at {at} with the serverAuth extended key usage"
            ),
            "name" | "profile" if endpoint.service == Service::Xsi => format!(
                "Reissue the certificate served at {at} with a subjectAltName for {}",
                endpoint.host
            ),
            "name" | "profile" => format!(
                "Reissue the certificate served at {at} with subjectAltNames for both the XMPP \
                 domain {} and the server's FQDN {}: bridges and clients check both",
                options.domain, endpoint.host
            ),
            "chain" if finding.reason.contains("expired") => {
                format!("Renew the certificate served at {at}: it has expired")
            }
            "validity" if verdict == Verdict::Red => {
                format!("Renew the certificate served at {at}: it is not valid now")
            }
            "validity" => format!("Renew the certificate served at {at} before it expires"),
            "order" => format!(
                "Serve the chain at {at} leaf first, each certificate followed by its issuer \
                 (`bridgehead pki verify --fix-order` writes it)"
            ),
            _ => format!(
                "Serve a chain at {at} that leads to a trusted root (the full chain without \
                 the root), or give the doctor the private CA with --trust"
            ),
        };
        check.problem(verdict, finding.reason.clone(), Some(recommendation));
    }
}

/// What a failed connection means, and what to do.
fn explain(endpoint: &Endpoint, error: &ProbeError) -> (String, String) {
    let at = endpoint.label();
    let port_hint = match endpoint.service.fallback_port() {
        Some(port) => format!(
            " (the {} port is {port} by default)",
            endpoint.service.name()
        ),
        None => String::new(),
    };
    let check_port = format!(
        "check that the port in {} is that of the {} service{port_hint}",
        endpoint.via,
        endpoint.service.name()
    );
    match error {
        ProbeError::Timeout {
            step: "connect",
            after,
        } => (
            format!("no TCP connection within {after:?}"),
            format!(
                "{at} does not accept connections from here: a firewall drops them, the host \
                 is down, or the address is wrong; {check_port}"
            ),
        ),
        ProbeError::Timeout { step, after } => (
            format!("accepts TCP but the {step} got no answer within {after:?}"),
            format!(
                "{at} accepts connections but never completes a handshake (a hung server, a \
                 proxy holding connections, or a service that waits for the client to speak \
                 first): find out what listens there; {check_port}"
            ),
        ),
        ProbeError::Failed {
            step: "connect",
            detail,
        } => (
            format!("connect: {detail}"),
            format!(
                "Nothing accepts connections at {at}: start the service there, or {check_port}"
            ),
        ),
        ProbeError::Failed { step, detail } => {
            let not_tls = detail.contains("InvalidContentType")
                || detail.contains("corrupt")
                || detail.contains("eof")
                || detail.contains("reset");
            let recommendation = if not_tls && *step == "TLS handshake" {
                format!(
                    "{at} answers, but not with TLS: it is probably another service's port \
                     (such as a STARTTLS port where direct TLS is expected); {check_port}"
                )
            } else {
                format!("The {step} with {at} failed: {check_port}, and see its server's log")
            };
            (format!("{step}: {detail}"), recommendation)
        }
    }
}
