//! `bridgehead doctor`: the precall test of a deployment, from where a bridge, a client or a
//! softphone stands.
//!
//! ```text
//! 1. DNS      _xmpp-component._tcp.D, _xmpp-client._tcp.D, _xmpps-client._tcp.D and
//!             _xsi-client._tcp.D (SRV, RFC 2782), each target's A/AAAA; without SRV the
//!             protocol's fallback D:port (amber: publish SRV); explicit --target lists too
//! 2. for every target address, at once:
//!    component  TCP → direct TLS → chain judged by `pki::verify` (xmpp-server profile:
//!               the domain D and the target's FQDN, expiry, order) → XEP-0114 handshake
//!               when --component NAME --secret-file F are given
//!    c2s        TCP → STARTTLS → TLS → chain as above → the SASL mechanisms offered
//!    c2s-tls    TCP → direct TLS (XEP-0368) → chain as above → the SASL mechanisms
//!    xsi        TCP → TLS → chain (the target's FQDN) → with --user: a profile GET, then
//!               an event channel with a few heartbeats through the same address and the
//!               **affinity check**: the node cookie of every heartbeat's answer is that of
//!               the node that opened the channel
//! 3. one GREEN/AMBER/RED line per interface and target with its figures, then the
//!    numbered recommendations (text or --json); exit 0 all green, 1 amber, 2 red
//! ```
//!
//! Every step has the 2 s deadline of the Webex app's rule (`--step-timeout`), and each
//! target's checks the overall deadline; nothing is sent anywhere but to the name servers
//! and the targets found. The client side of XSI is [`crate::client`], the TLS side
//! [`crate::net::probe`], the judgment of chains [`crate::pki::verify`].

mod discover;
mod render;
mod tls;
mod xmpp;
mod xsi;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::pki::Certificate;

pub use render::text;

/// How one line came out. Ordered from best to worst; `Skipped` counts as nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Not checked (optional, or credentials not given).
    Skipped,
    /// Works.
    Green,
    /// Works, but an admin should act.
    Amber,
    /// Broken.
    Red,
}

impl Verdict {
    /// The word printed at the start of a line.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Skipped => "SKIP",
            Verdict::Green => "GREEN",
            Verdict::Amber => "AMBER",
            Verdict::Red => "RED",
        }
    }
}

/// The services a deployment publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    /// XEP-0114 components (call bridges), direct TLS.
    Component,
    /// XMPP clients, STARTTLS.
    C2s,
    /// XMPP clients, direct TLS (XEP-0368).
    C2sTls,
    /// XSI (Actions and Events), HTTPS.
    Xsi,
}

impl Service {
    /// Every service, in the order they are reported.
    pub const ALL: [Service; 4] = [
        Service::Component,
        Service::C2s,
        Service::C2sTls,
        Service::Xsi,
    ];

    /// The SRV label.
    pub fn srv(self) -> &'static str {
        match self {
            Service::Component => crate::dns::XMPP_COMPONENT_SERVICE,
            Service::C2s => "_xmpp-client._tcp",
            Service::C2sTls => "_xmpps-client._tcp",
            Service::Xsi => crate::dns::XSI_CLIENT_SERVICE,
        }
    }

    /// The port clients fall back to without SRV (none for direct-TLS c2s).
    pub fn fallback_port(self) -> Option<u16> {
        match self {
            Service::Component => Some(5223),
            Service::C2s => Some(5222),
            Service::C2sTls => None,
            Service::Xsi => Some(443),
        }
    }

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Service::Component => "component",
            Service::C2s => "c2s",
            Service::C2sTls => "c2s-tls",
            Service::Xsi => "xsi",
        }
    }
}

/// A component's credentials, for the XEP-0114 handshake.
#[derive(Debug, Clone)]
pub struct ComponentLogin {
    /// The component's name (e.g. `bridge.example.com`).
    pub name: String,
    /// Its shared secret.
    pub secret: crate::config::Secret,
}

/// A user's credentials, for the XSI checks.
#[derive(Debug, Clone)]
pub struct UserLogin {
    /// The XSI user id (e.g. `alice@example.com`).
    pub user: String,
    /// The password.
    pub password: crate::config::Secret,
}

/// What to check and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The domain (the XMPP domain, and where the SRV records live).
    pub domain: String,
    /// The resolver.
    pub discovery: crate::dns::Discovery,
    /// The services whose SRV records are resolved.
    pub services: Vec<Service>,
    /// Explicit targets, checked besides the SRV targets.
    pub targets: Vec<(Service, String, u16)>,
    /// The trust anchors chains are judged against.
    pub trust: Vec<Certificate>,
    /// Amber when a certificate expires within this many days.
    pub warn_days: i64,
    /// The deadline of each step (connect, TLS, an answer). Default 2 s.
    pub step_timeout: Duration,
    /// The deadline of all checks of one target.
    pub target_timeout: Duration,
    /// For the component handshake.
    pub component: Option<ComponentLogin>,
    /// For the XSI checks.
    pub user: Option<UserLogin>,
    /// Heartbeats sent on the test channel.
    pub heartbeats: u32,
    /// Between them.
    pub heartbeat_every: Duration,
    /// The cookie that names the node (Bridgehead's `[http] affinity_cookie`).
    pub affinity_cookie: String,
}

impl Options {
    /// Defaults for `domain`, asking `discovery`, judging chains against `trust`.
    pub fn new(domain: &str, discovery: crate::dns::Discovery, trust: Vec<Certificate>) -> Self {
        Options {
            domain: domain.trim_end_matches('.').to_owned(),
            discovery,
            services: Service::ALL.to_vec(),
            targets: Vec::new(),
            trust,
            warn_days: 30,
            step_timeout: Duration::from_secs(2),
            target_timeout: Duration::from_secs(20),
            component: None,
            user: None,
            heartbeats: 3,
            heartbeat_every: Duration::from_secs(1),
            affinity_cookie: "bridgehead-node".to_owned(),
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// `dns`, `component`, `c2s`, `c2s-tls`, `xsi-actions`, `xsi-events`.
    pub interface: &'static str,
    /// What was checked: an SRV name, or `host:port (address)`.
    pub target: String,
    /// How it came out.
    pub verdict: Verdict,
    /// What was seen, in words.
    pub summary: String,
    /// What is wrong, one reason each (empty when green).
    pub problems: Vec<String>,
    /// Measured figures: `connect_ms`, `tls_ms`, `days_left`, `handshake_ms`, …
    pub figures: BTreeMap<&'static str, f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The domain checked.
    pub domain: String,
    /// The worst verdict.
    pub verdict: Verdict,
    /// How long the checks took.
    pub elapsed_ms: f64,
    /// Every line, DNS first, then per target.
    pub lines: Vec<Line>,
    /// What to do, most important first.
    pub recommendations: Vec<String>,
}

impl Report {
    /// 0 all green (or skipped), 1 some amber, 2 some red.
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            Verdict::Skipped | Verdict::Green => 0,
            Verdict::Amber => 1,
            Verdict::Red => 2,
        }
    }
}

/// A line being built, with the recommendations its problems bring.
#[derive(Debug)]
struct Check {
    line: Line,
    notes: Vec<String>,
    recommendations: Vec<(Verdict, String)>,
    skipped: Option<String>,
}

impl Check {
    fn new(interface: &'static str, target: impl Into<String>) -> Self {
        Check {
            line: Line {
                interface,
                target: target.into(),
                verdict: Verdict::Green,
                summary: String::new(),
                problems: Vec::new(),
                figures: BTreeMap::new(),
            },
            notes: Vec::new(),
            recommendations: Vec::new(),
            skipped: None,
        }
    }

    fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    fn figure(&mut self, name: &'static str, value: f64) {
        self.line
            .figures
            .insert(name, (value * 10.0).round() / 10.0);
    }

    fn millis(&mut self, name: &'static str, elapsed: Duration) -> String {
        let ms = elapsed.as_secs_f64() * 1000.0;
        self.figure(name, ms);
        format!("{ms:.1} ms")
    }

    fn problem(
        &mut self,
        verdict: Verdict,
        reason: impl Into<String>,
        recommendation: Option<String>,
    ) {
        self.line.verdict = self.line.verdict.max(verdict);
        self.line.problems.push(reason.into());
        if let Some(recommendation) = recommendation {
            self.recommendations.push((verdict, recommendation));
        }
    }

    /// Nothing on this line was checked, for `why`.
    fn skip(&mut self, why: impl Into<String>) {
        self.skipped = Some(why.into());
    }

    fn finish(mut self) -> (Line, Vec<(Verdict, String)>) {
        if let Some(why) = self.skipped.take() {
            if self.line.problems.is_empty() {
                self.line.verdict = Verdict::Skipped;
            }
            self.notes.push(why);
        }
        self.line.summary = self.notes.join(", ");
        (self.line, self.recommendations)
    }
}

/// One address to check.
#[derive(Debug, Clone)]
struct Endpoint {
    service: Service,
    host: String,
    port: u16,
    addr: IpAddr,
    /// Where it came from (the SRV name or `--target`), for recommendations.
    via: String,
}

impl Endpoint {
    fn label(&self) -> String {
        if self.host == self.addr.to_string() {
            format!("{}:{}", self.host, self.port)
        } else {
            format!("{}:{} ({})", self.host, self.port, self.addr)
        }
    }
}

/// Runs every check (see the module docs).
pub async fn run(options: &Options) -> Report {
    let started = tokio::time::Instant::now();
    let mut checks = Vec::new();
    let mut endpoints = Vec::new();
    let planned = futures_util::future::join_all(
        options
            .services
            .iter()
            .map(|service| discover::service(options, *service)),
    )
    .await;
    for (check, found) in planned {
        checks.push(check);
        endpoints.extend(found);
    }
    for (service, host, port) in &options.targets {
        let (check, found) = discover::explicit(options, *service, host, *port).await;
        checks.extend(check);
        endpoints.extend(found);
    }
    let checked =
        futures_util::future::join_all(endpoints.iter().map(|e| check_endpoint(options, e))).await;
    checks.extend(checked.into_iter().flatten());

    let mut lines = Vec::new();
    let mut recommendations: Vec<(Verdict, String)> = Vec::new();
    for check in checks {
        let (line, recommended) = check.finish();
        lines.push(line);
        for recommendation in recommended {
            if !recommendations
                .iter()
                .any(|(_, known)| *known == recommendation.1)
            {
                recommendations.push(recommendation);
            }
        }
    }
    // Red first, then amber; otherwise in the order found.
    recommendations.sort_by_key(|(verdict, _)| std::cmp::Reverse(*verdict));
    let verdict = lines
        .iter()
        .map(|l| l.verdict)
        .max()
        .unwrap_or(Verdict::Skipped);
    Report {
        domain: options.domain.clone(),
        verdict,
        elapsed_ms: (started.elapsed().as_secs_f64() * 1000.0).round(),
        lines,
        recommendations: recommendations.into_iter().map(|(_, r)| r).collect(),
    }
}

/// The checks of one endpoint, under the target deadline.
async fn check_endpoint(options: &Options, endpoint: &Endpoint) -> Vec<Check> {
    let checks = async {
        match endpoint.service {
            Service::Component | Service::C2s | Service::C2sTls => {
                vec![xmpp::check(options, endpoint).await]
            }
            Service::Xsi => xsi::check(options, endpoint).await,
        }
    };
    match tokio::time::timeout(options.target_timeout, checks).await {
        Ok(checks) => checks,
        Err(_) => {
            let mut check = Check::new(endpoint.service.name(), endpoint.label());
            check.problem(
                Verdict::Red,
                format!(
                    "the checks did not finish within {:?}",
                    options.target_timeout
                ),
                Some(format!(
                    "{} answers too slowly to be used: look at its load and its network path",
                    endpoint.label()
                )),
            );
            vec![check]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_as_bad_as_its_worst_problem_and_skips_count_for_nothing() {
        let mut check = Check::new("xsi-events", "x:443");
        check.note("opened");
        check.problem(Verdict::Amber, "slow", Some("look".into()));
        check.problem(Verdict::Red, "broken", Some("fix".into()));
        let (line, recommendations) = check.finish();
        assert_eq!(line.verdict, Verdict::Red);
        assert_eq!(line.problems, ["slow", "broken"]);
        assert_eq!(recommendations.len(), 2);

        let mut skipped = Check::new("xsi-events", "x:443");
        skipped.skip("not checked (give --user)");
        let (line, _) = skipped.finish();
        assert_eq!(line.verdict, Verdict::Skipped);
        assert_eq!(line.summary, "not checked (give --user)");
    }
}
