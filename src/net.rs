//! Networking shared by every listener.

pub mod listener;
