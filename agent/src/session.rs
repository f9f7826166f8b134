//! A backup session (format §8): a lease at the start, renewed while it
//! runs; then index, snapshot and, last, the create-only commit.

use crate::backend::{ErrorKind, PutMode};
use crate::repo::Repository;
use crate::util;
use anyhow::{bail, Context, Result};
use cairn_repo_format::{
    Commit, IndexFile, IndexId, IndexPack, Lease, ObjectName, SessionId, Snapshot, SnapshotId,
};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often a running session renews its lease (the spec asks for at least
/// every 5 minutes).
const RENEW_EVERY: Duration = Duration::from_secs(240);

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
                    eprintln!("warning: could not renew the session lease: {e}");
                }
            }
        });
        Ok(Self {
            id,
            started_ns,
            renewer,
        })
    }

    /// Writes the index of `packs`, the snapshot and the commit, in that
    /// order; the snapshot counts only once the commit exists.
    pub async fn commit(
        self,
        repo: &Repository,
        packs: Vec<IndexPack>,
        snapshot: &Snapshot,
    ) -> Result<SnapshotId> {
        self.renewer.abort();
        let enc = &repo.keys.enc;
        let pack_count = packs.len() as u64;
        let mut index = Vec::new();
        if !packs.is_empty() {
            let iid = IndexId::random();
            repo.put_new(
                &ObjectName::Index(self.id, iid),
                IndexFile { packs }.seal(enc, self.id, iid),
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
            Ok(()) => Ok(sid),
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                bail!("session {} was fenced (its commit object already exists, written by a pruner); the snapshot does not count, run the backup again", self.id.short())
            }
            Err(e) => Err(e).context("writing the session commit"),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}
