//! File-system calls of a tree restore that never follow a symbolic link
//! they did not create.
//!
//! A restore target may already hold entries, put there by anyone who can
//! write into it: `d01 -> /etc` must not make a restore write into `/etc`.
//! So every entry is reached from a directory handle, one name at a time:
//! directories are opened with `O_NOFOLLOW | O_DIRECTORY`, files with
//! `O_NOFOLLOW`, and links, renames, owners and times use the `*at` calls on
//! the name itself (`AT_SYMLINK_NOFOLLOW`), never a path the kernel would
//! resolve through a link. An entry in the way (a symlink where a directory
//! goes, a file where a link goes) is removed, not followed. Only the target
//! directory itself, which the user names, is opened as given.

use crate::xattr::{self, NotSet};
use cairn_repo_format::{NodeKind, NodeMeta, Xattr};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

/// An open directory of the target.
pub type Dir = std::sync::Arc<OwnedFd>;

fn io(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// Opens the target directory, creating it (and its parents) if missing.
///
/// # Errors
/// If it cannot be created or opened, or is not a directory.
pub fn open_target(target: &Path) -> std::io::Result<Dir> {
    std::fs::create_dir_all(target)?;
    let fd = rustix::fs::open(
        target,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)?;
    Ok(std::sync::Arc::new(fd))
}

fn open_dir_nofollow(parent: &OwnedFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Removes whatever is at `name` (a file, a symlink, an empty directory);
/// nothing there is fine.
///
/// # Errors
/// If it cannot be removed (a directory that is not empty, permissions).
pub fn remove(parent: &OwnedFd, name: &OsStr) -> std::io::Result<()> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR | Errno::PERM) => {
            match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}

/// Opens the directory `name`, creating it if missing and replacing a
/// file or symlink in its place.
///
/// # Errors
/// If it cannot be created or opened.
pub fn ensure_dir(parent: &OwnedFd, name: &OsStr) -> std::io::Result<Dir> {
    let fd = match open_dir_nofollow(parent, name) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => {
            make_dir(parent, name)?;
            open_dir_nofollow(parent, name).map_err(io)?
        }
        // A symlink (ELOOP) or anything else that is not a directory.
        Err(Errno::LOOP | Errno::NOTDIR) => {
            remove(parent, name)?;
            make_dir(parent, name)?;
            open_dir_nofollow(parent, name).map_err(io)?
        }
        Err(e) => return Err(io(e)),
    };
    Ok(std::sync::Arc::new(fd))
}

fn make_dir(parent: &OwnedFd, name: &OsStr) -> std::io::Result<()> {
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// Opens the directory at `rel` below `root`, one component at a time,
/// following no symlink.
///
/// # Errors
/// If a component is missing, is not a directory, or is a symlink.
pub fn open_beneath(root: &Dir, rel: &Path) -> std::io::Result<Dir> {
    let mut dir = root.clone();
    for part in rel.iter() {
        dir = std::sync::Arc::new(open_dir_nofollow(&dir, part).map_err(io)?);
    }
    Ok(dir)
}

/// Creates a new regular file `name` (mode 0600 until its metadata is
/// applied); fails if anything exists there.
///
/// # Errors
/// If it cannot be created.
pub fn create_file(parent: &OwnedFd, name: &OsStr) -> std::io::Result<std::fs::File> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map(std::fs::File::from)
    .map_err(io)
}

/// Opens the regular file `name` for writing, never through a symlink.
///
/// # Errors
/// If it is missing, a symlink, or cannot be opened.
pub fn open_file(parent: &OwnedFd, name: &OsStr) -> std::io::Result<std::fs::File> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(std::fs::File::from)
    .map_err(io)
}

/// Creates the symlink `name` pointing at `link` (replacing what is there).
///
/// # Errors
/// If it cannot be created.
pub fn symlink(parent: &OwnedFd, name: &OsStr, link: &OsStr) -> std::io::Result<()> {
    remove(parent, name)?;
    rustix::fs::symlinkat(link, parent, name).map_err(io)
}

/// Hard-links `to` in `to_dir` to the existing `from` in `from_dir`
/// (replacing what is at `to`).
///
/// # Errors
/// If the link cannot be made.
pub fn hard_link(
    from_dir: &OwnedFd,
    from: &OsStr,
    to_dir: &OwnedFd,
    to: &OsStr,
) -> std::io::Result<()> {
    remove(to_dir, to)?;
    rustix::fs::linkat(from_dir, from, to_dir, to, AtFlags::empty()).map_err(io)
}

/// Renames `from` to `to` in one directory (replacing what is at `to`,
/// which is never followed).
///
/// # Errors
/// If the rename fails (`to` is a directory that is not empty, say).
pub fn rename(dir: &OwnedFd, from: &OsStr, to: &OsStr) -> std::io::Result<()> {
    match rustix::fs::renameat(dir, from, dir, to) {
        Err(Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST) => {
            remove(dir, to)?;
            rustix::fs::renameat(dir, from, dir, to).map_err(io)
        }
        r => r.map_err(io),
    }
}

fn times(meta: &NodeMeta) -> Timestamps {
    let t = Timespec {
        tv_sec: meta.mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: meta.mtime_ns.rem_euclid(1_000_000_000),
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn owner(meta: &NodeMeta) -> (Option<Uid>, Option<Gid>) {
    (
        Some(Uid::from_raw_unchecked(meta.uid)),
        Some(Gid::from_raw_unchecked(meta.gid)),
    )
}

/// Applies owner (when we may: as root), extended attributes, mode and
/// times to an open file or directory, in that order: a new owner clears
/// `security.capability`, and the mode last keeps set-id bits a new owner
/// would also clear. Returns the attributes that could not be set.
///
/// # Errors
/// If the mode or times cannot be set.
pub fn apply_meta(
    fd: impl AsFd,
    meta: &NodeMeta,
    xattrs: &[Xattr],
) -> std::io::Result<Vec<NotSet>> {
    let (uid, gid) = owner(meta);
    // Ownership is restored when we may; otherwise entries belong to us.
    let _ = rustix::fs::fchown(&fd, uid, gid);
    let not_set = xattr::apply_fd(&fd, xattrs);
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode & 0o7777)).map_err(io)?;
    rustix::fs::futimens(&fd, &times(meta)).map_err(io)?;
    Ok(not_set)
}

/// Applies owner, extended attributes and times (and, unless it is a
/// symlink, the mode) to the entry `name` itself, which is not opened: a
/// symlink, a FIFO, a socket or a device file. Returns the attributes that
/// could not be set.
///
/// # Errors
/// If the mode or times cannot be set.
pub fn apply_entry_meta(
    parent: &OwnedFd,
    name: &OsStr,
    meta: &NodeMeta,
    xattrs: &[Xattr],
    symlink: bool,
) -> std::io::Result<Vec<NotSet>> {
    let (uid, gid) = owner(meta);
    let _ = rustix::fs::chownat(parent, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW);
    let not_set = xattr::apply_at(parent, name, xattrs);
    if !symlink {
        // chmod has no no-follow form: the entry is opened as a path
        // without following it, checked not to be a symlink planted since,
        // and changed through its handle.
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io)?;
        let st = rustix::fs::fstat(&fd).map_err(io)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            return Err(io(Errno::LOOP));
        }
        let handle = format!("/proc/self/fd/{}", fd.as_raw_fd());
        rustix::fs::chmod(handle.as_str(), Mode::from_raw_mode(meta.mode & 0o7777)).map_err(io)?;
    }
    rustix::fs::utimensat(parent, name, &times(meta), AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
    Ok(not_set)
}

/// Makes the FIFO, socket or device file `name` (replacing what is
/// there), private until its metadata is applied.
///
/// # Errors
/// If it cannot be made (a device file without the privilege to).
pub fn special(parent: &OwnedFd, name: &OsStr, kind: &NodeKind) -> std::io::Result<()> {
    let (file_type, dev) = match *kind {
        NodeKind::Fifo => (FileType::Fifo, 0),
        NodeKind::Socket => (FileType::Socket, 0),
        NodeKind::CharDevice { major, minor } => {
            (FileType::CharacterDevice, rustix::fs::makedev(major, minor))
        }
        NodeKind::BlockDevice { major, minor } => {
            (FileType::BlockDevice, rustix::fs::makedev(major, minor))
        }
        _ => return Err(std::io::Error::other("not a special file")),
    };
    remove(parent, name)?;
    rustix::fs::mknodat(parent, name, file_type, Mode::from_raw_mode(0o600), dev).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let target = tmp.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("d")).unwrap();
        std::os::unix::fs::symlink(outside.join("f"), target.join("f")).unwrap();
        let root = open_target(&target).unwrap();
        let d = ensure_dir(&root, OsStr::new("d")).unwrap();
        create_file(&d, OsStr::new("x")).unwrap();
        assert!(open_file(&root, OsStr::new("f")).is_err());
        remove(&root, OsStr::new("f")).unwrap();
        create_file(&root, OsStr::new("f")).unwrap();
        assert!(target.join("d").is_dir() && !target.join("d").is_symlink());
        assert!(target.join("d/x").is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert!(open_beneath(&root, Path::new("d")).is_ok());
        std::os::unix::fs::symlink(&outside, target.join("d/l")).unwrap();
        assert!(open_beneath(&root, Path::new("d/l")).is_err());
    }
}
