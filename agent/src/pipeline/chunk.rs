//! Cutting one file or stream into chunks and handing them to the sink.

use super::{BlobSink, PipelineError, Stats};
use bytes::{Bytes, BytesMut};
use cairn_chunker::Chunker;
use cairn_repo_format::ChunkId;
use std::io::Read;

/// Bytes read from a file at a time.
pub const READ_SIZE: usize = 4 << 20;

/// Holes shorter than this are read as data (zeros), so that a file with
/// many small holes is not cut into many small chunks.
pub const HOLE_MIN: u64 = 1 << 20;

/// A file's data and holes as (start, end, is a hole), holes of at least
/// [`HOLE_MIN`] only, in order, covering `0..len`.
fn segments(file: &std::fs::File, len: u64) -> std::io::Result<Vec<(u64, u64, bool)>> {
    use rustix::fs::SeekFrom;
    let mut out: Vec<(u64, u64, bool)> = Vec::new();
    let mut push = |start: u64, end: u64, hole: bool| {
        if start >= end {
            return;
        }
        let hole = hole && end - start >= HOLE_MIN;
        match out.last_mut() {
            Some(last) if !last.2 && !hole => last.1 = end,
            _ => out.push((start, end, hole)),
        }
    };
    let mut pos = 0u64;
    while pos < len {
        let data = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(d) => d.min(len),
            // No data after `pos`: a hole to the end.
            Err(rustix::io::Errno::NXIO) => len,
            Err(e) => return Err(e.into()),
        };
        push(pos, data, true);
        if data >= len {
            break;
        }
        let hole = rustix::fs::seek(file, SeekFrom::Hole(data))
            .map_err(std::io::Error::from)?
            .min(len);
        push(data, hole, false);
        pos = hole;
    }
    Ok(out)
}

/// Chunks one file or stream at a time; reuses its buffer across files.
#[derive(Debug)]
pub struct StreamChunker {
    chunker: Chunker,
    buf: BytesMut,
}

/// The chunks of one file or stream, as they are stored.
#[derive(Debug, Default)]
pub struct Content {
    /// Chunk ids in order, since the last content list.
    pub ids: Vec<ChunkId>,
    /// Content lists stored so far (format §7.4), each of the sink's
    /// `list_ids` ids.
    pub lists: Vec<ChunkId>,
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

    /// Reads a sparse file: its data through the chunker, and each hole of
    /// at least [`HOLE_MIN`] bytes (found with `SEEK_DATA`/`SEEK_HOLE`, so
    /// never read) as chunks of zeros of the largest chunk size, with a cut
    /// where the hole starts. The chunks depend only on the file's data and
    /// where its holes are. Counts bytes read (holes included).
    ///
    /// # Errors
    /// As [`StreamChunker::read_all`].
    pub fn read_sparse(
        &mut self,
        sink: &mut BlobSink,
        file: &std::fs::File,
        len: u64,
        out: &mut Content,
    ) -> Result<(), Result<std::io::Error, PipelineError>> {
        use std::io::{Seek, SeekFrom};
        let max = self.chunker.params().max_size() as usize;
        for (start, end, hole) in segments(file, len).map_err(Ok)? {
            if hole {
                self.cut(sink, true, out).map_err(Err)?;
                sink.submit_zeros(end - start, max, out).map_err(Err)?;
                out.size += end - start;
            } else {
                let mut f = file;
                f.seek(SeekFrom::Start(start)).map_err(Ok)?;
                self.read_all(sink, &mut f.take(end - start), end - start, out)?;
            }
        }
        Ok(())
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
        sink.submit_data(self.cut_buffered(eof), out)
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
