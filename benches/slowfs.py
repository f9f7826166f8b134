#!/usr/bin/env python3
"""A slow disk for benchmarks: a read-only passthrough FUSE file system that
waits DELAY_MS (default 1) before answering each request (lookup, getattr,
open, read, readdir, readlink), as a network block device or NFS server
answers after a round trip. Requests are served by many threads at once, so
a reader that keeps several requests in flight gets them back after one
delay, not one after another.

    python3 benches/slowfs.py SOURCE MOUNTPOINT [DELAY_MS]

Runs in the foreground until the mount point is unmounted
(`fusermount -u MOUNTPOINT`). Needs fusepy (PyPI) and libfuse2 (Debian's
libfuse2); benches/cold-tree.sh installs both.
"""

import errno
import os
import sys
import time

from fuse import FUSE, FuseOSError, Operations


class Slow(Operations):
    def __init__(self, root, delay):
        self.root = os.path.realpath(root)
        self.delay = delay

    def _path(self, path):
        time.sleep(self.delay)
        return os.path.join(self.root, path.lstrip("/"))

    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._path(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks",
                "st_atime", "st_mtime", "st_ctime", "st_ino")
        out = {k: getattr(st, k) for k in keys}
        out["st_atime"], out["st_mtime"], out["st_ctime"] = (
            st.st_atime_ns / 1e9, st.st_mtime_ns / 1e9, st.st_ctime_ns / 1e9)
        return out

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._path(path))

    def readlink(self, path):
        return os.readlink(self._path(path))

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise FuseOSError(errno.EROFS)
        return os.open(self._path(path), os.O_RDONLY)

    def read(self, path, size, offset, fh):
        time.sleep(self.delay)
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        os.close(fh)
        return 0

    def statfs(self, path):
        st = os.statvfs(self._path(path))
        return {k: getattr(st, k) for k in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
            "f_files", "f_flag", "f_frsize", "f_namemax")}


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    delay = float(sys.argv[3]) / 1000 if len(sys.argv) == 4 else 0.001
    FUSE(Slow(sys.argv[1], delay), sys.argv[2], foreground=True, nothreads=False,
         ro=True, use_ino=True, attr_timeout=1.0, entry_timeout=1.0)


if __name__ == "__main__":
    main()
