//! The pipeline's stage for streams: each stream a source feeds in (a file
//! name and a channel of buffers) is cut on a thread of its own, hashed and
//! stored, and becomes a file of the snapshot's root tree.

use super::chunk::{Content, StreamChunker};
use super::{BlobSink, Options, PipelineError, Target};
use crate::catalog::spill::Written;
use crate::error::{Error, Result};
use crate::stats::Stats;
use bytes::Bytes;
use cairn_chunker::Chunker;
use cairn_repo_format::{ChunkId, FileContent, Node, NodeKind, NodeMeta, Tree};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

/// Streams handed to the stage: a file name, and the stream's buffers.
pub type Feed = tokio::sync::mpsc::Sender<(String, tokio::sync::mpsc::Receiver<Bytes>)>;

/// The file node of a stream: private to the user, owned by cairn's user,
/// timed at the backup's start.
fn stream_node(name: &str, size: u64, content: FileContent, started_ns: i64) -> Node {
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
        kind: NodeKind::File { size, content },
        xattrs: Vec::new(),
    }
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

/// Stores every stream `source` feeds in, in order, each a file of the
/// root tree; returns the root tree, what was written and `source`'s value.
///
/// `source` reads the streams into the [`Feed`]; its future is dropped if
/// the pipeline fails first (a running command is killed). The error is the
/// cause: the source's failure over a pipeline that stopped because of it,
/// the pipeline's over a source that stopped because of that.
///
/// # Errors
/// The first cause.
pub async fn run<T, F>(
    target: Target,
    opts: Options,
    stats: Arc<Stats>,
    chunker: Chunker,
    started_ns: i64,
    source: impl FnOnce(Feed) -> F,
) -> Result<(ChunkId, Written, T)>
where
    F: std::future::Future<Output = Result<T>>,
{
    let (feed, mut streams) =
        tokio::sync::mpsc::channel::<(String, tokio::sync::mpsc::Receiver<Bytes>)>(1);
    let pipeline = super::run(target, opts, stats, move |sink: &mut BlobSink| {
        let mut nodes = Vec::new();
        while let Some((name, rx)) = streams.blocking_recv() {
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
                sink.submit_data(chunks, &mut content)?;
            }
            if !ended {
                // Never a snapshot of a stream cut short by our own failure.
                return Err(PipelineError::Stage(format!(
                    "the cutter of {name} stopped before the end of the stream"
                )));
            }
            let size = content.size;
            let content = sink.finish_content(content)?;
            nodes.push(stream_node(&name, size, content, started_ns));
        }
        let tree = Tree::new(nodes)?;
        sink.submit_tree(Bytes::from(tree.encode()))
    });
    let driver = source(feed);
    tokio::pin!(pipeline);
    tokio::pin!(driver);
    let (stored, read) = tokio::select! {
        p = &mut pipeline => match p {
            // Dropping the driver drops the running source.
            Err(e) => return Err(e.into()),
            Ok(v) => (Ok(v), driver.await),
        },
        d = &mut driver => (pipeline.await, d),
    };
    // The rule of [`super::cause`], with the source after the pipeline: the
    // pipeline's failure, unless it only stopped because the source failed.
    match (stored, read) {
        (Ok((tree, packs)), Ok(value)) => Ok((tree, packs, value)),
        (Err(PipelineError::Aborted) | Ok(_), Err(e)) => Err(e),
        (Err(e), _) => Err(Error::from(e)),
    }
}
