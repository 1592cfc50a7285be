"""Finding and reading the flattened metric CSV files (``<metric>.csv``, header ``ts,value``).

A file is read as blocks of whole lines from a byte position, so a daily run
reads only what was appended since the last one. A *plain* block (only digits,
``-+:.,TZeE``, spaces and line ends, every line starting with an ISO 8601 date
and time) can go to the database as it is: what the server could read
differently from us (``NaN``, ``now``, ``01-02-2024``) cannot pass that check,
and whatever the server still refuses is parsed again row by row, which finds
the exact line of a bad row. Nothing here touches the database or the checkpoint.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

HEADER = ("ts", "value")
METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")
PARTICIPANT_DIR = re.compile(r"participant_(\d+)")
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


class SourceError(Exception):
    """A file-level problem: the message names the file (and the line, where there is one)."""


@dataclass(frozen=True)
class SourceFile:
    participant: int
    metric: str
    path: Path
    label: str  # how the summary names it: "hr", or "participant_007/hr"


@dataclass(frozen=True)
class Chunk:
    ts: np.ndarray  # datetime64[us], UTC, no time zone attached
    values: np.ndarray  # float64; NaN where the file's value was empty (stored as NULL)

    def __len__(self) -> int:
        return len(self.ts)


def discover(data_dir: Path, participant: int) -> tuple[list[SourceFile], list[SourceError]]:
    """The metric files under ``data_dir``, sorted, and the files that cannot be metrics.

    ``data_dir`` holds either the ``<metric>.csv`` files of one participant, or
    folders named ``participant_NNN``, each holding that participant's files.
    """
    if not data_dir.is_dir():
        raise SourceError(f"{data_dir}: data folder not found")
    folders = sorted(
        (int(m.group(1)), p)
        for p in data_dir.iterdir()
        if p.is_dir() and (m := PARTICIPANT_DIR.fullmatch(p.name))
    )
    if not folders:
        return _metric_files(data_dir, participant, prefix="")
    loose = sorted(p.name for p in data_dir.glob("*.csv"))
    if loose:
        raise SourceError(f"{data_dir}: holds both participant_NNN folders and CSV files "
                          f"({', '.join(loose)}); keep one layout")
    files: list[SourceFile] = []
    problems: list[SourceError] = []
    for number, folder in folders:
        found, bad = _metric_files(folder, number, prefix=f"{folder.name}/")
        files += found
        problems += bad
    return files, problems


def _metric_files(folder: Path, participant: int, prefix: str) -> tuple[list[SourceFile], list]:
    files, problems = [], []
    for path in sorted(folder.glob("*.csv")):
        metric = path.name[: -len(".csv")]
        if METRIC_NAME.fullmatch(metric):
            files.append(SourceFile(participant, metric, path, prefix + metric))
        else:
            problems.append(SourceError(
                f"{path}: {metric!r} is not a metric name (lowercase letters, digits and _, "
                "starting with a letter); file skipped"))
    return files, problems


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


def parse_block(block: Block, source_tz: str = "UTC") -> tuple[Chunk, list[Reject]]:
    """Parse a block row by row: the good rows, and a Reject for each bad one.

    Blank lines are skipped. Timestamps without a UTC offset are read in
    ``source_tz`` (see ``localize``).
    """
    import pandas as pd  # only here: a run with nothing to parse never pays for the import

    rejects = list(block.rejects)
    ts_text, value_text, lines, raws = [], [], [], []
    for i, raw in enumerate(block.data.split(b"\n")[:-1]):
        line = block.first_line + i
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            rejects.append(Reject(line, f"not UTF-8 text ({e.reason} at byte {e.start})", raw))
            continue
        if not text.strip():
            continue
        fields = next(csv.reader([text])) if '"' in text else text.split(",")
        if len(fields) != 2:
            rejects.append(Reject(line, f"{len(fields)} fields, expected 2", raw))
            continue
        ts_text.append(fields[0].strip())
        value_text.append(fields[1].strip())
        lines.append(line)
        raws.append(raw)

    ts = pd.Series(ts_text, dtype=object)
    values = pd.Series(value_text, dtype=object)
    stamps, ts_reasons = localize(ts, source_tz)
    empty = (values == "").to_numpy()
    numbers = pd.to_numeric(values.mask(empty), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan)
    bad_value = ~np.isfinite(numbers) & ~empty

    good = np.ones(len(ts), dtype=bool)
    for i in np.flatnonzero(ts_reasons.notna().to_numpy() | bad_value):
        reason = ts_reasons.iloc[i]
        if not isinstance(reason, str):
            reason = f"value {value_text[i][:60]!r} is not a finite number"
        rejects.append(Reject(lines[i], reason, raws[i]))
        good[i] = False
    rejects.sort(key=lambda r: r.line)
    return Chunk(stamps[good], numbers[good]), rejects


def localize(ts: pd.Series, source_tz: str) -> tuple[np.ndarray, pd.Series]:
    """Timestamps as datetime64[us] in UTC, and per row None or why it cannot be read.

    A timestamp with a UTC offset means that instant. One without is local time
    in ``source_tz``: in the repeated hour of an autumn DST change, the file's
    order says which is which (the first pass is summer time); where it cannot
    tell, the rows are refused, and a time in the spring-forward gap, which
    does not exist, is refused too.
    """
    import pandas as pd

    reasons = pd.Series([None] * len(ts), dtype=object)
    out = np.full(len(ts), np.datetime64("NaT"), dtype="datetime64[us]")
    year_first = ts.str.match(r"\d{4}-").fillna(False).to_numpy(dtype=bool)  # not "now"
    has_offset = ts.str.contains(r"[T ]\d\d:\d\d.*(?:Z|[+-]\d\d(?::?\d\d)?)$").fillna(
        False).to_numpy(dtype=bool)
    if source_tz == "UTC":
        has_offset = np.ones(len(ts), dtype=bool)  # offset-less is UTC: parse all alike

    aware = pd.to_datetime(ts[has_offset], format="ISO8601", utc=True, errors="coerce")
    out[has_offset] = aware.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
    naive_idx = np.flatnonzero(~has_offset)
    if len(naive_idx):
        local = pd.to_datetime(ts.iloc[naive_idx], format="ISO8601", errors="coerce")
        gap = local.dt.tz_localize(source_tz, ambiguous=np.ones(len(local), dtype=bool),
                                   nonexistent="NaT").isna() & local.notna()
        placed = local.dt.tz_localize(source_tz, ambiguous="NaT", nonexistent="NaT")
        ambiguous = placed.isna() & local.notna() & ~gap
        if ambiguous.any():
            try:  # the order of the repeated hour's rows shows which is which
                placed[ambiguous] = local[ambiguous].dt.tz_localize(source_tz, ambiguous="infer")
            except (ValueError, TypeError):
                for i in np.flatnonzero(ambiguous.to_numpy()):
                    reasons.iloc[naive_idx[i]] = (
                        f"local time {ts.iloc[naive_idx[i]]!r} happens twice in {source_tz} "
                        "(DST change) and the order of rows does not show which")
        for i in np.flatnonzero(gap.to_numpy()):
            reasons.iloc[naive_idx[i]] = (f"local time {ts.iloc[naive_idx[i]]!r} does not exist "
                                          f"in {source_tz} (DST change)")
        out[naive_idx] = placed.dt.tz_convert("UTC").dt.tz_convert(None).to_numpy(
            dtype="datetime64[us]")
    unreadable = (np.isnat(out) | ~year_first) & reasons.isna().to_numpy()
    for i in np.flatnonzero(unreadable):
        reasons.iloc[i] = f"timestamp {ts.iloc[i][:60]!r} is not ISO 8601"
    return out, reasons


def newer_than(chunk: Chunk, mark: np.datetime64 | None) -> Chunk:
    """The rows of ``chunk`` strictly newer than ``mark`` (all of them when there is no mark)."""
    if mark is None:
        return chunk
    keep = chunk.ts > mark
    if keep.all():
        return chunk
    return Chunk(chunk.ts[keep], chunk.values[keep])
