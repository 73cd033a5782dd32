//! Helpers the load generators share (included with `#[path]`; not an example itself).

use std::time::Duration;

/// The `p` percentile of `sorted` latencies, in milliseconds (0 when empty).
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len().max(1) - 1) as f64 * p).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Resident memory of process `pid` in KiB, from `/proc/PID/status` (0 if unreadable).
#[allow(dead_code)] // not every generator reads memory
pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// A TLS client configuration (HTTP/1.1 by ALPN) trusting the bench server's development CA.
#[allow(dead_code)] // not every generator speaks HTTPS
pub(crate) fn bench_tls(config: &bridgehead::config::Config) -> rustls::ClientConfig {
    let roots: Vec<_> =
        bridgehead::pki::input::read_certificates(&config.dev_pki_dir().join("ca.crt"))
            .expect("the bench CA (start the server with the bench config once)")
            .into_iter()
            .map(|c| c.der)
            .collect();
    let mut tls = (*bridgehead::tls::client_config(&roots).expect("TLS")).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    tls
}
