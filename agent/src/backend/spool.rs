//! Spool files: an object written to local disk as it is made (a pack as
//! it fills), then handed to [`super::Backend::put_file`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A spool file could not be created or written.
#[derive(Debug, thiserror::Error)]
#[error("writing a pack to its spool file in {dir}: {cause} (packs are spooled in the repository's pack directory, or for S3 in TMPDIR: check its space and permissions)")]
pub struct SpoolError {
    /// The spool directory.
    pub dir: PathBuf,
    /// What failed.
    pub cause: std::io::Error,
}

/// A file a pack is spooled to.
///
/// On Linux it is created with `O_TMPFILE`: it has no name until a local
/// repository links it into place, so a backup killed mid-way (SIGKILL, the
/// OOM killer, a node drained) leaves nothing behind, in the repository or
/// in `TMPDIR`. Backends open it by `/proc/self/fd/N`. Where the filesystem
/// or system cannot do that, it is a `.tmp-…` file that is removed when
/// dropped: after its upload, or when the backup fails.
#[derive(Debug)]
pub struct SpoolFile {
    dir: PathBuf,
    /// The path backends read or link it by.
    path: PathBuf,
    /// Whether `path` is a name in `dir` to remove when dropped.
    named: bool,
    file: fs::File,
}

impl SpoolFile {
    /// A new, empty spool file in `dir` (created if missing).
    ///
    /// # Errors
    /// [`SpoolError`], naming `dir`.
    pub fn create(dir: &Path) -> Result<Self, SpoolError> {
        Self::open(dir).map_err(|cause| SpoolError {
            dir: dir.to_owned(),
            cause,
        })
    }

    fn open(dir: &Path) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        fs::create_dir_all(dir)?;
        let (file, path, named) = match unnamed_file(dir)? {
            Some(file) => {
                let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
                (file, path, false)
            }
            None => {
                use std::os::unix::fs::OpenOptionsExt;
                let path = crate::util::temp_path(dir);
                let file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                (file, path, true)
            }
        };
        Ok(Self {
            dir: dir.to_owned(),
            path,
            named,
            file,
        })
    }

    /// The path to hand to [`crate::backend::Backend::put_file`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends what `write` writes into the file.
    ///
    /// # Errors
    /// [`SpoolError`], naming the directory.
    pub fn write_with(
        &mut self,
        write: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
    ) -> Result<(), SpoolError> {
        write(&mut self.file).map_err(|cause| SpoolError {
            dir: self.dir.clone(),
            cause,
        })
    }

    /// Appends `data`.
    ///
    /// # Errors
    /// [`SpoolError`], naming the directory.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        self.write_with(|file| file.write_all(data))
    }
}

/// An `O_TMPFILE` file in `dir`, or `None` where that is not supported: not
/// Linux, no `/proc` to reopen it by, or a filesystem that refuses it.
#[cfg(target_os = "linux")]
fn unnamed_file(dir: &Path) -> std::io::Result<Option<fs::File>> {
    use rustix::fs::{Mode, OFlags, CWD};
    use rustix::io::Errno;
    static PROC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir()) {
        return Ok(None);
    }
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    // Private: it holds a pack (encrypted) until the backend publishes it
    // with the repository's mode.
    match rustix::fs::openat(CWD, dir, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => Ok(Some(fs::File::from(fd))),
        // EOPNOTSUPP: the filesystem cannot; EISDIR or EINVAL: the kernel
        // does not know the flag.
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn unnamed_file(_dir: &Path) -> std::io::Result<Option<fs::File>> {
    Ok(None)
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        if self.named {
            // Unlinking an open file is fine; its descriptor closes right after.
            let _ = fs::remove_file(&self.path);
        }
    }
}
