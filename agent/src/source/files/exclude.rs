//! Exclude patterns of a files backup, as restic and rsync users write
//! them: a pattern starting with `/` matches absolute paths from the root;
//! any other matches at any depth (`*.tmp`, `node_modules`, `cache/*`).
//! `*` and `?` stay within one path component, `**` crosses them, and an
//! excluded directory is skipped whole.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::path::Path;

/// Compiled exclude patterns.
#[derive(Debug, Clone)]
pub struct Excludes {
    set: GlobSet,
    patterns: Vec<String>,
}

impl Excludes {
    /// Compiles `patterns`.
    ///
    /// # Errors
    /// The first pattern that does not compile, and why.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            let trimmed = p.trim_end_matches('/');
            if trimmed.is_empty() {
                return Err(format!("exclude pattern {p:?} is empty"));
            }
            let anchored = if trimmed.starts_with('/') {
                trimmed.to_owned()
            } else {
                format!("/**/{trimmed}")
            };
            let glob = GlobBuilder::new(&anchored)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("exclude pattern {p:?}: {e}"))?;
            b.add(glob);
        }
        let set = b.build().map_err(|e| format!("exclude patterns: {e}"))?;
        Ok(Self {
            set,
            patterns: patterns.to_vec(),
        })
    }

    /// Whether the entry at absolute `path` is excluded.
    pub fn matches(&self, path: &Path) -> bool {
        !self.patterns.is_empty() && self.set.is_match(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).expect("patterns")
    }

    #[test]
    fn patterns_match_as_backup_users_expect() {
        let e = ex(&[
            "*.tmp",
            "node_modules",
            "/srv/data/cache",
            "logs/*.gz",
            "/srv/**/secret?",
        ]);
        for hit in [
            "/srv/a.tmp",
            "/srv/x/y/b.tmp",
            "/srv/app/node_modules",
            "/srv/data/cache",
            "/srv/app/logs/old.gz",
            "/srv/x/y/secret1",
        ] {
            assert!(e.matches(Path::new(hit)), "{hit}");
        }
        for miss in [
            "/srv/a.tmpx",
            "/srv/other/data/cache",
            "/srv/app/logs/deep/old.gz",
            "/srv/x/secret12",
            "/srv/node_modules_backup",
        ] {
            assert!(!e.matches(Path::new(miss)), "{miss}");
        }
        assert!(!ex(&[]).matches(Path::new("/anything")));
        assert!(Excludes::new(&["a[".to_owned()]).is_err());
        assert!(Excludes::new(&["/".to_owned()]).is_err());
    }
}
