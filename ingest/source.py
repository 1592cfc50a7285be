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

import hashlib
import io
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
class Block:
    data: bytes  # whole lines, each ending in \n (CRLF already turned into LF)
    first_line: int  # line number of the first of them in the file
    end: Position  # where the next block starts

    @property
    def rows(self) -> int:
        return self.data.count(b"\n")

    def is_plain(self) -> bool:
        """True when the block may go to the database unparsed (see the module's docstring)."""
        data = self.data
        return (not data.translate(None, PLAIN_BYTES)
                and FIRST_LINE_PLAIN.match(data) is not None
                and NEXT_LINE_NOT_PLAIN.search(data, 0, len(data) - 1) is None)

    def plain_span(self) -> tuple[np.datetime64, np.datetime64] | None:
        """For a plain block, the timestamps of its first and last line; else None."""
        if not self.is_plain():
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

    A last line without a line ending is read as complete.
    """
    try:
        with path.open("rb") as f:
            f.seek(start.offset)
            offset, line = start.offset, start.line
            if offset == 0:
                header = f.readline(MAX_LINE_BYTES)
                check_header(path, header)
                offset, line = len(header), 2
            carry = b""
            while piece := f.read(block_bytes):
                data = carry + piece
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    if len(data) > MAX_LINE_BYTES:
                        raise SourceError(f"{path}:{line}: line longer than "
                                          f"{MAX_LINE_BYTES:,} bytes")
                    carry = data
                    continue
                carry = data[cut:]
                rows = data.count(b"\n", 0, cut)
                yield Block(_lf(data[:cut]), line, Position(offset + cut, line + rows))
                offset += cut
                line += rows
            if carry:
                yield Block(_lf(carry) + b"\n", line, Position(offset + len(carry), line + 1))
    except OSError as e:
        raise SourceError(f"{path}: cannot read: {e.strerror}") from None


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n") if b"\r" in data else data


def tail_hash(path: Path, offset: int) -> str:
    """SHA-256 of the bytes just before ``offset``: tells whether the part already read changed."""
    with path.open("rb") as f:
        f.seek(max(0, offset - TAIL_BYTES))
        return hashlib.sha256(f.read(min(offset, TAIL_BYTES))).hexdigest()


def parse_block(block: Block, path: Path) -> Chunk:
    """Parse a block row by row; the first bad row raises SourceError naming its line."""
    import pandas as pd  # only here: a run with nothing to parse never pays for the import

    try:
        text = block.data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = block.first_line + block.data.count(b"\n", 0, e.start)
        raise SourceError(f"{path}:{line}: not UTF-8 text ({e.reason})") from None
    try:
        frame = pd.read_csv(io.StringIO(text), header=None, names=list(HEADER), dtype=str,
                            keep_default_na=False, skip_blank_lines=False)
    except pd.errors.ParserError as e:
        raise SourceError(_parser_message(path, e, block.first_line)) from None
    return parse_rows(frame["ts"], frame["value"], path, block.first_line)


def _parser_message(path: Path, e: Exception, first_line: int) -> str:
    text = str(e).strip()
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        line = first_line + int(m.group(2)) - 1
        return f"{path}:{line}: {m.group(3)} fields, expected {m.group(1)}"
    return f"{path}:{first_line}+: {text.removeprefix('Error tokenizing data. C error: ')}"


def parse_rows(ts: pd.Series, values: pd.Series, path: Path, first_line: int) -> Chunk:
    """Parse raw string Series into a Chunk; row ``i`` of the Series is on line ``first_line + i``.

    Blank lines are dropped. The first bad row raises SourceError with its line.
    """
    import pandas as pd

    ts = ts.str.strip()
    raw_values = values.str.strip()
    blank = ((ts == "") & (raw_values == "")).to_numpy()
    if blank.any():
        ts, raw_values = ts[~blank], raw_values[~blank]

    parsed_ts = pd.to_datetime(ts, format="ISO8601", utc=True, errors="coerce")
    # pandas also takes "now" and "today": an ISO 8601 date starts with its year.
    bad_ts = (parsed_ts.isna() | ~ts.str.match(r"\d{4}-")).to_numpy()
    if bad_ts.any():
        i = int(np.argmax(bad_ts))
        raise SourceError(f"{path}:{first_line + ts.index[i]}: timestamp "
                          f"{ts.iloc[i][:60]!r} is not ISO 8601")

    empty = (raw_values == "").to_numpy()
    numbers = pd.to_numeric(raw_values.mask(raw_values == ""), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan)
    bad_value = ~np.isfinite(numbers) & ~empty
    if bad_value.any():
        i = int(np.argmax(bad_value))
        raise SourceError(f"{path}:{first_line + ts.index[i]}: value "
                          f"{raw_values.iloc[i][:60]!r} is not a finite number")

    stamps = parsed_ts.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
    return Chunk(stamps, numbers)


def newer_than(chunk: Chunk, mark: np.datetime64 | None) -> Chunk:
    """The rows of ``chunk`` strictly newer than ``mark`` (all of them when there is no mark)."""
    if mark is None:
        return chunk
    keep = chunk.ts > mark
    if keep.all():
        return chunk
    return Chunk(chunk.ts[keep], chunk.values[keep])
