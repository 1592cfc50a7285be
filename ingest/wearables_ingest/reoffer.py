"""Reading a file again that the database already holds: offer only the hours it holds more of.

A light reset (the checkpoint deleted), a rewritten file, or a database that
lost rows has the loader read a file from its start. Offering every row again
costs a check of each against the stored ones, slow in compressed chunks. The
coverage (ingest_coverage) counts the rows stored per participant, metric and
UTC hour, in the same transaction as the rows, so it is exact after a kill at
any point: an hour in which the file holds no more rows than the coverage
counts is stored whole and is skipped; the other hours are offered, rows
already there skipped by ``ON CONFLICT DO NOTHING`` as before. That also loads
rows that appear in the middle of a rewritten file. ``--full`` offers every row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from wearables_ingest.blocks import Position, read_blocks
from wearables_ingest.database import Database
from wearables_ingest.discovery import SourceFile
from wearables_ingest.errors import SourceError
from wearables_ingest.parse import hours_of, parse_block
from wearables_ingest.plan import Plan

Hours = Mapping[np.datetime64, int]  # rows per UTC hour (datetime64[h] keys)

# The coverage of several (participant, metric) pairs, one statement (arrays).
STORED_HOURS = ("SELECT participant, metric, extract(epoch FROM hour)::bigint, rows "
                "FROM ingest_coverage WHERE (participant, metric) IN "
                "(SELECT * FROM unnest(%s::int[], %s::text[]))")


def file_hours(source: SourceFile, p: Plan, source_tz: str,
               settle_s: float) -> Counter[np.datetime64]:
    """Rows per UTC hour in the whole file, read off the bytes (parsed where they must be).

    Read as the run reads it: the file opened as planned, complete lines only."""
    naive_ok = source_tz == "UTC"
    found: Counter[np.datetime64] = Counter()
    for block in read_blocks(p.view, Position(), settle_s=settle_s, tail=p.tail):
        hours = block.utc_hours(naive_ok) if block.plain_span(naive_ok) is not None else None
        if hours is None:  # bad lines or other offsets: parse (rejects are not rows)
            hours = hours_of(parse_block(block, source_tz, source.path)[0].ts)
        found.update(hours)
    return found


def stored_hours(db: Database, pairs: Sequence[tuple[int, str]]) -> dict[tuple[int, str], Hours]:
    """The coverage's rows per hour for each (participant, metric) pair that has any."""
    if not pairs:
        return {}
    participants, metrics = (list(x) for x in zip(*pairs, strict=True))
    found: dict[tuple[int, str], dict[np.datetime64, int]] = {}
    with db.transaction() as cur:
        cur.execute(STORED_HOURS, (participants, metrics))
        for participant, metric, epoch, rows in cur.fetchall():
            hour = np.datetime64(epoch, "s").astype("datetime64[h]")
            found.setdefault((participant, metric), {})[hour] = rows
    return found


def to_offer(in_file: Hours, stored: Hours) -> frozenset[np.datetime64]:
    """The hours in which the file holds more rows than are stored."""
    return frozenset(h for h, n in in_file.items() if n > stored.get(h, 0))


def narrow(db: Database, jobs: Sequence[tuple[SourceFile, Plan]],
           source_tz: str, settle_s: float = 0.0) -> list[Plan]:
    """Each plan that reads its file from the start, limited to the hours to offer again.

    A pair without coverage (nothing loaded yet) keeps its plan: every row is new.
    """
    again = [(s, p) for s, p in jobs if p.start == Position()]
    stored = stored_hours(db, sorted({(s.participant, s.metric) for s, _ in again}))
    plans = []
    for source, p in jobs:
        have = stored.get((source.participant, source.metric))
        if p.start != Position() or not have:
            plans.append(p)
            continue
        try:
            in_file = file_hours(source, p, source_tz, settle_s)
        except SourceError:  # reading it fails again when it is written, with its error
            plans.append(p)
            continue
        # The checkpoint's mark (a rewritten file) no longer limits what is offered:
        # the hours do, and rows added in the middle of the file are in them.
        plans.append(replace(p, last_ts=None, hours=to_offer(in_file, have)))
    return plans
