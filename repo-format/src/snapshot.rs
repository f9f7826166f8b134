//! Snapshots (format §7.1) and session objects: commits and leases (§8).

use crate::crypto::EncKey;
use crate::error::FormatError;
use crate::ids::{chunk_hex, ChunkId, IndexId, SessionId, SnapshotId};
use crate::names::ObjectName;
use crate::sealed::{open_json, seal_json, COMMIT, LEASE, SNAPSHOT};

/// What was backed up.
///
/// A source record whose `type` this reader does not know (written by a
/// newer release, with a source kind added since) decodes as
/// [`Source::Other`], kept whole, so the snapshot stays listed and its tree
/// restorable (format §7.1). A known type with a field this reader does not
/// know is invalid: a writer that changes a kind's record gives it a new type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
// The derives become `Source::serialize` and `Source::deserialize`; the
// trait impls below wrap them to let unknown types through.
#[serde(remote = "Self")]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// Standard input, stored as one file called `name`.
    Stdin {
        /// The file name of the stream.
        name: String,
    },
    /// A command's standard output, stored as one file called `name`.
    Command {
        /// The file name of the stream.
        name: String,
        /// The command line.
        argv: Vec<String>,
    },
    /// File trees.
    Files {
        /// The absolute paths given.
        paths: Vec<String>,
    },
    /// A PostgreSQL database through pg_dump (and pg_dumpall for globals).
    Postgres {
        /// The database's name (never a connection string).
        dbname: String,
        /// The server's version.
        server_version: String,
        /// pg_dump's version.
        pg_dump_version: String,
        /// `custom` or `plain`.
        format: String,
        /// Whether `globals.sql` holds roles and tablespaces.
        globals: bool,
    },
    /// A Redis server's RDB snapshot, fetched over the replication protocol.
    Redis {
        /// `host:port` (never credentials).
        address: String,
        /// The server's version.
        redis_version: String,
        /// The RDB format version.
        rdb_version: u32,
    },
    /// A Kubernetes PersistentVolumeClaim, stored as one directory named
    /// after the claim.
    Pvc {
        /// The claim's namespace.
        namespace: String,
        /// The claim's name.
        claim: String,
        /// The pod it was read through (may be empty).
        pod: String,
    },
    /// A source kind this reader does not know: its `type` and the whole
    /// record as written, `type` included.
    #[serde(skip)]
    Other {
        /// The record's `type`.
        kind: String,
        /// The record.
        record: serde_json::Map<String, serde_json::Value>,
    },
}

impl Source {
    /// The `type` of every source record this reader knows.
    pub const KNOWN_TYPES: [&'static str; 6] =
        ["stdin", "command", "files", "postgres", "redis", "pvc"];

    /// The record's `type`.
    pub fn kind(&self) -> &str {
        match self {
            Source::Stdin { .. } => "stdin",
            Source::Command { .. } => "command",
            Source::Files { .. } => "files",
            Source::Postgres { .. } => "postgres",
            Source::Redis { .. } => "redis",
            Source::Pvc { .. } => "pvc",
            Source::Other { kind, .. } => kind,
        }
    }
}

impl serde::Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Source::Other { record, .. } => record.serialize(s),
            known => Source::serialize(known, s),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let record = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let kind = match record.get("type") {
            Some(serde_json::Value::String(k)) => k.clone(),
            _ => return Err(D::Error::custom("a source record needs a string \"type\"")),
        };
        if Source::KNOWN_TYPES.contains(&kind.as_str()) {
            Source::deserialize(serde_json::Value::Object(record)).map_err(D::Error::custom)
        } else {
            Ok(Source::Other { kind, record })
        }
    }
}

/// Counters of a backup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Plaintext bytes of data chunks (content, not trees) that were new
    /// to the repository.
    pub new_bytes: u64,
    /// Bytes of new packs written (after compression, encryption, padding).
    pub stored_bytes: u64,
    /// New chunks.
    pub new_chunks: u64,
    /// All chunks of the source.
    pub total_chunks: u64,
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Packs written.
    pub packs: u64,
    /// Entries that could not be read.
    pub errors: u64,
}

/// One backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Always 1.
    pub version: u32,
    /// The session that wrote it.
    pub session: SessionId,
    /// Start time, ns since the epoch.
    pub time_ns: i64,
    /// End time, ns since the epoch.
    pub finished_ns: i64,
    /// Host.
    pub hostname: String,
    /// User.
    pub username: String,
    /// The source.
    pub source: Source,
    /// The root tree.
    #[serde(with = "chunk_hex")]
    pub tree: ChunkId,
    /// Whether some entries could not be read.
    pub partial: bool,
    /// Counters.
    pub summary: Summary,
    /// Labels given at backup (`--tag`), for retention rules and filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// For a copy (`cairn copy`): the original snapshot, the one a backup
    /// wrote (a copy of a copy names its source's original).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_of: Option<Origin>,
    /// What the source held when the backup read it, for restore drills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
}

/// What a source held when a backup read it (format §7.1), for a restore
/// drill to compare with what a restore holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// A PostgreSQL database's tables and their rows, sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<TableRows>>,
    /// A Redis server's keys per database, sorted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<DbKeys>>,
}

/// One Redis database's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbKeys {
    /// The database's number.
    pub db: u32,
    /// Its keys.
    pub keys: u64,
}

/// One table's exact row count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRows {
    /// Its schema, unquoted.
    pub schema: String,
    /// Its name, unquoted.
    pub table: String,
    /// Its rows.
    pub rows: u64,
}

impl TableRows {
    /// `"schema"."table"`, quoted for SQL (inner quotes doubled).
    pub fn qualified(&self) -> String {
        let quote = |n: &str| format!("\"{}\"", n.replace('"', "\"\""));
        format!("{}.{}", quote(&self.schema), quote(&self.table))
    }
}

/// The original of a copied snapshot (format §7.1): a snapshot of a
/// repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// The repository's id (its config's `repository_id`).
    #[serde(with = "repository_hex")]
    pub repository: [u8; 16],
    /// The snapshot.
    pub snapshot: SnapshotId,
}

/// A repository id as 32 hex digits.
mod repository_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(id: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(id))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 16];
        hex::decode_to_slice(&text, &mut out)
            .map_err(|_| serde::de::Error::custom("a repository id is 32 hex digits"))?;
        Ok(out)
    }
}

impl Snapshot {
    /// The original this snapshot is, or is a copy of, when it is stored
    /// in the repository `repository`.
    pub fn origin(&self, repository: [u8; 16], id: SnapshotId) -> Origin {
        self.copy_of.unwrap_or(Origin {
            repository,
            snapshot: id,
        })
    }
}

/// Whether `tag` can be a snapshot's tag (format §7.1).
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= MAX_TAG_LEN && !tag.chars().any(|c| c.is_control() || c == ',')
}

/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 255;
/// Most tags a snapshot has.
pub const MAX_TAGS: usize = 64;

impl Snapshot {
    /// Encrypts as `snapshots/<id>`.
    pub fn seal(&self, enc: &EncKey, id: SnapshotId) -> Vec<u8> {
        seal_json(enc, SNAPSHOT, &ObjectName::Snapshot(id).path(), self)
    }

    /// Decrypts and decodes `snapshots/<id>`.
    ///
    /// # Errors
    /// [`FormatError`] if it fails authentication or is not a valid v1 snapshot.
    pub fn open(enc: &EncKey, id: SnapshotId, data: &[u8]) -> Result<Self, FormatError> {
        let s: Snapshot = open_json(enc, SNAPSHOT, &ObjectName::Snapshot(id).path(), data)?;
        s.check()?;
        Ok(s)
    }

    /// Decodes a snapshot payload (exposed for fuzzing).
    ///
    /// # Errors
    /// [`FormatError`] if it is not a valid v1 snapshot.
    pub fn decode_payload(data: &[u8]) -> Result<Self, FormatError> {
        let s: Snapshot = crate::sealed::decode_json("snapshot", data)?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), FormatError> {
        FormatError::check_version("snapshot", self.version, 1u32)?;
        let ok = match &self.source {
            Source::Stdin { name } => valid_stream_name(name),
            Source::Command { name, argv } => valid_stream_name(name) && !argv.is_empty(),
            Source::Files { paths } => {
                !paths.is_empty() && paths.iter().all(|p| p.starts_with('/'))
            }
            Source::Postgres { dbname, format, .. } => {
                !dbname.is_empty() && (format == "custom" || format == "plain")
            }
            Source::Redis { address, .. } => !address.is_empty() && !address.contains('@'),
            Source::Pvc {
                namespace, claim, ..
            } => [namespace, claim]
                .iter()
                .all(|n| !n.is_empty() && !n.contains('/')),
            // Only its writer knows what is valid; its tree is checked as any.
            Source::Other { kind, .. } => !kind.is_empty(),
        };
        if !ok {
            return Err(FormatError::invalid("snapshot", "invalid source"));
        }
        let mut sorted = self.tags.iter().collect::<Vec<_>>();
        sorted.sort();
        sorted.dedup();
        if self.tags.len() > MAX_TAGS
            || sorted.len() != self.tags.len()
            || !self.tags.iter().all(|t| valid_tag(t))
        {
            return Err(FormatError::invalid("snapshot", "invalid tags"));
        }
        if let Some(counts) = &self.counts {
            let tables = counts.tables.as_ref().is_none_or(|t| {
                matches!(self.source, Source::Postgres { .. })
                    && t.windows(2)
                        .all(|w| (&w[0].schema, &w[0].table) < (&w[1].schema, &w[1].table))
            });
            let keys = counts.keys.as_ref().is_none_or(|k| {
                matches!(self.source, Source::Redis { .. })
                    && k.windows(2).all(|w| w[0].db < w[1].db)
            });
            let ok = tables && keys;
            if !ok {
                return Err(FormatError::invalid("snapshot", "invalid counts"));
            }
        }
        Ok(())
    }
}

/// Whether `name` can name a stream's single file.
pub fn valid_stream_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// A session's commit: it finished, and these are its index files and snapshots.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    /// 1 or 2. [`Commit::seal`] writes the lowest version that holds the
    /// commit (1 unless one of the fields added in 2 is used), whatever
    /// this says.
    pub version: u32,
    /// The session.
    pub session: SessionId,
    /// Host.
    pub hostname: String,
    /// Session start, ns since the epoch.
    pub started_ns: i64,
    /// Session end, ns since the epoch.
    pub finished_ns: i64,
    /// Its index files.
    pub index: Vec<IndexId>,
    /// Its snapshots.
    pub snapshots: Vec<SnapshotId>,
    /// How many packs it wrote.
    pub packs: u64,
    /// Snapshots of other sessions that no longer count (version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forgets: Vec<SnapshotId>,
    /// Sessions whose index files this commit's replace (version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<SessionId>,
    /// Set on a tombstone: the collector's session that fenced this one
    /// (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_by: Option<SessionId>,
}

impl Commit {
    /// A commit of `session` with nothing in it, finished now-ish: the
    /// caller fills in what it lists.
    pub fn empty(session: SessionId, hostname: String, started_ns: i64, finished_ns: i64) -> Self {
        Self {
            version: 1,
            session,
            hostname,
            started_ns,
            finished_ns,
            index: Vec::new(),
            snapshots: Vec::new(),
            packs: 0,
            forgets: Vec::new(),
            supersedes: Vec::new(),
            fenced_by: None,
        }
    }

    /// Whether this is a tombstone: the session was fenced and never
    /// completes.
    pub fn is_tombstone(&self) -> bool {
        self.fenced_by.is_some()
    }

    fn needed_version(&self) -> u32 {
        if self.forgets.is_empty() && self.supersedes.is_empty() && self.fenced_by.is_none() {
            1
        } else {
            2
        }
    }

    /// Encrypts as `commits/<session>`.
    pub fn seal(&self, enc: &EncKey) -> Vec<u8> {
        let commit = Commit {
            version: self.needed_version(),
            ..self.clone()
        };
        seal_json(
            enc,
            COMMIT,
            &ObjectName::Commit(self.session).path(),
            &commit,
        )
    }

    /// Decrypts and decodes `commits/<session>`; the session inside must match the name.
    ///
    /// # Errors
    /// [`FormatError`] if it fails authentication or is not a valid commit.
    pub fn open(enc: &EncKey, session: SessionId, data: &[u8]) -> Result<Self, FormatError> {
        let c: Commit = open_json(enc, COMMIT, &ObjectName::Commit(session).path(), data)?;
        if c.version != 2 {
            FormatError::check_version("commit", c.version, 1u32)?;
        }
        if c.version < c.needed_version() {
            return Err(FormatError::invalid(
                "commit",
                "a version 1 commit has a field of version 2",
            ));
        }
        if c.session != session {
            return Err(FormatError::invalid(
                "commit",
                "session does not match its name",
            ));
        }
        if c.is_tombstone()
            && (c.packs != 0
                || !c.index.is_empty()
                || !c.snapshots.is_empty()
                || !c.forgets.is_empty()
                || !c.supersedes.is_empty())
        {
            return Err(FormatError::invalid(
                "commit",
                "a tombstone lists packs, index files, snapshots, forgets or supersedes",
            ));
        }
        Ok(c)
    }
}

/// A session's liveness announcement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// 1 (no `ttl_s`) or 2.
    pub version: u32,
    /// The session.
    pub session: SessionId,
    /// Host.
    pub hostname: String,
    /// Process id of the writer.
    pub pid: u32,
    /// Session start.
    pub started_ns: i64,
    /// Last renewal.
    pub renewed_ns: i64,
    /// Renewal count.
    pub generation: u64,
    /// Seconds after its last write (by the storage's clock) that the
    /// lease may be taken for dead (version 2; version 1 means
    /// [`Lease::V1_TTL_S`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u32>,
}

impl Lease {
    /// Encrypts as `leases/<session>` (a fresh salt each time).
    pub fn seal(&self, enc: &EncKey) -> Vec<u8> {
        seal_json(enc, LEASE, &ObjectName::Lease(self.session).path(), self)
    }

    /// What a version 1 lease (without `ttl_s`) means.
    pub const V1_TTL_S: u32 = 900;
    /// The bounds of `ttl_s`.
    pub const TTL_S: std::ops::RangeInclusive<u32> = 4..=86_400;

    /// Seconds after its last write that the lease may be taken for dead.
    pub fn ttl_s(&self) -> u32 {
        self.ttl_s.unwrap_or(Self::V1_TTL_S)
    }

    /// Decrypts and decodes `leases/<session>`.
    ///
    /// # Errors
    /// [`FormatError`] if it fails authentication or is not a valid lease.
    pub fn open(enc: &EncKey, session: SessionId, data: &[u8]) -> Result<Self, FormatError> {
        let l: Lease = open_json(enc, LEASE, &ObjectName::Lease(session).path(), data)?;
        match (l.version, l.ttl_s) {
            (1, None) => {}
            (2, Some(t)) if Self::TTL_S.contains(&t) => {}
            (2, Some(t)) => return Err(FormatError::range("lease", "ttl_s", u64::from(t))),
            (2, None) => return Err(FormatError::invalid("lease", "version 2 without ttl_s")),
            (1, Some(_)) => return Err(FormatError::invalid("lease", "version 1 with ttl_s")),
            (v, _) => FormatError::check_version("lease", v, 2u32)?,
        }
        if l.session != session {
            return Err(FormatError::invalid(
                "lease",
                "session does not match its name",
            ));
        }
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    fn snap(source: Source) -> Snapshot {
        Snapshot {
            version: 1,
            session: SessionId::random(),
            time_ns: 1,
            finished_ns: 2,
            hostname: "h".into(),
            username: "u".into(),
            source,
            tree: ChunkId::from_bytes([1; 32]),
            partial: false,
            summary: Summary {
                bytes_read: 5,
                ..Summary::default()
            },
            tags: Vec::new(),
            copy_of: None,
            counts: None,
        }
    }

    #[test]
    fn a_copy_names_its_original() -> Result<(), FormatError> {
        let enc = MasterKey::generate().derive().enc;
        let id = SnapshotId::random();
        let mut s = snap(Source::Stdin { name: "x".into() });
        assert_eq!(s.origin([7; 16], id).snapshot, id);
        let original = Origin {
            repository: [9; 16],
            snapshot: SnapshotId::random(),
        };
        s.copy_of = Some(original);
        assert_eq!(Snapshot::open(&enc, id, &s.seal(&enc, id))?, s);
        assert_eq!(s.origin([7; 16], id), original);
        let json =
            String::from_utf8(serde_json::to_vec(&s).unwrap_or_default()).unwrap_or_default();
        assert!(
            json.contains(
                r#""copy_of":{"repository":"09090909090909090909090909090909","snapshot":""#
            ),
            "{json}"
        );
        let bad = json.replace("09090909090909090909090909090909", "0909");
        assert!(Snapshot::decode_payload(bad.as_bytes()).is_err());
        Ok(())
    }

    #[test]
    fn row_counts_belong_to_postgres_and_are_sorted() -> Result<(), FormatError> {
        let enc = MasterKey::generate().derive().enc;
        let id = SnapshotId::random();
        let row = |schema: &str, table: &str, rows| TableRows {
            schema: schema.into(),
            table: table.into(),
            rows,
        };
        let mut s = snap(Source::Postgres {
            dbname: "app".into(),
            server_version: "15".into(),
            pg_dump_version: "15".into(),
            format: "custom".into(),
            globals: false,
        });
        s.counts = Some(Counts {
            tables: Some(vec![row("app", "Z", 1), row("public", "a", 0)]),
            keys: None,
        });
        assert_eq!(Snapshot::open(&enc, id, &s.seal(&enc, id))?, s);
        assert_eq!(row("my \"s\"", "t", 0).qualified(), r#""my ""s"""."t""#);
        // Out of order, twice, or on another kind of source: refused.
        for (source, tables) in [
            (
                s.source.clone(),
                vec![row("public", "a", 0), row("app", "Z", 1)],
            ),
            (
                s.source.clone(),
                vec![row("app", "Z", 1), row("app", "Z", 1)],
            ),
            (Source::Stdin { name: "x".into() }, vec![row("app", "Z", 1)]),
        ] {
            let mut bad = s.clone();
            bad.source = source;
            bad.counts = Some(Counts {
                tables: Some(tables),
                keys: None,
            });
            assert!(Snapshot::open(&enc, id, &bad.seal(&enc, id)).is_err());
        }
        let json =
            String::from_utf8(serde_json::to_vec(&s).unwrap_or_default()).unwrap_or_default();
        let unknown = json.replace(r#""counts":{"#, r#""counts":{"rows":[],"#);
        assert!(Snapshot::decode_payload(unknown.as_bytes()).is_err());
        // Keys belong to Redis, databases in order.
        let keys = |dbs: &[u32]| Counts {
            tables: None,
            keys: Some(dbs.iter().map(|db| DbKeys { db: *db, keys: 1 }).collect()),
        };
        let mut r = snap(Source::Redis {
            address: "h:6379".into(),
            redis_version: "7".into(),
            rdb_version: 10,
        });
        r.counts = Some(keys(&[0, 3]));
        assert_eq!(Snapshot::open(&enc, id, &r.seal(&enc, id))?, r);
        r.counts = Some(keys(&[3, 0]));
        assert!(Snapshot::open(&enc, id, &r.seal(&enc, id)).is_err());
        s.counts = Some(keys(&[0]));
        assert!(Snapshot::open(&enc, id, &s.seal(&enc, id)).is_err());
        Ok(())
    }

    #[test]
    fn tags_are_checked() -> Result<(), FormatError> {
        let enc = MasterKey::generate().derive().enc;
        let id = SnapshotId::random();
        let mut s = snap(Source::Stdin { name: "x".into() });
        s.tags = vec!["nightly".into(), "db".into()];
        assert_eq!(Snapshot::open(&enc, id, &s.seal(&enc, id))?, s);
        for bad in [
            vec!["a".into(), "a".into()],
            vec![String::new()],
            vec!["a,b".into()],
        ] {
            s.tags = bad;
            assert!(Snapshot::open(&enc, id, &s.seal(&enc, id)).is_err());
        }
        Ok(())
    }

    #[test]
    fn a_claim_needs_a_namespace_and_a_name_without_slash() {
        let enc = MasterKey::generate().derive().enc;
        for (namespace, claim) in [("", "data"), ("shop", ""), ("shop", "a/b"), ("a/b", "data")] {
            let s = snap(Source::Pvc {
                namespace: namespace.into(),
                claim: claim.into(),
                pod: String::new(),
            });
            let id = SnapshotId::random();
            assert!(
                Snapshot::open(&enc, id, &s.seal(&enc, id)).is_err(),
                "{namespace}/{claim}"
            );
        }
    }

    #[test]
    fn round_trips() -> Result<(), FormatError> {
        let enc = MasterKey::generate().derive().enc;
        for src in [
            Source::Stdin {
                name: "stdin".into(),
            },
            Source::Command {
                name: "db.dump".into(),
                argv: vec!["pg_dump".into()],
            },
            Source::Files {
                paths: vec!["/srv".into()],
            },
            Source::Postgres {
                dbname: "app".into(),
                server_version: "15.18".into(),
                pg_dump_version: "15.18".into(),
                format: "custom".into(),
                globals: true,
            },
            Source::Redis {
                address: "127.0.0.1:6379".into(),
                redis_version: "7.0.15".into(),
                rdb_version: 10,
            },
            Source::Pvc {
                namespace: "shop".into(),
                claim: "data-pg-0".into(),
                pod: "pg-0".into(),
            },
        ] {
            let s = snap(src);
            let id = SnapshotId::random();
            assert_eq!(Snapshot::open(&enc, id, &s.seal(&enc, id))?, s);
            assert!(Snapshot::open(&enc, SnapshotId::random(), &s.seal(&enc, id)).is_err());
        }
        let mut c = Commit::empty(SessionId::random(), "h".into(), 1, 2);
        c.index = vec![IndexId::random()];
        c.packs = 1;
        assert_eq!(Commit::open(&enc, c.session, &c.seal(&enc))?, c);
        // The fields of version 2 make a version 2 commit.
        let mut f = Commit::empty(SessionId::random(), "h".into(), 1, 2);
        f.forgets = vec![SnapshotId::random()];
        f.supersedes = vec![SessionId::random()];
        let opened = Commit::open(&enc, f.session, &f.seal(&enc))?;
        assert_eq!(opened.version, 2);
        assert_eq!(
            (opened.forgets, opened.supersedes),
            (f.forgets, f.supersedes)
        );
        let mut t = Commit::empty(SessionId::random(), "h".into(), 1, 2);
        t.fenced_by = Some(SessionId::random());
        assert!(Commit::open(&enc, t.session, &t.seal(&enc))?.is_tombstone());
        t.snapshots = vec![SnapshotId::random()];
        assert!(Commit::open(&enc, t.session, &t.seal(&enc)).is_err());
        let mut l = Lease {
            version: 1,
            session: SessionId::random(),
            hostname: "h".into(),
            pid: 1,
            started_ns: 1,
            renewed_ns: 1,
            generation: 0,
            ttl_s: None,
        };
        assert_eq!(Lease::open(&enc, l.session, &l.seal(&enc))?, l);
        assert_eq!(l.ttl_s(), Lease::V1_TTL_S);
        l.ttl_s = Some(120);
        assert!(Lease::open(&enc, l.session, &l.seal(&enc)).is_err());
        l.version = 2;
        assert_eq!(Lease::open(&enc, l.session, &l.seal(&enc))?.ttl_s(), 120);
        l.ttl_s = Some(3);
        assert!(Lease::open(&enc, l.session, &l.seal(&enc)).is_err());
        Ok(())
    }

    #[test]
    fn a_version_1_commit_with_version_2_fields_is_refused() -> Result<(), FormatError> {
        let enc = MasterKey::generate().derive().enc;
        let mut c = Commit::empty(SessionId::random(), "h".into(), 1, 2);
        c.forgets = vec![SnapshotId::random()];
        // Sealed by hand as version 1.
        let sealed = seal_json(&enc, COMMIT, &ObjectName::Commit(c.session).path(), &c);
        assert!(Commit::open(&enc, c.session, &sealed).is_err());
        Ok(())
    }

    #[test]
    fn strict_decoding() {
        let good =
            serde_json::to_string(&snap(Source::Stdin { name: "x".into() })).unwrap_or_default();
        assert!(Snapshot::decode_payload(good.as_bytes()).is_ok());
        for bad in [
            good.replace("\"partial\"", "\"extra\":0,\"partial\""),
            good.replace("\"version\":1", "\"version\":9"),
            good.replace("\"name\":\"x\"", "\"name\":\"a/b\""),
            good.replace(
                "\"stdin\",\"name\":\"x\"",
                "\"stdin\",\"name\":\"x\",\"new\":1",
            ),
            good.replace("\"type\":\"stdin\"", "\"type\":7"),
            good.replace("\"type\":\"stdin\",", ""),
            good.replace("\"type\":\"stdin\"", "\"type\":\"\""),
        ] {
            assert!(Snapshot::decode_payload(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unknown_source_type_is_kept_whole() -> Result<(), FormatError> {
        let good =
            serde_json::to_string(&snap(Source::Stdin { name: "x".into() })).unwrap_or_default();
        let newer = good.replace(
            "{\"type\":\"stdin\",\"name\":\"x\"}",
            "{\"type\":\"mysql\",\"database\":\"shop\",\"gtid\":[1,2]}",
        );
        assert_ne!(newer, good);
        let s = Snapshot::decode_payload(newer.as_bytes())?;
        assert_eq!(s.source.kind(), "mysql");
        let Source::Other { record, .. } = &s.source else {
            panic!("{:?}", s.source);
        };
        assert_eq!(record["database"], "shop");
        // Written again (a copy to another repository), it is the same record.
        let again = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(Snapshot::decode_payload(again.as_bytes())?, s);
        assert!(again.contains("\"gtid\":[1,2]"), "{again}");
        for t in Source::KNOWN_TYPES {
            assert!(
                Snapshot::decode_payload(good.replace("\"stdin\"", &format!("\"{t}\"")).as_bytes())
                    .map_or(true, |s| s.source.kind() == t),
                "{t}"
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Snapshot::decode_payload(&data);
        }
    }
}
