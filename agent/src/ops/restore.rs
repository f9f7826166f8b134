//! The restore operation: one snapshot to a directory, to standard output,
//! or through its source kind's own restore path (a database).

use crate::cancel::Cancel;
use crate::catalog::Catalog;
use crate::error::Result;
use crate::filter::{self, SnapshotFilter};
use crate::repo::Repository;
use crate::restore::{self, tree};
use crate::source::{postgres, redis};
use crate::sync::{self, Trees};
use cairn_repo_format::{ChunkId, NodeKind, SnapshotId};
use std::path::PathBuf;
use std::sync::Arc;

/// Where a snapshot goes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Destination {
    /// Into a directory (created if missing; files of the same names are
    /// replaced), all of it or only the paths in `include`.
    Dir {
        /// The directory.
        path: PathBuf,
        /// Snapshot paths to restore (all when empty).
        #[serde(default)]
        include: Vec<String>,
        /// Whether the extended attributes recorded are set.
        #[serde(default = "crate::util::yes")]
        xattrs: bool,
    },
    /// One file to standard output: a stream snapshot's stream, or the
    /// file at `include`.
    Stdout {
        /// The file's path in the snapshot.
        #[serde(default)]
        include: Option<String>,
    },
    /// A PostgreSQL snapshot into a server, with pg_restore or psql.
    Postgres(postgres::PgRestore),
    /// A Redis snapshot's RDB file to this path.
    RedisRdb {
        /// Where the RDB file goes.
        path: PathBuf,
    },
}

/// What to restore, and where.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreOptions {
    /// A snapshot id prefix, or `latest`: the newest that passes `filter`
    /// (and is of the destination's kind, for a database).
    pub snapshot: String,
    /// What `latest` is chosen among.
    #[serde(default)]
    pub filter: SnapshotFilter,
    /// For a whole directory restore, add up its files' sizes first (a walk
    /// of its trees in the catalog), so that a progress display can
    /// estimate the time left (`Stats::expected_bytes` of
    /// [`Repository::read_stats`]). Other restores always know their size.
    #[serde(default)]
    pub estimate: bool,
    /// Where it goes.
    pub to: Destination,
}

/// A finished restore.
#[derive(Debug)]
pub struct RestoreReport {
    /// The snapshot restored.
    pub id: SnapshotId,
    /// Bytes written (of a stream or RDB file; for a directory, in `tree`).
    pub bytes: u64,
    /// What a directory restore did; files it could not restore because
    /// their data is damaged or missing are in its `damaged`.
    pub tree: Option<tree::Report>,
}

/// Restores a snapshot. The catalog is synced first, with the snapshot's
/// trees.
///
/// # Errors
/// [`crate::Error::Input`] for a snapshot that does not exist or does not
/// fit the destination; storage, local and client failures.
#[tracing::instrument(name = "restore", skip_all, fields(snapshot = %opts.snapshot, id, bytes))]
pub async fn restore(
    repo: &Repository,
    cat: &Arc<Catalog>,
    opts: &RestoreOptions,
    cancel: &Cancel,
) -> Result<RestoreReport> {
    cancel
        .or_cancel(async {
            sync::sync(cat, repo).await?;
            let snapshots = cat.snapshots()?;
            let filter = match &opts.to {
                Destination::Postgres(_) => opts.filter.of_kind("postgres"),
                Destination::RedisRdb { .. } => opts.filter.of_kind("redis"),
                Destination::Dir { .. } | Destination::Stdout { .. } => opts.filter.clone(),
            };
            let (id, snap) = filter::resolve(&snapshots, &opts.snapshot, &filter)?;
            tracing::Span::current().record("id", id.short());
            sync::fetch_trees(cat, repo, Trees::Of(&[*id])).await?;
            // A stream's size is in its root tree; a directory's takes a
            // walk of every tree, so only when asked.
            let sized = match &opts.to {
                Destination::Dir { include, .. } => opts.estimate && include.is_empty(),
                _ => true,
            };
            if sized {
                repo.read_stats().expected_bytes.store(
                    content_bytes(cat, snap.tree)?,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            let mut report = RestoreReport {
                id: *id,
                bytes: 0,
                tree: None,
            };
            match &opts.to {
                Destination::Dir {
                    path,
                    include,
                    xattrs,
                } => {
                    report.tree =
                        Some(tree::to_dir(repo, cat, snap, path, include, *xattrs).await?);
                }
                Destination::Stdout { include } => {
                    report.bytes = restore::to_stdout(repo, cat, snap, include.as_deref()).await?;
                }
                Destination::Postgres(how) => postgres::restore(repo, cat, snap, how).await?,
                Destination::RedisRdb { path } => {
                    report.bytes = redis::restore_rdb(repo, cat, snap, path).await?;
                }
            }
            let bytes = report.tree.as_ref().map_or(report.bytes, |t| t.bytes);
            tracing::Span::current().record("bytes", bytes);
            let whereto = match &opts.to {
                Destination::Dir { path, .. } => format!("the directory {}", path.display()),
                Destination::Stdout { .. } => "standard output".to_owned(),
                Destination::Postgres(how) => format!(
                    "PostgreSQL database {}",
                    how.conn.dbname.as_deref().unwrap_or("(the snapshot's)")
                ),
                Destination::RedisRdb { path } => format!("the RDB file {}", path.display()),
            };
            // A restore whose files were not all restored is reported as
            // failed, and is not a restore of the snapshot.
            let whole = report.tree.as_ref().is_none_or(|t| t.damaged.is_empty());
            if whole {
                crate::audit::record(
                    repo,
                    "restore",
                    &[*id],
                    format!(
                        "restored snapshot {} of {} to {whereto}",
                        id.short(),
                        crate::source::describe(&snap.source)
                    ),
                )
                .await;
            }
            tracing::debug!("restored");
            Ok::<_, crate::Error>(report)
        })
        .await
}

/// The bytes of the regular files below `tree` (a hard-linked file once),
/// from the catalog: what a whole restore writes, for its progress.
fn content_bytes(cat: &Catalog, tree: ChunkId) -> Result<u64> {
    let mut total = 0u64;
    let mut linked = std::collections::HashSet::new();
    let mut stack = vec![tree];
    while let Some(id) = stack.pop() {
        for node in cat.tree(&id)?.nodes() {
            match &node.kind {
                NodeKind::Dir { subtree } => stack.push(*subtree),
                NodeKind::File { size, .. }
                    if node.meta.links < 2
                        || linked.insert((node.meta.device, node.meta.inode)) =>
                {
                    total = total.saturating_add(*size);
                }
                _ => {}
            }
        }
    }
    Ok(total)
}
