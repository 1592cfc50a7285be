"""Parsing rows: timestamps to UTC (with the source time zone), values to floats,
and a Reject with its line and reason for each row that cannot be loaded."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from wearables_ingest.blocks import Block, Reject
from wearables_ingest.errors import SourceError

if TYPE_CHECKING:
    import pandas as pd


MAX_JOINED_BYTES = 64 << 20  # blocks joined around a repeated DST hour: at most this much
# What a timestamp may look like, before it is parsed: ISO 8601 with two-digit fields (the
# parser alone would take a half-written "00:0" or "+01:0" as a time).
ISO_SHAPE = r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?)?(?:Z|[+-]\d\d(?::?\d\d)?)?"
LEAP_SECOND = r"[T ]\d\d:\d\d:60(?:[.,]\d*)?(?:Z|[+-]\d\d(?::?\d\d)?)?$"


@dataclass(frozen=True)
class Chunk:
    ts: np.ndarray  # datetime64[us], UTC, no time zone attached
    values: np.ndarray  # float64; NaN where the file's value was empty (stored as NULL)

    def __len__(self) -> int:
        return len(self.ts)


def parse_block(block: Block, source_tz: str = "UTC", path: Path | str = "line"
                ) -> tuple[Chunk, list[Reject]]:
    """Parse a block row by row: the good rows, and a Reject for each bad one.

    Blank lines are skipped. Timestamps without a UTC offset are read in
    ``source_tz`` (see ``localize``). A line the csv module cannot read at all
    (a field over its size limit) fails the file: a SourceError naming ``path``.
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
        try:
            fields = next(csv.reader([text])) if '"' in text else text.split(",")
        except csv.Error as e:  # a quoted field over the csv module's limit, say
            raise SourceError(f"{path}:{line}: not a CSV row ({e})") from None
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

    aware = _to_us(pd.to_datetime(ts[has_offset], format="ISO8601", utc=True, errors="coerce"))
    out[has_offset] = aware.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
    naive_idx = np.flatnonzero(~has_offset)
    if len(naive_idx):
        local = _to_us(pd.to_datetime(ts.iloc[naive_idx], format="ISO8601", errors="coerce"))
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
    shaped = ts.str.fullmatch(ISO_SHAPE).fillna(False).to_numpy(dtype=bool)
    unreadable = (np.isnat(out) | ~year_first | ~shaped) & reasons.isna().to_numpy()
    leap = ts.str.contains(LEAP_SECOND).fillna(False).to_numpy(dtype=bool)
    for i in np.flatnonzero(unreadable):
        reasons.iloc[i] = (f"timestamp {ts.iloc[i][:60]!r} is a leap second (:60), which a "
                           "timestamp column cannot hold" if leap[i]
                           else f"timestamp {ts.iloc[i][:60]!r} is not ISO 8601")
    return out, reasons


def _to_us(stamps: pd.Series) -> pd.Series:
    """Timestamps to whole microseconds, rounded to the nearest (as PostgreSQL rounds
    ``.1234567``): the one reading of a timestamp that is stored, counted and compared."""
    if stamps.dt.unit == "ns":  # more than 6 fractional digits somewhere
        stamps = stamps.dt.round("us")
    return stamps


def newer_than(chunk: Chunk, mark: np.datetime64 | None) -> Chunk:
    """The rows of ``chunk`` strictly newer than ``mark`` (all of them when there is no mark)."""
    if mark is None:
        return chunk
    keep = chunk.ts > mark
    if keep.all():
        return chunk
    return Chunk(chunk.ts[keep], chunk.values[keep])


def hours_of(ts: np.ndarray) -> dict[np.datetime64, int]:
    """Rows per UTC hour of parsed timestamps (datetime64[h] keys)."""
    found, counts = np.unique(ts.astype("datetime64[h]"), return_counts=True)
    return dict(zip(found, counts.tolist(), strict=True))


def whole_folds(blocks: Iterable[Block], source_tz: str) -> Iterator[Block]:
    """The blocks, with none cut inside the repeated hour of an autumn DST change.

    Which pass of that hour a local time is in shows only in the order of the
    hour's rows, so a block ending in it is joined with the next before it is parsed.
    """
    if source_tz == "UTC":
        yield from blocks
        return
    zone = ZoneInfo(source_tz)
    held: Block | None = None
    for block in blocks:
        if held is not None:
            block = Block(held.data + block.data, held.first_line, block.end,
                          held.rejects + block.rejects, block.tail)
            held = None
        if len(block.data) < MAX_JOINED_BYTES and _ends_in_fold(block.data, zone):
            held = block
            continue
        yield block
    if held is not None:
        yield held


def _ends_in_fold(data: bytes, zone: ZoneInfo) -> bool:
    """True when the block's last line is a local time that happens twice in ``zone``."""
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    comma = data.find(b",", start)
    try:
        local = datetime.fromisoformat(data[start:comma].decode("ascii").strip())
    except (ValueError, UnicodeDecodeError):
        return False
    if local.tzinfo is not None:
        return False
    return (local.replace(tzinfo=zone, fold=0).utcoffset()
            != local.replace(tzinfo=zone, fold=1).utcoffset())
