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
    pub const KNOWN_TYPES: [&'static str; 5] = ["stdin", "command", "files", "postgres", "redis"];

    /// The record's `type`.
    pub fn kind(&self) -> &str {
        match self {
            Source::Stdin { .. } => "stdin",
            Source::Command { .. } => "command",
            Source::Files { .. } => "files",
            Source::Postgres { .. } => "postgres",
            Source::Redis { .. } => "redis",
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
    /// Plaintext bytes of chunks that were new to the repository.
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
}

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
            // Only its writer knows what is valid; its tree is checked as any.
            Source::Other { kind, .. } => !kind.is_empty(),
        };
        if !ok {
            return Err(FormatError::invalid("snapshot", "invalid source"));
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
    /// Always 1.
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
}

impl Commit {
    /// Encrypts as `commits/<session>`.
    pub fn seal(&self, enc: &EncKey) -> Vec<u8> {
        seal_json(enc, COMMIT, &ObjectName::Commit(self.session).path(), self)
    }

    /// Decrypts and decodes `commits/<session>`; the session inside must match the name.
    ///
    /// # Errors
    /// [`FormatError`] if it fails authentication or is not a valid v1 commit.
    pub fn open(enc: &EncKey, session: SessionId, data: &[u8]) -> Result<Self, FormatError> {
        let c: Commit = open_json(enc, COMMIT, &ObjectName::Commit(session).path(), data)?;
        FormatError::check_version("commit", c.version, 1u32)?;
        if c.session != session {
            return Err(FormatError::invalid(
                "commit",
                "session does not match its name",
            ));
        }
        Ok(c)
    }
}

/// A session's liveness announcement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// Always 1.
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
}

impl Lease {
    /// Encrypts as `leases/<session>` (a fresh salt each time).
    pub fn seal(&self, enc: &EncKey) -> Vec<u8> {
        seal_json(enc, LEASE, &ObjectName::Lease(self.session).path(), self)
    }

    /// Decrypts and decodes `leases/<session>`.
    ///
    /// # Errors
    /// [`FormatError`] if it fails authentication or is not a valid v1 lease.
    pub fn open(enc: &EncKey, session: SessionId, data: &[u8]) -> Result<Self, FormatError> {
        let l: Lease = open_json(enc, LEASE, &ObjectName::Lease(session).path(), data)?;
        FormatError::check_version("lease", l.version, 1u32)?;
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
        ] {
            let s = snap(src);
            let id = SnapshotId::random();
            assert_eq!(Snapshot::open(&enc, id, &s.seal(&enc, id))?, s);
            assert!(Snapshot::open(&enc, SnapshotId::random(), &s.seal(&enc, id)).is_err());
        }
        let c = Commit {
            version: 1,
            session: SessionId::random(),
            hostname: "h".into(),
            started_ns: 1,
            finished_ns: 2,
            index: vec![IndexId::random()],
            snapshots: vec![],
            packs: 1,
        };
        assert_eq!(Commit::open(&enc, c.session, &c.seal(&enc))?, c);
        let l = Lease {
            version: 1,
            session: SessionId::random(),
            hostname: "h".into(),
            pid: 1,
            started_ns: 1,
            renewed_ns: 1,
            generation: 0,
        };
        assert_eq!(Lease::open(&enc, l.session, &l.seal(&enc))?, l);
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
