//! The index decoder never panics, and what it accepts re-encodes to the
//! same bytes (a version 2 file that lists only its own session's packs
//! re-encodes as version 1, which says the same).
#![no_main]
use cairn_repo_format::{IndexFile, SessionId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let session = SessionId::from_bytes([7; 32]);
    if let Ok(idx) = IndexFile::decode(data, session) {
        let again = idx.encode(session);
        if data[0] == 2 && idx.packs.iter().all(|p| p.session == session) {
            assert_eq!(again[0], 1);
            assert_eq!(IndexFile::decode(&again, session).ok(), Some(idx));
        } else {
            assert_eq!(again, data);
        }
    }
});
