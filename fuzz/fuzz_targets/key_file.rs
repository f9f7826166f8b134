//! The key-file parser never panics and never accepts out-of-bounds KDF costs.
#![no_main]
use cairn_repo_format::keyfile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = keyfile::parse(data) {
        // Parsing is all: running Argon2 with fuzzed (but bounded) costs would
        // only measure the KDF.
        let _ = k.params();
    }
});
