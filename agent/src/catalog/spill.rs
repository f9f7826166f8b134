//! The part of a session's index already written to index files while the
//! backup runs, kept on local disk instead of in memory (the pipeline's
//! `index` stage writes the files).
//!
//! A backup writes an index file as soon as its packs hold
//! `session::index_file_blobs` blobs (format §6 allows one per
//! checkpoint), so a session never holds more than one index file's worth of
//! entries. Two things still need the entries written out: the sink, which
//! must know every blob this session stored (deduplication within the
//! session), and the catalog, which records the session's packs once it
//! commits. Both read them here: a private SQLite database in `TMPDIR`,
//! unlinked as soon as it is open, so nothing is left behind whatever stops
//! the process, and its pages beyond a small cache stay on disk.

use cairn_repo_format::{ChunkId, IndexFile, IndexId, IndexPack, SessionId};
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::{Arc, Mutex};

/// What is called with each group of a session's packs.
pub type PackGroup<'a> = dyn FnMut(&[IndexPack]) -> rusqlite::Result<()> + 'a;

/// Pages of cache (negative: KiB). Lookups come one per new blob and hit
/// B-tree pages at random; a small cache keeps memory flat and the rest is
/// served from the page cache of the kernel.
const CACHE_KIB: i64 = 1 << 10;

/// The written part of a session's index. See the module's documentation.
pub struct Spill {
    session: SessionId,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill")
            .field("session", &self.session.short())
            .finish_non_exhaustive()
    }
}

impl Spill {
    /// A new, empty spill for `session`'s index, in `TMPDIR`.
    ///
    /// # Errors
    /// SQLite errors (`TMPDIR` not writable, for example).
    pub fn create(session: SessionId) -> rusqlite::Result<Self> {
        Self::create_in(&std::env::temp_dir(), session)
    }

    fn create_in(dir: &std::path::Path, session: SessionId) -> rusqlite::Result<Self> {
        let path = crate::util::temp_path(dir);
        let conn = Connection::open(&path)?;
        // One connection, no journal: nothing but this file is ever created,
        // so it can be unlinked now and lives only as long as the process
        // holds it open.
        let unlinked = std::fs::remove_file(&path);
        conn.pragma_update(None, "journal_mode", "OFF")?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "temp_store", "FILE")?;
        conn.execute_batch(
            "CREATE TABLE ids (id BLOB PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE files (n INTEGER PRIMARY KEY, data BLOB NOT NULL);",
        )?;
        if let Err(e) = unlinked {
            tracing::warn!(
                "could not unlink the session index spill {}: {e}",
                path.display()
            );
        }
        Ok(Self {
            session,
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps the packs of one index file that was written.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn add(&self, file: &IndexFile) -> rusqlite::Result<()> {
        let mut ids: Vec<&ChunkId> = file
            .packs
            .iter()
            .flat_map(|p| p.blobs.iter().map(|e| &e.id))
            .collect();
        // Inserted in key order: neighbouring keys share B-tree pages.
        ids.sort_unstable();
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached("INSERT OR IGNORE INTO ids (id) VALUES (?1)")?;
            for id in ids {
                st.execute([id.as_bytes()])?;
            }
            tx.execute(
                "INSERT INTO files (data) VALUES (?1)",
                [file.encode(self.session)],
            )?;
        }
        tx.commit()
    }

    /// Whether a blob is in one of the packs kept here.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn contains(&self, id: &ChunkId) -> rusqlite::Result<bool> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT 1 FROM ids WHERE id = ?1")?;
        st.exists([id.as_bytes()])
    }

    /// Calls `f` with the packs of each index file kept here, in the order
    /// they were written, one file in memory at a time.
    ///
    /// # Errors
    /// SQLite errors, `f`'s errors.
    pub fn each_file(&self, f: &mut PackGroup<'_>) -> rusqlite::Result<()> {
        let mut n = 0i64;
        loop {
            let row: Option<(i64, Vec<u8>)> = self
                .conn()
                .query_row(
                    "SELECT n, data FROM files WHERE n > ?1 ORDER BY n LIMIT 1",
                    params![n],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((at, data)) = row else {
                return Ok(());
            };
            n = at;
            let file = IndexFile::decode(&data, self.session).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, e.into())
            })?;
            drop(data);
            f(&file.packs)?;
        }
    }
}

/// What a pipeline run stored: the index files it wrote, and the packs no
/// index file describes yet.
#[derive(Debug, Default)]
pub struct Written {
    /// Index files written while the pipeline ran, in order.
    pub index: Vec<IndexId>,
    /// Packs those files describe.
    pub indexed_packs: u64,
    /// Packs no index file describes yet (those of the last, unfinished
    /// file), for the caller to index.
    pub packs: Vec<IndexPack>,
    /// What the written index files describe, off memory.
    pub(crate) spill: Option<Arc<Spill>>,
}

impl Written {
    /// Every pack written: in the index files, then the rest.
    pub fn pack_count(&self) -> u64 {
        self.indexed_packs + self.packs.len() as u64
    }

    /// Calls `f` with groups of packs that together are every pack written:
    /// those of each index file written, then the rest.
    ///
    /// # Errors
    /// SQLite errors, `f`'s errors.
    pub fn each_group(&self, f: &mut PackGroup<'_>) -> rusqlite::Result<()> {
        if let Some(spill) = &self.spill {
            spill.each_file(f)?;
        }
        f(&self.packs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo_format::{BlobEntry, BlobKind, Compression, PackId};

    fn pack(session: SessionId, ids: &[u8]) -> IndexPack {
        IndexPack {
            session,
            id: PackId::random(),
            length: 1 << 20,
            blobs: ids
                .iter()
                .enumerate()
                .map(|(i, b)| BlobEntry {
                    id: ChunkId::from_bytes([*b; 32]),
                    offset: i as u64 * 100,
                    stored_len: 100,
                    raw_len: 84,
                    number: i as u32,
                    kind: BlobKind::Data,
                    compression: Compression::None,
                })
                .collect(),
        }
    }

    #[test]
    fn keeps_written_files_off_memory_and_answers_for_their_blobs() {
        let session = SessionId::random();
        let spill = Spill::create(session).expect("spill");
        let first = IndexFile {
            packs: vec![pack(session, &[1, 2]), pack(session, &[3])],
        };
        let second = IndexFile {
            packs: vec![pack(session, &[4])],
        };
        spill.add(&first).expect("add");
        spill.add(&second).expect("add");
        for b in [1, 2, 3, 4] {
            assert!(spill.contains(&ChunkId::from_bytes([b; 32])).unwrap());
        }
        assert!(!spill.contains(&ChunkId::from_bytes([5; 32])).unwrap());
        let mut seen = Vec::new();
        spill
            .each_file(&mut |packs| {
                seen.push(packs.to_vec());
                Ok(())
            })
            .expect("each");
        assert_eq!(seen, vec![first.packs, second.packs]);
        drop(spill);
    }

    #[test]
    fn leaves_no_file_behind() {
        let dir = tempfile::tempdir().expect("dir");
        let session = SessionId::random();
        let spill = Spill::create_in(dir.path(), session).expect("spill");
        spill
            .add(&IndexFile {
                packs: vec![pack(session, &(0..200).collect::<Vec<u8>>())],
            })
            .expect("add");
        assert!(spill.contains(&ChunkId::from_bytes([199; 32])).unwrap());
        // Unlinked while open: the directory is empty from the start.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
