//! What the collector and `check` ask of their own, private catalog
//! (format §10.3): the set of live blobs, built by walking every
//! snapshot's trees, and from it how much of each pack is still used,
//! which condemned packs must be kept after all, and which blobs a
//! snapshot needs that no index lists. The sets live in tables of the
//! catalog's file, not in memory: a repository of millions of blobs is
//! marked in bounded memory.

use super::{blob_entry, pack_ref, Catalog, PackRef};
use cairn_repo_format::{
    BlobEntry, ChunkId, FileContent, NodeKind, PackId, PackName, SessionId, SnapshotId,
};
use rusqlite::params;
use std::collections::HashSet;

/// The blobs of a pack, found without reading the whole table: what a
/// pack holds is asked per pack here (usage, rescue, repack, check). Only
/// private catalogs get it (a backup would pay for it on every insert).
const BY_PACK: &str = "CREATE INDEX IF NOT EXISTS blobs_by_pack ON blobs (pack)";

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS mark_live (id BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mark_condemned (session BLOB NOT NULL, id BLOB NOT NULL,
    PRIMARY KEY (session, id)) WITHOUT ROWID;
";

/// How much of a pack the snapshots that count still use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackUsage {
    /// The pack.
    pub pack: PackRef,
    /// Its blobs.
    pub blobs: u64,
    /// Of them, live.
    pub live_blobs: u64,
    /// Stored bytes of its blobs.
    pub bytes: u64,
    /// Of them, of live blobs.
    pub live_bytes: u64,
}

impl Catalog {
    /// Starts a mark: no blob live, no pack condemned.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn mark_reset(&self) -> rusqlite::Result<()> {
        let conn = self.conn();
        conn.execute_batch(TABLES)?;
        conn.execute_batch(BY_PACK)?;
        conn.execute_batch("DELETE FROM mark_live; DELETE FROM mark_condemned;")
    }

    /// Marks blobs live; returns, for each, whether it was not live before
    /// (a tree met again needs no second walk).
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn mark_live(&self, ids: &[ChunkId]) -> rusqlite::Result<Vec<bool>> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let mut fresh = Vec::with_capacity(ids.len());
        {
            let mut st = tx.prepare_cached("INSERT OR IGNORE INTO mark_live (id) VALUES (?1)")?;
            for id in ids {
                fresh.push(st.execute([id.as_bytes()])? == 1);
            }
        }
        tx.commit()?;
        Ok(fresh)
    }

    /// How much of each indexed pack is live (packs with no blobs too).
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn pack_usage(&self) -> rusqlite::Result<Vec<PackUsage>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT p.session, p.id, p.length, count(b.id),
                    coalesce(sum(b.stored_len), 0), count(l.id),
                    coalesce(sum(CASE WHEN l.id IS NULL THEN 0 ELSE b.stored_len END), 0)
             FROM packs p LEFT JOIN blobs b ON b.pack = p.n
                  LEFT JOIN mark_live l ON l.id = b.id
             WHERE p.missing = 0
             GROUP BY p.n",
        )?;
        let rows = st.query_map([], |r| {
            Ok(PackUsage {
                pack: pack_ref(r)?,
                blobs: r.get(3)?,
                bytes: r.get(4)?,
                live_blobs: r.get(5)?,
                live_bytes: r.get(6)?,
            })
        })?;
        // A pack listed by two index files is one pack.
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for u in rows {
            let u = u?;
            if seen.insert((u.pack.session, u.pack.id)) {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// Records the condemned packs (for [`Catalog::rescued`]).
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn mark_condemned(&self, packs: &[PackName]) -> rusqlite::Result<()> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO mark_condemned (session, id) VALUES (?1, ?2)",
            )?;
            for (s, p) in packs {
                st.execute(params![s.as_bytes(), p.as_bytes()])?;
            }
        }
        tx.commit()
    }

    /// The condemned packs that hold a live blob of which no pack outside
    /// the condemned ones holds a copy: they must stay.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn rescued(&self) -> rusqlite::Result<Vec<PackName>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT DISTINCT p.session, p.id
             FROM mark_condemned c
                  JOIN packs p ON p.session = c.session AND p.id = c.id
                  JOIN blobs b ON b.pack = p.n
                  JOIN mark_live l ON l.id = b.id
             WHERE NOT EXISTS (
                 SELECT 1 FROM blobs b2 JOIN packs p2 ON p2.n = b2.pack
                 WHERE b2.id = b.id AND p2.missing = 0
                   AND NOT EXISTS (SELECT 1 FROM mark_condemned c2
                                   WHERE c2.session = p2.session AND c2.id = p2.id))",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                SessionId::from_bytes(r.get(0)?),
                PackId::from_bytes(r.get(1)?),
            ))
        })?;
        rows.collect()
    }

    /// The sessions whose valid index files list one of `packs`.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn indexed_by(&self, packs: &[PackName]) -> rusqlite::Result<HashSet<SessionId>> {
        let conn = self.conn();
        let mut st =
            conn.prepare_cached("SELECT indexed_by FROM packs WHERE session = ?1 AND id = ?2")?;
        let mut out = HashSet::new();
        for (s, p) in packs {
            let rows = st.query_map(params![s.as_bytes(), p.as_bytes()], |r| {
                r.get::<_, [u8; 32]>(0).map(SessionId::from_bytes)
            })?;
            for r in rows {
                out.insert(r?);
            }
        }
        Ok(out)
    }

    /// Marks every blob reachable from a snapshot that counts live
    /// (starting a new mark). A tree that cannot be read is an error, or,
    /// with `skip_unreadable` (a check, which reports it apart), skipped.
    ///
    /// # Errors
    /// SQLite errors; an unreadable tree unless skipped.
    pub(crate) fn mark_all_live(&self, skip_unreadable: bool) -> crate::error::Result<()> {
        self.mark_reset()?;
        for (_, root) in self.roots()? {
            let mut frontier = vec![root];
            while let Some(t) = frontier.pop() {
                if !self.mark_live(&[t])?[0] {
                    continue;
                }
                let tree = match self.tree(&t) {
                    Ok(tree) => tree,
                    Err(_) if skip_unreadable => continue,
                    Err(e) => return Err(e),
                };
                let mut content: Vec<ChunkId> = Vec::new();
                let mut lists: Vec<ChunkId> = Vec::new();
                for node in tree.nodes() {
                    match &node.kind {
                        NodeKind::File {
                            content: FileContent::Chunks(c),
                            ..
                        } => content.extend_from_slice(c),
                        NodeKind::File {
                            content: FileContent::Lists(l),
                            ..
                        } => lists.extend_from_slice(l),
                        NodeKind::Dir { subtree } => frontier.push(*subtree),
                        _ => {}
                    }
                }
                self.mark_live(&content)?;
                // A list marked before had its chunks marked with it.
                let fresh = self.mark_live(&lists)?;
                for (l, _) in lists.iter().zip(fresh).filter(|(_, f)| *f) {
                    match self.list(l) {
                        Ok(ids) => {
                            self.mark_live(&ids)?;
                        }
                        Err(_) if skip_unreadable => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// Which of `entries`' blobs are live.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn live_of(&self, entries: &[BlobEntry]) -> rusqlite::Result<HashSet<ChunkId>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT 1 FROM mark_live WHERE id = ?1")?;
        let mut out = HashSet::new();
        for e in entries {
            if st.exists([e.id.as_bytes()])? {
                out.insert(e.id);
            }
        }
        Ok(out)
    }

    /// Live blobs that no valid index lists (in any pack, present or not).
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn live_unindexed(&self) -> rusqlite::Result<Vec<ChunkId>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT l.id FROM mark_live l WHERE NOT EXISTS (
                 SELECT 1 FROM blobs b WHERE b.id = l.id)",
        )?;
        let rows = st.query_map([], |r| r.get::<_, [u8; 32]>(0).map(ChunkId::from_bytes))?;
        rows.collect()
    }

    /// The blobs the index lists in a pack, in pack order (makes an index
    /// of `blobs` by pack the first time: private catalogs only).
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn blobs_in(&self, pack: &PackRef) -> rusqlite::Result<Vec<BlobEntry>> {
        let conn = self.conn();
        conn.execute_batch(BY_PACK)?;
        let mut st = conn.prepare_cached(
            "SELECT DISTINCT b.id, b.offset, b.stored_len, b.raw_len, b.number, b.kind, b.compression
             FROM packs p JOIN blobs b ON b.pack = p.n
             WHERE p.session = ?1 AND p.id = ?2 ORDER BY b.number",
        )?;
        let rows = st.query_map(params![pack.session.as_bytes(), pack.id.as_bytes()], |r| {
            blob_entry(r, 0)
        })?;
        rows.collect()
    }

    /// Whether a blob has a copy in a pack known to be present other than
    /// those in `bad`.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn copy_outside(
        &self,
        id: &ChunkId,
        bad: &HashSet<PackName>,
    ) -> rusqlite::Result<bool> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT p.session, p.id FROM blobs b JOIN packs p ON p.n = b.pack
             WHERE b.id = ?1 AND p.missing = 0",
        )?;
        let mut rows = st.query([id.as_bytes()])?;
        while let Some(r) = rows.next()? {
            let pack = (
                SessionId::from_bytes(r.get(0)?),
                PackId::from_bytes(r.get(1)?),
            );
            if !bad.contains(&pack) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The snapshots (that count) whose trees reach one of `blobs`.
    ///
    /// # Errors
    /// A tree that cannot be read from the catalog.
    pub(crate) fn snapshots_using(
        &self,
        blobs: &HashSet<ChunkId>,
    ) -> crate::error::Result<Vec<SnapshotId>> {
        let mut out = Vec::new();
        for (sid, root) in self.roots()? {
            let mut frontier = vec![root];
            let mut seen = HashSet::new();
            let mut hit = false;
            while let Some(t) = frontier.pop() {
                if blobs.contains(&t) {
                    hit = true;
                    break;
                }
                if !seen.insert(t) {
                    continue;
                }
                let Ok(tree) = self.tree(&t) else {
                    hit = true;
                    break;
                };
                for node in tree.nodes() {
                    match &node.kind {
                        NodeKind::File { content, .. }
                            if content.ids().iter().any(|c| blobs.contains(c)) =>
                        {
                            hit = true;
                        }
                        // An unreadable list may name any blob.
                        NodeKind::File {
                            content: FileContent::Lists(lists),
                            ..
                        } if lists.iter().any(|l| {
                            self.list(l)
                                .map_or(true, |ids| ids.iter().any(|c| blobs.contains(c)))
                        }) =>
                        {
                            hit = true;
                        }
                        NodeKind::Dir { subtree } => frontier.push(*subtree),
                        _ => {}
                    }
                }
                if hit {
                    break;
                }
            }
            if hit {
                out.push(sid);
            }
        }
        Ok(out)
    }

    /// An indexed pack's length.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn pack_length(
        &self,
        session: SessionId,
        id: PackId,
    ) -> rusqlite::Result<Option<u64>> {
        use rusqlite::OptionalExtension;
        let conn = self.conn();
        let mut st =
            conn.prepare_cached("SELECT length FROM packs WHERE session = ?1 AND id = ?2 LIMIT 1")?;
        st.query_row(params![session.as_bytes(), id.as_bytes()], |r| r.get(0))
            .optional()
    }

    /// Every snapshot that counts, with its root tree.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn roots(&self) -> rusqlite::Result<Vec<(SnapshotId, ChunkId)>> {
        self.snapshot_trees("")
    }
}
