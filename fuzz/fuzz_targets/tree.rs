//! The tree and content list decoders never panic, and what they accept
//! round-trips.
#![no_main]
use cairn_repo_format::{decode_list, encode_list, Tree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tree::decode(data) {
        assert_eq!(Tree::decode(&t.encode()).expect("re-encodes"), t);
    }
    if let Ok(ids) = decode_list(data) {
        assert_eq!(encode_list(&ids), data);
    }
});
