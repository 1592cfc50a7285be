"""``--verify``: the source files, raw_data and its coverage compared per participant and metric.

Read-only. The coverage (ingest_coverage, which ``status`` reads) is compared
hour by hour with a count of raw_data: its rows, and its newest ts where it
holds one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wearables_ingest import database
from wearables_ingest.blocks import read_blocks
from wearables_ingest.database import Database
from wearables_ingest.discovery import discover
from wearables_ingest.parse import parse_block, whole_folds
from wearables_ingest.settings import Config
from wearables_ingest.timestamps import format_ts


@dataclass(frozen=True)
class Comparison:
    participant: int
    metric: str
    source_rows: int  # distinct timestamps among the rows that can be loaded
    source_first: str | None
    source_last: str | None
    table_rows: int
    table_first: str | None
    table_last: str | None
    coverage_rows: int = 0  # rows by the coverage
    coverage_hours_off: int = 0  # hours whose coverage disagrees with a count of raw_data

    @property
    def coverage_true(self) -> bool:
        return self.coverage_rows == self.table_rows and self.coverage_hours_off == 0

    @property
    def equal(self) -> bool:
        return ((self.source_rows, self.source_first, self.source_last)
                == (self.table_rows, self.table_first, self.table_last)) and self.coverage_true


def _source_side(path, source_tz: str, settle_s: float) -> tuple[int, str | None, str | None]:
    # Read as a run reads: a last line still being written is not counted yet.
    blocks = whole_folds(read_blocks(path, settle_s=settle_s), source_tz)
    stamps = [parse_block(block, source_tz, path)[0].ts for block in blocks]
    ts = np.unique(np.concatenate(stamps)) if stamps else np.array([], dtype="datetime64[us]")
    if not len(ts):
        return 0, None, None
    return len(ts), format_ts(ts[0]), format_ts(ts[-1])


def compare(cfg: Config, metrics: set[str] | None = None,
            participants: set[int] | None = None) -> list[Comparison]:
    """Count, first and last ts on both sides, for every pair either side has."""
    files, _ = discover(cfg.data_dir, cfg.participant_id)
    wanted = {(f.participant, f.metric): f for f in files
              if (metrics is None or f.metric in metrics)
              and (participants is None or f.participant in participants)}
    db = Database(cfg.connect_args, cfg.target(), cfg.retries, cfg.retry_delay).open()
    try:
        stored = {(p, m): (n, _ts(first), _ts(last), kept, off)
                  for p, m, n, first, last, kept, off in database.table_summary(db)
                  if (metrics is None or m in metrics)
                  and (participants is None or p in participants)}
    finally:
        db.close()
    rows = []
    for key in sorted(set(wanted) | set(stored)):
        src = (_source_side(wanted[key].path, cfg.source_tz, cfg.settle_s) if key in wanted
               else (0, None, None))
        rows.append(Comparison(*key, *src, *stored.get(key, (0, None, None, 0, 0))))
    return rows


def _ts(when: np.datetime64 | None) -> str | None:
    return None if when is None else format_ts(when)


def table(rows: list[Comparison]) -> list[str]:
    """A text table of the comparison, one line per pair, differences marked."""
    head = (f"{'participant':>11} {'metric':12} {'source rows':>12} {'table rows':>12} "
            f"{'first ts (source / table)':51} {'last ts (source / table)':51} result")
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.participant:>11} {r.metric:12} {r.source_rows:>12,} {r.table_rows:>12,} "
            f"{_pair(r.source_first, r.table_first):51} {_pair(r.source_last, r.table_last):51} "
            f"{_verdict(r)}")
    return lines


def _verdict(r: Comparison) -> str:
    if r.equal:
        return "ok"
    if not r.coverage_true:
        off = (f"{r.coverage_hours_off:,} hour{'s' * (r.coverage_hours_off != 1)}"
               if r.coverage_hours_off else "")
        coverage = f"COVERAGE {r.coverage_rows:,} rows{f', {off} off' if off else ''}"
        rest = (r.source_rows, r.source_first, r.source_last) != (r.table_rows, r.table_first,
                                                                   r.table_last)
        return f"DIFFERENT, {coverage}" if rest else coverage
    return "DIFFERENT"


def _pair(a: str | None, b: str | None) -> str:
    return (a or "-") if a == b else f"{a or '-'} / {b or '-'}"
