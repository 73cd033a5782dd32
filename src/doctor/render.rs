//! The doctor's report as text: a verdict line per interface and target with what was
//! measured, each problem beneath it, then the numbered recommendations. (`--json` prints
//! [`super::Report`] as it is.)

use std::fmt::Write as _;

use super::{Report, Verdict};

/// The report for a terminal.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "bridgehead doctor: {}: {} ({} checks in {:.1} s)\n",
        report.domain,
        report.verdict.word(),
        report.lines.len(),
        report.elapsed_ms / 1000.0
    );
    let interface_width = report
        .lines
        .iter()
        .map(|l| l.interface.len())
        .max()
        .unwrap_or(0);
    let target_width = report
        .lines
        .iter()
        .map(|l| l.target.len())
        .max()
        .unwrap_or(0);
    for line in &report.lines {
        let _ = writeln!(
            out,
            "{:<5}  {:<iw$}  {:<tw$}  {}",
            line.verdict.word(),
            line.interface,
            line.target,
            line.summary,
            iw = interface_width,
            tw = target_width
        );
        for problem in &line.problems {
            let _ = writeln!(out, "       - {problem}");
        }
    }
    if report.recommendations.is_empty() {
        if report.verdict <= Verdict::Green {
            let _ = writeln!(out, "\nNothing to do.");
        }
    } else {
        let _ = writeln!(out, "\nRecommendations:");
        for (n, recommendation) in report.recommendations.iter().enumerate() {
            let _ = writeln!(out, "{:>3}. {recommendation}", n + 1);
        }
    }
    out
}
