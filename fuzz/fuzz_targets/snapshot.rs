//! The snapshot decoder never panics, and what it accepts round-trips.
#![no_main]
use cairn_repo_format::{MasterKey, Snapshot, SnapshotId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = Snapshot::decode_payload(data) {
        let enc = MasterKey::generate().derive().enc;
        let id = SnapshotId::random();
        assert_eq!(Snapshot::open(&enc, id, &s.seal(&enc, id)).expect("re-encodes"), s);
    }
});
