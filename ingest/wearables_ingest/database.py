"""The database layer: connecting, transactions, the schema, run records and probes.

This module and writer.py are the only ones that import the driver. Every
driver error leaves them as one of the package's own (errors.py), with a
one-line message that names the database without its password.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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

if TYPE_CHECKING:
    import numpy as np

    from wearables_ingest import storage

TABLE = "raw_data"
RUNS = "ingest_runs"
COVERAGE = "ingest_coverage"


def schema_sql() -> str:
    """The schema, from the package's schema.sql (db/init/10-wearables.sh runs the same file)."""
    return files("wearables_ingest").joinpath("schema.sql").read_text(encoding="utf-8")


RUN_START = sql.SQL("INSERT INTO {runs} (trigger) VALUES (%s) RETURNING run_id").format(
    runs=sql.Identifier(RUNS))
RUN_END = sql.SQL("UPDATE {runs} SET finished = now(), status = %s, metrics = %s, error = %s "
                  "WHERE run_id = %s").format(runs=sql.Identifier(RUNS))
SUMMARY = sql.SQL("SELECT participant, metric, count(*), min(ts) AT TIME ZONE 'UTC', "
                  "max(ts) AT TIME ZONE 'UTC' FROM {table} GROUP BY 1, 2").format(
                      table=sql.Identifier(TABLE))
TABLE_EXISTS = sql.SQL("SELECT to_regclass({table}) IS NOT NULL").format(
    table=sql.Literal(TABLE))
# Everything else schema.sql creates: when one is missing (a database made by an
# older version), the loader runs schema.sql again, every statement of which may rerun.
OTHERS = (RUNS, COVERAGE, "metric_expected", "participant_metrics")
TABLES_EXIST = sql.SQL("SELECT {}").format(sql.SQL(" AND ").join(
    sql.SQL("to_regclass({}) IS NOT NULL").format(sql.Literal(name)) for name in OTHERS))
IS_HYPERTABLE = sql.SQL(
    "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = {table} "
    "AND hypertable_schema = current_schema()").format(table=sql.Literal(TABLE))
HAS_EXTENSION = "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"

# Probes for many files in one statement, each answered from the primary key index
# (ts, participant, metric) without visiting older rows, so they cost the same
# after a month or after years. The arrays: participants, metrics, timestamps.
_PROBE = ("SELECT coalesce(array_agg(k.i ORDER BY k.i) FILTER (WHERE EXISTS ({exists})), '{{}}') "
          "FROM unnest(%s::int[], %s::text[], %s::timestamptz[]) WITH ORDINALITY "
          "AS k(participant, metric, ts, i)")
STORED_AT = sql.SQL(_PROBE).format(exists=sql.SQL(
    "SELECT 1 FROM {table} r WHERE r.ts = k.ts AND r.participant = k.participant "
    "AND r.metric = k.metric").format(table=sql.Identifier(TABLE)))
# "Is anything stored at or after ts?", asked of the coverage (to the hour: an answer
# of yes may be early by up to an hour, which only costs the careful way of writing).
# Asked of raw_data's key, which starts with ts, it would visit every other
# participant's rows after ts, and a study's first load would grow with the square
# of its participants.
STORED_SINCE = sql.SQL(_PROBE).format(exists=sql.SQL(
    "SELECT 1 FROM {coverage} c WHERE c.participant = k.participant AND c.metric = k.metric "
    "AND c.hour >= date_trunc('hour', k.ts, 'UTC')").format(coverage=sql.Identifier(COVERAGE)))
# Coverage counted afresh from raw_data for some participant/metric pairs (arrays).
REBUILD_COVERAGE = [
    sql.SQL("DELETE FROM {coverage} WHERE (participant, metric) IN "
            "(SELECT * FROM unnest(%s::int[], %s::text[]))").format(
                coverage=sql.Identifier(COVERAGE)),
    sql.SQL("INSERT INTO {coverage} (participant, metric, hour, rows) "
            "SELECT participant, metric, date_trunc('hour', ts, 'UTC'), count(*) FROM {table} "
            "WHERE (participant, metric) IN (SELECT * FROM unnest(%s::int[], %s::text[])) "
            "GROUP BY 1, 2, 3").format(coverage=sql.Identifier(COVERAGE),
                                       table=sql.Identifier(TABLE)),
]


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
def translated(target: str) -> Iterator[None]:
    """Turn driver errors raised inside into the package's own, naming ``target``."""
    try:
        yield
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
        if isinstance(e, psycopg2.errors.QueryCanceled):  # a timeout, not a lost connection
            raise DatabaseError(f"database error at {target}: {first_line(e)}") from None
        reason = first_line(e)
        raise ConnectionLost(f"lost the database at {target}: {reason}", reason) from None
    except (psycopg2.IntegrityError, psycopg2.DataError) as e:
        raise RowsRefused(first_line(e)) from None
    except psycopg2.Error as e:
        raise DatabaseError(f"database error at {target}: {first_line(e)}") from None


def connect(connect_args: Mapping[str, str], target: str, timeout_s: int = 10) -> Connection:
    """Open a connection; ``target`` (with no password) names it in the error."""
    try:
        return psycopg2.connect(**connect_args, connect_timeout=timeout_s,
                                application_name="wearables-ingest",
                                options="-c timezone=UTC")  # offset-less timestamps are UTC
    except psycopg2.Error as e:
        reason = first_line(e)
        raise ConnectionLost(f"cannot connect to {target}: {reason}", reason) from None


@dataclass
class Database:
    """A connection, how to open it again, and transactions that speak the package's errors."""

    connect_args: Mapping[str, str] = field(repr=False)
    target: str  # where it connects, for messages: never includes the password
    retries: int = 3
    retry_delay: float = 2.0
    on_retry: Callable[[str], None] = lambda text: None
    conn: Connection | None = field(default=None, repr=False)

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

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A cursor in a transaction: committed when the block ends, rolled back on an error."""
        assert self.conn is not None, "open() first"
        with translated(self.target), self.conn, self.conn.cursor() as cur:
            yield cur

    @contextmanager
    def rolled_back(self) -> Iterator[Cursor]:
        """A cursor in a transaction that is always rolled back (counting, never writing)."""
        assert self.conn is not None, "open() first"
        with translated(self.target):
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
        return hypertable and cur.fetchone()[0]


def schema_exists(db: Database) -> bool:
    """Whether raw_data exists (a dry run against a new database creates nothing)."""
    with db.transaction() as cur:
        cur.execute(TABLE_EXISTS)
        return cur.fetchone()[0]


def start_run(db: Database, trigger: str) -> int:
    """Record that a run started; return its run_id."""
    with db.transaction() as cur:
        cur.execute(RUN_START, (trigger,))
        return cur.fetchone()[0]


def end_run(db: Database, run_id: int, status: str, metrics: dict, error: str | None) -> None:
    """Complete the run's record: status, per-metric counts (JSON) and the error, if any."""
    with db.transaction() as cur:
        cur.execute(RUN_END, (status, Json(metrics), error, run_id))


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
    """For each (participant, metric, ts): whether rows may be stored at or after ts.

    By the coverage: False means none is, as far as the loader wrote them (a row
    written by other means makes the direct COPY fail, and the writer falls back).
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
        for statement in REBUILD_COVERAGE:
            cur.execute(statement, (participants, metrics))


def table_summary(db: Database) -> list[tuple]:
    """(participant, metric, rows, first ts, last ts) for every pair stored; [] with no table."""
    if not schema_exists(db):
        return []
    with db.transaction() as cur:
        cur.execute(SUMMARY)
        import numpy as np

        return [(p, m, n, np.datetime64(first, "us"), np.datetime64(last, "us"))
                for p, m, n, first, last in cur.fetchall()]
