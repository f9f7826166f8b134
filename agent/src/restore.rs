//! Restores: a stream to stdout, into a file or into a client's standard
//! input (the primitives a source module's restore path uses), or a tree
//! into a directory ([`tree`]). Trees come from the catalog.
//!
//! A stream is read a batch of chunks at a time through
//! [`crate::repo::read::read_blobs`] (aligned, coalesced, verified reads),
//! the next batch being read while the current one is written. Every chunk is
//! authenticated and hashed before a byte of it is written; on any error the
//! file being written is removed and the restore fails.

use crate::catalog::Catalog;
use crate::error::{corrupt, input, Context, Error, Result};
use crate::repo::read::{locate_all, read_located};
use crate::repo::Repository;
use bytes::Bytes;
use cairn_repo_format::{ChunkId, FileContent, Node, NodeKind, Snapshot};
use futures::{Stream, StreamExt, TryStreamExt};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

mod dirfd;
mod fill;
pub mod tree;

pub use tree::to_dir;

/// Plaintext bytes per batch of chunks. With the backend's
/// [`crate::backend::ReadProfile::batches_ahead`] it bounds a stream
/// restore's memory; 8 MiB restored as fast as 12 MiB with about 10 MiB less
/// peak (docs/benchmarks.md).
const BATCH_BYTES: u64 = 8 << 20;

/// Chunks located in one read transaction of the catalog.
const LOCATE_AT_ONCE: usize = 256;

/// A file's chunks, in order, in batches of about [`BATCH_BYTES`]; each
/// chunk is located once, [`LOCATE_AT_ONCE`] at a time (a large file's
/// content lists are read as the restore reaches them).
fn content_batches<'a>(
    repo: &'a Repository,
    cat: &'a Catalog,
    content: &'a FileContent,
) -> impl Stream<Item = Result<Vec<Bytes>>> + 'a {
    let mut ids = cat.chunk_groups(content, LOCATE_AT_ONCE);
    let mut located = std::collections::VecDeque::new();
    let batches = std::iter::from_fn(move || {
        let (mut batch, mut bytes) = (Vec::new(), 0u64);
        while bytes < BATCH_BYTES {
            if located.is_empty() {
                let next = match ids.next() {
                    None => break,
                    Some(Err(e)) => return Some(Err(e)),
                    Some(Ok(next)) => next,
                };
                match locate_all(cat, &next) {
                    Ok(found) => located.extend(found),
                    Err(e) => return Some(Err(e)),
                }
            }
            let Some(found @ (_, _, entry)) = located.pop_front() else {
                break;
            };
            bytes += u64::from(entry.raw_len);
            batch.push(found);
        }
        (!batch.is_empty()).then_some(Ok(batch))
    });
    futures::stream::iter(batches)
        .map(move |batch| async move { read_located(repo, cat, &batch?).await })
        .buffered(repo.backend.read_profile().batches_ahead)
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

/// Finds the node at `path` below the root tree (from the catalog alone).
pub fn find(cat: &Catalog, root: ChunkId, path: &str) -> Result<Option<Node>> {
    let parts = components(path);
    let mut tree = cat.tree(&root)?;
    for (i, part) in parts.iter().enumerate() {
        // The node is taken, not copied: a large file's content list is
        // the largest thing a restore holds.
        let Some(node) = tree.into_node(part) else {
            return Ok(None);
        };
        if i + 1 == parts.len() {
            return Ok(Some(node));
        }
        match node.kind {
            NodeKind::Dir { subtree } => tree = cat.tree(&subtree)?,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// The single file of a stream snapshot, or the file at `include`.
fn stream_node(cat: &Catalog, snap: &Snapshot, include: Option<&str>) -> Result<Node> {
    let node = match include {
        Some(p) => find(cat, snap.tree, p)?.ok_or_else(|| {
            Error::Input(format!(
                "{p} is not in the snapshot; `cairn ls` lists what is"
            ))
        })?,
        None => {
            let mut nodes = cat.tree(&snap.tree)?.into_nodes();
            match nodes.pop() {
                Some(one) if nodes.is_empty() && matches!(one.kind, NodeKind::File { .. }) => one,
                _ => input!("this snapshot holds several files, not a single stream: choose one with --include PATH, or restore with --target DIR"),
            }
        }
    };
    if !matches!(node.kind, NodeKind::File { .. }) {
        input!(
            "{} is not a regular file",
            String::from_utf8_lossy(&node.name)
        );
    }
    Ok(node)
}

/// Where [`write_node`] puts a file's content: a blocking file descriptor
/// (standard output, a client's stdin pipe, a file) written on a blocking
/// thread, one batch while the next is read and verified. No copy into an
/// async wrapper's buffer, no thread hop per write: restoring the dump to a
/// file through `tokio::fs::File` took 2.0–2.3 s against 1.4–1.9 s this way.
struct BlockingOut {
    file: Option<std::fs::File>,
    writing: Option<tokio::task::JoinHandle<std::io::Result<std::fs::File>>>,
}

impl BlockingOut {
    fn new(file: std::fs::File) -> Self {
        Self {
            file: Some(file),
            writing: None,
        }
    }

    /// Writes the chunks, in order, on a blocking thread. Returns once the
    /// previous batch is written, so a failure surfaces on the next call or
    /// in [`BlockingOut::finish`].
    async fn write_batch(&mut self, batch: Vec<Bytes>) -> std::io::Result<()> {
        use std::io::Write;
        self.finish().await?;
        let mut file = self.take()?;
        self.writing = Some(tokio::task::spawn_blocking(move || {
            for chunk in &batch {
                file.write_all(chunk)?;
            }
            Ok(file)
        }));
        Ok(())
    }

    /// Waits for everything to be written.
    async fn finish(&mut self) -> std::io::Result<()> {
        if let Some(h) = self.writing.take() {
            self.file = Some(h.await.map_err(std::io::Error::other)??);
        }
        Ok(())
    }

    /// The file back, once everything is written.
    async fn into_file(mut self) -> std::io::Result<std::fs::File> {
        self.finish().await?;
        self.take()
    }

    fn take(&mut self) -> std::io::Result<std::fs::File> {
        self.file
            .take()
            .ok_or_else(|| std::io::Error::other("the output was lost after a failed write"))
    }
}

/// Writes a file node's content to `out`, verifying every chunk first.
async fn write_node(
    repo: &Repository,
    cat: &Catalog,
    node: &Node,
    out: &mut BlockingOut,
    what: &str,
) -> Result<u64> {
    let NodeKind::File { size, content } = &node.kind else {
        input!(
            "{} is not a regular file",
            String::from_utf8_lossy(&node.name)
        );
    };
    let mut written = 0u64;
    let mut batches = content_batches(repo, cat, content);
    while let Some(batch) = batches.try_next().await? {
        written += batch.iter().map(|c| c.len() as u64).sum::<u64>();
        out.write_batch(batch)
            .await
            .with_context(|| format!("writing to {what}"))?;
    }
    out.finish()
        .await
        .with_context(|| format!("writing to {what}"))?;
    if written != *size {
        corrupt!("the restored stream has {written} bytes but the snapshot says {size}: the snapshot is inconsistent");
    }
    Ok(written)
}

/// The pipe buffer a restore asks for when it writes into a pipe. With
/// Linux's default of 64 KiB, cairn and the reader took turns every 64 KiB:
/// the 1 GiB dump restored into `cat` in 1.29–2.18 s; with 1 MiB (the most an
/// unprivileged process may ask for, `/proc/sys/fs/pipe-max-size`) in
/// 1.10–1.26 s, about as fast as into a file (docs/benchmarks.md).
pub const PIPE_BUFFER: usize = 1 << 20;

/// Grows the buffer of the pipe `fd` writes into to [`PIPE_BUFFER`], if `fd`
/// is a pipe with a smaller one. Best effort: where the system refuses (a
/// lower `pipe-max-size`, the user's pipe quota spent), the pipe stays as it
/// was and only the speed differs.
#[cfg(target_os = "linux")]
pub fn widen_pipe(fd: impl std::os::fd::AsFd) {
    // Not a pipe: F_GETPIPE_SZ fails.
    if rustix::pipe::fcntl_getpipe_size(&fd).is_ok_and(|n| n < PIPE_BUFFER) {
        let _ = rustix::pipe::fcntl_setpipe_size(&fd, PIPE_BUFFER);
    }
}

/// Pipe buffers can be resized on Linux only.
#[cfg(not(target_os = "linux"))]
pub fn widen_pipe(_fd: impl std::os::fd::AsFd) {}

/// Writes one file of the snapshot to stdout: the stream of a stream
/// snapshot, or the file at `include`.
pub async fn to_stdout(
    repo: &Repository,
    cat: &Catalog,
    snap: &Snapshot,
    include: Option<&str>,
) -> Result<u64> {
    use std::os::fd::AsFd;
    let node = stream_node(cat, snap, include)?;
    let fd = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("standard output")?;
    widen_pipe(&fd);
    let mut out = BlockingOut::new(std::fs::File::from(fd));
    write_node(repo, cat, &node, &mut out, "standard output").await
}

/// The file of a database snapshot's root tree called `name`, if present.
///
/// # Errors
/// If the catalog lacks the tree.
pub(crate) fn root_file(cat: &Catalog, snap: &Snapshot, name: &str) -> Result<Option<Node>> {
    Ok(cat.tree(&snap.tree)?.get(name.as_bytes()).cloned())
}

/// Feeds a file node into a client's standard input and checks its exit status.
///
/// # Errors
/// If the client cannot start or fails, or the data cannot be read.
pub(crate) async fn pipe_into(
    repo: &Repository,
    cat: &Catalog,
    node: &Node,
    argv: &[String],
) -> Result<()> {
    let (status, _) = feed(repo, cat, node, argv, false).await?;
    if !status.success() {
        return Err(client_failed(&argv[0], status));
    }
    Ok(())
}

/// Feeds a file node into a client's standard input; its exit status, and
/// what it wrote to standard error when `capture` (else that goes to ours).
/// The client's exit status is returned even if the data could not all be
/// fed, unless it succeeded: then the feeding's error is.
///
/// # Errors
/// If the client cannot start, or succeeded on data that could not be read.
pub(crate) async fn feed(
    repo: &Repository,
    cat: &Catalog,
    node: &Node,
    argv: &[String],
    capture: bool,
) -> Result<(std::process::ExitStatus, String)> {
    use tokio::io::AsyncReadExt;
    let (reader, writer) = std::io::pipe().context("creating a pipe")?;
    widen_pipe(&writer);
    // The command, and with it our copy of the read end, is gone once
    // spawned: the client sees the end of its input when we close ours.
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(reader)
        .stdout(std::process::Stdio::null())
        .stderr(if capture {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::inherit()
        })
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", argv[0]))?;
    // Read concurrently: a client with much to say would block on a full pipe.
    let said = child.stderr.take().map(|mut e| {
        tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = e.read_to_end(&mut text).await;
            String::from_utf8_lossy(&text).into_owned()
        })
    });
    let mut out = BlockingOut::new(std::fs::File::from(std::os::fd::OwnedFd::from(writer)));
    let fed = write_node(repo, cat, node, &mut out, &argv[0]).await;
    drop(out);
    let status = child.wait().await?;
    let said = match said {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    };
    match fed {
        Err(e) if status.success() => Err(e),
        _ => Ok((status, said)),
    }
}

/// Writes a file node's content into a file at `path` (created private to
/// the user, mode 0600: it is plaintext) and returns it; if anything fails,
/// the file is removed.
///
/// # Errors
/// If the file cannot be written or the data cannot be read.
pub(crate) async fn write_new_file(
    repo: &Repository,
    cat: &Catalog,
    node: &Node,
    path: &Path,
) -> Result<(u64, std::fs::File)> {
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        let owned = path.to_owned();
        tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(owned)
        })
        .await?
        .with_context(|| format!("creating {}", path.display()))?
    };
    let mut out = BlockingOut::new(file);
    let what = path.display().to_string();
    let written = match write_node(repo, cat, node, &mut out, &what).await {
        Ok(n) => out
            .into_file()
            .await
            .map(|f| (n, f))
            .with_context(|| format!("writing to {what}")),
        Err(e) => Err(e),
    };
    if written.is_err() {
        let _ = tokio::fs::remove_file(path).await;
    }
    written
}

/// A restore client exited non-zero; its messages went to standard error.
pub(crate) fn client_failed(program: &str, status: std::process::ExitStatus) -> Error {
    Error::Input(format!(
        "{program} failed ({status}); its messages are above"
    ))
}
