//! The index decoder never panics, and what it accepts re-encodes to the same bytes.
#![no_main]
use cairn_repo_format::IndexFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = IndexFile::decode(data) {
        assert_eq!(idx.encode(), data);
    }
});
