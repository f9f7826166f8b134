//! Loading many sessions into an empty catalog at once: the first sync on a
//! machine, and every rebuild.
//!
//! Recorded one session at a time, each session's blobs land all over a
//! `blobs` table that grows with every session: a repository of 5 million
//! chunks took over a minute, most of it SQLite rewriting the same pages
//! into its journal. A bulk load instead collects the blobs of every session
//! it is given into sorted runs in unnamed temporary files next to the
//! catalog (a fixed number of rows in memory at a time; a small repository
//! needs no file), then merges the runs into `blobs` in key order, which
//! only ever appends to the B-tree.
//!
//! Everything is written in one transaction, so the invariant of format §13
//! holds as for `Catalog::record`: a session row is written with its packs,
//! blobs and snapshots, all or nothing. A load that is interrupted leaves
//! the catalog as it was, and its files vanish with the process.
//!
//! The runs are private to the process: rows of `ROW_LEN` bytes, in the
//! machine's byte order, never read by another program or version.

use super::{insert_pack, insert_session, BlobRow, Catalog, Listed, INSERT_BLOB, INSERT_PACK};
use crate::error::{Context, Error, Result};
use cairn_repo_format::{Commit, IndexPack, SessionId};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Rows held in memory before they are sorted and written as a run: 4 MiB
/// of rows, so 5 million chunks make 77 runs.
pub const RUN_ROWS: usize = 1 << 16;
/// Bytes of one row in a run.
const ROW_LEN: usize = 32 + 8 + 8 + 4 + 4 + 4 + 1 + 1;
/// Read buffer per run while merging.
const MERGE_BUFFER: usize = 16 << 10;

/// Sessions read from the repository, waiting to be written to the catalog.
#[derive(Debug)]
pub struct BulkLoad {
    dir: PathBuf,
    run_rows: usize,
    /// Every pack, in the order given; a row's `pack` is a position here.
    packs: Vec<(IndexPack, SessionId)>,
    sessions: Vec<(Commit, Vec<Listed>)>,
    pending: Vec<BlobRow>,
    runs: Vec<File>,
    rows: u64,
}

impl BulkLoad {
    /// A load into `cat`, with runs of `run_rows` rows (tests use small ones).
    pub fn new(cat: &Catalog, run_rows: usize) -> Self {
        let dir = cat
            .path()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Self {
            dir,
            run_rows: run_rows.max(1),
            packs: Vec::new(),
            sessions: Vec::new(),
            pending: Vec::new(),
            runs: Vec::new(),
            rows: 0,
        }
    }

    /// Adds one committed session: its commit, index and snapshots.
    ///
    /// # Errors
    /// If a run cannot be written.
    pub fn add(
        &mut self,
        commit: Commit,
        packs: Vec<IndexPack>,
        snapshots: Vec<Listed>,
    ) -> Result<()> {
        for mut p in packs {
            let at = i64::try_from(self.packs.len())?;
            for e in &p.blobs {
                self.pending.push(BlobRow::new(at, e));
                if self.pending.len() >= self.run_rows {
                    self.spill()?;
                }
            }
            p.blobs = Vec::new();
            self.packs.push((p, commit.session));
        }
        self.sessions.push((commit, snapshots));
        Ok(())
    }

    /// Writes the pending rows, sorted, as a new run.
    fn spill(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending.sort_unstable();
        let write = |rows: &[BlobRow]| -> std::io::Result<File> {
            let mut out = BufWriter::new(tempfile::tempfile_in(&self.dir)?);
            for row in rows {
                out.write_all(&encode(row))?;
            }
            let mut file = out
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?;
            file.rewind()?;
            Ok(file)
        };
        // Creating or filling the file: a full or read-only disk is named.
        let file = write(&self.pending).with_context(|| {
            format!(
                "writing a temporary file in {} to load the catalog",
                self.dir.display()
            )
        })?;
        self.rows += self.pending.len() as u64;
        self.runs.push(file);
        self.pending.clear();
        Ok(())
    }

    /// Writes everything to the catalog in one transaction: packs, blobs
    /// (merged from the runs in key order), snapshots, sessions.
    ///
    /// # Errors
    /// If a run cannot be read back, or SQLite fails (nothing is written).
    pub fn finish(mut self, cat: &Catalog) -> Result<()> {
        let conn = cat.conn();
        let tx = conn.unchecked_transaction()?;
        {
            let mut pack_st = tx.prepare_cached(INSERT_PACK)?;
            let numbers = self
                .packs
                .iter()
                .map(|(pack, indexed_by)| insert_pack(&mut pack_st, pack, *indexed_by))
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            let mut blob_st = tx.prepare_cached(INSERT_BLOB)?;
            let mut written = 0u64;
            let mut put = |mut row: BlobRow| -> Result<()> {
                row.pack = usize::try_from(row.pack)
                    .ok()
                    .and_then(|at| numbers.get(at))
                    .copied()
                    .ok_or_else(|| {
                        Error::Internal("a catalog load run names a pack it does not have".into())
                    })?;
                row.insert(&mut blob_st)?;
                written += 1;
                Ok(())
            };
            if self.runs.is_empty() {
                // Everything fit in memory (a small repository): no file.
                self.pending.sort_unstable();
                self.pending.iter().try_for_each(|row| put(*row))?;
            } else {
                self.spill()?;
                merge(std::mem::take(&mut self.runs), put)?;
                if written != self.rows {
                    return Err(Error::Internal(format!(
                        "the catalog load read back {written} rows of {}",
                        self.rows
                    )));
                }
            }
        }
        for (commit, snapshots) in &self.sessions {
            insert_session(&tx, &cat.auth.mac, commit, snapshots, false)?;
        }
        let commits: Vec<Commit> = self.sessions.into_iter().map(|(c, _)| c).collect();
        super::gc::apply(&tx, &commits)?;
        tx.commit()?;
        Ok(())
    }
}

fn encode(row: &BlobRow) -> [u8; ROW_LEN] {
    let mut b = [0u8; ROW_LEN];
    b[..32].copy_from_slice(&row.id);
    b[32..40].copy_from_slice(&row.pack.to_ne_bytes());
    b[40..48].copy_from_slice(&row.offset.to_ne_bytes());
    b[48..52].copy_from_slice(&row.stored_len.to_ne_bytes());
    b[52..56].copy_from_slice(&row.raw_len.to_ne_bytes());
    b[56..60].copy_from_slice(&row.number.to_ne_bytes());
    b[60] = row.kind;
    b[61] = row.compression;
    b
}

fn decode(b: &[u8; ROW_LEN]) -> BlobRow {
    /// The `N` bytes at `at` (always within the row).
    fn field<const N: usize>(b: &[u8; ROW_LEN], at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&b[at..at + N]);
        out
    }
    BlobRow {
        id: field(b, 0),
        pack: i64::from_ne_bytes(field(b, 32)),
        offset: u64::from_ne_bytes(field(b, 40)),
        stored_len: u32::from_ne_bytes(field(b, 48)),
        raw_len: u32::from_ne_bytes(field(b, 52)),
        number: u32::from_ne_bytes(field(b, 56)),
        kind: b[60],
        compression: b[61],
    }
}

/// The next row of a run, or `None` at its end.
fn next_row(run: &mut impl Read) -> std::io::Result<Option<BlobRow>> {
    let mut b = [0u8; ROW_LEN];
    match run.read_exact(&mut b) {
        Ok(()) => Ok(Some(decode(&b))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Calls `each` with the rows of all runs (each sorted) in (id, pack) order.
fn merge(runs: Vec<File>, mut each: impl FnMut(BlobRow) -> Result<()>) -> Result<()> {
    let mut readers: Vec<BufReader<File>> = runs
        .into_iter()
        .map(|f| BufReader::with_capacity(MERGE_BUFFER, f))
        .collect();
    let mut heads = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(row) = next_row(r)? {
            heads.push(Reverse((row, i)));
        }
    }
    while let Some(Reverse((row, i))) = heads.pop() {
        each(row)?;
        if let Some(next) = next_row(&mut readers[i])? {
            heads.push(Reverse((next, i)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo_format::PackId;
    use cairn_repo_format::{BlobEntry, BlobKind, ChunkId, Compression};

    fn entry(id: u8, n: u32) -> BlobEntry {
        BlobEntry {
            id: ChunkId::from_bytes([id; 32]),
            offset: u64::from(n) * 1000,
            stored_len: 900 + n,
            raw_len: 2000 + n,
            number: n,
            kind: if id.is_multiple_of(2) {
                BlobKind::Data
            } else {
                BlobKind::Tree
            },
            compression: if n.is_multiple_of(2) {
                Compression::Zstd
            } else {
                Compression::None
            },
        }
    }

    /// Three sessions; two of them store blob 5 (in different packs).
    fn sessions() -> Vec<(Commit, Vec<IndexPack>)> {
        let ids: [&[u8]; 3] = [&[9, 5, 1, 7], &[2, 5, 8], &[3, 0, 6, 4]];
        ids.iter()
            .enumerate()
            .map(|(s, blobs)| {
                let commit = Commit {
                    packs: 2,
                    ..Commit::empty(
                        SessionId::random(),
                        format!("node-{s}"),
                        1_000,
                        2_000 + i64::try_from(s).unwrap_or(0),
                    )
                };
                let packs = blobs
                    .chunks(2)
                    .map(|pair| IndexPack {
                        session: commit.session,
                        id: PackId::random(),
                        length: 1 << 20,
                        blobs: pair
                            .iter()
                            .enumerate()
                            .map(|(k, id)| entry(*id, u32::try_from(k).unwrap_or(0)))
                            .collect(),
                    })
                    .collect();
                (commit, packs)
            })
            .collect()
    }

    fn open(dir: &Path, name: &str) -> Catalog {
        Catalog::open(&dir.join(name), &[3; 16], crate::catalog::test_auth())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A `blobs` row with its pack's session and id instead of its number.
    type Dumped = (Vec<u8>, Vec<u8>, Vec<u8>, i64, i64, i64, i64, i64, i64);

    /// Every row of `blobs`, in order.
    fn dump(cat: &Catalog) -> Vec<Dumped> {
        let conn = cat.conn();
        let mut st = conn
            .prepare(
                "SELECT b.id, p.session, p.id, b.offset, b.stored_len, b.raw_len, b.number, b.kind, b.compression
                 FROM blobs b JOIN packs p ON p.n = b.pack ORDER BY b.id, p.session, p.id",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
            .unwrap_or_else(|e| panic!("{e}"));
        rows.collect::<rusqlite::Result<_>>()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A bulk load leaves exactly what recording each session does: with
    /// runs of two rows (several runs, a duplicate id across them), and with
    /// everything in memory (no run at all).
    #[test]
    fn bulk_load_matches_recording_each_session() {
        for run_rows in [2, RUN_ROWS] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let (one, bulk) = (open(dir.path(), "one"), open(dir.path(), "bulk"));
            let mut load = BulkLoad::new(&bulk, run_rows);
            for (commit, packs) in sessions() {
                one.record(&commit, &packs, &[], false)
                    .unwrap_or_else(|e| panic!("{e}"));
                load.add(commit, packs, Vec::new())
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            if run_rows == 2 {
                assert!(load.runs.len() > 2, "{} runs", load.runs.len());
            } else {
                assert!(load.runs.is_empty(), "{} runs", load.runs.len());
            }
            load.finish(&bulk).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(bulk.counts().ok(), Some([3, 6, 11, 0, 0]));
            assert_eq!(dump(&bulk), dump(&one));
            let mut sessions = bulk.sessions().unwrap_or_else(|e| panic!("{e}"));
            let mut expected = one.sessions().unwrap_or_else(|e| panic!("{e}"));
            sessions.sort_by_key(|s| *s.as_bytes());
            expected.sort_by_key(|s| *s.as_bytes());
            assert_eq!(sessions, expected);
            let five = ChunkId::from_bytes([5; 32]);
            assert!(bulk.locate(&five).ok().flatten().is_some());
        }
    }

    /// A load whose transaction fails writes nothing: no session without
    /// its blobs, no blobs without their session.
    #[test]
    fn a_failed_load_leaves_the_catalog_as_it_was() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cat = open(dir.path(), "cat");
        let mut load = BulkLoad::new(&cat, 2);
        for (commit, packs) in sessions() {
            load.add(commit, packs, Vec::new())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // A run that ends early: the merge reads fewer rows than were written.
        let last = load.runs.len() - 1;
        load.runs[last]
            .set_len(ROW_LEN as u64 / 2)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(load.finish(&cat).is_err());
        assert_eq!(cat.counts().ok(), Some([0, 0, 0, 0, 0]));
    }
}
