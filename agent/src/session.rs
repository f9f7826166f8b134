//! A backup session (format §8): a lease at the start, renewed while it
//! runs; then index, snapshot and, last, the create-only commit.

use crate::backend::{ErrorKind, PutMode};
use crate::error::{Context, Error, Result};
use crate::repo::Repository;
use crate::util;
use cairn_repo_format::{
    Commit, IndexFile, IndexId, IndexPack, Lease, ObjectName, SessionId, Snapshot, SnapshotId,
};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often a running session renews its lease (the spec asks for at least
/// every 5 minutes).
const RENEW_EVERY: Duration = Duration::from_secs(240);

/// Blobs per index file at most (about 3 MiB sealed): a session's index is
/// split so that no reader has to hold a large one in memory.
pub const INDEX_FILE_BLOBS: usize = 1 << 16;

/// A committed session.
#[derive(Debug)]
pub struct Committed {
    /// Its snapshot.
    pub snapshot: SnapshotId,
    /// Its commit object.
    pub commit: Commit,
    /// The packs its index files list.
    pub packs: Vec<IndexPack>,
}

/// Splits packs into groups of at most [`INDEX_FILE_BLOBS`] blobs (a pack
/// with more is a group of its own).
fn index_groups(packs: &[IndexPack]) -> Vec<&[IndexPack]> {
    let mut groups = Vec::new();
    let (mut start, mut blobs) = (0, 0);
    for (i, p) in packs.iter().enumerate() {
        if i > start && blobs + p.blobs.len() > INDEX_FILE_BLOBS {
            groups.push(&packs[start..i]);
            (start, blobs) = (i, 0);
        }
        blobs += p.blobs.len();
    }
    if start < packs.len() {
        groups.push(&packs[start..]);
    }
    groups
}

/// A running session.
#[derive(Debug)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// When it started.
    pub started_ns: i64,
    renewer: JoinHandle<()>,
}

impl Session {
    /// Announces a new session with its lease.
    pub async fn start(repo: &Repository) -> Result<Self> {
        let id = SessionId::random();
        let started_ns = util::now_ns();
        let mut lease = Lease {
            version: 1,
            session: id,
            hostname: util::hostname(),
            pid: std::process::id(),
            started_ns,
            renewed_ns: started_ns,
            generation: 0,
        };
        repo.put_new(&ObjectName::Lease(id), lease.seal(&repo.keys.enc))
            .await?;
        let (backend, enc) = (repo.backend.clone(), repo.keys.enc.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                lease.generation += 1;
                lease.renewed_ns = util::now_ns();
                if let Err(e) = backend
                    .put(
                        &ObjectName::Lease(id),
                        lease.seal(&enc).into(),
                        PutMode::Overwrite,
                    )
                    .await
                {
                    tracing::warn!(session = %id.short(), "could not renew the session lease: {e}");
                }
            }
        });
        Ok(Self {
            id,
            started_ns,
            renewer,
        })
    }

    /// Ends a session that will not commit (its source failed, or a signal
    /// stopped it): the lease stops being renewed and is removed, so nobody
    /// waits for the session (its packs are left for prune).
    pub async fn abandon(self, repo: &Repository) {
        self.renewer.abort();
        self.remove_lease(repo).await;
    }

    /// Best effort: a backup-only credential may not delete (then the lease
    /// simply stops being renewed, which means the same).
    async fn remove_lease(&self, repo: &Repository) {
        match crate::backend::delete::lease(&repo.backend, self.id).await {
            Ok(()) => {}
            Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::PermissionDenied) => {}
            Err(e) => {
                tracing::warn!(session = %self.id.short(), "could not remove the session lease: {e}")
            }
        }
    }

    /// Writes the index of `packs`, the snapshot and the commit, in that
    /// order; the snapshot counts only once the commit exists. The lease is
    /// removed afterwards, whether the commit was written or not.
    pub async fn commit(
        self,
        repo: &Repository,
        packs: Vec<IndexPack>,
        snapshot: &Snapshot,
    ) -> Result<Committed> {
        self.renewer.abort();
        let result = self.write_commit(repo, packs, snapshot).await;
        self.remove_lease(repo).await;
        result
    }

    async fn write_commit(
        &self,
        repo: &Repository,
        packs: Vec<IndexPack>,
        snapshot: &Snapshot,
    ) -> Result<Committed> {
        let enc = &repo.keys.enc;
        let pack_count = packs.len() as u64;
        let mut index = Vec::new();
        for group in index_groups(&packs) {
            let iid = IndexId::random();
            let file = IndexFile {
                packs: group.to_vec(),
            };
            repo.put_new(
                &ObjectName::Index(self.id, iid),
                file.seal(enc, self.id, iid),
            )
            .await?;
            index.push(iid);
        }
        let sid = SnapshotId::random();
        repo.put_new(&ObjectName::Snapshot(sid), snapshot.seal(enc, sid))
            .await?;
        let commit = Commit {
            version: 1,
            session: self.id,
            hostname: util::hostname(),
            started_ns: self.started_ns,
            finished_ns: util::now_ns(),
            index,
            snapshots: vec![sid],
            packs: pack_count,
        };
        match repo
            .backend
            .put(
                &ObjectName::Commit(self.id),
                commit.seal(enc).into(),
                PutMode::Create,
            )
            .await
        {
            Ok(()) => Ok(Committed {
                snapshot: sid,
                commit,
                packs,
            }),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Err(Error::Fenced(self.id)),
            Err(e) => Err(e).context("writing the session commit"),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo_format::PackId;

    fn pack(blobs: usize) -> IndexPack {
        let e = cairn_repo_format::BlobEntry {
            id: cairn_repo_format::ChunkId::from_bytes([0; 32]),
            offset: 0,
            stored_len: 17,
            raw_len: 1,
            number: 0,
            kind: cairn_repo_format::BlobKind::Data,
            compression: cairn_repo_format::Compression::None,
        };
        IndexPack {
            id: PackId::random(),
            length: 1 << 20,
            blobs: vec![e; blobs],
        }
    }

    #[test]
    fn index_files_are_split_by_blob_count() {
        let half = INDEX_FILE_BLOBS / 2;
        let packs = vec![pack(half), pack(half), pack(1), pack(3 * half), pack(2)];
        let sizes: Vec<usize> = index_groups(&packs).iter().map(|g| g.len()).collect();
        assert_eq!(sizes, vec![2, 1, 1, 1]);
        assert!(index_groups(&[]).is_empty());
    }
}
