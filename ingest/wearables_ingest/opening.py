"""Opening a source file: only a regular file, never through a symbolic link, never blocking.

The data folder is a box: discovery (discovery.py) reports links, FIFOs,
sockets and devices without opening them, and every open here uses
``O_NOFOLLOW`` and ``O_NONBLOCK`` and then checks the opened descriptor with
``fstat``, so a name swapped for a link or a FIFO after discovery is caught
too, without waiting and without reading a byte of it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from wearables_ingest.errors import SourceError

FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class View:
    """One file as a run saw it when planning: which file (device, inode), its size, its mtime."""

    path: Path
    device: int
    inode: int
    size: int
    mtime: float

    @classmethod
    def of(cls, path: Path, st: os.stat_result) -> View:
        return cls(path, st.st_dev, st.st_ino, st.st_size, st.st_mtime)


@contextmanager
def opened(path: Path) -> Iterator[tuple[int, os.stat_result]]:
    """The file's descriptor and its fstat; a SourceError (naming only the path) otherwise."""
    try:
        fd = os.open(path, FLAGS)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SourceError(f"{path}: is a symbolic link, not a regular file; not read (the "
                              "data folder may hold only regular files and folders, no links)"
                              ) from None
        if e.errno == errno.ENOENT:
            raise SourceError(f"{path}: vanished during the run; not loaded") from None
        if e.errno == errno.ENXIO:  # a socket
            raise SourceError(f"{path}: is not a regular file; not read") from None
        raise SourceError(f"{path}: cannot read: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"{path}: is not a regular file (a FIFO, socket, device or "
                              "folder); not read")
        yield fd, st
    finally:
        os.close(fd)
