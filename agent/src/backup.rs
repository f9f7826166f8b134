//! One backup: source → pipeline → session commit.

use crate::catalog::Catalog;
use crate::interrupt::Interrupt;
use crate::pipeline::chunk::{Content, StreamChunker};
use crate::pipeline::{self, Options, PipelineError, Target};
use crate::repo::Repository;
use crate::session::Session;
use crate::source::files::{self, WalkReport, Walker};
use crate::source::postgres::PgSource;
use crate::source::redis::RedisTarget;
use crate::source::{ReadReport, StreamSpec};
use crate::stats::Stats;
use crate::util;
use anyhow::{Context, Result};
use bytes::Bytes;
use cairn_chunker::Chunker;
use cairn_repo_format::{
    ChunkId, Node, NodeKind, NodeMeta, Snapshot, SnapshotId, Source, Summary, Tree,
};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What to back up.
#[derive(Debug)]
pub enum What {
    /// Standard input, stored as a file called `name`.
    Stdin {
        /// The file name.
        name: String,
    },
    /// A command's stdout, stored as a file called `name`.
    Command {
        /// The file name.
        name: String,
        /// The command line.
        argv: Vec<String>,
    },
    /// File trees (absolute paths).
    Files {
        /// The paths.
        paths: Vec<PathBuf>,
        /// The root tree of the parent snapshot: files unchanged since it
        /// are not read again.
        parent: Option<ChunkId>,
    },
    /// A PostgreSQL database.
    Postgres(PgSource),
    /// A Redis server.
    Redis(RedisTarget),
}

/// A finished backup.
#[derive(Debug)]
pub struct Outcome {
    /// The new snapshot.
    pub id: SnapshotId,
    /// Its contents.
    pub snapshot: Snapshot,
    /// Wall time.
    pub seconds: f64,
    /// Files not read again because they are unchanged since the parent.
    pub unchanged_files: u64,
}

/// Pipeline options for this repository on this machine.
pub fn options(repo: &Repository, uploads: usize) -> Options {
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

fn stream_node(name: &str, content: Content, started_ns: i64) -> Node {
    let (uid, gid) = std::fs::metadata("/proc/self")
        .map(|m| (m.uid(), m.gid()))
        .unwrap_or((0, 0));
    Node {
        name: name.as_bytes().to_vec(),
        meta: NodeMeta {
            mode: 0o600,
            uid,
            gid,
            mtime_ns: started_ns,
            ctime_ns: started_ns,
            inode: 0,
            device: 0,
            links: 1,
        },
        kind: NodeKind::File {
            size: content.size,
            content: content.ids,
        },
    }
}

fn store_tree(sink: &mut pipeline::BlobSink, nodes: Vec<Node>) -> Result<ChunkId, PipelineError> {
    let tree = Tree::new(nodes)?;
    sink.submit_tree(Bytes::from(tree.encode()))
}

/// Size of standard input when it is a regular file (for an ETA).
fn stdin_size() -> Option<u64> {
    std::fs::metadata("/proc/self/fd/0")
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// How to run a backup, besides what to back up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Pack uploads in flight.
    pub uploads: usize,
    /// Fewer bytes from the source than this fail the backup.
    pub expect_min_bytes: u64,
}

/// What a backup's source and pipeline produced, ready to be committed.
struct Produced {
    source: Source,
    tree: ChunkId,
    report: WalkReport,
    packs: Vec<cairn_repo_format::IndexPack>,
}

/// Runs one backup, commits its snapshot and records it in the catalog
/// (which must be synced).
///
/// A signal (`interrupt`) before the commit stops the backup: the source is
/// dropped (its command killed), the session's lease is removed and nothing
/// is committed; the error is then [`crate::interrupt::Interrupted`]. Once
/// the source has ended successfully, the commit (a few small writes) is
/// not interrupted.
pub async fn run(
    repo: &Repository,
    catalog: &Arc<Catalog>,
    what: What,
    settings: &Settings,
    interrupt: Interrupt,
    stats: Arc<Stats>,
) -> Result<Outcome> {
    let started = Instant::now();
    if let What::Files { paths, .. } = &what {
        files::check_paths(paths)?;
    }
    let is_stream = !matches!(what, What::Files { .. });
    let session = Session::start(repo).await?;
    let produced = interrupt
        .or_stop(async {
            let produced =
                produce(repo, catalog, &session, what, settings.uploads, &stats).await?;
            let read = Stats::get(&stats.bytes_read);
            if read < settings.expect_min_bytes {
                anyhow::bail!(
                    "the source gave {read} bytes, fewer than --expect-min-bytes {}: the producer probably failed; nothing was committed",
                    settings.expect_min_bytes
                );
            }
            if read == 0 && is_stream {
                eprintln!("warning: the stream was empty (0 bytes). A producer that fails before writing anything looks like this under --stdin; prefer --command, which sees its exit status, or set --expect-min-bytes");
            }
            Ok(produced)
        })
        .await;
    let Produced {
        source,
        tree,
        report,
        packs,
    } = match produced {
        Ok(p) => p,
        Err(e) => {
            session.abandon(repo).await;
            return Err(e);
        }
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
        hostname: util::hostname(),
        username: util::username(),
        source,
        tree,
        partial: report.errors > 0,
        summary,
    };
    let done = session.commit(repo, packs, &snapshot).await?;
    let id = done.snapshot;
    let listed = [(id, snapshot)];
    // Every tree of the snapshot went to the catalog as it was stored.
    if let Err(e) = catalog.record(&done.commit, &done.packs, &listed, true) {
        eprintln!("warning: the snapshot is committed, but the catalog could not record it ({e}); the next command reads it from the repository");
    }
    let [(id, snapshot)] = listed;
    Ok(Outcome {
        id,
        snapshot,
        seconds: started.elapsed().as_secs_f64(),
        unchanged_files: report.unchanged,
    })
}

/// Reads the source through the pipeline into packs and a tree.
async fn produce(
    repo: &Repository,
    catalog: &Arc<Catalog>,
    session: &Session,
    what: What,
    uploads: usize,
    stats: &Arc<Stats>,
) -> Result<Produced> {
    let target = Target {
        backend: repo.backend.clone(),
        session: session.id,
        enc: repo.keys.enc.clone(),
        ids: repo.keys.id.clone(),
        catalog: catalog.clone(),
    };
    let chunker = Chunker::new(repo.config.chunker, &repo.keys.gear);
    let opts = options(repo, uploads);
    let started_ns = session.started_ns;
    Ok(match what {
        What::Files { paths, parent } => {
            let walk_paths = paths.clone();
            let result = pipeline::run(target, opts, stats.clone(), move |sink| {
                let mut sc = StreamChunker::new(chunker);
                let warn = |m: String| eprintln!("warning: {m}");
                Walker::new(sink, &mut sc, &warn).run(&walk_paths, parent)
            })
            .await;
            let ((tree, report), packs) = result?;
            let paths = paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            Produced {
                source: Source::Files { paths },
                tree,
                report,
                packs,
            }
        }
        streams => {
            let (source, streams, total) = open_streams(streams).await?;
            if let Some(total) = total {
                Stats::add(&stats.expected_bytes, total);
            }
            let (tree, packs, reports) =
                run_streams(target, opts, stats.clone(), chunker, started_ns, streams).await?;
            let report = WalkReport {
                files: reports.len() as u64,
                ..WalkReport::default()
            };
            Produced {
                source: source.finish(&reports)?,
                tree,
                report,
                packs,
            }
        }
    })
}

/// The source record of a stream backup, completed once its streams have
/// been read (a Redis server's versions are learnt while reading).
enum PendingSource {
    Ready(Source),
    Redis { address: String },
}

impl PendingSource {
    fn finish(self, reports: &[ReadReport]) -> Result<Source> {
        Ok(match self {
            PendingSource::Ready(s) => s,
            PendingSource::Redis { address } => {
                let meta = reports
                    .iter()
                    .find_map(|r| r.redis.clone())
                    .context("the Redis stream reported no versions")?;
                Source::Redis {
                    address,
                    redis_version: meta.redis_version,
                    rdb_version: meta.rdb_version,
                }
            }
        })
    }
}

/// Starts nothing yet: resolves what the streams are and probes the server
/// where the snapshot records its version.
async fn open_streams(
    what: What,
) -> Result<(PendingSource, Vec<(String, StreamSpec)>, Option<u64>)> {
    Ok(match what {
        What::Stdin { name } => (
            PendingSource::Ready(Source::Stdin { name: name.clone() }),
            vec![(name, StreamSpec::Stdin)],
            stdin_size(),
        ),
        What::Command { name, argv } => (
            PendingSource::Ready(Source::Command {
                name: name.clone(),
                // Only the program: its arguments may hold a password
                // (docs/format.md §7.1).
                argv: argv.iter().take(1).cloned().collect(),
            }),
            vec![(name, StreamSpec::Command(argv))],
            None,
        ),
        What::Postgres(pg) => {
            let probe = pg.probe().await?;
            let mut streams = Vec::new();
            if pg.globals {
                streams.push((
                    "globals.sql".to_owned(),
                    StreamSpec::Command(pg.dumpall_argv()),
                ));
            }
            streams.push((
                pg.file_name().to_owned(),
                StreamSpec::Command(pg.dump_argv()),
            ));
            let source = Source::Postgres {
                dbname: probe.dbname,
                server_version: probe.server_version,
                pg_dump_version: probe.pg_dump_version,
                format: pg.format_name().to_owned(),
                globals: pg.globals,
            };
            (PendingSource::Ready(source), streams, None)
        }
        What::Redis(target) => {
            let address = target.address();
            (
                PendingSource::Redis { address },
                vec![("dump.rdb".to_owned(), StreamSpec::Redis(target))],
                None,
            )
        }
        What::Files { .. } => unreachable!("files are not streams"),
    })
}

/// What the cutter of a stream hands on.
enum Cut {
    /// The chunks whose cuts a buffer of `len` bytes made certain.
    Buffer { len: u64, chunks: Vec<Bytes> },
    /// The stream ended: its last chunks.
    End { chunks: Vec<Bytes> },
}

/// Cuts a stream's buffers on a thread of its own, so cutting (the largest
/// cost of a stream that is mostly stored already) overlaps the producer's
/// hashing. The thread ends after [`Cut::End`], or when the receiver is gone
/// and it has a batch to send.
fn cut_on_a_thread(
    chunker: Chunker,
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> crossbeam_channel::Receiver<Cut> {
    let (tx, cuts) = crossbeam_channel::bounded(2);
    std::thread::spawn(move || {
        let mut sc = StreamChunker::new(chunker);
        while let Some(buf) = rx.blocking_recv() {
            let len = buf.len() as u64;
            let chunks = sc.cut_buffer(buf);
            if tx.send(Cut::Buffer { len, chunks }).is_err() {
                return;
            }
        }
        let _ = tx.send(Cut::End {
            chunks: sc.cut_buffered(true),
        });
    });
    cuts
}

/// Runs the streams one after the other through one pipeline; each becomes
/// a file of the root tree. A stream counts only once its source says it
/// succeeded; if the pipeline fails first, the running source is dropped
/// (a command is killed).
async fn run_streams(
    target: Target,
    opts: pipeline::Options,
    stats: Arc<Stats>,
    chunker: Chunker,
    started_ns: i64,
    streams: Vec<(String, StreamSpec)>,
) -> Result<(ChunkId, Vec<cairn_repo_format::IndexPack>, Vec<ReadReport>)> {
    let (streams_tx, mut streams_rx) =
        tokio::sync::mpsc::channel::<(String, tokio::sync::mpsc::Receiver<Bytes>)>(1);
    let pipeline = pipeline::run(target, opts, stats.clone(), move |sink| {
        let mut nodes = Vec::new();
        while let Some((name, rx)) = streams_rx.blocking_recv() {
            let mut content = Content::default();
            let mut ended = false;
            for cut in cut_on_a_thread(chunker.clone(), rx) {
                let chunks = match cut {
                    Cut::Buffer { len, chunks } => {
                        content.size += len;
                        chunks
                    }
                    Cut::End { chunks } => {
                        ended = true;
                        chunks
                    }
                };
                sink.submit_data(chunks, &mut content.ids)?;
            }
            if !ended {
                // Never a snapshot of a stream cut short by our own failure.
                return Err(PipelineError::Stage(format!(
                    "the cutter of {name} stopped before the end of the stream"
                )));
            }
            nodes.push(stream_node(&name, content, started_ns));
        }
        store_tree(sink, nodes)
    });
    let driver = async move {
        let mut reports = Vec::new();
        for (name, spec) in streams {
            let mut stream = spec.start().await?;
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
            if streams_tx.send((name, rx)).await.is_err() {
                return Err(PipelineError::Aborted.into());
            }
            let report = stream
                .spawn_reader(tx, stats.clone())
                .await
                .context("stream reader")??;
            stream.finish().await?;
            reports.push(report);
        }
        Ok::<_, anyhow::Error>(reports)
    };
    tokio::pin!(pipeline);
    tokio::pin!(driver);
    let (produced, reports) = tokio::select! {
        p = &mut pipeline => match p {
            // Dropping the driver drops the running source.
            Err(e) => return Err(e.into()),
            Ok(v) => (Ok(v), driver.await),
        },
        d = &mut driver => (pipeline.await, d),
    };
    // Name the cause: a source error over a pipeline that stopped because of
    // it, a pipeline error over a driver that stopped because of that.
    match (produced, reports) {
        (Ok((tree, packs)), Ok(reports)) => Ok((tree, packs, reports)),
        (Err(PipelineError::Aborted) | Ok(_), Err(e)) => Err(e),
        (Err(e), _) => Err(e.into()),
    }
}
