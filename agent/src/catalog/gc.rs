//! What forget records and consolidated index files change in the catalog
//! (format §8.2, §13): a forgotten snapshot's row goes, a superseded
//! session's index rows go, and both are remembered so that nothing read
//! later brings them back. And the one lookup a writer makes while a prune
//! is under way: whether a blob has a copy outside the condemned packs.

use super::{Catalog, CONTAINS_WHERE};
use cairn_repo_format::{ChunkId, Commit, PackId, PackSet, SessionId, SnapshotId};
use rusqlite::params;
use std::collections::HashSet;

/// Applies what `commits` forget and supersede, in `tx`. The rows of
/// superseded sessions' packs are found in one pass over `blobs`, however
/// many sessions there are.
pub(super) fn apply(tx: &rusqlite::Transaction<'_>, commits: &[Commit]) -> rusqlite::Result<()> {
    let mut dead_packs = false;
    for c in commits {
        for id in &c.forgets {
            tx.execute(
                "INSERT OR IGNORE INTO forgotten (id) VALUES (?1)",
                [id.as_bytes()],
            )?;
            tx.execute("DELETE FROM snapshots WHERE id = ?1", [id.as_bytes()])?;
        }
        for s in &c.supersedes {
            tx.execute(
                "INSERT OR IGNORE INTO superseded (session) VALUES (?1)",
                [s.as_bytes()],
            )?;
            if !dead_packs {
                tx.execute_batch(
                    "CREATE TEMP TABLE IF NOT EXISTS dead_packs (n INTEGER PRIMARY KEY);
                     DELETE FROM temp.dead_packs;",
                )?;
                dead_packs = true;
            }
            tx.execute(
                "INSERT OR IGNORE INTO temp.dead_packs (n) SELECT n FROM packs WHERE indexed_by = ?1",
                [s.as_bytes()],
            )?;
        }
    }
    let dead: i64 = if dead_packs {
        tx.query_row("SELECT count(*) FROM temp.dead_packs", [], |r| r.get(0))?
    } else {
        0
    };
    if dead > 0 {
        tx.execute_batch(
            "DELETE FROM blobs WHERE pack IN (SELECT n FROM temp.dead_packs);
             DELETE FROM packs WHERE n IN (SELECT n FROM temp.dead_packs);
             DELETE FROM temp.dead_packs;",
        )?;
    }
    Ok(())
}

impl Catalog {
    /// Applies what `commits` forget and supersede, in one transaction (a
    /// sync does this before it reads what the commits list).
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn apply_commits(&self, commits: &[Commit]) -> rusqlite::Result<()> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        apply(&tx, commits)?;
        tx.commit()
    }

    /// Sessions whose index files are superseded.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn superseded(&self) -> rusqlite::Result<HashSet<SessionId>> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT session FROM superseded")?;
        let rows = st.query_map([], |r| r.get::<_, [u8; 32]>(0).map(SessionId::from_bytes))?;
        rows.collect()
    }

    /// Snapshots that are forgotten.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn forgotten(&self) -> rusqlite::Result<HashSet<SnapshotId>> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id FROM forgotten")?;
        let rows = st.query_map([], |r| r.get::<_, [u8; 32]>(0).map(SnapshotId::from_bytes))?;
        rows.collect()
    }

    /// The part (1 to `of`) after the one `check --read-data-subset
    /// next/OF` read last with this catalog; remembered as read.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn next_part(&self, of: u32) -> rusqlite::Result<u32> {
        use rusqlite::OptionalExtension;
        let key = format!("check_part_of_{of}");
        let conn = self.conn();
        let last: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| {
                r.get(0)
            })
            .optional()?;
        let next = last
            .and_then(|v| v.parse::<u32>().ok())
            .map_or(1, |n| n % of.max(1) + 1);
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, next.to_string()],
        )?;
        Ok(next)
    }

    /// Whether a blob is stored in a pack not known to be missing and not
    /// in `avoid` (the packs a prune condemns).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn contains_outside(&self, id: &ChunkId, avoid: &PackSet) -> rusqlite::Result<bool> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!(
            "SELECT p.session, p.id FROM blobs b JOIN packs p ON p.n = b.pack WHERE {CONTAINS_WHERE}"
        ))?;
        let mut rows = st.query(params![id.as_bytes()])?;
        while let Some(r) = rows.next()? {
            let pack = (
                SessionId::from_bytes(r.get(0)?),
                PackId::from_bytes(r.get(1)?),
            );
            if !avoid.contains(&pack) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
