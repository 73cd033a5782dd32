//! SASL messages from clients: PLAIN, the SCRAM client-first message of every mechanism,
//! and base64 payloads are parsed or refused with a SASL failure, never a panic.
#![no_main]

use bridgehead::xmpp::sasl::{decode, parse_client_first, parse_plain, Mechanism};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_plain(data);
    for mechanism in Mechanism::ALL {
        let _ = parse_client_first(data, mechanism, true);
        let _ = parse_client_first(data, mechanism, false);
    }
    let _ = decode(&String::from_utf8_lossy(data));
});
