//! A repository in a local directory.
//!
//! Durability: every object is written to a temp file in its final
//! directory, fsynced, then published. Create-only publishing uses `link(2)`,
//! which fails if the name exists, so of racing creators exactly one wins and
//! nobody ever sees a partial object; overwrites use `rename(2)`. The
//! directory is fsynced after publishing.
//!
//! Mutable objects (leases and `gc/state`) are kept as numbered create-only
//! versions instead ([`versions`]), so that compare-and-swap needs no lock.

use super::delete::Deletion;
use super::{Backend, BackendError, ErrorKind, Expect, PutMode, Stat, Version};
use async_trait::async_trait;
use bytes::Bytes;
use cairn_repo_format::{ObjectKind, ObjectName};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

mod versions;

/// Whether objects of this kind are mutable (kept as versions).
fn versioned(kind: ObjectKind) -> bool {
    matches!(kind, ObjectKind::Lease | ObjectKind::GcState)
}

/// A version number as a [`Version`].
fn version(n: u64) -> Version {
    Version(n.to_string())
}

/// A repository rooted at a directory.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// A backend at `root` (which need not exist until `init`).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, name: &ObjectName) -> PathBuf {
        self.root.join(name.path())
    }

    /// The directory of a mutable object's versions.
    fn versions(&self, name: &ObjectName) -> PathBuf {
        versions::dir_of(&self.path(name))
    }

    fn err(&self, op: &'static str, object: &str, e: &std::io::Error) -> BackendError {
        BackendError::io(op, object.to_owned(), self.location(), e)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        object: String,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, BackendError> {
        match tokio::task::spawn_blocking(f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.err(op, &object, &e)),
            Err(join) => Err(BackendError {
                kind: ErrorKind::Other,
                op,
                object,
                location: self.root.display().to_string(),
                detail: format!("worker failed: {join}"),
            }),
        }
    }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// The modes of new files and directories ([module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modes {
    /// New files.
    pub file: u32,
    /// New directories.
    pub dir: u32,
}

impl Modes {
    /// Owner only.
    pub const PRIVATE: Self = Self {
        file: 0o600,
        dir: 0o700,
    };
    /// Also readable by the group.
    pub const GROUP: Self = Self {
        file: 0o640,
        dir: 0o750,
    };

    /// The modes for a repository at `root`, from its directory's.
    pub fn of(root: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        match fs::metadata(root) {
            Ok(m) if m.permissions().mode() & 0o050 == 0o050 => Self::GROUP,
            _ => Self::PRIVATE,
        }
    }

    fn create_dirs(self, dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(self.dir)
            .create(dir)
    }
}

fn parent(path: &Path) -> std::io::Result<&Path> {
    path.parent()
        .ok_or_else(|| std::io::Error::other("object path has no parent"))
}

fn write_object(path: &Path, data: &[u8], mode: PutMode, modes: Modes) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = parent(path)?;
    modes.create_dirs(dir)?;
    let tmp = crate::util::temp_path(dir);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(modes.file)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        match mode {
            PutMode::Create => fs::hard_link(&tmp, path),
            PutMode::Overwrite => fs::rename(&tmp, path),
        }
    })();
    // After a link the temp name is a second link to the object; after a
    // rename it is gone. Either way it must not stay.
    let _ = fs::remove_file(&tmp);
    result?;
    fsync_dir(dir)
}

/// Publishes the file at `spooled` as the object at `path` without copying
/// it: fsync, then `linkat(2)`, which fails if the name exists. The link
/// follows `spooled` when it is a symbolic link, so `/proc/self/fd/N` names
/// the unnamed (`O_TMPFILE`) file open there, not the link itself. A file
/// on another filesystem, or an overwrite, is copied through
/// [`write_object`]. The file gets the repository's file mode.
fn publish_file(spooled: &Path, path: &Path, mode: PutMode, modes: Modes) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if mode == PutMode::Create {
        let dir = parent(path)?;
        modes.create_dirs(dir)?;
        let file = fs::File::open(spooled)?;
        file.set_permissions(fs::Permissions::from_mode(modes.file))?;
        file.sync_all()?;
        let linked = rustix::fs::linkat(
            rustix::fs::CWD,
            spooled,
            rustix::fs::CWD,
            path,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )
        .map_err(std::io::Error::from);
        match linked {
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {}
            linked => return linked.and_then(|()| fsync_dir(dir)),
        }
    }
    write_object(path, &fs::read(spooled)?, mode, modes)
}

fn list_dir(dir: &Path, depth: usize, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = format!("{prefix}/{name}");
        if depth > 1 {
            if entry.file_type()?.is_dir() {
                list_dir(&entry.path(), depth - 1, &path, out)?;
            }
        } else {
            out.push(path);
        }
    }
    Ok(())
}

#[async_trait]
impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn put(&self, name: &ObjectName, data: Bytes, mode: PutMode) -> Result<(), BackendError> {
        if versioned(name.kind()) {
            return match mode {
                PutMode::Create => self
                    .put_versioned(name, data, Expect::Absent)
                    .await
                    .map(|_| ()),
                PutMode::Overwrite => {
                    let (dir, modes) = (self.versions(name), Modes::of(&self.root));
                    self.blocking("put", name.path(), move || {
                        versions::overwrite(&dir, &data, modes).map(|_| ())
                    })
                    .await
                }
            };
        }
        let path = self.path(name);
        let modes = Modes::of(&self.root);
        self.blocking("put", name.path(), move || {
            write_object(&path, &data, mode, modes)
        })
        .await
    }

    async fn put_file(
        &self,
        name: &ObjectName,
        spooled: &Path,
        mode: PutMode,
    ) -> Result<(), BackendError> {
        let (path, spooled) = (self.path(name), spooled.to_owned());
        let modes = Modes::of(&self.root);
        self.blocking("put", name.path(), move || {
            publish_file(&spooled, &path, mode, modes)
        })
        .await
    }

    /// The object's directory, created with the repository's mode if
    /// missing (the spool file would otherwise create it with the default).
    fn spool_dir(&self, name: &ObjectName) -> Option<PathBuf> {
        let dir = self.path(name).parent().map(Path::to_path_buf)?;
        // A failure shows when the spool file is created there.
        let _ = Modes::of(&self.root).create_dirs(&dir);
        Some(dir)
    }

    async fn get(&self, name: &ObjectName) -> Result<Bytes, BackendError> {
        if versioned(name.kind()) {
            return Ok(self.get_versioned(name).await?.0);
        }
        let path = self.path(name);
        self.blocking("get", name.path(), move || fs::read(path).map(Bytes::from))
            .await
    }

    async fn get_range(
        &self,
        name: &ObjectName,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, BackendError> {
        if versioned(name.kind()) {
            let data = self.get(name).await?;
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let end = start
                .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                .min(data.len());
            return Ok(data.slice(start..end));
        }
        let path = self.path(name);
        self.blocking("get", name.path(), move || {
            let mut f = fs::File::open(path)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(256 << 20));
            f.take(len).read_to_end(&mut buf)?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn stat(&self, name: &ObjectName) -> Result<Stat, BackendError> {
        use std::os::unix::fs::MetadataExt;
        let (path, versions) = (self.path(name), versioned(name.kind()));
        let dir = self.versions(name);
        self.blocking("head", name.path(), move || {
            let meta = if versions {
                versions::read(&dir).map(|(_, _, m)| m)
            } else {
                fs::metadata(path)
            };
            meta.map(|m| Stat {
                size: m.len(),
                modified_ns: m
                    .mtime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(m.mtime_nsec()),
            })
        })
        .await
    }

    async fn get_versioned(&self, name: &ObjectName) -> Result<(Bytes, Version), BackendError> {
        if !versioned(name.kind()) {
            let data = self.get(name).await?;
            let v = Version::of_bytes(&data);
            return Ok((data, v));
        }
        let dir = self.versions(name);
        self.blocking("get", name.path(), move || {
            versions::read(&dir).map(|(data, n, _)| (Bytes::from(data), version(n)))
        })
        .await
    }

    async fn put_versioned(
        &self,
        name: &ObjectName,
        data: Bytes,
        expect: Expect<'_>,
    ) -> Result<Version, BackendError> {
        if !versioned(name.kind()) {
            return match expect {
                Expect::Absent => {
                    let v = Version::of_bytes(&data);
                    self.put(name, data, PutMode::Create).await.map(|()| v)
                }
                Expect::Version(_) => Err(BackendError {
                    kind: ErrorKind::Other,
                    op: "put",
                    object: name.path(),
                    location: self.location(),
                    detail: "this kind of object is never replaced".into(),
                }),
            };
        }
        let (dir, modes) = (self.versions(name), Modes::of(&self.root));
        let expected = match expect {
            Expect::Absent => None,
            Expect::Version(v) => Some(v.0.parse::<u64>().map_err(|_| BackendError {
                kind: ErrorKind::Changed,
                op: "put",
                object: name.path(),
                location: self.location(),
                detail: format!("version {:?} is not one of this repository's", v.0),
            })?),
        };
        let object = name.path();
        let swapped = self
            .blocking("put", object.clone(), move || match expected {
                None => versions::create(&dir, &data, modes).map(Ok),
                Some(n) => versions::swap(&dir, &data, n, modes),
            })
            .await?;
        swapped
            .map(version)
            .map_err(|versions::Changed| BackendError {
                kind: ErrorKind::Changed,
                op: "put",
                object,
                location: self.location(),
                detail: "the object changed since it was read".into(),
            })
    }

    async fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectName>, BackendError> {
        let root = self.root.clone();
        let depth = kind.depth();
        let names = self
            .blocking("list", kind.prefix().to_owned(), move || {
                let mut out = Vec::new();
                let single = root.join(kind.prefix());
                if depth == 0 {
                    if single.exists() || versions::dir_of(&single).exists() {
                        out.push(format!(
                            "{}{}",
                            kind.prefix(),
                            if versioned(kind) { ".v" } else { "" }
                        ));
                    }
                } else {
                    list_dir(&single, depth, kind.prefix(), &mut out)?;
                }
                Ok(out)
            })
            .await?;
        Ok(names
            .iter()
            .filter_map(|n| {
                if versioned(kind) {
                    ObjectName::parse(versions::object_of(n)?)
                } else {
                    ObjectName::parse(n)
                }
            })
            .filter(|n| n.kind() == kind)
            .collect())
    }

    /// Any entry but `lost+found` (the root of a fresh file system, a
    /// volume mounted for the repository) counts.
    async fn holds_anything(&self) -> Result<bool, BackendError> {
        let root = self.root.clone();
        self.blocking("list", String::new(), move || match fs::read_dir(&root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
            Ok(entries) => {
                for e in entries {
                    if e?.file_name() != "lost+found" {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        })
        .await
    }

    async fn delete(&self, name: &ObjectName, _: &Deletion) -> Result<(), BackendError> {
        if versioned(name.kind()) {
            let dir = self.versions(name);
            return self
                .blocking("delete", name.path(), move || versions::remove(&dir))
                .await;
        }
        let path = self.path(name);
        self.blocking("delete", name.path(), move || {
            fs::remove_file(&path)?;
            match path.parent() {
                Some(dir) => fsync_dir(dir),
                None => Ok(()),
            }
        })
        .await
    }
}
