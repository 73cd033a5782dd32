//! Bridgehead: an edge server for business telephony.
#![forbid(unsafe_code)]

pub mod pki;
pub mod config;
pub mod credentials;
pub mod store;
