//! Restoring a file tree into a directory.
//!
//! The trees come from the catalog. Walking them creates directories,
//! symlinks, hard links and each regular file at its full length (a hole);
//! every so many chunks the files met so far are filled as one batch: their
//! distinct chunks are grouped by pack and read with window-aligned,
//! coalesced ranged reads, several in flight, and each verified chunk is
//! written at its offsets in whichever files hold it, in the order the reads
//! complete. All-zero chunks are not written, so sparse files stay sparse.
//! A file that was not completely written is removed before the error is
//! returned.

use super::components;
use crate::catalog::Catalog;
use crate::repo::read::{distinct, plan_reads, run_reads};
use crate::repo::Repository;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use cairn_repo_format::{ChunkId, NodeKind, NodeMeta, Snapshot};
use futures::TryStreamExt;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Chunk references filled per batch (bounds the plan's memory).
const BATCH_CHUNKS: usize = 1 << 16;

/// What a tree restore did.
#[derive(Debug, Default)]
pub struct Report {
    /// Files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// Which snapshot paths to restore.
struct Filter(Vec<PathBuf>);

impl Filter {
    fn new(includes: &[String]) -> Self {
        Self(
            includes
                .iter()
                .map(|i| components(i).iter().map(|c| OsStr::from_bytes(c)).collect())
                .collect(),
        )
    }
    /// Restore this path (everything at and below an include).
    fn takes(&self, rel: &Path) -> bool {
        self.0.is_empty() || self.0.iter().any(|i| rel.starts_with(i))
    }
    /// Descend into this directory (it leads to an include).
    fn leads_to(&self, rel: &Path) -> bool {
        self.takes(rel) || self.0.iter().any(|i| i.starts_with(rel))
    }
}

fn mtime(meta: &NodeMeta) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(
        meta.mtime_ns.div_euclid(1_000_000_000),
        u32::try_from(meta.mtime_ns.rem_euclid(1_000_000_000)).unwrap_or(0),
    )
}

/// Ownership is restored when we may (as root); otherwise files belong to us.
fn chown(path: &Path, meta: &NodeMeta) {
    let _ = std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid));
}

fn apply_meta(path: &Path, meta: &NodeMeta) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    chown(path, meta);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    filetime::set_file_times(path, mtime(meta), mtime(meta))
        .with_context(|| format!("setting the times of {}", path.display()))
}

fn remove_existing(path: &Path) {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        let _ = if m.is_dir() {
            std::fs::remove_dir(path)
        } else {
            std::fs::remove_file(path)
        };
    }
}

/// A created file waiting for its content.
struct Pending {
    dest: PathBuf,
    size: u64,
    content: Vec<ChunkId>,
    meta: NodeMeta,
}

/// Files created but not yet filled.
#[derive(Default)]
struct Batch {
    files: Vec<Pending>,
    chunks: usize,
}

/// Restores the snapshot's tree (or the `includes`) into `target`.
///
/// # Errors
/// If the catalog lacks a tree, a chunk cannot be read or verified, or the
/// target cannot be written.
pub async fn to_dir(
    repo: &Repository,
    cat: &Catalog,
    snap: &Snapshot,
    target: &Path,
    includes: &[String],
) -> Result<Report> {
    let filter = Filter::new(includes);
    std::fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
    let mut report = Report::default();
    let mut dirs: Vec<(PathBuf, NodeMeta)> = Vec::new();
    let mut linked: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack: Vec<(ChunkId, PathBuf)> = vec![(snap.tree, PathBuf::new())];
    let mut matched = filter.0.is_empty();
    let mut batch = Batch::default();
    while let Some((tree_id, rel)) = stack.pop() {
        let tree = cat.tree(&tree_id)?;
        for node in tree.nodes() {
            let rel = rel.join(OsStr::from_bytes(&node.name));
            if !filter.leads_to(&rel) {
                continue;
            }
            let dest = target.join(&rel);
            match &node.kind {
                NodeKind::Dir { subtree } => {
                    if !dest.is_dir() {
                        remove_existing(&dest);
                        std::fs::create_dir(&dest)
                            .with_context(|| format!("creating {}", dest.display()))?;
                    }
                    report.dirs += 1;
                    matched |= filter.takes(&rel);
                    dirs.push((dest, node.meta));
                    stack.push((*subtree, rel));
                }
                _ if !filter.takes(&rel) => {}
                NodeKind::File { size, content } => {
                    matched = true;
                    let key = (node.meta.device, node.meta.inode);
                    if node.meta.links > 1 {
                        if let Some(first) = linked.get(&key) {
                            remove_existing(&dest);
                            std::fs::hard_link(first, &dest).with_context(|| {
                                format!("linking {} to {}", dest.display(), first.display())
                            })?;
                            report.hardlinks += 1;
                            continue;
                        }
                        linked.insert(key, dest.clone());
                    }
                    remove_existing(&dest);
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&dest)
                        .with_context(|| format!("creating {}", dest.display()))?;
                    file.set_len(*size)
                        .with_context(|| format!("sizing {}", dest.display()))?;
                    report.files += 1;
                    report.bytes += size;
                    batch.chunks += content.len();
                    batch.files.push(Pending {
                        dest,
                        size: *size,
                        content: content.clone(),
                        meta: node.meta,
                    });
                    if batch.chunks >= BATCH_CHUNKS {
                        fill(repo, cat, std::mem::take(&mut batch)).await?;
                    }
                }
                NodeKind::Symlink { target: link } => {
                    matched = true;
                    remove_existing(&dest);
                    std::os::unix::fs::symlink(OsStr::from_bytes(link), &dest)
                        .with_context(|| format!("creating symlink {}", dest.display()))?;
                    chown(&dest, &node.meta);
                    filetime::set_symlink_file_times(&dest, mtime(&node.meta), mtime(&node.meta))
                        .with_context(|| format!("setting the times of {}", dest.display()))?;
                    report.symlinks += 1;
                }
            }
        }
    }
    fill(repo, cat, batch).await?;
    if !matched {
        bail!(
            "nothing in the snapshot matches {}; `cairn ls` lists what is there",
            includes.join(", ")
        );
    }
    // Directory times last, deepest first, so writing children does not change them.
    for (dir, meta) in dirs.iter().rev() {
        apply_meta(dir, meta)?;
    }
    Ok(report)
}

/// Fills a batch of created files; on error removes those not complete.
async fn fill(repo: &Repository, cat: &Catalog, batch: Batch) -> Result<()> {
    let mut remaining: Vec<u64> = batch.files.iter().map(|f| f.size).collect();
    let result = fill_content(repo, cat, &batch.files, &mut remaining).await;
    if let Err(e) = result {
        for (f, left) in batch.files.iter().zip(&remaining) {
            if *left > 0 {
                let _ = std::fs::remove_file(&f.dest);
            }
        }
        return Err(e);
    }
    for f in &batch.files {
        apply_meta(&f.dest, &f.meta)?;
    }
    Ok(())
}

/// Where one distinct chunk goes: (file, offset) pairs.
type Destinations = Vec<Vec<(usize, u64)>>;

async fn fill_content(
    repo: &Repository,
    cat: &Catalog,
    files: &[Pending],
    remaining: &mut [u64],
) -> Result<()> {
    let (ids, slot_of) = distinct(files.iter().flat_map(|f| &f.content));
    let reads = plan_reads(repo, cat, &ids)?;
    let mut raw_len = vec![0u64; ids.len()];
    for read in &reads {
        for (slot, e) in &read.blobs {
            raw_len[*slot] = u64::from(e.raw_len);
        }
    }
    let mut dests: Destinations = vec![Vec::new(); ids.len()];
    for (i, f) in files.iter().enumerate() {
        let mut offset = 0u64;
        for id in &f.content {
            let slot = slot_of[id];
            dests[slot].push((i, offset));
            offset += raw_len[slot];
        }
        if offset != f.size {
            bail!(
                "{}: the index says its content has {offset} bytes but the snapshot records {}: the snapshot is inconsistent",
                f.dest.display(),
                f.size
            );
        }
    }
    let dests = Arc::new(dests);
    let paths: Arc<Vec<PathBuf>> = Arc::new(files.iter().map(|f| f.dest.clone()).collect());
    let mut completed = std::pin::pin!(run_reads(repo, cat, reads));
    while let Some(blobs) = completed.try_next().await? {
        let (dests, paths) = (dests.clone(), paths.clone());
        let written =
            tokio::task::spawn_blocking(move || write_blobs(&blobs, &dests, &paths)).await??;
        for (file, n) in written {
            remaining[file] = remaining[file].saturating_sub(n);
        }
    }
    for (f, left) in files.iter().zip(remaining.iter()) {
        if *left != 0 {
            bail!("{} was not completely restored", f.dest.display());
        }
    }
    Ok(())
}

/// Writes verified chunks at their offsets (all-zero chunks stay holes);
/// returns bytes accounted per file.
fn write_blobs(
    blobs: &[(usize, Bytes)],
    dests: &Destinations,
    paths: &[PathBuf],
) -> Result<Vec<(usize, u64)>> {
    let mut open: HashMap<usize, std::fs::File> = HashMap::new();
    let mut written = Vec::new();
    for (slot, data) in blobs {
        let zero = data.iter().all(|b| *b == 0);
        for &(file, offset) in &dests[*slot] {
            if !zero {
                let f = match open.entry(file) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => v.insert(
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(&paths[file])
                            .with_context(|| format!("opening {}", paths[file].display()))?,
                    ),
                };
                f.write_all_at(data, offset)
                    .with_context(|| format!("writing {}", paths[file].display()))?;
            }
            written.push((file, data.len() as u64));
        }
    }
    Ok(written)
}
