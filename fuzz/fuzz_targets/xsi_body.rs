//! XSI-Actions PUT bodies of service settings: the first byte picks the service and the
//! representation (XML or BadgerFish JSON), the rest is the body. It is read and laid over
//! the defaults, or refused with an ErrorInfo, never a panic.
#![no_main]

use bridgehead::telephony::{ServiceName, ServiceSettings};
use bridgehead::xsi::codec::{parse_tree, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let service = ServiceName::ALL[usize::from(choice >> 1) % ServiceName::ALL.len()];
    let format = if choice & 1 == 0 {
        Format::Xml
    } else {
        Format::Json
    };
    if let Ok(tree) = parse_tree(body, format, service.as_str(), 64) {
        if let Ok(settings) = ServiceSettings::default_for(service).apply(&tree) {
            let _ = settings.validate();
        }
    }
});
