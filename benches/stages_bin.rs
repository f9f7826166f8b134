//! `cairn-stages FILE [BYTES]`: single-core rates of each stage on the first
//! BYTES (default 256 MiB) of FILE, best of three, as `stage<TAB>GB/s` lines;
//! the last line is the two cores' limit at the default zstd level (twice the
//! rate of the slowest backup stage), which `benches/e2e.sh` reports against.

use cairn_benches::{
    chunker, compress, compressed_sizes, cut, decode, decompress, encode, hash, Sample, LEVELS,
};
use cairn_repo_format::DEFAULT_ZSTD_LEVEL;
use std::io::Read;
use std::time::Instant;

/// GB/s of `bytes` for the best of three runs of `f`.
fn rate<T>(bytes: u64, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..3 {
        let t = Instant::now();
        let v = std::hint::black_box(f());
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(v);
    }
    // Three runs always leave a value.
    (
        bytes as f64 / best / 1e9,
        out.unwrap_or_else(|| unreachable!()),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: cairn-stages FILE [BYTES]");
        std::process::exit(2);
    };
    let limit: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(256 << 20);
    let mut data = Vec::new();
    if let Err(e) = std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut data)) {
        eprintln!("cairn-stages: {path}: {e}");
        std::process::exit(1);
    }
    let s = Sample::new(data);
    let n = s.data.len() as u64;
    let ch = chunker(&s.keys);
    let (r_cut, _) = rate(n, || cut(&ch, &s.data));
    let (r_hash, ids) = rate(n, || hash(&s));
    println!("FastCDC cut\t{r_cut:.3}");
    println!("keyed BLAKE3\t{r_hash:.3}");
    let mut slowest = r_cut.min(r_hash);
    let mut default_blobs = Vec::new();
    for level in LEVELS {
        let (r, blobs) = rate(n, || compress(&s, &ids, level));
        let (raw, stored) = compressed_sizes(&blobs);
        let mark = if level == DEFAULT_ZSTD_LEVEL {
            " (default)"
        } else {
            ""
        };
        println!(
            "zstd {level}{mark} compress, ratio {:.2}\t{r:.3}",
            raw as f64 / stored.max(1) as f64
        );
        if level == DEFAULT_ZSTD_LEVEL {
            slowest = slowest.min(r);
            default_blobs = blobs;
        }
    }
    let stored: u64 = default_blobs.iter().map(|b| b.bytes.len() as u64).sum();
    let (r_enc, packs) = rate(stored, || encode(&s.keys, &default_blobs, 32 << 20));
    println!("AES-256-GCM pack encode (of stored bytes)\t{r_enc:.3}");
    // Per input byte, encryption sees only the compressed bytes.
    slowest = slowest.min(r_enc * n as f64 / stored.max(1) as f64);
    let (r_dz, _) = rate(compressed_sizes(&default_blobs).0, || {
        decompress(&default_blobs)
    });
    println!("zstd decompress (of output)\t{r_dz:.3}");
    let (r_dec, _) = rate(n, || decode(&s.keys, &packs));
    println!("pack decode: decrypt, decompress, verify (of output)\t{r_dec:.3}");
    println!("two-core limit\t{:.3}", 2.0 * slowest);
}
