//! The packer and the uploads: blobs go into packs that are spooled to disk
//! as they fill, so a pack is never held in memory whole, and a finished
//! pack's file is handed to the backend (a local repository links it into
//! place; S3 reads it back part by part).

use super::{PipelineError, Stats, StoredBlob};
use crate::backend::spool::SpoolFile;
use crate::backend::{DynBackend, PutMode};
use cairn_repo_format::{EncKey, FinishedPack, IndexPack, ObjectName, PackWriter, SessionId};
use rand::Rng;
use std::sync::Arc;

/// A pack being filled.
struct OpenPack {
    writer: PackWriter,
    spool: SpoolFile,
}

impl OpenPack {
    fn new(
        enc: &EncKey,
        session: SessionId,
        backend: &DynBackend,
        max_blob: usize,
    ) -> Result<Self, PipelineError> {
        // The writer holds one blob (and its tag) at a time; `finish` grows
        // it for the padding and header.
        let writer = PackWriter::new(enc, session, max_blob + 64);
        let name = ObjectName::Pack(session, writer.id());
        let dir = backend.spool_dir(&name).unwrap_or_else(std::env::temp_dir);
        Ok(Self {
            writer,
            spool: SpoolFile::create(&dir)?,
        })
    }

    fn add(&mut self, blob: &StoredBlob) -> Result<(), PipelineError> {
        self.writer.add(
            blob.id,
            blob.kind,
            blob.raw_len,
            blob.compression,
            &blob.stored,
        )?;
        let writer = &mut self.writer;
        Ok(self.spool.write_with(|file| writer.drain_to(file))?)
    }

    fn finish(mut self) -> Result<SpooledPack, PipelineError> {
        let mut pack = self.writer.finish();
        let tail = std::mem::take(&mut pack.bytes);
        self.spool.write_all(&tail)?;
        Ok(SpooledPack {
            pack,
            spool: self.spool,
        })
    }
}

/// A finished pack in its spool file.
pub(super) struct SpooledPack {
    pack: FinishedPack,
    spool: SpoolFile,
}

/// Fills packs from `rx`, keeping `opts.open_packs` (at least two) open and
/// putting each blob into one of them at random (format §5), and sends each
/// full pack to the uploads.
pub(super) fn packer(
    enc: &EncKey,
    session: SessionId,
    backend: &DynBackend,
    opts: super::Options,
    rx: &crossbeam_channel::Receiver<StoredBlob>,
    tx: &tokio::sync::mpsc::Sender<SpooledPack>,
) -> Result<(), PipelineError> {
    let slots = opts.open_packs.max(2);
    let mut open: Vec<Option<OpenPack>> = (0..slots).map(|_| None).collect();
    let mut rng = rand::thread_rng();
    let send = |p: OpenPack| {
        tx.blocking_send(p.finish()?)
            .map_err(|_| PipelineError::Aborted)
    };
    for blob in rx {
        let slot = &mut open[rng.gen_range(0..slots)];
        if slot
            .as_ref()
            .is_some_and(|p| !p.writer.fits(blob.stored.len()))
        {
            send(
                slot.take()
                    .unwrap_or_else(|| unreachable!("checked is_some")),
            )?;
        }
        let p = match slot {
            Some(p) => p,
            None => slot.insert(OpenPack::new(enc, session, backend, opts.max_blob)?),
        };
        p.add(&blob)?;
        if p.writer.blob_bytes() >= opts.pack_size {
            send(slot.take().unwrap_or_else(|| unreachable!("just inserted")))?;
        }
    }
    for p in open.into_iter().flatten() {
        send(p)?;
    }
    Ok(())
}

/// Stores one spooled pack; the spool file goes when this returns.
pub(super) async fn upload(
    backend: DynBackend,
    spooled: SpooledPack,
    stats: Arc<Stats>,
) -> Result<IndexPack, PipelineError> {
    let SpooledPack { pack, spool } = spooled;
    backend
        .put_file(&pack.name(), spool.path(), PutMode::Create)
        .await?;
    drop(spool);
    Stats::add(&stats.stored_bytes, pack.length);
    Stats::add(&stats.packs, 1);
    Ok(IndexPack {
        session: pack.session,
        id: pack.id,
        length: pack.length,
        blobs: pack.entries,
    })
}
