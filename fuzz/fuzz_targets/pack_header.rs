//! The pack header decoder (after decryption) never panics and only accepts
//! entries laid end to end.
#![no_main]
use cairn_repo_format::fuzz_decode_pack_header;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = fuzz_decode_pack_header(data) {
        let mut end = 0u64;
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.number as usize, i);
            assert_eq!(e.offset, end);
            end += u64::from(e.stored_len);
        }
    }
});
