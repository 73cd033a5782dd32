//! The XMPP stream reader (c2s and components): any bytes after a stream header are read
//! as stanzas or refused with a stream error, never a panic, within the element limits.
#![no_main]

use bridgehead::config::Config;
use bridgehead::xmpp::stream::{ElementLimits, StreamReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ElementLimits::from_config(&Config::embedded());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut reader = StreamReader::new(tokio::io::BufReader::new(data), limits);
        if reader.read_header().await.is_err() {
            return;
        }
        while let Ok(Some(_)) = reader.read_element().await {}
    });
});
