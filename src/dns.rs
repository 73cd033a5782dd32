//! Service discovery by DNS SRV, as call bridges and XSI clients do it.
//!
//! A bridge looks up `_xmpp-component._tcp.<domain>` (an XSI client `_xsi-client._tcp.<domain>`)
//! and tries the targets in RFC 2782 order:
//!
//! 1. lower priority values first;
//! 2. within one priority, a weighted random draw: each target is picked with probability
//!    weight / (sum of the remaining weights), weight-0 targets only after the others have had
//!    their chance (they sit at the front of the running sum, so they win only a draw of 0);
//! 3. a single record whose target is `.` means "the service is decidedly not available here".
//!
//! Without SRV records (NXDOMAIN or no answer) the domain itself is used on the protocol's
//! default port, provided it has an A or AAAA record. Resolution goes through
//! hickory-resolver, either with the system configuration or with explicit name servers.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use rand::Rng;

/// The SRV service label call bridges use to find XMPP servers.
pub const XMPP_COMPONENT_SERVICE: &str = "_xmpp-component._tcp";
/// The SRV service label XSI clients use to find XSP servers.
pub const XSI_CLIENT_SERVICE: &str = "_xsi-client._tcp";

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The resolver could not be set up.
    #[error("cannot set up the DNS resolver: {0}")]
    Setup(String),
    /// The name is not a valid DNS name.
    #[error("\"{0}\" is not a valid DNS name")]
    BadName(String),
    /// The SRV record says the service is not offered (target `.`).
    #[error("{name} says the service is not available (SRV target \".\")")]
    ServiceUnavailable {
        /// The SRV name.
        name: String,
    },
    /// Neither SRV nor A/AAAA records exist.
    #[error("no SRV records for {srv} and no address for {domain}")]
    NotFound {
        /// The SRV name looked up.
        srv: String,
        /// The domain looked up for the fallback.
        domain: String,
    },
    /// A lookup failed for another reason (timeout, SERVFAIL, network).
    #[error("DNS lookup of {name} failed: {reason}")]
    Lookup {
        /// The name.
        name: String,
        /// What the resolver said.
        reason: String,
    },
}

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share within a priority.
    pub weight: u16,
    /// Port to connect to.
    pub port: u16,
    /// Host to connect to, without the trailing dot.
    pub target: String,
}

/// Where to connect, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name (to resolve and to check the certificate against the *domain*, not this).
    pub host: String,
    /// Port.
    pub port: u16,
}

/// Orders SRV records per RFC 2782: by priority, then weighted random within a priority.
pub fn rfc2782_order(mut records: Vec<SrvRecord>, rng: &mut impl Rng) -> Vec<SrvRecord> {
    records.sort_by_key(|r| r.priority);
    let mut ordered = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let end = rest
            .iter()
            .position(|r| r.priority != first.priority)
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at(end);
        let mut group: Vec<SrvRecord> = group.to_vec();
        // Weight-0 records go to the front of the running sum.
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let draw = rng.gen_range(0..=total);
            let mut running = 0u32;
            let index = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= draw
                })
                .unwrap_or(group.len() - 1);
            ordered.push(group.remove(index));
        }
        rest = tail;
    }
    ordered
}

/// A DNS resolver for service discovery.
#[derive(Clone)]
pub struct Discovery {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery").finish_non_exhaustive()
    }
}

impl Discovery {
    /// Uses the system's resolver configuration (`/etc/resolv.conf`).
    pub fn system() -> Result<Self, DnsError> {
        let resolver = TokioResolver::builder_tokio()
            .map_err(|e| DnsError::Setup(e.to_string()))?
            .build()
            .map_err(|e| DnsError::Setup(e.to_string()))?;
        Ok(Discovery { resolver })
    }

    /// Asks the given name servers (UDP, then TCP on the same port).
    pub fn with_name_servers(servers: &[SocketAddr]) -> Result<Self, DnsError> {
        let mut config = ResolverConfig::default();
        for server in servers {
            let mut udp = ConnectionConfig::udp();
            udp.port = server.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = server.port();
            config.add_name_server(NameServerConfig::new(server.ip(), true, vec![udp, tcp]));
        }
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .build()
            .map_err(|e| DnsError::Setup(e.to_string()))?;
        Ok(Discovery { resolver })
    }

    /// The SRV records of `service.domain` (empty when there are none).
    pub async fn srv_records(
        &self,
        service: &str,
        domain: &str,
    ) -> Result<Vec<SrvRecord>, DnsError> {
        let name = format!("{service}.{}.", domain.trim_end_matches('.'));
        match self.resolver.srv_lookup(name.as_str()).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::SRV(srv) => Some(SrvRecord {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.to_utf8().trim_end_matches('.').to_owned(),
                    }),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(DnsError::Lookup {
                name,
                reason: e.to_string(),
            }),
        }
    }

    /// The addresses of `host` (empty when it has none).
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let name = format!("{}.", host.trim_end_matches('.'));
        match self.resolver.lookup_ip(name.as_str()).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(DnsError::Lookup {
                name,
                reason: e.to_string(),
            }),
        }
    }

    /// Where to connect for `service` at `domain`, in the order to try: the SRV targets in
    /// RFC 2782 order, or `domain:default_port` when there is no SRV record but the domain
    /// has an address.
    pub async fn endpoints(
        &self,
        service: &str,
        domain: &str,
        default_port: u16,
    ) -> Result<Vec<Endpoint>, DnsError> {
        let records = self.srv_records(service, domain).await?;
        if let [only] = records.as_slice() {
            if only.target.is_empty() {
                return Err(DnsError::ServiceUnavailable {
                    name: format!("{service}.{domain}"),
                });
            }
        }
        if !records.is_empty() {
            return Ok(rfc2782_order(records, &mut rand::thread_rng())
                .into_iter()
                .map(|r| Endpoint {
                    host: r.target,
                    port: r.port,
                })
                .collect());
        }
        if self.addresses(domain).await?.is_empty() {
            return Err(DnsError::NotFound {
                srv: format!("{service}.{domain}"),
                domain: domain.to_owned(),
            });
        }
        Ok(vec![Endpoint {
            host: domain.trim_end_matches('.').to_owned(),
            port: default_port,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5223,
            target: target.to_owned(),
        }
    }

    #[test]
    fn lower_priority_always_comes_first() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let ordered = rfc2782_order(
                vec![
                    srv(20, 100, "c"),
                    srv(10, 1, "a"),
                    srv(10, 1, "b"),
                    srv(30, 0, "d"),
                ],
                &mut rng,
            );
            let priorities: Vec<u16> = ordered.iter().map(|r| r.priority).collect();
            assert_eq!(priorities, [10, 10, 20, 30]);
        }
    }

    #[test]
    fn weights_share_the_first_place_in_proportion() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let trials = 20_000;
        let heavy_first = (0..trials)
            .filter(|_| {
                rfc2782_order(vec![srv(1, 10, "light"), srv(1, 90, "heavy")], &mut rng)[0].target
                    == "heavy"
            })
            .count();
        let share = heavy_first as f64 / trials as f64;
        assert!(
            (0.87..0.93).contains(&share),
            "heavy first in {share:.3} of draws"
        );
    }

    #[test]
    fn zero_weight_targets_are_kept_but_rarely_first() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut zero_first = 0;
        for _ in 0..10_000 {
            let ordered = rfc2782_order(vec![srv(1, 0, "zero"), srv(1, 50, "fifty")], &mut rng);
            assert_eq!(ordered.len(), 2);
            if ordered[0].target == "zero" {
                zero_first += 1;
            }
        }
        // Only a draw of exactly 0 out of 0..=50 picks it: about 2 %.
        assert!((50..500).contains(&zero_first), "{zero_first}");
    }
}
