"""The read side of the coverage summary: what ``status`` and the metrics file ask the database.

Every query reads ingest_coverage (rows per participant, metric and UTC hour,
kept by the loader), metric_expected or ingest_runs, and answers from their
indexes: none counts raw_data, so the cost does not grow with the rows stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from wearables_ingest.database import Database
from wearables_ingest.errors import DatabaseError
from wearables_ingest.status import DailyRows, Run

COVERAGE, EXPECTED, RUNS = "ingest_coverage", "metric_expected", "ingest_runs"

# The distinct (participant, metric) pairs, as a skip scan: each step jumps to the next
# pair in the primary key (participant, metric, hour), so it costs one index probe per
# pair, not a pass over every hour of every pair.
PAIRS = """
WITH RECURSIVE pairs (participant, metric) AS (
  (SELECT participant, metric FROM ingest_coverage ORDER BY participant, metric LIMIT 1)
  UNION ALL
  SELECT next.participant, next.metric
  FROM pairs p
  CROSS JOIN LATERAL (
    SELECT c.participant, c.metric FROM ingest_coverage c
    WHERE (c.participant, c.metric) > (p.participant, p.metric)
    ORDER BY c.participant, c.metric LIMIT 1) AS next
)
SELECT participant, metric FROM pairs"""
# Per participant and metric, its newest hour: the pairs as above, then one backward
# probe each.
NEWEST_PER_PAIR = f"""
SELECT p.participant, p.metric, newest.hour
FROM ({PAIRS}) AS p
CROSS JOIN LATERAL (
  SELECT max(c.hour) AS hour FROM ingest_coverage c
  WHERE c.participant = p.participant AND c.metric = p.metric) AS newest"""  # noqa: S608
# Per pair, its first hour: the pairs as above, then one forward probe each.
FIRST_HOURS = f"""
SELECT p.participant, p.metric, first.hour
FROM ({PAIRS}) AS p
CROSS JOIN LATERAL (
  SELECT c.hour FROM ingest_coverage c
  WHERE c.participant = p.participant AND c.metric = p.metric
  ORDER BY c.hour LIMIT 1) AS first"""  # noqa: S608 (constants only)
NEWEST_HOUR = "SELECT max(hour) FROM ingest_coverage"
# Rows per day in a time zone. The range on hour is the period's exact edges, the
# zone's midnights (an hour counts towards the day it starts in), so the index on hour
# picks the period and no hour outside it is grouped; the day test after the grouping
# (MATERIALIZED keeps it there) only restates them, so the planner sees how many hours
# it groups and hashes them. WORK_MEM lets the hash hold them (at 1,000 participants a
# week's groups take about 11 MB) rather than sort them on disk.
WORK_MEM = "SET LOCAL work_mem = '64MB'"
DAILY_ROWS = """
WITH days AS MATERIALIZED (
  SELECT participant, metric, (hour AT TIME ZONE %(tz)s)::date AS day, sum(rows)::bigint AS rows
  FROM ingest_coverage
  WHERE hour >= %(first)s::date::timestamp AT TIME ZONE %(tz)s
    AND hour < (%(last)s::date + 1)::timestamp AT TIME ZONE %(tz)s
    AND (%(participants)s::int[] IS NULL OR participant = ANY (%(participants)s::int[]))
    AND (%(metrics)s::text[] IS NULL OR metric = ANY (%(metrics)s::text[]))
  GROUP BY 1, 2, 3
)
SELECT participant, metric, day, rows FROM days WHERE day BETWEEN %(first)s AND %(last)s"""
EXPECTED_ROWS = "SELECT metric, rows_per_day FROM metric_expected WHERE rows_per_day IS NOT NULL"
LAST_RUN = ("SELECT run_id, started, finished, status, trigger, error, metrics "
            "FROM ingest_runs ORDER BY run_id DESC LIMIT 1")
MISSING_TABLES = "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL"


def require(db: Database, *tables: str) -> None:
    """Stop with one clear line when a table of the summary does not exist yet."""
    with db.rolled_back() as cur:
        cur.execute(MISSING_TABLES, (list(tables),))
        missing = [name for (name,) in cur.fetchall()]
    if missing:
        raise DatabaseError(f"{', '.join(missing)} missing at {db.target}: run the loader once "
                            "(it creates the schema), or db/init/10-wearables.sh again as the "
                            "database's owner")


def pairs(db: Database) -> list[tuple[int, str]]:
    """Every (participant, metric) the study has ever stored a row for."""
    with db.rolled_back() as cur:
        cur.execute(PAIRS)
        return [(p, m) for p, m in cur.fetchall()]


def first_hours(db: Database) -> dict[tuple[int, str], datetime]:
    """Every (participant, metric) the study has ever stored a row for, and its first UTC hour."""
    with db.rolled_back() as cur:
        cur.execute(FIRST_HOURS)
        return {(p, m): hour for p, m, hour in cur.fetchall()}


def newest_hour(db: Database) -> datetime | None:
    """The start of the newest UTC hour holding a row (None: nothing stored)."""
    with db.rolled_back() as cur:
        cur.execute(NEWEST_HOUR)
        return cur.fetchone()[0]


def newest_hour_per_pair(db: Database) -> dict[tuple[int, str], datetime]:
    """Per (participant, metric), the start of the newest UTC hour holding one of its rows."""
    with db.rolled_back() as cur:
        cur.execute(NEWEST_PER_PAIR)
        return {(p, m): hour for p, m, hour in cur.fetchall()}


def daily_rows(db: Database, first: date, last: date, time_zone: str = "UTC",
               participants: Iterable[int] | None = None,
               metrics: Iterable[str] | None = None) -> DailyRows:
    """Rows stored per (participant, metric, day), days from ``first`` to ``last`` in the zone.

    An hour counts towards the day it starts in: in a zone whose offset is not a
    whole number of hours, a day's edges are off by that fraction of an hour.
    """
    params = {"tz": time_zone, "first": first, "last": last,
              "participants": None if participants is None else sorted(participants),
              "metrics": None if metrics is None else sorted(metrics)}
    with db.rolled_back() as cur:
        cur.execute(WORK_MEM)
        cur.execute(DAILY_ROWS, params)
        return {(p, m, day): rows for p, m, day, rows in cur.fetchall()}


def expected_rows(db: Database) -> dict[str, int]:
    """Rows a day per metric with a fixed count, from the table metric_expected."""
    with db.rolled_back() as cur:
        cur.execute(EXPECTED_ROWS)
        return dict(cur.fetchall())


def last_run(db: Database) -> Run | None:
    """The newest row of ingest_runs (None: no run recorded)."""
    with db.rolled_back() as cur:
        cur.execute(LAST_RUN)
        row = cur.fetchone()
    return None if row is None else Run(*row)
