//! Restores: a stream to stdout, or a tree into a directory.
//!
//! File contents are read a batch of chunks at a time through
//! [`crate::repo::read::read_blobs`] (aligned, coalesced, verified reads),
//! the next batch being read while the current one is written. Every chunk is
//! authenticated and hashed before a byte of it is written; on any error the
//! file being written is removed and the restore fails.

use crate::repo::{read::read_blobs, BlobIndex, Repository};
use crate::source::postgres::PgConn;
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use cairn_repo_format::{ChunkId, Node, NodeKind, NodeMeta, Snapshot, Source, Tree};
use futures::{Stream, StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Plaintext bytes per batch of chunks.
const BATCH_BYTES: u64 = 32 << 20;
/// Batches being read ahead of the writer.
const BATCHES_AHEAD: usize = 2;

/// A file's chunks, in order, in batches.
fn content_batches<'a>(
    repo: &'a Repository,
    index: &'a BlobIndex,
    content: &'a [ChunkId],
) -> impl Stream<Item = Result<Vec<Bytes>>> + 'a {
    let mut batches: Vec<&'a [ChunkId]> = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, id) in content.iter().enumerate() {
        bytes += index.get(id).map_or(0, |(_, e)| u64::from(e.raw_len));
        if bytes >= BATCH_BYTES || i + 1 == content.len() {
            batches.push(&content[start..=i]);
            start = i + 1;
            bytes = 0;
        }
    }
    futures::stream::iter(batches)
        .map(move |b| read_blobs(repo, index, b))
        .buffered(BATCHES_AHEAD)
}

/// Splits a user path (`/srv/data`, `srv/data`) into snapshot components.
fn components(path: &str) -> Vec<Vec<u8>> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_bytes().to_vec()),
            _ => None,
        })
        .collect()
}

/// Finds the node at `path` below the root tree.
pub async fn find(
    repo: &Repository,
    index: &BlobIndex,
    root: ChunkId,
    path: &str,
) -> Result<Option<Node>> {
    let parts = components(path);
    let mut tree = repo.read_tree(index, root).await?;
    for (i, part) in parts.iter().enumerate() {
        let Some(node) = tree.get(part).cloned() else {
            return Ok(None);
        };
        if i + 1 == parts.len() {
            return Ok(Some(node));
        }
        match node.kind {
            NodeKind::Dir { subtree } => tree = repo.read_tree(index, subtree).await?,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// The single file of a stream snapshot, or the file at `include`.
async fn stream_node(
    repo: &Repository,
    index: &BlobIndex,
    snap: &Snapshot,
    include: Option<&str>,
) -> Result<Node> {
    let node = match include {
        Some(p) => find(repo, index, snap.tree, p)
            .await?
            .ok_or_else(|| anyhow!("{p} is not in the snapshot; `cairn ls` lists what is"))?,
        None => {
            let root = repo.read_tree(index, snap.tree).await?;
            match root.nodes() {
                [one] if matches!(one.kind, NodeKind::File { .. }) => one.clone(),
                _ => bail!("this snapshot holds several files, not a single stream: choose one with --include PATH, or restore with --target DIR"),
            }
        }
    };
    if !matches!(node.kind, NodeKind::File { .. }) {
        bail!(
            "{} is not a regular file",
            String::from_utf8_lossy(&node.name)
        );
    }
    Ok(node)
}

/// Writes a file node's content to `out`, verifying every chunk first.
async fn write_node(
    repo: &Repository,
    index: &BlobIndex,
    node: &Node,
    out: &mut (impl tokio::io::AsyncWrite + Unpin),
    what: &str,
) -> Result<u64> {
    let NodeKind::File { size, content } = &node.kind else {
        bail!(
            "{} is not a regular file",
            String::from_utf8_lossy(&node.name)
        );
    };
    let mut written = 0u64;
    let mut batches = content_batches(repo, index, content);
    while let Some(batch) = batches.try_next().await? {
        for chunk in batch {
            out.write_all(&chunk)
                .await
                .with_context(|| format!("writing to {what}"))?;
            written += chunk.len() as u64;
        }
    }
    out.flush()
        .await
        .with_context(|| format!("writing to {what}"))?;
    if written != *size {
        bail!("the restored stream has {written} bytes but the snapshot says {size}: the snapshot is inconsistent");
    }
    Ok(written)
}

/// Writes one file of the snapshot to stdout: the stream of a stream
/// snapshot, or the file at `include`.
pub async fn to_stdout(
    repo: &Repository,
    index: &BlobIndex,
    snap: &Snapshot,
    include: Option<&str>,
) -> Result<u64> {
    let node = stream_node(repo, index, snap, include).await?;
    write_node(
        repo,
        index,
        &node,
        &mut tokio::io::stdout(),
        "standard output",
    )
    .await
}

/// The file of a database snapshot's root tree called `name`, if present.
async fn root_file(
    repo: &Repository,
    index: &BlobIndex,
    snap: &Snapshot,
    name: &str,
) -> Result<Option<Node>> {
    Ok(repo
        .read_tree(index, snap.tree)
        .await?
        .get(name.as_bytes())
        .cloned())
}

/// Feeds a file node into a client's standard input and checks its exit status.
async fn pipe_into(
    repo: &Repository,
    index: &BlobIndex,
    node: &Node,
    argv: &[String],
) -> Result<()> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", argv[0]))?;
    let mut stdin = child.stdin.take().context("no stdin pipe")?;
    let fed = write_node(repo, index, node, &mut stdin, &argv[0]).await;
    drop(stdin);
    let status = child.wait().await?;
    if !status.success() {
        bail!("{} failed ({status}); its messages are above", argv[0]);
    }
    fed.map(|_| ())
}

/// Restores a PostgreSQL snapshot: globals with psql, then the dump with
/// pg_restore (custom) or psql (plain).
pub async fn to_postgres(
    repo: &Repository,
    index: &BlobIndex,
    snap: &Snapshot,
    conn: &PgConn,
    create: bool,
    clean: bool,
    jobs: Option<u32>,
) -> Result<()> {
    let Source::Postgres { format, dbname, .. } = &snap.source else {
        bail!("this snapshot is not a PostgreSQL backup; use --stdout or --target");
    };
    let target = conn.dbname.clone().unwrap_or_else(|| {
        if create {
            "postgres".into()
        } else {
            dbname.clone()
        }
    });
    let psql = |extra: &[&str]| {
        let mut a = vec![
            "psql".to_owned(),
            "--no-psqlrc".to_owned(),
            "--quiet".to_owned(),
        ];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a.extend(conn.args(Some(&target)));
        a
    };
    if let Some(globals) = root_file(repo, index, snap, "globals.sql").await? {
        // Roles that already exist are reported by psql and skipped.
        pipe_into(repo, index, &globals, &psql(&[]))
            .await
            .context("restoring globals")?;
    }
    if format == "plain" {
        if create || clean {
            bail!("--create and --clean apply to custom-format dumps; this snapshot is plain SQL (use pg_dump's own options at backup time)");
        }
        let dump = root_file(repo, index, snap, "database.sql")
            .await?
            .context("the snapshot has no database.sql")?;
        return pipe_into(repo, index, &dump, &psql(&["--set=ON_ERROR_STOP=1"])).await;
    }
    let dump = root_file(repo, index, snap, "database.dump")
        .await?
        .context("the snapshot has no database.dump")?;
    let mut argv = vec!["pg_restore".to_owned()];
    if clean {
        argv.extend(["--clean".to_owned(), "--if-exists".to_owned()]);
    }
    if create {
        argv.push("--create".to_owned());
    }
    argv.extend(conn.args(Some(&target)));
    match jobs.filter(|j| *j > 1) {
        None => pipe_into(repo, index, &dump, &argv).await,
        Some(j) => {
            // pg_restore runs parallel jobs only from a file.
            let path = std::env::temp_dir().join(format!(
                "cairn-restore-{}.dump",
                hex::encode(rand::random::<[u8; 8]>())
            ));
            let mut file = tokio::fs::File::create(&path)
                .await
                .with_context(|| format!("creating {}", path.display()))?;
            let staged =
                write_node(repo, index, &dump, &mut file, &path.display().to_string()).await;
            drop(file);
            let result = match staged {
                Ok(_) => {
                    argv.push(format!("--jobs={j}"));
                    argv.push(path.display().to_string());
                    let status = tokio::process::Command::new(&argv[0])
                        .args(&argv[1..])
                        .status()
                        .await?;
                    if status.success() {
                        Ok(())
                    } else {
                        Err(anyhow!(
                            "pg_restore failed ({status}); its messages are above"
                        ))
                    }
                }
                Err(e) => Err(e),
            };
            let _ = tokio::fs::remove_file(&path).await;
            result
        }
    }
}

/// Writes the RDB file of a Redis snapshot to `path` (atomically: a temp
/// file in the same directory, then a rename).
pub async fn to_redis_rdb(
    repo: &Repository,
    index: &BlobIndex,
    snap: &Snapshot,
    path: &Path,
) -> Result<u64> {
    if !matches!(snap.source, Source::Redis { .. }) {
        bail!("this snapshot is not a Redis backup");
    }
    let node = root_file(repo, index, snap, "dump.rdb")
        .await?
        .context("the snapshot has no dump.rdb")?;
    let tmp = path.with_extension("rdb.cairn-tmp");
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = write_node(repo, index, &node, &mut file, &tmp.display().to_string()).await;
    let written = match written {
        Ok(n) => {
            file.sync_all().await?;
            n
        }
        Err(e) => {
            drop(file);
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    tokio::fs::rename(&tmp, path)
        .await
        .with_context(|| format!("moving the RDB into place at {}", path.display()))?;
    Ok(written)
}

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

/// Restores the snapshot's tree (or the `includes`) into `target`.
pub async fn to_dir(
    repo: &Repository,
    index: &BlobIndex,
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
    while let Some((tree_id, rel)) = stack.pop() {
        let tree: Tree = repo.read_tree(index, tree_id).await?;
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
                    if let Err(e) = write_file(repo, index, &dest, *size, content).await {
                        let _ = std::fs::remove_file(&dest);
                        return Err(e.context(format!("restoring {}", dest.display())));
                    }
                    apply_meta(&dest, &node.meta)?;
                    report.files += 1;
                    report.bytes += size;
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

/// Writes a file in place: its length first (a hole), then every chunk that
/// is not all zeros at its offset, so sparse files stay sparse.
async fn write_file(
    repo: &Repository,
    index: &BlobIndex,
    dest: &Path,
    size: u64,
    content: &[ChunkId],
) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)?;
    file.set_len(size)?;
    let file = Arc::new(file);
    let mut offset = 0u64;
    let mut batches = content_batches(repo, index, content);
    while let Some(batch) = batches.try_next().await? {
        let f = file.clone();
        let start = offset;
        offset += batch.iter().map(|c| c.len() as u64).sum::<u64>();
        if offset > size {
            bail!("content is longer than the recorded size {size}: the snapshot is inconsistent");
        }
        tokio::task::spawn_blocking(move || {
            let mut at = start;
            for chunk in batch {
                if chunk.iter().any(|b| *b != 0) {
                    f.write_all_at(&chunk, at)?;
                }
                at += chunk.len() as u64;
            }
            Ok::<_, std::io::Error>(())
        })
        .await??;
    }
    if offset != size {
        bail!("content has {offset} bytes but the recorded size is {size}: the snapshot is inconsistent");
    }
    file.sync_all()?;
    Ok(())
}
