//! Cutting one file or stream into chunks and handing them to the sink.

use super::{BlobSink, PipelineError, Stats};
use bytes::BytesMut;
use cairn_chunker::Chunker;
use cairn_repo_format::{BlobKind, ChunkId};
use std::io::Read;

/// Bytes read from a file at a time.
pub const READ_SIZE: usize = 1 << 20;

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

    /// Appends data and emits every chunk whose cut is now certain.
    ///
    /// # Errors
    /// [`PipelineError::Aborted`] if a later stage stopped.
    pub fn feed(
        &mut self,
        sink: &mut BlobSink,
        data: &[u8],
        out: &mut Content,
    ) -> Result<(), PipelineError> {
        self.buf.extend_from_slice(data);
        out.size += data.len() as u64;
        self.cut(sink, false, out)
    }

    /// Reads `r` to its end through the chunker. Counts bytes read.
    ///
    /// # Errors
    /// The read error (as `Err(Ok(e))`), or a pipeline error (as `Err(Err(e))`).
    pub fn read_all(
        &mut self,
        sink: &mut BlobSink,
        r: &mut impl Read,
        out: &mut Content,
    ) -> Result<(), Result<std::io::Error, PipelineError>> {
        loop {
            let old = self.buf.len();
            self.buf.resize(old + READ_SIZE, 0);
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

    fn cut(
        &mut self,
        sink: &mut BlobSink,
        eof: bool,
        out: &mut Content,
    ) -> Result<(), PipelineError> {
        while let Some(n) = self.chunker.next_cut(&self.buf, eof) {
            let chunk = self.buf.split_to(n).freeze();
            out.ids.push(sink.submit(BlobKind::Data, chunk)?);
        }
        Ok(())
    }
}
