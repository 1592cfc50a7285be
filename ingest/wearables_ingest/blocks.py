"""Reading a metric CSV file (header ``ts,value``) as blocks of whole lines from a position.

A daily run reads only what was appended since the last one. A *plain* block
(only digits, ``-+:.,TZeE``, spaces and line ends, every line starting with an
ISO 8601 date and time) can go to the database as it is: what the server could
read differently from us (``NaN``, ``now``, ``01-02-2024``) cannot pass that
check, and whatever the server still refuses is parsed again row by row (see
parse.py), which finds the exact line of a bad row.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np

from wearables_ingest.errors import SourceError
from wearables_ingest.opening import View, opened

HEADER = ("ts", "value")
BLOCK_BYTES = 4 << 20  # read size; a block is this much, cut back to the last line end
MAX_LINE_BYTES = 1 << 20  # a longer line is an error, not a reason to read the file into memory
TAIL_BYTES = 4096  # bytes before a resume position whose hash must still match

# The plain check: every line exactly ``YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}][Z|+00:00],value``
# (an hour up to 23 and a second up to 59: the server would read 24:00 or :60 as the
# next day or minute; at most 6 fractional digits: it would round more), the value only
# digits, sign, point, exponent and spaces. Checked with
# numpy over the whole block: a regular expression per line would cost more than the
# database's own parsing.
PLAIN_BYTES = b"0123456789-+:.,TZeE \n"
# Per place of ``YYYY-MM-DDTHH:MM:SS``: the lowest and highest byte allowed (place 10, the
# T or a space, is checked on its own).
_LOW = np.frombuffer(b"0000-00-00 00:00:00", dtype=np.uint8)
_HIGH = np.frombuffer(b"9999-19-39T29:59:59", dtype=np.uint8)
_SPAN = _HIGH - _LOW
_UTC_SUFFIX = b"+00:00"


@dataclass(frozen=True)
class Position:
    """How far into a file reading has got: bytes read, and the number of the next line."""

    offset: int = 0  # 0: the start, header included
    line: int = 1


@dataclass(frozen=True)
class Reject:
    """A row that cannot be loaded: where it is, why, and the line as it was read."""

    line: int
    reason: str
    raw: bytes


@dataclass(frozen=True)
class Lines:
    """Where each line of a plain block has its parts: byte offsets into its data."""

    starts: np.ndarray  # each line's first byte
    fixed: np.ndarray  # each line's first 19 bytes, YYYY-MM-DDTHH:MM:SS (uint8, lines x 19)
    commas: np.ndarray  # its comma
    ends: np.ndarray  # its line end
    fraction: np.ndarray  # bytes of the fraction of a second, point included (0: none)
    naive: bool  # whether any timestamp lacks an offset


@dataclass(frozen=True)
class Block:
    data: bytes  # whole lines, each ending in \n (CRLF already turned into LF)
    first_line: int  # line number of the first of them in the file
    end: Position  # where the next block starts
    rejects: tuple[Reject, ...] = ()  # lines too long to read, skipped just before ``data``
    tail: str | None = None  # tail_hash at ``end``, from the same opened file

    @cached_property
    def rows(self) -> int:
        return self.data.count(b"\n")

    @cached_property
    def _shape(self) -> Lines | None:
        """Where each line has its parts, for a plain block; else None."""
        data = self.data
        if self.rejects or not data or data.translate(None, PLAIN_BYTES):
            return None
        a = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(a == ord("\n"))
        starts = np.concatenate(([0], ends[:-1] + 1))
        commas = np.flatnonzero(a == ord(","))
        # Exactly one comma per line, after a timestamp of at least 19 bytes.
        if len(commas) != len(ends) or ((commas - starts) < 19).any() or (commas > ends).any():
            return None
        # Each line's first 19 bytes: rows of a strided view, copied 19 bytes at a time.
        fixed = np.lib.stride_tricks.sliding_window_view(a, 19)[starts]
        # (byte - low) <= (high - low) in unsigned bytes: low <= byte <= high in one pass.
        if not (((fixed - _LOW) <= _SPAN).all()
                and ((fixed[:, 10] == ord("T")) | (fixed[:, 10] == ord(" "))).all()
                and not ((fixed[:, 11] == ord("2")) & (fixed[:, 12] > ord("3"))).any()):
            return None  # (an hour 24 or more; a second 60 fails the range)
        # After the seconds: an optional fraction of 1-6 digits, then Z, +00:00 or nothing.
        zulu = a[commas - 1] == ord("Z")
        offset = np.ones(len(ends), dtype=bool)
        for back, char in enumerate(reversed(_UTC_SUFFIX), start=1):
            offset &= a[commas - back] == char
        offset &= commas - starts >= 25
        fraction = commas - starts - 19 - np.where(zulu, 1, np.where(offset, 6, 0))
        if not ((fraction == 0) | ((fraction >= 2) & (fraction <= 7))).all():
            return None
        has = np.flatnonzero(fraction)
        if len(has):
            if not (a[starts[has] + 19] == ord(".")).all():
                return None
            digit = (a >= ord("0")) & (a <= ord("9"))
            counted = np.cumsum(digit, dtype=np.int64)  # digits in [i, j]: c[j] - c[i-1]
            first, last = starts[has] + 20, starts[has] + 18 + fraction[has]
            if not (counted[last] - counted[first - 1] == fraction[has] - 1).all():
                return None
        return Lines(starts, fixed, commas, ends, fraction, not (zulu | offset).all())

    def is_plain(self, naive_ok: bool = True) -> bool:
        """True when the block may go to the database unparsed (see the module's docstring).

        With ``naive_ok`` False, a timestamp without a UTC offset makes it not plain
        (it must be placed in the source time zone row by row).
        """
        return self.lines(naive_ok) is not None

    def lines(self, naive_ok: bool = True) -> Lines | None:
        """Where each line has its parts, for a plain block (see is_plain); else None."""
        shape = self._shape
        if shape is None or (not naive_ok and shape.naive):
            return None
        return shape

    def utc_hours(self, naive_ok: bool = True) -> dict[np.datetime64, int] | None:
        """Rows per UTC hour of a plain block, read off its bytes; None when it is not plain
        (parse it instead)."""
        lines = self.lines(naive_ok)
        if lines is None:
            return None
        starts = lines.starts
        a = np.frombuffer(self.data, dtype=np.uint8)
        # The hour as the number YYYYMMDDHH, from the digits at fixed places of the line.
        key = np.zeros(len(starts), dtype=np.int64)
        for place in (0, 1, 2, 3, 5, 6, 8, 9, 11, 12):
            key = key * 10 + (a[starts + place] - ord("0"))
        # Rows come in time order, mostly: count runs of one hour, not a sort of every row.
        runs = np.concatenate(([0], np.flatnonzero(key[1:] != key[:-1]) + 1))
        counts = np.diff(np.append(runs, len(key)))
        hours: dict[int, int] = {}
        for k, n in zip(key[runs].tolist(), counts.tolist(), strict=True):
            hours[k] = hours.get(k, 0) + n
        try:
            return {np.datetime64(f"{k // 1000000:04d}-{k // 10000 % 100:02d}-"
                                  f"{k // 100 % 100:02d}T{k % 100:02d}", "h"): n
                    for k, n in hours.items()}
        except ValueError:  # the right shape, but no such day (2024-02-30)
            return None

    def plain_span(self, naive_ok: bool = True) -> tuple[np.datetime64, np.datetime64] | None:
        """For a plain block, the timestamps of its first and last line; else None."""
        if not self.is_plain(naive_ok):
            return None
        first = self.data[: self.data.index(b",")]
        last_start = self.data.rfind(b"\n", 0, len(self.data) - 1) + 1
        last = self.data[last_start : self.data.index(b",", last_start)]
        try:
            return _utc(first), _utc(last)
        except ValueError:  # the right shape, but no such day (2024-02-30)
            return None


def _utc(stamp: bytes) -> np.datetime64:
    parsed = datetime.fromisoformat(stamp.decode("ascii"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(parsed, "us")


def check_header(path: Path, first: bytes) -> None:
    """Check the file's first line is the ``ts,value`` header (a UTF-8 BOM is allowed).

    The message never quotes the line: a file that is not a metric file may hold anything.
    """
    if not first:
        raise SourceError(f"{path}: empty file (expected the header 'ts,value')")
    text = first.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace").rstrip("\r\n")
    if tuple(c.strip() for c in text.split(",")) != HEADER:
        raise SourceError(f"{path}:1: the first line is not the header 'ts,value'; "
                          "is it a metric file?")


def read_blocks(source: Path | View, start: Position = Position(),
                block_bytes: int = BLOCK_BYTES, settle_s: float = 0.0,
                tail: str | None = None) -> Iterator[Block]:
    """The file's lines from ``start`` on, in blocks; checks the header when starting at 0.

    ``source`` is a path, or the View a run planned with: then the file opened must
    still be that one (same inode, not shorter, ``tail`` still the hash before
    ``start``), and only its first ``View.size`` bytes are read, so a file replaced
    or rewritten during the run fails alone instead of being half-recorded.

    A last line without its line ending may still be growing: it is read only once
    the file has stayed unchanged for ``settle_s`` seconds. A line longer than
    MAX_LINE_BYTES is skipped (never held in memory whole) and handed on as a
    Reject of the next block.
    """
    path = source.path if isinstance(source, View) else source
    with opened(path) as (fd, st):
        view = source if isinstance(source, View) else View.of(path, st)
        if ((st.st_dev, st.st_ino) != (view.device, view.inode) or st.st_size < view.size
                or (tail is not None and tail_of(fd, start.offset) != tail)):
            raise SourceError(f"{path}: replaced or rewritten during the run; not loaded now, "
                              "read again by the next run")
        yield from _blocks(fd, path, view, start, block_bytes,
                           settled=time.time() - view.mtime >= settle_s)


def _blocks(fd: int, path: Path, view: View, start: Position, block_bytes: int,
            settled: bool) -> Iterator[Block]:
    size = view.size
    offset, line = start.offset, start.line  # file position and number of ``carry``
    pos = offset  # how far the file has been read
    if offset == 0:
        head = os.pread(fd, min(size, MAX_LINE_BYTES), 0)
        nl = head.find(b"\n")
        if nl >= 0:
            header = head[: nl + 1]
        elif settled or not size or len(head) >= MAX_LINE_BYTES:
            header = head  # the whole file is one line: the header or not, it is complete
        else:
            return  # the header itself is still being written
        check_header(path, header)
        offset = pos = len(header)
        line = 2
    carry = b""
    skipping: Reject | None = None
    skip_start = 0
    rejects: list[Reject] = []

    def block(data: bytes, first: int, end: Position) -> Block:
        return Block(_lf(data), first, end, tuple(rejects), tail_of(fd, end.offset))

    while pos < size:
        piece = os.pread(fd, min(block_bytes, size - pos), pos)
        if not piece:  # shorter than it was a moment ago: truncated under us
            raise SourceError(f"{path}: truncated during the run; not loaded now, read again "
                              "by the next run")
        pos += len(piece)
        if skipping is not None:  # inside an over-long line: drop bytes to its end
            nl = piece.find(b"\n")
            if nl < 0:
                offset += len(piece)
                continue
            rejects.append(skipping)
            skipping = None
            offset, line = offset + nl + 1, line + 1
            piece = piece[nl + 1 :]
        data = carry + piece
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) > MAX_LINE_BYTES:
                skipping = Reject(line, f"line longer than {MAX_LINE_BYTES:,} bytes",
                                  data[:200])
                skip_start = offset
                offset, carry = offset + len(data), b""
            else:
                carry = data
            continue
        carry = data[cut:]
        rows = data.count(b"\n", 0, cut)
        yield block(data[:cut], line, Position(offset + cut, line + rows))
        rejects = []
        offset += cut
        line += rows
    if skipping is not None:
        if settled:  # the over-long line was the last one
            rejects.append(skipping)
            line += 1
        else:  # it may still be growing: read it again next time
            offset = skip_start
    if carry and settled:
        yield block(carry + b"\n", line, Position(offset + len(carry), line + 1))
    elif rejects:
        yield block(b"", line, Position(offset, line))


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n") if b"\r" in data else data


def tail_of(fd: int, offset: int) -> str:
    """SHA-256 of the bytes just before ``offset``: tells whether the part already read changed."""
    return hashlib.sha256(os.pread(fd, min(offset, TAIL_BYTES),
                                   max(0, offset - TAIL_BYTES))).hexdigest()


def tail_hash(path: Path, offset: int) -> str:
    """tail_of for a path (opened as every source file is: see ``opened``)."""
    with opened(path) as (fd, _):
        return tail_of(fd, offset)
