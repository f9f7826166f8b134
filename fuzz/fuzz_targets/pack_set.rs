//! The decoder of plans and deletion sets (format §10.1) never panics, and
//! what it accepts re-encodes to the same bytes.
#![no_main]
use cairn_repo_format::PackSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = PackSet::decode("plan", data) {
        assert_eq!(set.encode(), data);
    }
});
