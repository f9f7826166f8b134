//! Which snapshots a command looks at: by host, tags, paths, Kubernetes
//! claim and source kind (`--host`, `--tag`, `--path`, `--claim`,
//! `--source-kind`), and a SNAPSHOT
//! argument (`latest` or an id prefix) resolved within them.

use crate::catalog::Listed;
use crate::error::{input, Error, Result};
use cairn_repo_format::{Snapshot, Source};

/// Snapshots a command considers. Each list left empty lets every
/// snapshot through; hosts, paths and kinds match any one of theirs, tags
/// must all be present.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotFilter {
    /// Taken on one of these hosts.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Carrying every one of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// File-tree snapshots holding every one of these paths (absolute, as
    /// stored; a relative path is taken from the current directory).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Of one of these source kinds (`files`, `postgres` or `pg`, `redis`,
    /// `pvc`, `command`, `stdin`).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Of one of these Kubernetes claims: `NAMESPACE/NAME`, or `NAME` in
    /// any namespace.
    #[serde(default)]
    pub claims: Vec<String>,
}

/// The source kinds a filter can name, with their aliases.
const KINDS: [(&str, &str); 7] = [
    ("files", "files"),
    ("pvc", "pvc"),
    ("postgres", "postgres"),
    ("pg", "postgres"),
    ("redis", "redis"),
    ("command", "command"),
    ("stdin", "stdin"),
];

impl SnapshotFilter {
    /// Whether nothing is filtered.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
            && self.tags.is_empty()
            && self.paths.is_empty()
            && self.kinds.is_empty()
            && self.claims.is_empty()
    }

    /// The filter with its paths made absolute and its kinds checked.
    ///
    /// # Errors
    /// [`Error::Input`] for a kind that does not exist, or a path that
    /// cannot be made absolute.
    pub fn normalized(&self) -> Result<SnapshotFilter> {
        let mut kinds = Vec::new();
        for k in &self.kinds {
            let Some((_, kind)) = KINDS.iter().find(|(name, _)| name.eq_ignore_ascii_case(k))
            else {
                input!(
                    "unknown source kind {k:?}: use files, postgres (or pg), redis, pvc, command or stdin"
                );
            };
            kinds.push((*kind).to_owned());
        }
        let mut paths = Vec::new();
        for p in &self.paths {
            let abs = crate::util::absolute(std::path::Path::new(p))
                .map_err(|e| Error::Input(format!("--path {p}: {e}")))?;
            paths.push(abs.to_string_lossy().into_owned());
        }
        Ok(SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths,
            kinds,
            claims: self.claims.clone(),
        })
    }

    /// The filter narrowed to one source kind (a restore mode that only
    /// fits one, such as writing an RDB file).
    pub fn of_kind(&self, kind: &str) -> SnapshotFilter {
        SnapshotFilter {
            kinds: vec![kind.to_owned()],
            ..self.clone()
        }
    }

    /// Whether `snap` passes (paths and kinds as [`Self::normalized`]
    /// leaves them).
    pub fn matches(&self, snap: &Snapshot) -> bool {
        let host = self.hosts.is_empty() || self.hosts.contains(&snap.hostname);
        let tags = self.tags.iter().all(|t| snap.tags.contains(t));
        let kind = self.kinds.is_empty() || self.kinds.iter().any(|k| k == snap.source.kind());
        let paths = self.paths.is_empty()
            || matches!(&snap.source, Source::Files { paths } if self.paths.iter().all(|p| paths.contains(p)));
        let claims = self.claims.is_empty()
            || matches!(&snap.source, Source::Pvc { namespace, claim, .. }
            if self.claims.iter().any(|c| match c.split_once('/') {
                Some((ns, name)) => ns == namespace && name == claim,
                None => c == claim,
            }));
        host && tags && kind && paths && claims
    }

    /// The snapshots that pass, in their order.
    ///
    /// # Errors
    /// As [`Self::normalized`].
    pub fn apply(&self, snapshots: Vec<Listed>) -> Result<Vec<Listed>> {
        if self.is_empty() {
            return Ok(snapshots);
        }
        let f = self.normalized()?;
        Ok(snapshots
            .into_iter()
            .filter(|(_, s)| f.matches(s))
            .collect())
    }

    /// The filter as the options that set it, for messages.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (flag, values) in [
            ("--host", &self.hosts),
            ("--tag", &self.tags),
            ("--path", &self.paths),
            ("--source-kind", &self.kinds),
            ("--claim", &self.claims),
        ] {
            parts.extend(values.iter().map(|v| format!("{flag} {v}")));
        }
        parts.join(" ")
    }
}

/// Resolves a SNAPSHOT argument among `snapshots` (oldest first): `latest`
/// is the newest that passes `filter`; an id prefix names one snapshot
/// whatever the filter, which it must still pass (so that a restore mode
/// never gets a snapshot of another kind by mistake).
///
/// # Errors
/// [`Error::Input`] when nothing matches, a prefix is ambiguous or not
/// hex, or the snapshot named does not pass the filter.
pub fn resolve<'a>(
    snapshots: &'a [Listed],
    arg: &str,
    filter: &SnapshotFilter,
) -> Result<&'a Listed> {
    let f = filter.normalized()?;
    if snapshots.is_empty() {
        input!("the repository has no snapshots yet");
    }
    if arg == "latest" {
        return snapshots
            .iter()
            .rev()
            .find(|(_, s)| f.matches(s))
            .ok_or_else(|| {
                Error::Input(format!(
                    "no snapshot matches {}; `cairn snapshots` lists them",
                    f.describe()
                ))
            });
    }
    let prefix = arg.to_ascii_lowercase();
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        input!("{arg:?} is not a snapshot id: give a hex id prefix or `latest`");
    }
    let matches: Vec<_> = snapshots
        .iter()
        .filter(|(id, _)| id.to_hex().starts_with(&prefix))
        .collect();
    let one = match matches.as_slice() {
        [one] => *one,
        [] => input!("no snapshot matches {arg:?}; `cairn snapshots` lists them"),
        many => input!(
            "snapshot prefix {arg:?} is ambiguous: it matches {}; give more digits",
            many.iter()
                .map(|(id, _)| id.short())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if !f.matches(&one.1) {
        input!(
            "snapshot {} is a {} backup from {} and does not match {}",
            one.0.short(),
            one.1.source.kind(),
            one.1.hostname,
            f.describe()
        );
    }
    Ok(one)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo_format::{ChunkId, SessionId, SnapshotId, Summary};

    fn snap(host: &str, tags: &[&str], source: Source) -> Listed {
        let s = Snapshot {
            version: 1,
            session: SessionId::random(),
            time_ns: 0,
            finished_ns: 0,
            hostname: host.into(),
            username: "u".into(),
            source,
            tree: ChunkId::from_bytes([0; 32]),
            partial: false,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            copy_of: None,
            counts: None,
            summary: Summary::default(),
        };
        (SnapshotId::random(), s)
    }

    fn files(paths: &[&str]) -> Source {
        Source::Files {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    fn redis() -> Source {
        Source::Redis {
            address: "127.0.0.1:6379".into(),
            redis_version: "7".into(),
            rdb_version: 11,
        }
    }

    #[test]
    fn latest_resolves_within_the_filter() {
        let all = vec![
            snap("a", &["nightly"], redis()),
            snap("a", &[], files(&["/srv", "/etc"])),
            snap("b", &["nightly", "x"], files(&["/srv"])),
        ];
        let latest = |f: SnapshotFilter| resolve(&all, "latest", &f).map(|(id, _)| *id);
        assert_eq!(latest(SnapshotFilter::default()).unwrap(), all[2].0);
        let redis_only = SnapshotFilter::default().of_kind("redis");
        assert_eq!(latest(redis_only).unwrap(), all[0].0);
        let host_a = SnapshotFilter {
            hosts: vec!["a".into()],
            ..SnapshotFilter::default()
        };
        assert_eq!(latest(host_a.clone()).unwrap(), all[1].0);
        let etc = SnapshotFilter {
            paths: vec!["/etc/".into()],
            ..SnapshotFilter::default()
        };
        assert_eq!(latest(etc).unwrap(), all[1].0);
        let tags = SnapshotFilter {
            tags: vec!["nightly".into(), "x".into()],
            ..SnapshotFilter::default()
        };
        assert_eq!(latest(tags).unwrap(), all[2].0);
        let pg = SnapshotFilter {
            kinds: vec!["PG".into()],
            ..host_a
        };
        let err = latest(pg).unwrap_err().to_string();
        assert!(err.contains("--host a --source-kind postgres"), "{err}");
        let bad = SnapshotFilter {
            kinds: vec!["mysql".into()],
            ..SnapshotFilter::default()
        };
        assert!(latest(bad)
            .unwrap_err()
            .to_string()
            .contains("unknown source kind"));
    }

    #[test]
    fn a_claim_matches_with_or_without_its_namespace() {
        let pvc = |ns: &str, claim: &str| Source::Pvc {
            namespace: ns.into(),
            claim: claim.into(),
            pod: "p".into(),
        };
        let all = [
            snap("n1", &[], pvc("shop", "data")),
            snap("n2", &[], pvc("blog", "data")),
            snap("n1", &[], files(&["/shop/data"])),
        ];
        let claims = |c: &[&str]| SnapshotFilter {
            claims: c.iter().map(|c| (*c).to_owned()).collect(),
            ..SnapshotFilter::default()
        };
        let ids = |f: SnapshotFilter| {
            let f = f.normalized().unwrap();
            all.iter()
                .filter(|(_, s)| f.matches(s))
                .map(|(id, _)| *id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(claims(&["shop/data"])), [all[0].0]);
        assert_eq!(ids(claims(&["data"])), [all[0].0, all[1].0]);
        assert_eq!(
            ids(claims(&["shop/data", "blog/data"])),
            [all[0].0, all[1].0]
        );
        assert!(ids(claims(&["shop/other"])).is_empty());
        assert_eq!(ids(SnapshotFilter::default().of_kind("pvc")).len(), 2);
    }

    #[test]
    fn an_id_of_another_kind_is_refused() {
        let all = vec![snap("a", &[], redis()), snap("a", &[], files(&["/srv"]))];
        let hex = all[1].0.to_hex();
        let f = SnapshotFilter::default();
        assert_eq!(resolve(&all, &hex[..8], &f).unwrap().0, all[1].0);
        let err = resolve(&all, &hex[..8], &f.of_kind("redis"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a files backup from a"), "{err}");
    }
}
