"""``status``: each participant's metric, day by day, rated against the rows expected.

Pure logic: coverage.py reads the counts (from ingest_coverage, never raw_data),
this module rates them and sums them up for a study (per metric and day, and
the participants who need attention, worst first); report.py and plot.py show
the result.
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
    # Each participant's first day (its first stored row, in the zone): days before it
    # are not rated. A participant absent here is rated on every day of the period.
    starts: Mapping[int, date] = field(default_factory=dict, compare=False)

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

    def participants(self) -> list[int]:
        """The participants rated on at least one day, in order."""
        return sorted({d.participant for d in self.days})

    def started(self, participant: int, day: date) -> bool:
        """Whether ``day`` is on or after the participant's first day."""
        first = self.starts.get(participant)
        return first is None or day >= first


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


def first_days(first_hours: Mapping[tuple[int, str], datetime],
               time_zone: str = "UTC") -> dict[int, date]:
    """Per participant, the day (in the zone) of its first stored hour, over all its metrics."""
    starts: dict[int, date] = {}
    for (participant, _), hour in first_hours.items():
        day = local_day(hour, time_zone)
        if participant not in starts or day < starts[participant]:
            starts[participant] = day
    return starts


def evaluate(pairs: Iterable[tuple[int, str]], daily: DailyRows, first_day: date | None,
             last_day: date | None, expectations: Expectations, last_run: Run | None,
             now: datetime, time_zone: str = "UTC",
             starts: Mapping[int, date] | None = None) -> Status:
    """Rate every selected pair on every day of the period from its participant's first day
    (``starts``; without one, from the period's first): a day with no row is missing."""
    starts = dict(starts or {})
    days: list[Day] = []
    if first_day is not None and last_day is not None:
        span = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
        for participant, metric in sorted(set(pairs)):
            expected = expectations.expected(metric)
            joined = starts.get(participant, first_day)
            for day in span:
                if day < joined:  # before the participant's first row: not part of the study
                    continue
                rows = daily.get((participant, metric, day), 0)
                days.append(Day(participant, metric, day, rows, expected,
                                rate(rows, expected, expectations.complete_pct)))
    return Status(days=tuple(days), first_day=first_day, last_day=last_day, time_zone=time_zone,
                  expectations=expectations, last_run=last_run,
                  run_problem=run_problem(last_run, now, expectations.max_age_hours),
                  checked_at=now, starts=starts)


# --- the study's summary ---------------------------------------------------------------------

RANK = {COMPLETE: 0, PARTIAL: 1, MISSING: 2}  # worse is higher


@dataclass(frozen=True)
class Tally:
    """One metric over a span of days: participants by their worst day in the span."""

    metric: str
    first: date
    last: date
    complete: int
    partial: int
    missing: int


@dataclass(frozen=True)
class Attention:
    """One participant over the period: its days by status, and how much of it is stored."""

    participant: int
    first_day: date | None  # its first stored row's day (None: not known)
    complete: int  # days (of all its metrics) complete, partial, missing
    partial: int
    missing: int
    share: float | None  # rows stored over rows expected, metrics with a fixed count only
    incomplete: tuple[Day, ...]  # its partial and missing days, by metric and day

    @property
    def needs_attention(self) -> bool:
        return bool(self.partial or self.missing)


def spans(st: Status, daily: int) -> list[tuple[date, date]]:
    """The summary's rows: the newest ``daily`` days one each, the period's earlier days
    together in one span before them; oldest first."""
    if st.first_day is None or st.last_day is None:
        return []
    newest = [st.last_day - timedelta(days=i) for i in range(daily)]
    days = sorted(d for d in newest if d >= st.first_day)
    out = [(d, d) for d in days]
    if days[0] > st.first_day:
        out.insert(0, (st.first_day, days[0] - timedelta(days=1)))
    return out


def tallies(st: Status, daily: int = 7) -> list[Tally]:
    """Per span (see ``spans``) and metric, how many participants are complete, partial or
    missing: each by its worst day in the span, among those started by the span's end."""
    worst: dict[tuple[date, str, int], int] = {}
    span_of = {day: span for span in spans(st, daily) for day in _days(*span)}
    for d in st.days:
        key = (span_of[d.day][0], d.metric, d.participant)
        worst[key] = max(worst.get(key, 0), RANK[d.status])
    counts: dict[tuple[date, str], list[int]] = {}
    for (first, metric, _), rank in worst.items():
        counts.setdefault((first, metric), [0, 0, 0])[rank] += 1
    ends = dict(spans(st, daily))
    return [Tally(metric, first, ends[first], *counts[first, metric])
            for first, metric in sorted(counts)]


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def attention(st: Status) -> list[Attention]:
    """Every participant rated in the period, worst first: most missing days, then most
    partial days, then the smallest share of the rows expected, then by number."""
    days: dict[int, list[Day]] = {}
    for d in st.days:
        days.setdefault(d.participant, []).append(d)
    out = []
    for participant, own in days.items():
        counts = {COMPLETE: 0, PARTIAL: 0, MISSING: 0}
        rows = expected = 0
        for d in own:
            counts[d.status] += 1
            if d.expected is not None:
                rows, expected = rows + min(d.rows, d.expected), expected + d.expected
        out.append(Attention(participant, st.starts.get(participant), counts[COMPLETE],
                             counts[PARTIAL], counts[MISSING],
                             rows / expected if expected else None,
                             tuple(d for d in own if d.status != COMPLETE)))
    return sorted(out, key=lambda a: (-a.missing, -a.partial,
                                      1.0 if a.share is None else a.share, a.participant))
