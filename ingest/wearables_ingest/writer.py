"""Writing one file's rows: a chain of strategies, each tried in turn until one succeeds.

The caller holds the transaction (several small files share one commit); each
attempt runs under a savepoint. Every strategy skips rows already stored, so a
row is never doubled, and has the coverage of the hours it inserted into
counted afresh from raw_data in the same transaction (the function
coverage_recount, schema.sql: the loader's role cannot write the coverage
otherwise). When the server refuses rows (a key already present, a value it
reads differently), the attempt is rolled back to its savepoint and the next,
more careful strategy gets the whole file again:

1. COPY straight into the hypertable: only when nothing is stored from the
   first row on (the nightly case), the fastest way;
2. COPY into a temporary staging table, then ``INSERT ... ON CONFLICT DO
   NOTHING``: rows already stored, or repeated in the file, are skipped;
3. the same with every row parsed here first: a row the server would refuse
   becomes a reject with its line number, and the rest loads.

The ``values`` method is a chain of one: ``INSERT ... VALUES ... ON CONFLICT
DO NOTHING`` batches of parsed rows (execute_values).
"""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import execute_values

from wearables_ingest.copydata import BINARY_HEADER, BINARY_TRAILER, COLUMNS
from wearables_ingest.database import RECOUNT_HOURS, TABLE, Database, translated
from wearables_ingest.errors import RowsRefused, SourceError

STAGE = "raw_data_stage"
COPY_INTO = sql.SQL("COPY {target} ({columns}) FROM STDIN (FORMAT {format})")
CREATE_STAGE = sql.SQL(
    "CREATE TEMP TABLE {stage} (ts TIMESTAMPTZ, value DOUBLE PRECISION, participant INT, "
    "metric TEXT) ON COMMIT DROP").format(stage=sql.Identifier(STAGE))
DROP_STAGE = sql.SQL("DROP TABLE {stage}").format(stage=sql.Identifier(STAGE))

# Inserts rows and answers how many were inserted, and into which UTC hours (each
# file's rows are one participant's and metric's): the hours whose coverage to recount.
_COUNTED = """
    WITH ins AS ({insert} ON CONFLICT DO NOTHING RETURNING ts),
    per_hour AS (SELECT date_trunc('hour', ts, 'UTC') AS hour, count(*) AS n FROM ins GROUP BY 1)
    SELECT coalesce(sum(n), 0)::bigint, coalesce(array_agg(hour), '{{}}') FROM per_hour"""
MERGE_STAGE = sql.SQL(_COUNTED).format(
    insert=sql.SQL("INSERT INTO {table} (ts, participant, metric, value) "
                   "SELECT ts, participant, metric, value FROM {stage}").format(
                       table=sql.Identifier(TABLE), stage=sql.Identifier(STAGE)))
RECOUNT = sql.SQL("SELECT {}(%s::int[], %s::text[], %s::timestamptz[])").format(
    sql.Identifier(RECOUNT_HOURS))
COUNT_NEW = sql.SQL(
    "SELECT count(*), count(DISTINCT (s.ts, s.participant, s.metric)) FILTER (WHERE NOT EXISTS "
    "(SELECT 1 FROM {table} r WHERE r.ts = s.ts AND r.participant = s.participant "
    "AND r.metric = s.metric)) FROM {stage} s").format(
        table=sql.Identifier(TABLE), stage=sql.Identifier(STAGE))
INSERT_VALUES = sql.SQL(_COUNTED).format(
    insert=sql.SQL("INSERT INTO {table} (ts, participant, metric, value) VALUES %s").format(
        table=sql.Identifier(TABLE)))


class Rows(Protocol):
    """One file's rows to offer, readable again for each strategy that tries them."""

    participant: int
    metric: str

    def copy_data(self, parse_all: bool, count_hours: bool = False,
                  binary: bool = False) -> Iterable[bytes]:
        """COPY data (copydata.py); ``parse_all``: every row parsed, none passed through;
        ``count_hours``: count the rows per hour as they go, for ``hours()``; ``binary``:
        the rows in COPY's binary format (without its header and trailer)."""

    def parsed(self) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        """Parsed rows in chunks: (ts as datetime64[us] UTC, values as float64, NaN = NULL)."""

    def hours(self) -> dict[np.datetime64, int]:
        """Rows per UTC hour of what the last copy_data() yielded (datetime64[h] keys)."""

    def copied(self) -> int:
        """Rows the last copy_data() yielded."""


@dataclass(frozen=True)
class Written:
    offered: int  # rows sent to the database
    inserted: int  # of those, rows that were not stored yet
    strategy: str  # the one that succeeded


@dataclass(frozen=True)
class Strategy:
    name: str
    write: Callable[[Cursor, Rows, int], tuple[int, int]]  # (cursor, rows, batch size)


def _copy_direct(cur: Cursor, rows: Rows, _batch: int) -> tuple[int, int]:
    offered = _copy_in(cur, TABLE, rows.copy_data(parse_all=False, count_hours=True,
                                                  binary=True), binary=True)
    _recount(cur, [(rows.participant, rows.metric, hour) for hour in rows.hours()])
    return offered, offered


def _recount(cur: Cursor, keys: Sequence[tuple[int, str, object]]) -> None:
    """Have the coverage of these (participant, metric, hour) keys counted afresh from
    raw_data; an hour is a datetime64[h] (hours() of a COPY) or a datetime."""
    if not keys:
        return
    participants, metrics, hours = zip(*keys, strict=True)
    stamps = [f"{np.datetime_as_string(h, unit='h')}:00:00Z" if isinstance(h, np.datetime64)
              else h for h in hours]
    cur.execute(RECOUNT, (list(participants), list(metrics), stamps))


def _staged(parse_all: bool) -> Callable[[Cursor, Rows, int], tuple[int, int]]:
    def write(cur: Cursor, rows: Rows, _batch: int) -> tuple[int, int]:
        cur.execute(CREATE_STAGE)
        offered = _copy_in(cur, STAGE, rows.copy_data(parse_all))
        cur.execute(MERGE_STAGE)
        inserted, hours = cur.fetchone()
        _recount(cur, [(rows.participant, rows.metric, hour) for hour in hours])
        cur.execute(DROP_STAGE)  # the next file of the same transaction stages its own
        return offered, inserted
    return write


def _values(cur: Cursor, rows: Rows, batch: int) -> tuple[int, int]:
    # participant and metric are the same for every row: quote them once, as
    # literals in the row template, and send only (ts, value) per row.
    template = sql.SQL("({}, {}, {}, {})").format(
        sql.Placeholder(), sql.Literal(rows.participant), sql.Literal(rows.metric),
        sql.Placeholder()).as_string(cur)
    offered = inserted = 0
    touched = set()
    for ts, values in rows.parsed():
        for i in range(0, len(ts), batch):
            stamps = np.char.add(np.datetime_as_string(ts[i : i + batch], unit="us"),
                                 "+00:00").tolist()
            part = values[i : i + batch]
            nulls = np.isnan(part)
            vals = np.where(nulls, None, part).tolist() if nulls.any() else part.tolist()
            # One statement per batch, which answers how many rows it inserted, and where.
            (count, hours), = execute_values(cur, INSERT_VALUES,
                                             list(zip(stamps, vals, strict=True)),
                                             template=template, page_size=len(stamps),
                                             fetch=True)
            offered += len(stamps)
            inserted += count
            touched.update(hours)
    _recount(cur, [(rows.participant, rows.metric, hour) for hour in sorted(touched)])
    return offered, inserted


DIRECT = Strategy("COPY into raw_data", _copy_direct)
STAGED = Strategy("COPY through a staging table", _staged(parse_all=False))
PARSED = Strategy("COPY of parsed rows through a staging table", _staged(parse_all=True))
VALUES = Strategy("INSERT ... VALUES", _values)


def chain(method: str, direct: bool) -> tuple[Strategy, ...]:
    """The strategies to try in turn for ``method``; ``direct`` when no stored row can conflict."""
    if method == "values":
        return (VALUES,)
    return ((DIRECT,) if direct else ()) + (STAGED, PARSED)


def write(cur: Cursor, target: str, rows: Rows, strategies: Sequence[Strategy],
          batch_rows: int = 10_000,
          on_fallback: Callable[[Strategy, RowsRefused], None] = lambda s, e: None) -> Written:
    """Write ``rows`` inside the caller's transaction with the first strategy the server accepts.

    Each attempt runs under a savepoint, rolled back when it fails, so the
    transaction goes on with the next file. Raises RowsRefused when the last
    strategy is refused too (the file is not written); other errors (a bad file,
    a lost connection) pass through after the rollback to the savepoint.
    """
    for i, strategy in enumerate(strategies):
        cur.execute("SAVEPOINT write_file")
        try:
            with translated(target):
                offered, inserted = strategy.write(cur, rows, batch_rows)
        except RowsRefused as e:
            _rollback_to_savepoint(cur, target)
            if i == len(strategies) - 1:
                raise RowsRefused(f"the database refused a row: {e}") from None
            on_fallback(strategy, e)
            continue
        except BaseException:
            _rollback_to_savepoint(cur, target)
            raise
        cur.execute("RELEASE SAVEPOINT write_file")
        return Written(offered, inserted, strategy.name)
    raise AssertionError("no strategy to try")


def write_together(cur: Cursor, target: str, many: Sequence[Rows]) -> list[Written] | None:
    """Several files' rows in ONE direct COPY, under one savepoint: the nightly case of a
    study, where each file gained a few rows and a COPY per file would cost more than
    its rows. None when any row is refused or a file cannot be read: everything is
    rolled back to the savepoint, and the caller writes the files one by one.
    """
    cur.execute("SAVEPOINT write_file")
    try:
        with translated(target):
            _copy_in(cur, TABLE, (part for rows in many
                                  for part in rows.copy_data(parse_all=False, count_hours=True,
                                                             binary=True)), binary=True)
            _recount(cur, [(rows.participant, rows.metric, hour) for rows in many
                           for hour in rows.hours()])
    except (RowsRefused, SourceError):
        _rollback_to_savepoint(cur, target)
        return None
    except BaseException:
        _rollback_to_savepoint(cur, target)
        raise
    cur.execute("RELEASE SAVEPOINT write_file")
    return [Written(rows.copied(), rows.copied(), f"{DIRECT.name}, with {len(many)} files")
            for rows in many]


def _rollback_to_savepoint(cur: Cursor, target: str) -> None:
    with translated(target):
        if not cur.connection.closed:
            cur.execute("ROLLBACK TO SAVEPOINT write_file")


def count_new(db: Database, rows: Rows) -> Written:
    """(rows offered, rows not stored yet) without writing raw_data: staged, then rolled back."""
    for parse_all in (False, True):
        try:
            with db.rolled_back() as cur:
                cur.execute(CREATE_STAGE)
                _copy_in(cur, STAGE, rows.copy_data(parse_all))
                cur.execute(COUNT_NEW)
                offered, new = cur.fetchone()
                return Written(offered, new, "dry run")
        except RowsRefused:
            if parse_all:
                raise
    raise AssertionError("unreachable")


class _Feed:
    """A read()-able view of an iterator of byte strings, for COPY FROM STDIN."""

    def __init__(self, parts: Iterable[bytes]) -> None:
        self._parts: Iterator[bytes] = iter(parts)
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            for part in self._parts:
                if part:  # an empty string would end the COPY
                    return part
            return b""
        except BaseException as e:  # psycopg2 turns it into QueryCanceled: keep the original
            self.error = e
            raise


def _copy_in(cur: Cursor, target: str, data: Iterable[bytes], binary: bool = False) -> int:
    """COPY the data into ``target``, as CSV or in the binary format; return the rows."""
    feed = _Feed(itertools.chain([BINARY_HEADER], data, [BINARY_TRAILER]) if binary else data)
    statement = COPY_INTO.format(target=sql.Identifier(target),
                                 columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
                                 format=sql.SQL("binary" if binary else "csv"))
    try:
        # When the connection breaks mid-COPY, psycopg2 also prints a SystemError of its
        # own on stderr; the caller reports the error itself, in one line.
        with contextlib.redirect_stderr(io.StringIO()):
            cur.copy_expert(statement.as_string(cur), feed, size=1 << 20)
    except psycopg2.Error:
        if feed.error is not None:
            raise feed.error from None
        raise
    return cur.rowcount
