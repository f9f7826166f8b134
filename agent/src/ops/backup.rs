//! The backup operation: source → pipeline → session commit.

use crate::cancel::Cancel;
use crate::catalog::spill::Written;
use crate::catalog::Catalog;
use crate::error::{input, Error, Result};
use crate::filter::{self, SnapshotFilter};
use crate::gc;
use crate::pipeline::chunk::StreamChunker;
use crate::pipeline::{self, Options, Target};
use crate::repo::Repository;
use crate::session::{self, Session};
use crate::source::files::{FilesPlan, WalkReport, Walker};
use crate::source::{files, stream, Plan, Recorded, SourceError, SourceSettings, StreamPlan};
use crate::stats::Stats;
use crate::sync::{self, Trees};
use crate::util;
use cairn_chunker::Chunker;
use cairn_repo_format::{ChunkId, Counts, PackSet, Snapshot, SnapshotId, Source, Summary};
use std::sync::Arc;
use std::time::Instant;

/// Which snapshot a files backup compares files with: a file whose size,
/// times and inode match its entry there is not read again.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parent {
    /// The latest snapshot of the same paths from this host.
    #[default]
    Latest,
    /// None: every file is read.
    None,
    /// This snapshot (an id prefix, or `latest`).
    Snapshot(String),
}

/// What to back up, and how.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupOptions {
    /// The source.
    pub source: SourceSettings,
    /// For file trees: the snapshot to compare with.
    #[serde(default)]
    pub parent: Parent,
    /// Pack uploads in flight (each a spool file of about a pack, on disk).
    #[serde(default = "default_uploads")]
    pub uploads: usize,
    /// Fail, committing nothing, if the source gives fewer bytes (a
    /// producer that failed before writing everything).
    #[serde(default)]
    pub expect_min_bytes: u64,
    /// The snapshot's tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The host name recorded in the snapshot (default: this machine's).
    /// Retention groups by it and a files backup's parent is looked for
    /// under it: a pod whose host name changes with each restart names
    /// its node here.
    #[serde(default)]
    pub host: Option<String>,
    /// For a files backup, add up the sizes of the files to read first, on
    /// a thread of its own while the backup runs, so that a progress
    /// display can estimate the time left (`Stats::expected_bytes`). It
    /// costs a second walk of the tree's metadata.
    #[serde(default)]
    pub estimate: bool,
}

fn default_uploads() -> usize {
    2
}

impl BackupOptions {
    /// Backs up `source` with the defaults.
    pub fn new(source: SourceSettings) -> Self {
        Self {
            source,
            parent: Parent::default(),
            uploads: default_uploads(),
            expect_min_bytes: 0,
            tags: Vec::new(),
            host: None,
            estimate: false,
        }
    }
}

/// A committed backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The new snapshot.
    pub id: SnapshotId,
    /// Its contents.
    pub snapshot: Snapshot,
    /// Wall time.
    pub seconds: f64,
    /// Files not read again because they are unchanged since the parent.
    pub unchanged_files: u64,
    /// The parent snapshot files were compared with.
    pub parent: Option<SnapshotId>,
}

/// Pipeline options for this repository on this machine.
pub(crate) fn pipeline_options(repo: &Repository, uploads: usize) -> Options {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Options {
        workers: cores,
        uploads: uploads.max(1),
        open_packs: 2,
        pack_size: repo.config.pack_size.into(),
        zstd_level: repo.config.zstd_level,
        max_blob: repo.config.chunker.max_size() as usize,
    }
}

/// What a backup's source and pipeline produced, ready to be committed.
struct Produced {
    source: Source,
    counts: Option<Counts>,
    tree: ChunkId,
    report: WalkReport,
    written: Written,
}

/// Runs one backup: syncs the catalog's index (and, for file trees, the
/// parent's trees), reads the source through the pipeline, commits the
/// snapshot and records it in the catalog. `stats` are its live counters.
///
/// When `cancel` fires before the commit, the source is dropped (its
/// command killed), the session's lease is removed and nothing is
/// committed: [`Error::Cancelled`]. Once the source has ended successfully,
/// the commit (a few small writes) is not interrupted.
///
/// # Errors
/// Bad options ([`Error::Input`]), a failed source ([`Error::Source`]), a
/// fenced session ([`Error::Fenced`]), storage failures ([`Error::Backend`]).
#[tracing::instrument(
    name = "backup",
    skip_all,
    fields(source = opts.source.kind(), snapshot, bytes_read, seconds)
)]
pub async fn backup(
    repo: &Repository,
    cat: &Arc<Catalog>,
    opts: &BackupOptions,
    cancel: &Cancel,
    stats: Arc<Stats>,
) -> Result<BackupReport> {
    let started = Instant::now();
    let tags = checked_tags(&opts.tags)?;
    let host = match &opts.host {
        Some(h) if h.is_empty() || h.chars().any(char::is_control) => {
            input!(
                "host name {h:?} is not allowed: give a non-empty name without control characters"
            )
        }
        Some(h) => h.clone(),
        None => util::hostname(),
    };
    // Format §8.1: the lease first, then what a prune condemns, and only
    // then the index (the catalog's sync).
    let session = cancel.or_cancel(Session::start(repo)).await?;
    let prepared = cancel
        .or_cancel(session.fence.or_cancel(async {
            let avoid = gc::writer_view(repo).await?;
            sync::sync(cat, repo).await?;
            let plan = opts.source.plan().await?;
            let parent = match &plan {
                Plan::Files(files) => choose_parent(repo, cat, files, &opts.parent, &host).await?,
                Plan::Streams(_) => None,
            };
            Ok::<_, Error>(Prepared {
                plan,
                parent,
                avoid,
            })
        }))
        .await;
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => return Err(session.abandon(repo, e).await),
    };
    let is_stream = matches!(prepared.plan, Plan::Streams(_));
    let parent = prepared.parent;
    let estimating = match &prepared.plan {
        Plan::Files(files) if opts.estimate => {
            Some(files::estimate_in_background(files, stats.clone()))
        }
        _ => None,
    };
    let produced = cancel
        .or_cancel(session.fence.or_cancel(async {
            let produced = produce(repo, cat, &session, prepared, opts.uploads, &stats).await?;
            let read = Stats::get(&stats.bytes_read);
            if read < opts.expect_min_bytes {
                return Err(SourceError::Short {
                    read,
                    expected: opts.expect_min_bytes,
                }
                .into());
            }
            if read == 0 && is_stream {
                tracing::warn!("the stream was empty (0 bytes). A producer that fails before writing anything looks like this under --stdin; prefer --command, which sees its exit status, or set --expect-min-bytes");
            }
            Ok::<_, Error>(produced)
        }))
        .await;
    drop(estimating);
    let Produced {
        source,
        counts,
        tree,
        report,
        written,
    } = match produced {
        Ok(p) => p,
        Err(e) => return Err(session.abandon(repo, e).await),
    };
    let summary = Summary {
        bytes_read: Stats::get(&stats.bytes_read),
        new_bytes: Stats::get(&stats.new_bytes),
        stored_bytes: Stats::get(&stats.stored_bytes),
        new_chunks: Stats::get(&stats.new_chunks),
        total_chunks: Stats::get(&stats.total_chunks),
        files: report.files,
        dirs: report.dirs,
        packs: Stats::get(&stats.packs),
        errors: report.errors,
    };
    let snapshot = Snapshot {
        version: 1,
        session: session.id,
        time_ns: session.started_ns,
        finished_ns: util::now_ns(),
        hostname: host,
        username: util::username(),
        source,
        tree,
        partial: report.errors > 0,
        summary,
        tags,
        copy_of: None,
        counts,
    };
    let done = session.commit(repo, written, &snapshot).await?;
    let id = done.snapshot;
    let listed = [(id, snapshot)];
    // Every tree of the snapshot went to the catalog as it was stored.
    if let Err(e) = cat.record_written(&done.commit, &done.written, &listed, true) {
        tracing::warn!("the snapshot is committed, but the catalog could not record it ({e}); the next command reads it from the repository");
    }
    let [(id, snapshot)] = listed;
    let seconds = started.elapsed().as_secs_f64();
    let span = tracing::Span::current();
    span.record("snapshot", id.short());
    span.record("bytes_read", snapshot.summary.bytes_read);
    span.record("seconds", seconds);
    tracing::debug!(new_bytes = snapshot.summary.new_bytes, "backup committed");
    let s = &snapshot.summary;
    crate::audit::record(
        repo,
        "backup",
        &[id],
        format!(
            "snapshot {} of {}{}: {} read, {} new, {} stored",
            id.short(),
            crate::source::describe(&snapshot.source),
            if snapshot.partial { " (partial)" } else { "" },
            util::human_bytes(s.bytes_read),
            util::human_bytes(s.new_bytes),
            util::human_bytes(s.stored_bytes)
        ),
    )
    .await;
    Ok(BackupReport {
        id,
        snapshot,
        seconds,
        unchanged_files: report.unchanged,
        parent: parent.map(|(id, _)| id),
    })
}

/// The tags of a new snapshot, sorted, once each; refused if the format
/// does not allow them (before anything is read or written).
fn checked_tags(tags: &[String]) -> Result<Vec<String>> {
    if let Some(bad) = tags.iter().find(|t| !cairn_repo_format::valid_tag(t)) {
        input!(
            "tag {bad:?} is not allowed: a tag is 1 to {} bytes with no comma or control character",
            cairn_repo_format::MAX_TAG_LEN
        );
    }
    let mut tags = tags.to_vec();
    tags.sort();
    tags.dedup();
    if tags.len() > cairn_repo_format::MAX_TAGS {
        input!(
            "{} tags given; a snapshot has at most {}",
            tags.len(),
            cairn_repo_format::MAX_TAGS
        );
    }
    Ok(tags)
}

/// The parent snapshot of a files backup and its root tree, its trees
/// fetched into the catalog: the one asked for, else the latest of the same
/// paths from this host whose trees the repository can give.
async fn choose_parent(
    repo: &Repository,
    cat: &Arc<Catalog>,
    files: &FilesPlan,
    choice: &Parent,
    host: &str,
) -> Result<Option<(SnapshotId, ChunkId)>> {
    let snapshots = cat.snapshots()?;
    let (id, snap) = match choice {
        Parent::None => return Ok(None),
        Parent::Snapshot(p) => {
            let files_only = SnapshotFilter::default().of_kind("files");
            let (id, snap) = filter::resolve(&snapshots, p, &files_only)
                .map_err(|e| crate::Error::Input(format!("--parent {p}: {e}")))?;
            (id, snap)
        }
        Parent::Latest => match files.latest_of_same(&snapshots, host) {
            Some((id, snap)) => (id, snap),
            None => return Ok(None),
        },
    };
    sync::fetch_trees(cat, repo, Trees::Of(&[*id])).await?;
    if !cat.has_tree(&snap.tree)? {
        return Ok(None);
    }
    tracing::info!(parent = %id.short(), "using parent snapshot {}", id.short());
    Ok(Some((*id, snap.tree)))
}

/// What a backup knows before it reads its source.
struct Prepared {
    plan: Plan,
    /// The parent snapshot and its root tree.
    parent: Option<(SnapshotId, ChunkId)>,
    /// The packs a prune condemns.
    avoid: Option<Arc<PackSet>>,
}

/// Reads the source through the pipeline into packs and a tree.
async fn produce(
    repo: &Repository,
    cat: &Arc<Catalog>,
    session: &Session,
    prepared: Prepared,
    uploads: usize,
    stats: &Arc<Stats>,
) -> Result<Produced> {
    let Prepared {
        plan,
        parent,
        avoid,
    } = prepared;
    let target = Target {
        backend: repo.backend.clone(),
        session: session.id,
        enc: repo.keys.enc.clone(),
        ids: repo.keys.id.clone(),
        catalog: cat.clone(),
        avoid,
        index_file_blobs: session::index_file_blobs()?,
        list_ids: session::list_ids()?,
    };
    let chunker = Chunker::new(repo.config.chunker, &repo.keys.gear);
    let opts = pipeline_options(repo, uploads);
    match plan {
        Plan::Files(files) => {
            let walk_paths = files.paths.clone();
            let selector = files.selector.clone();
            let xattrs = files.xattrs;
            let read_concurrency = files.read_concurrency;
            let claim = files.claim.as_ref().map(|c| c.name.clone());
            let parent = parent.map(|(_, tree)| tree);
            let ((tree, report), written) =
                pipeline::run(target, opts, stats.clone(), move |sink| {
                    let mut sc = StreamChunker::new(chunker);
                    let warn = |m: String| tracing::warn!("{m}");
                    let walker = Walker::new(sink, &mut sc, &warn)
                        .selecting(&selector)
                        .with_xattrs(xattrs)
                        .reading_ahead(read_concurrency);
                    match &claim {
                        Some(name) => walker.run_as(&walk_paths[0], name, parent),
                        None => walker.run(&walk_paths, parent),
                    }
                })
                .await?;
            if files.claim.is_some() && report.dirs == 0 {
                // The volume went away between the plan and the walk.
                return Err(SourceError::Path {
                    path: files.paths[0].display().to_string(),
                    cause: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the volume's directory is gone",
                    ),
                }
                .into());
            }
            Ok(Produced {
                source: files.record(),
                counts: None,
                tree,
                report,
                written,
            })
        }
        Plan::Streams(StreamPlan {
            streams,
            expected_bytes,
            record,
        }) => {
            if let Some(total) = expected_bytes {
                Stats::add(&stats.expected_bytes, total);
            }
            let files = streams.len() as u64;
            let reading = stats.clone();
            let (tree, written, ()) = pipeline::streams::run(
                target,
                opts,
                stats.clone(),
                chunker,
                session.started_ns,
                move |feed| async move {
                    stream::drive(streams, feed, reading)
                        .await
                        .map_err(Error::from)
                },
            )
            .await?;
            let Recorded { source, counts } = record.await?;
            Ok(Produced {
                source,
                counts,
                tree,
                report: WalkReport {
                    files,
                    ..WalkReport::default()
                },
                written,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_from_a_configuration() {
        let json = r#"{"source": {"type": "postgres", "conn": {"dbname": "app"}, "globals": true},
                       "expect_min_bytes": 1024}"#;
        let opts: BackupOptions = serde_json::from_str(json).expect("options");
        let SourceSettings::Postgres(pg) = &opts.source else {
            panic!("{opts:?}");
        };
        assert_eq!(pg.conn.dbname.as_deref(), Some("app"));
        assert!(pg.globals && !pg.plain);
        assert_eq!((opts.uploads, opts.parent.clone()), (2, Parent::Latest));
        let files: BackupOptions = serde_json::from_str(
            r#"{"source": {"type": "files", "paths": ["/srv"]}, "parent": "none"}"#,
        )
        .expect("options");
        assert_eq!(files.parent, Parent::None);
        for bad in [
            r#"{"source": {"type": "tape"}}"#,
            r#"{"source": {"type": "files", "paths": [], "extra": 1}}"#,
            r#"{"source": {"type": "stdin"}, "uploads": "many"}"#,
            r#"{"source": {"type": "postgres", "conn": {"dbname": "app", "pasword": "x"}}}"#,
        ] {
            assert!(serde_json::from_str::<BackupOptions>(bad).is_err(), "{bad}");
        }
    }
}
