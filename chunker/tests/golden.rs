//! Golden vectors: the exact cut points and ids of a deterministic fixture under
//! fixed keys. Any change here changes which chunks existing repositories hold,
//! so it is a repository format change (docs/format.md §9), never a refactor.

use cairn_chunker::{Chunker, ChunkerParams, GearKey, IdKey};

/// 4 MiB of SQL-COPY-like text from a fixed xorshift64 stream: the fixture is
/// generated rather than stored, and pinned by its BLAKE3 hash below.
fn fixture() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "orders",
        "users",
        "NULL",
        "2026-11-21",
        "paid",
        "open",
    ];
    let mut out = Vec::with_capacity(4 << 20);
    let mut row = 0u64;
    while out.len() < 4 << 20 {
        row += 1;
        let r = next();
        let w = words[usize::from(u8::try_from(r % 10).unwrap_or(0))];
        let line = format!(
            "{row}\t{w}\t{}\t{}.{:02}\n",
            r >> 40,
            (r >> 8) % 100_000,
            r % 100
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(4 << 20);
    out
}

fn chunker() -> Chunker {
    Chunker::new(
        ChunkerParams::DEFAULT,
        &GearKey::from_bytes(*b"cairn golden vector gear key 01!"),
    )
}

#[test]
fn fixture_is_stable() {
    assert_eq!(
        blake3::hash(&fixture()).to_hex().as_str(),
        "fa5ab23843f4ae79c90eaae44462d9c7750046ac346a0a7b1ba58c691172ecbc"
    );
}

#[test]
fn cut_points_with_default_params() {
    let lens = chunker().cut_all(&fixture());
    assert_eq!(
        lens,
        [
            118263, 245763, 137865, 237912, 132801, 163828, 100238, 227138, 176415, 34656, 151602,
            62392, 51320, 38711, 118120, 209169, 144134, 159420, 189240, 153825, 204784, 256431,
            124124, 94025, 183117, 156726, 229554, 92731,
        ]
    );
}

#[test]
fn ids_of_first_and_last_chunk() {
    let data = fixture();
    let lens = chunker().cut_all(&data);
    let ids = IdKey::from_bytes(*b"cairn golden vector id key 0001!");
    let first = ids.chunk_id(&data[..lens[0]]);
    let last = ids.chunk_id(&data[data.len() - lens[lens.len() - 1]..]);
    assert_eq!(
        first.to_hex(),
        "0195dfd84aa31fe0a540ea41be385e99996c7693c8813aa62420cc2bce1cf806"
    );
    assert_eq!(
        last.to_hex(),
        "7074cacd3238df6bd3e23bbfe28892975018e9fb0d791177fb76bc10f9091da4"
    );
}
