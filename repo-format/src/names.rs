//! Object names (format §1): the only way objects are addressed.

use crate::ids::{IndexId, KeyId, PackId, SessionId, SnapshotId};

/// The kinds of object a repository holds; each lives under its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// `config`
    Config,
    /// `keys/<key id>`
    Key,
    /// `leases/<session id>`
    Lease,
    /// `commits/<session id>`
    Commit,
    /// `packs/<session id>/<pack id>`
    Pack,
    /// `index/<session id>/<index id>`
    Index,
    /// `snapshots/<snapshot id>`
    Snapshot,
}

impl ObjectKind {
    /// All kinds, in the order `init` creates their directories.
    pub const ALL: [ObjectKind; 7] = [
        ObjectKind::Config,
        ObjectKind::Key,
        ObjectKind::Lease,
        ObjectKind::Commit,
        ObjectKind::Pack,
        ObjectKind::Index,
        ObjectKind::Snapshot,
    ];

    /// The prefix (directory) of this kind, without a trailing slash; `config`
    /// is its own name.
    pub fn prefix(self) -> &'static str {
        match self {
            ObjectKind::Config => "config",
            ObjectKind::Key => "keys",
            ObjectKind::Lease => "leases",
            ObjectKind::Commit => "commits",
            ObjectKind::Pack => "packs",
            ObjectKind::Index => "index",
            ObjectKind::Snapshot => "snapshots",
        }
    }
}

/// The name of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectName {
    /// The repository config.
    Config,
    /// A key file.
    Key(KeyId),
    /// A session's lease.
    Lease(SessionId),
    /// A session's commit.
    Commit(SessionId),
    /// A pack of a session.
    Pack(SessionId, PackId),
    /// An index file of a session.
    Index(SessionId, IndexId),
    /// A snapshot.
    Snapshot(SnapshotId),
}

impl ObjectName {
    /// The kind of object.
    pub fn kind(&self) -> ObjectKind {
        match self {
            ObjectName::Config => ObjectKind::Config,
            ObjectName::Key(_) => ObjectKind::Key,
            ObjectName::Lease(_) => ObjectKind::Lease,
            ObjectName::Commit(_) => ObjectKind::Commit,
            ObjectName::Pack(..) => ObjectKind::Pack,
            ObjectName::Index(..) => ObjectKind::Index,
            ObjectName::Snapshot(_) => ObjectKind::Snapshot,
        }
    }

    /// The object's path inside the repository, e.g. `packs/<sid>/<pid>`.
    pub fn path(&self) -> String {
        let p = self.kind().prefix();
        match self {
            ObjectName::Config => p.to_owned(),
            ObjectName::Key(id) => format!("{p}/{id}"),
            ObjectName::Lease(id) | ObjectName::Commit(id) => format!("{p}/{id}"),
            ObjectName::Snapshot(id) => format!("{p}/{id}"),
            ObjectName::Pack(s, id) => format!("{p}/{s}/{id}"),
            ObjectName::Index(s, id) => format!("{p}/{s}/{id}"),
        }
    }

    /// Parses a path produced by [`ObjectName::path`]; `None` for anything else
    /// (a stray file in a local repository, a temp file, …).
    pub fn parse(path: &str) -> Option<ObjectName> {
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["config"] => Some(ObjectName::Config),
            ["keys", id] => KeyId::from_hex(id).ok().map(ObjectName::Key),
            ["leases", id] => SessionId::from_hex(id).ok().map(ObjectName::Lease),
            ["commits", id] => SessionId::from_hex(id).ok().map(ObjectName::Commit),
            ["snapshots", id] => SnapshotId::from_hex(id).ok().map(ObjectName::Snapshot),
            ["packs", s, id] => Some(ObjectName::Pack(
                SessionId::from_hex(s).ok()?,
                PackId::from_hex(id).ok()?,
            )),
            ["index", s, id] => Some(ObjectName::Index(
                SessionId::from_hex(s).ok()?,
                IndexId::from_hex(id).ok()?,
            )),
            _ => None,
        }
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let s = SessionId::random();
        let names = [
            ObjectName::Config,
            ObjectName::Key(KeyId::random()),
            ObjectName::Lease(s),
            ObjectName::Commit(s),
            ObjectName::Pack(s, PackId::random()),
            ObjectName::Index(s, IndexId::random()),
            ObjectName::Snapshot(SnapshotId::random()),
        ];
        for n in names {
            assert_eq!(ObjectName::parse(&n.path()), Some(n));
            assert!(n.path().starts_with(n.kind().prefix()));
        }
        assert_eq!(ObjectName::parse("packs/xyz"), None);
        assert_eq!(ObjectName::parse("keys/.tmp-123"), None);
        assert_eq!(ObjectName::parse(""), None);
    }
}
