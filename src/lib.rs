//! Bridgehead: an edge server for business telephony.
#![forbid(unsafe_code)]

pub mod pki;
pub mod config;
pub mod credentials;
pub mod store;
pub mod admin;
pub mod cli;
pub mod embedded;
pub mod net;
pub mod server;
pub mod shutdown;
pub mod tls;
