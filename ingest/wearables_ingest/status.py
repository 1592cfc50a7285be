"""``status``: each participant's metric, day by day, rated against the rows expected.

Pure logic: coverage.py reads the counts (from ingest_coverage, never raw_data),
this module rates them, report.py and plot.py show the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

COMPLETE, PARTIAL, MISSING = "complete", "partial", "missing"

# (participant, metric, day) -> rows stored that day
DailyRows = Mapping[tuple[int, str, date], int]


@dataclass(frozen=True)
class Expectations:
    """What a complete day and a recent enough run are."""

    rows_per_day: Mapping[str, int]  # a metric not named has no fixed count
    complete_pct: float = 95.0
    max_age_hours: float = 26.0

    def expected(self, metric: str) -> int | None:
        return self.rows_per_day.get(metric)


@dataclass(frozen=True)
class Day:
    participant: int
    metric: str
    day: date
    rows: int
    expected: int | None  # None: no fixed count (hrv, spo2: during sleep only)
    status: str  # complete, partial or missing

    @property
    def share(self) -> float | None:
        """Rows stored as a share of the rows expected (None without a fixed count)."""
        return None if self.expected is None else self.rows / self.expected


@dataclass(frozen=True)
class Run:
    """A row of ingest_runs."""

    run_id: int
    started: datetime
    finished: datetime | None
    status: str
    trigger: str
    error: str | None = None
    metrics: Mapping | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Status:
    days: tuple[Day, ...]  # by participant, metric and day
    first_day: date | None  # the period; None when nothing is stored yet
    last_day: date | None
    time_zone: str
    expectations: Expectations
    last_run: Run | None
    run_problem: str | None  # why the last run is not a recent success; None: it is
    checked_at: datetime

    @property
    def complete(self) -> bool:
        """Every day of the period is complete (and there is a period)."""
        return bool(self.days) and all(d.status == COMPLETE for d in self.days)

    @property
    def ok(self) -> bool:
        """Every day is complete and the last run succeeded recently: exit status 0."""
        return self.complete and self.run_problem is None

    def incomplete(self) -> list[Day]:
        return [d for d in self.days if d.status != COMPLETE]


def rate(rows: int, expected: int | None, complete_pct: float) -> str:
    """complete at ``complete_pct`` % of ``expected`` or more; missing without a row."""
    if rows <= 0:
        return MISSING
    if expected is None or rows * 100 >= complete_pct * expected:
        return COMPLETE
    return PARTIAL


def local_day(instant: datetime, time_zone: str) -> date:
    """The day ``instant`` falls on in ``time_zone`` (SQL: ``(hour AT TIME ZONE tz)::date``)."""
    return instant.astimezone(ZoneInfo(time_zone)).date()


def period(newest_day: date, days: int) -> tuple[date, date]:
    """The ``days`` days that end with ``newest_day``, first and last."""
    if days < 1:
        raise ValueError("a period has at least one day")
    return newest_day - timedelta(days=days - 1), newest_day


def run_problem(run: Run | None, now: datetime, max_age_hours: float) -> str | None:
    """Why ``run`` (the newest in ingest_runs) is not a success within the age; None if it is."""
    if run is None:
        return "no run is recorded in ingest_runs"
    if run.status == "running":
        return (f"the last run (#{run.run_id}, started {run.started.isoformat()}) has not "
                "finished: it is still going, or it crashed")
    if run.status != "ok" or run.finished is None:
        return f"the last run (#{run.run_id}) ended {run.status}"
    age = hours_since(run.finished, now)
    if age > max_age_hours:
        return (f"the last run (#{run.run_id}) succeeded {age:.1f} h ago, longer than "
                f"{max_age_hours:g} h")
    return None


def hours_since(instant: datetime, now: datetime) -> float:
    return (now - instant).total_seconds() / 3600


def chosen(pairs: Iterable[tuple[int, str]], participants: Iterable[int] | None,
           metrics: Iterable[str] | None) -> list[tuple[int, str]]:
    """The (participant, metric) pairs the options select, sorted."""
    keep_p = None if participants is None else set(participants)
    keep_m = None if metrics is None else set(metrics)
    return sorted((p, m) for p, m in set(pairs)
                  if (keep_p is None or p in keep_p) and (keep_m is None or m in keep_m))


def evaluate(pairs: Iterable[tuple[int, str]], daily: DailyRows, first_day: date | None,
             last_day: date | None, expectations: Expectations, last_run: Run | None,
             now: datetime, time_zone: str = "UTC") -> Status:
    """Rate every selected pair on every day of the period: a pair with no row that day is
    missing, whenever it started."""
    days: list[Day] = []
    if first_day is not None and last_day is not None:
        span = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
        for participant, metric in sorted(set(pairs)):
            expected = expectations.expected(metric)
            for day in span:
                rows = daily.get((participant, metric, day), 0)
                days.append(Day(participant, metric, day, rows, expected,
                                rate(rows, expected, expectations.complete_pct)))
    return Status(days=tuple(days), first_day=first_day, last_day=last_day, time_zone=time_zone,
                  expectations=expectations, last_run=last_run,
                  run_problem=run_problem(last_run, now, expectations.max_age_hours),
                  checked_at=now)
