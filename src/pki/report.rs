//! Rendering a [`Report`] for people (one line per check) and for machines (`--json`).

use serde::Serialize;

use super::verify::{day, rfc3339, Finding, Report, Status};
use super::Certificate;

/// One certificate of the path, for the JSON report.
#[derive(Debug, Serialize)]
pub struct PathEntry {
    /// `leaf`, `intermediate` or `root`.
    pub role: &'static str,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number.
    pub serial: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Where it was read from.
    pub source: String,
}

/// The JSON document `pki verify --json` prints.
#[derive(Debug, Serialize)]
pub struct JsonReport<'a> {
    /// Worst status.
    pub status: Status,
    /// The process exit code.
    pub exit_code: u8,
    /// Validation time, RFC 3339.
    pub validated_at: String,
    /// Every check.
    pub checks: &'a [Finding],
    /// The path from the leaf towards the trust anchor.
    pub chain: Vec<PathEntry>,
}

/// The JSON form of a report.
pub fn json(report: &Report) -> JsonReport<'_> {
    let last = report.path.len().saturating_sub(1);
    let chain = report
        .path
        .iter()
        .enumerate()
        .map(|(i, c): (usize, &Certificate)| PathEntry {
            role: match i {
                0 => "leaf",
                _ if i == last && c.is_self_signed() => "root",
                _ => "intermediate",
            },
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            serial: c.serial.clone(),
            not_after: rfc3339(c.not_after),
            source: c.origin.to_string(),
        })
        .collect();
    json_of(&report.findings, report.at, chain)
}

/// The worst status of `findings` and its exit code (0 all OK, 1 warnings only, 2 any FAIL).
pub fn verdict(findings: &[Finding]) -> (Status, u8) {
    let status = findings
        .iter()
        .map(|f| f.status)
        .max()
        .unwrap_or(Status::Ok);
    let code = match status {
        Status::Ok => 0,
        Status::Warn => 1,
        Status::Fail => 2,
    };
    (status, code)
}

/// The JSON form of `findings` at `at` with the certificates of `chain` (none when no
/// certificate was read, e.g. a server that could not be reached).
pub fn json_of(
    findings: &[Finding],
    at: time::OffsetDateTime,
    chain: Vec<PathEntry>,
) -> JsonReport<'_> {
    let (status, exit_code) = verdict(findings);
    JsonReport {
        status,
        exit_code,
        validated_at: rfc3339(at),
        checks: findings,
        chain,
    }
}

/// The human form: one line per check, then a summary line.
pub fn text(report: &Report) -> String {
    text_of(&report.findings, report.at)
}

/// The human form of `findings` at `at`.
pub fn text_of(findings: &[Finding], at: time::OffsetDateTime) -> String {
    let mut out = String::new();
    for f in findings {
        let rule = f.rule.map_or_else(String::new, |r| format!("[{r}] "));
        out.push_str(&format!(
            "{:<4} {:<9} {rule}{}\n",
            f.status.word(),
            f.check,
            f.reason
        ));
    }
    let count = |s: Status| findings.iter().filter(|f| f.status == s).count();
    out.push_str(&format!(
        "result: {} ({} failed, {} warning(s), {} ok) at {}\n",
        verdict(findings).0.word(),
        count(Status::Fail),
        count(Status::Warn),
        count(Status::Ok),
        day(at)
    ));
    out
}
