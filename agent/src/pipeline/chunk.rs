//! Cutting one file or stream into chunks and handing them to the sink.

use super::{BlobSink, PipelineError, Stats};
use bytes::{Bytes, BytesMut};
use cairn_chunker::Chunker;
use cairn_repo_format::ChunkId;
use std::io::Read;

/// Bytes read from a file at a time.
pub const READ_SIZE: usize = 4 << 20;

/// Chunks one file or stream at a time; reuses its buffer across files.
#[derive(Debug)]
pub struct StreamChunker {
    chunker: Chunker,
    buf: BytesMut,
}

/// The chunks of one file or stream.
#[derive(Debug, Default)]
pub struct Content {
    /// Chunk ids in order.
    pub ids: Vec<ChunkId>,
    /// Total length.
    pub size: u64,
}

impl StreamChunker {
    /// A chunker with an empty buffer.
    pub fn new(chunker: Chunker) -> Self {
        Self {
            chunker,
            buf: BytesMut::with_capacity(2 * READ_SIZE),
        }
    }

    /// The chunks of a stream's next buffer whose cuts are certain. Chunks
    /// that lie wholly inside `data` are slices of it (no copy); only a chunk
    /// that straddles two buffers is assembled in the carry buffer.
    pub fn cut_buffer(&mut self, mut data: Bytes) -> Vec<Bytes> {
        let mut chunks = Vec::new();
        // Finish the chunk begun in an earlier buffer, copying from `data`
        // only up to its cut; the bytes after the cut stay in `data`.
        while !self.buf.is_empty() && !data.is_empty() {
            let max = self.chunker.params().max_size() as usize;
            let old = self.buf.len();
            let add = max.saturating_sub(old).min(data.len());
            self.buf.extend_from_slice(&data[..add]);
            let Some(n) = self.chunker.next_cut(&self.buf, false) else {
                // `data` is used up (else `buf` would hold `max` bytes).
                return chunks;
            };
            chunks.push(self.buf.split_to(n).freeze());
            if n >= old {
                // The cut is in the copied part: resume in `data` itself.
                self.buf.clear();
                let _ = data.split_to(n - old);
            } else {
                // Rare: a cut inside the carried bytes; the copy stays.
                let _ = data.split_to(add);
            }
        }
        if self.buf.is_empty() {
            while let Some(n) = self.chunker.next_cut(&data, false) {
                chunks.push(data.split_to(n));
            }
            self.buf.extend_from_slice(&data);
        }
        chunks
    }

    /// Reads `r` to its end through the chunker. Counts bytes read.
    /// `expected` is the size `r` should have (a file's length): reads ask
    /// for no more than what is left of it (and one byte, to see the end),
    /// because the buffer they read into is zeroed first, and zeroing
    /// [`READ_SIZE`] for every small file of a tree cost more than reading it.
    ///
    /// # Errors
    /// The read error (as `Err(Ok(e))`), or a pipeline error (as `Err(Err(e))`).
    pub fn read_all(
        &mut self,
        sink: &mut BlobSink,
        r: &mut impl Read,
        expected: u64,
        out: &mut Content,
    ) -> Result<(), Result<std::io::Error, PipelineError>> {
        let start = out.size;
        loop {
            let old = self.buf.len();
            let left = expected.saturating_sub(out.size - start);
            let want = usize::try_from(left)
                .map_or(READ_SIZE, |l| l.saturating_add(1).clamp(4096, READ_SIZE));
            self.buf.resize(old + want, 0);
            let n = loop {
                match r.read(&mut self.buf[old..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.buf.clear();
                        return Err(Ok(e));
                    }
                }
            };
            self.buf.truncate(old + n);
            if n == 0 {
                return Ok(());
            }
            out.size += n as u64;
            Stats::add(&sink.stats().bytes_read, n as u64);
            self.cut(sink, false, out).map_err(Err)?;
        }
    }

    /// Emits the rest as the last chunks of this file or stream.
    ///
    /// # Errors
    /// [`PipelineError::Aborted`] if a later stage stopped.
    pub fn finish(&mut self, sink: &mut BlobSink, out: &mut Content) -> Result<(), PipelineError> {
        self.cut(sink, true, out)
    }

    /// Drops buffered data of a file that could not be read to its end.
    pub fn discard(&mut self) {
        self.buf.clear();
    }

    /// The chunks of the buffered bytes whose cuts are certain, or all of
    /// them at the end of the input (`eof`).
    pub fn cut_buffered(&mut self, eof: bool) -> Vec<Bytes> {
        let mut chunks = Vec::new();
        while let Some(n) = self.chunker.next_cut(&self.buf, eof) {
            chunks.push(self.buf.split_to(n).freeze());
        }
        chunks
    }

    fn cut(
        &mut self,
        sink: &mut BlobSink,
        eof: bool,
        out: &mut Content,
    ) -> Result<(), PipelineError> {
        sink.submit_data(self.cut_buffered(eof), &mut out.ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_chunker::{ChunkerParams, GearKey};
    use proptest::prelude::*;
    use rand::{RngCore, SeedableRng};

    proptest! {
        /// Buffers of any sizes give exactly the chunks of the whole stream.
        #[test]
        fn buffers_cut_like_the_whole(
            seed in any::<u64>(),
            len in 0usize..40_000,
            sizes in proptest::collection::vec(1usize..6000, 1..30),
        ) {
            let params = ChunkerParams::new(256, 1024, 4096, 1).unwrap_or_else(|e| panic!("{e}"));
            let chunker = Chunker::new(params, &GearKey::from_bytes([5; 32]));
            let mut data = vec![0u8; len];
            rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
            let whole: Vec<Vec<u8>> = {
                let mut at = 0;
                chunker.cut_all(&data).into_iter().map(|n| { at += n; data[at - n..at].to_vec() }).collect()
            };
            let mut sc = StreamChunker::new(chunker);
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut at = 0;
            for size in sizes.iter().cycle() {
                if at >= data.len() {
                    break;
                }
                let n = (*size).min(data.len() - at);
                let piece = Bytes::copy_from_slice(&data[at..at + n]);
                got.extend(sc.cut_buffer(piece).iter().map(|c| c.to_vec()));
                at += n;
            }
            got.extend(sc.cut_buffered(true).iter().map(|c| c.to_vec()));
            prop_assert_eq!(got, whole);
        }
    }
}
