//! Restoring a file tree into a directory.
//!
//! The trees come from the catalog. Walking them creates directories,
//! symlinks and special files, and lists the regular files; every so many
//! chunks the files listed so far are filled as one batch (`restore/fill.rs`):
//! each is written under a temporary name (`.cairn-partial-…`) and, once
//! complete, given its metadata and renamed to its name. Hard links are
//! made last, then the directories' metadata, deepest first.
//!
//! A file whose chunks the repository cannot provide intact (a damaged blob,
//! a missing pack) is removed and reported, and the rest is restored. A
//! restore that fails or is killed leaves no file at a snapshot name that is
//! not complete: only `.cairn-partial-…` files, which the next restore into
//! the same place does not reuse.

use super::components;
use super::dirfd::{self, Dir};
use super::fill::{fill, Pending};
use crate::catalog::Catalog;
use crate::error::{input, Context, Error, Result};
use crate::repo::Repository;
use crate::xattr::NotSet;
use cairn_repo_format::{ChunkId, Node, NodeKind, NodeMeta, Snapshot, Xattr};
use futures::StreamExt;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Chunk references filled per batch (bounds the plan's memory).
const BATCH_CHUNKS: usize = 1 << 16;
/// The first batch is small, so that reads start at once.
const FIRST_BATCH_CHUNKS: usize = 1 << 10;
/// Directories a batch's files may be in: each is held open until the
/// batch is filled. With a batch filled, one queued and one being listed,
/// and the files held open (`restore/fill.rs`), a restore stays well below
/// the usual limit of 1,024 open files.
const BATCH_DIRS: usize = 128;

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
    /// FIFOs, sockets and device files created.
    pub specials: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Files not restored because their content is damaged or missing in
    /// the repository: where each should be, and why.
    pub damaged: Vec<(PathBuf, String)>,
    /// What was restored without all of its metadata (an extended
    /// attribute the target refused, a device file without the privilege
    /// to make one): the first [`MAX_WARNINGS`] of them.
    pub warnings: Vec<String>,
    /// How many there were in all.
    pub warning_count: u64,
}

/// Warnings a report keeps word for word.
pub const MAX_WARNINGS: usize = 20;

impl Report {
    fn warn(&mut self, what: String) {
        self.warning_count += 1;
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(what);
        }
    }

    /// Adds what another part of the restore did.
    fn absorb(&mut self, other: Report) {
        self.files += other.files;
        self.dirs += other.dirs;
        self.symlinks += other.symlinks;
        self.hardlinks += other.hardlinks;
        self.specials += other.specials;
        self.bytes += other.bytes;
        self.damaged.extend(other.damaged);
        let room = MAX_WARNINGS.saturating_sub(self.warnings.len());
        self.warnings.extend(other.warnings.into_iter().take(room));
        self.warning_count += other.warning_count;
    }

    /// Notes the extended attributes of `dest` that could not be set.
    pub(super) fn not_set(&mut self, dest: &Path, not_set: Vec<NotSet>) {
        for n in not_set {
            self.warn(format!("{}: {n}", dest.display()));
        }
    }
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

/// The files listed for the next batch.
#[derive(Default)]
struct Batch {
    files: Vec<Pending>,
    chunks: usize,
    /// Directories its files are in (each held open).
    dirs: usize,
    /// Batches listed before it.
    number: usize,
}

impl Batch {
    fn push(&mut self, f: Pending) {
        if self
            .files
            .last()
            .is_none_or(|l| !Arc::ptr_eq(&l.dir, &f.dir))
        {
            self.dirs += 1;
        }
        self.chunks += f.content.len();
        self.files.push(f);
    }
    fn full(&self) -> bool {
        let chunks = if self.number == 0 {
            FIRST_BATCH_CHUNKS
        } else {
            BATCH_CHUNKS
        };
        self.chunks >= chunks || self.dirs >= BATCH_DIRS
    }
    /// The files listed, and an empty batch that follows them.
    fn take(&mut self) -> Vec<Pending> {
        let next = Batch {
            number: self.number + 1,
            ..Batch::default()
        };
        std::mem::replace(self, next).files
    }
}

/// A directory's metadata, applied once everything in it is restored.
type DirMeta = (NodeMeta, Vec<Xattr>);

/// A hard link, made once the file it links to is complete.
struct Link {
    first: PathBuf,
    at: PathBuf,
}

/// The name a file is written under until it is complete: hidden, marked
/// as Cairn's, and never the name of a file of the snapshot (which cannot
/// have been restored in the same directory yet).
fn partial_name() -> OsString {
    format!(".cairn-partial-{}", hex::encode(rand::random::<[u8; 8]>())).into()
}

fn parent_and_name(rel: &Path) -> (&Path, &OsStr) {
    (
        rel.parent().unwrap_or(Path::new("")),
        rel.file_name().unwrap_or_default(),
    )
}

/// Restores the snapshot's tree (or the `includes`) into `target`, with
/// the extended attributes recorded unless `xattrs` is false.
///
/// Nothing outside `target` is touched: entries are reached from directory
/// handles, and symlinks already in the target are replaced, not followed
/// (`restore/dirfd.rs`). Files are written under a temporary name and renamed into
/// place once complete. A file whose content the repository cannot provide
/// intact is not restored; it is named in [`Report::damaged`] and the rest
/// of the tree is restored.
///
/// # Errors
/// If the catalog lacks a tree, the storage fails, or the target cannot be
/// written.
pub async fn to_dir(
    repo: &Repository,
    cat: &Catalog,
    snap: &Snapshot,
    target: &Path,
    includes: &[String],
    xattrs: bool,
) -> Result<Report> {
    let filter = Filter::new(includes);
    let root =
        dirfd::open_target(target).with_context(|| format!("opening {}", target.display()))?;
    // The walk lists the next batch while the one before is filled: one
    // task, the walk yielding after each directory; the reading, writing
    // and decoding run on blocking threads.
    let (tx, mut rx) = futures::channel::mpsc::channel::<Vec<Pending>>(0);
    let walking = walk(cat, snap, &root, target, &filter, xattrs, tx);
    let filling = async {
        let mut report = Report::default();
        while let Some(files) = rx.next().await {
            fill(repo, cat, files, &mut report).await?;
        }
        Ok(report)
    };
    let (walked, filled) = futures::try_join!(walking, filling)?;
    let Walked {
        mut report,
        dirs,
        links,
        matched,
    } = walked;
    report.absorb(filled);
    if !matched {
        input!(
            "nothing in the snapshot matches {}; `cairn ls` lists what is there",
            includes.join(", ")
        );
    }
    link_all(&root, target, &links, &mut report)?;
    // Directory times last, deepest first, so writing children does not change them.
    for (rel, meta, xattrs) in dirs.iter().rev() {
        let dest = target.join(rel);
        let dir = dirfd::open_beneath(&root, rel)
            .with_context(|| format!("opening {}", dest.display()))?;
        let not_set = dirfd::apply_meta(dir.as_fd(), meta, xattrs)
            .with_context(|| format!("setting the mode and times of {}", dest.display()))?;
        report.not_set(&dest, not_set);
    }
    Ok(report)
}

/// What the walk made and left for later.
struct Walked {
    /// Directories, symlinks and special files made, and their warnings.
    report: Report,
    /// Directories made, in the order they were, with the metadata they
    /// get last.
    dirs: Vec<(PathBuf, NodeMeta, Vec<Xattr>)>,
    /// Hard links to make once their files are complete.
    links: Vec<Link>,
    /// Whether anything matched the includes.
    matched: bool,
}

/// Walks the snapshot's trees from the catalog: makes the directories,
/// symlinks and special files, and sends the regular files to be filled,
/// a batch at a time.
async fn walk(
    cat: &Catalog,
    snap: &Snapshot,
    root: &Dir,
    target: &Path,
    filter: &Filter,
    xattrs: bool,
    mut batches: futures::channel::mpsc::Sender<Vec<Pending>>,
) -> Result<Walked> {
    let xattrs_of = |node: &Node| {
        if xattrs {
            node.xattrs.clone()
        } else {
            Vec::new()
        }
    };
    let mut report = Report::default();
    let mut dirs: Vec<(PathBuf, NodeMeta, Vec<Xattr>)> = Vec::new();
    let mut links: Vec<Link> = Vec::new();
    let mut linked: HashMap<(u64, u64), PathBuf> = HashMap::new();
    // A subtree, its path, and its directory's metadata (none for the
    // target). Its directory is opened when it is taken from the stack, so
    // only the directories on the way down are held open, not every
    // pending sibling.
    let mut stack: Vec<(ChunkId, PathBuf, Option<DirMeta>)> =
        vec![(snap.tree, PathBuf::new(), None)];
    let mut matched = filter.0.is_empty();
    let mut batch = Batch::default();
    let mut open_dirs: Vec<(PathBuf, Dir)> = vec![(PathBuf::new(), root.clone())];
    while let Some((tree_id, rel, meta)) = stack.pop() {
        let dir = match meta {
            None => root.clone(),
            Some(meta) => {
                // The deepest open ancestor is this directory's parent (a
                // depth-first walk); the others are done with.
                let (parent_rel, name) = parent_and_name(&rel);
                while open_dirs.last().is_some_and(|(p, _)| p != parent_rel) {
                    open_dirs.pop();
                }
                let parent = open_dirs.last().map(|(_, d)| d.clone()).ok_or_else(|| {
                    Error::Internal(format!("the parent of {} is not open", rel.display()))
                })?;
                let dir = dirfd::ensure_dir(&parent, name)
                    .with_context(|| format!("creating {}", target.join(&rel).display()))?;
                report.dirs += 1;
                dirs.push((rel.clone(), meta.0, meta.1));
                open_dirs.push((rel.clone(), dir.clone()));
                dir
            }
        };
        let tree = cat.tree(&tree_id)?;
        // The batch being filled gets its completed reads seen to.
        tokio::task::yield_now().await;
        for node in tree.nodes() {
            let name = OsStr::from_bytes(&node.name);
            let rel = rel.join(name);
            if !filter.leads_to(&rel) {
                continue;
            }
            let dest = || target.join(&rel);
            match &node.kind {
                NodeKind::Dir { subtree } => {
                    matched |= filter.takes(&rel);
                    stack.push((*subtree, rel, Some((node.meta, xattrs_of(node)))));
                }
                _ if !filter.takes(&rel) => {}
                NodeKind::File { size, content } => {
                    matched = true;
                    let key = (node.meta.device, node.meta.inode);
                    if node.meta.links > 1 {
                        if let Some(first) = linked.get(&key) {
                            links.push(Link {
                                first: first.clone(),
                                at: rel,
                            });
                            continue;
                        }
                        linked.insert(key, rel.clone());
                    }
                    batch.push(Pending {
                        dir: dir.clone(),
                        tmp: partial_name(),
                        name: name.to_owned(),
                        dest: dest(),
                        size: *size,
                        // A file of content lists is restored from all
                        // its ids (32 bytes a chunk: 8 MiB for 32 GiB).
                        content: cat.chunks(content)?,
                        meta: node.meta,
                        xattrs: xattrs_of(node),
                    });
                    if batch.full() {
                        send(&mut batches, batch.take()).await?;
                    }
                }
                NodeKind::Symlink { target: link } => {
                    matched = true;
                    dirfd::symlink(&dir, name, OsStr::from_bytes(link))
                        .with_context(|| format!("creating symlink {}", dest().display()))?;
                    let not_set =
                        dirfd::apply_entry_meta(&dir, name, &node.meta, &xattrs_of(node), true)
                            .with_context(|| {
                                format!("setting the times of {}", dest().display())
                            })?;
                    report.not_set(&dest(), not_set);
                    report.symlinks += 1;
                }
                special => {
                    matched = true;
                    match dirfd::special(&dir, name, special) {
                        Ok(()) => {
                            let not_set = dirfd::apply_entry_meta(
                                &dir,
                                name,
                                &node.meta,
                                &xattrs_of(node),
                                false,
                            )
                            .with_context(|| {
                                format!("setting the mode and times of {}", dest().display())
                            })?;
                            report.not_set(&dest(), not_set);
                            report.specials += 1;
                        }
                        // Only a privileged restore makes device files.
                        Err(e)
                            if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) =>
                        {
                            report.warn(format!(
                                "{}: not restored: making a {} needs privilege ({e})",
                                dest().display(),
                                special.type_name()
                            ));
                        }
                        Err(e) => {
                            return Err(e).with_context(|| format!("creating {}", dest().display()))
                        }
                    }
                }
            }
        }
    }
    drop(open_dirs);
    send(&mut batches, batch.files).await?;
    Ok(Walked {
        report,
        dirs,
        links,
        matched,
    })
}

async fn send(
    batches: &mut futures::channel::mpsc::Sender<Vec<Pending>>,
    files: Vec<Pending>,
) -> Result<()> {
    use futures::SinkExt;
    if files.is_empty() {
        return Ok(());
    }
    // Refused only when the filling stopped, whose error is the one reported.
    batches
        .send(files)
        .await
        .map_err(|_| Error::Internal("the files of a restore were no longer taken".into()))
}

/// Makes the hard links to files restored complete; a link to a damaged
/// file is damaged too.
fn link_all(root: &Dir, target: &Path, links: &[Link], report: &mut Report) -> Result<()> {
    let damaged: HashMap<PathBuf, String> = report.damaged.iter().cloned().collect();
    for link in links {
        let dest = target.join(&link.at);
        if let Some(why) = damaged.get(&target.join(&link.first)) {
            report.damaged.push((dest, why.clone()));
            continue;
        }
        let (from_dir, from) = parent_and_name(&link.first);
        let (to_dir, to) = parent_and_name(&link.at);
        dirfd::open_beneath(root, from_dir)
            .and_then(|f| Ok((f, dirfd::open_beneath(root, to_dir)?)))
            .and_then(|(f, t)| dirfd::hard_link(&f, from, &t, to))
            .with_context(|| {
                format!(
                    "linking {} to {}",
                    dest.display(),
                    target.join(&link.first).display()
                )
            })?;
        report.hardlinks += 1;
    }
    Ok(())
}
