//! After the plan (format §10.3 steps 3–7): settling the sessions that
//! started before it, rescuing what they committed, replacing the index
//! files that name packs to delete, deleting, and removing what no longer
//! counts (§10.4).

use super::{mark, read_all, Collector};
use crate::backend::{delete, ErrorKind};
use crate::error::{Context, Error, Result};
use crate::session::INDEX_FILE_BLOBS;
use crate::sync;
use cairn_repo_format::{
    Commit, IndexFile, IndexPack, ObjectKind, ObjectName, PackSet, SessionId, Snapshot,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Deletions in flight at once.
const DELETES_AT_ONCE: usize = 16;
/// How often the sessions being waited for are looked at again.
const SETTLE_POLL: Duration = Duration::from_secs(2);
/// How often the wait is reported.
const SETTLE_REPORT: Duration = Duration::from_secs(60);

/// Step 3: every session that holds a lease and has no commit (listed
/// after the plan was published), and every session without a commit that
/// owns a condemned pack, ends with a commit: its own, or a tombstone once
/// its lease is gone or expired (or after the longest wait allowed).
pub(super) async fn settle(c: &mut Collector<'_>, condemned: &PackSet) -> Result<()> {
    let me = c.session.id;
    let committed = sync::list_sessions(c.repo).await?;
    let mut waiting: Vec<SessionId> = c
        .repo
        .backend
        .list(ObjectKind::Lease)
        .await
        .context("listing leases")?
        .into_iter()
        .filter_map(|n| match n {
            ObjectName::Lease(s) => Some(s),
            _ => None,
        })
        .chain(condemned.packs().iter().map(|(s, _)| *s))
        .filter(|s| *s != me && !committed.contains(s))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let deadline = Instant::now() + Duration::from_secs(c.opts.max_wait_s);
    let mut reported = Instant::now();
    while !waiting.is_empty() {
        let now = c.session.storage_now(c.repo).await?;
        let mut still = Vec::new();
        for s in waiting {
            match c.repo.backend.head(&ObjectName::Commit(s)).await {
                Ok(_) => continue,
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e).context("looking for a session's commit"),
            }
            match mark::lease_age(c.repo, s, now).await? {
                Some(age) if Instant::now() < deadline => {
                    tracing::debug!(session = %s.short(), age, "waiting for a live session");
                    still.push(s);
                }
                Some(_) => {
                    tracing::warn!(session = %s.short(), "fencing session {} although its lease is live: it ran longer than --max-wait", s.short());
                    c.fence(s).await?;
                }
                None => {
                    c.fence(s).await?;
                }
            }
        }
        waiting = still;
        if waiting.is_empty() {
            break;
        }
        if reported.elapsed() >= SETTLE_REPORT {
            tracing::info!(
                "waiting for {} backup session(s) that started before this prune to finish",
                waiting.len()
            );
            reported = Instant::now();
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
    Ok(())
}

/// Step 4: what every snapshot that counts now uses is marked again (the
/// sessions settled in step 3 included); condemned packs holding a live
/// blob with no copy outside the condemned ones stay. Returns the
/// deletion set.
pub(super) async fn rescue(c: &mut Collector<'_>, condemned: &PackSet) -> Result<PackSet> {
    read_all(c.repo, &c.private).await?;
    mark::walk(&c.private).await?;
    c.private.mark_condemned(condemned.packs())?;
    let rescued: HashSet<_> = c.private.rescued()?.into_iter().collect();
    c.report.rescued_packs = rescued.len() as u64;
    if !rescued.is_empty() {
        tracing::info!(
            "{} condemned pack(s) are kept: sessions that committed during the prune use them",
            rescued.len()
        );
    }
    Ok(PackSet::new(
        condemned
            .packs()
            .iter()
            .filter(|p| !rescued.contains(p))
            .copied()
            .collect(),
    ))
}

/// Step 6: every session whose valid index files list a pack to delete
/// gets them replaced by consolidated index files of the collector's
/// session, which say whom they supersede; committed before anything is
/// deleted. A collector that was taken over cannot commit (it is fenced).
pub(super) async fn replace_index(c: &mut Collector<'_>, deletions: &PackSet) -> Result<()> {
    let unreadable = sync::sync(&c.private, c.repo).await?.unreadable;
    if unreadable > 0 {
        return Err(Error::Corrupt(format!(
            "{unreadable} session(s) could not be read; their index files cannot be replaced, so nothing was deleted (the next prune tries again)"
        )));
    }
    let mut affected: Vec<SessionId> = c
        .private
        .indexed_by(deletions.packs())?
        .into_iter()
        .collect();
    if affected.is_empty() {
        return Ok(());
    }
    affected.sort();
    let enc = c.repo.keys.enc.clone();
    let mut group: Vec<IndexPack> = Vec::new();
    let (mut blobs, mut packs) = (0usize, 0u64);
    let mut index = Vec::new();
    for s in &affected {
        let commit = sync::read_commit(c.repo, *s).await?;
        for iid in &commit.index {
            let name = ObjectName::Index(*s, *iid);
            let data = c
                .repo
                .backend
                .get(&name)
                .await
                .with_context(|| format!("reading {name} to replace it"))?;
            let (enc, s, iid) = (enc.clone(), *s, *iid);
            let file = tokio::task::spawn_blocking(move || IndexFile::open(&enc, s, iid, &data))
                .await?
                .with_context(|| format!("reading {name}"))?;
            for p in file.packs {
                if deletions.contains(&(p.session, p.id)) {
                    continue;
                }
                if blobs > 0 && blobs + p.blobs.len() > INDEX_FILE_BLOBS {
                    index.push(c.session.write_index(c.repo, &group).await?);
                    group.clear();
                    blobs = 0;
                }
                blobs += p.blobs.len();
                packs += 1;
                group.push(p);
            }
        }
    }
    if !group.is_empty() {
        index.push(c.session.write_index(c.repo, &group).await?);
    }
    let commit = Commit {
        index,
        packs,
        supersedes: affected.clone(),
        ..c.session.empty_commit()
    };
    match c.session.put_commit(c.repo, &commit).await {
        Ok(()) => {}
        Err(Error::Fenced(_)) => {
            return Err(Error::TakenOver {
                generation: c.observed.state.generation,
            })
        }
        Err(e) => return Err(e),
    }
    c.report.superseded_sessions = affected.len() as u64;
    Ok(())
}

/// Deletes `names` (already gone counts as deleted); returns how many.
async fn remove(c: &Collector<'_>, names: Vec<ObjectName>) -> Result<u64> {
    let backend = &c.repo.backend;
    futures::stream::iter(names)
        .map(|name| async move {
            match delete::collected(backend, &name).await {
                Ok(()) => Ok(1),
                Err(e) if e.kind == ErrorKind::NotFound => Ok(0),
                Err(e) => Err(Error::from(e).context(format!("deleting {name}"))),
            }
        })
        .buffer_unordered(DELETES_AT_ONCE)
        .try_fold(0u64, |n, k| async move { Ok(n + k) })
        .await
}

/// Step 7: the packs of the committed deletion set.
pub(super) async fn delete_packs(c: &mut Collector<'_>, deletions: &PackSet) -> Result<()> {
    let mut bytes = 0;
    for (s, p) in deletions.packs() {
        bytes += match c.private.pack_length(*s, *p)? {
            Some(n) => n,
            None => c
                .repo
                .backend
                .head(&ObjectName::Pack(*s, *p))
                .await
                .unwrap_or(0),
        };
    }
    let names = deletions
        .packs()
        .iter()
        .map(|(s, p)| ObjectName::Pack(*s, *p))
        .collect();
    c.report.deleted_packs = remove(c, names).await?;
    c.report.deleted_bytes = bytes;
    Ok(())
}

/// §10.4: index files of superseded and fenced sessions, snapshots that
/// are forgotten or of fenced sessions, leases of sessions that have a
/// commit, and the plans of collections that ended.
pub(super) async fn clean_up(c: &mut Collector<'_>, old_plans: &[ObjectName]) -> Result<()> {
    sync::sync(&c.private, c.repo).await?;
    let me = c.session.id;
    let superseded = c.private.superseded()?;
    let fenced = c.private.fenced_sessions()?;
    let forgotten = c.private.forgotten()?;
    let committed: HashSet<SessionId> = c.private.sessions()?.into_iter().collect();
    let counted: HashSet<_> = c.private.roots()?.into_iter().map(|(id, _)| id).collect();
    let mut names: Vec<ObjectName> = old_plans.to_vec();
    for name in c.repo.backend.list(ObjectKind::Index).await? {
        if let ObjectName::Index(s, _) = name {
            if superseded.contains(&s) || fenced.contains(&s) {
                names.push(name);
            }
        }
    }
    for name in c.repo.backend.list(ObjectKind::Lease).await? {
        if let ObjectName::Lease(s) = name {
            if s != me && committed.contains(&s) {
                names.push(name);
            }
        }
    }
    for name in c.repo.backend.list(ObjectKind::Snapshot).await? {
        let ObjectName::Snapshot(id) = name else {
            continue;
        };
        if forgotten.contains(&id) {
            names.push(name);
        } else if !counted.contains(&id) {
            // Listed by no commit: a session still writing, or one that
            // was fenced (only then does it go).
            let Ok(data) = c.repo.backend.get(&name).await else {
                continue;
            };
            if let Ok(s) = Snapshot::open(&c.repo.keys.enc, id, &data) {
                if fenced.contains(&s.session) {
                    names.push(name);
                }
            }
        }
    }
    c.report.removed_objects = remove(c, names).await?;
    Ok(())
}
