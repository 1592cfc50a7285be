"""The database side: connecting, the schema, and writing rows. All SQL lives here."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as Connection
from psycopg2.extras import execute_values

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

INSERT = sql.SQL(
    "INSERT INTO {table} (ts, participant, metric, value) VALUES %s ON CONFLICT DO NOTHING"
).format(table=sql.Identifier(TABLE))


class DatabaseError(Exception):
    """The database cannot be reached or refused the work; the message is one line."""


def first_line(e: BaseException) -> str:
    """The first line of a driver error, without libpq's trailing detail."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def connect(connect_args: Mapping[str, str], target: str, timeout_s: int = 10) -> Connection:
    """Open a connection; ``target`` (with no password) names it in the error."""
    try:
        conn = psycopg2.connect(**connect_args, connect_timeout=timeout_s,
                                application_name="wearables-ingest")
    except psycopg2.Error as e:
        raise DatabaseError(f"cannot connect to {target}: {first_line(e)}") from None
    return conn


def ensure_schema(conn: Connection) -> None:
    """Create the extension, table and hypertable when missing; otherwise change nothing."""
    with conn, conn.cursor() as cur:
        for statement in SCHEMA:
            cur.execute(statement)


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
