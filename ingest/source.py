"""Finding and reading the flattened metric CSV files (``<metric>.csv``, header ``ts,value``).

Reading is pure apart from the file itself: it yields validated chunks of
timestamps and values and knows nothing of checkpoints or databases.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HEADER = ("ts", "value")
METRIC_NAME = re.compile(r"[a-z][a-z0-9_]*")
PARTICIPANT_DIR = re.compile(r"participant_(\d+)")


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


def read_header(path: Path) -> None:
    """Check that the file starts with the ``ts,value`` header."""
    try:
        with path.open("rb") as f:
            first = f.readline()
    except OSError as e:
        raise SourceError(f"{path}: cannot read: {e.strerror}") from None
    if not first:
        raise SourceError(f"{path}: empty file (expected the header 'ts,value')")
    text = first.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace").rstrip("\r\n")
    if tuple(c.strip() for c in text.split(",")) != HEADER:
        raise SourceError(f"{path}:1: header is {text[:80]!r}, expected 'ts,value'")


def read_chunks(path: Path, rows_per_chunk: int) -> Iterator[Chunk]:
    """Validated chunks of the file, in file order; a bad row raises SourceError naming its line."""
    read_header(path)
    try:
        with pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,  # keeps row numbers equal to line numbers
            encoding="utf-8-sig",
            chunksize=rows_per_chunk,
        ) as reader:
            for frame in reader:
                yield parse_chunk(frame["ts"], frame["value"], path)
    except pd.errors.ParserError as e:
        raise SourceError(_parser_message(path, e)) from None
    except UnicodeDecodeError as e:
        raise SourceError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise SourceError(f"{path}: cannot read: {e.strerror}") from None


def _parser_message(path: Path, e: Exception) -> str:
    text = str(e).strip()
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        return f"{path}:{m.group(2)}: {m.group(3)} fields, expected {m.group(1)}"
    return f"{path}: {text.removeprefix('Error tokenizing data. C error: ')}"


def parse_chunk(ts: pd.Series, values: pd.Series, path: Path) -> Chunk:
    """Parse raw strings into a Chunk; the first bad row raises SourceError with its line.

    The series' index is the row number in the file, counted from 0 after the
    header, so row ``i`` stands on line ``i + 2``.
    """
    ts = ts.str.strip()
    raw_values = values.str.strip()
    blank = (ts == "") & (raw_values == "")
    if blank.any():  # blank lines carry nothing; drop them
        keep = ~blank.to_numpy()
        ts, raw_values = ts[keep], raw_values[keep]

    parsed_ts = pd.to_datetime(ts, format="ISO8601", utc=True, errors="coerce")
    bad_ts = parsed_ts.isna().to_numpy()
    if bad_ts.any():
        i = int(np.argmax(bad_ts))
        raise SourceError(
            f"{path}:{ts.index[i] + 2}: timestamp {ts.iloc[i][:60]!r} is not ISO 8601")

    empty = (raw_values == "").to_numpy()
    numbers = pd.to_numeric(raw_values.mask(raw_values == ""), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan)
    bad_value = ~np.isfinite(numbers) & ~empty
    if bad_value.any():
        i = int(np.argmax(bad_value))
        raise SourceError(
            f"{path}:{ts.index[i] + 2}: value {raw_values.iloc[i][:60]!r} is not a finite number")

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
