//! The local catalog: a SQLite cache of the repository's index, snapshots
//! and trees (schema in `docs/format.md` §13).
//!
//! The repository is the truth; the catalog only ever mirrors committed
//! objects, and may be deleted at any time. It is opened (or created) per
//! repository, synced with the objects it has not seen ([`crate::sync`]), and
//! rebuilt from scratch when it is missing, of another schema version, of
//! another repository, corrupt, or stale (it knows a session the repository
//! no longer has).
//!
//! Lookups go to SQLite, never to a map of the whole index: memory stays
//! flat however many chunks the repository holds.
//!
//! What the catalog gives back is checked before it is used ([`Auth`]): a
//! tree's plaintext must hash to its id under the repository's id key, and
//! a snapshot row must carry a MAC under a key derived from the master key.
//! A row edited by someone without the keys is reported, and the catalog is
//! rebuilt from the repository by the next command.

use crate::error::{Context, Error, Result};
use cairn_chunker::IdKey;
use cairn_repo_format::{
    BlobEntry, BlobKind, CatalogKey, ChunkId, Commit, Compression, FileContent, IndexPack, PackId,
    RepoKeys, SessionId, Snapshot, SnapshotId, Tree,
};
use rusqlite::{params, Connection, OptionalExtension};
use spill::{PackGroup, Written};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

mod gc;
pub mod load;
mod mark;
pub mod spill;
pub use mark::PackUsage;

/// The schema this cairn writes and reads (2: snapshot rows carry a MAC;
/// 3: packs say which session indexed them, forgotten and superseded).
pub const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sessions (
    id BLOB PRIMARY KEY,
    hostname TEXT NOT NULL,
    finished_ns INTEGER NOT NULL,
    fenced INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE packs (
    n INTEGER PRIMARY KEY,
    session BLOB NOT NULL,
    id BLOB NOT NULL,
    length INTEGER NOT NULL,
    missing INTEGER NOT NULL DEFAULT 0,
    indexed_by BLOB NOT NULL,
    UNIQUE (session, id, indexed_by)
);
CREATE INDEX packs_indexed_by ON packs (indexed_by);
CREATE TABLE blobs (
    id BLOB NOT NULL,
    pack INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    stored_len INTEGER NOT NULL,
    raw_len INTEGER NOT NULL,
    number INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    compression INTEGER NOT NULL,
    PRIMARY KEY (id, pack)
) WITHOUT ROWID;
CREATE TABLE snapshots (
    id BLOB PRIMARY KEY,
    session BLOB NOT NULL,
    time_ns INTEGER NOT NULL,
    tree BLOB NOT NULL,
    json TEXT NOT NULL,
    mac BLOB NOT NULL,
    trees_complete INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE trees (id BLOB PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE forgotten (id BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE superseded (session BLOB PRIMARY KEY) WITHOUT ROWID;
";

/// Every table, for checks and for [`Catalog::clear`].
const TABLES: [&str; 7] = [
    "sessions",
    "packs",
    "blobs",
    "snapshots",
    "trees",
    "forgotten",
    "superseded",
];

/// Where a blob is (restores): a lookup per chunk.
const LOCATE: &str = "SELECT p.session, p.id, p.length,
        b.id, b.offset, b.stored_len, b.raw_len, b.number, b.kind, b.compression
    FROM blobs b JOIN packs p ON p.n = b.pack
    WHERE b.id = ?1 AND p.missing = 0 LIMIT 1";

/// Which rows hold a usable copy of blob `?1`.
const CONTAINS_WHERE: &str = "b.id = ?1 AND p.missing = 0";

/// Whether a blob is stored (deduplication): a lookup per chunk.
const CONTAINS: &str = "SELECT 1 FROM blobs b JOIN packs p ON p.n = b.pack
    WHERE b.id = ?1 AND p.missing = 0 LIMIT 1";

/// Pages of SQLite cache (negative: KiB): a fixed memory budget.
const CACHE_KIB: i64 = 4 << 10;

/// A pack that holds indexed blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackRef {
    /// Its session.
    pub session: SessionId,
    /// Its id.
    pub id: PackId,
    /// Its length in bytes.
    pub length: u64,
}

/// What the catalog checks the rows it gives back with.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Trees are blobs: their plaintext hashes to their id under `K_id`.
    pub ids: IdKey,
    /// Snapshot rows carry a MAC under `K_cat`.
    pub mac: CatalogKey,
}

impl Auth {
    /// The repository's keys for its catalog.
    pub fn of(keys: &RepoKeys) -> Self {
        Self {
            ids: keys.id.clone(),
            mac: keys.catalog.clone(),
        }
    }
}

/// What a snapshot row's MAC covers: its id and its JSON.
const SNAPSHOT_ROW: &[u8] = b"snapshot";

/// The catalog of one repository.
#[derive(Debug)]
pub struct Catalog {
    conn: Mutex<Connection>,
    path: PathBuf,
    auth: Auth,
    /// A throwaway catalog of one operation (prune's): nobody is told it
    /// is being filled.
    private: bool,
}

/// Where the catalog of the repository `repository_id` lives by default:
/// `$XDG_CACHE_HOME/cairn`, else `~/.cache/cairn`.
///
/// # Errors
/// If neither variable is set.
pub fn default_path(repository_id: &[u8; 16]) -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .ok_or_else(|| {
            Error::Input("no cache directory for the catalog: set HOME or XDG_CACHE_HOME, or pass --catalog PATH (or CAIRN_CATALOG)".into())
        })?;
    Ok(path_in(&base.join("cairn"), repository_id))
}

/// The catalog of the repository `repository_id` in the directory `dir`.
pub fn path_in(dir: &Path, repository_id: &[u8; 16]) -> PathBuf {
    dir.join(format!("{}.catalog", hex::encode(repository_id)))
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Why an existing catalog file cannot be used as it is.
enum Unusable {
    Reason(String),
    Error(rusqlite::Error),
}

impl From<rusqlite::Error> for Unusable {
    fn from(e: rusqlite::Error) -> Self {
        if is_corruption(&e) {
            Unusable::Reason(format!("it is corrupt ({e})"))
        } else {
            Unusable::Error(e)
        }
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(60))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Every lookup binds a new 32-byte id. Without the query planner
    // stability guarantee, SQLite re-planned `contains` and its kin on each
    // new binding (sqlite3Reprepare on every step: a quarter of an unchanged
    // tree backup's CPU). Their best plan is the primary key whatever the id.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Opens `path` and checks it is a catalog of this schema for this
/// repository; creates the schema in an empty file.
fn try_open(path: &Path, repo_hex: &str) -> Result<Connection, Unusable> {
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    // Under the write lock, so that processes opening a new catalog at
    // once create its schema exactly once.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let has_meta: bool = tx.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_meta {
        let tables: i64 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if tables > 0 {
            return Err(Unusable::Reason("it is not a cairn catalog".into()));
        }
        tx.execute_batch(SCHEMA)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('repository_id', ?2)",
            params![SCHEMA_VERSION.to_string(), repo_hex],
        )?;
    }
    tx.commit()?;
    let get = |key: &str| -> rusqlite::Result<Option<String>> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    };
    let version = get("schema_version")?;
    if version.as_deref() != Some(&SCHEMA_VERSION.to_string()) {
        return Err(Unusable::Reason(format!(
            "it has schema version {}, this cairn uses {SCHEMA_VERSION}",
            version.as_deref().unwrap_or("(none)")
        )));
    }
    if get("repository_id")?.as_deref() != Some(repo_hex) {
        return Err(Unusable::Reason(
            "it belongs to another repository".to_owned(),
        ));
    }
    if let Some(why) = get("altered")? {
        return Err(Unusable::Reason(format!("it was found altered ({why})")));
    }
    // Touch every table's root page, so a damaged file is found now.
    for table in TABLES {
        conn.query_row(
            &format!("SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)"),
            [],
            |r| r.get::<_, i64>(0),
        )?;
    }
    Ok(conn)
}

fn remove_files(path: &Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn pack_ref(r: &rusqlite::Row<'_>) -> rusqlite::Result<PackRef> {
    Ok(PackRef {
        session: SessionId::from_bytes(r.get(0)?),
        id: PackId::from_bytes(r.get(1)?),
        length: r.get(2)?,
    })
}

fn column_error(column: usize, what: &str, value: i64) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Integer,
        format!("{what} {value} is not valid").into(),
    )
}

fn blob_entry(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<BlobEntry> {
    let kind = match r.get::<_, i64>(first + 5)? {
        1 => BlobKind::Data,
        2 => BlobKind::Tree,
        3 => BlobKind::List,
        k => return Err(column_error(first + 5, "blob kind", k)),
    };
    let compression = match r.get::<_, i64>(first + 6)? {
        0 => Compression::None,
        1 => Compression::Zstd,
        c => return Err(column_error(first + 6, "compression", c)),
    };
    Ok(BlobEntry {
        id: ChunkId::from_bytes(r.get(first)?),
        offset: r.get(first + 1)?,
        stored_len: r.get(first + 2)?,
        raw_len: r.get(first + 3)?,
        number: r.get(first + 4)?,
        kind,
        compression,
    })
}

/// A snapshot as the catalog lists it.
pub type Listed = (SnapshotId, Snapshot);

const INSERT_PACK: &str = "INSERT INTO packs (session, id, length, indexed_by)
    VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (session, id, indexed_by) DO UPDATE SET length = excluded.length RETURNING n";
const INSERT_BLOB: &str = "INSERT OR IGNORE INTO blobs
    (id, pack, offset, stored_len, raw_len, number, kind, compression)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Inserts (or finds) a pack as the index of session `indexed_by` lists
/// it; returns its number in `packs`.
fn insert_pack(
    st: &mut rusqlite::CachedStatement<'_>,
    pack: &IndexPack,
    indexed_by: SessionId,
) -> rusqlite::Result<i64> {
    st.query_row(
        params![
            pack.session.as_bytes(),
            pack.id.as_bytes(),
            pack.length,
            indexed_by.as_bytes()
        ],
        |r| r.get(0),
    )
}

/// One row of `blobs`, with the columns as stored. `pack` is the pack's
/// number in `packs`, or (in a bulk load, [`load`]) its position in the
/// load's own list until the numbers are known. Rows order by the table's
/// key, (id, pack), first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct BlobRow {
    id: [u8; 32],
    pack: i64,
    offset: u64,
    stored_len: u32,
    raw_len: u32,
    number: u32,
    kind: u8,
    compression: u8,
}

impl BlobRow {
    fn new(pack: i64, e: &BlobEntry) -> Self {
        Self {
            id: *e.id.as_bytes(),
            pack,
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
            number: e.number,
            kind: e.kind as u8,
            compression: e.compression as u8,
        }
    }

    fn insert(&self, st: &mut rusqlite::CachedStatement<'_>) -> rusqlite::Result<()> {
        st.execute(params![
            self.id,
            self.pack,
            self.offset,
            self.stored_len,
            self.raw_len,
            self.number,
            self.kind,
            self.compression
        ])?;
        Ok(())
    }
}

/// Records a session's snapshots and then the session itself (its packs
/// and blobs must already be in the same transaction).
fn insert_session(
    tx: &rusqlite::Transaction<'_>,
    mac: &CatalogKey,
    commit: &Commit,
    snapshots: &[Listed],
    trees_complete: bool,
) -> rusqlite::Result<()> {
    // A snapshot already forgotten (its forget record was read first) is
    // never recorded.
    let mut st = tx.prepare_cached(
        "INSERT OR REPLACE INTO snapshots (id, session, time_ns, tree, json, mac, trees_complete)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
         WHERE NOT EXISTS (SELECT 1 FROM forgotten WHERE id = ?1)",
    )?;
    for (id, s) in snapshots {
        let json = serde_json::to_string(s)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let tag = mac.mac(SNAPSHOT_ROW, id.as_bytes(), json.as_bytes());
        st.execute(params![
            id.as_bytes(),
            s.session.as_bytes(),
            s.time_ns,
            s.tree.as_bytes(),
            json,
            &tag[..],
            trees_complete
        ])?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO sessions (id, hostname, finished_ns, fenced) VALUES (?1, ?2, ?3, ?4)",
        params![
            commit.session.as_bytes(),
            commit.hostname,
            commit.finished_ns,
            commit.is_tombstone()
        ],
    )?;
    Ok(())
}

impl Catalog {
    /// Opens the catalog at `path` for the repository `repository_id`,
    /// creating it if missing and rebuilding it (with a message) if it
    /// cannot be used. Rows are checked with `auth`.
    ///
    /// # Errors
    /// If the file cannot be created or opened at all.
    pub fn open(path: &Path, repository_id: &[u8; 16], auth: Auth) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "creating the catalog directory {} (or pass --catalog PATH)",
                    dir.display()
                )
            })?;
        }
        let repo_hex = hex::encode(repository_id);
        let conn = match try_open(path, &repo_hex) {
            Ok(c) => c,
            Err(Unusable::Error(e)) => {
                return Err(
                    Error::from(e).context(format!("opening the catalog {}", path.display()))
                )
            }
            Err(Unusable::Reason(why)) => {
                tracing::warn!(
                    catalog = %path.display(),
                    "the catalog {} cannot be used: {why}; rebuilding it from the repository",
                    path.display()
                );
                remove_files(path)
                    .with_context(|| format!("removing the catalog {}", path.display()))?;
                match try_open(path, &repo_hex) {
                    Ok(c) => c,
                    Err(Unusable::Error(e)) => return Err(e.into()),
                    Err(Unusable::Reason(why)) => {
                        return Err(Error::Internal(format!(
                            "a new catalog at {} {why}",
                            path.display()
                        )))
                    }
                }
            }
        };
        restrict_mode(path);
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            auth,
            private: false,
        })
    }

    /// A new catalog in `dir` for one operation's own use (prune reads the
    /// repository afresh rather than trust a cache another process wrote).
    ///
    /// # Errors
    /// If it cannot be created.
    pub fn private(dir: &Path, repository_id: &[u8; 16], auth: Auth) -> Result<Self> {
        let mut cat = Self::open(&dir.join("private.catalog"), repository_id, auth)?;
        cat.private = true;
        // Sorting millions of rows (an index by pack) spills to temporary
        // files rather than being held in memory.
        cat.conn().pragma_update(None, "temp_store", "FILE")?;
        Ok(cat)
    }

    /// Whether it is an operation's own throwaway catalog.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// A row that fails its check: the catalog is marked so that the next
    /// command rebuilds it, and the error says so.
    fn altered(&self, what: String) -> Error {
        let marked = self.conn().execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('altered', ?1)",
            [&what],
        );
        let next = match marked {
            Ok(_) => "the next command rebuilds it from the repository",
            Err(_) => "run `cairn catalog rebuild`",
        };
        Error::Corrupt(format!(
            "{what}: the catalog {} was altered or damaged, so nothing from it was used; {next}",
            self.path.display()
        ))
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets everything (the next sync reads the repository from scratch).
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn clear(&self) -> rusqlite::Result<()> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        for table in TABLES {
            tx.execute(&format!("DELETE FROM {table}"), [])?;
        }
        tx.execute("DELETE FROM meta WHERE key = 'altered'", [])?;
        tx.commit()?;
        conn.execute_batch("VACUUM")
    }

    /// The committed sessions the catalog has read.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn sessions(&self) -> rusqlite::Result<Vec<SessionId>> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id FROM sessions")?;
        let rows = st.query_map([], |r| r.get::<_, [u8; 32]>(0).map(SessionId::from_bytes))?;
        rows.collect()
    }

    /// The sessions whose commit is a tombstone (fenced by a prune).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn fenced_sessions(&self) -> rusqlite::Result<HashSet<SessionId>> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id FROM sessions WHERE fenced = 1")?;
        let rows = st.query_map([], |r| r.get::<_, [u8; 32]>(0).map(SessionId::from_bytes))?;
        rows.collect()
    }

    /// Records one committed session: its packs, snapshots and the commit,
    /// in one transaction (all or nothing).
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn record(
        &self,
        commit: &Commit,
        packs: &[IndexPack],
        snapshots: &[Listed],
        trees_complete: bool,
    ) -> rusqlite::Result<()> {
        self.record_groups(commit, &mut |f| f(packs), snapshots, trees_complete)
    }

    /// [`Catalog::record`] for a session this process wrote: its packs as
    /// the pipeline left them, one index file's worth in memory at a time.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn record_written(
        &self,
        commit: &Commit,
        written: &Written,
        snapshots: &[Listed],
        trees_complete: bool,
    ) -> rusqlite::Result<()> {
        self.record_groups(
            commit,
            &mut |f| written.each_group(f),
            snapshots,
            trees_complete,
        )
    }

    /// Records a session whose packs `groups` hands to the function it is
    /// given, a group at a time.
    fn record_groups(
        &self,
        commit: &Commit,
        groups: &mut dyn FnMut(&mut PackGroup<'_>) -> rusqlite::Result<()>,
        snapshots: &[Listed],
        trees_complete: bool,
    ) -> rusqlite::Result<()> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        {
            let mut pack_st = tx.prepare_cached(INSERT_PACK)?;
            let mut blob_st = tx.prepare_cached(INSERT_BLOB)?;
            groups(&mut |packs| {
                // Inserted in id order: neighbouring keys share B-tree
                // pages, so a large index loads with far fewer page misses.
                let mut rows: Vec<BlobRow> = Vec::new();
                for p in packs {
                    let n = insert_pack(&mut pack_st, p, commit.session)?;
                    rows.extend(p.blobs.iter().map(|e| BlobRow::new(n, e)));
                }
                rows.sort_unstable();
                for row in &rows {
                    row.insert(&mut blob_st)?;
                }
                Ok(())
            })?;
        }
        insert_session(&tx, &self.auth.mac, commit, snapshots, trees_complete)?;
        gc::apply(&tx, std::slice::from_ref(commit))?;
        tx.commit()
    }

    /// Every snapshot, oldest first.
    ///
    /// # Errors
    /// SQLite errors, or a row that does not decode or fails its MAC.
    pub fn snapshots(&self) -> Result<Vec<Listed>> {
        let rows: Vec<([u8; 32], String, Vec<u8>)> = {
            let conn = self.conn();
            let mut st =
                conn.prepare("SELECT id, json, mac FROM snapshots ORDER BY time_ns, id")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut out = Vec::new();
        for (id, json, tag) in rows {
            let id = SnapshotId::from_bytes(id);
            if !self
                .auth
                .mac
                .verify(SNAPSHOT_ROW, id.as_bytes(), json.as_bytes(), &tag)
            {
                return Err(self.altered(format!(
                    "the catalog's copy of snapshot {} fails its authentication",
                    id.short()
                )));
            }
            let s = Snapshot::decode_payload(json.as_bytes()).with_context(|| {
                format!(
                    "the catalog's copy of snapshot {} is damaged; run `cairn catalog rebuild`",
                    id.short()
                )
            })?;
            out.push((id, s));
        }
        Ok(out)
    }

    /// Snapshots whose trees are not all in the catalog yet.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn incomplete(&self) -> rusqlite::Result<Vec<(SnapshotId, ChunkId)>> {
        self.snapshot_trees("WHERE trees_complete = 0")
    }

    /// Snapshots and their root trees, those `filter` (a WHERE clause of
    /// this module's) selects.
    fn snapshot_trees(&self, filter: &str) -> rusqlite::Result<Vec<(SnapshotId, ChunkId)>> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!("SELECT id, tree FROM snapshots {filter}"))?;
        let rows = st.query_map([], |r| {
            Ok((
                SnapshotId::from_bytes(r.get(0)?),
                ChunkId::from_bytes(r.get(1)?),
            ))
        })?;
        rows.collect()
    }

    /// Marks a snapshot's trees as all present.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn set_complete(&self, id: SnapshotId) -> rusqlite::Result<()> {
        self.conn().execute(
            "UPDATE snapshots SET trees_complete = 1 WHERE id = ?1",
            [id.as_bytes()],
        )?;
        Ok(())
    }

    /// Where a blob is, in a pack not known to be missing.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn locate(&self, id: &ChunkId) -> rusqlite::Result<Option<(PackRef, BlobEntry)>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(LOCATE)?;
        st.query_row([id.as_bytes()], |r| Ok((pack_ref(r)?, blob_entry(r, 3)?)))
            .optional()
    }

    /// [`Self::locate`] for many blobs, in one read transaction: a lookup
    /// each outside one takes and drops SQLite's file locks every time
    /// (four system calls a chunk, a quarter of a small-file restore's
    /// planning).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn locate_all(
        &self,
        ids: &[ChunkId],
    ) -> rusqlite::Result<Vec<Option<(PackRef, BlobEntry)>>> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let mut st = tx.prepare_cached(LOCATE)?;
        let found = ids
            .iter()
            .map(|id| {
                st.query_row([id.as_bytes()], |r| Ok((pack_ref(r)?, blob_entry(r, 3)?)))
                    .optional()
            })
            .collect();
        drop(st);
        tx.finish()?;
        found
    }

    /// A pack found missing that holds the blob, if any (for messages).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn missing_home(&self, id: &ChunkId) -> rusqlite::Result<Option<PackRef>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT p.session, p.id, p.length FROM blobs b JOIN packs p ON p.n = b.pack
             WHERE b.id = ?1 AND p.missing = 1 LIMIT 1",
        )?;
        st.query_row([id.as_bytes()], pack_ref).optional()
    }

    /// Whether a blob is stored in a pack not known to be missing.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn contains(&self, id: &ChunkId) -> rusqlite::Result<bool> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(CONTAINS)?;
        st.exists([id.as_bytes()])
    }

    /// Records that a pack the index lists is not in the repository: its
    /// blobs are no longer used, neither to restore nor to deduplicate
    /// against (so the next backup stores them again).
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn mark_missing(&self, pack: &PackRef) -> rusqlite::Result<()> {
        self.set_missing(pack, true)
    }

    /// Records that a pack found missing is in the repository again: its
    /// blobs are used again.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn mark_found(&self, pack: &PackRef) -> rusqlite::Result<()> {
        self.set_missing(pack, false)
    }

    fn set_missing(&self, pack: &PackRef, missing: bool) -> rusqlite::Result<()> {
        self.conn().execute(
            "UPDATE packs SET missing = ?3 WHERE session = ?1 AND id = ?2",
            params![pack.session.as_bytes(), pack.id.as_bytes(), missing],
        )?;
        Ok(())
    }

    /// Packs recorded as missing.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn missing_packs(&self) -> rusqlite::Result<Vec<PackRef>> {
        self.packs_where(1)
    }

    /// Packs not known to be missing.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn packs(&self) -> rusqlite::Result<Vec<PackRef>> {
        self.packs_where(0)
    }

    fn packs_where(&self, missing: i64) -> rusqlite::Result<Vec<PackRef>> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT session, id, length FROM packs WHERE missing = ?1")?;
        let rows = st.query_map([missing], pack_ref)?;
        rows.collect()
    }

    /// Stores a tree blob's plaintext.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn put_tree(&self, id: &ChunkId, data: &[u8]) -> rusqlite::Result<()> {
        let conn = self.conn();
        let mut st =
            conn.prepare_cached("INSERT OR IGNORE INTO trees (id, data) VALUES (?1, ?2)")?;
        st.execute(params![id.as_bytes(), data])?;
        Ok(())
    }

    /// Stores tree blobs' plaintexts in one transaction.
    ///
    /// # Errors
    /// SQLite errors.
    pub(crate) fn put_trees(&self, trees: &[(ChunkId, bytes::Bytes)]) -> rusqlite::Result<()> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        {
            let mut st =
                tx.prepare_cached("INSERT OR IGNORE INTO trees (id, data) VALUES (?1, ?2)")?;
            for (id, data) in trees {
                st.execute(params![id.as_bytes(), data.as_ref()])?;
            }
        }
        tx.commit()
    }

    /// Whether a tree is stored.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn has_tree(&self, id: &ChunkId) -> rusqlite::Result<bool> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT 1 FROM trees WHERE id = ?1")?;
        st.exists([id.as_bytes()])
    }

    /// A tree, from the catalog alone.
    ///
    /// # Errors
    /// If it is not in the catalog, or does not decode.
    pub fn tree(&self, id: &ChunkId) -> Result<Tree> {
        self.with_tree(id, Tree::decode)?
            .with_context(|| format!("tree {id} in the catalog"))
    }

    /// A content list (format §7.4), from the catalog alone: the catalog
    /// holds a tree only with the lists its files name.
    ///
    /// # Errors
    /// If it is not in the catalog, or does not decode.
    pub fn list(&self, id: &ChunkId) -> Result<Vec<ChunkId>> {
        self.with_tree(id, cairn_repo_format::decode_list)?
            .with_context(|| format!("content list {id} in the catalog"))
    }

    /// A file's chunk ids in order, `n` at a time: those its node holds,
    /// or those of its content lists, each list read from the catalog when
    /// the groups before it are taken (so a large file's whole list is
    /// never held).
    pub fn chunk_groups<'a>(
        &'a self,
        content: &'a FileContent,
        n: usize,
    ) -> impl Iterator<Item = Result<Vec<ChunkId>>> + 'a {
        let (direct, lists): (&[ChunkId], &[ChunkId]) = match content {
            FileContent::Chunks(ids) => (ids, &[]),
            FileContent::Lists(lists) => (&[], lists),
        };
        let n = n.max(1);
        direct
            .chunks(n)
            .map(|c| Ok(c.to_vec()))
            .chain(lists.iter().flat_map(move |l| match self.list(l) {
                Ok(ids) => ids.chunks(n).map(|c| Ok(c.to_vec())).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }))
    }

    /// All of a file's chunk ids, in order (its lists read from the catalog).
    ///
    /// # Errors
    /// If a list is not in the catalog, or does not decode.
    pub fn chunks(&self, content: &FileContent) -> Result<Vec<ChunkId>> {
        match content {
            FileContent::Chunks(ids) => Ok(ids.clone()),
            FileContent::Lists(_) => {
                let mut all = Vec::new();
                for group in self.chunk_groups(content, usize::MAX) {
                    all.extend(group?);
                }
                Ok(all)
            }
        }
    }

    /// A tree's plaintext, from the catalog alone, checked against its id.
    ///
    /// # Errors
    /// If it is not in the catalog, or does not match its id.
    pub fn tree_bytes(&self, id: &ChunkId) -> Result<Vec<u8>> {
        self.with_tree(id, <[u8]>::to_vec)
    }

    /// What `f` makes of a tree's (or a content list's) plaintext, checked
    /// against its id, read where SQLite holds it: it is not copied once
    /// more before it is decoded.
    fn with_tree<T>(&self, id: &ChunkId, f: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let found: Option<Option<T>> = {
            let conn = self.conn();
            let mut st = conn.prepare_cached("SELECT data FROM trees WHERE id = ?1")?;
            st.query_row([id.as_bytes()], |r| {
                let data = r.get_ref(0)?.as_blob()?;
                // A tree is a blob: only its own plaintext hashes to its id.
                Ok((self.auth.ids.chunk_id(data) == *id).then(|| f(data)))
            })
            .optional()?
        };
        match found {
            Some(Some(v)) => Ok(v),
            Some(None) => Err(self.altered(format!(
                "the catalog's copy of tree or content list {id} does not match its id"
            ))),
            None => Err(Error::Corrupt(format!("tree or content list {id} is not in the catalog {}: the repository could not give it when the catalog was synced (see the warnings above), or the catalog was damaged (`cairn catalog rebuild` starts it again)", self.path.display()))),
        }
    }

    /// Counts of what the catalog holds: sessions, packs, blobs, snapshots, trees.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn counts(&self) -> rusqlite::Result<[i64; 5]> {
        let conn = self.conn();
        let mut out = [0; 5];
        for (slot, table) in
            out.iter_mut()
                .zip(["sessions", "packs", "blobs", "snapshots", "trees"])
        {
            *slot = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        }
        Ok(out)
    }
}

/// The catalog holds file names and sizes in plaintext: only its owner may read it.
fn restrict_mode(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if dir.file_name().is_some_and(|n| n == "cairn") {
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
}

/// Keys for catalogs in unit tests.
#[cfg(test)]
pub fn test_auth() -> Auth {
    Auth::of(&cairn_repo_format::MasterKey::generate().derive())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-chunk lookups are planned once, not again for every id bound
    /// (which cost a quarter of an unchanged tree backup's CPU).
    #[test]
    fn per_chunk_lookups_are_not_replanned() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cat = Catalog::open(&dir.path().join("catalog"), &[7; 16], test_auth())
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..50u8 {
            let id = ChunkId::from_bytes([i; 32]);
            assert!(!cat.contains(&id).unwrap_or_else(|e| panic!("{e}")));
            assert!(cat.locate(&id).unwrap_or_else(|e| panic!("{e}")).is_none());
        }
        let conn = cat.conn();
        for sql in [CONTAINS, LOCATE] {
            let st = conn.prepare_cached(sql).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                st.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }
}
