//! A backup session (format §8): a lease at the start, renewed by
//! compare-and-swap while it runs; then index, snapshot and, last, the
//! create-only commit. A renewal that finds the session fenced by a prune
//! fires the session's [`Session::fence`], so the work stops at once.

use crate::backend::{ErrorKind, Expect, PutMode, Version};
use crate::cancel::{Cancel, Reason};
use crate::catalog::spill::Written;
use crate::error::{input, Context, Error, Result};
use crate::repo::Repository;
use crate::util;
use bytes::Bytes;
use cairn_repo_format::{
    Commit, IndexFile, IndexId, IndexPack, Lease, ObjectName, SessionId, Snapshot, SnapshotId,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// How long a lease stays live without renewal, unless `CAIRN_LEASE_TTL`
/// (seconds) says otherwise: a prune waits this long for a session that
/// stopped renewing (a paused VM, a stopped process) before it fences it.
pub const DEFAULT_LEASE_TTL_S: u32 = 900;

/// The lease time-to-live this process writes.
///
/// # Errors
/// If `CAIRN_LEASE_TTL` is set but not a number of seconds in the spec's
/// bounds.
pub fn lease_ttl_s() -> Result<u32> {
    let Ok(v) = std::env::var("CAIRN_LEASE_TTL") else {
        return Ok(DEFAULT_LEASE_TTL_S);
    };
    match v.trim().parse::<u32>() {
        Ok(t) if Lease::TTL_S.contains(&t) => Ok(t),
        _ => input!(
            "CAIRN_LEASE_TTL={v:?} is not a number of seconds from {} to {}",
            Lease::TTL_S.start(),
            Lease::TTL_S.end()
        ),
    }
}

/// Why the fence token fires.
pub const FENCED: Reason = Reason::Requested("the session was fenced by a prune");

/// Blobs per index file at most (about 3 MiB sealed): a session's index is
/// split so that no reader has to hold a large one in memory.
pub const INDEX_FILE_BLOBS: usize = 1 << 16;

/// Blobs after which a running backup writes an index file (a checkpoint,
/// format §6) and keeps its entries on disk (`catalog::spill`): what the
/// session holds in memory stays under this many blobs' entries and ids
/// (about 2 MiB). 16,384 blobs are about 2 GiB of new data at the default
/// chunk size, and an index file of 0.9 MiB.
pub const CHECKPOINT_BLOBS: usize = 1 << 14;

/// Blobs per index file a backup writes: [`CHECKPOINT_BLOBS`], unless
/// `CAIRN_INDEX_FILE_BLOBS` says otherwise (tests use a small number to
/// write several index files from a small backup).
///
/// # Errors
/// If `CAIRN_INDEX_FILE_BLOBS` is set but not a positive number.
pub fn index_file_blobs() -> Result<usize> {
    count_from_env("CAIRN_INDEX_FILE_BLOBS", CHECKPOINT_BLOBS, usize::MAX)
}

/// Ids per content list a backup writes (format §7.4):
/// [`cairn_repo_format::LIST_IDS`], unless `CAIRN_LIST_IDS` says otherwise
/// (tests use a small number to write lists from small files).
///
/// # Errors
/// If `CAIRN_LIST_IDS` is set but not a number from 1 to 65,536.
pub fn list_ids() -> Result<usize> {
    count_from_env(
        "CAIRN_LIST_IDS",
        cairn_repo_format::LIST_IDS,
        cairn_repo_format::MAX_LIST_IDS,
    )
}

/// The count the variable `name` sets (1 to `max`), or `default` when unset.
fn count_from_env(name: &str, default: usize, max: usize) -> Result<usize> {
    let Ok(v) = std::env::var(name) else {
        return Ok(default);
    };
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ if max == usize::MAX => input!("{name}={v:?} is not a positive number"),
        _ => input!("{name}={v:?} is not a number from 1 to {max}"),
    }
}

/// A committed session.
#[derive(Debug)]
pub struct Committed {
    /// Its snapshot.
    pub snapshot: SnapshotId,
    /// Its commit object.
    pub commit: Commit,
    /// The packs its index files list.
    pub written: Written,
}

/// Splits packs into groups of at most [`INDEX_FILE_BLOBS`] blobs (a pack
/// with more is a group of its own).
pub fn index_groups(packs: &[IndexPack]) -> Vec<&[IndexPack]> {
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
    /// Fires when a renewal finds the session fenced: the work in progress
    /// can stop, its commit would fail anyway.
    pub fence: Cancel,
    held: Arc<Mutex<Held>>,
    renewer: JoinHandle<()>,
}

/// The lease as last written, and its version.
#[derive(Debug)]
struct Held {
    lease: Lease,
    version: Version,
}

impl Session {
    /// Announces a new session with its lease, and keeps renewing it.
    pub async fn start(repo: &Repository) -> Result<Self> {
        let ttl_s = lease_ttl_s()?;
        let id = SessionId::random();
        let started_ns = util::now_ns();
        let lease = Lease {
            version: 2,
            session: id,
            hostname: util::hostname(),
            pid: std::process::id(),
            started_ns,
            renewed_ns: started_ns,
            generation: 0,
            ttl_s: Some(ttl_s),
        };
        let name = ObjectName::Lease(id);
        let version = repo
            .backend
            .put_versioned(&name, lease.seal(&repo.keys.enc).into(), Expect::Absent)
            .await
            .with_context(|| format!("writing {name}"))?;
        let fence = Cancel::new();
        let held = Arc::new(Mutex::new(Held { lease, version }));
        let renewer = tokio::spawn(renew(repo.clone(), held.clone(), fence.clone()));
        Ok(Self {
            id,
            started_ns,
            fence,
            held,
            renewer,
        })
    }

    /// Whether a renewal found the session fenced.
    pub fn fenced(&self) -> bool {
        self.fence.reason().is_some()
    }

    /// Renews the lease now and returns when the storage says it wrote it:
    /// the storage's clock (format §10.3), to compare other leases with.
    ///
    /// # Errors
    /// [`Error::Fenced`] if the session was fenced; storage failures.
    pub async fn storage_now(&self, repo: &Repository) -> Result<i64> {
        if !renew_once(repo, &self.held, &self.fence).await? {
            return Err(Error::Fenced(self.id));
        }
        Ok(repo
            .backend
            .stat(&ObjectName::Lease(self.id))
            .await
            .context("reading the time of this session's lease")?
            .modified_ns)
    }

    /// Ends a session that will not commit because of `why` (its source
    /// failed, a signal stopped it, a prune fenced it): the lease stops
    /// being renewed and is removed, so nobody waits for the session (its
    /// packs are left for prune). Returns the error to report: a fenced
    /// session's is [`Error::Fenced`], whatever stopped the work.
    pub async fn abandon(self, repo: &Repository, why: Error) -> Error {
        self.renewer.abort();
        self.remove_lease(repo).await;
        if self.fenced() {
            Error::Fenced(self.id)
        } else {
            why
        }
    }

    /// Ends a session whose work is done without a commit of its own (or
    /// with one written by [`Session::put_commit`]): the lease goes.
    pub async fn end(self, repo: &Repository) {
        self.renewer.abort();
        self.remove_lease(repo).await;
    }

    /// Writes `commit` (create-only) and keeps the session running: the
    /// lease stays until [`Session::end`] (a prune that goes on after
    /// committing its consolidated index files is still alive).
    ///
    /// # Errors
    /// [`Error::Fenced`] if the commit exists already; storage failures.
    pub async fn put_commit(&self, repo: &Repository, commit: &Commit) -> Result<()> {
        match repo
            .backend
            .put(
                &ObjectName::Commit(self.id),
                commit.seal(&repo.keys.enc).into(),
                PutMode::Create,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Err(Error::Fenced(self.id)),
            Err(e) => Err(e).context("writing the session commit"),
        }
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

    /// Writes one index file of the session describing `packs` (at most
    /// [`INDEX_FILE_BLOBS`] blobs, or one pack).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn write_index(&self, repo: &Repository, packs: &[IndexPack]) -> Result<IndexId> {
        let iid = IndexId::random();
        let file = IndexFile {
            packs: packs.to_vec(),
        };
        repo.put_new(
            &ObjectName::Index(self.id, iid),
            file.seal(&repo.keys.enc, self.id, iid),
        )
        .await?;
        Ok(iid)
    }

    /// Writes index files for the packs the pipeline left to the session;
    /// returns every index file of `written`, those it wrote first.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn index_rest(&self, repo: &Repository, written: &Written) -> Result<Vec<IndexId>> {
        let mut index = written.index.clone();
        for group in index_groups(&written.packs) {
            index.push(self.write_index(repo, group).await?);
        }
        Ok(index)
    }

    /// Writes the index of the packs `written` left to it, the snapshot
    /// and the commit, in that order; the snapshot counts only once the
    /// commit exists. The lease is removed afterwards, whether the commit
    /// was written or not.
    pub async fn commit(
        self,
        repo: &Repository,
        written: Written,
        snapshot: &Snapshot,
    ) -> Result<Committed> {
        let stored = async {
            let index = self.index_rest(repo, &written).await?;
            let sid = SnapshotId::random();
            repo.put_new(
                &ObjectName::Snapshot(sid),
                snapshot.seal(&repo.keys.enc, sid),
            )
            .await?;
            Ok::<_, Error>((index, sid))
        }
        .await;
        let (index, sid) = match stored {
            Ok(w) => w,
            Err(e) => return Err(self.abandon(repo, e).await),
        };
        let commit = Commit {
            index,
            snapshots: vec![sid],
            packs: written.pack_count(),
            ..self.empty_commit()
        };
        let commit = self.close(repo, commit).await?;
        Ok(Committed {
            snapshot: sid,
            commit,
            written,
        })
    }

    /// A commit of this session listing nothing yet.
    pub fn empty_commit(&self) -> Commit {
        Commit::empty(self.id, util::hostname(), self.started_ns, util::now_ns())
    }

    /// Writes `commit` (create-only, last: format §8.1) and removes the
    /// lease, whether the commit was written or not.
    ///
    /// # Errors
    /// [`Error::Fenced`] if the commit exists already (a prune fenced the
    /// session); storage failures.
    pub async fn close(self, repo: &Repository, commit: Commit) -> Result<Commit> {
        self.renewer.abort();
        let result = self.put_commit(repo, &commit).await;
        self.remove_lease(repo).await;
        result.map(|()| commit)
    }
}

/// Renews the lease once, by compare-and-swap on the version written
/// last; `false` if the session turned out fenced (then `fence` fires).
/// A lease that changed or vanished means a prune may have fenced the
/// session: its commit decides.
async fn renew_once(repo: &Repository, held: &Mutex<Held>, fence: &Cancel) -> Result<bool> {
    let mut held = held.lock().await;
    let id = held.lease.session;
    let mut lease = held.lease.clone();
    lease.generation += 1;
    lease.renewed_ns = util::now_ns();
    let data = Bytes::from(lease.seal(&repo.keys.enc));
    match repo
        .backend
        .put_versioned(&ObjectName::Lease(id), data, Expect::Version(&held.version))
        .await
    {
        Ok(v) => {
            *held = Held { lease, version: v };
            Ok(true)
        }
        Err(e) if matches!(e.kind, ErrorKind::Changed | ErrorKind::NotFound) => {
            match repo.backend.head(&ObjectName::Commit(id)).await {
                Ok(_) => {
                    tracing::warn!(session = %id.short(), "a prune fenced this session (it was silent past its lease); stopping");
                    fence.cancel(FENCED);
                    Ok(false)
                }
                Err(h) => Err(Error::Internal(format!(
                    "the lease of session {} changed or vanished under it ({e}), and its commit is not there ({h})",
                    id.short()
                ))),
            }
        }
        Err(e) => Err(e).context("renewing the session lease"),
    }
}

/// Renews the lease every quarter of its time-to-live (the spec asks for
/// at least every third) until the session ends or is found fenced.
async fn renew(repo: Repository, held: Arc<Mutex<Held>>, fence: Cancel) {
    let every = Duration::from_secs(u64::from(held.lock().await.lease.ttl_s()) / 4);
    loop {
        tokio::time::sleep(every).await;
        match renew_once(&repo, &held, &fence).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!("could not renew the session lease: {e}"),
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
            session: SessionId::random(),
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
