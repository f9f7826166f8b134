//! The backup and restore stages, one at a time and single-threaded, on
//! the same inputs the end-to-end benchmark uses: shared by the criterion
//! benchmarks (`benches/stages.rs`) and `cairn-stages`, which prints the
//! rates that `benches/e2e.sh` compares the whole pipeline with.

use cairn_chunker::{Chunker, ChunkerParams};
use cairn_repo_format::{
    BlobCompressor, BlobDecompressor, BlobEntry, BlobKind, ChunkId, Compression, MasterKey,
    PackCipher, PackWriter, RepoKeys, SessionId,
};
use std::ops::Range;

/// zstd levels worth comparing: the fast (negative) levels, 1 and 3.
pub const LEVELS: [i32; 4] = [-3, -1, 1, 3];

/// Input and its chunks, cut with the default parameters under a fresh key.
#[derive(Debug)]
pub struct Sample {
    /// The keys (fresh for every sample).
    pub keys: RepoKeys,
    /// The input.
    pub data: Vec<u8>,
    /// Its chunks.
    pub chunks: Vec<Range<usize>>,
}

impl Sample {
    /// Cuts `data` into chunks with the default chunker parameters.
    pub fn new(data: Vec<u8>) -> Self {
        let keys = MasterKey::generate().derive();
        let chunks = cut(&chunker(&keys), &data);
        Self { keys, data, chunks }
    }

    /// The chunk slices.
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().map(|r| &self.data[r.clone()])
    }
}

/// The default chunker under `keys`.
pub fn chunker(keys: &RepoKeys) -> Chunker {
    Chunker::new(ChunkerParams::DEFAULT, &keys.gear)
}

/// Stage: FastCDC cut points of a whole input.
pub fn cut(chunker: &Chunker, data: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(n) = chunker.next_cut(&data[at..], true) {
        out.push(at..at + n);
        at += n;
    }
    out
}

/// Stage: keyed BLAKE3 ids of every chunk.
pub fn hash(s: &Sample) -> Vec<ChunkId> {
    s.slices().map(|c| s.keys.id.chunk_id(c)).collect()
}

/// A chunk as the packer receives it.
#[derive(Debug)]
pub struct Stored {
    /// Its id.
    pub id: ChunkId,
    /// Its plaintext length.
    pub raw_len: usize,
    /// How it is stored.
    pub compression: Compression,
    /// The bytes to encrypt.
    pub bytes: Vec<u8>,
}

/// Stage: zstd at `level`, chunk by chunk (kept raw where it does not shrink).
///
/// # Panics
/// If zstd refuses the level.
pub fn compress(s: &Sample, ids: &[ChunkId], level: i32) -> Vec<Stored> {
    let mut z = BlobCompressor::new(level).unwrap_or_else(|e| panic!("zstd level {level}: {e}"));
    s.slices()
        .zip(ids)
        .map(|(c, id)| {
            let (compression, bytes) = match z.compress(c) {
                Some(b) => (Compression::Zstd, b.to_vec()),
                None => (Compression::None, c.to_vec()),
            };
            Stored {
                id: *id,
                raw_len: c.len(),
                compression,
                bytes,
            }
        })
        .collect()
}

/// The chunks as they are, for encryption alone.
pub fn uncompressed(s: &Sample, ids: &[ChunkId]) -> Vec<Stored> {
    s.slices()
        .zip(ids)
        .map(|(c, id)| Stored {
            id: *id,
            raw_len: c.len(),
            compression: Compression::None,
            bytes: c.to_vec(),
        })
        .collect()
}

/// A pack written by [`encode`], with what is needed to read it back.
#[derive(Debug)]
pub struct Pack {
    /// Its session.
    pub session: SessionId,
    /// The finished pack.
    pub pack: cairn_repo_format::FinishedPack,
}

/// Stage: AES-256-GCM into packs of `pack_size` blob bytes (pack encode).
///
/// # Panics
/// If a blob breaks a format limit (never for chunker output).
pub fn encode(keys: &RepoKeys, blobs: &[Stored], pack_size: usize) -> Vec<Pack> {
    let session = SessionId::random();
    let mut packs = Vec::new();
    let mut w = PackWriter::new(&keys.enc, session, pack_size + (1 << 20));
    for b in blobs {
        w.add(b.id, BlobKind::Data, b.raw_len, b.compression, &b.bytes)
            .unwrap_or_else(|e| panic!("{e}"));
        if w.blob_bytes() >= pack_size as u64 {
            let full = std::mem::replace(
                &mut w,
                PackWriter::new(&keys.enc, session, pack_size + (1 << 20)),
            );
            packs.push(Pack {
                session,
                pack: full.finish(),
            });
        }
    }
    if w.blob_count() > 0 {
        packs.push(Pack {
            session,
            pack: w.finish(),
        });
    }
    packs
}

/// Stage: decrypt, decompress and verify every blob of `packs` (pack decode).
/// Returns the plaintext bytes restored.
///
/// # Panics
/// If a blob fails to open (never for [`encode`]'s output).
pub fn decode(keys: &RepoKeys, packs: &[Pack]) -> u64 {
    let mut dec = BlobDecompressor::new().unwrap_or_else(|e| panic!("{e}"));
    let mut total = 0u64;
    for p in packs {
        let cipher = PackCipher::new(&keys.enc, p.session, p.pack.id);
        for e in &p.pack.entries {
            total += open(&cipher, keys, e, &p.pack.bytes, &mut dec);
        }
    }
    total
}

fn open(
    cipher: &PackCipher,
    keys: &RepoKeys,
    e: &BlobEntry,
    pack: &[u8],
    dec: &mut BlobDecompressor,
) -> u64 {
    let at = usize::try_from(e.offset).unwrap_or(usize::MAX);
    let stored = &pack[at..at + e.stored_len as usize];
    let plain = cipher
        .open_blob(&keys.id, e, stored, dec)
        .unwrap_or_else(|err| panic!("{err}"));
    plain.len() as u64
}

/// Stage: zstd decompression alone, of blobs compressed by [`compress`].
///
/// # Panics
/// If a blob does not decompress (never for [`compress`]'s output).
pub fn decompress(blobs: &[Stored]) -> u64 {
    let mut d = zstd::bulk::Decompressor::new().unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let mut total = 0u64;
    for b in blobs.iter().filter(|b| b.compression == Compression::Zstd) {
        out.clear();
        out.reserve(b.raw_len);
        total += d
            .decompress_to_buffer(&b.bytes, &mut out)
            .unwrap_or_else(|e| panic!("{e}")) as u64;
    }
    total
}

/// Bytes of the blobs that [`compress`] stored compressed, before and after.
pub fn compressed_sizes(blobs: &[Stored]) -> (u64, u64) {
    blobs
        .iter()
        .filter(|b| b.compression == Compression::Zstd)
        .fold((0, 0), |(r, s), b| {
            (r + b.raw_len as u64, s + b.bytes.len() as u64)
        })
}

/// The deterministic SQL dump the end-to-end benchmark uses, `len` bytes.
pub fn sql_sample(len: usize) -> Vec<u8> {
    let mut d = cairn_e2e::sql_dump(len, 7);
    d.truncate(len);
    d
}
