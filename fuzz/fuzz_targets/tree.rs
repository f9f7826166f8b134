//! The tree decoder never panics, and what it accepts round-trips.
#![no_main]
use cairn_repo_format::Tree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tree::decode(data) {
        assert_eq!(Tree::decode(&t.encode()).expect("re-encodes"), t);
    }
});
