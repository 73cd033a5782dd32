//! `bridgehead pki verify|probe|inspect|issue`: the PKI toolkit's commands and their
//! arguments.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::{read_text, usage};
use crate::pki::issue::{IssuerMaterial, KeyType, Kind, Request};
use crate::pki::{self, Profile, VerifyInput};

/// `pki` subcommands.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Check a key, a certificate chain and a trust bundle, one line per check.
    ///
    /// Exit codes: 0 all OK, 1 warnings only, 2 any FAIL, 3 usage error or unreadable input.
    Verify(VerifyArgs),
    /// Connect to a TLS server and run the same checks on the chain it actually sends.
    ///
    /// Also reports the protocol version, cipher suite and ALPN agreed. Exit codes as for
    /// verify; a server that cannot be reached or refuses the handshake is a FAIL (2).
    Probe(ProbeArgs),
    /// Run the RFC 5280 and CA/Browser Forum rules on each certificate, without a chain.
    ///
    /// Each certificate is judged by its own role (a self-signed root, a CA, a leaf); every
    /// violation is a FAIL with its rule id. Exit codes as for verify.
    Lint(InspectArgs),
    /// Show every certificate in the given files.
    Inspect(InspectArgs),
    /// Make a key and a certificate signing request for a public CA: the XMPP domain and
    /// the host FQDN (an XMPP server), or any --name (an XSI host).
    Csr(CsrArgs),
    /// Issue development and test certificates.
    #[command(subcommand)]
    Issue(IssueCommand),
}

/// `pki verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The certificate: a leaf, or a full chain in any order (PEM or DER), or a PKCS#12
    /// bundle (`.p12`, `.pfx`: its key is checked too, its passphrase from --key-pass-file).
    #[arg(long)]
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1, SEC1, or encrypted PKCS#8).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// File with the password of an encrypted key or a PKCS#12 bundle (first line).
    #[arg(long)]
    pub key_pass_file: Option<PathBuf>,
    /// Extra intermediate certificates, any order, extras allowed.
    #[arg(long)]
    pub intermediates: Option<PathBuf>,
    /// Write the chain in serving order (leaf, then each issuer, no root) to this file.
    #[arg(long, value_name = "OUT")]
    pub fix_order: Option<PathBuf>,
    /// Overwrite the --fix-order file if it exists.
    #[arg(long)]
    pub force: bool,
    /// The checks and how they are reported.
    #[command(flatten)]
    pub checks: CheckArgs,
}

/// What `pki verify` and `pki probe` check, and how they report.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Trust bundle (PEM). Default: the system's trusted roots.
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// Validation time, RFC 3339 (e.g. 2027-01-01T00:00:00Z). Default: now.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<OffsetDateTime>,
    /// A name (DNS or IP) that a subjectAltName must cover. Repeatable.
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// What the certificate is for.
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// The XMPP domain (profile xmpp-server).
    #[arg(long)]
    pub xmpp_domain: Option<String>,
    /// The host FQDN (profile xmpp-server).
    #[arg(long)]
    pub fqdn: Option<String>,
    /// An allowed CTI client CN (profile cti-client). Repeatable.
    #[arg(long = "cti-cn")]
    pub cti_cns: Vec<String>,
    /// Warn when a certificate expires within this many days.
    #[arg(long, default_value_t = 30)]
    pub warn_days: u32,
    /// One JSON object with every check instead of text.
    #[arg(long)]
    pub json: bool,
    /// RFC 5280 and CA/Browser Forum violations (each with its rule id) are failures, not
    /// warnings.
    #[arg(long)]
    pub strict: bool,
}

/// `pki probe` arguments.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The server, HOST:PORT.
    pub target: String,
    /// Start TLS inside the protocol instead of from the first byte.
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub starttls: Option<StartTlsProtocol>,
    /// An XEP-0114 component port (direct TLS, as on 5223).
    #[arg(long, conflicts_with_all = ["starttls", "https"])]
    pub xmpp_component: bool,
    /// An HTTPS port: offers ALPN h2 and http/1.1.
    #[arg(long, conflicts_with = "starttls")]
    pub https: bool,
    /// The name sent in SNI (and the XMPP domain the stream is opened to). Default: HOST,
    /// or --xmpp-domain with --starttls xmpp.
    #[arg(long)]
    pub server_name: Option<String>,
    /// Present this client certificate (chain) — a CTI port.
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Seconds to wait for each step (connect, STARTTLS, TLS handshake).
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
    /// The checks and how they are reported (without --name and --profile, the chain
    /// must name HOST).
    #[command(flatten)]
    pub checks: CheckArgs,
}

/// Protocols `pki probe --starttls` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StartTlsProtocol {
    /// XMPP (RFC 6120), as on the c2s port 5222.
    Xmpp,
}

/// `pki inspect` and `pki lint` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// PEM or DER files holding certificates.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The time certificates are judged at (days left, expiry), RFC 3339. Default: now.
    #[arg(long, value_parser = parse_time)]
    pub at: Option<OffsetDateTime>,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options every `pki issue` kind shares.
#[derive(Debug, Args)]
pub struct IssueCommon {
    /// Output prefix: writes PREFIX.key (mode 0600), PREFIX.crt and PREFIX-chain.pem.
    #[arg(long)]
    pub out: PathBuf,
    /// The issuing CA's certificate (its chain may follow it in the file).
    #[arg(long, requires = "issuer_key")]
    pub issuer_cert: Option<PathBuf>,
    /// The issuing CA's private key.
    #[arg(long, requires = "issuer_cert")]
    pub issuer_key: Option<PathBuf>,
    /// Key algorithm.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    pub key_type: KeyType,
    /// Validity in days.
    #[arg(long)]
    pub days: Option<u32>,
    /// Start of validity, RFC 3339. Default: now.
    #[arg(long, value_parser = parse_time)]
    pub not_before: Option<OffsetDateTime>,
    /// Organisation in the subject.
    #[arg(long, default_value = "Bridgehead")]
    pub org: String,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
    /// One JSON object (`written`, `check`) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `pki issue` kinds.
#[derive(Debug, Subcommand)]
pub enum IssueCommand {
    /// A CA: self-signed root, or an intermediate with --issuer-cert/--issuer-key.
    Ca {
        /// Subject CN.
        #[arg(long)]
        cn: String,
        /// pathLenConstraint (intermediates allowed below this CA).
        #[arg(long)]
        path_len: Option<u8>,
        /// Options shared by every kind.
        #[command(flatten)]
        common: IssueCommon,
    },
    /// A TLS server certificate (serverAuth) for the given names, or for a CSR's key and
    /// names (--csr).
    Server {
        /// A DNS name or IP address for the SANs; the first is also the CN. Repeatable.
        #[arg(long = "name", required_unless_present = "csr", conflicts_with = "csr")]
        names: Vec<String>,
        /// Certify the key and names of this CSR (PEM) instead of making a key: writes
        /// PREFIX.crt and PREFIX-chain.pem.
        #[arg(long, conflicts_with = "xmpp_addrs")]
        csr: Option<PathBuf>,
        /// Add an id-on-xmppAddr otherName for this XMPP domain. Repeatable.
        #[arg(long = "xmpp-addr")]
        xmpp_addrs: Vec<String>,
        /// Options shared by every kind.
        #[command(flatten)]
        common: IssueCommon,
    },
    /// A BroadWorks CTI client certificate: BroadWorks OID + clientAuth, CN, no SAN.
    CtiClient {
        /// The application identity (CN), e.g. bwcticlient.example.com.
        #[arg(long)]
        cn: String,
        /// Options shared by every kind.
        #[command(flatten)]
        common: IssueCommon,
    },
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time such as 2027-01-01T00:00:00Z ({e})"))
}

pub(super) async fn pki_command(command: PkiCommand) -> anyhow::Result<u8> {
    match command {
        PkiCommand::Verify(args) => pki_verify(args),
        PkiCommand::Probe(args) => pki_probe(args).await,
        PkiCommand::Lint(args) => pki_lint(args),
        PkiCommand::Csr(args) => pki_csr(args),
        PkiCommand::Inspect(args) => pki_inspect(args),
        PkiCommand::Issue(command) => pki_issue(command),
    }
}

/// The checks' half of a [`VerifyInput`] (no certificates, key or intermediates yet).
fn check_input(checks: CheckArgs) -> anyhow::Result<VerifyInput> {
    match checks.profile {
        Some(Profile::XmppServer) if checks.xmpp_domain.is_none() || checks.fqdn.is_none() => {
            return Err(usage(
                "--profile xmpp-server needs --xmpp-domain and --fqdn (the certificate must name both)",
            ))
        }
        Some(Profile::XsiServer) if checks.names.is_empty() => {
            return Err(usage("--profile xsi-server needs at least one --name"))
        }
        _ => {}
    }
    Ok(VerifyInput {
        certificates: Vec::new(),
        key: None,
        intermediates: Vec::new(),
        trust: pki::load_trust(checks.trust.as_deref())?,
        at: checks.at.unwrap_or_else(OffsetDateTime::now_utc),
        names: checks.names,
        profile: checks.profile,
        xmpp_domain: checks.xmpp_domain,
        fqdn: checks.fqdn,
        cti_allowed_cns: checks.cti_cns,
        warn_days: i64::from(checks.warn_days),
        strict: checks.strict,
    })
}

/// Prints `findings` (no chain) as text or JSON; their exit code.
fn print_findings(findings: &[pki::Finding], at: OffsetDateTime, json: bool) -> anyhow::Result<u8> {
    if json {
        let report = pki::report::json_of(findings, at, Vec::new());
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", pki::report::text_of(findings, at));
    }
    Ok(pki::report::verdict(findings).1)
}

fn pki_lint(args: InspectArgs) -> anyhow::Result<u8> {
    let at = args.at.unwrap_or_else(OffsetDateTime::now_utc);
    let mut certificates = Vec::new();
    for file in &args.files {
        certificates.extend(pki::input::read_certificates(file)?);
    }
    print_findings(&pki::lint_certificates(&certificates, at), at, args.json)
}

/// Prints `report` as text or JSON; its exit code.
fn print_report(report: &pki::Report, json: bool) -> anyhow::Result<u8> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&pki::report::json(report))?
        );
    } else {
        print!("{}", pki::report::text(report));
    }
    Ok(report.exit_code())
}

fn pki_verify(args: VerifyArgs) -> anyhow::Result<u8> {
    let json = args.checks.json;
    let password = args
        .key_pass_file
        .as_deref()
        .map(pki::input::read_password)
        .transpose()?;
    let mut input = check_input(args.checks)?;
    let mut bundled_key = None;
    input.certificates = if pki::input::is_pkcs12(&args.cert) {
        let (certificates, key) = pki::input::read_pkcs12(&args.cert, password.as_deref())?;
        bundled_key = key;
        certificates
    } else {
        pki::input::read_certificates(&args.cert)?
    };
    input.key = match args.key.as_deref() {
        Some(k) => Some(pki::input::read_private_key(k, password.as_deref())?),
        None => bundled_key,
    };
    if let Some(path) = &args.intermediates {
        input.intermediates = pki::input::read_certificates(path)?;
    }
    let mut report = pki::verify(&input);
    if let Some(out) = &args.fix_order {
        let complete = matches!(report.path_end, pki::PathEnd::Anchor);
        pki::write_chain(out, &report.served_chain, args.force)?;
        let (status, note) = if complete {
            (pki::Status::Ok, String::new())
        } else {
            (
                pki::Status::Warn,
                "; the chain is incomplete, add the missing issuer".to_owned(),
            )
        };
        report.push(
            "fix-order",
            status,
            format!(
                "wrote {} certificate(s) to {} in serving order{note}",
                report.served_chain.len(),
                out.display()
            ),
        );
    }
    print_report(&report, json)
}

async fn pki_probe(args: ProbeArgs) -> anyhow::Result<u8> {
    use crate::net::probe::{probe, ProbeTarget, Start};
    let (host, port) = args
        .target
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_owned(), p.parse().ok()?)))
        .ok_or_else(|| usage("the target is HOST:PORT, e.g. xmpp.example.com:5222"))?;
    let identity = match (&args.client_cert, &args.client_key) {
        (Some(cert), Some(key)) => Some((
            pki::input::read_certificates(cert)?
                .into_iter()
                .map(|c| c.der)
                .collect(),
            pki::input::read_private_key(key, None)?,
        )),
        _ => None,
    };
    let json = args.checks.json;
    let xmpp_domain = args.checks.xmpp_domain.clone();
    let mut input = check_input(args.checks)?;
    if input.names.is_empty() && input.profile.is_none() {
        input.names.push(host.clone());
    }
    let start = match args.starttls {
        Some(StartTlsProtocol::Xmpp) => Start::XmppStartTls {
            domain: args
                .server_name
                .clone()
                .or(xmpp_domain)
                .unwrap_or_else(|| host.clone()),
        },
        None => Start::Direct,
    };
    let server_name = match &start {
        Start::XmppStartTls { domain } => domain.clone(),
        Start::Direct => args.server_name.clone().unwrap_or_else(|| host.clone()),
    };
    let target = ProbeTarget {
        host,
        port,
        server_name,
        start,
        alpn: if args.https {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            Vec::new()
        },
        identity,
        timeout: std::time::Duration::from_secs(args.timeout_secs.max(1)),
    };
    let probed = match probe(target).await {
        Ok(probed) => probed,
        Err(e) => {
            let findings = [pki::Finding::new(
                "connect",
                pki::Status::Fail,
                format!("{}: {e}", args.target),
            )];
            return print_findings(&findings, OffsetDateTime::now_utc(), json);
        }
    };
    input.certificates = probed.certificates;
    let mut report = pki::verify(&input);
    if probed.client_certificate_asked {
        let given = if args.client_cert.is_some() {
            "one was given"
        } else {
            "none was given (--client-cert, --client-key)"
        };
        report.push(
            "tls",
            pki::Status::Ok,
            format!("the server asks for a client certificate; {given}"),
        );
    }
    let addr = probed.addr.to_string();
    let connected = if addr == args.target {
        addr
    } else {
        format!("{} ({addr})", args.target)
    };
    report.push(
        "tls",
        pki::Status::Ok,
        format!(
            "{connected}: {}, {}{}",
            probed.protocol,
            probed.cipher,
            probed
                .alpn
                .map_or_else(String::new, |p| format!(", ALPN {p}"))
        ),
    );
    print_report(&report, json)
}

fn pki_inspect(args: InspectArgs) -> anyhow::Result<u8> {
    let now = args.at.unwrap_or_else(OffsetDateTime::now_utc);
    let mut all = Vec::new();
    for file in &args.files {
        all.extend(pki::input::read_certificates(file)?);
    }
    if args.json {
        let described: Vec<_> = all.iter().map(|c| pki::inspect::describe(c, now)).collect();
        println!("{}", serde_json::to_string_pretty(&described)?);
    } else {
        let texts: Vec<String> = all.iter().map(|c| pki::inspect::text(c, now)).collect();
        print!("{}", texts.join("\n"));
    }
    Ok(0)
}

fn pki_issue(command: IssueCommand) -> anyhow::Result<u8> {
    let (kind, common, profile) = match command {
        IssueCommand::Ca {
            cn,
            path_len,
            common,
        } => (
            Kind::Ca {
                common_name: cn,
                path_len,
            },
            common,
            None,
        ),
        IssueCommand::Server {
            csr: Some(csr),
            common,
            ..
        } => (
            Kind::FromCsr {
                csr_pem: read_text(&csr)?,
            },
            common,
            Some("server"),
        ),
        IssueCommand::Server {
            names,
            xmpp_addrs,
            common,
            csr: None,
        } => (Kind::Server { names, xmpp_addrs }, common, Some("server")),
        IssueCommand::CtiClient { cn, common } => (
            Kind::CtiClient { common_name: cn },
            common,
            Some("cti-client"),
        ),
    };
    let issuer = match (&common.issuer_cert, &common.issuer_key) {
        (Some(cert), Some(key)) => Some(IssuerMaterial {
            cert_pem: read_text(cert)?,
            key_pem: read_text(key)?,
        }),
        _ if profile.is_some() => {
            return Err(usage(
                "a leaf certificate needs --issuer-cert and --issuer-key",
            ))
        }
        _ => None,
    };
    let default_days = if matches!(kind, Kind::Ca { .. }) {
        3650
    } else {
        365
    };
    let request = Request {
        kind,
        key_type: common.key_type,
        not_before: common
            .not_before
            .unwrap_or_else(|| OffsetDateTime::now_utc() - time::Duration::minutes(5)),
        days: common.days.unwrap_or(default_days),
        organization: common.org,
        issuer,
    };
    let issued = pki::issue::issue(&request)?;
    let paths = pki::issue::write_issued(&common.out, &issued, common.force)?;
    let has_key = !issued.key_pem.is_empty();
    let written: Vec<String> = paths
        .iter()
        .skip(usize::from(!has_key))
        .map(|p| p.display().to_string())
        .collect();
    let check = profile.map(|profile| {
        let key = if has_key {
            paths[0].display().to_string()
        } else {
            "<the CSR's key>".to_owned()
        };
        format!(
            "bridgehead pki verify --cert {} --key {key} --trust <root CA> --profile {profile}",
            paths[2].display(),
        )
    });
    print_written(&written, check.as_deref(), common.json)
}

/// What `pki issue` and `pki csr` wrote, as text or JSON (`written`, `check`).
fn print_written(written: &[String], check: Option<&str>, json: bool) -> anyhow::Result<u8> {
    if json {
        let document = serde_json::json!({ "written": written, "check": check });
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        for path in written {
            println!("wrote {path}");
        }
        if let Some(check) = check {
            println!("check it with: {check}");
        }
    }
    Ok(0)
}

/// `pki csr` arguments.
#[derive(Debug, Args)]
pub struct CsrArgs {
    /// The XMPP domain to certify (an XMPP server certificate names it and the host).
    #[arg(long)]
    pub xmpp_domain: Option<String>,
    /// The host's FQDN.
    #[arg(long)]
    pub fqdn: Option<String>,
    /// Another DNS name or IP address to certify (an XSI host). Repeatable.
    #[arg(long = "name")]
    pub names: Vec<String>,
    /// Key algorithm.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    pub key_type: KeyType,
    /// Organisation in the subject.
    #[arg(long, default_value = "Bridgehead")]
    pub org: String,
    /// Output prefix: writes PREFIX.key (mode 0600) and PREFIX.csr.
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
    /// One JSON object (`written`, `names`, `check`) instead of text.
    #[arg(long)]
    pub json: bool,
}

fn pki_csr(args: CsrArgs) -> anyhow::Result<u8> {
    let mut names: Vec<String> = args.xmpp_domain.into_iter().chain(args.fqdn).collect();
    for name in args.names {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(usage(
            "name what the certificate is for: --xmpp-domain and --fqdn, or --name",
        ));
    }
    let (key_pem, csr_pem) = pki::issue::csr(&names, args.key_type, &args.org)?;
    let with = |suffix: &str| {
        let mut name = args.out.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (key, csr) = (with(".key"), with(".csr"));
    if !args.force {
        if let Some(existing) = [&key, &csr].into_iter().find(|p| p.exists()) {
            return Err(pki::PkiError::Exists {
                path: existing.clone(),
            }
            .into());
        }
    }
    pki::issue::write_file(&key, key_pem.as_bytes(), true, args.force)?;
    pki::issue::write_file(&csr, csr_pem.as_bytes(), false, args.force)?;
    let check = format!("openssl req -verify -noout -text -in {}", csr.display());
    if args.json {
        let document = serde_json::json!({
            "written": [key.display().to_string(), csr.display().to_string()],
            "names": names,
            "check": check,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(0);
    }
    println!("wrote {}", key.display());
    println!("wrote {} for {}", csr.display(), names.join(", "));
    println!("check it with: {check}");
    Ok(0)
}
