//! Bringing the catalog up to date: [`sync`] reads only the commits it has
//! not seen, and for each the index files and snapshots that commit lists;
//! [`fetch_trees`] reads the trees of the snapshots a command needs, from
//! packs, through the catalog's own index. A stream backup needs no tree, a
//! restore the trees of one snapshot, `find` those of every snapshot.

use crate::catalog::load::{self, BulkLoad};
use crate::catalog::Catalog;
use crate::error::{Context, Error, Result};
use crate::filter::{self, SnapshotFilter};
use crate::repo::{read::read_blobs, Repository};
use cairn_repo_format::{
    decode_list, ChunkId, Commit, FileContent, IndexFile, IndexId, IndexPack, NodeKind, ObjectKind,
    ObjectName, SessionId, Snapshot, SnapshotId, Tree,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::sync::Arc;

/// Commits read at once (small objects).
const COMMITS_AT_ONCE: usize = 16;
/// Sessions read at once. Each holds its decoded index files in memory
/// (at most [`crate::session::INDEX_FILE_BLOBS`] entries a file, about
/// 4 MiB decoded), so this bounds the memory of a sync. A new catalog of
/// 1,000 small sessions from S3 on loopback: 4 at once 1.53 s, 8 at once
/// 1.33 s, 16 at once 1.23 s (docs/benchmarks.md); 8 keeps the worst case
/// near 32 MiB.
const SESSIONS_AT_ONCE: usize = 8;
/// Snapshots whose trees are fetched at once, and snapshot objects of one
/// session read at once.
const SNAPSHOTS_AT_ONCE: usize = 4;
/// Trees read in one batch (one planned set of pack reads).
const TREES_PER_BATCH: usize = 1024;

/// What a sync did.
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncReport {
    /// Sessions read.
    pub sessions: usize,
    /// Snapshots whose trees were read.
    pub snapshots: usize,
    /// Whether the catalog was found stale and started again.
    pub rebuilt: bool,
    /// Sessions that could not be read (reported, and left out).
    pub unreadable: usize,
}

/// One committed session as read from the repository.
#[derive(Debug)]
pub struct SessionObjects {
    commit: Commit,
    packs: Vec<IndexPack>,
    snapshots: Vec<(SnapshotId, Snapshot)>,
}

/// Reads and authenticates a session's commit.
///
/// # Errors
/// If it is missing, cannot be read, or fails authentication.
pub async fn read_commit(repo: &Repository, sid: SessionId) -> Result<Commit> {
    let name = ObjectName::Commit(sid);
    let data = repo.backend.get(&name).await?;
    Commit::open(&repo.keys.enc, sid, &data).with_context(|| format!("reading {name}"))
}

/// What counts of what commits list (format §8.2): every commit read
/// first, then only the index files of sessions no commit supersedes and
/// the snapshots no commit forgets.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Sessions whose index files are superseded.
    pub superseded: HashSet<SessionId>,
    /// Snapshots that are forgotten.
    pub forgotten: HashSet<SnapshotId>,
}

impl Counts {
    /// Adds what `commit` supersedes and forgets.
    pub fn add(&mut self, commit: &Commit) {
        self.superseded.extend(commit.supersedes.iter().copied());
        self.forgotten.extend(commit.forgets.iter().copied());
    }
}

/// Reads and authenticates what a commit lists and `counts` says still
/// counts: its index files unless its session is superseded, its snapshots
/// unless forgotten.
///
/// # Errors
/// If one is missing, cannot be read, or fails authentication.
pub async fn read_listed(
    repo: &Repository,
    commit: Commit,
    counts: &Counts,
) -> Result<SessionObjects> {
    let sid = commit.session;
    let index: &[IndexId] = if counts.superseded.contains(&sid) {
        &[]
    } else {
        &commit.index
    };
    // The index files one after the other (each is held until the session
    // is recorded, so this bounds a sync's memory with SESSIONS_AT_ONCE);
    // the snapshots, small, beside them: a session of one index file and
    // one snapshot costs one round trip, not two.
    let packs = async {
        let mut packs = Vec::new();
        for iid in index {
            let name = ObjectName::Index(sid, *iid);
            let data = repo.backend.get(&name).await.with_context(|| {
                format!("index file {name} is listed by a commit but cannot be read")
            })?;
            let (enc, iid) = (repo.keys.enc.clone(), *iid);
            let file = tokio::task::spawn_blocking(move || IndexFile::open(&enc, sid, iid, &data))
                .await?
                .with_context(|| format!("reading {name}"))?;
            packs.extend(file.packs);
        }
        Ok::<_, Error>(packs)
    };
    let wanted: Vec<SnapshotId> = commit
        .snapshots
        .iter()
        .filter(|id| !counts.forgotten.contains(id))
        .copied()
        .collect();
    let snapshots = futures::stream::iter(wanted)
        .map(|id| read_snapshot(repo, sid, id))
        .buffered(SNAPSHOTS_AT_ONCE)
        .try_collect::<Vec<_>>();
    let (packs, snapshots) = futures::try_join!(packs, snapshots)?;
    Ok(SessionObjects {
        commit,
        packs,
        snapshots,
    })
}

/// Reads and authenticates a snapshot that session `sid`'s commit lists.
async fn read_snapshot(
    repo: &Repository,
    sid: SessionId,
    id: SnapshotId,
) -> Result<(SnapshotId, Snapshot)> {
    let name = ObjectName::Snapshot(id);
    let data = repo
        .backend
        .get(&name)
        .await
        .with_context(|| format!("snapshot {id} is listed by a commit but cannot be read"))?;
    let s = Snapshot::open(&repo.keys.enc, id, &data).with_context(|| format!("reading {name}"))?;
    if s.session != sid {
        return Err(Error::Corrupt(format!(
            "{name} names session {} but is listed by the commit of session {}: the repository is inconsistent",
            s.session.short(),
            sid.short()
        )));
    }
    Ok((id, s))
}

/// The sessions of the repository's commits.
///
/// # Errors
/// If the repository cannot be listed.
pub async fn list_sessions(repo: &Repository) -> Result<HashSet<SessionId>> {
    Ok(repo
        .backend
        .list(ObjectKind::Commit)
        .await
        .context("listing commits")?
        .into_iter()
        .filter_map(|n| match n {
            ObjectName::Commit(sid) => Some(sid),
            _ => None,
        })
        .collect())
}

/// Reads the commits of `sessions` (a commit that cannot be read comes
/// back as its error), and adds what they supersede and forget to `counts`.
pub async fn read_commits(
    repo: &Repository,
    sessions: impl IntoIterator<Item = SessionId>,
    counts: &mut Counts,
) -> Vec<(SessionId, Result<Commit>)> {
    let read: Vec<(SessionId, Result<Commit>)> = futures::stream::iter(sessions)
        .map(|sid| async move { (sid, read_commit(repo, sid).await) })
        .buffer_unordered(COMMITS_AT_ONCE)
        .collect()
        .await;
    for c in read.iter().filter_map(|(_, r)| r.as_ref().ok()) {
        counts.add(c);
    }
    read
}

/// Brings `cat` up to date with the repository: the new commits first
/// (what they forget and supersede goes at once), then what they list.
///
/// # Errors
/// If the repository cannot be listed or the catalog cannot be written. A
/// session whose objects cannot be read is reported and left out.
pub async fn sync(cat: &Arc<Catalog>, repo: &Repository) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let listed = list_sessions(repo).await?;
    let mut known: HashSet<SessionId> = cat.sessions()?.into_iter().collect();
    if let Some(gone) = known.iter().find(|s| !listed.contains(s)) {
        tracing::warn!(
            "the catalog {} is stale (it lists session {}, which the repository no longer has); rebuilding it",
            cat.path().display(),
            gone.short()
        );
        cat.clear()?;
        known.clear();
        report.rebuilt = true;
    }
    let new: Vec<SessionId> = listed.difference(&known).copied().collect();
    if known.is_empty() && !new.is_empty() && !cat.is_private() {
        tracing::info!(
            "reading {} session(s) of the repository into the catalog {}",
            new.len(),
            cat.path().display()
        );
    }
    let mut counts = Counts {
        superseded: cat.superseded()?,
        forgotten: cat.forgotten()?,
    };
    let mut commits = Vec::new();
    for (sid, read) in read_commits(repo, new, &mut counts).await {
        match read {
            Ok(c) => commits.push(c),
            Err(e) => {
                tracing::warn!("session {} is left out of the catalog: {e}", sid.short());
                report.unreadable += 1;
            }
        }
    }
    report.sessions = commits.len();
    // What the new commits forget and supersede goes before anything they
    // list is recorded (and is recorded again with each commit, harmlessly).
    let effects: Vec<Commit> = commits
        .iter()
        .filter(|c| !c.forgets.is_empty() || !c.supersedes.is_empty())
        .cloned()
        .collect();
    if !effects.is_empty() && !known.is_empty() {
        let cat = cat.clone();
        tokio::task::spawn_blocking(move || cat.apply_commits(&effects))
            .await?
            .context("recording what the repository forgot and superseded")?;
    }
    // Into an empty catalog, all sessions go in at once, merged in key
    // order (`load`); later ones are recorded one by one as they are read.
    let mut bulk = known.is_empty().then(|| BulkLoad::new(cat, load::RUN_ROWS));
    let counts = &counts;
    let mut sessions = futures::stream::iter(commits)
        .map(|c| async move { (c.session, read_listed(repo, c, counts).await) })
        .buffer_unordered(SESSIONS_AT_ONCE);
    while let Some((sid, read)) = sessions.next().await {
        // A session that cannot be read is left out (and tried again by the
        // next command): the others stay usable.
        let s = match read {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("session {} is left out of the catalog: {e}", sid.short());
                report.unreadable += 1;
                continue;
            }
        };
        if let Some(mut load) = bulk.take() {
            bulk = Some(
                tokio::task::spawn_blocking(move || {
                    load.add(s.commit, s.packs, s.snapshots).map(|()| load)
                })
                .await?
                .context("loading the repository's sessions into the catalog")?,
            );
            continue;
        }
        let cat = cat.clone();
        tokio::task::spawn_blocking(move || cat.record(&s.commit, &s.packs, &s.snapshots, false))
            .await?
            .context("recording a session in the catalog")?;
    }
    if let Some(load) = bulk {
        let cat = cat.clone();
        tokio::task::spawn_blocking(move || load.finish(&cat))
            .await?
            .context("loading the repository's sessions into the catalog")?;
    }
    Ok(report)
}

/// Which snapshots' trees a command needs in the catalog.
#[derive(Debug, Clone, Copy)]
pub enum Trees<'a> {
    /// Every snapshot's (`find`, `diff`, `catalog rebuild`).
    All,
    /// These snapshots' (a restore, a backup's parent).
    Of(&'a [SnapshotId]),
    /// The snapshots these arguments name within a filter (id prefixes or
    /// `latest`, as [`crate::filter::resolve`] takes them; `ls`, `diff`):
    /// every one must name a snapshot.
    Named(&'a [String], &'a SnapshotFilter),
}

/// Reads the trees of the snapshots `which` names that the catalog does not
/// hold complete yet; returns how many snapshots that was. A snapshot whose
/// trees cannot be read is reported and left incomplete (commands that need
/// it fail, naming the tree).
///
/// # Errors
/// If the catalog cannot be read or written.
pub async fn fetch_trees(cat: &Arc<Catalog>, repo: &Repository, which: Trees<'_>) -> Result<usize> {
    let mut incomplete = cat.incomplete()?;
    match which {
        Trees::All => {}
        Trees::Of(ids) => incomplete.retain(|(sid, _)| ids.contains(sid)),
        Trees::Named(args, filter) => {
            let snapshots = cat.snapshots()?;
            let ids = args
                .iter()
                .map(|a| filter::resolve(&snapshots, a, filter).map(|(id, _)| *id))
                .collect::<Result<Vec<_>>>()?;
            incomplete.retain(|(sid, _)| ids.contains(sid));
        }
    }
    let n = incomplete.len();
    futures::stream::iter(incomplete)
        .map(|(sid, root)| async move {
            match snapshot_trees(cat, repo, root).await {
                Ok(()) => cat.set_complete(sid).map_err(Error::from),
                Err(e) => {
                    tracing::warn!("cannot read the trees of snapshot {}: {e}", sid.short());
                    Ok(())
                }
            }
        })
        .buffer_unordered(SNAPSHOTS_AT_ONCE)
        .try_collect::<()>()
        .await?;
    Ok(n)
}

/// Reads every tree and content list below `root` that the catalog lacks,
/// level by level, and stores them together. The catalog holds a tree only
/// with all the trees and lists below it (a backup stores them bottom-up;
/// this stores a snapshot's all at once), so a tree found present needs no
/// descent.
async fn snapshot_trees(cat: &Catalog, repo: &Repository, root: ChunkId) -> Result<()> {
    // (blob, whether it is a content list rather than a tree)
    let mut frontier: Vec<(ChunkId, bool)> = Vec::new();
    if !cat.has_tree(&root)? {
        frontier.push((root, false));
    }
    let mut queued: HashSet<ChunkId> = frontier.iter().map(|(id, _)| *id).collect();
    let mut fetched = Vec::new();
    while !frontier.is_empty() {
        let batch: Vec<(ChunkId, bool)> = frontier
            .drain(..frontier.len().min(TREES_PER_BATCH))
            .collect();
        let ids: Vec<ChunkId> = batch.iter().map(|(id, _)| *id).collect();
        let data = read_blobs(repo, cat, &ids).await?;
        for ((id, is_list), bytes) in batch.into_iter().zip(data) {
            if is_list {
                decode_list(&bytes).with_context(|| format!("content list {id}"))?;
                fetched.push((id, bytes));
                continue;
            }
            let tree = Tree::decode(&bytes).with_context(|| format!("tree {id}"))?;
            for node in tree.nodes() {
                let (below, is_list): (&[ChunkId], bool) = match &node.kind {
                    NodeKind::Dir { subtree } => (std::slice::from_ref(subtree), false),
                    NodeKind::File {
                        content: FileContent::Lists(lists),
                        ..
                    } => (lists, true),
                    _ => continue,
                };
                for id in below {
                    if !cat.has_tree(id)? && queued.insert(*id) {
                        frontier.push((*id, is_list));
                    }
                }
            }
            fetched.push((id, bytes));
        }
    }
    cat.put_trees(&fetched)?;
    Ok(())
}
