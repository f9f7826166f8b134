//! Mutable objects (leases, `gc/state`) in a local directory, without a
//! lock: each version is a create-only file `<name>.v/<n>` (n = 1, 2, …),
//! and the object is its highest version. A compare-and-swap from version
//! n creates n + 1 with `link(2)`, which fails if another writer created it
//! first; so of two writers that read n exactly one wins, and a process
//! paused in the middle holds nothing that others wait for (a lock would:
//! a stopped prune holding it stopped every other).
//!
//! Versions older than the one before the current are removed. A late
//! swap from such an old version could then recreate a number that is
//! gone; it sees a higher version after linking, removes its file and
//! reports the object changed (nothing reads below the current version).

use super::{fsync_dir, write_object, Modes, PutMode};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The directory of `path`'s versions.
pub(super) fn dir_of(path: &Path) -> PathBuf {
    let mut d = path.as_os_str().to_owned();
    d.push(".v");
    PathBuf::from(d)
}

/// The object a versions directory holds (`leases/<sid>.v` →
/// `leases/<sid>`), for listings.
pub(super) fn object_of(entry: &str) -> Option<&str> {
    entry.strip_suffix(".v")
}

/// The version numbers present, ascending; `NotFound` if the directory is
/// missing.
fn numbers(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out: Vec<u64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "no version of the object exists")
}

/// The current version: its bytes, number and metadata.
pub(super) fn read(dir: &Path) -> io::Result<(Vec<u8>, u64, fs::Metadata)> {
    // A version read as current may be removed before it is opened (two
    // newer ones were written meanwhile): look again.
    for _ in 0..8 {
        let Some(&n) = numbers(dir)?.last() else {
            return Err(not_found());
        };
        let path = dir.join(n.to_string());
        match fs::File::open(&path) {
            Ok(mut f) => {
                let meta = f.metadata()?;
                let mut data = Vec::new();
                io::Read::read_to_end(&mut f, &mut data)?;
                return Ok((data, n, meta));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "the object changed too fast to be read; try again",
    ))
}

/// Writes version `n` create-only (as any object): `AlreadyExists` if it
/// exists.
fn link_version(dir: &Path, n: u64, data: &[u8], modes: Modes) -> io::Result<()> {
    write_object(&dir.join(n.to_string()), data, PutMode::Create, modes)
}

/// Creates the object (version 1); `AlreadyExists` if it has a version.
/// The directory is made with its first version under a temporary name and
/// renamed into place, so nobody ever sees the object without a version
/// (a prune would take that for a lease that is gone).
pub(super) fn create(dir: &Path, data: &[u8], modes: Modes) -> io::Result<u64> {
    let parent = dir.parent().ok_or_else(not_found)?;
    modes.create_dirs(parent)?;
    let tmp = crate::util::temp_path(parent);
    modes.create_dirs(&tmp)?;
    let made = link_version(&tmp, 1, data, modes).and_then(|()| {
        // Onto an empty directory (left by a crash) the rename succeeds;
        // onto one holding a version it fails.
        fs::rename(&tmp, dir).map_err(|e| {
            use rustix::io::Errno;
            match Errno::from_io_error(&e) {
                Some(Errno::NOTEMPTY | Errno::EXIST) => {
                    io::Error::new(io::ErrorKind::AlreadyExists, "the object exists")
                }
                _ => e,
            }
        })
    });
    if made.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    made?;
    fsync_dir(parent)?;
    Ok(1)
}

/// The answer of a compare-and-swap that did not replace.
#[derive(Debug)]
pub(super) struct Changed;

/// Replaces version `expected` by a new one; `Ok(Err(Changed))` if
/// `expected` is not the current version.
pub(super) fn swap(
    dir: &Path,
    data: &[u8],
    expected: u64,
    modes: Modes,
) -> io::Result<Result<u64, Changed>> {
    if !dir.is_dir() {
        return Err(not_found());
    }
    let next = expected + 1;
    match link_version(dir, next, data, modes) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Err(Changed)),
        Err(e) => return Err(e),
    }
    let present = match numbers(dir) {
        Ok(n) => n,
        // Deleted right after our write: as a put followed by a delete.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ok(next)),
        Err(e) => return Err(e),
    };
    if present.last().is_some_and(|&max| max > next) {
        // We recreated a number removed long ago: the object had moved on.
        let _ = fs::remove_file(dir.join(next.to_string()));
        return Ok(Err(Changed));
    }
    for old in present.iter().filter(|&&n| n + 1 < expected) {
        let _ = fs::remove_file(dir.join(old.to_string()));
    }
    Ok(Ok(next))
}

/// Replaces whatever is current (creating the object if it has none).
pub(super) fn overwrite(dir: &Path, data: &[u8], modes: Modes) -> io::Result<u64> {
    loop {
        let current = match read(dir) {
            Ok((_, n, _)) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match create(dir, data, modes) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                r => return r,
            },
            Err(e) => return Err(e),
        };
        if let Ok(n) = swap(dir, data, current, modes)? {
            return Ok(n);
        }
    }
}

/// Deletes the object: its directory is first renamed out of the way (a
/// swap racing with the delete then finds nothing), then removed.
pub(super) fn remove(dir: &Path) -> io::Result<()> {
    let parent = dir.parent().ok_or_else(not_found)?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(not_found)?;
    let gone = parent.join(format!(
        ".deleted-{name}-{}",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    fs::rename(dir, &gone)?;
    fs::remove_dir_all(&gone)?;
    fsync_dir(parent)
}
