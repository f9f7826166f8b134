//! Live counters of a backup, shared by the pipeline's stages, the source
//! readers and whoever shows progress.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, shared with the progress display.
#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes read from the source.
    pub bytes_read: AtomicU64,
    /// Bytes of files not read because they are unchanged since the
    /// parent snapshot (with `bytes_read`: how far a backup has come).
    pub skipped_bytes: AtomicU64,
    /// Plaintext bytes of new data chunks (file and stream content, not
    /// trees).
    pub new_bytes: AtomicU64,
    /// Bytes of packs uploaded.
    pub stored_bytes: AtomicU64,
    /// New data chunks.
    pub new_chunks: AtomicU64,
    /// All data chunks seen.
    pub total_chunks: AtomicU64,
    /// Packs uploaded.
    pub packs: AtomicU64,
    /// Bytes the source is expected to give, when known (0: unknown), for
    /// an estimate of the time left.
    pub expected_bytes: AtomicU64,
}

impl Stats {
    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
