//! Networking shared by every listener.

pub mod listener;
pub mod probe;
