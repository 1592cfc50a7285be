"""Planning one file's load: where to start reading, and which rows to offer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wearables_ingest.blocks import Position, read_blocks, tail_hash
from wearables_ingest.checkpoint import Entry
from wearables_ingest.discovery import SourceFile
from wearables_ingest.errors import SourceError


@dataclass(frozen=True)
class Plan:
    start: Position
    last_ts: np.datetime64 | None  # offer only rows newer than this (None: every row read)
    rescanned: bool  # the file changed under the checkpoint: read again from the start
    # Offer only rows in these UTC hours (reoffer.py: the file holds more there than the
    # coverage counts); None: every row read.
    hours: frozenset[np.datetime64] | None = None


def plan(source: SourceFile, entry: Entry | None) -> Plan:
    """Resume after the checkpoint's position when the file has only grown since.

    A file that was rewritten or truncated is read from the start, offering only
    rows newer than the checkpoint's mark; with no entry, every row is offered.
    """
    if entry is None:
        return Plan(Position(), None, rescanned=False)
    if entry.offset is not None and entry.line is not None:
        try:
            grown = (source.path.stat().st_size >= entry.offset
                     and tail_hash(source.path, entry.offset) == entry.tail)
        except OSError as e:
            raise SourceError(f"{source.path}: cannot read: {e.strerror}") from None
        if grown:
            return Plan(Position(entry.offset, entry.line), None, rescanned=False)
    return Plan(Position(), entry.last_ts, rescanned=entry.offset is not None)


def first_ts(source: SourceFile, p: Plan, source_tz: str) -> np.datetime64 | None:
    """Timestamp of the first row that would be read, when its block is plain; else None."""
    for block in read_blocks(source.path, p.start, block_bytes=64 * 1024):
        span = block.plain_span(naive_ok=source_tz == "UTC")
        return None if span is None else span[0]
    return None
