//! Looking ahead of the walk. On a cold page cache, or on a network disk,
//! every `lstat`, `open` and `read` of a small file waits for the device,
//! one at a time. A few threads look at a directory's entries ahead of the
//! walker: each `lstat`s an entry and, for a regular file that changed since
//! the parent snapshot, opens it and reads its first bytes. The walker still
//! takes every entry in name order and decides everything itself (what to
//! leave out, whether a file is unchanged, what was read), so the snapshot
//! does not depend on which thread finished first; what a thread opened is
//! used only if it is the very file the walker's `lstat` describes.
//!
//! Memory is bounded by [`Ahead::budget`] bytes read ahead, and
//! [`BATCHES_PER_THREAD`] × [`MAX_BATCH`] entries per thread per directory
//! being walked.

use std::collections::VecDeque;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Threads looking ahead unless configured otherwise. On the benchmark
/// machine (2 cores, a virtual disk) the first backup of a cold
/// 200,000-file tree took, median of 3: 10.9 s with 8, 9.5 s with 16,
/// 8.4 s with 32 and 8.5 s with 64 (`docs/benchmarks.md`); on a disk with
/// longer round trips more requests in flight help more.
pub const DEFAULT_THREADS: usize = 32;

/// The most threads a walk may use.
pub const MAX_THREADS: usize = 256;

/// Bytes of a file a thread reads ahead: a file up to this size is read
/// whole, a larger one is read on by the walker from there.
pub const HEAD: usize = 1 << 20;

/// Batches of entries in flight per thread: one being looked at, one
/// waiting.
pub const BATCHES_PER_THREAD: usize = 2;

/// Entries a thread looks at in one go, at most. A handoff between threads
/// costs a few microseconds, as much as an entry whose `lstat` is cached:
/// entries go in batches of about a directory's share per batch in flight.
pub const MAX_BATCH: usize = 16;

/// What the parent snapshot recorded of a regular file: if the entry still
/// matches, the walker will take the parent's content, so it is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Was {
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime_ns: i64,
    /// Status change time.
    pub ctime_ns: i64,
    /// Inode number.
    pub inode: u64,
}

impl Was {
    fn matches(&self, m: &Metadata) -> bool {
        self.size == m.len()
            && self.mtime_ns == super::time_ns(m.mtime(), m.mtime_nsec())
            && self.ctime_ns == super::time_ns(m.ctime(), m.ctime_nsec())
            && self.inode == m.ino()
    }
}

/// What a thread found of one entry.
#[derive(Debug)]
pub struct Looked {
    /// The entry's `lstat`.
    pub meta: std::io::Result<Metadata>,
    /// The regular file, opened, if it changed since the parent.
    pub opened: Option<Opened>,
}

/// A regular file a thread opened, with its first bytes read.
#[derive(Debug)]
pub struct Opened {
    /// The file, positioned after `head`.
    pub file: File,
    /// Its `fstat` once opened.
    pub at_open: Metadata,
    /// Its first bytes (none for a sparse file, which is read by holes).
    pub head: Vec<u8>,
    /// The head's share of the budget, given back when it is dropped.
    _held: Held,
}

/// Bytes counted against the budget until dropped.
#[derive(Debug)]
struct Held {
    bytes: usize,
    held: Arc<AtomicUsize>,
}

impl Held {
    /// Counts up to `want` bytes if the budget has room for them, else none.
    fn take(held: &Arc<AtomicUsize>, want: usize, budget: usize) -> Held {
        let bytes = if held.fetch_add(want, Ordering::Relaxed) + want > budget {
            held.fetch_sub(want, Ordering::Relaxed);
            0
        } else {
            want
        };
        Held {
            bytes,
            held: held.clone(),
        }
    }

    /// Gives back what is counted beyond `bytes`.
    fn shrink(&mut self, bytes: usize) {
        let extra = self.bytes.saturating_sub(bytes);
        self.held.fetch_sub(extra, Ordering::Relaxed);
        self.bytes -= extra;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Opened {
    /// Whether this is the file a later `lstat` describes, unchanged since
    /// it was opened: the same inode, size, and times.
    pub fn is(&self, m: &Metadata) -> bool {
        let a = &self.at_open;
        a.dev() == m.dev()
            && a.ino() == m.ino()
            && a.len() == m.len()
            && (a.mtime(), a.mtime_nsec()) == (m.mtime(), m.mtime_nsec())
            && (a.ctime(), a.ctime_nsec()) == (m.ctime(), m.ctime_nsec())
    }
}

/// Consecutive entries of one directory, for one thread.
struct Job {
    entries: Vec<(PathBuf, Option<Was>)>,
    slot: SyncSender<Vec<Looked>>,
}

/// The threads that look ahead; dropping it stops and joins them.
#[derive(Debug)]
pub struct Ahead {
    jobs: Option<crossbeam_channel::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Ahead {
    /// `threads` threads (none: the walker does everything itself) holding
    /// at most [`Self::budget`] bytes read ahead.
    pub fn new(threads: usize) -> Self {
        if threads == 0 {
            return Ahead {
                jobs: None,
                threads: Vec::new(),
            };
        }
        let held = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let budget = Self::budget(threads);
        let threads = (0..threads)
            .filter_map(|i| {
                let (rx, held) = (rx.clone(), held.clone());
                std::thread::Builder::new()
                    .name(format!("cairn-read-{i}"))
                    .spawn(move || {
                        for job in rx {
                            let looked = job
                                .entries
                                .iter()
                                .map(|(path, was)| look(path, *was, &held, budget))
                                .collect();
                            // The walker may have stopped waiting for it.
                            let _ = job.slot.send(looked);
                        }
                    })
                    .map_err(|e| tracing::debug!("one reader thread fewer: {e}"))
                    .ok()
            })
            .collect();
        Ahead {
            jobs: Some(tx),
            threads,
        }
    }

    /// The bytes read ahead at most: two files' heads per thread, up to
    /// 16 threads' worth (32 MiB). Past that, threads still look at entries
    /// and open files, so small files (most of a cold tree's waits) are
    /// still read ahead while the heads of large ones wait.
    pub fn budget(threads: usize) -> usize {
        threads.min(16) * 2 * HEAD
    }

    /// Looks at `entries` (path, and what the parent recorded if it was a
    /// regular file) ahead of the walker, a few at a time, in order; with
    /// no threads, takes none of them.
    pub fn window(&self, entries: impl IntoIterator<Item = (PathBuf, Option<Was>)>) -> Window {
        let in_flight = self.threads.len() * BATCHES_PER_THREAD;
        let todo: VecDeque<_> = match self.jobs {
            Some(_) => entries.into_iter().collect(),
            None => VecDeque::new(),
        };
        Window {
            jobs: self.jobs.clone(),
            in_flight,
            batch: todo.len().div_ceil(in_flight.max(1)).clamp(1, MAX_BATCH),
            todo,
            pending: VecDeque::new(),
            ready: VecDeque::new(),
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        // Closing the queue ends each thread after its entry at hand.
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One directory's entries being looked at ahead of the walker.
#[derive(Debug)]
pub struct Window {
    jobs: Option<crossbeam_channel::Sender<Job>>,
    /// Batches in flight at most.
    in_flight: usize,
    /// Entries per batch.
    batch: usize,
    todo: VecDeque<(PathBuf, Option<Was>)>,
    pending: VecDeque<Receiver<Vec<Looked>>>,
    /// What was found of the batch at hand.
    ready: VecDeque<Looked>,
}

impl Window {
    /// What was found of the next entry, in the order given; `None` when
    /// nobody looks ahead (the walker looks itself).
    pub fn next(&mut self) -> Option<Looked> {
        if self.ready.is_empty() {
            let jobs = self.jobs.as_ref()?;
            while self.pending.len() < self.in_flight.max(1) && !self.todo.is_empty() {
                let n = self.batch.min(self.todo.len());
                let (slot, found) = sync_channel(1);
                let entries = self.todo.drain(..n).collect();
                if jobs.send(Job { entries, slot }).is_err() {
                    break;
                }
                self.pending.push_back(found);
            }
            self.ready = self.pending.pop_front()?.recv().ok()?.into();
        }
        self.ready.pop_front()
    }
}

/// One entry: its `lstat`, and if it is a regular file that changed since
/// the parent, the file opened with its first bytes read.
fn look(path: &Path, was: Option<Was>, held: &Arc<AtomicUsize>, budget: usize) -> Looked {
    let meta = std::fs::symlink_metadata(path);
    let opened = match &meta {
        Ok(m) if m.is_file() && !was.is_some_and(|w| w.matches(m)) => open(path, held, budget),
        _ => None,
    };
    Looked { meta, opened }
}

/// Opens a regular file and reads its head, while the bytes held ahead stay
/// within `budget` (beyond it the file is only opened). A failure leaves it
/// to the walker, which tries again and reports it.
fn open(path: &Path, held: &Arc<AtomicUsize>, budget: usize) -> Option<Opened> {
    let file = File::open(path).ok()?;
    let at_open = file.metadata().ok()?;
    if !at_open.is_file() {
        return None;
    }
    let sparse = at_open.blocks().saturating_mul(512) < at_open.len();
    let len = usize::try_from(at_open.len()).unwrap_or(usize::MAX);
    let mut counted = Held::take(held, if sparse { 0 } else { len.min(HEAD) }, budget);
    let mut head = Vec::with_capacity(counted.bytes);
    (&file)
        .take(counted.bytes as u64)
        .read_to_end(&mut head)
        .ok()?;
    counted.shrink(head.len());
    Some(Opened {
        file,
        at_open,
        head,
        _held: counted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> Arc<AtomicUsize> {
        Arc::new(AtomicUsize::new(0))
    }

    #[test]
    fn a_changed_file_is_opened_and_its_head_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..HEAD + 5000).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let held = counter();
        let looked = look(&path, None, &held, HEAD * 2);
        let opened = looked.opened.expect("opened");
        assert_eq!(opened.head, data[..HEAD]);
        assert_eq!(held.load(Ordering::Relaxed), HEAD);
        // The rest is read on from where the head ended.
        let mut rest = Vec::new();
        (&opened.file).read_to_end(&mut rest).unwrap();
        assert_eq!(rest, data[HEAD..]);
        assert!(opened.is(looked.meta.as_ref().unwrap()));
        drop(opened);
        assert_eq!(held.load(Ordering::Relaxed), 0, "the budget is given back");
    }

    #[test]
    fn a_file_that_changes_after_it_was_opened_is_not_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"before").unwrap();
        let opened = look(&path, None, &counter(), HEAD).opened.unwrap();
        std::fs::write(&path, b"after!").unwrap();
        let t = filetime::FileTime::from_unix_time(1_000_000_000, 1);
        filetime::set_file_mtime(&path, t).unwrap();
        assert!(!opened.is(&std::fs::symlink_metadata(&path).unwrap()));
        // Replaced by another file of the same size and times: another inode.
        let other = dir.path().join("g");
        std::fs::write(&other, b"after!").unwrap();
        let opened = look(&path, None, &counter(), HEAD).opened.unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert!(!opened.is(&std::fs::symlink_metadata(&path).unwrap()));
    }

    #[test]
    fn an_unchanged_file_is_not_opened_and_a_full_budget_reads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"same").unwrap();
        let m = std::fs::symlink_metadata(&path).unwrap();
        let was = Was {
            size: m.len(),
            mtime_ns: super::super::time_ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: super::super::time_ns(m.ctime(), m.ctime_nsec()),
            inode: m.ino(),
        };
        let looked = look(&path, Some(was), &counter(), HEAD);
        assert!(looked.meta.is_ok() && looked.opened.is_none());
        let held = counter();
        held.store(HEAD, Ordering::Relaxed);
        let opened = look(&path, None, &held, HEAD).opened.unwrap();
        assert!(opened.head.is_empty(), "over the budget: opened, not read");
        assert_eq!(held.load(Ordering::Relaxed), HEAD);
    }

    #[test]
    fn a_window_gives_every_entry_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        for i in 0..100 {
            let p = dir.path().join(format!("f{i:03}"));
            std::fs::write(&p, i.to_string()).unwrap();
            entries.push((p, None));
        }
        entries.push((dir.path().join("missing"), None));
        let ahead = Ahead::new(3);
        let mut w = ahead.window(entries);
        for i in 0..100 {
            let l = w.next().unwrap();
            assert_eq!(l.opened.unwrap().head, i.to_string().as_bytes());
        }
        assert!(w.next().unwrap().meta.is_err());
        assert!(w.next().is_none());
        assert!(Ahead::new(0).window(Vec::new()).next().is_none());
    }
}
