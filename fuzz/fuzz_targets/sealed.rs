//! The sealed-object envelope never panics on garbage and never accepts
//! bytes it did not produce (for a fixed key, arbitrary input must fail
//! authentication).
#![no_main]
use cairn_repo_format::{sealed, MasterKey};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static KEY: OnceLock<cairn_repo_format::EncKey> = OnceLock::new();
    let enc = KEY.get_or_init(|| MasterKey::generate().derive().enc);
    for kind in [sealed::CONFIG, sealed::SNAPSHOT, sealed::INDEX] {
        let _ = sealed::peek_version(kind, data);
        assert!(sealed::open(enc, kind, "snapshots/x", data).is_err());
    }
});
