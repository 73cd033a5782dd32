//! Step 1 of the doctor: where the services are. One `dns` line per SRV name (or per
//! explicit target whose name does not resolve), and the endpoints to check: every address
//! of every target.

use super::{Check, Endpoint, Options, Service, Verdict};
use crate::dns::SrvRecord;

/// The `dns` line of `service` and its endpoints.
pub(super) async fn service(options: &Options, service: Service) -> (Check, Vec<Endpoint>) {
    let domain = &options.domain;
    let name = format!("{}.{domain}", service.srv());
    let mut check = Check::new("dns", name.clone());
    let started = tokio::time::Instant::now();
    let looked_up = tokio::time::timeout(
        options.step_timeout,
        options.discovery.srv_records(service.srv(), domain),
    )
    .await;
    let records = match looked_up {
        Err(_) => {
            check.problem(
                Verdict::Red,
                format!("no DNS answer within {:?}", options.step_timeout),
                Some(format!(
                    "The name servers did not answer for {name}: check the resolver \
                     configuration (or --dns) and that the zone is served"
                )),
            );
            return (check, Vec::new());
        }
        Ok(Err(e)) => {
            check.problem(
                Verdict::Red,
                e.to_string(),
                Some(format!(
                    "The DNS lookup of {name} failed: check the zone and its name servers"
                )),
            );
            return (check, Vec::new());
        }
        Ok(Ok(records)) => records,
    };
    let lookup = check.millis("lookup_ms", started.elapsed());
    if let [only] = records.as_slice() {
        if only.target.is_empty() {
            check.skip(format!(
                "the service is published as not offered (target \".\"), {lookup}"
            ));
            return (check, Vec::new());
        }
    }
    let mut targets: Vec<(String, u16)> = Vec::new();
    if records.is_empty() {
        let Some(port) = service.fallback_port() else {
            check.skip("not published (optional)");
            return (check, Vec::new());
        };
        check.problem(
            Verdict::Amber,
            format!("no SRV record; clients fall back to {domain}:{port}"),
            Some(format!(
                "Publish {name}. SRV records (priority, weight, port, target) so that {} \
                 find every server and fail over between them",
                match service {
                    Service::Xsi => "softphones",
                    Service::Component => "call bridges",
                    _ => "clients",
                }
            )),
        );
        targets.push((domain.clone(), port));
    } else {
        check.note(format!(
            "{} in {lookup}: {}",
            plural(records.len(), "target"),
            describe(&records)
        ));
        targets.extend(records.into_iter().map(|r| (r.target, r.port)));
    }
    let mut endpoints = Vec::new();
    for (host, port) in targets {
        endpoints.extend(resolve(options, &mut check, service, &host, port, &name).await);
    }
    (check, endpoints)
}

/// An explicit `--target`: its endpoints, and a `dns` line only when its name fails.
pub(super) async fn explicit(
    options: &Options,
    service: Service,
    host: &str,
    port: u16,
) -> (Option<Check>, Vec<Endpoint>) {
    let mut check = Check::new("dns", format!("{host} (--target)"));
    let endpoints = resolve(options, &mut check, service, host, port, "--target").await;
    let failed = !check.line.problems.is_empty();
    (failed.then_some(check), endpoints)
}

/// Every address of `host`, or a red problem on `check`.
async fn resolve(
    options: &Options,
    check: &mut Check,
    service: Service,
    host: &str,
    port: u16,
    via: &str,
) -> Vec<Endpoint> {
    let addresses =
        tokio::time::timeout(options.step_timeout, options.discovery.addresses(host)).await;
    let addresses = match addresses {
        Ok(Ok(addresses)) if !addresses.is_empty() => addresses,
        Ok(Ok(_)) => {
            check.problem(
                Verdict::Red,
                format!("{host} has no A or AAAA record"),
                Some(format!(
                    "Add an A (or AAAA) record for {host}, named by {via}"
                )),
            );
            return Vec::new();
        }
        Ok(Err(e)) => {
            check.problem(Verdict::Red, e.to_string(), None);
            return Vec::new();
        }
        Err(_) => {
            check.problem(
                Verdict::Red,
                format!("no answer for {host} within {:?}", options.step_timeout),
                None,
            );
            return Vec::new();
        }
    };
    addresses
        .into_iter()
        .map(|addr| Endpoint {
            service,
            host: host.to_owned(),
            port,
            addr,
            via: via.to_owned(),
        })
        .collect()
}

fn describe(records: &[SrvRecord]) -> String {
    let mut sorted = records.to_vec();
    sorted.sort_by_key(|r| (r.priority, std::cmp::Reverse(r.weight)));
    sorted
        .iter()
        .map(|r| {
            format!(
                "{}:{} (priority {}, weight {})",
                r.target, r.port, r.priority, r.weight
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
