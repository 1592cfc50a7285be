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
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from wearables_ingest.errors import SourceError

HEADER = ("ts", "value")
BLOCK_BYTES = 4 << 20  # read size; a block is this much, cut back to the last line end
MAX_LINE_BYTES = 1 << 20  # a longer line is an error, not a reason to read the file into memory
TAIL_BYTES = 4096  # bytes before a resume position whose hash must still match

# The plain check, cheap enough to run on every byte (a regular expression per
# line would cost more than the database's own parsing).
PLAIN_BYTES = b"0123456789-+:.,TZeE \n"
_LINE_START = rb"\d{4}-[01]\d-[0-3]\d[T ](?:[01]\d|2[0-3]):[0-5]\d"
FIRST_LINE_PLAIN = re.compile(_LINE_START)
NEXT_LINE_NOT_PLAIN = re.compile(rb"\n(?!" + _LINE_START + rb")")
NAIVE_TS = re.compile(rb"[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?,")  # the time, then straight the comma


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
class Block:
    data: bytes  # whole lines, each ending in \n (CRLF already turned into LF)
    first_line: int  # line number of the first of them in the file
    end: Position  # where the next block starts
    rejects: tuple[Reject, ...] = ()  # lines too long to read, skipped just before ``data``

    @property
    def rows(self) -> int:
        return self.data.count(b"\n")

    def is_plain(self, naive_ok: bool = True) -> bool:
        """True when the block may go to the database unparsed (see the module's docstring).

        With ``naive_ok`` False, a timestamp without a UTC offset makes it not plain
        (it must be placed in the source time zone row by row).
        """
        data = self.data
        return (not self.rejects
                and not data.translate(None, PLAIN_BYTES)
                and FIRST_LINE_PLAIN.match(data) is not None
                and NEXT_LINE_NOT_PLAIN.search(data, 0, len(data) - 1) is None
                and (naive_ok or NAIVE_TS.search(data) is None))

    def utc_hours(self, naive_ok: bool = True) -> dict[np.datetime64, int] | None:
        """Rows per UTC hour of a plain block, read off its bytes, when every timestamp is in
        UTC ('Z', '+00:00', or no offset with ``naive_ok``); else None (parse it instead)."""
        data = self.data
        a = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(a == ord("\n"))
        if not len(ends):
            return {}
        starts = np.concatenate(([0], ends[:-1] + 1))
        # Each line's ts ends in "+00:00" or "Z" (counted in C, no pass per line), or the
        # lines without are checked one by one. A line of another shape fails its COPY.
        if data.count(b"+00:00,") + data.count(b"Z,") != len(ends):
            if not naive_ok:
                return None
            for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
                ts = data[start : data.find(b",", start, end)]
                if not (ts.endswith((b"+00:00", b"Z")) or not any(c in ts[10:] for c in b"+-Z")):
                    return None
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
    """Check the file's first line is the ``ts,value`` header (a UTF-8 BOM is allowed)."""
    if not first:
        raise SourceError(f"{path}: empty file (expected the header 'ts,value')")
    text = first.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace").rstrip("\r\n")
    if tuple(c.strip() for c in text.split(",")) != HEADER:
        raise SourceError(f"{path}:1: header is {text[:80]!r}, expected 'ts,value'")


def read_blocks(path: Path, start: Position = Position(),
                block_bytes: int = BLOCK_BYTES) -> Iterator[Block]:
    """The file's lines from ``start`` on, in blocks; checks the header when starting at 0.

    A last line without a line ending is read as complete. A line longer than
    MAX_LINE_BYTES is skipped (never held in memory whole) and handed on as a
    Reject of the next block.
    """
    try:
        with path.open("rb") as f:
            f.seek(start.offset)
            offset, line = start.offset, start.line  # file position and number of ``carry``
            if offset == 0:
                header = f.readline(MAX_LINE_BYTES)
                check_header(path, header)
                offset, line = len(header), 2
            carry = b""
            skipping: Reject | None = None
            rejects: list[Reject] = []
            while piece := f.read(block_bytes):
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
                        offset, carry = offset + len(data), b""
                    else:
                        carry = data
                    continue
                carry = data[cut:]
                rows = data.count(b"\n", 0, cut)
                yield Block(_lf(data[:cut]), line, Position(offset + cut, line + rows),
                            tuple(rejects))
                rejects = []
                offset += cut
                line += rows
            if skipping is not None:  # the over-long line was the last one
                rejects.append(skipping)
                line += 1
            if carry:
                yield Block(_lf(carry) + b"\n", line, Position(offset + len(carry), line + 1),
                            tuple(rejects))
            elif rejects:
                yield Block(b"", line, Position(offset, line), tuple(rejects))
    except OSError as e:
        raise SourceError(f"{path}: cannot read: {e.strerror}") from None


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n") if b"\r" in data else data


def tail_hash(path: Path, offset: int) -> str:
    """SHA-256 of the bytes just before ``offset``: tells whether the part already read changed."""
    with path.open("rb") as f:
        f.seek(max(0, offset - TAIL_BYTES))
        return hashlib.sha256(f.read(min(offset, TAIL_BYTES))).hexdigest()
