//! The config payload decoder accepts exactly valid v1 configs, and what it
//! accepts round-trips through the encoder.
#![no_main]
use cairn_repo_format::{Config, MasterKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Config::decode_payload(data) {
        let enc = MasterKey::generate().derive().enc;
        let again = Config::open(&enc, &c.seal(&enc)).expect("an accepted config re-encodes");
        assert_eq!(again, c);
    }
});
