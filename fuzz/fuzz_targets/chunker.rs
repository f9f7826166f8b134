//! Chunker invariants: chunks cover the input exactly, respect the size
//! bounds, and feeding the input in pieces gives the same cuts.
#![no_main]
use cairn_chunker::{Chunker, ChunkerParams, GearKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, Vec<u8>)| {
    let (split, data) = input;
    let params = ChunkerParams::new(64, 256, 1024, 1).expect("valid params");
    let c = Chunker::new(params, &GearKey::from_bytes([split; 32]));
    let whole = c.cut_all(&data);
    assert_eq!(whole.iter().sum::<usize>(), data.len());
    for (i, len) in whole.iter().enumerate() {
        assert!(*len <= 1024);
        assert!(*len >= 64 || i + 1 == whole.len());
    }
    let step = usize::from(split).max(1) * 7;
    let mut buf = Vec::new();
    let mut got = Vec::new();
    for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        while let Some(n) = c.next_cut(&buf, false) {
            got.push(n);
            buf.drain(..n);
        }
    }
    while let Some(n) = c.next_cut(&buf, true) {
        got.push(n);
        buf.drain(..n);
    }
    assert_eq!(got, whole);
});
