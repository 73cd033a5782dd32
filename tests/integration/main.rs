//! Integration tests: the real binary and the real server, with certificates made by
//! openssl and rcgen.
#![allow(unreachable_pub)]

mod support;

mod call_bridge;
mod calls;
mod calls_bridged;
mod calls_sip;
mod cli;
mod cli_checks;
mod cluster;
mod cti;
mod dns;
mod doctor;
mod hardening;
mod operate;
mod packaging;
mod pki_issue;
mod pki_probe;
mod pki_verify;
mod readme;
mod real_clients;
mod serve;
mod softphone;
mod status_page;
mod xmpp_client;
mod xmpp_component;
mod xsi_actions;
mod xsi_client;
mod xsi_events;
mod xsi_profile;
