//! The copy operation (`cairn copy`): snapshots of one repository written
//! into another, re-encrypted under the target's keys, deduplicated
//! against what the target holds, each blob verified as it is read
//! (format §7.1, `copy_of`).
//!
//! Each snapshot is copied by a session of its own in the target (lease,
//! packs, index, snapshot, commit), so a copy that is stopped loses at
//! most the snapshot under way, and a rerun copies what is still missing:
//! a snapshot whose original the target holds is never copied again.
//!
//! Blobs keep their stored form: a data chunk is decrypted under its
//! source pack's key, decompressed and hashed to check its id, and written
//! compressed as it was. When the two repositories share their chunking
//! keys (`init --copy-chunker-params-from`, format §4) every id stays as
//! it is: a blob the target holds is not read at all, and trees are copied
//! as they are. Otherwise each chunk is identified again under the
//! target's key and every tree is written again with the new ids; which
//! source id is which target id is learnt from the snapshot copied last
//! of the same group, so a daily copy reads only the chunks that are new.

use super::backup::pipeline_options;
use crate::cancel::Cancel;
use crate::catalog::Catalog;
use crate::error::{input, Error, Result};
use crate::filter::{self, SnapshotFilter};
use crate::gc;
use crate::pipeline::{self, PipelineError, Target};
use crate::repo::read::{self, Damaged};
use crate::repo::Repository;
use crate::retention::{self, group_key, GroupBy, GroupKey, Rules};
use crate::session::Session;
use crate::stats::Stats;
use crate::sync::{self, Trees};
use bytes::Bytes;
use cairn_chunker::IdKey;
use cairn_repo_format::{
    encode_list, BlobEntry, BlobKind, ChunkId, ChunkingKeys, FileContent, NodeKind, Origin,
    PackSet, Snapshot, SnapshotId, Tree,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// Which snapshots to copy, and how.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyOptions {
    /// The source's snapshots to consider.
    #[serde(default)]
    pub filter: SnapshotFilter,
    /// These snapshots (id prefixes or `latest`, within the filter);
    /// empty: every one the filter lets through.
    #[serde(default)]
    pub snapshots: Vec<String>,
    /// Only the newest snapshot of each group (host and source, as
    /// retention groups them).
    #[serde(default)]
    pub latest: bool,
    /// Pack uploads in flight.
    #[serde(default)]
    pub uploads: usize,
    /// Say what would be copied; write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Copy only the snapshots these rules would keep in the target among
    /// its own that the filter lets through (grouped by host and source):
    /// a target with its own retention does not copy again what it has
    /// forgotten, nor what it would forget at once.
    #[serde(default)]
    pub keep: Option<Rules>,
}

/// One snapshot copied.
#[derive(Debug, Clone)]
pub struct Copied {
    /// The snapshot in the source.
    pub from: SnapshotId,
    /// The new snapshot in the target.
    pub to: SnapshotId,
    /// The new snapshot.
    pub snapshot: Snapshot,
    /// Plaintext bytes of data chunks read from the source.
    pub read_bytes: u64,
    /// Plaintext bytes of data chunks the target did not hold.
    pub new_bytes: u64,
    /// Bytes of packs written to the target.
    pub stored_bytes: u64,
    /// Wall time.
    pub seconds: f64,
}

/// What a copy did.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    /// The snapshots copied, oldest first.
    pub copied: Vec<Copied>,
    /// With `dry_run`: the snapshots that would be copied.
    pub would_copy: Vec<(SnapshotId, Snapshot)>,
    /// Snapshots chosen whose original the target already holds.
    pub already: Vec<SnapshotId>,
    /// Nothing was written (`dry_run`).
    pub dry_run: bool,
    /// Whether the target identifies blobs as the source does (their
    /// chunking keys are shared): ids and trees are kept.
    pub same_ids: bool,
    /// Whether the target cuts data as the source does, so that what its
    /// own backups store deduplicates with the copies.
    pub same_chunking: bool,
    /// Wall time.
    pub seconds: f64,
}

/// Copies snapshots of `from` into `to`.
///
/// # Errors
/// [`Error::Input`] for the same repository on both sides or a snapshot
/// argument that names none; [`Error::Corrupt`] if the source cannot give
/// a blob (nothing of that snapshot is committed); storage failures;
/// [`Error::Cancelled`] when `cancel` fires (the snapshot under way is not
/// committed, those before it are).
#[tracing::instrument(name = "copy", skip_all, fields(from = %from.location(), to = %to.location()))]
pub async fn copy(
    from: &Repository,
    from_cat: &Arc<Catalog>,
    to: &Repository,
    to_cat: &Arc<Catalog>,
    opts: &CopyOptions,
    cancel: &Cancel,
) -> Result<CopyReport> {
    let started = Instant::now();
    if from.config.repository_id == to.config.repository_id {
        input!(
            "{} and {} are the same repository (id {}): copy into another one",
            from.location(),
            to.location(),
            from.config.repository_id_hex()
        );
    }
    cancel.or_cancel(sync::sync(from_cat, from)).await?;
    let chosen = select(&from_cat.snapshots()?, opts)?;
    cancel.or_cancel(sync::sync(to_cat, to)).await?;
    let mut held = origins(to, to_cat)?;
    let from_id = from.config.repository_id;
    let (mut todo, already): (Vec<_>, Vec<_>) = chosen
        .into_iter()
        .partition(|(id, s)| !held.contains(&s.origin(from_id, *id)));
    if let Some(rules) = &opts.keep {
        let f = opts.filter.normalized()?;
        let mut all: Vec<(SnapshotId, Snapshot)> = to_cat
            .snapshots()?
            .into_iter()
            .filter(|(_, s)| f.matches(s))
            .collect();
        all.extend(todo.iter().cloned());
        let tz = jiff::tz::TimeZone::system();
        let kept: HashSet<SnapshotId> = retention::apply(&all, rules, GroupBy::default(), &tz)
            .iter()
            .flat_map(|g| g.snapshots.iter().filter(|d| d.keep).map(|d| d.id))
            .collect();
        todo.retain(|(id, _)| kept.contains(id));
    }
    let theirs = ChunkingKeys::of(from_id, &from.config, &from.keys);
    let ours = ChunkingKeys::of(to.config.repository_id, &to.config, &to.keys);
    let mut report = CopyReport {
        already: already.into_iter().map(|(id, _)| id).collect(),
        same_ids: theirs.id == ours.id,
        same_chunking: theirs.gear == ours.gear && from.config.chunker == to.config.chunker,
        ..CopyReport::default()
    };
    if !report.same_chunking && !todo.is_empty() {
        tracing::warn!("{} cuts data differently from {}: the copies do not deduplicate with the target's own backups (nor theirs with the copies). A target made with `cairn init --copy-chunker-params-from` does.", to.location(), from.location());
    }
    if opts.dry_run {
        report.dry_run = true;
        report.would_copy = todo;
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let ids: Vec<SnapshotId> = todo.iter().map(|(id, _)| *id).collect();
    cancel
        .or_cancel(sync::fetch_trees(from_cat, from, Trees::Of(&ids)))
        .await?;
    let sides = Sides {
        from,
        from_cat,
        to,
        to_cat,
        uploads: opts.uploads,
    };
    let mut map = IdMap::new(report.same_ids);
    for (id, snap) in &todo {
        if let Some(done) = copy_one(&sides, *id, snap, &mut map, &mut held, cancel).await? {
            tracing::debug!(
                "copied snapshot {} as {} ({} read, {} new)",
                id.short(),
                done.to.short(),
                crate::util::human_bytes(done.read_bytes),
                crate::util::human_bytes(done.new_bytes)
            );
            report.copied.push(done);
        } else {
            report.already.push(*id);
        }
    }
    if !report.copied.is_empty() {
        // In both trails: what came in, and what went out.
        let copies: Vec<SnapshotId> = report.copied.iter().map(|c| c.to).collect();
        let originals: Vec<SnapshotId> = report.copied.iter().map(|c| c.from).collect();
        for (repo, ids, how, other) in [
            (to, &copies, "here from", from),
            (from, &originals, "from here to", to),
        ] {
            let text = format!(
                "copied {} snapshot(s) {how} {} (repository {})",
                ids.len(),
                other.location(),
                other.config.repository_id_hex()
            );
            crate::audit::record(repo, "copy", ids, text).await;
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The snapshots `opts` chooses, oldest first.
fn select(
    snapshots: &[(SnapshotId, Snapshot)],
    opts: &CopyOptions,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    let f = opts.filter.normalized()?;
    let mut chosen: Vec<(SnapshotId, Snapshot)> = if opts.snapshots.is_empty() {
        snapshots
            .iter()
            .filter(|(_, s)| f.matches(s))
            .cloned()
            .collect()
    } else {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for arg in &opts.snapshots {
            let (id, s) = filter::resolve(snapshots, arg, &opts.filter)?;
            if seen.insert(*id) {
                out.push((*id, s.clone()));
            }
        }
        out
    };
    if opts.latest {
        chosen = retention::newest_per_group(chosen);
    }
    chosen.sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
    Ok(chosen)
}

/// The originals of the snapshots a repository holds (format §7.1).
fn origins(repo: &Repository, cat: &Catalog) -> Result<HashSet<Origin>> {
    let id = repo.config.repository_id;
    Ok(cat
        .snapshots()?
        .iter()
        .map(|(sid, s)| s.origin(id, *sid))
        .collect())
}

/// Both repositories of a copy.
struct Sides<'a> {
    from: &'a Repository,
    from_cat: &'a Arc<Catalog>,
    to: &'a Repository,
    to_cat: &'a Arc<Catalog>,
    uploads: usize,
}

/// Which target id each source id has: the same one when the chunking keys
/// are shared, else those learnt so far (from the copies before, of one
/// group at a time).
#[derive(Debug, Default)]
struct IdMap {
    same: bool,
    ids: HashMap<ChunkId, ChunkId>,
    group: Option<GroupKey>,
}

impl IdMap {
    fn new(same: bool) -> Self {
        Self {
            same,
            ..Self::default()
        }
    }

    fn get(&self, id: &ChunkId) -> Option<ChunkId> {
        if self.same {
            Some(*id)
        } else {
            self.ids.get(id).copied()
        }
    }
}

/// Copies one snapshot in a session of its own; `None` if the target got
/// its original meanwhile (another copy). `held` is the target's originals,
/// read again only when its catalog learns of other sessions.
async fn copy_one(
    sides: &Sides<'_>,
    id: SnapshotId,
    snap: &Snapshot,
    map: &mut IdMap,
    held: &mut HashSet<Origin>,
    cancel: &Cancel,
) -> Result<Option<Copied>> {
    let started = Instant::now();
    let Sides {
        from, to, to_cat, ..
    } = *sides;
    let origin = snap.origin(from.config.repository_id, id);
    // Format §8.1: the lease, then what a prune condemns, then the index.
    let session = cancel.or_cancel(Session::start(to)).await?;
    let stats = Arc::new(Stats::default());
    let work = async {
        let avoid = gc::writer_view(to).await?;
        let synced = sync::sync(to_cat, to).await?;
        if synced.sessions > 0 || synced.rebuilt {
            *held = origins(to, to_cat)?;
        }
        if held.contains(&origin) {
            return Ok(None);
        }
        if !map.same {
            learn(sides, id, snap, map).await?;
        }
        let taken = std::mem::take(map);
        let (root, written, back) =
            transfer(sides, session.id, snap.tree, taken, avoid, &stats).await?;
        *map = back;
        Ok::<_, Error>(Some((root, written)))
    };
    let (root, written) = match cancel.or_cancel(session.fence.or_cancel(work)).await {
        Ok(Some(done)) => done,
        Ok(None) => {
            session.end(to).await;
            return Ok(None);
        }
        Err(e) => return Err(session.abandon(to, e).await),
    };
    let copy = Snapshot {
        session: session.id,
        tree: root,
        copy_of: Some(origin),
        ..snap.clone()
    };
    let done = session.commit(to, written, &copy).await?;
    let listed = [(done.snapshot, copy)];
    // Every tree of the copy went to the catalog as it was stored.
    if let Err(e) = to_cat.record_written(&done.commit, &done.written, &listed, true) {
        tracing::warn!("the copy is committed, but the catalog could not record it ({e}); the next command reads it from the repository");
    }
    let [(to_id, snapshot)] = listed;
    held.insert(origin);
    Ok(Some(Copied {
        from: id,
        to: to_id,
        snapshot,
        read_bytes: Stats::get(&stats.bytes_read),
        new_bytes: Stats::get(&stats.new_bytes),
        stored_bytes: Stats::get(&stats.stored_bytes),
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// When the ids differ: learns the target ids of a snapshot's group from
/// the copy of its newest earlier snapshot, by walking the source's and
/// the copy's trees side by side (the copy has the same names and the same
/// chunks in the same order). Nothing is read from packs but trees the
/// catalogs lack.
async fn learn(sides: &Sides<'_>, id: SnapshotId, snap: &Snapshot, map: &mut IdMap) -> Result<()> {
    let Sides {
        from,
        from_cat,
        to,
        to_cat,
        ..
    } = *sides;
    let key = group_key(snap, GroupBy::default());
    if map.group.as_ref() == Some(&key) {
        return Ok(());
    }
    map.ids.clear();
    map.group = Some(key.clone());
    let mine: HashMap<Origin, (SnapshotId, Snapshot)> = from_cat
        .snapshots()?
        .into_iter()
        .filter(|(sid, s)| *sid != id && group_key(s, GroupBy::default()) == key)
        .map(|(sid, s)| (s.origin(from.config.repository_id, sid), (sid, s)))
        .collect();
    let pair = to_cat
        .snapshots()?
        .into_iter()
        .filter_map(|(tid, t)| {
            let (sid, s) = mine.get(&t.origin(to.config.repository_id, tid))?;
            Some(((s.time_ns, *sid, s.tree), (tid, t.tree)))
        })
        .max_by_key(|(s, _)| (s.0, s.1));
    let Some(((_, sid, s_root), (tid, t_root))) = pair else {
        return Ok(());
    };
    sync::fetch_trees(from_cat, from, Trees::Of(&[sid])).await?;
    sync::fetch_trees(to_cat, to, Trees::Of(&[tid])).await?;
    let (fc, tc) = (from_cat.clone(), to_cat.clone());
    let mut ids = std::mem::take(&mut map.ids);
    ids = tokio::task::spawn_blocking(move || {
        zip(&fc, &tc, s_root, t_root, &mut ids)?;
        Ok::<_, Error>(ids)
    })
    .await??;
    tracing::debug!(
        "learnt {} target ids from the copy {} of snapshot {}",
        ids.len(),
        tid.short(),
        sid.short()
    );
    map.ids = ids;
    Ok(())
}

/// Records which target id each blob below `s_root` has, where the trees
/// match (names, types, numbers of chunks); a part that does not match is
/// left out (its chunks are read again).
fn zip(
    from: &Catalog,
    to: &Catalog,
    s_root: ChunkId,
    t_root: ChunkId,
    ids: &mut HashMap<ChunkId, ChunkId>,
) -> Result<()> {
    let mut stack = vec![(s_root, t_root)];
    while let Some((s, t)) = stack.pop() {
        if ids.contains_key(&s) {
            continue;
        }
        let (st, tt) = (from.tree(&s)?, to.tree(&t)?);
        if st.nodes().len() != tt.nodes().len() {
            continue;
        }
        ids.insert(s, t);
        for (a, b) in st.nodes().iter().zip(tt.nodes()) {
            if a.name != b.name {
                continue;
            }
            match (&a.kind, &b.kind) {
                (
                    NodeKind::File {
                        content: FileContent::Chunks(x),
                        ..
                    },
                    NodeKind::File {
                        content: FileContent::Chunks(y),
                        ..
                    },
                ) if x.len() == y.len() => {
                    ids.extend(x.iter().copied().zip(y.iter().copied()));
                }
                (
                    NodeKind::File {
                        content: FileContent::Lists(x),
                        ..
                    },
                    NodeKind::File {
                        content: FileContent::Lists(y),
                        ..
                    },
                ) if x.len() == y.len() => {
                    for (lx, ly) in x.iter().zip(y) {
                        let (cx, cy) = (from.list(lx)?, to.list(ly)?);
                        if cx.len() == cy.len() {
                            ids.insert(*lx, *ly);
                            ids.extend(cx.into_iter().zip(cy));
                        }
                    }
                }
                (NodeKind::Dir { subtree: x }, NodeKind::Dir { subtree: y }) => {
                    stack.push((*x, *y));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// What a walk of the source's trees found to do.
struct Walked {
    /// Every content list, once each.
    lists: Vec<ChunkId>,
    /// Every tree, children before parents, once each.
    trees: Vec<ChunkId>,
    /// The data chunks to read from the source, once each.
    reads: Vec<ChunkId>,
}

/// Walks the trees below `root` in the source's catalog: a chunk whose
/// target id is unknown, or known but not held by the target (outside the
/// packs a prune condemns), is to be read.
fn walk(
    from: &Catalog,
    to: &Catalog,
    root: ChunkId,
    map: &IdMap,
    avoid: Option<&PackSet>,
) -> Result<Walked> {
    let held = |id: &ChunkId| match avoid {
        None => to.contains(id),
        Some(a) => to.contains_outside(id, a),
    };
    let mut trees = Vec::new();
    let mut lists = Vec::new();
    let mut reads = Vec::new();
    let mut seen_trees = HashSet::new();
    let mut seen_reads = HashSet::new();
    // (tree, whether its children were pushed)
    let mut stack = vec![(root, false)];
    seen_trees.insert(root);
    while let Some((id, expanded)) = stack.pop() {
        if expanded {
            trees.push(id);
            continue;
        }
        stack.push((id, true));
        for node in from.tree(&id)?.nodes() {
            match &node.kind {
                NodeKind::Dir { subtree } if seen_trees.insert(*subtree) => {
                    stack.push((*subtree, false));
                }
                NodeKind::File { content, .. } => {
                    if let FileContent::Lists(l) = content {
                        // Lists are written again as trees are (a list
                        // seen before had its chunks seen with it).
                        let before = lists.len();
                        lists.extend(l.iter().filter(|l| seen_trees.insert(**l)));
                        if lists.len() == before {
                            continue;
                        }
                    }
                    for group in from.chunk_groups(content, 4096) {
                        for c in group? {
                            let ok = match map.get(&c) {
                                Some(t) => held(&t)?,
                                None => false,
                            };
                            if !ok && seen_reads.insert(c) {
                                reads.push(c);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Walked {
        lists,
        trees,
        reads,
    })
}

/// A data chunk read from the source: its ids on both sides, its entry
/// there and its stored form (decrypted, still compressed).
struct ReadChunk {
    from: ChunkId,
    to: ChunkId,
    entry: BlobEntry,
    stored: Bytes,
}

/// Blobs queued between the reads and the pipeline.
const QUEUED: usize = 64;

/// Reads what the target lacks from the source and writes it, then every
/// tree (again, with the target's ids, unless they are the same), through
/// the pipeline; returns the copy's root tree, what it wrote and the id map
/// with what it learnt.
async fn transfer(
    sides: &Sides<'_>,
    session: cairn_repo_format::SessionId,
    root: ChunkId,
    map: IdMap,
    avoid: Option<Arc<PackSet>>,
    stats: &Arc<Stats>,
) -> Result<(ChunkId, crate::catalog::spill::Written, IdMap)> {
    let Sides {
        from,
        from_cat,
        to,
        to_cat,
        uploads,
    } = *sides;
    let (fc, tc, av) = (from_cat.clone(), to_cat.clone(), avoid.clone());
    let (walked, map) = tokio::task::spawn_blocking(move || {
        let walked = walk(&fc, &tc, root, &map, av.as_deref())?;
        Ok::<_, Error>((walked, map))
    })
    .await??;
    let Walked {
        lists,
        trees,
        reads,
    } = walked;
    let plan = read::plan_reads(from, from_cat, &reads)?;
    if let Some((_, why)) = plan.unlocated.first() {
        return Err(Error::Corrupt(format!(
            "the source cannot give a blob of this snapshot: {why}; nothing of it was copied. Run `cairn check` on {}",
            from.location()
        )));
    }
    let target = Target {
        backend: to.backend.clone(),
        session,
        enc: to.keys.enc.clone(),
        ids: to.keys.id.clone(),
        catalog: to_cat.clone(),
        avoid,
        index_file_blobs: crate::session::index_file_blobs()?,
        list_ids: crate::session::list_ids()?,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ReadChunk>(QUEUED);
    let (fc, same) = (from_cat.clone(), map.same);
    let produce = pipeline::run(
        target,
        pipeline_options(to, uploads.max(1)),
        stats.clone(),
        move |sink| {
            let mut map = map;
            while let Some(c) = rx.blocking_recv() {
                let e = c.entry;
                sink.submit_stored(
                    BlobKind::Data,
                    c.to,
                    e.raw_len as usize,
                    e.compression,
                    c.stored,
                )?;
                if !map.same {
                    map.ids.insert(c.from, c.to);
                }
            }
            for l in lists {
                let data = if same {
                    fc.tree_bytes(&l)
                } else {
                    fc.list(&l).and_then(|ids| {
                        let to: Result<Vec<ChunkId>> =
                            ids.iter().map(|c| target_id(&map, c)).collect();
                        Ok(encode_list(&to?))
                    })
                }
                .map_err(|e| PipelineError::Producer(Box::new(e)))?;
                let new = sink.submit_list(Bytes::from(data))?;
                if !map.same {
                    map.ids.insert(l, new);
                }
            }
            let mut top = root;
            for t in trees {
                let data = if same {
                    fc.tree_bytes(&t)
                } else {
                    fc.tree(&t).and_then(|tree| retarget(&tree, &map))
                }
                .map_err(|e| PipelineError::Producer(Box::new(e)))?;
                let new = sink.submit_tree(Bytes::from(data))?;
                if same && new != t {
                    return Err(PipelineError::Stage(format!(
                        "tree {t} has id {new} in the target, whose ids were to be the same"
                    )));
                }
                if !map.same {
                    map.ids.insert(t, new);
                }
                top = new;
            }
            Ok((top, map))
        },
    );
    let keys = (from.keys.id.clone(), to.keys.id.clone());
    // This copy's own count of what it read (the source handle's counter
    // is shared with whatever else reads through it).
    let read = stats.clone();
    let fetch = async move {
        let opener = move |cipher: &cairn_repo_format::PackCipher,
                           e: &BlobEntry,
                           raw: &[u8],
                           dec: &mut cairn_repo_format::BlobDecompressor| {
            open_for(&keys, same, cipher, e, raw, dec)
        };
        let mut batches = std::pin::pin!(read::run_reads_with(from, from_cat, plan.reads, opener));
        while let Some(batch) = futures::StreamExt::next(&mut batches).await {
            for (_, chunk) in batch? {
                let chunk = chunk.map_err(|d: Damaged| {
                    Error::Corrupt(format!(
                        "{d}; nothing of this snapshot was copied. Run `cairn check` on {}",
                        from.location()
                    ))
                })?;
                Stats::add(&read.bytes_read, u64::from(chunk.entry.raw_len));
                if tx.send(chunk).await.is_err() {
                    // The pipeline stopped; its error is the one to report.
                    return Ok(());
                }
            }
        }
        Ok::<_, Error>(())
    };
    let (produced, fetched) = tokio::join!(produce, fetch);
    match (produced, fetched) {
        (Ok(((top, map), written)), Ok(())) => Ok((top, written, map)),
        (_, Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e.into()),
    }
}

/// Opens one chunk read from the source: authenticated, decompressed and
/// hashed to check its id there (under the first key); its target id is
/// the same or its hash under the target's key (the second).
fn open_for(
    (from_ids, to_ids): &(IdKey, IdKey),
    same: bool,
    cipher: &cairn_repo_format::PackCipher,
    e: &BlobEntry,
    raw: &[u8],
    dec: &mut cairn_repo_format::BlobDecompressor,
) -> std::result::Result<ReadChunk, cairn_repo_format::BlobError> {
    let stored = cipher.open_stored(e, raw)?;
    let to = {
        let plain = cipher.plaintext(from_ids, e, &stored, dec)?;
        if same {
            e.id
        } else {
            to_ids.chunk_id(&plain)
        }
    };
    Ok(ReadChunk {
        from: e.id,
        to,
        entry: *e,
        stored: Bytes::from(stored),
    })
}

/// A blob's id in the target.
fn target_id(map: &IdMap, id: &ChunkId) -> Result<ChunkId> {
    map.get(id)
        .ok_or_else(|| Error::Internal(format!("blob {id} has no target id")))
}

/// A tree with every chunk, list and subtree id replaced by its target id.
fn retarget(tree: &Tree, map: &IdMap) -> Result<Vec<u8>> {
    let mut nodes = tree.nodes().to_vec();
    for n in &mut nodes {
        match &mut n.kind {
            NodeKind::File {
                content: FileContent::Chunks(ids) | FileContent::Lists(ids),
                ..
            } => {
                for c in ids.iter_mut() {
                    *c = target_id(map, c)?;
                }
            }
            NodeKind::Dir { subtree } => *subtree = target_id(map, subtree)?,
            _ => {}
        }
    }
    Ok(Tree::new(nodes)?.encode())
}
