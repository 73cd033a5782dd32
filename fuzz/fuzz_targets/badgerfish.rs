//! BadgerFish JSON to XML and back: any JSON is converted or refused, never a panic.
#![no_main]

use bridgehead::xsi::json::{json_to_xml, xml_to_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(xml) = json_to_xml(&value) {
            let _ = xml_to_json(&xml);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = xml_to_json(text);
    }
});
