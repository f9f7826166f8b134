//! Object names (format §1): the only way objects are addressed.

use crate::ids::{AuditId, IndexId, KeyId, PackId, PlanId, SessionId, SnapshotId};

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
    /// `gc/state`
    GcState,
    /// `gc/plans/<plan id>`
    Plan,
    /// `gc/deletions/<plan id>`
    Deletions,
    /// `audit/<audit id>`
    Audit,
}

impl ObjectKind {
    /// All kinds.
    pub const ALL: [ObjectKind; 11] = [
        ObjectKind::Config,
        ObjectKind::Key,
        ObjectKind::Lease,
        ObjectKind::Commit,
        ObjectKind::Pack,
        ObjectKind::Index,
        ObjectKind::Snapshot,
        ObjectKind::GcState,
        ObjectKind::Plan,
        ObjectKind::Deletions,
        ObjectKind::Audit,
    ];

    /// Whether the kind has exactly one object, named by its prefix
    /// (`config`, `gc/state`).
    pub fn is_single(self) -> bool {
        matches!(self, ObjectKind::Config | ObjectKind::GcState)
    }

    /// How many `/`-separated levels follow the prefix in a name (0 for a
    /// single object).
    pub fn depth(self) -> usize {
        match self {
            ObjectKind::Config | ObjectKind::GcState => 0,
            ObjectKind::Pack | ObjectKind::Index => 2,
            _ => 1,
        }
    }

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
            ObjectKind::GcState => "gc/state",
            ObjectKind::Plan => "gc/plans",
            ObjectKind::Deletions => "gc/deletions",
            ObjectKind::Audit => "audit",
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
    /// The collector's state.
    GcState,
    /// A collection's condemned packs.
    Plan(PlanId),
    /// A collection's deletion set.
    Deletions(PlanId),
    /// An audit record.
    Audit(AuditId),
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
            ObjectName::GcState => ObjectKind::GcState,
            ObjectName::Plan(_) => ObjectKind::Plan,
            ObjectName::Deletions(_) => ObjectKind::Deletions,
            ObjectName::Audit(_) => ObjectKind::Audit,
        }
    }

    /// The object's path inside the repository, e.g. `packs/<sid>/<pid>`.
    pub fn path(&self) -> String {
        let p = self.kind().prefix();
        match self {
            ObjectName::Config | ObjectName::GcState => p.to_owned(),
            ObjectName::Plan(id) | ObjectName::Deletions(id) => format!("{p}/{id}"),
            ObjectName::Key(id) => format!("{p}/{id}"),
            ObjectName::Lease(id) | ObjectName::Commit(id) => format!("{p}/{id}"),
            ObjectName::Snapshot(id) => format!("{p}/{id}"),
            ObjectName::Audit(id) => format!("{p}/{id}"),
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
            ["gc", "state"] => Some(ObjectName::GcState),
            ["gc", "plans", id] => PlanId::from_hex(id).ok().map(ObjectName::Plan),
            ["gc", "deletions", id] => PlanId::from_hex(id).ok().map(ObjectName::Deletions),
            ["keys", id] => KeyId::from_hex(id).ok().map(ObjectName::Key),
            ["leases", id] => SessionId::from_hex(id).ok().map(ObjectName::Lease),
            ["commits", id] => SessionId::from_hex(id).ok().map(ObjectName::Commit),
            ["snapshots", id] => SnapshotId::from_hex(id).ok().map(ObjectName::Snapshot),
            ["audit", id] => AuditId::from_hex(id).ok().map(ObjectName::Audit),
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
            ObjectName::Audit(AuditId::random()),
            ObjectName::GcState,
            ObjectName::Plan(PlanId::random()),
            ObjectName::Deletions(PlanId::random()),
        ];
        for n in names {
            assert_eq!(ObjectName::parse(&n.path()), Some(n));
            assert!(n.path().starts_with(n.kind().prefix()));
            assert_eq!(
                n.path().matches('/').count(),
                n.kind().depth() + n.kind().prefix().matches('/').count()
            );
        }
        assert_eq!(ObjectName::parse("packs/xyz"), None);
        assert_eq!(ObjectName::parse("keys/.tmp-123"), None);
        assert_eq!(ObjectName::parse(""), None);
    }
}
