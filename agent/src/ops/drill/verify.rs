//! Drills of file trees and streams: restored into the scratch directory,
//! then read back and compared with the snapshot, entry by entry: type,
//! size, mode, modification time, owner (when run as root, which restores
//! owners), link targets, device numbers, extended attributes of the
//! `user.` namespace (all of them as root), and every file's content, chunk
//! by chunk, hashed again under the repository's id key.

use super::{check_command, DrillOptions, Outcome};
use crate::catalog::Catalog;
use crate::error::{Context, Error, Result};
use crate::repo::Repository;
use crate::restore::tree;
use cairn_chunker::IdKey;
use cairn_repo_format::{ChunkId, FileContent, Node, NodeKind, Snapshot, SnapshotId};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Problems listed one by one; past this many, only counted.
const MAX_LISTED: usize = 20;

/// Drills a snapshot restored as a tree.
pub(super) async fn drill(
    repo: &Repository,
    cat: &Arc<Catalog>,
    _id: SnapshotId,
    snap: &Snapshot,
    opts: &DrillOptions,
    dir: &Path,
) -> Result<Outcome> {
    let target = dir.join("restore");
    let mut out = Outcome {
        target: format!("the directory {}", target.display()),
        ..Outcome::default()
    };
    let started = Instant::now();
    let report = tree::to_dir(repo, cat, snap, &target, &[], true).await?;
    out.rto_seconds = started.elapsed().as_secs_f64();
    for (path, why) in &report.damaged {
        out.problems
            .push(format!("{}: not restored ({why})", path.display()));
    }
    let verifying = Instant::now();
    let env = [("CAIRN_DRILL_DIR", target.display().to_string())];
    if let Some(problem) = check_command(opts, &env).await {
        out.problems.push(problem);
    }
    let (cat, key, root) = (cat.clone(), repo.keys.id.clone(), snap.tree);
    let damaged: Vec<PathBuf> = report.damaged.iter().map(|(p, _)| p.clone()).collect();
    let found = tokio::task::spawn_blocking(move || {
        let mut v = Verifier {
            cat: &cat,
            key: &key,
            root_owner: nix::unistd::geteuid().is_root(),
            damaged: &damaged,
            found: Found::default(),
        };
        v.dir(root, &target, Path::new("/"))?;
        Ok::<_, Error>(v.found)
    })
    .await
    .map_err(|e| Error::Internal(format!("the verification stopped: {e}")))??;
    let listed = found.problems.len().min(MAX_LISTED);
    out.problems
        .extend(found.problems[..listed].iter().cloned());
    if found.problems.len() > listed {
        out.problems.push(format!(
            "and {} more differences",
            found.problems.len() - listed
        ));
    }
    out.checked.files = Some(found.files);
    out.checked.other_entries = Some(found.others);
    out.checked.bytes = Some(found.bytes);
    out.verify_seconds = verifying.elapsed().as_secs_f64();
    Ok(out)
}

#[derive(Debug, Default)]
struct Found {
    files: u64,
    others: u64,
    bytes: u64,
    problems: Vec<String>,
}

struct Verifier<'a> {
    cat: &'a Catalog,
    key: &'a IdKey,
    root_owner: bool,
    /// Files the restore reported as damaged, where they would be on disk
    /// (already problems).
    damaged: &'a [PathBuf],
    found: Found,
}

impl Verifier<'_> {
    /// Compares the tree `id` with the directory `on_disk`, which is `shown`
    /// in the snapshot.
    fn dir(&mut self, id: ChunkId, on_disk: &Path, shown: &Path) -> Result<()> {
        for node in self.cat.tree(&id)?.nodes() {
            let name = std::ffi::OsStr::from_bytes(&node.name);
            let (path, shown) = (on_disk.join(name), shown.join(name));
            if self.damaged.contains(&path) {
                continue;
            }
            self.node(node, &path, &shown)?;
        }
        Ok(())
    }

    fn problem(&mut self, shown: &Path, what: impl std::fmt::Display) {
        self.found
            .problems
            .push(format!("{}: {what}", shown.display()));
    }

    fn node(&mut self, node: &Node, path: &Path, shown: &Path) -> Result<()> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.problem(shown, format!("missing after the restore ({e})"));
                return Ok(());
            }
        };
        let ft = meta.file_type();
        let same_type = match &node.kind {
            NodeKind::File { .. } => ft.is_file(),
            NodeKind::Dir { .. } => ft.is_dir(),
            NodeKind::Symlink { .. } => ft.is_symlink(),
            NodeKind::Fifo => ft.is_fifo(),
            NodeKind::Socket => ft.is_socket(),
            NodeKind::CharDevice { .. } => ft.is_char_device(),
            NodeKind::BlockDevice { .. } => ft.is_block_device(),
        };
        if !same_type {
            self.problem(
                shown,
                format!(
                    "a {} in the snapshot, restored as {ft:?}",
                    node.kind.type_name()
                ),
            );
            return Ok(());
        }
        let m = &node.meta;
        if !ft.is_symlink() {
            if meta.mode() & 0o7777 != m.mode {
                self.problem(
                    shown,
                    format!(
                        "mode {:04o} in the snapshot, {:04o} restored",
                        m.mode,
                        meta.mode() & 0o7777
                    ),
                );
            }
            let mtime = meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec());
            if mtime != m.mtime_ns {
                self.problem(
                    shown,
                    format!(
                        "modified at {} in the snapshot, {} restored",
                        crate::util::rfc3339(m.mtime_ns),
                        crate::util::rfc3339(mtime)
                    ),
                );
            }
        }
        if self.root_owner && (meta.uid(), meta.gid()) != (m.uid, m.gid) {
            self.problem(
                shown,
                format!(
                    "owner {}:{} in the snapshot, {}:{} restored",
                    m.uid,
                    m.gid,
                    meta.uid(),
                    meta.gid()
                ),
            );
        }
        if !ft.is_symlink() {
            self.xattrs(node, path, shown);
        }
        match &node.kind {
            NodeKind::File { size, content } => {
                self.found.files += 1;
                if meta.len() != *size {
                    self.problem(
                        shown,
                        format!("{size} bytes in the snapshot, {} restored", meta.len()),
                    );
                } else {
                    self.content(content, path, shown)?;
                }
                return Ok(());
            }
            NodeKind::Dir { subtree } => self.dir(*subtree, path, shown)?,
            NodeKind::Symlink { target } => {
                let restored = std::fs::read_link(path).map(|t| t.as_os_str().as_bytes().to_vec());
                if restored.as_deref().ok() != Some(target.as_slice()) {
                    self.problem(
                        shown,
                        format!(
                            "links to {:?} in the snapshot, restored otherwise",
                            String::from_utf8_lossy(target)
                        ),
                    );
                }
            }
            NodeKind::CharDevice { major, minor } | NodeKind::BlockDevice { major, minor } => {
                let rdev = meta.rdev();
                let (ma, mi) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
                if (ma, mi) != (*major, *minor) {
                    self.problem(
                        shown,
                        format!("device {major}:{minor} in the snapshot, {ma}:{mi} restored"),
                    );
                }
            }
            NodeKind::Fifo | NodeKind::Socket => {}
        }
        self.found.others += 1;
        Ok(())
    }

    /// The recorded extended attributes a restore by this user sets.
    fn xattrs(&mut self, node: &Node, path: &Path, shown: &Path) {
        let settable = |name: &[u8]| self.root_owner || name.starts_with(b"user.");
        let want: Vec<_> = node.xattrs.iter().filter(|x| settable(&x.name)).collect();
        if want.is_empty() {
            return;
        }
        let have = crate::xattr::read(path).unwrap_or_default();
        for x in want {
            if !have.iter().any(|h| h.name == x.name && h.value == x.value) {
                let name = String::from_utf8_lossy(&x.name).into_owned();
                self.problem(
                    shown,
                    format!("extended attribute {name} not restored as recorded"),
                );
            }
        }
    }

    /// Reads the file back chunk by chunk: each piece of the recorded
    /// chunk's length must hash to its id.
    fn content(&mut self, content: &FileContent, path: &Path, shown: &Path) -> Result<()> {
        let mut file = std::fs::File::open(path)
            .with_context(|| format!("reading back {}", path.display()))?;
        let mut buf = Vec::new();
        let mut at = 0u64;
        let mut i = 0usize;
        let cat = self.cat;
        for group in cat.chunk_groups(content, 1024) {
            for id in group? {
                i += 1;
                let Some((_, entry)) = cat.locate(&id)? else {
                    self.problem(shown, format!("chunk {i} is not in the index"));
                    return Ok(());
                };
                buf.resize(entry.raw_len as usize, 0);
                file.read_exact(&mut buf)
                    .with_context(|| format!("reading back {}", path.display()))?;
                if self.key.chunk_id(&buf) != id {
                    self.problem(
                        shown,
                        format!(
                            "content differs in bytes {at}..{} (chunk {i})",
                            at + buf.len() as u64
                        ),
                    );
                    return Ok(());
                }
                at += buf.len() as u64;
                self.found.bytes += buf.len() as u64;
            }
        }
        Ok(())
    }
}
