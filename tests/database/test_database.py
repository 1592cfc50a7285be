"""The database layer on a real TimescaleDB: the schema, connecting, and the write strategies."""

from __future__ import annotations

from urllib.parse import urlsplit

import numpy as np
import psycopg2
import psycopg2.sql
import pytest

from helpers import open_database, query, schema_snapshot
from wearables_ingest import writer
from wearables_ingest.database import Database, connect, ensure_schema
from wearables_ingest.discovery import SourceFile
from wearables_ingest.errors import ConnectionLost
from wearables_ingest.loader import Options, load_file


@pytest.fixture
def conn(database_url):
    c = psycopg2.connect(database_url)
    yield c
    c.close()


@pytest.fixture
def db(database_url):
    d = open_database(database_url)
    yield d
    d.close()


class ParsedRows:
    """writer.Rows from arrays, for the values strategy."""

    def __init__(self, participant: int, metric: str, ts, values) -> None:
        self.participant, self.metric = participant, metric
        self.ts = np.array(ts, dtype="datetime64[us]")
        self.values = np.array(values, dtype="float64")

    def copy_data(self, parse_all: bool):
        raise AssertionError("the values strategy reads parsed rows only")

    def parsed(self):
        yield self.ts, self.values

    def hours(self):
        raise AssertionError("the values strategy counts hours in the database")


def insert_rows(db: Database, participant: int, metric: str, ts, values) -> int:
    with db.transaction() as cur:
        return writer.write(cur, db.target, ParsedRows(participant, metric, ts, values),
                            (writer.VALUES,)).inserted


def test_schema_is_the_seed_table_as_a_hypertable_on_ts(db, database_url):
    ensure_schema(db)
    assert schema_snapshot(database_url) == [
        ("ts", "timestamp with time zone", "NO"),
        ("participant", "integer", "NO"),
        ("metric", "text", "NO"),
        ("value", "double precision", "YES"),
        ("PRIMARY KEY (participant, metric, ts)",),
        ("raw_data", 1),
        ("ts",),
    ]


def test_ensure_schema_again_changes_nothing(db, database_url):
    ensure_schema(db)
    with db.transaction() as cur:
        cur.execute("INSERT INTO raw_data VALUES ('2024-01-01T00:00:00Z', 1, 'hr', 60)")
    before = schema_snapshot(database_url)
    ensure_schema(db)
    assert schema_snapshot(database_url) == before
    assert query(database_url, "SELECT count(*) FROM raw_data") == [(1,)]


def test_values_strategy_counts_new_rows_and_skips_present_ones(db, database_url):
    ensure_schema(db)
    ts = np.array(["2024-01-01T00:00:00", "2024-01-01T00:00:01.5"], dtype="datetime64[us]")
    assert insert_rows(db, 1, "hr", ts, [60.0, np.nan]) == 2
    more = np.concatenate([ts, np.array(["2024-01-01T00:00:02"], dtype="datetime64[us]")])
    assert insert_rows(db, 1, "hr", more, [99.0, 99.0, 62.0]) == 1
    assert insert_rows(db, 2, "hr", ts[:1], [70.0]) == 1  # other participant
    assert insert_rows(db, 1, "hr", ts[:0], []) == 0
    assert query(database_url, "SELECT ts AT TIME ZONE 'UTC', participant, value FROM raw_data "
                               "ORDER BY participant, ts") == [
        (np.datetime64("2024-01-01T00:00:00").astype(object), 1, 60.0),  # first value kept
        (np.datetime64("2024-01-01T00:00:01.500000").astype(object), 1, None),  # empty -> NULL
        (np.datetime64("2024-01-01T00:00:02").astype(object), 1, 62.0),
        (np.datetime64("2024-01-01T00:00:00").astype(object), 2, 70.0),
    ]


def test_metric_text_reaches_sql_only_as_a_value(db, database_url):
    ensure_schema(db)
    nasty = "hr'); DROP TABLE raw_data; --"
    insert_rows(db, 1, nasty, ["2024-01-01"], [1.0])
    assert query(database_url, "SELECT metric FROM raw_data") == [(nasty,)]


def test_connect_failure_is_one_line_naming_the_target_without_password():
    with pytest.raises(ConnectionLost) as e:
        connect({"host": "127.0.0.1", "port": "1", "password": "hunter2"}, "u@127.0.0.1:1/x",
                timeout_s=2)
    assert str(e.value).startswith("cannot connect to u@127.0.0.1:1/x: ")
    assert "\n" not in str(e.value) and "hunter2" not in str(e.value)


@pytest.mark.parametrize("method", ["copy", "values"])
def test_a_role_that_may_only_read_and_insert_can_load(conn, db, database_url, tmp_path, method):
    ensure_schema(db)  # as the owner, once
    role = f"loader_{method}"
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN")
        cur.execute(f"GRANT SELECT, INSERT ON raw_data TO {role}")
        cur.execute(f"GRANT SELECT ON ingest_coverage TO {role}")
        cur.execute(f"GRANT EXECUTE ON FUNCTION coverage_recount(int[], text[], timestamptz[]) "
                    f"TO {role}")
    path = tmp_path / "hr.csv"
    path.write_text("ts,value\n2024-01-01T00:00:00Z,60\n2024-01-01T00:00:01Z,61\n")
    url = urlsplit(database_url)._replace(netloc=f"{role}@{urlsplit(database_url).hostname}:"
                                                 f"{urlsplit(database_url).port}").geturl()
    loader_db = open_database(url)
    try:
        ensure_schema(loader_db)  # sends no DDL: it would be refused
        first = load_file(loader_db, SourceFile(1, "hr", path, "hr"), None, Options(method))
        again = load_file(loader_db, SourceFile(1, "hr", path, "hr"), None, Options(method))
    finally:
        loader_db.close()
    assert (first.inserted, again.inserted, again.already_present) == (2, 0, 2)
    with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cur.execute(psycopg2.sql.SQL("SET ROLE {}").format(psycopg2.sql.Identifier(role)))
        cur.execute("DELETE FROM raw_data")
