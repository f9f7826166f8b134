//! The packer and the uploads: blobs go into packs that are spooled to disk
//! as they fill, so a pack is never held in memory whole, and a finished
//! pack's file is handed to the backend (a local repository links it into
//! place; S3 reads it back part by part).

use super::{PipelineError, Stats, StoredBlob};
use crate::backend::{DynBackend, PutMode};
use cairn_repo_format::{EncKey, FinishedPack, IndexPack, ObjectName, PackWriter, SessionId};
use rand::Rng;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// [`PipelineError::Spool`], naming `dir`.
    pub fn create(dir: &Path) -> Result<Self, PipelineError> {
        Self::open(dir).map_err(|cause| PipelineError::Spool {
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

    /// Appends `data`.
    ///
    /// # Errors
    /// [`PipelineError::Spool`], naming the directory.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), PipelineError> {
        self.file.write_all(data).map_err(|e| self.write_err(e))
    }

    fn write_err(&self, cause: std::io::Error) -> PipelineError {
        PipelineError::Spool {
            dir: self.dir.clone(),
            cause,
        }
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

/// A pack being filled.
struct OpenPack {
    writer: PackWriter,
    spool: SpoolFile,
}

impl OpenPack {
    fn new(
        enc: &EncKey,
        session: SessionId,
        backend: &DynBackend,
        max_blob: usize,
    ) -> Result<Self, PipelineError> {
        // The writer holds one blob (and its tag) at a time; `finish` grows
        // it for the padding and header.
        let writer = PackWriter::new(enc, session, max_blob + 64);
        let name = ObjectName::Pack(session, writer.id());
        let dir = backend.spool_dir(&name).unwrap_or_else(std::env::temp_dir);
        Ok(Self {
            writer,
            spool: SpoolFile::create(&dir)?,
        })
    }

    fn add(&mut self, blob: &StoredBlob) -> Result<(), PipelineError> {
        self.writer.add(
            blob.id,
            blob.kind,
            blob.raw_len,
            blob.compression,
            &blob.stored,
        )?;
        let spool = &mut self.spool;
        self.writer
            .drain_to(&mut spool.file)
            .map_err(|e| spool.write_err(e))
    }

    fn finish(mut self) -> Result<SpooledPack, PipelineError> {
        let mut pack = self.writer.finish();
        let tail = std::mem::take(&mut pack.bytes);
        self.spool.write_all(&tail)?;
        Ok(SpooledPack {
            pack,
            spool: self.spool,
        })
    }
}

/// A finished pack in its spool file.
pub(super) struct SpooledPack {
    pack: FinishedPack,
    spool: SpoolFile,
}

/// Fills packs from `rx`, keeping `opts.open_packs` (at least two) open and
/// putting each blob into one of them at random (format §5), and sends each
/// full pack to the uploads.
pub(super) fn packer(
    enc: &EncKey,
    session: SessionId,
    backend: &DynBackend,
    opts: super::Options,
    rx: &crossbeam_channel::Receiver<StoredBlob>,
    tx: &tokio::sync::mpsc::Sender<SpooledPack>,
) -> Result<(), PipelineError> {
    let slots = opts.open_packs.max(2);
    let mut open: Vec<Option<OpenPack>> = (0..slots).map(|_| None).collect();
    let mut rng = rand::thread_rng();
    let send = |p: OpenPack| {
        tx.blocking_send(p.finish()?)
            .map_err(|_| PipelineError::Aborted)
    };
    for blob in rx {
        let slot = &mut open[rng.gen_range(0..slots)];
        if slot
            .as_ref()
            .is_some_and(|p| !p.writer.fits(blob.stored.len()))
        {
            send(
                slot.take()
                    .unwrap_or_else(|| unreachable!("checked is_some")),
            )?;
        }
        let p = match slot {
            Some(p) => p,
            None => slot.insert(OpenPack::new(enc, session, backend, opts.max_blob)?),
        };
        p.add(&blob)?;
        if p.writer.blob_bytes() >= opts.pack_size {
            send(slot.take().unwrap_or_else(|| unreachable!("just inserted")))?;
        }
    }
    for p in open.into_iter().flatten() {
        send(p)?;
    }
    Ok(())
}

/// Stores one spooled pack; the spool file goes when this returns.
pub(super) async fn upload(
    backend: DynBackend,
    spooled: SpooledPack,
    stats: Arc<Stats>,
) -> Result<IndexPack, PipelineError> {
    let SpooledPack { pack, spool } = spooled;
    backend
        .put_file(&pack.name(), spool.path(), PutMode::Create)
        .await?;
    drop(spool);
    Stats::add(&stats.stored_bytes, pack.length);
    Stats::add(&stats.packs, 1);
    Ok(IndexPack {
        id: pack.id,
        length: pack.length,
        blobs: pack.entries,
    })
}
