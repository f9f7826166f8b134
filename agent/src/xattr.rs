//! Extended attributes (format §7.2): POSIX ACLs, file capabilities,
//! SELinux labels and user attributes, read from an entry without following
//! it and written back to an open file or through a directory handle.

use cairn_repo_format::{Xattr, MAX_XATTRS};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Calls `f` with a growing buffer until what it returns fits (the size can
/// change between a query and the read: another process writes meanwhile).
fn sized(mut f: impl FnMut(&mut Vec<u8>) -> rustix::io::Result<()>) -> rustix::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        match f(&mut buf) {
            Err(Errno::RANGE) if buf.capacity() < (1 << 20) => {
                buf.reserve(buf.capacity() * 4);
            }
            r => return r.map(|()| buf),
        }
    }
}

/// The extended attributes of `path` itself (a symlink's own, not its
/// target's), sorted by name. A file system without them gives none; an
/// attribute removed between the list and its read is left out.
///
/// # Errors
/// If the list or a value cannot be read (permissions, I/O), or the entry
/// has more than the format allows.
pub fn read(path: &Path) -> std::io::Result<Vec<Xattr>> {
    let names = match sized(|b| {
        rustix::fs::llistxattr(path, rustix::buffer::spare_capacity(b)).map(drop)
    }) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        match sized(|b| {
            rustix::fs::lgetxattr(path, name, rustix::buffer::spare_capacity(b)).map(drop)
        }) {
            Ok(value) => out.push(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            }),
            Err(Errno::NODATA) => {}
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::Error::from(e).kind(),
                    format!("reading extended attribute {}: {e}", name.to_string_lossy()),
                ))
            }
        }
    }
    if out.len() > MAX_XATTRS {
        return Err(std::io::Error::other(format!(
            "{} extended attributes, more than the {MAX_XATTRS} a snapshot keeps",
            out.len()
        )));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One attribute that could not be set, and why.
#[derive(Debug)]
pub struct NotSet {
    /// The attribute's name.
    pub name: String,
    /// Why.
    pub cause: std::io::Error,
}

impl std::fmt::Display for NotSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "extended attribute {}: {}", self.name, self.cause)
    }
}

fn set_each(
    xattrs: &[Xattr],
    mut set: impl FnMut(&OsStr, &[u8]) -> rustix::io::Result<()>,
) -> Vec<NotSet> {
    xattrs
        .iter()
        .filter_map(|x| {
            let name = OsStr::from_bytes(&x.name);
            set(name, &x.value).err().map(|e| NotSet {
                name: name.to_string_lossy().into_owned(),
                cause: e.into(),
            })
        })
        .collect()
}

/// Sets `xattrs` on an open file or directory; returns those that could not
/// be set (a `security.*` attribute without privilege, a file system
/// without user attributes), having set the rest.
pub fn apply_fd(fd: impl AsFd, xattrs: &[Xattr]) -> Vec<NotSet> {
    set_each(xattrs, |name, value| {
        rustix::fs::fsetxattr(&fd, name, value, rustix::fs::XattrFlags::empty())
    })
}

/// Sets `xattrs` on the entry `name` of the open directory `dir` without
/// following it (a symlink or a device file, which cannot be opened for
/// this): through the directory's handle in `/proc/self/fd`, so no path
/// outside the restore is ever resolved.
pub fn apply_at(dir: impl AsFd, name: &OsStr, xattrs: &[Xattr]) -> Vec<NotSet> {
    if xattrs.is_empty() {
        return Vec::new();
    }
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd())).join(name);
    set_each(xattrs, |n, value| {
        rustix::fs::lsetxattr(&path, n, value, rustix::fs::XattrFlags::empty())
    })
}
