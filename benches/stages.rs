//! Criterion benchmarks of each stage, single-threaded, on 16 MiB of the
//! benchmark SQL dump: cut, keyed hash, zstd at the levels worth offering,
//! pack encode (AES-256-GCM) and pack decode (decrypt, decompress, verify).
//! `cargo bench -p cairn-benches`. Throughput is per input byte. Pack
//! encode includes filling a freshly allocated pack buffer (its first-touch
//! page faults), as each new pack in the pipeline does, so `pack_encode_raw`
//! is AES-256-GCM plus that copy, not the cipher alone.

use cairn_benches::{
    chunker, compress, cut, decode, decompress, encode, hash, sql_sample, uncompressed, Sample,
    LEVELS,
};
use cairn_repo_format::DEFAULT_ZSTD_LEVEL;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn stages(c: &mut Criterion) {
    let s = Sample::new(sql_sample(16 << 20));
    let n = s.data.len() as u64;
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Bytes(n)).sample_size(10);
    let ch = chunker(&s.keys);
    g.bench_function("fastcdc_cut", |b| b.iter(|| cut(&ch, black_box(&s.data))));
    g.bench_function("keyed_blake3", |b| b.iter(|| hash(black_box(&s))));
    let ids = hash(&s);
    for level in LEVELS {
        g.bench_function(format!("zstd_{level}"), |b| {
            b.iter(|| compress(black_box(&s), &ids, level))
        });
    }
    let blobs = compress(&s, &ids, DEFAULT_ZSTD_LEVEL);
    let raw = uncompressed(&s, &ids);
    g.bench_function("zstd_decompress", |b| {
        b.iter(|| decompress(black_box(&blobs)))
    });
    g.bench_function("pack_encode_compressed", |b| {
        b.iter(|| encode(&s.keys, black_box(&blobs), 32 << 20))
    });
    g.bench_function("pack_encode_raw", |b| {
        b.iter(|| encode(&s.keys, black_box(&raw), 32 << 20))
    });
    let packs = encode(&s.keys, &blobs, 32 << 20);
    g.bench_function("pack_decode", |b| {
        b.iter(|| decode(&s.keys, black_box(&packs)))
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
