//! What a files backup leaves out, as restic and rsync users write it.
//!
//! Exclude patterns: one starting with `/` matches absolute paths from the
//! root; any other matches at any depth (`*.tmp`, `node_modules`,
//! `cache/*`). `*`, `?` and `[...]` stay within one path component, `**`
//! crosses them, `\` escapes, and `--iexclude` folds case. As in a
//! `.gitignore`, a pattern starting with `!` takes back what an earlier one
//! excluded, and the last pattern that matches decides. An excluded
//! directory is skipped whole. Directories can also be left out by a file
//! they hold (`--exclude-if-present`, `--exclude-caches`), and a walk can
//! stay on the file system it started on (`--one-file-system`).

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The first bytes of a valid `CACHEDIR.TAG` (the Cache Directory Tagging
/// Specification).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// A path pattern as excludes and `cairn find` take it, to match absolute
/// paths: from the root if it starts with `/`, else at any depth; `*`, `?`
/// and `[...]` within one component, `**` across, `\` escaping, case
/// folded when asked. A trailing `/` is dropped.
///
/// # Errors
/// An empty pattern, or why it does not compile.
pub fn path_glob(pattern: &str, fold_case: bool) -> Result<Glob, String> {
    let trimmed = pattern.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(format!("pattern {pattern:?} is empty"));
    }
    let anchored = if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/**/{trimmed}")
    };
    GlobBuilder::new(&anchored)
        .literal_separator(true)
        .backslash_escape(true)
        .case_insensitive(fold_case)
        .build()
        .map_err(|e| format!("pattern {pattern:?}: {e}"))
}

/// Compiled exclude patterns.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    set: GlobSet,
    /// Whether each pattern, in order, takes back (`!`).
    negated: Vec<bool>,
}

impl Excludes {
    /// Compiles `patterns` and, folding case, `ipatterns` (after them).
    ///
    /// # Errors
    /// The first pattern that does not compile, and why.
    pub fn new(patterns: &[String], ipatterns: &[String]) -> Result<Self, String> {
        let mut b = GlobSetBuilder::new();
        let mut negated = Vec::new();
        let all = patterns
            .iter()
            .map(|p| (p, false))
            .chain(ipatterns.iter().map(|p| (p, true)));
        for (p, fold) in all {
            let (neg, body) = match p.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, p.as_str()),
            };
            b.add(path_glob(body, fold).map_err(|e| format!("exclude {e}"))?);
            negated.push(neg);
        }
        let set = b.build().map_err(|e| format!("exclude patterns: {e}"))?;
        Ok(Self { set, negated })
    }

    /// Whether the entry at absolute `path` is excluded.
    pub fn matches(&self, path: &Path) -> bool {
        if self.negated.is_empty() {
            return false;
        }
        if !self.negated.contains(&true) {
            return self.set.is_match(path);
        }
        self.set
            .matches(path)
            .into_iter()
            .max()
            .is_some_and(|last| !self.negated[last])
    }
}

/// Reads patterns or paths from a file, one per line: blank lines and
/// lines starting with `#` are skipped, surrounding white space is not
/// part of an entry.
///
/// # Errors
/// If the file cannot be read, naming it.
pub fn read_list(path: &Path) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// Everything a walk leaves out.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Entries excluded by pattern.
    pub excludes: Excludes,
    /// A directory holding one of these names is left out.
    pub if_present: Vec<OsString>,
    /// A directory holding a valid `CACHEDIR.TAG` is left out.
    pub caches: bool,
    /// Directories on another file system than the path backed up are
    /// recorded, but not what they hold.
    pub one_file_system: bool,
    /// Patterns see paths below this directory as if it were `/` (a
    /// volume's directory: `/tmp` is the volume's `tmp`); `None`: paths
    /// as they are.
    pub root: Option<PathBuf>,
}

impl Selector {
    /// Whether an exclude pattern leaves out the entry at `path`.
    pub fn excluded(&self, path: &Path) -> bool {
        match self.root.as_deref().map(|r| path.strip_prefix(r)) {
            Some(Ok(below)) => self.excludes.matches(&Path::new("/").join(below)),
            _ => self.excludes.matches(path),
        }
    }

    /// Why the directory at `dir` is left out, if it is: the tag file it
    /// holds.
    pub fn tagged(&self, dir: &Path) -> Option<PathBuf> {
        for name in &self.if_present {
            let tag = dir.join(name);
            if std::fs::symlink_metadata(&tag).is_ok() {
                return Some(tag);
            }
        }
        if self.caches {
            let tag = dir.join("CACHEDIR.TAG");
            let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
            let valid = std::fs::File::open(&tag)
                .and_then(|mut f| f.read_exact(&mut head))
                .is_ok_and(|()| head == CACHEDIR_SIGNATURE);
            if valid {
                return Some(tag);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Excludes {
        Excludes::new(&p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(), &[])
            .expect("patterns")
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
        assert!(Excludes::new(&["a[".to_owned()], &[]).is_err());
        assert!(Excludes::new(&["/".to_owned()], &[]).is_err());
        assert!(Excludes::new(&[], &["!".to_owned()]).is_err());
    }

    #[test]
    fn classes_case_folding_and_taking_back() {
        let e = ex(&["*.[ch]", "/srv/logs/*", "!/srv/logs/keep.log"]);
        assert!(e.matches(Path::new("/a/b.c")) && e.matches(Path::new("/a/b.h")));
        assert!(!e.matches(Path::new("/a/b.o")));
        assert!(e.matches(Path::new("/srv/logs/x.log")));
        assert!(!e.matches(Path::new("/srv/logs/keep.log")));
        // The last match decides: excluded again after being taken back.
        let again = ex(&["*.log", "!keep.log", "/srv/keep.log"]);
        assert!(again.matches(Path::new("/srv/keep.log")));
        assert!(!again.matches(Path::new("/other/keep.log")));
        let i = Excludes::new(&[], &["*.JPG".to_owned(), "Thumbs.db".to_owned()]).unwrap();
        assert!(i.matches(Path::new("/p/a.jpg")) && i.matches(Path::new("/p/THUMBS.DB")));
        assert!(!ex(&["*.JPG"]).matches(Path::new("/p/a.jpg")));
    }

    #[test]
    fn tags_leave_directories_out() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
        for x in [&a, &b, &c] {
            std::fs::create_dir(x).unwrap();
        }
        std::fs::write(a.join(".nobackup"), b"").unwrap();
        std::fs::write(
            b.join("CACHEDIR.TAG"),
            [CACHEDIR_SIGNATURE, b"\n# a cache"].concat(),
        )
        .unwrap();
        std::fs::write(c.join("CACHEDIR.TAG"), b"not the signature").unwrap();
        let s = Selector {
            root: None,
            if_present: vec![".nobackup".into()],
            caches: true,
            ..Selector::default()
        };
        assert_eq!(s.tagged(&a), Some(a.join(".nobackup")));
        assert_eq!(s.tagged(&b), Some(b.join("CACHEDIR.TAG")));
        assert_eq!(s.tagged(&c), None);
        assert_eq!(Selector::default().tagged(&b), None);
    }
}
