//! `bridgehead pki verify|inspect|issue`: the PKI toolkit's commands and their arguments.

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
    /// Show every certificate in the given files.
    Inspect(InspectArgs),
    /// Issue development and test certificates.
    #[command(subcommand)]
    Issue(IssueCommand),
}

/// `pki verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The certificate: a leaf, or a full chain in any order.
    #[arg(long)]
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1, SEC1, or encrypted PKCS#8).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// File with the password of an encrypted key (first line).
    #[arg(long)]
    pub key_pass_file: Option<PathBuf>,
    /// Extra intermediate certificates, any order, extras allowed.
    #[arg(long)]
    pub intermediates: Option<PathBuf>,
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
    /// Write the chain in serving order (leaf, then each issuer, no root) to this file.
    #[arg(long, value_name = "OUT")]
    pub fix_order: Option<PathBuf>,
    /// Overwrite the --fix-order file if it exists.
    #[arg(long)]
    pub force: bool,
    /// One JSON object with every check instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `pki inspect` arguments.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// PEM files holding certificates.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Days left are counted from this time (RFC 3339). Default: now.
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
    /// A TLS server certificate (serverAuth) for the given names.
    Server {
        /// A DNS name or IP address for the SANs; the first is also the CN. Repeatable.
        #[arg(long = "name", required = true)]
        names: Vec<String>,
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

pub(super) fn pki_command(command: PkiCommand) -> anyhow::Result<u8> {
    match command {
        PkiCommand::Verify(args) => pki_verify(args),
        PkiCommand::Inspect(args) => pki_inspect(args),
        PkiCommand::Issue(command) => pki_issue(command),
    }
}

fn pki_verify(args: VerifyArgs) -> anyhow::Result<u8> {
    match args.profile {
        Some(Profile::XmppServer) if args.xmpp_domain.is_none() || args.fqdn.is_none() => {
            return Err(usage(
                "--profile xmpp-server needs --xmpp-domain and --fqdn (the certificate must name both)",
            ))
        }
        Some(Profile::XsiServer) if args.names.is_empty() => {
            return Err(usage("--profile xsi-server needs at least one --name"))
        }
        _ => {}
    }
    let password = args
        .key_pass_file
        .as_deref()
        .map(pki::input::read_password)
        .transpose()?;
    let input = VerifyInput {
        certificates: pki::input::read_certificates(&args.cert)?,
        key: args
            .key
            .as_deref()
            .map(|k| pki::input::read_private_key(k, password.as_deref()))
            .transpose()?,
        intermediates: match &args.intermediates {
            Some(path) => pki::input::read_certificates(path)?,
            None => Vec::new(),
        },
        trust: pki::load_trust(args.trust.as_deref())?,
        at: args.at.unwrap_or_else(OffsetDateTime::now_utc),
        names: args.names,
        profile: args.profile,
        xmpp_domain: args.xmpp_domain,
        fqdn: args.fqdn,
        cti_allowed_cns: args.cti_cns,
        warn_days: i64::from(args.warn_days),
    };
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
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&pki::report::json(&report))?
        );
    } else {
        print!("{}", pki::report::text(&report));
    }
    Ok(report.exit_code())
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
            names,
            xmpp_addrs,
            common,
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
    for path in &paths {
        println!("wrote {}", path.display());
    }
    if let Some(profile) = profile {
        println!(
            "check it with: bridgehead pki verify --cert {} --key {} --trust <root CA> --profile {profile}",
            paths[2].display(),
            paths[0].display()
        );
    }
    Ok(0)
}
