"""One run at a time: an exclusive lock on a file beside the checkpoint."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from wearables_ingest.errors import CheckpointError, LockedError


def lock_path(checkpoint_file: Path) -> Path:
    return checkpoint_file.with_name(checkpoint_file.name + ".lock")


@contextmanager
def locked(checkpoint_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<checkpoint>.lock`` for a whole run.

    A second run raises LockedError at once instead of waiting. The kernel
    drops the lock when its process ends, however it ends, so a crashed run
    never leaves a stale lock behind.
    """
    path = lock_path(checkpoint_file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot open the lock file: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise LockedError(f"{path}: another ingest run (pid {holder}) is in progress; "
                              "not starting") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
