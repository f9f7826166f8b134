//! Filling a batch of a tree restore's files, on the threads that decode
//! their content; [`Report::files`] and [`Report::bytes`] count the files
//! moved into place.
//!
//! The walk ([`super::tree`]) only lists the files of a batch. Their
//! distinct chunks are grouped by pack and read several at a time
//! ([`crate::repo::read`]); the thread that authenticates and verifies a
//! chunk also writes it at its offsets in every file of the batch that
//! holds it. A file is created under its temporary name when its first
//! chunk arrives, and the write that completes it also gives it its
//! metadata and moves it to its name. So the file system's work (creating,
//! writing, renaming) runs on as many threads as the decoding does and
//! overlaps the reads, one descriptor a file: a file of one chunk costs an
//! open, a write, its owner, mode and times, a close and a rename.
//!
//! A file whose chunks the repository cannot provide intact is removed and
//! reported; the rest is restored. A batch dropped before it is settled (an
//! error elsewhere, a signal) removes the files it created and did not move
//! into place, and no thread creates one after that.

use super::dirfd::{self, Dir};
use super::tree::Report;
use crate::catalog::Catalog;
use crate::error::{Context, Error, Result};
use crate::repo::read::{distinct, plan_reads, run_reads_with, Damaged, Plan};
use crate::repo::Repository;
use crate::xattr::NotSet;
use cairn_repo_format::{BlobDecompressor, BlobEntry, ChunkId, NodeMeta, PackCipher, Xattr};
use futures::TryStreamExt;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Files a batch holds open between their chunks; past this, a file is
/// closed after each write and opened again by name for the next (files
/// whose chunks are far apart in the repository).
const MAX_OPEN: usize = 128;

/// A file of the snapshot, not yet created.
pub(super) struct Pending {
    /// Its directory.
    pub dir: Dir,
    /// The name it is written under, until it is complete.
    pub tmp: OsString,
    /// Its name.
    pub name: OsString,
    /// Where it goes (for messages; it is reached through `dir`).
    pub dest: PathBuf,
    pub size: u64,
    pub content: Vec<ChunkId>,
    pub meta: NodeMeta,
    pub xattrs: Vec<Xattr>,
}

/// What became of a file so far.
#[derive(Default)]
struct State {
    /// Created under its temporary name.
    created: bool,
    /// Open between its chunks.
    file: Option<std::fs::File>,
    /// Bytes not yet written.
    left: u64,
    /// End of the last byte written (holes are not written).
    written_end: u64,
    /// Moved to its name.
    placed: bool,
    /// Why it cannot be restored; nothing more is written to it.
    damaged: Option<String>,
    /// Extended attributes the target refused.
    not_set: Vec<NotSet>,
}

/// A batch being filled, shared by the threads that write it.
struct Shared {
    files: Vec<Pending>,
    states: Vec<Mutex<State>>,
    /// Where each distinct chunk goes: (file, offset) pairs.
    dests: Vec<Vec<(usize, u64)>>,
    slot_of: HashMap<ChunkId, usize>,
    /// Files that may be held open between chunks.
    max_open: usize,
    /// Files held open.
    open: AtomicUsize,
    /// Set when the batch is dropped unsettled: nothing more is created.
    stopped: AtomicBool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// A batch of `files`, whose distinct chunks (`slot_of`) have these
    /// lengths, or are missing for the reason given.
    fn new(
        files: Vec<Pending>,
        slot_of: HashMap<ChunkId, usize>,
        raw_len: &[u64],
        missing: &[Option<Damaged>],
        max_open: usize,
    ) -> Self {
        let mut dests = vec![Vec::new(); raw_len.len()];
        let mut states = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            let mut st = State {
                left: f.size,
                ..State::default()
            };
            let mut offset = 0u64;
            for id in &f.content {
                let slot = slot_of[id];
                if let Some(why) = &missing[slot] {
                    st.damaged.get_or_insert_with(|| why.to_string());
                }
                dests[slot].push((i, offset));
                offset += raw_len[slot];
            }
            if offset != f.size && st.damaged.is_none() {
                st.damaged = Some(format!(
                    "the index says its content has {offset} bytes but the snapshot records {}: the snapshot is inconsistent",
                    f.size
                ));
            }
            states.push(Mutex::new(st));
        }
        Self {
            files,
            states,
            dests,
            slot_of,
            max_open,
            open: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// Creates the empty files, which no chunk brings into place.
    fn place_empty(&self) -> Result<()> {
        for (f, state) in self.files.iter().zip(&self.states) {
            let mut st = lock(state);
            if f.size == 0 && st.damaged.is_none() && !self.stopped.load(Ordering::Acquire) {
                self.place(f, &mut st)?;
            }
        }
        Ok(())
    }

    /// Writes a verified chunk at its offsets; a file it completes is
    /// moved into place.
    fn put(&self, slot: usize, data: &[u8]) -> Result<()> {
        for &(i, offset) in &self.dests[slot] {
            let f = &self.files[i];
            let mut st = lock(&self.states[i]);
            if st.damaged.is_some() || st.placed || self.stopped.load(Ordering::Acquire) {
                continue;
            }
            let file = self.open_file(f, &mut st)?;
            let end = write_sparse(file, data, offset)
                .with_context(|| format!("writing {}", f.dest.display()))?;
            st.written_end = st.written_end.max(end);
            st.left -= data.len() as u64;
            if st.left == 0 {
                self.place(f, &mut st)?;
            } else if self.open.load(Ordering::Relaxed) > self.max_open {
                st.file = None;
                self.open.fetch_sub(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The file's descriptor, creating the file on its first chunk.
    fn open_file<'s>(&self, f: &Pending, st: &'s mut State) -> Result<&'s std::fs::File> {
        if st.file.is_none() {
            let file = if st.created {
                dirfd::open_file(&f.dir, &f.tmp)
                    .with_context(|| format!("opening {}", f.dest.display()))?
            } else {
                let file = dirfd::create_file(&f.dir, &f.tmp)
                    .with_context(|| format!("creating a file in {}", f.dest.display()))?;
                st.created = true;
                file
            };
            self.open.fetch_add(1, Ordering::Relaxed);
            st.file = Some(file);
        }
        st.file
            .as_ref()
            .ok_or_else(|| Error::Internal("a file just opened is not open".into()))
    }

    /// Gives a complete file its length, metadata and name.
    fn place(&self, f: &Pending, st: &mut State) -> Result<()> {
        let dest = || f.dest.display();
        self.open_file(f, st)?;
        let file = st.file.take();
        self.open.fetch_sub(1, Ordering::Relaxed);
        let file = file.ok_or_else(|| Error::Internal("a file just opened is not open".into()))?;
        if st.written_end < f.size {
            // Trailing zeros were left as a hole.
            file.set_len(f.size)
                .with_context(|| format!("sizing {}", dest()))?;
        }
        st.not_set = dirfd::apply_meta(&file, &f.meta, &f.xattrs)
            .with_context(|| format!("setting the mode and times of {}", dest()))?;
        drop(file);
        dirfd::rename(&f.dir, &f.tmp, &f.name)
            .with_context(|| format!("moving {} into place", dest()))?;
        st.placed = true;
        Ok(())
    }

    /// Marks the files that hold a chunk the repository cannot provide.
    fn damage(&self, slot: usize, why: &Damaged) {
        for &(i, _) in &self.dests[slot] {
            lock(&self.states[i])
                .damaged
                .get_or_insert_with(|| why.to_string());
        }
    }

    /// Removes what was created and not moved into place.
    fn remove_unplaced(&self, i: usize, st: &mut State) -> std::io::Result<()> {
        if st.file.take().is_some() {
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
        if st.created && !st.placed {
            st.created = false;
            dirfd::remove(&self.files[i].dir, &self.files[i].tmp)?;
        }
        Ok(())
    }
}

/// A batch being filled; dropped before [`Filling::settle`], it removes
/// the files it created and did not move into place.
struct Filling(Arc<Shared>, bool);

impl Drop for Filling {
    fn drop(&mut self) {
        if self.1 {
            return;
        }
        self.0.stopped.store(true, Ordering::Release);
        for (i, state) in self.0.states.iter().enumerate() {
            let _ = self.0.remove_unplaced(i, &mut lock(state));
        }
    }
}

impl Filling {
    /// Reports the batch: files moved into place keep their warnings;
    /// the others are removed and named as damaged.
    fn settle(mut self, report: &mut Report) -> Result<()> {
        self.1 = true;
        let shared = &self.0;
        for (i, (f, state)) in shared.files.iter().zip(&shared.states).enumerate() {
            let mut st = lock(state);
            if st.placed {
                report.files += 1;
                report.bytes += f.size;
                report.not_set(&f.dest, std::mem::take(&mut st.not_set));
                continue;
            }
            let why = st
                .damaged
                .clone()
                .unwrap_or_else(|| "it was not completely written".to_owned());
            shared
                .remove_unplaced(i, &mut st)
                .with_context(|| format!("removing the unfinished {}", f.dest.display()))?;
            report.damaged.push((f.dest.clone(), why));
        }
        Ok(())
    }
}

/// Fills a batch of files and moves the complete ones into place; files
/// with damaged content are removed and reported.
pub(super) async fn fill(
    repo: &Repository,
    cat: &Catalog,
    files: Vec<Pending>,
    report: &mut Report,
) -> Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let (ids, slot_of) = distinct(files.iter().flat_map(|f| &f.content));
    let Plan { reads, unlocated } = plan_reads(repo, cat, &ids)?;
    let mut raw_len = vec![0u64; ids.len()];
    for read in &reads {
        for (slot, e) in &read.blobs {
            raw_len[*slot] = u64::from(e.raw_len);
        }
    }
    let mut missing: Vec<Option<Damaged>> = vec![None; ids.len()];
    for (slot, why) in unlocated {
        missing[slot] = Some(why);
    }
    let shared = Arc::new(Shared::new(files, slot_of, &raw_len, &missing, MAX_OPEN));
    let filling = Filling(shared.clone(), false);
    let empty = shared.clone();
    tokio::task::spawn_blocking(move || empty.place_empty()).await??;
    let ids_key = repo.keys.id.clone();
    let writer = shared.clone();
    let open =
        move |cipher: &PackCipher, e: &BlobEntry, stored: &[u8], dec: &mut BlobDecompressor| {
            let plain = cipher.open_blob(&ids_key, e, stored, dec)?;
            Ok(writer.put(writer.slot_of[&e.id], &plain))
        };
    let mut completed = std::pin::pin!(run_reads_with(repo, cat, reads, open));
    while let Some(blobs) = completed.try_next().await? {
        for (slot, written) in blobs {
            match written {
                Ok(r) => r?,
                Err(why) => shared.damage(slot, &why),
            }
        }
    }
    filling.settle(report)
}

/// Holes are kept at this granularity: a run of this many zero bytes,
/// aligned in the file, is not written (a file system's block).
const HOLE: u64 = 4096;

/// Writes `data` at `offset`, skipping aligned blocks of zeros so that
/// holes stay holes; returns the end of the last byte written (`offset`
/// when all of it was zeros).
fn write_sparse(f: &std::fs::File, data: &[u8], offset: u64) -> std::io::Result<u64> {
    let mut run: Option<usize> = None;
    let mut pos = 0usize;
    let mut end = offset;
    while pos < data.len() {
        let abs = offset + pos as u64;
        let block_end = usize::try_from((abs / HOLE + 1) * HOLE - offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let zero = data[pos..block_end].iter().all(|b| *b == 0);
        match (zero, run) {
            (false, None) => run = Some(pos),
            (true, Some(from)) => {
                f.write_all_at(&data[from..pos], offset + from as u64)?;
                end = offset + pos as u64;
                run = None;
            }
            _ => {}
        }
        pos = block_end;
    }
    if let Some(from) = run {
        f.write_all_at(&data[from..], offset + from as u64)?;
        end = offset + data.len() as u64;
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocated_blocks(data: &[u8], offset: u64) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("f"))
            .unwrap();
        f.set_len(offset + data.len() as u64 + (1 << 20)).unwrap();
        write_sparse(&f, data, offset).unwrap();
        f.sync_all().unwrap();
        let mut back = vec![0u8; data.len()];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut back, offset).unwrap();
        assert_eq!(back, data);
        std::os::unix::fs::MetadataExt::blocks(&f.metadata().unwrap()) * 512
    }

    #[test]
    fn zero_blocks_stay_holes() {
        let mut data = vec![0u8; 1 << 20];
        data[5000] = 1;
        data[(1 << 20) - 1] = 2;
        // Two 4 KiB blocks hold data; the rest stays a hole.
        assert!(allocated_blocks(&data, 0) <= 2 * HOLE);
        // Unaligned: the same bytes at an odd offset still write whole blocks only around them.
        assert!(allocated_blocks(&data, 1000) <= 4 * HOLE);
        assert_eq!(allocated_blocks(&[0u8; 10_000], 7), 0);
    }

    fn pending(dir: &Dir, name: &str, content: &[(ChunkId, usize)]) -> Pending {
        Pending {
            dir: dir.clone(),
            tmp: format!(".partial-{name}").into(),
            name: name.into(),
            dest: PathBuf::from(name),
            size: content.iter().map(|(_, n)| *n as u64).sum(),
            content: content.iter().map(|(id, _)| *id).collect(),
            meta: NodeMeta {
                mode: 0o640,
                mtime_ns: 1_000_000_000,
                ..NodeMeta::default()
            },
            xattrs: Vec::new(),
        }
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Three chunks: `one`, a block of zeros, and one the repository lacks.
    fn batch(dir: &Dir, max_open: usize) -> (Shared, [Vec<u8>; 2]) {
        let (one, zeros) = (b"first chunk".repeat(500), vec![0u8; 2 * HOLE as usize]);
        let ids = [1u8, 2, 3].map(|n| ChunkId::from_bytes([n; 32]));
        let files = vec![
            // Both chunks: open between them, its tail a hole.
            pending(dir, "a", &[(ids[0], one.len()), (ids[1], zeros.len())]),
            pending(dir, "b", &[(ids[1], zeros.len())]),
            pending(dir, "empty", &[]),
            pending(dir, "lost", &[(ids[0], one.len()), (ids[2], 10)]),
        ];
        let slot_of = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let raw_len = [one.len() as u64, zeros.len() as u64, 10];
        let missing = [None, None, Some(Damaged::new("blob 3 is missing"))];
        let shared = Shared::new(files, slot_of, &raw_len, &missing, max_open);
        (shared, [one, zeros])
    }

    #[test]
    fn files_are_created_on_their_first_chunk_and_placed_by_their_last() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dirfd::open_target(tmp.path()).unwrap();
        // No file may stay open between chunks: `a` is opened again by name.
        let (shared, [one, zeros]) = batch(&dir, 0);
        let filling = Filling(Arc::new(shared), false);
        filling.0.place_empty().unwrap();
        filling.0.put(0, &one).unwrap();
        assert_eq!(names(tmp.path()), [".partial-a", "empty"]);
        assert_eq!(filling.0.open.load(Ordering::Relaxed), 0);
        filling.0.put(1, &zeros).unwrap();
        let mut report = Report::default();
        filling.settle(&mut report).unwrap();
        assert_eq!(names(tmp.path()), ["a", "b", "empty"]);
        let a = std::fs::read(tmp.path().join("a")).unwrap();
        assert_eq!(a, [one.clone(), zeros.clone()].concat());
        let meta = std::fs::metadata(tmp.path().join("b")).unwrap();
        assert_eq!(meta.len(), zeros.len() as u64);
        assert_eq!(std::os::unix::fs::MetadataExt::blocks(&meta), 0);
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o640
        );
        assert_eq!(std::os::unix::fs::MetadataExt::mtime(&meta), 1);
        assert_eq!(
            report.damaged,
            [(PathBuf::from("lost"), "blob 3 is missing".to_owned())]
        );
        assert_eq!(
            (report.files, report.bytes),
            (3, one.len() as u64 + 2 * zeros.len() as u64)
        );
    }

    #[test]
    fn a_batch_dropped_unsettled_removes_what_it_created_and_creates_no_more() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dirfd::open_target(tmp.path()).unwrap();
        let (shared, [one, zeros]) = batch(&dir, MAX_OPEN);
        let shared = Arc::new(shared);
        let filling = Filling(shared.clone(), false);
        shared.put(0, &one).unwrap();
        assert_eq!(names(tmp.path()), [".partial-a"]);
        drop(filling);
        assert!(names(tmp.path()).is_empty());
        // A thread still decoding after the drop writes nothing.
        shared.put(1, &zeros).unwrap();
        assert!(names(tmp.path()).is_empty());
    }

    #[test]
    fn the_end_written_leaves_out_trailing_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("f")).unwrap();
        let mut data = vec![0u8; 3 * HOLE as usize];
        data[10] = 1;
        assert_eq!(write_sparse(&f, &data, 0).unwrap(), HOLE);
        assert_eq!(write_sparse(&f, &[0u8; 100], 50).unwrap(), 50);
        assert_eq!(write_sparse(&f, &[1u8; 100], 50).unwrap(), 150);
    }
}
