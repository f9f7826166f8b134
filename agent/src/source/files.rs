//! File trees: walked, read and chunked on the pipeline's producer thread,
//! with trees built bottom-up and stored as blobs.
//!
//! Paths are stored as their absolute hierarchy (`/srv/data` is `srv` →
//! `data` in the root tree). An entry that cannot be read is reported and
//! counted; the rest is backed up and the snapshot is marked partial.
//!
//! With a parent snapshot, the walk follows the parent's trees alongside:
//! a regular file whose size, mtime, ctime and inode match its parent entry,
//! and whose chunks the catalog still knows, keeps the parent's content and
//! is not read.

use crate::catalog::Listed;
use crate::error::{input, Result};
use crate::pipeline::chunk::{Content, StreamChunker};
use crate::pipeline::{BlobSink, PipelineError};
use crate::source::SourceError;
use crate::stats::Stats;
use crate::util::absolute;
use bytes::Bytes;
use cairn_repo_format::{ChunkId, FileContent, Node, NodeKind, NodeMeta, Source, Tree, Xattr};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod ahead;
mod select;
pub use ahead::Ahead;
pub use select::{path_glob, Excludes, Selector};

/// Which file trees to back up. In JSON and TOML its keys are
/// kebab-case (`exclude-if-present`), as the agent's configuration
/// spells them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FilesSettings {
    /// Files and directories; relative ones are taken from the current
    /// directory.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Files listing more paths, one per line (`#` comments).
    #[serde(default)]
    pub files_from: Vec<PathBuf>,
    /// Entries not to back up ([`Excludes`]).
    #[serde(default)]
    pub excludes: Vec<String>,
    /// The same, matching without regard to case.
    #[serde(default)]
    pub iexcludes: Vec<String>,
    /// Files of exclude patterns, one per line (`#` comments).
    #[serde(default)]
    pub exclude_files: Vec<PathBuf>,
    /// A directory holding a file of one of these names is left out.
    #[serde(default)]
    pub exclude_if_present: Vec<String>,
    /// A directory holding a valid `CACHEDIR.TAG` is left out.
    #[serde(default)]
    pub exclude_caches: bool,
    /// Directories on other file systems than the path they are under are
    /// recorded empty.
    #[serde(default)]
    pub one_file_system: bool,
    /// Whether extended attributes (ACLs, capabilities, SELinux labels,
    /// user attributes) are recorded.
    #[serde(default = "crate::util::yes")]
    pub xattrs: bool,
    /// Entries looked at and files read at once, ahead of the walk
    /// ([`Ahead`]); 0 reads one file at a time.
    #[serde(default = "default_read_concurrency")]
    pub read_concurrency: usize,
}

fn default_read_concurrency() -> usize {
    ahead::DEFAULT_THREADS
}

/// A files backup, ready to walk.
#[derive(Debug, Clone)]
pub struct FilesPlan {
    /// The absolute paths, as they are stored.
    pub paths: Vec<PathBuf>,
    /// What the walk leaves out.
    pub selector: Selector,
    /// Whether extended attributes are recorded.
    pub xattrs: bool,
    /// Files read at once ([`FilesSettings::read_concurrency`]).
    pub read_concurrency: usize,
    /// A volume's claim: `paths` is its one directory.
    pub claim: Option<Claim>,
}

impl Default for FilesSettings {
    /// No path, nothing excluded, extended attributes recorded.
    fn default() -> Self {
        FilesSettings {
            paths: Vec::new(),
            files_from: Vec::new(),
            excludes: Vec::new(),
            iexcludes: Vec::new(),
            exclude_files: Vec::new(),
            exclude_if_present: Vec::new(),
            exclude_caches: false,
            one_file_system: false,
            xattrs: true,
            read_concurrency: ahead::DEFAULT_THREADS,
        }
    }
}

impl FilesSettings {
    /// Checks the settings without reading any file they name.
    ///
    /// # Errors
    /// [`crate::Error::Input`] if there is no path, or a pattern or name
    /// that cannot be used.
    pub fn check(&self) -> Result<()> {
        if self.paths.is_empty() && self.files_from.is_empty() {
            input!("nothing to back up: give paths, --files-from, --stdin, or --command -- CMD");
        }
        Excludes::new(&self.excludes, &self.iexcludes).map_err(crate::Error::Input)?;
        if self.read_concurrency > ahead::MAX_THREADS {
            input!(
                "read concurrency {} is more than {}: give a smaller number of files to read at once",
                self.read_concurrency,
                ahead::MAX_THREADS
            );
        }
        for name in &self.exclude_if_present {
            if name.is_empty() || name.contains('/') {
                input!("--exclude-if-present takes a file name (no `/`), not {name:?}");
            }
        }
        Ok(())
    }

    /// The absolute paths, each checked to exist, and what the walk leaves
    /// out, with the lists the settings name read.
    ///
    /// # Errors
    /// [`crate::Error::Input`] for a list that cannot be read or a pattern
    /// that does not compile; [`SourceError::Path`] for a path that cannot
    /// be looked at.
    pub fn plan(&self) -> Result<FilesPlan> {
        self.check()?;
        let mut given: Vec<PathBuf> = self.paths.clone();
        for list in &self.files_from {
            let listed = select::read_list(list).map_err(crate::Error::Input)?;
            given.extend(listed.into_iter().map(PathBuf::from));
        }
        if given.is_empty() {
            input!("nothing to back up: the --files-from lists name no path");
        }
        let mut paths = Vec::new();
        for p in &given {
            let abs = absolute(p).map_err(|cause| SourceError::Path {
                path: p.display().to_string(),
                cause,
            })?;
            if !paths.contains(&abs) {
                paths.push(abs);
            }
        }
        check_paths(&paths)?;
        Ok(FilesPlan {
            paths,
            selector: self.selector(None)?,
            xattrs: self.xattrs,
            read_concurrency: self.read_concurrency,
            claim: None,
        })
    }

    /// What the walk leaves out (the paths are not looked at), with the
    /// exclude files read; patterns see paths below `root` as if it were
    /// `/`.
    ///
    /// # Errors
    /// [`crate::Error::Input`] for a list that cannot be read or a pattern
    /// that does not compile.
    pub fn selector(&self, root: Option<PathBuf>) -> Result<Selector> {
        let mut excludes = self.excludes.clone();
        for list in &self.exclude_files {
            excludes.extend(select::read_list(list).map_err(crate::Error::Input)?);
        }
        Ok(Selector {
            excludes: Excludes::new(&excludes, &self.iexcludes).map_err(crate::Error::Input)?,
            if_present: self.exclude_if_present.iter().map(Into::into).collect(),
            caches: self.exclude_caches,
            one_file_system: self.one_file_system,
            root,
        })
    }
}

/// The Kubernetes claim a files plan backs up: its one path is the
/// volume's directory, stored as a directory named after the claim
/// (format §7.1, source `pvc`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub name: String,
    /// The pod it is read through.
    pub pod: String,
}

impl FilesPlan {
    /// The snapshot's source record.
    pub fn record(&self) -> Source {
        match &self.claim {
            Some(c) => Source::Pvc {
                namespace: c.namespace.clone(),
                claim: c.name.clone(),
                pod: c.pod.clone(),
            },
            None => Source::Files {
                paths: self.path_strings(),
            },
        }
    }

    fn path_strings(&self) -> Vec<String> {
        self.paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    }

    /// The snapshot to compare files with: the latest of `snapshots`
    /// (oldest first) from `host` of the same set of paths, in whatever
    /// order they were given; for a claim, the latest of the same claim
    /// from any host (its pod moves between nodes).
    pub fn latest_of_same<'a>(&self, snapshots: &'a [Listed], host: &str) -> Option<&'a Listed> {
        fn set(paths: &[String]) -> std::collections::BTreeSet<&str> {
            paths.iter().map(String::as_str).collect()
        }
        let ours = self.path_strings();
        let ours = set(&ours);
        snapshots
            .iter()
            .rev()
            .find(|(_, snap)| match (&self.claim, &snap.source) {
                (
                    Some(c),
                    Source::Pvc {
                        namespace, claim, ..
                    },
                ) => *namespace == c.namespace && *claim == c.name,
                (None, Source::Files { paths }) => set(paths) == ours && snap.hostname == host,
                _ => false,
            })
    }
}

/// A files or claim snapshot's listing: its paths, or the claim as
/// `NAMESPACE/NAME (pod POD)`.
pub fn describe(record: &Source) -> Option<String> {
    match record {
        Source::Files { paths } => Some(paths.join(" ")),
        Source::Pvc {
            namespace,
            claim,
            pod,
        } if pod.is_empty() => Some(format!("{namespace}/{claim}")),
        Source::Pvc {
            namespace,
            claim,
            pod,
        } => Some(format!("{namespace}/{claim} (pod {pod})")),
        _ => None,
    }
}

/// What a walk did.
#[derive(Debug, Default, Clone, Copy)]
pub struct WalkReport {
    /// Regular files stored.
    pub files: u64,
    /// Directories stored.
    pub dirs: u64,
    /// Entries that could not be read.
    pub errors: u64,
    /// Regular files unchanged since the parent snapshot (not read).
    pub unchanged: u64,
    /// Entries left out: by an exclude pattern, or directories by a tag
    /// file they hold or (their content) by being on another file system.
    pub excluded: u64,
}

/// Adds up, on a thread of its own, the sizes of the regular files a walk
/// of `plan` will meet, and stores the total in `stats.expected_bytes` for
/// a progress display. Dropping the handle stops it (the backup is over).
pub fn estimate_in_background(plan: &FilesPlan, stats: Arc<Stats>) -> Estimate {
    let stop = Arc::new(AtomicBool::new(false));
    let (paths, selector, flag) = (plan.paths.clone(), plan.selector.clone(), stop.clone());
    let spawned = std::thread::Builder::new()
        .name("cairn-estimate".into())
        .spawn(move || {
            let mut total = 0u64;
            let mut stack = paths;
            while let Some(p) = stack.pop() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(m) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                if m.is_file() {
                    total = total.saturating_add(m.len());
                } else if m.is_dir() && selector.tagged(&p).is_none() {
                    let Ok(entries) = std::fs::read_dir(&p) else {
                        continue;
                    };
                    for e in entries.flatten() {
                        let path = e.path();
                        if !selector.excluded(&path) {
                            stack.push(path);
                        }
                    }
                }
            }
            stats.expected_bytes.store(total, Ordering::Relaxed);
        });
    if let Err(e) = spawned {
        tracing::debug!("no estimate of the backup's size: {e}");
    }
    Estimate(stop)
}

/// A running [`estimate_in_background`]; dropping it stops the estimate.
#[derive(Debug)]
pub struct Estimate(Arc<AtomicBool>);

impl Drop for Estimate {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Checks that every path can be looked at before anything is stored.
///
/// # Errors
/// [`SourceError::Path`] for the first path that does not exist or cannot be stat'ed.
pub fn check_paths(paths: &[PathBuf]) -> Result<(), SourceError> {
    for p in paths {
        std::fs::symlink_metadata(p).map_err(|cause| SourceError::Path {
            path: p.display().to_string(),
            cause,
        })?;
    }
    Ok(())
}

#[derive(Default)]
struct Trie {
    target: bool,
    children: BTreeMap<Vec<u8>, Trie>,
}

/// The walker's state.
pub struct Walker<'a> {
    sink: &'a mut BlobSink,
    chunker: &'a mut StreamChunker,
    report: WalkReport,
    warn: &'a (dyn Fn(String) + Sync),
    selector: Option<&'a Selector>,
    /// The device of the path being walked (for `one_file_system`).
    fs_dev: u64,
    xattrs: bool,
    /// The threads looking at entries ahead of the walk.
    ahead: Ahead,
}

impl std::fmt::Debug for Walker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Walker")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

fn time_ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

fn meta_of(m: &std::fs::Metadata) -> NodeMeta {
    NodeMeta {
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime_ns: time_ns(m.mtime(), m.mtime_nsec()),
        ctime_ns: time_ns(m.ctime(), m.ctime_nsec()),
        inode: m.ino(),
        device: m.dev(),
        links: m.nlink(),
    }
}

impl<'a> Walker<'a> {
    /// A walker storing into `sink`.
    pub fn new(
        sink: &'a mut BlobSink,
        chunker: &'a mut StreamChunker,
        warn: &'a (dyn Fn(String) + Sync),
    ) -> Self {
        Self {
            sink,
            chunker,
            report: WalkReport::default(),
            warn,
            selector: None,
            fs_dev: 0,
            xattrs: true,
            ahead: Ahead::new(0),
        }
    }

    /// Looks at entries and reads files ahead of the walk on `threads`
    /// threads ([`Ahead`]; none by default).
    #[must_use]
    pub fn reading_ahead(mut self, threads: usize) -> Self {
        self.ahead = Ahead::new(threads);
        self
    }

    /// Whether extended attributes are recorded (they are by default).
    #[must_use]
    pub fn with_xattrs(mut self, on: bool) -> Self {
        self.xattrs = on;
        self
    }

    /// The extended attributes of `path`, if they are recorded; one that
    /// cannot be read is reported (the snapshot is partial) and the entry
    /// is kept without them.
    fn xattrs_of(&mut self, path: &Path) -> Vec<Xattr> {
        if !self.xattrs {
            return Vec::new();
        }
        crate::xattr::read(path).unwrap_or_else(|e| {
            self.failed(path, "read the extended attributes of", &e);
            Vec::new()
        })
    }

    /// Leaves out what `selector` selects (a directory whole).
    #[must_use]
    pub fn selecting(mut self, selector: &'a Selector) -> Self {
        self.selector = Some(selector);
        self
    }

    /// Backs up absolute `paths`; returns the root tree.
    ///
    /// # Errors
    /// A [`PipelineError`] if storing fails (unreadable entries are not errors).
    pub fn run(
        mut self,
        paths: &[PathBuf],
        parent: Option<ChunkId>,
    ) -> Result<(ChunkId, WalkReport), PipelineError> {
        let mut root = Trie::default();
        for p in paths {
            let mut t = &mut root;
            for c in p.components() {
                if let Component::Normal(n) = c {
                    t = t.children.entry(n.as_bytes().to_vec()).or_default();
                }
            }
            t.target = true;
        }
        let id = if root.target {
            self.fs_dev = std::fs::symlink_metadata("/").map_or(0, |m| m.dev());
            self.dir(Path::new("/"), parent)?
        } else {
            self.trie_dir(Path::new("/"), &root, parent)?
        };
        Ok((id, self.report))
    }

    /// Backs up the directory `dir` as the one directory `name` of the
    /// root tree (a volume, named after its claim); returns the root tree.
    ///
    /// # Errors
    /// A [`PipelineError`] if storing fails (unreadable entries are not
    /// errors; an unreadable `dir` leaves the root tree empty).
    pub fn run_as(
        mut self,
        dir: &Path,
        name: &str,
        parent: Option<ChunkId>,
    ) -> Result<(ChunkId, WalkReport), PipelineError> {
        self.fs_dev = std::fs::symlink_metadata(dir).map_or(0, |m| m.dev());
        let parent = self.parent_tree(parent);
        let before = parent.as_ref().and_then(|t| t.get(name.as_bytes()));
        let node = self.entry(dir, name.as_bytes(), before, None)?;
        let id = self.store_tree(node.into_iter().collect())?;
        Ok((id, self.report))
    }

    fn store_tree(&mut self, nodes: Vec<Node>) -> Result<ChunkId, PipelineError> {
        let tree = Tree::new(nodes)?;
        self.sink.submit_tree(Bytes::from(tree.encode()))
    }

    fn failed(&mut self, path: &Path, what: &str, e: &std::io::Error) {
        self.report.errors += 1;
        (self.warn)(format!("cannot {what} {}: {e}", path.display()));
    }

    /// The parent's tree for a directory, if it has one the catalog can give.
    fn parent_tree(&self, id: Option<ChunkId>) -> Option<Tree> {
        let id = id?;
        match self.sink.catalog().tree(&id) {
            Ok(t) => Some(t),
            Err(e) => {
                (self.warn)(format!(
                    "reading every file again below a directory whose parent tree is unavailable: {e}"
                ));
                None
            }
        }
    }

    /// A directory on the way to a backed-up path: only the named children.
    fn trie_dir(
        &mut self,
        path: &Path,
        trie: &Trie,
        parent: Option<ChunkId>,
    ) -> Result<ChunkId, PipelineError> {
        let parent = self.parent_tree(parent);
        let mut nodes = Vec::with_capacity(trie.children.len());
        for (name, child) in &trie.children {
            let full = path.join(OsStr::from_bytes(name));
            let before = parent.as_ref().and_then(|t| t.get(name));
            if child.target {
                self.fs_dev = std::fs::symlink_metadata(&full).map_or(0, |m| m.dev());
                nodes.extend(self.entry(&full, name, before, None)?);
                continue;
            }
            let meta = match std::fs::symlink_metadata(&full) {
                Ok(m) => meta_of(&m),
                Err(e) => {
                    self.failed(&full, "stat", &e);
                    continue;
                }
            };
            let xattrs = self.xattrs_of(&full);
            let subtree = self.trie_dir(&full, child, subtree_of(before))?;
            self.report.dirs += 1;
            nodes.push(Node {
                name: name.clone(),
                meta,
                kind: NodeKind::Dir { subtree },
                xattrs,
            });
        }
        self.store_tree(nodes)
    }

    /// All of a directory; returns its tree id.
    fn dir(&mut self, path: &Path, parent: Option<ChunkId>) -> Result<ChunkId, PipelineError> {
        let parent = self.parent_tree(parent);
        let mut names: Vec<Vec<u8>> = Vec::new();
        match std::fs::read_dir(path) {
            Ok(rd) => {
                for e in rd {
                    match e {
                        Ok(e) => names.push(e.file_name().as_bytes().to_vec()),
                        Err(e) => {
                            self.failed(path, "list", &e);
                            break;
                        }
                    }
                }
            }
            Err(e) => self.failed(path, "list", &e),
        }
        names.sort();
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let full = path.join(OsStr::from_bytes(&name));
            if self.selector.is_some_and(|s| s.excluded(&full)) {
                self.report.excluded += 1;
                continue;
            }
            entries.push((name, full));
        }
        let mut window = self.ahead.window(
            entries
                .iter()
                .map(|(name, full)| (full.clone(), was_of(parent.as_ref(), name))),
        );
        let mut nodes = Vec::with_capacity(entries.len());
        for (name, full) in entries {
            let before = parent.as_ref().and_then(|t| t.get(&name));
            let looked = window.next();
            nodes.extend(self.entry(&full, &name, before, looked)?);
        }
        self.store_tree(nodes)
    }

    /// The parent's content of a file, if the file is unchanged since and
    /// every chunk of it is still known (never trust the catalog for data
    /// the repository may have lost).
    fn unchanged(
        &self,
        meta: &NodeMeta,
        size: u64,
        before: Option<&Node>,
    ) -> Result<Option<(FileContent, u64)>, PipelineError> {
        let Some(Node {
            meta: was,
            kind:
                NodeKind::File {
                    size: was_size,
                    content,
                },
            ..
        }) = before
        else {
            return Ok(None);
        };
        if *was_size != size
            || was.mtime_ns != meta.mtime_ns
            || was.ctime_ns != meta.ctime_ns
            || was.inode != meta.inode
        {
            return Ok(None);
        }
        let lists = match content {
            FileContent::Chunks(ids) => {
                for id in ids {
                    if !self.sink.known(id)? {
                        return Ok(None);
                    }
                }
                return Ok(Some((content.clone(), ids.len() as u64)));
            }
            FileContent::Lists(lists) => lists,
        };
        // A file of content lists needs its lists and every chunk they name.
        for id in lists {
            if !self.sink.known(id)? {
                return Ok(None);
            }
        }
        let mut chunks = 0u64;
        for group in self.sink.catalog().chunk_groups(content, 1024) {
            let group = match group {
                Ok(group) => group,
                Err(e) => {
                    (self.warn)(format!(
                        "reading a file again whose parent content list is unavailable: {e}"
                    ));
                    return Ok(None);
                }
            };
            for id in &group {
                if !self.sink.known(id)? {
                    return Ok(None);
                }
            }
            chunks += group.len() as u64;
        }
        Ok(Some((content.clone(), chunks)))
    }

    /// One entry, of any type; `None` if it could not be read or is
    /// skipped. `looked` is what a thread found of it ahead of the walk.
    fn entry(
        &mut self,
        path: &Path,
        name: &[u8],
        before: Option<&Node>,
        looked: Option<ahead::Looked>,
    ) -> Result<Option<Node>, PipelineError> {
        let (m, opened) = match looked {
            Some(l) => (l.meta, l.opened),
            None => (std::fs::symlink_metadata(path), None),
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                self.failed(path, "stat", &e);
                return Ok(None);
            }
        };
        let meta = meta_of(&m);
        let ft = m.file_type();
        let kind = if ft.is_file() {
            if let Some((content, chunks)) = self.unchanged(&meta, m.len(), before)? {
                Stats::add(&self.sink.stats().total_chunks, chunks);
                Stats::add(&self.sink.stats().skipped_bytes, m.len());
                self.report.files += 1;
                self.report.unchanged += 1;
                // Setting an attribute changes ctime, which matched: the
                // parent's are still the file's.
                let xattrs = match before {
                    Some(b) if self.xattrs => b.xattrs.clone(),
                    _ => Vec::new(),
                };
                return Ok(Some(Node {
                    name: name.to_vec(),
                    meta,
                    kind: NodeKind::File {
                        size: m.len(),
                        content,
                    },
                    xattrs,
                }));
            }
            // What a thread opened ahead is used only if it is the file
            // listed here, unchanged since.
            let (file, head) = match opened.filter(|o| o.is(&m)) {
                Some(o) => (Ok(o.file), o.head),
                None => (std::fs::File::open(path), Vec::new()),
            };
            let file = match file {
                Ok(f) => f,
                Err(e) => {
                    self.failed(path, "read", &e);
                    return Ok(None);
                }
            };
            let mut content = Content::default();
            // Fewer blocks than the length needs: it has holes, which are
            // not read.
            let read = if m.blocks().saturating_mul(512) < m.len() {
                self.chunker
                    .read_sparse(self.sink, &file, m.len(), &mut content)
            } else {
                // No further than the length it was listed with: a file
                // that keeps growing (a busy log) would otherwise be read
                // for ever. Growth is reported below.
                let rest = m.len().saturating_sub(head.len() as u64);
                self.chunker.read_all(
                    self.sink,
                    &mut std::io::Read::chain(&head[..], std::io::Read::take(&file, rest)),
                    m.len(),
                    &mut content,
                )
            };
            match read {
                Ok(()) => self.chunker.finish(self.sink, &mut content)?,
                Err(Ok(e)) => {
                    self.chunker.discard();
                    self.failed(path, "read", &e);
                    return Ok(None);
                }
                Err(Err(e)) => return Err(e),
            }
            self.report.files += 1;
            if let Some(how) = changed_while_read(&m, &file, content.size) {
                self.report.errors += 1;
                (self.warn)(format!(
                    "{} changed while it was read ({how}): stored as read ({} bytes); the snapshot is marked partial",
                    path.display(),
                    content.size
                ));
            }
            NodeKind::File {
                size: content.size,
                content: self.sink.finish_content(content)?,
            }
        } else if ft.is_dir() {
            if let Some(tag) = self.selector.and_then(|s| s.tagged(path)) {
                tracing::debug!("leaving out {}: it holds {}", path.display(), tag.display());
                self.report.excluded += 1;
                return Ok(None);
            }
            let other_fs =
                self.selector.is_some_and(|s| s.one_file_system) && m.dev() != self.fs_dev;
            let subtree = if other_fs {
                // A mount point: the directory, not what is mounted on it.
                self.report.excluded += 1;
                self.store_tree(Vec::new())?
            } else {
                self.dir(path, subtree_of(before))?
            };
            self.report.dirs += 1;
            NodeKind::Dir { subtree }
        } else if ft.is_symlink() {
            match std::fs::read_link(path) {
                Ok(t) => NodeKind::Symlink {
                    target: t.as_os_str().as_bytes().to_vec(),
                },
                Err(e) => {
                    self.failed(path, "read link", &e);
                    return Ok(None);
                }
            }
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else if ft.is_socket() {
            NodeKind::Socket
        } else if ft.is_char_device() || ft.is_block_device() {
            let (major, minor) = (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()));
            if ft.is_char_device() {
                NodeKind::CharDevice { major, minor }
            } else {
                NodeKind::BlockDevice { major, minor }
            }
        } else {
            (self.warn)(format!(
                "skipping {}: a file of a type cairn does not know",
                path.display()
            ));
            return Ok(None);
        };
        let xattrs = self.xattrs_of(path);
        Ok(Some(Node {
            name: name.to_vec(),
            meta,
            kind,
            xattrs,
        }))
    }
}

/// How a file changed between its `stat` before the read (`before`) and the
/// end of the read of `read` bytes, if it did: what was stored may be a mix
/// of old and new content.
fn changed_while_read(
    before: &std::fs::Metadata,
    file: &std::fs::File,
    read: u64,
) -> Option<String> {
    if read != before.len() {
        return Some(format!("{} bytes when listed, {read} read", before.len()));
    }
    let after = file.metadata().ok()?;
    if after.len() != before.len() {
        return Some(format!(
            "{} bytes when listed, {} after",
            before.len(),
            after.len()
        ));
    }
    if (
        after.mtime(),
        after.mtime_nsec(),
        after.ctime(),
        after.ctime_nsec(),
    ) != (
        before.mtime(),
        before.mtime_nsec(),
        before.ctime(),
        before.ctime_nsec(),
    ) {
        return Some("modified during the read".to_owned());
    }
    None
}

/// What the parent recorded of a regular file `name` in its tree.
fn was_of(parent: Option<&Tree>, name: &[u8]) -> Option<ahead::Was> {
    match parent?.get(name)? {
        Node {
            meta,
            kind: NodeKind::File { size, .. },
            ..
        } => Some(ahead::Was {
            size: *size,
            mtime_ns: meta.mtime_ns,
            ctime_ns: meta.ctime_ns,
            inode: meta.inode,
        }),
        _ => None,
    }
}

/// The subtree of a parent entry that is a directory.
fn subtree_of(node: Option<&Node>) -> Option<ChunkId> {
    match node?.kind {
        NodeKind::Dir { subtree } => Some(subtree),
        _ => None,
    }
}
