//! The backup pipeline.
//!
//! ```text
//! producer ──raw──► workers ×N ──stored──► packer ──packs──► uploader
//! (blocking:        (blocking:              (blocking:         (async: several
//!  read, cut,        zstd)                   AES-GCM into       puts in flight)
//!  hash, dedup)                              2 open packs,
//!                                            spooled to disk)
//! ```
//!
//! Every arrow is a bounded channel, so a slow backend slows the producer
//! down instead of filling memory. Packs are written to spool files as they
//! fill (`pipeline/pack.rs`), so memory does not grow with the pack size: it is a few
//! read buffers and a few chunks per channel. Disk holds (open packs + packs
//! queued + uploads in flight) spool files of about a pack each.
//! When any stage fails, the channels close and every other stage stops.

use crate::backend::{BackendError, DynBackend};
use crate::catalog::spill::{Spill, Written};
use crate::catalog::Catalog;
use crate::error::Error;
use crate::stats::Stats;
use bytes::Bytes;
use cairn_chunker::IdKey;
use cairn_repo_format::{
    encode_list, BlobCompressor, BlobKind, ChunkId, Compression, EncKey, FileContent, FormatError,
    PackSet, SessionId,
};
use chunk::Content;
use futures::{StreamExt, TryStreamExt};
use index::Indexer;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

pub mod chunk;
mod index;
pub(crate) mod pack;
pub mod streams;

/// Why a backup pipeline stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Writing to the repository failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A blob broke a format limit.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The catalog could not be read or written.
    #[error("the catalog: {0}")]
    Catalog(#[from] rusqlite::Error),
    /// A pack could not be written to its spool file.
    #[error(transparent)]
    Spool(#[from] crate::backend::spool::SpoolError),
    /// The index files written could not be kept on local disk.
    #[error("keeping the session's index files in a temporary file in TMPDIR (check its space and permissions): {0}")]
    Spill(rusqlite::Error),
    /// The producer failed for a reason of its own (a copy's source).
    #[error(transparent)]
    Producer(Box<Error>),
    /// Another stage failed first; this one stopped because its channel closed.
    #[error("the backup pipeline stopped early")]
    Aborted,
    /// A stage panicked or could not be joined.
    #[error("a backup pipeline stage failed: {0}")]
    Stage(String),
}

/// Tuning of one pipeline run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Compression threads.
    pub workers: usize,
    /// Uploads in flight.
    pub uploads: usize,
    /// Packs open at once (more than one, so blob order is not stream order).
    pub open_packs: usize,
    /// Target size of a pack's blob region.
    pub pack_size: u64,
    /// zstd level.
    pub zstd_level: i32,
    /// Largest plaintext blob expected (sizes the packer's buffer).
    pub max_blob: usize,
}

struct RawBlob {
    id: ChunkId,
    kind: BlobKind,
    data: Bytes,
    /// `Some` when `data` is already in its stored form (a repack's copy):
    /// the compression and the raw length. The workers pass it through.
    stored: Option<(Compression, usize)>,
}

struct StoredBlob {
    id: ChunkId,
    kind: BlobKind,
    raw_len: usize,
    compression: Compression,
    stored: Bytes,
}

/// Where the producer hands its blobs: hashes them, drops the ones the
/// repository (or this session) already has, and queues the rest. Trees
/// also go to the catalog, so it can answer for the snapshot at once.
pub struct BlobSink {
    ids: IdKey,
    catalog: Arc<Catalog>,
    avoid: Option<Arc<PackSet>>,
    /// Blobs this session queued that no index file written describes yet.
    seen: HashSet<ChunkId>,
    /// Blobs of the index files written: the rest of this session's.
    spill: Arc<OnceLock<Arc<Spill>>>,
    /// Blobs an index file now describes, to drop from `seen`.
    flushed: crossbeam_channel::Receiver<Vec<ChunkId>>,
    tx: crossbeam_channel::Sender<RawBlob>,
    stats: Arc<Stats>,
    /// The chunk of zeros holes are stored as, once hashed.
    zeros: Option<(ChunkId, Bytes)>,
    /// Ids a content list holds ([`cairn_repo_format::LIST_IDS`];
    /// `CAIRN_LIST_IDS` for tests).
    list_ids: usize,
}

impl std::fmt::Debug for BlobSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobSink")
            .field("seen", &self.seen.len())
            .finish_non_exhaustive()
    }
}

impl BlobSink {
    /// Stores an encoded tree unless it is already stored; returns its id.
    /// The catalog gets it at once, so it can answer for the snapshot.
    ///
    /// # Errors
    /// [`PipelineError::Aborted`] if a later stage has stopped.
    pub fn submit_tree(&mut self, data: Bytes) -> Result<ChunkId, PipelineError> {
        let id = self.ids.chunk_id(&data);
        // Children are submitted before their parents, so the catalog
        // holds a tree only with every tree below it.
        self.catalog.put_tree(&id, &data)?;
        self.store(BlobKind::Tree, id, data)?;
        Ok(id)
    }

    /// Stores data chunks, in order, unless already stored; adds their ids
    /// to `out`. A batch large enough to be worth it is hashed on two threads.
    ///
    /// # Errors
    /// [`PipelineError::Aborted`] if a later stage has stopped.
    pub fn submit_data(
        &mut self,
        chunks: Vec<Bytes>,
        out: &mut Content,
    ) -> Result<(), PipelineError> {
        let hashed = hash_all(&self.ids, &chunks);
        Stats::add(&self.stats.total_chunks, chunks.len() as u64);
        for (id, data) in hashed.into_iter().zip(chunks) {
            self.store(BlobKind::Data, id, data)?;
            out.ids.push(id);
        }
        self.roll_lists(out)
    }

    /// Stores the first `list_ids` ids of `out` as a content list while it
    /// holds more (format §7.4): a file's lists are then all full but the
    /// last, wherever the batches ended, and the file's ids are never all
    /// in memory.
    fn roll_lists(&mut self, out: &mut Content) -> Result<(), PipelineError> {
        while out.ids.len() > self.list_ids {
            let id = self.submit_list(Bytes::from(encode_list(&out.ids[..self.list_ids])))?;
            out.ids.drain(..self.list_ids);
            out.lists.push(id);
        }
        Ok(())
    }

    /// Stores an encoded content list unless it is already stored; returns
    /// its id. Like a tree, the catalog gets it at once (before the tree
    /// that names it).
    ///
    /// # Errors
    /// [`PipelineError::Aborted`] if a later stage has stopped.
    pub fn submit_list(&mut self, data: Bytes) -> Result<ChunkId, PipelineError> {
        let id = self.ids.chunk_id(&data);
        self.catalog.put_tree(&id, &data)?;
        self.store(BlobKind::List, id, data)?;
        Ok(id)
    }

    /// The node content of what `out` collected: its chunks while they
    /// fit in one list, else its lists with the rest as the last one.
    ///
    /// # Errors
    /// [`PipelineError::Aborted`] if a later stage has stopped.
    pub fn finish_content(&mut self, out: Content) -> Result<FileContent, PipelineError> {
        let Content { ids, mut lists, .. } = out;
        if lists.is_empty() {
            return Ok(FileContent::Chunks(ids));
        }
        if !ids.is_empty() {
            lists.push(self.submit_list(Bytes::from(encode_list(&ids)))?);
        }
        Ok(FileContent::Lists(lists))
    }

    /// Stores `len` bytes of zeros (a file's hole) as chunks of `max` bytes
    /// and a shorter last one, without reading or cutting them: the chunk
    /// of `max` zeros is hashed once per sink. Adds their ids to `out`.
    ///
    /// # Errors
    /// [`PipelineError::Aborted`] if a later stage has stopped.
    pub fn submit_zeros(
        &mut self,
        len: u64,
        max: usize,
        out: &mut Content,
    ) -> Result<(), PipelineError> {
        let (id, data) = match &self.zeros {
            Some((id, data)) if data.len() == max => (*id, data.clone()),
            _ => {
                let data = Bytes::from(vec![0u8; max]);
                let id = self.ids.chunk_id(&data);
                self.zeros = Some((id, data.clone()));
                (id, data)
            }
        };
        let whole = len / max as u64;
        let rest = usize::try_from(len % max as u64).unwrap_or(0);
        for _ in 0..whole {
            self.store(BlobKind::Data, id, data.clone())?;
            out.ids.push(id);
            self.roll_lists(out)?;
        }
        if rest > 0 {
            let part = data.slice(..rest);
            let id = self.ids.chunk_id(&part);
            self.store(BlobKind::Data, id, part)?;
            out.ids.push(id);
        }
        Stats::add(&self.stats.total_chunks, whole + u64::from(rest > 0));
        Stats::add(&self.stats.bytes_read, len);
        self.roll_lists(out)
    }

    fn store(&mut self, kind: BlobKind, id: ChunkId, data: Bytes) -> Result<(), PipelineError> {
        self.queue(RawBlob {
            id,
            kind,
            data,
            stored: None,
        })?;
        Ok(())
    }

    /// Stores a blob already in its stored form (`data` is the zstd frame
    /// when `compression` says so) unless it is already stored: a repack
    /// copies blobs so, without decompressing, hashing or compressing them
    /// again. The caller vouches that `data` is the blob `id` (it was
    /// authenticated where it was read); returns whether it was queued.
    ///
    /// # Errors
    /// [`PipelineError::Aborted`] if a later stage has stopped.
    pub fn submit_stored(
        &mut self,
        kind: BlobKind,
        id: ChunkId,
        raw_len: usize,
        compression: Compression,
        data: Bytes,
    ) -> Result<bool, PipelineError> {
        Stats::add(&self.stats.total_chunks, 1);
        self.queue(RawBlob {
            id,
            kind,
            data,
            stored: Some((compression, raw_len)),
        })
    }

    /// Queues a blob for the workers unless it is stored already; returns
    /// whether it was queued.
    fn queue(&mut self, blob: RawBlob) -> Result<bool, PipelineError> {
        // What the spill holds now leaves memory (the spill was written
        // before the ids were sent, so `known` finds them there).
        while let Ok(ids) = self.flushed.try_recv() {
            for id in &ids {
                self.seen.remove(id);
            }
        }
        if self.known(&blob.id)? {
            return Ok(false);
        }
        self.seen.insert(blob.id);
        // The counters are the content's: trees are the backup's own
        // metadata, which a summary of what was new would only blur.
        if blob.kind == BlobKind::Data {
            let raw_len = blob.stored.map_or(blob.data.len(), |(_, raw_len)| raw_len);
            Stats::add(&self.stats.new_chunks, 1);
            Stats::add(&self.stats.new_bytes, raw_len as u64);
        }
        self.tx.send(blob).map_err(|_| PipelineError::Aborted)?;
        Ok(true)
    }

    /// Whether a blob is stored already (in the repository or this
    /// session), in a pack a prune does not condemn. Every reuse asks
    /// here: data chunks, trees, and unchanged files' content lists.
    ///
    /// # Errors
    /// If the catalog cannot be read.
    pub fn known(&self, id: &ChunkId) -> Result<bool, PipelineError> {
        if self.seen.contains(id) {
            return Ok(true);
        }
        let stored = match &self.avoid {
            None => self.catalog.contains(id)?,
            Some(avoid) => self.catalog.contains_outside(id, avoid)?,
        };
        Ok(stored
            || match self.spill.get() {
                Some(spill) => spill.contains(id).map_err(PipelineError::Spill)?,
                None => false,
            })
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The shared counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// Blobs queued per compression worker, before the workers and before the
/// packer. With 2 (a few milliseconds of zstd work), every pause of the
/// producer (reading, cutting, hashing a batch) or of the packer left a
/// worker waiting: on two cores the workers were busy 65 % of the time and
/// the 1 GiB dump's first backup took 2.78 s (median of 5, alternating);
/// with 8 it took 2.47 s, with 4 2.49 s, with 16 2.57 s, at the same peak
/// RSS (each queue holds at most workers × 8 chunks of up to 512 KiB).
const QUEUED_PER_WORKER: usize = 8;

/// Below this many bytes a batch is hashed on the calling thread alone.
const PARALLEL_HASH_MIN: usize = 512 << 10;

/// Keyed BLAKE3 of each chunk. Hashing is the producer's largest cost when
/// most chunks are duplicates (nothing is compressed then), so a large batch
/// is split in two halves of about equal bytes, one hashed on a scoped helper
/// thread while the caller hashes the other.
fn hash_all(key: &IdKey, chunks: &[Bytes]) -> Vec<ChunkId> {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let one = |c: &[Bytes]| c.iter().map(|d| key.chunk_id(d)).collect::<Vec<_>>();
    if total < PARALLEL_HASH_MIN || chunks.len() < 2 {
        return one(chunks);
    }
    let mut half = 0;
    let mut bytes = 0;
    while half < chunks.len() && bytes < total / 2 {
        bytes += chunks[half].len();
        half += 1;
    }
    let (a, b) = chunks.split_at(half);
    std::thread::scope(|s| {
        let helper = s.spawn(|| one(b));
        let mut ids = one(a);
        // A panic in the helper is a bug; re-raise it here.
        ids.extend(
            helper
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        );
        ids
    })
}

/// What the pipeline needs from the repository.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where packs go.
    pub backend: DynBackend,
    /// The session they belong to.
    pub session: SessionId,
    /// The encryption key.
    pub enc: EncKey,
    /// The id key.
    pub ids: IdKey,
    /// The catalog: blobs already stored.
    pub catalog: Arc<Catalog>,
    /// Packs a prune condemns: a blob stored only there is stored again
    /// (format §8.1 step 3).
    pub avoid: Option<Arc<PackSet>>,
    /// Blobs per index file: the run writes the session's index files as
    /// their packs become durable, so memory does not grow with the
    /// session (`session::index_file_blobs`); the packs of the last,
    /// unfinished file are left to the caller.
    pub index_file_blobs: usize,
    /// Ids per content list (`session::list_ids`).
    pub list_ids: usize,
}

/// Runs `producer` on a blocking thread with a [`BlobSink`], and the rest of
/// the pipeline behind it. Returns the producer's result and what was
/// written (all durable), or the first error of any stage.
pub async fn run<T: Send + 'static>(
    target: Target,
    opts: Options,
    stats: Arc<Stats>,
    producer: impl FnOnce(&mut BlobSink) -> Result<T, PipelineError> + Send + 'static,
) -> Result<(T, Written), PipelineError> {
    let workers = opts.workers.max(1);
    let (raw_tx, raw_rx) = crossbeam_channel::bounded::<RawBlob>(workers * QUEUED_PER_WORKER);
    let (stored_tx, stored_rx) =
        crossbeam_channel::bounded::<StoredBlob>(workers * QUEUED_PER_WORKER);
    let (pack_tx, mut pack_rx) = tokio::sync::mpsc::channel::<pack::SpooledPack>(1);

    let spill = Arc::new(OnceLock::new());
    let (flushed_tx, flushed) = crossbeam_channel::unbounded();
    let indexer = Indexer::new(&target, spill.clone(), flushed_tx);
    let mut sink = BlobSink {
        ids: target.ids.clone(),
        catalog: target.catalog.clone(),
        avoid: target.avoid.clone(),
        seen: HashSet::new(),
        spill,
        flushed,
        tx: raw_tx,
        stats: stats.clone(),
        zeros: None,
        list_ids: target.list_ids,
    };
    let producer = tokio::task::spawn_blocking(move || producer(&mut sink));

    let worker_handles: Vec<_> = (0..workers)
        .map(|_| {
            let (rx, tx, level) = (raw_rx.clone(), stored_tx.clone(), opts.zstd_level);
            tokio::task::spawn_blocking(move || compress_worker(level, &rx, &tx))
        })
        .collect();
    drop((raw_rx, stored_tx));

    let (enc, session, backend) = (target.enc.clone(), target.session, target.backend.clone());
    let packer = tokio::task::spawn_blocking(move || {
        pack::packer(&enc, session, &backend, opts, &stored_rx, &pack_tx)
    });

    let backend = target.backend.clone();
    let upload_stats = stats.clone();
    let uploads = futures::stream::poll_fn(move |cx| pack_rx.poll_recv(cx))
        .map(|pack| pack::upload(backend.clone(), pack, upload_stats.clone()))
        .buffer_unordered(opts.uploads.max(1))
        .try_fold(indexer, Indexer::add);

    let (uploaded, produced, workers_done, packed) = tokio::join!(
        uploads,
        producer,
        futures::future::join_all(worker_handles),
        packer
    );

    let joined = |r: Result<Result<(), PipelineError>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(PipelineError::Stage(e.to_string())))
    };
    let produced = produced.unwrap_or_else(|e| Err(PipelineError::Stage(e.to_string())));
    let stage_errors = workers_done
        .into_iter()
        .map(joined)
        .chain([joined(packed)])
        .filter_map(Result::err);
    match (uploaded, produced) {
        (Ok(indexer), Ok(value)) => match cause(stage_errors) {
            None => Ok((value, indexer.finish())),
            Some(e) => Err(e),
        },
        (uploaded, produced) => Err(cause(
            uploaded
                .err()
                .into_iter()
                .chain(produced.err())
                .chain(stage_errors),
        )
        .unwrap_or(PipelineError::Aborted)),
    }
}

/// The one rule for which failure of several stages is reported: the first,
/// in the order given, that is not [`PipelineError::Aborted`] (a stage that
/// stopped because another failed); `Aborted` only if every one is.
pub fn cause(errors: impl IntoIterator<Item = PipelineError>) -> Option<PipelineError> {
    let mut first = None;
    for e in errors {
        if !matches!(e, PipelineError::Aborted) {
            return Some(e);
        }
        first.get_or_insert(e);
    }
    first
}

fn compress_worker(
    level: i32,
    rx: &crossbeam_channel::Receiver<RawBlob>,
    tx: &crossbeam_channel::Sender<StoredBlob>,
) -> Result<(), PipelineError> {
    let mut z =
        BlobCompressor::new(level).map_err(|e| PipelineError::Stage(format!("zstd: {e}")))?;
    for blob in rx {
        let (compression, raw_len, stored) = match blob.stored {
            Some((compression, raw_len)) => (compression, raw_len, blob.data),
            None => match z.compress(&blob.data) {
                Some(c) => (
                    Compression::Zstd,
                    blob.data.len(),
                    Bytes::copy_from_slice(c),
                ),
                None => (Compression::None, blob.data.len(), blob.data),
            },
        };
        let out = StoredBlob {
            id: blob.id,
            kind: blob.kind,
            raw_len,
            compression,
            stored,
        };
        tx.send(out).map_err(|_| PipelineError::Aborted)?;
    }
    Ok(())
}

impl From<PipelineError> for Error {
    fn from(e: PipelineError) -> Self {
        use PipelineError as P;
        match e {
            P::Backend(e) => Error::Backend(e),
            // A blob over a format limit is a bug of the writer.
            P::Format(e) => Error::Internal(e.to_string()),
            P::Catalog(e) => Error::Catalog(e),
            P::Spool(e) => Error::Spool(e),
            // Local disk: what to fix is TMPDIR, as for a spool file.
            P::Spill(_) => Error::Io(std::io::Error::other(e.to_string())),
            P::Producer(e) => *e,
            P::Aborted | P::Stage(_) => Error::Internal(e.to_string()),
        }
    }
}
