//! Bridgehead: one binary that is the network edge for business telephony — an XMPP server
//! for call bridges (XEP-0114 components) and clients, a BroadWorks-style XSP edge (XSI
//! Actions and Events, CTI over mutual TLS), and a PKI toolkit for the certificates all of
//! this depends on.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`cli`] | the command line (`serve`, `check-config`, `pki`, `user`, `component`, `device`, `doctor`, the admin commands) |
//! | [`client`] | the XSI client library a softphone embeds: SRV discovery, one selected XSP with its affinity cookie, the Webex app's failover rules, per-interface status |
//! | [`config`] | the TOML file: typed, unknown keys refused, validated as a whole |
//! | [`server`] | `Server::bind(config)` → bound listeners → `Bound::run(shutdown)` |
//! | [`reload`] | SIGHUP, `bridgehead reload` and the certificate watch: new configuration and certificates without dropping anyone |
//! | [`supervisor`] | SIGHUP, and systemd's readiness, reload, stopping and watchdog notifications |
//! | [`shutdown`] | the cancellation token and task tracker every long-lived task obeys |
//! | [`net`] | the one accept loop: every address of a listener, pre-authentication budgets, connection limits, `TCP_NODELAY`, per-connection span |
//! | [`tls`] | the only place that builds rustls configs; start-up certificate checks |
//! | [`pki`] | verify, inspect and issue certificates (sync, no tokio) |
//! | [`store`] | persistence of the model's records, one small trait per concern; SQLite by default, PostgreSQL for a cluster |
//! | [`cluster`] | `[cluster]`: the messaging between nodes over NATS (requests for the node that owns a channel) |
//! | [`credentials`] | SCRAM-SHA-1/256 password verifiers (no clear passwords stored), the login limiter |
//! | [`doctor`] | `bridgehead doctor`, the precall test: SRV, TCP, TLS and chain, component handshake, SASL, XSI and heartbeat affinity per target, with recommendations |
//! | [`dns`] | SRV discovery with RFC 2782 ordering, A/AAAA fallback |
//! | [`embedded`] | the development PKI and demo data of the zero-config mode |
//! | [`admin`] | the plain-HTTP admin listener: `/healthz`, `/metrics`, the admin API and the status page |
//! | [`telemetry`] | metrics, rendered for Prometheus |
//! | [`xmpp`] | XEP-0114 components, c2s and WebSocket clients (SASL, rosters, presence, XEP-0198), the router, server services |
//! | [`http`] | the HTTPS front: TLS, HTTP/1.1 + HTTP/2, limits, affinity cookie, dispatch |
//! | [`telephony`] | the model: its records, who may reach whom, the service catalogue, rosters, subscriptions, call logs, the event bus; the only way `xmpp` and `xsi` reach the store |
//! | [`xsi`] | XSI-Actions and XSI-Events (channels, subscriptions, acks), CTI: auth, resources, XML and BadgerFish JSON, ErrorInfo |
//!
//! `xmpp`, `xsi` and `pki` never import each other: they meet in `telephony` and the
//! shared modules. See `docs/ARCHITECTURE.md` for the data path.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod credentials;
pub mod dns;
pub mod doctor;
pub mod embedded;
pub mod http;
pub mod net;
pub mod pki;
pub mod reload;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod telephony;
pub mod tls;
pub mod xmpp;
pub mod xsi;
