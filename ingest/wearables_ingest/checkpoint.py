"""The checkpoint: per participant and metric, how far loading has got.

Stored as JSON, for example::

    {"version": 1,
     "finished_at": "2026-11-28T01:00:07+00:00",
     "participants": {"1": {"hr": {"last_ts": "2024-01-30T23:59:59+00:00",
                                   "offset": 75282105, "line": 2592002,
                                   "tail_sha256": "9f2c...",
                                   "saved_at": "2026-11-28T01:00:05+00:00"}}}}

``last_ts`` is the newest timestamp loaded. ``offset`` and ``line`` say how far
into the file reading got, and ``tail_sha256`` fingerprints the bytes just
before that point, so the next run reads only what was appended, and notices a
file that was rewritten or truncated.

The file is replaced atomically (temporary file, fsync, rename) and only ever
written after the rows it covers are committed, so a crash at any moment
leaves either the old or the new file, never a mark ahead of the database.
A missing file means "nothing loaded yet": every row is offered again, and
rows already in the database are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from wearables_ingest.atomic import remove_leftovers, write_atomically
from wearables_ingest.errors import CheckpointError
from wearables_ingest.timestamps import format_ts, now_utc, parse_ts

VERSION = 1


@dataclass
class Entry:
    """What the checkpoint knows of one participant's metric file."""

    last_ts: np.datetime64 | None = None  # the high-water mark: newest ts loaded, UTC
    offset: int | None = None  # bytes of the file read and committed
    line: int | None = None  # number of the line at ``offset``
    tail: str | None = None  # SHA-256 of the bytes just before ``offset``
    saved_at: str | None = None


@dataclass
class Checkpoint:
    entries: dict[tuple[int, str], Entry] = field(default_factory=dict)
    finished_at: str | None = None

    def entry(self, participant: int, metric: str) -> Entry | None:
        return self.entries.get((participant, metric))

    def last_ts(self, participant: int, metric: str) -> np.datetime64 | None:
        entry = self.entries.get((participant, metric))
        return entry.last_ts if entry else None

    def record(self, participant: int, metric: str, last_ts: np.datetime64 | None,
               offset: int | None = None, line: int | None = None,
               tail: str | None = None, reset: bool = False) -> None:
        """Note a committed load: the mark moves forward only (unless ``reset``),
        the position is replaced."""
        entry = self.entries.setdefault((participant, metric), Entry())
        if reset or last_ts is not None and (entry.last_ts is None or last_ts > entry.last_ts):
            entry.last_ts = last_ts
        entry.offset, entry.line, entry.tail = offset, line, tail
        entry.saved_at = now_utc()


def to_json(cp: Checkpoint) -> dict:
    participants: dict[str, dict] = {}
    for (participant, metric), e in sorted(cp.entries.items()):
        entry = {"last_ts": None if e.last_ts is None else format_ts(e.last_ts),
                 "offset": e.offset, "line": e.line, "tail_sha256": e.tail,
                 "saved_at": e.saved_at}
        participants.setdefault(str(participant), {})[metric] = {
            k: v for k, v in entry.items() if v is not None}
    return {"version": VERSION, "finished_at": cp.finished_at, "participants": participants}


def _optional(entry: dict, key: str, kind: type, where: str):
    value = entry.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ValueError(f"entry {where} has a malformed {key!r}")
    return value


def _not_future(stamp: object, what: str) -> str | None:
    """A write time, which cannot lie ahead of now (beyond a day of clock skew)."""
    if stamp is None:
        return None
    if not isinstance(stamp, str):
        raise ValueError(f"{what} is not a timestamp")
    written = datetime.fromisoformat(stamp)
    if written.tzinfo is None:
        raise ValueError(f"{what} {stamp!r} has no UTC offset")
    if written > datetime.now(UTC) + timedelta(days=1):
        raise ValueError(f"{what} {stamp} lies in the future: the clock is wrong, or the file "
                         "is not this loader's")
    return stamp


def from_json(data: object) -> Checkpoint:
    """Build a Checkpoint from parsed JSON; raises ValueError describing what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("version") != VERSION:
        raise ValueError(f"version {data.get('version')!r}, this loader reads version {VERSION}")
    cp = Checkpoint(finished_at=_not_future(data.get("finished_at"), "finished_at"))
    participants = data.get("participants")
    if not isinstance(participants, dict):
        raise ValueError("'participants' is missing or not an object")
    seen: set[int] = set()
    for participant, metrics in participants.items():
        # Keys are numbers in ASCII digits, compared as integers: "7" and "007" are one.
        if not (participant.isascii() and participant.isdigit()) or not isinstance(metrics,
                                                                                    dict):
            raise ValueError(f"participant entry {participant!r} is malformed")
        if int(participant) in seen:
            raise ValueError(f"participant {int(participant)} has two entries")
        seen.add(int(participant))
        for metric, raw in metrics.items():
            where = f"{participant}/{metric}"
            if not isinstance(raw, dict):
                raise ValueError(f"entry {where} is not an object")
            last_ts = _optional(raw, "last_ts", str, where)
            entry = Entry(
                last_ts=None if last_ts is None else parse_ts(last_ts),
                offset=_optional(raw, "offset", int, where),
                line=_optional(raw, "line", int, where),
                tail=_optional(raw, "tail_sha256", str, where),
                saved_at=_not_future(_optional(raw, "saved_at", str, where),
                                     f"{where} saved_at"),
            )
            if entry.last_ts is None and entry.offset is None:
                raise ValueError(f"entry {where} has neither 'last_ts' nor 'offset'")
            cp.entries[(int(participant), metric)] = entry
    return cp


def load(path: Path) -> Checkpoint:
    """Read the checkpoint; a missing file is an empty checkpoint.

    Call it under ``locked``: it also removes temporary files that a run killed
    while writing the checkpoint left behind.
    """
    remove_leftovers(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Checkpoint()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {e.strerror}") from None
    try:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
        return from_json(data)
    except ValueError as e:
        raise CheckpointError(
            f"{path}: unusable checkpoint ({e}); delete it to re-offer every row "
            "(rows already stored are skipped)") from None


def save(path: Path, cp: Checkpoint) -> None:
    """Replace the checkpoint file atomically and durably."""
    try:
        write_atomically(path, json.dumps(to_json(cp)) + "\n")  # one line: fast to write
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write the checkpoint: {e.strerror or e}; rows "
                              "committed since the last checkpoint will be offered again "
                              "and skipped as already present") from None
