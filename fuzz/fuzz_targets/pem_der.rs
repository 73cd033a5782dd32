//! Certificate input of `bridgehead pki`: PEM or DER bytes are read or refused with an
//! input error, never a panic.
#![no_main]

use bridgehead::pki::input::parse_certificates;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_certificates(std::path::Path::new("fuzz-input"), "input", data);
});
