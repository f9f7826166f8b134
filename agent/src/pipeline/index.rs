//! The end of the upload stage: the session's index files, written as the
//! packs they describe become durable (see [`crate::catalog::spill`]).

use super::PipelineError;
use crate::backend::{DynBackend, PutMode};
use crate::catalog::spill::{Spill, Written};
use cairn_repo_format::{ChunkId, EncKey, IndexFile, IndexId, IndexPack, ObjectName, SessionId};
use std::sync::{Arc, OnceLock};

/// The upload stage's end: collects the packs as they become durable and
/// writes an index file whenever the next pack would take the packs
/// collected past the limit, keeps what it described in the
/// [`Spill`] and tells the sink which blobs it may forget.
pub(super) struct Indexer {
    backend: DynBackend,
    enc: EncKey,
    session: SessionId,
    /// Blobs per index file.
    limit: usize,
    blobs: usize,
    written: Written,
    spill: Arc<OnceLock<Arc<Spill>>>,
    flushed: crossbeam_channel::Sender<Vec<ChunkId>>,
}

impl Indexer {
    pub(super) fn new(
        target: &super::Target,
        spill: Arc<OnceLock<Arc<Spill>>>,
        flushed: crossbeam_channel::Sender<Vec<ChunkId>>,
    ) -> Self {
        Self {
            backend: target.backend.clone(),
            enc: target.enc.clone(),
            session: target.session,
            limit: target.index_file_blobs,
            blobs: 0,
            written: Written::default(),
            spill,
            flushed,
        }
    }

    /// Takes a durable pack.
    pub(super) async fn add(mut self, pack: IndexPack) -> Result<Self, PipelineError> {
        if !self.written.packs.is_empty() && self.blobs + pack.blobs.len() > self.limit {
            self.write_file().await?;
        }
        self.blobs += pack.blobs.len();
        self.written.packs.push(pack);
        Ok(self)
    }

    /// The packs collected go to an index file (format §8.1 step 4: their
    /// packs are durable), then to the spill; the sink learns it may
    /// forget their blobs.
    async fn write_file(&mut self) -> Result<(), PipelineError> {
        let file = IndexFile {
            packs: std::mem::take(&mut self.written.packs),
        };
        let packs = file.packs.len() as u64;
        self.blobs = 0;
        let iid = IndexId::random();
        self.backend
            .put(
                &ObjectName::Index(self.session, iid),
                file.seal(&self.enc, self.session, iid).into(),
                PutMode::Create,
            )
            .await?;
        let (spill, session) = (self.spill.clone(), self.session);
        let ids = tokio::task::spawn_blocking(move || {
            // Only this stage sets it, so it is created once.
            if spill.get().is_none() {
                let _ = spill.set(Arc::new(Spill::create(session)?));
            }
            let kept = spill.get().unwrap_or_else(|| unreachable!("just set"));
            kept.add(&file)?;
            let ids: Vec<ChunkId> = file
                .packs
                .iter()
                .flat_map(|p| p.blobs.iter().map(|e| e.id))
                .collect();
            Ok::<_, rusqlite::Error>(ids)
        })
        .await
        .map_err(|e| PipelineError::Stage(e.to_string()))?
        .map_err(PipelineError::Spill)?;
        self.written.index.push(iid);
        self.written.indexed_packs += packs;
        // The sink may be gone already (its producer ended): nothing to tell.
        let _ = self.flushed.send(ids);
        Ok(())
    }

    pub(super) fn finish(self) -> Written {
        Written {
            spill: self.spill.get().cloned(),
            ..self.written
        }
    }
}
