"""Planning one file's load: where to start reading, and which rows to offer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wearables_ingest.blocks import Position, read_blocks, tail_of
from wearables_ingest.checkpoint import Entry
from wearables_ingest.discovery import SourceFile
from wearables_ingest.opening import View, opened


@dataclass(frozen=True)
class Plan:
    start: Position
    last_ts: np.datetime64 | None  # offer only rows newer than this (None: every row read)
    rescanned: bool  # the file changed under the checkpoint: read again from the start
    view: View  # the file as planned: every reading of this run checks it is still the same
    tail: str  # tail hash before ``start``, as planned
    # Offer only rows in these UTC hours (reoffer.py: the file holds more there than the
    # coverage counts); None: every row read.
    hours: frozenset[np.datetime64] | None = None


def plan(source: SourceFile, entry: Entry | None) -> Plan:
    """Resume after the checkpoint's position when the file has only grown since.

    A file that was rewritten or truncated is read from the start, offering only
    rows newer than the checkpoint's mark; with no entry, every row is offered.
    Size and fingerprint come from one opened file (opening.py); a SourceError
    when it cannot be opened.
    """
    with opened(source.path) as (fd, st):
        view = View.of(source.path, st)
        if entry is None:
            return Plan(Position(), None, False, view, tail_of(fd, 0))
        if entry.offset is not None and entry.line is not None:
            tail = tail_of(fd, entry.offset) if st.st_size >= entry.offset else None
            if tail is not None and tail == entry.tail:
                return Plan(Position(entry.offset, entry.line), None, False, view, tail)
        return Plan(Position(), entry.last_ts, entry.offset is not None, view, tail_of(fd, 0))


def first_ts(p: Plan, source_tz: str, settle_s: float = 0.0) -> np.datetime64 | None:
    """Timestamp of the first row that would be read, when its block is plain; else None."""
    for block in read_blocks(p.view, p.start, block_bytes=64 * 1024, settle_s=settle_s,
                             tail=p.tail):
        span = block.plain_span(naive_ok=source_tz == "UTC")
        return None if span is None else span[0]
    return None
