//! The in-memory blob index: where every committed blob is. (The SQLite
//! catalog replaces this map for large repositories.)

use cairn_repo_format::{BlobEntry, ChunkId, IndexFile, PackId, SessionId};
use std::collections::HashMap;

/// A pack that holds indexed blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackRef {
    /// Its session.
    pub session: SessionId,
    /// Its id.
    pub id: PackId,
    /// Its length in bytes.
    pub length: u64,
}

/// Blob id → pack and entry.
#[derive(Debug, Default)]
pub struct BlobIndex {
    packs: Vec<PackRef>,
    blobs: HashMap<ChunkId, (u32, BlobEntry)>,
}

impl BlobIndex {
    /// Adds the packs of one index file of `session`.
    pub fn add_file(&mut self, session: SessionId, file: IndexFile) {
        for p in file.packs {
            let n = u32::try_from(self.packs.len()).unwrap_or(u32::MAX);
            self.packs.push(PackRef {
                session,
                id: p.id,
                length: p.length,
            });
            for e in p.blobs {
                self.blobs.entry(e.id).or_insert((n, e));
            }
        }
    }

    /// Whether the blob is stored.
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.blobs.contains_key(id)
    }

    /// Where the blob is.
    pub fn get(&self, id: &ChunkId) -> Option<(PackRef, BlobEntry)> {
        self.blobs
            .get(id)
            .map(|(p, e)| (self.packs[*p as usize], *e))
    }
}
