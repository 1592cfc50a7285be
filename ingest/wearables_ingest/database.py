"""The database layer: connecting, transactions, the schema, run records and probes.

This module and writer.py are the only ones that import the driver. Every
driver error leaves them as one of the package's own (errors.py), with a
one-line message that names the database without its password (masking.py
masks every form of it, also where the driver quotes a connection string).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.resources import files
from typing import TYPE_CHECKING

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import Json

from wearables_ingest.errors import ConnectionLost, DatabaseError, RowsRefused
from wearables_ingest.masking import known_passwords, mask

if TYPE_CHECKING:
    import numpy as np

    from wearables_ingest import storage

TABLE = "raw_data"
RUNS = "ingest_runs"
COVERAGE = "ingest_coverage"
# The coverage's writers (schema.sql): counted afresh from raw_data, as their owner.
RECOUNT_HOURS = "coverage_recount"
RECOUNT_PAIRS = "coverage_recount_pairs"


def schema_sql() -> str:
    """The schema, from the package's schema.sql (db/init/10-wearables.sh runs the same file)."""
    return files("wearables_ingest").joinpath("schema.sql").read_text(encoding="utf-8")


# Through schema.sql's functions: the loader's role may not write ingest_runs itself.
RUN_START = "SELECT new_run, run_key FROM ingest_run_start(%s)"
RUN_END = "SELECT ingest_run_end(%s, %s, %s, %s, %s)"
RUN_FUNCTIONS_EXIST = ("SELECT to_regprocedure('ingest_run_start(text)') IS NOT NULL AND "
                       "to_regprocedure('ingest_run_end(bigint, text, text, jsonb, text)') "
                       "IS NOT NULL")
# Per participant and metric: rows, first and last ts in raw_data, and beside them the
# coverage's rows and how many of its hours disagree with a count of raw_data
# (rows, or the newest ts where the coverage knows it). One pass over raw_data.
SUMMARY = sql.SQL("""
WITH counted AS (
  SELECT participant, metric, date_trunc('hour', ts, 'UTC') AS hour, count(*) AS rows,
         min(ts) AS first_ts, max(ts) AS last_ts
  FROM {table} GROUP BY 1, 2, 3
), both_sides AS (
  SELECT coalesce(r.participant, c.participant) AS participant,
         coalesce(r.metric, c.metric) AS metric, r.rows, r.first_ts, r.last_ts,
         c.rows AS kept,
         r.rows IS DISTINCT FROM c.rows
           OR (c.last_ts IS NOT NULL AND c.last_ts IS DISTINCT FROM r.last_ts) AS off
  FROM counted r
  FULL JOIN {coverage} c
    ON c.participant = r.participant AND c.metric = r.metric AND c.hour = r.hour
)
SELECT participant, metric, coalesce(sum(rows), 0)::bigint, min(first_ts) AT TIME ZONE 'UTC',
       max(last_ts) AT TIME ZONE 'UTC', coalesce(sum(kept), 0)::bigint,
       count(*) FILTER (WHERE off)
FROM both_sides GROUP BY 1, 2""").format(table=sql.Identifier(TABLE),
                                         coverage=sql.Identifier(COVERAGE))
TABLE_EXISTS = sql.SQL("SELECT to_regclass({table}) IS NOT NULL").format(
    table=sql.Literal(TABLE))
# Everything else schema.sql creates: when one is missing (a database made by an
# older version), the loader runs schema.sql again, every statement of which may rerun.
OTHERS = (RUNS, COVERAGE, "metric_expected", "participant_metrics")
FUNCTIONS = (f"{RECOUNT_HOURS}(int[], text[], timestamptz[])", f"{RECOUNT_PAIRS}(int[], text[])")
TABLES_EXIST = sql.SQL("SELECT {} AND {} AND EXISTS ({})").format(
    sql.SQL(" AND ").join(sql.SQL("to_regclass({}) IS NOT NULL").format(sql.Literal(name))
                          for name in OTHERS),
    sql.SQL(" AND ").join(sql.SQL("to_regprocedure({}) IS NOT NULL").format(sql.Literal(name))
                          for name in FUNCTIONS),
    sql.SQL("SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass({}) "
            "AND attname = 'last_ts' AND NOT attisdropped").format(sql.Literal(COVERAGE)))
IS_HYPERTABLE = sql.SQL(
    "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = {table} "
    "AND hypertable_schema = current_schema()").format(table=sql.Literal(TABLE))
HAS_EXTENSION = "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"

# Probes for many files in one statement, each answered from an index without
# visiting older rows, so they cost the same after a month or after years. The
# arrays: participants, metrics, timestamps.
_PROBE = ("SELECT coalesce(array_agg(k.i ORDER BY k.i) FILTER (WHERE EXISTS ({exists})), '{{}}') "
          "FROM unnest(%s::int[], %s::text[], %s::timestamptz[]) WITH ORDINALITY "
          "AS k(participant, metric, ts, i)")
# "Is this row stored?": an equality on every column of raw_data's key, whichever its
# order (the seed's (ts, participant, metric) or this schema's (participant, metric, ts)).
STORED_AT = sql.SQL(_PROBE).format(exists=sql.SQL(
    "SELECT 1 FROM {table} r WHERE r.ts = k.ts AND r.participant = k.participant "
    "AND r.metric = k.metric").format(table=sql.Identifier(TABLE)))
# "Is anything stored at or after ts?", asked of the coverage, exactly: an hour after
# ts's own holds rows after ts, and ts's own hour does when its newest ts is not
# older (an hour counted by an older version, without its newest ts, is taken to hold
# rows up to its end). One probe of the coverage's key, the same cost with either key
# of raw_data; asked of a ts-first raw_data key it would visit every other
# participant's rows after ts.
STORED_SINCE = sql.SQL(_PROBE).format(exists=sql.SQL(
    "SELECT 1 FROM {coverage} c WHERE c.participant = k.participant AND c.metric = k.metric "
    "AND c.hour >= date_trunc('hour', k.ts, 'UTC') "
    "AND (c.last_ts IS NULL OR c.last_ts >= k.ts)").format(coverage=sql.Identifier(COVERAGE)))
# The coverage of whole participant/metric pairs (arrays), counted afresh from raw_data.
RECOUNT_PAIRS_CALL = sql.SQL("SELECT {}(%s::int[], %s::text[])").format(
    sql.Identifier(RECOUNT_PAIRS))


def first_line(e: BaseException) -> str:
    """The first line of a driver error, without libpq's trailing detail.

    "connection already closed" from the rollback after a lost connection hides
    the reason the connection was lost: report that one instead.
    """
    if isinstance(e, psycopg2.InterfaceError) and isinstance(e.__context__, psycopg2.Error):
        e = e.__context__
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


@contextmanager
def translated(target: str, known: Iterable[str] = ()) -> Iterator[None]:
    """Turn driver errors raised inside into the package's own, naming ``target``.

    ``known``: passwords to mask in the driver's text (with every libpq form of one).
    """
    try:
        yield
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
        reason = mask(first_line(e), known)
        if isinstance(e, psycopg2.errors.QueryCanceled):  # a timeout, not a lost connection
            raise DatabaseError(f"database error at {mask(target)}: {reason}") from None
        raise ConnectionLost(f"lost the database at {mask(target)}: {reason}", reason) from None
    except (psycopg2.IntegrityError, psycopg2.DataError) as e:
        raise RowsRefused(mask(first_line(e), known)) from None
    except psycopg2.Error as e:
        reason = mask(first_line(e), known)
        raise DatabaseError(f"database error at {mask(target)}: {reason}") from None


def connect(connect_args: Mapping[str, str], target: str, timeout_s: int = 10) -> Connection:
    """Open a connection; ``target`` names it in the error, every password masked."""
    try:
        return psycopg2.connect(**connect_args, connect_timeout=timeout_s,
                                application_name="wearables-ingest",
                                options="-c timezone=UTC")  # offset-less timestamps are UTC
    except psycopg2.Error as e:
        reason = mask(first_line(e), known_passwords(connect_args))
        raise ConnectionLost(f"cannot connect to {mask(target)}: {reason}", reason) from None


@dataclass
class Database:
    """A connection, how to open it again, and transactions that speak the package's errors."""

    connect_args: Mapping[str, str] = field(repr=False)
    target: str  # where it connects, for messages: never includes the password
    retries: int = 3
    retry_delay: float = 2.0
    on_retry: Callable[[str], None] = lambda text: None
    conn: Connection | None = field(default=None, repr=False)
    run_keys: dict[int, str] = field(default_factory=dict, repr=False)  # run_id -> its key

    def open(self) -> Database:
        """Connect, trying ``retries`` more times with doubling delays before giving up."""
        self.close()
        for attempt in range(self.retries + 1):
            try:
                self.conn = connect(self.connect_args, self.target)
                return self
            except ConnectionLost as e:
                if attempt == self.retries:
                    tries = f" (gave up after {self.retries + 1} attempts)" if self.retries else ""
                    raise ConnectionLost(f"{e}{tries}", e.reason) from None
                wait = self.retry_delay * 2 ** attempt
                self.on_retry(f"{e}; trying again in {wait:g} s")
                time.sleep(wait)
        raise AssertionError("unreachable")

    def passwords(self) -> set[str]:
        """The passwords this connection may use, to mask them in every message."""
        return known_passwords(self.connect_args)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A cursor in a transaction: committed when the block ends, rolled back on an error."""
        assert self.conn is not None, "open() first"
        with translated(self.target, self.passwords()), self.conn, self.conn.cursor() as cur:
            yield cur

    @contextmanager
    def rolled_back(self) -> Iterator[Cursor]:
        """A cursor in a transaction that is always rolled back (counting, never writing)."""
        assert self.conn is not None, "open() first"
        with translated(self.target, self.passwords()):
            try:
                with self.conn.cursor() as cur:
                    yield cur
            finally:
                self.conn.rollback()


def ensure_schema(db: Database, compress_after_days: int = 7) -> storage.Applied:
    """Create the extension, tables and hypertable when missing; otherwise change nothing.

    Then the storage (storage.py): compression and the views raw_data_1m/1h/1d,
    applied when any part is missing. When everything exists no DDL is sent at
    all, so a role that may only read and insert (the stack's ``ingest`` role)
    passes this step. Returns what storage.ensure() found, for the caller to log.
    """
    from wearables_ingest import storage  # here: storage.py builds on this module

    if not _schema_in_place(db):
        try:
            with db.transaction() as cur:
                cur.execute(schema_sql())
        except DatabaseError as e:
            raise DatabaseError(f"{e} (creating the schema; a database created by an older "
                                "version needs db/init/10-wearables.sh run again as its owner, "
                                "see docs/operations.md)") from None
    return storage.ensure(db, compress_after_days)


def _schema_in_place(db: Database) -> bool:
    with db.transaction() as cur:
        cur.execute(HAS_EXTENSION)
        if not cur.fetchone():
            return False
        cur.execute(IS_HYPERTABLE)
        hypertable = cur.fetchone() is not None
        cur.execute(TABLES_EXIST)
        tables = cur.fetchone()[0]
        cur.execute(RUN_FUNCTIONS_EXIST)
        return hypertable and tables and cur.fetchone()[0]


def schema_exists(db: Database) -> bool:
    """Whether raw_data exists (a dry run against a new database creates nothing)."""
    with db.transaction() as cur:
        cur.execute(TABLE_EXISTS)
        return cur.fetchone()[0]


def start_run(db: Database, trigger: str) -> int:
    """Record that a run started; return its run_id (the key to complete it stays in ``db``)."""
    with db.transaction() as cur:
        cur.execute(RUN_START, (trigger,))
        run_id, key = cur.fetchone()
    db.run_keys[run_id] = key
    return run_id


def end_run(db: Database, run_id: int, status: str, metrics: dict, error: str | None) -> None:
    """Complete the run's record: status, per-metric counts (JSON) and the error, if any.

    The error is stored with every password masked: analysts read ingest_runs.
    """
    text = None if error is None else mask(error, db.passwords())
    with db.transaction() as cur:
        cur.execute(RUN_END, (run_id, db.run_keys.get(run_id, ""), status, Json(metrics), text))
    db.run_keys.pop(run_id, None)


def _probe(db: Database, statement: sql.Composed,
           keys: Sequence[tuple[int, str, np.datetime64]]) -> list[bool]:
    if not keys:
        return []
    import numpy as np  # here, not at the top: `status` never needs it

    participants, metrics, stamps = zip(*keys, strict=True)
    with db.transaction() as cur:
        text = np.char.add(np.datetime_as_string(np.array(stamps, dtype="datetime64[us]"),
                                                 unit="us"), "Z").tolist()
        cur.execute(statement, (list(participants), list(metrics), text))
        hits = set(cur.fetchone()[0])
    return [i + 1 in hits for i in range(len(keys))]


def stored_at(db: Database, keys: Sequence[tuple[int, str, np.datetime64]]) -> list[bool]:
    """For each (participant, metric, ts): whether that row is stored."""
    return _probe(db, STORED_AT, keys)


def stored_since(db: Database, keys: Sequence[tuple[int, str, np.datetime64]]) -> list[bool]:
    """For each (participant, metric, ts): whether any row is stored at or after ts.

    By the coverage, to the microsecond: False means none is, as far as the loader
    wrote them (a row written by other means makes the direct COPY fail, and the
    writer falls back).
    """
    return _probe(db, STORED_SINCE, keys)


def rebuild_coverage(db: Database, pairs: Sequence[tuple[int, str]]) -> None:
    """Count the coverage of these (participant, metric) pairs afresh from raw_data.

    For --full, and when raw_data lost rows the checkpoint had: the one time the
    loader counts stored rows (a scan of the table, once for all the pairs).
    """
    if not pairs:
        return
    participants, metrics = (list(x) for x in zip(*pairs, strict=True))
    with db.transaction() as cur:
        cur.execute(RECOUNT_PAIRS_CALL, (participants, metrics))


def table_summary(db: Database) -> list[tuple]:
    """Per pair stored or covered: (participant, metric, rows, first ts, last ts, coverage's
    rows, coverage's hours that disagree with raw_data); [] with no table."""
    if not schema_exists(db):
        return []
    with db.transaction() as cur:
        cur.execute(SUMMARY)
        import numpy as np

        def us(when):
            return None if when is None else np.datetime64(when, "us")

        return [(p, m, n, us(first), us(last), kept, off)
                for p, m, n, first, last, kept, off in cur.fetchall()]
