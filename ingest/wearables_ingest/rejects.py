"""The rejects file: rows that could not be loaded, with file, line and reason (CSV).

It holds participant data, so it is private (0600, also when an older file was
not) and bounded: each row once (by file, line and content, however often a run
or --full offers it again), and at most ``max_bytes`` a file. A row that would
pass that moves the file to ``rejects.csv.1`` (replacing the one before) and
starts a new one: the two newest files are kept, older rows are deleted.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path

from wearables_ingest.blocks import Reject
from wearables_ingest.discovery import SourceFile
from wearables_ingest.errors import CheckpointError
from wearables_ingest.timestamps import now_utc

HEADER = ["rejected_at", "file", "line", "reason", "raw_line"]
MODE = 0o600

Key = tuple[str, str, str]  # file, line, raw_line: the same row offered again
# Keys of the rows the files hold, by path, with the files' identity when read:
# one run appends for many files, and reads the files once.
_known: dict[Path, tuple[tuple, set[Key]]] = {}


def rotated(path: Path) -> Path:
    """Where the rows before the newest ``max_bytes`` go: ``rejects.csv.1``."""
    return path.with_name(path.name + ".1")


def _identity(path: Path) -> tuple:
    out = []
    for p in (path, rotated(path)):
        try:
            s = p.stat()
            out.append((s.st_ino, s.st_size, s.st_mtime_ns))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def _keys(path: Path) -> set[Key]:
    """The rows both files hold (making a looser older file private on the way)."""
    identity = _identity(path)
    cached = _known.get(path)
    if cached is not None and cached[0] == identity:
        return cached[1]
    keys: set[Key] = set()
    for p in (rotated(path), path):
        try:
            with _open(p, os.O_RDONLY) as f:
                keys.update((row[1], row[2], row[4]) for row in csv.reader(f)
                            if len(row) == len(HEADER) and row != HEADER)
        except FileNotFoundError:
            pass
    _known[path] = (_identity(path), keys)
    return keys


def _open(path: Path, flags: int):
    """The file, never through a symbolic link, and 0600 whatever it was before."""
    fd = os.open(path, flags | os.O_NOFOLLOW, MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != MODE:
            os.fchmod(fd, MODE)
        return os.fdopen(fd, "a" if flags & os.O_APPEND else "r", encoding="utf-8",
                         newline="", errors="backslashreplace")
    except BaseException:
        os.close(fd)
        raise


def _line(fields: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(fields)
    return buffer.getvalue()


def append(path: Path, source: SourceFile, rejects: list[Reject], max_bytes: int) -> int:
    """Add the rows the files do not hold yet; return how many were added."""
    header = _line(HEADER)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = _keys(path)
        when = now_utc()
        added = size = 0
        out = None
        try:
            for r in rejects:
                raw = r.raw.decode("utf-8", "backslashreplace")
                key = (str(source.path), str(r.line), raw)
                if key in keys:
                    continue
                line = _line([when, key[0], r.line, r.reason, raw])
                if out is None:
                    out = _open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                    size = out.tell()  # append mode: the end of the file
                if size > len(header) and size + len(line.encode()) > max_bytes:
                    out.close()
                    os.replace(path, rotated(path))
                    out = _open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                    size = 0
                if size == 0:
                    out.write(header)
                    size = len(header)  # ASCII
                out.write(line)
                size += len(line.encode())
                keys.add(key)
                added += 1
        finally:
            if out is not None:
                out.close()
        _known[path] = (_identity(path), keys)
        return added
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write the rejects file: {e.strerror}") from None
