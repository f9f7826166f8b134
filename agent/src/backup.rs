//! One backup: source → pipeline → session commit.

use crate::pipeline::chunk::{Content, StreamChunker};
use crate::pipeline::{self, Options, PipelineError, Stats, Target};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::session::Session;
use crate::source::files::{self, WalkReport, Walker};
use crate::source::Stream;
use crate::util;
use anyhow::{Context, Result};
use bytes::Bytes;
use cairn_chunker::Chunker;
use cairn_repo_format::{
    BlobKind, ChunkId, Node, NodeKind, NodeMeta, Snapshot, SnapshotId, Source, Summary, Tree,
};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What to back up.
#[derive(Debug, Clone)]
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
    },
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
    sink.submit(BlobKind::Tree, Bytes::from(tree.encode()))
}

/// Size of standard input when it is a regular file (for an ETA).
fn stdin_size() -> Option<u64> {
    std::fs::metadata("/proc/self/fd/0")
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// Runs one backup and commits its snapshot.
pub async fn run(repo: &Repository, what: What, uploads: usize) -> Result<Outcome> {
    let started = Instant::now();
    let committed = repo.committed().await?;
    let known = Arc::new(repo.load_index(&committed).await?);
    if let What::Files { paths } = &what {
        files::check_paths(paths)?;
    }
    let session = Session::start(repo).await?;
    let stats = Arc::new(Stats::default());
    let target = Target {
        backend: repo.backend.clone(),
        session: session.id,
        enc: repo.keys.enc.clone(),
        ids: repo.keys.id.clone(),
        known,
    };
    let chunker = Chunker::new(repo.config.chunker, &repo.keys.gear);
    let opts = options(repo, uploads);
    let started_ns = session.started_ns;

    let (source, tree, report, packs) = match what {
        What::Stdin { .. } | What::Command { .. } => {
            let (name, source, mut stream) = match what {
                What::Stdin { name } => (name.clone(), Source::Stdin { name }, Stream::stdin()),
                What::Command { name, argv } => {
                    let stream = Stream::command(&argv)?;
                    (name.clone(), Source::Command { name, argv }, stream)
                }
                What::Files { .. } => unreachable!("matched above"),
            };
            let progress = Progress::start(
                stats.clone(),
                matches!(source, Source::Stdin { .. })
                    .then(stdin_size)
                    .flatten(),
            );
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
            let reader = stream.spawn_reader(tx, stats.clone());
            let result = pipeline::run(target, opts, stats.clone(), move |sink| {
                let mut sc = StreamChunker::new(chunker);
                let mut content = Content::default();
                while let Some(buf) = rx.blocking_recv() {
                    sc.feed(sink, &buf, &mut content)?;
                }
                sc.finish(sink, &mut content)?;
                store_tree(sink, vec![stream_node(&name, content, started_ns)])
            })
            .await;
            progress.finish();
            let (tree, packs) = match result {
                Ok(v) => v,
                Err(e) => {
                    // The reader may be blocked on a read that never ends;
                    // dropping the stream kills a command.
                    reader.abort();
                    return Err(e.into());
                }
            };
            // The pipeline consumed everything the reader sent; the
            // reader's and the command's verdicts come before any snapshot.
            reader.await.context("stream reader")??;
            stream.finish().await?;
            (
                source,
                tree,
                WalkReport {
                    files: 1,
                    ..WalkReport::default()
                },
                packs,
            )
        }
        What::Files { paths } => {
            let progress = Progress::start(stats.clone(), None);
            let walk_paths = paths.clone();
            let result = pipeline::run(target, opts, stats.clone(), move |sink| {
                let mut sc = StreamChunker::new(chunker);
                let warn = |m: String| eprintln!("warning: {m}");
                Walker::new(sink, &mut sc, &warn).run(&walk_paths)
            })
            .await;
            progress.finish();
            let ((tree, report), packs) = result?;
            let paths = paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            (Source::Files { paths }, tree, report, packs)
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
        time_ns: started_ns,
        finished_ns: util::now_ns(),
        hostname: util::hostname(),
        username: util::username(),
        source,
        tree,
        partial: report.errors > 0,
        summary,
    };
    let id = session.commit(repo, packs, &snapshot).await?;
    Ok(Outcome {
        id,
        snapshot,
        seconds: started.elapsed().as_secs_f64(),
    })
}
