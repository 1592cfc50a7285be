"""The database side: connecting, the schema, and writing rows. All SQL lives here.

Two ways to write, both skipping rows already present and never doubling one:
``copy_rows`` streams CSV through COPY, straight into the hypertable when the
rows cannot conflict and through a temporary staging table plus
``INSERT ... ON CONFLICT DO NOTHING`` when they can; ``insert_rows`` sends
batches of ``INSERT ... VALUES ... ON CONFLICT DO NOTHING`` (execute_values).
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from psycopg2.extras import Json, execute_values

TABLE = "raw_data"

SCHEMA = [
    sql.SQL("CREATE EXTENSION IF NOT EXISTS timescaledb"),
    sql.SQL("""
        CREATE TABLE IF NOT EXISTS {table} (
          ts          TIMESTAMPTZ NOT NULL,
          participant INT          NOT NULL,
          metric      TEXT         NOT NULL,
          value       DOUBLE PRECISION,
          PRIMARY KEY (ts, participant, metric)
        )""").format(table=sql.Identifier(TABLE)),
    sql.SQL("SELECT create_hypertable({table}, 'ts', if_not_exists => TRUE)").format(
        table=sql.Literal(TABLE)),
]

RUNS = "ingest_runs"
# A record of every run: written when it starts, completed when it ends, so a run
# that crashed shows as unfinished (finished IS NULL, status 'running').
RUNS_SCHEMA = sql.SQL("""
    CREATE TABLE IF NOT EXISTS {runs} (
      run_id    BIGSERIAL   PRIMARY KEY,
      started   TIMESTAMPTZ NOT NULL DEFAULT now(),
      finished  TIMESTAMPTZ,
      status    TEXT        NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'ok', 'partial', 'failed')),
      trigger   TEXT        NOT NULL,
      metrics   JSONB,
      error     TEXT
    )""").format(runs=sql.Identifier(RUNS))
RUN_START = sql.SQL("INSERT INTO {runs} (trigger) VALUES (%s) RETURNING run_id").format(
    runs=sql.Identifier(RUNS))
RUN_END = sql.SQL("UPDATE {runs} SET finished = now(), status = %s, metrics = %s, error = %s "
                  "WHERE run_id = %s").format(runs=sql.Identifier(RUNS))
SUMMARY = sql.SQL("SELECT participant, metric, count(*), min(ts) AT TIME ZONE 'UTC', "
                  "max(ts) AT TIME ZONE 'UTC' FROM {table} GROUP BY 1, 2").format(
                      table=sql.Identifier(TABLE))
RUNS_EXISTS = sql.SQL("SELECT to_regclass({runs}) IS NOT NULL").format(runs=sql.Literal(RUNS))

STAGE = "raw_data_stage"
COLUMNS_IN_COPY = sql.SQL("(ts, value, participant, metric)")  # a CSV line plus two fields
COPY_INTO = "COPY {table} {columns} FROM STDIN (FORMAT csv)"
CREATE_STAGE = sql.SQL(
    "CREATE TEMP TABLE {stage} (ts TIMESTAMPTZ, value DOUBLE PRECISION, participant INT, "
    "metric TEXT) ON COMMIT DROP").format(stage=sql.Identifier(STAGE))
MERGE_STAGE = sql.SQL(
    "INSERT INTO {table} (ts, participant, metric, value) "
    "SELECT ts, participant, metric, value FROM {stage} ON CONFLICT DO NOTHING"
).format(table=sql.Identifier(TABLE), stage=sql.Identifier(STAGE))
TABLE_EXISTS = sql.SQL("SELECT to_regclass({table}) IS NOT NULL").format(
    table=sql.Literal(TABLE))
COUNT_NEW = sql.SQL(
    "SELECT count(*), count(DISTINCT (s.ts, s.participant, s.metric)) FILTER (WHERE NOT EXISTS "
    "(SELECT 1 FROM {table} r WHERE r.ts = s.ts AND r.participant = s.participant "
    "AND r.metric = s.metric)) FROM {stage} s").format(
        table=sql.Identifier(TABLE), stage=sql.Identifier(STAGE))
COUNT_STAGE = sql.SQL("SELECT count(*), count(DISTINCT (ts, participant, metric)) "
                      "FROM {stage}").format(stage=sql.Identifier(STAGE))

# Both answer from the primary key index (ts, participant, metric) without
# visiting older rows, so they cost the same after a month or after years.
STORED_AT = sql.SQL("SELECT EXISTS (SELECT 1 FROM {table} WHERE ts = %s AND participant = %s "
                    "AND metric = %s)").format(table=sql.Identifier(TABLE))
STORED_SINCE = sql.SQL("SELECT EXISTS (SELECT 1 FROM {table} WHERE ts >= %s AND participant = %s "
                       "AND metric = %s)").format(table=sql.Identifier(TABLE))

INSERT = sql.SQL(
    "INSERT INTO {table} (ts, participant, metric, value) VALUES %s ON CONFLICT DO NOTHING"
).format(table=sql.Identifier(TABLE))


class DatabaseError(Exception):
    """The database cannot be reached or refused the work; the message is one line."""


def first_line(e: BaseException) -> str:
    """The first line of a driver error, without libpq's trailing detail.

    "connection already closed" from the rollback after a lost connection hides
    the reason the connection was lost: report that one instead.
    """
    if isinstance(e, psycopg2.InterfaceError) and isinstance(e.__context__, psycopg2.Error):
        e = e.__context__
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def connect(connect_args: Mapping[str, str], target: str, timeout_s: int = 10) -> Connection:
    """Open a connection; ``target`` (with no password) names it in the error."""
    try:
        conn = psycopg2.connect(**connect_args, connect_timeout=timeout_s,
                                application_name="wearables-ingest",
                                options="-c timezone=UTC")  # offset-less timestamps are UTC
    except psycopg2.Error as e:
        raise DatabaseError(f"cannot connect to {target}: {first_line(e)}") from None
    return conn


IS_HYPERTABLE = sql.SQL(
    "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = {table} "
    "AND hypertable_schema = current_schema()").format(table=sql.Literal(TABLE))
HAS_EXTENSION = "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"


def connect_with_retries(connect_args: Mapping[str, str], target: str, retries: int,
                         delay_s: float, on_retry: Callable[[str], None]) -> Connection:
    """connect(), tried ``retries`` more times with doubling delays before giving up."""
    for attempt in range(retries + 1):
        try:
            return connect(connect_args, target)
        except DatabaseError as e:
            if attempt == retries:
                tries = f" (gave up after {retries + 1} attempts)" if retries else ""
                raise DatabaseError(f"{e}{tries}") from None
            wait = delay_s * 2 ** attempt
            on_retry(f"{e}; trying again in {wait:g} s")
            time.sleep(wait)
    raise AssertionError("unreachable")


def ensure_schema(conn: Connection) -> None:
    """Create the extension, table and hypertable when missing; otherwise change nothing.

    When they exist no DDL is sent at all, so a role that may only read and
    insert into the table (the stack's loader role) passes this step.
    """
    with conn, conn.cursor() as cur:
        cur.execute(HAS_EXTENSION)
        if cur.fetchone():
            cur.execute(IS_HYPERTABLE)
            hypertable = cur.fetchone() is not None
            cur.execute(RUNS_EXISTS)
            if hypertable and cur.fetchone()[0]:
                return
        for statement in SCHEMA:
            cur.execute(statement)
        cur.execute(RUNS_SCHEMA)


def start_run(conn: Connection, trigger: str) -> int:
    """Record that a run started; return its run_id."""
    with conn, conn.cursor() as cur:
        cur.execute(RUN_START, (trigger,))
        return cur.fetchone()[0]


def end_run(conn: Connection, run_id: int, status: str, metrics: dict,
            error: str | None) -> None:
    """Complete the run's record: status, per-metric counts (JSON) and the error, if any."""
    with conn, conn.cursor() as cur:
        cur.execute(RUN_END, (status, Json(metrics), error, run_id))


def insert_rows(cur, participant: int, metric: str, ts: np.ndarray, values: np.ndarray) -> int:
    """Insert one batch with ``ON CONFLICT DO NOTHING``; return how many rows were new."""
    if len(ts) == 0:
        return 0
    stamps = np.char.add(np.datetime_as_string(ts, unit="us"), "+00:00").tolist()
    nulls = np.isnan(values)
    vals = np.where(nulls, None, values).tolist() if nulls.any() else values.tolist()
    # participant and metric are the same for the whole batch: quote them once, as
    # literals in the row template, and send only (ts, value) per row.
    template = sql.SQL("({}, {}, {}, {})").format(
        sql.Placeholder(), sql.Literal(participant), sql.Literal(metric), sql.Placeholder())
    # One statement per batch, so rowcount is the number of rows this batch inserted.
    execute_values(cur, INSERT, list(zip(stamps, vals, strict=True)),
                   template=template.as_string(cur), page_size=len(stamps))
    return cur.rowcount


def _utc_text(ts: np.datetime64) -> str:
    return f"{np.datetime_as_string(ts, unit='us')}Z"


def stored_at(cur, participant: int, metric: str, ts: np.datetime64) -> bool:
    """Whether the row at ``ts`` is stored for this participant's metric."""
    cur.execute(STORED_AT, (_utc_text(ts), participant, metric))
    return cur.fetchone()[0]


def stored_since(cur, participant: int, metric: str, ts: np.datetime64) -> bool:
    """Whether any row at or after ``ts`` is stored for this participant's metric."""
    cur.execute(STORED_SINCE, (_utc_text(ts), participant, metric))
    return cur.fetchone()[0]


def line_suffix(participant: int, metric: str) -> bytes:
    """What turns a source line ``ts,value`` into a COPY line ``ts,value,participant,metric``.

    ``metric`` is a plain lowercase identifier (the file name was checked), so
    it needs no CSV quoting.
    """
    return f",{int(participant)},{metric}\n".encode("ascii")


def block_payload(lines: bytes, suffix: bytes) -> bytes:
    """COPY data from a block of plain source lines, each ending in \\n."""
    return lines.replace(b"\n", suffix)


def chunk_payload(ts: np.ndarray, values: np.ndarray, suffix: bytes) -> bytes:
    """COPY data from parsed rows (an empty field is NULL)."""
    stamps = np.datetime_as_string(ts, unit="us").tolist()
    end = suffix.decode("ascii")
    return "".join(f"{t}Z,{'' if v != v else repr(v)}{end}"
                   for t, v in zip(stamps, values.tolist(), strict=True)).encode("ascii")


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


def copy_rows(cur, payloads: Iterable[bytes], direct: bool) -> tuple[int, int]:
    """Stream COPY data into the table; return (rows offered, rows inserted).

    ``direct`` copies straight into the hypertable: only for rows newer than
    anything stored, since a row already present makes the whole COPY fail with
    UniqueViolation (the caller then rolls back and retries with staging).
    """
    if not direct:
        cur.execute(CREATE_STAGE)
    offered = _copy_in(cur, TABLE if direct else STAGE, payloads)
    if direct:
        return offered, offered
    cur.execute(MERGE_STAGE)
    return offered, cur.rowcount


def _copy_in(cur, target: str, payloads: Iterable[bytes]) -> int:
    """COPY the data into ``target``; return the number of rows."""
    feed = _Feed(payloads)
    statement = sql.SQL(COPY_INTO).format(table=sql.Identifier(target), columns=COLUMNS_IN_COPY)
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


def schema_exists(conn: Connection) -> bool:
    """Whether raw_data exists (a dry run against a new database creates nothing)."""
    with conn, conn.cursor() as cur:
        cur.execute(TABLE_EXISTS)
        return cur.fetchone()[0]


def count_new(cur, payloads: Iterable[bytes]) -> tuple[int, int]:
    """(rows offered, rows not yet stored) for COPY data, without writing raw_data.

    The rows go to the temporary staging table only; the caller rolls back.
    """
    cur.execute(CREATE_STAGE)
    _copy_in(cur, STAGE, payloads)
    cur.execute(TABLE_EXISTS)
    cur.execute(COUNT_NEW if cur.fetchone()[0] else COUNT_STAGE)
    return cur.fetchone()


def table_summary(conn: Connection) -> list[tuple]:
    """(participant, metric, rows, first ts, last ts) for every pair stored; [] with no table."""
    if not schema_exists(conn):
        return []
    with conn, conn.cursor() as cur:
        cur.execute(SUMMARY)
        return [(p, m, n, np.datetime64(first, "us"), np.datetime64(last, "us"))
                for p, m, n, first, last in cur.fetchall()]
